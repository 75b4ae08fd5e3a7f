//! Tests for `jitter`.

use super::*;

const SSRC: u32 = 7;

/// Simulated arrivals: (ms after start, sequence number).
fn run(
    j: &mut Jitter<u16>,
    start: Instant,
    arrivals: &[(u64, u16)],
    ticks: usize,
) -> Vec<Playout<u16>> {
    let mut out = Vec::new();
    let mut pending = arrivals.to_vec();
    pending.sort_by_key(|(at, _)| *at);
    let mut it = pending.into_iter().peekable();
    for tick in 0..ticks as u64 {
        let now_ms = tick * 20;
        while let Some(&(at, seq)) = it.peek() {
            if at > now_ms {
                break;
            }
            let ts = u32::from(seq.wrapping_sub(1000)) * 160;
            j.push(start + Duration::from_millis(at), Ssrc(SSRC), seq, ts, seq);
            it.next();
        }
        out.push(j.pop());
    }
    out
}

fn frames(out: &[Playout<u16>]) -> Vec<u16> {
    out.iter()
        .filter_map(|p| match p {
            Playout::Frame(s) => Some(*s),
            _ => None,
        })
        .collect()
}

#[test]
fn steady_stream_plays_every_frame_in_order() {
    let mut j = Jitter::new(8000);
    let arrivals: Vec<(u64, u16)> = (0..50).map(|i| (i * 20, 1000 + i as u16)).collect();
    let out = run(&mut j, Instant::now(), &arrivals, 60);
    assert_eq!(frames(&out), (1000..1050).collect::<Vec<_>>());
    assert_eq!(j.stats().lost, 1, "only the run-out at the end");
    assert_eq!(
        j.target(),
        2,
        "no jitter: one frame plus the underrun margin"
    );
}

#[test]
fn reordered_and_duplicated_packets_play_once_in_order() {
    let mut j = Jitter::new(8000);
    let mut arrivals: Vec<(u64, u16)> = (0..30).map(|i| (i * 20, 1000 + i as u16)).collect();
    // 1005 overtakes 1004; 1010 arrives twice.
    arrivals[4].0 = 95;
    arrivals[5].0 = 85;
    arrivals.push((205, 1010));
    let out = run(&mut j, Instant::now(), &arrivals, 40);
    assert_eq!(frames(&out), (1000..1030).collect::<Vec<_>>());
    assert_eq!(j.stats().duplicates, 1);
}

#[test]
fn a_missing_packet_is_lost_once_and_late_arrival_is_dropped() {
    let mut j = Jitter::new(8000);
    let mut arrivals: Vec<(u64, u16)> = (0..30).map(|i| (i * 20, 1000 + i as u16)).collect();
    arrivals[10].0 = 2000; // 1010 comes far too late
    let out = run(&mut j, Instant::now(), &arrivals, 28);
    let lost_at = out
        .iter()
        .position(|p| *p == Playout::Lost)
        .expect("a loss");
    assert_eq!(out[lost_at - 1], Playout::Frame(1009));
    let mut expected: Vec<u16> = (1000..1010).collect();
    expected.extend(1011..1027);
    assert_eq!(frames(&out), expected, "1010 is skipped, nothing else");
    run(&mut j, Instant::now(), &[(0, 1010)], 1);
    assert_eq!(j.stats().late, 1);
}

#[test]
fn telephone_event_sequence_numbers_play_as_silence_not_loss() {
    let mut j = Jitter::new(8000);
    let t0 = Instant::now();
    j.push(t0, Ssrc(SSRC), 1000, 0, 1000);
    j.push_not_audio(Ssrc(SSRC), 1001);
    j.push(t0 + FRAME * 2, Ssrc(SSRC), 1002, 320, 1002);
    let out: Vec<_> = (0..3).map(|_| j.pop()).collect();
    assert_eq!(
        out,
        vec![Playout::Frame(1000), Playout::Silence, Playout::Frame(1002)]
    );
    assert_eq!(j.stats().lost, 0);
}

#[test]
fn the_packet_time_is_read_from_consecutive_timestamps_and_depths_follow_it() {
    let t0 = Instant::now();
    // (sequence offset, timestamp at 8 kHz) pushed in order.
    let stream = |packets: &[(u16, u32)]| {
        let mut j = Jitter::new(8000);
        for (seq, ts) in packets {
            // Sent on time: no jitter.
            let at = t0 + Duration::from_micros(u64::from(*ts) * 125);
            j.push(at, Ssrc(SSRC), 1000 + seq, *ts, 0u16);
        }
        j
    };
    let j = stream(&[(0, 0), (1, 80), (2, 160)]);
    assert_eq!(j.packet_time(), Duration::from_millis(10));
    assert_eq!(j.target(), 2, "a frame's time: two 10 ms packets");
    assert_eq!(j.slack(), 6);
    let j = stream(&[(0, 0), (1, 480), (2, 960)]);
    assert_eq!(j.packet_time(), Duration::from_millis(60));
    assert_eq!(j.target(), 1, "one 60 ms packet");
    assert_eq!(j.slack(), 1);
    // A gap in the numbering (a lost packet) tells nothing, nor does a
    // step past 120 ms or under 10 ms; 20 ms until the stream shows its
    // own.
    let j = stream(&[(0, 0), (2, 160)]);
    assert_eq!(j.packet_time(), FRAME);
    let j = stream(&[(0, 0), (1, 40)]);
    assert_eq!(j.packet_time(), FRAME);
    let j = stream(&[(0, 0), (1, 8000)]);
    assert_eq!(j.packet_time(), FRAME);
    assert_eq!((j.target(), j.slack()), (1, 3));
}

#[test]
fn ten_ms_packets_taken_two_a_tick_play_every_one_without_drops() {
    let mut j = Jitter::new(8000);
    let t0 = Instant::now();
    let mut played = Vec::new();
    for i in 0..500u16 {
        let at = t0 + Duration::from_millis(10 * u64::from(i));
        j.push(at, Ssrc(SSRC), 1000 + i, u32::from(i) * 80, 1000 + i);
        if i % 2 == 1 {
            for _ in 0..2 {
                if let Playout::Frame(p) = j.pop() {
                    played.push(p);
                }
            }
        }
    }
    assert_eq!(j.stats().drift_drops, 0, "{:?}", j.stats());
    assert!(played.windows(2).all(|w| w[1] == w[0] + 1));
    assert!(played.len() >= 496, "{}", played.len());
}

#[test]
fn jitter_raises_the_playout_delay() {
    let mut j = Jitter::new(8000);
    // Packets every 20 ms on average, arriving ±30 ms around it.
    let arrivals: Vec<(u64, u16)> = (0..200u64)
        .map(|i| (i * 20 + if i % 2 == 0 { 0 } else { 60 }, 1000 + i as u16))
        .collect();
    run(&mut j, Instant::now(), &arrivals, 100);
    assert!(j.jitter() > Duration::from_millis(20), "{:?}", j.jitter());
    assert!(j.target() >= 4, "target {}", j.target());
}

#[test]
fn a_fast_sender_is_caught_up_by_dropping_frames() {
    let mut j = Jitter::new(8000);
    // 2 % fast: 50 packets per 49 ticks' worth of time, for 20 s.
    let arrivals: Vec<(u64, u16)> = (0..1000u64)
        .map(|i| (i * 1960 / 100, 1000u16.wrapping_add(i as u16)))
        .collect();
    run(&mut j, Instant::now(), &arrivals, 980);
    assert!(j.stats().drift_drops > 0);
    assert!(
        j.buffered() <= j.target() + DRIFT_SLACK + 1,
        "{} buffered",
        j.buffered()
    );
}

#[test]
fn a_slow_sender_underruns_and_the_delay_grows() {
    let mut j = Jitter::new(8000);
    // 5 % slow: one packet every 21 ms.
    let arrivals: Vec<(u64, u16)> = (0..300u64).map(|i| (i * 21, 1000 + i as u16)).collect();
    let out = run(&mut j, Instant::now(), &arrivals, 300);
    assert!(j.stats().underruns >= 1);
    assert!(j.target() >= 2, "the delay grew to {}", j.target());
    assert!(
        frames(&out).windows(2).all(|w| w[1] == w[0] + 1),
        "no frame skipped or repeated"
    );
}

#[test]
fn keypad_packets_on_another_ssrc_leave_the_audio_alone() {
    let mut j = Jitter::new(8000);
    let t0 = Instant::now();
    j.push(t0, Ssrc(SSRC), 1000, 0, 1000);
    j.push(t0, Ssrc(SSRC), 1001, 160, 1001);
    j.push_not_audio(Ssrc(SSRC + 1), 5);
    assert_eq!(j.buffered(), 2, "nothing was thrown away");
    assert_eq!(j.pop(), Playout::Frame(1000));
}

#[test]
fn a_new_ssrc_starts_over() {
    let mut j = Jitter::new(8000);
    let t0 = Instant::now();
    j.push(t0, Ssrc(SSRC), 1000, 0, 1);
    assert_eq!(j.pop(), Playout::Frame(1));
    j.push(t0 + FRAME, Ssrc(99), 5, 0, 2);
    assert_eq!(j.pop(), Playout::Frame(2));
}

#[test]
fn one_stray_packet_far_ahead_does_not_silence_the_stream() {
    let mut j = Jitter::new(8000);
    let t0 = Instant::now();
    let mut played = 0;
    for n in 0..200u16 {
        j.push(t0 + FRAME * u32::from(n), Ssrc(1), n, u32::from(n) * 160, n);
        if n == 50 {
            // One packet from nowhere, 999 ahead.
            j.push(t0 + FRAME * u32::from(n), Ssrc(1), n + 999, 0, 0);
        }
        if let Playout::Frame(_) = j.pop() {
            played += 1;
        }
    }
    assert!(played >= 195, "played {played} of 200: {:?}", j.stats());
}

#[test]
fn a_sender_that_renumbers_is_followed_after_two_packets() {
    let mut j = Jitter::new(8000);
    let t0 = Instant::now();
    let mut got = Vec::new();
    for n in 0..60u16 {
        // From packet 30 on, the sender's numbers are 500 higher.
        let seq = if n < 30 { n } else { n + 500 };
        j.push(
            t0 + FRAME * u32::from(n),
            Ssrc(1),
            seq,
            u32::from(n) * 160,
            n,
        );
        if let Playout::Frame(p) = j.pop() {
            got.push(p);
        }
    }
    assert!(got.contains(&35) && got.last() == Some(&58), "{got:?}");
}

#[test]
fn a_flood_is_dropped_not_buffered_and_playout_catches_up() {
    let mut j = Jitter::new(8000);
    let t0 = Instant::now();
    for n in 0..1000u16 {
        j.push(t0, Ssrc(1), n, u32::from(n) * 160, n);
    }
    assert!(j.buffered() <= MAX_SLOTS, "{} buffered", j.buffered());
    // The flood ends; playout jumps near the newest packet held.
    let Playout::Frame(first) = j.pop() else {
        panic!("something plays")
    };
    assert!(
        usize::from(first) + MAX_TARGET >= MAX_SLOTS - 1,
        "played {first} first"
    );
}
