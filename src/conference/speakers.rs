//! Active-speaker selection: which members' audio goes into the mix.
//!
//! Each member's level is the RMS of its frame, smoothed with a fast
//! attack and a slow release so a syllable gap does not drop a talker. A
//! member above the activity floor becomes a talker while there are fewer
//! than `max_talkers`; when the talker set is full, a newcomer replaces the
//! quietest talker only if it is louder by `SWITCH_MARGIN` and that talker
//! has held the floor for `MIN_TALK_TICKS` (hysteresis: no flapping between
//! two voices of similar level). A talker that falls below the floor
//! keeps its place for `HOLD_TICKS`. Muted members are never talkers.
//!
//! Pure: fed one level per member per tick, no clock of its own.

/// RMS below this (about −54 dBFS) is line noise, not speech.
pub const ACTIVITY_FLOOR: f32 = 64.0;
/// A newcomer must be this much louder than the quietest talker (≈ 3 dB).
pub const SWITCH_MARGIN: f32 = 1.41;
/// Ticks (20 ms) a quiet talker keeps its place: 400 ms.
pub const HOLD_TICKS: u32 = 20;
/// Ticks a talker holds the floor before a louder newcomer may replace it.
pub const MIN_TALK_TICKS: u32 = 10;

/// One member's smoothed level and talker state.
#[derive(Debug, Clone, Copy, Default)]
struct Level {
    smoothed: f32,
    /// Ticks since it became a talker (None: not a talker).
    talking_for: Option<u32>,
    /// Ticks below the floor while a talker.
    quiet_for: u32,
}

/// Talker selection for one room; members are addressed by stable keys.
#[derive(Debug, Clone)]
pub struct Selector {
    max_talkers: usize,
    levels: Vec<(u64, Level)>,
}

/// RMS level of a frame.
pub fn rms(frame: &[i16]) -> f32 {
    if frame.is_empty() {
        return 0.0;
    }
    // At most 2^30 per sample: a frame of 2^33 samples could not overflow i64.
    let sum: i64 = frame.iter().map(|s| i64::from(*s) * i64::from(*s)).sum();
    ((sum as f64) / frame.len() as f64).sqrt() as f32
}

impl Selector {
    pub fn new(max_talkers: usize) -> Selector {
        Selector {
            max_talkers: max_talkers.max(1),
            levels: Vec::new(),
        }
    }

    /// One tick: `members` lists every member now as (key, RMS level of
    /// this tick's frame, muted). Members not listed are forgotten.
    /// Returns whether each listed member is a talker, in the same order.
    pub fn update(&mut self, members: &[(u64, f32, bool)], talkers: &mut Vec<bool>) {
        for (i, &(key, level, muted)) in members.iter().enumerate() {
            // `levels` is kept in member order: only a join or a leave
            // makes this search.
            if self.levels.get(i).map(|(k, _)| *k) != Some(key) {
                match self.levels.iter().skip(i).position(|(k, _)| *k == key) {
                    Some(p) => self.levels.swap(i, i + p),
                    None => self.levels.insert(i, (key, Level::default())),
                }
            }
            // `i` indexes an existing entry (found and swapped, or inserted).
            let entry = &mut self.levels[i].1;
            entry.smoothed = if level > entry.smoothed {
                0.5 * entry.smoothed + 0.5 * level
            } else {
                0.8 * entry.smoothed + 0.2 * level
            };
            if muted {
                entry.smoothed = 0.0;
                entry.talking_for = None;
            }
            if let Some(t) = entry.talking_for.as_mut() {
                *t = t.saturating_add(1);
                if entry.smoothed < ACTIVITY_FLOOR {
                    entry.quiet_for += 1;
                    if entry.quiet_for > HOLD_TICKS {
                        entry.talking_for = None;
                    }
                } else {
                    entry.quiet_for = 0;
                }
            }
        }
        // Whoever is left past the members has left the room.
        self.levels.truncate(members.len());
        self.admit_newcomers();
        talkers.clear();
        talkers.extend(self.levels.iter().map(|(_, l)| l.talking_for.is_some()));
    }

    fn admit_newcomers(&mut self) {
        // Loudest candidates first.
        let mut candidates: Vec<usize> = (0..self.levels.len())
            .filter(|&i| {
                let l = &self.levels[i].1;
                l.talking_for.is_none() && l.smoothed >= ACTIVITY_FLOOR
            })
            .collect();
        candidates.sort_by(|&a, &b| {
            self.levels[b]
                .1
                .smoothed
                .total_cmp(&self.levels[a].1.smoothed)
        });
        for c in candidates {
            let talking = self
                .levels
                .iter()
                .filter(|(_, l)| l.talking_for.is_some())
                .count();
            if talking < self.max_talkers {
                self.start_talking(c);
                continue;
            }
            let weakest = (0..self.levels.len())
                .filter(|&i| self.levels[i].1.talking_for.is_some())
                .min_by(|&a, &b| {
                    self.levels[a]
                        .1
                        .smoothed
                        .total_cmp(&self.levels[b].1.smoothed)
                });
            if let Some(w) = weakest {
                let (new, old) = (self.levels[c].1, self.levels[w].1);
                let settled = old.talking_for.is_some_and(|t| t >= MIN_TALK_TICKS);
                if settled && new.smoothed > old.smoothed * SWITCH_MARGIN {
                    self.levels[w].1.talking_for = None;
                    self.start_talking(c);
                }
            }
        }
    }

    fn start_talking(&mut self, i: usize) {
        if let Some((_, l)) = self.levels.get_mut(i) {
            l.talking_for = Some(0);
            l.quiet_for = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `ticks` ticks with fixed levels; returns the talker flags of the last.
    fn run(s: &mut Selector, members: &[(u64, f32, bool)], ticks: usize) -> Vec<bool> {
        let mut t = Vec::new();
        for _ in 0..ticks {
            s.update(members, &mut t);
        }
        t
    }

    #[test]
    fn rms_of_a_constant_is_its_magnitude() {
        assert_eq!(rms(&[-300; 160]), 300.0);
        assert_eq!(rms(&[]), 0.0);
    }

    #[test]
    fn at_most_max_talkers_loudest_first() {
        let mut s = Selector::new(3);
        let members: Vec<(u64, f32, bool)> = (0..6)
            .map(|k| (k, 1000.0 * (k as f32 + 1.0), false))
            .collect();
        let t = run(&mut s, &members, 5);
        assert_eq!(t, vec![false, false, false, true, true, true]);
    }

    #[test]
    fn silence_and_mute_are_never_talkers() {
        let mut s = Selector::new(3);
        let t = run(
            &mut s,
            &[(1, 10.0, false), (2, 5000.0, true), (3, 800.0, false)],
            5,
        );
        assert_eq!(t, vec![false, false, true]);
    }

    #[test]
    fn a_pause_shorter_than_the_hold_keeps_the_floor() {
        let mut s = Selector::new(1);
        run(&mut s, &[(1, 2000.0, false), (2, 0.0, false)], 5);
        // Member 1 pauses 200 ms; member 2 murmurs just above the floor.
        let t = run(&mut s, &[(1, 0.0, false), (2, 100.0, false)], 10);
        assert_eq!(
            t,
            vec![true, false],
            "a louder-by-margin newcomer is needed"
        );
    }

    #[test]
    fn hysteresis_needs_a_margin_and_a_settled_talker() {
        let mut s = Selector::new(1);
        run(&mut s, &[(1, 1000.0, false), (2, 0.0, false)], 30);
        // 20 % louder is not enough to take the floor.
        let t = run(&mut s, &[(1, 1000.0, false), (2, 1200.0, false)], 30);
        assert_eq!(t, vec![true, false]);
        // Twice as loud is.
        let t = run(&mut s, &[(1, 1000.0, false), (2, 2000.0, false)], 3);
        assert_eq!(t, vec![false, true]);
        // And the new talker is not displaced again at once by a return to
        // the old level (it must hold the floor MIN_TALK_TICKS first).
        let t = run(&mut s, &[(1, 5000.0, false), (2, 2000.0, false)], 2);
        assert_eq!(t, vec![false, true]);
    }

    #[test]
    fn a_talker_that_stops_leaves_within_1_2_seconds() {
        let mut s = Selector::new(2);
        run(&mut s, &[(1, 3000.0, false)], 5);
        let t = run(&mut s, &[(1, 0.0, false)], 60);
        assert_eq!(t, vec![false]);
    }

    #[test]
    fn members_who_leave_are_forgotten() {
        let mut s = Selector::new(1);
        run(&mut s, &[(1, 3000.0, false), (2, 0.0, false)], 5);
        let t = run(&mut s, &[(2, 500.0, false)], 3);
        assert_eq!(t, vec![true], "the floor freed when its talker left");
    }

    #[test]
    fn flags_follow_members_through_a_leave_and_a_join() {
        let mut s = Selector::new(2);
        run(
            &mut s,
            &[(1, 0.0, false), (2, 3000.0, false), (3, 2000.0, false)],
            5,
        );
        // 2 leaves from the middle, 4 joins at the end; 3 keeps its floor.
        let t = run(
            &mut s,
            &[(1, 0.0, false), (3, 2000.0, false), (4, 0.0, false)],
            1,
        );
        assert_eq!(t, vec![false, true, false]);
        // Reordered members keep their own state.
        let t = run(
            &mut s,
            &[(4, 0.0, false), (3, 2000.0, false), (1, 0.0, false)],
            1,
        );
        assert_eq!(t, vec![false, true, false]);
    }
}
