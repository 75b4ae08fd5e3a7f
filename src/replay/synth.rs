//! A caller keying a code over RTP: G.711 silence around RFC 4733
//! telephone-events, as a phone sends it.
//!
//! One SSRC; sequence +1 per packet; an 8 kHz timestamp that follows wall
//! time; per key a fixed event timestamp (the press's start), marker on its
//! first packet, duration growing by 160 per 20 ms, the end packet sent three
//! times (RFC 4733 §2.5.1). Silence before the first key lets a
//! symmetric-RTP receiver latch before any digit matters.

use std::time::Duration;

use rtp_rs::{RtpPacketBuilder, Seq};

use crate::dtmf::Key;
use crate::dtmf::rfc4733::key_press_payloads;

/// One packet and when to send it, from the start of the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedPacket {
    pub at: Duration,
    pub bytes: Vec<u8>,
}

/// How the keys are pressed.
#[derive(Clone, Debug)]
pub struct Keying {
    pub audio_payload_type: u8,
    pub event_payload_type: u8,
    pub ssrc: u32,
    pub first_sequence: u16,
    pub first_timestamp: u32,
    /// Silence before the first key.
    pub lead: Duration,
    /// How long each key is held.
    pub press: Duration,
    /// Silence between keys.
    pub gap: Duration,
    /// Silence after the last key.
    pub tail: Duration,
}

impl Default for Keying {
    fn default() -> Self {
        Keying {
            audio_payload_type: 0,
            event_payload_type: 101,
            ssrc: 0x0D1A_1CA7,
            first_sequence: 1000,
            first_timestamp: 160_000,
            lead: Duration::from_millis(500),
            press: Duration::from_millis(100),
            gap: Duration::from_millis(100),
            tail: Duration::from_millis(200),
        }
    }
}

#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum SynthError {
    #[error("{0:?} is not a keypad key (0-9, *, #, A-D)")]
    NotAKey(char),
}

const FRAME: Duration = Duration::from_millis(20);
const SAMPLES_PER_FRAME: u32 = 160;
const PCMU_SILENCE: [u8; 160] = [0xFF; 160];
const PCMA_SILENCE: [u8; 160] = [0xD5; 160];

struct Stream<'a> {
    keying: &'a Keying,
    seq: u16,
    frames: u32,
    out: Vec<TimedPacket>,
}

impl Stream<'_> {
    fn now(&self) -> Duration {
        FRAME * self.frames
    }

    fn timestamp(&self) -> u32 {
        self.keying
            .first_timestamp
            .wrapping_add(self.frames.wrapping_mul(SAMPLES_PER_FRAME))
    }

    fn push(&mut self, pt: u8, marker: bool, timestamp: u32, payload: &[u8]) {
        let bytes = RtpPacketBuilder::new()
            .payload_type(pt)
            .ssrc(self.keying.ssrc)
            .sequence(Seq::from(self.seq))
            .timestamp(timestamp)
            .marked(marker)
            .payload(payload)
            .build()
            // Cannot fail: no CSRCs, payload type below 128.
            .unwrap_or_default();
        self.out.push(TimedPacket {
            at: self.now(),
            bytes,
        });
        self.seq = self.seq.wrapping_add(1);
        self.frames += 1;
    }

    fn silence(&mut self, length: Duration) {
        let silence: &[u8] = if self.keying.audio_payload_type == 8 {
            &PCMA_SILENCE
        } else {
            &PCMU_SILENCE
        };
        for _ in 0..length.as_millis().div_ceil(20) {
            let ts = self.timestamp();
            self.push(self.keying.audio_payload_type, false, ts, silence);
        }
    }
}

/// The packets of a caller keying `code` (e.g. `"123456789#"`).
pub fn keyed_code(code: &str, keying: &Keying) -> Result<Vec<TimedPacket>, SynthError> {
    let keys: Vec<Key> = code
        .chars()
        .map(|c| Key::from_char(c).ok_or(SynthError::NotAKey(c)))
        .collect::<Result<_, _>>()?;
    let mut s = Stream {
        keying,
        seq: keying.first_sequence,
        frames: 0,
        out: Vec::new(),
    };
    s.silence(keying.lead);
    let press_ms = u32::try_from(keying.press.as_millis()).unwrap_or(u32::MAX);
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            s.silence(keying.gap);
        }
        let event_ts = s.timestamp();
        for (marker, payload) in key_press_payloads(*key, press_ms, 10) {
            s.push(keying.event_payload_type, marker, event_ts, &payload);
        }
    }
    s.silence(keying.tail);
    Ok(s.out)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::dtmf::rfc4733::Receiver;
    use crate::media::rtp::read;

    #[test]
    fn receiver_hears_each_key_once_including_repeats() {
        let packets = keyed_code("1123#", &Keying::default()).unwrap();
        let mut rx = Receiver::new();
        let t0 = Instant::now();
        let keys: String = packets
            .iter()
            .filter_map(|p| {
                let (h, payload) = read(&p.bytes)?;
                (h.payload_type == 101).then_some(())?;
                rx.on_packet(t0 + p.at, h.timestamp, h.marker, payload)
            })
            .map(Key::to_char)
            .collect();
        assert_eq!(keys, "1123#");
    }

    #[test]
    fn stream_is_one_ssrc_with_continuous_sequence_and_wall_clock_timestamps() {
        let k = Keying::default();
        let packets = keyed_code("5", &k).unwrap();
        let headers: Vec<_> = packets.iter().map(|p| read(&p.bytes).unwrap().0).collect();
        for (i, w) in headers.windows(2).enumerate() {
            assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
            assert_eq!(w[0].ssrc, k.ssrc);
            assert_eq!(packets[i + 1].at - packets[i].at, Duration::from_millis(20));
        }
        // The event's timestamp stays at its start while its packets go on.
        let events: Vec<_> = headers.iter().filter(|h| h.payload_type == 101).collect();
        assert!(events.iter().all(|h| h.timestamp == events[0].timestamp));
        assert!(events[0].marker && !events[1].marker);
        // Audio after the event has moved on with wall time.
        let last = headers.last().unwrap();
        let frames = u32::try_from(headers.len() - 1).unwrap();
        assert_eq!(last.timestamp, k.first_timestamp + 160 * frames);
    }

    #[test]
    fn non_keys_are_refused() {
        assert_eq!(
            keyed_code("12x", &Keying::default()),
            Err(SynthError::NotAKey('x'))
        );
    }
}
