//! Test signals: a deterministic random source and the keys the in-band
//! detector hears in a whole signal.

use dialgate::dtmf::inband::{Detector, Tone};

/// xorshift64: "random" numbers without a dependency, the same every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn gaussian(&mut self) -> f64 {
        let u = self.unit().max(1e-12);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// The keys the in-band detector hears in `pcm` (8 kHz), fed 20 ms at a time.
pub fn keys_heard(pcm: &[i16]) -> String {
    let mut detector = Detector::new();
    let mut keys = String::new();
    for frame in pcm.chunks(160) {
        detector.push(frame);
        while let Some(tone) = detector.poll_tone() {
            if let Tone::Began { key, .. } = tone {
                keys.push(key.to_char());
            }
        }
    }
    keys
}
