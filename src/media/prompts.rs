//! Spoken prompts: found on disk, decoded once at start-up, held in memory.
//!
//! The gateway reads `<dir>/<language>/<stem>.<ext>` for every [`PromptId`]
//! (`prompts/en/welcome.wav`, …), where `ext` is the first of `wav`, `flac`,
//! `ogg`, `mp3` that exists. Each file is decoded with symphonia (first audio
//! track it can decode), downmixed to mono by averaging the channels,
//! resampled with rubato's FFT resampler to 8 kHz and stored as 16-bit PCM.
//! Codecs then encode from that (G.711 directly; wideband codecs will want a
//! second rate later).
//!
//! A missing or undecodable prompt is an error naming the file, so the gateway
//! refuses to start rather than play silence to callers.
//!
//! Symphonia's gapless mode trims MP3 encoder delay and padding when the file
//! carries a LAME/Info tag (LAME and FFmpeg write one); an MP3 without it
//! keeps roughly 50 ms of extra silence.
//!
//! Deliberately left out: Opus files (symphonia 0.6 has no Opus decoder),
//! chained Ogg streams (decoding stops at the first logical stream), and
//! loudness normalisation — prompts are expected to be mastered already.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

/// The rate [`PromptSet`] holds its samples at.
pub const SAMPLE_RATE_HZ: u32 = 8_000;

/// File extensions tried for each prompt, in order of preference.
pub const EXTENSIONS: [&str; 4] = ["wav", "flac", "ogg", "mp3"];

/// Longest prompt accepted. Protects start-up from a mistaken multi-hour file.
const MAX_PROMPT_SECONDS: u64 = 600;

/// Input sample rates accepted; outside this a file is almost surely corrupt.
const INPUT_RATES_HZ: std::ops::RangeInclusive<u32> = 1_000..=384_000;

/// Input frames per resampler chunk.
const RESAMPLER_CHUNK: usize = 1024;

/// One announcement the IVR can play.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PromptId {
    Welcome,
    EnterAccessCode,
    InvalidCode,
    Goodbye,
    Joining,
    OnlyPerson,
}

impl PromptId {
    /// Every prompt, in declaration order.
    pub const ALL: [PromptId; 6] = [
        PromptId::Welcome,
        PromptId::EnterAccessCode,
        PromptId::InvalidCode,
        PromptId::Goodbye,
        PromptId::Joining,
        PromptId::OnlyPerson,
    ];

    /// The file name without extension, e.g. `"enter_access_code"`.
    pub fn file_stem(self) -> &'static str {
        match self {
            PromptId::Welcome => "welcome",
            PromptId::EnterAccessCode => "enter_access_code",
            PromptId::InvalidCode => "invalid_code",
            PromptId::Goodbye => "goodbye",
            PromptId::Joining => "joining",
            PromptId::OnlyPerson => "only_person",
        }
    }

    /// Position in [`PromptId::ALL`]; always below `ALL.len()`.
    fn index(self) -> usize {
        self as usize
    }
}

/// Every prompt of one language, decoded to 8 kHz mono i16 PCM, held in memory.
///
/// Cloning is cheap: the samples are shared.
#[derive(Clone)]
pub struct PromptSet {
    samples: [Arc<[i16]>; PromptId::ALL.len()],
}

impl PromptSet {
    /// Loads `<dir>/<language>/<stem>.<ext>` for every [`PromptId`], `ext` in
    /// wav, flac, ogg, mp3 (first found).
    ///
    /// A missing prompt gives [`PromptError::Missing`] with the expected
    /// `.wav` path (e.g. `prompts/en/welcome.wav`).
    pub fn load(dir: &Path, language: &str) -> Result<PromptSet, PromptError> {
        let folder = dir.join(language);
        let mut decoded = Vec::with_capacity(PromptId::ALL.len());
        for id in PromptId::ALL {
            let path = find_prompt_file(&folder, id).ok_or_else(|| PromptError::Missing {
                path: folder.join(format!("{}.{}", id.file_stem(), EXTENSIONS[0])),
            })?;
            decoded.push((id, decode_file(&path, SAMPLE_RATE_HZ)?));
        }
        Ok(PromptSet::from_samples(decoded))
    }

    /// The prompt's samples: 8 kHz, mono.
    pub fn get(&self, id: PromptId) -> &[i16] {
        // `index` is below `ALL.len()`, the array's length.
        &self.samples[id.index()]
    }

    /// Builds a set from samples already at 8 kHz; ids not given are empty.
    pub fn from_samples(map: impl IntoIterator<Item = (PromptId, Vec<i16>)>) -> PromptSet {
        let mut samples: [Arc<[i16]>; PromptId::ALL.len()] = Default::default();
        for (id, pcm) in map {
            samples[id.index()] = pcm.into();
        }
        PromptSet { samples }
    }
}

impl std::fmt::Debug for PromptSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for id in PromptId::ALL {
            map.entry(&id, &format_args!("{} samples", self.get(id).len()));
        }
        map.finish()
    }
}

fn find_prompt_file(folder: &Path, id: PromptId) -> Option<PathBuf> {
    EXTENSIONS
        .iter()
        .map(|ext| folder.join(format!("{}.{ext}", id.file_stem())))
        .find(|path| path.is_file())
}

/// Why a prompt could not be loaded. Every variant names the file.
#[derive(thiserror::Error, Debug)]
pub enum PromptError {
    #[error("prompt file {path} is missing")]
    Missing { path: PathBuf },
    #[error("cannot read prompt file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot decode prompt file {path}: {reason}")]
    Decode { path: PathBuf, reason: String },
    #[error("prompt file {path} has no audio track that can be decoded")]
    NoAudioTrack { path: PathBuf },
    #[error("prompt file {path} has an unsupported sample rate of {rate} Hz")]
    UnsupportedRate { path: PathBuf, rate: u32 },
    #[error("prompt file {path} is longer than {MAX_PROMPT_SECONDS} s")]
    TooLong { path: PathBuf },
    #[error("cannot resample prompt file {path}: {reason}")]
    Resample { path: PathBuf, reason: String },
}

/// Decodes any file symphonia reads (first audio track), downmixes to mono,
/// resamples to `rate` Hz with rubato, returns i16.
pub fn decode_file(path: &Path, rate: u32) -> Result<Vec<i16>, PromptError> {
    let file = File::open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => PromptError::Missing {
            path: path.to_owned(),
        },
        _ => PromptError::Io {
            path: path.to_owned(),
            source,
        },
    })?;
    // A decoder bug must not take the gateway down on a damaged file: a
    // prompt is operator data, so a panic inside symphonia becomes an error
    // naming the file. (8,000 mutated fixtures produced none; this is a guard.)
    let decoded = std::panic::catch_unwind(|| decode_mono(file, path))
        .unwrap_or_else(|_| Err(decode_error(path, "the decoder panicked")))?;
    let resampled =
        resample(&decoded.samples, decoded.rate, rate).map_err(|reason| PromptError::Resample {
            path: path.to_owned(),
            reason,
        })?;
    Ok(resampled.into_iter().map(f32_to_i16).collect())
}

/// Mono samples at the file's own rate.
struct Mono {
    samples: Vec<f32>,
    rate: u32,
}

fn decode_error(path: &Path, reason: impl ToString) -> PromptError {
    PromptError::Decode {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn decode_mono(file: File, path: &Path) -> Result<Mono, PromptError> {
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            stream,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| decode_error(path, e))?;
    let track = format
        .first_track_known_codec(TrackType::Audio)
        .ok_or_else(|| PromptError::NoAudioTrack {
            path: path.to_owned(),
        })?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| PromptError::NoAudioTrack {
            path: path.to_owned(),
        })?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| decode_error(path, e))?;

    let mut mono = Mono {
        samples: Vec::new(),
        rate: 0,
    };
    let mut planes: Vec<Vec<f32>> = Vec::new();
    while let Some(packet) = next_packet(format.as_mut(), path)? {
        if packet.track_id != track_id {
            continue;
        }
        let buffer = match decoder.decode(&packet) {
            Ok(buffer) => buffer,
            // A damaged packet is skipped, as symphonia advises; a file with
            // no good packet at all fails below.
            Err(SymphoniaError::DecodeError(_)) => continue,
            Err(e) => return Err(decode_error(path, e)),
        };
        let buffer_rate = buffer.spec().rate();
        if mono.rate == 0 {
            if !INPUT_RATES_HZ.contains(&buffer_rate) {
                return Err(PromptError::UnsupportedRate {
                    path: path.to_owned(),
                    rate: buffer_rate,
                });
            }
            mono.rate = buffer_rate;
        } else if buffer_rate != mono.rate {
            return Err(decode_error(path, "the sample rate changes mid-stream"));
        }
        buffer.copy_to_vecs_planar::<f32>(&mut planes);
        downmix_into(&planes, buffer.frames(), &mut mono.samples);
        if mono.samples.len() as u64 > MAX_PROMPT_SECONDS * u64::from(mono.rate) {
            return Err(PromptError::TooLong {
                path: path.to_owned(),
            });
        }
    }
    if mono.samples.is_empty() {
        return Err(decode_error(path, "no audio could be decoded"));
    }
    Ok(mono)
}

/// The next packet, or `None` at the end of the stream.
fn next_packet(
    format: &mut dyn FormatReader,
    path: &Path,
) -> Result<Option<symphonia::core::packet::Packet>, PromptError> {
    match format.next_packet() {
        Ok(packet) => Ok(packet),
        // A file cut short (its header promises more than it holds) ends
        // where the data ends; so does a chained Ogg stream.
        Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Ok(None)
        }
        Err(SymphoniaError::ResetRequired) => Ok(None),
        Err(e) => Err(decode_error(path, e)),
    }
}

/// Appends the average of all channels, frame by frame.
fn downmix_into(planes: &[Vec<f32>], frames: usize, out: &mut Vec<f32>) {
    let Some((first, rest)) = planes.split_first() else {
        return;
    };
    let scale = 1.0 / planes.len() as f32;
    let start = out.len();
    out.extend(first.iter().take(frames));
    let added = &mut out[start..];
    for plane in rest {
        for (sum, sample) in added.iter_mut().zip(plane) {
            *sum += sample;
        }
    }
    if rest.is_empty() {
        return;
    }
    for sample in added {
        *sample *= scale;
    }
}

/// Resamples a whole mono clip, trimming the resampler's delay and flushing
/// its tail, so the output lasts as long as the input.
fn resample(input: &[f32], from: u32, to: u32) -> Result<Vec<f32>, String> {
    if from == to {
        return Ok(input.to_vec());
    }
    let mut resampler = Fft::<f32>::new(
        from as usize,
        to as usize,
        RESAMPLER_CHUNK,
        1,
        FixedSync::Input,
    )
    .map_err(|e| e.to_string())?;
    let adapter = InterleavedSlice::new(input, 1, input.len()).map_err(|e| e.to_string())?;
    let output = resampler
        .process_all(&adapter, input.len(), None)
        .map_err(|e| e.to_string())?;
    Ok(output.take_data())
}

fn f32_to_i16(sample: f32) -> i16 {
    // The clamp keeps the cast in range; NaN casts to 0.
    (sample * f32::from(i16::MAX))
        .round()
        .clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("dialgate-prompts-{}-{n}", std::process::id()));
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
        let tone = tone_power(middle, SAMPLE_RATE_HZ, 1000.0);
        let other = tone_power(middle, SAMPLE_RATE_HZ, 2500.0);
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
        let out = decode_file(&path, SAMPLE_RATE_HZ).unwrap();
        assert_length_near(&out, 4000);
        assert_1khz_tone(&out, 0.5);
    }

    #[test]
    fn stereo_44k1_tone_becomes_4000_mono_samples_of_1khz() {
        let dir = TempDir::new();
        let tone = sine(44_100, 1000.0, 0.5, 0.5);
        let pcm = interleave(&tone, &tone);
        let path = write_wav(dir.path(), "tone.wav", 44_100, 2, &pcm);
        let out = decode_file(&path, SAMPLE_RATE_HZ).unwrap();
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
        let out = decode_file(&path, SAMPLE_RATE_HZ).unwrap();
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
            let out = decode_file(&path, SAMPLE_RATE_HZ).unwrap();
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
        let out = decode_file(&path, SAMPLE_RATE_HZ).unwrap();
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
        let out = decode_file(&path, SAMPLE_RATE_HZ).unwrap();
        assert_length_near(&out, 2000);
    }

    #[test]
    fn missing_file_error_names_the_path() {
        let dir = TempDir::new();
        let path = dir.path().join("nowhere.wav");
        let err = decode_file(&path, SAMPLE_RATE_HZ).unwrap_err();
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
        let err = decode_file(&path, SAMPLE_RATE_HZ).unwrap_err();
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    }

    #[test]
    fn empty_file_and_header_only_file_are_errors() {
        let dir = TempDir::new();
        let empty = dir.path().join("empty.wav");
        std::fs::write(&empty, b"").unwrap();
        assert!(decode_file(&empty, SAMPLE_RATE_HZ).is_err());
        let header_only = write_wav(dir.path(), "header.wav", 16_000, 1, &[]);
        let err = decode_file(&header_only, SAMPLE_RATE_HZ).unwrap_err();
        assert!(err.to_string().contains("header.wav"), "{err}");
    }

    #[test]
    fn flac_16khz_fixture_decodes_to_1khz_tone() {
        let out = decode_file(&fixture("tone.flac"), SAMPLE_RATE_HZ).unwrap();
        assert_length_near(&out, 2400);
        assert_1khz_tone(&out, 0.5);
    }

    #[test]
    fn ogg_vorbis_44k1_stereo_fixture_decodes_to_1khz_tone() {
        let out = decode_file(&fixture("tone.ogg"), SAMPLE_RATE_HZ).unwrap();
        assert_length_near(&out, 2400);
        assert_1khz_tone(&out, 0.5);
    }

    #[test]
    fn mp3_22k05_fixture_decodes_to_1khz_tone() {
        let out = decode_file(&fixture("tone.mp3"), SAMPLE_RATE_HZ).unwrap();
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
        folder
    }

    #[test]
    fn load_decodes_every_prompt_to_8khz() {
        let dir = TempDir::new();
        write_prompt_folder(dir.path(), None);
        let set = PromptSet::load(dir.path(), "en").unwrap();
        for (n, id) in PromptId::ALL.into_iter().enumerate() {
            assert_length_near(set.get(id), (n + 1) * 800);
        }
    }

    #[test]
    fn load_falls_back_to_other_extensions_and_prefers_wav() {
        let dir = TempDir::new();
        let folder = write_prompt_folder(dir.path(), Some(PromptId::Goodbye));
        std::fs::copy(fixture("tone.flac"), folder.join("goodbye.flac")).unwrap();
        std::fs::write(folder.join("welcome.mp3"), b"not read: welcome.wav wins").unwrap();
        let set = PromptSet::load(dir.path(), "en").unwrap();
        assert_length_near(set.get(PromptId::Goodbye), 2400);
        assert_length_near(set.get(PromptId::Welcome), 800);
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
}
