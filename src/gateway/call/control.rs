//! One call's control flow, sans-IO: events in with the current time
//! ([`CallCore::handle`], [`CallCore::handle_timeout`]), actions out
//! ([`CallCore::poll_action`]), the next deadline from
//! [`CallCore::poll_timeout`] — the shape of `sip::endpoint` and `ivr`.
//! No socket, clock or database: the shell asks the store what
//! [`Action::Ask`] says and feeds the [`Answer`] back, plays prompts, moves
//! RTP and joins rooms, so every path (answer delay, a missing ACK, INFO
//! during a prompt, a re-INVITE in the IVR, a hang-up during a lookup, a
//! store that fails or is slow) is a deterministic test on simulated time.
//!
//! ```text
//!  Routing ─► Counting ─► Opening ─► [Ringing] ─► Answered ─ACK─► Talking ─► Closing
//!    │ 404/503  │ 503       │ 4xx/503   │ CANCEL     │ no ACK: BYE   │  │  │    │ prompt
//!    ▼          ▼           ▼           ▼            ▼               │  │  │    ▼ played
//!   Done       Done        Done        Done         Done   caller ◄──┘  │  └─► HangingUp ─► Done
//!                                                          hung up      │ refused,      (BYE answered,
//!                                                          → Done       │ RTP timeout    or 40 s)
//! ```
//!
//! Where the store fails, this module decides, in [`CallCore::judge`] and
//! [`CallCore::on_answer`]: the lockout fails open, the code fails closed.

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::access::lockout::{FAILURES, LockoutPolicy, Verdict};
use crate::access::resolve::Decision;
use crate::access::secret::Secret;
use crate::access::{AccessCode, Outcome, Stage};
use crate::cause::{Cause, Shed};
use crate::conference::keypad::{Command, Keypad};
use crate::conference::{Policy, Presence, Refusal};
use crate::dtmf::Key;
use crate::dtmf::sip_info::{SipInfoError, parse_info};
use crate::ivr::{self, IvrConfig, LookupResult, Machine, PlayId};
use crate::media::Codec;
use crate::media::prompts::PromptId;
use crate::provision::SECURITY;
use crate::sip::endpoint::{CallEvent, TxKey};
use crate::sip::message::StatusCode;
use crate::sip::sdp::{self, Direction, LocalMedia, Negotiated, SdpError};
use crate::store::{Failures, StoreError};

/// Extra wait before each code lookup while the number is being probed.
pub const PROBED_NUMBER_DELAY: Duration = Duration::from_secs(2);

/// How long the gateway waits for the answer to its BYE before giving up.
pub const BYE_WAIT: Duration = Duration::from_secs(40);

/// Longest a closing prompt may play before the BYE.
pub const CLOSING_PROMPT_LIMIT: Duration = Duration::from_secs(10);

/// The play id of a closing prompt (the IVR numbers its own from 0).
const CLOSING_PLAY: PlayId = PlayId(u32::MAX);

/// What the core needs of the gateway's settings.
#[derive(Clone)]
pub struct Rules {
    pub ivr: IvrConfig,
    pub lockout: LockoutPolicy,
    /// Ringing before the 200 (`--answer-delay`).
    pub answer_delay: Duration,
    /// Longest a store question before the answer may take: then 503.
    pub store_timeout: Duration,
    /// No RTP for this long ends the call (when the caller sends).
    pub rtp_timeout: Option<Duration>,
    pub advertise: IpAddr,
    /// Codecs we accept, most preferred first.
    pub codecs: Vec<Codec>,
    /// Verifies security codes against their keyed hashes.
    pub secret: Secret,
}

/// Our side of the SDP: the RTP port, and the `o=` line's id and version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    pub port: u16,
    pub id: u64,
    pub version: u64,
}

/// A question for the store; the shell answers with the [`Answer`] of the
/// same name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ask {
    /// The dialled number's row.
    Route,
    /// Failures in the lockout window, before answering.
    Count,
    /// Failures before a code looked at (`failed`: it will be refused
    /// with a failure), and, unless they lock the caller out, a failed
    /// guess counted from now until its attempt is recorded.
    Guess { failed: bool },
    /// What an access code opens, for the number's tenant.
    Resolve(AccessCode),
    /// Whether an invitee's personal code is still valid.
    Invitee(i64),
    /// A room's settings, as stored now.
    Policy(i64),
}

/// The store's answer to an [`Ask`].
#[derive(Debug)]
pub enum Answer {
    /// The number, normalised, if it is provisioned.
    Route(Result<Option<String>, StoreError>),
    Count(Result<Failures, StoreError>),
    Guess(Result<Failures, StoreError>),
    Resolve(Result<Decision, StoreError>),
    Invitee(Result<bool, StoreError>),
    Policy(Result<Option<Policy>, StoreError>),
}

impl Answer {
    /// Which answer it is (for logs: the answers themselves hold hashes).
    fn kind(&self) -> &'static str {
        match self {
            Answer::Route(_) => "route",
            Answer::Count(_) => "count",
            Answer::Guess(_) => "guess",
            Answer::Resolve(_) => "resolve",
            Answer::Invitee(_) => "invitee",
            Answer::Policy(_) => "policy",
        }
    }
}

#[derive(Debug)]
pub enum Input {
    Answer(Answer),
    /// The RTP port for our answer, or `None`: none left.
    Port(Option<Session>),
    /// From the SIP endpoint; a closed channel is `CallEvent::Ended`.
    Sip(CallEvent),
    /// A key from any source, once (the shell's key merger).
    Key(Key),
    /// An RTP packet of the call's stream arrived.
    Media,
    PlayDone(PlayId),
    /// The room took the caller, or turned it away.
    Joined(Result<(), Refusal>),
    Presence(Presence),
    /// The call's media could not be set up.
    MediaFailed,
}

#[derive(Debug, PartialEq)]
#[must_use]
pub enum Action {
    Ask(Ask),
    /// Answers the INVITE: 180 or 200.
    Respond {
        status: StatusCode,
        sdp: Option<Vec<u8>>,
    },
    /// Refuses the INVITE before answering, for this cause.
    Refuse(Cause),
    /// Open an RTP port; answer with [`Input::Port`].
    OpenPort,
    /// Answers an INFO.
    RespondInfo {
        tx: TxKey,
        status: StatusCode,
    },
    RespondReinvite {
        tx: TxKey,
        status: StatusCode,
        sdp: Option<Vec<u8>>,
    },
    /// A key the caller sent by SIP INFO, for the key merger.
    InfoKey(Key),
    /// The call is acknowledged: start its media in this session.
    StartMedia(Negotiated),
    Play {
        id: PlayId,
        prompts: Vec<PromptId>,
    },
    StopPlay,
    /// Queue one attempt for the attempt log (with the guess the last
    /// check reserved); `latency`: from the key that asked to the verdict.
    Record {
        stage: Stage,
        outcome: Outcome,
        room_id: Option<i64>,
        latency: Option<Duration>,
    },
    /// Bridge the caller into the room; answer with [`Input::Joined`].
    Join {
        room_id: i64,
        host: bool,
        policy: Policy,
    },
    /// A keypad command in the room, allowed for this caller's role.
    Room(Command),
    /// A re-INVITE changed the session: apply it to the media.
    Renegotiated {
        old: Negotiated,
        new: Negotiated,
        held: bool,
    },
    /// The call's media part is over (leave the room); `outcome` for
    /// `dialgate_calls_total`.
    MediaEnded {
        outcome: &'static str,
    },
    /// Hangs up, with the cause in the BYE's `Reason` when there is one.
    Bye {
        cause: Option<Cause>,
    },
}

/// What a right access code granted, kept while a security code is asked for.
#[derive(Clone, Debug)]
struct Grant {
    room_id: i64,
    /// Keyed hash of the security code to ask for, if any.
    security: Option<String>,
    /// The invitee whose personal code it was.
    invitee: Option<i64>,
    /// The host code was keyed.
    host: bool,
    /// The room's settings, read at the last check.
    policy: Policy,
}

/// What a code that has been looked at leads to, once the lockout lets
/// its verdict be given.
#[derive(Debug)]
enum Next {
    /// Right: the room's settings, then admitted.
    Policy {
        room_id: i64,
    },
    /// A right access code: now the security code.
    Security {
        room_id: i64,
    },
    Refused(Outcome),
}

impl Next {
    /// Whether it is a failed guess (counted towards lockouts).
    fn failed(&self) -> bool {
        matches!(self, Next::Refused(o) if FAILURES.contains(o))
    }
}

/// A code check under way: which store answer it waits for.
///
/// A code is looked at first, then the lockout counts decide whether its
/// verdict may be given: so only guesses known to have failed are held
/// against the limit while they are recorded, and right codes never wait
/// on one another (a trunk's or SBC's callers share one source).
#[derive(Debug)]
enum Check {
    /// The access code's lookup.
    Resolving,
    /// A personal code: is the invitee still valid, then the security code.
    Invitee { code: AccessCode },
    /// The code was looked at: the failure counts before its verdict.
    Guessing { next: Next, security: bool },
    /// The probed number's delay before the verdict.
    Slowed { next: Next, until: Instant },
    /// The room's settings, then `Admitted`.
    Policy { room_id: i64 },
}

/// How a room closed on a caller: the prompt that says so, then the BYE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closure {
    pub prompt: PromptId,
    pub cause: Cause,
}

impl Closure {
    pub const FULL: Closure = Closure {
        prompt: PromptId::ConferenceFull,
        cause: Cause::RoomFull,
    };
    pub const LOCKED: Closure = Closure {
        prompt: PromptId::ConferenceLocked,
        cause: Cause::RoomLocked,
    };
    /// Normal call clearing: the conference is over.
    pub const ENDED: Closure = Closure {
        prompt: PromptId::ConferenceEnded,
        cause: Cause::RoomEnded,
    };

    fn refused(refusal: Refusal) -> Closure {
        match refusal {
            Refusal::Full => Closure::FULL,
            Refusal::Locked => Closure::LOCKED,
        }
    }
}

/// Why the talking part ended.
#[derive(Debug)]
enum End {
    /// The caller hung up.
    CallerLeft,
    /// The dialog ended from our side (shutdown) or was lost.
    Gone,
    /// The access check turned the caller away: hang up.
    HangUp(Outcome),
    /// No RTP from the caller for the RTP timeout.
    MediaTimeout,
    /// The room turned the caller away or ended: say why, then hang up.
    RoomClosed(Closure),
}

impl End {
    /// Why the gateway hangs up, where it does.
    fn cause(&self) -> Option<Cause> {
        match self {
            End::CallerLeft | End::Gone => None,
            End::HangUp(outcome) => Some(Cause::Access(*outcome)),
            End::MediaTimeout => Some(Cause::RtpTimeout),
            End::RoomClosed(closure) => Some(closure.cause),
        }
    }

    /// The `outcome` label of `dialgate_calls_total`.
    fn label(&self, admitted: bool) -> &'static str {
        match (self, self.cause()) {
            (_, Some(cause)) => cause.label(),
            (End::CallerLeft, None) if admitted => Outcome::Admitted.as_str(),
            (End::CallerLeft, None) => Outcome::Abandoned.as_str(),
            // Shutdown, an operator's hang-up or a lost dialog: the call
            // is told only that its dialog is gone.
            _ => "ended_by_gateway",
        }
    }
}

/// The session as answered, and what it means for our media.
#[derive(Debug)]
struct Media {
    negotiated: Negotiated,
    session: Session,
    answer: String,
}

/// Where the call is. Deadlines live in the variants that have them.
#[derive(Debug)]
enum Phase {
    Routing {
        until: Instant,
    },
    Counting {
        until: Instant,
    },
    Opening,
    Ringing {
        until: Instant,
    },
    /// 200 sent, its ACK awaited.
    Answered,
    /// In the IVR or the room.
    Talking(Box<Talk>),
    /// A closing prompt plays, then BYE.
    Closing {
        until: Instant,
        cause: Cause,
    },
    /// BYE sent; its answer awaited.
    HangingUp {
        until: Instant,
    },
    Done,
}

/// The state of an acknowledged call.
struct Talk {
    ivr: Machine,
    grant: Option<Grant>,
    check: Option<Check>,
    /// When the last key asked for a verdict.
    asked: Option<Instant>,
    /// The room the caller is in.
    room: Option<i64>,
    keypad: Keypad,
    rtp_timeout: Option<Duration>,
    last_media: Instant,
    /// When silence is next checked: re-armed from `last_media` when it
    /// comes, not moved by every packet (the shell's one timer stays put).
    silence_check: Instant,
}

impl Talk {
    /// Media arrived or the session changed at `now`.
    fn heard(&mut self, now: Instant) {
        self.last_media = now;
    }

    /// Restarts the silence clock (a new session: `limit` may differ).
    fn rearm_silence(&mut self, now: Instant, limit: Option<Duration>) {
        self.rtp_timeout = limit;
        self.last_media = now;
        self.silence_check = limit.map_or(now, |l| now + l);
    }
}

impl std::fmt::Debug for Talk {
    // No digits: the IVR's state holds what was keyed so far.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Talk")
            .field("room", &self.room)
            .field("check", &self.check.as_ref().map(|_| "…"))
            .finish_non_exhaustive()
    }
}

/// The INVITE's offer, answered once a port is open.
#[derive(Clone, Debug, Default)]
pub struct Offer {
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

pub struct CallCore {
    rules: Arc<Rules>,
    phase: Phase,
    offer: Option<Offer>,
    verdict: Verdict,
    /// The dialled number, once routed (for logs).
    number: Option<String>,
    media: Option<Media>,
    out: VecDeque<Action>,
}

/// Asks for the failure counts before `next`'s verdict is given.
fn count_guess(t: &mut Talk, out: &mut VecDeque<Action>, next: Next, security: bool) {
    let failed = next.failed();
    t.check = Some(Check::Guessing { next, security });
    out.push_back(Action::Ask(Ask::Guess { failed }));
}

/// A security code against the grant's hash: right leads to the room.
fn verify(secret: &Secret, grant: Option<&Grant>, code: &AccessCode) -> Next {
    match grant {
        Some(grant)
            if grant
                .security
                .as_deref()
                .is_some_and(|stored| secret.verify(SECURITY, code.as_str(), stored)) =>
        {
            Next::Policy {
                room_id: grant.room_id,
            }
        }
        _ => Next::Refused(Outcome::Wrong),
    }
}

impl CallCore {
    /// A new incoming call whose INVITE has got 100 Trying: routing is asked.
    pub fn new(now: Instant, rules: Arc<Rules>, offer: Offer) -> CallCore {
        let until = now + rules.store_timeout;
        let mut core = CallCore {
            rules,
            phase: Phase::Routing { until },
            offer: Some(offer),
            verdict: Verdict::Open,
            number: None,
            media: None,
            out: VecDeque::new(),
        };
        core.out.push_back(Action::Ask(Ask::Route));
        core
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.out.pop_front()
    }

    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done) && self.out.is_empty()
    }

    /// Whether the shell's prompt player drives the caller's audio: in the
    /// IVR and during a closing prompt, not in a room (the mix does).
    pub fn plays_prompts(&self) -> bool {
        match &self.phase {
            Phase::Talking(t) => t.room.is_none(),
            Phase::Closing { .. } => true,
            _ => false,
        }
    }

    /// Whether the call has media running (acknowledged, not yet ended).
    pub fn in_media(&self) -> bool {
        matches!(self.phase, Phase::Talking(_) | Phase::Closing { .. })
    }

    /// The earliest deadline of the current phase.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Routing { until }
            | Phase::Counting { until }
            | Phase::Ringing { until }
            | Phase::Closing { until, .. }
            | Phase::HangingUp { until } => Some(*until),
            Phase::Talking(t) => {
                let silence = t.rtp_timeout.map(|_| t.silence_check);
                let slowed = match &t.check {
                    Some(Check::Slowed { until, .. }) => Some(*until),
                    _ => None,
                };
                [t.ivr.poll_timeout(), silence, slowed]
                    .into_iter()
                    .flatten()
                    .min()
            }
            Phase::Opening | Phase::Answered | Phase::Done => None,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.phase {
            Phase::Routing { until } | Phase::Counting { until } if now >= *until => {
                tracing::warn!(limit = ?self.rules.store_timeout, "store too slow before answering: 503");
                self.refuse(Cause::Shed(Shed::Store));
            }
            Phase::Ringing { until } if now >= *until => self.answer(),
            Phase::Closing { until, cause } if now >= *until => {
                let cause = *cause;
                self.bye(now, Some(cause));
            }
            Phase::HangingUp { until } if now >= *until => {
                tracing::info!("no answer to our BYE");
                self.phase = Phase::Done;
            }
            Phase::Talking(t) => {
                if let Some(limit) = t.rtp_timeout
                    && now >= t.silence_check
                {
                    if now >= t.last_media + limit {
                        return self.end(now, End::MediaTimeout);
                    }
                    t.silence_check = t.last_media + limit;
                }
                if let Some(Check::Slowed { until, .. }) = &t.check
                    && now >= *until
                    && let Some(Check::Slowed { next, .. }) = t.check.take()
                {
                    let result = self.proceed(next, false);
                    self.reveal(now, result);
                }
                if let Phase::Talking(t) = &mut self.phase
                    && t.ivr.poll_timeout().is_some_and(|at| now >= at)
                {
                    t.ivr.handle_timeout(now);
                    self.drain_ivr(now);
                }
            }
            _ => {}
        }
    }

    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Answer(answer) => self.on_answer(now, answer),
            Input::Port(session) => self.on_port(now, session),
            Input::Sip(event) => self.on_sip(now, event),
            Input::Key(key) => self.on_key(now, key),
            Input::Media => {
                if let Phase::Talking(t) = &mut self.phase {
                    t.heard(now);
                }
            }
            Input::PlayDone(id) => match &mut self.phase {
                Phase::Closing { cause, .. } if id == CLOSING_PLAY => {
                    let cause = *cause;
                    self.bye(now, Some(cause));
                }
                Phase::Talking(t) => {
                    t.ivr.handle(now, ivr::Event::PlayDone(id));
                    self.drain_ivr(now);
                }
                _ => {}
            },
            Input::Joined(Ok(())) => {}
            Input::Joined(Err(refusal)) => {
                tracing::info!(?refusal, "room refused the caller");
                if let Phase::Talking(t) = &mut self.phase {
                    t.room = None;
                }
                self.end(now, End::RoomClosed(Closure::refused(refusal)));
            }
            Input::Presence(presence) => {
                tracing::info!(?presence, "presence in the room");
                if presence == Presence::Ended && matches!(self.phase, Phase::Talking(_)) {
                    self.end(now, End::RoomClosed(Closure::ENDED));
                }
            }
            Input::MediaFailed => {
                if self.in_media() {
                    self.bye(now, None);
                }
            }
        }
    }

    /// What the failure counts say of this caller.
    ///
    /// Where the store fails, the gateway fails open for the lockout (the
    /// code must still be right, and an outage must not lock every caller
    /// out) and closed for the code itself (refused: see `on_answer`).
    fn judge(&self, counted: Result<Failures, StoreError>) -> Verdict {
        match counted {
            Ok(failures) => {
                let verdict = self.rules.lockout.verdict(failures);
                if verdict == Verdict::Alarm {
                    tracing::warn!(
                        number = self.number.as_deref().unwrap_or("?"),
                        failures = failures.number,
                        "number probed: answers slowed"
                    );
                }
                verdict
            }
            Err(e) => {
                tracing::error!(%e, "cannot count failed attempts: lockout not applied");
                Verdict::Open
            }
        }
    }

    fn on_answer(&mut self, now: Instant, answer: Answer) {
        match (&mut self.phase, answer) {
            (Phase::Routing { .. }, Answer::Route(routed)) => match routed {
                Ok(Some(number)) => {
                    self.number = Some(number);
                    self.phase = Phase::Counting {
                        until: now + self.rules.store_timeout,
                    };
                    self.out.push_back(Action::Ask(Ask::Count));
                }
                Ok(None) => self.refuse(Cause::UnknownNumber),
                Err(e) => {
                    // Fail closed: a number we cannot route is not answered.
                    tracing::error!(%e, "number lookup failed");
                    self.refuse(Cause::StoreFailed);
                }
            },
            (Phase::Counting { .. }, Answer::Count(counted)) => {
                self.verdict = self.judge(counted);
                self.phase = Phase::Opening;
                self.out.push_back(Action::OpenPort);
            }
            (Phase::Talking(_), answer) => self.on_check(now, answer),
            // An answer to a question of a phase gone by (the caller hung
            // up meanwhile): nothing waits for it.
            (_, answer) => tracing::debug!(
                answer = answer.kind(),
                "store answer after the call moved on"
            ),
        }
    }

    /// A store answer in the middle of a code check.
    fn on_check(&mut self, now: Instant, answer: Answer) {
        let Phase::Talking(t) = &mut self.phase else {
            return;
        };
        let result = match (t.check.take(), answer) {
            (Some(Check::Resolving), Answer::Resolve(decided)) => {
                let next = match decided {
                    Ok(Decision::Admit {
                        room_id,
                        security,
                        invitee,
                        host,
                        ..
                    }) => {
                        let needs_security = security.is_some();
                        t.grant = Some(Grant {
                            room_id,
                            security,
                            invitee,
                            host,
                            policy: Policy::default(),
                        });
                        if needs_security {
                            // The room's settings are read at the security check.
                            Next::Security { room_id }
                        } else {
                            Next::Policy { room_id }
                        }
                    }
                    Ok(Decision::Refuse(outcome)) => Next::Refused(outcome),
                    Err(e) => {
                        // Fail closed: the caller is refused rather than left
                        // waiting or let in; the operator sees the error.
                        tracing::error!(%e, "access code lookup failed");
                        Next::Refused(Outcome::Wrong)
                    }
                };
                count_guess(t, &mut self.out, next, false);
                None
            }
            (Some(Check::Invitee { code }), Answer::Invitee(valid)) => {
                let next = match valid {
                    Ok(true) => verify(&self.rules.secret, t.grant.as_ref(), &code),
                    Ok(false) => Next::Refused(Outcome::Revoked),
                    Err(e) => {
                        // Fail closed, as for the code.
                        tracing::error!(%e, "invitee check failed");
                        Next::Refused(Outcome::Revoked)
                    }
                };
                count_guess(t, &mut self.out, next, true);
                None
            }
            (Some(Check::Guessing { next, security }), Answer::Guess(counted)) => {
                match self.judge(counted) {
                    Verdict::Locked => {
                        if let Phase::Talking(t) = &mut self.phase
                            && !security
                        {
                            t.grant = None;
                        }
                        Some(LookupResult::Refused(Outcome::Locked))
                    }
                    Verdict::Alarm if !security => {
                        if let Phase::Talking(t) = &mut self.phase {
                            t.check = Some(Check::Slowed {
                                next,
                                until: now + PROBED_NUMBER_DELAY,
                            });
                        }
                        None
                    }
                    _ => self.proceed(next, security),
                }
            }
            (Some(Check::Policy { room_id }), Answer::Policy(read)) => {
                let policy = match read {
                    Ok(p) => p.unwrap_or_default(),
                    Err(e) => {
                        // The room's defaults: the code was right.
                        tracing::error!(%e, room_id, "cannot read the room's settings");
                        Policy::default()
                    }
                };
                if let Some(g) = t.grant.as_mut() {
                    g.policy = policy;
                }
                Some(LookupResult::Admitted { room_id })
            }
            (check, answer) => {
                tracing::debug!(answer = answer.kind(), "store answer no check waits for");
                t.check = check;
                None
            }
        };
        self.reveal(now, result);
    }

    /// Gives the IVR a check's verdict, if there is one yet.
    fn reveal(&mut self, now: Instant, result: Option<LookupResult>) {
        if let Some(result) = result
            && let Phase::Talking(t) = &mut self.phase
        {
            t.ivr.handle(now, ivr::Event::Lookup(result));
            self.drain_ivr(now);
        }
    }

    /// Carries out a verdict the lockout let through: a right code asks
    /// for the room's settings (then admits); the rest is for the IVR now.
    fn proceed(&mut self, next: Next, security: bool) -> Option<LookupResult> {
        let Phase::Talking(t) = &mut self.phase else {
            return None;
        };
        match next {
            Next::Policy { room_id } => {
                t.check = Some(Check::Policy { room_id });
                self.out.push_back(Action::Ask(Ask::Policy(room_id)));
                None
            }
            Next::Security { room_id } => Some(LookupResult::NeedSecurity { room_id }),
            Next::Refused(outcome) => {
                if !security {
                    t.grant = None;
                }
                Some(LookupResult::Refused(outcome))
            }
        }
    }

    fn on_port(&mut self, now: Instant, session: Option<Session>) {
        if !matches!(self.phase, Phase::Opening) {
            return;
        }
        let Some(session) = session else {
            tracing::warn!("no RTP port left: 503");
            return self.refuse(Cause::NoMediaPort);
        };
        let Some(offer) = self.offer.take() else {
            return self.refuse(Cause::NoOffer);
        };
        match negotiate(
            &self.rules,
            offer.content_type.as_deref(),
            &offer.body,
            session,
        ) {
            Ok((negotiated, answer)) => {
                tracing::info!(number = self.number.as_deref().unwrap_or("?"), codec = ?negotiated.codec, "incoming call");
                self.media = Some(Media {
                    negotiated,
                    session,
                    answer,
                });
                if self.rules.answer_delay.is_zero() {
                    self.answer();
                } else {
                    self.out.push_back(Action::Respond {
                        status: StatusCode::RINGING,
                        sdp: None,
                    });
                    self.phase = Phase::Ringing {
                        until: now + self.rules.answer_delay,
                    };
                }
            }
            Err(cause) => self.refuse(cause),
        }
    }

    /// 200 with our answer; the ACK is awaited.
    fn answer(&mut self) {
        let sdp = self.media.as_ref().map(|m| m.answer.clone().into_bytes());
        self.out.push_back(Action::Respond {
            status: StatusCode::OK,
            sdp,
        });
        self.phase = Phase::Answered;
    }

    /// A final answer other than 200 before answering: the call is over.
    fn refuse(&mut self, cause: Cause) {
        tracing::debug!(
            cause = cause.label(),
            status = cause.status().0,
            "call refused before answering"
        );
        self.out.push_back(Action::Refuse(cause));
        self.phase = Phase::Done;
    }

    fn on_sip(&mut self, now: Instant, event: CallEvent) {
        match event {
            CallEvent::Info {
                tx,
                content_type,
                body,
            } => self.on_info(tx, &content_type, &body),
            CallEvent::Reinvite {
                tx,
                content_type,
                body,
                ..
            } => self.on_reinvite(now, tx, &content_type, &body),
            CallEvent::Ack => {
                if matches!(self.phase, Phase::Answered) {
                    self.talk(now);
                }
            }
            CallEvent::AckTimeout => {
                if matches!(self.phase, Phase::Answered) {
                    tracing::warn!("no ACK for our 200: hanging up");
                    self.out.push_back(Action::Bye { cause: None });
                    self.phase = Phase::Done;
                }
            }
            CallEvent::Bye | CallEvent::Cancelled => match self.phase {
                Phase::Talking(_) => self.end(now, End::CallerLeft),
                Phase::Closing { .. } => {
                    tracing::info!("caller hung up during the closing prompt");
                    self.phase = Phase::Done;
                }
                Phase::Ringing { .. } => {
                    tracing::info!("caller gave up before answer");
                    self.phase = Phase::Done;
                }
                _ => self.phase = Phase::Done,
            },
            CallEvent::Ended => match self.phase {
                Phase::Talking(_) => self.end(now, End::Gone),
                Phase::Ringing { .. } => {
                    tracing::info!("caller gave up before answer");
                    self.phase = Phase::Done;
                }
                _ => self.phase = Phase::Done,
            },
        }
    }

    fn on_info(&mut self, tx: TxKey, content_type: &str, body: &[u8]) {
        let status = match &self.phase {
            Phase::Talking(_) => match parse_info(content_type, body) {
                Ok(key) => {
                    self.out.push_back(Action::InfoKey(key));
                    StatusCode::OK
                }
                Err(SipInfoError::UnsupportedContentType) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Err(e) => {
                    tracing::debug!(%e, "INFO body refused");
                    StatusCode::BAD_REQUEST
                }
            },
            Phase::HangingUp { .. } | Phase::Done => StatusCode::CALL_DOES_NOT_EXIST,
            // Before the IVR listens (ringing, before the ACK) or after it
            // (closing): taken, not keyed.
            _ => StatusCode::OK,
        };
        self.out.push_back(Action::RespondInfo { tx, status });
    }

    fn on_reinvite(&mut self, now: Instant, tx: TxKey, content_type: &str, body: &[u8]) {
        let refusal = match &self.phase {
            Phase::Talking(_) => None,
            Phase::HangingUp { .. } | Phase::Done => Some(StatusCode::CALL_DOES_NOT_EXIST),
            // Our 2xx is not acknowledged yet (or the call is closing): one
            // INVITE at a time.
            _ => Some(StatusCode::REQUEST_PENDING),
        };
        if let Some(status) = refusal {
            return self.out.push_back(Action::RespondReinvite {
                tx,
                status,
                sdp: None,
            });
        }
        let Some(media) = self.media.as_mut() else {
            return;
        };
        // A changed session gets the next version (RFC 3264 §8); an
        // unchanged one the answer it had.
        let next = Session {
            version: media.session.version + 1,
            ..media.session
        };
        let (status, sdp) = match negotiate(&self.rules, Some(content_type), body, next) {
            Ok((new, _)) if new == media.negotiated => {
                (StatusCode::OK, Some(media.answer.clone().into_bytes()))
            }
            Ok((new, reply)) => {
                media.session = next;
                media.answer = reply;
                let (sends, held) = media_flow(&new);
                let old = std::mem::replace(&mut media.negotiated, new.clone());
                tracing::info!(codec = ?new.codec, held, direction = ?new.direction, "session changed by re-INVITE");
                let sdp = Some(media.answer.clone().into_bytes());
                if let Phase::Talking(t) = &mut self.phase {
                    t.rearm_silence(now, self.rules.rtp_timeout.filter(|_| sends));
                }
                self.out.push_back(Action::Renegotiated { old, new, held });
                (StatusCode::OK, sdp)
            }
            Err(cause) => (cause.status(), None),
        };
        self.out
            .push_back(Action::RespondReinvite { tx, status, sdp });
    }

    /// The ACK came: media starts, and the IVR (locked out, or not).
    fn talk(&mut self, now: Instant) {
        let Some(media) = &self.media else {
            return;
        };
        let (sends, _) = media_flow(&media.negotiated);
        self.out
            .push_back(Action::StartMedia(media.negotiated.clone()));
        let ivr = match self.verdict {
            Verdict::Locked => {
                tracing::info!("caller locked out");
                Machine::locked(self.rules.ivr.clone())
            }
            Verdict::Open | Verdict::Alarm => Machine::new(self.rules.ivr.clone()),
        };
        let mut talk = Talk {
            ivr,
            grant: None,
            check: None,
            asked: None,
            room: None,
            keypad: Keypad::new(),
            rtp_timeout: None,
            last_media: now,
            silence_check: now,
        };
        talk.rearm_silence(now, self.rules.rtp_timeout.filter(|_| sends));
        self.phase = Phase::Talking(Box::new(talk));
        self.drain_ivr(now);
    }

    fn on_key(&mut self, now: Instant, key: Key) {
        let Phase::Talking(t) = &mut self.phase else {
            return;
        };
        if t.room.is_none() {
            t.ivr.handle(now, ivr::Event::Digit(key));
            return self.drain_ivr(now);
        }
        let host = t.grant.as_ref().is_some_and(|g| g.host);
        match t.keypad.on_key(now, key.to_char()) {
            Some(Command::ToggleLock | Command::ToggleMuteAll) if !host => {
                tracing::debug!("host command from a participant ignored");
            }
            Some(command) => self.out.push_back(Action::Room(command)),
            None => {}
        }
    }

    /// Carries out what the IVR asked for.
    fn drain_ivr(&mut self, now: Instant) {
        let Phase::Talking(t) = &mut self.phase else {
            return;
        };
        let mut ended = None;
        while let Some(action) = t.ivr.poll_action() {
            match action {
                ivr::Action::Play { id, prompts } => {
                    self.out.push_back(Action::Play { id, prompts });
                }
                ivr::Action::StopPlay => self.out.push_back(Action::StopPlay),
                ivr::Action::Lookup(code) => {
                    t.asked = Some(now);
                    t.check = Some(Check::Resolving);
                    self.out.push_back(Action::Ask(Ask::Resolve(code)));
                }
                ivr::Action::VerifySecurity(code) => {
                    t.asked = Some(now);
                    if let Some(grant) = &t.grant {
                        if let Some(id) = grant.invitee {
                            t.check = Some(Check::Invitee { code });
                            self.out.push_back(Action::Ask(Ask::Invitee(id)));
                        } else {
                            let next = verify(&self.rules.secret, Some(grant), &code);
                            count_guess(t, &mut self.out, next, true);
                        }
                    } else {
                        t.ivr.handle(
                            now,
                            ivr::Event::Lookup(LookupResult::Refused(Outcome::Wrong)),
                        );
                    }
                }
                ivr::Action::Attempt { stage, outcome } => {
                    let room_id = t
                        .grant
                        .as_ref()
                        .filter(|_| outcome == Outcome::Admitted)
                        .map(|g| g.room_id);
                    let latency = t.asked.take().map(|at| now.saturating_duration_since(at));
                    self.out.push_back(Action::Record {
                        stage,
                        outcome,
                        room_id,
                        latency,
                    });
                }
                ivr::Action::Join { room_id } => {
                    let (host, policy) = t
                        .grant
                        .as_ref()
                        .map_or((false, Policy::default()), |g| (g.host, g.policy));
                    t.room = Some(room_id);
                    self.out.push_back(Action::Join {
                        room_id,
                        host,
                        policy,
                    });
                }
                ivr::Action::Hangup(outcome) => {
                    ended = Some(End::HangUp(outcome));
                    break;
                }
            }
        }
        if let Some(end) = ended {
            self.end(now, end);
        }
    }

    /// The talking part is over: say so, settle the IVR, and hang up as
    /// the reason wants.
    fn end(&mut self, now: Instant, end: End) {
        let Phase::Talking(t) = std::mem::replace(&mut self.phase, Phase::Done) else {
            return;
        };
        let mut t = *t;
        let outcome = end.label(t.room.is_some());
        self.out.push_back(Action::MediaEnded { outcome });
        match end {
            End::Gone => tracing::info!("call ended by the gateway"),
            End::CallerLeft | End::MediaTimeout => {
                t.ivr.handle(now, ivr::Event::CallerGone);
                while let Some(action) = t.ivr.poll_action() {
                    if let ivr::Action::Attempt { stage, outcome } = action {
                        self.out.push_back(Action::Record {
                            stage,
                            outcome,
                            room_id: None,
                            latency: None,
                        });
                    }
                }
                if matches!(end, End::MediaTimeout) {
                    tracing::info!("no RTP from the caller: hanging up");
                    self.bye(now, Some(Cause::RtpTimeout));
                } else {
                    tracing::info!("caller hung up");
                }
            }
            End::RoomClosed(closure) => {
                self.out.push_back(Action::Play {
                    id: CLOSING_PLAY,
                    prompts: vec![closure.prompt],
                });
                self.phase = Phase::Closing {
                    until: now + CLOSING_PROMPT_LIMIT,
                    cause: closure.cause,
                };
                tracing::info!(outcome = closure.cause.label(), "call ended by the room");
            }
            End::HangUp(outcome) => {
                tracing::info!(outcome = outcome.as_str(), "call refused");
                self.bye(now, Some(Cause::Access(outcome)));
            }
        }
    }

    fn bye(&mut self, now: Instant, cause: Option<Cause>) {
        self.out.push_back(Action::Bye { cause });
        self.phase = Phase::HangingUp {
            until: now + BYE_WAIT,
        };
    }
}

/// Answers an SDP offer (`content_type` and `body` of an INVITE).
pub fn negotiate(
    rules: &Rules,
    content_type: Option<&str>,
    body: &[u8],
    session: Session,
) -> Result<(Negotiated, String), Cause> {
    let is_sdp =
        content_type.is_some_and(|c| c.trim().to_ascii_lowercase().starts_with("application/sdp"));
    if !is_sdp || body.is_empty() {
        // INVITEs without an offer (offer in the ACK) are not supported yet.
        return Err(Cause::NoOffer);
    }
    let offer = String::from_utf8_lossy(body);
    let local = LocalMedia {
        addr: rules.advertise,
        port: session.port,
        session_id: session.id,
        session_version: session.version,
        codecs: rules.codecs.clone(),
    };
    sdp::answer(&offer, &local).map_err(|e| {
        tracing::info!(%e, "SDP offer refused");
        match e {
            SdpError::NoAudio | SdpError::NoCommonCodec => Cause::NoCommonCodec,
            _ => Cause::BadOffer,
        }
    })
}

/// What the caller's side of the session means for our media: whether it
/// sends (so silence is a timeout) and whether it put us on hold (wants
/// none of our media, or gave no address to send it to).
pub fn media_flow(n: &Negotiated) -> (bool, bool) {
    let sends = matches!(n.direction, Direction::SendRecv | Direction::SendOnly);
    let receives = matches!(n.direction, Direction::SendRecv | Direction::RecvOnly);
    let addressed = n.remote_rtp.is_some_and(|a| !a.ip().is_unspecified());
    (sends, !receives || !addressed)
}
