//! RFC 4475's torture messages (tests/data/rfc4475: byte-exact from the
//! RFC's own archive, see its README) sent to a real gateway over UDP and
//! over TCP, each with the answer this dial-in UAS gives it. The demo
//! number is not provisioned here, so an INVITE the gateway takes is
//! answered 404; a response (the RFC has five) is never answered.

mod support;

use std::time::Duration;

use support::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout};

/// What the gateway does with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Its final answer has this status (as the RFC asks, or one of the
    /// answers it allows).
    Final(u16),
    /// Its final answer has this status where the RFC asks for another
    /// (left as it is: see the note in the table).
    Deviates(u16),
    /// No answer (a response, or too little to answer).
    Silent,
    /// TCP only: the connection is closed (the framing cannot be trusted).
    Closed,
    /// TCP only: no answer yet, the connection open (the message is not
    /// complete: the message timeout closes it later).
    Waits,
}

use Verdict::*;

/// (name, over UDP, over TCP, why).
const CASES: &[(&str, Verdict, Verdict, &str)] = &[
    (
        "wsinv",
        Final(481),
        Final(481),
        "well formed; its To tag names no dialog of ours",
    ),
    (
        "intmeth",
        Final(501),
        Final(501),
        "well formed: an unknown method, a strange URI",
    ),
    ("esc01", Final(404), Final(404), "well formed"),
    (
        "escnull",
        Final(405),
        Final(405),
        "well formed REGISTER; we are no registrar",
    ),
    (
        "esc02",
        Final(501),
        Final(501),
        "escaped method name: unknown",
    ),
    (
        "lwsdisp",
        Final(200),
        Final(200),
        "accepted (display name without space)",
    ),
    (
        "longreq",
        Final(404),
        Final(404),
        "well formed, 3,515 bytes",
    ),
    (
        "dblreq",
        Final(405),
        Final(405),
        "UDP: the trailing bytes are ignored; TCP: read as a second request too",
    ),
    ("semiuri", Final(200), Final(200), "user part with ';'"),
    ("transports", Final(200), Final(200), "well formed"),
    (
        "mpart01",
        Final(405),
        Final(405),
        "well formed multipart body",
    ),
    ("unreason", Silent, Silent, "a response"),
    ("noreason", Silent, Silent, "a response"),
    (
        "badinv01",
        Deviates(404),
        Deviates(404),
        "RFC: 400 (empty Via/Contact parameters); we take it",
    ),
    ("clerr", Final(400), Waits, "Content-Length past the body"),
    ("ncl", Final(400), Closed, "negative Content-Length"),
    ("scalar02", Final(400), Final(400), "CSeq over 2^32-1"),
    ("scalarlg", Silent, Silent, "a response"),
    (
        "quotbal",
        Deviates(404),
        Deviates(404),
        "RFC: 400 (unterminated quote); we take it",
    ),
    (
        "ltgtruri",
        Final(404),
        Final(404),
        "<> around the Request-URI: 400 or liberal",
    ),
    (
        "lwsruri",
        Final(400),
        Final(400),
        "white space in the Request-URI",
    ),
    (
        "lwsstart",
        Final(400),
        Final(400),
        "extra spaces in the request line: 400 or liberal",
    ),
    (
        "trws",
        Final(400),
        Final(400),
        "trailing space in the request line: 400 or liberal",
    ),
    (
        "escruri",
        Final(404),
        Final(404),
        "escaped headers in the Request-URI: 400 or liberal",
    ),
    (
        "baddate",
        Final(404),
        Final(404),
        "bad Date: better taken than refused",
    ),
    (
        "regbadct",
        Final(405),
        Final(405),
        "REGISTER; we are no registrar",
    ),
    (
        "badaspec",
        Final(200),
        Final(200),
        "spaces in an addr-spec: 400 or liberal",
    ),
    (
        "baddn",
        Final(400),
        Waits,
        "unquoted display names; the archive lacks its blank line",
    ),
    ("badvers", Final(505), Final(505), "SIP/7.0"),
    ("mismatch01", Final(400), Final(400), "CSeq method differs"),
    (
        "mismatch02",
        Final(400),
        Final(400),
        "unknown method, CSeq differs: 501 or 400",
    ),
    ("bigcode", Silent, Silent, "a response"),
    (
        "badbranch",
        Final(200),
        Final(200),
        "a branch without the magic cookie",
    ),
    (
        "insuf",
        Silent,
        Silent,
        "no Call-ID, From or To: nothing to answer with",
    ),
    ("unkscm", Final(416), Final(416), "unknown URI scheme"),
    ("novelsc", Final(416), Final(416), "a novel URI scheme"),
    (
        "unksm2",
        Final(405),
        Final(405),
        "REGISTER; we are no registrar",
    ),
    (
        "bext01",
        Final(420),
        Final(420),
        "Require of extensions we lack",
    ),
    (
        "invut",
        Deviates(404),
        Deviates(404),
        "RFC: 415 (unknown body type); we route first",
    ),
    (
        "regaut01",
        Final(405),
        Final(405),
        "REGISTER; we are no registrar",
    ),
    (
        "multi01",
        Final(400),
        Final(400),
        "single-value headers twice",
    ),
    ("mcl01", Final(400), Closed, "Content-Lengths that disagree"),
    ("bcast", Silent, Silent, "a response"),
    (
        "zeromf",
        Final(200),
        Final(200),
        "Max-Forwards 0: an endpoint answers",
    ),
    (
        "cparam01",
        Final(405),
        Final(405),
        "REGISTER; we are no registrar",
    ),
    (
        "cparam02",
        Final(405),
        Final(405),
        "REGISTER; we are no registrar",
    ),
    (
        "regescrt",
        Final(405),
        Final(405),
        "REGISTER; we are no registrar",
    ),
    (
        "sdp01",
        Deviates(404),
        Deviates(404),
        "RFC: 406 or 400 (Accept without SDP); we route first",
    ),
    ("inv2543", Final(404), Final(404), "RFC 2543 INVITE: taken"),
];

fn message(name: &str) -> Vec<u8> {
    std::fs::read(support::repo().join(format!("tests/data/rfc4475/{name}.dat")))
        .unwrap_or_else(|e| panic!("{name}.dat: {e}"))
}

/// The status of the first final answer among `texts`.
fn final_status(texts: &[String]) -> Option<u16> {
    texts
        .iter()
        .filter_map(|t| t.strip_prefix("SIP/2.0 ")?.get(..3)?.parse::<u16>().ok())
        .find(|s| *s >= 200)
}

/// How long an answer may take.
const ANSWER: Duration = Duration::from_secs(3);

async fn over_udp(gw: &Gateway, name: &str) -> Verdict {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(&gw.sip).await.unwrap();
    sock.send(&message(name)).await.unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + ANSWER;
    while let Ok(Ok(n)) = timeout(
        deadline.saturating_duration_since(Instant::now()),
        sock.recv(&mut buf),
    )
    .await
    {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        if let Some(status) = final_status(&got) {
            return Final(status);
        }
    }
    Silent
}

async fn over_tcp(gw: &Gateway, name: &str) -> Verdict {
    let mut tcp = TcpStream::connect(&gw.sip).await.unwrap();
    tcp.write_all(&message(name)).await.unwrap();
    let mut text = String::new();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + ANSWER;
    loop {
        match timeout(
            deadline.saturating_duration_since(Instant::now()),
            tcp.read(&mut buf),
        )
        .await
        {
            Ok(Ok(0) | Err(_)) => return final_status(&[text]).map_or(Closed, Final),
            Ok(Ok(n)) => {
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
                let lines: Vec<String> = text.lines().map(str::to_owned).collect();
                if let Some(status) = final_status(&lines) {
                    return Final(status);
                }
            }
            Err(_) => return Waits,
        }
    }
}

/// Runs every case through `send`, all at once; returns the mismatches.
async fn run<F, Fut>(gw: &Gateway, transport: &str, send: F) -> Vec<String>
where
    F: Fn(&'static str) -> Fut,
    Fut: std::future::Future<Output = Verdict> + Send + 'static,
{
    let results = futures_join(CASES.iter().map(|(name, udp, tcp, why)| {
        let want = if transport == "UDP" { *udp } else { *tcp };
        let got = send(name);
        async move { (*name, want, got.await, *why) }
    }))
    .await;
    let mut wrong = Vec::new();
    for (name, want, got, why) in results {
        let want_plain = match want {
            Deviates(s) => Final(s),
            w => w,
        };
        // Over TCP, silence is an open connection.
        let ok = got == want_plain || (want == Silent && got == Waits);
        if !ok {
            wrong.push(format!(
                "{transport} {name}: got {got:?}, want {want:?} ({why})"
            ));
        }
    }
    assert!(!gw.log().contains("panicked"), "{}", gw.log());
    wrong
}

/// Polls every future to completion (no extra crate for a join_all).
async fn futures_join<T, I>(futures: I) -> Vec<T>
where
    I: IntoIterator,
    I::Item: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("case task"));
    }
    out
}

#[tokio::test]
async fn every_torture_message_over_udp_gets_its_answer() {
    let (dir, db) = Gateway::provisioned("1234");
    let gw = std::sync::Arc::new(Gateway::start(dir, db, &["--sip-source-rate", "0"]).await);
    let g = gw.clone();
    let wrong = run(&gw, "UDP", move |name| {
        let g = g.clone();
        async move { over_udp(&g, name).await }
    })
    .await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn every_torture_message_over_tcp_gets_its_answer() {
    let (dir, db) = Gateway::provisioned("1234");
    // All 49 connections at once from one address: past the per-source cap.
    let extra = ["--sip-source-rate", "0", "--sip-tcp-per-source", "100"];
    let gw = std::sync::Arc::new(Gateway::start(dir, db, &extra).await);
    let g = gw.clone();
    let wrong = run(&gw, "TCP", move |name| {
        let g = g.clone();
        async move { over_tcp(&g, name).await }
    })
    .await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_table_covers_every_message_in_the_manifest() {
    let manifest =
        std::fs::read_to_string(support::repo().join("tests/data/rfc4475/MANIFEST.tsv")).unwrap();
    let names: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert_eq!(names.len(), 49);
    for name in names {
        assert!(
            CASES.iter().any(|(n, ..)| *n == name),
            "{name} has no expected answer"
        );
    }
}
