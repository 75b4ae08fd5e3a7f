//! Media: prompts decoded at start-up, G.711, RTP sessions and the port pool.
//!
//! - [`prompts`]: every prompt decoded once with symphonia, resampled to 16 kHz.
//! - [`announcement`]: what a room member alone hears over the mix, as
//!   shared clips.
//! - [`codec`]: every codec (PCMU, PCMA, G.722, Opus) behind one encoder
//!   and one decoder trait, at the gateway's 16 kHz rate ([`pcm`]).
//! - [`goertzel`]: the power of one frequency in a block (tone checks).
//! - [`g711`]: PCMU/PCMA frames over `audio-codec-algorithms`' tables.
//! - [`rtp`]: RTP packets in and out, symmetric RTP.
//! - [`reception`]: inbound sequence accounting (packets lost).
//! - [`jitter`]: the adaptive jitter buffer in front of the room's mix.
//! - [`leg`]: one call's outbound media, shared by prompts and the mix.
//! - [`ports`]: the RTP port pool (even ports; RTCP's odd port left free).
//! - [`socket`]: a call's media sockets, watched for reads only.
//! - [`tap`]: the caller's audio decoded again, to 8 kHz, for the in-band
//!   DTMF detector.
//!
//! Left out for now: the 16 kHz internal rate (wideband G.722/Opus), RTCP (issue 5).

pub mod announcement;
pub mod codec;
pub mod g711;
pub mod goertzel;
pub mod jitter;
pub mod leg;
pub mod pcm;
pub mod ports;
pub mod prompts;
pub mod reception;
pub mod rtcp;
pub mod rtp;
pub mod socket;
pub mod tap;
