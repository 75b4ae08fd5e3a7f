//! Conference rooms: membership and the room's audio on its own clock.
//!
//! A room exists while it has members. Its task ticks every 20 ms
//! (`tokio::time::interval`, anchored, so it does not drift): it takes one
//! frame from each member's inbox, picks the active speakers and makes the
//! mixes ([`mixer`], [`speakers`]), encodes each distinct (mix, codec)
//! pair once and sends every member its packet through the member's
//! [`Leg`], which keeps one SSRC and continuous sequence numbers and
//! timestamps after the prompts.
//!
//! Inboxes hold at most [`INBOX_FRAMES`] frames: a sender running fast loses
//! its oldest audio instead of growing a queue (a real jitter buffer comes
//! with issue 5). Roles, waiting room, lock and keypad controls: issue 5.

pub mod mixer;
pub mod speakers;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use crate::media::leg::Leg;
use crate::media::rtp::encode_frame;
use crate::sip::endpoint::CallRef;
use crate::sip::sdp::Codec;
use mixer::{Frame, Input, Mixer, Tick};

/// Frames a member may have queued for the mixer (60 ms).
pub const INBOX_FRAMES: usize = 3;

/// One caller in a room.
#[derive(Debug)]
pub struct Member {
    pub call: CallRef,
    leg: Arc<Leg>,
    inbox: Mutex<VecDeque<Frame>>,
    /// A muted member is heard by no one (it still hears the room).
    muted: std::sync::atomic::AtomicBool,
}

impl Member {
    pub fn new(call: CallRef, leg: Arc<Leg>) -> Arc<Member> {
        Arc::new(Member {
            call,
            leg,
            inbox: Mutex::new(VecDeque::with_capacity(INBOX_FRAMES)),
            muted: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Queues one decoded 20 ms frame of the caller's audio for the mixer.
    pub fn push_audio(&self, frame: Frame) {
        if let Ok(mut q) = self.inbox.lock() {
            if q.len() >= INBOX_FRAMES {
                q.pop_front();
            }
            q.push_back(frame);
        }
    }

    fn take_frame(&self) -> Option<Frame> {
        let frame = self.inbox.lock().ok()?.pop_front();
        frame.filter(|_| !self.is_muted())
    }

    fn is_muted(&self) -> bool {
        self.muted.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_muted(&self, muted: bool) {
        self.muted
            .store(muted, std::sync::atomic::Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct Room {
    members: Vec<Arc<Member>>,
}

/// Every live room of this gateway.
#[derive(Clone, Debug)]
pub struct Rooms {
    inner: Arc<Mutex<HashMap<i64, Arc<Mutex<Room>>>>>,
    max_talkers: usize,
}

impl Rooms {
    /// Rooms that mix at most `max_talkers` members at once.
    pub fn new(max_talkers: usize) -> Rooms {
        Rooms {
            inner: Arc::default(),
            max_talkers,
        }
    }

    /// Adds `member` to room `room_id`, starting the room's mixer if it was
    /// empty. Returns the member count after joining. Call inside a tokio runtime.
    pub fn join(&self, room_id: i64, member: Arc<Member>) -> usize {
        let Ok(mut rooms) = self.inner.lock() else {
            return 0;
        };
        let room = rooms.entry(room_id).or_insert_with(|| {
            let room = Arc::new(Mutex::new(Room::default()));
            let mixer = Mixer::new(self.max_talkers);
            tokio::spawn(run_room(self.clone(), room_id, room.clone(), mixer));
            room
        });
        let Ok(mut room) = room.lock() else { return 0 };
        room.members.push(member);
        room.members.len()
    }

    /// Removes `call`; the room disappears with its last member.
    pub fn leave(&self, room_id: i64, call: CallRef) {
        let Ok(mut rooms) = self.inner.lock() else {
            return;
        };
        let empty = match rooms.get(&room_id).map(|r| r.lock()) {
            Some(Ok(mut room)) => {
                room.members.retain(|m| m.call != call);
                room.members.is_empty()
            }
            _ => false,
        };
        if empty {
            rooms.remove(&room_id);
        }
    }

    pub fn members(&self, room_id: i64) -> usize {
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

    fn is_live(&self, room_id: i64, room: &Arc<Mutex<Room>>) -> bool {
        self.inner
            .lock()
            .is_ok_and(|rooms| rooms.get(&room_id).is_some_and(|r| Arc::ptr_eq(r, room)))
    }
}

/// The room's 20 ms clock; ends when the room has been removed.
async fn run_room(rooms: Rooms, room_id: i64, room: Arc<Mutex<Room>>, mut mixer: Mixer) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut members: Vec<Arc<Member>> = Vec::new();
    let mut inputs: Vec<Input> = Vec::new();
    let mut out = Tick::default();
    let mut fanout = Fanout::default();
    let tick_seconds = metrics::histogram!("dialgate_mixer_tick_seconds");
    let encodes = metrics::counter!("dialgate_mixer_encodes_total");
    tracing::debug!(room_id, "room mixer started");
    loop {
        tick.tick().await;
        if !rooms.is_live(room_id, &room) {
            break;
        }
        let started = std::time::Instant::now();
        members.clear();
        if let Ok(r) = room.lock() {
            members.extend(r.members.iter().cloned());
        }
        inputs.clear();
        inputs.extend(members.iter().map(|m| Input {
            key: m.call.0,
            frame: m.take_frame(),
            muted: m.is_muted(),
        }));
        mixer.tick(&inputs, &mut out);
        let done = fanout.send(&members, &out);
        encodes.increment(done as u64);
        tick_seconds.record(started.elapsed().as_secs_f64());
    }
    tracing::debug!(room_id, "room mixer stopped");
}

/// Encodes each distinct (mix, codec) pair of a tick once and sends every
/// member the payload for its pair. Buffers are kept across ticks.
#[derive(Debug, Default)]
struct Fanout {
    codecs: Vec<Option<Codec>>,
    plan: Vec<(usize, Option<Codec>)>,
    payloads: Vec<Vec<u8>>,
}

impl Fanout {
    /// Returns the number of encodes done.
    fn send(&mut self, members: &[Arc<Member>], tick: &Tick) -> usize {
        self.codecs.clear();
        self.codecs.extend(members.iter().map(|m| m.leg.codec()));
        mixer::encode_plan(&tick.heard, &self.codecs, &mut self.plan);
        self.payloads.resize_with(self.plan.len(), Vec::new);
        for ((mix, codec), payload) in self.plan.iter().zip(&mut self.payloads) {
            if let (Some(codec), Some(frame)) = (codec, tick.mixes.get(*mix)) {
                encode_frame(*codec, frame, payload);
            }
        }
        for ((member, mix), codec) in members.iter().zip(&tick.heard).zip(&self.codecs) {
            let at = self.plan.iter().position(|p| *p == (*mix, *codec));
            if let Some(payload) = at.and_then(|i| self.payloads.get(i)) {
                member.leg.send_payload(payload);
            }
        }
        self.plan.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtp::{Latch, Outbound};

    async fn member(call: u64) -> Arc<Member> {
        let socket = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let leg = Arc::new(Leg::new(
            socket,
            Outbound::new(Codec::Pcmu, 0),
            Latch::new(None),
        ));
        Member::new(CallRef(call), leg)
    }

    #[tokio::test]
    async fn room_empties_itself_when_the_last_member_leaves() {
        let rooms = Rooms::new(3);
        assert_eq!(rooms.join(1, member(1).await), 1);
        assert_eq!(rooms.join(1, member(2).await), 2);
        rooms.leave(1, CallRef(1));
        assert_eq!(rooms.members(1), 1);
        rooms.leave(1, CallRef(2));
        assert_eq!(rooms.room_count(), 0);
    }

    #[tokio::test]
    async fn a_muted_member_contributes_nothing_to_the_mix() {
        let m = member(1).await;
        m.push_audio([5; 160]);
        m.set_muted(true);
        assert_eq!(m.take_frame(), None);
        m.set_muted(false);
        m.push_audio([6; 160]);
        assert_eq!(m.take_frame().map(|f| f[0]), Some(6));
    }

    #[tokio::test]
    async fn inbox_keeps_only_the_newest_frames() {
        let m = member(1).await;
        for v in 0..5i16 {
            m.push_audio([v; 160]);
        }
        assert_eq!(m.take_frame().map(|f| f[0]), Some(2));
        assert_eq!(m.take_frame().map(|f| f[0]), Some(3));
        assert_eq!(m.take_frame().map(|f| f[0]), Some(4));
        assert_eq!(m.take_frame(), None);
    }
}
