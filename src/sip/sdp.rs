//! SDP offer/answer for audio calls: the RFC 4566 subset a telephony user
//! agent needs, and RFC 3264 answers to an INVITE's offer.
//!
//! [`answer`] parses an offer and builds the answer in one step:
//!
//! - Parsing (RFC 4566 §5) takes CRLF or LF line ends, skips unknown lines and
//!   attributes, and never panics. `v=0` must come first; `o=` and a `c=`
//!   (session-level, or media-level for the chosen stream, §5.7) must exist.
//! - The answer has one `m=` line per offered stream, in order (RFC 3264 §6).
//!   The first `m=audio` over `RTP/AVP` with a non-zero port and a codec we
//!   allow is accepted; every other stream (video, T.38 `image`, a second
//!   audio, `RTP/SAVP`) is answered with port 0, its media type, proto and
//!   first format.
//! - Codecs: PCMU (static pt 0), PCMA (8) and G.722 (9) at an 8000 RTP
//!   clock, Opus (`opus/48000/2`, RFC 7587, always dynamic), or any payload
//!   type an `a=rtpmap` maps to them. Our list is in preference order: the
//!   first of ours the offer carries wins (the answerer's choice, RFC 3264
//!   §6.1), and the answer carries it alone. For Opus the answer asks for
//!   in-band FEC (`useinbandfec=1`) and the offer's `maxaveragebitrate`
//!   caps our encoder. telephone-event (RFC 4733) at the codec's clock
//!   (else at 8000) is answered with the offerer's payload type and `0-16`.
//! - Direction (RFC 3264 §6.1): media-level overrides session-level, default
//!   sendrecv; the answer mirrors it (sendonly ↔ recvonly).
//!
//! Left out on purpose: SRTP/SAVP and AVPF (rejected), ICE, `b=`, RTCP
//! attributes, multicast semantics, other codecs, and any memory
//! of earlier offers (the caller bumps `session_version` on re-INVITEs).
//! We always send 20 ms packets; an offered `a=ptime` is only recorded (we
//! take the caller's packets at any length: `media::jitter` reads it from
//! the timestamps).

use std::net::{IpAddr, SocketAddr};

use crate::media::rtp::PayloadType;
use crate::media::{ALL_CODECS, Codec};

/// Clock rate of every codec and of telephone-event here.
const RATE_8K: u32 = 8000;
/// Packet time we send, and assume when the offer does not say.
const PTIME_MS: u32 = 20;
const TELEPHONE_EVENT: &str = "telephone-event";
/// The Opus bitrate our answers ask the far end not to exceed.
const OPUS_BITRATE: u32 = 24_000;

/// Codecs the offer names: by static payload type (RFC 3551) or by
/// `a=rtpmap`.
fn codec_of_static(pt: u8) -> Option<Codec> {
    [Codec::Pcmu, Codec::Pcma, Codec::G722]
        .into_iter()
        .find(|c| c.payload_type() == PayloadType(pt))
}

fn codec_of_rtpmap(map: &RtpMap<'_>) -> Option<Codec> {
    let codec = ALL_CODECS
        .into_iter()
        .find(|c| map.encoding.eq_ignore_ascii_case(c.encoding_name()))?;
    let channels_ok = match codec {
        Codec::Opus => map.channels.is_none_or(|n| n == 1 || n == 2),
        _ => map.channels.is_none_or(|n| n == 1),
    };
    (map.clock_rate == codec.clock_rate() && channels_ok).then_some(codec)
}

/// Stream direction attribute (RFC 3264 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The direction an answer gives to a stream offered with `self` (§6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            same => same,
        }
    }

    fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attribute(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| name.eq_ignore_ascii_case(d.attribute()))
    }
}

/// What offer/answer settled for the accepted audio stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// First codec in the offerer's order that our list allows.
    pub codec: Codec,
    /// Payload type the offer uses for `codec` (static or dynamic).
    pub payload_type: PayloadType,
    /// Offerer's telephone-event payload type, if offered.
    pub telephone_event: Option<PayloadType>,
    /// Its clock rate (the codec's where offered, else 8000).
    pub telephone_event_rate: u32,
    /// The offer's `maxaveragebitrate` for Opus, if any.
    pub max_average_bitrate: Option<u32>,
    /// Where to send RTP; `None` for `0.0.0.0` (hold), port 0 or an address
    /// we cannot use (an FQDN, a type mismatch).
    pub remote_rtp: Option<SocketAddr>,
    /// Offered `a=ptime`, or 20. We send 20 ms regardless.
    pub ptime: u32,
    /// The offerer's direction for the stream.
    pub direction: Direction,
}

/// Our side of the media: what the answer advertises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalMedia {
    /// Address written in `o=` and `c=` (the advertised, not bound, address).
    pub addr: IpAddr,
    /// Our RTP port; must not be 0, which would reject the stream.
    pub port: u16,
    pub session_id: u64,
    pub session_version: u64,
    /// Codecs we allow, most preferred first.
    pub codecs: Vec<Codec>,
}

/// Why an offer cannot be answered. All are the peer's doing.
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum SdpError {
    #[error("malformed SDP: {0}")]
    Malformed(&'static str),
    #[error("offer has no audio stream")]
    NoAudio,
    #[error("no acceptable audio stream (no common codec)")]
    NoCommonCodec,
}

/// Parse an offer and build the answer (CRLF line ends).
pub fn answer(offer: &str, local: &LocalMedia) -> Result<(Negotiated, String), SdpError> {
    let (negotiated, offer, index) = settle(offer, &local.codecs)?;
    let text = write_answer(&offer, index, &negotiated, local);
    Ok((negotiated, text))
}

/// Our offer of exactly the session `neg` settled with a caller — its
/// codec, payload type and telephone-event — from `local` (the leg that
/// relays that caller's packets as they are to another node).
pub fn offer(neg: &Negotiated, local: &LocalMedia) -> String {
    let mut lines = session_lines(local);
    let sendrecv = Negotiated {
        direction: Direction::SendRecv,
        ..neg.clone()
    };
    audio_lines(&mut lines, &sendrecv, local.port, "0-15");
    let mut text = lines.join("\r\n");
    text.push_str("\r\n");
    text
}

/// What the far end's answer to our offer settled (its address, codec and
/// payload types), if it took one of `codecs`.
pub fn read_answer(answer: &str, codecs: &[Codec]) -> Result<Negotiated, SdpError> {
    settle(answer, codecs).map(|(negotiated, _, _)| negotiated)
}

/// The first audio stream of `text` in one of `codecs`: what it settles,
/// the description and the stream's index.
fn settle<'a>(
    text: &'a str,
    codecs: &[Codec],
) -> Result<(Negotiated, Description<'a>, usize), SdpError> {
    let offer = parse(text)?;
    if !offer
        .media
        .iter()
        .any(|m| m.kind.eq_ignore_ascii_case("audio"))
    {
        return Err(SdpError::NoAudio);
    }
    let (index, media, choice) = offer
        .media
        .iter()
        .enumerate()
        .find_map(|(i, m)| m.negotiate(codecs).map(|c| (i, m, c)))
        .ok_or(SdpError::NoCommonCodec)?;
    let connection = media
        .connection
        .or(offer.connection)
        .ok_or(SdpError::Malformed("no c= line for the audio stream"))?;
    let remote_rtp = match connection {
        Connection::Usable(ip) => Some(SocketAddr::new(ip, media.port)),
        Connection::Unusable => None,
    };
    let negotiated = Negotiated {
        codec: choice.codec,
        payload_type: PayloadType(choice.payload_type),
        telephone_event: choice.telephone_event.map(|(pt, _)| PayloadType(pt)),
        telephone_event_rate: choice.telephone_event.map_or(RATE_8K, |(_, rate)| rate),
        max_average_bitrate: choice.max_average_bitrate,
        remote_rtp,
        ptime: media.ptime.unwrap_or(PTIME_MS),
        direction: media
            .direction
            .or(offer.direction)
            .unwrap_or(Direction::SendRecv),
    };
    Ok((negotiated, offer, index))
}

fn write_answer(
    offer: &Description<'_>,
    accepted: usize,
    neg: &Negotiated,
    local: &LocalMedia,
) -> String {
    let mut lines = session_lines(local);
    for (i, media) in offer.media.iter().enumerate() {
        if i != accepted {
            lines.push(format!(
                "m={} 0 {} {}",
                media.kind, media.proto, media.first_format
            ));
            continue;
        }
        let answered = Negotiated {
            direction: neg.direction.answer(),
            ..neg.clone()
        };
        audio_lines(&mut lines, &answered, local.port, "0-16");
    }
    let mut text = lines.join("\r\n");
    text.push_str("\r\n");
    text
}

/// A description's session lines: ours, at `local`'s address.
fn session_lines(local: &LocalMedia) -> Vec<String> {
    let ip = match local.addr {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    };
    vec![
        "v=0".to_owned(),
        format!(
            "o=dialgate {} {} IN {ip} {}",
            local.session_id, local.session_version, local.addr
        ),
        "s=dialgate".to_owned(),
        format!("c=IN {ip} {}", local.addr),
        "t=0 0".to_owned(),
    ]
}

/// The `m=audio` line of `neg` on `port` and its attributes; `events`:
/// the telephone-event `fmtp`.
fn audio_lines(lines: &mut Vec<String>, neg: &Negotiated, port: u16, events: &str) {
    let (pt, map) = (neg.payload_type, neg.codec.rtpmap());
    match neg.telephone_event {
        Some(te) => lines.push(format!("m=audio {port} RTP/AVP {pt} {te}")),
        None => lines.push(format!("m=audio {port} RTP/AVP {pt}")),
    }
    lines.push(format!("a=rtpmap:{pt} {map}"));
    if neg.codec == Codec::Opus {
        lines.push(format!(
            "a=fmtp:{pt} useinbandfec=1; maxaveragebitrate={OPUS_BITRATE}"
        ));
    }
    if let Some(te) = neg.telephone_event {
        let rate = neg.telephone_event_rate;
        lines.push(format!("a=rtpmap:{te} {TELEPHONE_EVENT}/{rate}"));
        lines.push(format!("a=fmtp:{te} {events}"));
    }
    lines.push(format!("a=ptime:{PTIME_MS}"));
    lines.push(format!("a={}", neg.direction.attribute()));
}

/// A parsed session description, borrowing from the offer text.
struct Description<'a> {
    connection: Option<Connection>,
    direction: Option<Direction>,
    media: Vec<Media<'a>>,
}

/// A `c=` line: an address we can send to, or one we cannot.
#[derive(Clone, Copy)]
enum Connection {
    Usable(IpAddr),
    Unusable,
}

struct Media<'a> {
    kind: &'a str,
    port: u16,
    proto: &'a str,
    first_format: &'a str,
    /// RTP payload types in offer order (non-numeric formats dropped).
    payload_types: Vec<u8>,
    connection: Option<Connection>,
    rtpmaps: Vec<RtpMap<'a>>,
    fmtps: Vec<(u8, &'a str)>,
    ptime: Option<u32>,
    direction: Option<Direction>,
}

struct RtpMap<'a> {
    pt: u8,
    encoding: &'a str,
    clock_rate: u32,
    channels: Option<u32>,
}

struct Choice {
    codec: Codec,
    payload_type: u8,
    /// Payload type and clock rate.
    telephone_event: Option<(u8, u32)>,
    max_average_bitrate: Option<u32>,
}

enum Attribute<'a> {
    RtpMap(RtpMap<'a>),
    /// `a=fmtp:<pt> <parameters>`.
    Fmtp(u8, &'a str),
    Ptime(u32),
    Direction(Direction),
}

impl<'a> Media<'a> {
    fn negotiate(&self, allowed: &[Codec]) -> Option<Choice> {
        let usable = self.kind.eq_ignore_ascii_case("audio")
            && self.proto.eq_ignore_ascii_case("RTP/AVP")
            && self.port != 0;
        if !usable {
            return None;
        }
        let offered: Vec<(Codec, u8)> = self
            .payload_types
            .iter()
            .filter_map(|&pt| {
                let codec = match self.rtpmap(pt) {
                    Some(map) => codec_of_rtpmap(map),
                    None => codec_of_static(pt),
                };
                codec.map(|c| (c, pt))
            })
            .collect();
        let (codec, payload_type) = allowed
            .iter()
            .find_map(|want| offered.iter().find(|(c, _)| c == want).copied())?;
        let event_at = |rate: u32| {
            self.payload_types.iter().copied().find(|&pt| {
                self.rtpmap(pt).is_some_and(|m| {
                    m.encoding.eq_ignore_ascii_case(TELEPHONE_EVENT) && m.clock_rate == rate
                })
            })
        };
        let telephone_event = event_at(codec.clock_rate())
            .map(|pt| (pt, codec.clock_rate()))
            .or_else(|| event_at(RATE_8K).map(|pt| (pt, RATE_8K)));
        let max_average_bitrate = self
            .fmtps
            .iter()
            .filter(|(pt, _)| *pt == payload_type)
            .flat_map(|(_, params)| params.split(';'))
            .find_map(|p| {
                let (k, v) = p.trim().split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("maxaveragebitrate")
                    .then(|| v.trim().parse().ok())?
            });
        Some(Choice {
            codec,
            payload_type,
            telephone_event,
            max_average_bitrate,
        })
    }

    /// The first `a=rtpmap` for `pt`; later duplicates are ignored.
    fn rtpmap(&self, pt: u8) -> Option<&RtpMap<'a>> {
        self.rtpmaps.iter().find(|m| m.pt == pt)
    }
}

fn parse(text: &str) -> Result<Description<'_>, SdpError> {
    let mut lines = text
        .split('\n')
        .map(str::trim_end)
        .filter(|l| !l.is_empty());
    if lines.next() != Some("v=0") {
        return Err(SdpError::Malformed("first line is not v=0"));
    }
    let mut desc = Description {
        connection: None,
        direction: None,
        media: Vec::new(),
    };
    let mut has_origin = false;
    for line in lines {
        let Some((kind, value)) = line.split_once('=') else {
            continue;
        };
        match (kind, desc.media.last_mut()) {
            ("o", None) => {
                if value.split_ascii_whitespace().count() != 6 {
                    return Err(SdpError::Malformed("o= line needs six fields"));
                }
                has_origin = true;
            }
            ("c", None) => desc.connection = Some(parse_connection(value)?),
            ("c", Some(media)) => media.connection = Some(parse_connection(value)?),
            ("m", _) => desc.media.push(parse_media(value)?),
            ("a", None) => {
                if let Some(Attribute::Direction(d)) = parse_attribute(value) {
                    desc.direction = Some(d);
                }
            }
            ("a", Some(media)) => match parse_attribute(value) {
                Some(Attribute::RtpMap(map)) => media.rtpmaps.push(map),
                Some(Attribute::Fmtp(pt, params)) => media.fmtps.push((pt, params)),
                Some(Attribute::Ptime(ms)) => media.ptime = Some(ms),
                Some(Attribute::Direction(d)) => media.direction = Some(d),
                None => {}
            },
            _ => {}
        }
    }
    if !has_origin {
        return Err(SdpError::Malformed("no o= line"));
    }
    if desc.connection.is_none() && desc.media.iter().all(|m| m.connection.is_none()) {
        return Err(SdpError::Malformed("no c= line"));
    }
    Ok(desc)
}

/// `c=<nettype> <addrtype> <address>[/ttl][/count]` (RFC 4566 §5.7).
fn parse_connection(value: &str) -> Result<Connection, SdpError> {
    let fields: Vec<&str> = value.split_ascii_whitespace().collect();
    let [net, addr_type, addr] = fields.as_slice() else {
        return Err(SdpError::Malformed("c= line needs three fields"));
    };
    let host = addr.split('/').next().unwrap_or(addr);
    let usable = match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => None,
        Ok(IpAddr::V4(ip)) if addr_type.eq_ignore_ascii_case("IP4") => Some(IpAddr::V4(ip)),
        Ok(IpAddr::V6(ip)) if addr_type.eq_ignore_ascii_case("IP6") => Some(IpAddr::V6(ip)),
        _ => None,
    };
    Ok(match usable {
        Some(ip) if net.eq_ignore_ascii_case("IN") => Connection::Usable(ip),
        _ => Connection::Unusable,
    })
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...` (RFC 4566 §5.14).
fn parse_media(value: &str) -> Result<Media<'_>, SdpError> {
    let mut fields = value.split_ascii_whitespace();
    let (Some(kind), Some(port), Some(proto), Some(first_format)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(SdpError::Malformed(
            "m= line needs media, port, proto and a format",
        ));
    };
    // Media, proto and formats are tokens (RFC 4566 §9): the answer
    // copies them into its own m= lines, so they must be what a reader
    // takes back.
    if ![kind, proto, first_format]
        .iter()
        .all(|f| f.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(SdpError::Malformed(
            "m= line holds a character outside a token",
        ));
    }
    let port = port
        .split('/')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or(SdpError::Malformed("m= port is not a number"))?;
    let payload_types = std::iter::once(first_format)
        .chain(fields)
        .filter_map(|f| f.parse::<u8>().ok())
        .filter(|&pt| pt < 128)
        .collect();
    Ok(Media {
        kind,
        port,
        proto,
        first_format,
        payload_types,
        connection: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        ptime: None,
        direction: None,
    })
}

/// The attributes we act on; anything else (or unparseable) is `None`.
fn parse_attribute(value: &str) -> Option<Attribute<'_>> {
    let (name, arg) = value.split_once(':').unwrap_or((value, ""));
    if name.eq_ignore_ascii_case("rtpmap") {
        parse_rtpmap(arg).map(Attribute::RtpMap)
    } else if name.eq_ignore_ascii_case("fmtp") {
        let (pt, params) = arg.trim().split_once(' ')?;
        let pt = pt.parse().ok().filter(|&pt: &u8| pt < 128)?;
        Some(Attribute::Fmtp(pt, params.trim()))
    } else if name.eq_ignore_ascii_case("ptime") {
        arg.trim()
            .parse()
            .ok()
            .filter(|&ms| ms > 0)
            .map(Attribute::Ptime)
    } else {
        Direction::from_attribute(name).map(Attribute::Direction)
    }
}

/// `a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]` (RFC 4566 §6).
fn parse_rtpmap(arg: &str) -> Option<RtpMap<'_>> {
    let (pt, encoding) = arg.trim().split_once(' ')?;
    let mut parts = encoding.trim().split('/');
    let map = RtpMap {
        pt: pt.parse().ok().filter(|&pt: &u8| pt < 128)?,
        encoding: parts.next()?,
        clock_rate: parts.next()?.parse().ok()?,
        channels: match parts.next() {
            Some(n) => Some(n.parse().ok()?),
            None => None,
        },
    };
    parts.next().is_none().then_some(map)
}

#[cfg(test)]
mod tests;
