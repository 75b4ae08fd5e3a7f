//! `dialgate replay` (the `dialgate-replay` binary, reached through the
//! server's command line as users call it) against a real gateway on
//! loopback, with the traces in sip-fixtures/traces/ (recorded by
//! sip-fixtures/make-traces.sh). The engine's timing — speed, the hang-up
//! after a trace without a BYE, INVITE retransmissions — is tested exactly
//! on paused time in `replay/tests/paused.rs`. Run alone, build first:
//! `cargo build && cargo test --test replay` (`cargo test` of the workspace
//! builds the load tool's binary; a test of this crate alone does not).

mod support;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use support::{BIN, Gateway, repo, schedule_meeting};

/// The code the traces key (the demo room's).
const TRACE_CODE: &str = "123456789";

fn trace(name: &str) -> PathBuf {
    repo().join("sip-fixtures/traces").join(name)
}

struct Run {
    code: i32,
    report: serde_json::Value,
    stderr: String,
}

/// `dialgate replay TRACE --target GW --json ARGS…`, bounded in time.
async fn replay(gw: &Gateway, trace_file: &PathBuf, args: &[&str]) -> Run {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(BIN)
            .arg("replay")
            .arg(trace_file)
            .args(["--target", &gw.sip, "--json", "--duration", "90s"])
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("replay ends within its --duration")
    .expect("run dialgate replay");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("report is JSON ({e}): {stdout}\n{stderr}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        report,
        stderr,
    }
}

async fn gateway(code: &str) -> Gateway {
    let (dir, db) = Gateway::provisioned(code);
    // Many wrong codes from one address and caller-ID are the point of a
    // load test here, not an attack.
    Gateway::start(dir, db, &["--lockout-attempts", "1000"]).await
}

#[tokio::test]
async fn a_real_softphones_capture_is_admitted_by_a_real_gateway() {
    let gw = gateway(TRACE_CODE).await;
    let run = replay(
        &gw,
        &trace("baresip_rfc4733.pcapng"),
        &["--calls", "3", "--rate", "5"],
    )
    .await;
    let r = &run.report;
    assert_eq!(run.code, 0, "{r}\n{}", run.stderr);
    assert_eq!(r["attempted"], 3, "{r}");
    assert_eq!(r["answered"], 3, "{r}");
    assert_eq!(r["admitted"], 3, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    assert_eq!(r["differences_from_trace"], serde_json::json!({}), "{r}");
    assert_eq!(r["admission_latency"]["count"], 3, "{r}");
    assert!(r["rtp_packets_sent"].as_u64().unwrap() > 3 * 100, "{r}");
    // The gateway saw three calls, each admitted once, each its own.
    let log = gw.attempt_rows().await;
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(log.iter().all(|a| a.outcome == "admitted"), "{log:?}");
    let ids: HashSet<_> = log.iter().map(|a| a.call_id.clone()).collect();
    assert_eq!(ids.len(), 3);
    assert!(!gw.log().contains(TRACE_CODE), "codes never reach a log");
}

#[tokio::test]
async fn twenty_right_and_ten_wrong_codes_give_twenty_admitted_and_ten_refused() {
    let code = "0047";
    let gw = gateway(code).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("codes.csv");
    // Right, right, wrong, in turn: 20 right and 10 wrong over 30 calls.
    let mut rows = String::from("code\n");
    for _ in 0..10 {
        rows.push_str(&format!("{code}\n{code}\n0048\n"));
    }
    std::fs::write(&csv, rows).unwrap();
    let run = replay(
        &gw,
        &trace("rfc4733_admitted.pcapng"),
        &[
            "--calls",
            "30",
            "--rate",
            "10",
            // The test gateway has RTP ports for 11 calls.
            "--concurrency",
            "8",
            "--codes",
            csv.to_str().unwrap(),
        ],
    )
    .await;
    let r = &run.report;
    assert_eq!(run.code, 0, "{r}\n{}", run.stderr);
    assert_eq!(r["attempted"], 30, "{r}");
    assert_eq!(r["answered"], 30, "{r}");
    assert_eq!(r["admitted"], 20, "{r}");
    assert_eq!(r["refused"], 10, "{r}");
    assert_eq!(r["refused_by_cause"]["wrong"], 10, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    assert_eq!(r["setup_latency"]["count"], 30, "{r}");
    assert_eq!(r["admission_latency"]["count"], 20, "{r}");
    let log = gw.attempt_rows().await;
    let admitted = log.iter().filter(|a| a.outcome == "admitted").count();
    let wrong = log.iter().filter(|a| a.outcome == "wrong").count();
    assert_eq!((admitted, wrong), (20, 10), "{log:?}");
    let ids: HashSet<_> = log.iter().map(|a| a.call_id.clone()).collect();
    assert_eq!(ids.len(), 30, "one Call-ID per virtual call");
}

#[tokio::test]
async fn a_one_time_code_from_the_csv_is_keyed_by_sip_info_from_a_text_trace() {
    let gw = gateway("5550001").await;
    let meeting = schedule_meeting(&gw.db, -5, &["--one-time"]);
    let one_time = meeting["one_time_code"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("codes.csv");
    std::fs::write(&csv, format!("{one_time}\n")).unwrap();
    let run = replay(
        &gw,
        &trace("one_time_code.txt"),
        &[
            "--calls",
            "2",
            "--rate",
            "5",
            "--codes",
            csv.to_str().unwrap(),
        ],
    )
    .await;
    let r = &run.report;
    assert_eq!(run.code, 0, "{r}\n{}", run.stderr);
    assert_eq!(r["admitted"], 2, "{r}");
    // A text trace has no RTP: the replay sends G.711 silence instead.
    assert!(r["rtp_packets_sent"].as_u64().unwrap() > 2 * 50, "{r}");
    assert!(!gw.log().contains(&one_time), "codes never reach a log");
}

#[tokio::test]
async fn wrong_thrice_and_hanging_up_in_the_prompt_end_as_their_traces_did() {
    let gw = gateway(TRACE_CODE).await;
    let wrong = replay(&gw, &trace("wrong_x3.pcapng"), &["--calls", "2"]).await;
    let r = &wrong.report;
    assert_eq!(wrong.code, 0, "{r}\n{}", wrong.stderr);
    assert_eq!(r["refused_by_cause"]["wrong"], 2, "{r}");
    // The gateway hung up, as in the trace, with the same Reason.
    assert_eq!(r["differences_from_trace"], serde_json::json!({}), "{r}");
    let hangup = replay(&gw, &trace("hangup_in_prompt.txt"), &["--calls", "2"]).await;
    let r = &hangup.report;
    assert_eq!(hangup.code, 0, "{r}\n{}", hangup.stderr);
    assert_eq!(r["abandoned"], 2, "{r}");
    assert_eq!(r["admitted"], 0, "{r}");
    // The gateway answers a BYE before the call learns of it and records
    // the hang-up: await that record, not only the replay's end.
    gw.await_metric(
        gw.token().await,
        "dialgate_attempts_total{stage=\"access\",outcome=\"abandoned\"}",
        Duration::from_secs(10),
        |v| v >= 2.0,
    )
    .await;
    let log = gw.attempt_rows().await;
    assert_eq!(log.iter().filter(|a| a.outcome == "wrong").count(), 6);
    assert_eq!(log.iter().filter(|a| a.outcome == "abandoned").count(), 2);
}

#[test]
fn remote_targets_and_unreadable_traces_are_refused_with_exit_2() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .arg("replay")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let t = trace("info_admitted.txt");
    let t = t.to_str().unwrap();
    let (code, err) = run(&[t, "--target", "192.0.2.1:5060"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("not a loopback address"), "{err}");
    let (code, err) = run(&["/nonexistent.pcap", "--target", "127.0.0.1:5060"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("cannot read"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("codes.csv");
    std::fs::write(&bad, "12ab\n").unwrap();
    let (code, err) = run(&[
        t,
        "--target",
        "127.0.0.1:5060",
        "--codes",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("line 1"), "{err}");
}

#[test]
fn dialgate_fixture_is_the_load_tools_fixture_writer() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keys.pcap");
    let run = std::process::Command::new(BIN)
        .args(["fixture", "keypad-pcap", "--code", "12#", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // The pcap holds the three keys as RFC 4733 events (payload type 101).
    let trace = dialgate_replay::trace::read(&out).unwrap();
    let events = trace
        .datagrams
        .iter()
        .filter_map(|d| dialgate::media::rtp::read(&d.payload))
        .filter(|(h, _)| h.payload_type.0 == 101 && h.marker)
        .count();
    assert_eq!(events, 3);
    // Its help is the load tool's fixture command's.
    let help = std::process::Command::new(BIN)
        .args(["fixture", "--help"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("dialgate-replay fixture"),
        "{}",
        String::from_utf8_lossy(&help.stdout)
    );
}
