//! One call, from INVITE to hang-up: the async shell around the sans-IO
//! [`CallCore`]. The core decides (route, count, answer, IVR, checks,
//! room, hang-up); this shell asks the store what the core asks and feeds
//! the answers back, owns the RTP and RTCP sockets, plays prompts on a
//! 20 ms clock, merges keys from RFC 4733, SIP INFO and in-band tones, and
//! joins the room. One select loop; no business rule here.

mod control;

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::Instant;

use self::control::{Action, Answer, Ask, CallCore, Input, Offer, Session, media_flow};
use super::Shared;
use super::admission::{Admission, CallSlot};
use super::keys::CallKeys;
use super::prompt_clock::Playout;
use crate::access::OUTCOME_PACKAGE;
use crate::access::lockout::{Verdict, countable_caller_id};
use crate::access::resolve::{Caller, invitee_still_valid, resolve};
use crate::access::{E164, Outcome, Stage};
use crate::cause::Cause;
use crate::conference::keypad::Command;
use crate::conference::{Member, Policy, Presence, Role};
use crate::live::{CallState, LiveCall};
use crate::media::leg::Leg;
use crate::media::ports::RtpPort;
use crate::media::prompts::PromptId;
use crate::media::rtp::{self, Latch, Outbound};
use crate::media::socket::MediaSocket;
use crate::sip::command::SipCommand;
use crate::sip::endpoint::{CallEvent, CallRef, IncomingCall};
use crate::sip::identity::identify;
use crate::sip::sdp::Negotiated;
use crate::store::{Attempt, Checked, FailureKeys, Guess, NumberRow, timed};

pub use self::control::Rules;

type Events = mpsc::Receiver<CallEvent>;

/// The store's reply to one [`Ask`], with what the shell keeps of it.
enum Reply {
    Route(Result<Option<NumberRow>, crate::store::StoreError>),
    Guess(Result<Checked, crate::store::StoreError>),
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
    /// Handles looked up once, not per packet.
    rtp_in: metrics::Counter,
    /// Datagrams on the call's port that were not its stream (not RTP, a
    /// payload type not negotiated, not from the caller).
    rtp_dropped: metrics::Counter,
    rtp_lost: metrics::Counter,
    room: Option<(i64, Arc<Member>)>,
    presence: Option<tokio::sync::watch::Receiver<Presence>>,
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
    let mut core = CallCore::new(Instant::now().into_std(), shared.rules.clone(), offer);
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
        let prompts_on = core.plays_prompts();
        let media_on = core.in_media();
        if let Some(m) = shell.media.as_ref()
            && prompts_on != playing
        {
            m.playout.set_on(prompts_on);
            playing = prompts_on;
        }
        // The media's parts each branch waits on, borrowed apart.
        let (playout, socket, rtcp, watch) = match shell.media.as_mut() {
            Some(Media {
                playout,
                socket,
                rtcp,
                presence,
                ..
            }) => (
                Some(&**playout),
                Some(&**socket),
                rtcp.as_ref(),
                presence.as_mut(),
            ),
            None => (None, None, None, None),
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
                let ev = ev.unwrap_or(CallEvent::Ended);
                shell.note_reinvite_source(&ev);
                core.handle(Instant::now().into_std(), Input::Sip(ev));
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
                core.handle(Instant::now().into_std(), Input::Presence(presence));
            }
            _ = &mut timer, if armed.is_some() => {
                // Fired: armed again from the core's next deadline.
                armed = None;
                core.handle_timeout(Instant::now().into_std());
            }
        }
    }
    // The port pair goes back to the pool with the call.
    drop(shell);
}

/// `Policy` from a stored room row.
fn policy_of(row: &crate::store::RoomRow) -> Policy {
    Policy {
        wait_for_host: row.wait_for_host != 0,
        host_admits: row.host_admits != 0,
        end_with_host: row.end_with_host != 0,
        max_members: row.max_members.and_then(|n| usize::try_from(n).ok()),
    }
}

/// Our Opus encoder's settings for this call: the far end's bitrate cap.
fn opus_params(negotiated: &Negotiated) -> crate::media::codec::OpusParams {
    let mut params = crate::media::codec::OpusParams::default();
    if let Some(cap) = negotiated.max_average_bitrate {
        params.max_average_bitrate = params.max_average_bitrate.min(cap);
    }
    params
}

fn codec_name(codec: crate::media::Codec) -> String {
    format!("{codec:?}").to_uppercase()
}

impl Shell {
    /// Starts answering `ask` from the store (the future owns what it needs).
    fn ask(&self, ask: Ask, dialled: Option<String>) -> Pending<'static> {
        let shared = self.shared.clone();
        let number = self.number.clone();
        let caller_id = self.who.caller_id.clone();
        let source_ip = self.who.source_ip.clone();
        Box::pin(async move {
            let number_str = number
                .as_ref()
                .map(|n| n.number.clone())
                .unwrap_or_default();
            let keys = FailureKeys {
                caller_id: countable_caller_id(&caller_id).then_some(caller_id.as_str()),
                source_ip: &source_ip,
                number: &number_str,
            };
            let since = chrono::Utc::now() - shared.settings.lockout.window;
            match ask {
                Ask::Route => {
                    let Some(dialled) = dialled.as_deref().and_then(|d| E164::parse(d).ok()) else {
                        return Reply::Route(Ok(None));
                    };
                    let routed =
                        timed("number", shared.store.number_by_e164(dialled.as_str())).await;
                    if let Ok(None) = routed {
                        tracing::info!(number = %dialled, source = %source_ip, "number not provisioned");
                    }
                    Reply::Route(routed)
                }
                Ask::Count => {
                    let counted = shared.attempts.failures(keys, since);
                    Reply::Other(Answer::Count(timed("failures", counted).await))
                }
                Ask::Guess { failed } => {
                    let policy = shared.settings.lockout.clone();
                    let allow = move |f| policy.verdict(f) != Verdict::Locked;
                    let counted = shared.attempts.guess(keys, since, failed, allow);
                    Reply::Guess(timed("failures", counted).await)
                }
                Ask::Resolve(code) => {
                    let tenant = number.as_ref().map_or(0, |n| n.tenant_id);
                    let caller = Caller {
                        caller_id: &caller_id,
                    };
                    let decided = resolve(
                        &shared.store,
                        &shared.secret,
                        tenant,
                        code.as_str(),
                        caller,
                        chrono::Utc::now(),
                    );
                    Reply::Other(Answer::Resolve(timed("resolve", decided).await))
                }
                Ask::Invitee(id) => {
                    let valid = invitee_still_valid(&shared.store, id);
                    Reply::Other(Answer::Invitee(timed("invitee", valid).await))
                }
                Ask::Policy(room_id) => {
                    let row = timed("room", shared.store.room_by_id(room_id)).await;
                    Reply::Other(Answer::Policy(row.map(|r| r.as_ref().map(policy_of))))
                }
            }
        })
    }

    /// Keeps what the shell needs of a store reply; the core gets the rest.
    fn settle(&mut self, reply: Reply) -> Answer {
        match reply {
            Reply::Route(routed) => Answer::Route(routed.map(|row| {
                let row = row?;
                let number = row.number.clone();
                self.number = Some(row);
                Some(number)
            })),
            Reply::Guess(counted) => Answer::Guess(counted.map(|checked| {
                let failures = checked.failures();
                if let Checked::Open(_, guess) = checked {
                    self.guess = guess;
                }
                failures
            })),
            Reply::Other(answer) => answer,
        }
    }

    /// Carries out one action of the core; a store question is returned
    /// for the caller to start.
    fn act(&mut self, now: std::time::Instant, action: Action) -> Option<Ask> {
        match action {
            Action::Ask(ask) => return Some(ask),
            Action::Respond { status, sdp } => {
                self.sip(SipCommand::RespondInvite {
                    call: self.call,
                    status,
                    headers: Vec::new(),
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
            } => {
                let joined = self.join(room_id, host, policy);
                self.inputs.push(Input::Joined(joined));
            }
            Action::Room(command) => self.room_command(command),
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

    /// Binds the media of an acknowledged call; `None` if its socket fails.
    fn start_media(&mut self, negotiated: Negotiated) -> Option<()> {
        let RtpPort {
            socket,
            rtcp,
            lease,
            ..
        } = self.port.take()?;
        self.lease = Some(lease);
        // Without an RTCP socket the call goes on; the far end's reports are lost.
        let rtcp = MediaSocket::from_std(rtcp)
            .inspect_err(|e| tracing::warn!(%e, "RTCP socket"))
            .ok();
        let socket = MediaSocket::from_std(socket)
            .inspect_err(|e| tracing::error!(%e, "RTP socket"))
            .ok()?;
        let (_, on_hold) = media_flow(&negotiated);
        let number = self
            .number
            .as_ref()
            .map(|n| n.number.clone())
            .unwrap_or_default();
        self.shared.live.add(LiveCall {
            id: self.call.0,
            number,
            caller_id: self.who.caller_id.clone(),
            state: CallState::Ivr,
            room_id: None,
            since: crate::store::format_time(chrono::Utc::now()),
            codec: codec_name(negotiated.codec),
            dtmf_sources: Default::default(),
            dtmf: Vec::new(),
            muted: false,
            role: None,
            // A first offer may already be on hold (sendonly, inactive).
            on_hold,
            far_end: None,
        });
        let socket = Arc::new(socket);
        let leg = Arc::new(Leg::new(
            socket.clone(),
            Outbound::with_params(
                negotiated.codec,
                negotiated.payload_type,
                opus_params(&negotiated),
                &mut rand::rng(),
            ),
            Latch::new(negotiated.remote_rtp, self.media_peers()),
        ));
        leg.renegotiated(
            negotiated.codec,
            negotiated.payload_type,
            opus_params(&negotiated),
            !on_hold,
            negotiated.remote_rtp,
        );
        let keys = CallKeys::new(
            self.call.0,
            self.shared.live.clone(),
            self.shared.settings.dtmf_mode,
            &negotiated,
        );
        let prompts = self
            .shared
            .prompts
            .for_language(self.number.as_ref().map_or("en", |n| n.language.as_str()))
            .clone();
        let playout = self.shared.prompt_clock.add(leg.clone(), prompts);
        self.media = Some(Media {
            socket,
            rtcp,
            leg,
            keys,
            playout,
            negotiated,
            on_hold,
            reception: crate::media::reception::Reception::new(),
            rtp_in: metrics::counter!("dialgate_rtp_packets_total", "direction" => "in"),
            rtp_dropped: metrics::counter!("dialgate_rtp_packets_dropped_total"),
            rtp_lost: metrics::counter!("dialgate_rtp_packets_lost_total"),
            room: None,
            presence: None,
        });
        Some(())
    }

    /// Keeps where a re-INVITE came from, for when it is accepted.
    fn note_reinvite_source(&mut self, event: &CallEvent) {
        if let CallEvent::Reinvite { source, vias, .. } = event {
            let who = identify(&self.shared.settings.trusted_peers, *source, vias, None, "");
            self.reinvite_from = vec![source.ip(), who.source_ip];
        }
    }

    /// Where the caller's media may come from besides its SDP address: the
    /// caller's own public address (a phone behind NAT, whether it signals
    /// directly or through a trusted proxy: then the first untrusted Via's),
    /// the INVITE's last hop and the trusted peers (an SBC relaying media).
    fn media_peers(&self) -> Vec<std::net::IpAddr> {
        let mut peers = self.shared.settings.trusted_peers.clone();
        peers.push(self.signalling.ip());
        peers.push(self.caller_ip);
        peers
    }

    /// An RTP datagram on the call's port: true if it is the caller's
    /// stream (latched source, negotiated payload types).
    fn on_rtp(&mut self, source: std::net::SocketAddr, packet: &[u8]) -> bool {
        let Some(m) = self.media.as_mut() else {
            return false;
        };
        let Some((header, payload)) = rtp::read(packet) else {
            m.rtp_dropped.increment(1);
            return false;
        };
        let now = std::time::Instant::now();
        let ours = header.payload_type == m.negotiated.payload_type
            || Some(header.payload_type) == m.negotiated.telephone_event;
        // Media that is not the caller's stream is dropped whole (RTP bleed,
        // a stranger spraying the port): it keys nothing and latches nothing.
        if !ours || !m.leg.on_media(now, source, &header) {
            m.rtp_dropped.increment(1);
            return false;
        }
        m.rtp_in.increment(1);
        let lost = m.reception.on_packet(header.ssrc, header.sequence);
        if lost > 0 {
            m.rtp_lost.increment(lost);
        }
        if header.payload_type == m.negotiated.payload_type {
            m.keys.on_audio(now, payload);
            if let Some((_, member)) = &m.room {
                member.push_audio(now, &header, payload);
            }
        } else {
            if let Some((_, member)) = &m.room {
                // Keypad packets share the stream: not audio, not loss.
                member.push_not_audio(&header);
            }
            m.keys.on_event(now, &header, payload);
        }
        true
    }

    /// Keys the merger has ready, to the core.
    fn keys_to(&mut self, core: &mut CallCore, now: std::time::Instant) {
        while let Some(key) = self.media.as_mut().and_then(|m| m.keys.poll_key()) {
            core.handle(now, Input::Key(key));
        }
    }

    /// The far end's RTCP: its reports on the stream we send it go to the
    /// metrics and the live-call view. Only from where our media goes.
    fn on_rtcp(&self, source: std::net::SocketAddr, packet: &[u8]) {
        let Some(m) = &self.media else { return };
        let (Some(ours), Some(dest)) = (m.leg.ssrc(), m.leg.destination()) else {
            return;
        };
        if source.ip() != dest.ip() {
            return;
        }
        let clock = f64::from(m.negotiated.codec.clock_rate());
        for block in crate::media::rtcp::report_blocks(packet)
            .into_iter()
            .filter(|b| b.ssrc == ours)
        {
            let jitter = f64::from(block.jitter) / clock;
            metrics::counter!("dialgate_rtcp_reports_total").increment(1);
            metrics::histogram!("dialgate_rtcp_fraction_lost").record(block.fraction_lost);
            metrics::histogram!("dialgate_rtcp_jitter_seconds").record(jitter);
            self.shared
                .live
                .far_end_report(self.call.0, block.fraction_lost, jitter);
        }
    }

    /// Bridges the caller into its room.
    fn join(
        &mut self,
        room_id: i64,
        host: bool,
        policy: Policy,
    ) -> Result<(), crate::conference::Refusal> {
        let Some(m) = self.media.as_mut() else {
            return Err(crate::conference::Refusal::Full);
        };
        let role = if host { Role::Host } else { Role::Participant };
        let member = Member::new(
            self.call,
            role,
            m.playout.prompts().clone(),
            m.leg.clone(),
            m.negotiated.codec,
        );
        member.set_held(m.on_hold);
        let now = self.shared.rooms.join(room_id, member.clone(), policy)?;
        self.shared
            .live
            .joined(self.call.0, room_id, member.clone());
        tracing::info!(room_id, ?role, presence = ?now, "joined room");
        m.presence = Some(member.watch());
        m.room = Some((room_id, member));
        Ok(())
    }

    /// A keypad command in the room (the core checked the role).
    fn room_command(&self, command: Command) {
        let Some((room_id, member)) = self.media.as_ref().and_then(|m| m.room.as_ref()) else {
            return;
        };
        let rooms = &self.shared.rooms;
        match command {
            Command::ToggleMute => {
                let muted = !member.is_muted();
                if self.shared.live.set_muted(self.call.0, muted).is_ok() {
                    tracing::info!(muted, "mute toggled from the keypad");
                    member.say(if muted {
                        PromptId::Muted
                    } else {
                        PromptId::Unmuted
                    });
                }
            }
            Command::Count => rooms.say_count(*room_id, self.call),
            Command::ToggleLock => {
                if let Some(locked) = rooms.toggle_lock(*room_id) {
                    tracing::info!(locked, "room lock toggled by the host");
                    member.say(if locked {
                        PromptId::NowLocked
                    } else {
                        PromptId::NowUnlocked
                    });
                }
            }
            Command::ToggleMuteAll => {
                if let Some(muted) = rooms.toggle_mute_all(*room_id) {
                    tracing::info!(muted, "participants muted by the host");
                    member.say(if muted {
                        PromptId::AllMuted
                    } else {
                        PromptId::AllUnmuted
                    });
                }
            }
        }
    }

    /// Applies a session a re-INVITE changed: codec both ways, where and
    /// whether to send, and whether the room hears this caller.
    fn renegotiated(&mut self, old: &Negotiated, new: &Negotiated, held: bool) {
        let Some(m) = self.media.as_mut() else { return };
        m.leg.renegotiated(
            new.codec,
            new.payload_type,
            opus_params(new),
            !held,
            new.remote_rtp,
        );
        // A phone behind NAT that moved (Wi-Fi to mobile) re-INVITEs from
        // its new address with an SDP that may still name a private one.
        m.leg
            .add_media_peers(&std::mem::take(&mut self.reinvite_from));
        if let Some((_, member)) = &m.room {
            if new.codec != old.codec {
                member.set_codec(new.codec);
            }
            member.set_held(held);
        }
        m.keys.renegotiated(new);
        m.negotiated = new.clone();
        m.on_hold = held;
        self.shared
            .live
            .media_changed(self.call.0, codec_name(new.codec), held);
    }

    /// The call's media part is over: out of the live view and the room.
    fn media_ended(&mut self, outcome: &'static str) {
        self.shared.live.remove(self.call.0);
        metrics::counter!("dialgate_calls_total", "outcome" => outcome).increment(1);
        let Some((room_id, member)) = self.media.as_mut().and_then(|m| m.room.take()) else {
            return;
        };
        if let Some(m) = self.media.as_mut() {
            m.presence = None;
        }
        self.shared.rooms.leave(room_id, self.call);
        if let Some(stats) = member.jitter_stats() {
            tracing::info!(room_id, ?stats, "left room");
            for (event, n) in [
                ("lost", stats.lost),
                ("late", stats.late),
                ("duplicate", stats.duplicates),
                ("drift_drop", stats.drift_drops),
                ("underrun", stats.underruns),
                ("fec_recovered", stats.recovered),
            ] {
                metrics::counter!("dialgate_jitter_frames_total", "event" => event).increment(n);
            }
        }
    }

    /// Logs an attempt: queued for the attempt log's writer, never awaited.
    fn record(&self, stage: Stage, outcome: Outcome, room_id: Option<i64>, guess: Option<Guess>) {
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
            room_id,
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
