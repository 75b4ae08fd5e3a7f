//! Reading the attempt log back, and rotating a room's regular code.

use std::collections::BTreeMap;

use chrono::Utc;
use serde::Serialize;

use super::{ProvisionError, Provisioner, invalid};
use crate::access::AccessCode;
use crate::access::lockout::FAILURES;
use crate::config::parse_duration;
use crate::store::{AttemptRow, RoomRow};

/// Failures per room and per dialled number (probing shows up here).
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct AttemptSummary {
    pub attempts: usize,
    pub failures: usize,
    /// Failures by room id (attempts that named no room are under "none").
    pub failures_by_room: BTreeMap<String, usize>,
    pub failures_by_number: BTreeMap<String, usize>,
    pub by_outcome: BTreeMap<String, usize>,
}

pub fn summarise(rows: &[AttemptRow]) -> AttemptSummary {
    let mut s = AttemptSummary {
        attempts: rows.len(),
        ..AttemptSummary::default()
    };
    for r in rows {
        *s.by_outcome.entry(r.outcome.clone()).or_default() += 1;
        if FAILURES.iter().any(|f| f.as_str() == r.outcome) {
            s.failures += 1;
            let room = r
                .room_id
                .map_or_else(|| "none".to_owned(), |id| id.to_string());
            *s.failures_by_room.entry(room).or_default() += 1;
            *s.failures_by_number.entry(r.number.clone()).or_default() += 1;
        }
    }
    s
}

impl Provisioner {
    /// The attempt log, filtered: `since` is a duration back from now (`1h`).
    pub async fn attempts(
        &self,
        since: Option<&str>,
        number: Option<&str>,
        room: Option<(&str, Option<&str>)>,
    ) -> Result<Vec<AttemptRow>, ProvisionError> {
        let since = since
            .map(|s| {
                let d = parse_duration(s).map_err(|e| invalid("since", e))?;
                chrono::Duration::from_std(d)
                    .map(|d| Utc::now() - d)
                    .map_err(|_| invalid("since", "too long"))
            })
            .transpose()?;
        let number = number
            .map(|n| crate::access::E164::parse(n).map_err(|e| invalid("number", e)))
            .transpose()?;
        let room_id = match room {
            Some((r, t)) => Some(self.find_room(r, t).await?.id),
            None => None,
        };
        Ok(self
            .store
            .query_attempts(since, number.as_ref().map(|n| n.as_str()), room_id)
            .await?)
    }

    /// Gives a room a new regular code (drawn, or `code`), clashing with no live code.
    pub async fn rotate_room_code(
        &self,
        room: &str,
        tenant: Option<&str>,
        code: Option<&str>,
    ) -> Result<RoomRow, ProvisionError> {
        let wanted = code
            .map(AccessCode::parse)
            .transpose()
            .map_err(|e| invalid("access_code", e))?;
        let room = self.find_room(room, tenant).await?;
        let code = self
            .unused_code(room.tenant_id, wanted, Some(&room.access_code))
            .await?;
        self.store.update_room_code(room.id, code.as_str()).await?;
        self.store
            .room_by_id(room.id)
            .await?
            .ok_or_else(|| ProvisionError::NotFound {
                what: "room",
                name: room.name.clone(),
            })
    }
}
