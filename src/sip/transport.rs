//! The SIP transport shell (RFC 3261 §18): UDP and TCP on one port.
//!
//! Readers turn datagrams and Content-Length–framed stream messages into
//! `(Flow, Bytes)` for the endpoint task; [`TransportHandle::send`] writes
//! back along a flow. A TCP connection that sends an unframeable stream is
//! closed. Nothing here interprets SIP beyond framing. Each message is
//! first checked against its source's rate ([`SourceLimit`]): over it, a
//! datagram is dropped unread, and a TCP connection closed.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use super::dialog::{ConnId, Flow, Transport};
use super::flood::{SourceLimit, Verdict};
use super::message::Framer;

/// Inbound messages for the endpoint task.
pub type Inbound = mpsc::Receiver<(Flow, Bytes)>;

/// The bound SIP sockets.
pub struct SipSockets {
    udp: UdpSocket,
    tcp: TcpListener,
}

impl SipSockets {
    /// Binds UDP and TCP on the same address. With port 0 the kernel picks a
    /// UDP port and TCP takes the same one (retried if that port is busy).
    pub async fn bind(addr: SocketAddr) -> io::Result<SipSockets> {
        let mut last_err = None;
        for _ in 0..32 {
            let udp = UdpSocket::bind(addr).await?;
            let port = udp.local_addr()?.port();
            match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
                Ok(tcp) => return Ok(SipSockets { udp, tcp }),
                Err(e) if addr.port() == 0 => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("no port free for UDP and TCP")))
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
    }
}

/// Sends along flows; cheap to clone.
#[derive(Clone)]
pub struct TransportHandle {
    udp: Arc<UdpSocket>,
    conns: Arc<Mutex<HashMap<ConnId, mpsc::Sender<Bytes>>>>,
}

impl TransportHandle {
    pub async fn send(&self, flow: Flow, bytes: Bytes) {
        match flow.transport {
            Transport::Udp => {
                if let Err(e) = self.udp.send_to(&bytes, flow.remote).await {
                    tracing::debug!(remote = %flow.remote, %e, "SIP send failed");
                }
            }
            Transport::Tcp(id) => {
                let tx = self.conns.lock().ok().and_then(|m| m.get(&id).cloned());
                match tx {
                    Some(tx) => {
                        if tx.try_send(bytes).is_err() {
                            tracing::debug!(remote = %flow.remote, "TCP connection gone or full");
                        }
                    }
                    None => tracing::debug!(remote = %flow.remote, "TCP connection closed"),
                }
            }
        }
    }
}

/// The per-source limit shared by the UDP reader and the TCP connections,
/// with its drop counter (a handle taken once, not looked up per packet).
struct Limiter {
    sources: Mutex<SourceLimit>,
    dropped: metrics::Counter,
}

type Limit = Arc<Limiter>;

impl Limiter {
    fn new(sources: SourceLimit) -> Limit {
        Arc::new(Limiter {
            sources: Mutex::new(sources),
            dropped: metrics::counter!("dialgate_sip_messages_dropped_total", "cause" => "source_rate"),
        })
    }

    /// Checks one message from `remote` against its source's rate: `false`
    /// means drop it (counted, and logged as the source goes over and every
    /// [`REPEAT`](super::flood::REPEAT) while it stays over).
    fn admit(&self, remote: SocketAddr, transport: &'static str) -> bool {
        let verdict = match self.sources.lock() {
            Ok(mut l) => l.check(Instant::now(), remote.ip()),
            Err(_) => Verdict::Pass,
        };
        if verdict == Verdict::DropFirst {
            // In a stable form (deploy/fail2ban).
            tracing::warn!(source = %remote.ip().to_canonical(), transport, "SIP source over its message rate: dropping");
        }
        if verdict != Verdict::Pass {
            self.dropped.increment(1);
        }
        verdict == Verdict::Pass
    }

    /// Ends the episodes of sources back under their rate, with a line each.
    fn sweep(&self) {
        let (ended, tracked) = match self.sources.lock() {
            Ok(mut l) => (l.sweep(Instant::now()), l.tracked()),
            Err(_) => return,
        };
        metrics::gauge!("dialgate_sip_sources_tracked").set(tracked as f64);
        for e in ended {
            tracing::info!(source = %e.source, dropped = e.dropped, lasted_ms = e.lasted.as_millis() as u64, "SIP source back under its message rate");
        }
    }

    /// Whether `source` is never limited (a trusted peer).
    fn exempt(&self, source: std::net::IpAddr) -> bool {
        self.sources.lock().is_ok_and(|l| l.exempt(source))
    }
}

/// Starts the readers; returns the sending handle and the inbound stream.
pub fn spawn(
    sockets: SipSockets,
    limit: SourceLimit,
    tcp: TcpLimits,
) -> (TransportHandle, Inbound) {
    let (in_tx, in_rx) = mpsc::channel(4096);
    let udp = Arc::new(sockets.udp);
    let handle = TransportHandle {
        udp: udp.clone(),
        conns: Arc::new(Mutex::new(HashMap::new())),
    };
    let limit = Limiter::new(limit);
    tokio::spawn(udp_reader(udp, in_tx.clone(), limit.clone()));
    tokio::spawn(tcp_acceptor(
        sockets.tcp,
        handle.conns.clone(),
        in_tx,
        limit,
        tcp,
    ));
    (handle, in_rx)
}

async fn udp_reader(udp: Arc<UdpSocket>, in_tx: mpsc::Sender<(Flow, Bytes)>, limit: Limit) {
    let mut buf = vec![0u8; 65_535];
    let mut sweeps = tokio::time::interval(Duration::from_secs(1));
    sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let received = tokio::select! {
            received = udp.recv_from(&mut buf) => received,
            _ = sweeps.tick() => {
                limit.sweep();
                continue;
            }
        };
        match received {
            Ok((n, remote)) => {
                if !limit.admit(remote, "udp") {
                    continue;
                }
                let flow = Flow {
                    transport: Transport::Udp,
                    remote,
                };
                if in_tx
                    .send((flow, Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // ICMP port-unreachable surfaces here on some systems: keep reading.
            Err(e) => tracing::debug!(%e, "UDP receive error"),
        }
    }
}

/// How SIP over TCP is bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    /// A connection with no SIP message (nor, after its first message, a
    /// CRLF keep-alive) either way for this long is closed, unless an
    /// INVITE came on it.
    pub idle: Duration,
    /// A new connection's first message, and every message once its first
    /// byte is in, must be complete within this.
    pub message_within: Duration,
    /// Connections open at once, overall.
    pub max_connections: usize,
    /// Connections open at once from one source IP (not a trusted peer's).
    pub per_source: usize,
}

impl TcpLimits {
    pub const DEFAULT_IDLE: Duration = Duration::from_secs(120);
    pub const DEFAULT_MESSAGE_WITHIN: Duration = Duration::from_secs(5);
    pub const DEFAULT_PER_SOURCE: usize = 32;

    /// The default overall cap: a quarter of the process's file-descriptor
    /// limit (every call takes two more, for its RTP and RTCP), 16 to
    /// 10,000.
    pub fn default_max_connections() -> usize {
        let fds = open_files_limit().unwrap_or(1024);
        usize::try_from(fds / 4).unwrap_or(10_000).clamp(16, 10_000)
    }
}

/// The soft limit on open files, from /proc/self/limits.
fn open_files_limit() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Connections open per source IP.
type OpenBySource = Arc<Mutex<HashMap<std::net::IpAddr, usize>>>;

/// Logs a refused connection at most once per source per 10 s, with what
/// was refused since the last line.
#[derive(Default)]
struct RefusalLog {
    last: HashMap<std::net::IpAddr, (Instant, u64)>,
}

impl RefusalLog {
    fn refused(&mut self, source: std::net::IpAddr, cause: &'static str, open: usize) {
        metrics::counter!("dialgate_sip_tcp_refused_total", "cause" => cause).increment(1);
        let now = Instant::now();
        if self.last.len() > 10_000 {
            self.last
                .retain(|_, (at, _)| now.duration_since(*at) < Duration::from_secs(10));
        }
        // One line per source per 10 s, in a stable form (deploy/fail2ban),
        // with the refusals since the last.
        let refused = match self.last.get_mut(&source) {
            None => {
                self.last.insert(source, (now, 0));
                1
            }
            Some((at, since)) => {
                *since += 1;
                if now.duration_since(*at) < Duration::from_secs(10) {
                    return;
                }
                *at = now;
                std::mem::take(since)
            }
        };
        tracing::warn!(source = %source, cause, open, refused, "SIP source refused a TCP connection");
    }
}

async fn tcp_acceptor(
    listener: TcpListener,
    conns: Arc<Mutex<HashMap<ConnId, mpsc::Sender<Bytes>>>>,
    in_tx: mpsc::Sender<(Flow, Bytes)>,
    limit: Limit,
    limits: TcpLimits,
) {
    let mut next_id: ConnId = 1;
    let by_source: OpenBySource = Arc::default();
    let mut refusals = RefusalLog::default();
    let mut short_of_fds = false;
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if crate::os::out_of_descriptors(&e) => {
                metrics::counter!("dialgate_sip_tcp_refused_total", "cause" => "out_of_fds")
                    .increment(1);
                if !short_of_fds {
                    tracing::error!(%e, limit = open_files_limit(), "out of file descriptors: TCP connections wait in the backlog until some close");
                    short_of_fds = true;
                }
                // Back off rather than spin on the pending connection.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(%e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if short_of_fds {
            tracing::info!("file descriptors free again: accepting TCP connections");
            short_of_fds = false;
        }
        let source = remote.ip().to_canonical();
        let trusted = limit.exempt(source);
        let open = conns.lock().map_or(0, |m| m.len());
        let from_source = by_source
            .lock()
            .map_or(0, |m| m.get(&source).copied().unwrap_or(0));
        // Over a cap the connection is closed at once (dropped).
        if open >= limits.max_connections {
            refusals.refused(source, "max_connections", open);
            continue;
        }
        // A trusted peer (a proxy in front) carries everyone's calls.
        if from_source >= limits.per_source && !trusted {
            refusals.refused(source, "per_source", from_source);
            continue;
        }
        if let Ok(mut m) = by_source.lock() {
            *m.entry(source).or_default() += 1;
        }
        let id = next_id;
        next_id += 1;
        let (out_tx, out_rx) = mpsc::channel(256);
        if let Ok(mut m) = conns.lock() {
            m.insert(id, out_tx);
            metrics::gauge!("dialgate_sip_tcp_connections").set(m.len() as f64);
        }
        let flow = Flow {
            transport: Transport::Tcp(id),
            remote,
        };
        let conn = Connection {
            flow,
            in_tx: in_tx.clone(),
            limit: limit.clone(),
            limits,
        };
        let (conns, by_source) = (conns.clone(), by_source.clone());
        tokio::spawn(async move {
            conn.run(stream, out_rx).await;
            if let Ok(mut m) = conns.lock() {
                m.remove(&id);
                metrics::gauge!("dialgate_sip_tcp_connections").set(m.len() as f64);
            }
            if let Ok(mut m) = by_source.lock()
                && let Some(n) = m.get_mut(&source)
            {
                *n -= 1;
                if *n == 0 {
                    m.remove(&source);
                }
            }
        });
    }
}

/// Why a connection was closed by us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closed {
    /// No first message within `message_within` of opening.
    NoMessage,
    /// A message begun and not completed within `message_within`.
    SlowMessage,
    Idle,
}

impl Closed {
    fn as_str(self) -> &'static str {
        match self {
            Closed::NoMessage => "no_message",
            Closed::SlowMessage => "slow_message",
            Closed::Idle => "idle",
        }
    }
}

/// One TCP connection's reader: frames messages, checks each against its
/// source's rate, and closes the connection on the timers of
/// [`TcpLimits`].
struct Connection {
    flow: Flow,
    in_tx: mpsc::Sender<(Flow, Bytes)>,
    limit: Limit,
    limits: TcpLimits,
}

/// Whether `bytes` are only CR and LF (a keep-alive, RFC 5626 §3.5.1).
fn keep_alive(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| matches!(b, b'\r' | b'\n'))
}

impl Connection {
    async fn run(self, stream: TcpStream, mut out_rx: mpsc::Receiver<Bytes>) {
        let opened = Instant::now();
        // Milliseconds from `opened` to the last message we sent on it.
        let sent_at = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (mut reader, mut writer) = stream.into_split();
        let writer_task = tokio::spawn({
            let sent_at = sent_at.clone();
            async move {
                while let Some(bytes) = out_rx.recv().await {
                    if writer.write_all(&bytes).await.is_err() {
                        return;
                    }
                    let ms = u64::try_from(opened.elapsed().as_millis()).unwrap_or(u64::MAX);
                    sent_at.store(ms, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
        let mut buf = BytesMut::with_capacity(8192);
        let mut framer = Framer::default();
        // The last message (or, after the first, keep-alive) received.
        let mut heard: Option<Instant> = None;
        // When the bytes of the message under way began to arrive.
        let mut partial_since: Option<Instant> = None;
        // Whether an INVITE came on it: a call may use it for as long as it
        // lasts, silent (a conference call keys over RTP), so it is never
        // closed for idling (the caps bound what that keeps open).
        let mut carried_invite = false;
        let closed = 'read: loop {
            let sent =
                std::sync::atomic::AtomicU64::load(&sent_at, std::sync::atomic::Ordering::Relaxed);
            let last_out = (sent > 0).then(|| opened + Duration::from_millis(sent));
            let deadline = match (partial_since, heard.max(last_out)) {
                (Some(since), _) => Some((since + self.limits.message_within, Closed::SlowMessage)),
                (None, None) => Some((opened + self.limits.message_within, Closed::NoMessage)),
                (None, Some(_)) if carried_invite => None,
                (None, Some(last)) => Some((last + self.limits.idle, Closed::Idle)),
            };
            let read = match deadline {
                Some((at, _)) => {
                    tokio::time::timeout_at(at.into(), reader.read_buf(&mut buf)).await
                }
                None => Ok(reader.read_buf(&mut buf).await),
            };
            let why = deadline.map_or(Closed::Idle, |(_, why)| why);
            match read {
                Err(_) => {
                    // The writer may have sent since the deadline was set.
                    let now_sent = sent_at.load(std::sync::atomic::Ordering::Relaxed);
                    if why == Closed::Idle && now_sent != sent {
                        continue;
                    }
                    break Some(why);
                }
                Ok(Ok(0) | Err(_)) => break None,
                Ok(Ok(_)) => {}
            }
            let mut framed = false;
            loop {
                match framer.next_len(&buf) {
                    Ok(Some(len)) => {
                        let msg = buf.split_to(len).freeze();
                        framed = true;
                        if keep_alive(&msg) {
                            // A keep-alive holds a connection that has
                            // carried a message, and is not handed on.
                            if heard.is_some() {
                                heard = Some(Instant::now());
                            }
                            continue;
                        }
                        heard = Some(Instant::now());
                        let start = msg.iter().position(|b| !matches!(b, b'\r' | b'\n'));
                        carried_invite |= start.is_some_and(|i| msg[i..].starts_with(b"INVITE "));
                        // Over its rate, a stream source loses its connection:
                        // it takes what it sends as delivered, and would wait
                        // for answers to what was dropped.
                        if !self.limit.admit(self.flow.remote, "tcp") {
                            break 'read None;
                        }
                        if self.in_tx.send((self.flow, msg)).await.is_err() {
                            break 'read None;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(remote = %self.flow.remote, %e, "closing unframeable TCP stream");
                        break 'read None;
                    }
                }
            }
            // What is left is the start of the next message: its clock
            // starts now if this read completed one, else runs on.
            partial_since = if keep_alive(&buf) {
                None
            } else if framed {
                Some(Instant::now())
            } else {
                partial_since.or_else(|| Some(Instant::now()))
            };
        };
        if let Some(why) = closed {
            metrics::counter!("dialgate_sip_tcp_closed_total", "cause" => why.as_str())
                .increment(1);
            tracing::debug!(remote = %self.flow.remote, cause = why.as_str(), "closing TCP connection");
        }
        writer_task.abort();
    }
}
