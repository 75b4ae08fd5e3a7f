//! A caller keying a code over RTP, as a phone sends it: G.711 silence
//! around RFC 4733 telephone-events, the keys' tones in the audio itself
//! (in-band), or both at once (a phone that signals events and lets the
//! tone through too).
//!
//! One SSRC; sequence +1 per packet; an 8 kHz timestamp that follows wall
//! time; per key a fixed event timestamp (the press's start), marker on its
//! first packet, duration growing by 160 per 20 ms, the end packet sent three
//! times (RFC 4733 §2.5.1). Silence before the first key lets a
//! symmetric-RTP receiver latch before any digit matters.

use std::time::Duration;

use rtp_rs::{RtpPacketBuilder, Seq};

use dialgate::dtmf::Key;
use dialgate::dtmf::inband::key_tone;
use dialgate::dtmf::rfc4733::key_press_payloads;
use dialgate::media::g711::{self, Law};

/// One packet and when to send it, from the start of the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedPacket {
    pub at: Duration,
    pub bytes: Vec<u8>,
}

/// How the keys reach the far end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Signal {
    /// RFC 4733 telephone-events between silent audio packets.
    #[default]
    Events,
    /// The keys' tones in the audio (G.711), no events.
    Tones,
    /// Both: every 20 ms of a press, a tone packet and an event packet.
    Both,
}

impl Signal {
    /// `rfc4733`, `inband` or `both`.
    pub fn parse(text: &str) -> Option<Signal> {
        match text {
            "rfc4733" => Some(Signal::Events),
            "inband" => Some(Signal::Tones),
            "both" => Some(Signal::Both),
            _ => None,
        }
    }
}

/// Level of each tone of an in-band key, dBm0 (a phone sends about −6 to −10).
pub const TONE_LEVEL_DBM0: f64 = -9.0;

/// How the keys are pressed.
#[derive(Clone, Debug)]
pub struct Keying {
    pub signal: Signal,
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
            signal: Signal::Events,
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

    /// One packet at the current time; [`Self::tick`] moves time on.
    fn packet(&mut self, pt: u8, marker: bool, timestamp: u32, payload: &[u8]) {
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
    }

    fn tick(&mut self) {
        self.frames += 1;
    }

    fn push(&mut self, pt: u8, marker: bool, timestamp: u32, payload: &[u8]) {
        self.packet(pt, marker, timestamp, payload);
        self.tick();
    }

    fn law(&self) -> Law {
        if self.keying.audio_payload_type == 8 {
            Law::A
        } else {
            Law::Mu
        }
    }

    /// One 20 ms audio packet: `key`'s tone, or silence.
    fn audio(&mut self, key: Option<Key>) {
        let ts = self.timestamp();
        let pt = self.keying.audio_payload_type;
        match key {
            Some(key) => {
                let from = u64::from(self.frames) * u64::from(SAMPLES_PER_FRAME);
                let pcm = key_tone(key, TONE_LEVEL_DBM0, from, SAMPLES_PER_FRAME as usize);
                let mut payload = Vec::with_capacity(pcm.len());
                g711::encode(self.law(), &pcm, &mut payload);
                self.packet(pt, false, ts, &payload);
            }
            None => {
                let silence: &[u8] = match self.law() {
                    Law::A => &PCMA_SILENCE,
                    Law::Mu => &PCMU_SILENCE,
                };
                self.packet(pt, false, ts, silence);
            }
        }
    }

    /// One press of `key` as the keying's signal says.
    fn press(&mut self, key: Key, press_ms: u32) {
        let event_ts = self.timestamp();
        let events = key_press_payloads(key, press_ms, 10);
        let tone_frames = press_ms.div_ceil(SAMPLES_PER_FRAME / 8) as usize;
        match self.keying.signal {
            Signal::Events => {
                for (marker, payload) in events {
                    self.push(self.keying.event_payload_type, marker, event_ts, &payload);
                }
            }
            Signal::Tones => {
                for _ in 0..tone_frames {
                    self.audio(Some(key));
                    self.tick();
                }
            }
            Signal::Both => {
                for (i, (marker, payload)) in events.into_iter().enumerate() {
                    // The tone sounds while the event does; the repeated
                    // end packets ride over silence.
                    self.audio((i < tone_frames).then_some(key));
                    self.packet(self.keying.event_payload_type, marker, event_ts, &payload);
                    self.tick();
                }
            }
        }
    }

    fn silence(&mut self, length: Duration) {
        for _ in 0..length.as_millis().div_ceil(20) {
            self.audio(None);
            self.tick();
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
        s.press(*key, press_ms);
    }
    s.silence(keying.tail);
    Ok(s.out)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use dialgate::dtmf::rfc4733::Receiver;
    use dialgate::media::rtp::{PayloadType, Ssrc, read};

    /// The keys an RFC 4733 receiver hears in the event packets.
    fn events_heard(packets: &[TimedPacket]) -> String {
        let mut rx = Receiver::new();
        let t0 = Instant::now();
        packets
            .iter()
            .filter_map(|p| {
                let (h, payload) = read(&p.bytes)?;
                (h.payload_type == PayloadType(101)).then_some(())?;
                rx.on_packet(t0 + p.at, h.timestamp, h.marker, payload)
            })
            .map(Key::to_char)
            .collect()
    }

    #[test]
    fn receiver_hears_each_key_once_including_repeats() {
        let packets = keyed_code("1123#", &Keying::default()).unwrap();
        assert_eq!(events_heard(&packets), "1123#");
    }

    #[test]
    fn stream_is_one_ssrc_with_continuous_sequence_and_wall_clock_timestamps() {
        let k = Keying::default();
        let packets = keyed_code("5", &k).unwrap();
        let headers: Vec<_> = packets.iter().map(|p| read(&p.bytes).unwrap().0).collect();
        for (i, w) in headers.windows(2).enumerate() {
            assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
            assert_eq!(w[0].ssrc, Ssrc(k.ssrc));
            assert_eq!(packets[i + 1].at - packets[i].at, Duration::from_millis(20));
        }
        // The event's timestamp stays at its start while its packets go on.
        let events: Vec<_> = headers
            .iter()
            .filter(|h| h.payload_type == PayloadType(101))
            .collect();
        assert!(events.iter().all(|h| h.timestamp == events[0].timestamp));
        assert!(events[0].marker && !events[1].marker);
        // Audio after the event has moved on with wall time.
        let last = headers.last().unwrap();
        let frames = u32::try_from(headers.len() - 1).unwrap();
        assert_eq!(last.timestamp, k.first_timestamp + 160 * frames);
    }

    /// The keys the in-band detector hears in the audio packets.
    fn tones_heard(packets: &[TimedPacket]) -> String {
        let mut tap = dialgate::dtmf::tap::ToneTap::new(dialgate::media::Codec::Pcmu);
        let mut heard = String::new();
        for p in packets {
            let (h, payload) = read(&p.bytes).unwrap();
            if h.payload_type == PayloadType(0) {
                tap.push(payload);
            }
            while let Some(t) = tap.poll_tone() {
                if let dialgate::dtmf::inband::Tone::Began { key, .. } = t {
                    heard.push(key.to_char());
                }
            }
        }
        heard
    }

    #[test]
    fn tones_carry_the_keys_in_the_audio_and_both_carries_them_twice() {
        let tones = Keying {
            signal: Signal::Tones,
            ..Keying::default()
        };
        let packets = keyed_code("1123#", &tones).unwrap();
        assert!(
            packets
                .iter()
                .all(|p| read(&p.bytes).unwrap().0.payload_type == PayloadType(0))
        );
        assert_eq!(tones_heard(&packets), "1123#");

        let both = Keying {
            signal: Signal::Both,
            ..Keying::default()
        };
        let packets = keyed_code("1123#", &both).unwrap();
        assert_eq!(tones_heard(&packets), "1123#");
        assert_eq!(events_heard(&packets), "1123#");
        // One sequence across both payload types, time moving 20 ms per pair.
        let headers: Vec<_> = packets.iter().map(|p| read(&p.bytes).unwrap().0).collect();
        for w in headers.windows(2) {
            assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
        }
    }

    #[test]
    fn non_keys_are_refused() {
        assert_eq!(
            keyed_code("12x", &Keying::default()),
            Err(SynthError::NotAKey('x'))
        );
    }
}
