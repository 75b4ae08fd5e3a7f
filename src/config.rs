//! `serve` settings: command-line flags over an optional TOML file (same
//! keys, kebab-case) over built-in defaults, resolved once at start-up into
//! [`Settings`]. Durations are written `90s`, `1h30m`, `500ms`, `90d`.

use crate::media::{ALL_CODECS, Codec};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::access::lockout::LockoutPolicy;
use crate::ivr::IvrConfig;
use crate::sip::transaction::TimerConfig;

pub const DEFAULT_SIP_LISTEN: &str = "127.0.0.1:5060";
/// Silence on the RTP socket that ends a call, as Asterisk's `rtptimeout`.
pub const DEFAULT_RTP_TIMEOUT: Duration = Duration::from_secs(60);
/// Talkers mixed at once per room, as in most conference bridges.
pub const DEFAULT_MAX_TALKERS: usize = 3;
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_RTP_PORTS: &str = "20000-29999";
pub const DEFAULT_DATABASE: &str = "sqlite://dialgate.db";
pub const DEFAULT_PROMPTS: &str = "./prompts";
pub const DEFAULT_SECRET_FILE: &str = "dialgate.secret";
/// Calls in progress past which new ones get 503 before answering.
pub const DEFAULT_MAX_CALLS: usize = 2000;
/// SIP messages per second one source IP may send (and at once).
pub const DEFAULT_SIP_SOURCE_RATE: u32 = 1000;
/// Event-loop lag past which new calls get 503 before answering.
pub const DEFAULT_MAX_LOOP_LAG: Duration = Duration::from_millis(100);
/// Smoothed call-path store latency past which new calls get 503.
pub const DEFAULT_MAX_STORE_LATENCY: Duration = Duration::from_millis(200);
/// Longest a number lookup may take before the call gets 503.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long SIGTERM lets calls go on. Under systemd's default stop
/// timeout (90 s), so the rest get their BYE before a SIGKILL.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(thiserror::Error, Debug)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Toml {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.to_string(),
    }
}

/// The settings as written (flags or TOML): every field optional.
#[derive(Clone, Debug, Default, Deserialize, clap::Args)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServeOptions {
    /// SIP address, UDP and TCP on the same port [default: 127.0.0.1:5060]
    #[arg(long)]
    pub sip_listen: Option<String>,
    /// Log lines as `text` or `json` (one object per line) [default: text]
    #[arg(long)]
    pub log_format: Option<String>,
    /// Operator REST API address [default: 127.0.0.1:8080]
    #[arg(long)]
    pub api_listen: Option<String>,
    /// Address written in SDP c=, Contact and Via [default: the SIP listen address]
    #[arg(long)]
    pub advertise: Option<String>,
    /// This node's name among the nodes sharing a store: letters, digits, `.`, `_`, `-`, at most 64 [default: the host name]
    #[arg(long)]
    pub node_id: Option<String>,
    /// RTP port range, even ports used [default: 20000-29999]
    #[arg(long)]
    pub rtp_ports: Option<String>,
    /// Database URL, sqlite:// or postgres:// (or DIALGATE_DATABASE, which
    /// keeps a password out of the process list) [default: sqlite://dialgate.db]
    #[arg(long, env = "DIALGATE_DATABASE", hide_env_values = true)]
    pub database: Option<String>,
    /// Prompt folder (one sub-folder per language) [default: ./prompts]
    #[arg(long)]
    pub prompts: Option<PathBuf>,
    /// Server key hashing security codes, shared by all nodes (created when absent) [default: dialgate.secret]
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// Seed tenant, number +15550100 and room `demo` (code 123456789) where absent
    #[arg(long)]
    #[serde(default)]
    pub demo: bool,
    /// Time without a first digit after the prompt [default: 10s]
    #[arg(long)]
    pub first_digit_timeout: Option<String>,
    /// Time allowed between digits [default: 5s]
    #[arg(long)]
    pub inter_digit_timeout: Option<String>,
    /// Access-code attempts per call [default: 3]
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Ring this long (180 Ringing) before answering [default: 0s]
    #[arg(long)]
    pub answer_delay: Option<String>,
    /// RFC 3261 T1, the base of every SIP retransmission timer [default: 500ms]
    #[arg(long)]
    pub sip_t1: Option<String>,
    /// Failed attempts per caller-ID or source IP that lock it out [default: 10]
    #[arg(long)]
    pub lockout_attempts: Option<u32>,
    /// Sliding window the failures are counted in; the lock lifts as they age out [default: 15m]
    #[arg(long)]
    pub lockout_window: Option<String>,
    /// Failures per dialled number in the window that raise an alarm and slow answers [default: 100]
    #[arg(long)]
    pub number_alarm_attempts: Option<u32>,
    /// Proxies/SBCs in front, comma-separated IPs: their P-Asserted-Identity and Vias are believed
    #[arg(long)]
    pub trusted_peers: Option<String>,
    /// SIP messages per second one source IP may send, and at once; over it they are dropped unanswered (trusted peers are never limited); 0 turns the limit off [default: 1000]
    #[arg(long)]
    pub sip_source_rate: Option<u32>,
    /// Close a SIP TCP connection with no message (nor, after its first, a CRLF keep-alive) either way for this long, unless an INVITE came on it [default: 120s]
    #[arg(long)]
    pub sip_tcp_idle: Option<String>,
    /// A SIP TCP connection's first message, and every message once its first byte is in, must complete within this, or the connection is closed [default: 5s]
    #[arg(long)]
    pub sip_tcp_message_timeout: Option<String>,
    /// SIP TCP connections open at once; more are closed as they come [default: a quarter of the open-files limit]
    #[arg(long)]
    pub sip_tcp_max_connections: Option<usize>,
    /// SIP TCP connections open at once from one source IP (trusted peers excepted) [default: 32]
    #[arg(long)]
    pub sip_tcp_per_source: Option<usize>,
    /// Most members mixed at once per room (the loudest; 1 to 16) [default: 3]
    #[arg(long)]
    pub max_talkers: Option<usize>,
    /// Codecs we accept, most preferred first [default: opus,g722,pcmu,pcma]
    #[arg(long)]
    pub codecs: Option<String>,
    /// Hang up (BYE) a call that sends no RTP for this long; 0s never [default: 60s]
    #[arg(long)]
    pub rtp_timeout: Option<String>,
    /// Listen for keypad tones in the audio: `auto` (only while no telephone-event is negotiated), `inband` (always), `never` [default: auto]
    #[arg(long)]
    pub dtmf_mode: Option<String>,
    /// Calls in progress past which new INVITEs get 503 with Retry-After before answering [default: 2000]
    #[arg(long)]
    pub max_calls: Option<usize>,
    /// Event-loop lag past which new INVITEs get 503 (the CPU is saturated); 0s never [default: 100ms]
    #[arg(long)]
    pub max_loop_lag: Option<String>,
    /// Mean call-path store latency (smoothed over about a second) past which new INVITEs get 503; 0s never [default: 200ms]
    #[arg(long)]
    pub max_store_latency: Option<String>,
    /// Longest the store may take to route a call before it gets 503 [default: 2s]
    #[arg(long)]
    pub store_timeout: Option<String>,
    /// Attempt-log rows waiting to be written past which new INVITEs get 503 [default: 20000]
    #[arg(long)]
    pub attempt_backlog: Option<usize>,
    /// How long the attempt-log writer gathers rows into one commit [default: 50ms]
    #[arg(long)]
    pub attempt_batch_window: Option<String>,
    /// Attempt-log rows older than this are pruned in the background; 0s keeps them [default: 90d]
    #[arg(long)]
    pub attempt_retention: Option<String>,
    /// On SIGTERM, how long calls in progress may go on while no new ones are taken (OPTIONS and INVITE get 503) before the rest get BYE; 0s hangs up at once (Ctrl-C always does) [default: 60s]
    #[arg(long)]
    pub drain_timeout: Option<String>,
}

/// Resolved settings for one gateway.
#[derive(Clone, Debug)]
pub struct Settings {
    /// One JSON object per log line instead of text.
    pub json_logs: bool,
    pub sip_listen: SocketAddr,
    pub api_listen: SocketAddr,
    pub advertise: IpAddr,
    /// This node's name in the store's `nodes` table.
    pub node_id: String,
    pub rtp_ports: (u16, u16),
    pub database: String,
    pub prompts: PathBuf,
    pub secret_file: PathBuf,
    pub demo: bool,
    pub ivr: IvrConfig,
    pub answer_delay: Duration,
    pub sip_timers: TimerConfig,
    pub lockout: LockoutPolicy,
    pub trusted_peers: Vec<IpAddr>,
    /// What one source may send (trusted peers: anything).
    pub sip_source_rate: crate::sip::flood::Rate,
    /// How SIP over TCP is bounded.
    pub sip_tcp: crate::sip::transport::TcpLimits,
    /// Most members mixed at once per room.
    pub max_talkers: usize,
    /// Codecs we accept, most preferred first.
    pub codecs: Vec<Codec>,
    /// No RTP for this long ends the call; `None`: never.
    pub rtp_timeout: Option<Duration>,
    /// When calls listen for keypad tones in their audio.
    pub dtmf_mode: crate::dtmf::InbandMode,
    /// Calls in progress past which new ones are refused.
    pub max_calls: usize,
    /// Event-loop lag past which new calls are refused; zero: never.
    pub max_loop_lag: Duration,
    /// Smoothed store latency past which new calls are refused; zero: never.
    pub max_store_latency: Duration,
    /// Longest a routing lookup may take.
    pub store_timeout: Duration,
    /// The attempt log's writer.
    pub attempt_log: crate::store::LogConfig,
    /// How long SIGTERM lets calls in progress go on; zero: hang up at once.
    pub drain_timeout: Duration,
}

/// A node id as given: 1 to 64 of `A-Z a-z 0-9 . _ -`.
fn check_node_id(id: &str) -> Result<String, String> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(id.to_owned())
    } else {
        Err(format!(
            "{id:?}: use 1 to 64 letters, digits, '.', '_' or '-'"
        ))
    }
}

/// The default node id: the host name (Linux), cut to what a node id may
/// hold; `dialgate` where there is none.
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(64)
        .collect();
    if name.is_empty() {
        "dialgate".to_owned()
    } else {
        name
    }
}

/// `opus,g722,pcmu,pcma`: known names, each once, at least one.
fn parse_codecs(list: &str) -> Result<Vec<Codec>, ConfigError> {
    let mut codecs = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let codec = Codec::from_name(name).ok_or_else(|| {
            invalid(
                "codecs",
                format!("{name:?} is not one of opus, g722, pcmu, pcma"),
            )
        })?;
        if codecs.contains(&codec) {
            return Err(invalid("codecs", format!("{name} is listed twice")));
        }
        codecs.push(codec);
    }
    if codecs.is_empty() {
        return Err(invalid("codecs", "list at least one codec"));
    }
    Ok(codecs)
}

/// The longest duration any setting or API field accepts.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Parses `90s`, `1h30m`, `500ms`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("{s:?}: expected a number, e.g. 90s, 1h30m, 500ms"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{s:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            _ => return Err(format!("{s:?}: unit must be ms, s, m, h or d")),
        };
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("{s:?}: too long"))?;
    }
    // Every duration we take is far below this; it keeps the clock
    // arithmetic done with it (now ± duration) clear of overflow.
    if total > MAX_DURATION {
        return Err(format!("{s:?}: too long (at most 10 years)"));
    }
    Ok(total)
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or("expected LOW-HIGH, e.g. 20000-29999")?;
    let a: u16 = a.trim().parse().map_err(|_| "LOW is not a port")?;
    let b: u16 = b.trim().parse().map_err(|_| "HIGH is not a port")?;
    if a == 0 || a > b || b - a < 1 {
        return Err("need 0 < LOW < HIGH".into());
    }
    Ok((a, b))
}

impl ServeOptions {
    /// Reads a TOML file of the same keys.
    pub fn from_file(path: &Path) -> Result<ServeOptions, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Toml {
            path: path.to_owned(),
            source,
        })
    }

    /// Fields set here win over `base`.
    pub fn over(self, base: ServeOptions) -> ServeOptions {
        ServeOptions {
            sip_listen: self.sip_listen.or(base.sip_listen),
            advertise: self.advertise.or(base.advertise),
            node_id: self.node_id.or(base.node_id),
            api_listen: self.api_listen.or(base.api_listen),
            log_format: self.log_format.or(base.log_format),
            rtp_ports: self.rtp_ports.or(base.rtp_ports),
            database: self.database.or(base.database),
            prompts: self.prompts.or(base.prompts),
            secret_file: self.secret_file.or(base.secret_file),
            demo: self.demo || base.demo,
            first_digit_timeout: self.first_digit_timeout.or(base.first_digit_timeout),
            inter_digit_timeout: self.inter_digit_timeout.or(base.inter_digit_timeout),
            max_attempts: self.max_attempts.or(base.max_attempts),
            answer_delay: self.answer_delay.or(base.answer_delay),
            sip_t1: self.sip_t1.or(base.sip_t1),
            lockout_attempts: self.lockout_attempts.or(base.lockout_attempts),
            lockout_window: self.lockout_window.or(base.lockout_window),
            number_alarm_attempts: self.number_alarm_attempts.or(base.number_alarm_attempts),
            trusted_peers: self.trusted_peers.or(base.trusted_peers),
            sip_source_rate: self.sip_source_rate.or(base.sip_source_rate),
            sip_tcp_idle: self.sip_tcp_idle.or(base.sip_tcp_idle),
            sip_tcp_message_timeout: self
                .sip_tcp_message_timeout
                .or(base.sip_tcp_message_timeout),
            sip_tcp_max_connections: self
                .sip_tcp_max_connections
                .or(base.sip_tcp_max_connections),
            sip_tcp_per_source: self.sip_tcp_per_source.or(base.sip_tcp_per_source),
            max_talkers: self.max_talkers.or(base.max_talkers),
            codecs: self.codecs.or(base.codecs),
            rtp_timeout: self.rtp_timeout.or(base.rtp_timeout),
            dtmf_mode: self.dtmf_mode.or(base.dtmf_mode),
            max_calls: self.max_calls.or(base.max_calls),
            max_loop_lag: self.max_loop_lag.or(base.max_loop_lag),
            max_store_latency: self.max_store_latency.or(base.max_store_latency),
            store_timeout: self.store_timeout.or(base.store_timeout),
            attempt_backlog: self.attempt_backlog.or(base.attempt_backlog),
            attempt_batch_window: self.attempt_batch_window.or(base.attempt_batch_window),
            attempt_retention: self.attempt_retention.or(base.attempt_retention),
            drain_timeout: self.drain_timeout.or(base.drain_timeout),
        }
    }

    pub fn resolve(self) -> Result<Settings, ConfigError> {
        let sip_listen: SocketAddr = self
            .sip_listen
            .as_deref()
            .unwrap_or(DEFAULT_SIP_LISTEN)
            .parse()
            .map_err(|e| invalid("sip-listen", e))?;
        let advertise = match self.advertise.as_deref() {
            Some(a) => a.parse().map_err(|e| invalid("advertise", e))?,
            None if sip_listen.ip().is_unspecified() => {
                return Err(invalid(
                    "advertise",
                    "required when sip-listen is a wildcard address (0.0.0.0 or ::)",
                ));
            }
            None => sip_listen.ip(),
        };
        let node_id = match self.node_id {
            Some(id) => check_node_id(&id).map_err(|e| invalid("node-id", e))?,
            None => host_name(),
        };
        let rtp_ports = parse_range(self.rtp_ports.as_deref().unwrap_or(DEFAULT_RTP_PORTS))
            .map_err(|e| invalid("rtp-ports", e))?;
        let dur = |key: &'static str,
                   v: Option<String>,
                   default: Duration|
         -> Result<Duration, ConfigError> {
            v.map_or(Ok(default), |s| {
                parse_duration(&s).map_err(|e| invalid(key, e))
            })
        };
        let defaults = IvrConfig::default();
        let ivr = IvrConfig {
            first_digit_timeout: dur(
                "first-digit-timeout",
                self.first_digit_timeout,
                defaults.first_digit_timeout,
            )?,
            inter_digit_timeout: dur(
                "inter-digit-timeout",
                self.inter_digit_timeout,
                defaults.inter_digit_timeout,
            )?,
            max_attempts: match self.max_attempts {
                Some(0) => return Err(invalid("max-attempts", "must be at least 1")),
                Some(n) => n,
                None => defaults.max_attempts,
            },
        };
        let t1 = dur("sip-t1", self.sip_t1, TimerConfig::default().t1)?;
        if t1.is_zero() {
            return Err(invalid("sip-t1", "must be more than 0"));
        }
        let defaults_t = TimerConfig::default();
        let sip_timers = TimerConfig {
            t1,
            t2: defaults_t.t2.max(t1),
            t4: defaults_t.t4,
        };
        let default_lockout = LockoutPolicy::default();
        let lockout_window = dur(
            "lockout-window",
            self.lockout_window,
            default_lockout
                .window
                .to_std()
                .unwrap_or(Duration::from_secs(900)),
        )?;
        let lockout = LockoutPolicy {
            attempts: match self.lockout_attempts {
                Some(0) => return Err(invalid("lockout-attempts", "must be at least 1")),
                Some(n) => n,
                None => default_lockout.attempts,
            },
            window: chrono::Duration::from_std(lockout_window)
                .map_err(|_| invalid("lockout-window", "too long"))?,
            number_alarm: self
                .number_alarm_attempts
                .unwrap_or(default_lockout.number_alarm),
        };
        let trusted_peers = self
            .trusted_peers
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<IpAddr>()
                    .map_err(|_| invalid("trusted-peers", format!("{p:?} is not an IP address")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let api_listen: SocketAddr = self
            .api_listen
            .as_deref()
            .unwrap_or(DEFAULT_API_LISTEN)
            .parse()
            .map_err(|e| invalid("api-listen", e))?;
        let json_logs = match self.log_format.as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(_) => return Err(invalid("log-format", "must be text or json")),
        };
        let max_talkers = match self.max_talkers {
            None => DEFAULT_MAX_TALKERS,
            Some(n @ 1..=16) => n,
            Some(_) => return Err(invalid("max-talkers", "must be 1 to 16")),
        };
        let codecs = match self.codecs.as_deref() {
            None => ALL_CODECS.to_vec(),
            Some(list) => parse_codecs(list)?,
        };
        let rtp_timeout = Some(dur(
            "rtp-timeout",
            self.rtp_timeout.clone(),
            DEFAULT_RTP_TIMEOUT,
        )?)
        .filter(|d| !d.is_zero());
        let dtmf_mode = match self.dtmf_mode.as_deref() {
            None => crate::dtmf::InbandMode::default(),
            Some(mode) => crate::dtmf::InbandMode::parse(mode)
                .ok_or_else(|| invalid("dtmf-mode", "must be auto, inband or never"))?,
        };
        let max_calls = match self.max_calls {
            Some(0) => return Err(invalid("max-calls", "must be at least 1")),
            Some(n) => n,
            None => DEFAULT_MAX_CALLS,
        };
        let store_timeout = dur("store-timeout", self.store_timeout, DEFAULT_STORE_TIMEOUT)?;
        if store_timeout.is_zero() {
            return Err(invalid("store-timeout", "must be more than 0"));
        }
        let log_defaults = crate::store::LogConfig::default();
        let attempt_log = crate::store::LogConfig {
            batch_window: dur(
                "attempt-batch-window",
                self.attempt_batch_window,
                log_defaults.batch_window,
            )?,
            backlog_limit: match self.attempt_backlog {
                Some(0) => return Err(invalid("attempt-backlog", "must be at least 1")),
                Some(n) => n,
                None => log_defaults.backlog_limit,
            },
            retention: match self.attempt_retention {
                Some(s) => Some(parse_duration(&s).map_err(|e| invalid("attempt-retention", e))?)
                    .filter(|d| !d.is_zero()),
                None => log_defaults.retention,
            },
            ..log_defaults
        };
        let sip_tcp = {
            use crate::sip::transport::TcpLimits;
            let positive = |key: &'static str, d: Duration| {
                if d.is_zero() {
                    Err(invalid(key, "must be more than 0"))
                } else if d > Duration::from_secs(86_400) {
                    Err(invalid(key, "must be at most 1d"))
                } else {
                    Ok(d)
                }
            };
            let at_least_one = |key: &'static str, n: Option<usize>, default: usize| match n {
                Some(0) => Err(invalid(key, "must be at least 1")),
                Some(n) => Ok(n),
                None => Ok(default),
            };
            TcpLimits {
                idle: positive(
                    "sip-tcp-idle",
                    dur("sip-tcp-idle", self.sip_tcp_idle, TcpLimits::DEFAULT_IDLE)?,
                )?,
                message_within: positive(
                    "sip-tcp-message-timeout",
                    dur(
                        "sip-tcp-message-timeout",
                        self.sip_tcp_message_timeout,
                        TcpLimits::DEFAULT_MESSAGE_WITHIN,
                    )?,
                )?,
                max_connections: at_least_one(
                    "sip-tcp-max-connections",
                    self.sip_tcp_max_connections,
                    TcpLimits::default_max_connections(),
                )?,
                per_source: at_least_one(
                    "sip-tcp-per-source",
                    self.sip_tcp_per_source,
                    TcpLimits::DEFAULT_PER_SOURCE,
                )?,
            }
        };
        Ok(Settings {
            sip_tcp,
            max_calls,
            max_loop_lag: dur("max-loop-lag", self.max_loop_lag, DEFAULT_MAX_LOOP_LAG)?,
            max_store_latency: dur(
                "max-store-latency",
                self.max_store_latency,
                DEFAULT_MAX_STORE_LATENCY,
            )?,
            store_timeout,
            attempt_log,
            drain_timeout: dur("drain-timeout", self.drain_timeout, DEFAULT_DRAIN_TIMEOUT)?,
            dtmf_mode,
            rtp_timeout,
            codecs,
            max_talkers,
            json_logs,
            api_listen,
            trusted_peers,
            sip_source_rate: {
                let per_second = self.sip_source_rate.unwrap_or(DEFAULT_SIP_SOURCE_RATE);
                crate::sip::flood::Rate {
                    per_second,
                    burst: per_second,
                }
            },
            lockout,
            sip_listen,
            advertise,
            node_id,
            rtp_ports,
            database: self.database.unwrap_or_else(|| DEFAULT_DATABASE.to_owned()),
            prompts: self
                .prompts
                .unwrap_or_else(|| PathBuf::from(DEFAULT_PROMPTS)),
            secret_file: self
                .secret_file
                .unwrap_or_else(|| PathBuf::from(DEFAULT_SECRET_FILE)),
            demo: self.demo,
            ivr,
            answer_delay: dur("answer-delay", self.answer_delay, Duration::ZERO)?,
            sip_timers,
        })
    }
}

#[cfg(test)]
mod tests;
