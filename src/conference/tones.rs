//! The room's signal tones, synthesised once: a rising two-note chime when
//! someone joins, a falling one when someone leaves (as most bridges do).
//! 16 kHz PCM (the gateway's rate), 100 ms per note, with 5 ms ramps so the
//! notes do not click.

use std::sync::{Arc, OnceLock};

use crate::media::pcm::sine_burst;

#[cfg(test)]
const RATE: f64 = 16000.0;
const NOTE_SAMPLES: usize = 1600;
const LEVEL: f64 = 6000.0;
pub const LOW_HZ: f64 = 440.0;
pub const HIGH_HZ: f64 = 660.0;

fn chime(first: f64, second: f64) -> Arc<[i16]> {
    sine_burst(first, NOTE_SAMPLES, LEVEL)
        .chain(sine_burst(second, NOTE_SAMPLES, LEVEL))
        .collect()
}

/// Played to the others when someone joins: 440 Hz then 660 Hz.
pub fn entry() -> Arc<[i16]> {
    static TONE: OnceLock<Arc<[i16]>> = OnceLock::new();
    TONE.get_or_init(|| chime(LOW_HZ, HIGH_HZ)).clone()
}

/// Played to the others when someone leaves: 660 Hz then 440 Hz.
pub fn exit() -> Arc<[i16]> {
    static TONE: OnceLock<Arc<[i16]>> = OnceLock::new();
    TONE.get_or_init(|| chime(HIGH_HZ, LOW_HZ)).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn power(samples: &[i16], freq: f64) -> f64 {
        crate::media::goertzel::power(samples, freq, RATE)
    }

    #[test]
    fn entry_rises_and_exit_falls() {
        let (e, x) = (entry(), exit());
        assert_eq!(e.len(), 2 * NOTE_SAMPLES);
        let (e1, e2) = e.split_at(NOTE_SAMPLES);
        assert!(power(e1, LOW_HZ) > 100.0 * power(e1, HIGH_HZ));
        assert!(power(e2, HIGH_HZ) > 100.0 * power(e2, LOW_HZ));
        let (x1, x2) = x.split_at(NOTE_SAMPLES);
        assert!(power(x1, HIGH_HZ) > 100.0 * power(x1, LOW_HZ));
        assert!(power(x2, LOW_HZ) > 100.0 * power(x2, HIGH_HZ));
    }

    #[test]
    fn notes_start_and_end_at_silence() {
        let e = entry();
        assert_eq!(e[0], 0);
        assert!(e[NOTE_SAMPLES - 1].abs() < 200);
    }
}
