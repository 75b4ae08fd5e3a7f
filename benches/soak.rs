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
//! `--driver replay` places the calls with our own tool instead: `dialgate
//! replay` of sip-fixtures/traces/rfc4733_admitted.pcapng (the same code as
//! RFC 4733 events, from regular UDP sockets; BYE 7.5 s after the INVITE),
//! one replay process at the clean rate and a second beside it for the
//! step. The replay reports only as it exits, so its per-minute placed,
//! completed and failed calls are the gateway's counts (marked `(gw)`; see
//! [`CallCounts::from_gateway`]), and each replay's own report — attempted,
//! answered, admitted, refused, abandoned and failed by cause, setup and
//! admission latency — is printed at the end and kept in the JSON.
//! `--dtmf info` is refused with it (the trace keys RFC 4733) and
//! `--hold-ms` ignored (the trace sets the call's length).
//!
//! Per minute: calls placed, completed and failed (SIPp's own counts, from
//! its `-trace_stat` file), admitted and refused with 503 before answer (the
//! gateway's `dialgate_attempts_total` and `dialgate_calls_shed_total`),
//! admission latency p50/p99 (the gateway's `dialgate_admission_seconds`
//! histogram, the key that completed the code → the verdict, from bucket
//! deltas, interpolated within a bucket), the gateway's CPU per completed call
//! (utime + stime from /proc/PID/stat), its RSS, the callers' CPU, and
//! attempts made against attempt rows written. The overload step and what
//! follows are reported per 10 s — placed, answered (SIPp's
//! `-trace_counts`), 503s, failed, admitted — with how long after the step
//! the 503s stopped. At the end the gateway is
//! stopped with SIGTERM (which writes every queued row) and the rows in the
//! SQLite file are counted against the attempts the gateway made.
//!
//! Prints the tables and writes JSON to target/soak-bench.json. Figures are
//! reported, not asserted; what must hold at any speed is: no attempt row
//! lost, and (quick sizes) no failed call at the clean rate. Under `cargo
//! test` (no `--bench` argument) or with `--quick` it runs a small version
//! in under a minute (20 calls/s, 2 periods of 10 s, 20,000 seed rows, a
//! 10 s step); `cargo test` runs it with SIPp only. Flags: `--driver
//! sipp|replay` (sipp), `--rate N`, `--minutes M`, `--seed-rows N`,
//! `--hold-ms N`, `--lockout-attempts N` (passed to `serve`; by default the
//! gateway's own), `--dtmf rfc4733|info` (how SIPp keys the code: the pcap,
//! or `uac_info.xml`'s SIP INFO, which spares the gateway the cost of SIPp's
//! raw sockets — see [`Dtmf`]), `--gateway PATH` (soak another build of
//! the gateway, to compare builds one after the other), `--store
//! sqlite|postgres` (the gateway's store: a temp SQLite file, or a
//! throw-away PostgreSQL server whose CPU and transactions per call are
//! reported too: [`StoreWatch`]), `--netns`/`--no-netns` (run in a network
//! namespace of the bench's own, where the gateway's RTP to SIPp is dropped
//! as it arrives: the default for full runs; see [`netns`]). `SOAK_KEEP=1`
//! keeps the temp dir (gateway
//! log, SIPp's or the replay's files). Every load is bounded in calls and
//! time; every child process is killed on every exit path (SIPp is needed
//! for `--driver sipp`: `./dev bench soak` installs it).

#[path = "support/gateway.rs"]
mod gateway;
#[path = "support/netns.rs"]
mod netns;
#[path = "../tests/support/postgres.rs"]
mod postgres;
#[path = "support/proc.rs"]
mod proc;

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use gateway::{BIN, Launch, Reaper, machine, repo};

/// The number the demo room is dialled on, as SIPp's `-s`.
const DEMO_NUMBER: &str = "+15550100";

/// The demo room's code, as the SIP INFO caller keys it.
const DEMO_CODE: &str = "123456789#";

/// SIPp's media address (`-mi`), apart from its SIP address (127.0.0.1):
/// the raw sockets of its pcap plays are bound here, so the SIP the gateway
/// sends SIPp matches none of them; in the bench's namespace the RTP the
/// gateway sends here is dropped as it arrives (see [`Dtmf`]).
const SIPP_MEDIA_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

#[derive(Clone, Debug, serde::Serialize)]
struct Plan {
    quick: bool,
    /// Clean rate, calls per second.
    rate: u32,
    period_s: u64,
    periods: u64,
    seed_rows: u64,
    /// How long a SIPp call stays up after its keypad pcap starts playing
    /// (a replayed call lasts as its trace).
    hold_ms: u64,
    overload_s: u64,
    recovery_s: u64,
    /// Reporting step of the overload and recovery table.
    slice_s: u64,
    /// `serve --lockout-attempts`; `None`: the gateway's default (10).
    lockout_attempts: Option<u64>,
    /// How SIPp keys the code.
    dtmf: Dtmf,
    /// What places the calls.
    driver: Driver,
    /// Run in a network namespace of the bench's own ([`netns`]): on for
    /// full runs, off for quick ones; `--netns`, `--no-netns`.
    netns: bool,
    /// The gateway's store: a temp SQLite file, or with `--store postgres`
    /// a throw-away PostgreSQL server ([`StoreWatch`]).
    store: StoreKind,
    /// The gateway binary soaked: this build's, or another given with
    /// `--gateway PATH` (an earlier build, to compare one after the other).
    gateway: Option<String>,
}

/// `dialgate_db_query_seconds{op}` that no call asks: the attempt log's
/// writer and checkpoints.
const BACKGROUND_OPS: [&str; 2] = ["record_attempt", "wal_checkpoint"];

/// Where the gateway keeps its store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum StoreKind {
    Sqlite,
    Postgres,
}

/// What the bench reads of a PostgreSQL store each second: the CPU of the
/// server's processes (the postmaster and its children: backends, writers)
/// and its transactions (`pg_stat_database`: every query the gateway makes
/// outside a transaction is one, a batch of attempt rows one more; the
/// bench's own sample adds one a second).
struct StoreWatch {
    postmaster: u32,
    runtime: tokio::runtime::Runtime,
    conn: sqlx::PgConnection,
    /// The transactions last read: kept when a read fails, so that a
    /// failed sample moves its count to the next rather than to nought.
    xacts: f64,
}

impl StoreWatch {
    fn new(server: &postgres::PgServer) -> StoreWatch {
        use sqlx::Connection;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let conn = runtime
            .block_on(sqlx::PgConnection::connect(&server.url))
            .expect("connect to the bench's PostgreSQL");
        StoreWatch {
            postmaster: server.postmaster_pid().expect("postmaster.pid"),
            runtime,
            conn,
            xacts: 0.0,
        }
    }

    /// The server's CPU seconds and transactions so far.
    fn sample(&mut self) -> (f64, f64) {
        let cpu = proc::cpu_with_children(self.postmaster).as_secs_f64();
        let xacts: Option<(i64,)> = self
            .runtime
            .block_on(
                sqlx::query_as(
                    "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database \
                 WHERE datname = current_database()",
                )
                .fetch_optional(&mut self.conn),
            )
            .ok()
            .flatten();
        if let Some((n,)) = xacts {
            self.xacts = n as f64;
        }
        (cpu, self.xacts)
    }
}

/// What places the calls: SIPp, a peer we did not write, or our own
/// `dialgate replay`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Driver {
    /// SIPp running [`Dtmf::scenario`]; per-minute call counts from its
    /// `-trace_stat` and `-trace_counts` files.
    Sipp,
    /// `dialgate replay` of [`REPLAY_TRACE`] with regular UDP sockets (no
    /// raw-socket tax). It reports once, as it exits, so the per-minute call
    /// counts are the gateway's (see [`CallCounts::from_gateway`]); its own
    /// reports go into the summary.
    Replay,
}

impl Driver {
    fn name(self) -> &'static str {
        match self {
            Driver::Sipp => "sipp",
            Driver::Replay => "replay",
        }
    }
}

/// The recorded call `--driver replay` plays: INVITE, `123456789#` as RFC
/// 4733 events from 1.0 to 3.3 s, the verdict, about 4 s in the demo room,
/// the caller's BYE 7.5 s after its INVITE.
const REPLAY_TRACE: &str = "sip-fixtures/traces/rfc4733_admitted.pcapng";

/// How long a replayed call lasts, INVITE to BYE (the trace's timing).
const REPLAY_CALL_S: u64 = 8;

/// How SIPp keys the code. RFC 4733 plays a pcap from a raw socket per
/// call, and while such a socket is open the kernel hands it a copy of
/// every UDP datagram to SIPp's media address, in the sender's time: at 100
/// calls/s about 270 are open, and on the host's network a third of the
/// gateway's CPU (perf: `raw_local_deliver`) goes to copying the RTP it
/// sends SIPp — a cost of the harness that grows with the square of the
/// rate. In the bench's own namespace (the default for full runs) that RTP
/// is dropped as it arrives, before any socket sees it ([`netns::wire`]),
/// so the gateway pays for its sends as on a real network. SIP INFO needs
/// no raw socket (but sends no RTP to the gateway).
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

/// The value of `flag` named by `given`, one of `choices`' names.
fn one_of<T: Copy>(flag: &str, given: Option<&String>, choices: &[(&str, T)]) -> Result<T, String> {
    choices
        .iter()
        .find(|(name, _)| given.is_some_and(|g| g == name))
        .map(|&(_, value)| value)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            format!("{flag} takes {}", names.join(" or "))
        })
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
    driver: Driver::Sipp,
    netns: true,
    store: StoreKind::Sqlite,
    gateway: None,
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
    driver: Driver::Sipp,
    netns: false,
    store: StoreKind::Sqlite,
    gateway: None,
};

impl Plan {
    /// Sizes from the command line: `--bench` (from `cargo bench`) without
    /// `--quick` runs the full soak; the flags override either size.
    fn from_args(args: &[String]) -> Result<Plan, String> {
        let quick = !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--quick");
        let mut plan = if quick { QUICK } else { FULL };
        let mut it = args.iter().skip(1);
        let mut hold_given = false;
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
                "--hold-ms" => {
                    plan.hold_ms = value("--hold-ms")?;
                    hold_given = true;
                }
                "--lockout-attempts" => plan.lockout_attempts = Some(value("--lockout-attempts")?),
                "--dtmf" => {
                    let choices = [("rfc4733", Dtmf::Rfc4733), ("info", Dtmf::Info)];
                    plan.dtmf = one_of("--dtmf", it.next(), &choices)?;
                }
                "--driver" => {
                    let choices = [("sipp", Driver::Sipp), ("replay", Driver::Replay)];
                    plan.driver = one_of("--driver", it.next(), &choices)?;
                }
                "--store" => {
                    let choices = [
                        ("sqlite", StoreKind::Sqlite),
                        ("postgres", StoreKind::Postgres),
                    ];
                    plan.store = one_of("--store", it.next(), &choices)?;
                }
                "--gateway" => {
                    plan.gateway = Some(it.next().ok_or("--gateway needs a path")?.clone())
                }
                "--netns" => plan.netns = true,
                "--no-netns" => plan.netns = false,
                "--bench" | "--quick" => {}
                other => eprintln!("soak bench: ignoring argument {other:?}"),
            }
        }
        if plan.rate == 0 || plan.periods == 0 {
            return Err("--rate and --minutes must be at least 1".into());
        }
        if plan.driver == Driver::Replay {
            if plan.dtmf == Dtmf::Info {
                return Err("--dtmf info is SIPp's: the replay keys RFC 4733 as its trace did; use --driver sipp for SIP INFO".into());
            }
            if hold_given {
                eprintln!(
                    "soak bench: ignoring --hold-ms: a replayed call lasts as its trace (BYE 7.5 s after the INVITE)"
                );
            }
        }
        Ok(plan)
    }

    fn clean_s(&self) -> u64 {
        self.period_s * self.periods
    }

    fn end_s(&self) -> u64 {
        self.clean_s() + self.overload_s + self.recovery_s
    }

    /// About how long a call lasts, in whole seconds.
    fn call_s(&self) -> u64 {
        match self.driver {
            Driver::Sipp => self.hold_ms / 1000,
            Driver::Replay => REPLAY_CALL_S,
        }
    }

    /// Where the calls run, for the report.
    fn describe_network(&self) -> &'static str {
        match (self.netns, self.driver) {
            (false, _) => "the host's network",
            (true, Driver::Sipp) => {
                "the bench's own network namespace, the gateway's RTP to SIPp dropped as it arrives"
            }
            (true, Driver::Replay) => "the bench's own network namespace",
        }
    }

    /// What the calls do, for the report.
    fn describe_calls(&self) -> String {
        match self.driver {
            Driver::Sipp => format!("{}, hold {} ms", self.dtmf.describe(), self.hold_ms),
            Driver::Replay => {
                format!("dialgate replay of {REPLAY_TRACE}, BYE 7.5 s after the INVITE")
            }
        }
    }
}

/// An even UDP port, with the one two above it, free on SIPp's media
/// address right now: SIPp's `-mp` (audio, and video two above).
fn free_media_port() -> u16 {
    for _ in 0..200 {
        let Ok(probe) = std::net::UdpSocket::bind((SIPP_MEDIA_IP, 0)) else {
            continue;
        };
        let port = probe.local_addr().map_or(0, |a| a.port()) & !1;
        drop(probe);
        if port > 1024
            && std::net::UdpSocket::bind((SIPP_MEDIA_IP, port)).is_ok()
            && std::net::UdpSocket::bind((SIPP_MEDIA_IP, port + 2)).is_ok()
        {
            return port;
        }
    }
    panic!("no free media port on {SIPP_MEDIA_IP}");
}

/// `dialgate serve --demo` on loopback, default settings otherwise.
struct Gateway {
    gw: gateway::Gateway,
    token: String,
    agent: ureq::Agent,
}

impl Gateway {
    fn start(launch: Launch, plan: &Plan) -> Gateway {
        // Not SIPp's address: datagrams to the gateway then match none of
        // SIPp's raw sockets (see `Dtmf`). The one setting off its
        // default: every call comes from one address (SIPp's, or the
        // replay's), at up to 5,200 messages a second in the step, past the
        // per-source limit (1,000/s) that a single phone or office never
        // comes near.
        // And no drain: the bench's SIGTERM comes after its load, and any
        // call still up then is hung up at once, as before drains.
        let mut launch = launch.with_args(&["--sip-source-rate", "0", "--drain-timeout", "0s"]);
        if let Some(n) = plan.lockout_attempts {
            launch = launch.with_args(&["--lockout-attempts", &n.to_string()]);
        }
        let gw = gateway::Gateway::start(&launch);
        Gateway {
            token: launch.token("soak"),
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(5)))
                .build()
                .into(),
            gw,
        }
    }

    fn pid(&self) -> u32 {
        self.gw.pid()
    }

    /// `/metrics`, parsed; `None` when the API did not answer in time.
    fn scrape(&self) -> Option<Scrape> {
        let mut response = self
            .agent
            .get(&format!("http://{}/metrics", self.gw.api))
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
        self.gw.proc.wait_for(Duration::from_secs(60))
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

/// Cumulative call counts of the run: SIPp's own (of one run or several,
/// added), or for the replay driver the gateway's ([`CallCounts::from_gateway`]).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
struct CallCounts {
    placed: u64,
    answered: u64,
    completed: u64,
    failed: u64,
}

impl std::ops::Add for CallCounts {
    type Output = CallCounts;
    fn add(self, o: CallCounts) -> CallCounts {
        CallCounts {
            placed: self.placed + o.placed,
            answered: self.answered + o.answered,
            completed: self.completed + o.completed,
            failed: self.failed + o.failed,
        }
    }
}

impl CallCounts {
    /// The same counts as the gateway saw them, for a driver that reports
    /// only as it exits: every call the gateway answered ends in
    /// `dialgate_calls_total{outcome}`, and every call it refused is a
    /// `dialgate_calls_shed_total` 503. Placed: calls ended + calls in
    /// progress (`dialgate_calls_in_progress`) + 503s; answered: placed −
    /// 503s; completed: calls that hung up from the room (outcome
    /// `admitted`); failed: calls that ended otherwise (abandoned before a
    /// verdict, refused, timed out…) + 503s, as SIPp counts a 503 failed.
    fn from_gateway(s: &Scrape) -> CallCounts {
        let ended = s.sum("dialgate_calls_total", &[]);
        let in_room = s.sum("dialgate_calls_total", &[("outcome", "admitted")]);
        let in_progress = s.sum("dialgate_calls_in_progress", &[]);
        let shed = s.sum("dialgate_calls_shed_total", &[]);
        let n = |v: f64| v.max(0.0).round() as u64;
        CallCounts {
            placed: n(ended + in_progress + shed),
            answered: n(ended + in_progress),
            completed: n(in_room),
            failed: n(ended - in_room + shed),
        }
    }
}

/// What a caller process leaves to read.
enum CallerFiles {
    /// SIPp's `-trace_stat` and `-trace_counts` files, read as they grow.
    Sipp { stat: CsvTail, counts: CsvTail },
    /// `dialgate replay --json`'s stdout: its report, written as it exits.
    Replay { report: PathBuf },
}

/// One process placing calls at a rate — SIPp or `dialgate replay` — with
/// all its files in one directory; killed and reaped when dropped.
struct Caller {
    /// `clean` or `overload`.
    run: &'static str,
    rate: u32,
    calls: u64,
    proc: Reaper,
    files: CallerFiles,
    exit: Option<ExitStatus>,
}

impl Caller {
    /// `rate` calls/s for `span_s` seconds against `target`, as `plan.driver`
    /// places them; the process stops itself some time after the span
    /// (SIPp's `-timeout`, replay's `--duration`) whatever happens.
    fn start(
        run: &'static str,
        target: &str,
        plan: &Plan,
        rate: u32,
        span_s: u64,
        dir: &Path,
    ) -> Caller {
        std::fs::create_dir_all(dir).expect("caller dir");
        let report = dir.join("report.json");
        let calls = u64::from(rate) * span_s;
        // Open calls are bounded by the count and the time, not throttled.
        let open = u64::from(rate) * 60;
        let (mut cmd, stdout) = match plan.driver {
            Driver::Sipp => {
                let limit = span_s + plan.call_s() + 90;
                let cmd = sipp_command(target, plan, rate, calls, open, limit, dir);
                (cmd, Stdio::null())
            }
            Driver::Replay => {
                // Past it no call starts and calls still up are cut (and
                // counted failed); the replay then takes 10 s to wind
                // down, well within the bench's own hard stop.
                let limit = span_s + plan.call_s() + 30;
                let cmd = replay_command(target, rate, calls, open, limit);
                let file = std::fs::File::create(&report).expect("replay report file");
                (cmd, Stdio::from(file))
            }
        };
        let child = cmd
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("stderr.log")).expect("caller stderr file"),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", plan.driver.name()));
        let files = match plan.driver {
            Driver::Sipp => CallerFiles::Sipp {
                stat: CsvTail::new(dir.join("stat.csv")),
                counts: CsvTail::new(dir.join(format!(
                    "{}_{}_counts.csv",
                    plan.dtmf.scenario(),
                    child.id()
                ))),
            },
            Driver::Replay => CallerFiles::Replay { report },
        };
        Caller {
            run,
            rate,
            calls,
            proc: Reaper(child),
            files,
            exit: None,
        }
    }

    fn running(&mut self) -> bool {
        if self.exit.is_none() && !self.proc.running() {
            self.exit = self.proc.wait_for(Duration::ZERO);
        }
        self.exit.is_none()
    }

    /// SIPp's counts so far; `None` for the replay, which counts as it exits.
    fn counts(&mut self) -> Option<CallCounts> {
        let CallerFiles::Sipp { stat, counts } = &mut self.files else {
            return None;
        };
        stat.poll();
        counts.poll();
        Some(CallCounts {
            placed: stat.value(|h| h == "OutgoingCall(C)"),
            completed: stat.value(|h| h == "SuccessfulCall(C)"),
            failed: stat.value(|h| h == "FailedCall(C)"),
            // The scenario's first 200 is the answer to the INVITE.
            answered: counts.value(|h| h.ends_with("_200_Recv")),
        })
    }

    /// How the run ended; the replay's report if it wrote one (it does as
    /// it exits, not when the bench kills it).
    fn finish(&mut self) -> CallerRun {
        self.running();
        let report = match &self.files {
            CallerFiles::Sipp { .. } => None,
            CallerFiles::Replay { report } => std::fs::read(report)
                .ok()
                .and_then(|json| serde_json::from_slice(&json).ok()),
        };
        CallerRun {
            run: self.run,
            rate: self.rate,
            calls: self.calls,
            exit_code: self.exit.and_then(|e| e.code()),
            report,
        }
    }
}

/// SIPp's UAC running the `--dtmf` scenario, its files in `dir`.
fn sipp_command(
    target: &str,
    plan: &Plan,
    rate: u32,
    calls: u64,
    open: u64,
    limit_s: u64,
    dir: &Path,
) -> Command {
    let mut cmd = Command::new("sipp");
    cmd.arg(target)
        .arg("-sf")
        .arg(repo().join(format!(
            "sip-fixtures/scenarios/{}.xml",
            plan.dtmf.scenario()
        )))
        .args(["-s", DEMO_NUMBER, "-i", "127.0.0.1", "-p", "0"])
        .args(["-mi", &SIPP_MEDIA_IP.to_string()])
        .args(["-mp", &free_media_port().to_string()]);
    match plan.dtmf {
        Dtmf::Rfc4733 => cmd
            .arg("-key")
            .arg("dtmf_pcap")
            .arg(repo().join("sip-fixtures/pcap/demo_code.pcap")),
        Dtmf::Info => cmd.args(["-key", "code", DEMO_CODE]),
    };
    cmd.args(["-key", "hold_ms", &plan.hold_ms.to_string()])
        .args(["-r", &rate.to_string(), "-m", &calls.to_string()])
        .args(["-l", &open.to_string()])
        .args(["-timeout", &format!("{limit_s}s")])
        .args(["-buff_size", "4194304", "-nostdin"])
        .args(["-trace_stat", "-fd", "200ms", "-stf"])
        .arg(dir.join("stat.csv"))
        .args(["-trace_counts", "-trace_err", "-error_file"])
        .arg(dir.join("errors.log"));
    cmd
}

/// `dialgate replay` of [`REPLAY_TRACE`], its JSON report on stdout.
fn replay_command(target: &str, rate: u32, calls: u64, open: u64, limit_s: u64) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("replay")
        .arg(repo().join(REPLAY_TRACE))
        .args(["--target", target, "--json"])
        .args(["--rate", &rate.to_string(), "--calls", &calls.to_string()])
        .args(["--concurrency", &open.to_string()])
        .args(["--duration", &format!("{limit_s}s")]);
    cmd
}

/// One caller process's run, for the summary.
#[derive(serde::Serialize)]
struct CallerRun {
    run: &'static str,
    rate: u32,
    calls: u64,
    exit_code: Option<i32>,
    /// `dialgate replay --json`'s report, as it printed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<serde_json::Value>,
}

/// The gateway and the callers at one moment of the run.
#[derive(Clone)]
struct Sample {
    /// Seconds since the clean caller started.
    t: f64,
    tick: u64,
    scrape: Scrape,
    gateway_cpu_s: f64,
    /// CPU of the caller processes (SIPp or replay), summed.
    callers_cpu_s: f64,
    rss_kib: u64,
    calls: CallCounts,
    /// PostgreSQL's CPU seconds and transactions so far (0 on SQLite).
    store_cpu_s: f64,
    store_xacts: f64,
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

    fn calls(&self, f: impl Fn(&CallCounts) -> u64) -> u64 {
        f(&self.b.calls).saturating_sub(f(&self.a.calls))
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

    /// Per value of `label`, how much the counters of `name` grew.
    fn by(&self, name: &str, label: &str) -> BTreeMap<String, u64> {
        let before = self.a.scrape.by(name, label);
        self.b
            .scrape
            .by(name, label)
            .into_iter()
            .map(|(k, v)| {
                let was = before.get(&k).copied().unwrap_or(0.0);
                (k, (v - was).max(0.0).round() as u64)
            })
            .filter(|&(_, n)| n > 0)
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
    /// Placed, completed and failed: SIPp's counts, or with the replay
    /// driver the gateway's ([`CallCounts::from_gateway`]).
    placed: u64,
    completed: u64,
    failed: u64,
    admitted: u64,
    /// Calls whose media part ended, by `dialgate_calls_total{outcome}`.
    ended_by_outcome: BTreeMap<String, u64>,
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
    /// Cores the caller processes (SIPp or replay) used.
    caller_cores: f64,
    rss_kib: u64,
    calls_in_progress: f64,
    event_loop_lag_ms: f64,
    attempt_log_backlog: f64,
    db_query_p99_ms: BTreeMap<String, f64>,
    /// The gateway's timed store questions of calls per completed call
    /// (`dialgate_db_query_seconds_count` but for the attempt writer's
    /// `record_attempt` and `wal_checkpoint`; a question may be several
    /// queries, e.g. `resolve`).
    store_questions_per_call: Option<f64>,
    /// PostgreSQL only: the server's CPU per completed call, its cores,
    /// and its transactions per completed call.
    store_cpu_ms_per_call: Option<f64>,
    store_cores: Option<f64>,
    store_xacts_per_call: Option<f64>,
    /// Cumulative since the gateway started.
    attempts_made: u64,
    rows_written: u64,
}

fn period_row(period: u64, d: &Delta<'_>, plan: &Plan) -> PeriodRow {
    let completed = d.calls(|s| s.completed);
    let cpu = d.b.gateway_cpu_s - d.a.gateway_cpu_s;
    let store_cpu = d.b.store_cpu_s - d.a.store_cpu_s;
    let postgres = plan.store == StoreKind::Postgres;
    let per_call = |n: f64| (completed > 0).then(|| n / completed as f64);
    PeriodRow {
        period,
        from_s: (period - 1) * plan.period_s,
        to_s: period * plan.period_s,
        placed: d.calls(|s| s.placed),
        completed,
        failed: d.calls(|s| s.failed),
        admitted: d.count(Sample::admitted),
        ended_by_outcome: d.by("dialgate_calls_total", "outcome"),
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
        caller_cores: (d.b.callers_cpu_s - d.a.callers_cpu_s) / d.seconds(),
        rss_kib: d.b.rss_kib,
        calls_in_progress: d.b.gauge("dialgate_calls_in_progress"),
        event_loop_lag_ms: d.b.gauge("dialgate_event_loop_lag_seconds") * 1000.0,
        attempt_log_backlog: d.b.gauge("dialgate_attempt_log_backlog"),
        db_query_p99_ms: d.db_query_p99_ms(),
        store_questions_per_call: per_call(
            d.by("dialgate_db_query_seconds_count", "op")
                .iter()
                .filter(|(op, _)| !BACKGROUND_OPS.contains(&op.as_str()))
                .map(|(_, n)| n)
                .sum::<u64>() as f64,
        ),
        store_cpu_ms_per_call: postgres.then(|| per_call(store_cpu * 1000.0)).flatten(),
        store_cores: postgres.then(|| store_cpu / d.seconds()),
        store_xacts_per_call: postgres
            .then(|| per_call(d.b.store_xacts - d.a.store_xacts))
            .flatten(),
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
    /// Seconds after the step ended until the last call counted failed
    /// (by SIPp, or for the replay driver by the gateway) or refused
    /// `locked` (calls placed during the step end up to a call's length
    /// later); 0 when none came after it.
    last_failure_after_step_s: f64,
}

#[derive(serde::Serialize)]
struct Totals {
    /// SIPp's counts, or the gateway's with the replay driver.
    calls: CallCounts,
    /// Answered calls counted failed (SIPp: a BYE in the hold, a lost
    /// reply…; the gateway: calls that ended out of the room).
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
    /// The caller processes (SIPp or replay): exit codes, and the replay's
    /// own reports.
    callers: Vec<CallerRun>,
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
    /// What the calls do ([`Plan::describe_calls`]).
    calls_description: String,
    /// Where they run ([`Plan::describe_network`]).
    network: &'static str,
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
    use sqlx::Connection;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(db)
            .await
            .expect("open the store");
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM attempts")
            .fetch_one(&mut conn)
            .await
            .expect("count attempts");
        u64::try_from(n).unwrap_or(0)
    })
}

/// What [`drive`] returns: the samples (the first at 0 s, then one per
/// tick, the last once both callers have exited), how each caller's run
/// ended, and how many scrapes failed.
struct Driven {
    samples: Vec<Sample>,
    callers: Vec<CallerRun>,
    scrapes_failed: u64,
}

/// Runs the clean caller for the whole plan and the overload caller beside
/// it for the step, sampling the gateway and the callers every second.
/// Callers still running at the hard stop are killed (and leave no report).
fn drive(gw: &Gateway, plan: &Plan, dir: &Path, mut store: Option<StoreWatch>) -> Driven {
    let hard_stop = plan.end_s() + plan.call_s() + 60;
    let caller_dir = |run: &str| dir.join(format!("{}-{run}", plan.driver.name()));
    let t0 = Instant::now();
    let mut callers = vec![Caller::start(
        "clean",
        &gw.gw.sip,
        plan,
        plan.rate,
        plan.end_s(),
        &caller_dir("clean"),
    )];
    let mut last = None;
    let mut scrapes_failed = 0;
    let mut sample = |tick: u64, callers: &mut Vec<Caller>| {
        let scrape = gw.scrape().or_else(|| {
            scrapes_failed += 1;
            last.clone()
        });
        last = scrape.clone();
        let scrape = scrape.unwrap_or_default();
        let (store_cpu_s, store_xacts) = store.as_mut().map_or((0.0, 0.0), StoreWatch::sample);
        Sample {
            t: t0.elapsed().as_secs_f64(),
            tick,
            gateway_cpu_s: proc::cpu(gw.pid()).as_secs_f64(),
            callers_cpu_s: callers
                .iter()
                .map(|c| proc::cpu(c.proc.pid()).as_secs_f64())
                .sum(),
            rss_kib: proc::rss_kib(gw.pid()),
            calls: match plan.driver {
                Driver::Sipp => callers
                    .iter_mut()
                    .filter_map(Caller::counts)
                    .fold(CallCounts::default(), |a, b| a + b),
                Driver::Replay => CallCounts::from_gateway(&scrape),
            },
            scrape,
            store_cpu_s,
            store_xacts,
        }
    };
    let mut samples = vec![sample(0, &mut callers)];
    let mut tick = 1;
    let mut reported = 0;
    loop {
        if let Some(wait) = (t0 + Duration::from_secs(tick)).checked_duration_since(Instant::now())
        {
            std::thread::sleep(wait);
        }
        let s = sample(tick, &mut callers);
        // The step: a second caller beside the first, right after the
        // sample that closes the clean periods.
        if tick >= plan.clean_s() && callers.len() == 1 {
            callers.push(Caller::start(
                "overload",
                &gw.gw.sip,
                plan,
                plan.rate,
                plan.overload_s,
                &caller_dir("overload"),
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
        let done = tick >= plan.end_s() && callers.iter_mut().all(|c| !c.running());
        if done || tick >= hard_stop {
            break;
        }
        // After a slow scrape, catch up with the clock rather than bunch samples.
        tick = (tick + 1).max(t0.elapsed().as_secs() + 1);
    }
    // SIPp writes its last counts as it exits.
    let final_tick = tick + 1;
    let s = sample(final_tick, &mut callers);
    samples.push(s);
    Driven {
        samples,
        callers: callers.iter_mut().map(Caller::finish).collect(),
        scrapes_failed,
    }
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
            placed: d.calls(|s| s.placed),
            answered: d.calls(|s| s.answered),
            rejected_503: d.count(Sample::shed),
            failed: d.calls(|s| s.failed),
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
        d.calls(|s| s.failed) + d.count(Sample::locked)
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
        "\nsoak bench, {} ({}){}; {}",
        r.date,
        r.machine,
        if p.quick { ", quick sizes" } else { "" },
        p.describe_network()
    );
    if let Some(bin) = &p.gateway {
        println!("gateway: {bin} (--gateway)");
    }
    println!(
        "store seeded with {} attempt rows ({} failures) over 30 days in {:.1} s; full IVR calls ({}) at {}/s for {} × {} s",
        r.seeding.rows,
        r.seeding.failures,
        r.seeding.seconds,
        p.describe_calls(),
        p.rate,
        p.periods,
        p.period_s
    );
    let c = Columns::of(p.driver);
    println!(
        "\n| period | {} | {} | {} | admitted | locked | 503 | admission p50 / p99 ms | gateway CPU ms/call | gateway cores | {} | RSS MiB | attempts made / rows written |",
        c.placed, c.completed, c.failed, c.cores
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
            row.caller_cores,
            row.rss_kib as f64 / 1024.0,
            row.attempts_made,
            row.rows_written
        );
    }
    if let Some(note) = c.note {
        println!("\n{note}");
    }
    if p.store == StoreKind::Postgres {
        println!(
            "\nthe store, PostgreSQL (a throw-away server on 127.0.0.1, fsync off), per completed call:\n"
        );
        println!(
            "| period | PostgreSQL CPU ms/call | PostgreSQL cores | transactions/call | call store questions/call |"
        );
        println!("|---|---|---|---|---|");
        for row in &r.periods {
            println!(
                "| {} | {} | {} | {} | {} |",
                row.period,
                row.store_cpu_ms_per_call
                    .map_or_else(|| "–".into(), |v| format!("{v:.2}")),
                row.store_cores
                    .map_or_else(|| "–".into(), |v| format!("{v:.2}")),
                opt(row.store_xacts_per_call),
                opt(row.store_questions_per_call),
            );
        }
    } else {
        let questions: Vec<String> = r
            .periods
            .iter()
            .map(|row| opt(row.store_questions_per_call))
            .collect();
        println!(
            "\nthe store, SQLite: the calls' store questions per completed call, by period: {}",
            questions.join(", ")
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
        "| s | offered/s | {} | {} | 503 | {} | admitted | locked | admission p99 ms | in progress |",
        c.placed, c.answered, c.failed
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
        "whole run{}: {} placed, {} answered, {} completed, {} failed ({} of them after answer), {} admitted; 503 by reason {:?}",
        c.whose,
        t.calls.placed,
        t.calls.answered,
        t.calls.completed,
        t.calls.failed,
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
    if p.driver == Driver::Replay {
        print_replay_reports(&t.callers);
    }
}

/// The call-count columns' names, which say whose counts they are.
struct Columns {
    placed: &'static str,
    answered: &'static str,
    completed: &'static str,
    failed: &'static str,
    cores: &'static str,
    /// For the whole-run line.
    whose: &'static str,
    note: Option<&'static str>,
}

impl Columns {
    fn of(driver: Driver) -> Columns {
        match driver {
            Driver::Sipp => Columns {
                placed: "placed",
                answered: "answered",
                completed: "completed",
                failed: "failed",
                cores: "SIPp cores",
                whose: "",
                note: None,
            },
            Driver::Replay => Columns {
                placed: "placed (gw)",
                answered: "answered (gw)",
                completed: "completed (gw)",
                failed: "failed (gw)",
                cores: "replay cores",
                whose: " (the gateway's counts)",
                note: Some(
                    "(gw): the gateway's counts, as the replay reports only as it exits — placed = calls ended + in progress + 503s, answered = placed − 503s, completed = ended from the room, failed = ended otherwise + 503s; the replay's own reports follow",
                ),
            },
        }
    }
}

/// Each replay run's own report: what its callers saw, failures and
/// abandoned calls by cause, latencies.
fn print_replay_reports(runs: &[CallerRun]) {
    let (mut failed, mut abandoned) = (0, 0);
    for run in runs {
        let head = format!(
            "replay {} ({}/s, {} calls, exit {})",
            run.run,
            run.rate,
            run.calls,
            run.exit_code.map_or_else(|| "–".into(), |c| c.to_string())
        );
        let Some(r) = &run.report else {
            println!(
                "{head}: no report (killed at the bench's hard stop, or it did not start: its stderr.log is kept with SOAK_KEEP=1)"
            );
            continue;
        };
        let n = |k: &str| r[k].as_u64().unwrap_or(0);
        let causes = |k: &str| match r[k].as_object() {
            Some(m) if !m.is_empty() => {
                let parts: Vec<String> = m.iter().map(|(c, v)| format!("{c} {v}")).collect();
                format!(" ({})", parts.join(", "))
            }
            _ => String::new(),
        };
        let ms = |k: &str| {
            let l = &r[k];
            let q = |p: &str| {
                l[p].as_f64()
                    .map_or_else(|| "–".into(), |v| format!("{v:.1}"))
            };
            format!("{} / {} / {}", q("p50_ms"), q("p99_ms"), q("max_ms"))
        };
        failed += n("failed");
        abandoned += n("abandoned");
        println!(
            "{head}: attempted {}, answered {}, admitted {}, refused {}{}, abandoned {}, failed {}{}; {:.1} calls/s",
            n("attempted"),
            n("answered"),
            n("admitted"),
            n("refused"),
            causes("refused_by_cause"),
            n("abandoned"),
            n("failed"),
            causes("failed_by_cause"),
            r["cps"].as_f64().unwrap_or(0.0),
        );
        println!(
            "  setup p50 / p99 / max {} ms, admission p50 / p99 / max {} ms; retransmissions {} sent, {} received; differences from the trace: {}",
            ms("setup_latency"),
            ms("admission_latency"),
            n("retransmissions_sent"),
            n("retransmissions_received"),
            match causes("differences_from_trace").as_str() {
                "" => "none".to_owned(),
                d => d.trim_start().to_owned(),
            }
        );
    }
    if failed + abandoned > 0 {
        println!(
            "replay: {failed} calls failed and {abandoned} abandoned (hung up before a verdict), by cause above"
        );
    }
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
    if plan.driver == Driver::Sipp && Command::new("sipp").arg("-v").output().is_err() {
        eprintln!("soak bench: SIPp is not installed (./dev bench soak installs sip-tester)");
        std::process::exit(1);
    }
    if plan.netns {
        netns::enter("soak bench");
        // SIPp reads none of the RTP it is sent, in either scenario.
        let sink = (plan.driver == Driver::Sipp).then_some(SIPP_MEDIA_IP);
        if let Err(e) = netns::wire(sink) {
            eprintln!("soak bench: {e}");
            std::process::exit(1);
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // Started in the bench's namespace, where the gateway reaches it.
    let server = (plan.store == StoreKind::Postgres).then(postgres::PgServer::start);
    let mut launch = Launch::in_dir(dir.path(), "127.0.0.2:0");
    launch.log = dir.path().join("gateway.log");
    if let Some(bin) = &plan.gateway {
        launch.bin = bin.clone();
    }
    if let Some(server) = &server {
        launch.database = server.url.clone();
    }
    let db = launch.database.clone();
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
    let mut gw = Gateway::start(launch, &plan);
    let Driven {
        samples,
        callers,
        scrapes_failed,
    } = drive(&gw, &plan, dir.path(), server.as_ref().map(StoreWatch::new));
    let last = samples.last().expect("samples");
    let first = samples.first().expect("samples");
    let gateway_exit = gw.stop();
    let rows_after = count_rows(&db);
    let (periods, overload, recovery) = report(&plan, &samples);
    let attempts_made = last.attempts().round() as u64;
    let rows_in_store = rows_after.saturating_sub(rows_before);
    let totals = Totals {
        calls: last.calls,
        answered_then_failed: last
            .calls
            .failed
            .saturating_sub(last.calls.placed.saturating_sub(last.calls.answered)),
        admitted: Delta { a: first, b: last }.count(Sample::admitted),
        attempts_by_outcome: last.scrape.by("dialgate_attempts_total", "outcome"),
        rejected_503_by_reason: last.scrape.by("dialgate_calls_shed_total", "reason"),
        db_query_p99_ms: Delta { a: first, b: last }.db_query_p99_ms(),
        attempts_made,
        rows_written_metric: last.gauge("dialgate_attempt_rows_written_total").round() as u64,
        rows_in_store_after_stop: rows_in_store,
        rows_missing: attempts_made as i64 - rows_in_store as i64,
        gateway_exit: gateway_exit.and_then(|e| e.code()),
        callers,
        scrapes_failed,
    };
    let results = Results {
        date: chrono::Utc::now().format("%Y-%m-%d").to_string(),
        machine: machine(),
        calls_description: plan.describe_calls(),
        network: plan.describe_network(),
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
