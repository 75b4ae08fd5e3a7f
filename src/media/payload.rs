//! The audio codecs the gateway speaks, as RTP payload formats (RFC 3551
//! table 4, RFC 7587 for Opus): names, payload types and clock rates. SDP
//! ([`crate::sip::sdp`]) negotiates one of them; [`crate::media::codec`]
//! encodes and decodes it.

/// An RTP payload type (RFC 3550 §5.1): a static one of RFC 3551, or the
/// number (96–127) an SDP `rtpmap` gave a codec or telephone-event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PayloadType(pub u8);

impl std::fmt::Display for PayloadType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An audio codec we can send and receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 μ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// G.722 at 64 kbit/s.
    G722,
    /// Opus (RFC 7587).
    Opus,
}

/// Every codec, in the default preference order.
pub const ALL_CODECS: [Codec; 4] = [Codec::Opus, Codec::G722, Codec::Pcmu, Codec::Pcma];

/// Payload type we use for Opus in our own offers.
pub const OPUS_PAYLOAD_TYPE: PayloadType = PayloadType(111);

impl Codec {
    /// Static payload type (RFC 3551 table 4); Opus's is dynamic, and this
    /// is the one our own offers use.
    pub fn payload_type(self) -> PayloadType {
        match self {
            Codec::Pcmu => PayloadType(0),
            Codec::Pcma => PayloadType(8),
            Codec::G722 => PayloadType(9),
            Codec::Opus => OPUS_PAYLOAD_TYPE,
        }
    }

    /// Encoding name as written in `a=rtpmap`.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::Opus => "opus",
        }
    }

    /// RTP clock rate (G.722's is 8000 though it samples at 16 kHz).
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            _ => 8000,
        }
    }

    /// `<encoding>/<clock>[/<channels>]` as `a=rtpmap` writes it.
    pub fn rtpmap(self) -> String {
        match self {
            Codec::Opus => "opus/48000/2".to_owned(),
            other => format!("{}/{}", other.encoding_name(), other.clock_rate()),
        }
    }

    /// By name, as `--codecs` lists them.
    pub fn from_name(name: &str) -> Option<Codec> {
        ALL_CODECS
            .into_iter()
            .find(|c| name.trim().eq_ignore_ascii_case(c.encoding_name()))
    }
}
