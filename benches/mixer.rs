//! The room's cost per 20 ms tick, mixing plus encoding (G.711 rooms and
//! Opus rooms), two ways in one run so they compare as a ratio on a noisy
//! machine:
//!
//! - `naive`: every member its own N-1 mix of everyone, encoded per member
//!   (what the room did before active-speaker mixing);
//! - `active_speakers`: at most 3 talkers mixed, one shared mix for the
//!   listeners, each distinct (mix, codec) pair encoded once.
//!
//! Rooms of 10 and 100 members, 3 talking (tones) and the rest murmuring
//! below the activity floor, on PCMU and PCMA alternately (or all Opus).
//! Also printed:
//! encodes per tick for each. `cargo bench --bench mixer`.
//!
//! `halve_16k_to_8k`: the 16 → 8 kHz filter in front of every G.711
//! encode, per 20 ms frame — the gateway's `Halve` (dense 8-lane dot
//! products) against the form it replaced (the half-band's nonzero taps
//! one by one, bounds-checked, `f32::round`), kept here as the baseline.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use dialgate::conference::mixer::{Frame, Input, Mixer, Tick, encode_plan, mix_minus};
use dialgate::media::Codec;
use dialgate::media::codec::{self, Encoder, OpusParams};

fn frames(members: usize) -> Vec<Frame> {
    (0..members)
        .map(|m| {
            let mut f = [0i16; dialgate::media::pcm::PCM_FRAME];
            for (n, s) in f.iter_mut().enumerate() {
                let phase = (n as f32) * 0.05 * (m as f32 + 1.0);
                let amplitude = if m < 3 { 6000.0 } else { 20.0 };
                *s = (amplitude * phase.sin()) as i16;
            }
            f
        })
        .collect()
}

fn codecs(members: usize, opus: bool) -> Vec<Codec> {
    (0..members)
        .map(|m| match (opus, m % 2) {
            (true, _) => Codec::Opus,
            (false, 0) => Codec::Pcmu,
            (false, _) => Codec::Pcma,
        })
        .collect()
}

fn encoders(codecs: &[Codec]) -> Vec<Box<dyn Encoder>> {
    codecs
        .iter()
        .map(|c| codec::encoder(*c, OpusParams::default()))
        .collect()
}

/// Naive: N mixes, N encodes (one encoder per member).
struct Naive {
    mixes: Vec<Frame>,
    encoders: Vec<Box<dyn Encoder>>,
    payload: Vec<u8>,
}

impl Naive {
    fn tick(&mut self, inputs: &[Option<Frame>]) -> usize {
        mix_minus(inputs, &mut self.mixes);
        for (mix, encoder) in self.mixes.iter().zip(&mut self.encoders) {
            encoder.encode(mix, &mut self.payload);
            black_box(&self.payload);
        }
        self.mixes.len()
    }
}

/// Active speakers: one encode per distinct (mix, codec), each pair with
/// its own encoder.
struct Room {
    mixer: Mixer,
    tick: Tick,
    plan: Vec<(usize, Codec)>,
    encoders: Vec<((usize, Codec), Box<dyn Encoder>)>,
    payload: Vec<u8>,
}

impl Room {
    fn new() -> Room {
        Room {
            mixer: Mixer::new(3),
            tick: Tick::default(),
            plan: Vec::new(),
            encoders: Vec::new(),
            payload: Vec::new(),
        }
    }

    fn tick(&mut self, inputs: &[Input], codecs: &[Codec]) -> usize {
        self.mixer.tick(inputs, &mut self.tick);
        encode_plan(&self.tick.heard, codecs, &mut self.plan);
        for pair in &self.plan {
            let at = match self.encoders.iter().position(|(p, _)| p == pair) {
                Some(at) => at,
                None => {
                    let encoder = codec::encoder(pair.1, OpusParams::default());
                    self.encoders.push((*pair, encoder));
                    self.encoders.len() - 1
                }
            };
            self.encoders[at]
                .1
                .encode(&self.tick.mixes[pair.0], &mut self.payload);
            black_box(&self.payload);
        }
        self.plan.len()
    }
}

fn bench(c: &mut Criterion) {
    for (group_name, opus, sizes) in [
        ("room_tick_g711", false, &[10usize, 100][..]),
        ("room_tick_opus", true, &[10usize, 100][..]),
    ] {
        let mut group = c.benchmark_group(group_name);
        for &members in sizes {
            let frames = frames(members);
            let codecs = codecs(members, opus);
            let optional: Vec<Option<Frame>> = frames.iter().copied().map(Some).collect();
            let inputs: Vec<Input> = frames
                .iter()
                .enumerate()
                .map(|(k, f)| Input {
                    key: k as u64,
                    frame: Some(*f),
                    muted: false,
                })
                .collect();
            let mut naive = Naive {
                mixes: Vec::new(),
                encoders: encoders(&codecs),
                payload: Vec::new(),
            };
            let mut room = Room::new();
            // Settle the speaker selection, then report the encode counts.
            for _ in 0..10 {
                room.tick(&inputs, &codecs);
            }
            println!(
                "{group_name}, {members} members: naive {} encodes/tick, active speakers {} encodes/tick",
                naive.tick(&optional),
                room.tick(&inputs, &codecs)
            );
            group.bench_with_input(BenchmarkId::new("naive", members), &members, |b, _| {
                b.iter(|| naive.tick(black_box(&optional)))
            });
            group.bench_with_input(
                BenchmarkId::new("active_speakers", members),
                &members,
                |b, _| b.iter(|| room.tick(black_box(&inputs), &codecs)),
            );
        }
        group.finish();
    }
}

/// The 16 → 8 kHz filter as the gateway had it before 2026-12-06: the
/// same 47-tap Blackman half-band, its 24 nonzero taps summed one by one.
struct SparseHalve {
    taps: Vec<(usize, f32)>,
    history: Vec<f32>,
    input: Vec<f32>,
}

impl SparseHalve {
    const TAPS: usize = 47;

    fn new() -> SparseHalve {
        let mut h = [0f64; Self::TAPS];
        let m = (Self::TAPS - 1) as f64 / 2.0;
        for (n, tap) in h.iter_mut().enumerate() {
            let x = n as f64 - m;
            let sinc = if x == 0.0 {
                0.5
            } else {
                (2.0 * std::f64::consts::PI * 0.25 * x).sin() / (std::f64::consts::PI * x)
            };
            let phase = 2.0 * std::f64::consts::PI * n as f64 / (Self::TAPS - 1) as f64;
            *tap = sinc * (0.42 - 0.5 * phase.cos() + 0.08 * (2.0 * phase).cos());
        }
        let sum: f64 = h.iter().sum();
        SparseHalve {
            taps: h
                .iter()
                .enumerate()
                .filter(|(_, t)| t.abs() > 1e-9)
                .map(|(k, t)| (k, (t / sum) as f32))
                .collect(),
            history: vec![0.0; Self::TAPS - 1],
            input: Vec::new(),
        }
    }

    fn run(&mut self, wide: &[i16], out: &mut Vec<i16>) {
        self.input.clear();
        self.input.extend(wide.iter().map(|s| f32::from(*s)));
        self.history.extend_from_slice(&self.input);
        let buf = &self.history;
        out.clear();
        out.extend((0..self.input.len()).step_by(2).map(|n| {
            let y: f32 = self
                .taps
                .iter()
                .map(|(k, t)| buf.get(n + Self::TAPS - 1 - k).map_or(0.0, |x| x * t))
                .sum();
            y.round().clamp(-32768.0, 32767.0) as i16
        }));
        let keep = self.history.len() - (Self::TAPS - 1);
        self.history.drain(..keep);
    }
}

fn bench_halve(c: &mut Criterion) {
    let wide: Vec<i16> = (0..320)
        .map(|n| (8000.0 * (n as f64 * 0.7).sin()) as i16)
        .collect();
    let mut out = Vec::new();
    let mut group = c.benchmark_group("halve_16k_to_8k");
    let mut dense = dialgate::media::pcm::Halve::default();
    group.bench_function("dense_lanes", |b| {
        b.iter(|| dense.run(black_box(&wide), &mut out))
    });
    let mut sparse = SparseHalve::new();
    group.bench_function("sparse_scalar_before", |b| {
        b.iter(|| sparse.run(black_box(&wide), &mut out))
    });
    group.finish();
}

criterion_group!(benches, bench, bench_halve);
criterion_main!(benches);
