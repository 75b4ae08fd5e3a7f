//! Every audio codec behind one pair of traits: 20 ms frames of 8 kHz PCM
//! (the room's internal rate) in and out.
//!
//! - PCMU / PCMA (G.711): stateless tables ([`super::g711`]).
//! - G.722 (`audio-codec`, 64 kbit/s) at its real 16 kHz, with rubato
//!   resampling to and from the room's 8 kHz: interoperable, but the band
//!   above 4 kHz is lost until the room mixes at 16 kHz (not yet).
//! - Opus (`audiopus`, the system libopus): encoder and decoder opened at
//!   8 kHz mono, VoIP application, in-band FEC on with 10 % expected loss,
//!   bitrate capped by the far end's `maxaveragebitrate`. RTP still counts
//!   at 48 kHz (RFC 7587): 960 per 20 ms packet. A lost frame can be
//!   decoded from the FEC the next packet carries ([`Decoder::recover`]).
//!
//! A codec that fails on a frame (a malformed Opus packet) yields silence
//! for that frame; nothing read from the network can panic here.

use super::g711::{self, FRAME_SAMPLES, Law};
use crate::sip::sdp::Codec;

/// Encodes 20 ms frames of 8 kHz PCM.
pub trait Encoder: Send {
    /// Encodes `pcm` (160 samples; shorter is padded with silence) into `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>);
}

/// Decodes one packet's payload into 8 kHz PCM.
pub trait Decoder: Send {
    /// Decodes `payload` into `out` (cleared first).
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>);

    /// Fills `out` with a guess for a lost frame; `false` if the codec has
    /// no concealment of its own (the caller repeats the last frame).
    /// Rebuilds a lost frame from the in-band FEC carried by the packet
    /// after it (Opus); `false` when the codec has none.
    fn recover(&mut self, _next: &[u8], _out: &mut Vec<i16>) -> bool {
        false
    }

    fn conceal(&mut self, _out: &mut Vec<i16>) -> bool {
        false
    }
}

/// RTP timestamp units per 20 ms packet.
pub fn timestamp_step(codec: Codec) -> u32 {
    match codec {
        // G.722's RTP clock is 8000 though it samples at 16 kHz (RFC 3551 §4.5.2).
        Codec::Pcmu | Codec::Pcma | Codec::G722 => 160,
        Codec::Opus => 960,
    }
}

/// Opus settings from the far end's `a=fmtp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpusParams {
    /// Our encoder's bitrate ceiling (bit/s).
    pub max_average_bitrate: u32,
}

impl Default for OpusParams {
    fn default() -> Self {
        OpusParams {
            max_average_bitrate: 24_000,
        }
    }
}

/// A fresh encoder for `codec`.
pub fn encoder(codec: Codec, opus: OpusParams) -> Box<dyn Encoder> {
    match codec {
        Codec::Pcmu => Box::new(G711(Law::Mu)),
        Codec::Pcma => Box::new(G711(Law::A)),
        Codec::G722 => Box::new(G722Encoder::new()),
        Codec::Opus => match OpusEncoder::new(opus) {
            Ok(e) => Box::new(e),
            Err(e) => {
                // libopus refuses only impossible settings; ours are fixed.
                tracing::error!(%e, "Opus encoder failed to open; sending silence");
                Box::new(Silent)
            }
        },
    }
}

/// A fresh decoder for `codec`.
pub fn decoder(codec: Codec) -> Box<dyn Decoder> {
    match codec {
        Codec::Pcmu => Box::new(G711(Law::Mu)),
        Codec::Pcma => Box::new(G711(Law::A)),
        Codec::G722 => Box::new(G722Decoder::new()),
        Codec::Opus => match OpusDecoder::new() {
            Ok(d) => Box::new(d),
            Err(e) => {
                tracing::error!(%e, "Opus decoder failed to open; hearing silence");
                Box::new(Silent)
            }
        },
    }
}

fn padded(pcm: &[i16]) -> [i16; FRAME_SAMPLES] {
    let mut frame = [0i16; FRAME_SAMPLES];
    let n = pcm.len().min(FRAME_SAMPLES);
    frame[..n].copy_from_slice(&pcm[..n]);
    frame
}

struct G711(Law);

impl Encoder for G711 {
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        g711::encode(self.0, &padded(pcm), out);
    }
}

impl Decoder for G711 {
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        g711::decode(self.0, payload, out);
    }
}

/// Stands in for a codec that could not open: silence both ways.
struct Silent;

impl Encoder for Silent {
    fn encode(&mut self, _pcm: &[i16], out: &mut Vec<u8>) {
        out.clear();
    }
}

impl Decoder for Silent {
    fn decode(&mut self, _payload: &[u8], out: &mut Vec<i16>) {
        out.clear();
        out.resize(FRAME_SAMPLES, 0);
    }
}

/// A fixed-ratio resampler for 20 ms mono frames (rubato's FFT
/// resampler, both sides fixed: 160 ↔ 320 samples per call). It delays
/// the audio by a few milliseconds and keeps its state between frames.
struct Resample {
    fft: rubato::Fft<f32>,
    input: Vec<f32>,
    output: Vec<f32>,
}

impl Resample {
    fn new(from: usize, to: usize) -> Option<Resample> {
        let chunk = from / 50;
        let fft = rubato::Fft::<f32>::new(from, to, chunk, 1, rubato::FixedSync::Both).ok()?;
        Some(Resample {
            fft,
            input: vec![0.0; chunk],
            output: vec![0.0; to / 50],
        })
    }

    /// Resamples one 20 ms frame `pcm` into `out`.
    fn run(&mut self, pcm: &[i16], out: &mut Vec<i16>) {
        use rubato::Resampler as _;
        use rubato::audioadapter_buffers::direct::InterleavedSlice;
        for (i, s) in self.input.iter_mut().enumerate() {
            *s = pcm.get(i).map_or(0.0, |v| f32::from(*v) / 32768.0);
        }
        out.clear();
        let (frames_in, frames_out) = (self.input.len(), self.output.len());
        let done = InterleavedSlice::new(&self.input[..], 1, frames_in)
            .ok()
            .zip(InterleavedSlice::new_mut(&mut self.output[..], 1, frames_out).ok())
            .and_then(|(i, mut o)| self.fft.process_into_buffer(&i, &mut o, None).ok());
        if let Some((_, written)) = done {
            out.extend(self.output[..written.min(frames_out)].iter().map(|s| {
                // Clamped to the i16 range first; NaN casts to 0.
                (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16
            }));
        }
        out.resize(frames_out, 0);
    }
}

/// G.722 at its real 16 kHz: the room's 8 kHz frame is upsampled first.
struct G722Encoder {
    codec: audio_codec::g722::G722Encoder,
    up: Option<Resample>,
    wide: Vec<i16>,
}

impl G722Encoder {
    fn new() -> G722Encoder {
        G722Encoder {
            codec: audio_codec::g722::G722Encoder::new(),
            up: Resample::new(8000, 16000),
            wide: Vec::with_capacity(2 * FRAME_SAMPLES),
        }
    }
}

impl Encoder for G722Encoder {
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        use audio_codec::Encoder as _;
        match &mut self.up {
            Some(up) => up.run(&padded(pcm), &mut self.wide),
            None => self.wide.clear(),
        }
        self.wide.resize(2 * FRAME_SAMPLES, 0);
        out.clear();
        out.resize(self.codec.max_encode_bytes(self.wide.len()), 0);
        let n = self.codec.encode_into(&self.wide, out).unwrap_or(0);
        out.truncate(n);
    }
}

/// G.722 decoded at 16 kHz and downsampled to the room's 8 kHz.
struct G722Decoder {
    codec: audio_codec::g722::G722Decoder,
    down: Option<Resample>,
    wide: Vec<i16>,
}

impl G722Decoder {
    fn new() -> G722Decoder {
        G722Decoder {
            codec: audio_codec::g722::G722Decoder::new(),
            down: Resample::new(16000, 8000),
            wide: Vec::with_capacity(2 * FRAME_SAMPLES),
        }
    }
}

impl Decoder for G722Decoder {
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        use audio_codec::Decoder as _;
        // One 20 ms frame is 160 bytes; a longer payload is cut there.
        let payload = &payload[..payload.len().min(FRAME_SAMPLES)];
        self.wide.clear();
        self.wide
            .resize(self.codec.max_decode_samples(payload.len()), 0);
        let n = self.codec.decode_into(payload, &mut self.wide).unwrap_or(0);
        self.wide.truncate(n);
        match &mut self.down {
            Some(down) => down.run(&self.wide, out),
            None => out.clear(),
        }
        out.resize(FRAME_SAMPLES, 0);
    }
}

/// Largest Opus packet we produce (RFC 6716 allows 1275 bytes per frame).
const OPUS_MAX_PACKET: usize = 1275;

struct OpusEncoder(audiopus::coder::Encoder);

impl OpusEncoder {
    fn new(params: OpusParams) -> Result<OpusEncoder, audiopus::Error> {
        let mut e = audiopus::coder::Encoder::new(
            audiopus::SampleRate::Hz8000,
            audiopus::Channels::Mono,
            audiopus::Application::Voip,
        )?;
        e.set_inband_fec(true)?;
        e.set_packet_loss_perc(10)?;
        let bitrate = params.max_average_bitrate.clamp(6_000, 510_000);
        e.set_bitrate(audiopus::Bitrate::BitsPerSecond(
            i32::try_from(bitrate).unwrap_or(24_000),
        ))?;
        Ok(OpusEncoder(e))
    }
}

impl Encoder for OpusEncoder {
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        let frame = padded(pcm);
        out.clear();
        out.resize(OPUS_MAX_PACKET, 0);
        let n = self.0.encode(&frame, out).unwrap_or(0);
        out.truncate(n);
    }
}

struct OpusDecoder(audiopus::coder::Decoder);

impl OpusDecoder {
    fn new() -> Result<OpusDecoder, audiopus::Error> {
        audiopus::coder::Decoder::new(audiopus::SampleRate::Hz8000, audiopus::Channels::Mono)
            .map(OpusDecoder)
    }
}

/// Most samples one Opus packet may decode to at 8 kHz (120 ms).
const OPUS_MAX_SAMPLES: usize = 960;

impl Decoder for OpusDecoder {
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        out.clear();
        out.resize(OPUS_MAX_SAMPLES, 0);
        let n = match self.0.decode(Some(payload), &mut out[..], false) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(%e, "Opus packet refused");
                0
            }
        };
        out.truncate(n);
        if out.is_empty() {
            out.resize(FRAME_SAMPLES, 0);
        }
    }

    fn recover(&mut self, next: &[u8], out: &mut Vec<i16>) -> bool {
        out.clear();
        out.resize(FRAME_SAMPLES, 0);
        // With `fec`, libopus decodes the LBRR copy of the previous frame
        // that `next` carries (or conceals, when it carries none).
        self.0.decode(Some(next), &mut out[..], true).is_ok()
    }

    fn conceal(&mut self, out: &mut Vec<i16>) -> bool {
        out.clear();
        out.resize(FRAME_SAMPLES, 0);
        let empty: Option<&[u8]> = None;
        self.0.decode(empty, &mut out[..], false).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, frame: usize) -> Vec<i16> {
        (0..FRAME_SAMPLES)
            .map(|n| {
                let t = (frame * FRAME_SAMPLES + n) as f64 / 8000.0;
                (8000.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
            })
            .collect()
    }

    fn power(samples: &[i16], freq: f64) -> f64 {
        crate::media::goertzel::power(samples, freq, 8000.0)
    }

    /// A voice-like signal whose pitch moves every frame: concealment that
    /// repeats the past cannot guess frame `k`, FEC can.
    fn gliding(frame: usize) -> Vec<i16> {
        let f0 = 180.0 + 40.0 * frame as f64;
        (0..FRAME_SAMPLES)
            .map(|n| {
                let t = (frame * FRAME_SAMPLES + n) as f64 / 8000.0;
                let w = 2.0 * std::f64::consts::PI * f0 * t;
                (5000.0 * (w.sin() + 0.5 * (2.0 * w).sin() + 0.3 * (3.0 * w).sin())) as i16
            })
            .collect()
    }

    #[test]
    fn opus_recovers_a_lost_frame_from_the_next_packets_fec() {
        let mut enc = encoder(Codec::Opus, OpusParams::default());
        let packets: Vec<Vec<u8>> = (0..40)
            .map(|i| {
                let mut p = Vec::new();
                enc.encode(&gliding(i), &mut p);
                p
            })
            .collect();
        let lost = 30;
        let run = |fec: bool| {
            let mut dec = decoder(Codec::Opus);
            let mut pcm = Vec::new();
            for p in &packets[..lost] {
                dec.decode(p, &mut pcm);
            }
            if fec {
                assert!(dec.recover(&packets[lost + 1], &mut pcm));
            } else {
                assert!(dec.conceal(&mut pcm));
            }
            pcm
        };
        let f0 = 180.0 + 40.0 * lost as f64;
        let (fec, plc) = (power(&run(true), f0), power(&run(false), f0));
        eprintln!("lost frame's pitch {f0} Hz: FEC {fec:.0}, PLC {plc:.0}");
        assert!(
            fec > 4.0 * plc,
            "FEC beats concealment: {fec:.0} vs {plc:.0}"
        );
    }

    #[test]
    fn every_codec_carries_a_tone_through_and_keeps_it_apart_from_another() {
        for codec in [Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus] {
            let mut enc = encoder(codec, OpusParams::default());
            let mut dec = decoder(codec);
            let (mut payload, mut pcm, mut heard) = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..50 {
                enc.encode(&tone(697.0, i), &mut payload);
                assert!(!payload.is_empty(), "{codec:?} produced a packet");
                dec.decode(&payload, &mut pcm);
                assert_eq!(pcm.len(), FRAME_SAMPLES, "{codec:?} decodes 20 ms");
                heard.extend_from_slice(&pcm);
            }
            // Skip the codec's start-up (Opus look-ahead).
            let tail = &heard[FRAME_SAMPLES * 10..];
            let (wanted, other) = (power(tail, 697.0), power(tail, 1209.0));
            assert!(wanted > 100.0 * other, "{codec:?}: {wanted} vs {other}");
        }
    }

    #[test]
    fn garbage_payloads_decode_to_something_without_panicking() {
        for codec in [Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus] {
            let mut dec = decoder(codec);
            let mut pcm = Vec::new();
            // An empty payload must not panic (what it decodes to may be nothing).
            dec.decode(&[], &mut pcm);
            for garbage in [&[0xFF; 3][..], &[0x7F; 2000][..]] {
                dec.decode(garbage, &mut pcm);
                assert!(
                    !pcm.is_empty(),
                    "{codec:?} gives audio for {} bytes",
                    garbage.len()
                );
            }
        }
    }

    #[test]
    fn opus_conceals_a_lost_frame_and_g711_leaves_it_to_the_caller() {
        let mut pcm = Vec::new();
        assert!(decoder(Codec::Opus).conceal(&mut pcm));
        assert_eq!(pcm.len(), FRAME_SAMPLES);
        assert!(!decoder(Codec::Pcmu).conceal(&mut pcm));
    }

    #[test]
    fn opus_packets_are_small_and_timestamps_count_at_48_khz() {
        let mut enc = encoder(
            Codec::Opus,
            OpusParams {
                max_average_bitrate: 16_000,
            },
        );
        let mut payload = Vec::new();
        enc.encode(&tone(440.0, 0), &mut payload);
        assert!(payload.len() < 160, "{} bytes", payload.len());
        assert_eq!(timestamp_step(Codec::Opus), 960);
        assert_eq!(timestamp_step(Codec::G722), 160);
    }
}
