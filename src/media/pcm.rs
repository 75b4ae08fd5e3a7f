//! The gateway's internal audio: 16 kHz mono, 20 ms frames of 320
//! samples — what codecs decode to and encode from, what the room mixes
//! and what prompts and tones are held at. Narrowband codecs (G.711) go
//! through [`Halve`] and [`Double`]: a 47-tap windowed-sinc (Blackman)
//! half-band low-pass at 4 kHz, stateful across frames, 1.4 ms of delay;
//! its zero taps, and the zeros stuffed when doubling, are skipped.

use std::sync::OnceLock;

/// Samples per second inside the gateway.
pub const PCM_RATE: u32 = 16_000;
/// Samples in one 20 ms frame at [`PCM_RATE`].
pub const PCM_FRAME: usize = 320;
/// Samples in one 20 ms frame at 8 kHz.
pub const NARROW_FRAME: usize = 160;

const TAPS: usize = 47;

/// The low-pass for both directions, unit gain at DC: its nonzero taps as
/// (index, value), all of them and split by the parity of the index. A
/// half-band filter's every other tap is zero, so half the work is skipped.
struct Taps {
    all: Vec<(usize, f32)>,
    by_parity: [Vec<(usize, f32)>; 2],
}

fn lowpass() -> &'static Taps {
    static TAPS_: OnceLock<Taps> = OnceLock::new();
    TAPS_.get_or_init(|| {
        let mut h = [0f64; TAPS];
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
            *tap = sinc * blackman;
        }
        let sum: f64 = h.iter().sum();
        let all: Vec<(usize, f32)> = h
            .iter()
            .enumerate()
            .filter(|(_, t)| t.abs() > 1e-9)
            .map(|(k, t)| (k, (t / sum) as f32))
            .collect();
        let by_parity = [0, 1].map(|p| all.iter().copied().filter(|(k, _)| k % 2 == p).collect());
        Taps { all, by_parity }
    })
}

/// Appends `input` to `history` (kept at `TAPS - 1` samples between calls)
/// and returns the buffer to filter.
fn buffered<'a>(history: &'a mut Vec<f32>, input: &[f32]) -> &'a [f32] {
    if history.len() != TAPS - 1 {
        history.clear();
        history.resize(TAPS - 1, 0.0);
    }
    history.extend_from_slice(input);
    history
}

fn forget(history: &mut Vec<f32>) {
    let keep = history.len() - (TAPS - 1);
    history.drain(..keep);
}

fn to_i16(y: f32) -> i16 {
    // Clamped first, so the cast cannot wrap.
    y.round().clamp(-32768.0, 32767.0) as i16
}

/// `buf[n + TAPS - 1 - k]` is input sample `n - k`.
fn tap_sum(buf: &[f32], n: usize, taps: &[(usize, f32)]) -> f32 {
    taps.iter()
        .map(|(k, t)| buf.get(n + TAPS - 1 - k).map_or(0.0, |x| x * t))
        .sum()
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
        let taps = &lowpass().all;
        let buf = buffered(&mut self.history, &self.input);
        out.clear();
        out.extend(
            (0..self.input.len())
                .step_by(2)
                .map(|n| to_i16(tap_sum(buf, n, taps))),
        );
        forget(&mut self.history);
    }
}

/// 8 kHz → 16 kHz, one frame at a time: zero-stuffed, then filtered with
/// only the taps that meet a real sample (half of the nonzero ones).
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
        let taps = &lowpass().by_parity;
        let buf = buffered(&mut self.history, &self.input);
        out.clear();
        // Input sample n - k is a stuffed zero when n - k is odd: output n
        // needs only the taps whose index has n's parity.
        out.extend((0..self.input.len()).map(|n| to_i16(2.0 * tap_sum(buf, n, &taps[n % 2]))));
        forget(&mut self.history);
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
    fn the_half_band_filter_has_half_its_taps_zero_and_each_phase_half_the_gain() {
        let taps = lowpass();
        assert!(
            taps.all.len() <= TAPS / 2 + 1,
            "{} nonzero taps",
            taps.all.len()
        );
        for phase in &taps.by_parity {
            let gain: f32 = phase.iter().map(|(_, t)| t).sum();
            assert!((gain - 0.5).abs() < 1e-3, "phase gain {gain}");
        }
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
