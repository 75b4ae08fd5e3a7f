//! Room leases: which node owns each live room (migration
//! `0011_room_leases`). The rules are the conditional statements here; the
//! node's side (when to claim, renew, release) is
//! `conference::lease::Leases`.
//!
//! - A claim takes the room if it has no row or its lease expired (a
//!   released lease expired at its release), with `epoch + 1`: one
//!   statement, so of two nodes claiming at once one wins (PostgreSQL locks
//!   the conflicting row; SQLite has one writer). Either way the answer is
//!   the row as it stands after the claim.
//! - A renewal extends the lease only for the process and epoch that hold
//!   it, expired or not: the same epoch proves nobody else claimed the room
//!   since.
//! - A release expires the lease at once, for the holder only.
//!
//! Expiries are the writing node's wall clock: nodes keep their clocks
//! together (NTP), within the lease core's margin.

use chrono::{DateTime, Utc};

use super::{Store, StoreError, format_time};

/// Who claims.
#[derive(Clone, Copy, Debug)]
pub struct LeaseClaim<'a> {
    pub node_id: &'a str,
    /// Random per process (the node's row's `instance`).
    pub instance: &'a str,
    /// Where the claimant answers SIP.
    pub sip_address: &'a str,
}

/// A room's lease as stored.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct LeaseRow {
    pub room_id: i64,
    /// The owner node.
    pub node_id: String,
    /// The owner's process.
    pub instance: String,
    /// Where the owner answers SIP.
    pub sip_address: String,
    /// Grows by one each time another node takes the room.
    pub epoch: i64,
    pub claimed_at: String,
    pub expires_at: String,
}

impl LeaseRow {
    /// Not expired at `now`.
    pub fn held(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > format_time(now)
    }
}

const LEASE_SELECT: &str = "SELECT room_id, node_id, instance, sip_address, epoch, claimed_at, expires_at FROM room_leases";

fn span(ttl: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

impl Store {
    /// `room_id`'s lease as stored, held or not.
    pub async fn room_lease(&self, room_id: i64) -> Result<Option<LeaseRow>, StoreError> {
        let sql = format!("{LEASE_SELECT} WHERE room_id = $1");
        Ok(sqlx::query_as::<_, LeaseRow>(sqlx::AssertSqlSafe(sql))
            .bind(room_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Claims `room_id` for `claim` if no live lease holds it; returns the
    /// lease as it stands then (the claimant's if `instance` is its own).
    pub async fn claim_room(
        &self,
        room_id: i64,
        claim: LeaseClaim<'_>,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> Result<LeaseRow, StoreError> {
        let at = format_time(now);
        sqlx::query(
            "INSERT INTO room_leases (room_id, node_id, instance, sip_address, epoch, claimed_at, expires_at) \
             VALUES ($1, $2, $3, $4, 1, $5, $6) \
             ON CONFLICT (room_id) DO UPDATE SET node_id = excluded.node_id, \
             instance = excluded.instance, sip_address = excluded.sip_address, \
             epoch = room_leases.epoch + 1, claimed_at = excluded.claimed_at, \
             expires_at = excluded.expires_at \
             WHERE room_leases.expires_at <= $7",
        )
        .bind(room_id)
        .bind(claim.node_id)
        .bind(claim.instance)
        .bind(claim.sip_address)
        .bind(&at)
        .bind(format_time(now + span(ttl)))
        .bind(&at)
        .execute(&self.pool)
        .await?;
        self.room_lease(room_id)
            .await?
            .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// Extends the lease `instance` holds on `room_id` at `epoch`; `false`
    /// when it holds it no more.
    pub async fn renew_room(
        &self,
        room_id: i64,
        instance: &str,
        epoch: i64,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        self.expire_room(room_id, instance, epoch, now + span(ttl))
            .await
    }

    /// Lets the lease `instance` holds on `room_id` at `epoch` go now.
    pub async fn release_room(
        &self,
        room_id: i64,
        instance: &str,
        epoch: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.expire_room(room_id, instance, epoch, now).await
    }

    /// Sets the expiry of the lease `instance` holds on `room_id` at
    /// `epoch`; `false` when it holds it no more.
    async fn expire_room(
        &self,
        room_id: i64,
        instance: &str,
        epoch: i64,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE room_leases SET expires_at = $1 WHERE room_id = $2 AND instance = $3 AND epoch = $4",
        )
        .bind(format_time(at))
        .bind(room_id)
        .bind(instance)
        .bind(epoch)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every room's lease, held or not, by room id.
    pub async fn list_room_leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        let sql = format!("{LEASE_SELECT} ORDER BY room_id");
        Ok(sqlx::query_as::<_, LeaseRow>(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const TTL: Duration = Duration::from_secs(3);

    fn node<'a>(id: &'a str, instance: &'a str) -> LeaseClaim<'a> {
        LeaseClaim {
            node_id: id,
            instance,
            sip_address: "127.0.0.2:5060",
        }
    }

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("l.db").display());
        let store = Store::open(&url).await.unwrap();
        (dir, store)
    }

    fn at(t0: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
        t0 + chrono::Duration::seconds(secs)
    }

    #[tokio::test]
    async fn a_live_lease_keeps_its_owner_and_a_lapsed_one_goes_to_the_next_claimant_at_the_next_epoch()
     {
        let (_dir, store) = store().await;
        let t0 = Utc::now();
        let a = store.claim_room(7, node("a", "a1"), t0, TTL).await.unwrap();
        assert_eq!(
            (a.node_id.as_str(), a.instance.as_str(), a.epoch),
            ("a", "a1", 1)
        );
        // b while a's lease lives, even after a renewed it past its first
        // expiry: a's.
        assert!(store.renew_room(7, "a1", 1, at(t0, 2), TTL).await.unwrap());
        let b = store
            .claim_room(7, node("b", "b1"), at(t0, 4), TTL)
            .await
            .unwrap();
        assert_eq!((b.instance.as_str(), b.epoch), ("a1", 1));
        assert!(b.held(at(t0, 4)));
        // a stops renewing: at its expiry b takes it, epoch 2.
        let b = store
            .claim_room(7, node("b", "b1"), at(t0, 5), TTL)
            .await
            .unwrap();
        assert_eq!(
            (b.node_id.as_str(), b.instance.as_str(), b.epoch),
            ("b", "b1", 2)
        );
        // a's renewal at its old epoch is refused; b's lands.
        assert!(!store.renew_room(7, "a1", 1, at(t0, 5), TTL).await.unwrap());
        assert!(store.renew_room(7, "b1", 2, at(t0, 6), TTL).await.unwrap());
        // A claim by the holder itself changes nothing.
        let again = store
            .claim_room(7, node("b", "b1"), at(t0, 6), TTL)
            .await
            .unwrap();
        assert_eq!(again.epoch, 2);
        // Other rooms are their own.
        let other = store
            .claim_room(8, node("a", "a1"), at(t0, 6), TTL)
            .await
            .unwrap();
        assert_eq!((other.instance.as_str(), other.epoch), ("a1", 1));
    }

    #[tokio::test]
    async fn a_released_lease_is_claimed_at_once_and_only_its_holder_can_release_it() {
        let (_dir, store) = store().await;
        let t0 = Utc::now();
        store.claim_room(7, node("a", "a1"), t0, TTL).await.unwrap();
        assert!(!store.release_room(7, "b1", 1, t0).await.unwrap());
        assert!(!store.release_room(7, "a1", 2, t0).await.unwrap());
        assert!(store.release_room(7, "a1", 1, at(t0, 1)).await.unwrap());
        let leases = store.list_room_leases().await.unwrap();
        assert!(!leases[0].held(at(t0, 1)));
        let b = store
            .claim_room(7, node("b", "b1"), at(t0, 1), TTL)
            .await
            .unwrap();
        assert_eq!((b.instance.as_str(), b.epoch), ("b1", 2));
        assert!(b.held(at(t0, 1)));
    }
}
