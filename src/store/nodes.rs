//! Gateway nodes: who serves from this store, where, and whether it is
//! alive. A serving process holds its node's row by a random `instance` and
//! renews `heartbeat_at` about every second; another process with the same
//! node id takes the row over only once it says `stopped` or its heartbeat
//! is older than the TTL it is given (a restart after a crash), never while
//! it is fresh (two live processes under one id).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Store, StoreError, format_time};

/// What a node says of itself as it claims its row.
#[derive(Clone, Debug)]
pub struct NodeClaim<'a> {
    pub node_id: &'a str,
    /// Random per process.
    pub instance: &'a str,
    /// Where its SIP answers (the advertised address and port).
    pub sip_address: &'a str,
    pub api_address: &'a str,
}

/// A node as the store knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct NodeRow {
    pub node_id: String,
    pub sip_address: String,
    pub api_address: String,
    /// `serving`, `draining` (no new calls) or `stopped`.
    pub state: String,
    /// Calls in progress at the last heartbeat.
    pub calls: i64,
    pub started_at: String,
    pub heartbeat_at: String,
}

/// A node's state as stored.
pub const SERVING: &str = "serving";
pub const DRAINING: &str = "draining";
pub const STOPPED: &str = "stopped";

/// A heartbeat older than this is a dead process's: its node id may be
/// taken over, and the node is not alive.
pub const NODE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// [`NODE_TTL`] as a span between stored times: one conversion for the
/// claim and for [`NodeRow::alive`].
pub fn node_ttl() -> chrono::Duration {
    chrono::Duration::from_std(NODE_TTL).unwrap_or(chrono::Duration::MAX)
}

impl NodeRow {
    /// Not stopped, with a heartbeat newer than [`NODE_TTL`] at `now`.
    pub fn alive(&self, now: DateTime<Utc>) -> bool {
        let fresh = DateTime::parse_from_rfc3339(&self.heartbeat_at)
            .is_ok_and(|t| now.signed_duration_since(t) < node_ttl());
        self.state != STOPPED && fresh
    }
}

const NODE_SELECT: &str =
    "SELECT node_id, sip_address, api_address, state, calls, started_at, heartbeat_at FROM nodes";

impl Store {
    /// Takes `claim.node_id`'s row for this process: `Ok(None)` when it is
    /// ours now, `Ok(Some(holder))` when a live process holds it (its
    /// heartbeat is newer than `now - ttl` and it has not stopped).
    pub async fn claim_node(
        &self,
        claim: &NodeClaim<'_>,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<Option<NodeRow>, StoreError> {
        let done = sqlx::query(
            "INSERT INTO nodes (node_id, instance, sip_address, api_address, state, calls, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7) \
             ON CONFLICT (node_id) DO UPDATE SET instance = excluded.instance, \
             sip_address = excluded.sip_address, api_address = excluded.api_address, \
             state = excluded.state, calls = 0, started_at = excluded.started_at, \
             heartbeat_at = excluded.heartbeat_at \
             WHERE nodes.state = $8 OR nodes.heartbeat_at < $9",
        )
        .bind(claim.node_id)
        .bind(claim.instance)
        .bind(claim.sip_address)
        .bind(claim.api_address)
        .bind(SERVING)
        .bind(format_time(now))
        .bind(format_time(now))
        .bind(STOPPED)
        .bind(format_time(now - ttl))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(None);
        }
        self.node(claim.node_id).await
    }

    /// Renews this process's heartbeat, with its calls in progress and
    /// whether it is draining; `false` when the row is no longer ours
    /// (another process took the node id over) or says it stopped (a
    /// heartbeat still in flight as the node leaves does not bring it
    /// back).
    pub async fn heartbeat_node(
        &self,
        node_id: &str,
        instance: &str,
        calls: i64,
        draining: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE nodes SET heartbeat_at = $1, calls = $2, state = $3 \
             WHERE node_id = $4 AND instance = $5 AND state <> $6",
        )
        .bind(format_time(now))
        .bind(calls)
        .bind(if draining { DRAINING } else { SERVING })
        .bind(node_id)
        .bind(instance)
        .bind(STOPPED)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks this process's node stopped, so its id may be taken at once.
    pub async fn stop_node(
        &self,
        node_id: &str,
        instance: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE nodes SET state = $1, calls = 0, heartbeat_at = $2 WHERE node_id = $3 AND instance = $4",
        )
        .bind(STOPPED)
        .bind(format_time(now))
        .bind(node_id)
        .bind(instance)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn node(&self, node_id: &str) -> Result<Option<NodeRow>, StoreError> {
        let sql = format!("{NODE_SELECT} WHERE node_id = $1");
        Ok(sqlx::query_as::<_, NodeRow>(sqlx::AssertSqlSafe(sql))
            .bind(node_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Every node that ever served from this store, by id.
    pub async fn list_nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        let sql = format!("{NODE_SELECT} ORDER BY node_id");
        Ok(sqlx::query_as::<_, NodeRow>(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim<'a>(id: &'a str, instance: &'a str) -> NodeClaim<'a> {
        NodeClaim {
            node_id: id,
            instance,
            sip_address: "127.0.0.2:5060",
            api_address: "127.0.0.2:8080",
        }
    }

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("n.db").display());
        let store = Store::open(&url).await.unwrap();
        (dir, store)
    }

    const TTL: chrono::Duration = chrono::Duration::seconds(5);

    #[tokio::test]
    async fn a_live_node_id_is_not_taken_and_a_stale_or_stopped_one_is() {
        let (_dir, store) = store().await;
        let t0 = Utc::now();
        assert_eq!(
            store.claim_node(&claim("a", "one"), t0, TTL).await.unwrap(),
            None
        );
        // A second process under the same id while the first is fresh.
        let holder = store
            .claim_node(&claim("a", "two"), t0 + chrono::Duration::seconds(4), TTL)
            .await
            .unwrap()
            .expect("held");
        assert_eq!((holder.state.as_str(), holder.calls), (SERVING, 0));
        // The first renews; the second still cannot take it.
        assert!(
            store
                .heartbeat_node("a", "one", 7, false, t0 + chrono::Duration::seconds(4))
                .await
                .unwrap()
        );
        let at_8 = t0 + chrono::Duration::seconds(8);
        assert_eq!(
            store
                .claim_node(&claim("a", "two"), at_8, TTL)
                .await
                .unwrap()
                .map(|h| h.calls),
            Some(7)
        );
        // Past the TTL after the last heartbeat (a crash): taken over, and
        // the old process's heartbeats no longer land.
        let at_10 = t0 + chrono::Duration::seconds(10);
        assert_eq!(
            store
                .claim_node(&claim("a", "two"), at_10, TTL)
                .await
                .unwrap(),
            None
        );
        assert!(
            !store
                .heartbeat_node("a", "one", 1, false, at_10)
                .await
                .unwrap()
        );
        assert!(
            store
                .heartbeat_node("a", "two", 1, true, at_10)
                .await
                .unwrap()
        );
        // Draining is alive, and still holds the id.
        let a = store.node("a").await.unwrap().expect("a");
        assert_eq!(a.state, DRAINING);
        assert!(a.alive(at_10));
        assert!(
            store
                .claim_node(&claim("a", "six"), at_10, TTL)
                .await
                .unwrap()
                .is_some()
        );
        // Stopped: no late heartbeat revives it, and it is taken at once.
        assert!(store.stop_node("a", "two", at_10).await.unwrap());
        assert!(
            !store
                .heartbeat_node("a", "two", 1, false, at_10)
                .await
                .unwrap()
        );
        assert_eq!(store.node("a").await.unwrap().expect("a").state, STOPPED);
        assert_eq!(
            store
                .claim_node(&claim("a", "three"), at_10, TTL)
                .await
                .unwrap(),
            None
        );
        // Another id is another row.
        assert_eq!(
            store
                .claim_node(&claim("b", "four"), at_10, TTL)
                .await
                .unwrap(),
            None
        );
        let b = store.node("b").await.unwrap().expect("b");
        assert!(b.alive(at_10 + chrono::Duration::seconds(4)));
        assert!(!b.alive(at_10 + chrono::Duration::seconds(6)));
        let a = store.node("a").await.unwrap().expect("a");
        assert!(store.stop_node("a", "three", at_10).await.unwrap());
        assert!(a.alive(at_10));
        assert!(!store.node("a").await.unwrap().expect("a").alive(at_10));
        assert!(
            store
                .claim_node(&claim("a", "five"), at_10, TTL)
                .await
                .unwrap()
                .is_none()
        );
        let ids: Vec<_> = store
            .list_nodes()
            .await
            .unwrap()
            .into_iter()
            .map(|n| (n.node_id, n.state))
            .collect();
        assert_eq!(
            ids,
            [
                ("a".to_owned(), SERVING.to_owned()),
                ("b".to_owned(), SERVING.to_owned())
            ]
        );
    }
}
