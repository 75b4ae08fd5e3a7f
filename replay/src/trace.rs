//! Reading recorded calls: pcap and pcapng captures, and plain-text SIP
//! message dumps, into one list of timed UDP datagrams.
//!
//! Captures: classic pcap (either byte order, µs or ns) and pcapng, with
//! Ethernet, Linux cooked (SLL, SLL2), raw IP and BSD loopback link types,
//! IPv4 and IPv6, UDP only. IP fragments and TCP segments are skipped and
//! counted: SIP over TCP would need stream reassembly, which a replay of a
//! caller's side does not need (phones and trunks call over UDP).
//!
//! The text format is ngrep's `-W byline` / sngrep's "save as text" shape:
//!
//! ```text
//! U 2026/11/23 10:00:00.123456 127.0.0.1:5062 -> 127.0.0.1:5060
//! INVITE sip:+15550100@127.0.0.1:5060 SIP/2.0
//! Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1
//! …
//!
//! v=0
//! …
//! ```
//!
//! A header line is an optional protocol letter (`U`), a date
//! (`YYYY/MM/DD` or `YYYY-MM-DD`), a time with fraction, `SRC -> DST`, and
//! an optional `#N` counter; the lines up to the next header line are one
//! SIP message. Lines starting with `#` before a header line are comments.
//! Text captures hold SIP only, no RTP: line ends are rewritten as CRLF and
//! trailing blank lines dropped, and the body is cut to `Content-Length`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use chrono::NaiveDateTime;
use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use pcap_file::DataLink;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};

/// One UDP datagram of a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// From the trace's first datagram.
    pub at: Duration,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: Vec<u8>,
}

/// A recorded call (or several): datagrams in capture order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    pub datagrams: Vec<Datagram>,
    /// Captured packets that were not UDP over IP (TCP, ARP, fragments…).
    pub skipped: usize,
}

#[derive(thiserror::Error, Debug)]
pub enum TraceError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("not a readable capture: {0}")]
    Capture(String),
    #[error("link type {0:?} is not supported (Ethernet, Linux SLL/SLL2, raw IP, loopback are)")]
    LinkType(DataLink),
    #[error("line {line}: {reason}")]
    Text { line: usize, reason: &'static str },
    #[error("the trace holds no datagram")]
    Empty,
}

const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xD4, 0xC3, 0xB2, 0xA1],
    [0xA1, 0xB2, 0xC3, 0xD4],
    [0x4D, 0x3C, 0xB2, 0xA1],
    [0xA1, 0xB2, 0x3C, 0x4D],
];
const PCAPNG_MAGIC: [u8; 4] = [0x0A, 0x0D, 0x0D, 0x0A];

/// Reads a trace file, telling pcap, pcapng and text apart by content.
pub fn read(path: &Path) -> Result<Trace, TraceError> {
    let bytes = std::fs::read(path).map_err(|source| TraceError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&bytes)
}

/// Parses a trace held in memory (any of the three formats).
pub fn parse(bytes: &[u8]) -> Result<Trace, TraceError> {
    let magic: Option<[u8; 4]> = bytes.get(..4).and_then(|m| m.try_into().ok());
    let trace = match magic {
        Some(m) if PCAP_MAGICS.contains(&m) => from_pcap(bytes)?,
        Some(m) if m == PCAPNG_MAGIC => from_pcapng(bytes)?,
        _ => from_text(&String::from_utf8_lossy(bytes))?,
    };
    if trace.datagrams.is_empty() {
        return Err(TraceError::Empty);
    }
    Ok(trace)
}

fn capture_error(e: pcap_file::PcapError) -> TraceError {
    TraceError::Capture(e.to_string())
}

struct Collector {
    first: Option<Duration>,
    trace: Trace,
}

impl Collector {
    fn new() -> Self {
        Collector {
            first: None,
            trace: Trace::default(),
        }
    }

    fn push(&mut self, timestamp: Duration, link: DataLink, frame: &[u8]) {
        match udp_of(link, frame) {
            Some((src, dst, payload)) => {
                let first = *self.first.get_or_insert(timestamp);
                self.trace.datagrams.push(Datagram {
                    at: timestamp.saturating_sub(first),
                    src,
                    dst,
                    payload: payload.to_vec(),
                });
            }
            None => self.trace.skipped += 1,
        }
    }
}

fn supported(link: DataLink) -> Result<DataLink, TraceError> {
    match link {
        DataLink::ETHERNET
        | DataLink::LINUX_SLL
        | DataLink::LINUX_SLL2
        | DataLink::RAW
        | DataLink::IPV4
        | DataLink::IPV6
        | DataLink::NULL
        | DataLink::LOOP => Ok(link),
        other => Err(TraceError::LinkType(other)),
    }
}

fn from_pcap(bytes: &[u8]) -> Result<Trace, TraceError> {
    let mut reader = PcapReader::new(bytes).map_err(capture_error)?;
    let link = supported(reader.header().datalink)?;
    let mut c = Collector::new();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.map_err(capture_error)?;
        c.push(packet.timestamp, link, &packet.data);
    }
    Ok(c.trace)
}

fn from_pcapng(bytes: &[u8]) -> Result<Trace, TraceError> {
    let mut reader = PcapNgReader::new(bytes).map_err(capture_error)?;
    let mut c = Collector::new();
    while let Some(block) = reader.next_block() {
        let block = block.map_err(capture_error)?;
        // Owned, so the reader can be asked about the interface.
        let (interface, timestamp, data): (u32, Duration, Vec<u8>) = match block {
            Block::EnhancedPacket(p) => (p.interface_id, p.timestamp, p.data.into_owned()),
            Block::SimplePacket(p) => (0, Duration::ZERO, p.data.into_owned()),
            _ => continue,
        };
        let Some(idb) = reader.interfaces().get(interface as usize) else {
            return Err(TraceError::Capture(format!(
                "packet names interface {interface}, which is not described"
            )));
        };
        let link = supported(idb.linktype)?;
        c.push(timestamp, link, &data);
    }
    Ok(c.trace)
}

/// The UDP datagram in a captured frame, if it holds one. etherparse
/// reads the frame (Ethernet with VLAN tags, IPv4, IPv6 with its extension
/// headers, UDP), laxly: a datagram cut short by the capture's snap length
/// keeps what was captured, and an IPv4 fragment is not a whole datagram.
pub fn udp_of(link: DataLink, frame: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    let ether_type = |at: usize| {
        Some(EtherType(u16::from_be_bytes([
            *frame.get(at)?,
            *frame.get(at + 1)?,
        ])))
    };
    let sliced = match link {
        DataLink::ETHERNET => LaxSlicedPacket::from_ethernet(frame).ok()?,
        DataLink::LINUX_SLL => LaxSlicedPacket::from_ether_type(ether_type(14)?, frame.get(16..)?),
        DataLink::LINUX_SLL2 => LaxSlicedPacket::from_ether_type(ether_type(0)?, frame.get(20..)?),
        DataLink::NULL | DataLink::LOOP => LaxSlicedPacket::from_ip(frame.get(4..)?).ok()?,
        _ => LaxSlicedPacket::from_ip(frame).ok()?,
    };
    let (src, dst) = match sliced.net? {
        LaxNetSlice::Ipv4(ip) => {
            let h = ip.header();
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
            )
        }
        LaxNetSlice::Ipv6(ip) => {
            let h = ip.header();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
            )
        }
        LaxNetSlice::Arp(_) => return None,
    };
    let TransportSlice::Udp(udp) = sliced.transport? else {
        return None;
    };
    Some((
        SocketAddr::new(src, udp.source_port()),
        SocketAddr::new(dst, udp.destination_port()),
        udp.payload(),
    ))
}

/// A text capture's header line: `[U] DATE TIME SRC -> DST [#N]`.
fn header_line(line: &str) -> Option<(NaiveDateTime, SocketAddr, SocketAddr)> {
    let mut words = line.split_whitespace().peekable();
    if words.peek().is_some_and(|w| *w == "U") {
        words.next();
    }
    let date = words.next()?.replace('-', "/");
    let time = words.next()?;
    let stamp =
        NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y/%m/%d %H:%M:%S%.f").ok()?;
    let src = words.next()?.parse().ok()?;
    (words.next()? == "->").then_some(())?;
    let dst = words.next()?.parse().ok()?;
    match words.next() {
        None => {}
        Some(w) if w.starts_with('#') => {}
        Some(_) => return None,
    }
    Some((stamp, src, dst))
}

/// Reads a text capture (see the module docs).
pub fn from_text(text: &str) -> Result<Trace, TraceError> {
    let mut trace = Trace::default();
    let mut first: Option<NaiveDateTime> = None;
    let mut current: Option<(NaiveDateTime, SocketAddr, SocketAddr, Vec<&str>)> = None;
    let mut finish = |current: Option<(NaiveDateTime, SocketAddr, SocketAddr, Vec<&str>)>,
                      trace: &mut Trace| {
        if let Some((stamp, src, dst, lines)) = current {
            let start = *first.get_or_insert(stamp);
            let at = (stamp - start).to_std().unwrap_or_default();
            trace.datagrams.push(Datagram {
                at,
                src,
                dst,
                payload: message_bytes(&lines),
            });
        }
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some((stamp, src, dst)) = header_line(line) {
            finish(current.take(), &mut trace);
            current = Some((stamp, src, dst, Vec::new()));
        } else if let Some((_, _, _, lines)) = &mut current {
            lines.push(line);
        } else if !(line.trim().is_empty() || line.starts_with('#')) {
            return Err(TraceError::Text {
                line: n + 1,
                reason: "expected a header line `U DATE TIME SRC -> DST`",
            });
        }
    }
    finish(current.take(), &mut trace);
    if trace.datagrams.windows(2).any(|w| w[1].at < w[0].at) {
        return Err(TraceError::Text {
            line: 0,
            reason: "header times go backwards",
        });
    }
    Ok(trace)
}

/// One dumped message's lines as SIP bytes: CRLF line ends, the body cut to
/// its Content-Length.
fn message_bytes(lines: &[&str]) -> Vec<u8> {
    let mut lines = lines.to_vec();
    while lines.first().is_some_and(|l| l.trim().is_empty()) {
        lines.remove(0);
    }
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    let split = lines.iter().position(|l| l.is_empty());
    let (head, body) = match split {
        Some(i) => (&lines[..i], &lines[i + 1..]),
        None => (&lines[..], &[][..]),
    };
    let mut out = head.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\n\r\n");
    let mut body_bytes = Vec::new();
    for l in body {
        body_bytes.extend_from_slice(l.as_bytes());
        body_bytes.extend_from_slice(b"\r\n");
    }
    let declared = head.iter().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("content-length") || name == "l")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    if let Some(len) = declared {
        body_bytes.truncate(len);
    }
    out.extend_from_slice(&body_bytes);
    out
}

/// Writes the SIP datagrams of a trace in the text format (RTP is left out).
pub fn to_text(trace: &Trace, start: NaiveDateTime) -> String {
    let mut out = String::new();
    for d in &trace.datagrams {
        if !looks_like_sip(&d.payload) {
            continue;
        }
        let stamp = start + chrono::Duration::from_std(d.at).unwrap_or_default();
        out.push_str(&format!(
            "U {} {} -> {}\n",
            stamp.format("%Y/%m/%d %H:%M:%S%.6f"),
            d.src,
            d.dst
        ));
        let text = String::from_utf8_lossy(&d.payload);
        for line in text.split("\r\n") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A SIP request or response rather than RTP: starts with a method token
/// and a space, or with `SIP/2.0 `.
pub fn looks_like_sip(payload: &[u8]) -> bool {
    if payload.starts_with(b"SIP/2.0 ") {
        return true;
    }
    let token = payload
        .iter()
        .take_while(|b| b.is_ascii_uppercase())
        .count();
    token >= 3 && payload.get(token) == Some(&b' ')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::TimedPacket;

    const INVITE: &str = "INVITE sip:+15550100@127.0.0.1:5060 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n\
        Call-ID: a@b\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n\
        Content-Length: 10\r\n\r\nv=0\r\ns=-\r\n";

    /// Found by the `trace` fuzz target: an IPv4 packet whose UDP part is
    /// shorter than the UDP header panicked in a clamp.
    #[test]
    fn a_udp_header_cut_short_is_no_datagram() {
        let mut ip = vec![0x45, 0, 0, 26, 0, 0, 0, 0, 64, 17, 0, 0];
        ip.extend([127, 0, 0, 1, 127, 0, 0, 2]);
        ip.extend([0x13, 0xc4, 0x13, 0xc4, 0, 4]); // six of the eight bytes
        assert_eq!(udp_of(DataLink::RAW, &ip), None);
        // Whole, with a length that counts less than its own header: read
        // laxly (etherparse), it holds at most what follows the header.
        ip[3] = 29;
        ip.extend([0, 0, b'x']);
        let (_, _, payload) = udp_of(DataLink::RAW, &ip).expect("a datagram");
        assert!(payload.len() <= 1, "{payload:?}");
    }

    #[test]
    fn an_ipv4_fragment_is_no_datagram() {
        let udp = [0x13, 0xc4, 0x13, 0xc4, 0, 9, 0, 0, b'x'];
        let ip = |flags_fragment: u16| {
            let mut ip = vec![0x45, 0, 0, 29, 0, 1];
            ip.extend(flags_fragment.to_be_bytes());
            ip.extend([64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 2]);
            ip.extend(udp);
            ip
        };
        assert!(udp_of(DataLink::RAW, &ip(0)).is_some(), "whole");
        // More fragments follow; or a later fragment (offset 8 bytes).
        assert_eq!(udp_of(DataLink::RAW, &ip(0x2000)), None);
        assert_eq!(udp_of(DataLink::RAW, &ip(0x0001)), None);
    }

    #[test]
    fn text_capture_round_trips_through_to_text() {
        let text = format!(
            "# made by hand\nU 2026/11/23 10:00:00.100000 127.0.0.1:5062 -> 127.0.0.1:5060\n{}\n\n\
             2026-11-23 10:00:00.350000 127.0.0.1:5060 -> 127.0.0.1:5062 #2\nSIP/2.0 100 Trying\nCall-ID: a@b\n\n",
            INVITE.replace("\r\n", "\n")
        );
        let trace = from_text(&text).unwrap();
        assert_eq!(trace.datagrams.len(), 2);
        assert_eq!(trace.datagrams[0].payload, INVITE.as_bytes());
        assert_eq!(trace.datagrams[1].at, Duration::from_millis(250));
        assert_eq!(trace.datagrams[1].src, "127.0.0.1:5060".parse().unwrap());
        let start =
            NaiveDateTime::parse_from_str("2026/11/23 09:00:00", "%Y/%m/%d %H:%M:%S").unwrap();
        let again = from_text(&to_text(&trace, start)).unwrap();
        assert_eq!(again, trace);
    }

    #[test]
    fn text_without_a_header_line_is_refused_with_its_line() {
        let err = from_text("\nINVITE sip:x SIP/2.0\n").unwrap_err();
        assert!(matches!(err, TraceError::Text { line: 2, .. }), "{err}");
    }

    #[test]
    fn pcap_datagrams_keep_addresses_payload_and_relative_time() {
        let packets = vec![
            TimedPacket {
                at: Duration::from_millis(5),
                bytes: INVITE.as_bytes().to_vec(),
            },
            TimedPacket {
                at: Duration::from_millis(1025),
                bytes: vec![0x80, 0, 0, 1],
            },
        ];
        let mut file = Vec::new();
        crate::pcap::write_udp(
            &mut file,
            "127.0.0.1:5062".parse().unwrap(),
            "127.0.0.2:5060".parse().unwrap(),
            1_700_000_000,
            &packets,
        )
        .unwrap();
        let trace = parse(&file).unwrap();
        assert_eq!(trace.skipped, 0);
        assert_eq!(trace.datagrams.len(), 2);
        assert_eq!(trace.datagrams[0].at, Duration::ZERO);
        assert_eq!(trace.datagrams[1].at, Duration::from_millis(1020));
        assert_eq!(trace.datagrams[0].dst, "127.0.0.2:5060".parse().unwrap());
        assert_eq!(trace.datagrams[1].payload, vec![0x80, 0, 0, 1]);
        assert!(looks_like_sip(&trace.datagrams[0].payload));
        assert!(!looks_like_sip(&trace.datagrams[1].payload));
    }

    #[test]
    fn truncated_or_hostile_frames_are_skipped_not_panicked_on() {
        for len in 0..60 {
            let frame = vec![0x45u8; len];
            for link in [DataLink::ETHERNET, DataLink::LINUX_SLL, DataLink::RAW] {
                let _ = udp_of(link, &frame);
            }
        }
        assert!(parse(b"\xD4\xC3\xB2\xA1garbage").is_err());
        assert!(parse(b"").is_err());
    }
}
