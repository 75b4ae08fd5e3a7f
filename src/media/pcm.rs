//! The gateway's internal audio: 16 kHz mono, 20 ms frames of 320
//! samples — what codecs decode to and encode from, what the room mixes
//! and what prompts and tones are held at. Narrowband codecs (G.711) go
//! through [`Halve`] and [`Double`]: a 47-tap windowed-sinc (Blackman)
//! low-pass at 4 kHz, stateful across frames, 1.4 ms of delay.

use std::sync::OnceLock;

/// Samples per second inside the gateway.
pub const PCM_RATE: u32 = 16_000;
/// Samples in one 20 ms frame at [`PCM_RATE`].
pub const PCM_FRAME: usize = 320;
/// Samples in one 20 ms frame at 8 kHz.
pub const NARROW_FRAME: usize = 160;

const TAPS: usize = 47;

/// The low-pass for both directions, unit gain at DC.
fn lowpass() -> &'static [f32; TAPS] {
    static TAPS_: OnceLock<[f32; TAPS]> = OnceLock::new();
    TAPS_.get_or_init(|| {
        let mut h = [0f32; TAPS];
        let m = (TAPS - 1) as f64 / 2.0;
        let cutoff = 0.25; // 4 kHz of 16 kHz
        for (n, tap) in h.iter_mut().enumerate() {
            let x = n as f64 - m;
            let sinc = if x == 0.0 {
                2.0 * cutoff
            } else {
                (2.0 * std::f64::consts::PI * cutoff * x).sin() / (std::f64::consts::PI * x)
            };
            let phase = 2.0 * std::f64::consts::PI * n as f64 / (TAPS - 1) as f64;
            let blackman = 0.42 - 0.5 * phase.cos() + 0.08 * (2.0 * phase).cos();
            *tap = (sinc * blackman) as f32;
        }
        let sum: f32 = h.iter().sum();
        h.iter_mut().for_each(|t| *t /= sum);
        h
    })
}

/// Filters `input` (after `history`) into every `step`-th output, keeping
/// the last `TAPS - 1` inputs as the next call's history.
fn filter(history: &mut Vec<f32>, input: &[f32], step: usize, gain: f32, out: &mut Vec<i16>) {
    let h = lowpass();
    if history.len() != TAPS - 1 {
        history.clear();
        history.resize(TAPS - 1, 0.0);
    }
    history.extend_from_slice(input);
    out.clear();
    for n in (0..input.len()).step_by(step) {
        // history[n .. n + TAPS] ends at input sample n.
        let window = &history[n..n + TAPS];
        let y: f32 = window.iter().rev().zip(h).map(|(x, t)| x * t).sum();
        // Clamped first, so the cast cannot wrap.
        out.push((y * gain).round().clamp(-32768.0, 32767.0) as i16);
    }
    let keep = history.len() - (TAPS - 1);
    history.drain(..keep);
}

/// 16 kHz → 8 kHz, one frame at a time.
#[derive(Debug, Default)]
pub struct Halve {
    history: Vec<f32>,
    input: Vec<f32>,
}

impl Halve {
    pub fn run(&mut self, wide: &[i16], out: &mut Vec<i16>) {
        self.input.clear();
        self.input.extend(wide.iter().map(|s| f32::from(*s)));
        filter(&mut self.history, &self.input, 2, 1.0, out);
    }
}

/// 8 kHz → 16 kHz, one frame at a time.
#[derive(Debug, Default)]
pub struct Double {
    history: Vec<f32>,
    input: Vec<f32>,
}

impl Double {
    pub fn run(&mut self, narrow: &[i16], out: &mut Vec<i16>) {
        self.input.clear();
        for s in narrow {
            self.input.push(f32::from(*s));
            self.input.push(0.0);
        }
        filter(&mut self.history, &self.input, 1, 2.0, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: f64, freq: f64, n: usize, from: usize) -> Vec<i16> {
        (from..from + n)
            .map(|i| (8000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / rate).sin()) as i16)
            .collect()
    }

    fn power(samples: &[i16], freq: f64, rate: f64) -> f64 {
        crate::media::goertzel::power(samples, freq, rate)
    }

    #[test]
    fn halving_keeps_the_voice_band_and_removes_what_would_alias() {
        for (freq, kept) in [(1000.0, true), (3000.0, true), (6000.0, false)] {
            let mut h = Halve::default();
            let mut out = Vec::new();
            let mut narrow = Vec::new();
            for f in 0..10 {
                h.run(&sine(16000.0, freq, PCM_FRAME, f * PCM_FRAME), &mut out);
                narrow.extend_from_slice(&out);
            }
            assert_eq!(narrow.len(), 10 * NARROW_FRAME);
            let tail = &narrow[NARROW_FRAME..];
            // 6 kHz would fold to 2 kHz at 8 kHz.
            let at = if freq > 4000.0 { 8000.0 - freq } else { freq };
            let p = power(tail, at, 8000.0);
            if kept {
                assert!(p > 0.8 * 1.6e7, "{freq} Hz kept: {p:.0}");
            } else {
                assert!(p < 1e4, "{freq} Hz removed: {p:.0}");
            }
        }
    }

    #[test]
    fn doubling_keeps_the_tone_and_leaves_no_image() {
        let mut d = Double::default();
        let mut out = Vec::new();
        let mut wide = Vec::new();
        for f in 0..10 {
            d.run(
                &sine(8000.0, 1000.0, NARROW_FRAME, f * NARROW_FRAME),
                &mut out,
            );
            wide.extend_from_slice(&out);
        }
        assert_eq!(wide.len(), 10 * PCM_FRAME);
        let tail = &wide[PCM_FRAME..];
        let tone = power(tail, 1000.0, 16000.0);
        let image = power(tail, 7000.0, 16000.0);
        assert!(tone > 0.8 * 1.6e7, "1 kHz kept: {tone:.0}");
        assert!(image < 1e4, "no image at 7 kHz: {image:.0}");
    }

    #[test]
    fn a_steady_level_comes_through_unchanged_after_the_filter_fills() {
        let (mut d, mut h) = (Double::default(), Halve::default());
        let (mut wide, mut narrow) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            d.run(&[1000; NARROW_FRAME], &mut wide);
            h.run(&wide, &mut narrow);
        }
        assert!(
            wide[PCM_FRAME - 1].abs_diff(1000) <= 1,
            "{}",
            wide[PCM_FRAME - 1]
        );
        assert!(narrow[NARROW_FRAME - 1].abs_diff(1000) <= 1);
    }
}
