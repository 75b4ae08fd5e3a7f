//! RFC 3261 §17 transactions, sans-IO: timers are data, time is an argument.
//!
//! Server side (what a dial-in UA mostly is), with the RFC 6026 "Accepted"
//! state for the INVITE server transaction, where the UAS core's 2xx is
//! retransmitted until the ACK (§13.3.1.4):
//!
//! ```text
//!                 INVITE                        non-INVITE
//!   ┌────────────┐ 1xx                  ┌──────────┐
//!   │ Proceeding │◄── retransmitted     │  Trying  │── final ──► Completed ─Timer J─► Terminated
//!   └─┬────────┬─┘    INVITE: resend    └──────────┘  (request retransmission → resend final)
//!  2xx│        │300-699
//!     ▼        ▼
//! Accepted   Completed ─ACK─► Confirmed ─Timer I─► Terminated
//!  Timer G: 2xx again,  Timer G: final again (UDP),
//!  T1·2ⁿ capped at T2;  Timer H (64·T1): Terminated
//!  ACK → Confirmed, then Timer L (64·T1) absorbs INVITE
//!  retransmissions → Terminated;
//!  Timer H (64·T1) without ACK → AckTimeout (the UA then sends BYE)
//! ```
//!
//! Client side: the non-INVITE client transaction (§17.1.2) for the BYE and
//! the outcome INFO the gateway sends (and the replay tool's requests): Timer E retransmits (UDP), Timer F gives up, Timer K
//! absorbs response retransmissions. The gateway does not send INVITEs yet.

use std::time::{Duration, Instant};

use bytes::Bytes;

/// RFC 3261 Table 4 timer values; tests and `serve` flags may shorten them.
#[derive(Clone, Copy, Debug)]
pub struct TimerConfig {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// Timer names from RFC 3261 Table 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Response retransmission (INVITE server, also the 2xx in Accepted).
    G,
    /// Wait for ACK.
    H,
    /// Absorb ACK retransmissions.
    I,
    /// Absorb request retransmissions (non-INVITE server).
    J,
    /// Request retransmission (non-INVITE client).
    E,
    /// Non-INVITE client gives up.
    F,
    /// Absorb response retransmissions (non-INVITE client).
    K,
    /// Absorb INVITE retransmissions after the 2xx was acknowledged (RFC 6026).
    L,
    /// Guard: the TU never answered the request (ours, not RFC 3261's).
    Unanswered,
}

/// How long a request may wait for the TU's final answer before the
/// transaction answers it itself (INVITE: 500; others: dropped).
pub const UNANSWERED_INVITE: Duration = Duration::from_secs(180);

/// What a fired timer asks the shell to do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum TimerOutput {
    /// Send these bytes again.
    Retransmit(Bytes),
    /// The INVITE's 2xx was never acknowledged.
    AckTimeout,
    /// A client transaction got no final response.
    RequestTimeout,
    /// The TU never gave a final response to this request.
    Unanswered,
    /// The transaction is over; drop it.
    Terminated,
    Nothing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerState {
    Proceeding,
    Accepted,
    Completed,
    Confirmed,
    Terminated,
}

#[derive(Debug, Clone)]
struct Pending {
    timer: Timer,
    at: Instant,
}

#[derive(Debug, Clone)]
struct Resend {
    at: Instant,
    interval: Duration,
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
        let resend = self.resend.as_ref().map(|r| r.at);
        let deadline = self.deadline.as_ref().map(|d| d.at);
        match (resend, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) -> TimerOutput {
        if let Some(d) = &self.deadline
            && now >= d.at
        {
            let timer = d.timer;
            self.deadline = None;
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
            && now >= r.at
        {
            r.interval = (r.interval * 2).min(self.timers.t2);
            r.at = now + r.interval;
            if let Some(bytes) = &self.last_response {
                return TimerOutput::Retransmit(bytes.clone());
            }
        }
        TimerOutput::Nothing
    }
}

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
            resend: (!reliable).then_some(Resend {
                at: now + timers.t1,
                interval: timers.t1,
            }),
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
        let resend = self.resend.as_ref().map(|r| r.at);
        Some(resend.map_or(self.deadline.at, |r| r.min(self.deadline.at)))
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
            && now >= r.at
        {
            r.interval = (r.interval * 2).min(self.timers.t2);
            r.at = now + r.interval;
            return TimerOutput::Retransmit(self.request.clone());
        }
        TimerOutput::Nothing
    }
}

#[cfg(test)]
mod tests;
