//! Inbound RTP sequence accounting, after RFC 3550 §A.1 and §A.3: the
//! extended highest sequence number, packets expected and received, and so
//! packets lost (expected − received; duplicates make it smaller, as the
//! RFC says). A jump of more than `MAX_DROPOUT` or a new SSRC starts a new
//! count (the sender restarted); the loss counted so far is kept.
//!
//! Sans-IO: fed sequence numbers, reports newly lost packets so the caller
//! can add them to a counter. Leaves out jitter and RTCP reports.

use super::rtp::Ssrc;

/// A forward jump larger than this is a restart, not loss (RFC 3550 A.1).
const MAX_DROPOUT: u16 = 3000;
/// A backward step up to this is a late or duplicate packet.
const MAX_MISORDER: u16 = 100;

#[derive(Debug, Clone, Default)]
pub struct Reception {
    /// SSRC, first extended sequence, highest extended sequence, received.
    stream: Option<(Ssrc, u64, u64, u64)>,
    /// Loss of earlier streams (before a restart).
    carried: u64,
    /// Loss already reported by `on_packet`.
    reported: u64,
}

impl Reception {
    pub fn new() -> Reception {
        Reception::default()
    }

    /// A packet with this SSRC and sequence number arrived; returns how
    /// many more packets now count as lost.
    #[must_use]
    pub fn on_packet(&mut self, ssrc: Ssrc, seq: u16) -> u64 {
        match &mut self.stream {
            Some((s, _, max, received)) if *s == ssrc => {
                // The highest sequence number seen, within its cycle of 2^16.
                let max_seq = (*max & 0xFFFF) as u16;
                let delta = seq.wrapping_sub(max_seq);
                if delta < MAX_DROPOUT {
                    *max += u64::from(delta);
                    *received += 1;
                } else if delta >= u16::MAX - MAX_MISORDER {
                    *received += 1;
                } else {
                    self.restart(ssrc, seq);
                }
            }
            _ => self.restart(ssrc, seq),
        }
        let lost = self.lost();
        let new = lost.saturating_sub(self.reported);
        self.reported = self.reported.max(lost);
        new
    }

    fn restart(&mut self, ssrc: Ssrc, seq: u16) {
        self.carried += self.stream_lost();
        // Start the extended count one cycle up so late packets from just
        // before `seq` cannot underflow it.
        let first = (1u64 << 16) + u64::from(seq);
        self.stream = Some((ssrc, first, first, 1));
    }

    fn stream_lost(&self) -> u64 {
        self.stream.map_or(0, |(_, first, max, received)| {
            (max - first + 1).saturating_sub(received)
        })
    }

    /// Packets lost so far, over every stream seen.
    pub fn lost(&self) -> u64 {
        self.carried + self.stream_lost()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(r: &mut Reception, ssrc: u32, seqs: impl IntoIterator<Item = u16>) -> u64 {
        seqs.into_iter().map(|s| r.on_packet(Ssrc(ssrc), s)).sum()
    }

    #[test]
    fn in_order_stream_loses_nothing_across_the_wrap() {
        let mut r = Reception::new();
        let reported = feed(&mut r, 7, (0..200u16).map(|i| 65_500u16.wrapping_add(i)));
        assert_eq!((reported, r.lost()), (0, 0));
    }

    #[test]
    fn a_gap_is_counted_once() {
        let mut r = Reception::new();
        let reported = feed(&mut r, 7, [10, 11, 12, 16, 17]);
        assert_eq!((reported, r.lost()), (3, 3));
    }

    #[test]
    fn reordered_packet_fills_its_gap() {
        let mut r = Reception::new();
        let reported = feed(&mut r, 7, [10, 12, 11, 13]);
        assert_eq!(reported, 1, "reported when the gap opened");
        assert_eq!(r.lost(), 0, "the late packet arrived after all");
    }

    #[test]
    fn new_ssrc_or_big_jump_restarts_and_keeps_earlier_loss() {
        let mut r = Reception::new();
        assert_eq!(feed(&mut r, 7, [1, 2, 5]), 2);
        assert_eq!(feed(&mut r, 9, [40_000, 40_001]), 0, "new source");
        assert_eq!(feed(&mut r, 9, [20_000, 20_002]), 1, "restart, then a gap");
        assert_eq!(r.lost(), 3);
    }
}
