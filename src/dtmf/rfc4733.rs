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
mod tests {
    use super::*;

    const T0: u32 = 0x1234_5678;

    fn payload(key: Key, end: bool, duration: u16) -> [u8; 4] {
        TelephoneEvent {
            event: key.event_code(),
            end,
            volume: 10,
            duration,
        }
        .to_bytes()
    }

    /// Feeds packets 20 ms apart; returns the keys reported.
    fn feed(rx: &mut Receiver, start: Instant, packets: &[(u32, bool, [u8; 4])]) -> Vec<Key> {
        let mut now = start;
        let mut keys = Vec::new();
        for (ts, marker, p) in packets {
            keys.extend(rx.on_packet(now, *ts, *marker, p));
            now += Duration::from_millis(20);
        }
        keys
    }

    fn press(key: Key, ts: u32, ms: u32) -> Vec<(u32, bool, [u8; 4])> {
        key_press_packets(key, ms, 10)
            .into_iter()
            .map(|p| (ts.wrapping_add(p.timestamp_offset), p.marker, p.payload))
            .collect()
    }

    #[test]
    fn rfc4733_layout_literal_vector() {
        let event = TelephoneEvent {
            event: 5,
            end: true,
            volume: 10,
            duration: 0x0320,
        };
        assert_eq!(event.to_bytes(), [0x05, 0x8A, 0x03, 0x20]);
        assert_eq!(TelephoneEvent::parse(&[0x05, 0x8A, 0x03, 0x20]), Ok(event));
    }

    #[test]
    fn parse_to_bytes_round_trips_every_field_value() {
        for event in [0, 11, 16, 255] {
            for end in [false, true] {
                for volume in [0, 10, MAX_VOLUME] {
                    for duration in [0, 160, 0x8000, u16::MAX] {
                        let e = TelephoneEvent {
                            event,
                            end,
                            volume,
                            duration,
                        };
                        assert_eq!(TelephoneEvent::parse(&e.to_bytes()), Ok(e));
                    }
                }
            }
        }
    }

    #[test]
    fn reserved_bit_is_ignored_and_extra_bytes_are_ignored() {
        let e = TelephoneEvent::parse(&[0x0B, 0x40 | 0x3F, 0x00, 0xA0, 0xDE, 0xAD]).unwrap();
        assert_eq!(
            e,
            TelephoneEvent {
                event: 11,
                end: false,
                volume: 63,
                duration: 160
            }
        );
    }

    #[test]
    fn short_payload_is_an_error_not_a_panic() {
        for len in 0..EVENT_LEN {
            let bytes = vec![0xFF; len];
            assert_eq!(
                TelephoneEvent::parse(&bytes),
                Err(Rfc4733Error::TooShort { len })
            );
            let mut rx = Receiver::new();
            assert_eq!(rx.on_packet(Instant::now(), T0, true, &bytes), None);
        }
    }

    #[test]
    fn end_packet_sent_three_times_counted_once() {
        let mut rx = Receiver::new();
        let packets = vec![
            (T0, true, payload(Key::D5, false, 160)),
            (T0, false, payload(Key::D5, false, 320)),
            (T0, false, payload(Key::D5, true, 480)),
            (T0, false, payload(Key::D5, true, 480)),
            (T0, false, payload(Key::D5, true, 480)),
        ];
        assert_eq!(feed(&mut rx, Instant::now(), &packets), vec![Key::D5]);
    }

    #[test]
    fn key_press_payloads_fed_to_receiver_yield_exactly_one_key() {
        for ms in [0, 20, 45, 100, 2_000, 20_000] {
            let packets: Vec<_> = key_press_payloads(Key::Pound, ms, 10)
                .into_iter()
                .map(|(m, p)| (T0, m, p))
                .collect();
            let mut rx = Receiver::new();
            assert_eq!(
                feed(&mut rx, Instant::now(), &packets),
                vec![Key::Pound],
                "{ms} ms"
            );
        }
    }

    #[test]
    fn key_press_payloads_follow_the_sender_rules() {
        let sent = key_press_payloads(Key::D7, 100, 10);
        let events: Vec<_> = sent
            .iter()
            .map(|(_, p)| TelephoneEvent::parse(p).unwrap())
            .collect();
        let markers: Vec<_> = sent.iter().map(|(m, _)| *m).collect();
        let durations: Vec<_> = events.iter().map(|e| e.duration).collect();
        let ends: Vec<_> = events.iter().map(|e| e.end).collect();
        assert_eq!(markers, [true, false, false, false, false, false, false]);
        assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
        assert_eq!(ends, [false, false, false, false, true, true, true]);
        assert!(events.iter().all(|e| e.event == 7 && e.volume == 10));
    }

    #[test]
    fn repeated_same_key_with_new_timestamps_counted_twice() {
        let mut rx = Receiver::new();
        let mut packets = press(Key::D1, T0, 100);
        packets.extend(press(Key::D1, T0 + 1_600, 100));
        assert_eq!(
            feed(&mut rx, Instant::now(), &packets),
            vec![Key::D1, Key::D1]
        );
    }

    #[test]
    fn start_packets_lost_first_seen_end_still_counted_once() {
        let mut rx = Receiver::new();
        let packets: Vec<_> = press(Key::D9, T0, 100)
            .into_iter()
            .filter(|(_, _, p)| p[1] & 0x80 != 0)
            .collect();
        assert_eq!(packets.len(), 3);
        assert_eq!(feed(&mut rx, Instant::now(), &packets), vec![Key::D9]);
    }

    #[test]
    fn update_without_start_is_counted_once() {
        let mut rx = Receiver::new();
        let packets: Vec<_> = press(Key::A, T0, 100).into_iter().skip(2).collect();
        assert_eq!(feed(&mut rx, Instant::now(), &packets), vec![Key::A]);
    }

    #[test]
    fn long_event_continuation_counted_once() {
        let packets = press(Key::D0, T0, 20_000);
        let segments: std::collections::BTreeSet<_> = packets.iter().map(|(ts, ..)| *ts).collect();
        assert_eq!(segments.len(), 3, "20 s at 8 kHz spans three segments");
        let mut rx = Receiver::new();
        assert_eq!(feed(&mut rx, Instant::now(), &packets), vec![Key::D0]);
    }

    #[test]
    fn long_event_continuation_across_timestamp_wrap_counted_once() {
        let mut rx = Receiver::new();
        let packets = press(Key::Star, u32::MAX - 1_000, 10_000);
        assert_eq!(feed(&mut rx, Instant::now(), &packets), vec![Key::Star]);
    }

    #[test]
    fn continuation_with_last_updates_lost_counted_once() {
        let mut rx = Receiver::new();
        let now = Instant::now();
        assert_eq!(
            rx.on_packet(now, T0, true, &payload(Key::D4, false, 0xFE00)),
            Some(Key::D4)
        );
        let next = T0.wrapping_add(0xFFFF);
        assert_eq!(
            rx.on_packet(now, next, false, &payload(Key::D4, false, 320)),
            None
        );
    }

    #[test]
    fn same_key_after_ended_press_at_segment_distance_is_new() {
        let mut rx = Receiver::new();
        let now = Instant::now();
        assert_eq!(
            rx.on_packet(now, T0, true, &payload(Key::D4, true, 800)),
            Some(Key::D4)
        );
        let next = T0.wrapping_add(0xFFFF);
        let later = now + Duration::from_secs(1);
        assert_eq!(
            rx.on_packet(later, next, true, &payload(Key::D4, false, 160)),
            Some(Key::D4)
        );
    }

    #[test]
    fn out_of_order_old_packet_ignored() {
        let mut rx = Receiver::new();
        let now = Instant::now();
        // Press "2": its end packets are delayed behind the start of "3".
        assert_eq!(
            rx.on_packet(now, T0, true, &payload(Key::D2, false, 160)),
            Some(Key::D2)
        );
        let t1 = T0 + 2_000;
        assert_eq!(
            rx.on_packet(now, t1, true, &payload(Key::D3, false, 160)),
            Some(Key::D3)
        );
        assert_eq!(
            rx.on_packet(now, T0, false, &payload(Key::D2, true, 800)),
            None
        );
        // An older press never seen before is stale too.
        let stale = T0 - 1_600;
        assert_eq!(
            rx.on_packet(now, stale, false, &payload(Key::D8, true, 800)),
            None
        );
        assert_eq!(
            rx.on_packet(now, t1, false, &payload(Key::D3, true, 800)),
            None
        );
    }

    #[test]
    fn timestamp_jump_far_backwards_starts_over() {
        let mut rx = Receiver::new();
        let now = Instant::now();
        assert_eq!(
            rx.on_packet(now, T0, true, &payload(Key::D2, true, 800)),
            Some(Key::D2)
        );
        let jumped = T0 - 10_000_000;
        assert_eq!(
            rx.on_packet(now, jumped, true, &payload(Key::D2, false, 160)),
            Some(Key::D2)
        );
        assert_eq!(
            rx.on_packet(now, jumped, false, &payload(Key::D2, true, 800)),
            None
        );
    }

    #[test]
    fn unknown_event_codes_ignored() {
        let mut rx = Receiver::new();
        let now = Instant::now();
        for (i, code) in [16u8, 17, 32, 64, 255].into_iter().enumerate() {
            let ts = T0 + 1_000 * i as u32;
            let p = TelephoneEvent {
                event: code,
                end: false,
                volume: 10,
                duration: 160,
            };
            assert_eq!(
                rx.on_packet(now, ts, true, &p.to_bytes()),
                None,
                "code {code}"
            );
        }
        // A flash between two presses does not disturb them.
        assert_eq!(
            rx.on_packet(now, T0 + 9_000, true, &payload(Key::B, false, 160)),
            Some(Key::B)
        );
    }

    #[test]
    fn duplicate_after_long_silence_is_fresh() {
        let mut rx = Receiver::new();
        let now = Instant::now();
        let p = payload(Key::C, true, 800);
        assert_eq!(rx.on_packet(now, T0, true, &p), Some(Key::C));
        assert_eq!(
            rx.on_packet(now + Duration::from_secs(1), T0, false, &p),
            None
        );
        assert_eq!(
            rx.on_packet(now + Duration::from_secs(7), T0, false, &p),
            Some(Key::C)
        );
    }

    #[test]
    fn flood_of_new_timestamps_keeps_memory_bounded() {
        let mut rx = Receiver::new();
        let now = Instant::now();
        for i in 0..10_000u32 {
            let _ = rx.on_packet(
                now,
                i.wrapping_mul(7_919),
                i % 2 == 0,
                &payload(Key::D6, false, 160),
            );
            assert!(rx.recent.len() <= MEMORY);
        }
    }

    #[test]
    fn long_press_generator_segments_at_0xffff() {
        let packets = key_press_packets(Key::D3, 10_000, 10);
        let boundary: Vec<_> = packets
            .iter()
            .filter(|p| p.timestamp_offset == 0)
            .map(|p| TelephoneEvent::parse(&p.payload).unwrap())
            .collect();
        let last = boundary.last().unwrap();
        assert_eq!((last.duration, last.end), (0xFFFF, false));
        let tail = packets.last().unwrap();
        assert_eq!(tail.timestamp_offset, 0xFFFF);
        assert_eq!(
            TelephoneEvent::parse(&tail.payload).unwrap().duration,
            (80_000 - 0xFFFF) as u16
        );
        assert_eq!(packets.iter().filter(|p| p.marker).count(), 1);
    }
}
