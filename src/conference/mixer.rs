//! The N-1 mix, pure: every member hears the sum of everyone else.
//!
//! One pass sums all present frames in 32-bit; each member's mix is that
//! total minus its own frame, saturated to 16 bits at the end (summing
//! saturated partials would distort). Members that sent nothing this tick
//! contribute nothing and hear everyone. Active-speaker selection, one shared
//! mix for listeners and one encode per (mix, codec) come with issue 5.

use crate::media::g711::FRAME_SAMPLES;

pub type Frame = [i16; FRAME_SAMPLES];

/// Mixes one 20 ms tick: `inputs[i]` is member i's frame (or `None`);
/// `outputs[i]` receives what member i hears.
pub fn mix_minus(inputs: &[Option<Frame>], outputs: &mut Vec<Frame>) {
    let mut total = [0i32; FRAME_SAMPLES];
    for frame in inputs.iter().flatten() {
        for (t, s) in total.iter_mut().zip(frame) {
            *t += i32::from(*s);
        }
    }
    outputs.clear();
    outputs.extend(inputs.iter().map(|own| {
        let mut out = [0i16; FRAME_SAMPLES];
        for (i, o) in out.iter_mut().enumerate() {
            let own = own.map_or(0, |f| i32::from(f[i]));
            // Clamped to the i16 range first, so the cast cannot wrap.
            *o = (total[i] - own).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        }
        out
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constant(v: i16) -> Frame {
        [v; FRAME_SAMPLES]
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
}
