//! One stream of key presses from the three sources, each press counted once.
//!
//! A phone or trunk may signal one press two ways: an RFC 4733 event and
//! the tone itself leaking through in the audio, or an event and a SIP INFO.
//! [`Merger`] pairs such reports one to one: a report is a duplicate when a
//! press of the same key from a *different* source, not yet paired with this
//! source, started within [`SAME_PRESS`] of it. Reports from one source are
//! never merged with each other (each source already counts its own presses
//! once), so "11" typed quickly stays two presses, and because pairing is
//! one to one, a source that misses a press cannot swallow the next one.
//!
//! Sans-IO: the shell says when each press started (for in-band tones, the
//! detector's estimate of the tone's start, not the moment it was sure).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{DtmfSource, Key};

/// Reports of one key from two sources that start this close are one press.
/// RFC 4733 events and in-band tones ride the same RTP stream, so their
/// starts differ by the detector's accuracy (about 10 ms) and jitter.
pub const SAME_PRESS: Duration = Duration::from_millis(150);
/// Presses remembered for pairing.
const MEMORY: usize = 16;

#[derive(Clone, Copy, Debug)]
struct Delivered {
    key: Key,
    at: Instant,
    /// The sources that reported this press (a bit per source).
    sources: u8,
}

fn bit(source: DtmfSource) -> u8 {
    match source {
        DtmfSource::Rfc4733 => 1,
        DtmfSource::SipInfo => 2,
        DtmfSource::Inband => 4,
    }
}

/// Pairs reports of one press from different sources.
#[derive(Debug, Default)]
pub struct Merger {
    recent: VecDeque<Delivered>,
}

impl Merger {
    pub fn new() -> Merger {
        Merger::default()
    }

    /// A press of `key` from `source` that started at `at`: `true` if it is
    /// new and must be delivered, `false` if another source already
    /// delivered it.
    #[must_use = "a press that is not delivered is lost"]
    pub fn on_press(&mut self, at: Instant, key: Key, source: DtmfSource) -> bool {
        let apart = |d: &Delivered| {
            if d.at > at { d.at - at } else { at - d.at }
        };
        if let Some(d) = self
            .recent
            .iter_mut()
            .filter(|d| d.key == key && d.sources & bit(source) == 0 && apart(d) <= SAME_PRESS)
            .min_by_key(|d| apart(d))
        {
            d.sources |= bit(source);
            return false;
        }
        if self.recent.len() == MEMORY {
            self.recent.pop_front();
        }
        self.recent.push_back(Delivered {
            key,
            at,
            sources: bit(source),
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DtmfSource::{Inband, Rfc4733, SipInfo};

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn a_press_heard_as_event_and_as_tone_is_delivered_once_in_either_order() {
        let t0 = Instant::now();
        let mut m = Merger::new();
        assert!(m.on_press(ms(t0, 1000), Key::D5, Rfc4733));
        assert!(!m.on_press(ms(t0, 1012), Key::D5, Inband));
        let mut m = Merger::new();
        assert!(m.on_press(ms(t0, 1012), Key::D5, Inband));
        assert!(!m.on_press(ms(t0, 1000), Key::D5, Rfc4733));
        assert!(
            !m.on_press(ms(t0, 1060), Key::D5, SipInfo),
            "a third source too"
        );
    }

    #[test]
    fn repeats_from_one_source_are_all_delivered() {
        let t0 = Instant::now();
        let mut m = Merger::new();
        for i in 0..4 {
            assert!(m.on_press(ms(t0, 80 * i), Key::D1, Inband), "press {i}");
        }
    }

    #[test]
    fn fast_repeats_heard_two_ways_count_once_each() {
        // "11" at 80 ms a press, each heard by both sources.
        let t0 = Instant::now();
        let mut m = Merger::new();
        let delivered = [
            m.on_press(ms(t0, 0), Key::D1, Rfc4733),
            m.on_press(ms(t0, 10), Key::D1, Inband),
            m.on_press(ms(t0, 80), Key::D1, Rfc4733),
            m.on_press(ms(t0, 90), Key::D1, Inband),
        ];
        assert_eq!(delivered, [true, false, true, false]);
    }

    #[test]
    fn a_press_one_source_missed_does_not_swallow_the_next() {
        // The tone detector missed the first "1"; its report of the second
        // pairs with one event, and the other event stays delivered.
        let t0 = Instant::now();
        let mut m = Merger::new();
        assert!(m.on_press(ms(t0, 0), Key::D1, Rfc4733));
        assert!(m.on_press(ms(t0, 100), Key::D1, Rfc4733));
        assert!(!m.on_press(ms(t0, 105), Key::D1, Inband));
        assert!(m.on_press(ms(t0, 400), Key::D1, Inband), "a third press");
    }

    #[test]
    fn other_keys_and_distant_presses_are_not_duplicates() {
        let t0 = Instant::now();
        let mut m = Merger::new();
        assert!(m.on_press(ms(t0, 0), Key::D1, Rfc4733));
        assert!(m.on_press(ms(t0, 10), Key::D2, Inband));
        assert!(m.on_press(ms(t0, 200), Key::D1, Inband));
    }
}
