//! Rooms across nodes, in the call's shell: the leg between the node that
//! collected a caller's code and the node that owns (mixes) its room.
//!
//! - **Collecting** ([`Shell::join_or_bridge`]): when the core says
//!   "join", a room this node does not own is claimed in the store's
//!   leases (one conditional statement: of two nodes whose first callers
//!   come at once, one wins and the other bridges); if another live node
//!   holds it, this node INVITEs that node's advertised SIP address with
//!   the caller's own session as its offer and a signed pass ([`LegPass`])
//!   naming the room, the epoch and the role. Once answered, the caller's
//!   RTP (audio and RFC 4733 keys) goes to the owner as it came, from the
//!   leg's own port, keys sent by SIP INFO follow as INFO, and what the
//!   owner sends (the room's mix for this caller) goes on to the caller in
//!   the call's own stream. When to give a leg up, ask again or join here
//!   instead is [`BridgeCore`]'s to decide (`bridge/machine.rs`). From a
//!   leg's silence until the caller is in the room again (a new leg up, or
//!   joined here) the caller hears the moving tone ([`PromptId::Moving`])
//!   on the prompt clock.
//! - **Owning** (`bridge/owner.rs`): which INVITEs with a pass are taken.
//!
//! Only on a store several nodes share (PostgreSQL); on SQLite the node is
//! alone and every room is its own.

mod machine;
mod owner;

use std::net::SocketAddr;
use std::time::Instant;

use rand::Rng;

pub use self::machine::{BridgeCore, Do, Holder, Lease};
pub use self::owner::LegPasses;
pub(super) use self::owner::leg_grant;
use super::control::Input;
use super::{Shell, ToCall};
use crate::access::leg::{LEG_HEADER, LegPass, Standing};
use crate::cause::Cause;
use crate::conference::lease::LEASE_TTL;
use crate::conference::standing::{MEMBER_PACKAGE, MemberInfo};
use crate::conference::{Policy, Presence, Role};
use crate::ids::RoomId;
use crate::ivr::PlayId;
use crate::media::ports::{PortLease, RtpPort};
use crate::media::prompts::PromptId;
use crate::media::rtp::{self, PayloadType};
use crate::media::socket::MediaSocket;
use crate::sip::command::SipCommand;
use crate::sip::endpoint::{CallEvent, OutgoingCall};
use crate::sip::message::StatusCode;
use crate::sip::sdp::{self, LocalMedia};
use crate::store::{Backend, LeaseClaim, LeaseRow, StoreError};

/// The play of the moving tone, looped: not one of the IVR's (whose ids
/// count up from 0), so stopping it never stops one of the core's.
const MOVING_PLAY: PlayId = PlayId(u32::MAX);

/// A lease claim under way.
pub(super) type Lookup =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<LeaseRow, StoreError>> + Send>>;

/// The caller's way into a room another node owns.
pub(super) struct Bridge {
    room_id: RoomId,
    host: bool,
    policy: Policy,
    core: BridgeCore,
    /// The leg placed last, until answered: its port.
    placing: Option<RtpPort>,
    /// The node the leg placed last goes to.
    owner: String,
    /// The answered leg's media.
    media: Option<LegMedia>,
    /// The caller's standing in the room as the owner last reported it
    /// (or as it was in the room here it left): what it brings to the
    /// room's next owner. `None` before the first report.
    standing: Option<Standing>,
}

/// An answered leg's media.
struct LegMedia {
    socket: MediaSocket,
    _lease: PortLease,
    /// Where the owner wants our RTP.
    remote: SocketAddr,
    /// The audio payload type both legs use.
    audio: PayloadType,
}

impl Bridge {
    /// The leg's socket, once answered.
    pub(super) fn socket(&self) -> Option<&MediaSocket> {
        self.media.as_ref().map(|m| &m.socket)
    }

    /// Sends one of the caller's RTP packets on to the owner, as it came;
    /// false while no leg is up.
    pub(super) fn forward(&self, packet: &[u8]) -> bool {
        let Some(m) = &self.media else {
            return false;
        };
        let _ = m.socket.try_send_to(packet, m.remote);
        true
    }

    /// When the bridge's core next wants its timeout handled.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }
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
    /// room. The answer reaches the core as `Input::Joined` either way. A
    /// join into the live room's own settings (`policy` `None`: a leg from
    /// another node) is always here.
    pub(super) fn join_or_bridge(
        &mut self,
        room_id: RoomId,
        host: bool,
        policy: Option<Policy>,
        back: Option<Standing>,
    ) {
        let alone = self.shared.store.backend() == Backend::Sqlite;
        let ours = self
            .shared
            .rooms
            .owner(room_id)
            .is_some_and(|owner| *owner == *self.shared.node.id());
        let Some(policy) = policy.filter(|_| !alone && !ours) else {
            let joined = self.join(room_id, host, policy, back);
            return self.inputs.push(Input::Joined(joined));
        };
        self.bridge = Some(Box::new(Bridge {
            room_id,
            host,
            policy,
            core: BridgeCore::new(Instant::now()),
            placing: None,
            owner: String::new(),
            media: None,
            standing: back,
        }));
        self.drive_bridge();
    }

    /// The room this call is in here is owned by another node now: the
    /// call leaves it and goes to the owner over a leg, hearing the moving
    /// tone meanwhile (and joins here again if the owner does not answer).
    /// A leg from another node only leaves: the node that placed it hears
    /// it fall silent and moves its caller itself — or, while this node
    /// drains (it hands the room on), the leg ends as shutting down, and
    /// that node moves its caller at once.
    pub(super) fn move_to_owner(&mut self, is_leg: bool) {
        let Some(m) = self.media.as_mut() else {
            return;
        };
        let Some((room_id, member)) = m.room.take() else {
            return;
        };
        m.presence = None;
        m.standing = None;
        let policy = self.shared.rooms.policy(room_id);
        let host = member.role == Role::Host;
        // What the caller brings to the owner's room.
        let standing = self.shared.rooms.standing(room_id, self.call);
        self.shared.rooms.leave(room_id, self.call);
        self.shared
            .live
            .bridged(self.call.0, room_id, Role::Participant, None);
        let Some(policy) = policy.filter(|_| !is_leg) else {
            tracing::info!(room_id = room_id.0, "room moving on: leg left it");
            if self.shared.node.is_draining() {
                self.inputs.push(Input::HandedOn);
            }
            return;
        };
        tracing::info!(
            room_id = room_id.0,
            "room owned by another node: moving the caller there"
        );
        self.bridge = Some(Box::new(Bridge {
            room_id,
            host,
            policy,
            core: BridgeCore::moving(Instant::now()),
            placing: None,
            owner: String::new(),
            media: None,
            standing,
        }));
        self.drive_bridge();
    }

    /// Carries out what the bridge's core decided.
    fn drive_bridge(&mut self) {
        while let Some(what) = self.bridge.as_mut().and_then(|b| b.core.poll()) {
            match what {
                Do::Claim => self.claim_lease(),
                Do::Invite(holder) => self.invite_owner(holder),
                Do::Bye => {
                    if let Some(b) = self.bridge.as_mut() {
                        b.placing = None;
                        b.media = None;
                    }
                    self.sip(SipCommand::LegBye {
                        call: self.call,
                        reason: None,
                    });
                }
                Do::Up => self.leg_up_now(),
                Do::JoinHere => {
                    let Some(b) = self.bridge.take() else {
                        continue;
                    };
                    self.shared
                        .live
                        .bridged(self.call.0, b.room_id, Role::Participant, None);
                    let joined = self.join(b.room_id, b.host, Some(b.policy), b.standing);
                    self.inputs.push(Input::Joined(joined));
                }
            }
        }
        if self.bridge.as_ref().is_some_and(|b| b.core.is_over()) {
            self.bridge = None;
        }
        let moving = self.bridge.as_ref().is_some_and(|b| b.core.is_moving());
        if moving != self.moving {
            self.moving = moving;
            // The run loop turns the prompt clock on while moving.
            match &self.media {
                Some(m) if moving => m.playout.play_looped(MOVING_PLAY, vec![PromptId::Moving]),
                Some(m) => m.playout.stop_play(MOVING_PLAY),
                None => {}
            }
        }
    }

    /// Claims the room's lease for this node, which learns who holds it:
    /// this node (the lease task, told when the room opens here, then
    /// finds its own claim and keeps it), or another.
    fn claim_lease(&mut self) {
        let Some(room_id) = self.bridge.as_ref().map(|b| b.room_id) else {
            return;
        };
        let store = self.shared.store.clone();
        let node = self.shared.node.clone();
        self.lookup = Some(Box::pin(async move {
            let claim = LeaseClaim {
                node_id: node.id(),
                instance: node.instance(),
                sip_address: node.sip_address(),
            };
            store
                .claim_room(room_id.0, claim, chrono::Utc::now(), LEASE_TTL)
                .await
        }));
    }

    /// The room's lease as the claim left it.
    pub(super) fn on_lease(&mut self, read: Result<LeaseRow, StoreError>) {
        let lease = match read {
            Ok(row) if row.instance == self.shared.node.instance() => Lease::Ours,
            Ok(row) if row.held(chrono::Utc::now()) => Lease::Elsewhere(Holder {
                node_id: row.node_id,
                instance: row.instance,
                sip_address: row.sip_address,
                epoch: row.epoch,
            }),
            // Expired, yet not ours: the claim lost to nobody (cannot be).
            Ok(_) => Lease::Unknown,
            Err(e) => {
                tracing::warn!(%e, "cannot claim the room's lease: joining here");
                Lease::Unknown
            }
        };
        if let Some(b) = self.bridge.as_mut() {
            b.core.on_lease(Instant::now(), lease);
        }
        self.drive_bridge();
    }

    fn invite_owner(&mut self, holder: Holder) {
        let placed = self.place_leg(holder);
        if placed.is_none()
            && let Some(b) = self.bridge.as_mut()
        {
            b.core.on_invite_failed();
        }
    }

    /// Sends the INVITE of a leg to `holder`; `None` if it cannot be placed.
    fn place_leg(&mut self, holder: Holder) -> Option<()> {
        let codec = self.media.as_ref()?.negotiated.codec;
        let target = holder
            .sip_address
            .parse::<SocketAddr>()
            .inspect_err(|_| tracing::warn!(owner = %holder.node_id, address = %holder.sip_address, "owner's SIP address unusable: joining here"))
            .ok()?;
        let port = self
            .shared
            .ports
            .allocate()
            .inspect_err(|e| tracing::warn!(%e, "no RTP port for the leg: joining here"))
            .ok()?;
        let id = rand::rng().random_range(1..u64::from(u32::MAX));
        let local = LocalMedia {
            addr: self.shared.rules.advertise,
            port: port.port,
            session_id: id,
            session_version: id,
            codecs: vec![codec],
        };
        let offer = sdp::offer(&self.media.as_ref()?.negotiated, &local);
        let call_id = format!(
            "{:016x}-leg@{}",
            rand::rng().random::<u64>(),
            self.shared.node.id()
        );
        let b = self.bridge.as_mut()?;
        let pass = LegPass::new(
            b.room_id,
            holder.epoch,
            b.host,
            b.standing,
            chrono::Utc::now(),
        )
        .sign(&self.shared.secret, &call_id);
        tracing::info!(
            room_id = b.room_id.0,
            owner = %holder.node_id,
            epoch = holder.epoch,
            leg_call_id = %call_id,
            "room owned by another node: bridging the caller there"
        );
        let leg = OutgoingCall {
            target,
            uri: format!("sip:room-{}@{}", b.room_id.0, holder.sip_address),
            from_user: uri_user(&self.who.caller_id),
            call_id,
            headers: vec![
                (LEG_HEADER.to_owned(), pass),
                // The owner reports the caller's standing in INFO.
                ("Recv-Info".to_owned(), MEMBER_PACKAGE.to_owned()),
            ],
            sdp: offer.into_bytes(),
        };
        b.placing = Some(port);
        b.owner = holder.node_id;
        self.sip(SipCommand::Invite {
            call: self.call,
            leg,
        });
        Some(())
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
        let now = Instant::now();
        match event {
            CallEvent::Answered { body, .. } => self.leg_answered(now, &body),
            CallEvent::Refused { status } => {
                if let Some(b) = self.bridge.as_mut() {
                    b.placing = None;
                    b.core.on_refused(now, status);
                }
                self.drive_bridge();
            }
            CallEvent::Bye { reason }
                if reason.as_deref().and_then(Cause::from_reason) == Some(Cause::ShuttingDown) =>
            {
                // The owner is stopping (its drain ran out): the room goes
                // on without it, here or on another node.
                tracing::info!("the room's owner is stopping: moving the caller");
                if let Some(b) = self.bridge.as_mut() {
                    b.media = None;
                    b.core.on_owner_stopping(now);
                }
                self.drive_bridge();
            }
            CallEvent::Bye { .. } => {
                // The owner ended the leg: its room ended. The caller hears
                // the room closed.
                if self.bridge.as_mut().is_some_and(|b| b.core.on_owner_bye()) {
                    tracing::info!("the room's owner ended the leg");
                    self.bridge = None;
                    self.shared
                        .live
                        .bridged(self.call.0, RoomId(0), Role::Participant, None);
                    self.inputs.push(Input::Presence(Presence::Ended));
                }
            }
            CallEvent::Info {
                tx, package, body, ..
            } => {
                let status = match package.as_deref() {
                    Some(MEMBER_PACKAGE) => self.on_member_report(&body),
                    Some(_) => StatusCode::BAD_INFO_PACKAGE,
                    None => StatusCode::OK,
                };
                self.sip(SipCommand::Respond { tx, status });
            }
            CallEvent::Reinvite { tx, .. } => self.sip(SipCommand::RespondReinvite {
                tx,
                status: StatusCode::NOT_ACCEPTABLE_HERE,
                sdp: None,
            }),
            CallEvent::Ack | CallEvent::Cancelled | CallEvent::AckTimeout | CallEvent::Ended => {}
        }
    }

    /// The owner reported the caller's standing: kept for the next move,
    /// and shown in the live view.
    fn on_member_report(&mut self, body: &[u8]) -> StatusCode {
        let Some(
            report @ MemberInfo::Report {
                presence,
                muted,
                locked,
            },
        ) = MemberInfo::parse(body)
        else {
            return StatusCode::BAD_REQUEST;
        };
        tracing::debug!(
            muted,
            waiting = presence.is_waiting(),
            locked,
            "the room's owner reported the caller's standing"
        );
        if let Some(b) = self.bridge.as_mut() {
            b.standing = report.standing();
            self.shared
                .live
                .reported(self.call.0, muted, presence.is_waiting());
        }
        StatusCode::OK
    }

    fn leg_answered(&mut self, now: Instant, body: &[u8]) {
        let codec = self.media.as_ref().map(|m| m.negotiated.codec);
        let Some(b) = self.bridge.as_mut() else {
            return;
        };
        let Some(port) = b.placing.take() else {
            return;
        };
        let answered = std::str::from_utf8(body)
            .ok()
            .zip(codec)
            .and_then(|(text, codec)| sdp::read_answer(text, &[codec]).ok())
            .and_then(|neg| Some((neg.remote_rtp?, neg.payload_type)));
        let socket = MediaSocket::from_std(port.socket);
        match (answered, socket) {
            (Some((remote, audio)), Ok(socket)) => {
                b.media = Some(LegMedia {
                    socket,
                    _lease: port.lease,
                    remote,
                    audio,
                });
                b.core.on_answered(now);
            }
            _ => b.core.on_answer_unusable(),
        }
        self.drive_bridge();
    }

    /// The leg is answered: the live view and the core hear of it.
    fn leg_up_now(&mut self) {
        let Some(b) = self.bridge.as_mut() else {
            return;
        };
        let owner = b.owner.clone();
        let role = if b.host {
            Role::Host
        } else {
            Role::Participant
        };
        self.shared
            .live
            .bridged(self.call.0, b.room_id, role, Some(owner.clone()));
        tracing::info!(room_id = b.room_id.0, %owner, "bridged to the room's owner");
        self.inputs.push(Input::Joined(Ok(())));
    }

    /// A datagram on the leg's port: the owner's mix for this caller goes
    /// on to the caller in the call's own stream.
    pub(super) fn on_leg_rtp(&mut self, source: SocketAddr, packet: &[u8]) {
        let (Some(b), Some(m)) = (self.bridge.as_mut(), self.media.as_ref()) else {
            return;
        };
        let Some(leg) = &b.media else {
            return;
        };
        if source.ip() != leg.remote.ip() {
            return;
        }
        let Some((header, payload)) = rtp::read(packet) else {
            return;
        };
        b.core.on_media(Instant::now());
        if header.payload_type == leg.audio {
            m.leg.send_payload(payload);
        }
    }

    /// Whether a leg is up (the owner's media then goes to the caller).
    pub(super) fn leg_up(&self) -> bool {
        self.bridge.as_ref().is_some_and(|b| b.core.is_up())
    }

    /// The bridge's deadline came.
    pub(super) fn bridge_timeout(&mut self, now: Instant) {
        if let Some(b) = self.bridge.as_mut() {
            b.core.handle_timeout(now);
        }
        self.drive_bridge();
    }

    /// A re-INVITE changed the caller's codec or payload types: the leg,
    /// which relays the caller's packets as they are, is placed again.
    pub(super) fn caller_renegotiated(&mut self) {
        if let Some(b) = self.bridge.as_mut() {
            b.core.renegotiated(Instant::now());
        }
        self.drive_bridge();
    }

    /// The call's media is over: its leg too, and a claim under way is
    /// dropped (the room must not be held for a caller who left).
    pub(super) fn end_leg(&mut self) {
        self.lookup = None;
        if let Some(b) = self.bridge.as_mut() {
            b.core.close();
        }
        self.drive_bridge();
    }
}
