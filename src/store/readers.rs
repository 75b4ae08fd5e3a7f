//! Connections of their own for the reads every call makes, on a SQLite
//! file the gateway serves from.
//!
//! sqlx's pool costs more than the reads themselves there: a query through
//! the pool is three trips to the connection's worker thread (a ping when
//! it is taken, the query, and a ping when it goes back, in a task spawned
//! for it), each a hand-over between threads and back. Profiled at 200
//! calls/s, the pool's trips took about 8 % of the gateway's CPU against
//! about 1.5 % for SQLite's own work. A reader is one connection kept for
//! good and used under a lock: one trip per query.
//!
//! Only on SQLite, whose connections to a local file do not die with a
//! network or a restarted server; PostgreSQL's reads stay on the pool,
//! which replaces a broken connection. Reads see every commit made before
//! they start, by this process or another (WAL mode: a change made with
//! the CLI takes effect for the very next call, as through the pool), and
//! never wait for the attempt log's writer.
//!
//! A read cancelled half-way (its call ended) leaves the connection fit for
//! the next: sqlx's worker finishes or resets the statement before it takes
//! the next one.

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::AnyConnection;
use sqlx::ConnectOptions;
use sqlx::any::AnyConnectOptions;
use tokio::sync::{Mutex, MutexGuard};

/// How many: one per core of the machines we size for; a read takes tens
/// of microseconds, so two serve thousands of calls a second.
pub const READERS: usize = 2;

#[derive(Debug)]
pub struct Readers {
    conns: Vec<Mutex<AnyConnection>>,
    /// Which connection a read waits for when all are busy.
    next: AtomicUsize,
}

impl Readers {
    /// Opens `n` connections with `options` (the store's own).
    pub async fn open(options: &AnyConnectOptions, n: usize) -> Result<Readers, sqlx::Error> {
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n.max(1) {
            conns.push(Mutex::new(options.connect().await?));
        }
        Ok(Readers {
            conns,
            next: AtomicUsize::new(0),
        })
    }

    /// A connection: a free one if there is one, else the next in turn
    /// when its read is done.
    pub async fn lock(&self) -> MutexGuard<'_, AnyConnection> {
        for conn in &self.conns {
            if let Ok(free) = conn.try_lock() {
                return free;
            }
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[turn].lock().await
    }
}
