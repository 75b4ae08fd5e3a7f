//! The writer and the counts against a real SQLite file.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::*;

async fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(&url).await.expect("open");
    (dir, store)
}

fn attempt(at: DateTime<Utc>, source_ip: &str, caller: &str, outcome: &'static str) -> Attempt {
    Attempt {
        at,
        number: "+15550100".into(),
        caller_id: caller.into(),
        source: format!("{source_ip}:5060"),
        source_ip: source_ip.into(),
        stage: "access",
        outcome,
        room_id: None,
        call_id: format!("{source_ip}-{caller}-{outcome}"),
    }
}

async fn rows(store: &Store) -> usize {
    store
        .query_attempts(None, None, None)
        .await
        .expect("query")
        .len()
}

fn keys<'a>(source_ip: &'a str, caller: &'a str) -> FailureKeys<'a> {
    FailureKeys {
        caller_id: Some(caller),
        source_ip,
        number: "+15550100",
    }
}

/// The failures of `keys` as a call's verdict counts them (a right code's
/// guess: nothing reserved).
async fn failures(
    log: &AttemptLog,
    keys: FailureKeys<'_>,
    since: DateTime<Utc>,
) -> Result<Failures, StoreError> {
    let (checked, _) = log.guess(keys, since, false, None, |_| true).await?;
    Ok(checked.failures())
}

fn config(window: Duration) -> LogConfig {
    LogConfig {
        batch_window: window,
        ..LogConfig::default()
    }
}

#[tokio::test]
async fn every_recorded_row_is_written_by_close_in_batches() {
    let (_dir, store) = temp_store().await;
    let log = AttemptLog::start(store.clone(), config(Duration::from_millis(5)));
    let now = Utc::now();
    for i in 0..2_500 {
        let outcome = if i % 10 == 0 { "wrong" } else { "admitted" };
        log.record(attempt(now, "10.0.0.1", "alice", outcome), None);
    }
    log.close().await;
    assert_eq!(rows(&store).await, 2_500);
    assert_eq!(log.backlog(), 0);
}

#[tokio::test]
async fn an_unwritten_failure_counts_at_once_and_once_after_its_commit() {
    let (_dir, store) = temp_store().await;
    // A long window: the row stays queued while we count.
    let log = AttemptLog::start(store.clone(), config(Duration::from_secs(3600)));
    let since = Utc::now() - chrono::Duration::minutes(15);
    log.record(attempt(Utc::now(), "10.0.0.1", "alice", "wrong"), None);
    log.record(attempt(Utc::now(), "10.0.0.1", "alice", "admitted"), None);
    let before = failures(&log, keys("10.0.0.1", "alice"), since)
        .await
        .unwrap();
    assert_eq!(rows(&store).await, 0, "nothing committed yet");
    assert_eq!(
        before,
        Failures {
            caller_id: 1,
            source: 1,
            number: 1
        }
    );
    log.close().await;
    assert_eq!(rows(&store).await, 2);
    let after = failures(&log, keys("10.0.0.1", "alice"), since)
        .await
        .unwrap();
    assert_eq!(after, before, "committed rows are not counted twice");
}

/// Decides a guess for caller `i` from 10.0.0.9 whose code `failed` or
/// not, let through below `limit` failures.
async fn guess_from(log: &AttemptLog, i: usize, failed: bool, limit: u32) -> Checked {
    let since = Utc::now() - chrono::Duration::minutes(15);
    let caller = format!("caller-{i}");
    let k = FailureKeys {
        caller_id: Some(&caller),
        source_ip: "10.0.0.9",
        number: "+15550100",
    };
    log.guess(k, since, failed, None, |f| f.source < limit)
        .await
        .unwrap()
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_wrong_guesses_from_one_source_pass_a_limit_of_ten_only_ten_times() {
    let (_dir, store) = temp_store().await;
    let log = AttemptLog::start(store.clone(), config(Duration::from_millis(20)));
    let since = Utc::now() - chrono::Duration::minutes(15);
    // Three failures already on record.
    store
        .insert_attempts(&[
            attempt(Utc::now(), "10.0.0.9", "bob", "wrong"),
            attempt(Utc::now(), "10.0.0.9", "bob", "wrong"),
            attempt(Utc::now(), "10.0.0.9", "bob", "wrong"),
        ])
        .await
        .unwrap();
    let limit = 10;
    // Twenty wrong codes race on two threads.
    let racing: Vec<_> = (0..20)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { (i, guess_from(&log, i, true, limit).await) })
        })
        .collect();
    let mut passed = Vec::new();
    let mut locked = 0;
    for r in racing {
        match r.await.unwrap() {
            (i, Checked::Open(f, Some(g))) => {
                assert!(f.source < limit, "{f:?}");
                passed.push((i, g));
            }
            (_, Checked::Open(_, None)) => panic!("a failed guess must be held"),
            (_, Checked::Locked(f)) => {
                assert_eq!(f.source, limit, "locked at the limit, not past it");
                locked += 1;
            }
        }
    }
    assert_eq!((passed.len(), locked), (7, 13), "3 on record + 7 = 10");
    for (i, g) in passed {
        log.record(
            attempt(Utc::now(), "10.0.0.9", &format!("caller-{i}"), "wrong"),
            Some(g),
        );
    }
    log.close().await;
    let f = failures(&log, keys("10.0.0.9", "nobody"), since)
        .await
        .unwrap();
    assert_eq!(f.source, 10);
    assert_eq!(rows(&store).await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_codes_from_one_source_never_wait_on_one_another_but_known_failures_lock_them_out() {
    let (_dir, store) = temp_store().await;
    let log = AttemptLog::start(store.clone(), config(Duration::from_millis(20)));
    let limit = 10;
    // Nine wrong guesses under way, their attempts not recorded yet.
    let mut held = Vec::new();
    for i in 0..9 {
        match guess_from(&log, i, true, limit).await {
            Checked::Open(_, Some(g)) => held.push(g),
            other => panic!("below the limit: {other:?}"),
        }
    }
    // Fifty right codes at once: none held, none locked out, none waiting.
    let racing: Vec<_> = (100..150)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { guess_from(&log, i, false, limit).await })
        })
        .collect();
    for r in racing {
        match r.await.unwrap() {
            Checked::Open(f, None) => assert_eq!(f.source, 9),
            other => panic!("a right code below the limit goes on: {other:?}"),
        }
    }
    // The tenth failure is known as soon as it is decided: the next
    // caller is locked out whatever its code, before any row is written.
    let Checked::Open(_, Some(tenth)) = guess_from(&log, 9, true, limit).await else {
        panic!("the tenth guess is below the limit");
    };
    assert!(matches!(
        guess_from(&log, 200, false, limit).await,
        Checked::Locked(f) if f.source == 10
    ));
    drop(tenth);
    drop(held);
    log.close().await;
    assert_eq!(rows(&store).await, 0);
}

#[tokio::test]
async fn a_dropped_guess_stops_counting_and_a_right_one_is_never_held() {
    let (_dir, store) = temp_store().await;
    let log = AttemptLog::start(store.clone(), config(Duration::from_millis(5)));
    let since = Utc::now() - chrono::Duration::minutes(15);
    let k = keys("10.0.0.2", "carol");
    let Checked::Open(_, Some(g)) = log
        .guess(k, since, true, None, |f| f.source < 1)
        .await
        .unwrap()
        .0
    else {
        panic!("the first guess");
    };
    assert_eq!(
        failures(&log, k, since).await.unwrap().source,
        1,
        "a known failure counts before its row"
    );
    assert!(matches!(
        log.guess(k, since, false, None, |f| f.source < 1)
            .await
            .unwrap()
            .0,
        Checked::Locked(_)
    ));
    // Dropped (the caller hung up before the verdict): no failure.
    drop(g);
    assert_eq!(failures(&log, k, since).await.unwrap().source, 0);
    let Checked::Open(_, None) = log
        .guess(k, since, false, None, |f| f.source < 1)
        .await
        .unwrap()
        .0
    else {
        panic!("a right code below the limit is let through and not held");
    };
    log.record(attempt(Utc::now(), "10.0.0.2", "carol", "admitted"), None);
    assert_eq!(failures(&log, k, since).await.unwrap().source, 0);
    log.close().await;
    assert_eq!(rows(&store).await, 1);
}

#[tokio::test]
async fn a_batch_the_store_refuses_is_kept_and_written_when_it_can_be() {
    let (_dir, store) = temp_store().await;
    let log = AttemptLog::start(store.clone(), config(Duration::from_millis(5)));
    // The table is away: every commit fails.
    sqlx::query("ALTER TABLE attempts RENAME TO attempts_away")
        .execute(&store.pool)
        .await
        .unwrap();
    for _ in 0..5 {
        log.record(attempt(Utc::now(), "10.0.0.3", "dave", "wrong"), None);
    }
    // Until the writer has tried and failed at least once (bounded).
    let failed = async {
        loop {
            let tried = log.inner.tried.notified();
            if log.inner.state().failed_batches > 0 {
                return;
            }
            tried.await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), failed)
        .await
        .expect("the writer tried the batch");
    let since = Utc::now() - chrono::Duration::minutes(15);
    // The store cannot count now either, but the rows are still held.
    assert_eq!(log.backlog(), 5);
    sqlx::query("ALTER TABLE attempts_away RENAME TO attempts")
        .execute(&store.pool)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), log.close())
        .await
        .expect("flushed once the table is back");
    assert_eq!(rows(&store).await, 5);
    let f = failures(&log, keys("10.0.0.3", "dave"), since)
        .await
        .unwrap();
    assert_eq!(f.source, 5);
}

#[tokio::test]
async fn the_backlog_limit_says_behind() {
    let (_dir, store) = temp_store().await;
    let log = AttemptLog::start(
        store.clone(),
        LogConfig {
            batch_window: Duration::from_secs(3600),
            backlog_limit: 3,
            ..LogConfig::default()
        },
    );
    for _ in 0..2 {
        log.record(attempt(Utc::now(), "10.0.0.4", "erin", "admitted"), None);
    }
    assert!(!log.behind());
    log.record(attempt(Utc::now(), "10.0.0.4", "erin", "admitted"), None);
    assert!(log.behind());
    log.close().await;
    assert!(!log.behind());
    assert_eq!(rows(&store).await, 3);
}

#[tokio::test]
async fn counts_are_right_and_cheap_over_a_large_history() {
    let (_dir, store) = temp_store().await;
    let now = Utc::now();
    // 200,000 attempts over the last 30 days from 50 sources, 1 % failed;
    // the last 15 minutes hold 1,000 of them.
    let mut batch = Vec::with_capacity(10_000);
    let mut expected_recent = 0u32;
    let mut expected_caller = 0u32;
    for i in 0..200_000u32 {
        let recent = i % 200 == 0;
        let age = if recent {
            chrono::Duration::seconds(i64::from(i % 800))
        } else {
            chrono::Duration::minutes(20 + i64::from(i % 43_000))
        };
        let source = format!("10.1.0.{}", i % 50);
        let failed = i % 100 == 7 || (recent && i % 400 == 0);
        let outcome = if failed { "wrong" } else { "admitted" };
        if recent && failed && source == "10.1.0.0" {
            expected_recent += 1;
        }
        let caller = format!("+1555{:04}", i % 1000);
        if recent && failed && caller == "+15550000" {
            expected_caller += 1;
        }
        batch.push(attempt(now - age, &source, &caller, outcome));
        if batch.len() == 10_000 {
            store.insert_attempts(&batch).await.unwrap();
            batch.clear();
        }
    }
    assert!(expected_recent > 0);
    let since = now - chrono::Duration::minutes(15);
    let k = FailureKeys {
        caller_id: Some("+15550000"),
        source_ip: "10.1.0.0",
        number: "+15550100",
    };
    let f = store.failures_since(k, since).await.unwrap();
    assert_eq!(f.source, expected_recent);
    assert_eq!(f.caller_id, expected_caller);
    // Each count reads the failures' partial index, never the whole table.
    for column in ["caller_id", "source_ip", "number"] {
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM attempts WHERE {column} = 'x' AND at > 'y' \
             AND outcome IN ('wrong', 'not_started', 'ended', 'revoked', 'used')"
        );
        let plan: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&store.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<String, _>(3).unwrap())
            .collect();
        let plan = plan.join(" | ");
        assert!(plan.contains("attempts_failed_"), "{column}: {plan}");
    }
}

#[tokio::test]
async fn pruning_removes_only_rows_past_retention_in_batches() {
    let (_dir, store) = temp_store().await;
    let now = Utc::now();
    let mut rows_in = Vec::new();
    for i in 0..2_500 {
        let age = if i < 2_300 {
            chrono::Duration::days(100)
        } else {
            chrono::Duration::days(1)
        };
        rows_in.push(attempt(now - age, "10.0.0.5", "frank", "admitted"));
    }
    store.insert_attempts(&rows_in).await.unwrap();
    let removed = store
        .prune_attempts(now - chrono::Duration::days(90), 1000)
        .await
        .unwrap();
    assert_eq!(removed, 2_300);
    assert_eq!(rows(&store).await, 200);
}

/// A gateway's store never checkpoints inside a commit (the attempt
/// writer's commit lock would hold every count meanwhile); the attempt log
/// checkpoints on its own, and by the time `close` returns the rows are in
/// the database file, not only in the WAL.
#[tokio::test]
async fn a_serving_store_leaves_checkpoints_to_the_attempt_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.db");
    let url = format!("sqlite://{}", path.display());
    let plain = Store::open(&url).await.expect("open");
    let store = Store::open_serving(&url).await.expect("open serving");
    async fn autocheckpoint(conn: &mut sqlx::AnyConnection) -> i64 {
        let row = sqlx::query("PRAGMA wal_autocheckpoint")
            .fetch_one(conn)
            .await
            .expect("pragma");
        row.try_get::<i64, _>(0).expect("value")
    }
    let mut conn = plain.pool.acquire().await.expect("connection");
    assert_eq!(autocheckpoint(&mut conn).await, 1000);
    drop(conn);
    // Every connection of the pool, not only the first: four held at once.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut conn = store.pool.acquire().await.expect("connection");
        assert_eq!(autocheckpoint(&mut conn).await, 0);
        held.push(conn);
    }
    drop(held);
    plain.pool.close().await;

    let file_len = || std::fs::metadata(&path).expect("db file").len();
    let before = file_len();
    let log = AttemptLog::start(store.clone(), config(Duration::from_millis(5)));
    let now = Utc::now();
    for i in 0..3_000 {
        log.record(attempt(now, "10.0.0.9", &format!("c{i}"), "wrong"), None);
    }
    log.close().await;
    assert_eq!(rows(&store).await, 3_000);
    assert!(
        file_len() > before + 100 * 1024,
        "the rows reached the database file: {before} -> {} bytes",
        file_len()
    );
}

#[tokio::test]
async fn a_route_brings_the_failures_counted_in_the_same_query() {
    let (_dir, store) = temp_store().await;
    let tenant = store.insert_tenant("acme", Utc::now()).await.unwrap();
    let number = store
        .insert_number("+15550100", &tenant, "de", Utc::now())
        .await
        .unwrap();
    let since = Utc::now() - chrono::Duration::minutes(15);
    let committed = AttemptLog::start(store.clone(), config(Duration::from_millis(5)));
    for (source, caller, outcome) in [
        ("10.0.0.1", "alice", "wrong"),
        ("10.0.0.1", "alice", "wrong"),
        ("10.0.0.1", "alice", "admitted"),
        ("10.0.0.2", "bob", "wrong"),
    ] {
        committed.record(attempt(Utc::now(), source, caller, outcome), None);
    }
    // An hour old: outside the window.
    let old = Utc::now() - chrono::Duration::hours(1);
    committed.record(attempt(old, "10.0.0.1", "alice", "wrong"), None);
    committed.close().await;
    // One more, queued and not yet written, counts as well.
    let log = AttemptLog::start(store.clone(), config(Duration::from_secs(3600)));
    log.record(attempt(Utc::now(), "10.0.0.1", "carol", "wrong"), None);

    let (routed, counts) = log
        .route(keys("10.0.0.1", "alice"), since)
        .await
        .unwrap()
        .expect("a provisioned number");
    assert_eq!(routed, number);
    let expected = Failures {
        caller_id: 2,
        source: 3,
        number: 4,
    };
    assert_eq!(counts, expected);
    assert_eq!(
        failures(&log, keys("10.0.0.1", "alice"), since)
            .await
            .unwrap(),
        expected,
        "the same counts as on their own"
    );
    let unprovisioned = FailureKeys {
        number: "+15550199",
        ..keys("10.0.0.1", "alice")
    };
    assert!(log.route(unprovisioned, since).await.unwrap().is_none());
    log.close().await;
}

#[tokio::test]
async fn a_right_codes_guess_reads_its_rooms_settings_in_the_same_query() {
    let (_dir, store) = temp_store().await;
    let tenant = store.insert_tenant("acme", Utc::now()).await.unwrap();
    let room = crate::store::RoomRow {
        id: 0,
        tenant_id: tenant.id,
        tenant: tenant.name.clone(),
        name: "board".into(),
        access_code: "4711".into(),
        security_code_hash: None,
        host_code: None,
        wait_for_host: 1,
        host_admits: 0,
        end_with_host: 1,
        max_members: Some(12),
    };
    let room = store.insert_room(&room, Utc::now()).await.unwrap();
    let log = AttemptLog::start(store.clone(), config(Duration::from_secs(3600)));
    log.record(attempt(Utc::now(), "10.0.0.1", "alice", "wrong"), None);
    let since = Utc::now() - chrono::Duration::minutes(15);
    let open = |_| true;

    let (checked, settings) = log
        .guess(keys("10.0.0.1", "alice"), since, false, Some(room.id), open)
        .await
        .unwrap();
    assert_eq!(checked.failures().caller_id, 1, "counted as ever");
    assert_eq!(
        settings,
        Some(RoomSettings {
            wait_for_host: true,
            host_admits: false,
            end_with_host: true,
            max_members: Some(12),
        })
    );
    // A room gone (or never there): no settings, the counts all the same.
    let (checked, settings) = log
        .guess(
            keys("10.0.0.1", "alice"),
            since,
            false,
            Some(room.id + 100),
            open,
        )
        .await
        .unwrap();
    assert_eq!(checked.failures().caller_id, 1);
    assert_eq!(settings, None);
    // No room asked for: none read.
    let (_, settings) = log
        .guess(keys("10.0.0.1", "alice"), since, true, None, open)
        .await
        .unwrap();
    assert_eq!(settings, None);
    log.close().await;
}
