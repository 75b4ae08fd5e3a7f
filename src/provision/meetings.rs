//! Scheduling meetings, tenant meeting settings, and finding rooms by id or name.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{ProvisionError, Provisioner, invalid};
use crate::access::codes::{self, ONE_TIME_LEN};
use crate::access::resolve::meeting_window;
use crate::access::window::Window;
use crate::config::parse_duration;
use crate::store::{MeetingRow, RoomRow, format_time};

/// The longest meeting one may schedule.
const MAX_MEETING: Duration = Duration::days(7);

/// A meeting as the CLI and API show it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct MeetingView {
    pub id: i64,
    pub room_id: i64,
    pub room: String,
    pub starts_at: String,
    pub ends_at: String,
    /// When the one-time code starts to admit (`starts_at − early_join`).
    pub active_from: String,
    pub one_time_code: Option<String>,
    pub cancelled: bool,
}

/// What `meeting schedule` asks for.
#[derive(Clone, Debug, Default)]
pub struct Schedule<'a> {
    pub room: &'a str,
    pub tenant: Option<&'a str>,
    pub start: &'a str,
    pub duration: Option<&'a str>,
    pub end: Option<&'a str>,
    /// `None`: the tenant's default.
    pub one_time: Option<bool>,
    /// Asked for after the one-time code; needs a one-time code.
    pub security_code: Option<&'a str>,
}

/// Tenant settings to change; `None` keeps the current value.
#[derive(Clone, Debug, Default)]
pub struct TenantSettings<'a> {
    pub one_time_default: Option<bool>,
    pub early_join: Option<&'a str>,
    pub grace: Option<&'a str>,
    pub code_length: Option<usize>,
    /// Security code one-time meetings ask for by default; `""` clears it.
    pub default_security_code: Option<&'a str>,
    /// Where personal codes are POSTed; `""` clears it.
    pub invite_webhook: Option<&'a str>,
}

fn parse_time(field: &'static str, s: &str) -> Result<DateTime<Utc>, ProvisionError> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            invalid(
                field,
                "must be RFC 3339, e.g. 2026-11-23T10:00:00Z or 2026-11-23T11:00:00+01:00",
            )
        })
}

fn parse_span(field: &'static str, s: &str) -> Result<Duration, ProvisionError> {
    let d = parse_duration(s).map_err(|e| invalid(field, e))?;
    Duration::from_std(d).map_err(|_| invalid(field, "too long"))
}

/// Start and end from `start` plus exactly one of `duration` and `end`,
/// checked: end after start, at most 7 days long, not over at `now`.
pub(super) fn meeting_span(
    start: &str,
    duration: Option<&str>,
    end: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ProvisionError> {
    let start_at = parse_time("start", start)?;
    let end = match (duration, end) {
        (Some(d), None) => start_at + parse_span("duration", d)?,
        (None, Some(e)) => parse_time("end", e)?,
        _ => {
            return Err(invalid(
                "duration",
                "give exactly one of --duration and --end",
            ));
        }
    };
    if end <= start_at {
        return Err(invalid("end", "must be after the start"));
    }
    if end - start_at > MAX_MEETING {
        return Err(invalid("duration", "at most 7 days"));
    }
    if end <= now {
        return Err(invalid("end", "the meeting would already be over"));
    }
    Ok((start_at, end))
}

impl Provisioner {
    /// A room by numeric id or by name (`tenant` settles a name several tenants use).
    pub async fn find_room(
        &self,
        room: &str,
        tenant: Option<&str>,
    ) -> Result<RoomRow, ProvisionError> {
        let not_found = || ProvisionError::NotFound {
            what: "room",
            name: room.to_owned(),
        };
        if let Ok(id) = room.parse::<i64>() {
            return self.store.room_by_id(id).await?.ok_or_else(not_found);
        }
        let mut rooms = self.store.rooms_named(room).await?;
        if let Some(t) = tenant {
            rooms.retain(|r| r.tenant == t);
        }
        match rooms.len() {
            0 => Err(not_found()),
            1 => Ok(rooms.remove(0)),
            _ => Err(invalid(
                "room",
                "several tenants have a room of this name: add --tenant",
            )),
        }
    }

    pub(super) fn view(&self, m: MeetingRow, window: Option<Window>) -> MeetingView {
        MeetingView {
            id: m.id,
            room_id: m.room_id,
            room: m.room,
            active_from: window.map_or_else(|| m.starts_at.clone(), |w| format_time(w.active_from)),
            starts_at: m.starts_at,
            ends_at: m.ends_at,
            one_time_code: m.one_time_code,
            cancelled: m.cancelled_at.is_some(),
        }
    }

    /// The tenant's codes that admit at some moment of `window`: every
    /// regular room code, and the one-time codes whose windows overlap it.
    pub(super) async fn codes_live_during(
        &self,
        tenant: &crate::store::Tenant,
        window: &Window,
        except: Option<i64>,
    ) -> Result<Vec<String>, ProvisionError> {
        Ok(self
            .store
            .tenant_codes(tenant.id, window.active_from, except)
            .await?
            .into_iter()
            .filter(|(_, when)| match when {
                None => true,
                Some((s, e)) => meeting_window(tenant, s, e).is_none_or(|w| w.overlaps(window)),
            })
            .map(|(c, _)| c)
            .collect())
    }

    /// Schedules a meeting; with a one-time code drawn to collide with no
    /// code live at the same time (nor be a prefix of one).
    pub async fn schedule_meeting(
        &self,
        req: &Schedule<'_>,
        now: DateTime<Utc>,
    ) -> Result<MeetingView, ProvisionError> {
        let (start, end) = meeting_span(req.start, req.duration, req.end, now)?;
        let room = self.find_room(req.room, req.tenant).await?;
        let tenant = self
            .store
            .tenant_by_id(room.tenant_id)
            .await?
            .ok_or_else(|| invalid("room", "room without a tenant"))?;
        let one_time = req.one_time.unwrap_or(tenant.one_time_default != 0);
        // The product rule: a scheduled meeting's security code comes with a one-time code.
        if req.security_code.is_some() && !one_time {
            return Err(invalid(
                "security_code",
                "a scheduled meeting may have a security code only together with a one-time code",
            ));
        }
        let security = req
            .security_code
            .map(|c| self.hash_security_code("security_code", c))
            .transpose()?;
        let window = Window::of_meeting(
            start,
            end,
            Duration::seconds(tenant.early_join_secs),
            Duration::seconds(tenant.grace_secs),
        );
        let code = if one_time {
            let live = self.codes_live_during(&tenant, &window, None).await?;
            let len = usize::try_from(tenant.code_length).unwrap_or(9);
            let code = codes::draw(len, &live, 64).ok_or_else(|| {
                ProvisionError::Conflict("no free one-time code: try a longer code length".into())
            })?;
            Some(code)
        } else {
            None
        };
        let row = self
            .store
            .insert_meeting(
                room.id,
                start,
                end,
                code.as_ref().map(|c| c.as_str()),
                security.as_deref(),
                now,
            )
            .await?;
        Ok(self.view(row, Some(window)))
    }

    pub async fn list_meetings(
        &self,
        room: Option<(&str, Option<&str>)>,
    ) -> Result<Vec<MeetingView>, ProvisionError> {
        let room_id = match room {
            Some((r, t)) => Some(self.find_room(r, t).await?.id),
            None => None,
        };
        let rows = self.store.list_meetings(room_id).await?;
        let mut out = Vec::with_capacity(rows.len());
        for m in rows {
            let tenant = self.store.tenant_by_id(m.tenant_id).await?;
            let window = tenant.and_then(|t| meeting_window(&t, &m.starts_at, &m.ends_at));
            out.push(self.view(m, window));
        }
        Ok(out)
    }

    pub async fn cancel_meeting(
        &self,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<MeetingView, ProvisionError> {
        if !self.store.cancel_meeting(id, now).await? {
            return Err(ProvisionError::NotFound {
                what: "live meeting",
                name: id.to_string(),
            });
        }
        let m = self
            .store
            .meeting(id)
            .await?
            .ok_or_else(|| ProvisionError::NotFound {
                what: "meeting",
                name: id.to_string(),
            })?;
        Ok(self.view(m, None))
    }

    /// Changes a tenant's meeting settings; takes effect for the next call.
    pub async fn set_tenant(
        &self,
        name: &str,
        s: &TenantSettings<'_>,
    ) -> Result<crate::store::Tenant, ProvisionError> {
        let mut tenant = self.tenant(name).await?;
        self.apply_settings(&mut tenant, s)?;
        self.store.update_tenant(&tenant).await?;
        Ok(tenant)
    }

    /// Checks every setting in `s` and writes them into `tenant` (in memory).
    pub(crate) fn apply_settings(
        &self,
        tenant: &mut crate::store::Tenant,
        s: &TenantSettings<'_>,
    ) -> Result<(), ProvisionError> {
        if let Some(v) = s.one_time_default {
            tenant.one_time_default = i64::from(v);
        }
        if let Some(e) = s.early_join {
            let d = parse_span("early_join", e)?;
            if d > Duration::days(1) {
                return Err(invalid("early_join", "at most 24h"));
            }
            tenant.early_join_secs = d.num_seconds();
        }
        if let Some(g) = s.grace {
            let d = parse_span("grace", g)?;
            if d > Duration::days(1) {
                return Err(invalid("grace", "at most 24h"));
            }
            tenant.grace_secs = d.num_seconds();
        }
        if let Some(len) = s.code_length {
            if !ONE_TIME_LEN.contains(&len) {
                return Err(invalid("code_length", "must be 6 to 12 digits"));
            }
            tenant.code_length = i64::try_from(len).unwrap_or(9);
        }
        match s.invite_webhook {
            Some("") => tenant.invite_webhook = None,
            Some(url) if super::webhook::valid_url(url) => {
                tenant.invite_webhook = Some(url.to_owned())
            }
            Some(_) => {
                return Err(invalid(
                    "invite_webhook",
                    "must be an http:// or https:// URL",
                ));
            }
            None => {}
        }
        match s.default_security_code {
            Some("") => tenant.default_security_code_hash = None,
            Some(code) => {
                tenant.default_security_code_hash =
                    Some(self.hash_security_code("default_security_code", code)?)
            }
            None => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
