//! How the talking part ends: the outcome counted, the IVR settled, a
//! room's closing prompt played, then BYE with its cause.

use super::*;

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

    pub(super) fn refused(refusal: Refusal) -> Closure {
        match refusal {
            Refusal::Full => Closure::FULL,
            Refusal::Locked => Closure::LOCKED,
        }
    }
}

/// Why the talking part ended.
#[derive(Debug)]
pub(super) enum End {
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
    /// A leg from another node, in a room this draining node hands on:
    /// hung up as shutting down, so that node moves its caller on.
    HandedOn,
}

impl End {
    /// Why the gateway hangs up, where it does.
    pub(super) fn cause(&self) -> Option<Cause> {
        match self {
            End::CallerLeft | End::Gone => None,
            End::HangUp(outcome) => Some(Cause::Access(*outcome)),
            End::MediaTimeout => Some(Cause::RtpTimeout),
            End::RoomClosed(closure) => Some(closure.cause),
            End::HandedOn => Some(Cause::ShuttingDown),
        }
    }

    /// The `outcome` label of `dialgate_calls_total`.
    pub(super) fn label(&self, admitted: bool) -> &'static str {
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

impl CallCore {
    /// The talking part is over: say so, settle the IVR, and hang up as
    /// the reason wants.
    pub(super) fn end(&mut self, now: Instant, end: End) {
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
            End::HandedOn => {
                tracing::info!("leg ended: this node hands its room on");
                self.bye(now, Some(Cause::ShuttingDown));
            }
            // A leg's room closed: the node the caller is on says so
            // when the leg's BYE reaches it.
            End::RoomClosed(closure) if self.leg.is_some() => {
                tracing::info!(outcome = closure.cause.label(), "leg ended by the room");
                self.bye(now, Some(closure.cause));
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

    pub(super) fn bye(&mut self, now: Instant, cause: Option<Cause>) {
        self.out.push_back(Action::Bye { cause });
        self.phase = Phase::HangingUp {
            until: now + BYE_WAIT,
        };
    }
}
