//! Reading one meeting, moving it, and reading its invitees.
//!
//! A move keeps the meeting's one-time code (invitations already went out
//! with it), so the code must clash with no code live in the new window;
//! if it would, the move is refused and the operator cancels and schedules
//! anew. Personal codes stay valid: they follow the meeting's window.

use chrono::{DateTime, Duration, Utc};

use super::meetings::meeting_span;
use super::{MeetingView, ProvisionError, Provisioner};
use crate::access::resolve::meeting_window;
use crate::access::window::Window;
use crate::store::InviteeRow;

/// A meeting's new times: `start` plus one of `duration` and `end`.
#[derive(Clone, Debug, Default)]
pub struct Reschedule<'a> {
    pub start: &'a str,
    pub duration: Option<&'a str>,
    pub end: Option<&'a str>,
}

impl Provisioner {
    pub async fn meeting(&self, id: i64) -> Result<MeetingView, ProvisionError> {
        let m = self
            .store
            .meeting(id)
            .await?
            .ok_or_else(|| ProvisionError::NotFound {
                what: "meeting",
                name: id.to_string(),
            })?;
        let tenant = self.store.tenant_by_id(m.tenant_id).await?;
        let window = tenant.and_then(|t| meeting_window(&t, &m.starts_at, &m.ends_at));
        Ok(self.view(m, window))
    }

    /// Moves a meeting that is neither cancelled nor over.
    pub async fn reschedule_meeting(
        &self,
        id: i64,
        req: &Reschedule<'_>,
        now: DateTime<Utc>,
    ) -> Result<MeetingView, ProvisionError> {
        let (start, end) = meeting_span(req.start, req.duration, req.end, now)?;
        let current = self.meeting(id).await?;
        if current.cancelled {
            return Err(ProvisionError::Conflict("the meeting is cancelled".into()));
        }
        if current.ends_at <= crate::store::format_time(now) {
            return Err(ProvisionError::Conflict("the meeting is over".into()));
        }
        let room = self.room_by_id(current.room_id).await?;
        let tenant = self.tenant_by_id(room.tenant_id).await?;
        if let Some(code) = &current.one_time_code {
            let window = Window::of_meeting(
                start,
                end,
                Duration::seconds(tenant.early_join_secs),
                Duration::seconds(tenant.grace_secs),
            );
            let live = self.codes_live_during(&tenant, &window, Some(id)).await?;
            if !crate::access::codes::acceptable(code, &live) {
                return Err(ProvisionError::Conflict(
                    "the meeting's one-time code clashes with a code live in the new window: cancel and schedule anew"
                        .into(),
                ));
            }
        }
        if !self.store.reschedule_meeting(id, start, end).await? {
            return Err(ProvisionError::Conflict("the meeting is cancelled".into()));
        }
        self.meeting(id).await
    }

    /// A meeting's invitees (never their codes: only hashes are kept).
    pub async fn invitees(&self, meeting_id: i64) -> Result<Vec<InviteeRow>, ProvisionError> {
        self.meeting(meeting_id).await?;
        Ok(self.store.invitees_of(meeting_id).await?)
    }

    pub async fn invitee(&self, id: i64) -> Result<InviteeRow, ProvisionError> {
        self.store
            .invitee(id)
            .await?
            .ok_or_else(|| ProvisionError::NotFound {
                what: "invitee",
                name: id.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::Schedule;
    use crate::store::format_time;

    async fn setup() -> (tempfile::TempDir, Provisioner) {
        let (dir, p) = crate::provision::test_provisioner(3).await;
        p.add_tenant("acme").await.unwrap();
        p.add_room("acme", "main", Some("111"), None, &Default::default())
            .await
            .unwrap();
        (dir, p)
    }

    async fn schedule(p: &Provisioner, start: DateTime<Utc>, now: DateTime<Utc>) -> MeetingView {
        let start = format_time(start);
        let req = Schedule {
            room: "main",
            start: &start,
            duration: Some("1h"),
            one_time: Some(true),
            ..Schedule::default()
        };
        p.schedule_meeting(&req, now).await.unwrap()
    }

    #[tokio::test]
    async fn moved_meeting_keeps_its_code_and_gets_the_new_window() {
        let (_d, p) = setup().await;
        let now = Utc::now();
        let m = schedule(&p, now + Duration::hours(2), now).await;
        let start = format_time(now + Duration::hours(5));
        let req = Reschedule {
            start: &start,
            duration: Some("30m"),
            end: None,
        };
        let moved = p.reschedule_meeting(m.id, &req, now).await.unwrap();
        assert_eq!(moved.one_time_code, m.one_time_code);
        assert_eq!(moved.starts_at, start);
        assert_eq!(
            moved.ends_at,
            format_time(now + Duration::hours(5) + Duration::minutes(30))
        );
    }

    #[tokio::test]
    async fn bad_times_and_cancelled_meetings_are_refused_unchanged() {
        let (_d, p) = setup().await;
        let now = Utc::now();
        let m = schedule(&p, now + Duration::hours(2), now).await;
        let req = Reschedule {
            start: "tomorrow",
            duration: Some("30m"),
            end: None,
        };
        let err = p.reschedule_meeting(m.id, &req, now).await.unwrap_err();
        assert!(
            matches!(err, ProvisionError::Invalid { field: "start", .. }),
            "{err}"
        );
        assert_eq!(p.meeting(m.id).await.unwrap().starts_at, m.starts_at);
        p.cancel_meeting(m.id, now).await.unwrap();
        let start = format_time(now + Duration::hours(3));
        let req = Reschedule {
            start: &start,
            duration: Some("30m"),
            end: None,
        };
        let err = p.reschedule_meeting(m.id, &req, now).await.unwrap_err();
        assert!(matches!(err, ProvisionError::Conflict(_)), "{err}");
    }

    #[tokio::test]
    async fn invitees_of_a_missing_meeting_is_not_found() {
        let (_d, p) = setup().await;
        let err = p.invitees(42).await.unwrap_err();
        assert!(matches!(err, ProvisionError::NotFound { .. }), "{err}");
    }
}
