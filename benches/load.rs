//! The load bench: `cargo bench --bench load` (or `./dev bench`).
//!
//! In one run on loopback, against the release gateway:
//! (a) CPU per answered call of the gateway and of SIPp's own `-sn uas`,
//!     under the same SIPp `-sn uac` load (INVITE, 1 s, BYE), read from
//!     /proc/PID/stat;
//! (b) the highest rate of full IVR calls — answer, prompt, the code by
//!     RFC 4733, admitted, BYE: `dialgate replay` of
//!     sip-fixtures/traces/rfc4733_admitted.pcapng — that runs 60 s with no
//!     failed call, found with 15 s probes and confirmed over 60 s, with its
//!     admission latency;
//! (c) memory per concurrent idle IVR call: VmRSS growth of a gateway
//!     holding N silent calls in its IVR.
//!
//! Prints a table and writes it as JSON to target/load-bench.json. Under
//! `cargo test` (no `--bench` argument) it runs a small version of each
//! part, so the harness keeps working; pass `--quick` to `cargo bench` for
//! the same. Every load is bounded in calls and time; SIPp is needed
//! (`./dev bench` installs it).

#[path = "support/gateway.rs"]
mod gateway;
#[path = "support/proc.rs"]
mod proc;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gateway::{BIN, Launch, machine, repo};

struct Sizes {
    /// (a): calls per side, and their rate.
    cpu_calls: u32,
    cpu_rate: u32,
    /// (b): probe and confirmation lengths, first rate, and the most probes.
    probe: Duration,
    confirm: Duration,
    first_rate: f64,
    max_probes: usize,
    /// (b): confirmation runs at most, each 20 % below the last.
    max_confirms: usize,
    /// (c): idle calls held.
    idle_calls: u32,
}

const FULL: Sizes = Sizes {
    cpu_calls: 3000,
    cpu_rate: 100,
    probe: Duration::from_secs(15),
    confirm: Duration::from_secs(60),
    first_rate: 10.0,
    max_probes: 8,
    max_confirms: 5,
    idle_calls: 1000,
};

const QUICK: Sizes = Sizes {
    cpu_calls: 40,
    cpu_rate: 40,
    probe: Duration::from_secs(3),
    confirm: Duration::from_secs(3),
    first_rate: 4.0,
    max_probes: 1,
    max_confirms: 1,
    idle_calls: 20,
};

/// Whether some socket is bound to UDP `port` (from /proc/net/udp).
fn udp_port_bound(port: u16) -> bool {
    let suffix = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/udp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|a| a.ends_with(&suffix))
        })
}

/// A demo gateway on loopback, and an API token for it.
struct Gateway {
    gw: gateway::Gateway,
    token: String,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// A demo gateway on loopback; `extra` serve flags.
    fn start(extra: &[&str]) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        // A load test is not an attack: its one source may send
        // thousands of messages a second, and guess wrong.
        let launch = Launch::in_dir(dir.path(), "127.0.0.1:0")
            .with_args(&["--lockout-attempts", "1000000", "--sip-source-rate", "0"])
            .with_args(extra);
        let gw = gateway::Gateway::start(&launch);
        Gateway {
            gw,
            token: launch.token("bench"),
            _dir: dir,
        }
    }

    fn pid(&self) -> u32 {
        self.gw.pid()
    }

    /// Calls in the IVR, from /metrics.
    fn ivr_calls(&self) -> u64 {
        let body = ureq::get(&format!("http://{}/metrics", self.gw.api))
            .header("Authorization", &format!("Bearer {}", self.token))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default();
        body.lines()
            .find(|l| l.starts_with("dialgate_calls_active{state=\"ivr\"}"))
            .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }
}

static MEDIA_PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(41_000);

/// SIPp's built-in UAC: `calls` calls at `rate`, each held `hold_ms`.
fn sipp_uac(target: &str, calls: u32, rate: u32, hold_ms: u32) -> Command {
    let mp = MEDIA_PORT.fetch_add(8, std::sync::atomic::Ordering::Relaxed);
    let mut cmd = Command::new("sipp");
    cmd.arg(target)
        .args([
            "-sn",
            "uac",
            "-s",
            "+15550100",
            "-i",
            "127.0.0.1",
            "-p",
            "0",
        ])
        .args(["-mp", &mp.to_string()])
        .args(["-r", &rate.to_string(), "-m", &calls.to_string()])
        .args(["-l", &calls.to_string(), "-d", &hold_ms.to_string()])
        .args([
            "-buff_size",
            "4194304",
            "-timeout",
            "300s",
            "-timeout_error",
        ])
        .args(["-nostdin"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

#[derive(serde::Serialize)]
struct CpuPerCall {
    calls: u32,
    rate: u32,
    gateway_ms_per_call: f64,
    sipp_uas_ms_per_call: f64,
    ratio: f64,
}

/// (a) The gateway's CPU per call against SIPp's -sn uas, same UAC load.
fn cpu_per_call(s: &Sizes) -> CpuPerCall {
    let gw = Gateway::start(&[]);
    let before = proc::cpu(gw.pid());
    let status = sipp_uac(&gw.gw.sip, s.cpu_calls, s.cpu_rate, 1000)
        .status()
        .expect("run sipp");
    assert!(status.success(), "SIPp uac → gateway: {status}");
    let gateway = proc::cpu(gw.pid()) - before;
    drop(gw);

    let port = 45_060 + (std::process::id() % 500) as u16;
    let mut uas = Command::new("sipp")
        .args(["-sn", "uas", "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-buff_size", "4194304", "-nostdin"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sipp uas");
    // Up once its port is taken (bounded: 5 s).
    let limit = Instant::now() + Duration::from_secs(5);
    while !udp_port_bound(port) && Instant::now() < limit {
        std::thread::yield_now();
    }
    let before = proc::cpu(uas.id());
    let status = sipp_uac(&format!("127.0.0.1:{port}"), s.cpu_calls, s.cpu_rate, 1000)
        .status()
        .expect("run sipp");
    let sipp = proc::cpu(uas.id()) - before;
    let _ = uas.kill();
    let _ = uas.wait();
    assert!(status.success(), "SIPp uac → SIPp uas: {status}");
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / f64::from(s.cpu_calls);
    CpuPerCall {
        calls: s.cpu_calls,
        rate: s.cpu_rate,
        gateway_ms_per_call: per(gateway),
        sipp_uas_ms_per_call: per(sipp),
        ratio: per(gateway) / per(sipp).max(1e-9),
    }
}

#[derive(serde::Serialize, Clone)]
struct Probe {
    rate: f64,
    seconds: f64,
    attempted: u64,
    admitted: u64,
    failed: u64,
    /// Calls that did not end admitted, by verdict and cause.
    not_admitted: serde_json::Value,
    cps_achieved: f64,
    admission_p50_ms: f64,
    admission_p99_ms: f64,
    setup_p50_ms: f64,
    setup_p99_ms: f64,
    gateway_cpu_cores: f64,
    clean: bool,
}

/// One replay run of full IVR calls at `rate` for `length`, against a
/// fresh gateway: an overloaded probe must not weigh on the next (one did:
/// after 160/s a gateway admitted nothing at 80/s, which a fresh one ran
/// clean).
fn probe(rate: f64, length: Duration) -> Probe {
    let gw = Gateway::start(&[]);
    let calls = (rate * length.as_secs_f64()).round().max(1.0) as u64;
    let before = proc::cpu(gw.pid());
    let started = Instant::now();
    let out = Command::new(BIN)
        .arg("replay")
        .arg(repo().join("sip-fixtures/traces/rfc4733_admitted.pcapng"))
        .args(["--target", &gw.gw.sip, "--json"])
        .args(["--rate", &rate.to_string(), "--calls", &calls.to_string()])
        .args(["--concurrency", "4000"])
        .args(["--duration", &format!("{}s", length.as_secs() + 60)])
        .stdin(Stdio::null())
        .output()
        .expect("run dialgate replay");
    let wall = started.elapsed();
    let used = proc::cpu(gw.pid()) - before;
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    let ms = |a: &str, b: &str| r[a][b].as_f64().unwrap_or(0.0);
    let cps = r["cps"].as_f64().unwrap_or(0.0);
    let clean = n("attempted") == calls
        && n("admitted") == calls
        && n("failed") == 0
        && (calls < 2 || cps >= rate * 0.95);
    Probe {
        rate,
        seconds: length.as_secs_f64(),
        attempted: n("attempted"),
        admitted: n("admitted"),
        failed: n("failed"),
        not_admitted: serde_json::json!({
            "refused": r["refused_by_cause"],
            "abandoned": r["abandoned"],
            "failed": r["failed_by_cause"],
        }),
        cps_achieved: cps,
        admission_p50_ms: ms("admission_latency", "p50_ms"),
        admission_p99_ms: ms("admission_latency", "p99_ms"),
        setup_p50_ms: ms("setup_latency", "p50_ms"),
        setup_p99_ms: ms("setup_latency", "p99_ms"),
        gateway_cpu_cores: used.as_secs_f64() / wall.as_secs_f64(),
        clean,
    }
}

#[derive(serde::Serialize)]
struct MaxRate {
    probes: Vec<Probe>,
    sustained: Option<Probe>,
}

/// (b) The highest full-IVR rate with zero failures over the confirmation run.
fn max_rate(s: &Sizes) -> MaxRate {
    let mut probes = Vec::new();
    let (mut good, mut bad): (Option<f64>, Option<f64>) = (None, None);
    let mut rate = s.first_rate;
    for _ in 0..s.max_probes {
        let p = probe(rate, s.probe);
        eprintln!(
            "load: probe {:.0}/s for {:.0} s: {} of {} admitted, {:.1} cps, not admitted: {}",
            p.rate, p.seconds, p.admitted, p.attempted, p.cps_achieved, p.not_admitted
        );
        let clean = p.clean;
        probes.push(p);
        if clean {
            good = Some(rate);
        } else {
            bad = Some(rate);
        }
        rate = match (good, bad) {
            (Some(g), None) => g * 2.0,
            (Some(g), Some(b)) if b / g > 1.2 => ((g + b) / 2.0).round(),
            (None, Some(b)) if b > 2.0 => (b / 2.0).round(),
            _ => break,
        };
    }
    let mut sustained = None;
    let mut candidate = good;
    // A rate that holds for 15 s may not for 60 s: step down until one does.
    for _ in 0..s.max_confirms {
        let Some(r) = candidate else { break };
        let p = probe(r, s.confirm);
        eprintln!(
            "load: confirm {:.0}/s for {:.0} s: {} of {} admitted, {} failed",
            p.rate, p.seconds, p.admitted, p.attempted, p.failed
        );
        if p.clean {
            sustained = Some(p);
            break;
        }
        probes.push(p);
        candidate = Some((r * 0.8).floor()).filter(|r| *r >= 1.0);
    }
    MaxRate { probes, sustained }
}

#[derive(serde::Serialize)]
struct IdleMemory {
    calls: u64,
    baseline_kib: u64,
    loaded_kib: u64,
    kib_per_call: f64,
}

/// (c) RSS growth per silent call held in the IVR.
fn idle_memory(s: &Sizes) -> IdleMemory {
    // Idle calls must stay idle: no first-digit or RTP timeout ends them.
    let gw = Gateway::start(&["--first-digit-timeout", "10m", "--rtp-timeout", "10m"]);
    // Warm up: the first calls allocate what every later call shares.
    let status = sipp_uac(&gw.gw.sip, 20, 20, 200)
        .status()
        .expect("run sipp");
    assert!(status.success(), "warm-up calls: {status}");
    let baseline = proc::rss_kib(gw.pid());
    let mut uac = sipp_uac(&gw.gw.sip, s.idle_calls, 100, 120_000)
        .spawn()
        .expect("start sipp");
    let limit = Instant::now() + Duration::from_secs(60);
    let mut up = 0;
    while Instant::now() < limit {
        up = gw.ivr_calls();
        if up >= u64::from(s.idle_calls) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let loaded = proc::rss_kib(gw.pid());
    let _ = uac.kill();
    let _ = uac.wait();
    assert_eq!(up, u64::from(s.idle_calls), "idle calls up in the IVR");
    IdleMemory {
        calls: up,
        baseline_kib: baseline,
        loaded_kib: loaded,
        kib_per_call: loaded.saturating_sub(baseline) as f64 / up.max(1) as f64,
    }
}

#[derive(serde::Serialize)]
struct Results {
    date: String,
    machine: String,
    quick: bool,
    cpu_per_call: CpuPerCall,
    max_ivr_rate: MaxRate,
    idle_memory: IdleMemory,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--quick");
    let sizes = if quick { &QUICK } else { &FULL };
    if Command::new("sipp").arg("-v").output().is_err() {
        eprintln!("load bench: SIPp is not installed (./dev bench installs sip-tester)");
        std::process::exit(1);
    }
    let cpu_per_call = cpu_per_call(sizes);
    let max_ivr_rate = max_rate(sizes);
    let idle_memory = idle_memory(sizes);
    let results = Results {
        date: chrono::Utc::now().format("%Y-%m-%d").to_string(),
        machine: machine(),
        quick,
        cpu_per_call,
        max_ivr_rate,
        idle_memory,
    };
    let c = &results.cpu_per_call;
    println!(
        "\nload bench, {} ({}){}",
        results.date,
        results.machine,
        if quick { ", quick sizes" } else { "" }
    );
    println!("| measure | figure |");
    println!("|---|---|");
    println!(
        "| CPU per call, SIPp `-sn uac` (INVITE, 1 s, BYE), {} calls at {}/s | gateway {:.3} ms · SIPp `-sn uas` {:.3} ms · ratio {:.1}× |",
        c.calls, c.rate, c.gateway_ms_per_call, c.sipp_uas_ms_per_call, c.ratio
    );
    match &results.max_ivr_rate.sustained {
        Some(p) => println!(
            "| highest full-IVR rate with 0 failed calls over {:.0} s | {:.0} calls/s ({} calls, {:.1} cps achieved, gateway {:.2} cores) · admission p50 {:.1} ms, p99 {:.1} ms · setup p50 {:.1} ms, p99 {:.1} ms |",
            p.seconds,
            p.rate,
            p.attempted,
            p.cps_achieved,
            p.gateway_cpu_cores,
            p.admission_p50_ms,
            p.admission_p99_ms,
            p.setup_p50_ms,
            p.setup_p99_ms
        ),
        None => println!("| highest full-IVR rate | no rate ran clean |"),
    }
    let m = &results.idle_memory;
    println!(
        "| memory per idle IVR call ({} calls) | {:.1} KiB (RSS {} → {} KiB) |",
        m.calls, m.kib_per_call, m.baseline_kib, m.loaded_kib
    );
    let path = repo().join("target/load-bench.json");
    match serde_json::to_string_pretty(&results) {
        Ok(json) => {
            if let Err(e) = std::fs::write(&path, json) {
                eprintln!("load bench: cannot write {}: {e}", path.display());
            } else {
                println!("\nwritten to {}", path.display());
            }
        }
        Err(e) => eprintln!("load bench: {e}"),
    }
    assert!(
        results.max_ivr_rate.sustained.is_some(),
        "no rate ran clean"
    );
}
