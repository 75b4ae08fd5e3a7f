//! The Goertzel algorithm: one frequency of a block of PCM, as a power
//! (tone checks) or as a complex value with its phase ([`Bin`], for the
//! in-band DTMF detector).

/// Power of `freq` Hz in `samples` taken at `rate` Hz, normalised by the
/// square of the block length: a steady sine of amplitude A gives about
/// A²/4, however long the block.
pub fn power(samples: &[i16], freq: f64, rate: f64) -> f64 {
    let k = 2.0 * (2.0 * std::f64::consts::PI * freq / rate).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + k * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - k * s1 * s2) / (samples.len().max(1) as f64).powi(2)
}

/// One frequency's Goertzel filter, for blocks of any length.
#[derive(Clone, Copy, Debug)]
pub struct Bin {
    /// The frequency, Hz.
    pub freq: f64,
    coeff: f64,
    cos: f64,
    sin: f64,
}

impl Bin {
    pub fn new(freq: f64, rate: f64) -> Bin {
        let omega = 2.0 * std::f64::consts::PI * freq / rate;
        Bin {
            freq,
            coeff: 2.0 * omega.cos(),
            cos: omega.cos(),
            sin: omega.sin(),
        }
    }

    /// The block's component at this frequency as (re, im): the DFT value
    /// times a phase factor that depends only on the block's length, so
    /// phases of equal-length blocks compare directly. Its magnitude is
    /// A·n/2 for a sine of amplitude A filling n samples.
    pub fn run(&self, samples: impl Iterator<Item = f64>) -> (f64, f64) {
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for x in samples {
            let s0 = x + self.coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        (s1 - self.cos * s2, self.sin * s2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bin_measures_amplitude_and_phase_advance() {
        let rate = 8000.0;
        let sine = |from: usize| {
            (from..from + 100).map(move |n| {
                1000.0 * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / rate + 0.3).sin()
            })
        };
        let bin = Bin::new(1000.0, rate);
        let (re, im) = bin.run(sine(0));
        assert!((re.hypot(im) - 1000.0 * 100.0 / 2.0).abs() < 500.0);
        // 10 samples later the phase has advanced by 2π·1000·10/8000.
        let (re2, im2) = bin.run(sine(10));
        let advance = (im2 * re - re2 * im).atan2(re2 * re + im2 * im);
        let expected = 2.0 * std::f64::consts::PI * 1000.0 * 10.0 / rate;
        let expected = (expected + std::f64::consts::PI).rem_euclid(2.0 * std::f64::consts::PI)
            - std::f64::consts::PI;
        assert!((advance - expected).abs() < 1e-6, "{advance} vs {expected}");
    }

    #[test]
    fn a_sine_of_amplitude_a_has_power_a_squared_over_4() {
        let sine: Vec<i16> = (0..8000)
            .map(|n| {
                (1000.0 * (2.0 * std::f64::consts::PI * 1000.0 * f64::from(n) / 8000.0).sin())
                    as i16
            })
            .collect();
        let p = power(&sine, 1000.0, 8000.0);
        assert!((p - 250_000.0).abs() < 2_500.0, "{p}");
        assert!(power(&sine, 1500.0, 8000.0) < 1.0);
        assert_eq!(power(&[], 1000.0, 8000.0), 0.0);
    }
}
