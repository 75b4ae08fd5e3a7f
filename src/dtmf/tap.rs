//! The caller's audio, decoded a second time for the in-band DTMF detector
//! ([`super::inband`]): whatever codec was negotiated, down to the
//! 8 kHz the detector reads.
//!
//! G.711 is expanded straight to 8 kHz from its tables; G.722 and Opus are
//! decoded to the gateway's 16 kHz and halved. Packets are read in arrival
//! order, without the jitter buffer: a key lasts many packets, and a lost or
//! late one costs at most one analysis window. The tap keeps its own decoder
//! so the room's mix is untouched.

use std::time::Duration;

use super::inband::{Detector, RATE, Tone};
use crate::media::Codec;
use crate::media::codec::{self, Decoder};
use crate::media::g711::{self, Law};
use crate::media::pcm::Halve;

enum Decode {
    G711(Law),
    Wide {
        decoder: Box<dyn Decoder>,
        down: Halve,
        wide: Vec<i16>,
    },
}

/// One call's in-band tone detector, fed with RTP payloads.
pub struct ToneTap {
    decode: Decode,
    narrow: Vec<i16>,
    detector: Detector,
}

impl std::fmt::Debug for ToneTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToneTap").finish_non_exhaustive()
    }
}

impl ToneTap {
    pub fn new(codec: Codec) -> ToneTap {
        let decode = match codec {
            Codec::Pcmu => Decode::G711(Law::Mu),
            Codec::Pcma => Decode::G711(Law::A),
            Codec::G722 | Codec::Opus => Decode::Wide {
                decoder: codec::decoder(codec),
                down: Halve::default(),
                wide: Vec::with_capacity(crate::media::pcm::PCM_FRAME),
            },
        };
        ToneTap {
            decode,
            narrow: Vec::with_capacity(crate::media::pcm::NARROW_FRAME),
            detector: Detector::new(),
        }
    }

    /// Reads one audio packet's payload; tones found wait in [`Self::poll_tone`].
    pub fn push(&mut self, payload: &[u8]) {
        match &mut self.decode {
            Decode::G711(law) => g711::decode(*law, payload, &mut self.narrow),
            Decode::Wide {
                decoder,
                down,
                wide,
            } => {
                decoder.decode(payload, wide);
                down.run(wide, &mut self.narrow);
            }
        }
        self.detector.push(&self.narrow);
    }

    #[must_use]
    pub fn poll_tone(&mut self) -> Option<Tone> {
        self.detector.poll_tone()
    }

    /// How long before the end of the audio read so far the stream time
    /// `at` (from a [`Tone`]) lies: to turn a tone's start into an instant.
    pub fn ago(&self, at: Duration) -> Duration {
        let read = Duration::from_micros(self.detector.samples() * 1_000_000 / u64::from(RATE));
        read.saturating_sub(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtmf::Key;
    use crate::dtmf::inband::key_tone;

    /// `keys` as 20 ms packets of `codec`, 80 ms tone and 80 ms silence each.
    fn packets(codec: Codec, keys: &str) -> Vec<Vec<u8>> {
        let mut pcm8 = vec![0i16; 1600];
        for c in keys.chars() {
            let key = Key::from_char(c).expect("key");
            pcm8.extend(key_tone(key, -12.0, pcm8.len() as u64, 640));
            pcm8.extend(vec![0i16; 640]);
        }
        pcm8.extend(vec![0i16; 1600]);
        let mut up = crate::media::pcm::Double::default();
        let mut encoder = codec::encoder(codec, codec::OpusParams::default());
        let mut wide = Vec::new();
        pcm8.chunks(160)
            .map(|frame| {
                up.run(frame, &mut wide);
                let mut out = Vec::new();
                encoder.encode(&wide, &mut out);
                out
            })
            .collect()
    }

    #[test]
    fn keys_are_heard_through_every_codec() {
        for codec in [Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus] {
            let mut tap = ToneTap::new(codec);
            let mut heard = String::new();
            for p in packets(codec, "159#") {
                tap.push(&p);
                while let Some(t) = tap.poll_tone() {
                    if let Tone::Began { key, .. } = t {
                        heard.push(key.to_char());
                    }
                }
            }
            assert_eq!(heard, "159#", "{codec:?}");
        }
    }

    #[test]
    fn a_tones_start_is_placed_back_from_the_audio_read() {
        let mut tap = ToneTap::new(Codec::Pcmu);
        let mut began = None;
        for p in packets(Codec::Pcmu, "5") {
            tap.push(&p);
            if let Some(Tone::Began { at, .. }) = tap.poll_tone() {
                began = Some(tap.ago(at));
            }
        }
        // Reported once sure, some 30–60 ms after the tone began.
        let ago = began.expect("heard");
        assert!(
            ago >= Duration::from_millis(20) && ago <= Duration::from_millis(80),
            "{ago:?}"
        );
    }

    #[test]
    fn garbage_payloads_do_not_panic() {
        for codec in [Codec::Pcmu, Codec::G722, Codec::Opus] {
            let mut tap = ToneTap::new(codec);
            for len in [0, 1, 3, 159, 160, 161, 400, 1400] {
                tap.push(&vec![0x5Au8; len]);
            }
        }
    }
}
