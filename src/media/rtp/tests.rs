//! Tests for `rtp`.

use super::*;

#[test]
fn outbound_has_one_ssrc_continuous_seq_and_ts_and_marker_first() {
    let mut out = Outbound::new(Codec::Pcmu, PayloadType(0), &mut rand::rng());
    let a = out.packet(&[0; 320]).unwrap().to_vec();
    let b = out.packet(&[0; 320]).unwrap().to_vec();
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
fn a_streams_random_start_comes_from_its_rng() {
    use rand::SeedableRng;
    let start = |seed: u64| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut out = Outbound::new(Codec::Pcmu, PayloadType(0), &mut rng);
        let (h, _) = read(out.packet(&[0; 320]).unwrap()).unwrap();
        (h.ssrc, h.sequence, h.timestamp)
    };
    assert_eq!(start(7), start(7), "a seed repeats the stream");
    assert_ne!(start(7).0, start(8).0, "another seed, another SSRC");
}

#[test]
fn short_frame_is_padded_to_20_ms() {
    let mut out = Outbound::new(Codec::Pcma, PayloadType(8), &mut rand::rng());
    let p = out.packet(&[0; 10]).unwrap().to_vec();
    assert_eq!(read(&p).unwrap().1.len(), 160);
}

fn header(ssrc: u32, sequence: u16) -> Header {
    Header {
        payload_type: PayloadType(0),
        marker: false,
        sequence,
        timestamp: u32::from(sequence) * 160,
        ssrc: Ssrc(ssrc),
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A caller that signalled from 192.0.2.1 and named 198.51.100.7:4000 in its SDP.
fn callers_latch() -> Latch {
    Latch::new(
        Some(addr("198.51.100.7:4000")),
        vec!["192.0.2.1".parse().unwrap()],
    )
}

#[test]
fn a_strangers_packet_before_the_caller_speaks_is_dropped() {
    let t0 = Instant::now();
    let mut l = callers_latch();
    assert!(!l.on_media(t0, addr("203.0.113.66:5004"), &header(7, 1)));
    assert_eq!(
        l.destination(),
        Some(addr("198.51.100.7:4000")),
        "our media still goes where the caller's SDP said"
    );
}

#[test]
fn a_stranger_cannot_take_over_a_silent_call() {
    let t0 = Instant::now();
    let mut l = callers_latch();
    let real = addr("198.51.100.7:4000");
    assert!(l.on_media(t0, real, &header(1, 10)));
    let later = t0 + Duration::from_secs(30);
    for (i, from) in ["203.0.113.66:4000", "198.51.100.8:4000", "10.0.0.1:4000"]
        .into_iter()
        .enumerate()
    {
        // Even one that copies the caller's SSRC and sequence.
        assert!(!l.on_media(later, addr(from), &header(1, 11 + i as u16)));
    }
    assert_eq!(l.destination(), Some(real));
}

#[test]
fn media_from_the_signalling_address_latches_behind_nat() {
    let t0 = Instant::now();
    let mut l = callers_latch();
    let natted = addr("192.0.2.1:61000");
    assert!(l.on_media(t0, natted, &header(1, 1)));
    assert_eq!(l.destination(), Some(natted));
}

#[test]
fn media_from_another_port_of_the_signalled_ip_latches() {
    let t0 = Instant::now();
    let mut l = callers_latch();
    let other_port = addr("198.51.100.7:4002");
    assert!(l.on_media(t0, other_port, &header(1, 1)));
    assert_eq!(l.destination(), Some(other_port));
}

#[test]
fn a_trusted_peer_relaying_media_is_latched() {
    let t0 = Instant::now();
    let sbc: IpAddr = "10.1.1.1".parse().unwrap();
    let mut l = Latch::new(Some(addr("198.51.100.7:4000")), vec![sbc]);
    assert!(l.on_media(t0, SocketAddr::new(sbc, 30000), &header(1, 1)));
}

#[test]
fn the_callers_other_address_waits_for_silence_unless_it_continues_the_stream() {
    let t0 = Instant::now();
    let mut l = callers_latch();
    let first = addr("198.51.100.7:4000");
    let rebound = addr("192.0.2.1:62000");
    assert!(l.on_media(t0, first, &header(1, 100)));
    let t1 = t0 + Duration::from_millis(20);
    assert!(
        !l.on_media(t1, rebound, &header(2, 5)),
        "another stream while the first is live is dropped"
    );
    assert!(
        !l.on_media(t1, rebound, &header(1, 100 + CONTINUITY + 1)),
        "the same SSRC far out of sequence is not continuity"
    );
    assert_eq!(l.destination(), Some(first));
    assert!(
        l.on_media(t1, rebound, &header(1, 101)),
        "the same stream continuing from a new port moves (NAT rebinding)"
    );
    assert_eq!(l.destination(), Some(rebound));
    let quiet = t1 + RELATCH_AFTER;
    assert!(
        l.on_media(quiet, first, &header(9, 1)),
        "after the latched source went quiet, another of the caller's addresses takes over"
    );
    assert_eq!(l.destination(), Some(first));
}

#[test]
fn an_accepted_reinvite_adds_the_address_it_came_from() {
    let t0 = Instant::now();
    let mut l = callers_latch();
    let moved = addr("203.0.113.40:7000");
    assert!(!l.on_media(t0, moved, &header(1, 1)));
    l.add_peers(&["203.0.113.40".parse().unwrap()]);
    assert!(l.on_media(t0, moved, &header(1, 2)));
    assert_eq!(l.destination(), Some(moved));
}

#[test]
fn ipv4_mapped_sources_are_the_same_address() {
    let t0 = Instant::now();
    let mut l = callers_latch();
    assert!(l.on_media(t0, addr("[::ffff:192.0.2.1]:5000"), &header(1, 1)));
}

#[test]
fn a_new_offer_starts_latching_afresh_and_keeps_the_callers_other_addresses() {
    let t0 = Instant::now();
    let mut l = callers_latch();
    assert!(l.on_media(t0, addr("198.51.100.7:4000"), &header(1, 1)));
    l.resignal(Some(addr("198.51.100.9:5000")));
    assert_eq!(l.destination(), Some(addr("198.51.100.9:5000")));
    assert!(!l.on_media(t0, addr("198.51.100.7:4000"), &header(1, 2)));
    assert!(l.on_media(t0, addr("192.0.2.1:4000"), &header(1, 2)));
}

#[test]
fn non_rtp_is_rejected() {
    assert!(read(&[0u8; 4]).is_none());
    assert!(read(&[0x40; 20]).is_none());
}
