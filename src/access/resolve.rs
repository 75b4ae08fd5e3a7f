//! Which room a keyed access code opens, now: a room's regular code always;
//! a meeting's one-time code only inside its window. The decision is pure
//! ([`decide`]); [`resolve`] fetches what it needs from the store.

use chrono::{DateTime, Duration, Utc};

use super::Outcome;
use super::window::{Window, WindowCheck, check_any};
use crate::store::{Store, StoreError, Tenant};

/// What a code means at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Admit {
        room_id: i64,
        meeting_id: Option<i64>,
    },
    Refuse(Outcome),
}

/// A meeting that carries the keyed code.
#[derive(Clone, Copy, Debug)]
pub struct Candidate {
    pub room_id: i64,
    pub meeting_id: i64,
    pub window: Window,
}

pub fn decide(now: DateTime<Utc>, regular_room: Option<i64>, meetings: &[Candidate]) -> Decision {
    if let Some(room_id) = regular_room {
        return Decision::Admit {
            room_id,
            meeting_id: None,
        };
    }
    match check_any(meetings.iter().map(|m| m.window), now) {
        Some((WindowCheck::Open, i)) => match meetings.get(i) {
            Some(m) => Decision::Admit {
                room_id: m.room_id,
                meeting_id: Some(m.meeting_id),
            },
            None => Decision::Refuse(Outcome::Wrong),
        },
        Some((WindowCheck::NotStarted, _)) => Decision::Refuse(Outcome::NotStarted),
        Some((WindowCheck::Ended, _)) => Decision::Refuse(Outcome::Ended),
        None => Decision::Refuse(Outcome::Wrong),
    }
}

/// The tenant's window for a meeting from `starts_at` to `ends_at` (stored RFC 3339).
pub fn meeting_window(tenant: &Tenant, starts_at: &str, ends_at: &str) -> Option<Window> {
    let start = DateTime::parse_from_rfc3339(starts_at)
        .ok()?
        .with_timezone(&Utc);
    let end = DateTime::parse_from_rfc3339(ends_at)
        .ok()?
        .with_timezone(&Utc);
    Some(Window::of_meeting(
        start,
        end,
        Duration::seconds(tenant.early_join_secs),
        Duration::seconds(tenant.grace_secs),
    ))
}

/// Looks `code` up for a call to a number of `tenant_id` at `now`.
pub async fn resolve(
    store: &Store,
    tenant_id: i64,
    code: &str,
    now: DateTime<Utc>,
) -> Result<Decision, StoreError> {
    if let Some(room) = store.room_by_code(tenant_id, code).await? {
        return Ok(decide(now, Some(room.id), &[]));
    }
    let meetings = store.meetings_by_code(tenant_id, code).await?;
    if meetings.is_empty() {
        return Ok(Decision::Refuse(Outcome::Wrong));
    }
    let Some(tenant) = store.tenant_by_id(tenant_id).await? else {
        return Ok(Decision::Refuse(Outcome::Wrong));
    };
    let candidates: Vec<Candidate> = meetings
        .iter()
        .filter_map(|m| {
            Some(Candidate {
                room_id: m.room_id,
                meeting_id: m.id,
                window: meeting_window(&tenant, &m.starts_at, &m.ends_at)?,
            })
        })
        .collect();
    Ok(decide(now, None, &candidates))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::window::DEFAULT_EARLY_JOIN;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn candidate(start: &str, end: &str) -> Candidate {
        Candidate {
            room_id: 3,
            meeting_id: 9,
            window: Window::of_meeting(t(start), t(end), DEFAULT_EARLY_JOIN, Duration::zero()),
        }
    }

    #[test]
    fn regular_code_always_admits() {
        assert_eq!(
            decide(t("2026-01-01T00:00:00Z"), Some(5), &[]),
            Decision::Admit {
                room_id: 5,
                meeting_id: None
            }
        );
    }

    #[test]
    fn one_time_code_follows_its_window() {
        let m = [candidate("2026-11-23T10:00:00Z", "2026-11-23T10:45:00Z")];
        assert_eq!(
            decide(t("2026-11-23T09:44:59Z"), None, &m),
            Decision::Refuse(Outcome::NotStarted)
        );
        assert_eq!(
            decide(t("2026-11-23T09:45:00Z"), None, &m),
            Decision::Admit {
                room_id: 3,
                meeting_id: Some(9)
            }
        );
        assert_eq!(
            decide(t("2026-11-23T10:45:00Z"), None, &m),
            Decision::Refuse(Outcome::Ended)
        );
    }

    #[test]
    fn unknown_code_is_wrong() {
        assert_eq!(
            decide(t("2026-11-23T10:00:00Z"), None, &[]),
            Decision::Refuse(Outcome::Wrong)
        );
    }
}
