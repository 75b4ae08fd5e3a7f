//! The Goertzel algorithm: the power of one frequency in a block of PCM,
//! for tone checks (and, later, in-band DTMF detection).

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

#[cfg(test)]
mod tests {
    use super::*;

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
