//! A node cut off from everything (issue 18, items 4 and 8): two nodes in
//! network namespaces of the test's own on one LAN with PostgreSQL and the
//! callers (this process) — a cable pulled, not a process killed. The
//! owner cut off cannot renew its lease: it keeps mixing what it has, its
//! lease lapses, and the other node's callers of the room meet there once
//! it takes the room at the next epoch. Plugged back in, the old owner sees
//! the higher epoch, stands down and moves its own callers to the new
//! owner: the room is one again.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::caller::{Caller, Dial, sine_frame, tail, tone_power, until_they_hear_each_other};
use support::netns::Lan;
use support::postgres::PgServer;
use support::{Gateway, caller_in_room, get, poll, provision};

const CODE: &str = "4321";
const TONE_Y: f64 = 697.0;
const TONE_Z: f64 = 1477.0;
const TONE_X: f64 = 1209.0;

/// A node `id` in the LAN's host namespace `i`.
async fn node(lan: &Lan, i: usize, id: &str, db: &str) -> Gateway {
    let dir = tempfile::tempdir().expect("tempdir");
    Gateway::start_in(
        &lan.wrapper(i),
        &lan.ip(i),
        dir,
        db.to_owned(),
        &["--node-id", id],
    )
    .await
}

/// A caller from this process's LAN address, in the room on `gw` once
/// `gw`'s live view shows `callers` of its own there, mixed by `owner`.
async fn in_room(lan: &Lan, gw: &Gateway, owner: &str, callers: usize) -> Caller {
    let host = lan.host_ip();
    let dial = Dial {
        local_ip: Some(&host),
        ..Dial::default()
    };
    caller_in_room(gw, dial, CODE, owner, callers).await
}

fn lease_of(leases: &Value) -> (&str, i64, bool) {
    (
        leases[0]["node_id"].as_str().unwrap_or(""),
        leases[0]["epoch"].as_i64().unwrap_or(0),
        leases[0]["held"] == true,
    )
}

#[tokio::test]
async fn an_owner_cut_off_loses_its_room_to_the_other_node_and_stands_down_when_back() {
    let lan = Lan::new(2);
    let pg = PgServer::start_on(&lan.host_ip());
    provision(&pg.url, CODE);
    let a = node(&lan, 0, "edge-a", &pg.url).await;
    let b = node(&lan, 1, "edge-b", &pg.url).await;

    let mut x = in_room(&lan, &a, "edge-a", 1).await;
    let mut y = in_room(&lan, &b, "edge-a", 1).await;
    assert!(
        b.log().contains("bridged to the room's owner"),
        "{}",
        b.log()
    );

    // a's cable is pulled: no store, no b, no callers.
    lan.cut(0);
    let mut z = in_room(&lan, &b, "edge-b", 2).await;
    // y's leg fell silent; y and z meet on b, which takes the room at
    // epoch 2 once a's lease has run out.
    let (heard_y, heard_z) = tokio::join!(
        y.talk_and_listen(150, |i| sine_frame(TONE_Y, 8000.0, i)),
        z.talk_and_listen(150, |i| sine_frame(TONE_Z, 8000.0, i)),
    );
    let (at_y, at_z) = (tail(&heard_y, 75), tail(&heard_z, 75));
    let (y_hears_z, z_hears_y) = (tone_power(&at_y, TONE_Z), tone_power(&at_z, TONE_Y));
    eprintln!("y hears z {y_hears_z:.0}, z hears y {z_hears_y:.0}");
    assert!(y_hears_z > 1e6 && z_hears_y > 1e6, "{}", b.log());
    let (leases, _) = poll(&b, "/v1/leases", Duration::from_secs(10), |l| {
        lease_of(l) == ("edge-b", 2, true)
    })
    .await;
    println!("b holds the room: {leases}");
    assert!(b.log().contains("fell silent"), "{}", b.log());
    assert!(a.log().contains("room lease lapsed"), "{}", a.log());

    // Back on the LAN: a finds epoch 2 and stands down; its caller's room
    // is b's now, as a's live view says.
    lan.mend(0);
    poll(&a, "/v1/calls", Duration::from_secs(10), |c| {
        c[0]["room_owner"] == "edge-b"
    })
    .await;
    assert!(
        a.log()
            .contains("room owned by another node while mixed here"),
        "{}",
        a.log()
    );
    assert_eq!(lease_of(&get(&a, "/v1/leases").await), ("edge-b", 2, true));
    // a's caller, mixed apart on a, moves to b over a leg: x and y hear
    // each other again.
    assert!(
        until_they_hear_each_other(&mut x, &mut y, [TONE_X, TONE_Y], Duration::from_secs(10)).await,
        "x and y apart\n{}\n{}",
        a.log(),
        b.log()
    );
    assert!(a.log().contains("moving the caller there"), "{}", a.log());
}
