//! Every live room of this gateway, by room id: joining (which starts a
//! room's clock, [`super::clock`]), leaving (the room goes with its last
//! member), admitting from the waiting room, and the in-call commands that
//! act on a whole room (lock, mute all, the count). A room's opening and
//! closing can be told to a listener ([`Rooms::announcing`]: the node's
//! room leases), which in turn records who owns the room
//! ([`Rooms::set_owner`]) for the live view.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::clock::run_room;
use super::member::Member;
use super::mixer::Mixer;
use super::room::Room;
use super::roster::{AdmitError, Policy, Presence, Refusal, Role};
use super::standing::standing_of;
use super::tones;
use crate::access::leg::Standing;
use crate::ids::RoomId;
use crate::media::prompts::PromptId;
use crate::sip::endpoint::CallRef;

/// A room got its first member on this gateway, or lost its last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomEvent {
    Opened(RoomId),
    Closed(RoomId),
}

/// Every live room of this gateway.
#[derive(Clone, Debug)]
pub struct Rooms {
    inner: Arc<Mutex<HashMap<RoomId, Arc<Mutex<Room>>>>>,
    max_talkers: usize,
    /// The waiting room's music, 16 kHz, looped.
    pub(super) music: Arc<[i16]>,
    /// Told when a room opens or closes.
    events: Option<mpsc::UnboundedSender<RoomEvent>>,
}

impl Rooms {
    /// Rooms that mix at most `max_talkers` members at once and play
    /// `music` (16 kHz) to those waiting.
    pub fn new(max_talkers: usize, music: Arc<[i16]>) -> Rooms {
        Rooms {
            inner: Arc::default(),
            max_talkers,
            music,
            events: None,
        }
    }

    /// These rooms, telling `events` when one opens or closes. Sent under
    /// the rooms' lock, so a room's events arrive in the order they
    /// happened.
    pub fn announcing(mut self, events: mpsc::UnboundedSender<RoomEvent>) -> Rooms {
        self.events = Some(events);
        self
    }

    fn tell(&self, event: RoomEvent) {
        if let Some(events) = &self.events {
            // The listener gone (the process is stopping): nothing to tell.
            let _ = events.send(event);
        }
    }

    /// Adds `member` to room `room_id` under `policy` (the room's settings
    /// now), starting the room's mixer if it was empty: it goes in, or
    /// waits, or is refused (changing nothing). Call inside a tokio runtime.
    pub fn join(
        &self,
        room_id: RoomId,
        member: Arc<Member>,
        policy: Policy,
    ) -> Result<Presence, Refusal> {
        self.enter(room_id, member, policy, None)
    }

    /// Adds `member`, which was in `room_id` on the room's previous owner
    /// node, with the standing it brings back ([`Roster::rejoin`]): muted
    /// if it was; let in past the door (limit, lock, admission) it had
    /// passed; and if the room was locked, it is locked here too (a lock
    /// is kept; an unlock from one member does not undo another's lock).
    pub fn rejoin(
        &self,
        room_id: RoomId,
        member: Arc<Member>,
        policy: Policy,
        back: Standing,
    ) -> Result<Presence, Refusal> {
        self.enter(room_id, member, policy, Some(back))
    }

    fn enter(
        &self,
        room_id: RoomId,
        member: Arc<Member>,
        policy: Policy,
        back: Option<Standing>,
    ) -> Result<Presence, Refusal> {
        let Ok(mut rooms) = self.inner.lock() else {
            return Err(Refusal::Full);
        };
        let opened = !rooms.contains_key(&room_id);
        let room = rooms.entry(room_id).or_insert_with(|| {
            let room = Arc::new(Mutex::new(Room::default()));
            let mixer = Mixer::new(self.max_talkers);
            tokio::spawn(run_room(self.clone(), room_id, room.clone(), mixer));
            room
        });
        let Ok(mut room) = room.lock() else {
            return Err(Refusal::Full);
        };
        room.roster.set_policy(policy);
        let mut changes = Vec::new();
        let joined = match back {
            Some(back) => {
                member.set_muted(back.muted);
                if back.locked {
                    room.set_locked(true);
                }
                Ok(room
                    .roster
                    .rejoin(member.call.0, member.role, back.admitted, &mut changes))
            }
            None => room.roster.join(member.call.0, member.role, &mut changes),
        };
        let presence = match joined {
            Ok(p) => p,
            Err(refusal) => {
                if room.roster.is_empty() {
                    drop(room);
                    rooms.remove(&room_id);
                    if !opened {
                        self.tell(RoomEvent::Closed(room_id));
                    }
                }
                return Err(refusal);
            }
        };
        if opened {
            self.tell(RoomEvent::Opened(room_id));
        }
        member.set_presence(presence);
        room.members.push(member.clone());
        room.apply(&changes);
        room.apply(&[(member.call.0, presence)]);
        Ok(presence)
    }

    /// Removes `call` (an exit chime for those in the room, if it was in);
    /// the room disappears with its last member.
    pub fn leave(&self, room_id: RoomId, call: CallRef) {
        let Ok(mut rooms) = self.inner.lock() else {
            return;
        };
        let empty = match rooms.get(&room_id).map(|r| r.lock()) {
            Some(Ok(mut room)) => {
                let moved = room
                    .member(call.0)
                    .is_some_and(|m| m.presence() == Presence::Moved);
                let was_in = room.roster.presence(call.0) == Some(Presence::InRoom);
                let mut changes = Vec::new();
                if moved {
                    // Gone to the room on another node: no chime, no
                    // "last host left".
                    room.roster.forget(call.0);
                } else {
                    room.roster.leave(call.0, &mut changes);
                }
                room.members.retain(|m| m.call != call);
                if was_in && !moved {
                    room.chime_in_room(call.0, tones::exit());
                }
                room.apply(&changes);
                room.members.is_empty()
            }
            _ => false,
        };
        if empty {
            rooms.remove(&room_id);
            self.tell(RoomEvent::Closed(room_id));
        }
    }

    /// Records which node owns `room_id` (`None`: not known yet), and the
    /// lease's epoch if this node holds it now (not lapsed).
    pub fn set_owner(&self, room_id: RoomId, owner: Option<Arc<str>>, leased_here: Option<i64>) {
        self.with_room(room_id, |room| {
            room.owner = owner;
            room.held_once |= leased_here.is_some();
            room.leased_here = leased_here;
        });
    }

    /// The epoch of `room_id`'s lease if this node holds it now.
    pub fn leased_here(&self, room_id: RoomId) -> Option<i64> {
        self.with_room(room_id, |room| room.leased_here).flatten()
    }

    /// The node that owns `room_id`, if it is live here and known.
    pub fn owner(&self, room_id: RoomId) -> Option<Arc<str>> {
        self.with_room(room_id, |room| room.owner.clone()).flatten()
    }

    /// The settings `room_id` runs by, if it is live here.
    pub fn policy(&self, room_id: RoomId) -> Option<Policy> {
        self.with_room(room_id, |room| room.roster.policy())
    }

    /// Lets a waiting member of `room_id` in.
    pub fn admit(&self, room_id: RoomId, call: CallRef) -> Result<(), AdmitError> {
        let rooms = self.inner.lock().map_err(|_| AdmitError::NotFound)?;
        let room = rooms.get(&room_id).ok_or(AdmitError::NotFound)?;
        let mut room = room.lock().map_err(|_| AdmitError::NotFound)?;
        room.roster.admit(call.0)?;
        room.apply(&[(call.0, Presence::InRoom)]);
        Ok(())
    }

    pub(super) fn with_room<R>(
        &self,
        room_id: RoomId,
        f: impl FnOnce(&mut Room) -> R,
    ) -> Option<R> {
        let rooms = self.inner.lock().ok()?;
        let mut room = rooms.get(&room_id)?.lock().ok()?;
        Some(f(&mut room))
    }

    /// Tells `call` how many are in the room (`*#`).
    pub fn say_count(&self, room_id: RoomId, call: CallRef) {
        self.with_room(room_id, |room| {
            if let Some(m) = room.member(call.0) {
                m.announce(room.count_for(m));
            }
        });
    }

    /// Locks the room to new participants, or unlocks it; returns whether it
    /// is locked now.
    pub fn toggle_lock(&self, room_id: RoomId) -> Option<bool> {
        self.with_room(room_id, |room| {
            let locked = !room.roster.is_locked();
            room.set_locked(locked);
            locked
        })
    }

    /// Locks or unlocks a live room; `None` when nobody is in it.
    pub fn set_locked(&self, room_id: RoomId, locked: bool) -> Option<()> {
        self.with_room(room_id, |room| room.set_locked(locked))
    }

    /// What `call` would bring back to `room_id` on another owner: its
    /// mute, whether the roster had let it past the "host admits" waiting
    /// room (read from the roster: the member's own presence may say
    /// `Moved` already), the room's lock.
    ///
    /// `None` for a room this node never held the lease of (mixed apart
    /// after a leg to the owner failed): its door was not the room's, so
    /// its callers go through the owner's (lock, limit, admission) as
    /// newcomers.
    pub fn standing(&self, room_id: RoomId, call: CallRef) -> Option<Standing> {
        self.with_room(room_id, |room| {
            if !room.held_once {
                return None;
            }
            let presence = room.roster.presence(call.0)?;
            let muted = room.member(call.0)?.is_muted();
            Some(standing_of(presence, muted, room.roster.is_locked()))
        })
        .flatten()
    }

    /// Whether a live room is locked.
    pub fn locked(&self, room_id: RoomId) -> Option<bool> {
        self.with_room(room_id, |room| room.roster.is_locked())
    }

    /// Mutes every participant (hosts keep talking), or unmutes them all when
    /// none is left unmuted; each hears its new state. Returns whether they
    /// are muted now.
    pub fn toggle_mute_all(&self, room_id: RoomId) -> Option<bool> {
        self.with_room(room_id, |room| {
            let participants = || room.members.iter().filter(|m| m.role == Role::Participant);
            let mute = participants().any(|m| !m.is_muted());
            for m in participants() {
                if m.is_muted() != mute {
                    m.set_muted(mute);
                    m.say(if mute {
                        PromptId::Muted
                    } else {
                        PromptId::Unmuted
                    });
                }
            }
            mute
        })
    }

    /// Tells every member of `room_id` here to move to the node that owns
    /// it ([`Presence::Moved`]; they stop being mixed here and leave as
    /// their calls hear it); returns how many were told.
    pub fn move_members(&self, room_id: RoomId) -> usize {
        self.mark_moved(room_id, |_| true)
    }

    /// Sets [`Presence::Moved`] on the members of `room_id` that `which`
    /// picks; returns how many.
    fn mark_moved(&self, room_id: RoomId, which: impl Fn(&Member) -> bool) -> usize {
        self.with_room(room_id, |room| {
            let mut told = 0;
            for m in room.members.iter().filter(|m| which(m)) {
                m.set_presence(Presence::Moved);
                told += 1;
            }
            told
        })
        .unwrap_or(0)
    }

    /// Legs from other nodes among the members of `room_id`.
    pub fn legs(&self, room_id: RoomId) -> usize {
        self.with_room(room_id, |room| {
            room.members.iter().filter(|m| m.is_from_node()).count()
        })
        .unwrap_or(0)
    }

    /// Tells the legs from other nodes in `room_id` that this node hands
    /// the room on ([`Presence::Moved`]: a draining node's legs end, and
    /// their nodes move their callers); returns how many were told.
    pub fn end_legs(&self, room_id: RoomId) -> usize {
        self.mark_moved(room_id, Member::is_from_node)
    }

    /// Members of the room, waiting ones included.
    pub fn members(&self, room_id: RoomId) -> usize {
        let Ok(rooms) = self.inner.lock() else {
            return 0;
        };
        rooms
            .get(&room_id)
            .and_then(|r| r.lock().ok().map(|r| r.members.len()))
            .unwrap_or(0)
    }

    pub fn room_count(&self) -> usize {
        self.inner.lock().map_or(0, |r| r.len())
    }

    pub(super) fn is_live(&self, room_id: RoomId, room: &Arc<Mutex<Room>>) -> bool {
        self.inner
            .lock()
            .is_ok_and(|rooms| rooms.get(&room_id).is_some_and(|r| Arc::ptr_eq(r, room)))
    }
}
