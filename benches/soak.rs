//! The soak bench: `cargo bench --bench soak` (or `./dev bench soak`).
//!
//! Capacity is proven by a soak driven by SIPp, not by a minute (issue 15,
//! item 7). Against the release gateway on its default settings (`serve
//! --demo` on loopback, a temp SQLite file pre-seeded with a busy month of
//! attempt-log history: `--seed-rows` rows over the last 30 days, 1 %
//! failures), SIPp places full IVR calls — INVITE, 200, ACK, the demo room's
//! code `123456789#` as RFC 4733 events (sip-fixtures/scenarios/uac_rfc4733.xml
//! playing sip-fixtures/pcap/demo_code.pcap), the verdict, "you are joining
//! the conference", a moment in the room, BYE — at `--rate` calls/s for
//! `--minutes` minutes. Then an overload step: a second SIPp adds the same
//! rate for 60 s (twice the clean rate), and the clean rate runs on for 30 s.
//!
//! Per minute: calls placed, completed and failed (SIPp's own counts, from
//! its `-trace_stat` file), admitted and refused with 503 before answer (the
//! gateway's `dialgate_attempts_total` and `dialgate_calls_shed_total`),
//! admission latency p50/p99 (the gateway's `dialgate_admission_seconds`
//! histogram, the key that completed the code → the verdict, from bucket
//! deltas, interpolated within a bucket), the gateway's CPU per completed call
//! (utime + stime from /proc/PID/stat), its RSS, and attempts made against
//! attempt rows written. The overload step and what follows are reported per
//! 10 s — placed, answered (SIPp's `-trace_counts`), 503s, failed, admitted —
//! with how long after the step the 503s stopped. At the end the gateway is
//! stopped with SIGTERM (which writes every queued row) and the rows in the
//! SQLite file are counted against the attempts the gateway made.
//!
//! Prints the tables and writes JSON to target/soak-bench.json. Figures are
//! reported, not asserted; what must hold at any speed is: no attempt row
//! lost, and (quick sizes) no failed call at the clean rate. Under `cargo
//! test` (no `--bench` argument) or with `--quick` it runs a small version
//! in under a minute (20 calls/s, 2 periods of 10 s, 20,000 seed rows, a
//! 10 s step). Flags: `--rate N`, `--minutes M`, `--seed-rows N`,
//! `--hold-ms N`, `--lockout-attempts N` (passed to `serve`; by default the
//! gateway's own), `--dtmf rfc4733|info` (how SIPp keys the code: the pcap,
//! or `uac_info.xml`'s SIP INFO, which spares the gateway the cost of SIPp's
//! raw sockets — see [`Dtmf`]). `SOAK_KEEP=1` keeps the temp dir (gateway log, SIPp's
//! files). Every load is bounded in calls and time; every child process is
//! killed on every exit path (SIPp is needed: `./dev bench soak` installs it).

#[path = "support/proc.rs"]
mod proc;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_dialgate");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The number the demo room is dialled on, as SIPp's `-s`.
const DEMO_NUMBER: &str = "+15550100";

/// The demo room's code, as the SIP INFO caller keys it.
const DEMO_CODE: &str = "123456789#";

#[derive(Clone, Debug, serde::Serialize)]
struct Plan {
    quick: bool,
    /// Clean rate, calls per second.
    rate: u32,
    period_s: u64,
    periods: u64,
    seed_rows: u64,
    /// How long a call stays up after its keypad pcap starts playing.
    hold_ms: u64,
    overload_s: u64,
    recovery_s: u64,
    /// Reporting step of the overload and recovery table.
    slice_s: u64,
    /// `serve --lockout-attempts`; `None`: the gateway's default (10).
    lockout_attempts: Option<u64>,
    /// How SIPp keys the code.
    dtmf: Dtmf,
}

/// How SIPp keys the code. RFC 4733 plays a pcap from a raw socket per
/// call, and while such a socket is open the kernel walks it for every UDP
/// datagram to SIPp's address, in the sender's time: at 100 calls/s about
/// 270 are open, and a third of the gateway's CPU (perf: `raw_local_deliver`)
/// goes to that walk for the RTP it sends SIPp — a cost of the harness that
/// grows with the square of the rate. SIP INFO needs no raw socket (but
/// sends no RTP to the gateway), so it shows the gateway without that tax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Dtmf {
    /// `uac_rfc4733.xml` playing `demo_code.pcap`.
    Rfc4733,
    /// `uac_info.xml`, one INFO per key.
    Info,
}

impl Dtmf {
    fn scenario(self) -> &'static str {
        match self {
            Dtmf::Rfc4733 => "uac_rfc4733",
            Dtmf::Info => "uac_info",
        }
    }

    /// What the calls do, for the report.
    fn describe(self) -> &'static str {
        match self {
            Dtmf::Rfc4733 => "uac_rfc4733.xml, demo_code.pcap",
            Dtmf::Info => "uac_info.xml, 123456789# as SIP INFO",
        }
    }
}

const FULL: Plan = Plan {
    quick: false,
    rate: 200,
    period_s: 60,
    periods: 10,
    seed_rows: 500_000,
    // The pcap keys for 3 s, the verdict follows, "joining" lasts 2 s:
    // 6 s puts every admitted caller in the room for about a second.
    hold_ms: 6000,
    overload_s: 60,
    recovery_s: 30,
    slice_s: 10,
    lockout_attempts: None,
    dtmf: Dtmf::Rfc4733,
};

const QUICK: Plan = Plan {
    quick: true,
    rate: 20,
    period_s: 10,
    periods: 2,
    seed_rows: 20_000,
    hold_ms: 6000,
    overload_s: 10,
    recovery_s: 5,
    slice_s: 5,
    lockout_attempts: None,
    dtmf: Dtmf::Rfc4733,
};

impl Plan {
    /// Sizes from the command line: `--bench` (from `cargo bench`) without
    /// `--quick` runs the full soak; the flags override either size.
    fn from_args(args: &[String]) -> Result<Plan, String> {
        let quick = !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--quick");
        let mut plan = if quick { QUICK } else { FULL };
        let mut it = args.iter().skip(1);
        while let Some(arg) = it.next() {
            let mut value = |name: &str| -> Result<u64, String> {
                it.next()
                    .and_then(|v| v.replace('_', "").parse().ok())
                    .ok_or(format!("{name} needs a whole number"))
            };
            match arg.as_str() {
                "--rate" => {
                    plan.rate = u32::try_from(value("--rate")?).map_err(|e| e.to_string())?
                }
                "--minutes" => plan.periods = value("--minutes")?,
                "--seed-rows" => plan.seed_rows = value("--seed-rows")?,
                "--hold-ms" => plan.hold_ms = value("--hold-ms")?,
                "--lockout-attempts" => plan.lockout_attempts = Some(value("--lockout-attempts")?),
                "--dtmf" => {
                    plan.dtmf = match it.next().map(String::as_str) {
                        Some("rfc4733") => Dtmf::Rfc4733,
                        Some("info") => Dtmf::Info,
                        _ => return Err("--dtmf takes rfc4733 or info".into()),
                    }
                }
                "--bench" | "--quick" => {}
                other => eprintln!("soak bench: ignoring argument {other:?}"),
            }
        }
        if plan.rate == 0 || plan.periods == 0 {
            return Err("--rate and --minutes must be at least 1".into());
        }
        Ok(plan)
    }

    fn clean_s(&self) -> u64 {
        self.period_s * self.periods
    }

    fn end_s(&self) -> u64 {
        self.clean_s() + self.overload_s + self.recovery_s
    }
}

/// A child process killed and reaped when dropped, on every exit path.
struct Reaper(Child);

impl Reaper {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }

    /// Waits up to `limit` for the process to exit on its own.
    fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + limit;
        loop {
            match self.0.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(50)),
                _ => return None,
            }
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An even UDP port, with the one two above it, free on loopback right now:
/// SIPp's `-mp` (audio, and video two above).
fn free_media_port() -> u16 {
    for _ in 0..200 {
        let Ok(probe) = std::net::UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let port = probe.local_addr().map_or(0, |a| a.port()) & !1;
        drop(probe);
        if port > 1024
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port + 2)).is_ok()
        {
            return port;
        }
    }
    panic!("no free media port on loopback");
}

/// `dialgate serve --demo` on loopback, default settings otherwise.
struct Gateway {
    proc: Reaper,
    /// Kept open: the gateway writes a line or two more after ready.
    _stdout: BufReader<std::process::ChildStdout>,
    sip: String,
    api: String,
    token: String,
    agent: ureq::Agent,
}

impl Gateway {
    fn start(db: &str, secret: &Path, log: &Path, plan: &Plan) -> Gateway {
        let log = std::fs::File::create(log).expect("gateway log file");
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--demo", "--database", db, "--secret-file"])
            .arg(secret)
            // Not SIPp's address: datagrams to the gateway then match none
            // of SIPp's raw sockets (see `Dtmf`).
            .args(["--sip-listen", "127.0.0.2:0", "--api-listen", "127.0.0.1:0"])
            .arg("--prompts")
            .arg(repo().join("prompts"));
        if let Some(n) = plan.lockout_attempts {
            cmd.args(["--lockout-attempts", &n.to_string()]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start dialgate serve");
        let stdout = child.stdout.take().expect("gateway stdout");
        let proc = Reaper(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send((reader, line));
        });
        let (stdout, line) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("gateway ready within 60 s");
        let ready: serde_json::Value = serde_json::from_str(&line).expect("ready line is JSON");
        proc::settle(proc.pid());
        let out = Command::new(BIN)
            .args([
                "token",
                "create",
                "--name",
                "soak",
                "--json",
                "--database",
                db,
            ])
            .arg("--secret-file")
            .arg(secret)
            .output()
            .expect("token create");
        let token: serde_json::Value = serde_json::from_slice(&out.stdout).expect("token JSON");
        Gateway {
            sip: ready["sip"].as_str().expect("sip address").to_owned(),
            api: ready["api"].as_str().expect("api address").to_owned(),
            token: token["token"].as_str().expect("token").to_owned(),
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(5)))
                .build()
                .into(),
            proc,
            _stdout: stdout,
        }
    }

    fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// `/metrics`, parsed; `None` when the API did not answer in time.
    fn scrape(&self) -> Option<Scrape> {
        let mut response = self
            .agent
            .get(&format!("http://{}/metrics", self.api))
            .header("Authorization", &format!("Bearer {}", self.token))
            .call()
            .ok()?;
        let text = response.body_mut().read_to_string().ok()?;
        Some(Scrape::parse(&text))
    }

    /// SIGTERM, as an operator stops it: BYE to every call, every queued
    /// attempt row written, exit. Bounded by its own limits (3 s of BYEs,
    /// 30 s of flushing) plus a margin.
    fn stop(&mut self) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        self.proc.wait_for(Duration::from_secs(60))
    }
}

/// One `/metrics` text, as series.
#[derive(Clone, Default)]
struct Scrape {
    series: Vec<Series>,
}

#[derive(Clone)]
struct Series {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Series {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let series = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (head, value) = l.rsplit_once(' ')?;
                let value = match value {
                    "+Inf" => f64::INFINITY,
                    v => v.parse().ok()?,
                };
                let (name, labels) = match head.split_once('{') {
                    Some((name, rest)) => (name, rest.trim_end_matches('}')),
                    None => (head, ""),
                };
                let labels = labels
                    .split(',')
                    .filter_map(|kv| {
                        let (k, v) = kv.split_once('=')?;
                        Some((k.to_owned(), v.trim_matches('"').to_owned()))
                    })
                    .collect();
                Some(Series {
                    name: name.to_owned(),
                    labels,
                    value,
                })
            })
            .collect();
        Scrape { series }
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Series> + 'a {
        self.series
            .iter()
            .filter(move |s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
    }

    /// The sum of every series of `name` carrying `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// Per value of `label`, the sum of the series of `name`.
    fn by(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in self.matching(name, &[]) {
            if let Some(key) = s.label(label) {
                *out.entry(key.to_owned()).or_default() += s.value;
            }
        }
        out
    }

    /// A histogram's cumulative buckets (upper bound, count), by bound.
    fn buckets(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let bucket = format!("{name}_bucket");
        let mut out: Vec<(f64, f64)> = self
            .matching(&bucket, labels)
            .filter_map(|s| {
                let le = match s.label("le")? {
                    "+Inf" => f64::INFINITY,
                    le => le.parse().ok()?,
                };
                Some((le, s.value))
            })
            .collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }
}

/// The `q` quantile of what a histogram counted between two scrapes,
/// interpolated within its bucket as Prometheus' `histogram_quantile` does;
/// `None` when nothing was counted. Past the last finite bound it answers
/// that bound.
fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|&(le, n)| {
            let was = before.iter().find(|b| b.0 == le).map_or(0.0, |b| b.1);
            (le, n - was)
        })
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, n) in &delta {
        if n >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let share = if n > below {
                (rank - below) / (n - below)
            } else {
                1.0
            };
            return Some(lower + (le - lower) * share);
        }
        (lower, below) = (le, n);
    }
    Some(lower)
}

/// The last complete line of a CSV file SIPp appends to, by column name.
struct CsvTail {
    path: PathBuf,
    offset: u64,
    header: Vec<String>,
    last: Vec<String>,
}

impl CsvTail {
    fn new(path: PathBuf) -> CsvTail {
        CsvTail {
            path,
            offset: 0,
            header: Vec::new(),
            last: Vec::new(),
        }
    }

    /// Reads what was appended since the last poll (whole lines only).
    fn poll(&mut self) {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return;
        };
        let mut text = String::new();
        if file.seek(SeekFrom::Start(self.offset)).is_err()
            || file.read_to_string(&mut text).is_err()
        {
            return;
        }
        let Some(end) = text.rfind('\n') else {
            return;
        };
        self.offset += end as u64 + 1;
        for line in text[..end].lines().filter(|l| !l.trim().is_empty()) {
            let fields: Vec<String> = line.split(';').map(str::to_owned).collect();
            if self.header.is_empty() {
                self.header = fields;
            } else {
                self.last = fields;
            }
        }
    }

    fn value(&self, column: impl Fn(&str) -> bool) -> u64 {
        self.header
            .iter()
            .position(|h| column(h))
            .and_then(|i| self.last.get(i)?.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// SIPp's cumulative counts of one run (or of several, added).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
struct SippCounts {
    placed: u64,
    answered: u64,
    completed: u64,
    failed: u64,
}

impl std::ops::Add for SippCounts {
    type Output = SippCounts;
    fn add(self, o: SippCounts) -> SippCounts {
        SippCounts {
            placed: self.placed + o.placed,
            answered: self.answered + o.answered,
            completed: self.completed + o.completed,
            failed: self.failed + o.failed,
        }
    }
}

/// One SIPp UAC process running `uac_rfc4733.xml` at a rate.
struct Sipp {
    proc: Reaper,
    stat: CsvTail,
    counts: CsvTail,
    exit: Option<ExitStatus>,
}

impl Sipp {
    /// `calls` calls at `rate`, all of SIPp's files in `dir`; SIPp stops
    /// itself after `limit` whatever happens.
    fn start(
        target: &str,
        plan: &Plan,
        rate: u32,
        calls: u64,
        limit: Duration,
        dir: &Path,
    ) -> Sipp {
        std::fs::create_dir_all(dir).expect("SIPp dir");
        let stat = dir.join("stat.csv");
        let scenario = plan.dtmf.scenario();
        let mut cmd = Command::new("sipp");
        cmd.arg(target)
            .arg("-sf")
            .arg(repo().join(format!("sip-fixtures/scenarios/{scenario}.xml")))
            .args(["-s", DEMO_NUMBER, "-i", "127.0.0.1", "-p", "0"])
            .args(["-mp", &free_media_port().to_string()]);
        match plan.dtmf {
            Dtmf::Rfc4733 => cmd
                .arg("-key")
                .arg("dtmf_pcap")
                .arg(repo().join("sip-fixtures/pcap/demo_code.pcap")),
            Dtmf::Info => cmd.args(["-key", "code", DEMO_CODE]),
        };
        let child = cmd
            .args(["-key", "hold_ms", &plan.hold_ms.to_string()])
            .args(["-r", &rate.to_string(), "-m", &calls.to_string()])
            // Open calls are bounded by the count and the time, not throttled.
            .args(["-l", &(u64::from(rate) * 60).to_string()])
            .args(["-timeout", &format!("{}s", limit.as_secs())])
            .args(["-buff_size", "4194304", "-nostdin"])
            .args(["-trace_stat", "-fd", "200ms", "-stf"])
            .arg(&stat)
            .args(["-trace_counts", "-trace_err", "-error_file"])
            .arg(dir.join("errors.log"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("stderr.log")).expect("SIPp stderr file"),
            ))
            .spawn()
            .expect("start sipp");
        let counts = dir.join(format!("{scenario}_{}_counts.csv", child.id()));
        Sipp {
            proc: Reaper(child),
            stat: CsvTail::new(stat),
            counts: CsvTail::new(counts),
            exit: None,
        }
    }

    fn running(&mut self) -> bool {
        if self.exit.is_none() && !self.proc.running() {
            self.exit = self.proc.wait_for(Duration::ZERO);
        }
        self.exit.is_none()
    }

    fn counts(&mut self) -> SippCounts {
        self.stat.poll();
        self.counts.poll();
        SippCounts {
            placed: self.stat.value(|h| h == "OutgoingCall(C)"),
            completed: self.stat.value(|h| h == "SuccessfulCall(C)"),
            failed: self.stat.value(|h| h == "FailedCall(C)"),
            // The scenario's first 200 is the answer to the INVITE.
            answered: self.counts.value(|h| h.ends_with("_200_Recv")),
        }
    }
}

/// The gateway and SIPp at one moment of the run.
#[derive(Clone)]
struct Sample {
    /// Seconds since the clean SIPp started.
    t: f64,
    tick: u64,
    scrape: Scrape,
    gateway_cpu_s: f64,
    sipp_cpu_s: f64,
    rss_kib: u64,
    sipp: SippCounts,
}

impl Sample {
    fn attempts(&self) -> f64 {
        self.scrape.sum("dialgate_attempts_total", &[])
    }

    fn admitted(&self) -> f64 {
        self.scrape
            .sum("dialgate_attempts_total", &[("outcome", "admitted")])
    }

    fn locked(&self) -> f64 {
        self.scrape
            .sum("dialgate_attempts_total", &[("outcome", "locked")])
    }

    fn shed(&self) -> f64 {
        self.scrape.sum("dialgate_calls_shed_total", &[])
    }

    fn admission(&self) -> Vec<(f64, f64)> {
        self.scrape
            .buckets("dialgate_admission_seconds", &[("stage", "access")])
    }

    fn gauge(&self, name: &str) -> f64 {
        self.scrape.sum(name, &[])
    }
}

/// What happened between two samples.
struct Delta<'a> {
    a: &'a Sample,
    b: &'a Sample,
}

impl Delta<'_> {
    fn count(&self, f: impl Fn(&Sample) -> f64) -> u64 {
        (f(self.b) - f(self.a)).max(0.0).round() as u64
    }

    fn sipp(&self, f: impl Fn(&SippCounts) -> u64) -> u64 {
        f(&self.b.sipp).saturating_sub(f(&self.a.sipp))
    }

    fn admission_ms(&self, q: f64) -> Option<f64> {
        quantile(&self.a.admission(), &self.b.admission(), q).map(|s| s * 1000.0)
    }

    /// p99 of each call-path query (`dialgate_db_query_seconds{op}`), in ms.
    fn db_query_p99_ms(&self) -> BTreeMap<String, f64> {
        let name = "dialgate_db_query_seconds";
        let ops = self.b.scrape.by(&format!("{name}_count"), "op");
        ops.keys()
            .filter_map(|op| {
                let labels = [("op", op.as_str())];
                let q = quantile(
                    &self.a.scrape.buckets(name, &labels),
                    &self.b.scrape.buckets(name, &labels),
                    0.99,
                )?;
                Some((op.clone(), q * 1000.0))
            })
            .collect()
    }

    fn seconds(&self) -> f64 {
        (self.b.t - self.a.t).max(1e-9)
    }
}

#[derive(serde::Serialize)]
struct PeriodRow {
    period: u64,
    from_s: u64,
    to_s: u64,
    placed: u64,
    completed: u64,
    failed: u64,
    admitted: u64,
    /// Calls that hung up from the room (`dialgate_calls_total{outcome="admitted"}`).
    ended_in_room: u64,
    rejected_503: u64,
    /// Right codes refused `locked`: more guesses from one source under way
    /// than `--lockout-attempts` (every bench call is from 127.0.0.1).
    locked: u64,
    admission_p50_ms: Option<f64>,
    admission_p99_ms: Option<f64>,
    gateway_cpu_ms_per_call: Option<f64>,
    gateway_cores: f64,
    sipp_cores: f64,
    rss_kib: u64,
    calls_in_progress: f64,
    event_loop_lag_ms: f64,
    attempt_log_backlog: f64,
    db_query_p99_ms: BTreeMap<String, f64>,
    /// Cumulative since the gateway started.
    attempts_made: u64,
    rows_written: u64,
}

fn period_row(period: u64, d: &Delta<'_>, plan: &Plan) -> PeriodRow {
    let completed = d.sipp(|s| s.completed);
    let cpu = d.b.gateway_cpu_s - d.a.gateway_cpu_s;
    PeriodRow {
        period,
        from_s: (period - 1) * plan.period_s,
        to_s: period * plan.period_s,
        placed: d.sipp(|s| s.placed),
        completed,
        failed: d.sipp(|s| s.failed),
        admitted: d.count(Sample::admitted),
        ended_in_room: d.count(|s| {
            s.scrape
                .sum("dialgate_calls_total", &[("outcome", "admitted")])
        }),
        rejected_503: d.count(Sample::shed),
        locked: d.count(Sample::locked),
        admission_p50_ms: d.admission_ms(0.50),
        admission_p99_ms: d.admission_ms(0.99),
        gateway_cpu_ms_per_call: (completed > 0).then(|| cpu * 1000.0 / completed as f64),
        gateway_cores: cpu / d.seconds(),
        sipp_cores: (d.b.sipp_cpu_s - d.a.sipp_cpu_s) / d.seconds(),
        rss_kib: d.b.rss_kib,
        calls_in_progress: d.b.gauge("dialgate_calls_in_progress"),
        event_loop_lag_ms: d.b.gauge("dialgate_event_loop_lag_seconds") * 1000.0,
        attempt_log_backlog: d.b.gauge("dialgate_attempt_log_backlog"),
        db_query_p99_ms: d.db_query_p99_ms(),
        attempts_made: d.b.attempts().round() as u64,
        rows_written: d.b.gauge("dialgate_attempt_rows_written_total").round() as u64,
    }
}

#[derive(serde::Serialize)]
struct SliceRow {
    /// Seconds since the overload step began.
    from_s: u64,
    to_s: u64,
    offered_rate: u32,
    placed: u64,
    answered: u64,
    rejected_503: u64,
    failed: u64,
    admitted: u64,
    locked: u64,
    admission_p99_ms: Option<f64>,
    calls_in_progress: f64,
}

#[derive(serde::Serialize)]
struct Recovery {
    rejected_503_during_step: u64,
    rejected_503_after_step: u64,
    /// Seconds after the step ended until the last 503; 0 when none came after it.
    last_503_after_step_s: f64,
    /// Whether the run ended with the 503s over (not still shedding in its last second).
    clean_again: bool,
    /// Seconds after the step ended until the last call SIPp counted failed
    /// or the gateway refused `locked` (calls placed during the step end
    /// up to a call's length later); 0 when none came after it.
    last_failure_after_step_s: f64,
}

#[derive(serde::Serialize)]
struct Totals {
    sipp: SippCounts,
    /// Answered calls SIPp counted failed (a BYE in the hold, a lost reply…).
    answered_then_failed: u64,
    admitted: u64,
    attempts_by_outcome: BTreeMap<String, f64>,
    rejected_503_by_reason: BTreeMap<String, f64>,
    db_query_p99_ms: BTreeMap<String, f64>,
    attempts_made: u64,
    rows_written_metric: u64,
    rows_in_store_after_stop: u64,
    rows_missing: i64,
    gateway_exit: Option<i32>,
    sipp_exits: Vec<Option<i32>>,
    scrapes_failed: u64,
}

#[derive(serde::Serialize)]
struct Seeding {
    rows: u64,
    failures: u64,
    seconds: f64,
}

#[derive(serde::Serialize)]
struct Results {
    date: String,
    machine: String,
    plan: Plan,
    seeding: Seeding,
    periods: Vec<PeriodRow>,
    overload: Vec<SliceRow>,
    recovery: Recovery,
    totals: Totals,
}

/// A deterministic stream of numbers for the seed rows (SplitMix64).
struct Mix(u64);

impl Mix {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// Creates and migrates the store the way the gateway does, seeds the demo
/// data, and appends `rows` attempts spread over the last 30 days, oldest
/// first, through the attempt log's own multi-row INSERT, 10,000 rows a
/// transaction. Every 100th row is a failure, always on other numbers,
/// caller-IDs and sources than the bench's calls (+15550100, `sipp`,
/// 127.0.0.1), so the seed makes a big table, not a lockout.
fn seed(db: &str, rows: u64) -> Seeding {
    use dialgate::store::{Attempt, Store};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let store = Store::open(db).await.expect("open the store");
        let room = dialgate::provision::Provisioner::new(store.clone())
            .seed_demo()
            .await
            .expect("demo data");
        let started = Instant::now();
        let now = chrono::Utc::now();
        let month_ms = 30 * 24 * 3600 * 1000;
        let failed = ["wrong", "wrong", "wrong", "not_started", "ended"];
        let mut mix = Mix(15);
        let mut failures = 0;
        let mut batch = Vec::with_capacity(10_000);
        for i in 0..rows {
            let back_ms = month_ms - month_ms * i as i64 / rows.max(1) as i64;
            let at = now - chrono::Duration::milliseconds(back_ms.max(1));
            let failure = i % 100 == 99;
            // A busy number takes a tenth of the traffic; 500 others the rest.
            let number = if !failure && mix.below(10) == 0 {
                DEMO_NUMBER.to_owned()
            } else {
                format!("+1555{:07}", 200 + mix.below(500))
            };
            let ip = format!(
                "10.{}.{}.{}",
                mix.below(4),
                mix.below(250),
                1 + mix.below(250)
            );
            let outcome = if failure {
                failures += 1;
                failed[(i / 100) as usize % failed.len()]
            } else {
                "admitted"
            };
            batch.push(Attempt {
                at,
                number,
                caller_id: format!("+1{:010}", 2_000_000_000 + mix.below(50_000)),
                source: format!("{ip}:5060"),
                source_ip: ip,
                stage: "access",
                outcome,
                room_id: (!failure).then_some(room.id),
                call_id: format!("seed-{i}@10.0.0.1"),
            });
            if batch.len() == batch.capacity() || i + 1 == rows {
                store
                    .insert_attempts(&batch)
                    .await
                    .expect("insert seed rows");
                batch.clear();
            }
        }
        Seeding {
            rows,
            failures,
            seconds: started.elapsed().as_secs_f64(),
        }
    })
}

/// Rows in the attempt log of the SQLite file `db`, read-only.
fn count_rows(db: &str) -> u64 {
    use sqlx::ConnectOptions;
    use std::str::FromStr;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(db)
            .expect("SQLite URL")
            .read_only(true)
            .connect()
            .await
            .expect("open the SQLite file");
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM attempts")
            .fetch_one(&mut conn)
            .await
            .expect("count attempts");
        u64::try_from(n).unwrap_or(0)
    })
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} cores, {model}")
}

/// Runs the clean SIPp for the whole plan and the overload SIPp beside it
/// for the step, sampling the gateway and SIPp every second; returns the
/// samples (the first at 0 s, then one per tick, the last once both SIPp
/// runs have exited) and SIPp's exit codes.
fn drive(gw: &Gateway, plan: &Plan, dir: &Path) -> (Vec<Sample>, Vec<Option<i32>>, u64) {
    let clean_calls = u64::from(plan.rate) * plan.end_s();
    let hard_stop = plan.end_s() + plan.hold_ms / 1000 + 60;
    let t0 = Instant::now();
    let mut sipps = vec![Sipp::start(
        &gw.sip,
        plan,
        plan.rate,
        clean_calls,
        Duration::from_secs(hard_stop + 30),
        &dir.join("sipp-clean"),
    )];
    let mut last = None;
    let mut scrapes_failed = 0;
    let mut sample = |tick: u64, sipps: &mut Vec<Sipp>| {
        let scrape = gw.scrape().or_else(|| {
            scrapes_failed += 1;
            last.clone()
        });
        last = scrape.clone();
        Sample {
            t: t0.elapsed().as_secs_f64(),
            tick,
            scrape: scrape.unwrap_or_default(),
            gateway_cpu_s: proc::cpu(gw.pid()).as_secs_f64(),
            sipp_cpu_s: sipps
                .iter()
                .map(|s| proc::cpu(s.proc.pid()).as_secs_f64())
                .sum(),
            rss_kib: proc::rss_kib(gw.pid()),
            sipp: sipps
                .iter_mut()
                .map(Sipp::counts)
                .fold(SippCounts::default(), |a, b| a + b),
        }
    };
    let mut samples = vec![sample(0, &mut sipps)];
    let mut tick = 1;
    let mut reported = 0;
    loop {
        if let Some(wait) = (t0 + Duration::from_secs(tick)).checked_duration_since(Instant::now())
        {
            std::thread::sleep(wait);
        }
        let s = sample(tick, &mut sipps);
        // The step: a second SIPp beside the first, right after the sample
        // that closes the clean periods.
        if tick >= plan.clean_s() && sipps.len() == 1 {
            sipps.push(Sipp::start(
                &gw.sip,
                plan,
                plan.rate,
                u64::from(plan.rate) * plan.overload_s,
                Duration::from_secs(plan.overload_s + plan.hold_ms / 1000 + 90),
                &dir.join("sipp-overload"),
            ));
        }
        // Progress, once per period (a slow scrape may have skipped its tick).
        while reported < plan.periods && tick >= (reported + 1) * plan.period_s {
            reported += 1;
            let a = at(&samples, (reported - 1) * plan.period_s);
            let r = period_row(reported, &Delta { a, b: &s }, plan);
            eprintln!(
                "soak: period {}: placed {}, completed {}, failed {}, admitted {}, locked {}, 503 {}, p99 {:.1} ms, {:.2} cores",
                r.period,
                r.placed,
                r.completed,
                r.failed,
                r.admitted,
                r.locked,
                r.rejected_503,
                r.admission_p99_ms.unwrap_or(f64::NAN),
                r.gateway_cores
            );
        }
        samples.push(s);
        let done = tick >= plan.end_s() && sipps.iter_mut().all(|s| !s.running());
        if done || tick >= hard_stop {
            break;
        }
        // After a slow scrape, catch up with the clock rather than bunch samples.
        tick = (tick + 1).max(t0.elapsed().as_secs() + 1);
    }
    // SIPp writes its last counts as it exits.
    let final_tick = tick + 1;
    let s = sample(final_tick, &mut sipps);
    samples.push(s);
    let exits = sipps
        .iter_mut()
        .map(|s| {
            s.running();
            s.exit.and_then(|e| e.code())
        })
        .collect();
    (samples, exits, scrapes_failed)
}

/// The sample at or just after `tick`.
fn at(samples: &[Sample], tick: u64) -> &Sample {
    samples
        .iter()
        .find(|s| s.tick >= tick)
        .or(samples.last())
        .expect("samples")
}

fn report(plan: &Plan, samples: &[Sample]) -> (Vec<PeriodRow>, Vec<SliceRow>, Recovery) {
    let periods = (1..=plan.periods)
        .map(|p| {
            let d = Delta {
                a: at(samples, (p - 1) * plan.period_s),
                b: at(samples, p * plan.period_s),
            };
            period_row(p, &d, plan)
        })
        .collect();
    let step = plan.clean_s();
    let mut slices = Vec::new();
    let mut from = 0;
    while from < plan.overload_s + plan.recovery_s {
        let to = (from + plan.slice_s).min(plan.overload_s + plan.recovery_s);
        let d = Delta {
            a: at(samples, step + from),
            b: at(samples, step + to),
        };
        slices.push(SliceRow {
            from_s: from,
            to_s: to,
            offered_rate: if from < plan.overload_s {
                2 * plan.rate
            } else {
                plan.rate
            },
            placed: d.sipp(|s| s.placed),
            answered: d.sipp(|s| s.answered),
            rejected_503: d.count(Sample::shed),
            failed: d.sipp(|s| s.failed),
            admitted: d.count(Sample::admitted),
            locked: d.count(Sample::locked),
            admission_p99_ms: d.admission_ms(0.99),
            calls_in_progress: d.b.gauge("dialgate_calls_in_progress"),
        });
        from = to;
    }
    let step_end = step + plan.overload_s;
    let end = plan.end_s();
    let shed = |a: u64, b: u64| {
        Delta {
            a: at(samples, a),
            b: at(samples, b),
        }
        .count(Sample::shed)
    };
    let last_503 = (step_end + 1..=end)
        .filter(|&t| shed(t - 1, t) > 0)
        .max()
        .map_or(0, |t| t - step_end);
    let failures = |t: u64| {
        let d = Delta {
            a: at(samples, t - 1),
            b: at(samples, t),
        };
        d.sipp(|s| s.failed) + d.count(Sample::locked)
    };
    let last_failure = (step_end + 1..=end)
        .filter(|&t| failures(t) > 0)
        .max()
        .map_or(0, |t| t - step_end);
    let recovery = Recovery {
        rejected_503_during_step: shed(step, step_end),
        rejected_503_after_step: shed(step_end, end),
        last_503_after_step_s: last_503 as f64,
        clean_again: shed(end - 1, end) == 0,
        last_failure_after_step_s: last_failure as f64,
    };
    (periods, slices, recovery)
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.1}"))
}

fn print(r: &Results) {
    let p = &r.plan;
    println!(
        "\nsoak bench, {} ({}){}",
        r.date,
        r.machine,
        if p.quick { ", quick sizes" } else { "" }
    );
    println!(
        "store seeded with {} attempt rows ({} failures) over 30 days in {:.1} s; full IVR calls ({}, hold {} ms) at {}/s for {} × {} s",
        r.seeding.rows,
        r.seeding.failures,
        r.seeding.seconds,
        p.dtmf.describe(),
        p.hold_ms,
        p.rate,
        p.periods,
        p.period_s
    );
    println!(
        "\n| period | placed | completed | failed | admitted | locked | 503 | admission p50 / p99 ms | gateway CPU ms/call | gateway cores | SIPp cores | RSS MiB | attempts made / rows written |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for row in &r.periods {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {:.2} | {:.2} | {:.1} | {} / {} |",
            row.period,
            row.placed,
            row.completed,
            row.failed,
            row.admitted,
            row.locked,
            row.rejected_503,
            opt(row.admission_p50_ms),
            opt(row.admission_p99_ms),
            row.gateway_cpu_ms_per_call
                .map_or_else(|| "–".into(), |v| format!("{v:.2}")),
            row.gateway_cores,
            row.sipp_cores,
            row.rss_kib as f64 / 1024.0,
            row.attempts_made,
            row.rows_written
        );
    }
    println!(
        "\noverload step: {}/s for {} s, then {}/s for {} s (seconds from the step's start)\n",
        2 * p.rate,
        p.overload_s,
        p.rate,
        p.recovery_s
    );
    println!(
        "| s | offered/s | placed | answered | 503 | failed | admitted | locked | admission p99 ms | in progress |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for s in &r.overload {
        println!(
            "| {}–{} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |",
            s.from_s,
            s.to_s,
            s.offered_rate,
            s.placed,
            s.answered,
            s.rejected_503,
            s.failed,
            s.admitted,
            s.locked,
            opt(s.admission_p99_ms),
            s.calls_in_progress
        );
    }
    let v = &r.recovery;
    println!(
        "\n503s during the step {}, after it {}; last 503 {} s after the step ({}); last failed or locked call {} s after the step",
        v.rejected_503_during_step,
        v.rejected_503_after_step,
        v.last_503_after_step_s,
        if v.clean_again {
            "clean again by the end"
        } else {
            "still shedding at the end"
        },
        v.last_failure_after_step_s
    );
    let t = &r.totals;
    println!(
        "whole run: {} placed, {} answered, {} completed, {} failed ({} of them after answer), {} admitted; 503 by reason {:?}",
        t.sipp.placed,
        t.sipp.answered,
        t.sipp.completed,
        t.sipp.failed,
        t.answered_then_failed,
        t.admitted,
        t.rejected_503_by_reason
    );
    let queries: Vec<String> = t
        .db_query_p99_ms
        .iter()
        .map(|(op, ms)| format!("{op} {ms:.1}"))
        .collect();
    println!("call-path query p99 ms, whole run: {}", queries.join(", "));
    println!(
        "attempt log: {} attempts made, {} rows written (metric, before SIGTERM), {} rows in the store after SIGTERM: {} missing",
        t.attempts_made, t.rows_written_metric, t.rows_in_store_after_stop, t.rows_missing
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let plan = match Plan::from_args(&args) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("soak bench: {e}");
            std::process::exit(2);
        }
    };
    if Command::new("sipp").arg("-v").output().is_err() {
        eprintln!("soak bench: SIPp is not installed (./dev bench soak installs sip-tester)");
        std::process::exit(1);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("soak.db").display());
    let secret = dir.path().join("soak.secret");
    eprintln!("soak: seeding {} attempt rows…", plan.seed_rows);
    let seeding = seed(&db, plan.seed_rows);
    let rows_before = count_rows(&db);
    eprintln!(
        "soak: seeded in {:.1} s; {}",
        seeding.seconds,
        if plan.quick {
            "quick sizes"
        } else {
            "full run"
        }
    );
    let mut gw = Gateway::start(&db, &secret, &dir.path().join("gateway.log"), &plan);
    let (samples, sipp_exits, scrapes_failed) = drive(&gw, &plan, dir.path());
    let last = samples.last().expect("samples");
    let first = samples.first().expect("samples");
    let gateway_exit = gw.stop();
    let rows_after = count_rows(&db);
    let (periods, overload, recovery) = report(&plan, &samples);
    let attempts_made = last.attempts().round() as u64;
    let rows_in_store = rows_after.saturating_sub(rows_before);
    let totals = Totals {
        sipp: last.sipp,
        answered_then_failed: last
            .sipp
            .failed
            .saturating_sub(last.sipp.placed.saturating_sub(last.sipp.answered)),
        admitted: Delta { a: first, b: last }.count(Sample::admitted),
        attempts_by_outcome: last.scrape.by("dialgate_attempts_total", "outcome"),
        rejected_503_by_reason: last.scrape.by("dialgate_calls_shed_total", "reason"),
        db_query_p99_ms: Delta { a: first, b: last }.db_query_p99_ms(),
        attempts_made,
        rows_written_metric: last.gauge("dialgate_attempt_rows_written_total").round() as u64,
        rows_in_store_after_stop: rows_in_store,
        rows_missing: attempts_made as i64 - rows_in_store as i64,
        gateway_exit: gateway_exit.and_then(|e| e.code()),
        sipp_exits,
        scrapes_failed,
    };
    let results = Results {
        date: chrono::Utc::now().format("%Y-%m-%d").to_string(),
        machine: machine(),
        plan,
        seeding,
        periods,
        overload,
        recovery,
        totals,
    };
    print(&results);
    let path = repo().join("target/soak-bench.json");
    match serde_json::to_string_pretty(&results) {
        Ok(json) => match std::fs::write(&path, json) {
            Ok(()) => println!("\nwritten to {}", path.display()),
            Err(e) => eprintln!("soak bench: cannot write {}: {e}", path.display()),
        },
        Err(e) => eprintln!("soak bench: {e}"),
    }
    if std::env::var_os("SOAK_KEEP").is_some() {
        eprintln!("soak: keeping {}", dir.keep().display());
    }
    let t = &results.totals;
    assert_eq!(
        t.rows_missing, 0,
        "every attempt the gateway made is a row in the store after SIGTERM"
    );
    if results.plan.quick {
        let failed: u64 = results.periods.iter().map(|p| p.failed).sum();
        assert_eq!(failed, 0, "no call failed at the quick clean rate");
    }
}
