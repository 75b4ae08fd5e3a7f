//! Inviting people to a meeting with personal single-use codes, and revoking them.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::webhook::{Delivery, deliver};
use super::{PERSONAL, ProvisionError, Provisioner, invalid};
use crate::access::codes;
use crate::store::StoreError;

/// What `meeting invite` prints: the personal code is shown this once and
/// stored only as a keyed hash.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct InviteView {
    pub id: i64,
    pub meeting_id: i64,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub personal_code: String,
    /// Whether the tenant's invite webhook took it.
    pub webhook: Delivery,
}

fn optional(
    field: &'static str,
    v: Option<&str>,
    ok: impl Fn(char) -> bool,
) -> Result<Option<String>, ProvisionError> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.len() <= 100 && v.chars().all(&ok) => Ok(Some(v.to_owned())),
        Some(_) => Err(invalid(field, "unexpected characters or too long")),
    }
}

fn check_phone(v: Option<&str>) -> Result<Option<String>, ProvisionError> {
    optional("phone", v, |c| c.is_ascii_digit() || "+-() .".contains(c))
}

fn check_email(v: Option<&str>) -> Result<Option<String>, ProvisionError> {
    let email = optional("email", v, |c| !c.is_control() && !c.is_whitespace())?;
    if email.as_deref().is_some_and(|e| !e.contains('@')) {
        return Err(invalid("email", "must contain @"));
    }
    Ok(email)
}

/// Changes to an invitee's details; `None` keeps a value, `""` clears a
/// phone or e-mail. The personal code cannot change (revoke and invite anew).
#[derive(Clone, Debug, Default)]
pub struct InviteeChange<'a> {
    pub name: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub email: Option<&'a str>,
}

impl Provisioner {
    /// Corrects an invitee's name, phone or e-mail.
    pub async fn update_invitee(
        &self,
        id: i64,
        change: &InviteeChange<'_>,
    ) -> Result<crate::store::InviteeRow, ProvisionError> {
        if let Some(name) = change.name {
            super::check_name("name", name)?;
        }
        let new_phone = change.phone.map(|p| check_phone(Some(p))).transpose()?;
        let new_email = change.email.map(|e| check_email(Some(e))).transpose()?;
        let mut row = self.invitee(id).await?;
        if let Some(name) = change.name {
            row.name = name.trim().to_owned();
        }
        if let Some(p) = new_phone {
            row.phone = p;
        }
        if let Some(e) = new_email {
            row.email = e;
        }
        self.store.update_invitee(&row).await?;
        self.invitee(id).await
    }

    pub async fn invite(
        &self,
        meeting_id: i64,
        name: &str,
        phone: Option<&str>,
        email: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<InviteView, ProvisionError> {
        super::check_name("name", name)?;
        let phone = check_phone(phone)?;
        let email = check_email(email)?;
        let meeting =
            self.store
                .meeting(meeting_id)
                .await?
                .ok_or_else(|| ProvisionError::NotFound {
                    what: "meeting",
                    name: meeting_id.to_string(),
                })?;
        if meeting.cancelled_at.is_some() {
            return Err(invalid("meeting", "the meeting is cancelled"));
        }
        let tenant = self
            .store
            .tenant_by_id(meeting.tenant_id)
            .await?
            .ok_or_else(|| invalid("meeting", "meeting without a tenant"))?;
        let secret = self
            .secret
            .as_ref()
            .ok_or_else(|| invalid("meeting", "no secret file loaded to hash the personal code"))?;
        let live = self.live_codes(tenant.id).await?;
        let len = usize::try_from(tenant.code_length).unwrap_or(9);
        // A clash with another personal code shows as a unique-hash conflict: draw again.
        for _ in 0..8 {
            let code = codes::draw(len, &live, 64).ok_or_else(|| {
                ProvisionError::Conflict("no free personal code: try a longer code length".into())
            })?;
            let hash = secret.hash(PERSONAL, code.as_str());
            match self
                .store
                .insert_invitee(
                    meeting.id,
                    name.trim(),
                    phone.as_deref(),
                    email.as_deref(),
                    &hash,
                    now,
                )
                .await
            {
                Ok(row) => {
                    let mut view = InviteView {
                        id: row.id,
                        meeting_id: row.meeting_id,
                        name: row.name,
                        phone: row.phone,
                        email: row.email,
                        personal_code: code.as_str().to_owned(),
                        webhook: Delivery::None,
                    };
                    if let Some(url) = tenant.invite_webhook.clone() {
                        let payload = serde_json::json!({
                            "event": "invitee.created",
                            "tenant": tenant.name,
                            "meeting_id": meeting.id,
                            "room": meeting.room,
                            "starts_at": meeting.starts_at,
                            "ends_at": meeting.ends_at,
                            "invitee": &view,
                        })
                        .to_string();
                        view.webhook = tokio::task::spawn_blocking(move || deliver(&url, &payload))
                            .await
                            .unwrap_or(Delivery::Failed);
                    }
                    return Ok(view);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ProvisionError::Conflict(
            "could not draw an unused personal code".into(),
        ))
    }

    /// Revokes an invitee: their code fails from the next check on.
    pub async fn revoke_invitee(
        &self,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<crate::store::InviteeRow, ProvisionError> {
        if !self.store.revoke_invitee(id, now).await? {
            return Err(ProvisionError::NotFound {
                what: "unrevoked invitee",
                name: id.to_string(),
            });
        }
        self.store
            .invitee(id)
            .await?
            .ok_or_else(|| ProvisionError::NotFound {
                what: "invitee",
                name: id.to_string(),
            })
    }
}
