//! Writing classic pcap files (libpcap format, Ethernet link type) of UDP
//! datagrams, for SIPp's `play_pcap_audio` and for inspection with tshark.
//! The file format is pcap-file's (`PcapWriter`, little-endian,
//! microseconds); the Ethernet, IPv4 and UDP headers around each datagram
//! are built here.

use std::io::{self, Write};
use std::net::SocketAddrV4;
use std::time::Duration;

use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};

use super::synth::TimedPacket;

/// RFC 1071 checksum of an IPv4 header.
fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// One datagram as an Ethernet frame: locally administered MACs, IPv4
/// (`id` as its identification), UDP without a checksum.
fn udp_frame(src: SocketAddrV4, dst: SocketAddrV4, id: u16, payload: &[u8]) -> io::Result<Vec<u8>> {
    let too_large = || io::Error::new(io::ErrorKind::InvalidInput, "datagram too large");
    let udp_len = u16::try_from(8 + payload.len()).map_err(|_| too_large())?;
    let ip_len = udp_len.checked_add(20).ok_or_else(too_large)?;
    let mut frame = Vec::with_capacity(14 + usize::from(ip_len));
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.ip().octets());
    ip[16..20].copy_from_slice(&dst.ip().octets());
    let sum = ipv4_checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&src.port().to_be_bytes());
    frame.extend_from_slice(&dst.port().to_be_bytes());
    frame.extend_from_slice(&udp_len.to_be_bytes());
    frame.extend_from_slice(&0u16.to_be_bytes());
    frame.extend_from_slice(payload);
    Ok(frame)
}

/// Writes `packets` as UDP from `src` to `dst`, timed from `start_secs`.
pub fn write_udp(
    w: impl Write,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    start_secs: u32,
    packets: &[TimedPacket],
) -> io::Result<()> {
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        endianness: pcap_file::Endianness::Little,
        ..PcapHeader::default()
    };
    let mut pcap = PcapWriter::with_header(w, header).map_err(io::Error::other)?;
    let start = Duration::from_secs(u64::from(start_secs));
    for (id, p) in packets.iter().enumerate() {
        let frame = udp_frame(src, dst, id as u16, &p.bytes)?;
        let len = u32::try_from(frame.len()).map_err(io::Error::other)?;
        pcap.write_packet(&PcapPacket::new(start + p.at, len, &frame))
            .map_err(io::Error::other)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ipv4_header_checksum_matches_the_rfc_1071_example_shape() {
        // A header with its checksum filled in sums to zero.
        let mut ip = [
            0x45, 0, 0, 0x30, 0, 1, 0, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        let c = ipv4_checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(ipv4_checksum(&ip), 0);
    }

    #[test]
    fn file_has_global_header_and_one_record_per_packet() {
        let packets = vec![
            TimedPacket {
                at: Duration::ZERO,
                bytes: vec![1; 12],
            },
            TimedPacket {
                at: Duration::from_millis(1020),
                bytes: vec![2; 20],
            },
        ];
        let mut out = Vec::new();
        write_udp(
            &mut out,
            "127.0.0.1:4000".parse().unwrap(),
            "127.0.0.1:6000".parse().unwrap(),
            100,
            &packets,
        )
        .unwrap();
        assert_eq!(out.len(), 24 + (16 + 42 + 12) + (16 + 42 + 20));
        assert_eq!(&out[..4], &[0xD4, 0xC3, 0xB2, 0xA1]);
        // Second record: 101 s + 20,000 µs.
        let rec2 = 24 + 16 + 42 + 12;
        assert_eq!(
            u32::from_le_bytes(out[rec2..rec2 + 4].try_into().unwrap()),
            101
        );
        assert_eq!(
            u32::from_le_bytes(out[rec2 + 4..rec2 + 8].try_into().unwrap()),
            20_000
        );
    }

    #[test]
    fn the_committed_keypad_pcap_is_what_the_writer_writes() {
        use crate::synth::{Keying, keyed_code};
        let packets = keyed_code("123456789#", &Keying::default()).unwrap();
        let mut out = Vec::new();
        write_udp(
            &mut out,
            "127.0.0.1:40000".parse().unwrap(),
            "127.0.0.1:20000".parse().unwrap(),
            1_700_000_000,
            &packets,
        )
        .unwrap();
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let committed = std::fs::read(repo.join("sip-fixtures/pcap/demo_code.pcap")).unwrap();
        assert!(
            out == committed,
            "{} bytes against {}",
            out.len(),
            committed.len()
        );
    }
}
