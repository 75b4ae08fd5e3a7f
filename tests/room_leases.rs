//! Room ownership by lease (issue 18, item 3's first half, and item 4's
//! claim): the node whose caller opens a room claims its lease, renews it
//! while the room lives and releases it when the room empties; the live
//! view names each call's node and its room's owner; when the owner dies,
//! a node with callers in the room takes it over at the next epoch once
//! the lease runs out.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::postgres::PgServer;
use support::{Gateway, admitted_call, get, poll, provision, two_nodes};

const CODE: &str = "4321";

/// The one lease in `body`, if there is exactly one.
fn only(body: &Value) -> Option<&Value> {
    match body.as_array().map(Vec::as_slice) {
        Some([lease]) => Some(lease),
        _ => None,
    }
}

fn held_by(node: &str, epoch: i64) -> impl Fn(&Value) -> bool {
    move |body| {
        only(body).is_some_and(|l| l["node_id"] == node && l["epoch"] == epoch && l["held"] == true)
    }
}

/// Every call in `/v1/calls` is in a room that `owner` owns.
fn calls_owned_by(owner: &str) -> impl Fn(&Value) -> bool {
    move |body| {
        body.as_array().is_some_and(|c| {
            !c.is_empty()
                && c.iter()
                    .all(|call| call["room_id"].is_i64() && call["room_owner"] == owner)
        })
    }
}

#[tokio::test]
async fn a_room_is_leased_to_the_node_of_its_first_caller_and_released_when_it_empties() {
    let (dir, db) = Gateway::provisioned(CODE);
    let gw = Gateway::start(dir, db, &["--node-id", "edge-a"]).await;
    assert_eq!(get(&gw, "/v1/leases").await, serde_json::json!([]));

    let mut caller = admitted_call(&gw, CODE, 0.0).await;
    let (leases, _) = poll(
        &gw,
        "/v1/leases",
        Duration::from_secs(10),
        held_by("edge-a", 1),
    )
    .await;
    let lease = only(&leases).expect("one lease");
    assert_eq!(lease["sip_address"], gw.sip.as_str());
    // Renewed about every second while the room lives.
    let first_expiry = lease["expires_at"].as_str().expect("expires_at").to_owned();
    poll(&gw, "/v1/leases", Duration::from_secs(3), |b| {
        only(b).is_some_and(|l| {
            l["expires_at"].as_str() > Some(first_expiry.as_str()) && l["epoch"] == 1
        })
    })
    .await;
    // The live view: the call's node, and the room's owner.
    let (calls, _) = poll(
        &gw,
        "/v1/calls",
        Duration::from_secs(5),
        calls_owned_by("edge-a"),
    )
    .await;
    assert_eq!(calls[0]["node"], "edge-a", "{calls}");

    // The room empties: released at once (not left to run out, 3 s).
    assert_eq!(caller.hang_up().await, Some(200));
    let (_, took) = poll(&gw, "/v1/leases", Duration::from_secs(2), |b| {
        only(b).is_some_and(|l| l["held"] == false)
    })
    .await;
    println!("released {took:?} after the last caller's BYE");

    // Opened again: claimed again, at the next epoch.
    let _again = admitted_call(&gw, CODE, 1.0).await;
    poll(
        &gw,
        "/v1/leases",
        Duration::from_secs(10),
        held_by("edge-a", 2),
    )
    .await;
}

#[tokio::test]
async fn a_room_whose_owner_dies_is_taken_over_by_a_node_with_callers_in_it_at_the_next_epoch() {
    let pg = PgServer::start();
    provision(&pg.url, CODE);
    let (mut a, b) = two_nodes(&pg.url, &[]).await;

    let _on_a = admitted_call(&a, CODE, 0.0).await;
    poll(
        &a,
        "/v1/leases",
        Duration::from_secs(10),
        held_by("edge-a", 1),
    )
    .await;
    // A caller of the same room on b: b sees a own it.
    let _on_b = admitted_call(&b, CODE, 0.0).await;
    poll(
        &b,
        "/v1/calls",
        Duration::from_secs(10),
        calls_owned_by("edge-a"),
    )
    .await;
    assert!(held_by("edge-a", 1)(&get(&b, "/v1/leases").await));

    // a dies: once its lease runs out, b claims the room at epoch 2.
    a.kill_hard().await;
    let (_, took) = poll(
        &b,
        "/v1/leases",
        Duration::from_secs(10),
        held_by("edge-b", 2),
    )
    .await;
    println!("room taken over {took:?} after the owner's kill -9");
    poll(
        &b,
        "/v1/calls",
        Duration::from_secs(2),
        calls_owned_by("edge-b"),
    )
    .await;
}
