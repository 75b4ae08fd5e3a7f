//! RFC 4733 telephone-events: the payload, a receiver that counts each key
//! press once, and the compliant sender our test caller uses.
//!
//! Payload (RFC 4733 §2.3), network byte order:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     event     |E|R| volume    |          duration             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! One key press is many packets (§2.5.1): all carry the RTP timestamp of the
//! event's start, the duration grows with each update, and the final packet
//! (E bit set) is sent three times (§2.5.1.4). An event longer than the 16-bit
//! duration is cut into segments, each new segment timestamped at the previous
//! one's start plus its duration (§2.5.1.3). [`Receiver`] follows the receiver
//! rules of §2.5.2: a press is identified by its timestamp, so it is reported
//! on the first packet that arrives for it — start, update or end — and never
//! again, whatever else is lost, duplicated or reordered.
//!
//! ```text
//!   packet ─► parse ─► keypad code? ─no─► drop (flash, tones: not keys)
//!                         │yes
//!                 (timestamp, event) remembered? ─yes─► update, drop
//!                         │no
//!                 older than newest?  ─yes, within reorder window─► drop (stale)
//!                         │no         └─yes, far behind─► forget all (stream jump)
//!                 continues the newest segment (§2.5.1.3)? ─yes─► remember, drop
//!                         │no
//!                 remember, report the key
//! ```
//!
//! Left out: multiple events per packet and RFC 2198 redundancy (§2.5.1.5,
//! §2.5.2.4) — only the first 4-byte event block is read, which is the
//! primary event; unwrapping the `red` payload type is the RTP layer's job.
//! Non-keypad events (§3.2 codes 16+) are parsed but not reported. Durations
//! are tracked, not reported: the IVR wants key presses, not tone lengths.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Key;

/// Length of one event block (§2.3).
pub const EVENT_LEN: usize = 4;
/// Largest volume: a 6-bit field, in −dBm0 (§2.3.4).
pub const MAX_VOLUME: u8 = 0x3F;
/// Samples per 20 ms packet at the 8 kHz telephone-event clock.
pub const SAMPLES_PER_PACKET: u16 = 160;

/// The telephone-event payload of RFC 4733 §2.3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (§3.2 for DTMF: 0–15 are keys).
    pub event: u8,
    /// E bit: this packet ends the event.
    pub end: bool,
    /// Power level, 0–63 meaning 0 to −63 dBm0. Only the low 6 bits are sent.
    pub volume: u8,
    /// Duration so far, in RTP timestamp units, from the event's start.
    pub duration: u16,
}

/// The peer sent a telephone-event payload we cannot read.
#[derive(thiserror::Error, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rfc4733Error {
    #[error("telephone-event payload is {len} bytes; an event block needs 4")]
    TooShort { len: usize },
}

impl TelephoneEvent {
    /// Reads the first event block; bytes beyond it (further events,
    /// padding) are ignored. The R bit is ignored as §2.3 requires.
    pub fn parse(payload: &[u8]) -> Result<TelephoneEvent, Rfc4733Error> {
        let &[event, flags, duration_hi, duration_lo, ..] = payload else {
            return Err(Rfc4733Error::TooShort { len: payload.len() });
        };
        Ok(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & MAX_VOLUME,
            duration: u16::from_be_bytes([duration_hi, duration_lo]),
        })
    }

    /// Encodes with R = 0; `volume` is masked to its 6 bits.
    pub fn to_bytes(&self) -> [u8; EVENT_LEN] {
        let end = if self.end { 0x80 } else { 0 };
        let [hi, lo] = self.duration.to_be_bytes();
        [self.event, end | (self.volume & MAX_VOLUME), hi, lo]
    }

    /// The keypad key, if this event is one (§3.2).
    pub fn key(&self) -> Option<Key> {
        Key::from_event_code(self.event)
    }
}

/// How many recent (timestamp, event) pairs a [`Receiver`] remembers.
const MEMORY: usize = 8;
/// After this long without a keypad packet, everything is a fresh press.
const IDLE_RESET: Duration = Duration::from_secs(5);
/// A timestamp at most this far behind the newest is a late (reordered)
/// packet; further behind, the stream's timestamps jumped and we start over.
/// 2^18 samples: ~33 s at 8 kHz, ~5.5 s at 48 kHz.
const REORDER_WINDOW: u32 = 1 << 18;
/// §2.5.1.3 segments are 0xFFFF long; senders that cut at a whole packet
/// land a little short. A new timestamp this close to `previous + 0xFFFF`
/// is a continuation.
const SEGMENT_SLACK: u32 = 0x1000;
const MAX_SEGMENT: u32 = 0xFFFF;

/// One remembered event (segment).
#[derive(Clone, Copy, Debug)]
struct Seen {
    timestamp: u32,
    event: u8,
    /// Longest duration reported so far.
    duration: u16,
    ended: bool,
}

/// Streaming receiver for one RTP stream's telephone-events: each key press
/// counted once (RFC 4733 §2.5.2).
///
/// Memory is bounded: the last few events and one `Instant`, whatever the
/// peer sends. Use one receiver per SSRC.
///
/// After 5 s without a keypad packet the memory is cleared, so a copy of an
/// old packet arriving that late counts as a new press.
#[derive(Debug, Default)]
pub struct Receiver {
    /// Recent events, oldest first; the back holds the newest timestamp.
    recent: VecDeque<Seen>,
    last_packet_at: Option<Instant>,
}

impl Receiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// `rtp_timestamp` is the RTP header timestamp (the event's start), `marker` the RTP M bit.
    /// Returns Some(key) exactly once per key press.
    ///
    /// The M bit is accepted but not relied on: the marked first packet is
    /// the one most often lost, so presses are told apart by timestamp alone.
    /// Malformed and non-keypad payloads return `None` and change nothing.
    #[must_use = "dropping the result loses a key press"]
    pub fn on_packet(
        &mut self,
        now: Instant,
        rtp_timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Option<Key> {
        let _ = marker;
        let event = TelephoneEvent::parse(payload).ok()?;
        let key = event.key()?;

        self.forget_if_idle(now);
        self.last_packet_at = Some(now);

        if let Some(seen) = self
            .recent
            .iter_mut()
            .find(|s| s.timestamp == rtp_timestamp && s.event == event.event)
        {
            seen.duration = seen.duration.max(event.duration);
            seen.ended |= event.end;
            return None;
        }

        if let Some(behind) = self.samples_behind_newest(rtp_timestamp) {
            if behind <= REORDER_WINDOW {
                return None;
            }
            self.recent.clear();
        }

        let continues = self.continues_newest(rtp_timestamp, &event);
        if self.recent.len() == MEMORY {
            self.recent.pop_front();
        }
        self.recent.push_back(Seen {
            timestamp: rtp_timestamp,
            event: event.event,
            duration: event.duration,
            ended: event.end,
        });
        (!continues).then_some(key)
    }

    /// The newest event's duration so far (RTP timestamp units) and whether
    /// its end packet has arrived: how long the last press was held.
    pub fn newest(&self) -> Option<(u16, bool)> {
        self.recent.back().map(|s| (s.duration, s.ended))
    }

    fn forget_if_idle(&mut self, now: Instant) {
        if let Some(last) = self.last_packet_at
            && now.saturating_duration_since(last) >= IDLE_RESET
        {
            self.recent.clear();
        }
    }

    /// How far `timestamp` is behind the newest remembered one, in RTP
    /// serial-number order (RFC 3550 timestamps wrap); `None` if not behind.
    fn samples_behind_newest(&self, timestamp: u32) -> Option<u32> {
        let newest = self.recent.back()?.timestamp;
        let behind = newest.wrapping_sub(timestamp);
        (behind != 0 && behind < 1 << 31).then_some(behind)
    }

    /// §2.5.1.3: same event, the previous segment never ended, and this one
    /// starts where a full-length previous segment stops.
    fn continues_newest(&self, timestamp: u32, event: &TelephoneEvent) -> bool {
        let Some(prev) = self.recent.back() else {
            return false;
        };
        let gap = timestamp.wrapping_sub(prev.timestamp);
        prev.event == event.event
            && !prev.ended
            && gap >= u32::from(prev.duration)
            && gap.abs_diff(MAX_SEGMENT) <= SEGMENT_SLACK
    }
}

/// One packet of [`key_press_packets`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SentPacket {
    /// Added to the press's start timestamp to give this packet's RTP
    /// timestamp: 0 except for §2.5.1.3 continuation segments.
    pub timestamp_offset: u32,
    pub marker: bool,
    pub payload: [u8; EVENT_LEN],
}

/// Longest press [`key_press_packets`] will generate, to bound its output.
pub const MAX_PRESS_MS: u32 = 60_000;
/// Longest press that fits one segment at 8 kHz in whole 20 ms packets
/// (409 × 160 = 65 440 samples ≤ 0xFFFF).
pub const MAX_SINGLE_SEGMENT_MS: u32 = 8_180;

/// The RTP packets (as `(timestamp_offset_samples_from_event_start, marker, payload[4])`) that a
/// compliant sender emits for one key press of `duration_ms` at 8 kHz, one every 20 ms,
/// duration growing by 160 per packet, marker on the first, the final end packet sent 3 times
/// (same duration). The RTP timestamp of every packet is the event start timestamp.
///
/// The press is rounded up to whole 20 ms packets (at least one) and capped
/// at [`MAX_SINGLE_SEGMENT_MS`] so it fits one segment and the timestamp
/// offset is always 0 — hence only `(marker, payload)` per packet. For
/// longer presses use [`key_press_packets`].
pub fn key_press_payloads(key: Key, duration_ms: u32, volume: u8) -> Vec<(bool, [u8; 4])> {
    key_press_packets(key, duration_ms.min(MAX_SINGLE_SEGMENT_MS), volume)
        .into_iter()
        .map(|p| (p.marker, p.payload))
        .collect()
}

/// Like [`key_press_payloads`], for presses of any length up to
/// [`MAX_PRESS_MS`]: past 0xFFFF samples the event is cut into §2.5.1.3
/// segments — the old segment's last update carries duration 0xFFFF without
/// the E bit, and the next segment starts at offset `+ 0xFFFF` (no M bit).
pub fn key_press_packets(key: Key, duration_ms: u32, volume: u8) -> Vec<SentPacket> {
    let packets = duration_ms.clamp(1, MAX_PRESS_MS).div_ceil(20);
    let per_packet = u32::from(SAMPLES_PER_PACKET);
    let update = |offset: u32, duration: u32, end: bool, first: bool| SentPacket {
        timestamp_offset: offset,
        marker: first,
        payload: TelephoneEvent {
            event: key.event_code(),
            end,
            volume,
            // Callers below keep `duration` ≤ MAX_SEGMENT; saturate regardless.
            duration: u16::try_from(duration).unwrap_or(u16::MAX),
        }
        .to_bytes(),
    };
    let mut out = Vec::new();
    let mut segment_start = 0u32;
    for n in 1..=packets {
        let elapsed = n * per_packet;
        while elapsed - segment_start > MAX_SEGMENT {
            out.push(update(segment_start, MAX_SEGMENT, false, out.is_empty()));
            segment_start += MAX_SEGMENT;
        }
        let copies = if n == packets { 3 } else { 1 };
        for _ in 0..copies {
            let duration = elapsed - segment_start;
            out.push(update(
                segment_start,
                duration,
                n == packets,
                out.is_empty(),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests;
