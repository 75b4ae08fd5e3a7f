//! Invitees and their personal single-use codes (stored as keyed hashes).

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Store, StoreError, format_time, map_unique};

/// An invitee as stored; the code itself is not.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct InviteeRow {
    pub id: i64,
    pub meeting_id: i64,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub used_by_caller_id: Option<String>,
    pub used_at: Option<String>,
    pub revoked_at: Option<String>,
}

const INVITEE_SELECT: &str = "SELECT i.id AS id, i.meeting_id AS meeting_id, i.name AS name, i.phone AS phone, \
     i.email AS email, i.used_by_caller_id AS used_by_caller_id, i.used_at AS used_at, i.revoked_at AS revoked_at \
     FROM invitees i";

impl Store {
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_invitee(
        &self,
        meeting_id: i64,
        name: &str,
        phone: Option<&str>,
        email: Option<&str>,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<InviteeRow, StoreError> {
        let row = sqlx::query(
            "INSERT INTO invitees (meeting_id, name, phone, email, code_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(meeting_id)
        .bind(name)
        .bind(phone)
        .bind(email)
        .bind(code_hash)
        .bind(format_time(now))
        .fetch_one(&self.pool)
        .await
        .map_err(map_unique("personal code"))?;
        let id: i64 = row.try_get(0)?;
        self.invitee(id)
            .await?
            .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    pub async fn invitee(&self, id: i64) -> Result<Option<InviteeRow>, StoreError> {
        let sql = format!("{INVITEE_SELECT} WHERE i.id = $1");
        Ok(sqlx::query_as::<_, InviteeRow>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Writes an invitee's name, phone and e-mail.
    pub async fn update_invitee(&self, row: &InviteeRow) -> Result<(), StoreError> {
        sqlx::query("UPDATE invitees SET name = $1, phone = $2, email = $3 WHERE id = $4")
            .bind(&row.name)
            .bind(row.phone.as_deref())
            .bind(row.email.as_deref())
            .bind(row.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A meeting's invitees, in the order they were invited.
    pub async fn invitees_of(&self, meeting_id: i64) -> Result<Vec<InviteeRow>, StoreError> {
        let sql = format!("{INVITEE_SELECT} WHERE i.meeting_id = $1 ORDER BY i.id");
        Ok(sqlx::query_as::<_, InviteeRow>(sqlx::AssertSqlSafe(sql))
            .bind(meeting_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// The invitee of a meeting of `tenant_id` whose personal code hashes to `code_hash`.
    pub async fn invitee_by_code(
        &self,
        tenant_id: i64,
        code_hash: &str,
    ) -> Result<Option<InviteeRow>, StoreError> {
        let sql = format!(
            "{INVITEE_SELECT} JOIN meetings m ON m.id = i.meeting_id JOIN rooms r ON r.id = m.room_id \
             WHERE r.tenant_id = $1 AND i.code_hash = $2 AND m.cancelled_at IS NULL"
        );
        let query = sqlx::query_as::<_, InviteeRow>(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id)
            .bind(code_hash);
        Ok(read!(self, query, fetch_optional)?)
    }

    /// Marks the code used by `caller_id` if it is unused; true if this call did it.
    pub async fn claim_invitee(
        &self,
        id: i64,
        caller_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE invitees SET used_by_caller_id = $1, used_at = $2 \
             WHERE id = $3 AND used_at IS NULL AND revoked_at IS NULL",
        )
        .bind(caller_id)
        .bind(format_time(now))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes an invitee; false if there is no such unrevoked invitee.
    pub async fn revoke_invitee(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE invitees SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(format_time(now))
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }
}
