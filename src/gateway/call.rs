//! One call, from INVITE to hang-up: route the dialled number, negotiate
//! SDP, answer, run the IVR machine (prompts out over RTP; digits in from
//! RFC 4733 telephone-events and SIP INFO, one stream), look codes up, join
//! the room, and end with BYE.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::admission::{Admission, CallSlot, Shed};
use super::keys::CallKeys;
use super::live::{CallState, LiveCall};
use super::player::Player;
use super::{OUTCOME_PACKAGE, Shared, SipCommand};
use crate::access::identity::identify;
use crate::access::lockout::{Verdict, countable_caller_id};
use crate::access::resolve::{Caller, Decision, invitee_still_valid, resolve};
use crate::access::{AccessCode, E164, Outcome, Stage};
use crate::conference::{Member, Policy, Presence, Refusal, Role};
use crate::dtmf::sip_info::{SipInfoError, parse_info};
use crate::ivr::{Action, Event, LookupResult, Machine};
use crate::media::leg::Leg;
use crate::media::pcm::PCM_FRAME;
use crate::media::ports::RtpPort;
use crate::media::prompts::{PromptId, PromptSet};
use crate::media::rtp::{self, Latch, Outbound};
use crate::provision::SECURITY;
use crate::sip::endpoint::{CallEvent, CallRef, IncomingCall};
use crate::sip::message::StatusCode;
use crate::sip::sdp::{self, Direction, LocalMedia, Negotiated, SdpError};
use crate::store::{Attempt, FailureKeys, Guess, NumberRow, timed};

/// Extra wait before each answer while a number is being probed.
const PROBED_NUMBER_DELAY: Duration = Duration::from_secs(2);

/// How long the gateway waits for the answer to its BYE before giving up.
const BYE_WAIT: Duration = Duration::from_secs(40);

type Events = mpsc::UnboundedReceiver<CallEvent>;

/// A code check's answer: the IVR's result, what a right code granted, and
/// the guess it settles (recorded with the attempt).
type Checked = (LookupResult, Option<Grant>, Option<Guess>);

/// A code lookup under way.
type PendingLookup<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Checked> + Send + 'a>>;

struct Call {
    shared: Arc<Shared>,
    call: CallRef,
    call_id: String,
    number: NumberRow,
    caller_id: String,
    source: String,
    source_ip: String,
    /// The caller asked for attempt outcomes in INFO ([`OUTCOME_PACKAGE`]).
    outcome_info: bool,
}

/// What a right access code granted, kept while a security code is asked for.
#[derive(Clone)]
struct Grant {
    room_id: i64,
    /// Keyed hash of the security code to ask for, if any.
    security: Option<String>,
    /// The invitee whose personal code it was.
    invitee: Option<i64>,
    /// The host code was keyed.
    host: bool,
    /// The room's settings, read with the code.
    policy: Policy,
}

/// Why the media loop ended.
enum End {
    /// The caller hung up.
    CallerLeft,
    /// The dialog ended from our side (shutdown) or was lost.
    Gone,
    /// The gateway hangs up with this outcome.
    HangUp(Outcome),
    /// No RTP from the caller for `--rtp-timeout`: the gateway hangs up.
    MediaTimeout,
    /// The room turned the caller away or ended: say why, then hang up.
    RoomClosed(Closure),
}

/// How a room closed on a caller.
#[derive(Clone, Copy, Debug)]
struct Closure {
    prompt: PromptId,
    /// The BYE's Reason header.
    reason: &'static str,
    /// For `dialgate_calls_total`.
    outcome: &'static str,
}

impl Closure {
    const FULL: Closure = Closure {
        prompt: PromptId::ConferenceFull,
        reason: "SIP;cause=486;text=\"conference full\"",
        outcome: "room_full",
    };
    const LOCKED: Closure = Closure {
        prompt: PromptId::ConferenceLocked,
        reason: "SIP;cause=403;text=\"conference locked\"",
        outcome: "room_locked",
    };
    /// Normal call clearing: the conference is over.
    const ENDED: Closure = Closure {
        prompt: PromptId::ConferenceEnded,
        reason: "Q.850;cause=16;text=\"conference ended\"",
        outcome: "room_ended",
    };

    fn refused(refusal: Refusal) -> Closure {
        match refusal {
            Refusal::Full => Closure::FULL,
            Refusal::Locked => Closure::LOCKED,
        }
    }
}

/// Stands for "no RTP timeout" where a deadline is needed anyway.
const NO_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Longest a closing prompt may play before the BYE.
const CLOSING_PROMPT_LIMIT: Duration = Duration::from_secs(10);

/// The next RTCP datagram; never, without an RTCP socket.
async fn recv_rtcp(
    socket: Option<&UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, std::net::SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Waits for the member's next presence; never, when not in a room.
async fn presence_change(watch: &mut Option<tokio::sync::watch::Receiver<Presence>>) -> Presence {
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
    let respond = |status: StatusCode, sdp: Option<Vec<u8>>| {
        let _ = shared.sip.send(SipCommand::RespondInvite {
            call: incoming.call,
            status,
            sdp,
        });
    };
    // Everything the store must say about this call is asked before the
    // answer, bounded in time: a store that cannot keep up refuses calls
    // (503) instead of leaving answered callers in silence.
    let routed = tokio::time::timeout(shared.settings.store_timeout, route(&shared, &incoming));
    let number = match routed.await {
        Ok(Ok(Some(number))) => number,
        Ok(Ok(None)) => {
            respond(StatusCode::NOT_FOUND, None);
            return;
        }
        Ok(Err(())) => {
            respond(StatusCode::SERVICE_UNAVAILABLE, None);
            return;
        }
        Err(_) => {
            Admission::count_shed(Shed::Store);
            tracing::warn!(limit = ?shared.settings.store_timeout, "number lookup too slow: 503");
            respond(StatusCode::SERVICE_UNAVAILABLE, None);
            return;
        }
    };
    let who = identify(
        &shared.settings.trusted_peers,
        incoming.source,
        &incoming.vias,
        incoming.p_asserted_identity.as_deref(),
        &incoming.from_user,
    );
    let call = Call {
        caller_id: who.caller_id,
        source: who.source,
        source_ip: who.source_ip.to_string(),
        shared: shared.clone(),
        call: incoming.call,
        call_id: incoming.call_id.clone(),
        number,
        outcome_info: incoming.recv_info.iter().any(|p| p == OUTCOME_PACKAGE),
    };
    let counted = tokio::time::timeout(shared.settings.store_timeout, call.verdict());
    let Ok(verdict) = counted.await else {
        Admission::count_shed(Shed::Store);
        tracing::warn!(limit = ?shared.settings.store_timeout, "lockout count too slow: 503");
        respond(StatusCode::SERVICE_UNAVAILABLE, None);
        return;
    };
    let port = match shared.ports.allocate() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(%e, "no RTP port");
            respond(StatusCode::SERVICE_UNAVAILABLE, None);
            return;
        }
    };
    let id = rand::rng().random_range(1..u64::from(u32::MAX));
    let session = Session {
        port: port.port,
        id,
        version: id,
    };
    let content_type = incoming.content_type.as_deref();
    let (negotiated, answer) = match negotiate(&shared, content_type, &incoming.body, session) {
        Ok(n) => n,
        Err(status) => {
            respond(status, None);
            return;
        }
    };
    tracing::info!(number = %call.number.number, codec = ?negotiated.codec, "incoming call");
    if !shared.settings.answer_delay.is_zero() {
        respond(StatusCode::RINGING, None);
        let ring = tokio::time::sleep(shared.settings.answer_delay);
        tokio::pin!(ring);
        loop {
            tokio::select! {
                _ = &mut ring => break,
                ev = events.recv() => match ev {
                    Some(CallEvent::Cancelled | CallEvent::Bye | CallEvent::Ended) | None => {
                        tracing::info!("caller gave up before answer");
                        return;
                    }
                    Some(CallEvent::Info { tx, .. }) => {
                        let _ = shared.sip.send(SipCommand::Respond { tx, status: StatusCode::OK });
                    }
                    Some(CallEvent::Reinvite { tx, .. }) => {
                        let _ = shared.sip.send(SipCommand::RespondReinvite { tx, status: StatusCode::REQUEST_PENDING, sdp: None });
                    }
                    Some(CallEvent::Ack | CallEvent::AckTimeout) => {}
                },
            }
        }
    }
    respond(StatusCode::OK, Some(answer.clone().into_bytes()));

    // Media may start at once (the caller has our SDP); the IVR waits for the ACK.
    loop {
        match events.recv().await {
            Some(CallEvent::Ack) => break,
            Some(CallEvent::AckTimeout) => {
                tracing::warn!("no ACK for our 200: hanging up");
                let _ = shared.sip.send(SipCommand::Bye {
                    call: incoming.call,
                    reason: None,
                });
                return;
            }
            Some(CallEvent::Bye | CallEvent::Cancelled | CallEvent::Ended) | None => return,
            Some(CallEvent::Info { tx, .. }) => {
                let _ = shared.sip.send(SipCommand::Respond {
                    tx,
                    status: StatusCode::OK,
                });
            }
            Some(CallEvent::Reinvite { tx, .. }) => {
                // Our 2xx is not acknowledged yet: one INVITE at a time.
                let _ = shared.sip.send(SipCommand::RespondReinvite {
                    tx,
                    status: StatusCode::REQUEST_PENDING,
                    sdp: None,
                });
            }
        }
    }
    call.run_media(port, (negotiated, session, answer), events, verdict)
        .await;
}

/// The dialled number's row if the number is provisioned; `Err` when the
/// store cannot tell.
async fn route(shared: &Shared, incoming: &IncomingCall) -> Result<Option<NumberRow>, ()> {
    let Some(dialled) = incoming
        .dialled
        .as_deref()
        .and_then(|d| E164::parse(d).ok())
    else {
        return Ok(None);
    };
    match timed("number", shared.store.number_by_e164(dialled.as_str())).await {
        Ok(Some(n)) => Ok(Some(n)),
        Ok(None) => {
            tracing::info!(number = %dialled, "number not provisioned");
            Ok(None)
        }
        Err(e) => {
            tracing::error!(%e, "number lookup failed");
            Err(())
        }
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

/// Our side of the SDP: the RTP port, and the `o=` line's id and version.
#[derive(Clone, Copy, Debug)]
struct Session {
    port: u16,
    id: u64,
    version: u64,
}

/// Answers an SDP offer (`content_type` and `body` of an INVITE).
fn negotiate(
    shared: &Shared,
    content_type: Option<&str>,
    body: &[u8],
    session: Session,
) -> Result<(Negotiated, String), StatusCode> {
    let is_sdp =
        content_type.is_some_and(|c| c.trim().to_ascii_lowercase().starts_with("application/sdp"));
    if !is_sdp || body.is_empty() {
        // INVITEs without an offer (offer in the ACK) are not supported yet.
        return Err(StatusCode::NOT_ACCEPTABLE_HERE);
    }
    let offer = String::from_utf8_lossy(body);
    let local = LocalMedia {
        addr: shared.settings.advertise,
        port: session.port,
        session_id: session.id,
        session_version: session.version,
        codecs: shared.settings.codecs.clone(),
    };
    sdp::answer(&offer, &local).map_err(|e| {
        tracing::info!(%e, "SDP offer refused");
        match e {
            SdpError::NoAudio | SdpError::NoCommonCodec => StatusCode::NOT_ACCEPTABLE_HERE,
            _ => StatusCode::BAD_REQUEST,
        }
    })
}

/// What the caller's side of the session means for our media: whether it
/// sends (so silence is a timeout) and whether it put us on hold (wants
/// none of our media, or gave no address to send it to).
fn media_flow(n: &Negotiated) -> (bool, bool) {
    let sends = matches!(n.direction, Direction::SendRecv | Direction::SendOnly);
    let receives = matches!(n.direction, Direction::SendRecv | Direction::RecvOnly);
    let addressed = n.remote_rtp.is_some_and(|a| !a.ip().is_unspecified());
    (sends, !receives || !addressed)
}

fn codec_name(codec: sdp::Codec) -> String {
    format!("{codec:?}").to_uppercase()
}

impl Call {
    async fn run_media(
        self,
        port: RtpPort,
        (mut negotiated, mut session, mut answer): (Negotiated, Session, String),
        mut events: Events,
        verdict: Verdict,
    ) {
        let RtpPort {
            socket,
            rtcp,
            lease,
            ..
        } = port;
        // Without an RTCP socket the call goes on; the far end's reports are lost.
        let rtcp = UdpSocket::from_std(rtcp)
            .inspect_err(|e| tracing::warn!(%e, "RTCP socket"))
            .ok();
        let socket = match UdpSocket::from_std(socket) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(%e, "RTP socket");
                self.hang_up(None, &mut events).await;
                return;
            }
        };
        self.shared.live.add(LiveCall {
            id: self.call.0,
            number: self.number.number.clone(),
            caller_id: self.caller_id.clone(),
            state: CallState::Ivr,
            room_id: None,
            since: crate::store::format_time(chrono::Utc::now()),
            codec: codec_name(negotiated.codec),
            dtmf_sources: Default::default(),
            dtmf: Vec::new(),
            muted: false,
            role: None,
            // A first offer may already be on hold (sendonly, inactive).
            on_hold: media_flow(&negotiated).1,
            far_end: None,
        });
        // The number's language, English where it has no prompts.
        let prompts = self.shared.prompts.for_language(&self.number.language);
        let mut ivr = match verdict {
            Verdict::Locked => {
                tracing::info!("caller locked out");
                Machine::locked(self.shared.settings.ivr.clone())
            }
            Verdict::Open | Verdict::Alarm => Machine::new(self.shared.settings.ivr.clone()),
        };
        let mut player = Player::default();
        let socket = Arc::new(socket);
        let leg = Arc::new(Leg::new(
            socket.clone(),
            Outbound::with_params(
                negotiated.codec,
                negotiated.payload_type,
                opus_params(&negotiated),
            ),
            Latch::new(negotiated.remote_rtp),
        ));
        let mut keys = CallKeys::new(
            self.call.0,
            self.shared.live.clone(),
            self.shared.settings.dtmf_mode,
            &negotiated,
        );
        // A caller that sends media must keep sending it (comfort noise,
        // keepalives); on hold (recvonly, inactive) it need not.
        let (caller_sends, mut on_hold) = media_flow(&negotiated);
        let mut rtp_timeout = self.shared.settings.rtp_timeout.filter(|_| caller_sends);
        leg.renegotiated(
            negotiated.codec,
            negotiated.payload_type,
            opus_params(&negotiated),
            !on_hold,
            negotiated.remote_rtp,
        );
        let mut last_media = Instant::now();
        let silence = tokio::time::sleep_until(last_media + rtp_timeout.unwrap_or(NO_TIMEOUT));
        tokio::pin!(silence);
        // Keys pressed once in the room: `*6` and friends.
        let mut room_keypad = crate::conference::keypad::Keypad::new();
        // Handles looked up once, not per packet.
        let rtp_in = metrics::counter!("dialgate_rtp_packets_total", "direction" => "in");
        let rtp_lost = metrics::counter!("dialgate_rtp_packets_lost_total");
        let mut reception = crate::media::reception::Reception::new();
        let mut rtp_buf = vec![0u8; 2048];
        let mut rtcp_buf = vec![0u8; 1500];
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut frame = [0i16; PCM_FRAME];
        let mut room: Option<(i64, Arc<Member>)> = None;
        let mut presence: Option<tokio::sync::watch::Receiver<Presence>> = None;
        // What the last right access code granted.
        let mut grant: Option<Grant> = None;
        // The code lookup under way, if any: the IVR's answer and the grant.
        let mut lookup: Option<PendingLookup<'_>> = None;
        // The guess the last lookup checked, settled by the IVR's attempt.
        let mut guess: Option<Guess> = None;
        // When the last key asked for a verdict: admission latency.
        let mut asked: Option<Instant> = None;

        let end = 'call: loop {
            // Keys from any source, once each: to the IVR, or in the room to
            // the keypad menu.
            while let Some(key) = keys.poll_key() {
                let now = Instant::now().into_std();
                match &room {
                    Some(r) => self.room_key(now, key, r, &mut room_keypad),
                    None => ivr.handle(now, Event::Digit(key)),
                }
            }
            while let Some(action) = ivr.poll_action() {
                match action {
                    Action::Play { id, prompts } => player.play(id, prompts),
                    Action::StopPlay => player.stop(),
                    // Lookups run beside the media: prompts, RTP and SIP go on
                    // while the store answers (or a probed number is slowed).
                    Action::VerifySecurity(code) => {
                        asked = Some(Instant::now());
                        let (this, granted) = (&self, grant.clone());
                        lookup = Some(Box::pin(async move {
                            this.verify_security(&code, granted).await
                        }));
                    }
                    Action::Lookup(code) => {
                        asked = Some(Instant::now());
                        let this = &self;
                        lookup = Some(Box::pin(async move { this.lookup(&code).await }));
                    }
                    Action::Attempt { stage, outcome } => {
                        let room_id = grant
                            .as_ref()
                            .filter(|_| outcome == Outcome::Admitted)
                            .map(|g| g.room_id);
                        if let Some(at) = asked.take() {
                            metrics::histogram!("dialgate_admission_seconds", "stage" => stage.as_str())
                                .record(at.elapsed().as_secs_f64());
                        }
                        self.record(stage, outcome, room_id, guess.take());
                    }
                    Action::Join { room_id } => {
                        let host = grant.as_ref().is_some_and(|g| g.host);
                        let role = if host { Role::Host } else { Role::Participant };
                        let member = Member::new(
                            self.call,
                            role,
                            prompts.clone(),
                            leg.clone(),
                            negotiated.codec,
                        );
                        member.set_held(on_hold);
                        let policy = grant.as_ref().map(|g| g.policy).unwrap_or_default();
                        match self.shared.rooms.join(room_id, member.clone(), policy) {
                            Ok(now) => {
                                self.shared
                                    .live
                                    .joined(self.call.0, room_id, member.clone());
                                tracing::info!(room_id, ?role, presence = ?now, "joined room");
                                presence = Some(member.watch());
                                room = Some((room_id, member));
                            }
                            Err(refusal) => {
                                tracing::info!(room_id, ?refusal, "room refused the caller");
                                break 'call End::RoomClosed(Closure::refused(refusal));
                            }
                        }
                    }
                    Action::Hangup(outcome) => break 'call End::HangUp(outcome),
                }
            }
            let deadline = ivr.poll_timeout().map(Instant::from_std);
            tokio::select! {
                _ = tick.tick(), if room.is_none() => {
                    let playing = player.next_frame(prompts, &mut frame);
                    match playing {
                        Ok(true) => {}
                        Ok(false) => frame.fill(0),
                        Err(done) => {
                            frame.fill(0);
                            ivr.handle(Instant::now().into_std(), Event::PlayDone(done));
                        }
                    }
                    leg.send_frame(&frame);
                }
                received = socket.recv_from(&mut rtp_buf) => {
                    let Ok((len, source)) = received else { continue };
                    let Some((header, payload)) = rtp::read(&rtp_buf[..len]) else { continue };
                    rtp_in.increment(1);
                    let now = Instant::now().into_std();
                    let ours = header.payload_type == negotiated.payload_type
                        || Some(header.payload_type) == negotiated.telephone_event;
                    // Media from anywhere but the latched source is dropped (RTP bleed).
                    if !ours || !leg.on_media(now, source) {
                        continue;
                    }
                    last_media = Instant::from_std(now);
                    let lost = reception.on_packet(header.ssrc, header.sequence);
                    if lost > 0 {
                        rtp_lost.increment(lost);
                    }
                    if header.payload_type == negotiated.payload_type {
                        keys.on_audio(now, payload);
                        if let Some((_, member)) = &room {
                            member.push_audio(now, &header, payload);
                        }
                    } else {
                        if let Some((_, member)) = &room {
                            // Keypad packets share the stream: not audio, not loss.
                            member.push_not_audio(&header);
                        }
                        keys.on_event(now, &header, payload);
                    }
                }
                (result, granted, guessed) = async {
                    match lookup.as_mut() {
                        Some(f) => f.await,
                        None => std::future::pending().await,
                    }
                } => {
                    lookup = None;
                    grant = granted;
                    guess = guessed;
                    ivr.handle(Instant::now().into_std(), Event::Lookup(result));
                }
                received = recv_rtcp(rtcp.as_ref(), &mut rtcp_buf) => {
                    if let Ok((len, source)) = received {
                        self.on_rtcp(&leg, negotiated.codec, source, &rtcp_buf[..len]);
                    }
                }
                ev = events.recv() => match ev {
                    Some(CallEvent::Info { tx, content_type, body }) => {
                        let status = match parse_info(&content_type, &body) {
                            Ok(key) => {
                                keys.on_info(Instant::now().into_std(), key);
                                StatusCode::OK
                            }
                            Err(SipInfoError::UnsupportedContentType) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                            Err(e) => {
                                tracing::debug!(%e, "INFO body refused");
                                StatusCode::BAD_REQUEST
                            }
                        };
                        let _ = self.shared.sip.send(SipCommand::Respond { tx, status });
                    }
                    Some(CallEvent::Reinvite { tx, content_type, body }) => {
                        // A changed session gets the next version (RFC 3264 §8);
                        // an unchanged one the answer it had.
                        let next = Session { version: session.version + 1, ..session };
                        let (status, sdp) = match negotiate(&self.shared, Some(&content_type), &body, next) {
                            Ok((new, _)) if new == negotiated => (StatusCode::OK, Some(answer.clone().into_bytes())),
                            Ok((new, reply)) => {
                                session = next;
                                answer = reply;
                                let (sends, held) = media_flow(&new);
                                self.renegotiated(&leg, room.as_ref().map(|(_, m)| m.as_ref()), &negotiated, &new, held);
                                keys.renegotiated(&new);
                                rtp_timeout = self.shared.settings.rtp_timeout.filter(|_| sends);
                                last_media = Instant::now();
                                silence.as_mut().reset(last_media + rtp_timeout.unwrap_or(NO_TIMEOUT));
                                on_hold = held;
                                negotiated = new;
                                (StatusCode::OK, Some(answer.clone().into_bytes()))
                            }
                            Err(status) => (status, None),
                        };
                        let _ = self.shared.sip.send(SipCommand::RespondReinvite { tx, status, sdp });
                    }
                    Some(CallEvent::AckTimeout | CallEvent::Ack) => {}
                    Some(CallEvent::Bye | CallEvent::Cancelled) => break 'call End::CallerLeft,
                    Some(CallEvent::Ended) | None => break 'call End::Gone,
                },
                now = presence_change(&mut presence) => {
                    tracing::info!(presence = ?now, "presence in the room");
                    if now == Presence::Ended {
                        break 'call End::RoomClosed(Closure::ENDED);
                    }
                }
                _ = &mut silence, if rtp_timeout.is_some() => {
                    // One timer, re-armed from the last packet when it fires.
                    let limit = rtp_timeout.unwrap_or(NO_TIMEOUT);
                    if last_media.elapsed() >= limit {
                        break 'call End::MediaTimeout;
                    }
                    silence.as_mut().reset(last_media + limit);
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    ivr.handle_timeout(Instant::now().into_std());
                }
            }
        };
        self.shared.live.remove(self.call.0);
        let call_outcome = match &end {
            End::HangUp(outcome) => outcome.as_str(),
            End::CallerLeft if room.is_some() => "admitted",
            End::CallerLeft => "abandoned",
            End::Gone => "ended_by_gateway",
            End::MediaTimeout => "media_timeout",
            End::RoomClosed(closure) => closure.outcome,
        };
        metrics::counter!("dialgate_calls_total", "outcome" => call_outcome).increment(1);
        if let Some((room_id, member)) = room {
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
                    metrics::counter!("dialgate_jitter_frames_total", "event" => event)
                        .increment(n);
                }
            }
        }
        match end {
            End::Gone => tracing::info!("call ended by the gateway"),
            End::CallerLeft | End::MediaTimeout => {
                ivr.handle(Instant::now().into_std(), Event::CallerGone);
                while let Some(action) = ivr.poll_action() {
                    if let Action::Attempt { stage, outcome } = action {
                        self.record(stage, outcome, None, guess.take());
                    }
                }
                if matches!(end, End::MediaTimeout) {
                    tracing::info!("no RTP from the caller: hanging up");
                    let reason = "SIP;cause=408;text=\"RTP timeout\"".to_owned();
                    self.hang_up(Some(reason), &mut events).await;
                } else {
                    tracing::info!("caller hung up");
                }
            }
            End::RoomClosed(closure) => {
                if self
                    .play_out(&leg, prompts, closure.prompt, &mut events)
                    .await
                {
                    self.hang_up(Some(closure.reason.to_owned()), &mut events)
                        .await;
                    tracing::info!(outcome = closure.outcome, "call ended by the room");
                } else {
                    tracing::info!("caller hung up during the closing prompt");
                }
            }
            End::HangUp(outcome) => {
                let reason = format!("SIP;cause=403;text=\"{}\"", outcome.as_str());
                self.hang_up(Some(reason), &mut events).await;
                tracing::info!(outcome = outcome.as_str(), "call refused");
            }
        }
        drop(lease);
    }

    /// Plays `prompt` to the end (at most [`CLOSING_PROMPT_LIMIT`]); false
    /// when the caller hung up meanwhile.
    async fn play_out(
        &self,
        leg: &Leg,
        prompts: &PromptSet,
        prompt: PromptId,
        events: &mut Events,
    ) -> bool {
        let mut player = Player::default();
        player.play(crate::ivr::PlayId(0), vec![prompt]);
        let mut frame = [0i16; PCM_FRAME];
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let limit = tokio::time::sleep(CLOSING_PROMPT_LIMIT);
        tokio::pin!(limit);
        loop {
            tokio::select! {
                _ = tick.tick() => match player.next_frame(prompts, &mut frame) {
                    Ok(true) => leg.send_frame(&frame),
                    Ok(false) | Err(_) => return true,
                },
                ev = events.recv() => match ev {
                    Some(CallEvent::Bye | CallEvent::Cancelled | CallEvent::Ended) | None => return false,
                    Some(CallEvent::Info { tx, .. }) => {
                        let _ = self.shared.sip.send(SipCommand::Respond { tx, status: StatusCode::OK });
                    }
                    Some(CallEvent::Reinvite { tx, .. }) => {
                        let _ = self.shared.sip.send(SipCommand::RespondReinvite { tx, status: StatusCode::REQUEST_PENDING, sdp: None });
                    }
                    Some(CallEvent::Ack | CallEvent::AckTimeout) => {}
                },
                _ = &mut limit => return true,
            }
        }
    }

    /// The far end's RTCP: its reports on the stream we send it go to the
    /// metrics and the live-call view. Only from where our media goes.
    fn on_rtcp(&self, leg: &Leg, codec: sdp::Codec, source: std::net::SocketAddr, packet: &[u8]) {
        let (Some(ours), Some(dest)) = (leg.ssrc(), leg.destination()) else {
            return;
        };
        if source.ip() != dest.ip() {
            return;
        }
        for block in crate::media::rtcp::report_blocks(packet)
            .into_iter()
            .filter(|b| b.ssrc == ours)
        {
            let jitter = f64::from(block.jitter) / f64::from(codec.clock_rate());
            metrics::counter!("dialgate_rtcp_reports_total").increment(1);
            metrics::histogram!("dialgate_rtcp_fraction_lost").record(block.fraction_lost);
            metrics::histogram!("dialgate_rtcp_jitter_seconds").record(jitter);
            self.shared
                .live
                .far_end_report(self.call.0, block.fraction_lost, jitter);
        }
    }

    /// Applies a session a re-INVITE changed: codec both ways, where and
    /// whether to send, and whether the room hears this caller.
    fn renegotiated(
        &self,
        leg: &Leg,
        member: Option<&Member>,
        old: &Negotiated,
        new: &Negotiated,
        held: bool,
    ) {
        leg.renegotiated(
            new.codec,
            new.payload_type,
            opus_params(new),
            !held,
            new.remote_rtp,
        );
        if let Some(m) = member {
            if new.codec != old.codec {
                m.set_codec(new.codec);
            }
            m.set_held(held);
        }
        self.shared
            .live
            .media_changed(self.call.0, codec_name(new.codec), held);
        tracing::info!(codec = ?new.codec, held, direction = ?new.direction, "session changed by re-INVITE");
    }

    /// The room's settings as stored now; the defaults if they cannot be read.
    async fn room_policy(&self, room_id: i64) -> Policy {
        match timed("room", self.shared.store.room_by_id(room_id)).await {
            Ok(Some(row)) => Policy {
                wait_for_host: row.wait_for_host != 0,
                host_admits: row.host_admits != 0,
                end_with_host: row.end_with_host != 0,
                max_members: row.max_members.and_then(|n| usize::try_from(n).ok()),
            },
            Ok(None) => Policy::default(),
            Err(e) => {
                tracing::error!(%e, room_id, "cannot read the room's settings");
                Policy::default()
            }
        }
    }

    async fn hang_up(&self, reason: Option<String>, events: &mut Events) {
        let _ = self.shared.sip.send(SipCommand::Bye {
            call: self.call,
            reason,
        });
        let wait = tokio::time::timeout(BYE_WAIT, async {
            while let Some(ev) = events.recv().await {
                match ev {
                    CallEvent::Ended | CallEvent::Bye => return,
                    CallEvent::Info { tx, .. } => {
                        let _ = self.shared.sip.send(SipCommand::Respond {
                            tx,
                            status: StatusCode::CALL_DOES_NOT_EXIST,
                        });
                    }
                    CallEvent::Reinvite { tx, .. } => {
                        let _ = self.shared.sip.send(SipCommand::RespondReinvite {
                            tx,
                            status: StatusCode::CALL_DOES_NOT_EXIST,
                            sdp: None,
                        });
                    }
                    _ => {}
                }
            }
        });
        let _ = wait.await;
    }

    /// Who this call's failures count against.
    fn failure_keys(&self) -> FailureKeys<'_> {
        FailureKeys {
            caller_id: countable_caller_id(&self.caller_id).then_some(self.caller_id.as_str()),
            source_ip: &self.source_ip,
            number: &self.number.number,
        }
    }

    /// What the failure counts say of this caller.
    ///
    /// Where the store fails, the gateway fails open for the lockout (the
    /// code must still be right, and the outage must not lock every caller
    /// out) and closed for the code itself ([`Call::lookup`]: refused). This
    /// is the one place that choice is made for counts.
    fn judge(&self, counted: Result<crate::store::Failures, crate::store::StoreError>) -> Verdict {
        let policy = &self.shared.settings.lockout;
        match counted {
            Ok(failures) => {
                let verdict = policy.verdict(failures);
                if verdict == Verdict::Alarm {
                    tracing::warn!(number = %self.number.number, failures = failures.number, "number probed: answers slowed");
                }
                verdict
            }
            Err(e) => {
                tracing::error!(%e, "cannot count failed attempts: lockout not applied");
                Verdict::Open
            }
        }
    }

    /// Whether this caller may try a code now, from the failures in the window.
    async fn verdict(&self) -> Verdict {
        let since = chrono::Utc::now() - self.shared.settings.lockout.window;
        let counted = self.shared.attempts.failures(self.failure_keys(), since);
        self.judge(timed("failures", counted).await)
    }

    /// As [`verdict`](Self::verdict), and unless locked, a guess that counts
    /// as a failure until its attempt is recorded: parallel calls from one
    /// source cannot check more guesses than the limit.
    async fn guess(&self) -> (Verdict, Option<Guess>) {
        let policy = &self.shared.settings.lockout;
        let since = chrono::Utc::now() - policy.window;
        let allow = |f| policy.verdict(f) != Verdict::Locked;
        let counted = self
            .shared
            .attempts
            .guess(self.failure_keys(), since, allow);
        match timed("failures", counted).await {
            Ok((failures, guess)) => (self.judge(Ok(failures)), guess),
            Err(e) => (self.judge(Err(e)), None),
        }
    }

    /// A key pressed in the room: a keypad command, if it completes one.
    fn room_key(
        &self,
        now: std::time::Instant,
        key: crate::dtmf::Key,
        (room_id, member): &(i64, Arc<Member>),
        keypad: &mut crate::conference::keypad::Keypad,
    ) {
        use crate::conference::keypad::Command;
        let rooms = &self.shared.rooms;
        let host = member.role == Role::Host;
        match keypad.on_key(now, key.to_char()) {
            Some(Command::ToggleMute) => {
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
            Some(Command::Count) => rooms.say_count(*room_id, self.call),
            Some(Command::ToggleLock) if host => {
                if let Some(locked) = rooms.toggle_lock(*room_id) {
                    tracing::info!(locked, "room lock toggled by the host");
                    member.say(if locked {
                        PromptId::NowLocked
                    } else {
                        PromptId::NowUnlocked
                    });
                }
            }
            Some(Command::ToggleMuteAll) if host => {
                if let Some(muted) = rooms.toggle_mute_all(*room_id) {
                    tracing::info!(muted, "participants muted by the host");
                    member.say(if muted {
                        PromptId::AllMuted
                    } else {
                        PromptId::AllUnmuted
                    });
                }
            }
            Some(Command::ToggleLock | Command::ToggleMuteAll) => {
                tracing::debug!("host command from a participant ignored");
            }
            None => {}
        }
    }

    /// The IVR's answer for an access code, and what a right one granted.
    async fn lookup(&self, code: &AccessCode) -> Checked {
        // Parallel calls from one source must not outrun the lockout.
        let (verdict, guess) = self.guess().await;
        match verdict {
            Verdict::Locked => return (LookupResult::Refused(Outcome::Locked), None, None),
            Verdict::Alarm => tokio::time::sleep(PROBED_NUMBER_DELAY).await,
            Verdict::Open => {}
        }
        let caller = Caller {
            caller_id: &self.caller_id,
        };
        let decision = timed(
            "resolve",
            resolve(
                &self.shared.store,
                &self.shared.secret,
                self.number.tenant_id,
                code.as_str(),
                caller,
                chrono::Utc::now(),
            ),
        )
        .await;
        match decision {
            Ok(Decision::Admit {
                room_id,
                security,
                invitee,
                host,
                ..
            }) => {
                // With a security code to come, the room's settings are
                // read at its check instead.
                let (result, policy) = match security {
                    Some(_) => (LookupResult::NeedSecurity { room_id }, Policy::default()),
                    None => (
                        LookupResult::Admitted { room_id },
                        self.room_policy(room_id).await,
                    ),
                };
                let grant = Grant {
                    room_id,
                    security,
                    invitee,
                    host,
                    policy,
                };
                (result, Some(grant), guess)
            }
            Ok(Decision::Refuse(outcome)) => (LookupResult::Refused(outcome), None, guess),
            Err(e) => {
                // Fail closed: the caller is refused rather than left
                // waiting or let in; the operator sees the error.
                tracing::error!(%e, "access code lookup failed");
                (LookupResult::Refused(Outcome::Wrong), None, guess)
            }
        }
    }

    /// The IVR's answer for a security code: right for the grant's hash, and
    /// a personal code revoked meanwhile fails now.
    async fn verify_security(&self, code: &AccessCode, grant: Option<Grant>) -> Checked {
        let Some(mut grant) = grant else {
            return (LookupResult::Refused(Outcome::Wrong), None, None);
        };
        let (verdict, guess) = self.guess().await;
        if verdict == Verdict::Locked {
            return (LookupResult::Refused(Outcome::Locked), Some(grant), None);
        }
        if let Some(id) = grant.invitee
            && !timed("invitee", invitee_still_valid(&self.shared.store, id))
                .await
                .unwrap_or(false)
        {
            return (LookupResult::Refused(Outcome::Revoked), Some(grant), guess);
        }
        let right = grant
            .security
            .as_deref()
            .is_some_and(|stored| self.shared.secret.verify(SECURITY, code.as_str(), stored));
        if right {
            // The room's settings as they are now, at the join.
            grant.policy = self.room_policy(grant.room_id).await;
            let result = LookupResult::Admitted {
                room_id: grant.room_id,
            };
            (result, Some(grant), guess)
        } else {
            (LookupResult::Refused(Outcome::Wrong), Some(grant), guess)
        }
    }

    /// Logs an attempt: queued for the attempt log's writer, never awaited.
    fn record(&self, stage: Stage, outcome: Outcome, room_id: Option<i64>, guess: Option<Guess>) {
        let attempt = Attempt {
            at: chrono::Utc::now(),
            number: self.number.number.clone(),
            caller_id: self.caller_id.clone(),
            source: self.source.clone(),
            source_ip: self.source_ip.clone(),
            stage: stage.as_str(),
            outcome: outcome.as_str(),
            room_id,
            call_id: self.call_id.clone(),
        };
        tracing::info!(
            stage = attempt.stage,
            outcome = attempt.outcome,
            "access attempt"
        );
        metrics::counter!("dialgate_attempts_total", "stage" => attempt.stage, "outcome" => attempt.outcome)
            .increment(1);
        if self.outcome_info && outcome != Outcome::Abandoned {
            let _ = self.shared.sip.send(SipCommand::Info {
                call: self.call,
                package: OUTCOME_PACKAGE,
                body: format!("outcome={}\r\nstage={}\r\n", attempt.outcome, attempt.stage),
            });
        }
        self.shared.attempts.record(attempt, guess);
    }
}
