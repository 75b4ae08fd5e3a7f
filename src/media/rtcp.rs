//! RTCP receiver-report reading (RFC 3550 §6.4), pure: the far end's view of
//! the stream we send it — the fraction lost since its last report, the
//! cumulative loss and the interarrival jitter — taken from the report
//! blocks of its Sender and Receiver Reports in a compound packet. Other
//! packet types (SDES, BYE, APP, feedback) are skipped by their length.
//! Anything malformed ends the walk; nothing here panics.

use super::rtp::Ssrc;

/// SR and RR packet types.
const SR: u8 = 200;
const RR: u8 = 201;
/// Sender info after an SR's SSRC: NTP (8), RTP timestamp, counts (4 + 4).
const SENDER_INFO: usize = 20;
const BLOCK: usize = 24;

/// One report block: what `reporter` saw of the stream `ssrc`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReportBlock {
    pub reporter: Ssrc,
    pub ssrc: Ssrc,
    /// Fraction of packets lost since the previous report, 0.0 to 1.0.
    pub fraction_lost: f64,
    /// Packets lost since the stream began (negative with duplicates).
    pub cumulative_lost: i32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Every report block in the compound RTCP packet `buf`, in order.
pub fn report_blocks(buf: &[u8]) -> Vec<ReportBlock> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(header) = buf.get(at..at + 4) {
        if header[0] >> 6 != 2 {
            break;
        }
        let count = usize::from(header[0] & 0x1f);
        let packet_type = header[1];
        let len = (usize::from(u16::from_be_bytes([header[2], header[3]])) + 1) * 4;
        let Some(packet) = buf.get(at..at + len) else {
            break;
        };
        let first_block = match packet_type {
            SR => Some(8 + SENDER_INFO),
            RR => Some(8),
            _ => None,
        };
        if let (Some(first), Some(reporter)) = (first_block, u32_at(packet, 4)) {
            for i in 0..count {
                let Some(block) = packet.get(first + i * BLOCK..first + (i + 1) * BLOCK) else {
                    break;
                };
                let lost = u32_at(block, 4).unwrap_or(0);
                // 24-bit two's complement.
                let cumulative = ((lost << 8) as i32) >> 8;
                out.push(ReportBlock {
                    reporter: Ssrc(reporter),
                    ssrc: Ssrc(u32_at(block, 0).unwrap_or(0)),
                    fraction_lost: f64::from(lost >> 24) / 256.0,
                    cumulative_lost: cumulative,
                    jitter: u32_at(block, 12).unwrap_or(0),
                });
            }
        }
        at += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(ssrc: u32, fraction: u8, lost: i32, jitter: u32) -> Vec<u8> {
        let mut b = ssrc.to_be_bytes().to_vec();
        let lost = (lost as u32) & 0x00ff_ffff;
        b.extend(((u32::from(fraction) << 24) | lost).to_be_bytes());
        b.extend(1000u32.to_be_bytes()); // highest sequence
        b.extend(jitter.to_be_bytes());
        b.extend([0; 8]); // LSR, DLSR
        b
    }

    fn packet(pt: u8, reporter: u32, sender_info: bool, blocks: &[Vec<u8>]) -> Vec<u8> {
        let mut body = reporter.to_be_bytes().to_vec();
        if sender_info {
            body.extend([0; SENDER_INFO]);
        }
        for b in blocks {
            body.extend(b);
        }
        let words = (body.len() + 4) / 4 - 1;
        let mut p = vec![0x80 | blocks.len() as u8, pt];
        p.extend((words as u16).to_be_bytes());
        p.extend(body);
        p
    }

    #[test]
    fn receiver_report_blocks_are_read() {
        let rr = packet(RR, 7, false, &[block(42, 64, 12, 80), block(43, 0, -2, 5)]);
        let got = report_blocks(&rr);
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            ReportBlock {
                reporter: Ssrc(7),
                ssrc: Ssrc(42),
                fraction_lost: 0.25,
                cumulative_lost: 12,
                jitter: 80
            }
        );
        assert_eq!(got[1].cumulative_lost, -2, "24-bit signed");
    }

    #[test]
    fn sender_report_then_sdes_in_one_compound_packet() {
        let mut compound = packet(SR, 9, true, &[block(42, 128, 3, 10)]);
        // SDES with one CNAME chunk: skipped by its length.
        compound.extend([0x81, 202, 0, 2, 0, 0, 0, 9, 1, 1, b'x', 0]);
        compound.extend(packet(RR, 9, false, &[block(42, 0, 3, 11)]));
        let got = report_blocks(&compound);
        let jitters: Vec<u32> = got.iter().map(|b| b.jitter).collect();
        assert_eq!(jitters, vec![10, 11]);
        assert_eq!(got[0].fraction_lost, 0.5);
    }

    #[test]
    fn malformed_input_gives_what_was_whole_and_never_panics() {
        let rr = packet(RR, 7, false, &[block(42, 1, 1, 1)]);
        for cut in 0..rr.len() {
            assert!(report_blocks(&rr[..cut]).is_empty(), "cut at {cut}");
        }
        let mut lying = rr.clone();
        lying[0] = 0x80 | 31; // claims 31 blocks, carries one
        assert_eq!(report_blocks(&lying).len(), 1);
        let mut v1 = rr;
        v1[0] = 0x40 | 1;
        assert!(
            report_blocks(&v1).is_empty(),
            "version 1 is not RTCP for us"
        );
        assert!(report_blocks(&[0xff; 3]).is_empty());
    }
}
