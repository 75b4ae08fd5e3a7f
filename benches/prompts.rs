//! What one 20 ms frame of a prompt costs a call, two ways in one run so
//! they compare as a ratio on a noisy machine (issue 15):
//!
//! - `old`: the frame's 16 kHz PCM copied out of the prompt (as
//!   `Player::next_prompt_frame` does) and encoded by the call's own encoder
//!   (`Outbound::packet`: halving to 8 kHz for G.711, then the codec);
//! - `new`: what `Leg::send_prompt` does — the payload encoded once for
//!   every call looked up and copied into the packet (`Outbound::packet_with`),
//!   or, for G.722 (each call encodes it, see `media::prompts::encoded`),
//!   the PCM through the call's own encoder, as before.
//!
//! Both build the RTP packet and neither sends it (the socket costs the
//! same either way). The shipped English "welcome" and "enter access code"
//! are played round and round, for PCMU, G.722 and Opus. Also printed: the
//! ratio from interleaved rounds, and the prompt cost of a call's 600
//! prompt frames (12 s of prompts). `cargo bench --bench prompts`.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use dialgate::media::Codec;
use dialgate::media::pcm::{PCM_FRAME, PCM_RATE};
use dialgate::media::prompts::{PromptFrame, PromptId, PromptSet, decode_file};
use dialgate::media::rtp::Outbound;

const PLAYED: [PromptId; 2] = [PromptId::Welcome, PromptId::EnterAccessCode];

/// Prompt frames in a call's IVR (welcome, access code, security code,
/// joining: about 12 s).
const FRAMES_PER_CALL: u32 = 600;

fn prompts() -> PromptSet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/en");
    PromptSet::from_samples(PLAYED.map(|id| {
        let path = dir.join(format!("{}.wav", id.file_stem()));
        (id, decode_file(&path, PCM_RATE).expect("shipped prompt"))
    }))
}

fn frames(prompts: &PromptSet) -> Vec<PromptFrame> {
    PLAYED
        .iter()
        .flat_map(|id| {
            (0..prompts.frame_count(*id)).map(|index| PromptFrame { prompt: *id, index })
        })
        .collect()
}

/// The old path: PCM into a frame buffer, encoded by the call.
fn old(out: &mut Outbound, prompts: &PromptSet, at: PromptFrame) -> usize {
    let mut frame = [0i16; PCM_FRAME];
    let pcm = prompts.frame_pcm(at);
    frame[..pcm.len()].copy_from_slice(pcm);
    out.packet(black_box(&frame)).map_or(0, <[u8]>::len)
}

/// The new path, as `Leg::send_prompt` chooses it.
fn new(out: &mut Outbound, prompts: &PromptSet, at: PromptFrame) -> usize {
    match prompts.encoded(out.encoding()) {
        Some(table) => {
            let payload = table.frame(at).unwrap_or(table.silence());
            out.packet_with(black_box(payload)).map_or(0, <[u8]>::len)
        }
        None => out
            .packet(black_box(prompts.frame_pcm(at)))
            .map_or(0, <[u8]>::len),
    }
}

type Step = fn(&mut Outbound, &PromptSet, PromptFrame) -> usize;

/// Mean time per frame of `path` over `n` frames.
fn time(
    path: Step,
    out: &mut Outbound,
    prompts: &PromptSet,
    frames: &[PromptFrame],
    n: usize,
) -> Duration {
    let start = Instant::now();
    for at in frames.iter().cycle().take(n) {
        black_box(path(out, prompts, *at));
    }
    start.elapsed() / n as u32
}

fn bench(c: &mut Criterion) {
    let prompts = prompts();
    let frames = frames(&prompts);
    for codec in [Codec::Pcmu, Codec::G722, Codec::Opus] {
        let name = format!("{codec:?}").to_lowercase();
        // Built before timing: the tables are built once per process.
        let mut out = Outbound::new(codec, codec.payload_type(), &mut rand::rng());
        for at in &frames {
            new(&mut out, &prompts, *at);
        }
        // Interleaved rounds, so drift on a shared machine hits both alike.
        let (mut t_old, mut t_new) = (Duration::ZERO, Duration::ZERO);
        let per_round = if codec == Codec::Opus { 200 } else { 2_000 };
        for _ in 0..10 {
            t_old += time(old, &mut out, &prompts, &frames, per_round);
            t_new += time(new, &mut out, &prompts, &frames, per_round);
        }
        let (t_old, t_new) = (t_old / 10, t_new / 10);
        eprintln!(
            "{name}: old {t_old:?}/frame, new {t_new:?}/frame, old/new {:.1}x; \
             per call ({FRAMES_PER_CALL} frames): old {:?}, new {:?}",
            t_old.as_secs_f64() / t_new.as_secs_f64(),
            t_old * FRAMES_PER_CALL,
            t_new * FRAMES_PER_CALL,
        );
        let mut group = c.benchmark_group(format!("prompt_frame/{name}"));
        for (label, path) in [("old", old as Step), ("new", new as Step)] {
            group.bench_function(label, |b| {
                let mut out = Outbound::new(codec, codec.payload_type(), &mut rand::rng());
                let mut i = 0;
                b.iter(|| {
                    let at = frames[i % frames.len()];
                    i += 1;
                    path(&mut out, &prompts, at)
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
