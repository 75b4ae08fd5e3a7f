//! API bearer tokens (only their keyed hashes are stored).

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Store, StoreError, format_time};

impl Store {
    pub async fn insert_token(
        &self,
        name: &str,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query("INSERT INTO api_tokens (name, token_hash, created_at) VALUES ($1, $2, $3) RETURNING id")
            .bind(name)
            .bind(token_hash)
            .bind(format_time(now))
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Whether an unrevoked token has this hash.
    pub async fn token_valid(&self, token_hash: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_one(&self.pool)
        .await?;
        let n: i64 = row.try_get(0)?;
        Ok(n > 0)
    }

    pub async fn revoke_token(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(format_time(now))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
