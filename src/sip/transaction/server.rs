//! The server transactions (§17.2), INVITE and non-INVITE.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{
    Pending, Resend, Timer, TimerConfig, TimerOutput, UNANSWERED_INVITE, earliest, take_due,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerState {
    Proceeding,
    Accepted,
    Completed,
    Confirmed,
    Terminated,
}

/// A server transaction (INVITE or not).
#[derive(Debug)]
pub struct ServerTx {
    invite: bool,
    reliable: bool,
    timers: TimerConfig,
    state: ServerState,
    last_response: Option<Bytes>,
    resend: Option<Resend>,
    deadline: Option<Pending>,
}

impl ServerTx {
    pub fn new(now: Instant, invite: bool, reliable: bool, timers: TimerConfig) -> ServerTx {
        let guard = if invite {
            UNANSWERED_INVITE
        } else {
            64 * timers.t1
        };
        ServerTx {
            invite,
            reliable,
            timers,
            state: ServerState::Proceeding,
            last_response: None,
            resend: None,
            deadline: Some(Pending {
                timer: Timer::Unanswered,
                at: now + guard,
            }),
        }
    }

    pub fn state(&self) -> ServerState {
        self.state
    }

    pub fn is_invite(&self) -> bool {
        self.invite
    }

    /// The response to send again when the request is retransmitted.
    pub fn on_request_retransmission(&self) -> Option<Bytes> {
        match self.state {
            ServerState::Proceeding | ServerState::Accepted | ServerState::Completed => {
                self.last_response.clone()
            }
            ServerState::Confirmed | ServerState::Terminated => None,
        }
    }

    /// Records a response the TU sends (`status` decides the next state).
    pub fn send_response(&mut self, now: Instant, status: u16, bytes: Bytes) {
        if !matches!(self.state, ServerState::Proceeding) {
            return;
        }
        self.last_response = Some(bytes);
        if status < 200 {
            return;
        }
        let t1 = self.timers.t1;
        if self.invite {
            // 2xx: retransmitted on every transport (§13.3.1.4); others only on UDP.
            let success = (200..300).contains(&status);
            self.state = if success {
                ServerState::Accepted
            } else {
                ServerState::Completed
            };
            if success || !self.reliable {
                self.resend = Some(Resend {
                    at: now + t1,
                    interval: t1,
                });
            }
            self.deadline = Some(Pending {
                timer: Timer::H,
                at: now + 64 * t1,
            });
        } else {
            self.state = ServerState::Completed;
            let wait = if self.reliable {
                Duration::ZERO
            } else {
                64 * t1
            };
            self.deadline = Some(Pending {
                timer: Timer::J,
                at: now + wait,
            });
        }
    }

    /// A refused INVITE's answer is sent again only when the request is
    /// (the endpoint's cap on what it retransmits to one source).
    pub fn stop_resending(&mut self) {
        if self.state == ServerState::Completed {
            self.resend = None;
        }
    }

    /// An ACK arrived for this INVITE transaction.
    pub fn recv_ack(&mut self, now: Instant) {
        match self.state {
            ServerState::Accepted => {
                self.resend = None;
                self.state = ServerState::Confirmed;
                self.deadline = Some(Pending {
                    timer: Timer::L,
                    at: now + 64 * self.timers.t1,
                });
            }
            ServerState::Completed => {
                self.resend = None;
                self.state = ServerState::Confirmed;
                let wait = if self.reliable {
                    Duration::ZERO
                } else {
                    self.timers.t4
                };
                self.deadline = Some(Pending {
                    timer: Timer::I,
                    at: now + wait,
                });
            }
            _ => {}
        }
    }

    /// The time `handle_timeout` must next be called at.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(self.resend.as_ref(), self.deadline.as_ref())
    }

    pub fn handle_timeout(&mut self, now: Instant) -> TimerOutput {
        if let Some(timer) = take_due(&mut self.deadline, now) {
            if timer == Timer::Unanswered {
                // Still Proceeding: the TU (or the endpoint for it) may answer now.
                return TimerOutput::Unanswered;
            }
            self.resend = None;
            let was_accepted = self.state == ServerState::Accepted;
            self.state = ServerState::Terminated;
            return if timer == Timer::H && was_accepted {
                TimerOutput::AckTimeout
            } else {
                TimerOutput::Terminated
            };
        }
        if let Some(r) = &mut self.resend
            && r.fire(now, self.timers.t2)
            && let Some(bytes) = &self.last_response
        {
            return TimerOutput::Retransmit(bytes.clone());
        }
        TimerOutput::Nothing
    }
}
