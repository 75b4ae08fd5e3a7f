//! The async shell: binds the sockets, runs the SIP endpoint task and one
//! task per call, and stops cleanly on Ctrl-C (BYE to every call).
//!
//! SIGTERM drains: no new calls (INVITE and OPTIONS get 503 with
//! `Retry-After`), the node says `draining`, and the process exits when
//! the last call ends or `--drain-timeout` passes (BYE to the rest).
//!
//! The endpoint task owns the sans-IO [`Endpoint`]; call tasks talk to it
//! through [`SipCommand`]s and hear back through [`CallEvent`]s. Once
//! listening, `serve` prints one JSON line on stdout:
//! `{"event":"ready","sip":"127.0.0.1:P","api":"127.0.0.1:A","rtp_ports":"L-H","node":"N"}`.

pub mod admission;
mod call;
mod keys;
pub mod leases;
pub mod node;
mod player;
mod prompt_clock;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use crate::access::secret::{Secret, SecretError};
use crate::cause::{Cause, RETRY_AFTER_SECS};
use crate::conference::Rooms;
use crate::config::Settings;
use crate::live::LiveCalls;
use crate::media::ports::PortPool;
use crate::media::prompts::{PromptError, PromptLibrary};
use crate::provision::{ProvisionError, Provisioner};
use crate::sip::command::SipCommand;
use crate::sip::dialog::LocalAddr;
use crate::sip::endpoint::{CallEvent, CallRef, Endpoint, Output};
use crate::sip::flood::SourceLimit;
use crate::sip::message::StatusCode;
use crate::sip::transport::{self, SipSockets, TransportHandle};
use crate::store::{AttemptLog, Store, StoreError};
use admission::Admission;

#[derive(thiserror::Error, Debug)]
pub enum ServeError {
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("prompts: {0}")]
    Prompts(#[from] PromptError),
    #[error("secret: {0}")]
    Secret(#[from] SecretError),
    #[error("demo data: {0}")]
    Demo(#[from] ProvisionError),
    #[error("{0}")]
    Node(#[from] node::NodeError),
}

impl ServeError {
    /// The process's exit status: 2 for a conflict with another node (the
    /// SQLite file or the node id in use), 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            ServeError::Node(
                node::NodeError::SqliteInUse { .. } | node::NodeError::IdInUse { .. },
            ) => 2,
            _ => 1,
        }
    }
}

/// Everything a call task shares with the others.
pub(crate) struct Shared {
    pub settings: Settings,
    pub store: Store,
    pub prompts: PromptLibrary,
    /// Sends every IVR call's prompt frames on one 20 ms tick.
    pub prompt_clock: Arc<prompt_clock::PromptClock>,
    pub secret: Secret,
    pub ports: PortPool,
    pub rooms: Rooms,
    pub sip: mpsc::UnboundedSender<SipCommand>,
    pub live: LiveCalls,
    /// The attempt log's writer: calls queue rows, never wait.
    pub attempts: AttemptLog,
    pub admission: Arc<Admission>,
    /// What every call's core decides by.
    pub rules: Arc<call::Rules>,
    /// This node's row in the store.
    pub node: Arc<node::Node>,
    /// Notified by `POST /v1/drain`.
    pub drain: Arc<tokio::sync::Notify>,
    /// Legs from other nodes taken lately, one per pass.
    pub leg_passes: call::LegPasses,
}

/// What the endpoint task hands a call task.
#[derive(Debug)]
pub(crate) enum ToCall {
    /// An event of the caller's own dialog.
    Caller(CallEvent),
    /// An event of the leg the call placed to its room's owner node.
    Leg(CallEvent),
}

/// Logs to stderr, as text or one JSON object per line; `RUST_LOG`
/// filters (default `info`).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init()
    };
}

/// Runs the gateway until Ctrl-C or SIGTERM.
pub async fn serve(settings: Settings) -> Result<(), ServeError> {
    // Before anything else touches a SQLite file another node may serve.
    let sqlite_lock = node::SqliteLock::take(&settings.database, &settings.node_id)?;
    let prompts = PromptLibrary::load(&settings.prompts)?;
    tracing::info!(languages = ?prompts.languages(), "prompts loaded");
    // Encoded once per codec for every call (Opus at our default bitrate;
    // a far end's lower cap is encoded on first use), off the event loop:
    // a call that comes first encodes what it needs itself.
    let encodings: Vec<_> = settings
        .codecs
        .iter()
        .map(|&codec| crate::media::codec::Encoding {
            codec,
            opus: crate::media::codec::OpusParams::default(),
        })
        .collect();
    let library = prompts.clone();
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        library.prepare(&encodings);
        tracing::info!(took = ?started.elapsed(), "prompts encoded");
    });
    let store = Store::open_serving(&settings.database).await?;
    let secret = Secret::load_or_create(&settings.secret_file)?;
    let sockets = SipSockets::bind(settings.sip_listen)
        .await
        .map_err(|source| ServeError::Bind {
            what: "SIP",
            addr: settings.sip_listen,
            source,
        })?;
    let local = sockets.local_addr().map_err(|source| ServeError::Bind {
        what: "SIP",
        addr: settings.sip_listen,
        source,
    })?;
    let demo = if settings.demo {
        Some(Provisioner::new(store.clone()).seed_demo().await?)
    } else {
        None
    };
    let api_socket = tokio::net::TcpListener::bind(settings.api_listen)
        .await
        .map_err(|source| ServeError::Bind {
            what: "the API",
            addr: settings.api_listen,
            source,
        })?;
    let api_local = api_socket.local_addr().map_err(|source| ServeError::Bind {
        what: "the API",
        addr: settings.api_listen,
        source,
    })?;
    let node =
        Arc::new(node::Node::join(store.clone(), sqlite_lock, &settings, local, api_local).await?);
    // Calls → endpoint is unbounded on purpose: what flows here (answers,
    // BYEs, INFOs) must not be lost, and a call that waited on a full
    // channel could deadlock against the endpoint waiting on that call's
    // own event queue. It is bounded all the same by what feeds it: a call
    // sends a command only in answer to a SIP event or a decision of its
    // own (a handful per call, at most one per event), and calls are
    // capped by `--max-calls`; the endpoint → call direction is the
    // bounded one (64 events a call).
    let (sip_tx, sip_rx) = mpsc::unbounded_channel();
    let (room_events, room_events_rx) = mpsc::unbounded_channel();
    let rooms = Rooms::new(settings.max_talkers, prompts.hold_music()).announcing(room_events);
    let leases =
        leases::LeaseTask::start(store.clone(), node.clone(), rooms.clone(), room_events_rx);
    let live_calls = LiveCalls::new(sip_tx.clone(), rooms.clone());
    // `POST /v1/drain` asks what SIGTERM asks.
    let drain = Arc::new(tokio::sync::Notify::new());
    let api = crate::api::router(crate::api::ApiState {
        provisioner: Provisioner::new(store.clone()).with_secret(secret.clone()),
        prompts_loaded: true,
        calls: Some(live_calls.clone()),
        metrics: crate::api::metrics::install(),
        drain: Some(drain.clone()),
    });
    // Stopped gracefully as the process exits, so a request under way (the
    // `POST /v1/drain` of an idle node, which exits at once) gets its answer.
    let (api_stop, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let api_server = tokio::spawn(async move {
        let stopped = async {
            let _ = api_stopped.await;
        };
        if let Err(e) = axum::serve(api_socket, api)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!(%e, "API server stopped");
        }
    });
    let limit = SourceLimit::new(settings.sip_source_rate, settings.trusted_peers.clone());
    let (transport, inbound) = transport::spawn(sockets, limit, settings.sip_tcp);
    let ports = PortPool::new(
        settings.sip_listen.ip(),
        settings.rtp_ports.0,
        settings.rtp_ports.1,
    );
    let endpoint = Endpoint::new(
        LocalAddr {
            advertise: settings.advertise,
            port: local.port(),
        },
        settings.sip_timers,
    );
    let attempts = AttemptLog::start(store.clone(), settings.attempt_log);
    let admission = Admission::new(
        settings.max_calls,
        settings.max_loop_lag,
        settings.max_store_latency,
        attempts.clone(),
    );
    tokio::spawn(admission.clone().watch_loop_lag());
    let rules = Arc::new(call::Rules {
        ivr: settings.ivr.clone(),
        lockout: settings.lockout.clone(),
        answer_delay: settings.answer_delay,
        store_timeout: settings.store_timeout,
        rtp_timeout: settings.rtp_timeout,
        advertise: settings.advertise,
        codecs: settings.codecs.clone(),
        secret: secret.clone(),
    });
    let shared = Arc::new(Shared {
        node: node.clone(),
        rules,
        attempts: attempts.clone(),
        admission,
        rooms,
        settings,
        store,
        prompts,
        prompt_clock: prompt_clock::PromptClock::start(),
        secret,
        ports,
        sip: sip_tx,
        live: live_calls,
        drain,
        leg_passes: call::LegPasses::default(),
    });
    let heartbeat = {
        let (node, admission) = (node.clone(), shared.admission.clone());
        tokio::spawn(async move { node.beat(|| admission.calls()).await })
    };
    // The node id is 1-64 of [A-Za-z0-9._-]: nothing to escape.
    println!(
        "{{\"event\":\"ready\",\"sip\":\"{local}\",\"api\":\"{api_local}\",\"rtp_ports\":\"{}-{}\",\"node\":\"{}\"}}",
        shared.settings.rtp_ports.0,
        shared.settings.rtp_ports.1,
        node.id()
    );
    if let Some(room) = demo {
        // For the person at the terminal, after the machine-readable line.
        println!(
            "demo: call sip:+15550100@{local} (e.g. with SIPp, see README) and key {} then #",
            room.access_code
        );
    }
    tracing::info!(sip = %local, "dialgate ready");
    // On a worker thread, not the thread that waits for `serve`: every
    // message the endpoint hands a call (or takes from one) then stays
    // among the workers instead of waking a third thread.
    let endpoint = tokio::spawn(run_endpoint(endpoint, transport, inbound, sip_rx, shared));
    if let Err(e) = endpoint.await {
        tracing::error!(%e, "the SIP endpoint stopped");
    }
    // Every queued attempt row is written before the process exits.
    let backlog = attempts.backlog();
    if tokio::time::timeout(LOG_FLUSH_LIMIT, attempts.close())
        .await
        .is_err()
    {
        tracing::error!(
            rows = attempts.backlog(),
            "attempt log not flushed: the store did not take the rows"
        );
    } else {
        tracing::info!(rows = backlog, "attempt log flushed");
    }
    leases.stop(node::LEAVE_LIMIT).await;
    heartbeat.abort();
    node.leave().await;
    let _ = api_stop.send(());
    if tokio::time::timeout(API_CLOSE_LIMIT, api_server)
        .await
        .is_err()
    {
        tracing::debug!("API connections still open at exit");
    }
    Ok(())
}

/// What a signal asks of the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// SIGTERM (a service manager, a rolling restart): take no new calls,
    /// let those in progress finish, for at most `--drain-timeout`.
    Drain,
    /// Ctrl-C (SIGINT), or SIGTERM again while draining: BYE to every call.
    Now,
    /// `POST /v1/drain`: as SIGTERM, but asking again while draining
    /// changes nothing (an operator's retry must not cut calls).
    ApiDrain,
}

/// The process's stop signals, listened to for its whole life (a signal
/// that comes between two waits is kept, not lost), and the API's drain
/// request (`POST /v1/drain`), which asks what SIGTERM asks.
struct Signals {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    api: Arc<tokio::sync::Notify>,
}

impl Signals {
    fn listen(api: Arc<tokio::sync::Notify>) -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                int: signal(SignalKind::interrupt()).ok(),
                term: signal(SignalKind::terminate()).ok(),
                api,
            }
        }
        #[cfg(not(unix))]
        Signals { api }
    }

    async fn next(&mut self) -> Stop {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = recv(&mut self.int) => Stop::Now,
                () = recv(&mut self.term) => Stop::Drain,
                () = self.api.notified() => Stop::ApiDrain,
            }
        }
        #[cfg(not(unix))]
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => Stop::Now,
                () = self.api.notified() => Stop::ApiDrain,
            }
        }
    }
}

/// BYE to every call, for shutting down.
fn hang_up_all(endpoint: &mut Endpoint, calls: &HashMap<CallRef, mpsc::Sender<ToCall>>) {
    let now = Instant::now().into_std();
    for call in calls.keys() {
        endpoint.send_bye(now, *call, Some(Cause::ShuttingDown.reason()));
    }
}

/// How long shutdown waits for BYEs to be answered.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// How long the exit waits for the API's requests under way.
const API_CLOSE_LIMIT: Duration = Duration::from_secs(1);

/// How long shutdown waits for the attempt log to be written.
const LOG_FLUSH_LIMIT: Duration = Duration::from_secs(30);

/// Events queued per call at most: a call that does not keep up has its
/// requests refused rather than queued without end.
const CALL_EVENTS: usize = 64;

/// Hands `event` to its call. When the call's queue is full, a request in
/// it (INFO, re-INVITE) is answered 503 here; the events that end a call
/// are never dropped (queued by a task of their own).
fn deliver(endpoint: &mut Endpoint, tx: &mpsc::Sender<ToCall>, event: ToCall) {
    let event = match tx.try_send(event) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return,
        Err(mpsc::error::TrySendError::Full(event)) => event,
    };
    let now = Instant::now().into_std();
    let busy = StatusCode::SERVICE_UNAVAILABLE;
    let (ToCall::Caller(inner) | ToCall::Leg(inner)) = &event;
    match inner {
        CallEvent::Info { tx: key, .. } => {
            tracing::debug!("call's event queue full: INFO refused (503)");
            endpoint.respond(now, key, busy);
        }
        CallEvent::Reinvite { tx: key, .. } => {
            tracing::debug!("call's event queue full: re-INVITE refused (503)");
            endpoint.respond_reinvite(now, key, busy, None);
        }
        _ => {
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(event).await;
            });
        }
    }
}

async fn run_endpoint(
    mut endpoint: Endpoint,
    transport: TransportHandle,
    mut inbound: transport::Inbound,
    mut commands: mpsc::UnboundedReceiver<SipCommand>,
    shared: Arc<Shared>,
) {
    let mut calls: HashMap<CallRef, mpsc::Sender<ToCall>> = HashMap::new();
    // Legs to other nodes: each leg's call, and each call's leg.
    let mut legs: HashMap<CallRef, CallRef> = HashMap::new();
    let mut leg_of: HashMap<CallRef, CallRef> = HashMap::new();
    let mut signals = Signals::listen(shared.drain.clone());
    // Draining: when the calls still up get BYE.
    let mut draining: Option<Instant> = None;
    // Hanging up: when the endpoint stops waiting for the BYEs' answers.
    let mut stopping: Option<Instant> = None;
    let mut shed_before = None;
    loop {
        let shed = shared.admission.shedding();
        if shed != shed_before {
            match shed {
                Some(why) => {
                    tracing::warn!(reason = why.as_str(), calls = shared.admission.calls(), backlog = shared.attempts.backlog(), lag = ?shared.admission.loop_lag(), store = ?shared.admission.store_latency(), "overloaded: refusing new calls (503)")
                }
                None => tracing::info!(calls = shared.admission.calls(), "taking new calls again"),
            }
            shed_before = shed;
        }
        let leaving = draining.is_some() || stopping.is_some();
        endpoint.set_overloaded(
            shed.map(|_| RETRY_AFTER_SECS)
                .or(leaving.then_some(RETRY_AFTER_SECS)),
        );
        let timer = endpoint.poll_timeout().map(Instant::from_std);
        let now = tokio::select! {
            Some((flow, bytes)) = inbound.recv() => {
                let now = Instant::now();
                endpoint.handle_input(now.into_std(), flow, &bytes);
                now
            }
            Some(cmd) = commands.recv() => {
                let now = Instant::now().into_std();
                match cmd {
                    SipCommand::RespondInvite { call, status, headers, sdp } => endpoint.respond_invite(now, call, status, headers, sdp),
                    SipCommand::Respond { tx, status } => endpoint.respond(now, &tx, status),
                    SipCommand::RespondReinvite { tx, status, sdp } => endpoint.respond_reinvite(now, &tx, status, sdp),
                    SipCommand::Bye { call, reason } => endpoint.send_bye(now, call, reason),
                    SipCommand::Info { call, package, body } => endpoint.send_info(now, call, package, body),
                    SipCommand::Invite { call, leg } => {
                        let id = endpoint.invite(now, leg);
                        legs.insert(id, call);
                        if let Some(old) = leg_of.insert(call, id) {
                            // A call places one leg at a time: an old one is over.
                            legs.remove(&old);
                        }
                    }
                    SipCommand::LegKey { call, signal } => {
                        if let Some(id) = leg_of.get(&call) {
                            endpoint.send_dtmf_relay(now, *id, signal);
                        }
                    }
                    SipCommand::LegInfo { call, package, body } => {
                        if let Some(id) = leg_of.get(&call) {
                            endpoint.send_info(now, *id, package, body);
                        }
                    }
                    SipCommand::LegBye { call, reason } => {
                        // The call is done with this leg: nothing more of
                        // it reaches the call (a next leg's events do).
                        if let Some(id) = leg_of.remove(&call) {
                            endpoint.send_bye(now, id, reason);
                        }
                    }
                }
                Instant::now()
            }
            _ = tokio::time::sleep_until(timer.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))), if timer.is_some() => {
                let now = Instant::now();
                endpoint.handle_timeout(now.into_std());
                now
            }
            stop = signals.next(), if stopping.is_none() => {
                let now = Instant::now();
                let limit = shared.settings.drain_timeout;
                if stop == Stop::ApiDrain && draining.is_some() {
                    tracing::info!("drain asked again through the API: already draining");
                } else if stop != Stop::Now && draining.is_none() && !limit.is_zero() {
                    tracing::info!(calls = calls.len(), limit = ?limit, "draining: no new calls; those in progress go on");
                    shared.node.set_draining();
                    draining = Some(now + limit);
                } else {
                    tracing::info!(calls = calls.len(), "shutting down: hanging up calls");
                    hang_up_all(&mut endpoint, &calls);
                    stopping = Some(now + SHUTDOWN_GRACE);
                }
                now
            }
            _ = tokio::time::sleep_until(draining.unwrap_or_else(Instant::now)), if draining.is_some() && stopping.is_none() => {
                let now = Instant::now();
                tracing::warn!(calls = calls.len(), "drain timeout: hanging up the calls left");
                hang_up_all(&mut endpoint, &calls);
                stopping = Some(now + SHUTDOWN_GRACE);
                now
            }
            _ = tokio::time::sleep_until(stopping.unwrap_or_else(Instant::now)), if stopping.is_some() => {
                tracing::warn!(calls = calls.len(), "shutdown grace over");
                return;
            }
        };
        let _ = now;
        while let Some(out) = endpoint.poll_output() {
            match out {
                Output::Transmit { flow, bytes } => transport.send(flow, bytes).await,
                Output::Incoming(incoming) => {
                    // Refused before anything is answered: draining or
                    // shutting down, or the gateway cannot serve one more
                    // call.
                    // A draining node still takes legs from other nodes
                    // into the rooms it mixes: its calls in progress go
                    // on, and the room stays one.
                    let leg = incoming.leg.is_some();
                    let admitted = if stopping.is_some() || (draining.is_some() && !leg) {
                        Err(Cause::ShuttingDown)
                    } else {
                        shared.admission.admit().map_err(Cause::Shed)
                    };
                    let slot = match admitted {
                        Ok(slot) => slot,
                        Err(cause) => {
                            Admission::count_refused(cause);
                            tracing::debug!(cause = cause.label(), source = %incoming.source, "call refused before answering");
                            endpoint.respond_invite(
                                Instant::now().into_std(),
                                incoming.call,
                                cause.status(),
                                cause.refusal_headers(),
                                None,
                            );
                            continue;
                        }
                    };
                    let (tx, rx) = mpsc::channel(CALL_EVENTS);
                    calls.insert(incoming.call, tx);
                    let span = tracing::info_span!("call", call_id = %incoming.call_id);
                    tokio::spawn(call::run(shared.clone(), incoming, rx, slot).instrument(span));
                }
                Output::Call(call, event) => {
                    let last = matches!(
                        event,
                        CallEvent::Ended
                            | CallEvent::Bye { .. }
                            | CallEvent::Cancelled
                            | CallEvent::Refused { .. }
                    );
                    if let Some(&owner) = legs.get(&call) {
                        // Only the call's current leg speaks to it.
                        if leg_of.get(&owner) == Some(&call)
                            && let Some(tx) = calls.get(&owner)
                        {
                            deliver(&mut endpoint, tx, ToCall::Leg(event));
                        }
                        if last {
                            legs.remove(&call);
                            if leg_of.get(&owner) == Some(&call) {
                                leg_of.remove(&owner);
                            }
                        }
                        continue;
                    }
                    if let Some(tx) = calls.get(&call) {
                        deliver(&mut endpoint, tx, ToCall::Caller(event));
                    }
                    if last {
                        calls.remove(&call);
                    }
                }
            }
        }
        if (draining.is_some() || stopping.is_some()) && endpoint.active_dialogs() == 0 {
            tracing::info!("all calls ended");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::dialog::{Flow, Transport};
    use crate::sip::message;

    const CALLER: &str = "127.0.0.1:5070";

    fn request(method: &str, branch: &str, cseq: u32, to_tag: Option<&str>) -> Vec<u8> {
        let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        format!(
            "{method} sip:+15550100@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch={branch}\r\n\
From: <sip:a@127.0.0.1>;tag=f\r\nTo: <sip:+15550100@127.0.0.1>{to_tag}\r\nCall-ID: full-queue\r\n\
CSeq: {cseq} {method}\r\nContact: <sip:a@{CALLER}>\r\nMax-Forwards: 70\r\n\
Content-Type: application/dtmf-relay\r\nContent-Length: 9\r\n\r\nSignal=5\n"
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn a_call_whose_event_queue_is_full_has_its_info_refused_and_still_hears_its_bye() {
        let flow = Flow {
            transport: Transport::Udp,
            remote: CALLER.parse().unwrap(),
        };
        let local = LocalAddr {
            advertise: "127.0.0.1".parse().unwrap(),
            port: 5060,
        };
        let mut ep = Endpoint::new(local, Default::default());
        let now = std::time::Instant::now();
        ep.handle_input(now, flow, &request("INVITE", "z9hG4bK-i", 1, None));
        let mut call = None;
        while let Some(out) = ep.poll_output() {
            if let Output::Incoming(i) = out {
                call = Some(i.call);
            }
        }
        let call = call.expect("a call");
        ep.respond_invite(now, call, StatusCode::OK, Vec::new(), None);
        let mut tag = None;
        while let Some(out) = ep.poll_output() {
            if let Output::Transmit { bytes, .. } = out {
                tag = message::parse(&bytes)
                    .ok()
                    .and_then(|m| m.tag("To").map(str::to_owned));
            }
        }
        let tag = tag.expect("our tag");
        // A queue of one, already holding an event the call has not read.
        let (tx, mut rx) = mpsc::channel(1);
        tx.try_send(ToCall::Caller(CallEvent::Ack)).unwrap();
        ep.handle_input(now, flow, &request("INFO", "z9hG4bK-n", 2, Some(&tag)));
        let mut statuses = Vec::new();
        while let Some(out) = ep.poll_output() {
            match out {
                Output::Call(_, event) => deliver(&mut ep, &tx, ToCall::Caller(event)),
                Output::Transmit { bytes, .. } => {
                    statuses.extend(message::parse(&bytes).ok().and_then(|m| m.status()));
                }
                Output::Incoming(_) => {}
            }
        }
        assert_eq!(statuses, vec![StatusCode::SERVICE_UNAVAILABLE]);
        // The BYE is not dropped: it waits for room in the queue.
        ep.handle_input(now, flow, &request("BYE", "z9hG4bK-b", 3, Some(&tag)));
        while let Some(out) = ep.poll_output() {
            if let Output::Call(_, event) = out {
                deliver(&mut ep, &tx, ToCall::Caller(event));
            }
        }
        assert!(matches!(
            rx.recv().await,
            Some(ToCall::Caller(CallEvent::Ack))
        ));
        assert!(matches!(
            rx.recv().await,
            Some(ToCall::Caller(CallEvent::Bye { .. }))
        ));
    }
}
