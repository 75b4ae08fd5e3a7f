//! The replay engine on paused time: whole calls against a gateway played
//! by a small UAS on the in-memory network (`net::MemoryNet`), so the
//! report's times are exact and a 32 s Timer B takes no wall-clock time.
//! (`tests/replay.rs` of the server plays the same traces against a real
//! gateway over loopback UDP.)

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dialgate::sip::message::{self, Message, Method};
use dialgate::sip::transaction::TimerConfig;
use dialgate_replay::engine::{self, Plan};
use dialgate_replay::net::{MemoryNet, Net, Socket};
use dialgate_replay::report::Summary;
use dialgate_replay::script::{Script, StepKind};
use dialgate_replay::trace;
use tokio::time::Instant;

const GATEWAY: &str = "127.0.0.2:5060";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

fn trace_text(name: &str) -> String {
    std::fs::read_to_string(repo().join("sip-fixtures/traces").join(name)).unwrap()
}

fn script(text: &str) -> Script {
    Script::from_trace(&trace::from_text(text).unwrap()).unwrap()
}

/// How the in-memory gateway answers.
#[derive(Clone, Copy, Debug, Default)]
struct Gateway {
    /// INVITEs it lets fall before answering one.
    ignore_invites: usize,
    /// Answers no INVITE at all.
    silent: bool,
    /// Answers `100 Trying` at once and the final answer this much later.
    answer_after: Option<Duration>,
    /// Refuses the INVITE with this status.
    refuse: Option<u16>,
}

/// What the gateway received, and when (from the run's start).
type Log = Arc<Mutex<Vec<(Duration, String)>>>;

fn response(request: &Message, status: &str, body: &str) -> Vec<u8> {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for name in ["Via", "From", "Call-ID", "CSeq"] {
        for value in request.headers_named(name) {
            out += &format!("{name}: {value}\r\n");
        }
    }
    let to = request.header("To").unwrap_or_default();
    if message::param(to, "tag").is_some() {
        out += &format!("To: {to}\r\n");
    } else {
        out += &format!("To: {to};tag=gw\r\n");
    }
    out += &format!("Contact: <sip:gw@{GATEWAY}>\r\n");
    if !body.is_empty() {
        out += "Content-Type: application/sdp\r\n";
    }
    out += &format!("Content-Length: {}\r\n\r\n{body}", body.len());
    out.into_bytes()
}

/// The gateway's SDP answer: PCMU and telephone-event, media to a port
/// nobody holds (the in-memory network drops what goes there).
fn answer_sdp() -> String {
    "v=0\r\no=gw 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n\
     m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
     a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n"
        .to_owned()
}

/// The caller admitted, as the real gateway says it: an INFO of the
/// `dialgate-outcome` package in the dialog of `request` (the caller's).
fn outcome_info(request: &Message, outcome: &str) -> Vec<u8> {
    let from = request.header("From").unwrap_or_default();
    let to = request.header("To").unwrap_or_default();
    let body = format!("outcome={outcome}\r\n");
    format!(
        "INFO sip:caller@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {GATEWAY};branch=z9hG4bK-gw-outcome\r\n\
         From: {to}\r\nTo: {from}\r\nCall-ID: {}\r\nCSeq: 1 INFO\r\n\
         Info-Package: dialgate-outcome\r\nContent-Type: application/x-dialgate-outcome\r\n\
         Content-Length: {}\r\n\r\n{body}",
        request.call_id(),
        body.len()
    )
    .into_bytes()
}

/// Plays `gateway` on `socket` until the test ends: logs every message it
/// gets, answers INVITEs as told, every other request 200, and tells the
/// caller it is admitted once its `#` arrives by SIP INFO.
async fn serve(socket: Socket, gateway: Gateway, log: Log, start: Instant) {
    let mut buf = vec![0u8; 65_536];
    let mut invites = 0usize;
    while let Ok((n, from)) = socket.recv_from(&mut buf).await {
        let Ok(m) = message::parse(&buf[..n]) else {
            continue;
        };
        let what = match (m.method(), m.status()) {
            (Some(method), _) => method.as_str().to_owned(),
            (None, Some(status)) => status.0.to_string(),
            _ => continue,
        };
        log.lock().unwrap().push((start.elapsed(), what));
        match m.method() {
            Some(Method::Invite) => {
                invites += 1;
                if gateway.silent || invites <= gateway.ignore_invites {
                    continue;
                }
                if let Some(status) = gateway.refuse {
                    let line = format!("{status} Service Unavailable");
                    let _ = socket.send_to(&response(&m, &line, ""), from).await;
                    continue;
                }
                if let Some(after) = gateway.answer_after {
                    let _ = socket.send_to(&response(&m, "100 Trying", ""), from).await;
                    tokio::time::sleep(after).await;
                }
                let ok = response(&m, "200 OK", &answer_sdp());
                let _ = socket.send_to(&ok, from).await;
            }
            Some(Method::Ack) | None => {}
            Some(_) => {
                let _ = socket.send_to(&response(&m, "200 OK", ""), from).await;
                let hash = String::from_utf8_lossy(&m.body).contains("Signal=#");
                if m.method() == Some(&Method::Info) && hash {
                    let _ = socket.send_to(&outcome_info(&m, "admitted"), from).await;
                }
            }
        }
    }
}

/// One call of `script` against `gateway`, on paused time.
async fn replay(
    script: Script,
    gateway: Gateway,
    speed: f64,
) -> (Summary, Vec<(Duration, String)>) {
    let net = MemoryNet::new();
    let target = GATEWAY.parse().unwrap();
    let socket = Net::Memory(net.clone()).bind(target).await.unwrap();
    let log = Log::default();
    let start = Instant::now();
    let uas = tokio::spawn(serve(socket, gateway, log.clone(), start));
    let plan = Plan {
        scripts: vec![script],
        codes: Vec::new(),
        target,
        bind: "127.0.0.1".parse().unwrap(),
        rate: 10.0,
        calls: 1,
        concurrency: 1,
        speed,
        duration: Duration::from_secs(300),
        timers: TimerConfig::default(),
        net: Net::Memory(net),
    };
    let report = engine::run(plan, |_| {}).await.unwrap();
    uas.abort();
    let log = log.lock().unwrap().clone();
    (report.summary(), log)
}

/// tokio's timers fire on whole milliseconds, never early.
const TICK: Duration = Duration::from_millis(1);

/// Seconds as the report gives them, against a time a timer was set for.
fn close(actual: f64, expected: Duration) -> bool {
    let actual = Duration::from_secs_f64(actual);
    actual + Duration::from_micros(1) >= expected && actual <= expected + TICK
}

/// A latency from the report's histogram (three significant figures).
fn near(actual_ms: f64, expected: Duration) -> bool {
    let expected_ms = expected.as_secs_f64() * 1000.0;
    (actual_ms - expected_ms).abs() <= expected_ms * 0.001
}

/// When the script's last request goes out, after the INVITE's answer.
fn after_answer(s: &Script, step: &dialgate_replay::script::Step) -> Duration {
    step.at - s.answered_at.unwrap()
}

#[tokio::test(start_paused = true)]
async fn speed_divides_the_traces_timing_exactly() {
    let s = script(&trace_text("info_admitted.txt"));
    let bye = s
        .steps
        .iter()
        .rev()
        .find(|step| matches!(&step.kind, StepKind::Request { message, .. } if message.method() == Some(&Method::Bye)))
        .unwrap();
    // The gateway answers at once, so the call lasts from the answer to
    // the BYE's 200: the trace's 3.55 s, divided by the speed.
    let length = after_answer(&s, bye);
    assert!(length > Duration::from_secs(3), "{length:?}");
    for speed in [1.0, 4.0] {
        let (r, _) = replay(s.clone(), Gateway::default(), speed).await;
        assert_eq!(r.admitted, 1, "{r:?}");
        assert_eq!(r.retransmissions_sent, 0, "{r:?}");
        assert!(
            close(r.elapsed_s, length.div_f64(speed)),
            "speed {speed}: {} s for {length:?}",
            r.elapsed_s
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_trace_that_stops_without_a_bye_is_hung_up_a_second_after_its_end() {
    let text = trace_text("info_admitted.txt");
    // Cut the capture before the caller's BYE: neither side hangs up in it.
    let lines: Vec<&str> = text.lines().collect();
    let bye = lines.iter().position(|l| l.starts_with("BYE ")).unwrap();
    let s = script(&lines[..bye - 1].join("\n"));
    let last = after_answer(&s, s.steps.last().unwrap());
    let (r, log) = replay(s, Gateway::default(), 1.0).await;
    assert_eq!(r.admitted, 1, "{r:?}");
    let bye_at = log
        .iter()
        .find(|(_, m)| m == "BYE")
        .expect("the replay's BYE")
        .0;
    let due = last + Duration::from_secs(1);
    assert!(
        bye_at >= due && bye_at <= due + TICK,
        "{bye_at:?}, due {due:?}"
    );
    assert!(close(r.elapsed_s, bye_at), "{r:?}");
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_invite_is_sent_again_at_t1_doubling() {
    let s = script(&trace_text("info_admitted.txt"));
    let gateway = Gateway {
        ignore_invites: 3,
        ..Gateway::default()
    };
    let (r, log) = replay(s, gateway, 1.0).await;
    let invites: Vec<Duration> = log
        .iter()
        .filter(|(_, m)| m == "INVITE")
        .map(|(at, _)| *at)
        .collect();
    let ms = |v: u64| Duration::from_millis(v);
    assert_eq!(invites, [ms(0), ms(500), ms(1500), ms(3500)], "{log:?}");
    assert_eq!(r.retransmissions_sent, 3, "{r:?}");
    assert_eq!(r.admitted, 1, "{r:?}");
    // Setup is timed from the first INVITE: the answer came to the fourth.
    assert!(near(r.setup_latency.max_ms, ms(3500)), "{r:?}");
}

#[tokio::test(start_paused = true)]
async fn an_invite_nobody_answers_fails_at_timer_b() {
    let s = script(&trace_text("info_admitted.txt"));
    let gateway = Gateway {
        silent: true,
        ..Gateway::default()
    };
    let (r, log) = replay(s, gateway, 1.0).await;
    assert_eq!(r.failed_by_cause.get("no_answer"), Some(&1), "{r:?}");
    // Timer A: 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s; Timer B at 32 s.
    assert_eq!(r.retransmissions_sent, 6, "{r:?}");
    assert_eq!(log.len(), 7, "{log:?}");
    assert!(close(r.elapsed_s, Duration::from_secs(32)), "{r:?}");
}

#[tokio::test(start_paused = true)]
async fn a_provisional_answer_stops_the_resends_and_the_give_up() {
    let s = script(&trace_text("info_admitted.txt"));
    // Longer than Timer B: Proceeding waits for the final answer.
    let gateway = Gateway {
        answer_after: Some(Duration::from_secs(40)),
        ..Gateway::default()
    };
    let (r, log) = replay(s, gateway, 1.0).await;
    assert_eq!(r.retransmissions_sent, 0, "{log:?}");
    assert_eq!(r.admitted, 1, "{r:?}");
    assert!(
        near(r.setup_latency.max_ms, Duration::from_secs(40)),
        "{r:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_invite_is_acknowledged_and_counted_by_its_status() {
    let s = script(&trace_text("info_admitted.txt"));
    let gateway = Gateway {
        refuse: Some(503),
        ..Gateway::default()
    };
    let (r, log) = replay(s, gateway, 1.0).await;
    let got: Vec<&str> = log.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(got, ["INVITE", "ACK"], "{log:?}");
    assert_eq!(r.answered, 0, "{r:?}");
    // The trace's gateway answered 200: a 503 here is a failure, by its status.
    assert_eq!(r.failed_by_cause.get("sip_503"), Some(&1), "{r:?}");
}
