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

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use dialgate::conference::mixer::{Frame, Input, Mixer, Tick, encode_plan, mix_minus};
use dialgate::media::codec::{self, Encoder, OpusParams};
use dialgate::sip::sdp::Codec;

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

criterion_group!(benches, bench);
criterion_main!(benches);
