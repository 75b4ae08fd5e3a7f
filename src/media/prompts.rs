//! Spoken prompts: found on disk, decoded once at start-up, held in memory.
//!
//! The gateway reads `<dir>/<language>/<stem>.<ext>` for every [`PromptId`]
//! (`prompts/en/welcome.wav`, …), where `ext` is the first of `wav`, `flac`,
//! `ogg`, `mp3` that exists. Each file is decoded with symphonia (first audio
//! track it can decode), downmixed to mono by averaging the channels,
//! resampled with rubato's FFT resampler to the gateway's 16 kHz
//! ([`crate::media::pcm`]) and stored as 16-bit PCM; codecs encode from that.
//!
//! Calls play prompts in 20 ms frames ([`PromptFrame`]); for most codecs
//! each frame is encoded once for every call ([`encoded`]).
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

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use crate::media::announcement::Announcement;
use crate::media::announcement::Clip;
use crate::media::codec::Encoding;
use crate::media::pcm::PCM_FRAME;

mod decode;
pub mod encoded;

pub use decode::decode_file;
pub use encoded::{EncodedPrompts, PromptFrame};

/// The rate [`PromptSet`] holds its samples at.
pub const SAMPLE_RATE_HZ: u32 = crate::media::pcm::PCM_RATE;

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
    NotStarted,
    MeetingEnded,
    EnterSecurityCode,
    TooManyAttempts,
    /// In the room, after `*6`.
    Muted,
    Unmuted,
    /// In the waiting room, over silence before the hold music.
    WaitingForHost,
    WaitingForAdmission,
    /// Before the gateway hangs up: the last host left.
    ConferenceEnded,
    /// The room refused the caller after a right code.
    ConferenceFull,
    ConferenceLocked,
    /// "There are" … (a number) … "participants in this conference."
    ThereAre,
    ParticipantsInConference,
    /// To the host, after `*5`.
    NowLocked,
    NowUnlocked,
    /// To the host, after `*7`.
    AllMuted,
    AllUnmuted,
    /// While the call moves to its room's new owner (its leg to the node
    /// that mixed the room fell silent): `moving.<ext>` if the language
    /// folder has one, else [`moving_tone`].
    Moving,
}

impl PromptId {
    /// Every prompt, in declaration order.
    pub const ALL: [PromptId; 24] = [
        PromptId::Welcome,
        PromptId::EnterAccessCode,
        PromptId::InvalidCode,
        PromptId::Goodbye,
        PromptId::Joining,
        PromptId::OnlyPerson,
        PromptId::NotStarted,
        PromptId::MeetingEnded,
        PromptId::EnterSecurityCode,
        PromptId::TooManyAttempts,
        PromptId::Muted,
        PromptId::Unmuted,
        PromptId::WaitingForHost,
        PromptId::WaitingForAdmission,
        PromptId::ConferenceEnded,
        PromptId::ConferenceFull,
        PromptId::ConferenceLocked,
        PromptId::ThereAre,
        PromptId::ParticipantsInConference,
        PromptId::NowLocked,
        PromptId::NowUnlocked,
        PromptId::AllMuted,
        PromptId::AllUnmuted,
        PromptId::Moving,
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
            PromptId::NotStarted => "not_started",
            PromptId::MeetingEnded => "meeting_ended",
            PromptId::EnterSecurityCode => "enter_security_code",
            PromptId::TooManyAttempts => "too_many_attempts",
            PromptId::Muted => "muted",
            PromptId::Unmuted => "unmuted",
            PromptId::WaitingForHost => "waiting_for_host",
            PromptId::WaitingForAdmission => "waiting_for_admission",
            PromptId::ConferenceEnded => "conference_ended",
            PromptId::ConferenceFull => "conference_full",
            PromptId::ConferenceLocked => "conference_locked",
            PromptId::ThereAre => "there_are",
            PromptId::ParticipantsInConference => "participants_in_conference",
            PromptId::NowLocked => "now_locked",
            PromptId::NowUnlocked => "now_unlocked",
            PromptId::AllMuted => "all_muted",
            PromptId::AllUnmuted => "all_unmuted",
            PromptId::Moving => "moving",
        }
    }

    /// Position in [`PromptId::ALL`]; always below `ALL.len()`.
    fn index(self) -> usize {
        self as usize
    }
}

/// The number words counts are said with, each in `<language>/number_<word>.<ext>`.
pub const NUMBER_WORDS: [&str; 30] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
    "hundred",
    "thousand",
];
const TWENTY: usize = 20;
const HUNDRED: usize = 28;
const THOUSAND: usize = 29;

/// `n` as indices into [`NUMBER_WORDS`], the English way ("two thousand
/// forty one"), up to 999 999.
pub fn number_words(n: usize) -> Vec<usize> {
    /// 1 to 999.
    fn below_thousand(n: usize, out: &mut Vec<usize>) {
        if n >= 100 {
            out.push(n / 100);
            out.push(HUNDRED);
        }
        let rest = n % 100;
        if rest >= 20 {
            out.push(TWENTY + rest / 10 - 2);
            if !rest.is_multiple_of(10) {
                out.push(rest % 10);
            }
        } else if rest > 0 {
            out.push(rest);
        }
    }
    let n = n.min(999_999);
    let mut out = Vec::new();
    if n == 0 {
        out.push(0);
    }
    if n >= 1000 {
        below_thousand(n / 1000, &mut out);
        out.push(THOUSAND);
    }
    below_thousand(n % 1000, &mut out);
    out
}

/// Every prompt of one language, decoded to 16 kHz mono i16 PCM, held in memory.
///
/// Cloning is cheap: the samples, and the prompts encoded from them, are
/// shared.
#[derive(Clone)]
pub struct PromptSet {
    samples: [Arc<[i16]>; PromptId::ALL.len()],
    /// Number words ("one" … "thousand") as clips, in
    /// [`NUMBER_WORDS`] order; empty in a set built from samples.
    numbers: Arc<[Clip]>,
    encoded: Arc<encoded::Cache>,
    /// Every prompt as an announcement of one clip (with its 8 kHz copy),
    /// by [`PromptId`] index.
    spoken: Arc<[Announcement]>,
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
            let pcm = match find_prompt_file(&folder, id) {
                Some(path) => decode_file(&path, SAMPLE_RATE_HZ)?,
                None if id == PromptId::Moving => moving_tone(),
                None => {
                    return Err(PromptError::Missing {
                        path: folder.join(format!("{}.{}", id.file_stem(), EXTENSIONS[0])),
                    });
                }
            };
            decoded.push((id, pcm));
        }
        let mut set = PromptSet::from_samples(decoded);
        let mut numbers = Vec::with_capacity(NUMBER_WORDS.len());
        for word in NUMBER_WORDS {
            let stem = format!("number_{word}");
            let path = find_file(&folder, &stem).ok_or_else(|| PromptError::Missing {
                path: folder.join(format!("{stem}.{}", EXTENSIONS[0])),
            })?;
            numbers.push(Clip::new(decode_file(&path, SAMPLE_RATE_HZ)?));
        }
        set.numbers = numbers.into();
        Ok(set)
    }

    /// "There are `n` participants in this conference.": the prompts and
    /// number words it is made of, played one after another (no audio is
    /// copied; see [`crate::media::announcement`]).
    pub fn count_sentence(&self, n: usize) -> Announcement {
        let spoken = |id: PromptId| {
            let said = self.spoken.get(id.index());
            said.and_then(|a| a.clips().first())
                .cloned()
                .unwrap_or_default()
        };
        let words = number_words(n);
        let mut clips = Vec::with_capacity(words.len() + 2);
        clips.push(spoken(PromptId::ThereAre));
        clips.extend(words.iter().filter_map(|w| self.numbers.get(*w).cloned()));
        clips.push(spoken(PromptId::ParticipantsInConference));
        Announcement::of(clips)
    }

    /// The prompt as an announcement in a room (shared, not copied).
    pub fn shared(&self, id: PromptId) -> Announcement {
        self.spoken.get(id.index()).cloned().unwrap_or_default()
    }

    /// The prompt's samples: 16 kHz, mono.
    pub fn get(&self, id: PromptId) -> &[i16] {
        // `index` is below `ALL.len()`, the array's length.
        &self.samples[id.index()]
    }

    /// Frames of 20 ms the prompt is played in, the last padded with silence.
    pub fn frame_count(&self, id: PromptId) -> usize {
        self.get(id).len().div_ceil(PCM_FRAME)
    }

    /// The samples of one frame of a prompt: 320, fewer in its last frame
    /// (the rest is silence), none past its end.
    pub fn frame_pcm(&self, at: PromptFrame) -> &[i16] {
        let samples = self.get(at.prompt);
        let start = at.index.saturating_mul(PCM_FRAME).min(samples.len());
        let end = start.saturating_add(PCM_FRAME).min(samples.len());
        samples.get(start..end).unwrap_or_default()
    }

    /// Every prompt encoded for `encoding`, built now if it was not
    /// (which may take up to a second: not on a runtime worker), shared by
    /// every clone of this set; `None` for a codec each call encodes itself
    /// (G.722, see [`encoded`]).
    pub fn encoded(&self, encoding: Encoding) -> Option<&EncodedPrompts> {
        self.encoded.get(encoding)
    }

    /// The table for `encoding` if it is built already; `None` when the
    /// caller must encode its frames itself — a codec encoded live, or a
    /// table not built yet, whose build this starts in the background.
    /// Never waits: for the media path.
    pub fn encoded_ready(&self, encoding: Encoding) -> Option<&EncodedPrompts> {
        self.encoded.ready(encoding)
    }

    /// Builds a set from samples already at 16 kHz; ids not given are empty.
    pub fn from_samples(map: impl IntoIterator<Item = (PromptId, Vec<i16>)>) -> PromptSet {
        let mut samples: [Arc<[i16]>; PromptId::ALL.len()] = Default::default();
        for (id, pcm) in map {
            samples[id.index()] = pcm.into();
        }
        PromptSet {
            encoded: Arc::new(encoded::Cache::new(samples.clone())),
            spoken: samples
                .iter()
                .cloned()
                .map(|s| Announcement::of([Clip::new(s)]))
                .collect(),
            samples,
            numbers: vec![Clip::default(); NUMBER_WORDS.len()].into(),
        }
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
    find_file(folder, id.file_stem())
}

fn find_file(folder: &Path, stem: &str) -> Option<PathBuf> {
    EXTENSIONS
        .iter()
        .map(|ext| folder.join(format!("{stem}.{ext}")))
        .find(|path| path.is_file())
}

/// The pitch of [`moving_tone`]'s pips: apart from the room's chimes
/// (440 and 660 Hz) and from every keypad frequency.
pub const MOVING_TONE_HZ: f64 = 550.0;

/// What a caller hears while its call moves to the room's new owner node,
/// when the language has no `moving` recording: one second of two 100 ms
/// pips at [`MOVING_TONE_HZ`], 100 ms apart, then silence; played over
/// and over until the caller is in the room again.
pub fn moving_tone() -> Vec<i16> {
    const PIP: usize = SAMPLE_RATE_HZ as usize / 10;
    let pip = || crate::media::pcm::sine_burst(MOVING_TONE_HZ, PIP, 6000.0);
    let gap = || std::iter::repeat_n(0, PIP);
    pip()
        .chain(gap())
        .chain(pip())
        .chain(std::iter::repeat_n(0, 7 * PIP))
        .collect()
}

/// The waiting room's music: `<dir>/hold_music.<ext>`, for every language.
pub const HOLD_MUSIC: &str = "hold_music";

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

/// The language every gateway must have, and the fallback for the others.
pub const DEFAULT_LANGUAGE: &str = "en";

/// Every language folder under the prompt directory, each complete.
#[derive(Clone)]
pub struct PromptLibrary {
    languages: std::collections::HashMap<String, PromptSet>,
    default: PromptSet,
    music: Arc<[i16]>,
}

impl PromptLibrary {
    /// Loads `<dir>/<language>/` for every sub-folder and the hold music
    /// `<dir>/hold_music.<ext>`; `en` must exist, and any language folder
    /// with a missing prompt is an error naming it.
    pub fn load(dir: &Path) -> Result<PromptLibrary, PromptError> {
        let default = PromptSet::load(dir, DEFAULT_LANGUAGE)?;
        let music_file = find_file(dir, HOLD_MUSIC).ok_or_else(|| PromptError::Missing {
            path: dir.join(format!("{HOLD_MUSIC}.flac")),
        })?;
        let music = decode_file(&music_file, SAMPLE_RATE_HZ)?.into();
        let mut languages = std::collections::HashMap::new();
        let entries = std::fs::read_dir(dir).map_err(|source| PromptError::Io {
            path: dir.to_owned(),
            source,
        })?;
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name == DEFAULT_LANGUAGE || !entry.path().is_dir() {
                continue;
            }
            languages.insert(name.clone(), PromptSet::load(dir, &name)?);
        }
        Ok(PromptLibrary {
            languages,
            default,
            music,
        })
    }

    /// The waiting room's music, 16 kHz mono, played in a loop.
    pub fn hold_music(&self) -> Arc<[i16]> {
        self.music.clone()
    }

    /// The prompts for `language`, or English when that language has none.
    pub fn for_language(&self, language: &str) -> &PromptSet {
        self.languages.get(language).unwrap_or(&self.default)
    }

    /// Encodes every prompt of every language for `encodings` now, so no
    /// call waits for (or stalls its thread on) a first encoding.
    pub fn prepare(&self, encodings: &[Encoding]) {
        for set in self
            .languages
            .values()
            .chain(std::iter::once(&self.default))
        {
            for encoding in encodings {
                let _ = set.encoded(*encoding);
            }
        }
    }

    /// Languages loaded, English first.
    pub fn languages(&self) -> Vec<&str> {
        let mut others: Vec<&str> = self.languages.keys().map(String::as_str).collect();
        others.sort_unstable();
        std::iter::once(DEFAULT_LANGUAGE).chain(others).collect()
    }
}

#[cfg(test)]
mod tests;
