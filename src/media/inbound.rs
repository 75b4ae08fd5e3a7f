//! One caller's audio on its way into a room's mix: the adaptive jitter
//! buffer ([`crate::media::jitter`]), the decoder, Opus's in-band FEC and
//! loss concealment, one 20 ms frame a tick.
//!
//! Payloads wait in the jitter buffer and are decoded in order as they are
//! played, so Opus's decoder state and its concealment stay right. Callers
//! choose their packet time (10, 20, 30, 40, 60 ms; Opus up to 120): each
//! tick takes packets until it has a frame, and what a longer packet holds
//! beyond it waits for the next tick. A lost Opus packet is decoded from
//! the in-band FEC of the packet after it when that packet is already
//! buffered; otherwise a lost packet is concealed (Opus PLC, or the last
//! packet repeated at half the level each frame's time) for up to
//! [`CONCEAL_FRAMES`] frames' time, then silence. Sans-IO: packets and
//! `Instant`s in, frames out.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::media::Codec;
use crate::media::codec::{self, Decoder};
use crate::media::jitter::{FRAME, Jitter, Playout, Stats};
use crate::media::pcm::PCM_FRAME;
use crate::media::rtp::Header;

/// Payload buffers kept for reuse (the jitter buffer's most).
const SPARE_PAYLOADS: usize = 16;

/// Frames' time lost in a row that is concealed before the caller goes
/// silent (at least one packet).
pub const CONCEAL_FRAMES: usize = 3;

/// Samples of the gateway's 16 kHz PCM in a millisecond.
const SAMPLES_PER_MS: u128 = 16;

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
    /// Decoded audio not played yet: what a packet longer than a frame
    /// holds beyond it.
    ready: VecDeque<i16>,
    /// The last packet heard (empty before the first), repeated to conceal.
    last: Vec<i16>,
    /// Samples concealed since a packet was last heard.
    concealed: usize,
    /// Time discarded (for a caller no one hears) not yet taken from the
    /// buffer in whole packets.
    skipped: Duration,
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
            ready: VecDeque::with_capacity(2 * PCM_FRAME),
            last: Vec::with_capacity(PCM_FRAME),
            concealed: 0,
            skipped: Duration::ZERO,
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

    /// This tick's frame: played, recovered, concealed, or none. A frame
    /// the packets end within (the caller fell silent) is padded with
    /// silence.
    pub fn take_frame(&mut self) -> Option<Frame> {
        self.skipped = Duration::ZERO;
        while self.ready.len() < PCM_FRAME && self.pull() {}
        if self.ready.is_empty() {
            return None;
        }
        let mut frame = [0i16; PCM_FRAME];
        let n = self.ready.len().min(PCM_FRAME);
        // Copied a slice at a time (the queue may wrap), not sample by sample.
        let (head, tail) = self.ready.as_slices();
        let from_head = head.len().min(n);
        frame[..from_head].copy_from_slice(&head[..from_head]);
        frame[from_head..n].copy_from_slice(&tail[..n - from_head]);
        self.ready.drain(..n);
        Some(frame)
    }

    /// The stream's packet, in samples of 16 kHz.
    fn packet_samples(&self) -> usize {
        (self.jitter.packet_time().as_millis() * SAMPLES_PER_MS).max(1) as usize
    }

    /// One packet's worth of audio into `ready`: played, recovered from
    /// FEC or concealed; `false` when there is none (keypad silence,
    /// buffering, or concealment run out).
    fn pull(&mut self) -> bool {
        let samples = self.packet_samples();
        let played = self.jitter.pop();
        // A lost Opus packet comes back from the next packet's FEC when it is here.
        if matches!(played, Playout::Lost)
            && let Some(next) = self.jitter.peek_next()
            && self.decoder.recover(next, samples, &mut self.pcm)
        {
            self.jitter.note_recovered();
            self.heard();
            return true;
        }
        match played {
            Playout::Frame(payload) => {
                self.decoder.decode(&payload, &mut self.pcm);
                if self.spare.len() < SPARE_PAYLOADS {
                    self.spare.push(payload);
                }
                self.heard();
                true
            }
            // A loss, or the buffering that follows an underrun mid-stream:
            // the codec's own concealment (Opus PLC), else the last packet
            // repeated at half the level each frame's time.
            Playout::Lost | Playout::Buffering
                if !self.last.is_empty() && self.concealed < CONCEAL_FRAMES * PCM_FRAME =>
            {
                let from = self.concealed;
                self.concealed += samples;
                if self.decoder.conceal(samples, &mut self.pcm) {
                    self.ready.extend(&self.pcm);
                } else {
                    // Half the level for each frame's time concealed so far.
                    let fade = |i: usize| 1 + (from + i) / PCM_FRAME;
                    let last = self.last.iter().cycle().take(samples);
                    self.ready
                        .extend(last.enumerate().map(|(i, s)| *s >> fade(i).min(15)));
                }
                true
            }
            Playout::Silence => {
                self.concealed = CONCEAL_FRAMES * PCM_FRAME;
                false
            }
            Playout::Lost | Playout::Buffering => false,
        }
    }

    /// The packet just decoded: to be played, and kept as the last heard.
    fn heard(&mut self) {
        self.ready.extend(&self.pcm);
        self.last.clear();
        self.last.extend_from_slice(&self.pcm);
        self.concealed = 0;
    }

    /// Plays this tick's audio into nothing (for a caller no one hears):
    /// the buffer stays current, nothing is decoded.
    pub fn discard(&mut self) {
        self.ready.clear();
        self.skipped += FRAME;
        let packet = self.jitter.packet_time().max(Duration::from_millis(1));
        while self.skipped >= packet {
            self.skipped -= packet;
            if let Playout::Frame(payload) = self.jitter.pop()
                && self.spare.len() < SPARE_PAYLOADS
            {
                self.spare.push(payload);
            }
        }
    }

    /// The far end now sends `codec`: a fresh jitter buffer and decoder.
    pub fn set_codec(&mut self, codec: Codec) {
        self.jitter = Jitter::new(codec.clock_rate());
        self.decoder = codec::decoder(codec);
        self.ready.clear();
        self.last.clear();
        self.concealed = 0;
        self.skipped = Duration::ZERO;
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
    use crate::media::rtp::{PayloadType, Ssrc};

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
            payload_type: PayloadType(0),
            marker: false,
            sequence: seq,
            timestamp: u32::from(seq) * 160,
            ssrc: Ssrc(42),
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
            let h = Header {
                timestamp: u32::from(seq) * 960,
                ..header(seq)
            };
            if seq != 15 {
                m.push_audio(at, &h, &payload);
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

    /// A PCMU packet of `ms` at a constant level.
    fn pcmu_of(ms: usize, level: i16) -> Vec<u8> {
        let mut out = Vec::new();
        crate::media::g711::encode(crate::media::g711::Law::Mu, &vec![level; ms * 8], &mut out);
        out
    }

    /// A stream of `ms` packets sent on time for `secs`, the packet with
    /// sequence number `lose` never arriving, played one frame every 20 ms:
    /// each tick's frame after the first 200 ms, and the counters then.
    /// (A stream of packets shorter than a frame underruns once as it
    /// starts: its packet time is known from its second packet.)
    fn play_stream(
        m: &mut Inbound,
        ms: u64,
        payload: &[u8],
        secs: u64,
        lose: Option<u16>,
    ) -> (Vec<Option<Frame>>, Stats) {
        let t0 = std::time::Instant::now();
        let mut frames = Vec::new();
        let mut warm = Stats::default();
        let mut seq = 0u16;
        for t in (0..secs * 1000).step_by(10) {
            if t % ms == 0 {
                let h = Header {
                    sequence: seq,
                    timestamp: u32::from(seq) * (ms as u32) * 8,
                    ..header(0)
                };
                if Some(seq) != lose {
                    m.push_audio(t0 + std::time::Duration::from_millis(t), &h, payload);
                }
                seq += 1;
            }
            if t % 20 == 0 {
                let f = m.take_frame();
                if t == 200 {
                    warm = m.stats();
                }
                if t >= 200 {
                    frames.push(f);
                }
            }
        }
        (frames, warm)
    }

    #[test]
    fn every_packet_time_plays_whole_in_20_ms_frames() {
        for ms in [10u64, 20, 30, 40, 60] {
            let mut m = Inbound::new(Codec::Pcmu);
            let (frames, warm) = play_stream(&mut m, ms, &pcmu_of(ms as usize, 900), 4, None);
            assert_eq!(m.jitter.packet_time(), std::time::Duration::from_millis(ms));
            // Every tick has its frame, every packet is played whole: no
            // packet dropped as the sender "running fast" (10 ms packets
            // taken one a tick) and no underrun (60 ms taken as 20).
            assert!(
                frames.iter().all(|f| near(f.map(steady), lvl(900))),
                "{ms} ms: {:?}",
                frames.iter().map(|f| f.map(steady)).collect::<Vec<_>>()
            );
            let stats = m.stats();
            assert_eq!(
                (
                    stats.lost - warm.lost,
                    stats.drift_drops,
                    stats.underruns - warm.underruns
                ),
                (0, 0, 0),
                "{ms} ms: {stats:?}"
            );
            // 4 s of packets: all but the few still buffered were played.
            let sent = 4000u64.div_ceil(ms);
            assert!(
                stats.played + 12 >= sent && stats.played <= sent,
                "{ms} ms: {stats:?}"
            );
        }
    }

    #[test]
    fn a_lost_long_packet_is_concealed_for_its_whole_length() {
        // One 40 ms packet lost: two frames concealed (fading), no gap.
        let mut m = Inbound::new(Codec::Pcmu);
        let (frames, warm) = play_stream(&mut m, 40, &pcmu_of(40, 900), 2, Some(30));
        assert_eq!(warm.lost, 0);
        let levels: Vec<Option<i16>> = frames.iter().map(|f| f.map(steady)).collect();
        assert!(frames.iter().all(Option::is_some), "{levels:?}");
        let l = lvl(900);
        let faded: Vec<i16> = levels
            .iter()
            .flatten()
            .copied()
            .filter(|v| !near(Some(*v), l))
            .collect();
        // The lost packet's 40 ms, then 40 more while the buffer fills
        // again (one packet deeper after the underrun), halving each frame.
        let want = [l >> 1, l >> 2, l >> 3, l >> 4];
        assert!(
            faded.len() == want.len() && faded.iter().zip(want).all(|(g, w)| near(Some(*g), w)),
            "{faded:?} in {levels:?}"
        );
        assert_eq!(m.stats().lost, 1);
    }

    #[test]
    fn opus_packets_of_60_ms_play_as_three_frames_each() {
        let enc = audiopus::coder::Encoder::new(
            audiopus::SampleRate::Hz16000,
            audiopus::Channels::Mono,
            audiopus::Application::Voip,
        )
        .unwrap();
        let tone: Vec<i16> = (0..960)
            .map(|n| {
                (6000.0 * (2.0 * std::f64::consts::PI * 250.0 * f64::from(n) / 16000.0).sin())
                    as i16
            })
            .collect();
        let mut packet = vec![0u8; 1275];
        let n = enc.encode(&tone, &mut packet).unwrap();
        let mut m = Inbound::new(Codec::Opus);
        let t0 = std::time::Instant::now();
        let mut frames = Vec::new();
        for k in 0..50u16 {
            // 60 ms apart, 2880 timestamp units (48 kHz): three ticks each.
            let h = Header {
                sequence: k,
                timestamp: u32::from(k) * 2880,
                ..header(0)
            };
            m.push_audio(
                t0 + std::time::Duration::from_millis(60 * u64::from(k)),
                &h,
                &packet[..n],
            );
            for _ in 0..3 {
                frames.push(m.take_frame());
            }
        }
        assert_eq!(m.jitter.packet_time(), std::time::Duration::from_millis(60));
        let stats = m.stats();
        assert_eq!((stats.lost, stats.drift_drops), (0, 0), "{stats:?}");
        let loud = frames[10..]
            .iter()
            .filter(|f| f.is_some_and(|f| f.iter().any(|s| s.abs() > 1000)))
            .count();
        assert_eq!(loud, frames.len() - 10, "every frame carries the tone");
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
