//! Lockouts against guessing: after N failures from one caller-ID/source the
//! caller is refused even with the right code, across a gateway restart.

mod support;

use support::{Gateway, info_call, info_call_refused};

const CODE: &str = "8675309";
const FLAGS: &[&str] = &["--lockout-attempts", "2", "--max-attempts", "1"];

/// Outcomes only, oldest first.
async fn outcomes(gw: &Gateway) -> Vec<String> {
    gw.attempt_log()
        .await
        .into_iter()
        .map(|(_, outcome)| outcome)
        .collect()
}

async fn refused_call(gw: &Gateway, keys: &str) {
    let run = info_call_refused(gw, keys).await;
    run.assert_ok(gw);
}

#[tokio::test]
async fn after_two_wrong_codes_the_right_code_is_refused_even_after_a_restart() {
    let (dir, db) = Gateway::provisioned(CODE);
    let mut gw = Gateway::start(dir, db.clone(), FLAGS).await;
    refused_call(&gw, "1111#").await;
    refused_call(&gw, "2222#").await;
    assert_eq!(outcomes(&gw).await, vec!["wrong", "wrong"]);
    // The lockout lives in the database: a new gateway process keeps it.
    let status = gw.interrupt().await;
    assert!(status.success());
    let Gateway { dir, .. } = gw;
    let gw = Gateway::start(dir, db.clone(), FLAGS).await;
    refused_call(&gw, &format!("{CODE}#")).await;
    assert_eq!(outcomes(&gw).await, vec!["wrong", "wrong", "locked"]);
    // The attempt log through the CLI: rows with outcomes, and the failure summary.
    let (rc, out, err) = support::cli(
        &db,
        &[
            "attempts",
            "--since",
            "1h",
            "--number",
            "+15550100",
            "--json",
        ],
    );
    assert_eq!(rc, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let listed: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec!["wrong", "wrong", "locked"]);
    assert_eq!(rows[0]["caller_id"], "sipp");
    let (rc, out, err) = support::cli(&db, &["attempts", "--summary", "--json"]);
    assert_eq!(rc, 0, "{err}");
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["failures"], 2, "locked is not a failure: {summary}");
    assert_eq!(summary["failures_by_number"]["+15550100"], 2);
    assert_eq!(summary["by_outcome"]["locked"], 1);
    let log = gw.log();
    assert!(log.contains("caller locked out"), "{log}");
    assert!(!log.contains("joined room"), "{log}");
    assert!(!log.contains(CODE));
}

#[tokio::test]
async fn under_the_threshold_the_right_code_still_admits() {
    let (dir, db) = Gateway::provisioned(CODE);
    let gw = Gateway::start(dir, db, FLAGS).await;
    refused_call(&gw, "1111#").await;
    let keys = format!("{CODE}#");
    let run = info_call(&gw, &keys, "2000").await;
    run.assert_ok(&gw);
    assert_eq!(
        outcomes(&gw).await,
        vec!["wrong", "admitted"],
        "admitted after the delay"
    );
}

#[tokio::test]
async fn a_probed_number_answers_slowly_but_its_media_never_stalls() {
    use std::time::Duration;
    use support::caller::{Caller, Dial};
    let flags = [
        "--number-alarm-attempts",
        "1",
        "--lockout-attempts",
        "10",
        "--max-attempts",
        "1",
    ];
    let (dir, db) = Gateway::provisioned(CODE);
    let gw = Gateway::start(dir, db, &flags).await;
    let mut prober = Caller::dial(&gw.sip, Dial::default()).await;
    prober.key_rfc4733("1111#").await;
    assert!(prober.wait_bye(Duration::from_secs(10)).await.is_some());

    // The number is now probed: each lookup waits 2 s before it answers.
    let mut caller = Caller::dial(&gw.sip, Dial::default()).await;
    caller.key_rfc4733(&format!("{CODE}#")).await;
    // 5 s: the 2 s delay, then the admission's "joining" prompt.
    let listening = tokio::time::Instant::now();
    let heard = caller.talk_and_listen_timed(250, |_| vec![0; 160]).await;
    assert!(heard.len() > 200, "{} packets in 5 s", heard.len());
    // From the start of listening, packet to packet: a stall anywhere shows.
    let arrivals: Vec<tokio::time::Instant> = std::iter::once(listening)
        .chain(heard.iter().map(|(_, _, at)| *at))
        .collect();
    let gap = arrivals
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or_default();
    assert!(gw.log().contains("number probed"), "{}", gw.log());
    assert!(
        gap < Duration::from_millis(300),
        "RTP kept flowing during the slowed lookup: longest gap {gap:?}"
    );
    assert_eq!(
        outcomes(&gw).await,
        vec!["wrong", "admitted"],
        "admitted after the delay"
    );
}
