//! Keypad commands in the room: `*` then a key within [`STAR_WINDOW`].
//!
//! - `*6`: mute / unmute yourself (a spoken confirmation follows).
//! - `*#`: how many are in the conference (said to you alone).
//! - `*5` (hosts): lock / unlock the room to new participants.
//! - `*7` (hosts): mute everyone but the hosts, or unmute them again.
//!
//! Any other key after `*`, or a key without `*`, does nothing; a `*`
//! left alone expires. Keypad events never reach the mix (they arrive as
//! RFC 4733 events or SIP INFO, not audio). Whether the caller may use a
//! host command is the room's business, not the keypad's.
//!
//! Pure: fed keys with the time they arrived.

use std::time::{Duration, Instant};

/// How long a `*` waits for its command key.
pub const STAR_WINDOW: Duration = Duration::from_secs(3);

/// What a caller asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    ToggleMute,
    Count,
    ToggleLock,
    ToggleMuteAll,
}

#[derive(Debug, Default, Clone)]
pub struct Keypad {
    star: Option<Instant>,
}

impl Keypad {
    pub fn new() -> Keypad {
        Keypad::default()
    }

    /// A key arrived at `now`: the command it completes, if any.
    #[must_use]
    pub fn on_key(&mut self, now: Instant, key: char) -> Option<Command> {
        let armed = self
            .star
            .take()
            .is_some_and(|at| now.saturating_duration_since(at) <= STAR_WINDOW);
        match (armed, key) {
            (_, '*') => {
                self.star = Some(now);
                None
            }
            (true, '6') => Some(Command::ToggleMute),
            (true, '#') => Some(Command::Count),
            (true, '5') => Some(Command::ToggleLock),
            (true, '7') => Some(Command::ToggleMuteAll),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_six_toggles_mute() {
        let t = Instant::now();
        let mut k = Keypad::new();
        assert_eq!(k.on_key(t, '*'), None);
        assert_eq!(
            k.on_key(t + Duration::from_millis(400), '6'),
            Some(Command::ToggleMute)
        );
        assert_eq!(
            k.on_key(t + Duration::from_secs(1), '6'),
            None,
            "6 alone is nothing"
        );
    }

    #[test]
    fn a_late_or_wrong_second_key_does_nothing() {
        let t = Instant::now();
        let mut k = Keypad::new();
        assert_eq!(k.on_key(t, '*'), None);
        assert_eq!(
            k.on_key(t + STAR_WINDOW + Duration::from_millis(1), '6'),
            None
        );
        assert_eq!(k.on_key(t, '*'), None);
        assert_eq!(k.on_key(t, '9'), None);
        assert_eq!(k.on_key(t, '6'), None, "the 9 used up the star");
    }

    #[test]
    fn star_hash_five_and_seven_are_commands() {
        let t = Instant::now();
        let mut k = Keypad::new();
        let mut press = |a, b| {
            assert_eq!(k.on_key(t, a), None);
            k.on_key(t, b)
        };
        assert_eq!(press('*', '#'), Some(Command::Count));
        assert_eq!(press('*', '5'), Some(Command::ToggleLock));
        assert_eq!(press('*', '7'), Some(Command::ToggleMuteAll));
        assert_eq!(press('5', '7'), None, "no star, no command");
    }

    #[test]
    fn a_second_star_re_arms() {
        let t = Instant::now();
        let mut k = Keypad::new();
        assert_eq!(k.on_key(t, '*'), None);
        assert_eq!(k.on_key(t + Duration::from_secs(5), '*'), None);
        assert_eq!(
            k.on_key(t + Duration::from_secs(6), '6'),
            Some(Command::ToggleMute)
        );
    }
}
