//! Updating and deleting tenants, numbers and rooms.
//!
//! Deletes refuse (return what still hangs off the row) rather than
//! cascade into what an operator may not have meant to lose; a room's
//! attempt-log rows outlive it with their `room_id` cleared, so the audit
//! trail keeps who called, when and with what outcome.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{NumberRow, RoomRow, Store, StoreError, Tenant, format_time, map_unique};

/// What still refers to a tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TenantUse {
    pub numbers: i64,
    pub rooms: i64,
}

impl Store {
    /// Writes a tenant's name and meeting settings.
    pub async fn update_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE tenants SET name = $1, one_time_default = $2, early_join_secs = $3, grace_secs = $4, \
             code_length = $5, default_security_code_hash = $6, invite_webhook = $7 WHERE id = $8",
        )
        .bind(&tenant.name)
        .bind(tenant.one_time_default)
        .bind(tenant.early_join_secs)
        .bind(tenant.grace_secs)
        .bind(tenant.code_length)
        .bind(tenant.default_security_code_hash.as_deref())
        .bind(tenant.invite_webhook.as_deref())
        .bind(tenant.id)
        .execute(&self.pool)
        .await
        .map_err(map_unique("tenant with this name"))?;
        Ok(())
    }

    pub async fn tenant_use(&self, tenant_id: i64) -> Result<TenantUse, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM numbers WHERE tenant_id = $1), \
                    (SELECT COUNT(*) FROM rooms WHERE tenant_id = $1)",
        )
        .bind(tenant_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(TenantUse {
            numbers: row.try_get(0)?,
            rooms: row.try_get(1)?,
        })
    }

    /// Deletes a tenant that nothing refers to any more; false if absent.
    pub async fn delete_tenant(&self, tenant_id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn number_by_id(&self, id: i64) -> Result<Option<NumberRow>, StoreError> {
        let sql = format!(
            "SELECT {} {} WHERE n.id = $1",
            Self::NUMBER_COLUMNS,
            Self::NUMBER_FROM
        );
        Ok(sqlx::query_as::<_, NumberRow>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Moves a number to a tenant and sets its prompt language.
    pub async fn update_number(
        &self,
        id: i64,
        tenant_id: i64,
        language: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE numbers SET tenant_id = $1, language = $2 WHERE id = $3")
            .bind(tenant_id)
            .bind(language)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stops answering a number; false if absent. Its attempt-log rows stay.
    pub async fn delete_number(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM numbers WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Writes a room's name, codes and behaviour.
    pub async fn update_room(&self, room: &RoomRow) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE rooms SET name = $1, access_code = $2, security_code_hash = $3, host_code = $4, \
             wait_for_host = $5, host_admits = $6, end_with_host = $7, max_members = $8 WHERE id = $9",
        )
        .bind(&room.name)
        .bind(&room.access_code)
        .bind(room.security_code_hash.as_deref())
        .bind(room.host_code.as_deref())
        .bind(room.wait_for_host)
        .bind(room.host_admits)
        .bind(room.end_with_host)
        .bind(room.max_members)
        .bind(room.id)
        .execute(&self.pool)
        .await
        .map_err(map_unique("room name, access code or host code in use in this tenant"))?;
        Ok(())
    }

    /// Meetings of the room that are neither cancelled nor over at `now`.
    pub async fn open_meetings(&self, room_id: i64, now: DateTime<Utc>) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM meetings WHERE room_id = $1 AND cancelled_at IS NULL AND ends_at > $2",
        )
        .bind(room_id)
        .bind(format_time(now))
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// Deletes a room with its past and cancelled meetings and their
    /// invitees, in one transaction; its attempt-log rows stay with
    /// `room_id` cleared. False if absent.
    pub async fn delete_room(&self, room_id: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM invitees WHERE meeting_id IN (SELECT id FROM meetings WHERE room_id = $1)",
        )
        .bind(room_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM meetings WHERE room_id = $1")
            .bind(room_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE attempts SET room_id = NULL WHERE room_id = $1")
            .bind(room_id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM rooms WHERE id = $1")
            .bind(room_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}
