//! One call's RTP (RFC 3550) with `rtp-rs`: the outbound stream (one SSRC,
//! continuous sequence and timestamp across prompts and the mix, marker on
//! the first packet) and symmetric RTP (RFC 4961 practice), restricted to
//! the caller: media is sent to where the caller's media really comes from
//! once it has been seen from one of the caller's own addresses
//! ([`Latch`]), otherwise to the SDP address.
//!
//! Sans-IO: the call task owns the socket and the clock.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::Rng;
use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};

use super::codec::{self, Encoder, Encoding, OpusParams};
pub use super::payload::PayloadType;
use super::pcm::NARROW_FRAME;
use crate::media::Codec;

/// An RTP stream's synchronisation source identifier (RFC 3550 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ssrc(pub u32);

/// The outbound stream of one leg: its own encoder (for what the call
/// itself sends: prompts), RTP numbering, and packets around payloads the
/// room encoded once for many legs.
pub struct Outbound {
    codec: Codec,
    /// The Opus settings `encoder` was opened with.
    opus: OpusParams,
    encoder: Box<dyn Encoder>,
    payload_type: PayloadType,
    ssrc: Ssrc,
    seq: u16,
    timestamp: u32,
    first: bool,
    payload: Vec<u8>,
    /// The packet last built.
    built: Vec<u8>,
}

/// RTP's fixed header: we send no CSRCs and no extension.
const RTP_HEADER: usize = 12;

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("codec", &self.codec)
            .field("payload_type", &self.payload_type)
            .field("ssrc", &self.ssrc)
            .finish_non_exhaustive()
    }
}

impl Outbound {
    /// A stream whose SSRC, first sequence number and first timestamp
    /// (random, RFC 3550 §5.1) are drawn from `rng`.
    pub fn new(codec: Codec, payload_type: PayloadType, rng: &mut impl Rng) -> Outbound {
        Outbound::with_params(codec, payload_type, OpusParams::default(), rng)
    }

    pub fn with_params(
        codec: Codec,
        payload_type: PayloadType,
        opus: OpusParams,
        rng: &mut impl Rng,
    ) -> Outbound {
        Outbound {
            codec,
            opus,
            encoder: codec::encoder(codec, opus),
            payload_type,
            ssrc: Ssrc(rng.random()),
            seq: rng.random(),
            timestamp: rng.random(),
            first: true,
            payload: Vec::with_capacity(NARROW_FRAME),
            built: Vec::with_capacity(RTP_HEADER + NARROW_FRAME),
        }
    }

    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    /// Goes on in another codec (a re-INVITE changed it): same SSRC, the
    /// sequence continues, a fresh encoder.
    pub fn set_codec(&mut self, codec: Codec, payload_type: PayloadType, opus: OpusParams) {
        self.codec = codec;
        self.payload_type = payload_type;
        self.opus = opus;
        self.encoder = codec::encoder(codec, opus);
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// What this stream's own encoder produces: what a payload given to
    /// [`Outbound::packet_with`] must be encoded as.
    pub fn encoding(&self) -> Encoding {
        Encoding {
            codec: self.codec,
            opus: self.opus,
        }
    }

    pub fn payload_type(&self) -> PayloadType {
        self.payload_type
    }

    /// Encodes one 20 ms frame (320 samples at 16 kHz; shorter is padded with silence)
    /// into the next packet, built in this stream's own buffer; `None` if
    /// no packet could be built (then the stream does not move on).
    #[must_use]
    pub fn packet(&mut self, pcm: &[i16]) -> Option<&[u8]> {
        let mut payload = std::mem::take(&mut self.payload);
        self.encoder.encode(pcm, &mut payload);
        let built = self.build(&payload);
        self.payload = payload;
        built.then_some(&self.built[..])
    }

    /// The next packet of a G.711 stream from 20 ms of 8 kHz PCM, encoded
    /// as it is (no filter); `None` for another codec, or if it could not
    /// be built.
    #[must_use]
    pub fn packet_narrow(&mut self, narrow: &[i16]) -> Option<&[u8]> {
        let mut payload = std::mem::take(&mut self.payload);
        let built = self.encoder.encode_narrow(narrow, &mut payload) && self.build(&payload);
        self.payload = payload;
        built.then_some(&self.built[..])
    }

    /// The next packet of this stream around an already encoded 20 ms
    /// payload, built in this stream's own buffer (no allocation per
    /// packet); `None` if it could not be built.
    #[must_use]
    pub fn packet_with(&mut self, payload: &[u8]) -> Option<&[u8]> {
        self.build(payload).then_some(&self.built[..])
    }

    /// Builds the next packet; false (sequence and timestamp unchanged)
    /// if `rtp-rs` refuses it.
    fn build(&mut self, payload: &[u8]) -> bool {
        let builder = RtpPacketBuilder::new()
            .payload_type(self.payload_type.0)
            .ssrc(self.ssrc.0)
            .sequence(Seq::from(self.seq))
            .timestamp(self.timestamp)
            .marked(self.first)
            .payload(payload);
        self.built.resize(RTP_HEADER + payload.len(), 0);
        // Fails only for >15 CSRCs or a bad payload type, neither possible
        // here, or a short buffer, which the resize rules out; were it to
        // fail, nothing is sent rather than an empty datagram.
        let Ok(len) = builder.build_into(&mut self.built) else {
            return false;
        };
        self.built.truncate(len);
        self.first = false;
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self
            .timestamp
            .wrapping_add(codec::timestamp_step(self.codec));
        true
    }
}

/// An inbound RTP packet's fields the call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub payload_type: PayloadType,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: Ssrc,
}

/// Reads an RTP packet; `None` for anything that is not RTP version 2.
pub fn read(buf: &[u8]) -> Option<(Header, &[u8])> {
    let r = RtpReader::new(buf).ok()?;
    if r.version() != 2 {
        return None;
    }
    let header = Header {
        payload_type: PayloadType(r.payload_type()),
        marker: r.mark(),
        sequence: u16::from(r.sequence_number()),
        timestamp: r.timestamp(),
        ssrc: Ssrc(r.ssrc()),
    };
    Some((header, r.payload()))
}

/// How long the latched source must be silent before another of the
/// caller's addresses may take over.
pub const RELATCH_AFTER: Duration = Duration::from_secs(1);

/// How far past the latched stream's last sequence number a packet from a
/// new port of the caller may be and still be the same stream moved (a NAT
/// rebinding mid-call).
const CONTINUITY: u16 = 64;

/// Symmetric RTP, restricted to the caller: where to send, and which
/// packets are the caller's.
///
/// A stream is only taken from the caller's own addresses — the IP its SDP
/// signalled (any port: a NAT rewrites ports, not the address it named), the
/// IP its INVITE came from (a caller behind NAT sends media from its public
/// address), or a trusted peer (an SBC relaying media). Anything else is
/// dropped before it can carry a digit or be sent a frame: a stranger who
/// guesses the port gets nothing. Once latched, the stream moves to another
/// of those addresses only with evidence that it is the caller's: the same
/// SSRC with its sequence numbers continuing, or the latched source silent
/// for [`RELATCH_AFTER`].
#[derive(Debug, Clone)]
pub struct Latch {
    signalled: Option<SocketAddr>,
    /// Where else the caller's media may come from: the INVITE's source IP
    /// and the trusted peers.
    peers: Vec<IpAddr>,
    latched: Option<Latched>,
}

/// The stream latched to, and what was last seen of it.
#[derive(Debug, Clone, Copy)]
struct Latched {
    source: SocketAddr,
    seen: Instant,
    ssrc: Ssrc,
    sequence: u16,
}

impl Latched {
    fn new(now: Instant, source: SocketAddr, header: &Header) -> Latched {
        Latched {
            source,
            seen: now,
            ssrc: header.ssrc,
            sequence: header.sequence,
        }
    }

    /// The packet continues this stream: same SSRC, sequence a little ahead.
    fn continued_by(&self, header: &Header) -> bool {
        let ahead = header.sequence.wrapping_sub(self.sequence);
        header.ssrc == self.ssrc && (1..=CONTINUITY).contains(&ahead)
    }
}

impl Latch {
    /// A latch for a caller whose SDP named `signalled`, whose media may
    /// also come from `peers` (its signalling source, trusted peers).
    pub fn new(signalled: Option<SocketAddr>, peers: Vec<IpAddr>) -> Latch {
        let mut latch = Latch {
            signalled,
            peers: Vec::with_capacity(peers.len()),
            latched: None,
        };
        latch.add_peers(&peers);
        latch
    }

    /// A new offer named `signalled`: latching starts afresh there, the
    /// caller's other addresses are kept.
    pub fn resignal(&mut self, signalled: Option<SocketAddr>) {
        self.signalled = signalled;
        self.latched = None;
    }

    /// The caller's media may also come from `ips` (an accepted re-INVITE
    /// came from there: a phone behind NAT that moved).
    pub fn add_peers(&mut self, ips: &[IpAddr]) {
        for ip in ips.iter().map(|ip| ip.to_canonical()) {
            if !self.peers.contains(&ip) {
                self.peers.push(ip);
            }
        }
    }

    /// Whether `source` is one of the addresses the caller's media may come from.
    fn is_callers(&self, source: SocketAddr) -> bool {
        let ip = source.ip().to_canonical();
        self.signalled.is_some_and(|s| s.ip().to_canonical() == ip) || self.peers.contains(&ip)
    }

    /// A valid packet of the call's negotiated payload types came from
    /// `source`. Returns whether it is the caller's stream (after latching
    /// to it, or moving there, where the rules allow); others are to be
    /// dropped whole: no digits, no audio, no reply.
    #[must_use]
    pub fn on_media(&mut self, now: Instant, source: SocketAddr, header: &Header) -> bool {
        if !self.is_callers(source) {
            return false;
        }
        match &mut self.latched {
            Some(l) if l.source == source => {
                l.seen = now;
                l.ssrc = header.ssrc;
                l.sequence = header.sequence;
                true
            }
            Some(l) if !l.continued_by(header) && now.duration_since(l.seen) < RELATCH_AFTER => {
                false
            }
            _ => {
                self.latched = Some(Latched::new(now, source, header));
                true
            }
        }
    }

    pub fn destination(&self) -> Option<SocketAddr> {
        self.latched.map(|l| l.source).or(self.signalled)
    }

    /// The address the far end signalled (its SDP).
    pub fn signalled(&self) -> Option<SocketAddr> {
        self.signalled
    }
}

#[cfg(test)]
mod tests;
