//! Security codes: asked for after a right access code, with their own
//! attempt counter; stored only as keyed hashes.

mod support;

use chrono::{SecondsFormat, Utc};
use support::{Gateway, cli, info_call, info_call_refused};

const ACCESS: &str = "31415926";
const SECURITY: &str = "00428571";

async fn attempts(gw: &Gateway) -> Vec<(String, String)> {
    gw.attempt_log().await
}

fn secured_room() -> (tempfile::TempDir, String) {
    let (dir, db) = Gateway::provisioned("1");
    let (rc, _, err) = cli(
        &db,
        &[
            "room",
            "add",
            "--tenant",
            "acme",
            "--name",
            "vault",
            "--access-code",
            ACCESS,
            "--security-code",
            SECURITY,
        ],
    );
    assert_eq!(rc, 0, "{err}");
    (dir, db)
}

#[tokio::test]
async fn right_access_then_right_security_code_admits() {
    let (dir, db) = secured_room();
    let gw = Gateway::start(dir, db, &[]).await;
    // Typed ahead in one go: the security digits arrive while the access code is checked.
    let keys = format!("{ACCESS}#{SECURITY}#");
    let run = info_call(&gw, &keys, "2500").await;
    run.assert_ok(&gw);
    assert_eq!(
        attempts(&gw).await,
        vec![("security".to_owned(), "admitted".to_owned())]
    );
    let log = gw.log();
    assert!(log.contains("joined room"), "{log}");
    assert!(
        !log.contains(ACCESS) && !log.contains(SECURITY),
        "codes never reach the log"
    );
}

#[tokio::test]
async fn wrong_security_code_three_times_gets_bye() {
    let (dir, db) = secured_room();
    let gw = Gateway::start(dir, db, &[]).await;
    let keys = format!("{ACCESS}#42#0043#9#");
    let run = info_call_refused(&gw, &keys).await;
    run.assert_ok(&gw);
    let wrong = ("security".to_owned(), "wrong".to_owned());
    assert_eq!(
        attempts(&gw).await,
        vec![wrong.clone(), wrong.clone(), wrong]
    );
    assert!(!gw.log().contains("joined room"));
}

#[tokio::test]
async fn meeting_security_code_and_tenant_default_apply_to_one_time_codes() {
    let (dir, db) = Gateway::provisioned("1");
    let start =
        (Utc::now() + chrono::Duration::minutes(5)).to_rfc3339_opts(SecondsFormat::Secs, true);
    // The rule: a scheduled meeting's security code needs a one-time code.
    let (rc, _, err) = cli(
        &db,
        &[
            "meeting",
            "schedule",
            "--room",
            "main",
            "--start",
            &start,
            "--duration",
            "30m",
            "--no-one-time",
            "--security-code",
            "55",
        ],
    );
    assert_eq!(rc, 2);
    assert!(err.contains("only together with a one-time code"), "{err}");
    // The tenant default applies to a one-time meeting without its own code.
    let (rc, _, err) = cli(
        &db,
        &[
            "tenant",
            "set",
            "acme",
            "--default-security-code",
            "77881293",
        ],
    );
    assert_eq!(rc, 0, "{err}");
    let m = support::schedule_meeting(&db, 5, &["--one-time"]);
    assert!(
        !m.to_string().contains("77881293"),
        "security codes are never shown back"
    );
    let code = m["one_time_code"].as_str().unwrap().to_owned();
    // Nothing stores the digits in plain text.
    let db_bytes = support::stored_bytes(&db);
    assert!(!db_bytes.windows(8).any(|w| w == b"77881293"));
    let gw = Gateway::start(dir, db, &[]).await;
    let keys = format!("{code}#77881293#");
    let run = info_call(&gw, &keys, "2500").await;
    run.assert_ok(&gw);
    assert_eq!(
        attempts(&gw).await,
        vec![("security".to_owned(), "admitted".to_owned())]
    );
}
