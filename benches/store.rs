//! The reads every admitted call makes of a SQLite store — the dialled
//! number's route with the caller's failure counts, the code's room, and
//! the right code's counts with the room's settings — through sqlx's pool
//! (how every process but a serving gateway reads: `Store::open`) against
//! the serving gateway's own reader connections (`Store::open_serving`),
//! on one file, in one run: rounds alternate between the two, and the
//! figures are the process's CPU per call (all threads: sqlx's workers
//! too) and the ratio of the two.
//!
//! `cargo bench --bench store` runs it; under `cargo test` it only
//! smoke-runs. 32 calls at once on a 2-worker runtime, as a gateway's
//! calls ask side by side.

// Only its CPU reading: the rest serves the benches that run a gateway.
#[allow(dead_code)]
#[path = "support/proc.rs"]
mod proc;

use std::time::{Duration, Instant};

use chrono::Utc;
use dialgate::provision::Provisioner;
use dialgate::store::{FailureKeys, Store};

/// Calls asking at once.
const CONCURRENT: usize = 32;

/// One call's three reads, as the gateway makes them.
async fn call(store: &Store, tenant: i64, room: i64, n: usize) {
    let caller = format!("+1555{n:07}");
    let keys = FailureKeys {
        caller_id: Some(&caller),
        source_ip: "127.0.0.1",
        number: "+15550100",
    };
    let since = Utc::now() - chrono::Duration::minutes(15);
    let routed = store.route_with_failures(keys, since).await.unwrap();
    assert!(routed.is_some(), "the demo number routes");
    let found = store.room_by_code(tenant, "123456789").await.unwrap();
    assert_eq!(found.map(|r| r.id), Some(room));
    let (_, settings) = store.failures_and_room(keys, since, room).await.unwrap();
    assert!(settings.is_some(), "the demo room's settings");
}

/// `calls` calls, `CONCURRENT` at a time: CPU and wall time per call.
async fn round(store: &Store, tenant: i64, room: i64, calls: usize) -> (Duration, Duration) {
    let pid = std::process::id();
    let cpu = proc::cpu(pid);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for lane in 0..CONCURRENT {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in (lane..calls).step_by(CONCURRENT) {
                call(&store, tenant, room, n).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let per = |d: Duration| d / u32::try_from(calls).unwrap_or(u32::MAX);
    (
        per(proc::cpu(pid).saturating_sub(cpu)),
        per(started.elapsed()),
    )
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (calls, rounds) = if full { (20_000, 4) } else { (64, 1) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let pooled = Store::open(&url).await.unwrap();
        let room = Provisioner::new(pooled.clone()).seed_demo().await.unwrap();
        let served = Store::open_serving(&url).await.unwrap();
        let variants = [("pool", &pooled), ("readers", &served)];
        // A round of each first, unmeasured: statement caches filled.
        for (_, store) in variants {
            round(store, room.tenant_id, room.id, CONCURRENT * 4).await;
        }
        let mut cpu = [Duration::ZERO; 2];
        let mut wall = [Duration::ZERO; 2];
        for _ in 0..rounds {
            for (i, (_, store)) in variants.iter().enumerate() {
                let (c, w) = round(store, room.tenant_id, room.id, calls).await;
                cpu[i] += c / rounds;
                wall[i] += w / rounds;
            }
        }
        for (i, (name, _)) in variants.iter().enumerate() {
            println!(
                "call-path reads via {name:<8} {:>7.1} µs CPU per call, {:>7.1} µs wall per call ({} calls × {rounds} rounds, {CONCURRENT} at once)",
                cpu[i].as_secs_f64() * 1e6,
                wall[i].as_secs_f64() * 1e6,
                calls,
            );
        }
        if full {
            println!(
                "readers / pool: CPU per call {:.2}×, wall per call {:.2}×",
                cpu[1].as_secs_f64() / cpu[0].as_secs_f64().max(1e-9),
                wall[1].as_secs_f64() / wall[0].as_secs_f64().max(1e-9),
            );
        }
    });
}
