//! The bridge's decisions, sans-IO: who to place the leg with, when to
//! give a leg up, when to ask the owner again and when to join the room on
//! this node instead. Inputs with the current time in, [`Do`]s out
//! ([`BridgeCore::poll`]), the next deadline from
//! [`BridgeCore::poll_timeout`] — the shape of the call's own core. The
//! shell (`bridge.rs`) claims leases, places and hangs up legs, moves RTP
//! and joins rooms.
//!
//! ```text
//!  Asking ─lease elsewhere─► Inviting ─2xx─► Up ─silent 1 s─► Asking (that owner suspect;
//!                                               BYE "shutting down": that owner avoided)
//!    │ ours / free / 2 s       │ 503: Waiting 200 ms, Asking (3 times)
//!    ▼                         │ other failure, no answer in 1.5 s (BYE/CANCEL)
//!   Here ◄─────────────────────┘ (a suspect that fails again is avoided;
//!                                 10 s of media clear the suspicion)
//! ```

use std::time::{Duration, Instant};

/// No RTP from the owner for this long: the leg is taken for dead, and
/// the owner is asked for a new one.
pub const LEG_SILENCE: Duration = Duration::from_millis(1000);

/// A leg not answered within this long is cancelled (the owner answers at
/// once when it is alive), and the caller joins on its own node.
pub const LEG_ANSWER_LIMIT: Duration = Duration::from_millis(1500);

/// A leg the owner refused with 503 (the room not held there yet: its
/// lease task is a moment behind the claim this node saw, or it lapsed)
/// is asked for again after this long, at most [`LEG_RETRIES`] times.
pub const LEG_RETRY_AFTER: Duration = Duration::from_millis(200);
pub const LEG_RETRIES: u32 = 3;

/// A claim of the room's lease not answered within this long (the store
/// unreachable, or too slow): the caller joins on its own node.
pub const LEG_CLAIM_LIMIT: Duration = Duration::from_secs(2);

/// A leg that carried the owner's media this long after a silence clears
/// the owner of suspicion: a later silence is a new first one.
pub const LEG_TRUSTED_AFTER: Duration = Duration::from_secs(10);

/// The node holding a room's lease, as the claim found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub node_id: String,
    /// Its process (a restarted node is another).
    pub instance: String,
    pub sip_address: String,
    pub epoch: i64,
}

/// What claiming the room's lease found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lease {
    /// This node holds it now.
    Ours,
    /// Another node's process holds it, unexpired.
    Elsewhere(Holder),
    /// Nobody can be asked (the store failed): the room goes on here.
    Unknown,
}

/// What the shell does for the bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Do {
    /// Claim the room's lease; answer with [`BridgeCore::on_lease`].
    Claim,
    /// Place a leg to this holder; answer with `on_answered`, `on_refused`
    /// or `on_invite_failed`.
    Invite(Holder),
    /// Hang up (or cancel) the leg placed last.
    Bye,
    /// The leg is answered: the caller is in the room over it.
    Up,
    /// Join the room on this node (the bridge is over).
    JoinHere,
}

#[derive(Debug)]
enum State {
    /// A claim is under way, answered by `until` or given up.
    Asking {
        until: Instant,
    },
    /// Asking again at `until` (the owner was not ready).
    Waiting {
        until: Instant,
    },
    Inviting {
        since: Instant,
        instance: String,
    },
    Up {
        instance: String,
        /// When it was answered.
        since: Instant,
        last_heard: Instant,
        /// When silence is next checked: moved on from `last_heard` when it
        /// comes due, not by every packet.
        check_at: Instant,
    },
    /// Joined here, or the owner ended the leg.
    Over,
}

/// One call's bridge to the node that owns its room.
#[derive(Debug)]
pub struct BridgeCore {
    state: State,
    /// A process not to be asked again: a leg to it failed.
    avoid: Option<String>,
    /// A process whose leg fell silent: asked once more, then avoided.
    suspect: Option<String>,
    retries: u32,
    /// The leg that was up fell silent, and the caller is not in the room
    /// again yet (over a new leg, or here): it hears the moving tone.
    moving: bool,
    out: std::collections::VecDeque<Do>,
}

impl BridgeCore {
    /// A bridge that starts by claiming the room's lease.
    pub fn new(now: Instant) -> BridgeCore {
        let mut core = BridgeCore {
            state: State::Asking {
                until: now + LEG_CLAIM_LIMIT,
            },
            avoid: None,
            suspect: None,
            retries: 0,
            moving: false,
            out: Default::default(),
        };
        core.out.push_back(Do::Claim);
        core
    }

    /// A bridge for a caller that was in the room on this node while
    /// another node owned it: moving from the start.
    pub fn moving(now: Instant) -> BridgeCore {
        let mut core = BridgeCore::new(now);
        core.moving = true;
        core
    }

    pub fn poll(&mut self) -> Option<Do> {
        self.out.pop_front()
    }

    /// The leg is answered and carries media.
    pub fn is_up(&self) -> bool {
        matches!(self.state, State::Up { .. })
    }

    /// The caller's leg fell silent (or it was in the room here while
    /// another node owned it: [`BridgeCore::moving`]) and it is on its way
    /// back into the room: until a leg is answered or it joins here.
    /// Not while a first leg is placed, nor while a leg is placed again
    /// because the caller's session changed.
    pub fn is_moving(&self) -> bool {
        self.moving
    }

    /// Nothing more to do: joined here, or ended.
    pub fn is_over(&self) -> bool {
        matches!(self.state, State::Over) && self.out.is_empty()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Asking { until } | State::Waiting { until } => Some(*until),
            State::Inviting { since, .. } => Some(*since + LEG_ANSWER_LIMIT),
            State::Up { check_at, .. } => Some(*check_at),
            State::Over => None,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.state {
            State::Asking { until } if now >= *until => {
                tracing::warn!(limit = ?LEG_CLAIM_LIMIT, "the room's lease could not be claimed in time: joining here");
                self.join_here();
            }
            State::Waiting { until } if now >= *until => self.ask(now),
            State::Inviting { since, instance } if now >= *since + LEG_ANSWER_LIMIT => {
                tracing::warn!(limit = ?LEG_ANSWER_LIMIT, "the room's owner did not answer the leg: joining here");
                self.avoid = Some(std::mem::take(instance));
                self.out.push_back(Do::Bye);
                self.join_here();
            }
            State::Up {
                instance,
                since,
                last_heard,
                check_at,
            } if now >= *check_at => {
                if now < *last_heard + LEG_SILENCE {
                    *check_at = *last_heard + LEG_SILENCE;
                    if now >= *since + LEG_TRUSTED_AFTER {
                        self.suspect = None;
                    }
                    return;
                }
                tracing::warn!(silent = ?LEG_SILENCE, "the room's owner fell silent: leg dropped, asking again");
                metrics::counter!("dialgate_legs_lost_total").increment(1);
                let instance = std::mem::take(instance);
                // Silent twice in a row: no more chances.
                if self.suspect.as_deref() == Some(instance.as_str()) {
                    self.avoid = Some(instance.clone());
                }
                self.suspect = Some(instance);
                self.out.push_back(Do::Bye);
                self.moving = true;
                self.ask(now);
            }
            _ => {}
        }
    }

    fn ask(&mut self, now: Instant) {
        self.state = State::Asking {
            until: now + LEG_CLAIM_LIMIT,
        };
        self.out.push_back(Do::Claim);
    }

    fn join_here(&mut self) {
        self.moving = false;
        self.state = State::Over;
        self.out.push_back(Do::JoinHere);
    }

    /// The claim's answer: place a leg with the holder, or join here.
    pub fn on_lease(&mut self, now: Instant, lease: Lease) {
        if !matches!(self.state, State::Asking { .. }) {
            return;
        }
        match lease {
            Lease::Elsewhere(holder) if self.avoid.as_ref() != Some(&holder.instance) => {
                self.state = State::Inviting {
                    since: now,
                    instance: holder.instance.clone(),
                };
                self.out.push_back(Do::Invite(holder));
            }
            Lease::Elsewhere(_) => {
                tracing::info!(
                    "the room's owner failed its leg and still holds the lease: joining here"
                );
                self.join_here();
            }
            Lease::Ours | Lease::Unknown => self.join_here(),
        }
    }

    /// The leg could not even be placed (no port, an address we cannot
    /// reach): join here.
    pub fn on_invite_failed(&mut self) {
        if matches!(self.state, State::Inviting { .. }) {
            self.join_here();
        }
    }

    /// The owner answered the leg.
    pub fn on_answered(&mut self, now: Instant) {
        let State::Inviting { instance, .. } = &mut self.state else {
            return;
        };
        let instance = std::mem::take(instance);
        if self.suspect.as_deref() == Some(instance.as_str()) {
            tracing::info!("the room's owner answered again after its silence");
        }
        self.retries = 0;
        self.moving = false;
        self.state = State::Up {
            instance,
            since: now,
            last_heard: now,
            check_at: now + LEG_SILENCE,
        };
        self.out.push_back(Do::Up);
    }

    /// The owner's answer cannot be used (no address, no codec we sent).
    pub fn on_answer_unusable(&mut self) {
        if matches!(self.state, State::Inviting { .. }) {
            tracing::warn!("the owner's answer is unusable: leg dropped, joining here");
            self.out.push_back(Do::Bye);
            self.join_here();
        }
    }

    /// The owner refused the leg with `status`.
    pub fn on_refused(&mut self, now: Instant, status: u16) {
        if !matches!(self.state, State::Inviting { .. }) {
            return;
        }
        if status == 503 && self.retries < LEG_RETRIES {
            self.retries += 1;
            tracing::info!(
                status,
                "the room's owner is not ready for the leg: asking again"
            );
            self.state = State::Waiting {
                until: now + LEG_RETRY_AFTER,
            };
            return;
        }
        tracing::warn!(status, "the room's owner refused the leg: joining here");
        self.join_here();
    }

    /// Media from the owner.
    pub fn on_media(&mut self, now: Instant) {
        if let State::Up { last_heard, .. } = &mut self.state {
            *last_heard = now;
        }
    }

    /// The owner hung the leg up (its room ended, or it stopped): the
    /// bridge is over, and the caller is told the room closed.
    pub fn on_owner_bye(&mut self) -> bool {
        if matches!(self.state, State::Up { .. }) {
            self.state = State::Over;
            return true;
        }
        false
    }

    /// The owner hung the leg up because it is stopping (a BYE with the
    /// shutting-down reason): the room goes on elsewhere. The caller moves
    /// as after a silence, and that process is not asked again.
    pub fn on_owner_stopping(&mut self, now: Instant) {
        if let State::Up { instance, .. } = &mut self.state {
            self.avoid = Some(std::mem::take(instance));
            self.moving = true;
            self.ask(now);
        }
    }

    /// The caller's session changed (codec, payload types): the leg, which
    /// relays the caller's packets as they are, is placed again.
    pub fn renegotiated(&mut self, now: Instant) {
        if matches!(self.state, State::Inviting { .. } | State::Up { .. }) {
            tracing::info!("the caller's session changed: placing its leg again");
            self.out.push_back(Do::Bye);
            self.ask(now);
        }
    }

    /// The call is ending: a leg placed or up is hung up.
    pub fn close(&mut self) {
        if matches!(self.state, State::Inviting { .. } | State::Up { .. }) {
            self.out.push_back(Do::Bye);
        }
        self.moving = false;
        self.state = State::Over;
    }
}

#[cfg(test)]
mod tests;
