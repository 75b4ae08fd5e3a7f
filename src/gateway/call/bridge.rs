//! Rooms across nodes, in the call's shell: both ends of the leg between
//! the node that collected a caller's code and the node that owns (mixes)
//! its room.
//!
//! - **Collecting** ([`Shell::join_or_bridge`]): when the core says
//!   "join", a room this node does not own is claimed in the store's
//!   leases (one conditional statement: of two nodes whose first callers
//!   come at once, one wins and the other bridges to it); if another live
//!   node holds it, this node INVITEs that node's
//!   advertised SIP address with the caller's own session as its offer and
//!   a signed pass ([`LegPass`]) naming the room, the epoch and the role.
//!   Once answered, the caller's RTP (audio and RFC 4733 keys) goes to the
//!   owner as it came, from the leg's own port, and what the owner sends
//!   (the room's mix for this caller) goes on to the caller in the call's
//!   own stream. A leg that is refused, or an owner that falls silent for
//!   [`LEG_SILENCE`] (it died, or the network between the nodes broke),
//!   puts the caller in the room here instead: this node's lease then
//!   takes the room once the old owner's lapses.
//! - **Owning** ([`leg_grant`]): an INVITE with a pass is a member of a
//!   room this node owns, if the pass verifies and the room's lease is held
//!   here at the pass's epoch (not lapsed);
//!   otherwise it is refused before answering (403, or 503 so the other
//!   node keeps its caller itself).
//!
//! Only on a store several nodes share (PostgreSQL); on SQLite the node is
//! alone and every room is its own.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;

use super::control::{Input, LegGrant};
use super::{Shell, ToCall};
use crate::access::leg::{LEG_HEADER, LEG_PASS_LIFETIME, LegPass};
use crate::cause::Cause;
use crate::conference::lease::LEASE_TTL;
use crate::conference::{Policy, Presence, Refusal, Role};
use crate::ids::RoomId;
use crate::media::ports::{PortLease, RtpPort};
use crate::media::rtp::{self, PayloadType};
use crate::media::socket::MediaSocket;
use crate::sip::command::SipCommand;
use crate::sip::endpoint::{CallEvent, IncomingCall, OutgoingCall};
use crate::sip::message::StatusCode;
use crate::sip::sdp::{self, LocalMedia};
use crate::store::{Backend, LeaseClaim, LeaseRow, StoreError};

/// No RTP from the owner for this long: the leg is taken for dead, and
/// the owner is asked for a new one.
pub const LEG_SILENCE: Duration = Duration::from_millis(1000);

/// A leg not answered within this long is cancelled (the owner answers at
/// once when it is alive), and the caller joins on its own node.
pub const LEG_ANSWER_LIMIT: Duration = Duration::from_millis(1500);

/// A leg the owner refused with 503 (the room not held there yet: its
/// lease task is a moment behind the claim this node saw, or it lapsed)
/// is asked for again after this long, at most [`LEG_RETRIES`] times.
pub const LEG_RETRY_AFTER: Duration = Duration::from_millis(200);
pub const LEG_RETRIES: u32 = 3;

/// How often a live leg's silence is checked.
pub const LEG_CHECK: Duration = Duration::from_millis(250);

/// A lease lookup under way.
pub(super) type Lookup = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Option<LeaseRow>, StoreError>> + Send>,
>;

/// The caller's way into a room another node owns.
pub(super) struct Bridge {
    room_id: RoomId,
    host: bool,
    policy: Policy,
    /// A process whose lease is not to be trusted: a leg to it fell silent
    /// and a new one went unanswered.
    avoid: Option<String>,
    /// The process whose leg fell silent, asked once more before it is
    /// avoided (a stall is not a death).
    suspect: Option<String>,
    /// Legs refused with 503 so far.
    retries: u32,
    state: State,
}

enum State {
    /// The room's lease is being read.
    Asking,
    /// Our INVITE is out, from this port.
    Inviting {
        port: RtpPort,
        owner: String,
        instance: String,
        since: Instant,
    },
    Up(Box<Up>),
}

/// A leg the owner answered.
pub(super) struct Up {
    socket: MediaSocket,
    _lease: PortLease,
    /// Where the owner wants our RTP.
    remote: SocketAddr,
    /// The audio payload type both legs use.
    audio: PayloadType,
    owner: String,
    instance: String,
    last_heard: Instant,
}

impl Bridge {
    /// The leg's socket, once answered.
    pub(super) fn socket(&self) -> Option<&MediaSocket> {
        match &self.state {
            State::Up(up) => Some(&up.socket),
            _ => None,
        }
    }

    /// Sends one of the caller's RTP packets on to the owner, as it came.
    pub(super) fn forward(&self, packet: &[u8]) {
        if let State::Up(up) = &self.state {
            let _ = up.socket.try_send_to(packet, up.remote);
        }
    }
}

/// What an INVITE's pass grants, if it carries one: `Ok(None)` for an
/// ordinary call, `Err` for a leg to refuse before answering.
pub(super) fn leg_grant(
    shared: &super::Shared,
    incoming: &IncomingCall,
) -> Result<Option<LegGrant>, Cause> {
    let Some(value) = incoming.leg.as_deref() else {
        return Ok(None);
    };
    let pass = LegPass::verify(&shared.secret, &incoming.call_id, value, chrono::Utc::now())
        .map_err(|e| {
            // Counted as refused (`leg_refused`); at debug level, so a flood
            // of forged legs does not flood the log.
            tracing::debug!(source = %incoming.source, %e, "leg from another node refused");
            Cause::LegRefused
        })?;
    if !shared.leg_passes.first_use(&incoming.call_id) {
        tracing::warn!(source = %incoming.source, "leg pass used again: refused");
        return Err(Cause::LegRefused);
    }
    // Held here at the epoch the other node saw, and not lapsed: a node
    // that cannot renew takes no new legs.
    let held = shared.rooms.leased_here(pass.room);
    if held != Some(pass.epoch) {
        tracing::info!(
            room_id = pass.room.0,
            epoch = pass.epoch,
            held_here = ?held,
            "leg for a room this node does not hold: 503"
        );
        return Err(Cause::NotOwner);
    }
    tracing::info!(
        room_id = pass.room.0,
        epoch = pass.epoch,
        host = pass.host,
        "leg from another node"
    );
    Ok(Some(LegGrant {
        room_id: pass.room,
        host: pass.host,
    }))
}

/// A From user part made of what SIP takes unescaped.
fn uri_user(caller_id: &str) -> String {
    let clean = caller_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "+-_.!~*'()&=$,;?/".contains(c));
    if clean && !caller_id.is_empty() {
        caller_id.to_owned()
    } else {
        "anonymous".to_owned()
    }
}

impl Shell {
    /// The core's "join": here, or over a leg to the node that owns the
    /// room. The answer reaches the core as `Input::Joined` either way.
    pub(super) fn join_or_bridge(&mut self, room_id: RoomId, host: bool, policy: Policy) {
        let alone = self.shared.store.backend() == Backend::Sqlite;
        let ours = self
            .shared
            .rooms
            .owner(room_id)
            .is_some_and(|owner| *owner == *self.shared.node.id());
        if alone || ours || self.leg.is_some() {
            let joined = self.join(room_id, host, policy);
            return self.inputs.push(Input::Joined(joined));
        }
        self.bridge = Some(Box::new(Bridge {
            room_id,
            host,
            policy,
            avoid: None,
            suspect: None,
            retries: 0,
            state: State::Asking,
        }));
        self.ask_owner(room_id, Duration::ZERO);
    }

    /// Claims the room's lease for this node, which learns who holds it:
    /// this node (the lease task, told when the room opens here, then
    /// finds its own claim and keeps it), or another.
    fn ask_owner(&mut self, room_id: RoomId, after: Duration) {
        let store = self.shared.store.clone();
        let node = self.shared.node.clone();
        self.lookup = Some(Box::pin(async move {
            if !after.is_zero() {
                tokio::time::sleep(after).await;
            }
            let claim = LeaseClaim {
                node_id: node.id(),
                instance: node.instance(),
                sip_address: node.sip_address(),
            };
            store
                .claim_room(room_id.0, claim, chrono::Utc::now(), LEASE_TTL)
                .await
                .map(Some)
        }));
    }

    /// The room's lease as it stands: INVITE its holder, or join here.
    pub(super) fn on_lease(&mut self, read: Result<Option<LeaseRow>, StoreError>) {
        let Some(bridge) = self.bridge.as_ref() else {
            return;
        };
        let row = match read {
            Ok(row) => row,
            Err(e) => {
                tracing::warn!(%e, "cannot claim the room's lease: joining here");
                None
            }
        };
        let elsewhere = row.filter(|r| {
            r.held(chrono::Utc::now())
                && r.instance != self.shared.node.instance()
                && bridge.avoid.as_deref() != Some(r.instance.as_str())
        });
        match elsewhere {
            Some(row) => self.invite_owner(row),
            None => self.join_here(),
        }
    }

    /// Gives up on a leg: the caller joins the room on this node.
    fn join_here(&mut self) {
        let Some(bridge) = self.bridge.take() else {
            return;
        };
        let joined = self.join(bridge.room_id, bridge.host, bridge.policy);
        self.inputs.push(Input::Joined(joined));
    }

    fn invite_owner(&mut self, row: LeaseRow) {
        let (Some(bridge), Some(m)) = (self.bridge.as_mut(), self.media.as_ref()) else {
            return;
        };
        let Ok(target) = row.sip_address.parse::<SocketAddr>() else {
            tracing::warn!(owner = %row.node_id, address = %row.sip_address, "owner's SIP address unusable: joining here");
            return self.join_here();
        };
        let port = match self.shared.ports.allocate() {
            Ok(port) => port,
            Err(e) => {
                tracing::warn!(%e, "no RTP port for the leg: joining here");
                return self.join_here();
            }
        };
        let id = rand::rng().random_range(1..u64::from(u32::MAX));
        let local = LocalMedia {
            addr: self.shared.rules.advertise,
            port: port.port,
            session_id: id,
            session_version: id,
            codecs: vec![m.negotiated.codec],
        };
        let offer = sdp::offer(&m.negotiated, &local);
        let call_id = format!(
            "{:016x}-leg@{}",
            rand::rng().random::<u64>(),
            self.shared.node.id()
        );
        let pass = LegPass::new(bridge.room_id, row.epoch, bridge.host, chrono::Utc::now())
            .sign(&self.shared.secret, &call_id);
        tracing::info!(
            room_id = bridge.room_id.0,
            owner = %row.node_id,
            epoch = row.epoch,
            leg_call_id = %call_id,
            "room owned by another node: bridging the caller there"
        );
        let leg = OutgoingCall {
            target,
            uri: format!("sip:room-{}@{}", bridge.room_id.0, row.sip_address),
            from_user: uri_user(&self.who.caller_id),
            call_id,
            headers: vec![(LEG_HEADER.to_owned(), pass)],
            sdp: offer.into_bytes(),
        };
        bridge.state = State::Inviting {
            port,
            owner: row.node_id,
            instance: row.instance,
            since: Instant::now(),
        };
        self.sip(SipCommand::Invite {
            call: self.call,
            leg,
        });
    }

    /// An event of the caller's own dialog, or of its leg.
    pub(super) fn route_event(&mut self, event: ToCall) -> Option<CallEvent> {
        match event {
            ToCall::Caller(event) => Some(event),
            ToCall::Leg(event) => {
                self.on_leg_event(event);
                None
            }
        }
    }

    fn on_leg_event(&mut self, event: CallEvent) {
        match event {
            CallEvent::Answered { body, .. } => self.leg_answered(&body),
            CallEvent::Refused { status } => {
                let Some(bridge) = self.bridge.as_mut() else {
                    return;
                };
                if !matches!(bridge.state, State::Inviting { .. }) {
                    return;
                }
                if status == StatusCode::SERVICE_UNAVAILABLE.0 && bridge.retries < LEG_RETRIES {
                    bridge.retries += 1;
                    bridge.state = State::Asking;
                    let room_id = bridge.room_id;
                    tracing::info!(
                        status,
                        "the room's owner is not ready for the leg: asking again"
                    );
                    return self.ask_owner(room_id, LEG_RETRY_AFTER);
                }
                tracing::warn!(status, "the room's owner refused the leg: joining here");
                self.leg_failed();
            }
            CallEvent::Bye => {
                // The owner ended the leg: its room ended, or it hung up
                // its calls (stopping). The caller hears the room closed.
                if self.bridge.take().is_some() {
                    tracing::info!("the room's owner ended the leg");
                    self.shared
                        .live
                        .bridged(self.call.0, RoomId(0), Role::Participant, None);
                    self.inputs.push(Input::Presence(Presence::Ended));
                }
            }
            CallEvent::Info { tx, .. } => self.sip(SipCommand::Respond {
                tx,
                status: StatusCode::OK,
            }),
            CallEvent::Reinvite { tx, .. } => self.sip(SipCommand::RespondReinvite {
                tx,
                status: StatusCode::NOT_ACCEPTABLE_HERE,
                sdp: None,
            }),
            CallEvent::Ack | CallEvent::Cancelled | CallEvent::AckTimeout | CallEvent::Ended => {}
        }
    }

    fn leg_answered(&mut self, body: &[u8]) {
        let Some(bridge) = self.bridge.as_mut() else {
            return;
        };
        let Some(codec) = self.media.as_ref().map(|m| m.negotiated.codec) else {
            return;
        };
        let state = std::mem::replace(&mut bridge.state, State::Asking);
        let State::Inviting {
            port,
            owner,
            instance,
            ..
        } = state
        else {
            bridge.state = state;
            return;
        };
        let answered = std::str::from_utf8(body)
            .ok()
            .and_then(|text| sdp::read_answer(text, &[codec]).ok())
            .and_then(|neg| Some((neg.remote_rtp?, neg.payload_type)));
        let socket = MediaSocket::from_std(port.socket);
        let (Some((remote, audio)), Ok(socket)) = (answered, socket) else {
            tracing::warn!("the owner's answer is unusable: leg dropped, joining here");
            self.sip(SipCommand::LegBye {
                call: self.call,
                reason: None,
            });
            return self.join_here();
        };
        let role = if bridge.host {
            Role::Host
        } else {
            Role::Participant
        };
        self.shared
            .live
            .bridged(self.call.0, bridge.room_id, role, Some(owner.clone()));
        tracing::info!(room_id = bridge.room_id.0, %owner, "bridged to the room's owner");
        bridge.state = State::Up(Box::new(Up {
            socket,
            _lease: port.lease,
            remote,
            audio,
            owner,
            instance,
            last_heard: Instant::now(),
        }));
        self.inputs.push(Input::Joined(Ok(())));
    }

    /// A datagram on the leg's port: the owner's mix for this caller goes
    /// on to the caller in the call's own stream.
    pub(super) fn on_leg_rtp(&mut self, source: SocketAddr, packet: &[u8]) {
        let (Some(bridge), Some(m)) = (self.bridge.as_mut(), self.media.as_ref()) else {
            return;
        };
        let State::Up(up) = &mut bridge.state else {
            return;
        };
        if source.ip() != up.remote.ip() {
            return;
        }
        let Some((header, payload)) = rtp::read(packet) else {
            return;
        };
        up.last_heard = Instant::now();
        if header.payload_type == up.audio {
            m.leg.send_payload(payload);
        }
    }

    /// Whether a leg is up (the owner's media then goes to the caller).
    pub(super) fn leg_up(&self) -> bool {
        self.bridge.as_ref().is_some_and(|b| b.socket().is_some())
    }

    /// Whether a leg is placed or up: its answer or its silence is watched.
    pub(super) fn leg_watched(&self) -> bool {
        self.bridge
            .as_ref()
            .is_some_and(|b| matches!(b.state, State::Inviting { .. } | State::Up(_)))
    }

    /// Watches the leg: one not answered in [`LEG_ANSWER_LIMIT`] is
    /// cancelled and the caller joins here; an owner silent for
    /// [`LEG_SILENCE`] gets the leg dropped and is asked for a new one
    /// (a second silence in a row, or no answer then, and it is avoided).
    pub(super) fn check_leg(&mut self, now: Instant) {
        let Some(bridge) = self.bridge.as_mut() else {
            return;
        };
        match &bridge.state {
            State::Inviting {
                since,
                owner,
                instance,
                ..
            } if now.duration_since(*since) >= LEG_ANSWER_LIMIT => {
                tracing::warn!(%owner, limit = ?LEG_ANSWER_LIMIT, "the room's owner did not answer the leg: joining here");
                bridge.avoid = Some(instance.clone());
                self.sip(SipCommand::LegBye {
                    call: self.call,
                    reason: None,
                });
                self.join_here();
            }
            State::Up(up) if now.duration_since(up.last_heard) >= LEG_SILENCE => {
                tracing::warn!(owner = %up.owner, silent = ?LEG_SILENCE, "the room's owner fell silent: leg dropped, asking again");
                metrics::counter!("dialgate_legs_lost_total").increment(1);
                if bridge.suspect.as_deref() == Some(up.instance.as_str()) {
                    bridge.avoid = Some(up.instance.clone());
                }
                bridge.suspect = Some(up.instance.clone());
                bridge.state = State::Asking;
                let room_id = bridge.room_id;
                self.sip(SipCommand::LegBye {
                    call: self.call,
                    reason: None,
                });
                self.ask_owner(room_id, Duration::ZERO);
            }
            _ => {}
        }
    }

    /// The leg failed for good: the caller joins the room here.
    fn leg_failed(&mut self) {
        self.join_here();
    }

    /// A re-INVITE changed the caller's codec or payload type: the leg,
    /// which relays the caller's packets as they are, is placed again on
    /// the new session.
    pub(super) fn caller_renegotiated(&mut self) {
        let Some(bridge) = self.bridge.as_mut() else {
            return;
        };
        if matches!(bridge.state, State::Asking) {
            return;
        }
        tracing::info!("the caller's session changed: placing its leg again");
        bridge.state = State::Asking;
        let room_id = bridge.room_id;
        self.sip(SipCommand::LegBye {
            call: self.call,
            reason: None,
        });
        self.ask_owner(room_id, Duration::ZERO);
    }

    /// The call's media is over: its leg too.
    pub(super) fn end_leg(&mut self) {
        if self.bridge.take().is_some() {
            self.sip(SipCommand::LegBye {
                call: self.call,
                reason: None,
            });
        }
    }

    /// The room a join over a leg keeps (its own settings), for a leg's
    /// caller on the owner.
    pub(super) fn leg_policy(&self, room_id: RoomId) -> Result<Policy, Refusal> {
        self.shared.rooms.policy(room_id).ok_or(Refusal::Full)
    }
}

/// The Call-IDs of the legs taken within two pass lifetimes: a pass is
/// good for one leg (a captured INVITE sent again, under another From tag,
/// is refused). Retransmissions never get here: the endpoint absorbs them.
#[derive(Debug, Default)]
pub struct LegPasses {
    seen: std::sync::Mutex<std::collections::HashMap<String, Instant>>,
}

impl LegPasses {
    /// Records `call_id`; false if it was used already.
    pub fn first_use(&self, call_id: &str) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        let now = Instant::now();
        let keep = 2 * LEG_PASS_LIFETIME;
        seen.retain(|_, at| now.duration_since(*at) < keep);
        seen.insert(call_id.to_owned(), now).is_none()
    }
}
