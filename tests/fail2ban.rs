//! The shipped fail2ban filter (deploy/fail2ban) against a real gateway's
//! log, read by Debian's `fail2ban-regex`: each kind of refused-source
//! event is matched, with its source, and nothing else is.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::caller::{Caller, Dial};
use support::{Gateway, request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};
use tokio::time::{Instant, timeout};

/// Waits (reading the log every 20 ms, at most 10 s) for a line with all of
/// `parts`.
async fn await_log(gw: &Gateway, parts: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw
        .log()
        .lines()
        .any(|l| parts.iter().all(|p| l.contains(p)))
    {
        assert!(
            Instant::now() < deadline,
            "no line with {parts:?}\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_fail2ban_filter_matches_each_refused_source_event_with_its_source() {
    let (dir, db) = Gateway::provisioned("1234");
    let gw = Gateway::start(
        dir,
        db,
        &["--sip-source-rate", "50", "--sip-tcp-per-source", "2"],
    )
    .await;

    // A wrong code from 127.0.0.1.
    let mut caller = Caller::dial(&gw.sip, Dial::default()).await;
    assert_eq!(caller.invite_status, 200);
    caller.key_rfc4733("9999#").await;
    await_log(&gw, &["access attempt", "outcome=\"wrong\""]).await;
    caller.hang_up().await;

    // A scanner dialling a number that is not provisioned, from 127.0.0.1.
    let stranger = Caller::dial(
        &gw.sip,
        Dial {
            number: "+15550999",
            ..Dial::default()
        },
    )
    .await;
    assert_eq!(stranger.invite_status, 404);
    await_log(&gw, &["number not provisioned", "source=127.0.0.1"]).await;

    // 200 OPTIONS at once from 127.0.0.5: over its rate (50).
    let flooder = UdpSocket::bind("127.0.0.5:0").await.unwrap();
    let local = flooder.local_addr().unwrap().to_string();
    for n in 0..200 {
        let _ = flooder
            .send_to(
                request("OPTIONS", &format!("f2b{n}"), &local, "UDP").as_bytes(),
                &gw.sip,
            )
            .await;
    }
    await_log(
        &gw,
        &["SIP source over its message rate", "source=127.0.0.5"],
    )
    .await;

    // Four TCP connections from 127.0.0.7, two allowed.
    let mut held = Vec::new();
    for n in 0..4 {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.7:0".parse().unwrap()).unwrap();
        let mut stream = socket.connect(gw.sip.parse().unwrap()).await.unwrap();
        let local = stream.local_addr().unwrap().to_string();
        let _ = stream
            .write_all(request("OPTIONS", &format!("f2b-tcp{n}"), &local, "TCP").as_bytes())
            .await;
        let mut buf = [0u8; 2048];
        if let Ok(Ok(len)) = timeout(Duration::from_secs(5), stream.read(&mut buf)).await
            && len > 0
        {
            held.push(stream);
        }
    }
    assert_eq!(held.len(), 2);
    await_log(
        &gw,
        &["SIP source refused a TCP connection", "source=127.0.0.7"],
    )
    .await;

    // The flood's end line too (a line the filter must pass over).
    await_log(
        &gw,
        &["SIP source back under its message rate", "source=127.0.0.5"],
    )
    .await;

    // fail2ban-regex reads the log with the shipped filter.
    let log = gw.log();
    let log_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(log_file.path(), &log).unwrap();
    let filter = support::repo().join("deploy/fail2ban/filter.d/dialgate.conf");
    let out = std::process::Command::new("fail2ban-regex")
        .args(["--print-all-matched", "--raw"])
        .arg(log_file.path())
        .arg(&filter)
        .output()
        .expect("fail2ban-regex (./dev test installs fail2ban)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every matched line, by what it is and whose it is.
    let mut matched: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let kinds = [
        ("rate", "SIP source over its message rate"),
        ("tcp", "SIP source refused a TCP connection"),
        ("code", "access attempt"),
        ("number", "number not provisioned"),
    ];
    let matched_lines = report
        .lines()
        .skip_while(|l| !l.contains("Matched line(s):"))
        .filter(|l| l.starts_with("|  "));
    for line in matched_lines {
        let Some((kind, _)) = kinds.iter().find(|(_, text)| line.contains(text)) else {
            continue;
        };
        let source = ["127.0.0.1", "127.0.0.5", "127.0.0.7"]
            .into_iter()
            .find(|ip| line.contains(&format!("source={ip}")))
            .unwrap_or("other");
        *matched.entry((kind, source)).or_default() += 1;
    }
    let want: BTreeMap<(&str, &str), usize> = [
        (("code", "127.0.0.1"), 1),
        (("number", "127.0.0.1"), 1),
        (("rate", "127.0.0.5"), 1),
        (("tcp", "127.0.0.7"), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(matched, want, "{report}");
    // The summary agrees: four lines matched, no more.
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("Lines:") && l.contains("4 matched")),
        "{report}"
    );
    // What is not a refusal was read and passed over: the call's other
    // attempt (abandoned, as it hung up), the flood's end line.
    assert!(
        log.contains("SIP source back under its message rate source=127.0.0.5"),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("access attempt")
            && l.contains("outcome=\"abandoned\" source=127.0.0.1")),
        "{log}"
    );
}
