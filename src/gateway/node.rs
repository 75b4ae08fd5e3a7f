//! This gateway as a node of its store (the `nodes` table): its row claimed
//! as it starts, its heartbeat and calls in progress written every second
//! while it serves, `stopped` as it exits. Several nodes share one
//! PostgreSQL, each under its own `--node-id`; a SQLite file serves one
//! node, so `serve` on a SQLite file first takes a lock on a file beside it
//! ([`SqliteLock`]), and a second `serve` on the same file is refused.

use std::io::{Read, Seek, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use rand::RngCore;

use crate::config::Settings;
use crate::store::{NODE_TTL, NodeClaim, Store, StoreError};

/// How often a serving node writes its heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// How long the store may take to mark this node stopped as it exits.
pub(super) const LEAVE_LIMIT: Duration = Duration::from_secs(2);

#[derive(thiserror::Error, Debug)]
pub enum NodeError {
    #[error(
        "the SQLite database {path} is already served by another `dialgate serve` ({holder}); one node serves a SQLite file: stop that one, or give several nodes one PostgreSQL"
    )]
    SqliteInUse { path: String, holder: String },
    #[error(
        "node id {id:?} is in use by a live node (SIP {sip}, last heartbeat {heartbeat_at}): start this one with another --node-id, or stop that one"
    )]
    IdInUse {
        id: String,
        sip: String,
        heartbeat_at: String,
    },
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// The path of the SQLite file `url` names; `None` for PostgreSQL and for
/// an in-memory database.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// An exclusive lock (flock) on `<database>-serve.lock`, held while this
/// process serves that SQLite file; the kernel lets it go when the process
/// ends, however it ends. The file says who holds it.
#[derive(Debug)]
pub struct SqliteLock {
    _file: std::fs::File,
}

impl SqliteLock {
    /// Takes the lock for the SQLite database `url`; `Ok(None)` when `url`
    /// is not a SQLite file.
    pub fn take(url: &str, node_id: &str) -> Result<Option<SqliteLock>, NodeError> {
        let Some(db) = sqlite_path(url) else {
            return Ok(None);
        };
        let mut path = db.clone().into_os_string();
        path.push("-serve.lock");
        let path = PathBuf::from(path);
        let lock_error = |source| NodeError::Lock {
            path: path.display().to_string(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(lock_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(NodeError::SqliteInUse {
                    path: db.display().to_string(),
                    holder: if holder.is_empty() {
                        "starting".to_owned()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(lock_error(e)),
        }
        let who = format!("pid {}, node {node_id}", std::process::id());
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(who.as_bytes()));
        written.map_err(lock_error)?;
        Ok(Some(SqliteLock { _file: file }))
    }
}

/// This process's row in the `nodes` table.
#[derive(Debug)]
pub struct Node {
    store: Store,
    id: String,
    instance: String,
    /// Where this node answers SIP (advertised address and port).
    sip_address: String,
    /// Taking no new calls: said in the heartbeat.
    draining: std::sync::atomic::AtomicBool,
    _lock: Option<SqliteLock>,
}

impl Node {
    /// Claims `settings.node_id`'s row. On PostgreSQL a row another process
    /// holds is waited for until its heartbeat goes stale (a restart after
    /// a crash: at most [`NODE_TTL`]); still renewed after that, the id is
    /// a live node's and this one is refused. On SQLite the lock already
    /// proves no other process serves, so the row is taken at once.
    pub async fn join(
        store: Store,
        lock: Option<SqliteLock>,
        settings: &Settings,
        sip: SocketAddr,
        api: SocketAddr,
    ) -> Result<Node, NodeError> {
        let mut bytes = [0u8; 8];
        rand::rng().fill_bytes(&mut bytes);
        let instance = hex::encode(bytes);
        let sip_address = SocketAddr::new(settings.advertise, sip.port()).to_string();
        let api_address = api.to_string();
        let claim = NodeClaim {
            node_id: &settings.node_id,
            instance: &instance,
            sip_address: &sip_address,
            api_address: &api_address,
        };
        let ttl = if lock.is_some() {
            chrono::Duration::zero()
        } else {
            crate::store::node_ttl()
        };
        let give_up = tokio::time::Instant::now() + NODE_TTL + HEARTBEAT_EVERY;
        let mut waiting = false;
        loop {
            let Some(holder) = store.claim_node(&claim, Utc::now(), ttl).await? else {
                break;
            };
            if tokio::time::Instant::now() >= give_up {
                return Err(NodeError::IdInUse {
                    id: settings.node_id.clone(),
                    sip: holder.sip_address,
                    heartbeat_at: holder.heartbeat_at,
                });
            }
            if !waiting {
                waiting = true;
                tracing::warn!(
                    node = %settings.node_id,
                    holder_sip = %holder.sip_address,
                    heartbeat_at = %holder.heartbeat_at,
                    "node id held by another process: waiting up to {NODE_TTL:?} for its heartbeat to go stale"
                );
            }
            tokio::time::sleep(HEARTBEAT_EVERY / 2).await;
        }
        tracing::info!(node = %settings.node_id, sip = %sip_address, "node joined the store");
        Ok(Node {
            store,
            id: settings.node_id.clone(),
            instance,
            sip_address,
            draining: std::sync::atomic::AtomicBool::new(false),
            _lock: lock,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// This process's random instance (what the store's rows hold it by).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Where this node answers SIP, as written in the store.
    pub fn sip_address(&self) -> &str {
        &self.sip_address
    }

    /// From now on the heartbeat says `draining`.
    pub fn set_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the node drains (SIGTERM or `POST /v1/drain`).
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Writes the heartbeat, with `calls()` in progress, every
    /// [`HEARTBEAT_EVERY`] until the row is no longer this process's.
    /// Store errors are logged when they start and when they stop; the
    /// calls go on either way.
    pub async fn beat(&self, calls: impl Fn() -> usize) {
        let mut every = tokio::time::interval(HEARTBEAT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            every.tick().await;
            let n = i64::try_from(calls()).unwrap_or(i64::MAX);
            let draining = self.draining.load(std::sync::atomic::Ordering::Relaxed);
            match self
                .store
                .heartbeat_node(&self.id, &self.instance, n, draining, Utc::now())
                .await
            {
                Ok(true) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!(node = %self.id, "node heartbeat written again");
                    }
                }
                Ok(false) => {
                    tracing::error!(node = %self.id, "this node's row is no longer this process's (another took the node id over, or it was marked stopped): no more heartbeats");
                    return;
                }
                Err(e) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(node = %self.id, %e, "cannot write the node heartbeat");
                    }
                }
            }
        }
    }

    /// Marks this node stopped, so its id is free at once.
    pub async fn leave(&self) {
        let stop = self.store.stop_node(&self.id, &self.instance, Utc::now());
        match tokio::time::timeout(LEAVE_LIMIT, stop).await {
            Ok(Ok(_)) => tracing::info!(node = %self.id, "node left the store"),
            Ok(Err(e)) => tracing::warn!(node = %self.id, %e, "cannot mark the node stopped"),
            Err(_) => {
                tracing::warn!(node = %self.id, "the store did not mark the node stopped in time")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sqlite_file_a_url_names() {
        let p = |u: &str| sqlite_path(u).map(|p| p.display().to_string());
        assert_eq!(p("sqlite://dialgate.db").as_deref(), Some("dialgate.db"));
        assert_eq!(
            p("sqlite:///var/lib/d.db?mode=rwc").as_deref(),
            Some("/var/lib/d.db")
        );
        assert_eq!(p("sqlite:d.db").as_deref(), Some("d.db"));
        assert_eq!(p("sqlite::memory:"), None);
        assert_eq!(p("sqlite://:memory:"), None);
        assert_eq!(p("postgres://u@h/db"), None);
    }

    #[test]
    fn a_second_lock_on_one_sqlite_file_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("gw.db").display());
        let first = SqliteLock::take(&url, "edge-a")
            .unwrap()
            .expect("a SQLite file");
        match SqliteLock::take(&url, "edge-b") {
            Err(NodeError::SqliteInUse { holder, .. }) => {
                assert_eq!(holder, format!("pid {}, node edge-a", std::process::id()));
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        assert!(SqliteLock::take(&url, "edge-b").unwrap().is_some());
        assert!(SqliteLock::take("sqlite::memory:", "x").unwrap().is_none());
    }
}
