//! An audio file decoded into the gateway's PCM: symphonia reads the
//! first audio track it can decode, the channels are averaged to mono, and
//! rubato's FFT resampler brings it to the gateway's rate.

use std::fs::File;
use std::path::Path;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use super::{INPUT_RATES_HZ, MAX_PROMPT_SECONDS, PromptError, RESAMPLER_CHUNK};

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
