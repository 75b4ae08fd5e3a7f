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
mod tests {
    use super::*;
    use crate::provision::Schedule;

    async fn setup() -> (tempfile::TempDir, Provisioner) {
        let (dir, p) = crate::provision::test_provisioner(7).await;
        p.add_tenant("acme").await.unwrap();
        p.add_tenant("globex").await.unwrap();
        p.add_number("+15550100", "acme", "en").await.unwrap();
        p.add_room("acme", "main", Some("111"), None, &Default::default())
            .await
            .unwrap();
        p.add_room("acme", "side", Some("222"), None, &Default::default())
            .await
            .unwrap();
        (dir, p)
    }

    #[tokio::test]
    async fn bad_field_in_a_room_change_writes_nothing() {
        let (_d, p) = setup().await;
        let before = p.room_by_id(1).await.unwrap();
        let change = RoomChange {
            name: Some("renamed"),
            access_code: Some("12a"),
            ..RoomChange::default()
        };
        let err = p.update_room(1, &change).await.unwrap_err();
        assert!(
            matches!(
                err,
                ProvisionError::Invalid {
                    field: "access_code",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(p.room_by_id(1).await.unwrap(), before);
    }

    #[tokio::test]
    async fn room_code_that_prefixes_another_is_a_conflict() {
        let (_d, p) = setup().await;
        let change = RoomChange {
            access_code: Some("2223"),
            ..RoomChange::default()
        };
        let err = p.update_room(1, &change).await.unwrap_err();
        assert!(matches!(err, ProvisionError::Conflict(_)), "{err}");
        assert_eq!(p.room_by_id(1).await.unwrap().access_code, "111");
    }

    #[tokio::test]
    async fn room_rename_and_new_code_are_written() {
        let (_d, p) = setup().await;
        let change = RoomChange {
            name: Some("board"),
            access_code: Some("0333"),
            security_code: Some("55"),
            ..Default::default()
        };
        let room = p.update_room(1, &change).await.unwrap();
        assert_eq!(
            (room.name.as_str(), room.access_code.as_str()),
            ("board", "0333")
        );
        assert!(room.security_code_hash.is_some());
        let cleared = RoomChange {
            security_code: Some(""),
            ..RoomChange::default()
        };
        assert!(
            p.update_room(1, &cleared)
                .await
                .unwrap()
                .security_code_hash
                .is_none()
        );
    }

    #[tokio::test]
    async fn tenant_with_numbers_or_rooms_is_not_deleted() {
        let (_d, p) = setup().await;
        let err = p.delete_tenant(1).await.unwrap_err();
        assert!(matches!(err, ProvisionError::Conflict(_)), "{err}");
        assert_eq!(p.delete_tenant(2).await.unwrap().name, "globex");
        assert!(matches!(
            p.tenant_by_id(2).await.unwrap_err(),
            ProvisionError::NotFound { .. }
        ));
    }

    #[tokio::test]
    async fn tenant_rename_to_a_taken_name_is_a_conflict() {
        let (_d, p) = setup().await;
        let change = TenantChange {
            name: Some("globex"),
            ..TenantChange::default()
        };
        let err = p.update_tenant(1, &change).await.unwrap_err();
        assert!(matches!(err, ProvisionError::Conflict(_)), "{err}");
        assert_eq!(p.tenant_by_id(1).await.unwrap().name, "acme");
    }

    #[tokio::test]
    async fn number_moves_tenant_and_language() {
        let (_d, p) = setup().await;
        let change = NumberChange {
            tenant: Some("globex"),
            language: Some("de"),
        };
        let n = p.update_number(1, &change).await.unwrap();
        assert_eq!((n.tenant.as_str(), n.language.as_str()), ("globex", "de"));
        let bad = NumberChange {
            language: Some("not a tag"),
            ..NumberChange::default()
        };
        assert!(p.update_number(1, &bad).await.is_err());
        p.delete_number(1).await.unwrap();
        assert!(p.list_numbers().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn room_with_a_meeting_to_come_is_not_deleted_until_cancelled() {
        let (_d, p) = setup().await;
        let now = Utc::now();
        let start = crate::store::format_time(now + chrono::Duration::hours(1));
        let req = Schedule {
            room: "main",
            start: &start,
            duration: Some("30m"),
            one_time: Some(true),
            ..Schedule::default()
        };
        let meeting = p.schedule_meeting(&req, now).await.unwrap();
        let err = p.delete_room(1, now).await.unwrap_err();
        assert!(matches!(err, ProvisionError::Conflict(_)), "{err}");
        p.cancel_meeting(meeting.id, now).await.unwrap();
        assert_eq!(p.delete_room(1, now).await.unwrap().name, "main");
        assert!(p.list_meetings(None).await.unwrap().is_empty());
        assert_eq!(p.list_rooms().await.unwrap().len(), 1);
    }

    fn host(code: &'static str) -> RoomChange<'static> {
        RoomChange {
            settings: RoomSettings {
                host_code: Some(code),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn host_code_is_prefix_free_against_every_code_of_the_tenant() {
        let (_d, p) = setup().await;
        // Room 1 has 111, room 2 has 222.
        for taken in ["222", "22", "2225"] {
            let err = p.update_room(1, &host(taken)).await.unwrap_err();
            assert!(matches!(err, ProvisionError::Conflict(_)), "{taken}: {err}");
        }
        let own = p.update_room(1, &host("111")).await.unwrap_err();
        assert!(
            matches!(
                own,
                ProvisionError::Invalid {
                    field: "host_code",
                    ..
                }
            ),
            "the room's own access code: {own}"
        );
        let room = p.update_room(1, &host("9090")).await.unwrap();
        assert_eq!(room.host_code.as_deref(), Some("9090"));
        // Now 9090 blocks other rooms' codes, and keying it again is a no-op.
        let clash = RoomChange {
            access_code: Some("90"),
            ..Default::default()
        };
        assert!(matches!(
            p.update_room(2, &clash).await.unwrap_err(),
            ProvisionError::Conflict(_)
        ));
        assert!(p.update_room(1, &host("9090")).await.is_ok());
        let found = p
            .store()
            .room_by_host_code(room.tenant_id, "9090")
            .await
            .unwrap();
        assert_eq!(found.map(|r| r.id), Some(1));
    }

    #[tokio::test]
    async fn waiting_for_a_host_needs_a_host_code_and_limits_are_checked() {
        let (_d, p) = setup().await;
        let wait = RoomChange {
            settings: RoomSettings {
                wait_for_host: Some(true),
                ..Default::default()
            },
            ..Default::default()
        };
        let err = p.update_room(1, &wait).await.unwrap_err();
        assert!(
            matches!(
                err,
                ProvisionError::Invalid {
                    field: "host_code",
                    ..
                }
            ),
            "{err}"
        );
        let limit = |n| RoomChange {
            settings: RoomSettings {
                max_members: Some(n),
                ..Default::default()
            },
            ..Default::default()
        };
        for bad in [-1, MAX_MEMBERS_LIMIT + 1] {
            let err = p.update_room(1, &limit(bad)).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    ProvisionError::Invalid {
                        field: "max_members",
                        ..
                    }
                ),
                "{err}"
            );
        }
        let full = RoomChange {
            settings: RoomSettings {
                host_code: Some("77"),
                wait_for_host: Some(true),
                end_with_host: Some(true),
                host_admits: Some(true),
                max_members: Some(5),
            },
            ..Default::default()
        };
        let room = p.update_room(1, &full).await.unwrap();
        assert_eq!(
            (
                room.wait_for_host,
                room.end_with_host,
                room.host_admits,
                room.max_members
            ),
            (1, 1, 1, Some(5))
        );
        let room = p.update_room(1, &limit(0)).await.unwrap();
        assert_eq!(room.max_members, None, "0 removes the limit");
        // Removing the host code while the room waits for one is refused.
        let err = p.update_room(1, &host("")).await.unwrap_err();
        assert!(
            matches!(
                err,
                ProvisionError::Invalid {
                    field: "host_code",
                    ..
                }
            ),
            "{err}"
        );
    }
}
