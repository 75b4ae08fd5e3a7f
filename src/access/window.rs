//! When a scheduled meeting's one-time code admits callers: from
//! `start − early_join` until `end + grace` (end exclusive). Calendar rules
//! take the time as an argument, so tests pin the boundaries to the second.

use chrono::{DateTime, Duration, Utc};

/// Default early join: 15 minutes before the start.
pub const DEFAULT_EARLY_JOIN: Duration = Duration::minutes(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub active_from: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowCheck {
    NotStarted,
    Open,
    Ended,
}

impl Window {
    pub fn of_meeting(
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        early_join: Duration,
        grace: Duration,
    ) -> Window {
        Window {
            active_from: start - early_join,
            until: end + grace,
        }
    }

    pub fn check(&self, now: DateTime<Utc>) -> WindowCheck {
        if now < self.active_from {
            WindowCheck::NotStarted
        } else if now < self.until {
            WindowCheck::Open
        } else {
            WindowCheck::Ended
        }
    }

    /// Whether two windows share any instant.
    pub fn overlaps(&self, other: &Window) -> bool {
        self.active_from < other.until && other.active_from < self.until
    }
}

/// What several meetings sharing one code (at different times) say about `now`:
/// open if any window is open, else not started if any is still to come, else ended.
pub fn check_any(
    windows: impl IntoIterator<Item = Window>,
    now: DateTime<Utc>,
) -> Option<(WindowCheck, usize)> {
    let mut best: Option<(WindowCheck, usize)> = None;
    for (i, w) in windows.into_iter().enumerate() {
        let c = w.check(now);
        let rank = |c: WindowCheck| match c {
            WindowCheck::Open => 0,
            WindowCheck::NotStarted => 1,
            WindowCheck::Ended => 2,
        };
        if best.is_none_or(|(b, _)| rank(c) < rank(b)) {
            best = Some((c, i));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn meeting() -> Window {
        Window::of_meeting(
            t("2026-11-23T10:00:00Z"),
            t("2026-11-23T10:45:00Z"),
            DEFAULT_EARLY_JOIN,
            Duration::zero(),
        )
    }

    #[test]
    fn one_time_code_refused_15_minutes_and_1_second_early() {
        assert_eq!(
            meeting().check(t("2026-11-23T09:44:59Z")),
            WindowCheck::NotStarted
        );
    }

    #[test]
    fn one_time_code_admitted_exactly_15_minutes_early() {
        assert_eq!(
            meeting().check(t("2026-11-23T09:45:00Z")),
            WindowCheck::Open
        );
    }

    #[test]
    fn end_is_exclusive_and_grace_extends_it() {
        let w = meeting();
        assert_eq!(w.check(t("2026-11-23T10:44:59Z")), WindowCheck::Open);
        assert_eq!(w.check(t("2026-11-23T10:45:00Z")), WindowCheck::Ended);
        let g = Window::of_meeting(
            t("2026-11-23T10:00:00Z"),
            t("2026-11-23T10:45:00Z"),
            DEFAULT_EARLY_JOIN,
            Duration::minutes(5),
        );
        assert_eq!(g.check(t("2026-11-23T10:49:59Z")), WindowCheck::Open);
        assert_eq!(g.check(t("2026-11-23T10:50:00Z")), WindowCheck::Ended);
    }

    #[test]
    fn overlapping_windows_are_detected() {
        let a = meeting();
        let b = Window::of_meeting(
            t("2026-11-23T11:00:00Z"),
            t("2026-11-23T11:30:00Z"),
            DEFAULT_EARLY_JOIN,
            Duration::zero(),
        );
        // b opens 10:45, exactly when a closes: no shared instant.
        assert!(!a.overlaps(&b));
        let c = Window::of_meeting(
            t("2026-11-23T10:59:59Z"),
            t("2026-11-23T11:30:00Z"),
            DEFAULT_EARLY_JOIN,
            Duration::zero(),
        );
        assert!(a.overlaps(&c));
    }

    #[test]
    fn among_meetings_sharing_a_code_an_open_one_wins() {
        let early = meeting();
        let later = Window::of_meeting(
            t("2026-11-24T10:00:00Z"),
            t("2026-11-24T11:00:00Z"),
            DEFAULT_EARLY_JOIN,
            Duration::zero(),
        );
        assert_eq!(
            check_any([early, later], t("2026-11-23T10:10:00Z")),
            Some((WindowCheck::Open, 0))
        );
        assert_eq!(
            check_any([early, later], t("2026-11-23T12:00:00Z")),
            Some((WindowCheck::NotStarted, 1))
        );
        assert_eq!(
            check_any([early, later], t("2026-11-25T00:00:00Z")).map(|c| c.0),
            Some(WindowCheck::Ended)
        );
        assert_eq!(check_any([], t("2026-11-25T00:00:00Z")), None);
    }
}
