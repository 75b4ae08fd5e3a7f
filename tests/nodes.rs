//! Gateway nodes in the store (issue 18, items 1, 2 and 6): each `serve`
//! claims its `--node-id`'s row and writes a heartbeat every second; a
//! SQLite file serves one node (a second `serve` on it is refused, exit 2);
//! several nodes share one PostgreSQL, where a node id a live node holds is
//! refused and one a crashed node held is taken over once its heartbeat is
//! stale. SIGTERM drains a node: no new calls, those in progress go on.

mod support;

use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use support::caller::{Caller, Dial};
use support::postgres::PgServer;
use support::{
    BIN, Gateway, admitted_call, http, provision, repo, request, secret_file, two_nodes,
};

const CODE: &str = "4321";

/// `serve` on `db` as `node_id`, to be refused: its output once it exits
/// (within 30 s; the PostgreSQL refusal first waits out the node TTL).
async fn serve_refused(db: &str, node_id: &str) -> Output {
    let run = tokio::process::Command::new(BIN)
        .args([
            "serve",
            "--sip-listen",
            "127.0.0.1:0",
            "--api-listen",
            "127.0.0.1:0",
        ])
        .args(["--database", db, "--node-id", node_id, "--prompts"])
        .arg(repo().join("prompts"))
        .arg("--secret-file")
        .arg(secret_file(db))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the refused serve exits within 30 s")
        .expect("run serve")
}

async fn nodes(gw: &Gateway) -> Vec<Value> {
    let (status, body) =
        http::call(&gw.api, "GET", "/v1/nodes", Some(gw.token().await), None).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().expect("a list of nodes").clone()
}

fn node<'a>(list: &'a [Value], id: &str) -> &'a Value {
    list.iter()
        .find(|n| n["node_id"] == id)
        .unwrap_or_else(|| panic!("node {id} in {list:?}"))
}

/// The stored row of `id`, read from the database (after its node stopped).
async fn stored(db: &str, id: &str) -> dialgate::store::NodeRow {
    let store = dialgate::store::Store::open(db).await.expect("open store");
    store.node(id).await.expect("read node").expect("node row")
}

/// Waits (at most 5 s) until `id`'s heartbeat is newer than `than`.
async fn heartbeat_after(gw: &Gateway, id: &str, than: &str) -> String {
    for _ in 0..50 {
        let list = nodes(gw).await;
        let at = node(&list, id)["heartbeat_at"]
            .as_str()
            .expect("heartbeat_at")
            .to_owned();
        if at.as_str() > than {
            return at;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no heartbeat from {id} after {than} within 5 s");
}

#[tokio::test]
async fn a_second_serve_on_one_sqlite_file_is_refused_and_the_first_goes_on() {
    let (dir, db) = Gateway::provisioned_sqlite(CODE);
    let mut gw = Gateway::start(dir, db.clone(), &["--node-id", "edge-a"]).await;
    let list = nodes(&gw).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let a = node(&list, "edge-a");
    assert_eq!(
        (a["state"].as_str(), a["alive"].as_bool()),
        (Some("serving"), Some(true))
    );
    assert_eq!(a["sip_address"], gw.sip.as_str());
    assert_eq!(a["api_address"], gw.api.as_str());

    let out = serve_refused(&db, "edge-b").await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("is already served by another `dialgate serve`"),
        "{err}"
    );
    let pid = gw.pid().expect("pid");
    assert!(err.contains(&format!("(pid {pid}, node edge-a)")), "{err}");
    assert!(err.contains("PostgreSQL"), "{err}");

    // The first node goes on, alone in the table, its heartbeat renewed.
    let before = node(&nodes(&gw).await, "edge-a")["heartbeat_at"]
        .as_str()
        .unwrap()
        .to_owned();
    heartbeat_after(&gw, "edge-a", &before).await;
    assert_eq!(nodes(&gw).await.len(), 1);

    // Stopped, it says so; the file is free for the next serve.
    assert!(gw.terminate().await.success());
    let row = stored(&db, "edge-a").await;
    assert_eq!(row.state, "stopped");
    assert!(!row.alive(chrono::Utc::now()));
    let again = Gateway::start(
        tempfile::tempdir().unwrap(),
        db.clone(),
        &["--node-id", "edge-b"],
    )
    .await;
    let list = nodes(&again).await;
    assert_eq!(node(&list, "edge-b")["alive"], true);
    assert_eq!(node(&list, "edge-a")["alive"], false);
}

#[tokio::test]
async fn nodes_share_postgres_and_a_node_id_is_held_while_its_node_lives() {
    let pg = PgServer::start();
    provision(&pg.url, CODE);
    let (mut a, mut b) = two_nodes(&pg.url, &[]).await;
    for gw in [&a, &b] {
        let list = nodes(gw).await;
        assert_eq!(list.len(), 2, "{list:?}");
        assert_eq!(node(&list, "edge-a")["sip_address"], a.sip.as_str());
        assert_eq!(node(&list, "edge-b")["sip_address"], b.sip.as_str());
        assert!(list.iter().all(|n| n["alive"] == true), "{list:?}");
    }

    // A second process under a live node's id waits out the TTL, then is refused.
    let out = serve_refused(&pg.url, "edge-a").await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("node id \"edge-a\" is in use by a live node"),
        "{err}"
    );
    assert!(err.contains(&a.sip), "{err}");
    assert_eq!(node(&nodes(&b).await, "edge-a")["alive"], true);

    // Stopped cleanly: its id is free at once.
    assert!(a.terminate().await.success());
    assert_eq!(node(&nodes(&b).await, "edge-a")["state"], "stopped");
    let a2 = Gateway::start(
        tempfile::tempdir().unwrap(),
        pg.url.clone(),
        &["--node-id", "edge-a"],
    )
    .await;
    assert_eq!(
        node(&nodes(&b).await, "edge-a")["sip_address"],
        a2.sip.as_str()
    );

    // Killed: a restart under its id takes the row once the heartbeat is
    // stale (it waits for that if it comes sooner than the TTL).
    let b_pid = b.pid().expect("pid");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &b_pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let _ = b.terminate().await;
    let b2 = Gateway::start(
        tempfile::tempdir().unwrap(),
        pg.url.clone(),
        &["--node-id", "edge-b"],
    )
    .await;
    let list = nodes(&a2).await;
    assert_eq!(node(&list, "edge-b")["sip_address"], b2.sip.as_str());
    assert!(list.iter().all(|n| n["alive"] == true), "{list:?}");
}

/// An OPTIONS's answer: its status line and Retry-After.
async fn options(gw: &Gateway) -> (String, Option<String>) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let local = sock.local_addr().expect("local").to_string();
    let msg = request("OPTIONS", "drain-probe", &local, "UDP");
    sock.send_to(msg.as_bytes(), &gw.sip).await.expect("send");
    let mut buf = vec![0u8; 65536];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("an answer within 5 s")
        .expect("recv");
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let retry = text
        .lines()
        .find_map(|l| l.strip_prefix("Retry-After: "))
        .map(str::to_owned);
    (status, retry)
}

/// Node `edge-a`, never shedding for load (a busy test machine): a 503
/// from it is the drain's.
const DRAIN_FLAGS: &[&str] = &[
    "--node-id",
    "edge-a",
    "--drain-timeout",
    "60s",
    "--max-loop-lag",
    "0s",
    "--max-store-latency",
    "0s",
];

/// After a drain was asked of `gw` (node `edge-a` on `db`) with `caller`
/// in a call: the row says `draining`, OPTIONS and a new INVITE get 503
/// with `Retry-After: 5`, the call goes on with no BYE and the process
/// with it; once the caller hangs up the node exits by itself, `stopped`.
async fn drains_then_exits(gw: &mut Gateway, caller: &mut Caller, db: &str) {
    // The row says so at the next heartbeat (every second).
    for _ in 0..50 {
        if node(&nodes(gw).await, "edge-a")["state"] == "draining" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let list = nodes(gw).await;
    assert_eq!(node(&list, "edge-a")["state"], "draining", "{list:?}");
    assert_eq!(node(&list, "edge-a")["alive"], true);
    // A dispatcher's probe and a new caller are turned away before answer.
    assert_eq!(
        options(gw).await,
        (
            "SIP/2.0 503 Service Unavailable".to_owned(),
            Some("5".to_owned())
        ),
        "{}",
        gw.log()
    );
    let refused = Caller::dial(&gw.sip, Dial::default()).await;
    assert_eq!(refused.invite_status, 503, "{}", gw.log());
    assert_eq!(refused.retry_after.as_deref(), Some("5"));
    // The call in progress goes on, and with it the process.
    assert!(
        caller.wait_bye(Duration::from_secs(1)).await.is_none(),
        "no BYE while draining\n{}",
        gw.log()
    );
    assert!(
        gw.exited(Duration::ZERO).await.is_none(),
        "still serving its call"
    );
    // Its caller hangs up: the last call ended, the node exits by itself.
    assert_eq!(caller.hang_up().await, Some(200));
    let status = gw
        .exited(Duration::from_secs(10))
        .await
        .expect("exits once its last call ended");
    assert!(status.success(), "{status:?}\n{}", gw.log());
    assert_eq!(stored(db, "edge-a").await.state, "stopped", "{}", gw.log());
}

#[tokio::test]
async fn sigterm_drains_the_node_calls_in_progress_go_on_new_ones_get_503() {
    let (dir, db) = Gateway::provisioned(CODE);
    let mut gw = Gateway::start(dir, db.clone(), DRAIN_FLAGS).await;
    assert_eq!(options(&gw).await.0, "SIP/2.0 200 OK", "{}", gw.log());
    let mut caller = admitted_call(&gw, CODE, 0.0).await;

    gw.signal("-TERM");
    drains_then_exits(&mut gw, &mut caller, &db).await;
    let rows = support::attempt_rows_after_stop(&db).await;
    assert_eq!(
        rows.len(),
        1,
        "the drained call's attempt is written: {rows:?}"
    );
}

#[tokio::test]
async fn a_drain_that_outlasts_its_timeout_hangs_up_the_calls_left() {
    let (dir, db) = Gateway::provisioned(CODE);
    let mut gw = Gateway::start(dir, db, &["--drain-timeout", "1s"]).await;
    let caller = admitted_call(&gw, CODE, 0.0).await;
    gw.signal("-TERM");
    let bye = caller
        .wait_bye(Duration::from_secs(10))
        .await
        .expect("BYE at the drain timeout");
    assert!(
        bye.header("Reason")
            .is_some_and(|r| r.contains("cause=503")),
        "{bye:?}"
    );
    let status = gw
        .exited(Duration::from_secs(10))
        .await
        .expect("exits after the BYEs");
    assert!(status.success(), "{status:?}\n{}", gw.log());
}

#[tokio::test]
async fn post_drain_drains_the_node_as_sigterm_does_and_asking_again_changes_nothing() {
    let (dir, db) = Gateway::provisioned(CODE);
    let mut gw = Gateway::start(dir, db.clone(), DRAIN_FLAGS).await;
    let mut caller = admitted_call(&gw, CODE, 0.0).await;
    for _ in 0..2 {
        let (status, body) =
            http::call(&gw.api, "POST", "/v1/drain", Some(gw.token().await), None).await;
        assert_eq!(
            (status, &body["draining"]),
            (202, &Value::Bool(true)),
            "{body}"
        );
    }
    // The second request did not cut the call (checked in the drain).
    drains_then_exits(&mut gw, &mut caller, &db).await;
}
