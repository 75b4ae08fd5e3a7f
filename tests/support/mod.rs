//! Test support: a real `dialgate serve` on loopback with its own database,
//! SIP port and RTP range, plus helpers to run SIPp and the CLI.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command as AsyncCommand};

pub mod signal;

pub const BIN: &str = env!("CARGO_BIN_EXE_dialgate");

/// An out-of-dialog request from `local` over `transport` (`UDP`, `TCP`)
/// to the test number, with no body; `branch` makes it unique.
pub fn request(method: &str, branch: &str, local: &str, transport: &str) -> String {
    format!(
        "{method} sip:+15550100@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/{transport} {local};branch=z9hG4bK{branch};rport\r\n\
From: <sip:tester@127.0.0.1>;tag=t{branch}\r\n\
To: <sip:+15550100@127.0.0.1>\r\n\
Call-ID: {branch}@wire\r\n\
CSeq: 1 {method}\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n"
    )
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn scenario(name: &str) -> PathBuf {
    repo().join("sip-fixtures/scenarios").join(name)
}

static NEXT_RANGE: AtomicU16 = AtomicU16::new(0);

/// A distinct RTP range per gateway in this process (the pool also skips busy ports).
fn rtp_range() -> String {
    let slot = NEXT_RANGE.fetch_add(1, Ordering::Relaxed) % 40;
    let base = 30_000 + (std::process::id() % 20) as u16 * 1000 + slot * 24;
    format!("{}-{}", base, base + 22)
}

/// The server key file of the test database `db` (one per database, in the temp dir).
pub fn secret_file(db: &str) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    db.hash(&mut h);
    std::env::temp_dir().join(format!("dialgate-test-{:016x}.secret", h.finish()))
}

/// Runs a provisioning command against `db`; returns (exit code, stdout, stderr).
pub fn cli(db: &str, args: &[&str]) -> (i32, String, String) {
    let secret = secret_file(db);
    let secret = secret.to_string_lossy();
    let mut full: Vec<&str> = args.to_vec();
    full.extend(["--database", db, "--secret-file", &secret]);
    let out = Command::new(BIN)
        .args(&full)
        .output()
        .expect("run dialgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the CLI on `db`, expects exit 0, and parses its stdout as JSON.
pub fn cli_json(db: &str, args: &[&str]) -> serde_json::Value {
    let (rc, out, err) = cli(db, args);
    assert_eq!(rc, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// `meeting schedule --room main`, starting `start_in_min` minutes from
/// now and lasting 45 minutes, with `extra` flags; the meeting as JSON.
pub fn schedule_meeting(db: &str, start_in_min: i64, extra: &[&str]) -> serde_json::Value {
    let start = (chrono::Utc::now() + chrono::Duration::minutes(start_in_min))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut args = vec![
        "meeting",
        "schedule",
        "--room",
        "main",
        "--start",
        &start,
        "--duration",
        "45m",
        "--json",
    ];
    args.extend(extra);
    cli_json(db, &args)
}

pub struct Gateway {
    pub dir: tempfile::TempDir,
    pub db: String,
    pub sip: String,
    /// The REST API's `host:port`.
    pub api: String,
    child: Child,
    /// An API token on `db`, made on first use ([`Gateway::token`]).
    token: tokio::sync::OnceCell<String>,
}

impl Gateway {
    /// A database with tenant `acme`, number +15550100 and room `main` with
    /// `code` ([`fresh_database`]: SQLite, or PostgreSQL on the second pass).
    pub fn provisioned(code: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = fresh_database(dir.path());
        provision(&db, code);
        (dir, db)
    }

    /// As [`Gateway::provisioned`], on a SQLite file whatever the pass:
    /// for what only SQLite does (one serving process per file).
    pub fn provisioned_sqlite(code: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = format!("sqlite://{}", dir.path().join("dialgate.db").display());
        provision(&db, code);
        (dir, db)
    }
}

/// The server `./dev test` runs the behaviour tests on a second time
/// (`postgres://postgres@127.0.0.1:PORT`), if this is that pass.
pub fn postgres_pass() -> Option<String> {
    std::env::var("DIALGATE_TEST_POSTGRES")
        .ok()
        .filter(|url| !url.is_empty())
}

/// A new, empty database for one test: a SQLite file in `dir`; on the
/// PostgreSQL pass ([`postgres_pass`]), a database of its own on that
/// server (`CREATE DATABASE`, named for this process and a counter).
pub fn fresh_database(dir: &Path) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let Some(server) = postgres_pass() else {
        return format!("sqlite://{}", dir.join("dialgate.db").display());
    };
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let out = Command::new("psql")
        .arg(format!("{server}/postgres"))
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "CREATE DATABASE {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("{server}/{name}")
}

/// Everything the store keeps of `db`, as bytes: the SQLite file and its
/// WAL, or a `pg_dump` of the PostgreSQL database (to look for what must
/// never be stored in plain text).
pub fn stored_bytes(db: &str) -> Vec<u8> {
    if let Some(path) = db.strip_prefix("sqlite://") {
        let mut bytes = std::fs::read(path).expect("database file");
        bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
        return bytes;
    }
    let out = Command::new("pg_dump")
        .args(["--data-only", db])
        .output()
        .expect("pg_dump");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `room add --tenant T --name N --access-code C` plus `extra` flags:
/// (exit code, stdout, stderr).
pub fn add_room(
    db: &str,
    tenant: &str,
    name: &str,
    code: &str,
    extra: &[&str],
) -> (i32, String, String) {
    let mut args = vec![
        "room",
        "add",
        "--tenant",
        tenant,
        "--name",
        name,
        "--access-code",
        code,
    ];
    args.extend_from_slice(extra);
    cli(db, &args)
}

/// Tenant `acme`, number +15550100 and room `main` with `code`, through the CLI.
pub fn provision(db: &str, code: &str) {
    for args in [
        vec!["tenant", "add", "acme"],
        vec!["number", "add", "+15550100", "--tenant", "acme"],
    ] {
        let (rc, _, err) = cli(db, &args);
        assert_eq!(rc, 0, "{args:?}: {err}");
    }
    let (rc, _, err) = add_room(db, "acme", "main", code, &[]);
    assert_eq!(rc, 0, "room main: {err}");
}

impl Gateway {
    /// Starts `serve` on a provisioned database and waits for its ready line.
    pub async fn start(dir: tempfile::TempDir, db: String, extra: &[&str]) -> Gateway {
        Gateway::start_under(&[], dir, db, extra).await
    }

    /// [`Gateway::start`] with `serve` run by `wrapper` (a command and its
    /// arguments, e.g. `prlimit --nofile=128 --`), if not empty.
    pub async fn start_under(
        wrapper: &[&str],
        dir: tempfile::TempDir,
        db: String,
        extra: &[&str],
    ) -> Gateway {
        Gateway::launch(wrapper, "127.0.0.1:0", "127.0.0.1:0", dir, db, extra).await
    }

    /// A node run by `wrapper` (`ip netns exec NS`) with SIP, RTP and the
    /// API on `ip`, one of its addresses.
    pub async fn start_in(
        wrapper: &[String],
        ip: &str,
        dir: tempfile::TempDir,
        db: String,
        extra: &[&str],
    ) -> Gateway {
        let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
        let listen = format!("{ip}:0");
        Gateway::launch(&wrapper, &listen, &listen, dir, db, extra).await
    }

    /// [`Gateway::start`] with SIP on `sip_listen` and RTP on its address
    /// (one of several nodes on one machine: `127.0.0.2:0`, `127.0.0.3:P`…).
    pub async fn start_on(
        sip_listen: &str,
        dir: tempfile::TempDir,
        db: String,
        extra: &[&str],
    ) -> Gateway {
        Gateway::launch(&[], sip_listen, "127.0.0.1:0", dir, db, extra).await
    }

    async fn launch(
        wrapper: &[&str],
        sip_listen: &str,
        api_listen: &str,
        dir: tempfile::TempDir,
        db: String,
        extra: &[&str],
    ) -> Gateway {
        let log = std::fs::File::create(dir.path().join("gateway.log")).expect("log file");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = AsyncCommand::new(program);
                c.args(args).arg(BIN);
                c
            }
            None => AsyncCommand::new(BIN),
        };
        let mut child = command
            .args([
                "serve",
                "--sip-listen",
                sip_listen,
                "--api-listen",
                api_listen,
                "--rtp-ports",
                &rtp_range(),
                "--database",
                &db,
                "--prompts",
            ])
            .arg(repo().join("prompts"))
            .arg("--secret-file")
            .arg(secret_file(&db))
            .args(extra)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn dialgate serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("gateway ready within 30 s")
            .expect("read stdout")
            .expect("a ready line");
        let ready: serde_json::Value = serde_json::from_str(&line).expect("ready line is JSON");
        assert_eq!(ready["event"], "ready");
        let sip = ready["sip"].as_str().expect("sip address").to_owned();
        let api = ready["api"].as_str().expect("api address").to_owned();
        Gateway {
            api,
            dir,
            db,
            sip,
            child,
            token: tokio::sync::OnceCell::new(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops the gateway with SIGINT (Ctrl-C) and waits for it to exit.
    pub async fn interrupt(&mut self) -> std::process::ExitStatus {
        self.stop("-INT").await
    }

    /// Stops the gateway with SIGTERM (what a service manager sends) and
    /// waits for it to exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        self.stop("-TERM").await
    }

    /// Kills the process with SIGKILL (a crash: nothing flushed, no BYE,
    /// no lease released) and reaps it.
    pub async fn kill_hard(&mut self) {
        let pid = self.pid().expect("pid");
        let killed = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        let _ = self.terminate().await;
    }

    /// Sends `signal` (`-TERM`, `-INT`) and returns at once.
    pub fn signal(&self, signal: &str) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args([signal, &pid.to_string()])
                .status();
        }
    }

    /// Waits for the gateway to exit by itself, at most `limit`.
    pub async fn exited(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()
            .map(|r| r.expect("wait"))
    }

    async fn stop(&mut self, signal: &str) -> std::process::ExitStatus {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args([signal, &pid.to_string()])
                .status();
        }
        tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("gateway exits within 15 s of the signal")
            .expect("wait")
    }

    /// An API token for this gateway, made with the CLI on first use and
    /// kept (the gateway checks tokens in its database on every request).
    pub async fn token(&self) -> &str {
        self.token
            .get_or_init(|| async {
                let db = self.db.clone();
                tokio::task::spawn_blocking(move || http::token(&db))
                    .await
                    .expect("token thread")
            })
            .await
    }

    /// `/metrics` as text, read with `token`.
    pub async fn metrics(&self, token: &str) -> String {
        let (status, text) = http::request(&self.api, "GET", "/metrics", Some(token), None).await;
        assert_eq!(status, 200, "{text}");
        text
    }

    /// The value of the metric line `series` (name and labels as the
    /// gateway prints them) in `/metrics`, read with `token`; 0 while absent.
    pub async fn metric(&self, token: &str, series: &str) -> f64 {
        self.metrics(token)
            .await
            .lines()
            .filter_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .find_map(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Attempts recorded and attempt rows written so far, from one read
    /// of `/metrics`.
    pub async fn attempt_counts(&self) -> AttemptCounts {
        let text = self.metrics(self.token().await).await;
        AttemptCounts {
            recorded: sum_of_series(&text, ATTEMPTS_RECORDED),
            written: sum_of_series(&text, ATTEMPT_ROWS_WRITTEN),
        }
    }

    /// Waits until the attempt log's writer has committed every attempt
    /// this gateway has recorded so far (read from `/metrics` every 20 ms,
    /// at most 10 s), failing the test if it does not; returns the counts.
    pub async fn await_attempts_written(&self) -> AttemptCounts {
        let limit = Duration::from_secs(10);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let counts = self.attempt_counts().await;
            if counts.written == counts.recorded {
                return counts;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "attempt log: {} rows written of {} attempts recorded after {limit:?}\n--- gateway log ---\n{}",
                counts.written,
                counts.recorded,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The attempt log of this running gateway's database, whole rows,
    /// oldest first, once every attempt it has recorded so far is written
    /// (rows of an earlier gateway on the same database included). An
    /// attempt the gateway has yet to record is not waited for: a hang-up
    /// it has answered but not handled yet, say — await that first.
    pub async fn attempt_rows(&self) -> Vec<dialgate::store::AttemptRow> {
        self.await_attempts_written().await;
        read_attempt_rows(&self.db).await
    }

    /// [`Gateway::attempt_rows`] as (stage, outcome).
    pub async fn attempt_log(&self) -> Vec<(String, String)> {
        self.attempt_rows()
            .await
            .into_iter()
            .map(|a| (a.stage, a.outcome))
            .collect()
    }

    /// Waits until `series` in `/metrics` satisfies `ready` (checked every
    /// 20 ms, at most `limit`); returns the value, failing the test if not.
    pub async fn await_metric(
        &self,
        token: &str,
        series: &str,
        limit: Duration,
        ready: impl Fn(f64) -> bool,
    ) -> f64 {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let value = self.metric(token, series).await;
            if ready(value) {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{series} still {value} after {limit:?}\n--- gateway log ---\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Two nodes, `edge-a` and `edge-b`, on the store at `db` (PostgreSQL),
/// each started with `extra` too.
pub async fn two_nodes(db: &str, extra: &[&str]) -> (Gateway, Gateway) {
    let a = node_on(db, "edge-a", extra).await;
    let b = node_on(db, "edge-b", extra).await;
    (a, b)
}

/// A node `id` on the store at `db`, started with `extra` too.
async fn node_on(db: &str, id: &str, extra: &[&str]) -> Gateway {
    let mut flags = vec!["--node-id", id];
    flags.extend(extra);
    let dir = tempfile::tempdir().expect("tempdir");
    Gateway::start(dir, db.to_owned(), &flags).await
}

/// `GET path` on `gw`'s API, which must answer 200.
pub async fn get(gw: &Gateway, path: &str) -> serde_json::Value {
    let (status, body) = http::call(&gw.api, "GET", path, Some(gw.token().await), None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// Polls `GET path` every 50 ms until `ready` holds, for at most `limit`;
/// returns what it read last and how long it took.
pub async fn poll(
    gw: &Gateway,
    path: &str,
    limit: Duration,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> (serde_json::Value, Duration) {
    let started = std::time::Instant::now();
    loop {
        let body = get(gw, path).await;
        if ready(&body) {
            return (body, started.elapsed());
        }
        assert!(
            started.elapsed() < limit,
            "{path} still {body} after {limit:?}\n--- gateway log ---\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A caller dialled as `dial` says who keys `code` by RFC 4733 on `gw`,
/// once `gw`'s live view shows `callers` of its own in the room that
/// `owner` mixes.
pub async fn caller_in_room(
    gw: &Gateway,
    dial: caller::Dial<'_>,
    code: &str,
    owner: &str,
    callers: usize,
) -> caller::Caller {
    let mut caller = caller::Caller::dial(&gw.sip, dial).await;
    assert_eq!(caller.invite_status, 200, "{}", gw.log());
    caller.key_rfc4733(&format!("{code}#")).await;
    poll(gw, "/v1/calls", Duration::from_secs(10), |c| {
        c.as_array().is_some_and(|c| {
            c.iter()
                .filter(|call| call["state"] == "in_room" && call["room_owner"] == owner)
                .count()
                == callers
        })
    })
    .await;
    caller
}

/// A meeting starting in 5 minutes (one-time code; with `security` if
/// given) and one invitee: the invitee's id and personal code.
pub fn meeting_with_invitee(db: &str, security: Option<&str>) -> (String, String) {
    let mut extra = vec!["--one-time"];
    if let Some(s) = security {
        extra.extend(["--security-code", s]);
    }
    let id = schedule_meeting(db, 5, &extra)["id"].to_string();
    let (rc, out, err) = cli(
        db,
        &[
            "meeting",
            "invite",
            "--meeting",
            &id,
            "--name",
            "Ada Lovelace",
            "--email",
            "ada@example.com",
            "--json",
        ],
    );
    assert_eq!(rc, 0, "{err}");
    let inv: serde_json::Value = serde_json::from_str(&out).expect("invitee JSON");
    let code = inv["personal_code"]
        .as_str()
        .expect("personal code")
        .to_owned();
    (inv["id"].to_string(), code)
}

/// The admitted-calls series in `/metrics`.
pub const ADMITTED: &str = "dialgate_attempts_total{stage=\"access\",outcome=\"admitted\"}";

/// Dials `gw` with the test caller and keys `code` by RFC 4733; returns
/// once the gateway counted more admissions than `admitted_before`.
pub async fn admitted_call(gw: &Gateway, code: &str, admitted_before: f64) -> caller::Caller {
    let mut caller = caller::Caller::dial(&gw.sip, caller::Dial::default()).await;
    assert_eq!(caller.invite_status, 200, "{}", gw.log());
    caller.key_rfc4733(&format!("{code}#")).await;
    let token = gw.token().await.to_owned();
    gw.await_metric(&token, ADMITTED, Duration::from_secs(10), |v| {
        v > admitted_before
    })
    .await;
    caller
}

/// An even UDP port pair free right now on loopback, for SIPp's `-mp`.
pub fn free_media_port() -> u16 {
    for _ in 0..200 {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind probe");
        let port = probe.local_addr().expect("addr").port() & !1;
        drop(probe);
        if port > 1024
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port + 2)).is_ok()
        {
            return port;
        }
    }
    panic!("no free media port");
}

pub struct SippRun {
    pub code: Option<i32>,
    pub output: String,
}

/// Runs one SIPp UAC call of `scenario` against `target`, bounded by `limit`.
pub async fn sipp(
    target: &str,
    scenario: &Path,
    service: &str,
    keys: &[(&str, &str)],
    limit: Duration,
) -> SippRun {
    assert!(
        Command::new("sipp")
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok(),
        "SIPp is not installed: run the tests through ./dev test (it installs sip-tester)"
    );
    let mp = free_media_port().to_string();
    let secs = format!("{}s", limit.as_secs());
    let mut cmd = AsyncCommand::new("sipp");
    cmd.arg(target)
        .arg("-sf")
        .arg(scenario)
        .args([
            "-s",
            service,
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "-mp",
            &mp,
        ])
        .args(["-timeout", &secs, "-timeout_error", "-nostdin"]);
    for (k, v) in keys {
        cmd.args(["-key", k, v]);
    }
    let out = tokio::time::timeout(
        limit + Duration::from_secs(15),
        cmd.kill_on_drop(true).output(),
    )
    .await
    .expect("SIPp finishes in time")
    .expect("run sipp");
    SippRun {
        code: out.status.code(),
        output: format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
pub mod caller;
pub mod http;
pub mod netns;
pub mod postgres;
pub mod schema;

impl SippRun {
    /// Asserts SIPp exited 0, showing SIPp's output and the gateway's log if not.
    pub fn assert_ok(&self, gw: &Gateway) {
        assert_eq!(
            self.code,
            Some(0),
            "SIPp failed:\n{}\n--- gateway log ---\n{}",
            self.output,
            gw.log()
        );
    }
}

/// SIPp keys `keys` by SIP INFO to +15550100, expects to stay up `hold_ms`, then hangs up.
pub async fn info_call(gw: &Gateway, keys: &str, hold_ms: &str) -> SippRun {
    let keys = [("code", keys), ("hold_ms", hold_ms)];
    sipp(
        &gw.sip,
        &scenario("uac_info.xml"),
        "+15550100",
        &keys,
        Duration::from_secs(30),
    )
    .await
}

/// SIPp keys `keys` by SIP INFO to +15550100 and expects the gateway's BYE (with a Reason).
pub async fn info_call_refused(gw: &Gateway, keys: &str) -> SippRun {
    let keys = [("code", keys)];
    sipp(
        &gw.sip,
        &scenario("uac_info_refused.xml"),
        "+15550100",
        &keys,
        Duration::from_secs(60),
    )
    .await
}

/// Every `dialgate_attempts_total{stage,outcome}` series: attempts the
/// gateway has recorded (queued for the attempt log).
const ATTEMPTS_RECORDED: &str = "dialgate_attempts_total";
/// Attempt rows the attempt log's writer has committed.
const ATTEMPT_ROWS_WRITTEN: &str = "dialgate_attempt_rows_written_total";

/// What `/metrics` says of the attempt log.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttemptCounts {
    /// Attempts recorded, all stages and outcomes.
    pub recorded: f64,
    /// Rows committed to the database.
    pub written: f64,
}

/// The sum of every series of metric `name` (with or without labels) in
/// the Prometheus text `text`; 0 while absent.
fn sum_of_series(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let value = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once("} ")?.1,
                None => rest.strip_prefix(' ')?,
            };
            value.trim().parse::<f64>().ok()
        })
        .sum()
}

/// The attempt log of `db`, whole rows, oldest first, read at once.
///
/// Only for a gateway that has stopped (`terminate()`/`interrupt()` write
/// every queued row before it exits): a running gateway's writer may still
/// hold rows, so read through [`Gateway::attempt_rows`] then.
pub async fn attempt_rows_after_stop(db: &str) -> Vec<dialgate::store::AttemptRow> {
    read_attempt_rows(db).await
}

async fn read_attempt_rows(db: &str) -> Vec<dialgate::store::AttemptRow> {
    let store = dialgate::store::Store::open(db).await.expect("open store");
    store
        .query_attempts(None, None, None)
        .await
        .expect("attempt log")
}

/// A pcap of RTP keying `code` as `signal` says (events, tones or both),
/// from the synthesiser, for SIPp's `play_pcap_audio`.
pub fn keypad_pcap(dir: &Path, code: &str, signal: dialgate_replay::synth::Signal) -> PathBuf {
    use dialgate_replay::{pcap, synth};
    let keying = synth::Keying {
        signal,
        ..synth::Keying::default()
    };
    let packets = synth::keyed_code(code, &keying).expect("code");
    let path = dir.join(format!("keys-{signal:?}-{}.pcap", code.replace('#', "P")));
    let file = std::fs::File::create(&path).expect("pcap file");
    pcap::write_udp(
        file,
        "127.0.0.1:40000".parse().expect("address"),
        "127.0.0.1:20000".parse().expect("address"),
        1_700_000_000,
        &packets,
    )
    .expect("write pcap");
    path
}
