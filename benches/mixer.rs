//! The room's cost per 20 ms tick, mixing plus G.711 encoding, two ways in
//! one run so they compare as a ratio on a noisy machine:
//!
//! - `naive`: every member its own N-1 mix of everyone, encoded per member
//!   (what the room did before active-speaker mixing);
//! - `active_speakers`: at most 3 talkers mixed, one shared mix for the
//!   listeners, each distinct (mix, codec) pair encoded once.
//!
//! Rooms of 10 and 100 members, 3 talking (tones) and the rest murmuring
//! below the activity floor, on PCMU and PCMA alternately. Also printed:
//! encodes per tick for each. `cargo bench --bench mixer`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use dialgate::conference::mixer::{Frame, Input, Mixer, Tick, encode_plan, mix_minus};
use dialgate::media::rtp::encode_frame;
use dialgate::sip::sdp::Codec;

fn frames(members: usize) -> Vec<Frame> {
    (0..members)
        .map(|m| {
            let mut f = [0i16; 160];
            for (n, s) in f.iter_mut().enumerate() {
                let phase = (n as f32) * 0.05 * (m as f32 + 1.0);
                let amplitude = if m < 3 { 6000.0 } else { 20.0 };
                *s = (amplitude * phase.sin()) as i16;
            }
            f
        })
        .collect()
}

fn codecs(members: usize) -> Vec<Codec> {
    (0..members)
        .map(|m| if m % 2 == 0 { Codec::Pcmu } else { Codec::Pcma })
        .collect()
}

/// Naive: N mixes, N encodes.
fn naive(
    inputs: &[Option<Frame>],
    codecs: &[Codec],
    mixes: &mut Vec<Frame>,
    payload: &mut Vec<u8>,
) -> usize {
    mix_minus(inputs, mixes);
    for (mix, codec) in mixes.iter().zip(codecs) {
        encode_frame(*codec, mix, payload);
        black_box(&payload);
    }
    mixes.len()
}

struct Room {
    mixer: Mixer,
    tick: Tick,
    plan: Vec<(usize, Codec)>,
    payloads: Vec<Vec<u8>>,
}

impl Room {
    fn new() -> Room {
        Room {
            mixer: Mixer::new(3),
            tick: Tick::default(),
            plan: Vec::new(),
            payloads: Vec::new(),
        }
    }

    /// Active speakers: one encode per distinct (mix, codec).
    fn tick(&mut self, inputs: &[Input], codecs: &[Codec]) -> usize {
        self.mixer.tick(inputs, &mut self.tick);
        encode_plan(&self.tick.heard, codecs, &mut self.plan);
        self.payloads.resize_with(self.plan.len(), Vec::new);
        for ((mix, codec), payload) in self.plan.iter().zip(&mut self.payloads) {
            encode_frame(*codec, &self.tick.mixes[*mix], payload);
        }
        black_box(&self.payloads);
        self.plan.len()
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("room_tick_g711");
    for members in [10usize, 100] {
        let frames = frames(members);
        let codecs = codecs(members);
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
        let (mut mixes, mut payload) = (Vec::new(), Vec::new());
        let mut room = Room::new();
        // Settle the speaker selection, then report the encode counts.
        for _ in 0..10 {
            room.tick(&inputs, &codecs);
        }
        println!(
            "{members} members: naive {} encodes/tick, active speakers {} encodes/tick",
            naive(&optional, &codecs, &mut mixes, &mut payload),
            room.tick(&inputs, &codecs)
        );
        group.bench_with_input(BenchmarkId::new("naive", members), &members, |b, _| {
            b.iter(|| naive(black_box(&optional), &codecs, &mut mixes, &mut payload))
        });
        group.bench_with_input(
            BenchmarkId::new("active_speakers", members),
            &members,
            |b, _| b.iter(|| room.tick(black_box(&inputs), &codecs)),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
