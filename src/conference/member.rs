//! One caller in a room: its inbound audio ([`Inbound`]), the [`Sink`] its
//! mix goes out through (its call's RTP [`Leg`] in the gateway), its
//! presence (published on a watch channel), mute and hold, and
//! announcements for it alone over the room's mix.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::roster::{Presence, Role};
use crate::media::Codec;
use crate::media::announcement::{Announcement, Rate};
use crate::media::inbound::{Frame, Inbound};
use crate::media::leg::Leg;
use crate::media::pcm::{NARROW_FRAME, PCM_FRAME};
use crate::media::prompts::{PromptId, PromptSet};
use crate::media::rtp::Header;
use crate::sip::endpoint::CallRef;

/// Where a member's audio goes: its call's RTP leg in the gateway; a
/// record in memory in tests.
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// The codec the far end takes now (`None` before it is known).
    fn codec(&self) -> Option<Codec>;
    /// Encodes and sends one 20 ms frame of 16 kHz PCM.
    fn send_frame(&self, pcm: &[i16]);
    /// Sends one 20 ms frame of 8 kHz PCM (G.711 only; see [`Leg::send_narrow`]).
    fn send_narrow(&self, narrow: &[i16]);
    /// Sends one 20 ms payload already encoded in [`Sink::codec`].
    fn send_payload(&self, payload: &[u8]);
}

impl Sink for Leg {
    fn codec(&self) -> Option<Codec> {
        Leg::codec(self)
    }

    fn send_frame(&self, pcm: &[i16]) {
        Leg::send_frame(self, pcm);
    }

    fn send_narrow(&self, narrow: &[i16]) {
        Leg::send_narrow(self, narrow);
    }

    fn send_payload(&self, payload: &[u8]) {
        Leg::send_payload(self, payload);
    }
}

/// One caller in a room.
#[derive(Debug)]
pub struct Member {
    pub call: CallRef,
    pub role: Role,
    /// The caller's language, for what the room says to it.
    pub(super) prompts: PromptSet,
    presence: watch::Sender<Presence>,
    pub(super) leg: Arc<dyn Sink>,
    inbound: Mutex<Inbound>,
    /// A muted member is heard by no one (it still hears the room).
    muted: std::sync::atomic::AtomicBool,
    /// A member that put the room on hold is not heard either (its phone
    /// may be playing its own hold music) and hears nothing.
    held: std::sync::atomic::AtomicBool,
    /// An announcement for this member alone, over its mix: samples and
    /// how far it has played.
    announcement: Mutex<Option<(Announcement, usize)>>,
    /// The member is a leg from another node (its caller is on that node).
    from_node: std::sync::atomic::AtomicBool,
    /// Counts changes of what the member's standing is made of besides
    /// its presence (muted, the room's lock), for whoever reports it.
    touched: watch::Sender<u32>,
}

impl Member {
    /// A member whose far end sends `codec` (at its RTP clock rate).
    pub fn new(
        call: CallRef,
        role: Role,
        prompts: PromptSet,
        leg: Arc<dyn Sink>,
        codec: Codec,
    ) -> Arc<Member> {
        Arc::new(Member {
            call,
            role,
            prompts,
            presence: watch::Sender::new(Presence::InRoom),
            leg,
            inbound: Mutex::new(Inbound::new(codec)),
            muted: std::sync::atomic::AtomicBool::new(false),
            held: std::sync::atomic::AtomicBool::new(false),
            announcement: Mutex::new(None),
            touched: watch::Sender::new(0),
            from_node: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Marks the member as a leg from another node, before it joins.
    pub fn mark_from_node(&self) {
        self.from_node
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the member is a leg from another node.
    pub fn is_from_node(&self) -> bool {
        self.from_node.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Follows changes of the member's mute and its room's lock (its
    /// presence has [`Member::watch`]).
    pub fn watch_standing(&self) -> watch::Receiver<u32> {
        self.touched.subscribe()
    }

    /// Tells the standing's watchers that it changed.
    pub(super) fn touch(&self) {
        self.touched.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Where the member is now.
    pub fn presence(&self) -> Presence {
        *self.presence.borrow()
    }

    /// Follows the member's presence (it went in, back to waiting, ended).
    pub fn watch(&self) -> watch::Receiver<Presence> {
        self.presence.subscribe()
    }

    pub(super) fn set_presence(&self, presence: Presence) {
        self.presence.send_replace(presence);
    }

    /// Plays one of the member's prompts to it alone.
    pub fn say(&self, prompt: PromptId) {
        self.announce(self.prompts.shared(prompt));
    }

    /// Plays `said` to this member alone, over the room's mix; replaces an
    /// announcement still playing.
    pub fn announce(&self, said: Announcement) {
        if let Ok(mut a) = self.announcement.lock() {
            *a = Some((said, 0));
        }
    }

    /// Whether an announcement is playing to this member.
    pub(super) fn announcing(&self) -> bool {
        self.announcement.lock().is_ok_and(|a| a.is_some())
    }

    /// Adds the next 20 ms of the announcement into `frame`; false when
    /// there is none (the shared payload can be sent as it is).
    pub(super) fn overlay_announcement(&self, frame: &mut Frame) -> bool {
        self.next_announcement(|said, at| said.overlay(at, Rate::Wide, &mut frame[..]))
    }

    /// As [`overlay_announcement`](Self::overlay_announcement), at 8 kHz
    /// into `frame`, from the announcement's 8 kHz copy.
    pub(super) fn overlay_announcement_narrow(&self, frame: &mut [i16; NARROW_FRAME]) -> bool {
        self.next_announcement(|said, at| said.overlay(at, Rate::Narrow, frame))
    }

    /// Hands `add` the announcement and where it is (in 16 kHz samples),
    /// then moves on 20 ms; false when there is none.
    fn next_announcement(&self, add: impl FnOnce(&Announcement, usize)) -> bool {
        let Ok(mut guard) = self.announcement.lock() else {
            return false;
        };
        let Some((said, at)) = guard.as_mut() else {
            return false;
        };
        add(said, *at);
        *at += PCM_FRAME;
        if *at >= said.len() {
            *guard = None;
        }
        true
    }

    /// One 20 ms packet of the caller's audio (its payload) arrived at `now`.
    pub fn push_audio(&self, now: std::time::Instant, header: &Header, payload: &[u8]) {
        if let Ok(mut i) = self.inbound.lock() {
            i.push_audio(now, header, payload);
        }
    }

    /// A packet of the caller's stream that is not audio (RFC 4733) arrived.
    pub fn push_not_audio(&self, header: &Header) {
        if let Ok(mut i) = self.inbound.lock() {
            i.push_not_audio(header);
        }
    }

    /// This tick's frame: played, concealed, or none; none while muted or
    /// on hold (decoded all the same, so the decoder's state stays right).
    pub(super) fn take_frame(&self) -> Option<Frame> {
        let frame = self.inbound.lock().ok()?.take_frame();
        frame.filter(|_| !self.is_muted() && !self.is_held())
    }

    /// Plays this tick's packet into nothing (a waiting member is not
    /// heard): the buffer stays current, nothing is decoded.
    pub(super) fn discard_frame(&self) {
        if let Ok(mut i) = self.inbound.lock() {
            i.discard();
        }
    }

    /// The far end now sends `codec`: a fresh jitter buffer and decoder.
    pub fn set_codec(&self, codec: Codec) {
        if let Ok(mut i) = self.inbound.lock() {
            i.set_codec(codec);
        }
    }

    pub fn is_held(&self) -> bool {
        self.held.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_held(&self, held: bool) {
        self.held.store(held, std::sync::atomic::Ordering::Relaxed);
    }

    /// The member's jitter-buffer counters.
    pub fn jitter_stats(&self) -> Option<crate::media::jitter::Stats> {
        self.inbound.lock().ok().map(|i| i.stats())
    }

    pub fn is_muted(&self) -> bool {
        self.muted.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_muted(&self, muted: bool) {
        let was = self.muted.swap(muted, std::sync::atomic::Ordering::Relaxed);
        if was != muted {
            self.touch();
        }
    }
}
