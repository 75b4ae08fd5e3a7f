//! Which room a keyed access code opens, now: a room's regular code always;
//! a meeting's one-time code only inside its window. Either may bring a
//! security code to ask for next (the room's standing one; the meeting's,
//! else the tenant default). The decision is pure ([`decide`]); [`resolve`]
//! fetches what it needs from the store.

use chrono::{DateTime, Duration, Utc};

use super::Outcome;
use super::lockout::countable_caller_id;
use super::secret::{PERSONAL, Secret};
use super::window::{Window, WindowCheck, check_any};
use crate::ids::{InviteeId, MeetingId, RoomId, TenantId};
use crate::store::{Store, StoreError, Tenant};

/// What a code means at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The access code is right now; `security` is the keyed hash of the
    /// security code still to be asked for, if any.
    Admit {
        room_id: RoomId,
        meeting_id: Option<MeetingId>,
        security: Option<String>,
        /// The invitee whose personal code it was.
        invitee: Option<InviteeId>,
        /// The room's host code was keyed: the caller joins as a host.
        host: bool,
    },
    Refuse(Outcome),
}

/// A meeting that carries the keyed code.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub room_id: RoomId,
    pub meeting_id: MeetingId,
    pub window: Window,
    /// The meeting's security code hash, else the tenant default's.
    pub security: Option<String>,
}

/// A room whose regular code (or host code) was keyed, with its standing
/// security code hash.
#[derive(Clone, Debug)]
pub struct Regular {
    pub room_id: RoomId,
    pub security: Option<String>,
    pub host: bool,
}

pub fn decide(now: DateTime<Utc>, regular: Option<Regular>, meetings: &[Candidate]) -> Decision {
    if let Some(room) = regular {
        return Decision::Admit {
            room_id: room.room_id,
            meeting_id: None,
            security: room.security,
            invitee: None,
            host: room.host,
        };
    }
    match check_any(meetings.iter().map(|m| m.window), now) {
        Some((WindowCheck::Open, i)) => match meetings.get(i) {
            Some(m) => Decision::Admit {
                room_id: m.room_id,
                meeting_id: Some(m.meeting_id),
                security: m.security.clone(),
                invitee: None,
                host: false,
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

/// Who is calling, for personal codes (rejoin by the same caller-ID).
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    pub caller_id: &'a str,
}

/// Looks `code` up for a call to a number of `tenant_id` at `now`: a room's
/// regular code, a meeting's one-time code, then an invitee's personal code.
pub async fn resolve(
    store: &Store,
    secret: &Secret,
    tenant_id: TenantId,
    code: &str,
    caller: Caller<'_>,
    now: DateTime<Utc>,
) -> Result<Decision, StoreError> {
    if let Some(room) = store.room_by_code(tenant_id.0, code).await? {
        let regular = Regular {
            room_id: RoomId(room.id),
            security: room.security_code_hash,
            host: false,
        };
        return Ok(decide(now, Some(regular), &[]));
    }
    if let Some(room) = store.room_by_host_code(tenant_id.0, code).await? {
        let host = Regular {
            room_id: RoomId(room.id),
            security: room.security_code_hash,
            host: true,
        };
        return Ok(decide(now, Some(host), &[]));
    }
    let Some(tenant) = store.tenant_by_id(tenant_id.0).await? else {
        return Ok(Decision::Refuse(Outcome::Wrong));
    };
    let meetings = store.meetings_by_code(tenant_id.0, code).await?;
    if !meetings.is_empty() {
        let candidates: Vec<Candidate> = meetings
            .iter()
            .filter_map(|m| {
                Some(Candidate {
                    room_id: RoomId(m.room_id),
                    meeting_id: MeetingId(m.id),
                    window: meeting_window(&tenant, &m.starts_at, &m.ends_at)?,
                    security: m
                        .security_code_hash
                        .clone()
                        .or_else(|| tenant.default_security_code_hash.clone()),
                })
            })
            .collect();
        return Ok(decide(now, None, &candidates));
    }
    personal(store, secret, &tenant, code, caller, now).await
}

/// A personal code: admits once (the same caller-ID may rejoin), inside
/// its meeting's window, unless revoked.
async fn personal(
    store: &Store,
    secret: &Secret,
    tenant: &Tenant,
    code: &str,
    caller: Caller<'_>,
    now: DateTime<Utc>,
) -> Result<Decision, StoreError> {
    let hash = secret.hash(PERSONAL, code);
    let Some(invitee) = store.invitee_by_code(tenant.id, &hash).await? else {
        return Ok(Decision::Refuse(Outcome::Wrong));
    };
    if invitee.revoked_at.is_some() {
        return Ok(Decision::Refuse(Outcome::Revoked));
    }
    let Some(meeting) = store.meeting(invitee.meeting_id).await? else {
        return Ok(Decision::Refuse(Outcome::Wrong));
    };
    let Some(window) = meeting_window(tenant, &meeting.starts_at, &meeting.ends_at) else {
        return Ok(Decision::Refuse(Outcome::Wrong));
    };
    match window.check(now) {
        WindowCheck::NotStarted => return Ok(Decision::Refuse(Outcome::NotStarted)),
        WindowCheck::Ended => return Ok(Decision::Refuse(Outcome::Ended)),
        WindowCheck::Open => {}
    }
    let rejoin = |used_by: Option<&str>| {
        used_by == Some(caller.caller_id) && countable_caller_id(caller.caller_id)
    };
    let admitted = match invitee.used_by_caller_id.as_deref() {
        Some(used_by) => rejoin(Some(used_by)),
        None => {
            store
                .claim_invitee(invitee.id, caller.caller_id, now)
                .await?
                || {
                    // Someone claimed it first, or it was revoked meanwhile.
                    let now_row = store.invitee(invitee.id).await?;
                    now_row.is_some_and(|r| {
                        r.revoked_at.is_none() && rejoin(r.used_by_caller_id.as_deref())
                    })
                }
        }
    };
    if !admitted {
        let revoked = store
            .invitee(invitee.id)
            .await?
            .is_some_and(|r| r.revoked_at.is_some());
        return Ok(Decision::Refuse(if revoked {
            Outcome::Revoked
        } else {
            Outcome::Used
        }));
    }
    Ok(Decision::Admit {
        room_id: RoomId(meeting.room_id),
        meeting_id: Some(MeetingId(meeting.id)),
        security: meeting
            .security_code_hash
            .or_else(|| tenant.default_security_code_hash.clone()),
        invitee: Some(InviteeId(invitee.id)),
        host: false,
    })
}

/// Whether the invitee `id` is still allowed in (not revoked) — checked
/// again when a security code follows a personal code.
pub async fn invitee_still_valid(store: &Store, id: InviteeId) -> Result<bool, StoreError> {
    Ok(store
        .invitee(id.0)
        .await?
        .is_some_and(|r| r.revoked_at.is_none()))
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
            room_id: RoomId(3),
            meeting_id: MeetingId(9),
            window: Window::of_meeting(t(start), t(end), DEFAULT_EARLY_JOIN, Duration::zero()),
            security: Some("meeting-hash".into()),
        }
    }

    #[test]
    fn regular_code_always_admits_with_the_rooms_security_code() {
        let regular = Regular {
            room_id: RoomId(5),
            security: Some("room-hash".into()),
            host: false,
        };
        assert_eq!(
            decide(t("2026-01-01T00:00:00Z"), Some(regular), &[]),
            Decision::Admit {
                room_id: RoomId(5),
                meeting_id: None,
                security: Some("room-hash".into()),
                invitee: None,
                host: false,
            }
        );
    }

    #[test]
    fn one_time_code_follows_its_window_and_brings_its_security_code() {
        let m = [candidate("2026-11-23T10:00:00Z", "2026-11-23T10:45:00Z")];
        assert_eq!(
            decide(t("2026-11-23T09:44:59Z"), None, &m),
            Decision::Refuse(Outcome::NotStarted)
        );
        assert_eq!(
            decide(t("2026-11-23T09:45:00Z"), None, &m),
            Decision::Admit {
                room_id: RoomId(3),
                meeting_id: Some(MeetingId(9)),
                security: Some("meeting-hash".into()),
                invitee: None,
                host: false,
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
