//! In-band DTMF: keypad tones found in the caller's audio itself, for trunks
//! and phones that send no telephone-events.
//!
//! Sans-IO and streaming: 8 kHz PCM in (any chunk size), [`Tone`] events out
//! (a key began, a key ended), timed in samples of the stream. The shell
//! decodes whatever codec was negotiated and resamples to 8 kHz first.
//!
//! ## Tolerances (ITU-T Q.24, the AT&T/Bellcore practice spandsp and
//! Asterisk follow)
//!
//! | property | detected | rejected |
//! |---|---|---|
//! | frequency deviation, each tone | within ±1.5 % | beyond ±3.5 % (the line is drawn at ±[`MAX_DEVIATION`]) |
//! | level, each tone | −26 to −3 dBm0 (the pair 0 dBm0) | below [`MIN_LEVEL_DBM0`] |
//! | twist: low group louder ("normal") | up to 8 dB | beyond [`NORMAL_TWIST_DB`] |
//! | twist: high group louder ("reverse") | up to 4 dB | beyond [`REVERSE_TWIST_DB`] |
//! | tone length | 40 ms or more | 20 ms or less |
//! | pause between two presses of a key | 40 ms or more | — (a break of 10 ms or less does not split a press) |
//! | noise | signal-to-noise 15 dB | — |
//!
//! Levels follow the G.711 convention spandsp uses: a full-scale sine is
//! +3.14 dBm0, so 0 dBm0 is a sine of peak [`DBM0_PEAK`].
//!
//! ## How
//!
//! The audio is cut into windows of 102 samples (12.75 ms) every 51 samples.
//! In each window a Goertzel filter measures the eight DTMF frequencies twice:
//!
//! - with a rectangular window, to pick the strongest tone of each group and
//!   to ask how much of the window's energy those two tones hold (their
//!   *purity*). A window only partly covered by a tone holds it in about the
//!   covered fraction, which is what turns window counts into tone lengths:
//!   a key begins after [`START_HITS`] windows agree on it (one window of
//!   noise among them is forgiven), which a 40 ms tone always gives and a
//!   20 ms tone never can; it ends after
//!   [`END_MISSES`] windows in a row do not, which a 40 ms pause always gives
//!   and a 10 ms break never can.
//! - with a Hann window, whose low side lobes keep the other group's tone
//!   out, for each tone's level and its true frequency. The frequency comes
//!   from the phase each tone advances between two windows 51 samples apart,
//!   which resolves a few hertz where the window's own resolution (78 Hz)
//!   cannot tell 697 Hz ± 1.5 % from 697 Hz ± 3.5 %. Knowing the frequency
//!   also corrects both measurements for the filter's roll-off.
//!
//! A window is a *hit* for a key when both tones are within the deviation,
//! loud enough, within the twist limits, each dominates its own group by
//! [`GROUP_PEAK_DB`], the pair holds at least [`MIN_PURITY`] of the
//! window's energy, and the high tone is not the low tone's octave. Purity
//! is what keeps speech and music out (talk-off): voices and instruments
//! spread their energy over harmonics. The octave rule catches the one
//! musical case purity cannot: a note a little off a low-group frequency
//! whose strong second harmonic lands near a high-group one (G♯5, 830.6 Hz,
//! and its 1661 Hz overtone look like `C`).
//!
//! Left out: detecting the 2600 Hz and MF tones of old trunks.

use std::collections::VecDeque;
use std::f64::consts::PI;
use std::time::Duration;

use super::Key;
use crate::media::goertzel::Bin;

/// Samples per second of the audio the detector reads.
pub const RATE: u32 = 8000;
/// Samples per analysis window (12.75 ms).
pub const WINDOW: usize = 102;
/// Samples between the starts of two windows.
pub const HOP: usize = 51;
/// Low group (rows of the keypad), Hz.
pub const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
/// High group (columns of the keypad), Hz.
pub const COLUMNS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// The keypad: `KEYPAD[row][column]`.
pub const KEYPAD: [[Key; 4]; 4] = [
    [Key::D1, Key::D2, Key::D3, Key::A],
    [Key::D4, Key::D5, Key::D6, Key::B],
    [Key::D7, Key::D8, Key::D9, Key::C],
    [Key::Star, Key::D0, Key::Pound, Key::D],
];

/// Peak of a 0 dBm0 sine in 16-bit PCM: full scale is +3.14 dBm0.
pub const DBM0_PEAK: f64 = 22_826.0;
/// Largest accepted deviation of either tone from its nominal frequency,
/// as a fraction: between Q.24's must-detect 1.5 % and must-reject 3.5 %.
pub const MAX_DEVIATION: f64 = 0.025;
/// Quietest accepted tone (each of the pair), dBm0.
pub const MIN_LEVEL_DBM0: f64 = -36.0;
/// How much louder the low group may be than the high group, dB: the 8 dB
/// of the standard plus 2 dB for noise on one window's level estimate.
pub const NORMAL_TWIST_DB: f64 = 10.0;
/// How much louder the high group may be than the low group, dB: 4 dB
/// plus the same 2 dB.
pub const REVERSE_TWIST_DB: f64 = 6.0;
/// Each tone must be this much above the other frequencies of its group, dB.
pub const GROUP_PEAK_DB: f64 = 6.0;
/// Share of a window's energy the two tones must hold.
pub const MIN_PURITY: f64 = 0.75;
/// How close to 2 the ratio of the two tones may come before they are taken
/// for one note and its octave.
pub const OCTAVE_SLACK: f64 = 0.005;
/// Windows that must agree on a key before it begins (in a row, but for
/// one window that may miss).
pub const START_HITS: u32 = 4;
/// Windows in a row without the key before it ends.
pub const END_MISSES: u32 = 5;

/// A key's tone began or ended. Times count samples from the first one
/// the detector was given, as a duration at [`RATE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// The key's tone began at `at` (reported some 32 ms later, once sure).
    Began { key: Key, at: Duration },
    /// The key's tone ended at `at`, after sounding for `length`.
    Ended {
        key: Key,
        at: Duration,
        length: Duration,
    },
}

#[derive(Clone, Copy, Debug)]
enum State {
    /// No key; `run` counts the windows that agree on one.
    Idle { run: Option<Run> },
    /// A key sounds since `began`; its last hit window ended at `last`.
    Active {
        key: Key,
        began: u64,
        last: u64,
        misses: u32,
    },
}

/// Windows agreeing on a key that has not begun yet.
#[derive(Clone, Copy, Debug)]
struct Run {
    key: Key,
    hits: u32,
    /// Where the first hit window starts.
    first: u64,
    /// Whether the one window allowed to miss inside a run has been used.
    missed: bool,
}

/// One tone of a candidate pair, as measured in a window.
#[derive(Clone, Copy, Debug)]
struct Measured {
    /// Amplitude from the rectangular window (for purity).
    rect: f64,
    /// Level from the Hann window, dBm0.
    level: f64,
    /// The frequency measured, Hz.
    freq: f64,
}

/// The streaming detector. Feed it with [`Detector::push`], then drain
/// [`Detector::poll_tone`].
#[derive(Clone, Debug)]
pub struct Detector {
    bins: [Bin; 8],
    hann: [f64; WINDOW],
    hann_sum: f64,
    /// Mean square of one tone at [`MIN_LEVEL_DBM0`]: quieter windows are skipped.
    floor: f64,
    /// [`GROUP_PEAK_DB`] as a power ratio.
    group_peak: f64,
    /// Samples not yet analysed; `buf[0]` is stream sample `position`.
    buf: Vec<f64>,
    position: u64,
    /// The Hann outputs of the previous window, for the phase advance.
    previous: Option<[(f64, f64); 8]>,
    state: State,
    tones: VecDeque<Tone>,
}

impl Default for Detector {
    fn default() -> Self {
        Detector::new()
    }
}

impl Detector {
    pub fn new() -> Detector {
        let mut bins = [Bin::new(0.0, f64::from(RATE)); 8];
        for (bin, freq) in bins.iter_mut().zip(ROWS.iter().chain(&COLUMNS)) {
            *bin = Bin::new(*freq, f64::from(RATE));
        }
        let mut hann = [0.0; WINDOW];
        for (n, w) in hann.iter_mut().enumerate() {
            *w = 0.5 - 0.5 * (2.0 * PI * n as f64 / (WINDOW - 1) as f64).cos();
        }
        Detector {
            bins,
            hann,
            hann_sum: hann.iter().sum(),
            floor: (DBM0_PEAK * db_to_amplitude(MIN_LEVEL_DBM0)).powi(2) / 2.0,
            group_peak: 10f64.powf(GROUP_PEAK_DB / 10.0),
            buf: Vec::with_capacity(WINDOW + 2 * 160),
            position: 0,
            previous: None,
            state: State::Idle { run: None },
            tones: VecDeque::new(),
        }
    }

    /// Reads more audio (8 kHz). Tones found are queued for [`Self::poll_tone`].
    pub fn push(&mut self, samples: &[i16]) {
        self.buf.extend(samples.iter().map(|s| f64::from(*s)));
        let mut start = 0;
        while self.buf.len() - start >= WINDOW {
            let hit = self.analyse(start);
            let at = self.position + start as u64;
            self.on_window(hit, at);
            start += HOP;
        }
        self.buf.drain(..start);
        self.position += start as u64;
    }

    /// The next tone event, oldest first.
    #[must_use]
    pub fn poll_tone(&mut self) -> Option<Tone> {
        self.tones.pop_front()
    }

    /// Samples read so far.
    pub fn samples(&self) -> u64 {
        self.position + self.buf.len() as u64
    }

    /// The key sounding now, if one has begun and not yet ended.
    pub fn sounding(&self) -> Option<Key> {
        match self.state {
            State::Active { key, .. } => Some(key),
            State::Idle { .. } => None,
        }
    }

    /// Which key, if any, the window at `buf[start..start + WINDOW]` holds.
    fn analyse(&mut self, start: usize) -> Option<Key> {
        let window = &self.buf[start..start + WINDOW];
        let energy: f64 = window.iter().map(|x| x * x).sum();
        // Quieter than one tone at the minimum level: nothing to find, and
        // the next window will have no phase to compare with.
        if energy / (WINDOW as f64) < self.floor {
            self.previous = None;
            return None;
        }
        let mut rect = [(0.0, 0.0); 8];
        let mut hann = [(0.0, 0.0); 8];
        for (i, bin) in self.bins.iter().enumerate() {
            rect[i] = bin.run(window.iter().copied());
            hann[i] = bin.run(window.iter().zip(&self.hann).map(|(x, w)| x * w));
        }
        let previous = self.previous.replace(hann)?;
        let row = strongest(&rect[..4], self.group_peak)?;
        let column = 4 + strongest(&rect[4..], self.group_peak)?;
        let low = self.measure(row, rect[row], hann[row], previous[row])?;
        let high = self.measure(column, rect[column], hann[column], previous[column])?;
        let twist = low.level - high.level;
        let purity = (low.rect.powi(2) + high.rect.powi(2)) / 2.0 / (energy / WINDOW as f64);
        let accepted = low.level >= MIN_LEVEL_DBM0
            && high.level >= MIN_LEVEL_DBM0
            && twist <= NORMAL_TWIST_DB
            && -twist <= REVERSE_TWIST_DB
            && purity >= MIN_PURITY
            && !octave(low.freq, high.freq);
        accepted.then(|| KEYPAD[row][column - 4])
    }

    /// The tone at bin `i`, if its frequency is within [`MAX_DEVIATION`]:
    /// its amplitude and level, corrected for the filters' roll-off.
    fn measure(
        &self,
        i: usize,
        rect: (f64, f64),
        hann: (f64, f64),
        previous: (f64, f64),
    ) -> Option<Measured> {
        let freq = self.bins[i].freq;
        // hann × conj(previous): the phase the tone advanced over one hop.
        let advance = (hann.1 * previous.0 - hann.0 * previous.1)
            .atan2(hann.0 * previous.0 + hann.1 * previous.1);
        let expected = 2.0 * PI * freq * HOP as f64 / f64::from(RATE);
        let offset = wrap(advance - expected) * f64::from(RATE) / (2.0 * PI * HOP as f64);
        if offset.abs() > MAX_DEVIATION * freq {
            return None;
        }
        // The offset in bins of the window.
        let x = offset * WINDOW as f64 / f64::from(RATE);
        let rect_amplitude = 2.0 * rect.0.hypot(rect.1) / (WINDOW as f64 * sinc(x));
        let hann_amplitude = 2.0 * hann.0.hypot(hann.1) / (self.hann_sum * hann_response(x));
        Some(Measured {
            freq: freq + offset,
            rect: rect_amplitude,
            level: 20.0 * (hann_amplitude / DBM0_PEAK).max(f64::MIN_POSITIVE).log10(),
        })
    }

    fn on_window(&mut self, hit: Option<Key>, start: u64) {
        let end = start + WINDOW as u64;
        match &mut self.state {
            State::Idle { run } => match (hit, *run) {
                (Some(key), Some(r)) if r.key == key => {
                    if r.hits + 1 >= START_HITS {
                        self.tones.push_back(Tone::Began {
                            key,
                            at: samples_to_duration(r.first),
                        });
                        self.state = State::Active {
                            key,
                            began: r.first,
                            last: end,
                            misses: 0,
                        };
                    } else {
                        *run = Some(Run {
                            hits: r.hits + 1,
                            ..r
                        });
                    }
                }
                (Some(key), _) => {
                    *run = Some(Run {
                        key,
                        hits: 1,
                        first: start,
                        missed: false,
                    });
                }
                // One window of noise inside a run does not break it: the
                // hits still count, so a short tone stays too short.
                (None, Some(r)) if !r.missed => *run = Some(Run { missed: true, ..r }),
                (None, _) => *run = None,
            },
            State::Active {
                key,
                began,
                last,
                misses,
            } => {
                if hit == Some(*key) {
                    *misses = 0;
                    *last = end;
                } else {
                    *misses += 1;
                    if *misses >= END_MISSES {
                        self.tones.push_back(Tone::Ended {
                            key: *key,
                            at: samples_to_duration(*last),
                            length: samples_to_duration(*last - *began),
                        });
                        self.state = State::Idle { run: None };
                    }
                }
            }
        }
    }
}

/// Index of the strongest of `bins`, if its power beats each other one's
/// `margin` times ([`GROUP_PEAK_DB`]).
fn strongest(bins: &[(f64, f64)], margin: f64) -> Option<usize> {
    let power = |b: &(f64, f64)| b.0 * b.0 + b.1 * b.1;
    let (best, peak) = bins
        .iter()
        .map(power)
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    let dominates = bins
        .iter()
        .enumerate()
        .all(|(i, b)| i == best || power(b) * margin <= peak);
    (dominates && peak > 0.0).then_some(best)
}

/// Whether `high` is the second harmonic of `low` (within [`OCTAVE_SLACK`]):
/// one musical note with its overtone, never a keypad pair. DTMF's
/// frequencies were chosen so that no high tone is a harmonic of a low one:
/// within ±1.5 % of nominal the ratio stays at least 1 % away from 2.
fn octave(low: f64, high: f64) -> bool {
    (high - 2.0 * low).abs() <= OCTAVE_SLACK * high
}

/// `phase` brought into (−π, π].
fn wrap(phase: f64) -> f64 {
    let wrapped = (phase + PI).rem_euclid(2.0 * PI) - PI;
    if wrapped <= -PI {
        wrapped + 2.0 * PI
    } else {
        wrapped
    }
}

/// The rectangular window's gain `x` bins off its centre (small `x`).
fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-9 {
        1.0
    } else {
        (PI * x).sin() / (PI * x)
    }
}

/// The Hann window's gain `x` bins off its centre (|x| < 1).
fn hann_response(x: f64) -> f64 {
    sinc(x) / (1.0 - x * x)
}

fn db_to_amplitude(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

fn samples_to_duration(samples: u64) -> Duration {
    Duration::from_micros(samples * 1_000_000 / u64::from(RATE))
}

/// The frequencies of `key`: (low group, high group), Hz.
pub fn frequencies(key: Key) -> (f64, f64) {
    for (r, row) in KEYPAD.iter().enumerate() {
        for (c, k) in row.iter().enumerate() {
            if *k == key {
                return (ROWS[r], COLUMNS[c]);
            }
        }
    }
    // Every key is on the keypad; this line is never reached.
    (ROWS[0], COLUMNS[0])
}

/// 8 kHz PCM of `key`'s tone pair for `samples` samples, each tone at
/// `level_dbm0`, starting at sample `from` of a continuous signal (so
/// consecutive calls join without a click). For fixtures and tests.
pub fn key_tone(key: Key, level_dbm0: f64, from: u64, samples: usize) -> Vec<i16> {
    let (low, high) = frequencies(key);
    let amplitude = DBM0_PEAK * db_to_amplitude(level_dbm0);
    (from..from + samples as u64)
        .map(|n| {
            let t = n as f64 / f64::from(RATE);
            let s = amplitude * ((2.0 * PI * low * t).sin() + (2.0 * PI * high * t).sin());
            s.round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests;
