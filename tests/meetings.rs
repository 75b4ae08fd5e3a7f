//! Scheduled meetings: one-time codes admit inside their window only, as the
//! CLI provisions them and SIPp calls with them.

mod support;

use chrono::Utc;
use support::{Gateway, cli, info_call, info_call_refused, schedule_meeting as schedule};

/// Outcomes only, oldest first.
async fn attempts(gw: &Gateway) -> Vec<String> {
    gw.attempt_log()
        .await
        .into_iter()
        .map(|(_, outcome)| outcome)
        .collect()
}

#[tokio::test]
async fn one_time_code_of_a_meeting_starting_in_10_minutes_admits() {
    let (dir, db) = Gateway::provisioned("424242");
    let m = schedule(&db, 10, &["--one-time"]);
    let code = m["one_time_code"]
        .as_str()
        .expect("a one-time code")
        .to_owned();
    assert_eq!(code.len(), 9);
    let gw = Gateway::start(dir, db, &[]).await;
    let keys = format!("{code}#");
    let run = info_call(&gw, &keys, "2000").await;
    run.assert_ok(&gw);
    assert_eq!(attempts(&gw).await, vec!["admitted"]);
    assert!(
        !gw.log().contains(&code),
        "the one-time code must never reach the log"
    );
}

#[tokio::test]
async fn meeting_starting_in_20_minutes_is_not_started_yet() {
    let (dir, db) = Gateway::provisioned("424242");
    let m = schedule(&db, 20, &["--one-time"]);
    let code = m["one_time_code"]
        .as_str()
        .expect("a one-time code")
        .to_owned();
    let gw = Gateway::start(dir, db, &["--max-attempts", "1"]).await;
    let keys = format!("{code}#");
    let run = info_call_refused(&gw, &keys).await;
    run.assert_ok(&gw);
    assert_eq!(attempts(&gw).await, vec!["not_started"]);
    assert!(
        gw.log().contains("call refused outcome=\"not_started\""),
        "{}",
        gw.log()
    );
}

#[tokio::test]
async fn a_cancelled_meetings_code_stops_working_for_the_next_call() {
    let (dir, db) = Gateway::provisioned("424242");
    let m = schedule(&db, 5, &["--one-time"]);
    let code = m["one_time_code"]
        .as_str()
        .expect("a one-time code")
        .to_owned();
    let gw = Gateway::start(dir, db.clone(), &["--max-attempts", "1"]).await;
    let id = m["id"].to_string();
    // Cancelled while the gateway runs: no restart, no cache.
    let (rc, _, err) = cli(&db, &["meeting", "cancel", &id]);
    assert_eq!(rc, 0, "{err}");
    let keys = format!("{code}#");
    let run = info_call_refused(&gw, &keys).await;
    run.assert_ok(&gw);
    assert_eq!(attempts(&gw).await, vec!["wrong"]);
}

#[test]
fn schedule_follows_tenant_defaults_and_code_length() {
    let (_dir, db) = Gateway::provisioned("424242");
    // Default tenant: no one-time code unless asked.
    assert_eq!(
        schedule(&db, 60, &[]).get("one_time_code"),
        Some(&serde_json::Value::Null)
    );
    let (rc, out, err) = cli(
        &db,
        &[
            "tenant",
            "set",
            "acme",
            "--one-time-default",
            "true",
            "--code-length",
            "6",
            "--early-join",
            "10m",
            "--json",
        ],
    );
    assert_eq!(rc, 0, "{err}");
    let t: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(t["one_time_default"], true);
    assert_eq!(t["early_join_secs"], 600);
    let m = schedule(&db, 60, &[]);
    let code = m["one_time_code"]
        .as_str()
        .expect("one-time by tenant default");
    assert_eq!(code.len(), 6);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    // active_from follows the tenant's early join: 10 minutes before the start.
    let start = chrono::DateTime::parse_from_rfc3339(m["starts_at"].as_str().unwrap()).unwrap();
    let from = chrono::DateTime::parse_from_rfc3339(m["active_from"].as_str().unwrap()).unwrap();
    assert_eq!(start - from, chrono::Duration::minutes(10));
    assert_eq!(
        schedule(&db, 60, &["--no-one-time"]).get("one_time_code"),
        Some(&serde_json::Value::Null)
    );
}

#[test]
fn invalid_schedules_exit_2_and_write_nothing() {
    let (_dir, db) = Gateway::provisioned("424242");
    let soon = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let cases: [&[&str]; 5] = [
        &[
            "meeting",
            "schedule",
            "--room",
            "main",
            "--start",
            "tomorrow",
            "--duration",
            "45m",
        ],
        &[
            "meeting",
            "schedule",
            "--room",
            "main",
            "--start",
            &soon,
            "--duration",
            "45",
        ],
        &[
            "meeting",
            "schedule",
            "--room",
            "nope",
            "--start",
            &soon,
            "--duration",
            "45m",
        ],
        &["meeting", "schedule", "--room", "main", "--start", &soon],
        &[
            "meeting",
            "schedule",
            "--room",
            "main",
            "--start",
            "2020-01-01T00:00:00Z",
            "--duration",
            "1h",
        ],
    ];
    for args in cases {
        let (rc, out, err) = cli(&db, args);
        assert_eq!(rc, 2, "{args:?}: {err}");
        assert!(out.is_empty());
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    let (rc, _, err) = cli(&db, &["tenant", "set", "acme", "--code-length", "5"]);
    assert_eq!(rc, 2, "{err}");
    let (_, out, _) = cli(&db, &["meeting", "list", "--json"]);
    assert_eq!(out.trim(), "[]");
}

#[test]
fn one_time_codes_never_collide_with_or_prefix_a_live_code() {
    // The room's regular code is "5": no one-time code may start with it.
    let (_dir, db) = Gateway::provisioned("5");
    let (rc, _, err) = cli(&db, &["tenant", "set", "acme", "--code-length", "6"]);
    assert_eq!(rc, 0, "{err}");
    let codes: Vec<String> = (0..30)
        .map(|_| {
            schedule(&db, 30, &["--one-time"])["one_time_code"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for (i, a) in codes.iter().enumerate() {
        assert!(
            !a.starts_with('5'),
            "{a} has the live regular code as its prefix"
        );
        for b in &codes[i + 1..] {
            assert!(
                !a.starts_with(b.as_str()) && !b.starts_with(a.as_str()),
                "{a} and {b} collide"
            );
        }
    }
}
