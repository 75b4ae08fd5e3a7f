//! SIP on the wire against a real gateway: OPTIONS, methods it does not
//! take, malformed messages, a flood of garbage, and TCP framing.

mod support;

use std::time::Duration;

use support::{Gateway, request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

async fn exchange(sock: &UdpSocket, target: &str, msg: &[u8]) -> String {
    sock.send_to(msg, target).await.expect("send");
    let mut buf = vec![0u8; 65536];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("an answer within 5 s")
        .expect("recv");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn options_405_501_and_400_over_udp() {
    let (dir, db) = Gateway::provisioned("1234");
    let gw = Gateway::start(dir, db, &[]).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = sock.local_addr().unwrap().to_string();

    let ok = exchange(
        &sock,
        &gw.sip,
        request("OPTIONS", "o1", &local, "UDP").as_bytes(),
    )
    .await;
    assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
    assert!(
        ok.contains("Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"),
        "{ok}"
    );
    assert!(ok.contains("received=127.0.0.1"), "{ok}");

    let r = exchange(
        &sock,
        &gw.sip,
        request("SUBSCRIBE", "s1", &local, "UDP").as_bytes(),
    )
    .await;
    assert!(r.starts_with("SIP/2.0 405 "), "{r}");
    assert!(r.contains("Allow: "), "{r}");

    let r = exchange(
        &sock,
        &gw.sip,
        request("FROBNICATE", "f1", &local, "UDP").as_bytes(),
    )
    .await;
    assert!(r.starts_with("SIP/2.0 501 "), "{r}");

    let broken =
        request("OPTIONS", "b1", &local, "UDP").replace("Max-Forwards: 70", "Max-Forwards 70");
    let r = exchange(&sock, &gw.sip, broken.as_bytes()).await;
    assert!(r.starts_with("SIP/2.0 400 "), "{r}");

    let bye = request("BYE", "x1", &local, "UDP").replace(
        "To: <sip:+15550100@127.0.0.1>",
        "To: <sip:+15550100@127.0.0.1>;tag=none",
    );
    let r = exchange(&sock, &gw.sip, bye.as_bytes()).await;
    assert!(r.starts_with("SIP/2.0 481 "), "{r}");
}

#[tokio::test]
async fn garbage_flood_is_survived_and_the_gateway_still_answers() {
    let (dir, db) = Gateway::provisioned("1234");
    // Every datagram parsed: no per-source limit to drop most of them.
    let gw = Gateway::start(dir, db, &["--sip-source-rate", "0"]).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = sock.local_addr().unwrap().to_string();
    let valid = request("OPTIONS", "g", &local, "UDP");
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    // Bounded: 5,000 datagrams of mutated SIP and noise.
    for i in 0..5_000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut b = valid.as_bytes().to_vec();
        for k in 0..4 {
            let pos = ((x >> (k * 11)) as usize) % b.len();
            b[pos] = (x >> (k * 7)) as u8;
        }
        if i % 3 == 0 {
            b.truncate((x as usize) % b.len());
        }
        let _ = sock.send_to(&b, &gw.sip).await;
    }
    // Drain whatever answers came, then check the gateway still works.
    let mut buf = vec![0u8; 65536];
    while tokio::time::timeout(Duration::from_millis(300), sock.recv_from(&mut buf))
        .await
        .is_ok()
    {}
    let ok = exchange(
        &sock,
        &gw.sip,
        request("OPTIONS", "after", &local, "UDP").as_bytes(),
    )
    .await;
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    assert!(!gw.log().contains("panicked"), "{}", gw.log());
}

#[tokio::test]
async fn tcp_messages_are_framed_by_content_length() {
    let (dir, db) = Gateway::provisioned("1234");
    let gw = Gateway::start(dir, db, &[]).await;
    let mut tcp = TcpStream::connect(&gw.sip).await.unwrap();
    let local = tcp.local_addr().unwrap().to_string();
    // Two requests in one write, the second split across writes.
    let a = request("OPTIONS", "t1", &local, "TCP");
    let b = request("OPTIONS", "t2", &local, "TCP");
    let (b1, b2) = b.split_at(40);
    tcp.write_all(format!("{a}{b1}").as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    tcp.write_all(b2.as_bytes()).await.unwrap();
    let mut got = String::new();
    let mut buf = vec![0u8; 8192];
    while got.matches("SIP/2.0 200 OK").count() < 2 {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .expect("answers within 5 s")
            .unwrap();
        assert!(n > 0, "connection closed early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        got.contains("branch=z9hG4bKt1") && got.contains("branch=z9hG4bKt2"),
        "{got}"
    );
}

fn invite_with_sdp(local: &str, branch: &str, formats: &str, rtpmaps: &str) -> String {
    let sdp = format!(
        "v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP {formats}\r\n{rtpmaps}"
    );
    format!(
        "INVITE sip:+15550100@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
From: <sip:tester@127.0.0.1>;tag=t{branch}\r\n\
To: <sip:+15550100@127.0.0.1>\r\n\
Call-ID: {branch}@wire\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:tester@{local}>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

async fn final_response(sock: &UdpSocket) -> String {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
            .await
            .expect("a response within 5 s")
            .expect("recv");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("SIP/2.0 1") {
            return text;
        }
    }
}

#[tokio::test]
async fn offer_without_a_common_codec_gets_488() {
    let (dir, db) = Gateway::provisioned("1234");
    let gw = Gateway::start(dir, db, &[]).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = sock.local_addr().unwrap().to_string();
    let g729_only = invite_with_sdp(&local, "c1", "18", "a=rtpmap:18 G729/8000\r\n");
    sock.send_to(g729_only.as_bytes(), &gw.sip).await.unwrap();
    let r = final_response(&sock).await;
    assert!(r.starts_with("SIP/2.0 488 "), "{r}");
}

#[tokio::test]
async fn missing_ack_ends_the_call_with_bye_after_64_t1() {
    let (dir, db) = Gateway::provisioned("1234");
    // T1 = 50 ms: the 2xx is retransmitted at 50, 150, 350 ms … and BYE follows at 3.2 s.
    let gw = Gateway::start(dir, db, &["--sip-t1", "50ms"]).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = sock.local_addr().unwrap().to_string();
    let invite = invite_with_sdp(&local, "n1", "0", "a=rtpmap:0 PCMU/8000\r\n");
    sock.send_to(invite.as_bytes(), &gw.sip).await.unwrap();
    let mut oks = 0;
    let mut buf = vec![0u8; 65536];
    let started = tokio::time::Instant::now();
    let bye = loop {
        let (n, _) = tokio::time::timeout(Duration::from_secs(10), sock.recv_from(&mut buf))
            .await
            .expect("traffic within 10 s")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with("SIP/2.0 200") {
            oks += 1;
        } else if text.starts_with("BYE ") {
            break text;
        }
    };
    let elapsed = started.elapsed();
    assert!(
        oks >= 5,
        "the 200 is retransmitted while unacknowledged ({oks} copies)"
    );
    assert!(
        elapsed >= Duration::from_millis(3000) && elapsed < Duration::from_secs(6),
        "BYE after 64·T1 = 3.2 s, got {elapsed:?}"
    );
    assert!(bye.contains("Call-ID: n1@wire"), "{bye}");
}

#[tokio::test]
async fn missing_prompt_stops_start_up_naming_the_file() {
    let (dir, db) = Gateway::provisioned("1234");
    let prompts = dir.path().join("prompts/en");
    std::fs::create_dir_all(&prompts).unwrap();
    for f in std::fs::read_dir(support::repo().join("prompts/en")).unwrap() {
        let f = f.unwrap().path();
        if f.file_stem().is_some_and(|s| s != "goodbye") {
            std::fs::copy(&f, prompts.join(f.file_name().unwrap())).unwrap();
        }
    }
    let out = std::process::Command::new(support::BIN)
        .args([
            "serve",
            "--sip-listen",
            "127.0.0.1:0",
            "--database",
            &db,
            "--prompts",
        ])
        .arg(dir.path().join("prompts"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("goodbye"), "{err}");
}
