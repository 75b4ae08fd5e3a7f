//! The room's mix, pure: active speakers in, one frame per distinct mix out.
//!
//! Each tick the [`Selector`] picks at most `max_talkers` members. Every
//! member who is not a talker hears the one shared mix (the sum of all
//! talkers); each talker hears that sum minus itself (N-1). So a room of
//! any size makes at most `max_talkers + 1` distinct mixes, and the room
//! encodes each distinct (mix, codec) pair once ([`encode_plan`]) and fans
//! the packets out. Sums are taken in 32 bits and saturated to 16 bits once,
//! at the end (summing saturated partials would distort, and a talker's own
//! loudness must not leak into its mix through the clamp).
//!
//! [`mix_minus`] is the naive reference: every member its own N-1 mix of
//! everyone. Benchmarks compare the two.

use super::speakers::{Selector, rms};
use crate::media::pcm::PCM_FRAME;

pub type Frame = [i16; PCM_FRAME];

/// Index of the shared mix in [`Tick::mixes`].
pub const SHARED: usize = 0;

/// One tick's result.
#[derive(Debug, Default, Clone)]
pub struct Tick {
    /// `mixes[SHARED]` is the shared mix; then one per talker.
    pub mixes: Vec<Frame>,
    /// For each member (input order), the index of the mix it hears.
    pub heard: Vec<usize>,
    /// For each member, whether it was a talker this tick.
    pub talkers: Vec<bool>,
}

/// One member's input to a tick.
#[derive(Debug, Clone, Copy)]
pub struct Input {
    /// Stable for the member's stay in the room.
    pub key: u64,
    /// This tick's frame, if one arrived.
    pub frame: Option<Frame>,
    pub muted: bool,
}

/// A room's mixer: speaker selection plus the mixes.
#[derive(Debug, Clone)]
pub struct Mixer {
    selector: Selector,
    levels: Vec<(u64, f32, bool)>,
}

fn saturate(total: &[i32; PCM_FRAME], own: Option<&Frame>) -> Frame {
    let mut out = [0i16; PCM_FRAME];
    for (i, o) in out.iter_mut().enumerate() {
        let own = own.map_or(0, |f| i32::from(f[i]));
        // Clamped to the i16 range first, so the cast cannot wrap.
        *o = (total[i] - own).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
    }
    out
}

impl Mixer {
    pub fn new(max_talkers: usize) -> Mixer {
        Mixer {
            selector: Selector::new(max_talkers),
            levels: Vec::new(),
        }
    }

    /// Mixes one 20 ms tick into `out` (buffers reused).
    pub fn tick(&mut self, inputs: &[Input], out: &mut Tick) {
        self.levels.clear();
        self.levels.extend(
            inputs
                .iter()
                .map(|i| (i.key, i.frame.as_ref().map_or(0.0, |f| rms(f)), i.muted)),
        );
        self.selector.update(&self.levels, &mut out.talkers);
        let mut total = [0i32; PCM_FRAME];
        for (input, _) in inputs.iter().zip(&out.talkers).filter(|(_, t)| **t) {
            if let Some(frame) = &input.frame {
                for (t, s) in total.iter_mut().zip(frame) {
                    *t += i32::from(*s);
                }
            }
        }
        out.mixes.clear();
        out.mixes.push(saturate(&total, None));
        out.heard.clear();
        for (input, talker) in inputs.iter().zip(&out.talkers) {
            if *talker {
                out.mixes.push(saturate(&total, input.frame.as_ref()));
                out.heard.push(out.mixes.len() - 1);
            } else {
                out.heard.push(SHARED);
            }
        }
    }
}

/// The distinct (mix, codec) pairs a tick must encode, in first-use order:
/// one encode each, however many members hear it.
pub fn encode_plan<C: PartialEq + Copy>(heard: &[usize], codecs: &[C], plan: &mut Vec<(usize, C)>) {
    plan.clear();
    for (&mix, &codec) in heard.iter().zip(codecs) {
        if !plan.contains(&(mix, codec)) {
            plan.push((mix, codec));
        }
    }
}

/// Naive reference: `outputs[i]` is the sum of every frame but `inputs[i]`.
pub fn mix_minus(inputs: &[Option<Frame>], outputs: &mut Vec<Frame>) {
    let mut total = [0i32; PCM_FRAME];
    for frame in inputs.iter().flatten() {
        for (t, s) in total.iter_mut().zip(frame) {
            *t += i32::from(*s);
        }
    }
    outputs.clear();
    outputs.extend(inputs.iter().map(|own| saturate(&total, own.as_ref())));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constant(v: i16) -> Frame {
        [v; PCM_FRAME]
    }

    #[test]
    fn each_member_hears_exactly_the_others() {
        let inputs = [Some(constant(100)), Some(constant(-30)), Some(constant(7))];
        let mut out = Vec::new();
        mix_minus(&inputs, &mut out);
        assert_eq!(out, vec![constant(-23), constant(107), constant(70)]);
    }

    #[test]
    fn a_lone_member_hears_silence() {
        let mut out = Vec::new();
        mix_minus(&[Some(constant(1234))], &mut out);
        assert_eq!(out, vec![constant(0)]);
    }

    #[test]
    fn a_silent_member_hears_everyone_and_adds_nothing() {
        let mut out = Vec::new();
        mix_minus(&[Some(constant(5)), None, Some(constant(6))], &mut out);
        assert_eq!(out, vec![constant(6), constant(11), constant(5)]);
    }

    #[test]
    fn loud_sums_saturate_instead_of_wrapping() {
        let mut out = Vec::new();
        let loud = [
            Some(constant(30_000)),
            Some(constant(30_000)),
            Some(constant(30_000)),
        ];
        mix_minus(&loud, &mut out);
        assert!(out.iter().all(|f| *f == constant(i16::MAX)));
        let low = [
            Some(constant(-30_000)),
            Some(constant(-30_000)),
            Some(constant(-30_000)),
        ];
        mix_minus(&low, &mut out);
        assert!(out.iter().all(|f| *f == constant(i16::MIN)));
    }

    #[test]
    fn own_loudness_does_not_leak_through_saturation() {
        // The total saturates, but member 0's mix is computed before clamping:
        // it hears exactly member 1.
        let mut out = Vec::new();
        mix_minus(&[Some(constant(32_000)), Some(constant(1_000))], &mut out);
        assert_eq!(out[0], constant(1_000));
        assert_eq!(out[1], constant(32_000));
    }

    fn inputs(frames: &[Option<Frame>]) -> Vec<Input> {
        frames
            .iter()
            .enumerate()
            .map(|(k, f)| Input {
                key: k as u64,
                frame: *f,
                muted: false,
            })
            .collect()
    }

    /// What each member heard, after a few ticks to settle the selector.
    fn heard(m: &mut Mixer, frames: &[Option<Frame>]) -> Vec<Frame> {
        let mut tick = Tick::default();
        for _ in 0..5 {
            m.tick(&inputs(frames), &mut tick);
        }
        tick.heard.iter().map(|&i| tick.mixes[i]).collect()
    }

    #[test]
    fn with_room_for_every_talker_it_is_exact_n_minus_1() {
        let frames = [
            Some(constant(1000)),
            Some(constant(-300)),
            Some(constant(700)),
            None,
        ];
        let mut reference = Vec::new();
        mix_minus(&frames, &mut reference);
        assert_eq!(heard(&mut Mixer::new(3), &frames), reference);
    }

    #[test]
    fn listeners_share_one_mix_of_the_talkers_only() {
        let mut frames = vec![
            Some(constant(3000)),
            Some(constant(2000)),
            Some(constant(1000)),
        ];
        frames.extend((0..20).map(|_| Some(constant(20))));
        let mut m = Mixer::new(3);
        let mut tick = Tick::default();
        for _ in 0..5 {
            m.tick(&inputs(&frames), &mut tick);
        }
        assert_eq!(tick.mixes.len(), 4, "one shared mix and three talker mixes");
        assert_eq!(tick.mixes[SHARED], constant(6000), "murmurs are not mixed");
        assert!(tick.heard[3..].iter().all(|&i| i == SHARED));
        assert_eq!(tick.mixes[tick.heard[0]], constant(3000));
    }

    #[test]
    fn one_encode_per_distinct_mix_and_codec() {
        // Members 0-2 talk; 3-9 listen; codecs alternate A/B, member 9 on C.
        let heard = [1, 2, 3, 0, 0, 0, 0, 0, 0, 0];
        let codecs = ['A', 'B', 'A', 'A', 'B', 'A', 'B', 'A', 'B', 'C'];
        let mut plan = Vec::new();
        encode_plan(&heard, &codecs, &mut plan);
        assert_eq!(
            plan,
            vec![(1, 'A'), (2, 'B'), (3, 'A'), (0, 'A'), (0, 'B'), (0, 'C')]
        );
        let distinct: std::collections::BTreeSet<_> = heard.iter().zip(&codecs).collect();
        assert_eq!(plan.len(), distinct.len());
    }

    #[test]
    fn a_muted_talker_is_not_heard() {
        let frames = [Some(constant(1000)), Some(constant(2000))];
        let mut m = Mixer::new(3);
        let mut tick = Tick::default();
        let mut ins = inputs(&frames);
        ins[1].muted = true;
        for _ in 0..3 {
            m.tick(&ins, &mut tick);
        }
        assert_eq!(tick.mixes[tick.heard[0]], constant(0));
        assert_eq!(tick.mixes[tick.heard[1]], constant(1000));
    }
}
