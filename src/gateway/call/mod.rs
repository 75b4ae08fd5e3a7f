//! One call, from INVITE to hang-up: the async shell around the sans-IO
//! [`CallCore`]. The core decides (route, count, answer, IVR, checks,
//! room, hang-up); this shell asks the store what the core asks and feeds
//! the answers back, owns the RTP and RTCP sockets, plays prompts on a
//! 20 ms clock, merges keys from RFC 4733, SIP INFO and in-band tones, and
//! joins the room. One select loop; no business rule here.
//!
//! Here: the call's state, the select loop (`run`) and acting on the core's
//! actions. The store's answers to the core are in `ask.rs`, the media
//! (sockets, RTP and RTCP in, keys, re-INVITEs) in `media.rs`, the room
//! (joining, keypad commands) in `room.rs`.

mod ask;
mod bridge;
mod control;
mod media;
mod room;

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::Instant;

use self::bridge::{Bridge, Lookup};
use self::control::{Action, Answer, Ask, CallCore, Input, Offer, Session};
use super::admission::{Admission, CallSlot};
use super::keys::CallKeys;
use super::prompt_clock::Playout;
use super::{Shared, ToCall};
use crate::access::OUTCOME_PACKAGE;
use crate::access::{Outcome, Stage};
use crate::cause::Cause;
use crate::conference::standing::{MEMBER_PACKAGE, MemberInfo};
use crate::conference::{Member, Presence};
use crate::ids::RoomId;
use crate::media::leg::Leg;
use crate::media::ports::RtpPort;
use crate::media::socket::MediaSocket;
use crate::sip::command::SipCommand;
use crate::sip::endpoint::{CallEvent, CallRef, IncomingCall};
use crate::sip::identity::identify;
use crate::sip::message::StatusCode;
use crate::sip::sdp::Negotiated;
use crate::store::{Attempt, Checked, Guess, NumberRow};

pub use self::bridge::LegPasses;
pub use self::control::Rules;

type Events = mpsc::Receiver<ToCall>;

/// The store's reply to one [`Ask`], with what the shell keeps of it.
enum Reply {
    Route(Result<Option<(NumberRow, crate::store::Failures)>, crate::store::StoreError>),
    Guess(Result<(Checked, Option<crate::store::RoomSettings>), crate::store::StoreError>),
    Other(Answer),
}

/// A store question under way.
type Pending<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send + 'a>>;

/// Who is calling, from where, to which number: what the store is asked with.
struct Who {
    caller_id: String,
    source: String,
    source_ip: String,
}

/// A call's media once acknowledged: sockets, the leg, keys and prompts.
struct Media {
    socket: Arc<MediaSocket>,
    rtcp: Option<MediaSocket>,
    leg: Arc<Leg>,
    keys: CallKeys,
    /// The call's prompts (its number's language's, English where it has
    /// none), played on the shared prompt clock.
    playout: Arc<Playout>,
    negotiated: Negotiated,
    on_hold: bool,
    reception: crate::media::reception::Reception,
    /// Handles looked up once, not per packet; the caller's packets are
    /// added to the shared counter in batches.
    rtp_in: crate::media::tally::Tally,
    /// Datagrams on the call's port that were not its stream (not RTP, a
    /// payload type not negotiated, not from the caller).
    rtp_dropped: metrics::Counter,
    rtp_lost: metrics::Counter,
    room: Option<(RoomId, Arc<Member>)>,
    presence: Option<tokio::sync::watch::Receiver<Presence>>,
    /// A leg's member's mute and room lock, to report to the node that
    /// placed the leg (none for other calls).
    standing: Option<tokio::sync::watch::Receiver<u32>>,
}

struct Shell {
    shared: Arc<Shared>,
    call: CallRef,
    call_id: String,
    who: Who,
    /// Where the INVITE came from (the last hop: the caller, or a trusted
    /// proxy or SBC in front), and the caller's own address (through a
    /// trusted peer, the first untrusted Via's): media from either IP is
    /// the caller's too.
    signalling: std::net::SocketAddr,
    caller_ip: std::net::IpAddr,
    /// Where the re-INVITE under way came from (its last hop and the
    /// caller's own address): the caller's media may come from there once
    /// it is accepted. One at a time: the endpoint refuses overlapping ones.
    reinvite_from: Vec<std::net::IpAddr>,
    /// The dialled number's row, once routed.
    number: Option<NumberRow>,
    /// The caller asked for attempt outcomes in INFO ([`OUTCOME_PACKAGE`]).
    outcome_info: bool,
    /// The RTP port of our answer, from `OpenPort` to `StartMedia`.
    port: Option<RtpPort>,
    /// Holds the port pair out of the pool for the whole call.
    lease: Option<crate::media::ports::PortLease>,
    media: Option<Media>,
    /// The failed guess the last check counted, settled by the next attempt.
    guess: Option<Guess>,
    /// Inputs for the core that acting on its actions produced.
    inputs: Vec<Input>,
    /// This call's way into a room another node owns.
    bridge: Option<Box<Bridge>>,
    /// The room's lease, being read for the bridge.
    lookup: Option<Lookup>,
    /// The caller hears the moving tone (its bridge says it is moving).
    moving: bool,
    /// A leg from another node (this node owns its room) whose node takes
    /// the member package (`Recv-Info`): its member's standing is reported.
    reports: bool,
    /// A leg from another node.
    is_leg: bool,
    /// The member's standing as last reported to the node that placed
    /// this leg.
    reported: Option<MemberInfo>,
}

/// The next datagram on `socket` (RTP or RTCP); never, without one.
async fn recv_from(
    socket: Option<&MediaSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, std::net::SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// The next play that ends; never, without media.
async fn play_done(playout: Option<&Playout>) -> crate::ivr::PlayId {
    match playout {
        Some(p) => p.finished().await,
        None => std::future::pending().await,
    }
}

/// Waits for the next change of a leg's member's mute or room lock;
/// never, for other calls.
async fn standing_change(watch: Option<&mut tokio::sync::watch::Receiver<u32>>) {
    match watch {
        Some(rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Waits for the member's next presence; never, when not in a room.
async fn presence_change(watch: Option<&mut tokio::sync::watch::Receiver<Presence>>) -> Presence {
    match watch {
        Some(rx) => match rx.changed().await {
            Ok(()) => *rx.borrow_and_update(),
            // The room dropped the member: nothing more will come.
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    incoming: IncomingCall,
    mut events: Events,
    slot: CallSlot,
) {
    // The call's place in `--max-calls`, held until the call task ends.
    let _slot = slot;
    let who = identify(
        &shared.settings.trusted_peers,
        incoming.source,
        &incoming.vias,
        incoming.p_asserted_identity.as_deref(),
        &incoming.from_user,
    );
    let offer = Offer {
        content_type: incoming.content_type.clone(),
        body: incoming.body.clone(),
    };
    let leg = match bridge::leg_grant(&shared, &incoming) {
        Ok(leg) => leg,
        Err(cause) => {
            Admission::count_refused(cause);
            let _ = shared.sip.send(SipCommand::RespondInvite {
                call: incoming.call,
                status: cause.status(),
                headers: cause.refusal_headers(),
                sdp: None,
            });
            return;
        }
    };
    let is_leg = leg.is_some();
    let mut core = match leg {
        Some(grant) => CallCore::for_leg(shared.rules.clone(), offer, grant),
        None => CallCore::new(Instant::now().into_std(), shared.rules.clone(), offer),
    };
    let mut shell = Shell {
        who: Who {
            caller_id: who.caller_id,
            source: who.source,
            source_ip: who.source_ip.to_string(),
        },
        shared,
        call: incoming.call,
        call_id: incoming.call_id.clone(),
        signalling: incoming.source,
        caller_ip: who.source_ip,
        reinvite_from: Vec::new(),
        number: None,
        outcome_info: incoming.recv_info.iter().any(|p| p == OUTCOME_PACKAGE),
        port: None,
        lease: None,
        media: None,
        guess: None,
        inputs: Vec::new(),
        bridge: None,
        lookup: None,
        moving: false,
        reports: is_leg && incoming.recv_info.iter().any(|p| p == MEMBER_PACKAGE),
        is_leg,
        reported: None,
    };
    let dialled = incoming.dialled.clone();
    let mut pending: Option<Pending<'static>> = None;
    // When the store question under way was asked (admission's signal).
    let mut asked = Instant::now();
    let mut rtp_buf = vec![0u8; 2048];
    let mut rtcp_buf = vec![0u8; 1500];
    // One timer for the core's deadlines, reset only when they move.
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut armed: Option<std::time::Instant> = None;
    // One timer for the bridge's deadlines, reset only when they move.
    let leg_timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(leg_timer);
    let mut leg_armed: Option<std::time::Instant> = None;
    // Sized when a leg comes up: most calls never have one.
    let mut leg_buf = Vec::new();
    // Whether the prompt clock sends this call's frames.
    let mut playing = false;
    loop {
        // Act on what the core decided, feeding back what that produced,
        // until it has nothing more to say.
        loop {
            let now = Instant::now().into_std();
            while let Some(action) = core.poll_action() {
                if let Some(ask) = shell.act(now, action) {
                    pending = Some(shell.ask(ask, dialled.clone()));
                    asked = Instant::now();
                }
            }
            if shell.inputs.is_empty() {
                break;
            }
            for input in std::mem::take(&mut shell.inputs) {
                core.handle(now, input);
            }
        }
        if core.is_done() {
            break;
        }
        let deadline = core.poll_timeout();
        if deadline != armed {
            if let Some(at) = deadline {
                timer.as_mut().reset(Instant::from_std(at));
            }
            armed = deadline;
        }
        let prompts_on = core.plays_prompts() || shell.moving;
        let media_on = core.in_media();
        let reports = media_on && shell.reports;
        if let Some(m) = shell.media.as_ref()
            && prompts_on != playing
        {
            m.playout.set_on(prompts_on);
            playing = prompts_on;
        }
        let leg_up = shell.leg_up();
        let leg_deadline = shell.bridge.as_deref().and_then(Bridge::poll_timeout);
        if leg_deadline != leg_armed {
            if let Some(at) = leg_deadline {
                leg_timer.as_mut().reset(Instant::from_std(at));
            }
            leg_armed = leg_deadline;
        }
        if leg_up && leg_buf.is_empty() {
            leg_buf.resize(2048, 0);
        }
        let leg_socket = shell.bridge.as_deref().and_then(Bridge::socket);
        let lookup = shell.lookup.as_mut();
        // The media's parts each branch waits on, borrowed apart.
        let (playout, socket, rtcp, watch, standing) = match shell.media.as_mut() {
            Some(Media {
                playout,
                socket,
                rtcp,
                presence,
                standing,
                ..
            }) => (
                Some(&**playout),
                Some(&**socket),
                rtcp.as_ref(),
                presence.as_mut(),
                standing.as_mut(),
            ),
            None => (None, None, None, None, None),
        };
        tokio::select! {
            reply = async {
                match pending.as_mut() {
                    Some(f) => f.await,
                    None => std::future::pending().await,
                }
            } => {
                pending = None;
                shell.shared.admission.observe_store(asked.elapsed());
                let answer = shell.settle(reply);
                core.handle(Instant::now().into_std(), Input::Answer(answer));
            }
            ev = events.recv() => {
                let ev = ev.unwrap_or(ToCall::Caller(CallEvent::Ended));
                if let Some(ev) = shell.route_event(ev) {
                    shell.note_reinvite_source(&ev);
                    core.handle(Instant::now().into_std(), Input::Sip(ev));
                }
            }
            read = async {
                match lookup {
                    Some(f) => f.await,
                    None => std::future::pending().await,
                }
            } => {
                shell.lookup = None;
                shell.on_lease(read);
            }
            received = recv_from(leg_socket, &mut leg_buf) => {
                if let Ok((len, source)) = received {
                    shell.on_leg_rtp(source, &leg_buf[..len]);
                }
            }
            _ = &mut leg_timer, if leg_armed.is_some() => {
                leg_armed = None;
                shell.bridge_timeout(std::time::Instant::now());
            }
            done = play_done(playout) => {
                core.handle(Instant::now().into_std(), Input::PlayDone(done));
            }
            received = recv_from(socket, &mut rtp_buf), if media_on => {
                if let Ok((len, source)) = received
                    && shell.on_rtp(source, &rtp_buf[..len])
                {
                    let now = Instant::now().into_std();
                    core.handle(now, Input::Media);
                    shell.keys_to(&mut core, now);
                }
            }
            received = recv_from(rtcp, &mut rtcp_buf), if media_on => {
                if let Ok((len, source)) = received {
                    shell.on_rtcp(source, &rtcp_buf[..len]);
                }
            }
            presence = presence_change(watch), if media_on => {
                if presence == Presence::Moved {
                    shell.move_to_owner(core.is_leg());
                }
                core.handle(Instant::now().into_std(), Input::Presence(presence));
                shell.report_standing();
            }
            () = standing_change(standing), if reports => shell.report_standing(),
            _ = &mut timer, if armed.is_some() => {
                // Fired: armed again from the core's next deadline.
                armed = None;
                core.handle_timeout(Instant::now().into_std());
            }
        }
    }
    shell.end_leg();
    // The port pair goes back to the pool with the call.
    drop(shell);
}

impl Shell {
    /// Carries out one action of the core; a store question is returned
    /// for the caller to start.
    fn act(&mut self, now: std::time::Instant, action: Action) -> Option<Ask> {
        match action {
            Action::Ask(ask) => return Some(ask),
            Action::Respond { status, sdp } => {
                // The node that placed a leg may send us the member package.
                let headers = if self.is_leg && status == StatusCode::OK {
                    vec![("Recv-Info".to_owned(), MEMBER_PACKAGE.to_owned())]
                } else {
                    Vec::new()
                };
                self.sip(SipCommand::RespondInvite {
                    call: self.call,
                    status,
                    headers,
                    sdp,
                });
            }
            Action::Refuse(cause) => {
                Admission::count_refused(cause);
                self.sip(SipCommand::RespondInvite {
                    call: self.call,
                    status: cause.status(),
                    headers: cause.refusal_headers(),
                    sdp: None,
                });
            }
            Action::OpenPort => {
                let session = match self.shared.ports.allocate() {
                    Ok(port) => {
                        let id = rand::rng().random_range(1..u64::from(u32::MAX));
                        let session = Session {
                            port: port.port,
                            id,
                            version: id,
                        };
                        self.port = Some(port);
                        Some(session)
                    }
                    Err(e) => {
                        tracing::warn!(%e, "no RTP port");
                        None
                    }
                };
                self.inputs.push(Input::Port(session));
            }
            Action::RespondInfo { tx, status } => self.sip(SipCommand::Respond { tx, status }),
            Action::RespondReinvite { tx, status, sdp } => {
                self.sip(SipCommand::RespondReinvite { tx, status, sdp });
            }
            Action::InfoKey(key) => {
                // Bridged: the room's owner reads the in-room keypad, and
                // hears keys sent by SIP INFO only if they are passed on
                // (RFC 4733 and in-band keys reach it with the audio).
                if self.leg_up() {
                    self.sip(SipCommand::LegKey {
                        call: self.call,
                        signal: key.to_char(),
                    });
                }
                if let Some(m) = self.media.as_mut() {
                    m.keys.on_info(now, key);
                    while let Some(k) = m.keys.poll_key() {
                        self.inputs.push(Input::Key(k));
                    }
                }
            }
            Action::StartMedia(negotiated) => {
                if self.start_media(negotiated).is_none() {
                    self.inputs.push(Input::MediaFailed);
                }
            }
            Action::Play { id, prompts } => {
                if let Some(m) = self.media.as_ref() {
                    m.playout.play(id, prompts);
                }
            }
            Action::StopPlay => {
                if let Some(m) = self.media.as_ref() {
                    m.playout.stop();
                }
            }
            Action::Record {
                stage,
                outcome,
                room_id,
                latency,
            } => {
                if let Some(latency) = latency {
                    metrics::histogram!("dialgate_admission_seconds", "stage" => stage.as_str())
                        .record(latency.as_secs_f64());
                }
                let guess = self.guess.take();
                self.record(stage, outcome, room_id, guess);
            }
            Action::Join {
                room_id,
                host,
                policy,
                back,
            } => self.join_or_bridge(room_id, host, policy, back),
            Action::Room(command) => self.room_command(command),
            Action::Member(info) => self.member_request(info),
            Action::Renegotiated { old, new, held } => self.renegotiated(&old, &new, held),
            Action::MediaEnded { outcome } => self.media_ended(outcome),
            Action::Bye { cause } => self.sip(SipCommand::Bye {
                call: self.call,
                reason: cause.map(Cause::reason),
            }),
        }
        None
    }

    fn sip(&self, command: SipCommand) {
        let _ = self.shared.sip.send(command);
    }

    /// Logs an attempt: queued for the attempt log's writer, never awaited.
    fn record(
        &self,
        stage: Stage,
        outcome: Outcome,
        room_id: Option<RoomId>,
        guess: Option<Guess>,
    ) {
        let attempt = Attempt {
            at: chrono::Utc::now(),
            number: self
                .number
                .as_ref()
                .map(|n| n.number.clone())
                .unwrap_or_default(),
            caller_id: self.who.caller_id.clone(),
            source: self.who.source.clone(),
            source_ip: self.who.source_ip.clone(),
            stage: stage.as_str(),
            outcome: outcome.as_str(),
            // The store keeps plain ids.
            room_id: room_id.map(|r| r.0),
            call_id: self.call_id.clone(),
        };
        // The source closes the line: log watchers (deploy/fail2ban) key on it.
        tracing::info!(
            stage = attempt.stage,
            outcome = attempt.outcome,
            source = %attempt.source_ip,
            "access attempt"
        );
        metrics::counter!("dialgate_attempts_total", "stage" => attempt.stage, "outcome" => attempt.outcome)
            .increment(1);
        if self.outcome_info && outcome != Outcome::Abandoned {
            self.sip(SipCommand::Info {
                call: self.call,
                package: OUTCOME_PACKAGE,
                body: format!("outcome={}\r\nstage={}\r\n", attempt.outcome, attempt.stage),
            });
        }
        self.shared.attempts.record(attempt, guess);
    }
}
