//! The store: tenants, dial-in numbers and rooms (`catalog.rs`), meetings,
//! invitees, API tokens, the attempt log, the gateway nodes serving from
//! it (`nodes.rs`) and which node owns each live room (`leases.rs`), over
//! sqlx.
//!
//! One code path for both backends through sqlx's `Any` driver; the backend
//! is chosen by the URL scheme (`sqlite:` or `postgres:`) and each has its
//! own migration folder (`migrations/sqlite`, `migrations/postgres`) so the
//! schema can use each backend's id type. Queries are runtime-checked
//! (`query_as`), so a clean clone builds with no database. Times are stored
//! as RFC 3339 UTC text with fixed millisecond precision, which orders and
//! compares as time in both backends.
//!
//! A SQLite file is created when absent and switched to WAL. Access codes are
//! never written to the attempt log.
//!
//! A gateway opens its store with [`Store::open_serving`]: SQLite's automatic
//! WAL checkpoint is then off, because it runs inside whichever commit pushes
//! the WAL past 1,000 pages, and on the attempt writer's commit it held every
//! lockout count waiting for that commit (80–94 ms every 30–40 s at 200
//! calls/s, against a 500,000-row history). The attempt log checkpoints
//! instead ([`Store::checkpoint`], passive, at most once a second, outside
//! its commit lock). Other processes (the CLI) keep SQLite's default.

/// `$query.$fetch(…)` (an sqlx fetch: `fetch_one`, `fetch_optional`,
/// `fetch_all`) for a read every call makes: on one of `$store`'s reader
/// connections where it has them ([`readers`]), else through the pool. A
/// macro, not a method: the pool and a connection are different executors
/// to sqlx, and each fetch shape its own method.
macro_rules! read {
    ($store:expr, $query:expr, $fetch:ident) => {
        match $store.readers.as_deref() {
            Some(readers) => $query.$fetch(&mut *readers.lock().await).await,
            None => $query.$fetch(&$store.pool).await,
        }
    };
}

pub mod attempt_log;
mod catalog;
mod invitees;
mod leases;
mod meetings;
mod nodes;
mod readers;
mod rows;
mod tokens;

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Row};

use readers::Readers;

pub use attempt_log::{AttemptLog, Checked, FailureKeys, Failures, Guess, LogConfig};
pub use catalog::TenantUse;
pub use invitees::InviteeRow;
pub use leases::{LeaseClaim, LeaseRow};
pub use nodes::{NODE_TTL, NodeClaim, NodeRow, node_ttl};
pub use rows::{Attempt, AttemptRow, MeetingRow, NumberRow, RoomRow, RoomSettings, Tenant};

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    #[error("database URL must start with sqlite: or postgres: (got {0:?})")]
    UnsupportedUrl(String),
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A handle on the database; cheap to clone (a pool).
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The serving process's connections for the reads every call makes,
    /// on a SQLite file ([`readers`]); `None`: they go through the pool.
    readers: Option<Arc<Readers>>,
}

/// Awaits `work` (database queries) and records how long it took in the
/// `dialgate_db_query_seconds{op}` histogram.
pub async fn timed<T>(op: &'static str, work: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let out = work.await;
    metrics::histogram!("dialgate_db_query_seconds", "op" => op)
        .record(started.elapsed().as_secs_f64());
    out
}

/// Formats a time the way every table stores it.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn map_unique(what: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(what.to_owned())
        }
        _ => StoreError::Database(e),
    }
}

impl Store {
    /// Opens (creating and migrating when needed) the database at `url`.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, false).await
    }

    /// Opens the database as [`open`](Self::open) does, for a process that
    /// runs an [`AttemptLog`]: on a SQLite file, no commit checkpoints the
    /// WAL; the attempt log does, with [`checkpoint`](Self::checkpoint).
    pub async fn open_serving(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, true).await
    }

    async fn open_with(url: &str, manual_checkpoints: bool) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") && !url.contains(":memory:") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let file = backend == Backend::Sqlite && !url.contains(":memory:");
        // An in-memory SQLite database exists per connection: keep one.
        let max = if url.contains(":memory:") { 1 } else { 8 };
        let mut pool = AnyPoolOptions::new().max_connections(max);
        if backend == Backend::Sqlite && manual_checkpoints {
            // Per connection, so on every connection the pool opens.
            pool = pool.after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA wal_autocheckpoint=0")
                        .execute(conn)
                        .await
                        .map(drop)
                })
            });
        }
        let pool = pool.connect_with(options.clone()).await?;
        let mut store = Store {
            pool,
            backend,
            readers: None,
        };
        if backend == Backend::Sqlite {
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&store.pool)
                .await?;
        }
        store.migrate().await?;
        // Opened on the migrated file; only a serving process calls often
        // enough to want them (an in-memory database is one connection's).
        if file && manual_checkpoints {
            let readers = Readers::open(&options, readers::READERS).await?;
            store.readers = Some(Arc::new(readers));
        }
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.pool).await?,
            Backend::Postgres => {
                sqlx::migrate!("migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Copies what the WAL holds into the SQLite file as far as no reader
    /// needs it (a passive checkpoint: it waits for no one, and commits go
    /// on beside it). Returns the WAL's frames and how many are copied;
    /// nothing to do on PostgreSQL.
    pub async fn checkpoint(&self) -> Result<(i64, i64), StoreError> {
        if self.backend != Backend::Sqlite {
            return Ok((0, 0));
        }
        let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&self.pool)
            .await?;
        Ok((row.try_get(1)?, row.try_get(2)?))
    }

    const TENANT_SELECT: &str = "SELECT id, name, created_at, one_time_default, early_join_secs, grace_secs, code_length, \
         default_security_code_hash, invite_webhook FROM tenants";

    pub async fn insert_tenant(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Tenant, StoreError> {
        let row =
            sqlx::query("INSERT INTO tenants (name, created_at) VALUES ($1, $2) RETURNING id")
                .bind(name)
                .bind(format_time(now))
                .fetch_one(&self.pool)
                .await
                .map_err(map_unique("tenant with this name"))?;
        let id: i64 = row.try_get(0)?;
        self.tenant_by_id(id)
            .await?
            .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let sql = format!("{} ORDER BY id", Self::TENANT_SELECT);
        Ok(sqlx::query_as::<_, Tenant>(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn tenant_by_id(&self, id: i64) -> Result<Option<Tenant>, StoreError> {
        let sql = format!("{} WHERE id = $1", Self::TENANT_SELECT);
        let query = sqlx::query_as::<_, Tenant>(sqlx::AssertSqlSafe(sql)).bind(id);
        Ok(read!(self, query, fetch_optional)?)
    }

    pub async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        let sql = format!("{} WHERE name = $1", Self::TENANT_SELECT);
        Ok(sqlx::query_as::<_, Tenant>(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn insert_number(
        &self,
        e164: &str,
        tenant: &Tenant,
        language: &str,
        now: DateTime<Utc>,
    ) -> Result<NumberRow, StoreError> {
        let row = sqlx::query(
            "INSERT INTO numbers (e164, tenant_id, language, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(e164)
        .bind(tenant.id)
        .bind(language)
        .bind(format_time(now))
        .fetch_one(&self.pool)
        .await
        .map_err(map_unique("number already provisioned"))?;
        Ok(NumberRow {
            id: row.try_get(0)?,
            number: e164.to_owned(),
            tenant_id: tenant.id,
            tenant: tenant.name.clone(),
            language: language.to_owned(),
        })
    }

    /// A [`NumberRow`]'s columns, and where they come from.
    const NUMBER_COLUMNS: &str = "n.id AS id, n.e164 AS number, n.tenant_id AS tenant_id, t.name AS tenant, n.language AS language";
    const NUMBER_FROM: &str = "FROM numbers n JOIN tenants t ON t.id = n.tenant_id";

    pub async fn list_numbers(&self) -> Result<Vec<NumberRow>, StoreError> {
        let sql = format!(
            "SELECT {} {} ORDER BY n.id",
            Self::NUMBER_COLUMNS,
            Self::NUMBER_FROM
        );
        Ok(sqlx::query_as::<_, NumberRow>(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn number_by_e164(&self, e164: &str) -> Result<Option<NumberRow>, StoreError> {
        let sql = format!(
            "SELECT {} {} WHERE n.e164 = $1",
            Self::NUMBER_COLUMNS,
            Self::NUMBER_FROM
        );
        Ok(sqlx::query_as::<_, NumberRow>(sqlx::AssertSqlSafe(sql))
            .bind(e164)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Inserts `room` (its `id` is ignored) and returns it with its id.
    pub async fn insert_room(
        &self,
        room: &RoomRow,
        now: DateTime<Utc>,
    ) -> Result<RoomRow, StoreError> {
        let row = sqlx::query(
            "INSERT INTO rooms (tenant_id, name, access_code, security_code_hash, host_code, \
             wait_for_host, host_admits, end_with_host, max_members, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(room.tenant_id)
        .bind(&room.name)
        .bind(&room.access_code)
        .bind(room.security_code_hash.as_deref())
        .bind(room.host_code.as_deref())
        .bind(room.wait_for_host)
        .bind(room.host_admits)
        .bind(room.end_with_host)
        .bind(room.max_members)
        .bind(format_time(now))
        .fetch_one(&self.pool)
        .await
        .map_err(map_unique(
            "room name, access code or host code in use in this tenant",
        ))?;
        Ok(RoomRow {
            id: row.try_get(0)?,
            ..room.clone()
        })
    }

    pub(crate) const ROOM_SELECT: &str = "SELECT r.id AS id, r.tenant_id AS tenant_id, t.name AS tenant, r.name AS name, r.access_code AS access_code, \
         r.security_code_hash AS security_code_hash, r.host_code AS host_code, r.wait_for_host AS wait_for_host, \
         r.host_admits AS host_admits, r.end_with_host AS end_with_host, r.max_members AS max_members \
         FROM rooms r JOIN tenants t ON t.id = r.tenant_id";

    pub async fn list_rooms(&self) -> Result<Vec<RoomRow>, StoreError> {
        let sql = format!("{} ORDER BY r.id", Self::ROOM_SELECT);
        Ok(sqlx::query_as::<_, RoomRow>(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn room_by_name(
        &self,
        tenant_id: i64,
        name: &str,
    ) -> Result<Option<RoomRow>, StoreError> {
        let sql = format!(
            "{} WHERE r.tenant_id = $1 AND r.name = $2",
            Self::ROOM_SELECT
        );
        Ok(sqlx::query_as::<_, RoomRow>(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The room of `tenant_id` whose host code is `code`.
    pub async fn room_by_host_code(
        &self,
        tenant_id: i64,
        code: &str,
    ) -> Result<Option<RoomRow>, StoreError> {
        self.room_where("r.host_code", tenant_id, code).await
    }

    /// The room of `tenant_id` whose `column` (one of ours, never input) is `code`.
    async fn room_where(
        &self,
        column: &'static str,
        tenant_id: i64,
        code: &str,
    ) -> Result<Option<RoomRow>, StoreError> {
        let sql = format!(
            "{} WHERE r.tenant_id = $1 AND {column} = $2",
            Self::ROOM_SELECT
        );
        let query = sqlx::query_as::<_, RoomRow>(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id)
            .bind(code);
        Ok(read!(self, query, fetch_optional)?)
    }

    /// The room of `tenant_id` whose regular access code is `code`.
    pub async fn room_by_code(
        &self,
        tenant_id: i64,
        code: &str,
    ) -> Result<Option<RoomRow>, StoreError> {
        self.room_where("r.access_code", tenant_id, code).await
    }

    /// Attempt-log rows, oldest first, filtered by time, number and room.
    pub async fn query_attempts(
        &self,
        since: Option<DateTime<Utc>>,
        number: Option<&str>,
        room_id: Option<i64>,
    ) -> Result<Vec<AttemptRow>, StoreError> {
        Ok(sqlx::query_as::<_, AttemptRow>(
            "SELECT id, at, number, caller_id, source, stage, outcome, room_id, call_id FROM attempts \
             WHERE ($1 IS NULL OR at > $1) AND ($2 IS NULL OR number = $2) AND ($3 IS NULL OR room_id = $3) \
             ORDER BY id",
        )
        .bind(since.map(format_time))
        .bind(number)
        .bind(room_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Sets a room's regular access code.
    pub async fn update_room_code(&self, room_id: i64, code: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE rooms SET access_code = $1 WHERE id = $2")
            .bind(code)
            .bind(room_id)
            .execute(&self.pool)
            .await
            .map_err(map_unique("access code in use in this tenant"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::open(&url).await.expect("open");
        (dir, store)
    }

    fn room(t: &Tenant, name: &str, code: &str) -> RoomRow {
        RoomRow {
            id: 0,
            tenant_id: t.id,
            tenant: t.name.clone(),
            name: name.into(),
            access_code: code.into(),
            security_code_hash: None,
            host_code: None,
            wait_for_host: 0,
            host_admits: 0,
            end_with_host: 0,
            max_members: None,
        }
    }

    #[tokio::test]
    async fn sqlite_file_is_created_and_migrated() {
        let (dir, store) = temp_store().await;
        assert!(dir.path().join("t.db").exists());
        assert!(store.list_rooms().await.expect("list").is_empty());
    }

    /// A serving store reads the call path on connections of its own: what
    /// another process (here another store on the file) commits is seen
    /// by the very next read, and a read dropped half-way leaves its
    /// connection fit for the next.
    #[tokio::test]
    async fn serving_readers_see_other_writers_at_once_and_survive_cancelled_reads() {
        let (dir, other) = temp_store().await;
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let served = Store::open_serving(&url).await.expect("open serving");
        assert!(
            served.readers.is_some(),
            "a serving store on a file has readers"
        );
        assert!(
            other.readers.is_none(),
            "a CLI's store reads through its pool"
        );
        let t = other
            .insert_tenant("acme", Utc::now())
            .await
            .expect("tenant");
        let r = other
            .insert_room(&room(&t, "r", "4242"), Utc::now())
            .await
            .expect("room");
        other
            .insert_number("+15550100", &t, "en", Utc::now())
            .await
            .expect("number");
        let keys = FailureKeys {
            caller_id: None,
            source_ip: "192.0.2.1",
            number: "+15550100",
        };
        let since = Utc::now() - chrono::Duration::minutes(15);
        // More reads at once than readers, some dropped before they finish.
        for round in 0..3 {
            let mut reads = Vec::new();
            for _ in 0..(readers::READERS * 4) {
                let served = served.clone();
                reads.push(tokio::spawn(async move {
                    served
                        .room_by_code(t.id, "4242")
                        .await
                        .expect("read")
                        .map(|r| r.id)
                }));
            }
            let dropped: Vec<_> = (0..readers::READERS)
                .map(|_| {
                    let served = served.clone();
                    tokio::spawn(async move { served.route_with_failures(keys, since).await })
                })
                .collect();
            tokio::task::yield_now().await;
            for d in dropped {
                d.abort();
            }
            for read in reads {
                assert_eq!(read.await.expect("task"), Some(r.id), "round {round}");
            }
        }
        let routed = served
            .route_with_failures(keys, since)
            .await
            .expect("route");
        assert_eq!(routed.map(|(n, _)| n.number), Some("+15550100".to_owned()));
        // Changed elsewhere: the next read sees it.
        other.update_room_code(r.id, "5353").await.expect("rotate");
        assert!(
            served
                .room_by_code(t.id, "4242")
                .await
                .expect("read")
                .is_none()
        );
        assert_eq!(
            served
                .room_by_code(t.id, "5353")
                .await
                .expect("read")
                .map(|r| r.id),
            Some(r.id)
        );
        let (_, settings) = served
            .failures_and_room(keys, since, r.id)
            .await
            .expect("read");
        assert!(settings.is_some());
        let number = other
            .number_by_e164("+15550100")
            .await
            .expect("q")
            .expect("number");
        other.delete_number(number.id).await.expect("delete");
        assert!(
            served
                .route_with_failures(keys, since)
                .await
                .expect("route")
                .is_none()
        );
    }

    #[tokio::test]
    async fn access_code_keeps_leading_zeros() {
        let (_dir, store) = temp_store().await;
        let t = store
            .insert_tenant("acme", Utc::now())
            .await
            .expect("tenant");
        store
            .insert_room(&room(&t, "r", "000123"), Utc::now())
            .await
            .expect("room");
        let room = store
            .room_by_code(t.id, "000123")
            .await
            .expect("q")
            .expect("found");
        assert_eq!(room.access_code, "000123");
        assert!(store.room_by_code(t.id, "123").await.expect("q").is_none());
    }

    #[tokio::test]
    async fn duplicate_code_in_tenant_is_a_conflict() {
        let (_dir, store) = temp_store().await;
        let t = store
            .insert_tenant("acme", Utc::now())
            .await
            .expect("tenant");
        store
            .insert_room(&room(&t, "a", "111"), Utc::now())
            .await
            .expect("room");
        let err = store
            .insert_room(&room(&t, "b", "111"), Utc::now())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    }
}
