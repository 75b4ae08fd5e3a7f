//! Overload through a real gateway: a call it cannot serve gets 503 with
//! `Retry-After` before anything is answered, and the attempt log keeps
//! every row — while its writer is behind, and across SIGTERM.

mod support;

use std::time::Duration;

use support::Gateway;
use support::caller::{Caller, Dial};

const CODE: &str = "8675309";
const SHED_ATTEMPT_LOG: &str = "dialgate_calls_shed_total{reason=\"attempt_log\"}";
const SHED_MAX_CALLS: &str = "dialgate_calls_shed_total{reason=\"max_calls\"}";
const REFUSED_MAX_CALLS: &str = "dialgate_calls_refused_total{cause=\"max_calls\"}";
const ROWS_WRITTEN: &str = "dialgate_attempt_rows_written_total";
const BACKLOG: &str = "dialgate_attempt_log_backlog";
const ADMITTED: &str = "dialgate_attempts_total{stage=\"access\",outcome=\"admitted\"}";

/// Dials, keys the right code by RFC 4733; the call stays up.
async fn admitted_call(gw: &Gateway) -> Caller {
    let mut caller = Caller::dial(&gw.sip, Dial::default()).await;
    assert_eq!(caller.invite_status, 200, "{}", gw.log());
    caller.key_rfc4733(&format!("{CODE}#")).await;
    caller
}

#[tokio::test]
async fn at_max_calls_a_new_call_gets_503_with_retry_after_before_any_answer() {
    let (dir, db) = Gateway::provisioned(CODE);
    let token = support::http::token(&db);
    let gw = Gateway::start(dir, db, &["--max-calls", "1"]).await;
    let mut first = Caller::dial(&gw.sip, Dial::default()).await;
    assert_eq!(first.invite_status, 200);
    // The first final answer the second caller hears is the 503: no 200 came before it.
    let second = Caller::dial(&gw.sip, Dial::default()).await;
    assert_eq!(second.invite_status, 503, "{}", gw.log());
    assert_eq!(second.retry_after.as_deref(), Some("5"));
    assert_eq!(gw.metric(&token, SHED_MAX_CALLS).await, 1.0);
    assert_eq!(gw.metric(&token, REFUSED_MAX_CALLS).await, 1.0);
    // Once the first call is over, its slot is free again.
    assert_eq!(first.hang_up().await, Some(200));
    gw.await_metric(
        &token,
        "dialgate_calls_in_progress",
        Duration::from_secs(10),
        |v| v == 0.0,
    )
    .await;
    let mut third = Caller::dial(&gw.sip, Dial::default()).await;
    assert_eq!(third.invite_status, 200, "{}", gw.log());
    assert_eq!(third.hang_up().await, Some(200));
}

#[tokio::test]
async fn a_full_attempt_writer_sheds_new_calls_with_503_before_answering_and_loses_no_row() {
    let (dir, db) = Gateway::provisioned(CODE);
    let token = support::http::token(&db);
    // A queue of one row, written every 10 s: one attempt fills it.
    let flags = ["--attempt-backlog", "1", "--attempt-batch-window", "10s"];
    let mut gw = Gateway::start(dir, db.clone(), &flags).await;
    let mut first = admitted_call(&gw).await;
    gw.await_metric(&token, BACKLOG, Duration::from_secs(10), |v| v == 1.0)
        .await;
    assert_eq!(gw.metric(&token, ROWS_WRITTEN).await, 0.0);
    let refused = Caller::dial(&gw.sip, Dial::default()).await;
    assert_eq!(refused.invite_status, 503, "{}", gw.log());
    assert_eq!(refused.retry_after.as_deref(), Some("5"));
    assert_eq!(gw.metric(&token, SHED_ATTEMPT_LOG).await, 1.0);
    // The writer commits its batch; calls are taken again.
    gw.await_metric(&token, ROWS_WRITTEN, Duration::from_secs(20), |v| v >= 1.0)
        .await;
    let mut second = admitted_call(&gw).await;
    gw.await_metric(&token, ADMITTED, Duration::from_secs(10), |v| v == 2.0)
        .await;
    assert_eq!(first.hang_up().await, Some(200));
    assert_eq!(second.hang_up().await, Some(200));
    assert!(gw.terminate().await.success());
    // Two calls keyed a code, two rows; the refused call was never an attempt.
    let rows = support::attempt_rows_after_stop(&db).await;
    let outcomes: Vec<&str> = rows.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, vec!["admitted", "admitted"], "{}", gw.log());
}

#[tokio::test]
async fn sigterm_writes_every_queued_attempt_row_before_the_gateway_exits() {
    let (dir, db) = Gateway::provisioned(CODE);
    let token = support::http::token(&db);
    // Rows would wait a minute for their batch: only the shutdown writes
    // them. No drain: SIGTERM hangs the calls up at once.
    let flags = ["--attempt-batch-window", "60s", "--drain-timeout", "0s"];
    let mut gw = Gateway::start(dir, db.clone(), &flags).await;
    let right = admitted_call(&gw).await;
    let mut wrong = Caller::dial(&gw.sip, Dial::default()).await;
    assert_eq!(wrong.invite_status, 200);
    wrong.key_rfc4733("1111#").await;
    gw.await_metric(&token, BACKLOG, Duration::from_secs(10), |v| v == 2.0)
        .await;
    let store = dialgate::store::Store::open(&db).await.expect("open store");
    let written = store.query_attempts(None, None, None).await.expect("rows");
    assert!(written.is_empty(), "nothing committed yet: {written:?}");
    drop(store);
    // SIGTERM with both calls still up: they are hung up, the queue written.
    let exit = gw.terminate().await;
    assert!(exit.success(), "{exit:?}\n{}", gw.log());
    assert!(gw.log().contains("attempt log flushed"), "{}", gw.log());
    drop((right, wrong));
    let Gateway { dir, .. } = gw;
    // Counted after a restart on the same database.
    let gw = Gateway::start(dir, db, &[]).await;
    let rows = gw.attempt_rows().await;
    let mut outcomes: Vec<&str> = rows.iter().map(|r| r.outcome.as_str()).collect();
    outcomes.sort_unstable();
    assert_eq!(outcomes, vec!["admitted", "wrong"], "{}", gw.log());
}
