use super::*;

/// `key` for `ms`, then `gap_ms` of silence, as one signal.
fn keyed(keys: &str, ms: usize, gap_ms: usize, level: f64) -> Vec<i16> {
    let mut pcm = vec![0i16; 8 * 50];
    for c in keys.chars() {
        let key = Key::from_char(c).expect("key");
        let from = pcm.len() as u64;
        pcm.extend(key_tone(key, level, from, 8 * ms));
        pcm.extend(std::iter::repeat_n(0, 8 * gap_ms));
    }
    pcm
}

fn run(pcm: &[i16], chunk: usize) -> Vec<Tone> {
    let mut d = Detector::new();
    let mut tones = Vec::new();
    for part in pcm.chunks(chunk) {
        d.push(part);
        while let Some(t) = d.poll_tone() {
            tones.push(t);
        }
    }
    tones
}

fn began(tones: &[Tone]) -> String {
    tones
        .iter()
        .filter_map(|t| match t {
            Tone::Began { key, .. } => Some(key.to_char()),
            Tone::Ended { .. } => None,
        })
        .collect()
}

#[test]
fn every_key_is_detected_once_with_its_start_and_length() {
    let all: String = Key::ALL.iter().map(|k| k.to_char()).collect();
    let pcm = keyed(&all, 60, 60, -10.0);
    let tones = run(&pcm, 160);
    assert_eq!(began(&tones), all);
    assert_eq!(tones.len(), 32, "each key begins and ends: {tones:?}");
    for (i, pair) in tones.chunks(2).enumerate() {
        let tone_start = Duration::from_millis(50 + 120 * i as u64);
        let (Tone::Began { at: b, .. }, Tone::Ended { at: e, length, .. }) = (pair[0], pair[1])
        else {
            panic!("began then ended: {pair:?}");
        };
        let near = |a: Duration, b: Duration| a.abs_diff(b) <= Duration::from_millis(8);
        assert!(near(b, tone_start), "key {i} began at {b:?}");
        assert!(
            near(e, tone_start + Duration::from_millis(60)),
            "ended {e:?}"
        );
        assert_eq!(length, e - b);
    }
}

#[test]
fn chunk_size_does_not_change_what_is_heard() {
    let pcm = keyed("1593#", 45, 45, -20.0);
    let whole = run(&pcm, pcm.len());
    assert_eq!(began(&whole), "1593#");
    for chunk in [1, 7, 80, 160, 960] {
        assert_eq!(run(&pcm, chunk), whole, "chunk {chunk}");
    }
}

#[test]
fn repeats_of_a_key_need_a_pause_and_a_short_break_is_not_one() {
    assert_eq!(began(&run(&keyed("1111", 40, 40, -10.0), 160)), "1111");
    // A 10 ms dropout in the middle of a press.
    let mut pcm = vec![0i16; 400];
    pcm.extend(key_tone(Key::D5, -10.0, 0, 8 * 60));
    pcm.extend(vec![0i16; 80]);
    pcm.extend(key_tone(Key::D5, -10.0, 8 * 70, 8 * 60));
    pcm.extend(vec![0i16; 800]);
    assert_eq!(began(&run(&pcm, 160)), "5");
}

#[test]
fn silence_and_a_single_tone_are_not_keys() {
    assert!(run(&vec![0i16; 8000], 160).is_empty());
    let single: Vec<i16> = (0..8000)
        .map(|n| (8000.0 * (2.0 * PI * 941.0 * f64::from(n) / 8000.0).sin()) as i16)
        .collect();
    assert!(run(&single, 160).is_empty());
}

#[test]
fn the_key_sounding_is_reported_until_it_ends() {
    let mut d = Detector::new();
    d.push(&key_tone(Key::D7, -10.0, 0, 8 * 100));
    assert_eq!(d.sounding(), Some(Key::D7));
    d.push(&[0i16; 8 * 100]);
    assert_eq!(d.sounding(), None);
    assert_eq!(d.samples(), 1600);
}

#[test]
fn frequencies_follow_the_keypad() {
    assert_eq!(frequencies(Key::D1), (697.0, 1209.0));
    assert_eq!(frequencies(Key::D0), (941.0, 1336.0));
    assert_eq!(frequencies(Key::Pound), (941.0, 1477.0));
    assert_eq!(frequencies(Key::D), (941.0, 1633.0));
}

#[test]
fn a_note_with_its_octave_is_not_a_key_but_every_keypad_pair_is_far_from_one() {
    assert!(octave(830.6, 1661.2));
    for row in ROWS {
        for column in COLUMNS {
            for (r, c) in [
                (0.985, 1.015),
                (1.015, 0.985),
                (0.985, 0.985),
                (1.015, 1.015),
            ] {
                assert!(!octave(row * r, column * c), "{row} {column}");
            }
        }
    }
    // G♯5 on a piano: fundamental and a strong second harmonic.
    let note: Vec<i16> = (0..8000)
        .map(|n| {
            let t = f64::from(n) / 8000.0;
            (6000.0 * (2.0 * PI * 830.6 * t).sin() + 3600.0 * (2.0 * PI * 1661.2 * t).sin()) as i16
        })
        .collect();
    assert!(run(&note, 160).is_empty());
}
