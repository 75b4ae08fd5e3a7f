//! Every audio codec behind one pair of traits over 16 kHz PCM (the
//! gateway's internal rate, [`super::pcm`]): 20 ms frames in, and out
//! whatever a packet holds (10 to 120 ms: callers choose their packet
//! time; the jitter buffer and [`super::inbound`] cut it into frames).
//!
//! - PCMU / PCMA (G.711): the tables of [`super::g711`] at 8 kHz, behind
//!   the half-band filters that halve and double the rate.
//! - G.722 (`audio-codec`, 64 kbit/s) at its native 16 kHz: wideband
//!   end to end.
//! - Opus (`audiopus`, the system libopus): encoder and decoder opened at
//!   16 kHz mono (wideband), VoIP application, in-band FEC on with 10 % expected loss,
//!   bitrate capped by the far end's `maxaveragebitrate`. RTP still counts
//!   at 48 kHz (RFC 7587): 960 per 20 ms packet. A lost frame can be
//!   decoded from the FEC the next packet carries ([`Decoder::recover`]).
//!
//! A codec that fails on a frame (a malformed Opus packet) yields silence
//! for that frame; nothing read from the network can panic here.

use super::g711::{self, Law};
use super::pcm::{Double, Halve, NARROW_FRAME, PCM_FRAME};
use crate::media::Codec;

/// Encodes 20 ms frames of the gateway's 16 kHz PCM ([`super::pcm`]).
pub trait Encoder: Send {
    /// Encodes `pcm` (320 samples; shorter is padded with silence) into `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>);

    /// For a codec that works at 8 kHz (G.711): the 8 kHz PCM of the frame
    /// [`encode`](Self::encode) took last (what it encoded, after the filter).
    fn narrow_pcm(&self) -> Option<&[i16]> {
        None
    }

    /// For a codec that works at 8 kHz (G.711): encodes `narrow` (160
    /// samples at 8 kHz; shorter is padded) as it is, with no filter; false
    /// (and `out` untouched) for any other codec.
    fn encode_narrow(&mut self, _narrow: &[i16], _out: &mut Vec<u8>) -> bool {
        false
    }
}

/// Decodes one packet's payload into the gateway's 16 kHz PCM.
pub trait Decoder: Send {
    /// Decodes `payload` into `out` (cleared first): all the audio it
    /// holds, up to [`MAX_PACKET_SAMPLES`]; a 20 ms frame of silence when
    /// it holds none that can be read.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>);

    /// Rebuilds a lost packet of `samples` from the in-band FEC carried by
    /// the packet after it (Opus); `false` when the codec has none.
    fn recover(&mut self, _next: &[u8], _samples: usize, _out: &mut Vec<i16>) -> bool {
        false
    }

    /// Fills `out` with a guess for a lost packet of `samples`; `false` if
    /// the codec has no concealment of its own (the caller repeats the
    /// last packet).
    fn conceal(&mut self, _samples: usize, _out: &mut Vec<i16>) -> bool {
        false
    }
}

/// Most samples one packet decodes to (120 ms at 16 kHz, Opus's longest):
/// a longer G.711 or G.722 payload is cut there.
pub const MAX_PACKET_SAMPLES: usize = 1920;

/// Bytes of G.711 or G.722 in 120 ms (both 64 kbit/s).
const MAX_PACKET_BYTES: usize = 960;

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

/// What a stream's payloads are encoded as: the codec and the settings its
/// encoder was opened with (only Opus has any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoding {
    pub codec: Codec,
    pub opus: OpusParams,
}

/// A fresh encoder for `codec`.
pub fn encoder(codec: Codec, opus: OpusParams) -> Box<dyn Encoder> {
    match codec {
        Codec::Pcmu | Codec::Pcma => Box::new(G711Encoder {
            law: law(codec),
            down: Halve::default(),
            narrow: Vec::with_capacity(NARROW_FRAME),
        }),
        Codec::G722 => Box::new(G722Encoder(audio_codec::g722::G722Encoder::new())),
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
        Codec::Pcmu | Codec::Pcma => Box::new(G711Decoder {
            law: law(codec),
            up: Double::default(),
            narrow: Vec::with_capacity(NARROW_FRAME),
        }),
        Codec::G722 => Box::new(G722Decoder(audio_codec::g722::G722Decoder::new())),
        Codec::Opus => match OpusDecoder::new() {
            Ok(d) => Box::new(d),
            Err(e) => {
                tracing::error!(%e, "Opus decoder failed to open; hearing silence");
                Box::new(Silent)
            }
        },
    }
}

fn law(codec: Codec) -> Law {
    if codec == Codec::Pcma {
        Law::A
    } else {
        Law::Mu
    }
}

/// The first 20 ms of `pcm`, padded with silence.
pub fn padded(pcm: &[i16]) -> [i16; PCM_FRAME] {
    let mut frame = [0i16; PCM_FRAME];
    let n = pcm.len().min(PCM_FRAME);
    frame[..n].copy_from_slice(&pcm[..n]);
    frame
}

/// G.711 at 8 kHz behind the half-band filters ([`Halve`], [`Double`]).
struct G711Encoder {
    law: Law,
    down: Halve,
    narrow: Vec<i16>,
}

impl Encoder for G711Encoder {
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        self.down.run(&padded(pcm), &mut self.narrow);
        g711::encode(self.law, &self.narrow, out);
    }

    fn narrow_pcm(&self) -> Option<&[i16]> {
        Some(&self.narrow)
    }

    fn encode_narrow(&mut self, narrow: &[i16], out: &mut Vec<u8>) -> bool {
        let mut frame = [0i16; NARROW_FRAME];
        let n = narrow.len().min(NARROW_FRAME);
        frame[..n].copy_from_slice(&narrow[..n]);
        g711::encode(self.law, &frame, out);
        true
    }
}

struct G711Decoder {
    law: Law,
    up: Double,
    narrow: Vec<i16>,
}

impl Decoder for G711Decoder {
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        let payload = &payload[..payload.len().min(MAX_PACKET_BYTES)];
        g711::decode(self.law, payload, &mut self.narrow);
        if self.narrow.is_empty() {
            self.narrow.resize(NARROW_FRAME, 0);
        }
        self.up.run(&self.narrow, out);
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
        out.resize(PCM_FRAME, 0);
    }
}

/// G.722 at its native 16 kHz.
struct G722Encoder(audio_codec::g722::G722Encoder);

impl Encoder for G722Encoder {
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        use audio_codec::Encoder as _;
        let frame = padded(pcm);
        out.clear();
        out.resize(self.0.max_encode_bytes(frame.len()), 0);
        let n = self.0.encode_into(&frame, out).unwrap_or(0);
        out.truncate(n);
    }
}

struct G722Decoder(audio_codec::g722::G722Decoder);

impl Decoder for G722Decoder {
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        use audio_codec::Decoder as _;
        let payload = &payload[..payload.len().min(MAX_PACKET_BYTES)];
        out.clear();
        out.resize(self.0.max_decode_samples(payload.len()), 0);
        let n = self.0.decode_into(payload, out).unwrap_or(0);
        out.truncate(n.min(MAX_PACKET_SAMPLES));
        if out.is_empty() {
            out.resize(PCM_FRAME, 0);
        }
    }
}

/// Largest Opus packet we produce (RFC 6716 allows 1275 bytes per frame).
const OPUS_MAX_PACKET: usize = 1275;

struct OpusEncoder(audiopus::coder::Encoder);

impl OpusEncoder {
    fn new(params: OpusParams) -> Result<OpusEncoder, audiopus::Error> {
        let mut e = audiopus::coder::Encoder::new(
            audiopus::SampleRate::Hz16000,
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
        audiopus::coder::Decoder::new(audiopus::SampleRate::Hz16000, audiopus::Channels::Mono)
            .map(OpusDecoder)
    }
}

/// `samples` as libopus takes a lost packet's length: a multiple of 2.5 ms
/// (40 samples at 16 kHz), 2.5 to 120 ms.
fn opus_frame_size(samples: usize) -> usize {
    (samples.div_ceil(40) * 40).clamp(40, MAX_PACKET_SAMPLES)
}

impl Decoder for OpusDecoder {
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        out.clear();
        out.resize(MAX_PACKET_SAMPLES, 0);
        let n = match self.0.decode(Some(payload), &mut out[..], false) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(%e, "Opus packet refused");
                0
            }
        };
        out.truncate(n);
        if out.is_empty() {
            out.resize(PCM_FRAME, 0);
        }
    }

    fn recover(&mut self, next: &[u8], samples: usize, out: &mut Vec<i16>) -> bool {
        out.clear();
        out.resize(opus_frame_size(samples), 0);
        // With `fec`, libopus decodes the LBRR copy of the previous frame
        // that `next` carries (or conceals, when it carries none).
        self.0.decode(Some(next), &mut out[..], true).is_ok()
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> bool {
        out.clear();
        out.resize(opus_frame_size(samples), 0);
        let empty: Option<&[u8]> = None;
        self.0.decode(empty, &mut out[..], false).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, frame: usize) -> Vec<i16> {
        (0..PCM_FRAME)
            .map(|n| {
                let t = (frame * PCM_FRAME + n) as f64 / 16000.0;
                (8000.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
            })
            .collect()
    }

    fn power(samples: &[i16], freq: f64) -> f64 {
        crate::media::goertzel::power(samples, freq, 16000.0)
    }

    /// A voice-like signal whose pitch moves every frame: concealment that
    /// repeats the past cannot guess frame `k`, FEC can.
    fn gliding(frame: usize) -> Vec<i16> {
        let f0 = 180.0 + 40.0 * frame as f64;
        (0..PCM_FRAME)
            .map(|n| {
                let t = (frame * PCM_FRAME + n) as f64 / 16000.0;
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
                assert!(dec.recover(&packets[lost + 1], PCM_FRAME, &mut pcm));
            } else {
                assert!(dec.conceal(PCM_FRAME, &mut pcm));
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
                assert_eq!(pcm.len(), PCM_FRAME, "{codec:?} decodes 20 ms");
                heard.extend_from_slice(&pcm);
            }
            // Skip the codec's start-up (Opus look-ahead).
            let tail = &heard[PCM_FRAME * 10..];
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
    fn opus_conceals_a_lost_packet_of_its_length_and_g711_leaves_it_to_the_caller() {
        let mut pcm = Vec::new();
        for (samples, want) in [
            (PCM_FRAME, PCM_FRAME),
            (960, 960),
            (480, 480),
            (1, 40),
            (5000, 1920),
        ] {
            assert!(decoder(Codec::Opus).conceal(samples, &mut pcm));
            assert_eq!(pcm.len(), want, "{samples}");
        }
        assert!(!decoder(Codec::Pcmu).conceal(PCM_FRAME, &mut pcm));
    }

    #[test]
    fn a_packet_decodes_to_all_the_audio_it_holds_whatever_its_time() {
        let mut pcm = Vec::new();
        // G.711 and G.722 at 64 kbit/s: 8 bytes a millisecond, 16 samples.
        for codec in [Codec::Pcmu, Codec::Pcma, Codec::G722] {
            for ms in [10usize, 20, 30, 40, 60] {
                decoder(codec).decode(&vec![0x55; ms * 8], &mut pcm);
                assert_eq!(pcm.len(), ms * 16, "{codec:?} {ms} ms");
            }
            // Past 120 ms a payload is cut.
            decoder(codec).decode(&vec![0x55; 2000], &mut pcm);
            assert_eq!(pcm.len(), MAX_PACKET_SAMPLES, "{codec:?}");
        }
        // Opus packets of 40 and 60 ms (one frame each), from libopus itself.
        for ms in [10usize, 40, 60] {
            let enc = audiopus::coder::Encoder::new(
                audiopus::SampleRate::Hz16000,
                audiopus::Channels::Mono,
                audiopus::Application::Voip,
            )
            .unwrap();
            let mut packet = vec![0u8; OPUS_MAX_PACKET];
            let n = enc
                .encode(&tone(440.0, 0).repeat(3)[..ms * 16], &mut packet)
                .unwrap();
            decoder(Codec::Opus).decode(&packet[..n], &mut pcm);
            assert_eq!(pcm.len(), ms * 16, "Opus {ms} ms");
        }
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
