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
//! hangs up through [`Endpoint::send_bye`]. It also places calls of its
//! own ([`Endpoint::invite`]: the leg that bridges a caller to the node
//! owning its room), acknowledging their 2xx and failures.
//!
//! Here: the types, the endpoint's state and its transaction table. What
//! arrives is in `incoming.rs`, what the gateway asks for in
//! `outgoing.rs`, the transactions' timers in `timers.rs`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::dialog::{Dialog, DialogState, Flow, LocalAddr, random_token, response};
use super::message::{self, ALLOW, Message, Method, StatusCode};
use super::transaction::{
    ClientTx, InviteClientState, InviteClientTx, InviteResponse, ServerState, ServerTx,
    TimerConfig, TimerOutput,
};

mod incoming;
mod outgoing;
#[cfg(test)]
mod tests;
mod timers;

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
    /// The pass of a leg from another node (`X-Dialgate-Leg`), unchecked.
    pub leg: Option<String>,
}

/// A call the gateway places: the leg to a room's owner node.
#[derive(Clone, Debug)]
pub struct OutgoingCall {
    /// Where the INVITE goes (UDP).
    pub target: SocketAddr,
    /// Its Request-URI and To.
    pub uri: String,
    /// The user part of our From (the caller's identity, for the far end's view).
    pub from_user: String,
    /// Chosen by the gateway, which signs headers bound to it.
    pub call_id: String,
    pub headers: Vec<(String, String)>,
    /// The SDP offer.
    pub sdp: Vec<u8>,
}

#[derive(Clone, Debug)]
pub enum CallEvent {
    /// The caller acknowledged our 2xx.
    Ack,
    /// CANCEL before answer; 487 was sent.
    Cancelled,
    /// The caller hung up; 200 was sent. `reason`: the BYE's `Reason`
    /// header (RFC 3326), if it had one.
    Bye { reason: Option<String> },
    /// SIP INFO in the dialog; answer it with [`Endpoint::respond`].
    Info {
        tx: TxKey,
        /// Its `Info-Package` (RFC 6086), lower-cased; `None` for a legacy
        /// INFO (keys in `application/dtmf-relay`).
        package: Option<String>,
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
    /// Our INVITE was answered 2xx (and acknowledged), with the far end's SDP.
    Answered { content_type: String, body: Vec<u8> },
    /// Our INVITE failed with this status (408: no answer at all); the
    /// dialog is gone.
    Refused { status: u16 },
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

/// A client transaction: a BYE or INFO, or an INVITE of ours.
enum ClientKind {
    NonInvite(ClientTx),
    Invite(InviteClientTx),
}

impl ClientKind {
    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            ClientKind::NonInvite(tx) => tx.poll_timeout(),
            ClientKind::Invite(tx) => tx.poll_timeout(),
        }
    }

    fn handle_timeout(&mut self, now: Instant) -> TimerOutput {
        match self {
            ClientKind::NonInvite(tx) => tx.handle_timeout(now),
            ClientKind::Invite(tx) => tx.handle_timeout(now),
        }
    }
}

struct ClientEntry {
    tx: ClientKind,
    /// An INVITE's ACK for its 2xx, sent again for each retransmitted 2xx.
    ack: Option<Bytes>,
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
}
