//! The gateway's internal audio: 16 kHz mono, 20 ms frames of 320
//! samples — what codecs decode to and encode from, what the room mixes
//! and what prompts and tones are held at. Narrowband codecs (G.711) go
//! through [`Halve`] and [`Double`]: a 47-tap windowed-sinc (Blackman)
//! half-band low-pass at 4 kHz, stateful across frames, 1.4 ms of delay.
//! Every other tap of a half-band filter is zero: halving is a dot product
//! over the even input samples plus the middle tap, doubling two polyphase
//! filters over the 8 kHz samples (the stuffed zeros never computed), the
//! odd phase being the middle tap alone; the dot products are 8 lanes wide
//! so the compiler vectorises them.

use std::sync::OnceLock;

/// Samples per second inside the gateway.
pub const PCM_RATE: u32 = 16_000;
/// Samples in one 20 ms frame at [`PCM_RATE`].
pub const PCM_FRAME: usize = 320;
/// Samples in one 20 ms frame at 8 kHz.
pub const NARROW_FRAME: usize = 160;

/// `samples` of a sine at `freq_hz` and peak `level`, at [`PCM_RATE`],
/// faded in and out over 5 ms so it does not click: the tones the gateway
/// synthesises (the room's chimes, the moving tone) are made of these.
pub fn sine_burst(freq_hz: f64, samples: usize, level: f64) -> impl Iterator<Item = i16> {
    const RAMP: f64 = PCM_RATE as f64 / 200.0;
    let step = 2.0 * std::f64::consts::PI * freq_hz / f64::from(PCM_RATE);
    (0..samples).map(move |n| {
        let ramp = (n.min(samples - 1 - n) as f64 / RAMP).min(1.0);
        (level * ramp * (step * n as f64).sin()) as i16
    })
}

const TAPS: usize = 47;

/// Lanes of the dot products: 8 independent sums the compiler keeps in
/// SIMD registers (a float sum in one accumulator cannot be vectorised, as
/// reordering it changes the result).
const LANES: usize = 8;

/// [`Halve`]'s even taps (the half-band's nonzero ones but the middle), as
/// a dot product over the even input samples: 24 of them.
const HALVE_SPAN: usize = 24;

/// The middle tap's index: odd, the only odd one that is not zero.
const MIDDLE: usize = (TAPS - 1) / 2;

/// [`Double`]'s taps per output phase, over the 8 kHz input: 24 of them.
const DOUBLE_SPAN: usize = 24;

/// The low-pass for both directions, unit gain at DC, laid out so each
/// output is one dense dot product over a window of the input: dense and
/// vectorised beats skipping the half-band filter's zero taps one by one.
struct Taps {
    /// For halving, output `2m`: `halve[i]` multiplies even input sample
    /// `m - (23 - i)` (input `2m - 2(23 - i)`).
    halve: [f32; HALVE_SPAN],
    /// ... and `middle` the odd input sample `2m - 23`.
    middle: f32,
    /// For doubling, output `2m`: `double[i]` multiplies 8 kHz sample
    /// `m - (23 - i)`, the gain of 2 that makes up for the stuffed zeros
    /// folded in; output `2m + 1` is `double_middle` times sample `m - 11`
    /// (the odd phase's only nonzero tap).
    double: [f32; DOUBLE_SPAN],
    double_middle: f32,
}

/// The filter's 47 taps: a windowed sinc (Blackman) with its cutoff at a
/// quarter of the rate, normalised to unit gain at DC. Every other tap but
/// the middle one is zero (a half-band filter).
fn impulse_response() -> [f64; TAPS] {
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
    h.map(|t| if t.abs() > 1e-9 { t / sum } else { 0.0 })
}

fn lowpass() -> &'static Taps {
    static TAPS_: OnceLock<Taps> = OnceLock::new();
    TAPS_.get_or_init(|| {
        let h = impulse_response();
        let tap = |k: usize| h.get(k).map_or(0.0, |t| *t as f32);
        Taps {
            halve: std::array::from_fn(|i| tap(2 * ((HALVE_SPAN - 1) - i))),
            middle: tap(MIDDLE),
            double: std::array::from_fn(|i| 2.0 * tap(2 * ((DOUBLE_SPAN - 1) - i))),
            double_middle: 2.0 * tap(MIDDLE),
        }
    })
}

/// Appends `input` to `history` (kept at `keep` samples between frames)
/// and returns the buffer to filter.
fn buffered<'a>(history: &'a mut Vec<f32>, keep: usize, input: &[i16]) -> &'a [f32] {
    if history.len() != keep {
        history.clear();
        history.resize(keep, 0.0);
    }
    history.extend(input.iter().map(|s| f32::from(*s)));
    history
}

fn forget(history: &mut Vec<f32>, keep: usize) {
    let excess = history.len().saturating_sub(keep);
    history.drain(..excess);
}

fn to_i16(y: f32) -> i16 {
    // Half away from zero, as `f32::round`, without its library call; the
    // clamp comes first, so the cast cannot wrap.
    (y + 0.5f32.copysign(y)).clamp(-32768.0, 32767.0) as i16
}

/// `window · taps`, both `N` long (a whole number of lanes).
fn dot<const N: usize>(window: &[f32], taps: &[f32; N]) -> f32 {
    let mut acc = [0f32; LANES];
    let (windows, _) = window.as_chunks::<LANES>();
    let (taps, _) = taps.as_chunks::<LANES>();
    for (w, t) in windows.iter().zip(taps) {
        for i in 0..LANES {
            acc[i] += w[i] * t[i];
        }
    }
    acc.iter().sum()
}

/// 16 kHz → 8 kHz, one frame at a time. Only the even outputs are kept,
/// and a half-band filter's taps are zero at every odd index but the
/// middle: so each output is a dot product over the even input samples
/// plus the middle tap times one odd sample. The input is split by parity
/// as it arrives (an odd-length frame carries its phase to the next).
#[derive(Debug, Default)]
pub struct Halve {
    even: Vec<f32>,
    odd: Vec<f32>,
    /// Whether the next input sample has an odd index.
    phase: bool,
}

/// Odd samples kept between frames: the middle tap reaches 12 back.
const ODD_KEEP: usize = MIDDLE.div_ceil(2);

impl Halve {
    pub fn run(&mut self, wide: &[i16], out: &mut Vec<i16>) {
        const KEEP: usize = HALVE_SPAN - 1;
        let taps = lowpass();
        for (history, keep) in [(&mut self.even, KEEP), (&mut self.odd, ODD_KEEP)] {
            if history.len() != keep {
                history.clear();
                history.resize(keep, 0.0);
            }
        }
        // After an odd-length frame the odd stream is one sample behind.
        let lag = usize::from(self.phase);
        let (first, second) = if self.phase {
            (&mut self.odd, &mut self.even)
        } else {
            (&mut self.even, &mut self.odd)
        };
        first.extend(wide.iter().step_by(2).map(|s| f32::from(*s)));
        second.extend(wide.iter().skip(1).step_by(2).map(|s| f32::from(*s)));
        self.phase ^= wide.len() % 2 == 1;
        out.clear();
        // With `m` counting this frame's even samples, the sample at `2m`
        // being `even[KEEP + m]`: `even[m + t]` is sample `2m - 2(23 - t)`,
        // and `odd[m + lag]` is sample `2m - 23` (`ODD_KEEP` = 12 back).
        out.extend(
            self.even
                .windows(HALVE_SPAN)
                .zip(self.odd.iter().skip(lag))
                .map(|(window, middle)| to_i16(dot(window, &taps.halve) + taps.middle * middle)),
        );
        forget(&mut self.even, KEEP);
        forget(&mut self.odd, ODD_KEEP);
    }
}

/// 8 kHz → 16 kHz, one frame at a time: the zero-stuffed signal filtered,
/// computed as two polyphase filters over the 8 kHz samples themselves (a
/// stuffed zero contributes nothing).
#[derive(Debug, Default)]
pub struct Double {
    history: Vec<f32>,
}

impl Double {
    pub fn run(&mut self, narrow: &[i16], out: &mut Vec<i16>) {
        const KEEP: usize = DOUBLE_SPAN - 1;
        /// `window[ODD_AT]` is 8 kHz sample `m - 11`.
        const ODD_AT: usize = KEEP - MIDDLE / 2;
        let taps = lowpass();
        let buf = buffered(&mut self.history, KEEP, narrow);
        out.clear();
        // The window from `m` ends at this frame's sample `m`
        // (`buf[m + KEEP - j]` is 8 kHz sample `m - j`).
        for window in buf.windows(DOUBLE_SPAN) {
            out.push(to_i16(dot(window, &taps.double)));
            let odd = window.get(ODD_AT).copied().unwrap_or_default();
            out.push(to_i16(taps.double_middle * odd));
        }
        forget(&mut self.history, KEEP);
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
        let h = impulse_response();
        let nonzero = h.iter().filter(|t| **t != 0.0).count();
        assert!(nonzero <= TAPS / 2 + 1, "{nonzero} nonzero taps");
        // Doubling's gain of 2 included: each phase passes DC at 1.
        let taps = lowpass();
        for gain in [taps.double.iter().sum(), taps.double_middle] {
            assert!((gain - 1.0f32).abs() < 2e-3, "phase gain {gain}");
        }
        let gain: f32 = lowpass().halve.iter().sum::<f32>() + lowpass().middle;
        assert!((gain - 1.0).abs() < 1e-3, "halving gain {gain}");
    }

    /// The filters by their definition, one output at a time from the
    /// impulse response: what the dense, polyphase forms must equal.
    fn reference(input: &[f64], stuffed: bool) -> Vec<f64> {
        let h = impulse_response();
        let x: Vec<f64> = if stuffed {
            input.iter().flat_map(|s| [*s, 0.0]).collect()
        } else {
            input.to_vec()
        };
        let gain = if stuffed { 2.0 } else { 1.0 };
        (0..x.len())
            .map(|n| {
                gain * (0..TAPS)
                    .filter(|k| *k <= n)
                    .map(|k| h[k] * x[n - k])
                    .sum::<f64>()
            })
            .collect()
    }

    #[test]
    fn halving_and_doubling_equal_the_filter_by_definition_across_frames() {
        let wide = sine(16000.0, 1700.0, 4 * PCM_FRAME, 0);
        let mut h = Halve::default();
        let (mut out, mut halved) = (Vec::new(), Vec::new());
        // Frames of odd lengths too: the filter runs on as one stream.
        let mut rest = &wide[..];
        for len in [PCM_FRAME, 7, 313, 1, PCM_FRAME].into_iter().cycle() {
            let (frame, more) = rest.split_at(len.min(rest.len()));
            h.run(frame, &mut out);
            halved.extend_from_slice(&out);
            rest = more;
            if rest.is_empty() {
                break;
            }
        }
        let x: Vec<f64> = wide.iter().map(|s| f64::from(*s)).collect();
        let want: Vec<f64> = reference(&x, false).into_iter().step_by(2).collect();
        assert_eq!(halved.len(), want.len());
        for (got, want) in halved.iter().zip(&want) {
            assert!((f64::from(*got) - want).abs() <= 1.0, "{got} vs {want}");
        }
        let narrow = sine(8000.0, 900.0, 4 * NARROW_FRAME, 0);
        let mut d = Double::default();
        let mut doubled = Vec::new();
        for frame in narrow.chunks(NARROW_FRAME) {
            d.run(frame, &mut out);
            doubled.extend_from_slice(&out);
        }
        let x: Vec<f64> = narrow.iter().map(|s| f64::from(*s)).collect();
        let want = reference(&x, true);
        assert_eq!(doubled.len(), want.len());
        for (got, want) in doubled.iter().zip(&want) {
            assert!((f64::from(*got) - want).abs() <= 1.0, "{got} vs {want}");
        }
    }

    #[test]
    fn an_odd_length_frame_is_halved_whole() {
        let mut h = Halve::default();
        let mut out = Vec::new();
        h.run(&[1000; 7], &mut out);
        assert_eq!(out.len(), 4);
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
