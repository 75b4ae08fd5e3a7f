//! Media: the bottom layer for audio — codecs, RTP and RTCP, the jitter
//! buffer, prompts decoded at start-up, and the port pool. It imports no
//! other layer of the gateway (`tests/layers.rs` checks).
//!
//! - [`payload`]: the codecs we negotiate ([`Codec`]): names, payload types,
//!   clock rates.
//! - [`prompts`]: every prompt decoded once with symphonia, resampled to 16 kHz.
//! - [`announcement`]: what a room member alone hears over the mix, as
//!   shared clips.
//! - [`codec`]: every codec (PCMU, PCMA, G.722, Opus) behind one encoder
//!   and one decoder trait, at the gateway's 16 kHz rate ([`pcm`]).
//! - [`goertzel`]: the power of one frequency in a block (tone checks).
//! - [`g711`]: PCMU/PCMA frames over `audio-codec-algorithms`' tables.
//! - [`rtp`]: RTP packets in and out, symmetric RTP.
//! - [`rtcp`]: the far end's receiver reports read (RFC 3550 §6.4): loss and
//!   jitter as it sees our stream.
//! - [`reception`]: inbound sequence accounting (packets lost).
//! - [`jitter`]: the adaptive jitter buffer in front of the room's mix.
//! - [`inbound`]: a caller's audio into the mix: jitter buffer, decode,
//!   FEC and concealment.
//! - [`leg`]: one call's outbound media, shared by prompts and the mix.
//! - [`ports`]: the RTP port pool (even ports; RTCP's odd port left free).
//! - [`socket`]: a call's media sockets, watched for reads only.
//! - [`tally`]: a call's packet counts, added to the shared metric in batches.
//!
//! The room mixes at 16 kHz (wideband G.722 and Opus); G.711 legs are
//! halved and doubled at their edge ([`pcm`]).

pub mod announcement;
pub mod codec;
pub mod g711;
pub mod goertzel;
pub mod inbound;
pub mod jitter;
pub mod leg;
pub mod payload;
pub mod pcm;
pub mod ports;
pub mod prompts;
pub mod reception;
pub mod rtcp;
pub mod rtp;
pub mod socket;
pub mod tally;

pub use payload::{ALL_CODECS, Codec, OPUS_PAYLOAD_TYPE, PayloadType};
