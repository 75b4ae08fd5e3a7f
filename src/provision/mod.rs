//! The operator service layer: validation and provisioning over the store.
//!
//! The CLI and the REST API both call these functions, so every rule lives
//! here once. Input is parsed into types at the edge (`E164`,
//! `AccessCode`); a failure changes nothing and names the field.

mod attempts;
mod catalog;
mod invitees;
mod meetings;
mod reschedule;
mod tokens;
pub mod webhook;

pub use attempts::{AttemptSummary, summarise};
pub use catalog::{MAX_MEMBERS_LIMIT, NumberChange, RoomChange, RoomSettings, TenantChange};

pub use invitees::{InviteView, InviteeChange};
pub use meetings::{MeetingView, Schedule, TenantSettings};
pub use reschedule::Reschedule;
pub use tokens::NewToken;

use chrono::Utc;

use crate::access::secret::Secret;
use crate::access::{AccessCode, E164};
use crate::store::{NumberRow, RoomRow, Store, StoreError, Tenant};

/// Length of generated room access codes.
pub const GENERATED_CODE_LEN: usize = 9;

#[derive(thiserror::Error, Debug)]
pub enum ProvisionError {
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{what} not found: {name}")]
    NotFound { what: &'static str, name: String },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ProvisionError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ProvisionError::Conflict(what),
            other => ProvisionError::Store(other),
        }
    }
}

pub(crate) fn invalid(field: &'static str, reason: impl ToString) -> ProvisionError {
    ProvisionError::Invalid {
        field,
        reason: reason.to_string(),
    }
}

/// Operator-facing provisioning over one store.
#[derive(Clone, Debug)]
pub struct Provisioner {
    store: Store,
    secret: Option<Secret>,
}

pub use crate::access::secret::{PERSONAL, SECURITY};

pub(crate) fn check_name(field: &'static str, name: &str) -> Result<(), ProvisionError> {
    let ok = !name.trim().is_empty() && name.len() <= 100 && name.chars().all(|c| !c.is_control());
    if ok {
        Ok(())
    } else {
        Err(invalid(field, "must be 1 to 100 printable characters"))
    }
}

impl Provisioner {
    pub fn new(store: Store) -> Provisioner {
        Provisioner {
            store,
            secret: None,
        }
    }

    /// With the server key, so security codes can be set.
    pub fn with_secret(mut self, secret: Secret) -> Provisioner {
        self.secret = Some(secret);
        self
    }

    /// Validates a security code and returns its keyed hash.
    pub(crate) fn hash_security_code(
        &self,
        field: &'static str,
        code: &str,
    ) -> Result<String, ProvisionError> {
        let code = AccessCode::parse(code)
            .map_err(|e| invalid(field, e.to_string().replace("access code", "security code")))?;
        let secret = self
            .secret
            .as_ref()
            .ok_or_else(|| invalid(field, "no secret file loaded to hash it"))?;
        Ok(secret.hash(SECURITY, code.as_str()))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub async fn add_tenant(&self, name: &str) -> Result<Tenant, ProvisionError> {
        check_name("name", name)?;
        Ok(self.store.insert_tenant(name.trim(), Utc::now()).await?)
    }

    pub(crate) async fn tenant(&self, name: &str) -> Result<Tenant, ProvisionError> {
        self.store
            .tenant_by_name(name)
            .await?
            .ok_or_else(|| ProvisionError::NotFound {
                what: "tenant",
                name: name.to_owned(),
            })
    }

    pub async fn add_number(
        &self,
        number: &str,
        tenant: &str,
        language: &str,
    ) -> Result<NumberRow, ProvisionError> {
        let e164 = E164::parse(number).map_err(|e| invalid("number", e))?;
        catalog::check_language(language)?;
        let tenant = self.tenant(tenant).await?;
        Ok(self
            .store
            .insert_number(e164.as_str(), &tenant, language, Utc::now())
            .await?)
    }

    pub async fn list_numbers(&self) -> Result<Vec<NumberRow>, ProvisionError> {
        Ok(self.store.list_numbers().await?)
    }

    /// Adds a room; without `access_code` a unique 9-digit code is drawn from the CSPRNG.
    pub async fn add_room(
        &self,
        tenant: &str,
        name: &str,
        access_code: Option<&str>,
        security_code: Option<&str>,
        settings: &RoomSettings<'_>,
    ) -> Result<RoomRow, ProvisionError> {
        check_name("name", name)?;
        let code = access_code
            .map(AccessCode::parse)
            .transpose()
            .map_err(|e| invalid("access_code", e))?;
        let security = security_code
            .map(|c| self.hash_security_code("security_code", c))
            .transpose()?;
        let tenant = self.tenant(tenant).await?;
        let code = self.unused_code(tenant.id, code, None).await?;
        let mut room = RoomRow {
            id: 0,
            tenant_id: tenant.id,
            tenant: tenant.name.clone(),
            name: name.trim().to_owned(),
            access_code: code.as_str().to_owned(),
            security_code_hash: security,
            host_code: None,
            wait_for_host: 0,
            host_admits: 0,
            end_with_host: 0,
            max_members: None,
        };
        self.apply_room_settings(&mut room, settings).await?;
        Ok(self.store.insert_room(&room, Utc::now()).await?)
    }

    /// Every code of the tenant that is live now or later (regular room
    /// codes and one-time codes of meetings not over yet).
    pub(crate) async fn live_codes(&self, tenant_id: i64) -> Result<Vec<String>, ProvisionError> {
        Ok(self
            .store
            .tenant_codes(tenant_id, Utc::now(), None)
            .await?
            .into_iter()
            .map(|(code, _)| code)
            .collect())
    }

    /// A room's regular code is always live: it may neither equal nor
    /// prefix (or be prefixed by) any other code of the tenant.
    async fn unused_code(
        &self,
        tenant_id: i64,
        wanted: Option<AccessCode>,
        replacing: Option<&str>,
    ) -> Result<AccessCode, ProvisionError> {
        let mut live = self.live_codes(tenant_id).await?;
        if let Some(old) = replacing {
            // The code being replaced is retired: it does not block itself.
            live.retain(|c| c != old);
            if wanted.as_ref().is_some_and(|w| w.as_str() == old) {
                return Err(invalid(
                    "access_code",
                    "the new code must differ from the old one",
                ));
            }
        }
        match wanted {
            Some(code) if crate::access::codes::acceptable(code.as_str(), &live) => Ok(code),
            Some(_) => Err(ProvisionError::Conflict(
                "access code equals, or is a prefix of, a code in use in this tenant (or the reverse)".into(),
            )),
            None => crate::access::codes::draw(GENERATED_CODE_LEN, &live, 64)
                .ok_or_else(|| ProvisionError::Conflict("could not draw an unused access code".into())),
        }
    }

    pub async fn list_rooms(&self) -> Result<Vec<RoomRow>, ProvisionError> {
        Ok(self.store.list_rooms().await?)
    }

    /// Seeds tenant `demo`, number `+15550100` and room `demo` (code
    /// `123456789`) where absent. Returns the room.
    pub async fn seed_demo(&self) -> Result<RoomRow, ProvisionError> {
        let tenant = match self.store.tenant_by_name("demo").await? {
            Some(t) => t,
            None => self.add_tenant("demo").await?,
        };
        if self.store.number_by_e164("+15550100").await?.is_none() {
            self.add_number("+15550100", "demo", "en").await?;
        }
        match self.store.room_by_name(tenant.id, "demo").await? {
            Some(room) => Ok(room),
            None => {
                self.add_room(
                    "demo",
                    "demo",
                    Some("123456789"),
                    None,
                    &RoomSettings::default(),
                )
                .await
            }
        }
    }
}

/// A provisioner over a fresh SQLite file, with a fixed key, for tests.
#[cfg(test)]
pub(crate) async fn test_provisioner(key: u8) -> (tempfile::TempDir, Provisioner) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(&url).await.expect("store");
    let secret = Secret::from_key([key; 32]);
    (dir, Provisioner::new(store).with_secret(secret))
}
