//! Prompts encoded once per encoding, so that playing one to a caller
//! copies payloads instead of resampling and encoding every 20 ms frame per
//! call.
//!
//! A [`PromptSet`](super::PromptSet) keeps its prompts as 16 kHz PCM. Each
//! encoding's table cuts every prompt into 20 ms frames and encodes them
//! once; the payloads stay beside the PCM, shared by every call and every
//! clone of the set. The gateway builds the tables it expects at start-up
//! ([`super::PromptLibrary::prepare`]); a call never waits for one: while
//! its encoding's table is not built (`Cache::ready` says so) the call
//! encodes its frames itself, and the first such call starts the table's
//! build on tokio's blocking pool (an Opus table takes up to a second of
//! libopus; on a runtime worker it would stall every call on that thread).
//!
//! What each codec gets, and why:
//!
//! - **PCMU, PCMA**: pre-encoded, byte for byte what a call's own encoder
//!   sends for a prompt that follows silence. G.711 is sample-wise
//!   stateless; the only state on the way is the half-band filter that
//!   halves 16 kHz to 8 kHz, which silence leaves empty, as the
//!   pre-encoding starts it. The far end's decoder has no state.
//! - **Opus**: pre-encoded once per bitrate step ([`OPUS_BITRATES`]): the
//!   far end's `maxaveragebitrate` cap is rounded down to a step, so a call
//!   never gets more than its cap, and the far end cannot make the gateway
//!   encode and keep a set per value it cares to send. Each prompt comes
//!   from a fresh encoder that first encoded [`PRIME_FRAMES`] frames of
//!   silence — the state a call's encoder is in when a prompt follows
//!   silence; the silence payload is the packet libopus settles on for
//!   digital silence. At each prompt's start the far end's decoder meets
//!   another encoder's stream: Opus sends its parameters (LPC, gains,
//!   pitch) in every packet, so the decoder copes, and the tests show the
//!   decoded prompt as close to the PCM as live encoding.
//! - **G.722**: encoded live by the call's own encoder, as before. G.722 is
//!   backward-adaptive ADPCM: the far end's decoder state is built from
//!   every codeword since the call began, and only the encoder that sent
//!   them all tracks it. A prompt encoded from another state garbles its
//!   first 100–150 ms (measured on the shipped prompts: segmental SNR under
//!   10 dB there, about 30 dB live) and ends with a click. `audio-codec`'s
//!   encoder cannot be cloned, so a cached state cannot be resumed either.
//!
//! Frames never straddle two prompts: each prompt is padded with silence to
//! a whole number of 20 ms frames, so back-to-back prompts have a gap of
//! less than 20 ms of silence between them, which is acceptable between
//! sentences. The codecs' own delay (the half-band filter's 1.4 ms, Opus'
//! 6.5 ms look-ahead) puts a prompt's last milliseconds into the frame after
//! it; where the padding is shorter than that delay they are cut. Prompts
//! end in silence (the shipped ones in at least 40 ms), so nothing audible
//! is lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use super::PromptId;
use crate::media::Codec;
use crate::media::codec::{self, Encoding, OpusParams};
use crate::media::pcm::PCM_FRAME;

/// Opus bitrates (bit/s) prompts are encoded at; a far end's cap is rounded
/// down to one of these (and anything under the first gets the first,
/// libopus' own floor). Wideband speech gains nothing audible above 64 kbit/s.
pub const OPUS_BITRATES: [u32; 10] = [
    6_000, 8_000, 12_000, 16_000, 20_000, 24_000, 32_000, 40_000, 48_000, 64_000,
];

/// Frames of silence an encoder is fed before a prompt (200 ms): enough for
/// libopus to settle on digital silence (it does after two).
pub const PRIME_FRAMES: usize = 10;

const PROMPTS: usize = PromptId::ALL.len();

/// Tables for PCMU, PCMA, then one per Opus bitrate step.
const SLOTS: usize = 2 + OPUS_BITRATES.len();

/// One 20 ms frame of a prompt: frame `index` holds the prompt's samples
/// from `index * 320`, the last one padded with silence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PromptFrame {
    pub prompt: PromptId,
    pub index: usize,
}

/// Every encoding's table of one prompt set.
pub(super) struct Cache {
    samples: [Arc<[i16]>; PROMPTS],
    tables: [OnceLock<EncodedPrompts>; SLOTS],
    /// The table in this slot has every prompt encoded.
    built: [AtomicBool; SLOTS],
    /// A build of this slot's table was started in the background.
    requested: [AtomicBool; SLOTS],
}

impl Cache {
    pub(super) fn new(samples: [Arc<[i16]>; PROMPTS]) -> Cache {
        Cache {
            samples,
            tables: Default::default(),
            built: Default::default(),
            requested: Default::default(),
        }
    }

    /// The table for `encoding`, every prompt encoded before it returns
    /// (it may encode for up to a second: not on a runtime worker); `None`
    /// for a codec encoded live (G.722).
    pub(super) fn get(&self, encoding: Encoding) -> Option<&EncodedPrompts> {
        let (slot, encoding) = slot(encoding)?;
        let table = self.tables.get(slot)?;
        let table = table.get_or_init(|| EncodedPrompts::new(encoding, self.samples.clone()));
        if let Some(built) = self.built.get(slot)
            && !built.load(Ordering::Acquire)
        {
            table.build_all();
            built.store(true, Ordering::Release);
        }
        Some(table)
    }

    /// The table for `encoding` if it is built, without waiting or
    /// encoding; otherwise `None`, and the table's build is started on
    /// tokio's blocking pool (once; inline where there is no runtime).
    pub(super) fn ready(self: &Arc<Self>, encoding: Encoding) -> Option<&EncodedPrompts> {
        let (slot, _) = slot(encoding)?;
        if self.built.get(slot)?.load(Ordering::Acquire) {
            return self.tables.get(slot)?.get();
        }
        if !self.requested.get(slot)?.swap(true, Ordering::AcqRel) {
            // Dropped when the build ends or is never run (a runtime
            // shutting down): a build that did not finish may be asked again.
            let retry = Retry {
                cache: self.clone(),
                slot,
            };
            let build = move || {
                let _ = retry.cache.get(encoding);
                drop(retry);
            };
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(build)),
                Err(_) => build(),
            }
        }
        None
    }
}

/// Clears a slot's build request when its build ends without the table
/// built (it panicked, or never ran).
struct Retry {
    cache: Arc<Cache>,
    slot: usize,
}

impl Drop for Retry {
    fn drop(&mut self) {
        let built = self
            .cache
            .built
            .get(self.slot)
            .is_some_and(|b| b.load(Ordering::Acquire));
        if !built && let Some(requested) = self.cache.requested.get(self.slot) {
            requested.store(false, Ordering::Release);
        }
    }
}

/// Which table an encoding's payloads come from, and the encoding that
/// table is built with (an Opus cap rounded down to its step).
fn slot(encoding: Encoding) -> Option<(usize, Encoding)> {
    let fixed = |slot, codec| {
        let opus = OpusParams::default();
        Some((slot, Encoding { codec, opus }))
    };
    match encoding.codec {
        Codec::Pcmu => fixed(0, Codec::Pcmu),
        Codec::Pcma => fixed(1, Codec::Pcma),
        Codec::G722 => None,
        Codec::Opus => {
            let cap = encoding.opus.max_average_bitrate;
            let step = OPUS_BITRATES.iter().rposition(|b| *b <= cap).unwrap_or(0);
            let max_average_bitrate = *OPUS_BITRATES.get(step)?;
            let opus = OpusParams {
                max_average_bitrate,
            };
            let codec = Codec::Opus;
            Some((2 + step, Encoding { codec, opus }))
        }
    }
}

/// Every prompt of a set as 20 ms payloads in one encoding, plus the
/// payload for a frame of silence.
pub struct EncodedPrompts {
    encoding: Encoding,
    samples: [Arc<[i16]>; PROMPTS],
    prompts: [OnceLock<Frames>; PROMPTS],
    silence: Box<[u8]>,
}

impl std::fmt::Debug for EncodedPrompts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let built = self.prompts.iter().filter(|p| p.get().is_some()).count();
        f.debug_struct("EncodedPrompts")
            .field("encoding", &self.encoding)
            .field("prompts_built", &built)
            .finish_non_exhaustive()
    }
}

impl EncodedPrompts {
    fn new(encoding: Encoding, samples: [Arc<[i16]>; PROMPTS]) -> EncodedPrompts {
        EncodedPrompts {
            encoding,
            samples,
            prompts: Default::default(),
            silence: silence(encoding),
        }
    }

    /// What the payloads are encoded as (an Opus cap already rounded down).
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// One 20 ms frame of silence.
    pub fn silence(&self) -> &[u8] {
        &self.silence
    }

    /// The payload of one frame of a prompt, encoding that prompt first if
    /// this is its first use; `None` past the prompt's end.
    pub fn frame(&self, at: PromptFrame) -> Option<&[u8]> {
        self.frames(at.prompt)?.get(at.index)
    }

    /// Frames `id` takes: its samples in whole 20 ms frames.
    pub fn frame_count(&self, id: PromptId) -> usize {
        self.frames(id).map_or(0, |f| f.ends.len())
    }

    /// Encodes every prompt not encoded yet.
    fn build_all(&self) {
        for id in PromptId::ALL {
            let _ = self.frames(id);
        }
    }

    fn frames(&self, id: PromptId) -> Option<&Frames> {
        let i = id.index();
        let (slot, samples) = (self.prompts.get(i)?, self.samples.get(i)?);
        Some(slot.get_or_init(|| Frames::encode(self.encoding, samples)))
    }
}

/// One prompt's payloads end to end; frame `i` ends at `ends[i]`.
struct Frames {
    bytes: Box<[u8]>,
    ends: Box<[usize]>,
}

impl Frames {
    fn encode(encoding: Encoding, pcm: &[i16]) -> Frames {
        let mut encoder = primed(encoding);
        let mut payload = Vec::new();
        let mut bytes = Vec::new();
        let mut ends = Vec::with_capacity(pcm.len().div_ceil(PCM_FRAME));
        // The encoder pads the last, short chunk with silence.
        for frame in pcm.chunks(PCM_FRAME) {
            encoder.encode(frame, &mut payload);
            bytes.extend_from_slice(&payload);
            ends.push(bytes.len());
        }
        Frames {
            bytes: bytes.into(),
            ends: ends.into(),
        }
    }

    fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = i
            .checked_sub(1)
            .and_then(|before| self.ends.get(before))
            .copied()
            .unwrap_or(0);
        self.bytes.get(start..end)
    }
}

/// A fresh encoder that has encoded [`PRIME_FRAMES`] frames of silence.
fn primed(encoding: Encoding) -> Box<dyn codec::Encoder> {
    let mut encoder = codec::encoder(encoding.codec, encoding.opus);
    let mut payload = Vec::new();
    for _ in 0..PRIME_FRAMES {
        encoder.encode(&[0; PCM_FRAME], &mut payload);
    }
    encoder
}

/// What a primed encoder sends for the next frame of silence.
fn silence(encoding: Encoding) -> Box<[u8]> {
    let mut payload = Vec::new();
    primed(encoding).encode(&[0; PCM_FRAME], &mut payload);
    payload.into()
}

#[cfg(test)]
mod tests;
