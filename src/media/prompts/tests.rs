//! Tests for `prompts`.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("dialgate-prompts-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A 16-bit PCM WAV file holding `interleaved` samples.
fn wav_bytes(rate: u32, channels: u16, interleaved: &[i16]) -> Vec<u8> {
    let data_len = (interleaved.len() * 2) as u32;
    let block_align = channels * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for sample in interleaved {
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

fn sine(rate: u32, freq: f32, seconds: f32, amplitude: f32) -> Vec<i16> {
    let frames = (rate as f32 * seconds).round() as usize;
    (0..frames)
        .map(|n| {
            let phase = 2.0 * std::f32::consts::PI * freq * n as f32 / rate as f32;
            (amplitude * phase.sin() * 32767.0).round() as i16
        })
        .collect()
}

fn interleave(left: &[i16], right: &[i16]) -> Vec<i16> {
    left.iter().zip(right).flat_map(|(l, r)| [*l, *r]).collect()
}

fn write_wav(dir: &Path, name: &str, rate: u32, channels: u16, pcm: &[i16]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, wav_bytes(rate, channels, pcm)).unwrap();
    path
}

/// The rate `decode_file` is tested at (any works; the gateway uses
/// [`SAMPLE_RATE_HZ`]).
const RATE: u32 = 8_000;

/// Goertzel power of `freq` in `samples` at `rate`.
fn tone_power(samples: &[i16], rate: u32, freq: f32) -> f64 {
    let w = 2.0 * std::f64::consts::PI * f64::from(freq) / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

fn rms(samples: &[i16]) -> f64 {
    let sum: f64 = samples.iter().map(|&x| f64::from(x).powi(2)).sum();
    (sum / samples.len().max(1) as f64).sqrt()
}

fn assert_length_near(samples: &[i16], expected: usize) {
    let tolerance = expected / 100;
    assert!(
        samples.len().abs_diff(expected) <= tolerance,
        "got {} samples, expected {expected} ± {tolerance}",
        samples.len()
    );
}

/// The 1 kHz tone dominates 2.5 kHz by at least 40 dB, at about the
/// amplitude it was written with.
fn assert_1khz_tone(samples: &[i16], amplitude: f32) {
    let middle = &samples[samples.len() / 8..samples.len() * 7 / 8];
    let tone = tone_power(middle, RATE, 1000.0);
    let other = tone_power(middle, RATE, 2500.0);
    assert!(
        tone > 10_000.0 * other,
        "1 kHz power {tone:e} vs 2.5 kHz {other:e}"
    );
    let expected_rms = f64::from(amplitude) * 32767.0 / 2f64.sqrt();
    let got = rms(middle);
    assert!(
        (got - expected_rms).abs() < 0.1 * expected_rms,
        "rms {got}, expected about {expected_rms}"
    );
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/prompt-formats")
        .join(name)
}

#[test]
fn mono_16khz_tone_becomes_4000_samples_of_1khz() {
    let dir = TempDir::new();
    let path = write_wav(
        dir.path(),
        "tone.wav",
        16_000,
        1,
        &sine(16_000, 1000.0, 0.5, 0.5),
    );
    let out = decode_file(&path, RATE).unwrap();
    assert_length_near(&out, 4000);
    assert_1khz_tone(&out, 0.5);
}

#[test]
fn stereo_44k1_tone_becomes_4000_mono_samples_of_1khz() {
    let dir = TempDir::new();
    let tone = sine(44_100, 1000.0, 0.5, 0.5);
    let pcm = interleave(&tone, &tone);
    let path = write_wav(dir.path(), "tone.wav", 44_100, 2, &pcm);
    let out = decode_file(&path, RATE).unwrap();
    assert_length_near(&out, 4000);
    assert_1khz_tone(&out, 0.5);
}

#[test]
fn stereo_channels_are_averaged_not_picked() {
    let dir = TempDir::new();
    let left = sine(16_000, 1000.0, 0.5, 0.5);
    let right: Vec<i16> = left.iter().map(|x| -x).collect();
    let path = write_wav(
        dir.path(),
        "cancel.wav",
        16_000,
        2,
        &interleave(&left, &right),
    );
    let out = decode_file(&path, RATE).unwrap();
    assert_length_near(&out, 4000);
    assert!(
        rms(&out) < 2.0,
        "opposite channels should cancel, rms {}",
        rms(&out)
    );
}

#[test]
fn every_common_rate_keeps_duration_and_tone() {
    let dir = TempDir::new();
    for rate in [8_000, 11_025, 16_000, 22_050, 32_000, 44_100, 48_000] {
        let name = format!("tone-{rate}.wav");
        let path = write_wav(dir.path(), &name, rate, 1, &sine(rate, 1000.0, 0.5, 0.5));
        let out = decode_file(&path, RATE).unwrap();
        assert_length_near(&out, 4000);
        assert_1khz_tone(&out, 0.5);
    }
}

#[test]
fn tail_of_a_short_clip_is_not_lost() {
    let dir = TempDir::new();
    // 0.1 s: shorter than one resampler chunk at 44.1 kHz.
    let path = write_wav(
        dir.path(),
        "short.wav",
        44_100,
        1,
        &sine(44_100, 1000.0, 0.1, 0.5),
    );
    let out = decode_file(&path, RATE).unwrap();
    assert_length_near(&out, 800);
    let last_ms = &out[out.len() - 80..out.len() - 8];
    assert!(rms(last_ms) > 5000.0, "tail is quiet: rms {}", rms(last_ms));
}

#[test]
fn truncated_wav_keeps_the_audio_it_has() {
    let dir = TempDir::new();
    let mut bytes = wav_bytes(16_000, 1, &sine(16_000, 1000.0, 0.5, 0.5));
    bytes.truncate(44 + 4000 * 2); // header promises 0.5 s, holds 0.25 s
    let path = dir.path().join("cut.wav");
    std::fs::write(&path, bytes).unwrap();
    let out = decode_file(&path, RATE).unwrap();
    assert_length_near(&out, 2000);
}

#[test]
fn missing_file_error_names_the_path() {
    let dir = TempDir::new();
    let path = dir.path().join("nowhere.wav");
    let err = decode_file(&path, RATE).unwrap_err();
    assert!(matches!(&err, PromptError::Missing { path: p } if *p == path));
    assert!(err.to_string().contains(&*path.to_string_lossy()));
}

#[test]
fn garbage_file_is_an_error_naming_the_file() {
    let dir = TempDir::new();
    let path = dir.path().join("garbage.wav");
    let garbage: Vec<u8> = (0u32..4096)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, garbage).unwrap();
    let err = decode_file(&path, RATE).unwrap_err();
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
}

#[test]
fn empty_file_and_header_only_file_are_errors() {
    let dir = TempDir::new();
    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    assert!(decode_file(&empty, RATE).is_err());
    let header_only = write_wav(dir.path(), "header.wav", 16_000, 1, &[]);
    let err = decode_file(&header_only, RATE).unwrap_err();
    assert!(err.to_string().contains("header.wav"), "{err}");
}

#[test]
fn flac_16khz_fixture_decodes_to_1khz_tone() {
    let out = decode_file(&fixture("tone.flac"), RATE).unwrap();
    assert_length_near(&out, 2400);
    assert_1khz_tone(&out, 0.5);
}

#[test]
fn ogg_vorbis_44k1_stereo_fixture_decodes_to_1khz_tone() {
    let out = decode_file(&fixture("tone.ogg"), RATE).unwrap();
    assert_length_near(&out, 2400);
    assert_1khz_tone(&out, 0.5);
}

#[test]
fn mp3_22k05_fixture_decodes_to_1khz_tone() {
    let out = decode_file(&fixture("tone.mp3"), RATE).unwrap();
    assert_length_near(&out, 2400);
    assert_1khz_tone(&out, 0.5);
}

fn write_prompt_folder(dir: &Path, skip: Option<PromptId>) -> PathBuf {
    let folder = dir.join("en");
    std::fs::create_dir_all(&folder).unwrap();
    for (n, id) in PromptId::ALL.into_iter().enumerate() {
        if Some(id) == skip {
            continue;
        }
        // Prompt n lasts (n + 1) / 10 s, so mix-ups show.
        let pcm = sine(16_000, 1000.0, (n + 1) as f32 / 10.0, 0.5);
        write_wav(&folder, &format!("{}.wav", id.file_stem()), 16_000, 1, &pcm);
    }
    for word in NUMBER_WORDS {
        let pcm = sine(16_000, 1000.0, 0.05, 0.5);
        write_wav(&folder, &format!("number_{word}.wav"), 16_000, 1, &pcm);
    }
    folder
}

#[test]
fn numbers_are_said_the_english_way() {
    let say = |n| {
        number_words(n)
            .into_iter()
            .map(|i| NUMBER_WORDS[i])
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(say(0), "zero");
    assert_eq!(say(7), "seven");
    assert_eq!(say(13), "thirteen");
    assert_eq!(say(20), "twenty");
    assert_eq!(say(42), "forty two");
    assert_eq!(say(100), "one hundred");
    assert_eq!(say(315), "three hundred fifteen");
    assert_eq!(say(2041), "two thousand forty one");
    assert_eq!(say(10_000), "ten thousand");
}

#[test]
fn a_count_is_said_from_the_shared_pieces_not_a_copy() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    let set = PromptSet::load(&dir, "en").unwrap();
    let said = set.count_sentence(21);
    let clips = said.clips();
    assert_eq!(clips.len(), 4, "there are + twenty + one + participants");
    let again = set.count_sentence(21);
    for (a, b) in clips.iter().zip(again.clips()) {
        assert!(
            std::ptr::eq(a.wide(), b.wide()),
            "the same pieces, shared, not built again"
        );
    }
    assert!(std::ptr::eq(
        clips[0].wide(),
        set.shared(PromptId::ThereAre).clips()[0].wide()
    ));
    assert_eq!(
        clips[0].wide().len() & !1,
        set.get(PromptId::ThereAre).len() & !1
    );
    let last = clips.len() - 1;
    assert_eq!(
        clips[last].wide().len() & !1,
        set.get(PromptId::ParticipantsInConference).len() & !1
    );
    let words: usize = clips[1..last].iter().map(|c| c.wide().len()).sum();
    let seconds = words as f32 / SAMPLE_RATE_HZ as f32;
    assert!(
        (0.4..2.0).contains(&seconds),
        "twenty one lasts {seconds} s"
    );
    assert_eq!(
        said.len(),
        clips.iter().map(|c| c.wide().len()).sum::<usize>()
    );
    assert_eq!(
        clips.iter().map(|c| c.narrow().len()).sum::<usize>(),
        said.len() / 2,
        "the 8 kHz copy is half as long"
    );
}

#[test]
fn load_decodes_every_prompt_at_the_gateway_rate() {
    let dir = TempDir::new();
    write_prompt_folder(dir.path(), None);
    let set = PromptSet::load(dir.path(), "en").unwrap();
    let tenth = SAMPLE_RATE_HZ as usize / 10;
    for (n, id) in PromptId::ALL.into_iter().enumerate() {
        assert_length_near(set.get(id), (n + 1) * tenth);
    }
}

#[test]
fn load_falls_back_to_other_extensions_and_prefers_wav() {
    let dir = TempDir::new();
    let folder = write_prompt_folder(dir.path(), Some(PromptId::Goodbye));
    std::fs::copy(fixture("tone.flac"), folder.join("goodbye.flac")).unwrap();
    std::fs::write(folder.join("welcome.mp3"), b"not read: welcome.wav wins").unwrap();
    let set = PromptSet::load(dir.path(), "en").unwrap();
    let tenth = SAMPLE_RATE_HZ as usize / 10;
    assert_length_near(set.get(PromptId::Goodbye), 3 * tenth);
    assert_length_near(set.get(PromptId::Welcome), tenth);
}

#[test]
fn without_a_moving_file_the_moving_prompt_is_the_synthesised_tone() {
    let dir = TempDir::new();
    write_prompt_folder(dir.path(), Some(PromptId::Moving));
    let set = PromptSet::load(dir.path(), "en").unwrap();
    assert_eq!(set.get(PromptId::Moving), moving_tone().as_slice());
    // With a file, the file.
    write_prompt_folder(dir.path(), None);
    let set = PromptSet::load(dir.path(), "en").unwrap();
    let n = PromptId::ALL.len();
    assert_length_near(set.get(PromptId::Moving), n * SAMPLE_RATE_HZ as usize / 10);
}

#[test]
fn the_moving_tone_is_two_pips_a_second() {
    let tone = moving_tone();
    assert_eq!(tone.len(), SAMPLE_RATE_HZ as usize);
    let power = |from: usize, freq: f64| {
        let tenth = SAMPLE_RATE_HZ as usize / 10;
        let part = &tone[from * tenth..(from + 1) * tenth];
        crate::media::goertzel::power(part, freq, f64::from(SAMPLE_RATE_HZ))
    };
    // Tenths of a second: pip, gap, pip, then silence.
    for tenth in [0, 2] {
        assert!(power(tenth, MOVING_TONE_HZ) > 1e6, "pip in tenth {tenth}");
        assert!(power(tenth, 440.0) < power(tenth, MOVING_TONE_HZ) / 100.0);
        assert!(power(tenth, 660.0) < power(tenth, MOVING_TONE_HZ) / 100.0);
    }
    for tenth in [1, 3, 9] {
        assert_eq!(
            power(tenth, MOVING_TONE_HZ),
            0.0,
            "silence in tenth {tenth}"
        );
    }
}

#[test]
fn load_names_the_missing_prompt() {
    let dir = TempDir::new();
    let folder = write_prompt_folder(dir.path(), Some(PromptId::Joining));
    let err = PromptSet::load(dir.path(), "en").unwrap_err();
    let expected = folder.join("joining.wav");
    assert!(
        matches!(&err, PromptError::Missing { path } if *path == expected),
        "{err}"
    );
    assert!(err.to_string().contains("en/joining.wav"), "{err}");
}

#[test]
fn load_of_unknown_language_names_the_first_prompt() {
    let dir = TempDir::new();
    write_prompt_folder(dir.path(), None);
    let err = PromptSet::load(dir.path(), "fr").unwrap_err();
    assert!(err.to_string().contains("fr/welcome.wav"), "{err}");
}

#[test]
fn from_samples_leaves_unlisted_prompts_empty() {
    let set = PromptSet::from_samples([(PromptId::Goodbye, vec![1, 2, 3])]);
    assert_eq!(set.get(PromptId::Goodbye), &[1, 2, 3]);
    assert!(set.get(PromptId::Welcome).is_empty());
    assert!(set.get(PromptId::OnlyPerson).is_empty());
}

#[test]
fn file_stems_are_distinct_snake_case() {
    let stems: std::collections::HashSet<_> =
        PromptId::ALL.iter().map(|id| id.file_stem()).collect();
    assert_eq!(stems.len(), PromptId::ALL.len());
    assert!(
        stems
            .iter()
            .all(|s| s.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    );
    assert_eq!(PromptId::EnterAccessCode.file_stem(), "enter_access_code");
}

#[test]
fn shipped_english_prompts_all_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    let set = PromptSet::load(&dir, "en").unwrap();
    for id in PromptId::ALL {
        let seconds = set.get(id).len() as f32 / SAMPLE_RATE_HZ as f32;
        assert!((0.5..10.0).contains(&seconds), "{id:?} lasts {seconds} s");
        assert!(rms(set.get(id)) > 500.0, "{id:?} is nearly silent");
    }
}

#[test]
fn library_falls_back_to_english_and_loads_other_languages() {
    let dir = tempfile::tempdir().unwrap();
    for lang in ["en", "de"] {
        std::fs::create_dir_all(dir.path().join(lang)).unwrap();
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/en");
        for file in std::fs::read_dir(shipped).unwrap() {
            let file = file.unwrap().path();
            std::fs::copy(&file, dir.path().join(lang).join(file.file_name().unwrap())).unwrap();
        }
    }
    let no_music = PromptLibrary::load(dir.path())
        .err()
        .expect("music missing");
    assert!(no_music.to_string().contains("hold_music"), "{no_music}");
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    std::fs::copy(
        shipped.join("hold_music.flac"),
        dir.path().join("hold_music.flac"),
    )
    .unwrap();
    let lib = PromptLibrary::load(dir.path()).unwrap();
    assert_eq!(lib.languages(), vec!["en", "de"]);
    let music = lib.hold_music();
    let seconds = music.len() as f32 / SAMPLE_RATE_HZ as f32;
    assert!(
        (7.9..8.1).contains(&seconds),
        "hold music lasts {seconds} s"
    );
    assert!(rms(&music) > 1000.0, "hold music is audible");
    assert!(
        !lib.for_language("fr").get(PromptId::Welcome).is_empty(),
        "fr falls back to en"
    );
    std::fs::remove_file(dir.path().join("de/goodbye.wav")).unwrap();
    let err = PromptLibrary::load(dir.path())
        .err()
        .expect("incomplete language refused");
    assert!(err.to_string().contains("goodbye"), "{err}");
}
