//! The in-band DTMF detector against test vectors at every ITU-T Q.24
//! tolerance edge (frequency, twist, level, tone and pause length, noise,
//! call-progress tones). Talk-off (speech, music) is `tests/dtmf_talkoff.rs`.
//!
//! The vectors are generated here, not by the detector's own helpers, and
//! each test writes its table of results straight to stderr so that it
//! shows in the output of `cargo test` even when it passes.

use std::f64::consts::PI;
use std::io::Write;

use support::signal::{Rng, keys_heard};

mod support;

const RATE: f64 = 8000.0;
/// Peak of a 0 dBm0 sine in 16-bit PCM (full scale is +3.14 dBm0).
const DBM0_PEAK: f64 = 22_826.0;
const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const COLUMNS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: &str = "123A456B789C*0#D";

/// A signal under construction, in floating point until it is quantised.
#[derive(Default)]
struct Signal(Vec<f64>);

impl Signal {
    fn silence(mut self, ms: f64) -> Signal {
        let n = (ms * RATE / 1000.0).round() as usize;
        self.0.extend(std::iter::repeat_n(0.0, n));
        self
    }

    fn samples(mut self, n: usize) -> Signal {
        self.0.extend(std::iter::repeat_n(0.0, n));
        self
    }

    /// Tones (frequency Hz, level dBm0) summed, for `ms`.
    fn tones(mut self, tones: &[(f64, f64)], ms: f64) -> Signal {
        let n = (ms * RATE / 1000.0).round() as usize;
        let from = self.0.len();
        self.0.extend((from..from + n).map(|i| {
            let t = i as f64 / RATE;
            tones
                .iter()
                .map(|(f, dbm0)| amplitude(*dbm0) * (2.0 * PI * f * t).sin())
                .sum::<f64>()
        }));
        self
    }

    /// White Gaussian noise of `rms` over the whole signal.
    fn noise(mut self, rms: f64, seed: u64) -> Signal {
        let mut noise = Rng(seed | 1);
        for s in &mut self.0 {
            *s += rms * noise.gaussian();
        }
        self
    }

    fn pcm(&self) -> Vec<i16> {
        self.0
            .iter()
            .map(|s| s.round().clamp(-32768.0, 32767.0) as i16)
            .collect()
    }
}

fn amplitude(dbm0: f64) -> f64 {
    DBM0_PEAK * 10f64.powf(dbm0 / 20.0)
}

fn key_freqs(key: char) -> (f64, f64) {
    let i = KEYPAD.find(key).expect("a keypad key");
    (ROWS[i / 4], COLUMNS[i % 4])
}

/// One row of the results table: how many of its cases came out right.
struct Row {
    group: &'static str,
    case: String,
    expect: &'static str,
    right: usize,
    total: usize,
}

#[derive(Default)]
struct Table {
    rows: Vec<Row>,
    failures: Vec<String>,
}

impl Table {
    /// Runs `cases` (name, signal, keys that must be heard) as one row.
    fn row(
        &mut self,
        group: &'static str,
        case: impl Into<String>,
        cases: impl IntoIterator<Item = (String, Vec<i16>, String)>,
    ) {
        let case = case.into();
        let (mut right, mut total, mut expect_any) = (0, 0, false);
        for (name, pcm, expected) in cases {
            total += 1;
            expect_any |= !expected.is_empty();
            let got = keys_heard(&pcm);
            if got == expected {
                right += 1;
            } else {
                self.failures.push(format!(
                    "{group} / {case} / {name}: expected {expected:?}, heard {got:?}"
                ));
            }
        }
        self.rows.push(Row {
            group,
            case,
            expect: if expect_any { "detect" } else { "reject" },
            right,
            total,
        });
    }

    /// Writes the table to stderr (not captured by the test harness) and
    /// fails the test if any case came out wrong.
    fn report(self, title: &str) {
        let mut out = format!("\n{title}\n");
        out += &format!(
            "{:<12} {:<52} {:<7} {:>9}  {}\n",
            "group", "case", "must", "right", "result"
        );
        for r in &self.rows {
            let verdict = if r.right == r.total { "ok" } else { "FAIL" };
            out += &format!(
                "{:<12} {:<52} {:<7} {:>9}  {}\n",
                r.group,
                r.case,
                r.expect,
                format!("{}/{}", r.right, r.total),
                verdict
            );
        }
        let cases: usize = self.rows.iter().map(|r| r.total).sum();
        out += &format!("{} cases, {} wrong\n", cases, self.failures.len());
        for f in &self.failures {
            out += &format!("  wrong: {f}\n");
        }
        let _ = std::io::stderr().write_all(out.as_bytes());
        assert!(self.failures.is_empty(), "{out}");
    }
}

/// A single press of `key` with each tone's frequency scaled and level set,
/// framed by silence.
fn press(key: char, row: (f64, f64), column: (f64, f64), ms: f64) -> Vec<i16> {
    let (low, high) = key_freqs(key);
    Signal::default()
        .silence(100.0)
        .tones(&[(low * row.0, row.1), (high * column.0, column.1)], ms)
        .silence(200.0)
        .pcm()
}

fn all_keys(
    mut f: impl FnMut(char) -> (Vec<i16>, bool),
) -> impl Iterator<Item = (String, Vec<i16>, String)> {
    KEYPAD.chars().map(move |k| {
        let (pcm, detect) = f(k);
        let expected = if detect { k.to_string() } else { String::new() };
        (format!("key {k}"), pcm, expected)
    })
}

#[test]
fn q24_tone_vectors_are_detected_or_rejected_as_the_standard_says() {
    let mut t = Table::default();
    let level = -10.0;

    t.row(
        "nominal",
        "each key, -10 dBm0 per tone, 60 ms",
        all_keys(|k| (press(k, (1.0, level), (1.0, level), 60.0), true)),
    );

    for (row_dev, col_dev, detect) in [
        (0.015, 0.015, true),
        (0.015, -0.015, true),
        (-0.015, 0.015, true),
        (-0.015, -0.015, true),
        (0.035, 0.0, false),
        (-0.035, 0.0, false),
        (0.0, 0.035, false),
        (0.0, -0.035, false),
        (0.035, 0.035, false),
        (-0.035, -0.035, false),
    ] {
        let case = format!(
            "low {:+.1} %, high {:+.1} %",
            row_dev * 100.0,
            col_dev * 100.0
        );
        t.row(
            "frequency",
            case,
            all_keys(|k| {
                let pcm = press(k, (1.0 + row_dev, level), (1.0 + col_dev, level), 60.0);
                (pcm, detect)
            }),
        );
    }

    // Twist as spandsp and Asterisk measure it: "normal" is the low group
    // louder, "reverse" the high group louder.
    for (low, high, detect, case) in [
        (-10.0, -18.0, true, "normal 8 dB (low group louder)"),
        (-14.0, -10.0, true, "reverse 4 dB (high group louder)"),
        (-10.0, -22.0, false, "normal 12 dB"),
        (-18.0, -10.0, false, "reverse 8 dB"),
    ] {
        t.row(
            "twist",
            case,
            all_keys(|k| (press(k, (1.0, low), (1.0, high), 60.0), detect)),
        );
    }

    for (dbm0, detect) in [
        (-3.0, true),
        (-10.0, true),
        (-20.0, true),
        (-26.0, true),
        (-40.0, false),
        (-50.0, false),
    ] {
        let case = format!("each tone {dbm0} dBm0 (pair {:+.0} dBm0)", dbm0 + 3.0);
        t.row(
            "level",
            case,
            all_keys(|k| (press(k, (1.0, dbm0), (1.0, dbm0), 60.0), detect)),
        );
    }

    // Lengths at every alignment to the detector's 51-sample hop.
    for (ms, detect) in [
        (40.0, true),
        (45.0, true),
        (50.0, true),
        (20.0, false),
        (15.0, false),
        (10.0, false),
    ] {
        let cases = (0..51).step_by(5).flat_map(|offset| {
            ["1", "5", "9", "0", "#", "D"].into_iter().map(move |k| {
                let key = k.chars().next().unwrap_or('1');
                let (low, high) = key_freqs(key);
                let pcm = Signal::default()
                    .silence(100.0)
                    .samples(offset)
                    .tones(&[(low, level), (high, level)], ms)
                    .silence(200.0)
                    .pcm();
                let expected = if detect { k.to_owned() } else { String::new() };
                (format!("key {k} offset {offset}"), pcm, expected)
            })
        });
        t.row(
            "length",
            format!("tone {ms} ms, 11 alignments x 6 keys"),
            cases,
        );
    }

    // Two presses of one key: a 40 ms pause separates them; a 10 ms break
    // inside a press does not.
    for (tone, gap, expected, case) in [
        (40.0, 40.0, "55", "40 ms, pause 40 ms, 40 ms: two presses"),
        (60.0, 60.0, "55", "60 ms, pause 60 ms, 60 ms: two presses"),
        (60.0, 10.0, "5", "60 ms, break 10 ms, 60 ms: one press"),
    ] {
        let cases = (0..51).step_by(5).flat_map(|offset| {
            ["5", "1", "#"].into_iter().map(move |k| {
                let key = k.chars().next().unwrap_or('5');
                let (low, high) = key_freqs(key);
                let pcm = Signal::default()
                    .silence(100.0)
                    .samples(offset)
                    .tones(&[(low, level), (high, level)], tone)
                    .silence(gap)
                    .tones(&[(low, level), (high, level)], tone)
                    .silence(200.0)
                    .pcm();
                let expected = expected.replace('5', k);
                (format!("key {k} offset {offset}"), pcm, expected)
            })
        });
        t.row("pause", case, cases);
    }

    // White noise 15 dB below the pair's power, over the whole signal.
    for (dbm0, seeds) in [(-10.0, 0..4u64), (-20.0, 4..8), (-26.0, 8..12)] {
        let cases = seeds.flat_map(|seed| {
            KEYPAD.chars().map(move |k| {
                let (low, high) = key_freqs(k);
                let pair_power = amplitude(dbm0).powi(2);
                let rms = (pair_power / 10f64.powf(1.5)).sqrt();
                let pcm = Signal::default()
                    .silence(300.0)
                    .tones(&[(low, dbm0), (high, dbm0)], 60.0)
                    .silence(300.0)
                    .noise(rms, seed * 7919 + k as u64)
                    .pcm();
                (format!("key {k} seed {seed}"), pcm, k.to_string())
            })
        });
        t.row(
            "noise",
            format!("SNR 15 dB, each tone {dbm0} dBm0, 4 seeds"),
            cases,
        );
    }

    // Everything at once: off frequency, twisted, quiet, noisy, short.
    let cases = KEYPAD.chars().flat_map(|k| {
        [
            (0.015, -10.0, -18.0, 1),
            (-0.015, -20.0, -16.0, 2),
            (0.015, -18.0, -14.0, 3),
            (-0.015, -12.0, -20.0, 4),
            (0.015, -10.0, -18.0, 5),
            (-0.015, -20.0, -16.0, 6),
        ]
        .into_iter()
        .map(move |(dev, low_db, high_db, seed)| {
            let (low, high) = key_freqs(k);
            let pair_power = (amplitude(low_db).powi(2) + amplitude(high_db).powi(2)) / 2.0;
            let rms = (pair_power / 10f64.powf(1.5)).sqrt();
            let pcm = Signal::default()
                .silence(300.0)
                .tones(
                    &[(low * (1.0 + dev), low_db), (high * (1.0 - dev), high_db)],
                    45.0,
                )
                .silence(300.0)
                .noise(rms, seed * 104_729 + k as u64)
                .pcm();
            (format!("key {k} dev {dev} seed {seed}"), pcm, k.to_string())
        })
    });
    t.row(
        "combined",
        "±1.5 %, 8 or 4 dB twist, SNR 15 dB, 45 ms, 6 variants",
        cases,
    );

    // Call-progress tones: two seconds each, loud.
    for (case, tones) in [
        (
            "dial tone 350+440 Hz (North America)",
            vec![(350.0, -10.0), (440.0, -10.0)],
        ),
        ("dial tone 425 Hz (Europe)", vec![(425.0, -10.0)]),
        (
            "dial tone 400+450 Hz (UK)",
            vec![(400.0, -10.0), (450.0, -10.0)],
        ),
        ("ringback 440+480 Hz", vec![(440.0, -10.0), (480.0, -10.0)]),
        ("busy 480+620 Hz", vec![(480.0, -10.0), (620.0, -10.0)]),
        ("single tone at 697 Hz", vec![(697.0, -10.0)]),
        ("single tone at 1633 Hz", vec![(1633.0, -10.0)]),
    ] {
        let pcm = Signal::default().tones(&tones, 2000.0).pcm();
        t.row("not a key", case, [("2 s".to_owned(), pcm, String::new())]);
    }

    t.report("In-band DTMF detector: ITU-T Q.24 test vectors");
}

#[test]
fn the_detector_reports_keys_it_hears_once_whatever_their_order() {
    // Sixteen keys in a row at the fastest the standard allows.
    let mut s = Signal::default().silence(100.0);
    for k in KEYPAD.chars() {
        let (low, high) = key_freqs(k);
        s = s.tones(&[(low, -12.0), (high, -12.0)], 40.0).silence(40.0);
    }
    assert_eq!(keys_heard(&s.silence(200.0).pcm()), KEYPAD);
}
