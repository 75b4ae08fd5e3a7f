//! Scheduled meetings and the codes live next to them.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{MeetingRow, RoomRow, Store, StoreError, format_time};

const MEETING_SELECT: &str = "SELECT m.id AS id, m.room_id AS room_id, r.name AS room, r.tenant_id AS tenant_id, \
     m.starts_at AS starts_at, m.ends_at AS ends_at, m.one_time_code AS one_time_code, \
     m.cancelled_at AS cancelled_at, m.security_code_hash AS security_code_hash FROM meetings m JOIN rooms r ON r.id = m.room_id";

impl Store {
    pub async fn room_by_id(&self, id: i64) -> Result<Option<RoomRow>, StoreError> {
        let sql = format!("{} WHERE r.id = $1", Self::ROOM_SELECT);
        Ok(sqlx::query_as::<_, RoomRow>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Rooms called `name`, in any tenant.
    pub async fn rooms_named(&self, name: &str) -> Result<Vec<RoomRow>, StoreError> {
        let sql = format!("{} WHERE r.name = $1 ORDER BY r.id", Self::ROOM_SELECT);
        Ok(sqlx::query_as::<_, RoomRow>(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn insert_meeting(
        &self,
        room_id: i64,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
        one_time_code: Option<&str>,
        security_code_hash: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<MeetingRow, StoreError> {
        let row = sqlx::query(
            "INSERT INTO meetings (room_id, starts_at, ends_at, one_time_code, security_code_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(room_id)
        .bind(format_time(starts_at))
        .bind(format_time(ends_at))
        .bind(one_time_code)
        .bind(security_code_hash)
        .bind(format_time(now))
        .fetch_one(&self.pool)
        .await?;
        let id: i64 = row.try_get(0)?;
        self.meeting(id)
            .await?
            .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    pub async fn meeting(&self, id: i64) -> Result<Option<MeetingRow>, StoreError> {
        let sql = format!("{MEETING_SELECT} WHERE m.id = $1");
        Ok(sqlx::query_as::<_, MeetingRow>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Meetings, optionally of one room, by start time.
    pub async fn list_meetings(&self, room_id: Option<i64>) -> Result<Vec<MeetingRow>, StoreError> {
        let sql = format!(
            "{MEETING_SELECT} WHERE ($1 IS NULL OR m.room_id = $1) ORDER BY m.starts_at, m.id"
        );
        Ok(sqlx::query_as::<_, MeetingRow>(sqlx::AssertSqlSafe(sql))
            .bind(room_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Moves a meeting that is not cancelled; false if there is none.
    pub async fn reschedule_meeting(
        &self,
        id: i64,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE meetings SET starts_at = $1, ends_at = $2 WHERE id = $3 AND cancelled_at IS NULL",
        )
        .bind(format_time(starts_at))
        .bind(format_time(ends_at))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks a meeting cancelled; false if there is no such live meeting.
    pub async fn cancel_meeting(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE meetings SET cancelled_at = $1 WHERE id = $2 AND cancelled_at IS NULL",
        )
        .bind(format_time(now))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Live (not cancelled) meetings of `tenant_id` whose one-time code is `code`.
    pub async fn meetings_by_code(
        &self,
        tenant_id: i64,
        code: &str,
    ) -> Result<Vec<MeetingRow>, StoreError> {
        let sql = format!(
            "{MEETING_SELECT} WHERE r.tenant_id = $1 AND m.one_time_code = $2 AND m.cancelled_at IS NULL ORDER BY m.starts_at"
        );
        let query = sqlx::query_as::<_, MeetingRow>(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id)
            .bind(code);
        Ok(read!(self, query, fetch_all)?)
    }

    /// Every code of the tenant that is or may become live: the rooms'
    /// regular codes and the one-time codes of meetings not yet over by
    /// `after` (the caller filters on exact window overlap), leaving out
    /// meeting `except` (one being rescheduled).
    pub async fn tenant_codes(
        &self,
        tenant_id: i64,
        after: DateTime<Utc>,
        except: Option<i64>,
    ) -> Result<Vec<(String, Option<(String, String)>)>, StoreError> {
        // Host codes are keyed in place of access codes: they count too.
        let regular = sqlx::query(
            "SELECT access_code FROM rooms WHERE tenant_id = $1 \
             UNION ALL SELECT host_code FROM rooms WHERE tenant_id = $1 AND host_code IS NOT NULL",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(regular.len());
        for r in &regular {
            out.push((r.try_get::<String, _>(0)?, None));
        }
        let one_time = sqlx::query(
            "SELECT m.one_time_code, m.starts_at, m.ends_at FROM meetings m JOIN rooms r ON r.id = m.room_id \
             WHERE r.tenant_id = $1 AND m.one_time_code IS NOT NULL AND m.cancelled_at IS NULL AND m.ends_at > $2 \
             AND ($3 IS NULL OR m.id <> $3)",
        )
        .bind(tenant_id)
        .bind(format_time(after))
        .bind(except)
        .fetch_all(&self.pool)
        .await?;
        for r in &one_time {
            out.push((r.try_get(0)?, Some((r.try_get(1)?, r.try_get(2)?))));
        }
        Ok(out)
    }
}
