//! Writing classic pcap files (libpcap format, Ethernet link type) of UDP
//! datagrams, for SIPp's `play_pcap_audio` and for inspection with tshark.

use std::io::{self, Write};
use std::net::SocketAddrV4;

use super::synth::TimedPacket;

const LINKTYPE_ETHERNET: u32 = 1;

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

/// Writes `packets` as UDP from `src` to `dst`, timed from `start_secs`.
pub fn write_udp(
    mut w: impl Write,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    start_secs: u32,
    packets: &[TimedPacket],
) -> io::Result<()> {
    // Global header: magic, v2.4, GMT offset, accuracy, snaplen, link type.
    w.write_all(&0xA1B2_C3D4u32.to_le_bytes())?;
    w.write_all(&2u16.to_le_bytes())?;
    w.write_all(&4u16.to_le_bytes())?;
    w.write_all(&0i32.to_le_bytes())?;
    w.write_all(&0u32.to_le_bytes())?;
    w.write_all(&65_535u32.to_le_bytes())?;
    w.write_all(&LINKTYPE_ETHERNET.to_le_bytes())?;
    for (id, p) in packets.iter().enumerate() {
        let udp_len = 8 + p.bytes.len();
        let ip_len = 20 + udp_len;
        let frame_len = 14 + ip_len;
        let (Ok(udp_len16), Ok(ip_len16), Ok(frame_len32)) = (
            u16::try_from(udp_len),
            u16::try_from(ip_len),
            u32::try_from(frame_len),
        ) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "datagram too large",
            ));
        };
        let secs = start_secs + u32::try_from(p.at.as_secs()).unwrap_or(u32::MAX - start_secs);
        w.write_all(&secs.to_le_bytes())?;
        w.write_all(&p.at.subsec_micros().to_le_bytes())?;
        w.write_all(&frame_len32.to_le_bytes())?;
        w.write_all(&frame_len32.to_le_bytes())?;
        // Ethernet: locally administered MACs, IPv4.
        w.write_all(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00])?;
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&ip_len16.to_be_bytes());
        ip[4..6].copy_from_slice(&(id as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&src.ip().octets());
        ip[16..20].copy_from_slice(&dst.ip().octets());
        let sum = ipv4_checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        w.write_all(&ip)?;
        w.write_all(&src.port().to_be_bytes())?;
        w.write_all(&dst.port().to_be_bytes())?;
        w.write_all(&udp_len16.to_be_bytes())?;
        w.write_all(&0u16.to_be_bytes())?;
        w.write_all(&p.bytes)?;
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
}
