//! The gateway a bench measures: `dialgate serve --demo` on loopback, from
//! the bench's own (release) build, ready once it has printed its ready
//! line and finished its start-up work, killed when dropped. Shared by the
//! flood, load and soak benches (`#[path]`-included beside
//! `support/proc.rs` as `proc`: each bench is its own crate, and not every
//! bench uses every item).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::proc;

/// The dialgate binary cargo built for this bench.
pub const BIN: &str = env!("CARGO_BIN_EXE_dialgate");

/// How long a gateway may take to print its ready line.
const READY_LIMIT: Duration = Duration::from_secs(60);

/// The repository (prompts, fixtures).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// "N cores, CPU model": the machine a report's figures come from.
pub fn machine() -> String {
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

/// A child process killed and reaped when dropped, on every exit path.
pub struct Reaper(pub Child);

impl Reaper {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    pub fn running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }

    /// Waits up to `limit` for the process to exit on its own.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
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

/// Where a bench's gateway keeps its files and listens, and what else it
/// is told.
pub struct Launch {
    /// The binary: [`BIN`], or an earlier build to compare with.
    pub bin: String,
    /// A `sqlite://` URL.
    pub database: String,
    pub secret: PathBuf,
    /// Where its log (stderr) goes.
    pub log: PathBuf,
    /// `--sip-listen` (port 0: any free one).
    pub sip_listen: String,
    /// Further `serve` flags.
    pub args: Vec<String>,
}

impl Launch {
    /// A gateway of [`BIN`] whose files (`gw.db`, `gw.secret`, `gw.log`)
    /// are in `dir`, SIP on `sip_listen`.
    pub fn in_dir(dir: &Path, sip_listen: &str) -> Launch {
        Launch {
            bin: BIN.to_owned(),
            database: format!("sqlite://{}", dir.join("gw.db").display()),
            secret: dir.join("gw.secret"),
            log: dir.join("gw.log"),
            sip_listen: sip_listen.to_owned(),
            args: Vec::new(),
        }
    }

    /// These `serve` flags too.
    pub fn with_args(mut self, args: &[&str]) -> Launch {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// An API token on the gateway's store, made with the CLI.
    pub fn token(&self, name: &str) -> String {
        let out = Command::new(&self.bin)
            .args(["token", "create", "--name", name, "--json"])
            .args(["--database", &self.database])
            .arg("--secret-file")
            .arg(&self.secret)
            .output()
            .expect("token create");
        let token: serde_json::Value = serde_json::from_slice(&out.stdout).expect("token JSON");
        token["token"].as_str().expect("token").to_owned()
    }
}

/// A running gateway.
pub struct Gateway {
    pub proc: Reaper,
    /// Kept open: the gateway writes a line or two more after ready.
    _stdout: BufReader<ChildStdout>,
    pub sip: String,
    pub api: String,
}

impl Gateway {
    /// Starts `dialgate serve --demo` as `launch` says, the API on a free
    /// loopback port and the repository's prompts; returns once its ready
    /// line came ([`READY_LIMIT`] at most) and it is idle
    /// ([`proc::settle`]: prompts are encoded after the ready line).
    pub fn start(launch: &Launch) -> Gateway {
        let log = std::fs::File::create(&launch.log).expect("gateway log file");
        let mut child = Command::new(&launch.bin)
            .args(["serve", "--demo", "--database", &launch.database])
            .arg("--secret-file")
            .arg(&launch.secret)
            .args(["--sip-listen", &launch.sip_listen])
            .args(["--api-listen", "127.0.0.1:0"])
            .arg("--prompts")
            .arg(repo().join("prompts"))
            .args(&launch.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start dialgate serve");
        let stdout = child.stdout.take().expect("gateway stdout");
        let proc = Reaper(child);
        // Read on a thread, so a gateway that never gets ready fails the
        // bench instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send((reader, line));
        });
        let (stdout, line) = rx
            .recv_timeout(READY_LIMIT)
            .expect("gateway ready within 60 s");
        let ready: serde_json::Value = serde_json::from_str(&line).expect("ready line is JSON");
        proc::settle(proc.pid());
        Gateway {
            sip: ready["sip"].as_str().expect("sip address").to_owned(),
            api: ready["api"].as_str().expect("api address").to_owned(),
            proc,
            _stdout: stdout,
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }
}
