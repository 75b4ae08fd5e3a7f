//! Who owns each live room across nodes: a lease per room in the shared
//! store (owner node, epoch, expiry), claimed by the node whose caller
//! opens the room, renewed about every second while the room lives,
//! released when it empties. This is the sans-IO half: it takes the time
//! and the store's answers and says which store request to make next
//! ([`Leases::poll_request`]) and when it next wants to be woken
//! ([`Leases::poll_timeout`]). The shell (`gateway::leases`) runs the
//! requests and feeds the answers back.
//!
//! ```text
//!            open                 ours (epoch e)
//!   ───────► Claiming ──────────────────────────► Owner(e) ──┐ renewed: valid
//!               │  ▲                                 │  ▲    │ until sent + TTL
//!     another's │  │ every second                    │  └────┘
//!      (live)   ▼  │                     no answer   │
//!             Guest(holder)              by validity ▼
//!                  ▲                             Lapsed(e) ── renewed ──► Owner(e)
//!                  └─── renew refused (a higher epoch took it) → Claiming
//! ```
//!
//! One request per room is in flight at a time, so a release and the next
//! claim of the same room never race. An owner counts its lease valid from
//! the moment it *sent* the claim or renewal, minus a margin for clocks
//! ([`CLOCK_MARGIN`]): the store compares wall-clock expiries written by
//! each node, so nodes must keep their clocks within that margin (NTP).
//! A guest asks again every second, so it takes a room over at most about
//! a second after the owner's lease lapses (the store gives it `epoch + 1`,
//! one winner among the claimants). An owner that cannot renew (the store
//! is down, or it is cut off) goes on mixing: it is `Lapsed` once its
//! validity passes, and `Owner` again if its renewal lands before anyone
//! claimed (the same epoch means no one else owned the room meanwhile).
//!
//! A room mixed here while another node holds its lease (its callers here
//! joined after a leg to the owner failed, or this node was the owner and
//! another took the room while it was cut off) is mixed apart from the
//! owner's: its callers here do not hear the others. Once the holder has
//! kept the room for a lease's length since this node first saw it (so it
//! renews: it is alive, not a dead owner whose lease is about to pass to
//! this node), the core asks for the members here to move to it
//! ([`Leases::poll_move`]), and again at most every [`MOVE_AGAIN_AFTER`]
//! for the same epoch (a move whose legs the owner did not answer leaves
//! the callers here; they are not moved back and forth every second). How
//! they move (over a leg each) is the shell's and the call's business.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::ids::RoomId;

/// How long a claim or renewal holds in the store.
pub const LEASE_TTL: Duration = Duration::from_secs(3);
/// How often an owner renews and a guest asks again.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// An owner stops counting on its lease this long before the store's
/// expiry: the most the nodes' clocks may disagree.
pub const CLOCK_MARGIN: Duration = Duration::from_millis(500);
/// A room mixed here while the same holder (epoch) owns it is moved to it
/// again no sooner than this after the last move.
pub const MOVE_AGAIN_AFTER: Duration = Duration::from_secs(30);
/// A draining node that handed a room on claims it again no sooner than
/// this after letting it go: the nodes whose legs it ended claim it
/// within milliseconds, and one of them should win.
pub const HAND_ON_PAUSE: Duration = Duration::from_secs(1);

/// A lease as the store holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub node_id: String,
    /// Where the owner answers SIP (a leg to the room goes there).
    pub sip_address: String,
    pub epoch: i64,
    /// Held by this process.
    pub ours: bool,
}

/// Where this node stands on one of its live rooms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Asked the store; no answer yet.
    Claiming,
    /// This node owns the room at `epoch`, valid until `until`.
    Owner { epoch: i64, until: Instant },
    /// Owned at `epoch`, but no renewal landed within the lease: another
    /// node may claim it now.
    Lapsed { epoch: i64 },
    /// Another node owns the room.
    Guest(Holder),
}

impl Standing {
    /// The epoch this node holds or held the room at.
    fn own_epoch(&self) -> Option<i64> {
        match self {
            Standing::Owner { epoch, .. } | Standing::Lapsed { epoch } => Some(*epoch),
            Standing::Claiming | Standing::Guest(_) => None,
        }
    }
}

/// What to ask of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Request {
    /// Take the room if nobody holds a live lease on it; answer with who
    /// holds it then ([`Leases::on_claim`]).
    Claim(RoomId),
    /// Extend this process's lease at `epoch` ([`Leases::on_renew`]).
    Renew(RoomId, i64),
    /// Let the room go at `epoch` ([`Leases::on_release`]).
    Release(RoomId, i64),
}

/// A change of standing worth telling (logs, the API, later the calls).
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct Change {
    pub room: RoomId,
    pub standing: Standing,
}

#[derive(Debug)]
struct Entry {
    standing: Standing,
    /// The room has members here (false once closed: the entry stays
    /// until its release is answered).
    open: bool,
    /// When the request in flight was made; `None` when none is.
    in_flight: Option<Instant>,
    /// When the next claim or renewal is due.
    due: Instant,
    /// The epoch another node was first seen holding the room at while it
    /// was open here, and when.
    guest_since: Option<(i64, Instant)>,
    /// This node handed the room on (it drains): when.
    handed: Option<Instant>,
}

/// Every live room's lease standing on this node.
#[derive(Debug)]
pub struct Leases {
    ttl: Duration,
    renew_every: Duration,
    rooms: BTreeMap<RoomId, Entry>,
    requests: VecDeque<Request>,
    changes: VecDeque<Change>,
    moves: VecDeque<RoomId>,
    /// Rooms handed on whose release the store answered: their legs from
    /// other nodes are to end now.
    handed: VecDeque<RoomId>,
    /// The holder's epoch each room was last moved to, and when; kept
    /// across the room closing here and opening again.
    moved: BTreeMap<RoomId, (i64, Instant)>,
}

impl Default for Leases {
    fn default() -> Leases {
        Leases::new(LEASE_TTL, RENEW_EVERY)
    }
}

impl Leases {
    pub fn new(ttl: Duration, renew_every: Duration) -> Leases {
        Leases {
            ttl,
            renew_every,
            rooms: BTreeMap::new(),
            requests: VecDeque::new(),
            changes: VecDeque::new(),
            moves: VecDeque::new(),
            handed: VecDeque::new(),
            moved: BTreeMap::new(),
        }
    }

    /// The lease the store is asked to write: what a claim or renewal
    /// made now holds for.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// `room` got its first member here: claim it.
    pub fn open(&mut self, now: Instant, room: RoomId) {
        let entry = self.rooms.entry(room).or_insert(Entry {
            standing: Standing::Claiming,
            open: true,
            in_flight: None,
            due: now,
            guest_since: None,
            handed: None,
        });
        entry.open = true;
        if entry.in_flight.is_none() {
            entry.due = now;
            self.handle_timeout(now);
        }
    }

    /// `room`'s last member here left: release it if this node holds it.
    pub fn close(&mut self, now: Instant, room: RoomId) {
        let Some(entry) = self.rooms.get_mut(&room) else {
            return;
        };
        entry.open = false;
        if entry.in_flight.is_none() {
            self.settle(now, room);
        }
    }

    /// Every room this node holds, released (the process is stopping).
    pub fn close_all(&mut self, now: Instant) {
        let rooms: Vec<RoomId> = self.rooms.keys().copied().collect();
        for room in rooms {
            self.close(now, room);
        }
    }

    /// This node drains: it lets `room`, which it owns and which has
    /// callers of other nodes in it, go to one of those nodes. The lease is
    /// released; once the store answered, the room's legs are to end
    /// ([`Leases::poll_handed`]) so their nodes claim it, and this node
    /// asks again only after [`HAND_ON_PAUSE`]: it finds the new owner and
    /// moves its own callers there at once (no lease's length of waiting:
    /// the new owner just claimed it), or, if nobody took the room, keeps
    /// it. Once per room; false if it is not held here now (or a request
    /// is in flight: ask again later).
    pub fn hand_on(&mut self, now: Instant, room: RoomId) -> bool {
        let Some(entry) = self.rooms.get_mut(&room) else {
            return false;
        };
        let Some(epoch) = entry.standing.own_epoch() else {
            return false;
        };
        if !entry.open || entry.in_flight.is_some() || entry.handed.is_some() {
            return false;
        }
        entry.in_flight = Some(now);
        entry.handed = Some(now);
        self.requests.push_back(Request::Release(room, epoch));
        self.set(room, Standing::Claiming);
        true
    }

    /// Rooms held here now, not yet handed on.
    pub fn held(&self) -> Vec<RoomId> {
        self.rooms
            .iter()
            .filter(|(_, e)| e.open && e.handed.is_none() && e.standing.own_epoch().is_some())
            .map(|(room, _)| *room)
            .collect()
    }

    /// The next room handed on whose legs from other nodes are to end.
    pub fn poll_handed(&mut self) -> Option<RoomId> {
        self.handed.pop_front()
    }

    /// The store's answer to [`Request::Claim`]: who holds `room` now, or
    /// `None` when the store could not be asked.
    pub fn on_claim(&mut self, now: Instant, room: RoomId, holder: Option<Holder>) {
        let Some(sent) = self.answered(room) else {
            return;
        };
        if let Some(holder) = holder {
            let standing = if holder.ours {
                Standing::Owner {
                    epoch: holder.epoch,
                    until: self.valid_until(sent),
                }
            } else {
                self.move_if_due(now, room, holder.epoch);
                Standing::Guest(holder)
            };
            self.set(room, standing);
        }
        // Renew, or ask again, or retry after a store error: a period on.
        self.next_after(now, room, now + self.renew_every);
    }

    /// The store's answer to [`Request::Renew`]: `Some(true)` renewed,
    /// `Some(false)` the lease is no longer this process's (another node
    /// took the room at a higher epoch), `None` the store could not be
    /// asked.
    pub fn on_renew(&mut self, now: Instant, room: RoomId, renewed: Option<bool>) {
        let Some(sent) = self.answered(room) else {
            return;
        };
        let epoch = self.rooms.get(&room).and_then(|e| e.standing.own_epoch());
        let mut next = now + self.renew_every;
        match (renewed, epoch) {
            (Some(true), Some(epoch)) => {
                let until = self.valid_until(sent);
                self.set(room, Standing::Owner { epoch, until });
            }
            (Some(false), _) => {
                // Demoted: ask at once who holds it now.
                self.set(room, Standing::Claiming);
                next = now;
            }
            // The store could not be asked: try again a period on (the
            // lease lapses meanwhile if it must).
            _ => {}
        }
        self.next_after(now, room, next);
    }

    /// The store's answer to [`Request::Release`]: `released`, or not (a
    /// lease not released lapses by itself). A room being handed on whose
    /// release failed is not handed on: it is claimed again at once (this
    /// node still holds it) and handed on at the next try.
    pub fn on_release(&mut self, now: Instant, room: RoomId, released: bool) {
        if self.answered(room).is_none() {
            return;
        }
        let mut next = now;
        if let Some(entry) = self.rooms.get_mut(&room) {
            // Released: if the room opened again meanwhile, claim afresh.
            entry.standing = Standing::Claiming;
            if entry.open && entry.handed.is_some() {
                if released {
                    self.handed.push_back(room);
                    next = now + HAND_ON_PAUSE;
                } else {
                    entry.handed = None;
                }
            }
        }
        self.next_after(now, room, next);
    }

    /// Renewals and claims that are due; owners whose validity passed
    /// become `Lapsed`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut lapsed = Vec::new();
        for (room, entry) in &mut self.rooms {
            if let Standing::Owner { epoch, until } = entry.standing
                && until <= now
            {
                lapsed.push((*room, epoch));
            }
            if entry.open && entry.in_flight.is_none() && entry.due <= now {
                entry.in_flight = Some(now);
                self.requests.push_back(match entry.standing.own_epoch() {
                    Some(epoch) => Request::Renew(*room, epoch),
                    None => Request::Claim(*room),
                });
            }
        }
        for (room, epoch) in lapsed {
            self.set(room, Standing::Lapsed { epoch });
        }
    }

    /// When [`Leases::handle_timeout`] next has work.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.rooms
            .values()
            .flat_map(|e| {
                let due = (e.open && e.in_flight.is_none()).then_some(e.due);
                let lapse = match e.standing {
                    Standing::Owner { until, .. } => Some(until),
                    _ => None,
                };
                due.into_iter().chain(lapse)
            })
            .min()
    }

    /// The next store request to make.
    pub fn poll_request(&mut self) -> Option<Request> {
        self.requests.pop_front()
    }

    /// The next room whose members here are to move to its owner.
    pub fn poll_move(&mut self) -> Option<RoomId> {
        self.moves.pop_front()
    }

    /// `room`, open here, is held by another node at `epoch`: its members
    /// here move there once that node has kept the room for a lease's
    /// length since this node first saw it hold it (an owner that died
    /// loses its lease within that, and this node takes the room instead
    /// of moving its callers to a dead node), unless they were moved to
    /// that epoch lately.
    fn move_if_due(&mut self, now: Instant, room: RoomId, epoch: i64) {
        self.moved.retain(|_, (_, at)| now < *at + MOVE_AGAIN_AFTER);
        let Some(entry) = self.rooms.get_mut(&room).filter(|e| e.open) else {
            return;
        };
        let since = match entry.guest_since {
            Some((e, at)) if e == epoch => at,
            _ => entry.guest_since.insert((epoch, now)).1,
        };
        let lately = self.moved.get(&room).is_some_and(|(e, _)| *e == epoch);
        // A room handed on went to a node that just claimed it: alive.
        let alive = entry.handed.is_some() || now >= since + self.ttl;
        if alive && !lately {
            self.moved.insert(room, (epoch, now));
            self.moves.push_back(room);
        }
    }

    /// The next change of standing.
    pub fn poll_change(&mut self) -> Option<Change> {
        self.changes.pop_front()
    }

    pub fn standing(&self, room: RoomId) -> Option<&Standing> {
        self.rooms.get(&room).map(|e| &e.standing)
    }

    /// Rooms with an entry (open, or closed with a release under way).
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    fn valid_until(&self, sent: Instant) -> Instant {
        sent + self.ttl.saturating_sub(CLOCK_MARGIN)
    }

    /// Clears the room's request in flight; `None` if it had none (an
    /// answer for a room this node no longer knows).
    fn answered(&mut self, room: RoomId) -> Option<Instant> {
        self.rooms.get_mut(&room)?.in_flight.take()
    }

    /// What follows an answer: the room's next claim or renewal at
    /// `next`, or, for a closed room, its release.
    fn next_after(&mut self, now: Instant, room: RoomId, next: Instant) {
        if let Some(entry) = self.rooms.get_mut(&room) {
            entry.due = next;
        }
        self.settle(now, room);
    }

    /// A closed room with nothing in flight: released if this node held
    /// it, else forgotten. An open one: its next request if due.
    fn settle(&mut self, now: Instant, room: RoomId) {
        let Some(entry) = self.rooms.get_mut(&room) else {
            return;
        };
        if entry.open {
            self.handle_timeout(now);
            return;
        }
        match entry.standing.own_epoch() {
            Some(epoch) => {
                entry.in_flight = Some(now);
                // Owner no more, whatever the store says.
                entry.standing = Standing::Claiming;
                self.requests.push_back(Request::Release(room, epoch));
            }
            None => {
                self.rooms.remove(&room);
            }
        }
    }

    fn set(&mut self, room: RoomId, standing: Standing) {
        let Some(entry) = self.rooms.get_mut(&room) else {
            return;
        };
        if !same_standing(&entry.standing, &standing) {
            self.changes.push_back(Change {
                room,
                standing: standing.clone(),
            });
        }
        entry.standing = standing;
    }
}

/// The same standing but for the owner's validity (a renewal is not a
/// change).
fn same_standing(a: &Standing, b: &Standing) -> bool {
    match (a, b) {
        (Standing::Owner { epoch: x, .. }, Standing::Owner { epoch: y, .. }) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests;
