//! Choosing new codes: drawn from the CSPRNG, never equal to a code that
//! could be live at the same time, and never a prefix of one (nor one a
//! prefix of it), so a caller who types a longer code cannot be taken for a
//! shorter one. Codes are digits only, so they cannot collide with keypad
//! commands (those start with `*`).

use super::AccessCode;

/// Shortest and longest one-time code a tenant may ask for.
pub const ONE_TIME_LEN: std::ops::RangeInclusive<usize> = 6..=12;

/// Whether `candidate` may be issued next to `live` codes.
pub fn acceptable(candidate: &str, live: &[String]) -> bool {
    live.iter()
        .all(|l| !l.starts_with(candidate) && !candidate.starts_with(l.as_str()))
}

/// Draws codes of `len` digits until one is acceptable (at most `tries`).
pub fn draw(len: usize, live: &[String], tries: usize) -> Option<AccessCode> {
    (0..tries)
        .map(|_| AccessCode::generate(len))
        .find(|c| acceptable(c.as_str(), live))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(codes: &[&str]) -> Vec<String> {
        codes.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn equal_code_is_a_collision() {
        assert!(!acceptable("123456", &live(&["123456"])));
    }

    #[test]
    fn prefix_either_way_is_refused() {
        assert!(
            !acceptable("1234", &live(&["123456"])),
            "a prefix of a live code"
        );
        assert!(
            !acceptable("1234567", &live(&["123456"])),
            "a live code is its prefix"
        );
        assert!(acceptable("123457", &live(&["123456", "99"])));
    }

    #[test]
    fn leading_zeros_matter() {
        assert!(acceptable("0123", &live(&["123"])));
    }

    #[test]
    fn draw_avoids_every_live_code_and_prefix() {
        // Every 1-digit code but 7 is live: only codes starting with 7 can be drawn.
        let l = live(&["0", "1", "2", "3", "4", "5", "6", "8", "9"]);
        for _ in 0..50 {
            let c = draw(6, &l, 1000).expect("a code starting with 7");
            assert!(c.as_str().starts_with('7'));
        }
        let all = live(&["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
        assert!(draw(6, &all, 100).is_none());
    }
}
