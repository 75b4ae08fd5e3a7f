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
//! Client side (`client`): the non-INVITE client transaction (§17.1.2) for
//! the BYE, CANCEL and INFO the gateway sends (and the replay tool's
//! requests): Timer E retransmits (UDP), Timer F gives up, Timer K absorbs
//! response retransmissions. And the INVITE client transaction (§17.1.1,
//! RFC 6026) for the gateway's legs to other nodes and the load tool's and
//! the test caller's INVITEs:
//!
//! ```text
//!   Calling ─1xx─► Proceeding ─2xx─► Accepted ─Timer M─► Terminated
//!   Timer A: resend at T1·2ⁿ (UDP)   every 2xx to the TU, which ACKs it
//!   Timer B (64·T1): RequestTimeout
//!      └──────300-699 (from either)──► Completed ─Timer D─► Terminated
//!                                      ACK sent by the transaction, and
//!                                      again for each retransmitted failure
//! ```

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
    /// INVITE request retransmission (INVITE client, UDP).
    A,
    /// INVITE client gives up waiting for any response.
    B,
    /// Absorb retransmitted failures, answering each with the ACK (INVITE client).
    D,
    /// Absorb 2xx retransmissions and forks' 2xx after the first (RFC 6026).
    M,
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

mod client;
mod server;

pub use client::{ClientTx, InviteClientState, InviteClientTx, InviteResponse};
pub use server::{ServerState, ServerTx};

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

impl Resend {
    /// Retransmissions from T1 on an unreliable transport; none on a reliable one.
    fn from_t1(now: Instant, timers: TimerConfig, reliable: bool) -> Option<Resend> {
        (!reliable).then_some(Resend {
            at: now + timers.t1,
            interval: timers.t1,
        })
    }

    /// Whether the retransmission is due at `now`; when it is, the next one
    /// is set, the interval doubled up to `cap`.
    fn fire(&mut self, now: Instant, cap: Duration) -> bool {
        if now < self.at {
            return false;
        }
        self.interval = self.interval.saturating_mul(2).min(cap);
        self.at = now + self.interval;
        true
    }
}

/// Takes the deadline out of `slot` when it is due at `now`: its timer.
fn take_due(slot: &mut Option<Pending>, now: Instant) -> Option<Timer> {
    slot.take_if(|d| now >= d.at).map(|d| d.timer)
}

/// The earlier of a pending retransmission and a deadline.
fn earliest(resend: Option<&Resend>, deadline: Option<&Pending>) -> Option<Instant> {
    match (resend.map(|r| r.at), deadline.map(|d| d.at)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests;
