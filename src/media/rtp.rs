//! One call's RTP (RFC 3550) with `rtp-rs`: the outbound stream (one SSRC,
//! continuous sequence and timestamp across prompts and the mix, marker on
//! the first packet) and symmetric RTP (RFC 4961 practice): media is sent to
//! where the caller's media really comes from once it has been seen,
//! otherwise to the SDP address.
//!
//! Sans-IO: the call task owns the socket and the clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;
use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};

use super::codec::{self, Encoder, Encoding, OpusParams};
use super::pcm::NARROW_FRAME;
use crate::sip::sdp::Codec;

/// The outbound stream of one leg: its own encoder (for what the call
/// itself sends: prompts), RTP numbering, and packets around payloads the
/// room encoded once for many legs.
pub struct Outbound {
    codec: Codec,
    /// The Opus settings `encoder` was opened with.
    opus: OpusParams,
    encoder: Box<dyn Encoder>,
    payload_type: u8,
    ssrc: u32,
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
    pub fn new(codec: Codec, payload_type: u8) -> Outbound {
        Outbound::with_params(codec, payload_type, OpusParams::default())
    }

    pub fn with_params(codec: Codec, payload_type: u8, opus: OpusParams) -> Outbound {
        let mut rng = rand::rng();
        Outbound {
            codec,
            opus,
            encoder: codec::encoder(codec, opus),
            payload_type,
            ssrc: rng.random(),
            seq: rng.random(),
            timestamp: rng.random(),
            first: true,
            payload: Vec::with_capacity(NARROW_FRAME),
            built: Vec::with_capacity(RTP_HEADER + NARROW_FRAME),
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Goes on in another codec (a re-INVITE changed it): same SSRC, the
    /// sequence continues, a fresh encoder.
    pub fn set_codec(&mut self, codec: Codec, payload_type: u8, opus: OpusParams) {
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

    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    /// Encodes one 20 ms frame (320 samples at 16 kHz; shorter is padded with silence)
    /// into the next packet, built in this stream's own buffer.
    pub fn packet(&mut self, pcm: &[i16]) -> &[u8] {
        let mut payload = std::mem::take(&mut self.payload);
        self.encoder.encode(pcm, &mut payload);
        self.build(&payload);
        self.payload = payload;
        &self.built
    }

    /// The next packet of this stream around an already encoded 20 ms
    /// payload, built in this stream's own buffer (no allocation per packet).
    pub fn packet_with(&mut self, payload: &[u8]) -> &[u8] {
        self.build(payload);
        &self.built
    }

    fn build(&mut self, payload: &[u8]) {
        let builder = RtpPacketBuilder::new()
            .payload_type(self.payload_type)
            .ssrc(self.ssrc)
            .sequence(Seq::from(self.seq))
            .timestamp(self.timestamp)
            .marked(self.first)
            .payload(payload);
        self.built.resize(RTP_HEADER + payload.len(), 0);
        // Fails only for >15 CSRCs or a bad payload type, neither possible
        // here, or a short buffer, which the resize rules out.
        let len = builder.build_into(&mut self.built).unwrap_or(0);
        self.built.truncate(len);
        self.first = false;
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self
            .timestamp
            .wrapping_add(codec::timestamp_step(self.codec));
    }
}

/// An inbound RTP packet's fields the call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// Reads an RTP packet; `None` for anything that is not RTP version 2.
pub fn read(buf: &[u8]) -> Option<(Header, &[u8])> {
    let r = RtpReader::new(buf).ok()?;
    if r.version() != 2 {
        return None;
    }
    let header = Header {
        payload_type: r.payload_type(),
        marker: r.mark(),
        sequence: u16::from(r.sequence_number()),
        timestamp: r.timestamp(),
        ssrc: r.ssrc(),
    };
    Some((header, r.payload()))
}

/// How long the latched source must be silent before another may take over.
pub const RELATCH_AFTER: Duration = Duration::from_secs(1);

/// Symmetric RTP: where to send.
#[derive(Debug, Clone)]
pub struct Latch {
    signalled: Option<SocketAddr>,
    latched: Option<(SocketAddr, Instant)>,
}

impl Latch {
    pub fn new(signalled: Option<SocketAddr>) -> Latch {
        Latch {
            signalled,
            latched: None,
        }
    }

    /// A valid packet of the call's negotiated payload types came from
    /// `source`. Returns whether it comes from the latched source (after
    /// latching to it if none is active); others are to be dropped.
    #[must_use]
    pub fn on_media(&mut self, now: Instant, source: SocketAddr) -> bool {
        match &mut self.latched {
            Some((addr, seen)) if *addr == source => {
                *seen = now;
                true
            }
            Some((_, seen)) if now.duration_since(*seen) < RELATCH_AFTER => false,
            _ => {
                self.latched = Some((source, now));
                true
            }
        }
    }

    pub fn destination(&self) -> Option<SocketAddr> {
        self.latched.map(|(a, _)| a).or(self.signalled)
    }

    /// The address the far end signalled (its SDP).
    pub fn signalled(&self) -> Option<SocketAddr> {
        self.signalled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbound_has_one_ssrc_continuous_seq_and_ts_and_marker_first() {
        let mut out = Outbound::new(Codec::Pcmu, 0);
        let a = out.packet(&[0; 320]).to_vec();
        let b = out.packet(&[0; 320]).to_vec();
        let (ha, pa) = read(&a).unwrap();
        let (hb, _) = read(&b).unwrap();
        assert!(ha.marker);
        assert!(!hb.marker);
        assert_eq!(ha.ssrc, hb.ssrc);
        assert_eq!(hb.sequence, ha.sequence.wrapping_add(1));
        assert_eq!(hb.timestamp, ha.timestamp.wrapping_add(160));
        assert_eq!(pa.len(), 160);
        assert!(pa.iter().all(|b| *b == 0xFF));
    }

    #[test]
    fn short_frame_is_padded_to_20_ms() {
        let mut out = Outbound::new(Codec::Pcma, 8);
        let p = out.packet(&[0; 10]).to_vec();
        assert_eq!(read(&p).unwrap().1.len(), 160);
    }

    #[test]
    fn latch_follows_real_source_but_not_a_stray_packet() {
        let t0 = Instant::now();
        let sdp: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let real: SocketAddr = "127.0.0.1:4002".parse().unwrap();
        let stray: SocketAddr = "127.0.0.1:9999".parse().unwrap();
        let mut l = Latch::new(Some(sdp));
        assert_eq!(l.destination(), Some(sdp));
        assert!(l.on_media(t0, real));
        assert_eq!(l.destination(), Some(real));
        assert!(
            !l.on_media(t0 + Duration::from_millis(20), stray),
            "stray media is dropped"
        );
        assert_eq!(
            l.destination(),
            Some(real),
            "a stray packet does not steal the stream"
        );
        assert!(l.on_media(t0 + Duration::from_secs(2), stray));
        assert_eq!(
            l.destination(),
            Some(stray),
            "after the real source went quiet, re-latch"
        );
    }

    #[test]
    fn non_rtp_is_rejected() {
        assert!(read(&[0u8; 4]).is_none());
        assert!(read(&[0x40; 20]).is_none());
    }
}
