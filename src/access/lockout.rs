//! Lockouts against guessing, decided from failure counts in a sliding
//! window (the counts come from the attempt log in the database, so a
//! lockout holds across restarts and gateway nodes).
//!
//! A caller is locked while its caller-ID or its source address has
//! `attempts` failures within `window`; the lock lifts as they age out.
//! `anonymous`, `unknown` and empty caller-IDs are never counted by
//! caller-ID, only
//! by source. Failures per dialled number never lock the number: past
//! `number_alarm` they raise an alarm and slow the answers. `locked`,
//! `timeout` and `abandoned` are not failures: a locked caller who keeps
//! calling does not extend the lock, and silence is not guessing.

use chrono::Duration;

use super::Outcome;

#[derive(Clone, Debug)]
pub struct LockoutPolicy {
    pub attempts: u32,
    pub window: Duration,
    pub number_alarm: u32,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            attempts: 10,
            window: Duration::minutes(15),
            number_alarm: 100,
        }
    }
}

pub use crate::store::Failures;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Open,
    /// The number is being probed: answer, but slowly, and alert.
    Alarm,
    Locked,
}

/// Outcomes that count as a failed guess.
pub const FAILURES: [Outcome; 5] = [
    Outcome::Wrong,
    Outcome::NotStarted,
    Outcome::Ended,
    Outcome::Revoked,
    Outcome::Used,
];

/// Whether a caller-ID identifies someone (and so may be counted).
pub fn countable_caller_id(caller_id: &str) -> bool {
    let c = caller_id.trim();
    !c.is_empty() && !c.eq_ignore_ascii_case("anonymous") && !c.eq_ignore_ascii_case("unknown")
}

impl LockoutPolicy {
    pub fn verdict(&self, f: Failures) -> Verdict {
        if f.caller_id >= self.attempts || f.source >= self.attempts {
            Verdict::Locked
        } else if f.number >= self.number_alarm {
            Verdict::Alarm
        } else {
            Verdict::Open
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LockoutPolicy {
        LockoutPolicy {
            attempts: 3,
            window: Duration::minutes(15),
            number_alarm: 50,
        }
    }

    #[test]
    fn locked_at_the_threshold_by_caller_id_or_source() {
        let p = policy();
        assert_eq!(
            p.verdict(Failures {
                caller_id: 2,
                source: 2,
                number: 2
            }),
            Verdict::Open
        );
        assert_eq!(
            p.verdict(Failures {
                caller_id: 3,
                source: 0,
                number: 3
            }),
            Verdict::Locked
        );
        assert_eq!(
            p.verdict(Failures {
                caller_id: 0,
                source: 3,
                number: 3
            }),
            Verdict::Locked
        );
    }

    #[test]
    fn a_probed_number_alarms_but_never_locks() {
        assert_eq!(
            policy().verdict(Failures {
                caller_id: 0,
                source: 0,
                number: 10_000
            }),
            Verdict::Alarm
        );
    }

    #[test]
    fn the_stores_failure_list_is_ours() {
        let ours: Vec<&str> = FAILURES.iter().map(|o| o.as_str()).collect();
        assert_eq!(ours, crate::store::attempt_log::FAILED_OUTCOMES);
    }

    #[test]
    fn anonymous_is_not_a_caller_id() {
        assert!(!countable_caller_id("anonymous"));
        assert!(!countable_caller_id("Anonymous"));
        assert!(!countable_caller_id(""));
        assert!(countable_caller_id("+15551234"));
    }
}
