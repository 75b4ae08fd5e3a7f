//! The in-band DTMF detector's cost per 20 ms frame (160 samples at 8 kHz),
//! on the signals a call carries, and the whole tap (decode again + detect)
//! beside what the call's own decode costs, so the extra per call reads as
//! a ratio on a noisy machine. `cargo bench --bench dtmf`.
//!
//! - `detector/silence`: the quiet-window shortcut.
//! - `detector/noise`: speech-level noise, every window analysed.
//! - `detector/keys`: keys pressed (tones, pauses).
//! - `tap/pcmu`, `tap/opus`: decode plus detect, per packet.
//! - `decode/opus`: the Opus decode alone, as the mix already pays it.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use dialgate::dtmf::Key;
use dialgate::dtmf::inband::{Detector, key_tone};
use dialgate::dtmf::tap::ToneTap;
use dialgate::media::Codec;
use dialgate::media::codec::{self, OpusParams};

const FRAME: usize = 160;

/// One second of `kind` at 8 kHz.
fn signal(kind: &str) -> Vec<i16> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut noise = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ((x >> 48) as i16) / 8
    };
    match kind {
        "silence" => vec![0; 8000],
        "noise" => (0..8000).map(|_| noise()).collect(),
        _ => {
            let mut pcm = Vec::new();
            for (i, key) in [Key::D1, Key::D5, Key::D9, Key::Pound, Key::D0]
                .iter()
                .enumerate()
            {
                pcm.extend(key_tone(*key, -10.0, (i * 1600) as u64, 800));
                pcm.extend(std::iter::repeat_n(0, 800));
            }
            pcm
        }
    }
}

/// 20 ms packets of `pcm` (8 kHz) encoded in `codec`.
fn packets(codec: Codec, pcm: &[i16]) -> Vec<Vec<u8>> {
    let mut up = dialgate::media::pcm::Double::default();
    let mut encoder = codec::encoder(codec, OpusParams::default());
    let mut wide = Vec::new();
    pcm.chunks(FRAME)
        .map(|f| {
            up.run(f, &mut wide);
            let mut out = Vec::new();
            encoder.encode(&wide, &mut out);
            out
        })
        .collect()
}

fn detector(c: &mut Criterion) {
    let mut group = c.benchmark_group("detector");
    for kind in ["silence", "noise", "keys"] {
        let pcm = signal(kind);
        let frames: Vec<&[i16]> = pcm.chunks(FRAME).collect();
        group.bench_function(kind, |b| {
            let mut d = Detector::new();
            let mut i = 0;
            b.iter(|| {
                d.push(black_box(frames[i % frames.len()]));
                while let Some(t) = d.poll_tone() {
                    black_box(t);
                }
                i += 1;
            });
        });
    }
    group.finish();
}

fn tap(c: &mut Criterion) {
    let pcm = signal("keys");
    let mut group = c.benchmark_group("tap");
    for codec in [Codec::Pcmu, Codec::Opus] {
        let payloads = packets(codec, &pcm);
        group.bench_function(format!("{codec:?}").to_lowercase(), |b| {
            let mut tap = ToneTap::new(codec);
            let mut i = 0;
            b.iter(|| {
                tap.push(black_box(&payloads[i % payloads.len()]));
                while let Some(t) = tap.poll_tone() {
                    black_box(t);
                }
                i += 1;
            });
        });
    }
    group.finish();
    let payloads = packets(Codec::Opus, &pcm);
    c.bench_function("decode/opus", |b| {
        let mut decoder = codec::decoder(Codec::Opus);
        let mut out = Vec::new();
        let mut i = 0;
        b.iter(|| {
            decoder.decode(black_box(&payloads[i % payloads.len()]), &mut out);
            i += 1;
        });
    });
}

criterion_group!(benches, detector, tap);
criterion_main!(benches);
