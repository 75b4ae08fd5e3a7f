//! Floods against a real gateway: one source over its message rate loses
//! its messages, not the gateway's callers.

mod support;

use std::time::Duration;

use support::caller::{Caller, Dial};
use support::{Gateway, request};
use tokio::net::UdpSocket;
use tokio::time::Instant;

const FLOODER: &str = "127.0.0.5";
const RATE: u32 = 200;

/// Waits (reading the log every 20 ms, at most `limit`) for a line with
/// all of `parts`; returns it.
async fn await_log_line(gw: &Gateway, parts: &[&str], limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let log = gw.log();
        if let Some(line) = log.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {parts:?} after {limit:?}\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_options_flood_from_one_source_is_dropped_while_a_caller_gets_in() {
    let (dir, db) = Gateway::provisioned("1234");
    let rate = RATE.to_string();
    let gw = Gateway::start(dir, db, &["--sip-source-rate", &rate]).await;
    let target = gw.sip.clone();

    // 10,000 OPTIONS a second for 3 s from one source (bounded: 30,000).
    let flooder = std::sync::Arc::new(UdpSocket::bind(format!("{FLOODER}:0")).await.unwrap());
    let local = flooder.local_addr().unwrap().to_string();
    let answers = tokio::spawn({
        let flooder = flooder.clone();
        async move {
            let mut buf = vec![0u8; 65536];
            let mut n = 0u32;
            while let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_secs(2), flooder.recv_from(&mut buf)).await
            {
                n += 1;
            }
            n
        }
    });
    let started = Instant::now();
    let flood = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        for ms in 0..3000u32 {
            tick.tick().await;
            for k in 0..10 {
                let msg = request("OPTIONS", &format!("f{}", ms * 10 + k), &local, "UDP");
                let _ = flooder.send_to(msg.as_bytes(), &target).await;
            }
        }
        started.elapsed()
    });

    // A second into the flood, a caller from another address dials.
    tokio::time::sleep_until(started + Duration::from_secs(1)).await;
    let dialled = Instant::now();
    let mut caller = Caller::dial(&gw.sip, Dial::default()).await;
    let answered_in = dialled.elapsed();
    let flood_lasted = flood.await.unwrap();
    assert_eq!(caller.invite_status, 200);
    assert!(
        answered_in < Duration::from_secs(1),
        "answered {answered_in:?} after the INVITE"
    );
    assert!(
        answered_in + Duration::from_secs(1) < flood_lasted,
        "the call was answered while the flood went on ({flood_lasted:?})"
    );
    caller.hang_up().await;

    // The flooder got its burst and its rate's worth, no more.
    let got = answers.await.unwrap();
    let allowed = RATE + (flood_lasted.as_secs_f64() * f64::from(RATE)) as u32;
    assert!(
        got <= allowed + allowed / 10 && got >= allowed / 2,
        "the flooder got {got} answers of 30,000 (its rate allows about {allowed})"
    );
    // One line as it started and one as it ended, naming the source.
    let first = await_log_line(
        &gw,
        &["SIP source over its message rate", "source=127.0.0.5"],
        Duration::from_secs(1),
    )
    .await;
    assert!(first.contains("WARN"), "{first}");
    let last = await_log_line(
        &gw,
        &["SIP source back under its message rate", "source=127.0.0.5"],
        Duration::from_secs(5),
    )
    .await;
    // Counted once the gateway has read them all (the line says so).
    let token = gw.token().await;
    let dropped = gw
        .metric(
            token,
            "dialgate_sip_messages_dropped_total{cause=\"source_rate\"}",
        )
        .await;
    // Most of the 30,000 (the kernel may drop some before the gateway
    // reads them, uncounted).
    assert!(dropped >= 20_000.0, "{dropped} dropped");

    let log = gw.log();
    assert_eq!(
        log.matches("SIP source over its message rate").count(),
        1,
        "{log}"
    );
    let reported: f64 = last
        .split("dropped=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("dropped=N in the line");
    assert_eq!(reported, dropped, "{last}");
    // The caller's own address was never limited.
    assert!(!log.contains("source=127.0.0.1 "), "{log}");
}
