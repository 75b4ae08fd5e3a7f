//! One caller's audio on its way into a room's mix: the adaptive jitter
//! buffer ([`crate::media::jitter`]), the decoder, Opus's in-band FEC and
//! loss concealment, one 20 ms frame a tick.
//!
//! Payloads wait in the jitter buffer and are decoded in order as they are
//! played, so Opus's decoder state and its concealment stay right. A lost
//! Opus frame is decoded from the in-band FEC of the packet after it when
//! that packet is already buffered; otherwise a lost frame is concealed
//! (Opus PLC, or the last frame repeated at half the level each time) for
//! up to [`CONCEAL_FRAMES`], then silence. Sans-IO: packets and `Instant`s
//! in, frames out.

use std::time::Instant;

use crate::media::Codec;
use crate::media::codec::{self, Decoder};
use crate::media::jitter::{Jitter, Playout, Stats};
use crate::media::pcm::PCM_FRAME;
use crate::media::rtp::Header;

/// Payload buffers kept for reuse (the jitter buffer's most).
const SPARE_PAYLOADS: usize = 16;

/// Lost frames in a row that are concealed before the caller goes silent.
pub const CONCEAL_FRAMES: u8 = 3;

/// 20 ms of 16 kHz audio.
pub type Frame = [i16; PCM_FRAME];

/// A caller's inbound audio: jitter buffer, decoder, concealment state.
pub struct Inbound {
    jitter: Jitter<Vec<u8>>,
    /// Payload buffers played and kept for reuse: no allocation per
    /// packet once the buffer has warmed up.
    spare: Vec<Vec<u8>>,
    decoder: Box<dyn Decoder>,
    pcm: Vec<i16>,
    last: Option<Frame>,
    concealed: u8,
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("jitter", &self.jitter.stats())
            .field("concealed", &self.concealed)
            .finish_non_exhaustive()
    }
}

impl Inbound {
    /// For a far end that sends `codec` (at its RTP clock rate).
    pub fn new(codec: Codec) -> Inbound {
        Inbound {
            jitter: Jitter::new(codec.clock_rate()),
            spare: Vec::with_capacity(SPARE_PAYLOADS),
            decoder: codec::decoder(codec),
            pcm: Vec::with_capacity(PCM_FRAME),
            last: None,
            concealed: 0,
        }
    }

    /// One packet of audio (its payload) arrived at `now`.
    pub fn push_audio(&mut self, now: Instant, header: &Header, payload: &[u8]) {
        let mut buffer = self.spare.pop().unwrap_or_default();
        buffer.clear();
        buffer.extend_from_slice(payload);
        self.jitter
            .push(now, header.ssrc, header.sequence, header.timestamp, buffer);
    }

    /// A packet of the stream that is not audio (RFC 4733) arrived: it
    /// takes a sequence number, so it is not a loss.
    pub fn push_not_audio(&mut self, header: &Header) {
        self.jitter.push_not_audio(header.ssrc, header.sequence);
    }

    /// This tick's frame: played, recovered, concealed, or none.
    pub fn take_frame(&mut self) -> Option<Frame> {
        let played = self.jitter.pop();
        // A lost Opus frame comes back from the next packet's FEC when it is here.
        if matches!(played, Playout::Lost)
            && let Some(next) = self.jitter.peek_next()
            && self.decoder.recover(next, &mut self.pcm)
        {
            self.jitter.note_recovered();
            return Some(self.heard());
        }
        match played {
            Playout::Frame(payload) => {
                self.decoder.decode(&payload, &mut self.pcm);
                if self.spare.len() < SPARE_PAYLOADS {
                    self.spare.push(payload);
                }
                Some(self.heard())
            }
            // A loss, or the buffering that follows an underrun mid-stream:
            // the codec's own concealment (Opus PLC), else the last frame
            // repeated at half the level each time.
            Playout::Lost | Playout::Buffering
                if self.last.is_some() && self.concealed < CONCEAL_FRAMES =>
            {
                self.concealed += 1;
                if self.decoder.conceal(&mut self.pcm) {
                    Some(codec::padded(&self.pcm))
                } else {
                    let fade = self.concealed;
                    self.last.map(|mut f| {
                        f.iter_mut().for_each(|s| *s >>= fade);
                        f
                    })
                }
            }
            Playout::Silence => {
                self.concealed = CONCEAL_FRAMES;
                None
            }
            Playout::Lost | Playout::Buffering => None,
        }
    }

    /// The frame just decoded, kept as the last one heard.
    fn heard(&mut self) -> Frame {
        let f = codec::padded(&self.pcm);
        self.concealed = 0;
        self.last = Some(f);
        f
    }

    /// Plays this tick's packet into nothing (for a caller no one hears):
    /// the buffer stays current, nothing is decoded.
    pub fn discard(&mut self) {
        if let Playout::Frame(payload) = self.jitter.pop()
            && self.spare.len() < SPARE_PAYLOADS
        {
            self.spare.push(payload);
        }
    }

    /// The far end now sends `codec`: a fresh jitter buffer and decoder.
    pub fn set_codec(&mut self, codec: Codec) {
        self.jitter = Jitter::new(codec.clock_rate());
        self.decoder = codec::decoder(codec);
        self.last = None;
    }

    /// The jitter buffer's counters.
    pub fn stats(&self) -> Stats {
        self.jitter.stats()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::media::codec::OpusParams;

    /// A PCMU payload of a constant level (μ-law: the decoded value is close).
    pub(crate) fn pcmu(level: i16) -> Vec<u8> {
        let mut out = Vec::new();
        crate::media::g711::encode(crate::media::g711::Law::Mu, &[level; 160], &mut out);
        out
    }

    /// What `level` sounds like after μ-law.
    pub(crate) fn lvl(level: i16) -> i16 {
        let mut pcm = Vec::new();
        crate::media::g711::decode(crate::media::g711::Law::Mu, &pcmu(level), &mut pcm);
        pcm[0]
    }

    /// A frame's level once the 8 → 16 kHz filter has settled: its last sample.
    pub(crate) fn steady(f: Frame) -> i16 {
        f[PCM_FRAME - 1]
    }

    pub(crate) fn near(got: Option<i16>, want: i16) -> bool {
        got.is_some_and(|g| g.abs_diff(want) <= 2)
    }

    pub(crate) fn header(seq: u16) -> Header {
        Header {
            payload_type: 0,
            marker: false,
            sequence: seq,
            timestamp: u32::from(seq) * 160,
            ssrc: 42,
        }
    }

    #[test]
    fn a_lost_frame_is_concealed_fading_then_silence() {
        let mut m = Inbound::new(Codec::Pcmu);
        let t0 = std::time::Instant::now();
        m.push_audio(t0, &header(1), &pcmu(800));
        let played = m.take_frame().map(steady);
        assert!(near(played, lvl(800)), "{played:?}");
        let concealed: Vec<Option<i16>> = (0..4).map(|_| m.take_frame().map(steady)).collect();
        let l = played.unwrap_or_default();
        assert_eq!(
            concealed,
            vec![Some(l >> 1), Some(l >> 2), Some(l >> 3), None]
        );
        assert_eq!(m.stats().underruns, 1);
    }

    #[test]
    fn a_lost_opus_frame_is_decoded_from_the_next_packets_fec() {
        let mut m = Inbound::new(Codec::Opus);
        let mut enc = codec::encoder(Codec::Opus, OpusParams::default());
        let t0 = std::time::Instant::now();
        let mut payload = Vec::new();
        let mut frames: Vec<Option<Frame>> = Vec::new();
        for seq in 1..=20u16 {
            let pcm: Vec<i16> = (0..320)
                .map(|n| {
                    let t = f64::from(u32::from(seq) * 320 + n) / 16000.0;
                    (6000.0 * (2.0 * std::f64::consts::PI * 300.0 * t).sin()) as i16
                })
                .collect();
            enc.encode(&pcm, &mut payload);
            // One packet ahead of playout, as a buffer of two frames holds.
            let at = t0 + std::time::Duration::from_millis(20 * u64::from(seq));
            if seq != 15 {
                m.push_audio(at, &header(seq), &payload);
            }
            if seq > 1 {
                frames.push(m.take_frame());
            }
        }
        let stats = m.stats();
        assert_eq!((stats.lost, stats.recovered), (1, 1), "{stats:?}");
        // frames[k] plays sequence k + 1: the lost 15 is frames[14].
        let rebuilt = frames[14].expect("the lost frame is played");
        let level = rebuilt.iter().map(|s| i32::from(*s).abs()).max();
        assert!(level > Some(1000), "and it carries the tone: {level:?}");
    }

    #[test]
    fn keypad_packets_between_audio_are_silence_not_loss() {
        let mut m = Inbound::new(Codec::Pcmu);
        let t0 = std::time::Instant::now();
        m.push_audio(t0, &header(1), &pcmu(300));
        m.push_not_audio(&header(2));
        m.push_audio(t0, &header(3), &pcmu(300));
        let got: Vec<Option<i16>> = (0..3).map(|_| m.take_frame().map(steady)).collect();
        assert!(
            near(got[0], lvl(300)) && got[1].is_none() && near(got[2], lvl(300)),
            "{got:?}"
        );
        assert_eq!(m.stats().lost, 0);
    }
}
