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
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::access::Outcome;
    use crate::access::resolve::{Caller, Decision, resolve};
    use crate::access::secret::Secret;
    use crate::store::Store;

    async fn setup() -> (tempfile::TempDir, Provisioner, Secret) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        let secret = Secret::from_key([9; 32]);
        let p = Provisioner::new(store).with_secret(secret.clone());
        p.add_tenant("acme").await.unwrap();
        p.add_room("acme", "main", Some("1"), None, &Default::default())
            .await
            .unwrap();
        (dir, p, secret)
    }

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 2, h, m, s).unwrap()
    }

    fn req<'a>(start: &'a str, one_time: Option<bool>, security: Option<&'a str>) -> Schedule<'a> {
        Schedule {
            room: "main",
            start,
            duration: Some("45m"),
            one_time,
            security_code: security,
            ..Schedule::default()
        }
    }

    const START: &str = "2030-01-02T10:00:00Z";

    #[tokio::test]
    async fn tenant_default_decides_one_time_codes_and_the_request_overrides_it() {
        let (_d, p, _) = setup().await;
        let now = at(9, 0, 0);
        assert!(
            p.schedule_meeting(&req(START, None, None), now)
                .await
                .unwrap()
                .one_time_code
                .is_none()
        );
        let on = TenantSettings {
            one_time_default: Some(true),
            code_length: Some(7),
            ..TenantSettings::default()
        };
        p.set_tenant("acme", &on).await.unwrap();
        let m = p
            .schedule_meeting(&req(START, None, None), now)
            .await
            .unwrap();
        assert_eq!(m.one_time_code.map(|c| c.len()), Some(7));
        assert!(
            p.schedule_meeting(&req(START, Some(false), None), now)
                .await
                .unwrap()
                .one_time_code
                .is_none()
        );
    }

    #[tokio::test]
    async fn security_code_on_a_meeting_needs_a_one_time_code() {
        let (_d, p, _) = setup().await;
        let err = p
            .schedule_meeting(&req(START, Some(false), Some("12")), at(9, 0, 0))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ProvisionError::Invalid {
                    field: "security_code",
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            p.schedule_meeting(&req(START, Some(true), Some("12")), at(9, 0, 0))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn stored_one_time_code_admits_from_15_minutes_before_to_the_end_pinned_to_the_second() {
        let (_d, p, secret) = setup().await;
        let m = p
            .schedule_meeting(&req(START, Some(true), None), at(9, 0, 0))
            .await
            .unwrap();
        let code = m.one_time_code.unwrap();
        let caller = Caller {
            caller_id: "+15551234",
        };
        let check = |now| {
            let (store, secret, code) = (p.store().clone(), secret.clone(), code.clone());
            async move {
                resolve(&store, &secret, 1, &code, caller, now)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            check(at(9, 44, 59)).await,
            Decision::Refuse(Outcome::NotStarted)
        );
        assert!(matches!(check(at(9, 45, 0)).await, Decision::Admit { .. }));
        assert!(matches!(
            check(at(10, 44, 59)).await,
            Decision::Admit { .. }
        ));
        assert_eq!(check(at(10, 45, 0)).await, Decision::Refuse(Outcome::Ended));
    }

    #[tokio::test]
    async fn tenant_default_security_code_follows_a_one_time_code() {
        let (_d, p, secret) = setup().await;
        let s = TenantSettings {
            default_security_code: Some("4321"),
            ..TenantSettings::default()
        };
        p.set_tenant("acme", &s).await.unwrap();
        let m = p
            .schedule_meeting(&req(START, Some(true), None), at(9, 0, 0))
            .await
            .unwrap();
        let caller = Caller { caller_id: "x" };
        let d = resolve(
            p.store(),
            &secret,
            1,
            &m.one_time_code.unwrap(),
            caller,
            at(10, 0, 0),
        )
        .await
        .unwrap();
        let Decision::Admit {
            security: Some(hash),
            ..
        } = d
        else {
            panic!("{d:?}")
        };
        assert!(secret.verify(crate::access::secret::SECURITY, "4321", &hash));
    }

    #[tokio::test]
    async fn personal_code_is_refused_once_revoked() {
        let (_d, p, secret) = setup().await;
        let m = p
            .schedule_meeting(&req(START, Some(true), None), at(9, 0, 0))
            .await
            .unwrap();
        let inv = p
            .invite(m.id, "Ada", None, None, at(9, 0, 0))
            .await
            .unwrap();
        let caller = Caller {
            caller_id: "+15551234",
        };
        let d = resolve(
            p.store(),
            &secret,
            1,
            &inv.personal_code,
            caller,
            at(10, 0, 0),
        )
        .await
        .unwrap();
        assert!(matches!(
            d,
            Decision::Admit {
                invitee: Some(_),
                ..
            }
        ));
        p.revoke_invitee(inv.id, at(10, 1, 0)).await.unwrap();
        let d = resolve(
            p.store(),
            &secret,
            1,
            &inv.personal_code,
            caller,
            at(10, 2, 0),
        )
        .await
        .unwrap();
        assert_eq!(d, Decision::Refuse(Outcome::Revoked));
    }
}
