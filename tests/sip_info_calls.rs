//! The call path over SIP with keypad digits as SIP INFO, against a real
//! gateway on loopback, driven by SIPp.

mod support;

use std::time::Duration;

use support::{Gateway, info_call, info_call_refused, scenario, sipp};

const CODE: &str = "047110815";

async fn attempts(gw: &Gateway) -> Vec<(String, String)> {
    gw.attempt_log().await
}

#[tokio::test]
async fn right_code_by_sip_info_stays_in_the_room_until_the_callers_bye() {
    let (dir, db) = Gateway::provisioned(CODE);
    let gw = Gateway::start(dir, db, &[]).await;
    let code = format!("{CODE}#");
    let run = info_call(&gw, &code, "3000").await;
    run.assert_ok(&gw);
    let log = gw.log();
    assert!(log.contains("joined room"), "{log}");
    assert!(log.contains("outcome=\"admitted\""), "{log}");
    assert!(
        !log.contains(CODE),
        "the access code must never reach the log"
    );
}

#[tokio::test]
async fn wrong_code_three_times_by_sip_info_gets_bye_with_reason() {
    let (dir, db) = Gateway::provisioned(CODE);
    let gw = Gateway::start(dir, db, &[]).await;
    let run = info_call_refused(&gw, "1111#2222#3333#").await;
    run.assert_ok(&gw);
    let log = gw.log();
    assert!(!log.contains("joined room"), "{log}");
    let wrong = ("access".to_owned(), "wrong".to_owned());
    assert_eq!(
        attempts(&gw).await,
        vec![wrong.clone(), wrong.clone(), wrong]
    );
}

#[tokio::test]
async fn unknown_number_gets_404_counted_by_its_cause() {
    let (dir, db) = Gateway::provisioned(CODE);
    let token = support::http::token(&db);
    let gw = Gateway::start(dir, db, &[]).await;
    let run = sipp(
        &gw.sip,
        &scenario("uac_unknown_number.xml"),
        "+15550999",
        &[],
        Duration::from_secs(20),
    )
    .await;
    run.assert_ok(&gw);
    let refused = |cause: &str| format!("dialgate_calls_refused_total{{cause=\"{cause}\"}}");
    assert_eq!(gw.metric(&token, &refused("unknown_number")).await, 1.0);
    // Refused before answering: not a shed call, not a call that ended.
    let page = gw.metrics(&token).await;
    assert!(!page.contains("dialgate_calls_shed_total"), "{page}");
    assert!(!page.contains("dialgate_calls_total{"), "{page}");
}

#[tokio::test]
async fn cancel_before_answer_gets_487() {
    let (dir, db) = Gateway::provisioned(CODE);
    let gw = Gateway::start(dir, db, &["--answer-delay", "3s"]).await;
    let run = sipp(
        &gw.sip,
        &scenario("uac_cancel.xml"),
        "+15550100",
        &[],
        Duration::from_secs(20),
    )
    .await;
    run.assert_ok(&gw);
    assert!(gw.log().contains("caller gave up before answer"));
}

#[tokio::test]
async fn attempt_log_keeps_outcomes_not_codes() {
    let (dir, db) = Gateway::provisioned(CODE);
    let gw = Gateway::start(dir, db, &["--max-attempts", "1"]).await;
    let run = info_call_refused(&gw, "99#").await;
    run.assert_ok(&gw);
    assert_eq!(
        attempts(&gw).await,
        vec![("access".to_owned(), "wrong".to_owned())]
    );
}
