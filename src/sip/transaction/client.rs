//! The client transactions: non-INVITE (§17.1.2) and INVITE (§17.1.1 with RFC 6026).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Pending, Resend, Timer, TimerConfig, TimerOutput, earliest, take_due};

/// A non-INVITE client transaction (the gateway's BYE and INFO).
#[derive(Debug)]
pub struct ClientTx {
    reliable: bool,
    request: Bytes,
    timers: TimerConfig,
    resend: Option<Resend>,
    deadline: Pending,
    completed: bool,
}

impl ClientTx {
    /// Starts the transaction; the shell sends `request` once now.
    pub fn new(now: Instant, request: Bytes, reliable: bool, timers: TimerConfig) -> ClientTx {
        ClientTx {
            reliable,
            request,
            timers,
            resend: Resend::from_t1(now, timers, reliable),
            deadline: Pending {
                timer: Timer::F,
                at: now + 64 * timers.t1,
            },
            completed: false,
        }
    }

    /// A response arrived. Returns true for the first final response.
    pub fn recv_response(&mut self, now: Instant, status: u16) -> bool {
        if status < 200 {
            // Provisional: keep retransmitting at T2 (§17.1.2.2).
            if let Some(r) = &mut self.resend {
                r.interval = self.timers.t2;
                r.at = r.at.min(now + self.timers.t2);
            }
            return false;
        }
        if self.completed {
            return false;
        }
        self.completed = true;
        self.resend = None;
        let wait = if self.reliable {
            Duration::ZERO
        } else {
            self.timers.t4
        };
        self.deadline = Pending {
            timer: Timer::K,
            at: now + wait,
        };
        true
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(self.resend.as_ref(), Some(&self.deadline))
    }

    pub fn handle_timeout(&mut self, now: Instant) -> TimerOutput {
        if now >= self.deadline.at {
            return if self.deadline.timer == Timer::F {
                TimerOutput::RequestTimeout
            } else {
                TimerOutput::Terminated
            };
        }
        if let Some(r) = &mut self.resend
            && r.fire(now, self.timers.t2)
        {
            return TimerOutput::Retransmit(self.request.clone());
        }
        TimerOutput::Nothing
    }
}

/// An INVITE client transaction's state (RFC 3261 §17.1.1, with RFC
/// 6026's Accepted in place of terminating on the 2xx).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InviteClientState {
    /// Sent; Timer A retransmits it (UDP), Timer B gives up.
    Calling,
    /// A provisional came: no more retransmissions, no Timer B; waits for the final answer.
    Proceeding,
    /// A 2xx came: the TU acknowledges it (and every 2xx retransmission) outside the
    /// transaction; Timer M keeps the transaction to absorb forks' and late 2xx.
    Accepted,
    /// A failure came: the transaction's own ACK answers each retransmission of it until Timer D.
    Completed,
    Terminated,
}

/// What the shell does with a response to its INVITE.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum InviteResponse {
    /// Hand it to the TU: a provisional, or a 2xx (the first or again: the TU
    /// sends its ACK for each, §13.2.2.4).
    Deliver,
    /// The first failure (300–699): hand it to the TU, and give the
    /// transaction the ACK built from it ([`InviteClientTx::send_ack`]), which
    /// the shell sends now.
    Rejected,
    /// The failure again: send these bytes (the ACK) again.
    Resend(Bytes),
    /// Nothing to do: a provisional after the final answer, or anything after the end.
    Absorb,
}

/// The INVITE client transaction: the gateway's legs to other nodes, the
/// replay tool's and the test caller's INVITEs.
#[derive(Debug)]
pub struct InviteClientTx {
    state: InviteClientState,
    reliable: bool,
    request: Bytes,
    timers: TimerConfig,
    resend: Option<Resend>,
    deadline: Option<Pending>,
    ack: Option<Bytes>,
    /// When the TU gives up, cancelled: a provisional does not lift it.
    give_up: Option<Instant>,
}

impl InviteClientTx {
    /// Starts the transaction in Calling; the shell sends `request` once now.
    pub fn new(
        now: Instant,
        request: Bytes,
        reliable: bool,
        timers: TimerConfig,
    ) -> InviteClientTx {
        InviteClientTx {
            state: InviteClientState::Calling,
            reliable,
            request,
            timers,
            resend: Resend::from_t1(now, timers, reliable),
            deadline: Some(Pending {
                timer: Timer::B,
                at: now + 64 * timers.t1,
            }),
            ack: None,
            give_up: None,
        }
    }

    pub fn state(&self) -> InviteClientState {
        self.state
    }

    /// A response to the INVITE arrived (the shell matched its branch and CSeq).
    pub fn recv_response(&mut self, now: Instant, status: u16) -> InviteResponse {
        use InviteClientState::*;
        let calling = matches!(self.state, Calling | Proceeding);
        match status {
            100..=199 if calling => {
                // §17.1.1.2: Proceeding stops Timer A and Timer B alike
                // (not the TU's own limit on a cancelled INVITE).
                self.state = Proceeding;
                self.resend = None;
                self.deadline = self.give_up.map(|at| Pending {
                    timer: Timer::B,
                    at,
                });
                InviteResponse::Deliver
            }
            200..=299 if calling || self.state == Accepted => {
                if calling {
                    self.state = Accepted;
                    self.resend = None;
                    self.deadline = Some(Pending {
                        timer: Timer::M,
                        at: now + 64 * self.timers.t1,
                    });
                }
                InviteResponse::Deliver
            }
            300..=699 if calling => {
                self.state = Completed;
                self.resend = None;
                // Timer D: at least 32 s on UDP to answer retransmitted
                // failures; none on a reliable transport.
                let wait = if self.reliable {
                    Duration::ZERO
                } else {
                    (64 * self.timers.t1).max(Duration::from_secs(32))
                };
                self.deadline = Some(Pending {
                    timer: Timer::D,
                    at: now + wait,
                });
                InviteResponse::Rejected
            }
            300..=699 if self.state == Completed => self
                .ack
                .clone()
                .map_or(InviteResponse::Absorb, InviteResponse::Resend),
            _ => InviteResponse::Absorb,
        }
    }

    /// The ACK for the failure just delivered as [`InviteResponse::Rejected`]
    /// (the shell sends it once now; the transaction keeps it for retransmitted
    /// failures). A shell that ends the call with the refusal, as the load
    /// tool and the tests' caller do, drops the transaction instead; one that
    /// lives on (an INVITE to another node) hands it the ACK here.
    pub fn send_ack(&mut self, ack: Bytes) {
        if self.state == InviteClientState::Completed {
            self.ack = Some(ack);
        }
    }

    /// The TU cancelled the INVITE: if no final answer comes by `at`
    /// (64·T1 after the CANCEL, RFC 3261 §9.1), the transaction ends as
    /// if Timer B fired, even after a provisional stopped Timer B.
    pub fn give_up_at(&mut self, at: Instant) {
        if matches!(
            self.state,
            InviteClientState::Calling | InviteClientState::Proceeding
        ) {
            self.give_up = Some(at);
            self.deadline = Some(Pending {
                timer: Timer::B,
                at,
            });
        }
    }

    /// The TU gives up on the call (a CANCEL went unanswered, the run is
    /// over): nothing more is sent or awaited.
    pub fn terminate(&mut self) {
        self.state = InviteClientState::Terminated;
        self.resend = None;
        self.deadline = None;
    }

    /// The time `handle_timeout` must next be called at.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(self.resend.as_ref(), self.deadline.as_ref())
    }

    pub fn handle_timeout(&mut self, now: Instant) -> TimerOutput {
        if let Some(timer) = take_due(&mut self.deadline, now) {
            self.terminate();
            return if timer == Timer::B {
                TimerOutput::RequestTimeout
            } else {
                TimerOutput::Terminated
            };
        }
        // Timer A doubles with no T2 cap (§17.1.1.2): Timer B ends it.
        if let Some(r) = &mut self.resend
            && r.fire(now, Duration::MAX)
        {
            return TimerOutput::Retransmit(self.request.clone());
        }
        TimerOutput::Nothing
    }
}
