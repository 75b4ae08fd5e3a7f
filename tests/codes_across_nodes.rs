//! Codes across nodes (issue 18, item 5): two nodes on one PostgreSQL see
//! one truth. Failures keyed on one node lock the caller out on the other;
//! a personal code keyed on both nodes at once admits exactly one caller.

mod support;

use std::time::Duration;

use support::caller::{Caller, Dial};
use support::postgres::PgServer;
use support::{Gateway, info_call_refused, meeting_with_invitee, provision, two_nodes};

const CODE: &str = "8675309";

/// Every attempt's outcome in the shared store, oldest first.
async fn outcomes(gw: &Gateway) -> Vec<String> {
    gw.attempt_log().await.into_iter().map(|(_, o)| o).collect()
}

#[tokio::test]
async fn failures_on_one_node_lock_the_caller_out_on_the_other() {
    let pg = PgServer::start();
    provision(&pg.url, CODE);
    // Two failures lock out (the default is ten; the rule is the same).
    let (a, b) = two_nodes(&pg.url, &["--lockout-attempts", "2", "--max-attempts", "1"]).await;
    info_call_refused(&a, "1111#").await.assert_ok(&a);
    info_call_refused(&a, "2222#").await.assert_ok(&a);
    a.await_attempts_written().await;
    assert_eq!(outcomes(&a).await, ["wrong", "wrong"]);
    // The right code on the other node: refused, locked.
    info_call_refused(&b, &format!("{CODE}#"))
        .await
        .assert_ok(&b);
    b.await_attempts_written().await;
    assert_eq!(outcomes(&b).await, ["wrong", "wrong", "locked"]);
    // And on the first node again.
    info_call_refused(&a, &format!("{CODE}#"))
        .await
        .assert_ok(&a);
    assert_eq!(outcomes(&a).await, ["wrong", "wrong", "locked", "locked"]);
    assert!(b.log().contains("caller locked out"), "{}", b.log());
}

/// Dials `gw` as `who` and keys `keys`; the BYE's Reason if the gateway
/// hangs up within `limit`, `None` if the caller stays on.
async fn keyed_as(gw: &Gateway, who: &str, keys: &str, limit: Duration) -> Option<String> {
    let mut caller = Caller::dial(
        &gw.sip,
        Dial {
            from_user: who,
            ..Dial::default()
        },
    )
    .await;
    assert_eq!(caller.invite_status, 200, "{}", gw.log());
    caller.key_rfc4733(keys).await;
    let bye = caller.wait_bye(limit).await;
    let reason = bye.map(|b| b.header("Reason").unwrap_or_default().to_owned());
    if reason.is_none() {
        caller.hang_up().await;
    }
    reason
}

#[tokio::test]
async fn a_personal_code_keyed_on_two_nodes_at_once_admits_one_caller() {
    let pg = PgServer::start();
    provision(&pg.url, CODE);
    let (_, code) = meeting_with_invitee(&pg.url, None);
    let (a, b) = two_nodes(&pg.url, &["--max-attempts", "1"]).await;
    let keys = format!("{code}#");
    let limit = Duration::from_secs(15);
    let (on_a, on_b) = tokio::join!(
        keyed_as(&a, "ann", &keys, limit),
        keyed_as(&b, "bob", &keys, limit)
    );
    // One stays on (admitted), the other is hung up on as `used`.
    let mut reasons = [on_a.clone(), on_b.clone()];
    reasons.sort();
    assert!(
        reasons[0].is_none()
            && reasons[1]
                .as_deref()
                .is_some_and(|r| r.contains("text=\"used\"")),
        "a: {on_a:?}, b: {on_b:?}\n--- a ---\n{}\n--- b ---\n{}",
        a.log(),
        b.log()
    );
    a.await_attempts_written().await;
    let mut seen = outcomes(&b).await;
    seen.sort();
    assert_eq!(seen, ["admitted", "used"]);
}
