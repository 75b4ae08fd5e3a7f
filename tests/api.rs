//! The operator REST API against a real gateway: tokens, provisioning,
//! validation errors, pagination.

mod support;

use std::time::Duration;

use support::caller::{Caller, Dial};
use support::http::{call, request};
use support::{Gateway, cli, scenario, sipp};

#[tokio::test]
async fn provisioning_through_the_api_with_a_token() {
    let (dir, db) = Gateway::provisioned("1");
    let token = support::http::token(&db);
    let gw = Gateway::start(dir, db.clone(), &["--log-format", "json"]).await;
    let api = gw.api.as_str();

    // /healthz is open; everything else needs the token.
    assert_eq!(call(api, "GET", "/healthz", None, None).await.0, 200);
    assert_eq!(call(api, "GET", "/v1/rooms", None, None).await.0, 401);
    assert_eq!(
        call(api, "GET", "/v1/rooms", Some("dg_wrong"), None)
            .await
            .0,
        401
    );
    let (status, ready) = call(api, "GET", "/readyz", Some(&token), None).await;
    assert_eq!(
        (status, ready["database"].clone()),
        (200, serde_json::json!(true))
    );

    let (status, t) = call(
        api,
        "POST",
        "/v1/tenants",
        Some(&token),
        Some(r#"{"name":"globex"}"#),
    )
    .await;
    assert_eq!(status, 201, "{t}");
    let (status, n) = call(
        api,
        "POST",
        "/v1/numbers",
        Some(&token),
        Some(r#"{"number":"+1 555 0199","tenant":"globex"}"#),
    )
    .await;
    assert_eq!(
        (status, n["number"].clone()),
        (201, serde_json::json!("+15550199"))
    );
    let (status, r) = call(
        api,
        "POST",
        "/v1/rooms",
        Some(&token),
        Some(r#"{"tenant":"globex","name":"board"}"#),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["access_code"].as_str().map(str::len), Some(9));

    // Validation: the field is named; nothing is written.
    let (status, e) = call(
        api,
        "POST",
        "/v1/numbers",
        Some(&token),
        Some(r#"{"number":"not a number","tenant":"globex"}"#),
    )
    .await;
    assert_eq!(
        (status, e["field"].clone()),
        (422, serde_json::json!("number")),
        "{e}"
    );
    let (status, _) = call(
        api,
        "POST",
        "/v1/rooms",
        Some(&token),
        Some(r#"{"tenant":"nobody","name":"x"}"#),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        api,
        "POST",
        "/v1/tenants",
        Some(&token),
        Some(r#"{"name":"globex"}"#),
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = call(api, "POST", "/v1/tenants", Some(&token), Some("{not json")).await;
    assert_eq!(status, 400);
    let (status, _) = call(
        api,
        "POST",
        "/v1/tenants",
        Some(&token),
        Some(r#"{"nom":"x"}"#),
    )
    .await;
    assert_eq!(status, 422);
    let (_, numbers) = call(api, "GET", "/v1/numbers", Some(&token), None).await;
    assert_eq!(numbers.as_array().map(Vec::len), Some(2), "{numbers}");

    // Pagination.
    let (_, page) = call(
        api,
        "GET",
        "/v1/tenants?limit=1&offset=1",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        page.as_array().map(|a| a[0]["name"].clone()),
        Some(serde_json::json!("globex"))
    );
    let (status, e) = call(api, "GET", "/v1/tenants?limit=0", Some(&token), None).await;
    assert_eq!(
        (status, e["field"].clone()),
        (422, serde_json::json!("limit"))
    );

    // Meetings, invitees and attempts.
    let start = (chrono::Utc::now() + chrono::Duration::minutes(30)).to_rfc3339();
    let body = format!(r#"{{"room":"board","start":"{start}","duration":"45m","one_time":true}}"#);
    let (status, m) = call(api, "POST", "/v1/meetings", Some(&token), Some(&body)).await;
    assert_eq!(status, 201, "{m}");
    assert_eq!(m["one_time_code"].as_str().map(str::len), Some(9));
    let bad = r#"{"room":"board","start":"tomorrow","duration":"45m"}"#;
    let (status, e) = call(api, "POST", "/v1/meetings", Some(&token), Some(bad)).await;
    assert_eq!(
        (status, e["field"].clone()),
        (422, serde_json::json!("start"))
    );
    let mid = m["id"].as_i64().unwrap();
    let (status, inv) = call(
        api,
        "POST",
        &format!("/v1/meetings/{mid}/invitees"),
        Some(&token),
        Some(r#"{"name":"Ada"}"#),
    )
    .await;
    assert_eq!(status, 201, "{inv}");
    assert!(inv["personal_code"].is_string());
    let iid = inv["id"].as_i64().unwrap();
    let (status, revoked) = call(
        api,
        "DELETE",
        &format!("/v1/invitees/{iid}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(revoked["revoked_at"].is_string());
    let (status, _) = call(
        api,
        "DELETE",
        &format!("/v1/meetings/{mid}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, meetings) = call(api, "GET", "/v1/meetings?room=board", Some(&token), None).await;
    assert_eq!(meetings[0]["cancelled"], true);
    let (status, rows) = call(api, "GET", "/v1/attempts?since=1h", Some(&token), None).await;
    assert_eq!((status, rows.as_array().map(Vec::len)), (200, Some(0)));
    let (status, summary) = call(api, "GET", "/v1/attempts/summary", Some(&token), None).await;
    assert_eq!(
        (status, summary["attempts"].clone()),
        (200, serde_json::json!(0))
    );
    let (status, e) = call(api, "GET", "/v1/attempts?since=forever", Some(&token), None).await;
    assert_eq!(
        (status, e["field"].clone()),
        (422, serde_json::json!("since"))
    );

    // --log-format json: every log line is one JSON object.
    let log = gw.log();
    assert!(log.lines().count() > 0);
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string(), "{line}");
    }

    // A revoked token stops working at once.
    let id = "1";
    assert_eq!(cli(&db, &["token", "revoke", id]).0, 0);
    assert_eq!(
        call(api, "GET", "/v1/rooms", Some(&token), None).await.0,
        401
    );
}

#[tokio::test]
async fn live_call_is_listed_muted_and_hung_up_through_the_api() {
    let (dir, db) = Gateway::provisioned("64209753");
    let token = support::http::token(&db);
    let gw = Gateway::start(dir, db, &[]).await;
    let (sip, api) = (gw.sip.clone(), gw.api.clone());
    // The caller keys the right code, then waits (up to 60 s) for our BYE.
    let caller = tokio::spawn(async move {
        sipp(
            &sip,
            &scenario("uac_info_refused.xml"),
            "+15550100",
            &[("code", "64209753#")],
            Duration::from_secs(60),
        )
        .await
    });
    // Bounded poll of the API until the call is in the room.
    let mut live = serde_json::Value::Null;
    for _ in 0..200 {
        let (_, calls) = call(&api, "GET", "/v1/calls", Some(&token), None).await;
        if let Some(c) = calls
            .as_array()
            .and_then(|a| a.iter().find(|c| c["state"] == "in_room"))
        {
            live = c.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        live["state"],
        "in_room",
        "the call reached the room: {}",
        gw.log()
    );
    assert_eq!(live["caller_id"], "sipp");
    assert_eq!(live["codec"], "PCMU");
    assert_eq!(live["dtmf_sources"], serde_json::json!(["sip_info"]));
    let id = live["id"].as_u64().unwrap();
    let room = live["room_id"].as_i64().unwrap();
    let (_, participants) = call(
        &api,
        "GET",
        &format!("/v1/rooms/{room}/participants"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(participants.as_array().map(Vec::len), Some(1));
    // The CLI reads the same through the API.
    let out = std::process::Command::new(support::BIN)
        .args(["calls", "--api", &api, "--json"])
        .env("DIALGATE_TOKEN", &token)
        .output()
        .unwrap();
    assert!(out.status.success());
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["id"].as_u64(), Some(id));
    let denied = std::process::Command::new(support::BIN)
        .args(["calls", "--api", &api, "--token", "dg_nope"])
        .output()
        .unwrap();
    assert_eq!(denied.status.code(), Some(2));

    let (status, muted) = call(
        &api,
        "POST",
        &format!("/v1/calls/{id}/mute"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (status, muted["muted"].clone()),
        (200, serde_json::json!(true))
    );
    let (status, unmuted) = call(
        &api,
        "POST",
        &format!("/v1/calls/{id}/unmute"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (status, unmuted["muted"].clone()),
        (200, serde_json::json!(false))
    );
    assert_eq!(
        call(&api, "POST", "/v1/calls/999/mute", Some(&token), None)
            .await
            .0,
        404
    );
    assert_eq!(
        call(&api, "DELETE", "/v1/calls/999", Some(&token), None)
            .await
            .0,
        404
    );

    assert_eq!(
        call(
            &api,
            "DELETE",
            &format!("/v1/calls/{id}"),
            Some(&token),
            None
        )
        .await
        .0,
        204
    );
    let run = caller.await.expect("sipp task");
    run.assert_ok(&gw);
    // Gone from the list once the BYE is answered (bounded poll).
    let mut left = false;
    for _ in 0..100 {
        let (_, calls) = call(&api, "GET", "/v1/calls", Some(&token), None).await;
        if calls.as_array().is_some_and(Vec::is_empty) {
            left = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(left, "the call left the live list");

    // The counters moved.
    assert_eq!(request(&api, "GET", "/metrics", None, None).await.0, 401);
    let (status, metrics) = request(&api, "GET", "/metrics", Some(&token), None).await;
    assert_eq!(status, 200);
    let value = |needle: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{needle} missing in:\n{metrics}"))
    };
    assert_eq!(
        value("dialgate_attempts_total{stage=\"access\",outcome=\"admitted\"}"),
        1.0
    );
    assert_eq!(
        value("dialgate_dtmf_digits_total{source=\"sip_info\"}"),
        9.0
    );
    assert!(value("dialgate_rtp_packets_total{direction=\"out\"}") > 100.0);
    assert!(value("dialgate_mixer_tick_seconds_count") > 0.0);
    assert_eq!(
        value("dialgate_calls_total{outcome=\"ended_by_gateway\"}"),
        1.0
    );
    assert_eq!(value("dialgate_calls_active{state=\"in_room\"}"), 0.0);
}

/// One metric's value from a Prometheus text page.
fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in:\n{page}"))
}

#[tokio::test]
async fn rtp_loss_and_database_latency_show_in_metrics() {
    let (dir, db) = Gateway::provisioned("5309");
    let token = support::http::token(&db);
    let gw = Gateway::start(dir, db, &[]).await;
    let mut caller = Caller::dial(&gw.sip, Dial::default()).await;
    assert_eq!(caller.invite_status, 200);
    caller.key_rfc4733("5309#").await;
    caller.talk_and_listen(10, |_| vec![0; 160]).await;
    caller.lose_packets(7);
    caller.talk_and_listen(10, |_| vec![0; 160]).await;
    assert_eq!(caller.hang_up().await, Some(200));

    let (status, page) = request(&gw.api, "GET", "/metrics", Some(&token), None).await;
    assert_eq!(status, 200);
    assert_eq!(metric(&page, "dialgate_rtp_packets_lost_total"), 7.0);
    assert!(
        !page.contains("dialgate_rtcp_reports_total"),
        "no RTCP was sent yet"
    );
    for op in ["number", "failures", "resolve", "record_attempt"] {
        let count = metric(
            &page,
            &format!("dialgate_db_query_seconds_count{{op=\"{op}\"}}"),
        );
        assert!(count >= 1.0, "{op} timed {count} times");
    }
}

/// An RTCP Receiver Report from `reporter` on stream `ssrc`, written by hand
/// (RFC 3550 §6.4.2): fraction lost `fraction`/256, jitter in timestamp units.
fn receiver_report(reporter: u32, ssrc: u32, fraction: u8, lost: u32, jitter: u32) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7];
    p.extend(reporter.to_be_bytes());
    p.extend(ssrc.to_be_bytes());
    p.extend(((u32::from(fraction) << 24) | (lost & 0x00ff_ffff)).to_be_bytes());
    p.extend(500u32.to_be_bytes());
    p.extend(jitter.to_be_bytes());
    p.extend([0; 8]);
    p
}

#[tokio::test]
async fn the_far_ends_rtcp_reports_reach_metrics_and_the_live_call() {
    let (dir, db) = Gateway::provisioned("5309");
    let token = support::http::token(&db);
    let gw = Gateway::start(dir, db, &[]).await;
    let mut caller = Caller::dial(&gw.sip, Dial::default()).await;
    let heard = caller.talk_and_listen(10, |_| vec![0; 160]).await;
    let ours = heard.first().expect("the gateway sends prompts").0.ssrc.0;
    let rtp = caller.gateway_rtp.expect("gateway RTP address");
    let rtcp = std::net::SocketAddr::new(rtp.ip(), rtp.port() + 1);
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // A report on someone else's stream is not ours to count.
    socket
        .send_to(&receiver_report(1, ours ^ 1, 255, 9, 9), rtcp)
        .await
        .unwrap();
    // 64/256 lost, jitter 80 units = 10 ms at 8 kHz.
    socket
        .send_to(&receiver_report(1, ours, 64, 12, 80), rtcp)
        .await
        .unwrap();
    let mut page = String::new();
    for _ in 0..100 {
        page = request(&gw.api, "GET", "/metrics", Some(&token), None)
            .await
            .1;
        if page.contains("dialgate_rtcp_reports_total") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&page, "dialgate_rtcp_reports_total"), 1.0, "{page}");
    assert_eq!(metric(&page, "dialgate_rtcp_fraction_lost_sum"), 0.25);
    let jitter = metric(&page, "dialgate_rtcp_jitter_seconds_sum");
    assert!((jitter - 0.01).abs() < 1e-9, "jitter {jitter}");
    let (_, calls) = support::http::call(&gw.api, "GET", "/v1/calls", Some(&token), None).await;
    assert_eq!(calls[0]["far_end"]["fraction_lost"], 0.25, "{calls}");
    assert_eq!(calls[0]["far_end"]["jitter_ms"], 10.0, "{calls}");
    assert_eq!(caller.hang_up().await, Some(200));
}
