//! Talk-off: the in-band DTMF detector must not hear keys in speech or music.
//!
//! - Speech: `tests/data/talkoff.txt` (a conference call, with plenty of
//!   numbers) spoken by espeak-ng in five voices, speeds and pitches — more
//!   than ten minutes — passed through G.711 μ-law as a phone line would.
//! - The gateway's own prompts and hold music (what echo brings back).
//! - Music-like: five minutes of synthetic chords, melodies and a bass line
//!   on the equal-tempered scale (whose notes sit close to DTMF frequencies:
//!   F5 is 698.5 Hz, F♯6 1480 Hz), with harmonic-rich timbres, vibrato,
//!   percussive noise.
//!
//! Each writes its table straight to stderr, so the figures show even when
//! the test passes. espeak-ng comes from Debian; `./dev test` installs it.

use std::f64::consts::PI;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use dialgate::media::g711::{self, Law};
use support::signal::{Rng, keys_heard};

mod support;

const RATE: u32 = 8000;

/// As a G.711 μ-law line delivers it.
fn through_ulaw(pcm: &[i16]) -> Vec<i16> {
    let (mut coded, mut decoded) = (Vec::new(), Vec::new());
    g711::encode(Law::Mu, pcm, &mut coded);
    g711::decode(Law::Mu, &coded, &mut decoded);
    decoded
}

struct Table {
    title: &'static str,
    rows: Vec<(String, f64, String)>,
}

impl Table {
    fn add(&mut self, what: impl Into<String>, pcm: &[i16]) {
        let keys = keys_heard(pcm);
        self.rows
            .push((what.into(), pcm.len() as f64 / f64::from(RATE), keys));
    }

    fn seconds(&self) -> f64 {
        self.rows.iter().map(|r| r.1).sum()
    }

    fn false_keys(&self) -> usize {
        self.rows.iter().map(|r| r.2.chars().count()).sum()
    }

    /// Writes the table to stderr (not captured by the test harness).
    fn report(&self) -> String {
        let mut out = format!(
            "\n{}\n{:<58} {:>9}  keys heard\n",
            self.title, "signal", "seconds"
        );
        for (what, seconds, keys) in &self.rows {
            let keys = if keys.is_empty() { "none" } else { keys };
            out += &format!("{what:<58} {seconds:>9.1}  {keys}\n");
        }
        out += &format!(
            "{:<58} {:>9.1}  {} false keys\n",
            "total",
            self.seconds(),
            self.false_keys()
        );
        let _ = std::io::stderr().write_all(out.as_bytes());
        out
    }
}

fn espeak(dir: &Path, voice: &str, speed: u32, pitch: u32) -> PathBuf {
    let out = dir.join(format!("{}-{speed}-{pitch}.wav", voice.replace('+', "_")));
    let text = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/talkoff.txt");
    let status = Command::new("espeak-ng")
        .args([
            "-v",
            voice,
            "-s",
            &speed.to_string(),
            "-p",
            &pitch.to_string(),
        ])
        .arg("-w")
        .arg(&out)
        .arg("-f")
        .arg(&text)
        .status()
        .unwrap_or_else(|e| panic!("espeak-ng cannot run ({e}): ./dev test installs it"));
    assert!(status.success(), "espeak-ng {voice} failed: {status}");
    out
}

#[test]
fn ten_minutes_of_speech_give_no_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let voices = [
        ("en-us+m3", 160, 50),
        ("en-gb+f2", 175, 60),
        ("en+m7", 140, 35),
        ("en-us+f4", 190, 75),
        ("en+croak", 150, 45),
    ];
    let mut table = Table {
        title: "Talk-off: speech (espeak-ng, through G.711 μ-law)",
        rows: Vec::new(),
    };
    for (voice, speed, pitch) in voices {
        let wav = espeak(dir.path(), voice, speed, pitch);
        let pcm = dialgate::media::prompts::decode_file(&wav, RATE).expect("espeak-ng's WAV");
        table.add(
            format!("espeak-ng {voice}, {speed} words/min, pitch {pitch}"),
            &through_ulaw(&pcm),
        );
    }
    let report = table.report();
    assert!(
        table.seconds() >= 600.0,
        "at least ten minutes of speech: {report}"
    );
    assert_eq!(table.false_keys(), 0, "{report}");
}

#[test]
fn the_gateways_own_prompts_and_hold_music_give_no_key() {
    let prompts = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(prompts.join("en"))
        .expect("prompts/en")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    files.sort();
    let mut all = Vec::new();
    for file in &files {
        all.extend(dialgate::media::prompts::decode_file(file, RATE).expect("a prompt"));
    }
    let mut table = Table {
        title: "Talk-off: the gateway's prompts and hold music",
        rows: Vec::new(),
    };
    table.add(
        format!("prompts/en, {} prompts back to back", files.len()),
        &through_ulaw(&all),
    );
    let music = dialgate::media::prompts::decode_file(&prompts.join("hold_music.flac"), RATE)
        .expect("hold music");
    table.add("prompts/hold_music.flac", &through_ulaw(&music));
    let report = table.report();
    assert_eq!(table.false_keys(), 0, "{report}");
}

/// A timbre: the relative amplitude of each harmonic, and how fast a note
/// decays (per second; 0 for sustained).
struct Timbre {
    name: &'static str,
    harmonics: &'static [f64],
    decay: f64,
}

const TIMBRES: [Timbre; 4] = [
    Timbre {
        name: "piano-like",
        harmonics: &[1.0, 0.6, 0.4, 0.25, 0.2, 0.12, 0.08, 0.05],
        decay: 3.0,
    },
    Timbre {
        name: "strings-like",
        harmonics: &[1.0, 0.5, 0.33, 0.25, 0.2, 0.17, 0.14, 0.12],
        decay: 0.0,
    },
    Timbre {
        name: "clarinet-like",
        harmonics: &[1.0, 0.05, 0.5, 0.04, 0.3, 0.03, 0.2],
        decay: 0.0,
    },
    Timbre {
        name: "organ-like",
        harmonics: &[1.0, 0.7, 0.5, 0.5, 0.3, 0.2],
        decay: 0.0,
    },
];

fn note_hz(midi: u64) -> f64 {
    440.0 * 2f64.powf((midi as f64 - 69.0) / 12.0)
}

/// Adds one note to `out` from sample `at` for `len` samples.
fn play(
    out: &mut [f64],
    at: usize,
    len: usize,
    hz: f64,
    level: f64,
    timbre: &Timbre,
    vibrato: f64,
) {
    let attack = 80.0; // samples: a 10 ms onset, no click
    for n in 0..len {
        let Some(s) = out.get_mut(at + n) else { break };
        let t = n as f64 / f64::from(RATE);
        let envelope = (n as f64 / attack).min(1.0)
            * (-timbre.decay * t).exp()
            * ((len - n) as f64 / attack).min(1.0);
        let wobble = 1.0 + vibrato * (2.0 * PI * 5.5 * t).sin();
        let mut v = 0.0;
        for (k, a) in timbre.harmonics.iter().enumerate() {
            let f = hz * (k + 1) as f64 * wobble;
            if f < 3800.0 {
                v += a * (2.0 * PI * f * t).sin();
            }
        }
        *s += level * envelope * v;
    }
}

/// Seconds of music-like signal in one timbre: chords every beat, a melody
/// over them, a bass line and a noise "drum".
fn music(timbre: &Timbre, seconds: usize, seed: u64) -> Vec<i16> {
    let mut dice = Rng(seed | 1);
    let mut out = vec![0.0f64; seconds * RATE as usize];
    let beat = 4000; // samples: 120 beats a minute
    // Major and minor triads and sevenths, as semitones above a root.
    let chords: [&[u64]; 4] = [&[0, 4, 7], &[0, 3, 7], &[0, 4, 7, 10], &[0, 3, 7, 10]];
    let mut at = 0;
    while at < out.len() {
        let root = 55 + dice.below(12); // G3 .. F#4
        let chord = chords[dice.below(4) as usize];
        for step in chord {
            play(
                &mut out,
                at,
                beat * 2,
                note_hz(root + step + 12),
                1500.0,
                timbre,
                0.0,
            );
        }
        play(
            &mut out,
            at,
            beat * 2,
            note_hz(root - 12),
            2500.0,
            timbre,
            0.0,
        );
        // A melody in the octaves where DTMF lives (C5 .. C7).
        let mut m = at;
        while m < at + beat * 2 {
            let len = [1000, 2000, 4000][dice.below(3) as usize];
            let midi = 72 + dice.below(25);
            let vibrato = if dice.below(2) == 0 { 0.004 } else { 0.0 };
            play(&mut out, m, len, note_hz(midi), 3000.0, timbre, vibrato);
            m += len;
        }
        // A short burst of noise on every other beat: hi-hat.
        for n in (at..at + beat * 2).step_by(beat) {
            for k in 0..400 {
                if let Some(s) = out.get_mut(n + k) {
                    *s += 1200.0 * (dice.unit() - 0.5) * (-(k as f64) / 80.0).exp();
                }
            }
        }
        at += beat * 2;
    }
    out.iter()
        .map(|s| s.round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

#[test]
fn five_minutes_of_music_like_signal_give_no_key() {
    let mut table = Table {
        title: "Talk-off: music-like signal (chords, melody, bass, noise)",
        rows: Vec::new(),
    };
    for (i, timbre) in TIMBRES.iter().enumerate() {
        let pcm = music(timbre, 75, 0xC0FF_EE00 + i as u64);
        table.add(format!("{} timbre, 75 s", timbre.name), &through_ulaw(&pcm));
    }
    let report = table.report();
    assert!(table.seconds() >= 300.0, "{report}");
    assert_eq!(table.false_keys(), 0, "{report}");
}
