//! Tests for `rfc4733`.

use super::*;

const T0: u32 = 0x1234_5678;

fn payload(key: Key, end: bool, duration: u16) -> [u8; 4] {
    TelephoneEvent {
        event: key.event_code(),
        end,
        volume: 10,
        duration,
    }
    .to_bytes()
}

/// Feeds packets 20 ms apart; returns the keys reported.
fn feed(rx: &mut Receiver, start: Instant, packets: &[(u32, bool, [u8; 4])]) -> Vec<Key> {
    let mut now = start;
    let mut keys = Vec::new();
    for (ts, marker, p) in packets {
        keys.extend(rx.on_packet(now, *ts, *marker, p));
        now += Duration::from_millis(20);
    }
    keys
}

fn press(key: Key, ts: u32, ms: u32) -> Vec<(u32, bool, [u8; 4])> {
    key_press_packets(key, ms, 10)
        .into_iter()
        .map(|p| (ts.wrapping_add(p.timestamp_offset), p.marker, p.payload))
        .collect()
}

#[test]
fn rfc4733_layout_literal_vector() {
    let event = TelephoneEvent {
        event: 5,
        end: true,
        volume: 10,
        duration: 0x0320,
    };
    assert_eq!(event.to_bytes(), [0x05, 0x8A, 0x03, 0x20]);
    assert_eq!(TelephoneEvent::parse(&[0x05, 0x8A, 0x03, 0x20]), Ok(event));
}

#[test]
fn parse_to_bytes_round_trips_every_field_value() {
    for event in [0, 11, 16, 255] {
        for end in [false, true] {
            for volume in [0, 10, MAX_VOLUME] {
                for duration in [0, 160, 0x8000, u16::MAX] {
                    let e = TelephoneEvent {
                        event,
                        end,
                        volume,
                        duration,
                    };
                    assert_eq!(TelephoneEvent::parse(&e.to_bytes()), Ok(e));
                }
            }
        }
    }
}

#[test]
fn reserved_bit_is_ignored_and_extra_bytes_are_ignored() {
    let e = TelephoneEvent::parse(&[0x0B, 0x40 | 0x3F, 0x00, 0xA0, 0xDE, 0xAD]).unwrap();
    assert_eq!(
        e,
        TelephoneEvent {
            event: 11,
            end: false,
            volume: 63,
            duration: 160
        }
    );
}

#[test]
fn short_payload_is_an_error_not_a_panic() {
    for len in 0..EVENT_LEN {
        let bytes = vec![0xFF; len];
        assert_eq!(
            TelephoneEvent::parse(&bytes),
            Err(Rfc4733Error::TooShort { len })
        );
        let mut rx = Receiver::new();
        assert_eq!(rx.on_packet(Instant::now(), T0, true, &bytes), None);
    }
}

#[test]
fn end_packet_sent_three_times_counted_once() {
    let mut rx = Receiver::new();
    let packets = vec![
        (T0, true, payload(Key::D5, false, 160)),
        (T0, false, payload(Key::D5, false, 320)),
        (T0, false, payload(Key::D5, true, 480)),
        (T0, false, payload(Key::D5, true, 480)),
        (T0, false, payload(Key::D5, true, 480)),
    ];
    assert_eq!(feed(&mut rx, Instant::now(), &packets), vec![Key::D5]);
}

#[test]
fn key_press_payloads_fed_to_receiver_yield_exactly_one_key() {
    for ms in [0, 20, 45, 100, 2_000, 20_000] {
        let packets: Vec<_> = key_press_payloads(Key::Pound, ms, 10)
            .into_iter()
            .map(|(m, p)| (T0, m, p))
            .collect();
        let mut rx = Receiver::new();
        assert_eq!(
            feed(&mut rx, Instant::now(), &packets),
            vec![Key::Pound],
            "{ms} ms"
        );
    }
}

#[test]
fn key_press_payloads_follow_the_sender_rules() {
    let sent = key_press_payloads(Key::D7, 100, 10);
    let events: Vec<_> = sent
        .iter()
        .map(|(_, p)| TelephoneEvent::parse(p).unwrap())
        .collect();
    let markers: Vec<_> = sent.iter().map(|(m, _)| *m).collect();
    let durations: Vec<_> = events.iter().map(|e| e.duration).collect();
    let ends: Vec<_> = events.iter().map(|e| e.end).collect();
    assert_eq!(markers, [true, false, false, false, false, false, false]);
    assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
    assert_eq!(ends, [false, false, false, false, true, true, true]);
    assert!(events.iter().all(|e| e.event == 7 && e.volume == 10));
}

#[test]
fn repeated_same_key_with_new_timestamps_counted_twice() {
    let mut rx = Receiver::new();
    let mut packets = press(Key::D1, T0, 100);
    packets.extend(press(Key::D1, T0 + 1_600, 100));
    assert_eq!(
        feed(&mut rx, Instant::now(), &packets),
        vec![Key::D1, Key::D1]
    );
}

#[test]
fn start_packets_lost_first_seen_end_still_counted_once() {
    let mut rx = Receiver::new();
    let packets: Vec<_> = press(Key::D9, T0, 100)
        .into_iter()
        .filter(|(_, _, p)| p[1] & 0x80 != 0)
        .collect();
    assert_eq!(packets.len(), 3);
    assert_eq!(feed(&mut rx, Instant::now(), &packets), vec![Key::D9]);
}

#[test]
fn update_without_start_is_counted_once() {
    let mut rx = Receiver::new();
    let packets: Vec<_> = press(Key::A, T0, 100).into_iter().skip(2).collect();
    assert_eq!(feed(&mut rx, Instant::now(), &packets), vec![Key::A]);
}

#[test]
fn long_event_continuation_counted_once() {
    let packets = press(Key::D0, T0, 20_000);
    let segments: std::collections::BTreeSet<_> = packets.iter().map(|(ts, ..)| *ts).collect();
    assert_eq!(segments.len(), 3, "20 s at 8 kHz spans three segments");
    let mut rx = Receiver::new();
    assert_eq!(feed(&mut rx, Instant::now(), &packets), vec![Key::D0]);
}

#[test]
fn long_event_continuation_across_timestamp_wrap_counted_once() {
    let mut rx = Receiver::new();
    let packets = press(Key::Star, u32::MAX - 1_000, 10_000);
    assert_eq!(feed(&mut rx, Instant::now(), &packets), vec![Key::Star]);
}

#[test]
fn continuation_with_last_updates_lost_counted_once() {
    let mut rx = Receiver::new();
    let now = Instant::now();
    assert_eq!(
        rx.on_packet(now, T0, true, &payload(Key::D4, false, 0xFE00)),
        Some(Key::D4)
    );
    let next = T0.wrapping_add(0xFFFF);
    assert_eq!(
        rx.on_packet(now, next, false, &payload(Key::D4, false, 320)),
        None
    );
}

#[test]
fn same_key_after_ended_press_at_segment_distance_is_new() {
    let mut rx = Receiver::new();
    let now = Instant::now();
    assert_eq!(
        rx.on_packet(now, T0, true, &payload(Key::D4, true, 800)),
        Some(Key::D4)
    );
    let next = T0.wrapping_add(0xFFFF);
    let later = now + Duration::from_secs(1);
    assert_eq!(
        rx.on_packet(later, next, true, &payload(Key::D4, false, 160)),
        Some(Key::D4)
    );
}

#[test]
fn out_of_order_old_packet_ignored() {
    let mut rx = Receiver::new();
    let now = Instant::now();
    // Press "2": its end packets are delayed behind the start of "3".
    assert_eq!(
        rx.on_packet(now, T0, true, &payload(Key::D2, false, 160)),
        Some(Key::D2)
    );
    let t1 = T0 + 2_000;
    assert_eq!(
        rx.on_packet(now, t1, true, &payload(Key::D3, false, 160)),
        Some(Key::D3)
    );
    assert_eq!(
        rx.on_packet(now, T0, false, &payload(Key::D2, true, 800)),
        None
    );
    // An older press never seen before is stale too.
    let stale = T0 - 1_600;
    assert_eq!(
        rx.on_packet(now, stale, false, &payload(Key::D8, true, 800)),
        None
    );
    assert_eq!(
        rx.on_packet(now, t1, false, &payload(Key::D3, true, 800)),
        None
    );
}

#[test]
fn timestamp_jump_far_backwards_starts_over() {
    let mut rx = Receiver::new();
    let now = Instant::now();
    assert_eq!(
        rx.on_packet(now, T0, true, &payload(Key::D2, true, 800)),
        Some(Key::D2)
    );
    let jumped = T0 - 10_000_000;
    assert_eq!(
        rx.on_packet(now, jumped, true, &payload(Key::D2, false, 160)),
        Some(Key::D2)
    );
    assert_eq!(
        rx.on_packet(now, jumped, false, &payload(Key::D2, true, 800)),
        None
    );
}

#[test]
fn unknown_event_codes_ignored() {
    let mut rx = Receiver::new();
    let now = Instant::now();
    for (i, code) in [16u8, 17, 32, 64, 255].into_iter().enumerate() {
        let ts = T0 + 1_000 * i as u32;
        let p = TelephoneEvent {
            event: code,
            end: false,
            volume: 10,
            duration: 160,
        };
        assert_eq!(
            rx.on_packet(now, ts, true, &p.to_bytes()),
            None,
            "code {code}"
        );
    }
    // A flash between two presses does not disturb them.
    assert_eq!(
        rx.on_packet(now, T0 + 9_000, true, &payload(Key::B, false, 160)),
        Some(Key::B)
    );
}

#[test]
fn duplicate_after_long_silence_is_fresh() {
    let mut rx = Receiver::new();
    let now = Instant::now();
    let p = payload(Key::C, true, 800);
    assert_eq!(rx.on_packet(now, T0, true, &p), Some(Key::C));
    assert_eq!(
        rx.on_packet(now + Duration::from_secs(1), T0, false, &p),
        None
    );
    assert_eq!(
        rx.on_packet(now + Duration::from_secs(7), T0, false, &p),
        Some(Key::C)
    );
}

#[test]
fn flood_of_new_timestamps_keeps_memory_bounded() {
    let mut rx = Receiver::new();
    let now = Instant::now();
    for i in 0..10_000u32 {
        let _ = rx.on_packet(
            now,
            i.wrapping_mul(7_919),
            i % 2 == 0,
            &payload(Key::D6, false, 160),
        );
        assert!(rx.recent.len() <= MEMORY);
    }
}

#[test]
fn long_press_generator_segments_at_0xffff() {
    let packets = key_press_packets(Key::D3, 10_000, 10);
    let boundary: Vec<_> = packets
        .iter()
        .filter(|p| p.timestamp_offset == 0)
        .map(|p| TelephoneEvent::parse(&p.payload).unwrap())
        .collect();
    let last = boundary.last().unwrap();
    assert_eq!((last.duration, last.end), (0xFFFF, false));
    let tail = packets.last().unwrap();
    assert_eq!(tail.timestamp_offset, 0xFFFF);
    assert_eq!(
        TelephoneEvent::parse(&tail.payload).unwrap().duration,
        (80_000 - 0xFFFF) as u16
    );
    assert_eq!(packets.iter().filter(|p| p.marker).count(), 1);
}
