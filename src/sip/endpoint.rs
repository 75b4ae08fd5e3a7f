//! The SIP user-agent core, sans-IO: datagrams and stream frames in
//! (`handle_input`), transmits and call events out (`poll_output`), timers
//! through `poll_timeout`/`handle_timeout` — shaped like quinn-proto.
//!
//! It owns the transactions and dialogs and answers what needs no decision:
//! 100 Trying at once, retransmissions, OPTIONS (200), CANCEL (200 + 487),
//! BYE (200), requests outside any dialog (481), methods the UA does not
//! take (405 with Allow; unknown methods 501), garbage (400 when a response
//! can be formed, otherwise dropped). Those refusals, and OPTIONS, are
//! answered statelessly (RFC 3261 §8.2.7): a flood of them leaves nothing
//! behind. A refused INVITE's answer is retransmitted until its ACK to at
//! most [`MAX_UNACKED_FAILURES`] per source at once, so a forged source
//! address cannot turn one INVITE into a dozen answers to someone else.
//!
//! Decisions — which number, which codec, which room — belong to the
//! gateway, which answers INVITEs through [`Endpoint::respond_invite`] and
//! hangs up through [`Endpoint::send_bye`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;

use super::dialog::{Dialog, DialogState, Flow, LocalAddr, random_token, response};
use super::message::{self, ALLOW, Message, Method, StatusCode};
use super::transaction::{ClientTx, ServerState, ServerTx, TimerConfig, TimerOutput};

/// Refused INVITEs per source whose answers are retransmitted until their
/// ACK (RFC 3261 §17.2.1); past this, a source's refusals are sent once,
/// and again only when it retransmits its INVITE.
pub const MAX_UNACKED_FAILURES: u32 = 8;

/// The gateway's handle on one call (one dialog).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallRef(pub u64);

/// A server transaction's identity (RFC 3261 §17.2.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxKey {
    branch: String,
    call_id: String,
    method: String,
}

impl TxKey {
    /// A key of an INFO with `branch`, for other modules' tests.
    #[cfg(test)]
    pub(crate) fn for_tests(branch: &str) -> TxKey {
        TxKey {
            branch: branch.to_owned(),
            call_id: "test".to_owned(),
            method: "INFO".to_owned(),
        }
    }

    fn of(msg: &Message, method: &Method) -> TxKey {
        TxKey {
            branch: msg.branch().unwrap_or_default().to_owned(),
            call_id: msg.call_id().to_owned(),
            method: method.as_str().to_owned(),
        }
    }
}

/// What the gateway is told about a new call.
#[derive(Clone, Debug)]
pub struct IncomingCall {
    pub call: CallRef,
    pub call_id: String,
    /// Request-URI user part (the dialled number, not yet normalised).
    pub dialled: Option<String>,
    pub from_user: String,
    pub p_asserted_identity: Option<String>,
    /// Via header values, top first, for trusted-peer identity.
    pub vias: Vec<String>,
    /// The packet's source address.
    pub source: SocketAddr,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// Info Packages the caller will take in INFO (RFC 6086 `Recv-Info`),
    /// lower-cased.
    pub recv_info: Vec<String>,
}

#[derive(Clone, Debug)]
pub enum CallEvent {
    /// The caller acknowledged our 2xx.
    Ack,
    /// CANCEL before answer; 487 was sent.
    Cancelled,
    /// The caller hung up; 200 was sent.
    Bye,
    /// SIP INFO in the dialog; answer it with [`Endpoint::respond`].
    Info {
        tx: TxKey,
        content_type: String,
        body: Vec<u8>,
    },
    /// A re-INVITE with an offer (hold, resume, codec or address change);
    /// answer it with [`Endpoint::respond_reinvite`]: 200 with the answer,
    /// or 488 keeping the session as it was.
    Reinvite {
        tx: TxKey,
        content_type: String,
        body: Vec<u8>,
        /// Where it came from, and its Via values (top first): a caller
        /// behind NAT that moved re-INVITEs from its new public address.
        source: SocketAddr,
        vias: Vec<String>,
    },
    /// Our 2xx was never acknowledged (64·T1); the call should end with BYE.
    AckTimeout,
    /// Our BYE was answered (or timed out): the dialog is gone.
    Ended,
}

#[derive(Debug)]
#[must_use]
pub enum Output {
    Transmit { flow: Flow, bytes: Bytes },
    Incoming(IncomingCall),
    Call(CallRef, CallEvent),
}

struct ServerEntry {
    tx: ServerTx,
    /// The deadline this entry holds in the timer heap.
    armed: Option<Instant>,
    flow: Flow,
    /// The request, for requests the TU answers later (INFO).
    request: Option<Message>,
    call: Option<CallRef>,
    /// A refused INVITE counted in its source's unacknowledged refusals.
    unacked_from: Option<IpAddr>,
}

struct ClientEntry {
    tx: ClientTx,
    /// The deadline this entry holds in the timer heap.
    armed: Option<Instant>,
    flow: Flow,
    call: CallRef,
    /// A BYE: its answer (or its timeout) ends the dialog. An INFO's does not.
    ends_dialog: bool,
}

/// Whose deadline a timer-heap entry is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Server(TxKey),
    /// A client transaction, by branch.
    Client(String),
}

/// The transactions' deadlines, earliest first, so an event costs
/// O(log n) in the live transactions rather than a sweep of all of them.
///
/// Lazy deletion: every change to a transaction re-arms it
/// ([`Endpoint::arm`]), pushing its new deadline and recording it in the
/// entry's `armed`; a heap entry whose deadline is no longer its
/// transaction's `armed` (changed, or the transaction gone) is stale and
/// skipped when it comes up.
#[derive(Default)]
struct Timers {
    heap: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    /// Heap entries examined, stale ones included (for tests of the cost).
    examined: u64,
}

/// The UA core for every call on one SIP listening address.
pub struct Endpoint {
    local: LocalAddr,
    timers: TimerConfig,
    /// Boxed: a non-INVITE transaction lives 32 s after its answer (Timer
    /// J), so at a high call rate the table holds tens of thousands; boxing
    /// keeps each slot, empty ones included, at the key and a pointer
    /// (80 bytes, not 440).
    server: HashMap<TxKey, Box<ServerEntry>>,
    client: HashMap<String, ClientEntry>,
    dialogs: HashMap<CallRef, Dialog>,
    by_id: HashMap<(String, String), CallRef>,
    /// The latest re-INVITE per dialog, whose 2xx its ACK stops.
    reinvites: HashMap<CallRef, TxKey>,
    /// The re-INVITE per dialog handed to the call (open while its
    /// server entry still holds the request, i.e. until it is answered).
    offered: HashMap<CallRef, TxKey>,
    next_call: u64,
    out: VecDeque<Output>,
    /// The gateway sheds new calls: OPTIONS is answered 503.
    overloaded: Option<u32>,
    deadlines: Timers,
    /// Per source, refused INVITEs retransmitted until their ACK.
    unacked: HashMap<IpAddr, u32>,
    /// Keys the To tags of stateless answers.
    tag_key: [u64; 2],
    /// Draws tags, branches, first CSeqs and retry delays: from the OS
    /// (ChaCha, a CSPRNG) in the gateway, from a seed in tests and fuzzing,
    /// so a run can be repeated exactly.
    rng: StdRng,
}

/// Takes a refused INVITE out of its source's unacknowledged count (it was
/// acknowledged, or its transaction ended).
fn release_unacked(unacked: &mut HashMap<IpAddr, u32>, entry: &mut ServerEntry) {
    let Some(source) = entry.unacked_from.take() else {
        return;
    };
    if let Some(n) = unacked.get_mut(&source) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            unacked.remove(&source);
        }
    }
}

impl Endpoint {
    /// An endpoint whose random draws come from the OS.
    pub fn new(local: LocalAddr, timers: TimerConfig) -> Endpoint {
        Endpoint::with_rng(local, timers, StdRng::from_os_rng())
    }

    /// An endpoint whose random draws repeat for the same `seed` (tests,
    /// fuzzing).
    pub fn with_seed(local: LocalAddr, timers: TimerConfig, seed: u64) -> Endpoint {
        Endpoint::with_rng(local, timers, StdRng::seed_from_u64(seed))
    }

    fn with_rng(local: LocalAddr, timers: TimerConfig, mut rng: StdRng) -> Endpoint {
        Endpoint {
            local,
            timers,
            server: HashMap::new(),
            client: HashMap::new(),
            dialogs: HashMap::new(),
            by_id: HashMap::new(),
            reinvites: HashMap::new(),
            offered: HashMap::new(),
            next_call: 1,
            out: VecDeque::new(),
            overloaded: None,
            deadlines: Timers::default(),
            unacked: HashMap::new(),
            tag_key: rng.random(),
            rng,
        }
    }

    /// Adds a server transaction and arms its timer.
    fn insert_server(
        &mut self,
        key: TxKey,
        tx: ServerTx,
        flow: Flow,
        request: Option<Message>,
        call: Option<CallRef>,
    ) {
        let entry = ServerEntry {
            tx,
            armed: None,
            flow,
            request,
            call,
            unacked_from: None,
        };
        self.server.insert(key.clone(), Box::new(entry));
        self.arm(TimerKey::Server(key));
    }

    /// Puts `key`'s transaction's next deadline in the heap, after
    /// anything that may have changed it. A deadline already armed is
    /// not pushed again; an old one left behind goes stale.
    fn arm(&mut self, key: TimerKey) {
        let (due, armed) = match &key {
            TimerKey::Server(k) => match self.server.get_mut(k) {
                Some(e) => (e.tx.poll_timeout(), &mut e.armed),
                None => return,
            },
            TimerKey::Client(b) => match self.client.get_mut(b) {
                Some(e) => (e.tx.poll_timeout(), &mut e.armed),
                None => return,
            },
        };
        if due == *armed {
            return;
        }
        *armed = due;
        if let Some(at) = due {
            self.deadlines.heap.push(Reverse((at, key)));
        }
        // Stale entries leave as their deadlines pass (within 64·T1); a
        // rebuild bounds the heap should changes ever outpace that.
        let live = self.server.len() + self.client.len();
        if self.deadlines.heap.len() > 4 * live + 1024 {
            self.rebuild_timers();
        }
    }

    fn rebuild_timers(&mut self) {
        let server = self
            .server
            .iter()
            .filter_map(|(k, e)| Some(Reverse((e.armed?, TimerKey::Server(k.clone())))));
        let client = self
            .client
            .iter()
            .filter_map(|(b, e)| Some(Reverse((e.armed?, TimerKey::Client(b.clone())))));
        self.deadlines.heap = server.chain(client).collect();
    }

    /// Whether a heap entry still stands for its transaction's deadline.
    fn current(&self, at: Instant, key: &TimerKey) -> bool {
        let armed = match key {
            TimerKey::Server(k) => self.server.get(k).and_then(|e| e.armed),
            TimerKey::Client(b) => self.client.get(b).and_then(|e| e.armed),
        };
        armed == Some(at)
    }

    /// While `Some(retry_after_secs)`, OPTIONS gets 503 with that
    /// `Retry-After`, so a dispatcher in front sends new calls elsewhere.
    pub fn set_overloaded(&mut self, retry_after: Option<u32>) {
        self.overloaded = retry_after;
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    pub fn active_dialogs(&self) -> usize {
        self.dialogs.len()
    }

    /// Live transactions, server and client.
    pub fn transactions(&self) -> usize {
        self.server.len() + self.client.len()
    }

    fn transmit(&mut self, flow: Flow, bytes: Bytes) {
        self.out.push_back(Output::Transmit { flow, bytes });
    }

    /// One datagram or framed stream message from `flow`.
    pub fn handle_input(&mut self, now: Instant, flow: Flow, buf: &[u8]) {
        match message::parse(buf) {
            Ok(msg) if msg.method().is_some() => self.on_request(now, flow, msg),
            Ok(msg) => self.on_response(now, msg),
            Err(err) => {
                tracing::debug!(remote = %flow.remote, %err, "unparseable SIP message");
                if let Some(req) = message::salvage_for_400(buf) {
                    // 400, or 505 / 416 for a version or URI scheme we do not take.
                    let tag = self.stateless_tag(&req);
                    let mut resp = response(&req, err.status(), Some(&tag), flow.remote);
                    // A fixed text: the offending bytes are never echoed.
                    resp.headers
                        .push(("Warning".into(), format!("399 dialgate \"{}\"", err.kind())));
                    self.transmit(flow, resp.to_bytes());
                }
            }
        }
    }

    /// Sends a stateless-style final answer inside a fresh server transaction.
    fn answer(&mut self, now: Instant, flow: Flow, req: &Message, method: &Method, resp: Message) {
        let status = resp.status().map_or(500, |s| s.0);
        let bytes = resp.to_bytes();
        // An INVITE's final answer is retransmitted until its ACK (§17.2.1).
        let invite = *method == Method::Invite;
        let mut tx = ServerTx::new(now, invite, flow.transport.is_reliable(), self.timers);
        tx.send_response(now, status, bytes.clone());
        self.insert_server(TxKey::of(req, method), tx, flow, None, None);
        self.transmit(flow, bytes);
    }

    /// Answers `req` with `status` and no transaction (RFC 3261 §8.2.7):
    /// nothing is kept or retransmitted, and a retransmitted request is
    /// answered afresh, with the same To tag.
    fn simple(&mut self, flow: Flow, req: &Message, status: StatusCode) {
        let tag = self.stateless_tag(req);
        let mut resp = response(req, status, Some(&tag), flow.remote);
        if matches!(
            status,
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED | StatusCode::OK
        ) {
            resp.headers.push(("Allow".into(), ALLOW.into()));
        }
        self.transmit(flow, resp.to_bytes());
    }

    /// The To tag of a stateless answer to `req`: made from the request, so
    /// the same for its retransmissions, and keyed, so not guessable.
    fn stateless_tag(&self, req: &Message) -> String {
        let mut h = DefaultHasher::new();
        (
            self.tag_key,
            req.call_id(),
            req.tag("From"),
            req.branch(),
            req.cseq(),
        )
            .hash(&mut h);
        format!("{:016x}", h.finish())
    }

    fn dialog_of(&self, req: &Message) -> Option<CallRef> {
        let tag = req.tag("To")?;
        self.by_id
            .get(&(req.call_id().to_owned(), tag.to_owned()))
            .copied()
    }

    fn on_request(&mut self, now: Instant, flow: Flow, req: Message) {
        let Some(method) = req.method().cloned() else {
            return;
        };
        match method {
            Method::Ack => return self.on_ack(now, &req),
            Method::Cancel => return self.on_cancel(now, flow, &req),
            _ => {}
        }
        if let Some(entry) = self.server.get(&TxKey::of(&req, &method)) {
            if let Some(bytes) = entry.tx.on_request_retransmission() {
                let flow = entry.flow;
                self.transmit(flow, bytes);
            }
            return;
        }
        // We take no extension: a request that requires one gets 420 with
        // what we do not support (RFC 3261 §8.2.2.3; never ACK or CANCEL).
        let required: Vec<&str> = req
            .headers_named("Require")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .collect();
        if !required.is_empty() {
            // Option tags are tokens (RFC 3261 §25.1): anything else is not
            // echoed back.
            let token = |o: &&str| {
                o.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
            };
            let unsupported: Vec<&str> = required.iter().copied().filter(token).collect();
            let tag = self.stateless_tag(&req);
            let mut resp = response(&req, StatusCode::BAD_EXTENSION, Some(&tag), flow.remote);
            resp.headers
                .push(("Unsupported".into(), unsupported.join(", ")));
            return self.transmit(flow, resp.to_bytes());
        }
        let in_dialog = req.tag("To").is_some();
        // The Contact of a request that makes a dialog is the SIP or SIPS
        // URI its in-dialog requests go to (RFC 3261 §8.1.1.8): with another
        // scheme there, our BYE could not be addressed.
        if method == Method::Invite
            && let Some(contact) = req.header("Contact")
            && !message::is_sip_uri(message::uri_of(contact))
        {
            return self.simple(flow, &req, StatusCode::BAD_REQUEST);
        }
        match method {
            Method::Invite if !in_dialog => self.on_new_invite(now, flow, req),
            Method::Options => match self.overloaded {
                Some(after) => {
                    let tag = self.stateless_tag(&req);
                    let mut resp = response(
                        &req,
                        StatusCode::SERVICE_UNAVAILABLE,
                        Some(&tag),
                        flow.remote,
                    );
                    resp.headers.push(("Retry-After".into(), after.to_string()));
                    self.transmit(flow, resp.to_bytes());
                }
                None => self.simple(flow, &req, StatusCode::OK),
            },
            Method::Invite | Method::Bye | Method::Info => match self.dialog_of(&req) {
                Some(call) => self.on_in_dialog(now, flow, call, req, method),
                None => self.simple(flow, &req, StatusCode::CALL_DOES_NOT_EXIST),
            },
            Method::Other(_) => self.simple(flow, &req, StatusCode::NOT_IMPLEMENTED),
            _ => self.simple(flow, &req, StatusCode::METHOD_NOT_ALLOWED),
        }
    }

    fn on_new_invite(&mut self, now: Instant, flow: Flow, req: Message) {
        let call = CallRef(self.next_call);
        self.next_call += 1;
        let dialog = Dialog::from_invite(&req, flow, &mut self.rng);
        let trying = response(&req, StatusCode::TRYING, None, flow.remote).to_bytes();
        let mut tx = ServerTx::new(now, true, flow.transport.is_reliable(), self.timers);
        tx.send_response(now, 100, trying.clone());
        self.insert_server(TxKey::of(&req, &Method::Invite), tx, flow, None, Some(call));
        self.transmit(flow, trying);
        let incoming = IncomingCall {
            call,
            call_id: req.call_id().to_owned(),
            dialled: req.uri_user.clone(),
            from_user: req
                .header("From")
                .and_then(|f| message::uri_user(message::uri_of(f)))
                .unwrap_or("anonymous")
                .to_owned(),
            p_asserted_identity: req.header("P-Asserted-Identity").map(str::to_owned),
            vias: req.headers_named("Via").map(str::to_owned).collect(),
            source: flow.remote,
            content_type: req.content_type().map(str::to_owned),
            body: req.body.clone(),
            recv_info: req
                .headers_named("Recv-Info")
                .flat_map(|v| v.split(','))
                .map(|p| p.trim().to_ascii_lowercase())
                .filter(|p| !p.is_empty())
                .collect(),
        };
        self.by_id
            .insert((dialog.call_id.clone(), dialog.local_tag.clone()), call);
        self.dialogs.insert(call, dialog);
        self.out.push_back(Output::Incoming(incoming));
    }

    fn on_in_dialog(
        &mut self,
        now: Instant,
        flow: Flow,
        call: CallRef,
        req: Message,
        method: Method,
    ) {
        let Some(dialog) = self.dialogs.get_mut(&call) else {
            return;
        };
        let cseq = req.cseq().map_or(0, |(n, _)| n);
        if cseq <= dialog.remote_cseq {
            // Out of order (RFC 3261 §12.2.2).
            return self.simple(flow, &req, StatusCode::SERVER_ERROR);
        }
        dialog.remote_cseq = cseq;
        match method {
            Method::Bye => {
                let tag = dialog.local_tag.clone();
                let resp = response(&req, StatusCode::OK, Some(&tag), flow.remote);
                self.answer(now, flow, &req, &method, resp);
                // A BYE on an early dialog also ends the pending INVITE.
                self.finish_pending_invite(now, call, StatusCode::REQUEST_TERMINATED);
                self.forget(call);
                self.out.push_back(Output::Call(call, CallEvent::Bye));
            }
            Method::Info => {
                let key = TxKey::of(&req, &method);
                let tx = ServerTx::new(now, false, flow.transport.is_reliable(), self.timers);
                self.insert_server(key.clone(), tx, flow, Some(req.clone()), Some(call));
                self.out.push_back(Output::Call(
                    call,
                    CallEvent::Info {
                        tx: key,
                        content_type: req.content_type().unwrap_or_default().to_owned(),
                        body: req.body,
                    },
                ));
            }
            _ if !req.body.is_empty() => {
                // A re-INVITE with an offer: the call answers it. One at a
                // time (RFC 3261 §14.2): another while it is open gets 500.
                let open = self
                    .offered
                    .get(&call)
                    .is_some_and(|key| self.server.get(key).is_some_and(|e| e.request.is_some()));
                if open {
                    // RFC 3261 §14.2: 500 with a Retry-After of 0 to 10 s.
                    let mut resp = response(
                        &req,
                        StatusCode::SERVER_ERROR,
                        Some(&dialog.local_tag),
                        flow.remote,
                    );
                    let after = self.rng.random_range(0..=10u8);
                    resp.headers.push(("Retry-After".into(), after.to_string()));
                    return self.answer(now, flow, &req, &method, resp);
                }
                let key = TxKey::of(&req, &method);
                let trying = response(&req, StatusCode::TRYING, None, flow.remote).to_bytes();
                let mut tx = ServerTx::new(now, true, flow.transport.is_reliable(), self.timers);
                tx.send_response(now, 100, trying.clone());
                self.transmit(flow, trying);
                self.insert_server(key.clone(), tx, flow, Some(req.clone()), Some(call));
                self.offered.insert(call, key.clone());
                self.out.push_back(Output::Call(
                    call,
                    CallEvent::Reinvite {
                        tx: key,
                        content_type: req.content_type().unwrap_or_default().to_owned(),
                        vias: req.headers_named("Via").map(str::to_owned).collect(),
                        source: flow.remote,
                        body: req.body,
                    },
                ));
            }
            _ => {
                // A re-INVITE without an offer (a session refresh): our
                // current session is the offer in the 200, answered in the ACK.
                let tag = dialog.local_tag.clone();
                let sdp = dialog.local_sdp.clone();
                let mut resp = response(&req, StatusCode::OK, Some(&tag), flow.remote);
                resp.headers.push(self.contact(flow));
                if let Some(sdp) = sdp {
                    resp.headers
                        .push(("Content-Type".into(), "application/sdp".into()));
                    resp.body = sdp;
                }
                let bytes = resp.to_bytes();
                let mut tx = ServerTx::new(now, true, flow.transport.is_reliable(), self.timers);
                tx.send_response(now, 200, bytes.clone());
                self.reinvites.insert(call, TxKey::of(&req, &method));
                self.insert_server(TxKey::of(&req, &method), tx, flow, None, None);
                self.transmit(flow, bytes);
            }
        }
    }

    fn invite_key(&self, call: CallRef) -> Option<TxKey> {
        let d = self.dialogs.get(&call)?;
        Some(TxKey::of(&d.invite, &Method::Invite))
    }

    fn finish_pending_invite(&mut self, now: Instant, call: CallRef, status: StatusCode) {
        let Some(key) = self.invite_key(call) else {
            return;
        };
        let pending = self
            .server
            .get(&key)
            .is_some_and(|e| e.tx.state() == ServerState::Proceeding);
        if pending {
            self.answer_invite(now, call, status, Vec::new(), None);
        }
    }

    fn on_cancel(&mut self, now: Instant, flow: Flow, req: &Message) {
        let invite_key = TxKey::of(req, &Method::Invite);
        let Some(entry) = self.server.get(&invite_key) else {
            return self.simple(flow, req, StatusCode::CALL_DOES_NOT_EXIST);
        };
        let call = entry.call;
        let pending = entry.tx.state() == ServerState::Proceeding;
        let tag = call
            .and_then(|c| self.dialogs.get(&c))
            .map(|d| d.local_tag.clone());
        let ok = response(req, StatusCode::OK, tag.as_deref(), flow.remote);
        self.answer(now, flow, req, &Method::Cancel, ok);
        if let (Some(call), true) = (call, pending) {
            self.answer_invite(now, call, StatusCode::REQUEST_TERMINATED, Vec::new(), None);
            self.out.push_back(Output::Call(call, CallEvent::Cancelled));
        }
    }

    fn on_ack(&mut self, now: Instant, req: &Message) {
        // ACK to a non-2xx shares the INVITE's branch (§17.2.1).
        let key = TxKey::of(req, &Method::Invite);
        if let Some(entry) = self.server.get_mut(&key)
            && entry.tx.state() == ServerState::Completed
        {
            entry.tx.recv_ack(now);
            release_unacked(&mut self.unacked, entry);
            return self.arm(TimerKey::Server(key));
        }
        // ACK to a 2xx is its own transaction: match the dialog (§13.3.1.4).
        let Some(call) = self.dialog_of(req) else {
            return;
        };
        if let Some(key) = self.reinvites.remove(&call) {
            if let Some(entry) = self.server.get_mut(&key) {
                entry.tx.recv_ack(now);
            }
            return self.arm(TimerKey::Server(key));
        }
        let Some(invite_key) = self.invite_key(call) else {
            return;
        };
        if let Some(entry) = self.server.get_mut(&invite_key) {
            entry.tx.recv_ack(now);
        }
        self.arm(TimerKey::Server(invite_key));
        if let Some(d) = self.dialogs.get_mut(&call)
            && !d.acked
        {
            d.acked = true;
            self.out.push_back(Output::Call(call, CallEvent::Ack));
        }
    }

    fn on_response(&mut self, now: Instant, resp: Message) {
        let Some(status) = resp.status() else { return };
        let Some(branch) = resp.branch() else { return };
        let Some(entry) = self.client.get_mut(branch) else {
            return;
        };
        let ended = entry.tx.recv_response(now, status.0) && entry.ends_dialog;
        let call = entry.call;
        self.arm(TimerKey::Client(branch.to_owned()));
        if ended {
            self.forget(call);
            self.out.push_back(Output::Call(call, CallEvent::Ended));
        }
    }

    /// Answers the call's INVITE. 1xx/2xx carry our tag and Contact; a 2xx
    /// confirms the dialog, anything ≥ 300 ends it (and `CallEvent::Ended`
    /// follows, so the shell can forget the call).
    pub fn respond_invite(
        &mut self,
        now: Instant,
        call: CallRef,
        status: StatusCode,
        extra: Vec<(String, String)>,
        sdp: Option<Vec<u8>>,
    ) {
        let known = self.dialogs.contains_key(&call);
        self.answer_invite(now, call, status, extra, sdp);
        if known && status.0 >= 300 {
            self.out.push_back(Output::Call(call, CallEvent::Ended));
        }
    }

    /// Our Contact for a dialog on `flow` (TCP callers must reach us over TCP).
    fn contact(&self, flow: Flow) -> (String, String) {
        let transport = if flow.transport.is_reliable() {
            ";transport=tcp"
        } else {
            ""
        };
        (
            "Contact".into(),
            format!("<sip:dialgate@{}{}>", self.local.host_port(), transport),
        )
    }

    fn answer_invite(
        &mut self,
        now: Instant,
        call: CallRef,
        status: StatusCode,
        extra: Vec<(String, String)>,
        sdp: Option<Vec<u8>>,
    ) {
        let Some(key) = self.invite_key(call) else {
            return;
        };
        let Some(dialog) = self.dialogs.get_mut(&call) else {
            return;
        };
        let flow = dialog.flow;
        let contact = self.contact(flow);
        let Some(dialog) = self.dialogs.get_mut(&call) else {
            return;
        };
        let mut resp = response(&dialog.invite, status, Some(&dialog.local_tag), flow.remote);
        if status.0 < 300 {
            for rr in dialog.invite.headers_named("Record-Route") {
                resp.headers.push(("Record-Route".into(), rr.to_owned()));
            }
            resp.headers.push(contact);
        }
        if status.is_success() {
            resp.headers.push(("Allow".into(), ALLOW.into()));
            dialog.state = DialogState::Confirmed;
        }
        resp.headers.extend(extra);
        if let Some(sdp) = sdp {
            resp.headers
                .push(("Content-Type".into(), "application/sdp".into()));
            dialog.local_sdp = Some(sdp.clone());
            resp.body = sdp;
        }
        let bytes = resp.to_bytes();
        if let Some(entry) = self.server.get_mut(&key) {
            entry.tx.send_response(now, status.0, bytes.clone());
            if status.0 >= 300 && !flow.transport.is_reliable() && entry.unacked_from.is_none() {
                let source = flow.remote.ip();
                let unacked = self.unacked.entry(source).or_default();
                if *unacked < MAX_UNACKED_FAILURES {
                    *unacked += 1;
                    entry.unacked_from = Some(source);
                } else {
                    entry.tx.stop_resending();
                }
            }
        }
        self.arm(TimerKey::Server(key));
        if status.0 >= 300 {
            self.forget(call);
        }
        self.transmit(flow, bytes);
    }

    /// Answers a request the gateway was handed (INFO).
    pub fn respond(&mut self, now: Instant, tx: &TxKey, status: StatusCode) {
        let Some(entry) = self.server.get_mut(tx) else {
            return;
        };
        let Some(req) = entry.request.take() else {
            return;
        };
        let tag = req.tag("To").map(str::to_owned);
        let bytes = response(&req, status, tag.as_deref(), entry.flow.remote).to_bytes();
        entry.tx.send_response(now, status.0, bytes.clone());
        let flow = entry.flow;
        self.arm(TimerKey::Server(tx.clone()));
        self.transmit(flow, bytes);
    }

    /// Answers a re-INVITE the call was handed: a 2xx carries our Contact
    /// and `sdp` (the answer, which becomes the dialog's session) and is
    /// retransmitted until its ACK; anything else leaves the session as it was.
    pub fn respond_reinvite(
        &mut self,
        now: Instant,
        tx: &TxKey,
        status: StatusCode,
        sdp: Option<Vec<u8>>,
    ) {
        let Some(flow) = self.server.get(tx).map(|e| e.flow) else {
            return;
        };
        let contact = self.contact(flow);
        let Some(entry) = self.server.get_mut(tx) else {
            return;
        };
        let Some(req) = entry.request.take() else {
            return;
        };
        let tag = req.tag("To").map(str::to_owned);
        let mut resp = response(&req, status, tag.as_deref(), entry.flow.remote);
        let success = status.is_success();
        if success {
            resp.headers.push(contact);
            if let Some(sdp) = &sdp {
                resp.headers
                    .push(("Content-Type".into(), "application/sdp".into()));
                resp.body = sdp.clone();
            }
        }
        let bytes = resp.to_bytes();
        entry.tx.send_response(now, status.0, bytes.clone());
        let (flow, call) = (entry.flow, entry.call);
        self.arm(TimerKey::Server(tx.clone()));
        if success && let Some(call) = call {
            self.reinvites.insert(call, tx.clone());
            if let Some(d) = self.dialogs.get_mut(&call)
                && sdp.is_some()
            {
                d.local_sdp = sdp;
            }
        }
        self.transmit(flow, bytes);
    }

    /// Hangs up a confirmed call with BYE (optionally with a `Reason` header).
    /// `CallEvent::Ended` follows when it is answered or times out.
    pub fn send_bye(&mut self, now: Instant, call: CallRef, reason: Option<String>) {
        let local = self.local;
        let Some(dialog) = self.dialogs.get_mut(&call) else {
            return;
        };
        if dialog.state == DialogState::Terminating {
            return;
        }
        if dialog.state == DialogState::Early {
            // Not answered yet: refuse the INVITE instead.
            self.respond_invite(
                now,
                call,
                StatusCode::TEMPORARILY_UNAVAILABLE,
                Vec::new(),
                None,
            );
            self.out.push_back(Output::Call(call, CallEvent::Ended));
            return;
        }
        dialog.state = DialogState::Terminating;
        let branch = random_token(&mut self.rng);
        let mut bye = dialog.request(Method::Bye, &local, &branch);
        if let Some(reason) = reason {
            bye.headers.push(("Reason".into(), reason));
        }
        let flow = dialog.request_flow();
        self.start_client(now, call, flow, &branch, &bye, true);
    }

    /// Sends `request` (whose top Via carries `branch`) as a non-INVITE
    /// client transaction of `call`.
    fn start_client(
        &mut self,
        now: Instant,
        call: CallRef,
        flow: Flow,
        branch: &str,
        request: &Message,
        ends_dialog: bool,
    ) {
        let bytes = request.to_bytes();
        let tx = ClientTx::new(
            now,
            bytes.clone(),
            flow.transport.is_reliable(),
            self.timers,
        );
        let entry = ClientEntry {
            tx,
            armed: None,
            flow,
            call,
            ends_dialog,
        };
        let branch = format!("z9hG4bK{branch}");
        self.client.insert(branch.clone(), entry);
        self.arm(TimerKey::Client(branch));
        self.transmit(flow, bytes);
    }

    /// Sends an INFO of an Info Package (RFC 6086 §4.2) in a confirmed
    /// dialog. Its answer changes nothing; the caller asked for it with
    /// `Recv-Info`, which the shell checks.
    pub fn send_info(&mut self, now: Instant, call: CallRef, package: &str, body: String) {
        let local = self.local;
        let Some(dialog) = self.dialogs.get_mut(&call) else {
            return;
        };
        if dialog.state != DialogState::Confirmed {
            return;
        }
        let branch = random_token(&mut self.rng);
        let mut info = dialog.request(Method::Info, &local, &branch);
        info.headers
            .push(("Info-Package".into(), package.to_owned()));
        info.headers
            .push(("Content-Type".into(), "text/plain".into()));
        info.headers
            .push(("Content-Disposition".into(), "Info-Package".into()));
        info.body = body.into_bytes();
        let flow = dialog.request_flow();
        self.start_client(now, call, flow, &branch, &info, false);
    }

    fn forget(&mut self, call: CallRef) {
        self.reinvites.remove(&call);
        self.offered.remove(&call);
        if let Some(d) = self.dialogs.remove(&call) {
            self.by_id.remove(&(d.call_id, d.local_tag));
        }
    }

    /// The earliest deadline of any transaction (stale heap entries on
    /// top are dropped on the way).
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, key))) = self.deadlines.heap.peek() {
            if self.current(*at, key) {
                return Some(*at);
            }
            self.deadlines.examined += 1;
            self.deadlines.heap.pop();
        }
        None
    }

    /// Runs every transaction timer due by `now`, each transaction at most
    /// once per call; the cost is in the timers due, not the transactions live.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(Reverse((at, _))) = self.deadlines.heap.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, key))) = self.deadlines.heap.pop() else {
                break;
            };
            self.deadlines.examined += 1;
            due.push((at, key));
        }
        let mut events = Vec::new();
        for (at, key) in due {
            // Checked here, not when popped: a transaction handled once in
            // this call has re-armed, so a duplicate entry of it is stale.
            if !self.current(at, &key) {
                continue;
            }
            match key {
                TimerKey::Server(k) => self.server_timeout(now, k, &mut events),
                TimerKey::Client(b) => self.client_timeout(now, b, &mut events),
            }
        }
        for (call, event) in events {
            if matches!(event, CallEvent::Ended) {
                if !self.dialogs.contains_key(&call) {
                    continue;
                }
                self.forget(call);
            }
            self.out.push_back(Output::Call(call, event));
        }
    }

    fn server_timeout(&mut self, now: Instant, key: TxKey, events: &mut Vec<(CallRef, CallEvent)>) {
        let Some(entry) = self.server.get_mut(&key) else {
            return;
        };
        entry.armed = None;
        let (flow, call, invite) = (entry.flow, entry.call, entry.tx.is_invite());
        let done = match entry.tx.handle_timeout(now) {
            TimerOutput::Retransmit(bytes) => {
                self.transmit(flow, bytes);
                false
            }
            TimerOutput::AckTimeout => {
                if let Some(call) = call {
                    events.push((call, CallEvent::AckTimeout));
                }
                true
            }
            TimerOutput::Unanswered => match call {
                // An INVITE nobody answered: refuse it ourselves.
                Some(call) if invite && self.dialogs.contains_key(&call) => {
                    tracing::warn!("INVITE left unanswered: 500");
                    self.respond_invite(now, call, StatusCode::SERVER_ERROR, Vec::new(), None);
                    false
                }
                // An INFO nobody answered (or an INVITE whose dialog is
                // gone): forget it.
                _ => true,
            },
            TimerOutput::Terminated | TimerOutput::RequestTimeout => true,
            TimerOutput::Nothing => false,
        };
        if done {
            if let Some(mut entry) = self.server.remove(&key) {
                release_unacked(&mut self.unacked, &mut entry);
            }
        } else {
            self.arm(TimerKey::Server(key));
        }
    }

    fn client_timeout(
        &mut self,
        now: Instant,
        branch: String,
        events: &mut Vec<(CallRef, CallEvent)>,
    ) {
        let Some(entry) = self.client.get_mut(&branch) else {
            return;
        };
        entry.armed = None;
        let (flow, call, ends_dialog) = (entry.flow, entry.call, entry.ends_dialog);
        let done = match entry.tx.handle_timeout(now) {
            TimerOutput::Retransmit(bytes) => {
                self.transmit(flow, bytes);
                false
            }
            TimerOutput::RequestTimeout => {
                if ends_dialog {
                    events.push((call, CallEvent::Ended));
                }
                true
            }
            TimerOutput::Terminated | TimerOutput::AckTimeout | TimerOutput::Unanswered => true,
            TimerOutput::Nothing => false,
        };
        if done {
            self.client.remove(&branch);
        } else {
            self.arm(TimerKey::Client(branch));
        }
    }

    /// Timer-heap entries examined so far, stale ones included.
    #[cfg(test)]
    fn timers_examined(&self) -> u64 {
        self.deadlines.examined
    }

    /// Transactions whose deadline is not the one armed in the heap: a
    /// change that forgot to re-arm (must always be none).
    #[cfg(test)]
    fn misarmed(&self) -> usize {
        let s = self
            .server
            .values()
            .filter(|e| e.armed != e.tx.poll_timeout());
        let c = self
            .client
            .values()
            .filter(|e| e.armed != e.tx.poll_timeout());
        s.count() + c.count()
    }

    /// The earliest deadline by sweeping every transaction: what the heap
    /// must always agree with.
    #[cfg(test)]
    fn swept_timeout(&self) -> Option<Instant> {
        let s = self.server.values().filter_map(|e| e.tx.poll_timeout());
        let c = self.client.values().filter_map(|e| e.tx.poll_timeout());
        s.chain(c).min()
    }
}

#[cfg(test)]
mod tests;
