//! Reading one, changing and deleting tenants, numbers and rooms.
//!
//! Every change is checked in full before anything is written, so a bad
//! field changes nothing. Deletes refuse with a conflict while something
//! still depends on the row: a tenant with numbers or rooms, a room with a
//! meeting not yet over.

use chrono::{DateTime, Utc};

use super::{ProvisionError, Provisioner, TenantSettings, check_name, invalid};
use crate::access::AccessCode;
use crate::store::{NumberRow, RoomRow, Tenant};

/// Changes to a tenant; `None` keeps the current value.
#[derive(Clone, Debug, Default)]
pub struct TenantChange<'a> {
    pub name: Option<&'a str>,
    pub settings: TenantSettings<'a>,
}

/// Changes to a dial-in number; `None` keeps the current value.
#[derive(Clone, Debug, Default)]
pub struct NumberChange<'a> {
    /// Moves the number to this tenant (by name).
    pub tenant: Option<&'a str>,
    pub language: Option<&'a str>,
}

/// Changes to a room; `None` keeps the current value.
#[derive(Clone, Debug, Default)]
pub struct RoomChange<'a> {
    pub name: Option<&'a str>,
    /// A new regular code; it must clash with no live code of the tenant.
    pub access_code: Option<&'a str>,
    /// A new standing security code; `""` removes it.
    pub security_code: Option<&'a str>,
    pub settings: RoomSettings<'a>,
}

/// A room's host code and behaviour; `None` keeps the current value.
#[derive(Clone, Debug, Default)]
pub struct RoomSettings<'a> {
    /// Keyed in place of the access code by hosts; `""` removes it.
    pub host_code: Option<&'a str>,
    /// Participants wait (hold music) until a host is in the room.
    pub wait_for_host: Option<bool>,
    /// Participants wait until admitted through the API.
    pub host_admits: Option<bool>,
    /// Everyone is hung up when the last host leaves.
    pub end_with_host: Option<bool>,
    /// At most this many callers, waiting ones included; `Some(0)` removes the limit.
    pub max_members: Option<i64>,
}

/// The most callers a room may be limited to.
pub const MAX_MEMBERS_LIMIT: i64 = 10_000;

fn not_found(what: &'static str, id: i64) -> ProvisionError {
    ProvisionError::NotFound {
        what,
        name: id.to_string(),
    }
}

/// A BCP 47-ish language tag such as `en` or `en-GB`.
pub(crate) fn check_language(language: &str) -> Result<(), ProvisionError> {
    let ok = (2..=8).contains(&language.len())
        && language
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "language",
            "must be a language tag such as en or en-GB",
        ))
    }
}

impl Provisioner {
    pub async fn tenant_by_id(&self, id: i64) -> Result<Tenant, ProvisionError> {
        self.store
            .tenant_by_id(id)
            .await?
            .ok_or_else(|| not_found("tenant", id))
    }

    pub async fn update_tenant(
        &self,
        id: i64,
        change: &TenantChange<'_>,
    ) -> Result<Tenant, ProvisionError> {
        let mut tenant = self.tenant_by_id(id).await?;
        if let Some(name) = change.name {
            check_name("name", name)?;
            tenant.name = name.trim().to_owned();
        }
        self.apply_settings(&mut tenant, &change.settings)?;
        self.store.update_tenant(&tenant).await?;
        Ok(tenant)
    }

    /// Deletes a tenant with no numbers and no rooms left.
    pub async fn delete_tenant(&self, id: i64) -> Result<Tenant, ProvisionError> {
        let tenant = self.tenant_by_id(id).await?;
        let used = self.store.tenant_use(id).await?;
        if used.numbers > 0 || used.rooms > 0 {
            return Err(ProvisionError::Conflict(format!(
                "tenant still has {} number(s) and {} room(s): delete them first",
                used.numbers, used.rooms
            )));
        }
        if !self.store.delete_tenant(id).await? {
            return Err(not_found("tenant", id));
        }
        Ok(tenant)
    }

    pub async fn number_by_id(&self, id: i64) -> Result<NumberRow, ProvisionError> {
        self.store
            .number_by_id(id)
            .await?
            .ok_or_else(|| not_found("number", id))
    }

    pub async fn update_number(
        &self,
        id: i64,
        change: &NumberChange<'_>,
    ) -> Result<NumberRow, ProvisionError> {
        let number = self.number_by_id(id).await?;
        if let Some(language) = change.language {
            check_language(language)?;
        }
        let tenant_id = match change.tenant {
            Some(name) => self.tenant(name).await?.id,
            None => number.tenant_id,
        };
        let language = change.language.unwrap_or(&number.language);
        self.store.update_number(id, tenant_id, language).await?;
        self.number_by_id(id).await
    }

    /// Stops answering a number; calls already up on it go on.
    pub async fn delete_number(&self, id: i64) -> Result<NumberRow, ProvisionError> {
        let number = self.number_by_id(id).await?;
        if !self.store.delete_number(id).await? {
            return Err(not_found("number", id));
        }
        Ok(number)
    }

    pub async fn room_by_id(&self, id: i64) -> Result<RoomRow, ProvisionError> {
        self.store
            .room_by_id(id)
            .await?
            .ok_or_else(|| not_found("room", id))
    }

    pub async fn update_room(
        &self,
        id: i64,
        change: &RoomChange<'_>,
    ) -> Result<RoomRow, ProvisionError> {
        let mut room = self.room_by_id(id).await?;
        if let Some(name) = change.name {
            check_name("name", name)?;
            room.name = name.trim().to_owned();
        }
        let wanted = change
            .access_code
            .map(AccessCode::parse)
            .transpose()
            .map_err(|e| invalid("access_code", e))?;
        match change.security_code {
            Some("") => room.security_code_hash = None,
            Some(code) => {
                room.security_code_hash = Some(self.hash_security_code("security_code", code)?)
            }
            None => {}
        }
        if let Some(wanted) = wanted.filter(|w| w.as_str() != room.access_code) {
            let code = self
                .unused_code(room.tenant_id, Some(wanted), Some(&room.access_code))
                .await?;
            room.access_code = code.as_str().to_owned();
        }
        self.apply_room_settings(&mut room, &change.settings)
            .await?;
        self.store.update_room(&room).await?;
        self.room_by_id(id).await
    }

    /// Checks `settings` and applies them to `room` (nothing is written).
    pub(crate) async fn apply_room_settings(
        &self,
        room: &mut RoomRow,
        settings: &RoomSettings<'_>,
    ) -> Result<(), ProvisionError> {
        let flag = |v: bool| i64::from(v);
        if let Some(v) = settings.wait_for_host {
            room.wait_for_host = flag(v);
        }
        if let Some(v) = settings.host_admits {
            room.host_admits = flag(v);
        }
        if let Some(v) = settings.end_with_host {
            room.end_with_host = flag(v);
        }
        if let Some(limit) = settings.max_members {
            if !(0..=MAX_MEMBERS_LIMIT).contains(&limit) {
                return Err(invalid(
                    "max_members",
                    format!("must be 1 to {MAX_MEMBERS_LIMIT}, or 0 for no limit"),
                ));
            }
            room.max_members = (limit > 0).then_some(limit);
        }
        match settings.host_code {
            Some("") => room.host_code = None,
            Some(code) => {
                let code = AccessCode::parse(code).map_err(|e| {
                    invalid(
                        "host_code",
                        e.to_string().replace("access code", "host code"),
                    )
                })?;
                if code.as_str() == room.access_code {
                    return Err(invalid("host_code", "must differ from the access code"));
                }
                if room.host_code.as_deref() != Some(code.as_str()) {
                    let mut live = self.live_codes(room.tenant_id).await?;
                    // The host code being replaced is retired.
                    live.retain(|c| Some(c) != room.host_code.as_ref());
                    live.push(room.access_code.clone());
                    if !crate::access::codes::acceptable(code.as_str(), &live) {
                        return Err(ProvisionError::Conflict(
                            "host code equals, or is a prefix of, a code in use in this tenant (or the reverse)".into(),
                        ));
                    }
                    room.host_code = Some(code.as_str().to_owned());
                }
            }
            None => {}
        }
        if room.host_code.is_none() && (room.wait_for_host != 0 || room.end_with_host != 0) {
            return Err(invalid(
                "host_code",
                "wait_for_host and end_with_host need a host code",
            ));
        }
        Ok(())
    }

    /// Deletes a room whose meetings are all over or cancelled.
    pub async fn delete_room(
        &self,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<RoomRow, ProvisionError> {
        let room = self.room_by_id(id).await?;
        let open = self.store.open_meetings(id, now).await?;
        if open > 0 {
            return Err(ProvisionError::Conflict(format!(
                "room has {open} meeting(s) not over yet: cancel them first"
            )));
        }
        if !self.store.delete_room(id).await? {
            return Err(not_found("room", id));
        }
        Ok(room)
    }
}

#[cfg(test)]
mod tests;
