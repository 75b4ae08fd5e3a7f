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
//!  Routing ─► Opening ─► [Ringing] ─► Answered ─ACK─► Talking ─► Closing
//!    │ 404/503  │ 4xx/503   │ CANCEL     │ no ACK: BYE   │  │  │    │ prompt
//!    ▼          ▼           ▼            ▼               │  │  │    ▼ played
//!   Done       Done        Done         Done   caller ◄──┘  │  └─► HangingUp ─► Done
//!                                              hung up      │ refused,      (BYE answered,
//!                                              → Done       │ RTP timeout    or 40 s)
//! ```
//!
//! Where the store fails, this module decides, in [`CallCore::judge`] and
//! [`CallCore::on_answer`]: the lockout fails open, the code fails closed.
//!
//! Here: the interface (inputs, answers, actions) and the call's life up
//! to the ACK. The rest, each its own idea: `talking.rs` (media and the
//! IVR after the ACK), `check.rs` (a code's check: lookup, lockout, delay,
//! security code, the room's settings), `dialog.rs` (INFO, re-INVITE,
//! BYE, CANCEL; SDP offer/answer), `ending.rs` (the outcome, the closing
//! prompt, BYE).

mod check;
mod dialog;
mod ending;
mod talking;

use check::{Check, Grant, count_guess, verify};
pub use dialog::{media_flow, negotiate};
pub use ending::Closure;
use ending::End;
use talking::Talk;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::access::leg::Standing;
use crate::access::lockout::{FAILURES, LockoutPolicy, Verdict};
use crate::access::resolve::Decision;
use crate::access::secret::Secret;
use crate::access::{AccessCode, Outcome, Stage};
use crate::cause::{Cause, Shed};
use crate::conference::keypad::{Command, Keypad};
use crate::conference::standing::{MEMBER_PACKAGE, MemberInfo};
use crate::conference::{Policy, Presence, Refusal};
use crate::dtmf::Key;
use crate::dtmf::sip_info::{SipInfoError, parse_info};
use crate::ids::{InviteeId, RoomId};
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
    /// The dialled number's row and, in the same question, the failures
    /// in the lockout window before answering (one trip to the store).
    Route,
    /// Failures before a code looked at (`failed`: it will be refused
    /// with a failure), and, unless they lock the caller out, a failed
    /// guess counted from now until its attempt is recorded; for a right
    /// code, the settings of the `room` it opens, as stored now (one trip
    /// to the store).
    Guess { failed: bool, room: Option<RoomId> },
    /// What an access code opens, for the number's tenant.
    Resolve(AccessCode),
    /// Whether an invitee's personal code is still valid.
    Invitee(InviteeId),
}

/// A provisioned number as the store routed it.
#[derive(Debug)]
pub struct Routed {
    /// The number, normalised.
    pub number: String,
    /// Failed attempts in the lockout window by this caller-ID, from this
    /// source and on this number.
    pub failures: Failures,
}

/// The failure counts before a code's verdict, and the settings of the
/// room a right code opens.
#[derive(Debug)]
pub struct Guessed {
    pub failures: Failures,
    /// `None`: no room was asked for, or it is gone (its defaults apply).
    pub policy: Option<Policy>,
}

/// The store's answer to an [`Ask`].
#[derive(Debug)]
pub enum Answer {
    /// The number, if it is provisioned, with the failures counted.
    Route(Result<Option<Routed>, StoreError>),
    Guess(Result<Guessed, StoreError>),
    Resolve(Result<Decision, StoreError>),
    Invitee(Result<bool, StoreError>),
}

impl Answer {
    /// Which answer it is (for logs: the answers themselves hold hashes).
    fn kind(&self) -> &'static str {
        match self {
            Answer::Route(_) => "route",
            Answer::Guess(_) => "guess",
            Answer::Resolve(_) => "resolve",
            Answer::Invitee(_) => "invitee",
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
    /// This node drains and hands the room on: a leg from another node
    /// ends (with the shutting-down cause); nothing for other calls.
    HandedOn,
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
        room_id: Option<RoomId>,
        latency: Option<Duration>,
    },
    /// Bridge the caller into the room; answer with [`Input::Joined`].
    Join {
        room_id: RoomId,
        host: bool,
        /// The room's settings as the check read them; `None`: the ones
        /// the live room runs by (a leg from another node, into a room
        /// this node owns).
        policy: Option<Policy>,
        /// A leg's caller was in the room on its previous owner, with
        /// this standing.
        back: Option<Standing>,
    },
    /// A keypad command in the room, allowed for this caller's role.
    Room(Command),
    /// What the node that placed this leg asks for its caller in the room
    /// (mute, admit, lock): apply it as if asked here.
    Member(MemberInfo),
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

/// A caller another node admitted and bridges to this node, which owns
/// its room (the leg's verified pass): no number, no IVR, straight in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegGrant {
    pub room_id: RoomId,
    pub host: bool,
    /// The caller was in the room before (on its previous owner).
    pub back: Option<Standing>,
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
    /// A leg from the node that collected the caller's code.
    leg: Option<LegGrant>,
    out: VecDeque<Action>,
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
            leg: None,
            out: VecDeque::new(),
        };
        core.out.push_back(Action::Ask(Ask::Route));
        core
    }

    /// A leg from another node for a caller it admitted to a room this
    /// node owns (the shell verified the pass and the ownership): a port
    /// is opened and the offer answered at once — no route, no count, no
    /// ringing — and the ACK puts the caller in the room.
    pub fn for_leg(rules: Arc<Rules>, offer: Offer, grant: LegGrant) -> CallCore {
        let mut core = CallCore {
            rules,
            phase: Phase::Opening,
            offer: Some(offer),
            verdict: Verdict::Open,
            number: None,
            media: None,
            leg: Some(grant),
            out: VecDeque::new(),
        };
        core.out.push_back(Action::OpenPort);
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

    /// Whether the call is a leg from another node (a member of a room this
    /// node owns, for a caller that node answered).
    pub fn is_leg(&self) -> bool {
        self.leg.is_some()
    }

    /// Whether the call has media running (acknowledged, not yet ended).
    pub fn in_media(&self) -> bool {
        matches!(self.phase, Phase::Talking(_) | Phase::Closing { .. })
    }

    /// The earliest deadline of the current phase.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Routing { until }
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
            Phase::Routing { until } if now >= *until => {
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
            Input::HandedOn => {
                if self.leg.is_some() {
                    self.end(now, End::HandedOn);
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
                Ok(Some(routed)) => {
                    self.number = Some(routed.number);
                    self.verdict = self.judge(Ok(routed.failures));
                    self.phase = Phase::Opening;
                    self.out.push_back(Action::OpenPort);
                }
                Ok(None) => self.refuse(Cause::UnknownNumber),
                Err(e) => {
                    // Fail closed: a number we cannot route (nor count its
                    // failures: the same query) is not answered.
                    tracing::error!(%e, "number lookup failed");
                    self.refuse(Cause::StoreFailed);
                }
            },
            (Phase::Talking(_), answer) => self.on_check(now, answer),
            // An answer to a question of a phase gone by (the caller hung
            // up meanwhile): nothing waits for it.
            (_, answer) => tracing::debug!(
                answer = answer.kind(),
                "store answer after the call moved on"
            ),
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
                if self.rules.answer_delay.is_zero() || self.leg.is_some() {
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
}
