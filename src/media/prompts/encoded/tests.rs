use super::*;
use crate::media::prompts::PromptSet;
use crate::media::rtp::{self, Outbound};

fn encoding(codec: Codec) -> Encoding {
    Encoding {
        codec,
        opus: OpusParams::default(),
    }
}

fn opus_capped(max_average_bitrate: u32) -> Encoding {
    Encoding {
        codec: Codec::Opus,
        opus: OpusParams {
            max_average_bitrate,
        },
    }
}

/// Three tones inside G.711's band, like a voice's harmonics.
fn voice(len: usize) -> Vec<i16> {
    (0..len)
        .map(|n| {
            let t = n as f64 / 16_000.0;
            let s: f64 = [440.0, 1000.0, 1800.0]
                .iter()
                .map(|f| (2.0 * std::f64::consts::PI * f * t).sin())
                .sum();
            (3000.0 * s) as i16
        })
        .collect()
}

/// A voiced sound whose pitch glides from `f0`: harmonics up to 7 kHz.
fn gliding(len: usize, f0: f64) -> Vec<i16> {
    (0..len)
        .map(|n| {
            let t = n as f64 / 16_000.0;
            let w = 2.0 * std::f64::consts::PI * (f0 + 60.0 * t) * t;
            let s = w.sin() + 0.5 * (2.0 * w).sin() + 0.3 * (3.0 * w).sin() + 0.2 * (7.0 * w).sin();
            (5000.0 * s) as i16
        })
        .collect()
}

fn shipped_welcome() -> Vec<i16> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/en/welcome.wav");
    crate::media::prompts::decode_file(&path, crate::media::pcm::PCM_RATE).unwrap()
}

fn frames_of(prompts: &PromptSet, id: PromptId) -> impl Iterator<Item = PromptFrame> {
    (0..prompts.frame_count(id)).map(move |index| PromptFrame { prompt: id, index })
}

/// The payloads the old path sends: the call's own encoder (behind a fresh
/// `Outbound`), fed `lead` frames of silence, the prompts' frames, then
/// `trail` frames of silence.
fn live(
    codec: Codec,
    prompts: &PromptSet,
    ids: &[PromptId],
    lead: usize,
    trail: usize,
) -> Vec<Vec<u8>> {
    let mut out = Outbound::new(codec, codec.payload_type(), &mut rand::rng());
    let mut payload = |pcm: &[i16]| rtp::read(out.packet(pcm).unwrap()).unwrap().1.to_vec();
    let mut sent: Vec<Vec<u8>> = (0..lead).map(|_| payload(&[])).collect();
    for id in ids {
        sent.extend(frames_of(prompts, *id).map(|at| payload(prompts.frame_pcm(at))));
    }
    sent.extend((0..trail).map(|_| payload(&[])));
    sent
}

/// The payloads the new path sends for the same.
fn copied(
    table: &EncodedPrompts,
    prompts: &PromptSet,
    ids: &[PromptId],
    lead: usize,
    trail: usize,
) -> Vec<Vec<u8>> {
    let mut sent = vec![table.silence().to_vec(); lead];
    for id in ids {
        sent.extend(frames_of(prompts, *id).map(|at| table.frame(at).unwrap().to_vec()));
    }
    sent.extend(std::iter::repeat_n(table.silence().to_vec(), trail));
    sent
}

/// What the far end hears: one decoder through the whole stream.
fn decode(codec: Codec, payloads: &[Vec<u8>]) -> Vec<i16> {
    let mut decoder = codec::decoder(codec);
    let (mut pcm, mut heard) = (Vec::new(), Vec::new());
    for payload in payloads {
        decoder.decode(payload, &mut pcm);
        heard.extend_from_slice(&pcm);
    }
    heard
}

/// The signal to noise ratio (dB) of `heard` against `reference`, at the
/// codec delay (samples) that suits it best.
fn snr(reference: &[i16], heard: &[i16], delays: std::ops::Range<usize>) -> (f64, usize) {
    delays
        .map(|delay| {
            let (mut signal, mut noise) = (0.0, 0.0);
            for (i, r) in reference.iter().enumerate() {
                let r = f64::from(*r);
                let h = heard.get(i + delay).map_or(0.0, |h| f64::from(*h));
                signal += r * r;
                noise += (r - h) * (r - h);
            }
            (10.0 * (signal / noise.max(1.0)).log10(), delay)
        })
        .fold((f64::MIN, 0), |best, x| if x.0 > best.0 { x } else { best })
}

/// The PCM the stream carries: silence, each prompt padded to whole frames, silence.
fn reference(prompts: &PromptSet, ids: &[PromptId], lead: usize, trail: usize) -> Vec<i16> {
    let mut pcm = vec![0; lead * PCM_FRAME];
    for id in ids {
        pcm.extend_from_slice(prompts.get(*id));
        pcm.resize(pcm.len().div_ceil(PCM_FRAME) * PCM_FRAME, 0);
    }
    pcm.resize(pcm.len() + trail * PCM_FRAME, 0);
    pcm
}

#[test]
fn g711_payloads_are_byte_for_byte_what_a_calls_own_encoder_sends() {
    let prompts = PromptSet::from_samples([
        (PromptId::Welcome, shipped_welcome()),
        (PromptId::Goodbye, voice(5000)),
    ]);
    for codec in [Codec::Pcmu, Codec::Pcma] {
        let table = prompts.encoded(encoding(codec)).unwrap();
        for id in [PromptId::Welcome, PromptId::Goodbye] {
            // After silence, and followed by silence: the codec's silence
            // payload is what the live encoder sends once the prompt is over.
            let want = live(codec, &prompts, &[id], 3, 3);
            let got = copied(table, &prompts, &[id], 3, 3);
            assert_eq!(got.len(), want.len());
            for (i, (got, want)) in got.iter().zip(&want).enumerate() {
                assert_eq!(got, want, "{codec:?} {id:?}: frame {i} of the stream");
            }
        }
    }
}

#[test]
fn g711_payloads_decode_back_to_the_prompt_audio() {
    let prompts = PromptSet::from_samples([(PromptId::Welcome, voice(5000))]);
    for codec in [Codec::Pcmu, Codec::Pcma] {
        let table = prompts.encoded(encoding(codec)).unwrap();
        let ids = [PromptId::Welcome];
        let heard = decode(codec, &copied(table, &prompts, &ids, 2, 2));
        let (snr, delay) = snr(&reference(&prompts, &ids, 2, 2), &heard, 0..80);
        eprintln!("{codec:?}: {snr:.1} dB at a delay of {delay} samples");
        assert!(snr > 30.0, "{codec:?}: {snr:.1} dB");
        // The half-band filters on the way down and back up, 23 samples each.
        assert_eq!(delay, 46, "{codec:?}");
    }
}

#[test]
fn opus_prompts_decode_as_close_to_the_pcm_as_live_encoding() {
    let prompts = PromptSet::from_samples([
        (PromptId::Welcome, gliding(16_000, 150.0)),
        (PromptId::EnterAccessCode, gliding(9_700, 260.0)),
    ]);
    let table = prompts.encoded(encoding(Codec::Opus)).unwrap();
    // Back to back, so the second prompt meets a decoder the first left.
    let ids = [PromptId::Welcome, PromptId::EnterAccessCode];
    let pcm = reference(&prompts, &ids, 5, 5);
    let delays = 0..200;
    let (live, live_delay) = snr(
        &pcm,
        &decode(Codec::Opus, &live(Codec::Opus, &prompts, &ids, 5, 5)),
        delays.clone(),
    );
    let heard = decode(Codec::Opus, &copied(table, &prompts, &ids, 5, 5));
    let (copied, delay) = snr(&pcm, &heard, delays);
    eprintln!(
        "Opus: live {live:.1} dB (delay {live_delay}), pre-encoded {copied:.1} dB (delay {delay})"
    );
    assert_eq!(delay, live_delay);
    assert!(
        copied > live - 1.5,
        "pre-encoded {copied:.1} dB vs live {live:.1} dB"
    );
    assert!(copied > 6.0, "{copied:.1} dB");
    // The silence after the prompts is heard as silence.
    let last = &heard[heard.len() - 3 * PCM_FRAME..];
    assert!(
        last.iter().all(|s| s.abs() < 100),
        "{:?}",
        last.iter().max()
    );
}

#[test]
fn opus_silence_is_the_packet_a_settled_encoder_sends() {
    for cap in [6_000, 24_000, 64_000] {
        let table = EncodedPrompts::new(opus_capped(cap), Default::default());
        let mut encoder = primed(table.encoding());
        let mut payload = Vec::new();
        for _ in 0..3 {
            encoder.encode(&[0; PCM_FRAME], &mut payload);
            assert_eq!(payload, table.silence(), "at {cap} bit/s");
        }
        assert!(
            table.silence().len() < 20,
            "{} bytes",
            table.silence().len()
        );
        let heard = decode(Codec::Opus, &vec![table.silence().to_vec(); 5]);
        assert!(heard.iter().all(|s| s.abs() < 10));
    }
}

#[test]
fn g711_silence_is_the_codecs_silence_byte() {
    let prompts = PromptSet::from_samples([]);
    let pcmu = prompts.encoded(encoding(Codec::Pcmu)).unwrap();
    let pcma = prompts.encoded(encoding(Codec::Pcma)).unwrap();
    assert_eq!(pcmu.silence(), [0xFF; 160]);
    assert_eq!(pcma.silence(), [0xD5; 160]);
}

#[test]
fn prompts_are_padded_to_whole_frames_of_silence() {
    let prompts = PromptSet::from_samples([
        (PromptId::Welcome, voice(400)),
        (PromptId::Goodbye, voice(640)),
    ]);
    let table = prompts.encoded(encoding(Codec::Pcmu)).unwrap();
    let at = |prompt, index| PromptFrame { prompt, index };
    for (id, frames) in [
        (PromptId::Welcome, 2),
        (PromptId::Goodbye, 2),
        (PromptId::Joining, 0),
    ] {
        assert_eq!(prompts.frame_count(id), frames, "{id:?}");
        assert_eq!(table.frame_count(id), frames, "{id:?}");
        assert_eq!(
            table.frame(at(id, frames)),
            None,
            "{id:?} has no frame {frames}"
        );
        assert!(prompts.frame_pcm(at(id, frames)).is_empty());
    }
    assert_eq!(
        prompts.frame_pcm(at(PromptId::Welcome, 1)),
        &voice(400)[320..]
    );
    let last = table.frame(at(PromptId::Welcome, 1)).unwrap();
    assert_eq!(last.len(), 160, "a whole 20 ms payload");
    // Past the last sample and the filters' reach (46 + 46), silence.
    let heard = decode(
        Codec::Pcmu,
        &[
            table.frame(at(PromptId::Welcome, 0)).unwrap().to_vec(),
            last.to_vec(),
        ],
    );
    let tail = &heard[PCM_FRAME + 80 + 92..];
    assert!(tail.iter().all(|s| *s == 0), "{tail:?}");
    assert!(
        heard[PCM_FRAME..PCM_FRAME + 80]
            .iter()
            .any(|s| s.abs() > 1000)
    );
}

#[test]
fn each_encoding_is_built_once_and_shared_by_every_clone() {
    let prompts = PromptSet::from_samples([(PromptId::Welcome, voice(1000))]);
    let clone = prompts.clone();
    let first = prompts.encoded(encoding(Codec::Pcmu)).unwrap();
    let again = clone.encoded(encoding(Codec::Pcmu)).unwrap();
    assert!(
        std::ptr::eq(first, again),
        "one PCMU table for the set and its clones"
    );
    let at = PromptFrame {
        prompt: PromptId::Welcome,
        index: 1,
    };
    let (a, b) = (first.frame(at).unwrap(), again.frame(at).unwrap());
    assert!(std::ptr::eq(a, b), "the prompt is encoded once");
    let pcma = prompts.encoded(encoding(Codec::Pcma)).unwrap();
    assert!(!std::ptr::eq(first, pcma));
    assert_ne!(first.frame(at), pcma.frame(at));
    let other = PromptSet::from_samples([(PromptId::Welcome, voice(1000))]);
    assert!(!std::ptr::eq(
        first,
        other.encoded(encoding(Codec::Pcmu)).unwrap()
    ));
}

#[test]
fn an_opus_cap_gets_the_step_at_or_below_it_and_shares_that_steps_table() {
    let prompts = PromptSet::from_samples([]);
    let table = |cap| prompts.encoded(opus_capped(cap)).unwrap();
    for (cap, step) in [
        (1_000, 6_000),
        (6_000, 6_000),
        (23_999, 20_000),
        (24_000, 24_000),
        (30_000, 24_000),
        (510_000, 64_000),
    ] {
        assert_eq!(table(cap).encoding(), opus_capped(step), "cap {cap}");
    }
    assert!(std::ptr::eq(table(24_000), table(30_000)));
    assert!(!std::ptr::eq(table(24_000), table(32_000)));
    assert!(std::ptr::eq(
        table(24_000),
        prompts.encoded(encoding(Codec::Opus)).unwrap()
    ));
}

#[test]
fn g722_is_left_to_each_calls_own_encoder() {
    let prompts = PromptSet::from_samples([(PromptId::Welcome, voice(1000))]);
    assert!(prompts.encoded(encoding(Codec::G722)).is_none());
}

#[test]
fn g711_ignores_opus_settings() {
    let prompts = PromptSet::from_samples([]);
    let capped = Encoding {
        codec: Codec::Pcmu,
        opus: OpusParams {
            max_average_bitrate: 8_000,
        },
    };
    assert!(std::ptr::eq(
        prompts.encoded(capped).unwrap(),
        prompts.encoded(encoding(Codec::Pcmu)).unwrap()
    ));
}
