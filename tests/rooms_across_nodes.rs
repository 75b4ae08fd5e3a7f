//! One room, callers on two nodes (issue 18, item 3's second half): the
//! node that collects a caller's code bridges the caller to the node that
//! owns the room over a SIP leg between them, so everyone in the room hears
//! everyone else, whichever node answered them; when the owner dies, the
//! bridged callers come together on their own node.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::caller::{Caller, Dial, sine_frame, tail, tone_power, until_they_hear_each_other};
use support::postgres::PgServer;
use support::{Gateway, caller_in_room, get, http, poll, provision, two_nodes};

const CODE: &str = "4321";
const TONE_A: f64 = 697.0;
const TONE_B: f64 = 1477.0;
/// The tone a caller hears while it moves to the room's new owner
/// (`dialgate::media::prompts::MOVING_TONE_HZ`).
const MOVING_HZ: f64 = dialgate::media::prompts::MOVING_TONE_HZ;

/// A caller admitted to the room on `gw`, once `gw`'s live view shows
/// `callers` of its own in the room that `owner` mixes.
async fn in_room_owned_by(gw: &Gateway, owner: &str, callers: usize) -> Caller {
    caller_in_room(gw, Dial::default(), CODE, owner, callers).await
}

fn in_room(calls: &Value) -> usize {
    calls.as_array().map_or(0, |c| {
        c.iter().filter(|call| call["state"] == "in_room").count()
    })
}

/// `x` sends one tone and `y` another for `frames` frames; what each heard
/// of the other's tone and of its own, over the last 1.5 s.
async fn exchange(x: &mut Caller, y: &mut Caller, frames: usize) -> [f64; 4] {
    let (heard_x, heard_y) = tokio::join!(
        x.talk_and_listen(frames, |i| sine_frame(TONE_A, 8000.0, i)),
        y.talk_and_listen(frames, |i| sine_frame(TONE_B, 8000.0, i)),
    );
    let (at_x, at_y) = (tail(&heard_x, 75), tail(&heard_y, 75));
    assert!(
        at_x.len() >= 60 * 160 && at_y.len() >= 60 * 160,
        "both receive audio: {} and {} samples",
        at_x.len(),
        at_y.len()
    );
    [
        tone_power(&at_x, TONE_B),
        tone_power(&at_x, TONE_A),
        tone_power(&at_y, TONE_A),
        tone_power(&at_y, TONE_B),
    ]
}

fn assert_hear_each_other([x_hears_y, x_hears_x, y_hears_x, y_hears_y]: [f64; 4]) {
    eprintln!(
        "x hears y {x_hears_y:.0}, itself {x_hears_x:.0}; y hears x {y_hears_x:.0}, itself {y_hears_y:.0}"
    );
    // A full-scale sine of amplitude 8000 gives power ≈ (8000/2)² = 1.6e7.
    assert!(x_hears_y > 1e6, "x hears y's tone");
    assert!(y_hears_x > 1e6, "y hears x's tone");
    assert!(x_hears_x < x_hears_y / 1000.0, "x does not hear itself");
    assert!(y_hears_y < y_hears_x / 1000.0, "y does not hear itself");
}

#[tokio::test]
async fn callers_of_one_room_on_two_nodes_hear_each_other_through_the_owner() {
    let pg = PgServer::start();
    provision(&pg.url, CODE);
    let (a, b) = two_nodes(&pg.url, &[]).await;

    // x opens the room on a, which takes its lease; y keys the code on b,
    // which bridges y to a.
    let mut x = in_room_owned_by(&a, "edge-a", 1).await;
    let mut y = in_room_owned_by(&b, "edge-a", 1).await;
    assert!(
        b.log().contains("bridged to the room's owner"),
        "{}",
        b.log()
    );
    // a mixes both: x, and y's leg.
    let (calls_a, _) = poll(&a, "/v1/calls", Duration::from_secs(5), |c| in_room(c) == 2).await;
    assert!(
        calls_a
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["room_owner"] == "edge-a"),
        "{calls_a}"
    );
    // b's live view: y on b, in the room a owns; b mixes nothing itself.
    let calls_b = get(&b, "/v1/calls").await;
    assert_eq!(calls_b[0]["node"], "edge-b", "{calls_b}");
    assert_eq!(calls_b[0]["room_owner"], "edge-a", "{calls_b}");
    assert_eq!(get(&b, "/v1/leases").await[0]["node_id"], "edge-a");

    // 6 s of tones: the first seconds overlap the "joining" prompts.
    assert_hear_each_other(exchange(&mut x, &mut y, 300).await);
    // y mutes itself with *6 by SIP INFO on b: a, which mixes y's leg
    // (the call with no number of its own there), mutes it.
    assert_eq!(y.info_key('*').await, Some(200));
    assert_eq!(y.info_key('6').await, Some(200));
    poll(&a, "/v1/calls", Duration::from_secs(5), |c| {
        c.as_array().is_some_and(|c| {
            c.iter()
                .any(|call| call["number"] == "" && call["muted"] == true)
        })
    })
    .await;

    // One attempt per caller, x's by a and y's by b: the leg is no
    // second attempt (written by now: 6 s after the last key).
    let rows = a.attempt_rows().await;
    assert_eq!(rows.len(), 2, "{rows:?}");

    // y hangs up on b: its leg on a ends with it.
    assert_eq!(y.hang_up().await, Some(200));
    poll(&a, "/v1/calls", Duration::from_secs(5), |c| in_room(c) == 1).await;

    // a drains: it takes no new calls, but still legs into the room it
    // mixes, so a caller who comes now through b joins the same room.
    let (status, _) = http::call(&a.api, "POST", "/v1/drain", Some(a.token().await), None).await;
    assert_eq!(status, 202);
    let mut z = in_room_owned_by(&b, "edge-a", 1).await;
    poll(&a, "/v1/calls", Duration::from_secs(5), |c| in_room(c) == 2).await;
    assert_eq!(z.hang_up().await, Some(200));
    assert_eq!(x.hang_up().await, Some(200));
}

#[tokio::test]
async fn first_callers_on_two_nodes_at_once_meet_in_one_room() {
    let pg = PgServer::start();
    provision(&pg.url, CODE);
    let (a, b) = two_nodes(&pg.url, &[]).await;
    let (mut x, mut y) = tokio::join!(
        Caller::dial(&a.sip, Dial::default()),
        Caller::dial(&b.sip, Dial::default())
    );
    let code = format!("{CODE}#");
    tokio::join!(x.key_rfc4733(&code), y.key_rfc4733(&code));
    // Each node shows its caller in the room (the owner also the leg).
    let owned = |c: &Value| {
        c.as_array().is_some_and(|c| {
            !c.is_empty()
                && c.iter()
                    .all(|c| c["state"] == "in_room" && c["room_owner"].is_string())
        })
    };
    let ((on_a, _), (on_b, _)) = tokio::join!(
        poll(&a, "/v1/calls", Duration::from_secs(10), owned),
        poll(&b, "/v1/calls", Duration::from_secs(10), owned),
    );
    let bridged = [&a, &b]
        .iter()
        .filter(|gw| gw.log().contains("bridged to the room's owner"))
        .count();
    assert_eq!(
        bridged, 1,
        "one node owns the room, the other bridges:\n{on_a}\n{on_b}"
    );
    assert_hear_each_other(exchange(&mut x, &mut y, 300).await);
}

#[tokio::test]
async fn an_owner_that_stalls_gets_its_bridged_callers_back_instead_of_losing_them() {
    let pg = PgServer::start();
    provision(&pg.url, CODE);
    let (a, b) = two_nodes(&pg.url, &[]).await;
    let mut x = in_room_owned_by(&a, "edge-a", 1).await;
    let mut y = in_room_owned_by(&b, "edge-a", 1).await;

    // a stops for 1.4 s (a long pause of the process): b hears its leg
    // fall silent and asks a for a new one, which a answers once it runs.
    a.signal("-STOP");
    tokio::time::sleep(Duration::from_millis(1400)).await;
    a.signal("-CONT");
    let rebridged = std::time::Instant::now() + Duration::from_secs(5);
    while b.log().matches("bridged to the room's owner").count() < 2 {
        assert!(std::time::Instant::now() < rebridged, "{}", b.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(b.log().contains("fell silent"), "{}", b.log());
    assert!(!b.log().contains("joining here"), "{}", b.log());
    assert_eq!(b.log().matches("bridged to the room's owner").count(), 2);
    assert_hear_each_other(exchange(&mut x, &mut y, 150).await);
}

#[tokio::test]
async fn callers_left_apart_by_a_leg_the_owner_did_not_answer_are_moved_together_again() {
    let pg = PgServer::start();
    provision(&pg.url, CODE);
    let (a, b) = two_nodes(&pg.url, &[]).await;
    let mut x = in_room_owned_by(&a, "edge-a", 1).await;
    let mut y = in_room_owned_by(&b, "edge-a", 1).await;

    // a stops long enough for b's leg to fall silent (1 s) and for a not
    // to answer the new one (1.5 s): y joins the room on b, apart from x.
    a.signal("-STOP");
    let apart = std::time::Instant::now() + Duration::from_secs(8);
    while !b.log().contains("did not answer the leg: joining here") {
        assert!(std::time::Instant::now() < apart, "{}", b.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.signal("-CONT");
    // Whichever node holds the lease now (a, if b's claim came before a's
    // lease ran out; b, if after), the other moves its caller there.
    assert!(
        until_they_hear_each_other(&mut x, &mut y, [TONE_A, TONE_B], Duration::from_secs(10)).await,
        "x and y apart\n{}\n{}",
        a.log(),
        b.log()
    );
    let moved = |gw: &Gateway| gw.log().contains("moving the caller there");
    assert!(moved(&a) || moved(&b), "{}\n{}", a.log(), b.log());
    assert_hear_each_other(exchange(&mut x, &mut y, 100).await);
}

#[tokio::test]
async fn an_owner_whose_drain_runs_out_leaves_the_room_to_the_callers_of_other_nodes() {
    let pg = PgServer::start();
    provision(&pg.url, CODE);
    let (mut a, b) = two_nodes(&pg.url, &["--drain-timeout", "1s"]).await;
    let _x = in_room_owned_by(&a, "edge-a", 1).await;
    let mut y = in_room_owned_by(&b, "edge-a", 1).await;

    // a drains; x and y's leg are still up when its drain runs out, so it
    // hangs them up (BYE, "shutting down") and exits.
    a.terminate().await;
    // y's call goes on: it joins the room on b, which takes the room, and
    // a caller who comes to b is in the room with y.
    let mut z = in_room_owned_by(&b, "edge-b", 2).await;
    assert_hear_each_other(exchange(&mut y, &mut z, 150).await);
    assert!(
        b.log().contains("the room's owner is stopping"),
        "{}",
        b.log()
    );
    assert!(
        !b.log().contains("the room's owner ended the leg"),
        "{}",
        b.log()
    );
}

#[tokio::test]
async fn when_the_owner_dies_the_callers_it_mixed_for_another_node_hear_each_other_there() {
    let pg = PgServer::start();
    provision(&pg.url, CODE);
    let (mut a, b) = two_nodes(&pg.url, &[]).await;
    let _x = in_room_owned_by(&a, "edge-a", 1).await;
    let mut y = in_room_owned_by(&b, "edge-a", 1).await;
    let mut z = in_room_owned_by(&b, "edge-a", 2).await;
    assert_eq!(b.log().matches("bridged to the room's owner").count(), 2);

    let at_kill = tokio::time::Instant::now();
    a.kill_hard().await;

    // y and z talk on; once b notices the silence, they meet on b.
    let (heard_y, heard_z) = tokio::join!(
        y.talk_and_listen_timed(400, |i| sine_frame(TONE_A, 8000.0, i)),
        z.talk_and_listen_timed(400, |i| sine_frame(TONE_B, 8000.0, i)),
    );
    // The first 20 ms frame at which y hears z's tone.
    let heard_at = heard_y
        .iter()
        .find(|(_, pcm, _)| tone_power(pcm, TONE_B) > 1e6)
        .map(|(_, _, at)| at.duration_since(at_kill))
        .unwrap_or_else(|| panic!("y never heard z again\n{}", b.log()));
    println!("y hears z {heard_at:?} after the owner's kill -9");
    assert!(heard_at <= Duration::from_secs(5), "{heard_at:?}");
    // Between the silence (1 s) and the room, y heard the moving tone's
    // pips: 100 ms, 100 ms apart, once a second. (Frames read in the first
    // half second may have been sent before the kill.)
    let pips: Vec<Duration> = heard_y
        .iter()
        .map(|(_, pcm, at)| (tone_power(pcm, MOVING_HZ), at.duration_since(at_kill)))
        .filter(|(power, at)| *power > 1e6 && *at > Duration::from_millis(500) && *at < heard_at)
        .map(|(_, at)| at)
        .collect();
    println!("y hears the moving tone at {pips:?}");
    assert!(
        pips.len() >= 8,
        "y hears the moving tone while it moves: {pips:?}"
    );
    let at_y: Vec<_> = heard_y.into_iter().map(|(h, p, _)| (h, p)).collect();
    let at_z: Vec<_> = heard_z.into_iter().map(|(h, p, _)| (h, p)).collect();
    let (at_y, at_z) = (tail(&at_y, 75), tail(&at_z, 75));
    assert!(tone_power(&at_z, TONE_A) > 1e6, "z hears y on b");
    assert!(tone_power(&at_y, TONE_A) < tone_power(&at_y, TONE_B) / 1000.0);
    assert!(
        tone_power(&at_y, MOVING_HZ) < tone_power(&at_y, TONE_B) / 1000.0,
        "the moving tone stops once y is in the room"
    );
    // b holds the room now, at the next epoch.
    poll(&b, "/v1/leases", Duration::from_secs(10), |l| {
        l[0]["node_id"] == "edge-b" && l[0]["epoch"] == 2 && l[0]["held"] == true
    })
    .await;
}

#[tokio::test]
async fn with_the_store_down_for_every_node_the_room_goes_on_and_new_calls_get_503() {
    let pg = PgServer::start();
    provision(&pg.url, CODE);
    let (a, b) = two_nodes(&pg.url, &[]).await;
    let mut x = in_room_owned_by(&a, "edge-a", 1).await;
    let mut y = in_room_owned_by(&b, "edge-a", 1).await;

    pg.stop();
    // a cannot renew its lease: past it (3 s) it keeps mixing, and the leg
    // from b needs no store.
    assert_hear_each_other(exchange(&mut x, &mut y, 250).await);
    assert!(
        a.log().contains("room lease lapsed"),
        "a saw its lease lapse: {}",
        a.log()
    );
    // A new caller cannot be routed: refused before answering, told when
    // to try again.
    for gw in [&a, &b] {
        let z = Caller::dial(&gw.sip, Dial::default()).await;
        assert_eq!(z.invite_status, 503, "{}", gw.log());
        assert!(z.retry_after.is_some());
    }
}

/// Whether the call `id` of `calls` is muted.
fn muted(calls: &Value, id: &Value) -> bool {
    calls
        .as_array()
        .and_then(|c| c.iter().find(|call| call["id"] == *id))
        .is_some_and(|call| call["muted"] == true)
}

/// How many legs from another node (calls with no number of their own)
/// `calls` shows muted.
fn legs_muted(calls: &Value) -> usize {
    calls.as_array().map_or(0, |c| {
        c.iter()
            .filter(|call| call["number"] == "" && call["muted"] == true)
            .count()
    })
}

#[tokio::test]
async fn when_the_owner_dies_its_callers_on_another_node_stay_muted_and_their_room_locked() {
    let pg = PgServer::start();
    provision(&pg.url, CODE);
    let (mut a, b) = two_nodes(&pg.url, &[]).await;
    let _x = in_room_owned_by(&a, "edge-a", 1).await;
    let mut y = in_room_owned_by(&b, "edge-a", 1).await;
    let mut z = in_room_owned_by(&b, "edge-a", 2).await;
    let calls_b = get(&b, "/v1/calls").await;
    let (y_id, z_id) = (calls_b[0]["id"].clone(), calls_b[1]["id"].clone());
    let room = calls_b[0]["room_id"].as_i64().expect("room id");

    // y mutes itself with *6, which a's keypad reads; b shows what a
    // reports of y.
    assert_eq!(y.info_key('*').await, Some(200));
    assert_eq!(y.info_key('6').await, Some(200));
    poll(&b, "/v1/calls", Duration::from_secs(5), |c| muted(c, &y_id)).await;
    assert!(!muted(&get(&b, "/v1/calls").await, &z_id));

    // b's operator mutes z, then unmutes it: a does it to z's leg.
    let token = b.token().await.to_owned();
    let path = format!("/v1/calls/{z_id}/mute");
    let (status, body) = http::call(&b.api, "POST", &path, Some(&token), None).await;
    assert_eq!(
        (status, &body["muted"]),
        (200, &Value::Bool(true)),
        "{body}"
    );
    poll(&a, "/v1/calls", Duration::from_secs(5), |c| {
        legs_muted(c) == 2
    })
    .await;
    let path = format!("/v1/calls/{z_id}/unmute");
    let (status, _) = http::call(&b.api, "POST", &path, Some(&token), None).await;
    assert_eq!(status, 200);
    poll(&a, "/v1/calls", Duration::from_secs(5), |c| {
        legs_muted(c) == 1
    })
    .await;
    poll(&b, "/v1/calls", Duration::from_secs(5), |c| {
        !muted(c, &z_id)
    })
    .await;

    // b's operator locks the room, which a mixes: a locks it and reports
    // the lock to both of b's legs.
    let path = format!("/v1/rooms/{room}/lock");
    let (status, body) = http::call(&b.api, "POST", &path, Some(&token), None).await;
    assert_eq!(status, 200, "{body}");
    let reported_locked = |log: &str| {
        log.lines()
            .filter(|l| l.contains("reported the caller's standing") && l.contains("locked=true"))
            .count()
    };
    let started = std::time::Instant::now();
    while reported_locked(&b.log()) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a reports the lock to b\n{}\n--- a ---\n{}",
            b.log(),
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    a.kill_hard().await;

    // y and z meet on b. y is still muted there: z hears the room (the
    // moving tone, then the room's chimes) but never y; y hears z.
    let (heard_y, heard_z) = tokio::join!(
        y.talk_and_listen(400, |i| sine_frame(TONE_A, 8000.0, i)),
        z.talk_and_listen(400, |i| sine_frame(TONE_B, 8000.0, i)),
    );
    let (at_y, at_z) = (tail(&heard_y, 75), tail(&heard_z, 75));
    let (y_hears_z, z_hears_y) = (tone_power(&at_y, TONE_B), tone_power(&at_z, TONE_A));
    println!("after the move: y hears z {y_hears_z:.0}, z hears y {z_hears_y:.0}");
    assert!(y_hears_z > 1e6, "y hears z on b\n{}", b.log());
    assert!(
        z_hears_y < y_hears_z / 1000.0,
        "y is still muted: z must not hear it"
    );
    let (calls_b, _) = poll(&b, "/v1/calls", Duration::from_secs(5), |c| {
        c.as_array().is_some_and(|c| {
            c.iter()
                .filter(|call| call["room_owner"] == "edge-b" && call["state"] == "in_room")
                .count()
                == 2
        })
    })
    .await;
    assert!(
        muted(&calls_b, &y_id) && !muted(&calls_b, &z_id),
        "{calls_b}"
    );

    // The room stays locked on b: a new participant is turned away.
    let mut w = Caller::dial(&b.sip, Dial::default()).await;
    assert_eq!(w.invite_status, 200);
    w.key_rfc4733(&format!("{CODE}#")).await;
    let bye = w
        .wait_bye(Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("the locked room turns w away\n{}", b.log()));
    let reason = bye.header("Reason").unwrap_or_default().to_owned();
    assert!(reason.contains("conference locked"), "{reason}");
}

#[tokio::test]
async fn a_draining_owner_hands_its_room_on_and_exits_when_its_own_caller_leaves() {
    let pg = PgServer::start();
    provision(&pg.url, CODE);
    let (mut a, b) = two_nodes(&pg.url, &[]).await;
    let mut x = in_room_owned_by(&a, "edge-a", 1).await;
    let mut y = in_room_owned_by(&b, "edge-a", 1).await;

    // a drains (for up to a minute): it hands the room on to b, whose
    // caller is in it, instead of keeping b's leg until the drain runs out.
    let (status, _) = http::call(&a.api, "POST", "/v1/drain", Some(a.token().await), None).await;
    assert_eq!(status, 202);
    let started = std::time::Instant::now();
    poll(&b, "/v1/leases", Duration::from_secs(10), |l| {
        l[0]["node_id"] == "edge-b" && l[0]["epoch"] == 2 && l[0]["held"] == true
    })
    .await;
    // b mixes the room: y there, and x, still on a, over a leg from a.
    let (_, took) = poll(&b, "/v1/calls", Duration::from_secs(10), |c| {
        c.as_array().is_some_and(|c| {
            c.len() == 2
                && c.iter()
                    .all(|call| call["state"] == "in_room" && call["room_owner"] == "edge-b")
        })
    })
    .await;
    poll(&a, "/v1/calls", Duration::from_secs(5), |c| {
        c.as_array()
            .is_some_and(|c| c.len() == 1 && c[0]["room_owner"] == "edge-b")
    })
    .await;
    println!(
        "room handed on and both callers in it on b {:?} after the drain began",
        started.elapsed().max(took)
    );
    assert!(
        until_they_hear_each_other(&mut x, &mut y, [TONE_A, TONE_B], Duration::from_secs(10)).await,
        "x (on a) and y hear each other through b\n{}",
        b.log()
    );
    assert!(a.log().contains("handing the room on"), "{}", a.log());

    // a waits for its own caller only: once x hangs up, it exits.
    assert_eq!(x.hang_up().await, Some(200));
    let status = a
        .exited(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("a exits once its last caller left\n{}", a.log()));
    assert!(status.success(), "{status:?}");
    // y stays, alone in the room b owns.
    let calls_b = get(&b, "/v1/calls").await;
    assert_eq!(in_room(&calls_b), 1, "{calls_b}");
    assert_eq!(y.hang_up().await, Some(200));
}
