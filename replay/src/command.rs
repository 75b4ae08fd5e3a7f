//! `dialgate-replay` (and `dialgate replay`): the command line of the load tool.
//!
//! Exit codes: 0 when every call ended as the traces did (no failed call,
//! no difference from the traces); 1 when some did not; 2 for bad input
//! (a trace or codes file that cannot be read, a non-loopback target
//! without `--allow-remote`, an invalid number).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use dialgate::sip::transaction::TimerConfig;

use super::engine::{self, Plan};
use super::net::Net;
use super::report::Report;
use super::script::Script;
use super::{codes, trace};

#[derive(Args, Debug, Clone)]
pub struct ReplayArgs {
    /// Trace files: pcap, pcapng or text captures (sip-fixtures/traces/)
    #[arg(required = true)]
    pub traces: Vec<PathBuf>,
    /// The gateway's SIP address
    #[arg(long)]
    pub target: String,
    /// New calls per second
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Calls to make in all
    #[arg(long, default_value_t = 1)]
    pub calls: u64,
    /// Calls up at once at most
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
    /// CSV of codes (one per line, optional header `code` or `code,security`), used in turn
    #[arg(long)]
    pub codes: Option<PathBuf>,
    /// Playback speed of the traces' timing (2 = twice as fast)
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Longest run, e.g. 60s: no call starts later, calls still up are hung up
    #[arg(long, default_value = "5m")]
    pub duration: String,
    /// Local address to send from
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Allow a target outside 127.0.0.0/8 and ::1
    #[arg(long)]
    pub allow_remote: bool,
    /// Report as one JSON object on stdout (no progress bar)
    #[arg(long)]
    pub json: bool,
}

fn bad(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

impl ReplayArgs {
    fn plan(&self) -> Result<Plan, String> {
        let target: SocketAddr = self
            .target
            .to_socket_addrs()
            .map_err(|e| format!("--target {}: {e}", self.target))?
            .next()
            .ok_or_else(|| format!("--target {}: no address", self.target))?;
        if !target.ip().is_loopback() && !self.allow_remote {
            return Err(format!(
                "--target {target} is not a loopback address; add --allow-remote to load a remote gateway"
            ));
        }
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 100_000.0) {
            return Err("--rate must be above 0 and at most 100000".into());
        }
        if !(self.speed.is_finite() && self.speed >= 0.01 && self.speed <= 100.0) {
            return Err("--speed must be between 0.01 and 100".into());
        }
        if self.calls == 0 || self.concurrency == 0 {
            return Err("--calls and --concurrency must be at least 1".into());
        }
        let duration = dialgate::config::parse_duration(&self.duration)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or("--duration: use a duration such as 60s or 5m")?;
        let mut scripts = Vec::new();
        for path in &self.traces {
            let t = trace::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            scripts.push(Script::from_trace(&t).map_err(|e| format!("{}: {e}", path.display()))?);
        }
        let codes = match &self.codes {
            Some(path) => codes::read(path).map_err(|e| format!("{}: {e}", path.display()))?,
            None => Vec::new(),
        };
        Ok(Plan {
            scripts,
            codes,
            target,
            bind: self.bind,
            rate: self.rate,
            calls: self.calls,
            concurrency: self.concurrency,
            speed: self.speed,
            duration,
            timers: TimerConfig::default(),
            net: Net::Udp,
        })
    }
}

fn progress_line(r: &Report) -> String {
    format!(
        "admitted {} · refused {} · abandoned {} · failed {}",
        r.admitted,
        r.refused_total(),
        r.abandoned,
        r.failed_total()
    )
}

/// Runs a replay (`dialgate-replay`, `dialgate replay`).
pub fn run(args: ReplayArgs, runtime: &tokio::runtime::Runtime) -> ExitCode {
    let plan = match args.plan() {
        Ok(p) => p,
        Err(e) => return bad(e),
    };
    let bar = if args.json {
        ProgressBar::with_draw_target(Some(plan.calls), ProgressDrawTarget::hidden())
    } else {
        ProgressBar::with_draw_target(Some(plan.calls), ProgressDrawTarget::stderr())
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} calls · {elapsed} · {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let result = runtime.block_on(engine::run(plan, |r| {
        bar.set_position(r.attempted);
        bar.set_message(progress_line(r));
    }));
    bar.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    if args.json {
        match serde_json::to_string_pretty(&report.summary()) {
            Ok(s) => println!("{s}"),
            Err(e) => return bad(e),
        }
    } else {
        print!("{}", report.text());
    }
    if report.failed_total() == 0 && report.differences.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
