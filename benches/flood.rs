//! The flood bench: `cargo bench --bench flood` (or `./dev bench flood`).
//!
//! One source (127.0.0.5) sends OPTIONS at a rising rate, a few seconds a
//! step, while a caller on another address (127.0.0.1) places one call a
//! step (INVITE with an SDP offer, retransmitted as RFC 3261 Timer A says,
//! then ACK and BYE): how long the INVITE waits for its 200, how many
//! OPTIONS the flooder could send and how many answers it got back, the
//! gateway's cores and RSS. Each variant is a fresh release gateway in the
//! same run: the per-source limit at its default, and off
//! (`--sip-source-rate 0`); with `FLOOD_BENCH_BEFORE=/path/to/dialgate`
//! also that binary on its defaults (an earlier build, for a before and
//! after). The figure: the highest flood rate at which the call was
//! answered within a second.
//!
//! Flags: `--step-secs N` (default 6) and `--rates A,B,…` (default
//! 1,000 to 100,000). Prints a table and writes target/flood-bench.json. Under `cargo test`
//! (no `--bench`) or with `--quick` it runs two short steps of the default
//! variant. Every flood is bounded in messages and time.

#[path = "support/gateway.rs"]
mod gateway;
#[path = "support/proc.rs"]
mod proc;

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gateway::{BIN, Launch, repo};
const FLOODER: &str = "127.0.0.5";
const CALLER: &str = "127.0.0.1";

/// A demo gateway of `bin` on its defaults but for `extra`.
struct Gateway {
    gw: gateway::Gateway,
    _dir: tempfile::TempDir,
}

impl Gateway {
    fn start(bin: &str, extra: &[&str]) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut launch = Launch::in_dir(dir.path(), "127.0.0.2:0").with_args(extra);
        launch.bin = bin.to_owned();
        Gateway {
            gw: gateway::Gateway::start(&launch),
            _dir: dir,
        }
    }
}

fn options(n: u64, local: &str) -> String {
    format!(
        "OPTIONS sip:probe@127.0.0.2 SIP/2.0\r\n\
Via: SIP/2.0/UDP {local};branch=z9hG4bK-f{n};rport\r\n\
From: <sip:scan@{FLOODER}>;tag=f{n}\r\n\
To: <sip:probe@127.0.0.2>\r\n\
Call-ID: {n}@flood\r\n\
CSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n"
    )
}

/// Sends OPTIONS at `rate` a second for `length` (in 1 ms slices, as many
/// as the slice is owed), while a thread counts the answers; returns
/// (sent, answered).
fn flood(target: &str, rate: u64, length: Duration, stop: Arc<AtomicBool>) -> (u64, u64) {
    let sock = UdpSocket::bind(format!("{FLOODER}:0")).expect("flooder socket");
    let local = sock.local_addr().expect("addr").to_string();
    let answered = Arc::new(AtomicU64::new(0));
    let reader = {
        let sock = sock.try_clone().expect("clone");
        let answered = answered.clone();
        let stop = stop.clone();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut quiet_since = None;
            loop {
                match sock.recv_from(&mut buf) {
                    Ok(_) => {
                        answered.fetch_add(1, Ordering::Relaxed);
                        quiet_since = None;
                    }
                    Err(_) if stop.load(Ordering::Relaxed) => {
                        // Stopped, and nothing for 200 ms twice: done.
                        if quiet_since.replace(()).is_some() {
                            return;
                        }
                    }
                    Err(_) => {}
                }
            }
        })
    };
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < length {
        let owed = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < owed {
            let _ = sock.send_to(options(sent, &local).as_bytes(), target);
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    (sent, answered.load(Ordering::Relaxed))
}

/// What a SIP message's status line says (0 for a request or garbage).
fn status(msg: &[u8]) -> u16 {
    std::str::from_utf8(msg)
        .ok()
        .and_then(|t| t.strip_prefix("SIP/2.0 "))
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// One call from the caller's address: the time from the first INVITE to
/// its 200 (`None`: no 200 within 8 s), then ACK and BYE.
fn call(target: &str, n: u32) -> Option<Duration> {
    let sock = UdpSocket::bind(format!("{CALLER}:0")).expect("caller socket");
    let media = UdpSocket::bind(format!("{CALLER}:0")).expect("caller media");
    let local = sock.local_addr().expect("addr").to_string();
    let rtp = media.local_addr().expect("addr").port();
    let sdp = format!(
        "v=0\r\no=bench 1 1 IN IP4 {CALLER}\r\ns=-\r\nc=IN IP4 {CALLER}\r\nt=0 0\r\n\
m=audio {rtp} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    );
    let call_id = format!("call-{n}@flood-bench");
    let head = |method: &str, cseq: u32, to_tag: &str, branch: &str| {
        format!(
            "{method} sip:+15550100@{target} SIP/2.0\r\n\
Via: SIP/2.0/UDP {local};branch=z9hG4bK-{branch};rport\r\n\
From: <sip:bench@{CALLER}>;tag=c{n}\r\n\
To: <sip:+15550100@{target}>{to_tag}\r\n\
Call-ID: {call_id}\r\n\
CSeq: {cseq} {method}\r\n\
Contact: <sip:bench@{local}>\r\n\
Max-Forwards: 70\r\n"
        )
    };
    let invite = format!(
        "{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        head("INVITE", 1, "", &format!("i{n}")),
        sdp.len()
    );
    let started = Instant::now();
    let mut resend_at = Duration::from_millis(500);
    let mut interval = resend_at;
    let _ = sock.send_to(invite.as_bytes(), target);
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let mut buf = vec![0u8; 65536];
    let mut provisional = false;
    let ok = loop {
        if started.elapsed() > Duration::from_secs(8) {
            return None;
        }
        // Timer A: until a provisional answer, the INVITE goes again.
        if !provisional && started.elapsed() >= resend_at {
            let _ = sock.send_to(invite.as_bytes(), target);
            interval *= 2;
            resend_at += interval;
        }
        let Ok((len, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        match status(&buf[..len]) {
            100..=199 => provisional = true,
            200 => break String::from_utf8_lossy(&buf[..len]).into_owned(),
            300.. => return None,
            _ => {}
        }
    };
    let answered = started.elapsed();
    let to_tag = header(&ok, "To")
        .and_then(|t| t.split(";tag=").nth(1))
        .unwrap_or("")
        .to_owned();
    let to_tag = format!(";tag={to_tag}");
    let ack = format!(
        "{}Content-Length: 0\r\n\r\n",
        head("ACK", 1, &to_tag, &format!("a{n}"))
    );
    let bye = format!(
        "{}Content-Length: 0\r\n\r\n",
        head("BYE", 2, &to_tag, &format!("b{n}"))
    );
    let _ = sock.send_to(ack.as_bytes(), target);
    for _ in 0..4 {
        let _ = sock.send_to(bye.as_bytes(), target);
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            if let Ok((len, _)) = sock.recv_from(&mut buf)
                && status(&buf[..len]) == 200
                && String::from_utf8_lossy(&buf[..len]).contains(" BYE")
            {
                return Some(answered);
            }
        }
    }
    Some(answered)
}

#[derive(serde::Serialize)]
struct Step {
    offered_per_s: u64,
    sent_per_s: f64,
    answered_per_s: f64,
    /// INVITE to 200, ms; `None`: no 200 within 8 s.
    call_answered_ms: Option<f64>,
    gateway_cores: f64,
    rss_mib: f64,
}

#[derive(serde::Serialize)]
struct Variant {
    name: String,
    steps: Vec<Step>,
    /// The highest offered rate whose call was answered within 1 s (with
    /// every lower one also so).
    highest_rate_answered_within_1s: Option<u64>,
}

fn run_variant(name: &str, bin: &str, extra: &[&str], rates: &[u64], step: Duration) -> Variant {
    let gw = Gateway::start(bin, extra);
    let pid = gw.gw.pid();
    let mut steps = Vec::new();
    for (i, &rate) in rates.iter().enumerate() {
        let stop = Arc::new(AtomicBool::new(false));
        let cpu_before = proc::cpu(pid);
        let started = Instant::now();
        let flooder = {
            let target = gw.gw.sip.clone();
            let stop = stop.clone();
            std::thread::spawn(move || flood(&target, rate, step, stop))
        };
        // The call goes in a third of the way into the step.
        std::thread::sleep(step / 3);
        let answered = call(&gw.gw.sip, i as u32);
        let (sent, got) = flooder.join().expect("flooder");
        let cpu = proc::cpu(pid).saturating_sub(cpu_before);
        let secs = started.elapsed().as_secs_f64();
        let s = Step {
            offered_per_s: rate,
            sent_per_s: sent as f64 / step.as_secs_f64(),
            answered_per_s: got as f64 / step.as_secs_f64(),
            call_answered_ms: answered.map(|d| d.as_secs_f64() * 1e3),
            gateway_cores: cpu.as_secs_f64() / secs,
            rss_mib: proc::rss_kib(pid) as f64 / 1024.0,
        };
        eprintln!(
            "flood bench: {name}: {rate}/s offered, {:.0}/s sent, {:.0}/s answered, call {}, {:.2} cores, {:.1} MiB",
            s.sent_per_s,
            s.answered_per_s,
            s.call_answered_ms
                .map_or("not answered".into(), |ms| format!(
                    "answered in {ms:.1} ms"
                )),
            s.gateway_cores,
            s.rss_mib
        );
        steps.push(s);
        // Quiet between steps: the limit's episode ends, queues drain.
        std::thread::sleep(Duration::from_secs(2));
    }
    let highest = steps
        .iter()
        .take_while(|s| s.call_answered_ms.is_some_and(|ms| ms <= 1000.0))
        .last()
        .map(|s| s.offered_per_s);
    Variant {
        name: name.to_owned(),
        steps,
        highest_rate_answered_within_1s: highest,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--quick");
    let (mut rates, mut step): (Vec<u64>, _) = if quick {
        (vec![500, 5_000], Duration::from_secs(2))
    } else {
        (
            vec![1_000, 3_000, 10_000, 30_000, 60_000, 100_000],
            Duration::from_secs(6),
        )
    };
    // `--step-secs N` (each rate held N s, at most 120; the call goes in a
    // third of the way in) and `--rates A,B,…` (at most 200,000/s).
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    if let Some(secs) = flag("--step-secs") {
        let secs: u64 = secs.parse().expect("--step-secs takes whole seconds");
        step = Duration::from_secs(secs.clamp(1, 120));
    }
    if let Some(list) = flag("--rates") {
        rates = list
            .split(',')
            .map(|r| r.trim().parse::<u64>().expect("--rates takes numbers"))
            .map(|r| r.clamp(1, 200_000))
            .collect();
    }
    let rates = rates.as_slice();
    let mut variants = vec![run_variant("limit 1000/s (default)", BIN, &[], rates, step)];
    if !quick {
        variants.push(run_variant(
            "limit off",
            BIN,
            &["--sip-source-rate", "0"],
            rates,
            step,
        ));
        if let Ok(before) = std::env::var("FLOOD_BENCH_BEFORE") {
            variants.push(run_variant(
                "before (FLOOD_BENCH_BEFORE)",
                &before,
                &[],
                rates,
                step,
            ));
        }
    }
    println!(
        "\nflood bench, {}{}: OPTIONS from one source, one call a step from another",
        chrono::Utc::now().format("%Y-%m-%d"),
        if quick { ", quick sizes" } else { "" }
    );
    println!(
        "| variant | offered/s | sent/s | answered/s | call answered in | gateway cores | RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|");
    for v in &variants {
        for s in &v.steps {
            println!(
                "| {} | {} | {:.0} | {:.0} | {} | {:.2} | {:.1} |",
                v.name,
                s.offered_per_s,
                s.sent_per_s,
                s.answered_per_s,
                s.call_answered_ms
                    .map_or("no 200 in 8 s".into(), |ms| format!("{ms:.1} ms")),
                s.gateway_cores,
                s.rss_mib
            );
        }
    }
    for v in &variants {
        println!(
            "{}: highest flood rate with the call answered within 1 s: {}",
            v.name,
            v.highest_rate_answered_within_1s
                .map_or("none".into(), |r| format!("{r}/s"))
        );
    }
    let out = repo().join("target/flood-bench.json");
    if let Ok(json) = serde_json::to_string_pretty(&variants) {
        let _ = std::fs::write(&out, json);
    }
    // What holds at any speed: at quick sizes, with the limit on, the call
    // gets in.
    if quick {
        assert!(
            variants[0]
                .steps
                .iter()
                .all(|s| s.call_answered_ms.is_some()),
            "a call was not answered during a flood"
        );
    }
}
