//! An adaptive jitter buffer for one inbound RTP audio stream.
//!
//! Packets go in as they arrive ([`Jitter::push`]); the player takes the
//! next one out whenever it needs more audio ([`Jitter::pop`]): once per
//! 20 ms tick for 20 ms packets, twice for 10 ms ones, every third tick for
//! 60 ms ones. The packet time is read from the stream (the RTP timestamp
//! step between consecutive packets; 20 ms until it shows), and every
//! depth below is kept in time, then counted in packets. In between the
//! buffer:
//!
//! - puts packets back in sequence order and drops duplicates and packets
//!   that come after their turn was played (late);
//! - holds back playout until `target` packets are buffered. The target
//!   follows the RFC 3550 §A.8 interarrival-jitter estimate (one packet —
//!   at least a 20 ms frame — plus three times the jitter, at most
//!   [`MAX_TARGET`] frames' time) and rises by a frame after each underrun,
//!   sinking back one frame per [`CALM`] without one;
//! - tells a missing packet ([`Playout::Lost`], for the decoder to conceal:
//!   Opus PLC/FEC, G.711 repetition) from a sequence number the caller
//!   marked as not audio (an RFC 4733 event, [`Playout::Silence`]);
//! - absorbs sender clock drift: a sender running fast fills the buffer, and
//!   a packet is dropped whenever more than [`DRIFT_SLACK`] frames' time
//!   beyond the target is queued; one running slow runs it dry, which is an
//!   underrun;
//! - starts over on a new SSRC or a sequence jump (a restarted sender).
//!
//! Sans-IO: arrival times come in as `Instant`s; tests use simulated time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::rtp::Ssrc;

/// Frames of 20 ms: the mix's tick, and the unit of the depths below.
pub const FRAME: Duration = Duration::from_millis(20);
/// Most frames' time held back before playout (200 ms), or one packet
/// where a packet is longer.
pub const MAX_TARGET: usize = 10;
/// Frames' time queued beyond the target before a packet is dropped.
pub const DRIFT_SLACK: usize = 3;
/// Time without an underrun after which the underrun margin shrinks.
pub const CALM: Duration = Duration::from_secs(10);
/// Longest packet time believed (an Opus packet holds at most 120 ms).
pub const MAX_PACKET: Duration = Duration::from_millis(120);
/// Shortest packet time believed: a shorter step is a sender counting its
/// timestamps wrong (Opus at 8 kHz, say), and a 10 ms floor keeps the
/// depths in packets sane for it.
pub const MIN_PACKET: Duration = Duration::from_millis(10);
/// A sequence jump larger than this is a restart, not loss.
const MAX_JUMP: u16 = 1000;
/// A forward jump larger than this (2 s) is believed only when the next
/// packet follows it: one stray packet must not move the stream.
const CONFIRM_JUMP: u16 = 100;
/// Most packets held: in a flood the oldest are dropped, not buffered (at
/// 10 ms a packet, still twice the deepest target and its slack).
pub const MAX_SLOTS: usize = 4 * (MAX_TARGET + DRIFT_SLACK);

/// What one tick plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout<T> {
    /// The next packet's payload.
    Frame(T),
    /// The next packet is missing: conceal.
    Lost,
    /// The next sequence number was not audio (a telephone-event).
    Silence,
    /// Not playing (nothing received yet, or buffering after an underrun).
    Buffering,
}

/// Counters, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub played: u64,
    pub lost: u64,
    pub late: u64,
    pub duplicates: u64,
    /// Frames dropped because the sender ran fast.
    pub drift_drops: u64,
    pub underruns: u64,
    /// Lost frames rebuilt from the next packet's FEC (also counted lost).
    pub recovered: u64,
}

#[derive(Debug)]
enum Slot<T> {
    Audio(T),
    NotAudio,
}

/// The jitter buffer of one stream; `T` is the payload (bytes, or PCM).
#[derive(Debug)]
pub struct Jitter<T> {
    clock_rate: u32,
    ssrc: Option<Ssrc>,
    /// Extended sequence number → slot.
    slots: BTreeMap<u64, Slot<T>>,
    /// Extended sequence number of the highest packet seen.
    highest: u64,
    /// Next extended sequence number to play (kept while buffering after
    /// an underrun, so what was played is never played again).
    next: Option<u64>,
    playing: bool,
    /// RFC 3550 A.8 jitter estimate, in timestamp units.
    jitter: f64,
    /// (arrival, RTP timestamp) of the previous packet.
    previous: Option<(Instant, u32)>,
    /// Extra frames of target added by underruns.
    margin: usize,
    /// Audio played since the last underrun or margin step.
    calm: Duration,
    /// The stream's packet time, read from its timestamps.
    packet: Duration,
    /// Extended sequence number and RTP timestamp of the newest audio
    /// packet, to read the packet time from the next one.
    newest_audio: Option<(u64, u32)>,
    stats: Stats,
    /// A far jump seen once, waiting for the packet after it.
    unconfirmed: Option<u16>,
}

impl<T> Jitter<T> {
    /// A buffer for a stream whose RTP clock runs at `clock_rate` Hz.
    pub fn new(clock_rate: u32) -> Jitter<T> {
        Jitter {
            clock_rate: clock_rate.max(1),
            ssrc: None,
            slots: BTreeMap::new(),
            highest: 0,
            next: None,
            playing: false,
            jitter: 0.0,
            previous: None,
            margin: 0,
            calm: Duration::ZERO,
            packet: FRAME,
            newest_audio: None,
            stats: Stats::default(),
            unconfirmed: None,
        }
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Interarrival jitter (RFC 3550 A.8).
    pub fn jitter(&self) -> Duration {
        Duration::from_secs_f64(self.jitter / f64::from(self.clock_rate))
    }

    /// The stream's packet time (20 ms until its timestamps show another).
    pub fn packet_time(&self) -> Duration {
        self.packet
    }

    /// Packets held back before playout: one packet (at least a frame's
    /// time) plus three times the jitter plus the underrun margin.
    pub fn target(&self) -> usize {
        let frame = FRAME.as_micros() as u64;
        let packet = (self.packet.as_micros() as u64).max(1);
        let jitter = (3.0 * self.jitter().as_secs_f64() * 1e6).ceil() as u64;
        let time = packet.max(frame) + jitter + self.margin as u64 * frame;
        let time = time.min((MAX_TARGET as u64 * frame).max(packet));
        time.div_ceil(packet).max(1) as usize
    }

    /// Packets queued beyond the target before one is dropped.
    fn slack(&self) -> usize {
        let packet = self.packet.as_micros().max(1);
        ((DRIFT_SLACK as u128 * FRAME.as_micros()).div_ceil(packet)).max(1) as usize
    }

    /// Packets waiting to be played.
    pub fn buffered(&self) -> usize {
        self.slots.len()
    }

    /// An audio packet arrived at `now`.
    pub fn push(&mut self, now: Instant, ssrc: Ssrc, seq: u16, timestamp: u32, payload: T) {
        let Some(ext) = self.extend(ssrc, seq) else {
            return;
        };
        self.estimate_jitter(now, timestamp);
        self.learn_packet_time(ext, timestamp);
        self.insert(ext, Slot::Audio(payload));
    }

    /// Two audio packets in a row tell the packet time: their timestamps'
    /// step (believed from [`MIN_PACKET`] to [`MAX_PACKET`]).
    fn learn_packet_time(&mut self, ext: u64, timestamp: u32) {
        if let Some((newest, ts)) = self.newest_audio {
            if ext <= newest {
                return;
            }
            let step = u64::from(timestamp.wrapping_sub(ts));
            let units = |d: Duration| d.as_micros() as u64 * u64::from(self.clock_rate) / 1_000_000;
            if ext == newest + 1 && (units(MIN_PACKET)..=units(MAX_PACKET)).contains(&step) {
                self.packet = Duration::from_micros(step * 1_000_000 / u64::from(self.clock_rate));
            }
        }
        self.newest_audio = Some((ext, timestamp));
    }

    /// A packet of the same stream that is not audio (RFC 4733) arrived: its
    /// sequence number plays as silence instead of counting as lost.
    /// Keypad packets on an SSRC of their own say nothing about the audio
    /// stream's numbering and are ignored (they must not restart it).
    pub fn push_not_audio(&mut self, ssrc: Ssrc, seq: u16) {
        if self.ssrc != Some(ssrc) {
            return;
        }
        if let Some(ext) = self.extend(ssrc, seq) {
            self.insert(ext, Slot::NotAudio);
        }
    }

    fn insert(&mut self, ext: u64, slot: Slot<T>) {
        if self.next.is_some_and(|n| ext < n) {
            self.stats.late += 1;
        } else if let std::collections::btree_map::Entry::Vacant(free) = self.slots.entry(ext) {
            free.insert(slot);
            if self.slots.len() > MAX_SLOTS {
                // A flood: the oldest packet makes room, so the newest play.
                self.slots.pop_first();
                self.stats.drift_drops += 1;
            }
        } else {
            self.stats.duplicates += 1;
        }
    }

    /// The extended sequence number of `seq`, restarting on a new SSRC or
    /// a jump; `None` for a packet too old to place.
    fn extend(&mut self, ssrc: Ssrc, seq: u16) -> Option<u64> {
        if self.ssrc != Some(ssrc) {
            self.restart(ssrc, seq);
            return Some(self.highest);
        }
        self.unconfirmed = self.unconfirmed.filter(|u| seq.wrapping_sub(*u) == 1);
        let low = (self.highest & 0xFFFF) as u16;
        let ahead = seq.wrapping_sub(low);
        let behind = low.wrapping_sub(seq);
        if ahead > CONFIRM_JUMP && ahead <= MAX_JUMP {
            // A far jump: believed when the packet after it comes next.
            let confirmed = self.unconfirmed == Some(seq.wrapping_sub(1));
            self.unconfirmed = Some(seq);
            if !confirmed {
                return None;
            }
            self.restart(ssrc, seq);
            return Some(self.highest);
        }
        if ahead <= MAX_JUMP {
            self.highest += u64::from(ahead);
            Some(self.highest)
        } else if behind <= MAX_JUMP {
            self.highest.checked_sub(u64::from(behind))
        } else {
            self.restart(ssrc, seq);
            Some(self.highest)
        }
    }

    fn restart(&mut self, ssrc: Ssrc, seq: u16) {
        self.ssrc = Some(ssrc);
        self.slots.clear();
        self.next = None;
        self.playing = false;
        self.previous = None;
        self.newest_audio = None;
        // One cycle up, so packets just before the first cannot underflow.
        self.highest = (1 << 16) + u64::from(seq);
    }

    fn estimate_jitter(&mut self, now: Instant, timestamp: u32) {
        if let Some((arrived, ts)) = self.previous {
            let transit_arrival =
                now.saturating_duration_since(arrived).as_secs_f64() * f64::from(self.clock_rate);
            let sent = f64::from(timestamp.wrapping_sub(ts) as i32);
            let d = (transit_arrival - sent).abs();
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.previous = Some((now, timestamp));
    }

    /// The payload that plays next, if it is here: right after a
    /// [`Playout::Lost`], the packet whose FEC may rebuild the lost frame.
    pub fn peek_next(&self) -> Option<&T> {
        match self.slots.get(&self.next?) {
            Some(Slot::Audio(p)) => Some(p),
            _ => None,
        }
    }

    /// The frame just reported lost was rebuilt from FEC after all.
    pub fn note_recovered(&mut self) {
        self.stats.recovered += 1;
    }

    /// What to play next: one packet's worth.
    pub fn pop(&mut self) -> Playout<T> {
        self.calm += self.packet;
        if self.calm >= CALM {
            self.calm = Duration::ZERO;
            self.margin = self.margin.saturating_sub(1);
        }
        let next = match self.next {
            Some(n) if self.playing => n,
            _ => {
                // Late packets were refused, so the first slot is not behind `next`.
                let Some(first) = self.slots.keys().next().copied() else {
                    return Playout::Buffering;
                };
                if self.slots.len() < self.target() {
                    return Playout::Buffering;
                }
                self.playing = true;
                first
            }
        };
        // Behind the newest packet by more than the target: a sender
        // running fast loses one packet a pop; far behind (a burst after an
        // outage), playout jumps to `target` packets behind the newest.
        let queued = self.highest.saturating_sub(next) as usize + 1;
        let target = self.target();
        let slack = self.slack();
        let next = if queued > target + 2 * slack {
            let to = self.highest + 1 - target as u64;
            let kept = self.slots.split_off(&to);
            self.stats.drift_drops += std::mem::replace(&mut self.slots, kept).len() as u64;
            to
        } else if queued > target + slack {
            self.slots.remove(&next);
            self.stats.drift_drops += 1;
            next + 1
        } else {
            next
        };
        if self.slots.is_empty() {
            // Ran dry: buffer up again, a little deeper.
            self.next = Some(next);
            self.playing = false;
            self.stats.underruns += 1;
            self.stats.lost += 1;
            self.margin = (self.margin + 1).min(MAX_TARGET);
            self.calm = Duration::ZERO;
            return Playout::Lost;
        }
        self.next = Some(next + 1);
        match self.slots.remove(&next) {
            Some(Slot::Audio(p)) => {
                self.stats.played += 1;
                Playout::Frame(p)
            }
            Some(Slot::NotAudio) => Playout::Silence,
            None => {
                self.stats.lost += 1;
                Playout::Lost
            }
        }
    }
}

#[cfg(test)]
mod tests;
