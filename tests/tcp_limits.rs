//! SIP over TCP with limits, against a real gateway: connections that say
//! nothing, never finish a message or fall idle are closed; caps overall
//! and per source hold; a UDP call gets in while TCP is at its cap under a
//! low file-descriptor limit.

mod support;

use std::time::Duration;

use support::caller::{Caller, Dial};
use support::{Gateway, request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

/// Reads until the gateway closes the connection (at most `limit`);
/// returns when, or `None` if it stayed open. Answers read on the way are
/// dropped.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        match timeout(
            deadline.saturating_duration_since(Instant::now()),
            stream.read(&mut buf),
        )
        .await
        {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(Instant::now()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Sends an OPTIONS and reads its 200.
async fn probe(stream: &mut TcpStream, branch: &str) {
    let local = stream.local_addr().unwrap().to_string();
    stream
        .write_all(request("OPTIONS", branch, &local, "TCP").as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
        let n = timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        String::from_utf8_lossy(&got).starts_with("SIP/2.0 200 OK"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test]
async fn silent_partial_and_idle_connections_are_closed_and_busy_ones_kept() {
    let (dir, db) = Gateway::provisioned("1234");
    let gw = Gateway::start(
        dir,
        db,
        &[
            "--sip-tcp-message-timeout",
            "500ms",
            "--sip-tcp-idle",
            "1500ms",
        ],
    )
    .await;
    let opened = Instant::now();
    let mut empty = TcpStream::connect(&gw.sip).await.unwrap();
    let mut partial = TcpStream::connect(&gw.sip).await.unwrap();
    let pinger = TcpStream::connect(&gw.sip).await.unwrap();
    let mut quiet = TcpStream::connect(&gw.sip).await.unwrap();
    let mut kept = TcpStream::connect(&gw.sip).await.unwrap();
    let local = partial.local_addr().unwrap().to_string();
    partial
        .write_all(&request("OPTIONS", "p", &local, "TCP").as_bytes()[..60])
        .await
        .unwrap();
    probe(&mut quiet, "q").await;
    probe(&mut kept, "k").await;

    // A connection that carried an INVITE (a call may use it, silent, for
    // as long as it lasts) is never closed for idling.
    let mut invited = TcpStream::connect(&gw.sip).await.unwrap();
    let local = invited.local_addr().unwrap().to_string();
    let invite = request("INVITE", "inv", &local, "TCP")
        .replace("INVITE sip:+15550100", "INVITE sip:+15550199");
    invited.write_all(invite.as_bytes()).await.unwrap();
    // Its answers (100, then 404: the number is not provisioned) read first.
    let mut answers = String::new();
    let mut buf = [0u8; 4096];
    while !answers.contains("SIP/2.0 404") {
        let n = timeout(Duration::from_secs(5), invited.read(&mut buf))
            .await
            .expect("the INVITE answered within 5 s")
            .unwrap();
        assert!(n > 0, "closed before answering the INVITE");
        answers.push_str(&String::from_utf8_lossy(&buf[..n]));
    }

    // CRLF keep-alives every 200 ms for 4 s: on a connection that never
    // sent a message they hold nothing; after one, they keep it open.
    let keep_alives = |mut stream: TcpStream| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            let mut sent = 0;
            for _ in 0..20 {
                tick.tick().await;
                if stream.write_all(b"\r\n\r\n").await.is_err() {
                    break;
                }
                sent += 1;
            }
            (stream, sent)
        })
    };
    let pinger_pings = keep_alives(pinger);
    let kept_pings = keep_alives(kept);

    // Nothing, and half a message: closed about 500 ms after opening.
    for (name, stream) in [("empty", &mut empty), ("partial", &mut partial)] {
        let at = closed_within(stream, Duration::from_secs(3))
            .await
            .unwrap_or_else(|| panic!("{name} still open after 3 s"));
        let after = at - opened;
        assert!(
            after >= Duration::from_millis(400) && after < Duration::from_millis(2000),
            "{name} closed after {after:?}"
        );
    }
    // A message, then silence: closed about 1.5 s after it.
    let at = closed_within(&mut quiet, Duration::from_secs(4))
        .await
        .expect("the quiet connection still open after 4 s");
    assert!(
        at - opened >= Duration::from_millis(1400),
        "{:?}",
        at - opened
    );

    let (mut pinger, pinged) = pinger_pings.await.unwrap();
    // Keep-alives only: closed long before the 4 s of pings ended.
    assert!(pinged < 20, "keep-alives alone held a connection");
    assert!(
        closed_within(&mut pinger, Duration::from_millis(100))
            .await
            .is_some()
    );
    // A message and keep-alives: all 20 went, still open after 4 s (past
    // the 1.5 s idle limit), and answering.
    let (mut kept, pinged) = kept_pings.await.unwrap();
    assert_eq!(pinged, 20);
    assert!(opened.elapsed() > Duration::from_secs(3));
    probe(&mut kept, "k2").await;
    // The INVITE's connection, silent since its 404, is open too: the
    // gateway has not closed it (it answers a probe).
    probe(&mut invited, "i2").await;

    let log = gw.log();
    for cause in ["no_message", "slow_message", "idle"] {
        assert!(
            log.contains(&format!("cause=\"{cause}\"")),
            "no {cause} closing in the log\n{log}"
        );
    }
}

#[tokio::test]
async fn a_udp_call_gets_in_while_tcp_is_held_at_its_caps_under_a_low_fd_limit() {
    let (dir, db) = Gateway::provisioned("1234");
    // 128 open files: the TCP cap defaults to a quarter of that, 32, and
    // one source may hold 20 of them.
    let gw = Gateway::start_under(
        &["prlimit", "--nofile=128", "--"],
        dir,
        db,
        &["--sip-tcp-per-source", "20"],
    )
    .await;
    // 60 connections from two sources, each saying something so the
    // gateway keeps it: 20 from the first (its cap), then 12 from the
    // second (the overall cap, 32); the rest are closed at once.
    let mut held = Vec::new();
    let mut refused = 0;
    for i in 0..60 {
        let source = if i < 30 { "127.0.0.1" } else { "127.0.0.6" };
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let mut stream = socket.connect(gw.sip.parse().unwrap()).await.unwrap();
        let local = stream.local_addr().unwrap().to_string();
        let _ = stream
            .write_all(request("OPTIONS", &format!("h{i}"), &local, "TCP").as_bytes())
            .await;
        let mut buf = [0u8; 4096];
        match timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => held.push(stream),
            Ok(_) => refused += 1,
            Err(_) => panic!("connection {i}: neither answered nor closed in 5 s"),
        }
    }
    assert_eq!(held.len(), 32, "{refused} refused");
    assert_eq!(refused, 28);

    // UDP calls still get their RTP sockets and their prompt.
    let mut caller = Caller::dial(&gw.sip, Dial::default()).await;
    assert_eq!(caller.invite_status, 200, "{}", gw.log());
    let heard = caller.talk_and_listen(25, |_| vec![0i16; 160]).await;
    assert!(
        heard.len() >= 10,
        "heard {} frames of the prompt",
        heard.len()
    );
    caller.hang_up().await;
    // And the held connections still work.
    probe(&mut held[0], "after").await;

    let log = gw.log();
    for (source, cause) in [
        ("127.0.0.1", "per_source"),
        ("127.0.0.6", "max_connections"),
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("SIP source refused a TCP connection")
                    && l.contains(&format!("source={source}"))
                    && l.contains(&format!("cause=\"{cause}\""))),
            "no refusal of {source} for {cause}\n{log}"
        );
    }
    assert!(!log.contains("RTP port range exhausted"), "{log}");
}
