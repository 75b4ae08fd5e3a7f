//! The attempt log's one writer, and the failure counts lockouts decide on.
//!
//! Calls never wait for the database to log an attempt: [`AttemptLog::record`]
//! queues the row and returns. One task takes the queue in batches (group
//! commit: everything that arrived within [`LogConfig::batch_window`], up to
//! [`LogConfig::max_batch`] rows, in one transaction of multi-row
//! `INSERT`s). A row is never dropped: when a batch fails it goes back to the
//! head of the queue and is tried again, and the gateway refuses new calls
//! while [`AttemptLog::backlog`] is past its limit (the queue is bounded by
//! that refusal, not by losing rows). [`AttemptLog::close`] writes what is
//! queued before the process exits; a `kill -9` loses at most the rows of
//! the last batch window.
//!
//! Lockouts count failures from the store (the source of truth across
//! restarts and nodes) plus what this process has not written yet, plus the
//! failed guesses whose verdict is being given right now ([`Guess`]). A
//! guess is counted only once its code has been looked at, so whether it
//! failed is already known: a failure counts from that moment, not from its
//! commit, and a right code never waits for anyone. Concurrent calls cannot
//! check more guesses than the limit: each decision (count, then reserve a
//! failure) is one step under the state lock, so the eleventh of twenty
//! wrong guesses racing from one source sees ten. The counts and a commit
//! never interleave: a batch commits and leaves the unwritten tally under
//! one write lock, and a count holds the read lock from its query until it
//! has added the unwritten tally, so no row is counted twice or missed.
//!
//! The commit lock covers the commit only: SQLite's WAL checkpoint runs
//! after it, from its own task ([`Store::checkpoint`], at most once every
//! [`CHECKPOINT_EVERY`]), so a count never waits for pages copied into the
//! database file.
//!
//! Left out: guesses under way on other nodes are not seen (at most one
//! batch window per node).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;
use tokio::sync::{Notify, RwLock};

use super::{Attempt, RoomSettings, Store, StoreError, format_time};

/// Outcomes that count as a failed guess; the partial indexes of migration
/// 0009 name the same list (`access::lockout::FAILURES` is checked against it).
pub const FAILED_OUTCOMES: [&str; 5] = ["wrong", "not_started", "ended", "revoked", "used"];

/// Whether an outcome is a failed guess.
pub fn is_failure(outcome: &str) -> bool {
    FAILED_OUTCOMES.contains(&outcome)
}

/// Failure counts within a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Failures {
    pub caller_id: u32,
    pub source: u32,
    pub number: u32,
}

/// Who a count is for: a caller-ID (`None` when it must not be counted,
/// e.g. `anonymous`), a source IP and the dialled number.
#[derive(Clone, Copy, Debug)]
pub struct FailureKeys<'a> {
    pub caller_id: Option<&'a str>,
    pub source_ip: &'a str,
    pub number: &'a str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    CallerId(String),
    SourceIp(String),
    Number(String),
}

impl FailureKeys<'_> {
    fn keys(&self) -> Vec<Key> {
        let mut keys = vec![
            Key::SourceIp(self.source_ip.to_owned()),
            Key::Number(self.number.to_owned()),
        ];
        if let Some(c) = self.caller_id {
            keys.push(Key::CallerId(c.to_owned()));
        }
        keys
    }
}

fn row_keys(a: &Attempt) -> [Key; 3] {
    [
        Key::CallerId(a.caller_id.clone()),
        Key::SourceIp(a.source_ip.clone()),
        Key::Number(a.number.clone()),
    ]
}

#[derive(Clone, Copy, Debug)]
pub struct LogConfig {
    /// How long the writer gathers rows before a commit.
    pub batch_window: Duration,
    /// Most rows in one transaction.
    pub max_batch: usize,
    /// Queued rows past which the gateway refuses new calls.
    pub backlog_limit: usize,
    /// Rows older than this are pruned; `None`: kept for ever.
    pub retention: Option<Duration>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            batch_window: Duration::from_millis(50),
            max_batch: 1000,
            backlog_limit: 20_000,
            retention: Some(Duration::from_secs(90 * 24 * 3600)),
        }
    }
}

/// Rows per `INSERT` statement (9 binds each: well under SQLite's limit).
const ROWS_PER_STATEMENT: usize = 100;
/// Rows one prune statement deletes.
const PRUNE_BATCH: i64 = 1000;
/// How often old rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Least time between two WAL checkpoints (each after a commit).
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Wait before a failed batch is tried again (doubling up to the cap).
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_CAP: Duration = Duration::from_secs(5);

#[derive(Default)]
struct State {
    queue: VecDeque<Attempt>,
    /// Rows taken by the writer and not committed yet.
    writing: usize,
    /// Per key: failures queued or being written.
    unwritten: Tally,
    /// Per key: failed guesses whose attempt is not recorded yet.
    pending: Tally,
    closed: bool,
    /// Batches the store refused (each kept and tried again).
    failed_batches: u64,
    /// The writer has written everything and stopped.
    stopped: bool,
}

impl State {
    /// Failures of `keys` from `stored` (committed) plus the rows queued
    /// and not yet written and the failed guesses not yet recorded. Read
    /// under the commit lock's read side: no row is counted twice or
    /// missed while the writer commits.
    fn counted(&self, keys: FailureKeys<'_>, stored: Failures) -> Failures {
        self.pending.plus(keys, self.unwritten.plus(keys, stored))
    }
}

/// Counts per key.
#[derive(Default)]
struct Tally(HashMap<Key, u32>);

impl Tally {
    fn add(&mut self, key: Key) {
        *self.0.entry(key).or_default() += 1;
    }

    fn sub(&mut self, key: &Key) {
        if let Some(n) = self.0.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.0.remove(key);
            }
        }
    }

    fn count(&self, key: Key) -> u32 {
        self.0.get(&key).copied().unwrap_or(0)
    }

    /// `base` plus this tally's counts for `keys`.
    fn plus(&self, keys: FailureKeys<'_>, base: Failures) -> Failures {
        let caller_id = keys
            .caller_id
            .map_or(0, |c| self.count(Key::CallerId(c.to_owned())));
        Failures {
            caller_id: base.caller_id.saturating_add(caller_id),
            source: base
                .source
                .saturating_add(self.count(Key::SourceIp(keys.source_ip.to_owned()))),
            number: base
                .number
                .saturating_add(self.count(Key::Number(keys.number.to_owned()))),
        }
    }
}

struct Inner {
    store: Store,
    config: LogConfig,
    state: Mutex<State>,
    /// Rows arrived, or the log closed.
    wake: Notify,
    /// The log is closing: the batch window ends now.
    closing: Notify,
    /// The writer stopped.
    stopped: Notify,
    /// A batch was tried (committed or failed).
    tried: Notify,
    /// A batch committed, or the writer stopped: time for a checkpoint.
    committed: Notify,
    /// Write-held while a batch commits and leaves `unwritten`; read-held
    /// by a count from its query to its reading of `unwritten`.
    commit: RwLock<()>,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the tally half-made
        // (every update is one call); keep going with what is there.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The attempt log: queue rows, count failures. Cheap to clone.
#[derive(Clone)]
pub struct AttemptLog {
    inner: Arc<Inner>,
}

/// A failed guess whose attempt is not recorded yet: it counts as a
/// failure until then (then its row counts) or until it is dropped.
#[must_use = "a dropped guess stops counting"]
pub struct Guess {
    log: Weak<Inner>,
    keys: Vec<Key>,
}

/// What [`AttemptLog::guess`] decided.
#[derive(Debug)]
pub enum Checked {
    /// Locked out at these counts: the guess's verdict must not be given.
    Locked(Failures),
    /// Go on (the counts before this guess); a failed guess is held until
    /// its attempt is recorded.
    Open(Failures, Option<Guess>),
}

impl Checked {
    /// The counts the decision was taken on.
    pub fn failures(&self) -> Failures {
        match self {
            Checked::Locked(f) | Checked::Open(f, _) => *f,
        }
    }
}

impl std::fmt::Debug for Guess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guess")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Drop for Guess {
    fn drop(&mut self) {
        // Settled by `record` (keys taken, under the lock already held).
        if self.keys.is_empty() {
            return;
        }
        if let Some(inner) = self.log.upgrade() {
            let mut state = inner.state();
            for k in &self.keys {
                state.pending.sub(k);
            }
        }
    }
}

impl AttemptLog {
    /// Starts the writer (and the pruner) on the current tokio runtime.
    pub fn start(store: Store, config: LogConfig) -> AttemptLog {
        let inner = Arc::new(Inner {
            store,
            config,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            closing: Notify::new(),
            stopped: Notify::new(),
            tried: Notify::new(),
            committed: Notify::new(),
            commit: RwLock::new(()),
        });
        tokio::spawn(write_loop(inner.clone()));
        if inner.store.backend() == super::Backend::Sqlite {
            tokio::spawn(checkpoint_loop(inner.clone()));
        }
        if let Some(age) = config.retention {
            tokio::spawn(prune_loop(Arc::downgrade(&inner), age));
        }
        AttemptLog { inner }
    }

    /// Queues `attempt`; `guess` is the guess it settles, if any. Never
    /// waits and never drops the row.
    pub fn record(&self, attempt: Attempt, guess: Option<Guess>) {
        let failed = is_failure(attempt.outcome);
        {
            let mut state = self.inner.state();
            if failed {
                for k in row_keys(&attempt) {
                    state.unwritten.add(k);
                }
            }
            state.queue.push_back(attempt);
            metrics::gauge!("dialgate_attempt_log_backlog").set(state.queue.len() as f64);
            // The guess leaves in the same critical section in which its
            // row's failure comes: no count sees neither.
            if let Some(mut g) = guess {
                for k in std::mem::take(&mut g.keys) {
                    state.pending.sub(&k);
                }
            }
        }
        self.inner.wake.notify_one();
    }

    /// Rows queued and not yet committed.
    pub fn backlog(&self) -> usize {
        let state = self.inner.state();
        state.queue.len() + state.writing
    }

    /// Whether the backlog is past its limit (new calls are refused).
    pub fn behind(&self) -> bool {
        self.backlog() >= self.inner.config.backlog_limit
    }

    /// The dialled number `keys.number`'s route and its caller's failures
    /// since `since` (as `State::counted` adds them up), in one trip to the
    /// store; `None`: the number is not provisioned.
    pub async fn route(
        &self,
        keys: FailureKeys<'_>,
        since: DateTime<Utc>,
    ) -> Result<Option<(super::NumberRow, Failures)>, StoreError> {
        let _reading = self.inner.commit.read().await;
        let Some((number, stored)) = self.inner.store.route_with_failures(keys, since).await?
        else {
            return Ok(None);
        };
        Ok(Some((number, self.inner.state().counted(keys, stored))))
    }

    /// Decides a guess whose code has been looked at (`failed`: it was
    /// wrong, or not valid now) and, for a right code, reads the settings
    /// of the `room` it opens in the same trip to the store (`None` if it
    /// is gone): the failures before it (as `State::counted` adds them
    /// up), and — unless `allow` refuses them
    /// (the caller is locked out, and must not learn the verdict) — a
    /// failed guess counts from this step on, until its attempt is recorded
    /// with the returned [`Guess`]. Count and reservation are one step, so
    /// concurrent guesses never pass a limit together; and since only
    /// failures are reserved, a burst of right codes from one source (a
    /// trunk, an SBC) is never held up or locked out by one another.
    pub async fn guess(
        &self,
        keys: FailureKeys<'_>,
        since: DateTime<Utc>,
        failed: bool,
        room: Option<i64>,
        allow: impl Fn(Failures) -> bool,
    ) -> Result<(Checked, Option<RoomSettings>), StoreError> {
        let _reading = self.inner.commit.read().await;
        let (stored, settings) = match room {
            Some(room) => {
                self.inner
                    .store
                    .failures_and_room(keys, since, room)
                    .await?
            }
            None => (self.inner.store.failures_since(keys, since).await?, None),
        };
        // Counted and reserved under one lock: concurrent guesses never
        // pass a limit together.
        let mut state = self.inner.state();
        let counts = state.counted(keys, stored);
        if !allow(counts) {
            return Ok((Checked::Locked(counts), settings));
        }
        let guess = failed.then(|| {
            let keys = keys.keys();
            for k in &keys {
                state.pending.add(k.clone());
            }
            Guess {
                log: Arc::downgrade(&self.inner),
                keys,
            }
        });
        Ok((Checked::Open(counts, guess), settings))
    }

    /// Writes everything queued (and on SQLite, checkpoints the WAL), then
    /// stops the writer. Rows recorded after this are still queued but only
    /// written if the writer is running.
    pub async fn close(&self) {
        let stopped = self.inner.stopped.notified();
        tokio::pin!(stopped);
        stopped.as_mut().enable();
        {
            let mut state = self.inner.state();
            state.closed = true;
            if state.stopped {
                return;
            }
        }
        self.inner.wake.notify_one();
        self.inner.closing.notify_one();
        stopped.await;
    }
}

async fn write_loop(inner: Arc<Inner>) {
    let mut retry = RETRY_FIRST;
    loop {
        let wake = inner.wake.notified();
        let (empty, closed) = {
            let state = inner.state();
            (state.queue.is_empty(), state.closed)
        };
        if empty {
            if closed {
                break;
            }
            wake.await;
            continue;
        }
        drop(wake);
        if !closed {
            // Group commit: let the rows of the next moments join this
            // batch, unless the log is closing.
            tokio::select! {
                _ = tokio::time::sleep(inner.config.batch_window) => {}
                _ = inner.closing.notified() => {}
            }
        }
        let batch: Vec<Attempt> = {
            let mut state = inner.state();
            let n = state.queue.len().min(inner.config.max_batch);
            state.writing = n;
            state.queue.drain(..n).collect()
        };
        let commit = inner.commit.write().await;
        let started = std::time::Instant::now();
        let written = super::timed("record_attempt", inner.store.insert_attempts(&batch)).await;
        match written {
            Ok(()) => {
                let mut state = inner.state();
                state.writing = 0;
                for a in batch.iter().filter(|a| is_failure(a.outcome)) {
                    for k in row_keys(a) {
                        state.unwritten.sub(&k);
                    }
                }
                metrics::gauge!("dialgate_attempt_log_backlog").set(state.queue.len() as f64);
                drop(state);
                drop(commit);
                metrics::counter!("dialgate_attempt_rows_written_total")
                    .increment(batch.len() as u64);
                metrics::histogram!("dialgate_attempt_log_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                retry = RETRY_FIRST;
                inner.tried.notify_waiters();
                inner.committed.notify_one();
            }
            Err(e) => {
                drop(commit);
                tracing::error!(%e, rows = batch.len(), retry_in = ?retry, "cannot write the attempt log: will retry, rows kept");
                metrics::counter!("dialgate_attempt_log_errors_total").increment(1);
                {
                    let mut state = inner.state();
                    state.writing = 0;
                    state.failed_batches += 1;
                    for a in batch.into_iter().rev() {
                        state.queue.push_front(a);
                    }
                }
                inner.tried.notify_waiters();
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_CAP);
            }
        }
    }
    // What the WAL holds goes into the file before `close` returns.
    if inner.store.backend() == super::Backend::Sqlite {
        checkpoint(&inner.store).await;
    }
    inner.state().stopped = true;
    inner.stopped.notify_waiters();
    inner.committed.notify_one();
}

async fn checkpoint(store: &Store) {
    match super::timed("wal_checkpoint", store.checkpoint()).await {
        Ok((frames, copied)) => tracing::trace!(frames, copied, "WAL checkpoint"),
        Err(e) => tracing::warn!(%e, "cannot checkpoint the WAL"),
    }
}

/// Checkpoints SQLite's WAL after commits, at most once every
/// [`CHECKPOINT_EVERY`], until the writer stops.
async fn checkpoint_loop(inner: Arc<Inner>) {
    loop {
        inner.committed.notified().await;
        if inner.state().stopped {
            return;
        }
        checkpoint(&inner.store).await;
        tokio::time::sleep(CHECKPOINT_EVERY).await;
    }
}

async fn prune_loop(inner: Weak<Inner>, age: Duration) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let Ok(age) = chrono::Duration::from_std(age) else {
            return;
        };
        let before = Utc::now() - age;
        match inner.store.prune_attempts(before, PRUNE_BATCH).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, before = %format_time(before), "attempt log pruned"),
            Err(e) => tracing::warn!(%e, "cannot prune the attempt log"),
        }
    }
}

impl Store {
    /// Appends `rows` in one transaction.
    pub async fn insert_attempts(&self, rows: &[Attempt]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO attempts (at, number, caller_id, source, source_ip, stage, outcome, room_id, call_id) VALUES ",
            );
            for i in 0..chunk.len() {
                let b = i * 9;
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7,
                    b + 8,
                    b + 9
                ));
            }
            // Placeholders only: every value is bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for a in chunk {
                q = q
                    .bind(format_time(a.at))
                    .bind(a.number.clone())
                    .bind(a.caller_id.clone())
                    .bind(a.source.clone())
                    .bind(a.source_ip.clone())
                    .bind(a.stage)
                    .bind(a.outcome)
                    .bind(a.room_id)
                    .bind(a.call_id.clone());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes attempts older than `before`, `batch` rows per statement so
    /// the writer is never held long; returns how many.
    pub async fn prune_attempts(
        &self,
        before: DateTime<Utc>,
        batch: i64,
    ) -> Result<u64, StoreError> {
        let before = format_time(before);
        let mut total = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM attempts WHERE id IN (SELECT id FROM attempts WHERE at < $1 ORDER BY id LIMIT $2)",
            )
            .bind(before.clone())
            .bind(batch)
            .execute(&self.pool)
            .await?
            .rows_affected();
            total += done;
            if done < u64::try_from(batch).unwrap_or(0) {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }

    /// Failed attempts since `since` for each of `keys`, in one query whose
    /// cost follows the failures (partial indexes), not the traffic.
    pub async fn failures_since(
        &self,
        keys: FailureKeys<'_>,
        since: DateTime<Utc>,
    ) -> Result<Failures, StoreError> {
        // Built once: every call counts, and the text never changes.
        static SQL: LazyLock<String> = LazyLock::new(|| format!("SELECT {}", failure_counts()));
        let query = bind_failure_keys(sqlx::query(sqlx::AssertSqlSafe(SQL.as_str())), keys, since);
        failures_of(&read!(self, query, fetch_one)?)
    }

    /// The failures of `keys` since `since` (as
    /// [`failures_since`](Self::failures_since)) and, in the same query,
    /// the settings of `room` (`None`: no such room): a right code's
    /// verdict needs both, and each trip to the store costs more than
    /// either lookup.
    pub async fn failures_and_room(
        &self,
        keys: FailureKeys<'_>,
        since: DateTime<Utc>,
        room: i64,
    ) -> Result<(Failures, Option<RoomSettings>), StoreError> {
        static SQL: LazyLock<String> =
            LazyLock::new(|| format!("SELECT {}, {ROOM_SETTINGS}", failure_counts()));
        let query = bind_failure_keys(sqlx::query(sqlx::AssertSqlSafe(SQL.as_str())), keys, since)
            .bind(room);
        let row = read!(self, query, fetch_one)?;
        let found: Option<i64> = row.try_get("room_id")?;
        let settings = match found {
            None => None,
            Some(_) => Some(RoomSettings {
                wait_for_host: row.try_get::<i64, _>("wait_for_host")? != 0,
                host_admits: row.try_get::<i64, _>("host_admits")? != 0,
                end_with_host: row.try_get::<i64, _>("end_with_host")? != 0,
                max_members: row.try_get("max_members")?,
            }),
        };
        Ok((failures_of(&row)?, settings))
    }

    /// The dialled number `keys.number`'s route (as
    /// [`number_by_e164`](Store::number_by_e164)) and, in the same query,
    /// the failures of `keys` since `since` (as
    /// [`failures_since`](Self::failures_since)): every call asks both
    /// before it is answered, and each trip to the store costs more than
    /// either lookup. `None`: the number is not provisioned.
    pub async fn route_with_failures(
        &self,
        keys: FailureKeys<'_>,
        since: DateTime<Utc>,
    ) -> Result<Option<(super::NumberRow, Failures)>, StoreError> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {}, {} {} WHERE n.e164 = $3",
                Store::NUMBER_COLUMNS,
                failure_counts(),
                Store::NUMBER_FROM
            )
        });
        let query = bind_failure_keys(sqlx::query(sqlx::AssertSqlSafe(SQL.as_str())), keys, since);
        let row = read!(self, query, fetch_optional)?;
        let Some(row) = row else { return Ok(None) };
        let number = <super::NumberRow as sqlx::FromRow<_>>::from_row(&row)?;
        Ok(Some((number, failures_of(&row)?)))
    }
}

/// The settings of room `$5` as columns `room_id` (NULL: no such room),
/// `wait_for_host`, `host_admits`, `end_with_host`, `max_members`, beside
/// the failure counts.
const ROOM_SETTINGS: &str = "r.id AS room_id, r.wait_for_host AS wait_for_host, \
     r.host_admits AS host_admits, r.end_with_host AS end_with_host, r.max_members AS max_members \
     FROM (SELECT 1 AS one) o LEFT JOIN rooms r ON r.id = $5";

/// The three failure counts as columns `failed_caller_id`, `failed_source`,
/// `failed_number`, of the caller-ID `$1`, the source `$2` and the number
/// `$3` since `$4` ([`bind_failure_keys`]). Column names and outcomes are
/// constants of ours, never input.
fn failure_counts() -> String {
    let outcomes: Vec<String> = FAILED_OUTCOMES.iter().map(|o| format!("'{o}'")).collect();
    let failed = format!("outcome IN ({})", outcomes.join(", "));
    format!(
        "(SELECT COUNT(*) FROM attempts WHERE caller_id = $1 AND at > $4 AND {failed}) AS failed_caller_id, \
         (SELECT COUNT(*) FROM attempts WHERE source_ip = $2 AND at > $4 AND {failed}) AS failed_source, \
         (SELECT COUNT(*) FROM attempts WHERE number = $3 AND at > $4 AND {failed}) AS failed_number"
    )
}

fn bind_failure_keys<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    keys: FailureKeys<'_>,
    since: DateTime<Utc>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        // NULL matches no row: an uncountable caller-ID counts 0.
        .bind(keys.caller_id.map(str::to_owned))
        .bind(keys.source_ip.to_owned())
        .bind(keys.number.to_owned())
        .bind(format_time(since))
}

fn failures_of(row: &sqlx::any::AnyRow) -> Result<Failures, StoreError> {
    let n = |column: &str| -> Result<u32, StoreError> {
        let v: i64 = row.try_get(column)?;
        Ok(u32::try_from(v).unwrap_or(u32::MAX))
    };
    Ok(Failures {
        caller_id: n("failed_caller_id")?,
        source: n("failed_source")?,
        number: n("failed_number")?,
    })
}

#[cfg(test)]
mod tests;
