//! The room leases' shell: one task that hears rooms open and close on
//! this node ([`RoomEvent`]), drives the sans-IO [`Leases`] core with them,
//! runs the store requests it asks for (each a task of its own, so a slow
//! store delays no other room) and feeds the answers back. What the core
//! decides it records on the room ([`Rooms::set_owner`], for the live
//! view) and logs.
//!
//! Callers of a room another node owns are bridged there by their calls
//! (`call/bridge.rs`); a room that is still mixed here while another node
//! owns it (its callers came before this node saw the owner's lease, or
//! its leg to the owner failed while the owner lived on, or this node
//! owned it and was cut off) is logged as a warning once per change of
//! owner, and its members here are told to move to the owner when the
//! core says so ([`Leases::poll_move`]; each call then leaves the room here
//! and places a leg, `call/bridge.rs`).
//!
//! On stop, every room this node holds is released, so another node can
//! take it at once rather than after the lease runs out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::node::Node;
use crate::conference::lease::{Change, Holder, Leases, Request, Standing};
use crate::conference::{RoomEvent, Rooms};
use crate::ids::RoomId;
use crate::store::{LeaseClaim, Store};

/// A store request's answer, for the core.
#[derive(Debug)]
enum Answer {
    Claim(Option<Holder>),
    Renew(Option<bool>),
    /// Whether the store released it.
    Release(bool),
}

/// The running lease task.
#[derive(Debug)]
pub struct LeaseTask {
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

impl LeaseTask {
    /// Starts keeping the leases of `rooms`' rooms, which tell it through
    /// `events`.
    pub fn start(
        store: Store,
        node: Arc<Node>,
        rooms: Rooms,
        events: mpsc::UnboundedReceiver<RoomEvent>,
    ) -> LeaseTask {
        let (stop, stopped) = oneshot::channel();
        let done = tokio::spawn(run(store, node, rooms, events, stopped));
        LeaseTask { stop, done }
    }

    /// Releases every room this node holds, waiting at most `limit` for
    /// the store.
    pub async fn stop(self, limit: Duration) {
        let _ = self.stop.send(());
        if tokio::time::timeout(limit, self.done).await.is_err() {
            tracing::warn!("room leases not released in time: they lapse by themselves");
        }
    }
}

async fn run(
    store: Store,
    node: Arc<Node>,
    rooms: Rooms,
    mut events: mpsc::UnboundedReceiver<RoomEvent>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut core = Leases::default();
    let mut asks: JoinSet<(RoomId, Answer)> = JoinSet::new();
    let mut stopping = false;
    loop {
        if node.is_draining() && !stopping {
            hand_on(&mut core, &rooms);
        }
        while let Some(room) = core.poll_handed() {
            metrics::counter!("dialgate_room_handovers_total").increment(1);
            let legs = rooms.end_legs(room);
            tracing::info!(
                room_id = room.0,
                legs,
                "room handed on: its legs from other nodes end, their nodes take it"
            );
        }
        while let Some(request) = core.poll_request() {
            asks.spawn(ask(store.clone(), node.clone(), request, core.ttl()));
        }
        while let Some(change) = core.poll_change() {
            report(&rooms, &node, change);
        }
        while let Some(room) = core.poll_move() {
            let members = rooms.move_members(room);
            metrics::counter!("dialgate_room_moves_total").increment(1);
            tracing::info!(
                room_id = room.0,
                owner = rooms.owner(room).as_deref().unwrap_or("?"),
                members,
                "room owned by another node while mixed here: moving its callers here to the owner"
            );
        }
        if stopping && core.is_empty() {
            break;
        }
        let deadline = core.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            event = events.recv(), if !stopping => match event {
                Some(RoomEvent::Opened(room)) => {
                    core.open(Instant::now(), room);
                    // Reopened while its lease was still being renewed:
                    // the new room learns the standing now.
                    if let Some(standing) = core.standing(room) {
                        rooms.set_owner(room, owner(standing, &node), leased_here(standing));
                    }
                }
                Some(RoomEvent::Closed(room)) => core.close(Instant::now(), room),
                None => {
                    stopping = true;
                    core.close_all(Instant::now());
                }
            },
            Some(done) = asks.join_next(), if !asks.is_empty() => {
                let Ok((room, answer)) = done else { continue };
                let now = Instant::now();
                match answer {
                    Answer::Claim(holder) => core.on_claim(now, room, holder),
                    Answer::Renew(renewed) => core.on_renew(now, room, renewed),
                    Answer::Release(released) => core.on_release(now, room, released),
                }
            }
            () = sleep_until(deadline) => core.handle_timeout(Instant::now()),
            _ = &mut stopped, if !stopping => {
                stopping = true;
                core.close_all(Instant::now());
            }
        }
    }
}

/// This node drains: the rooms it owns with callers of other nodes in
/// them go to one of those nodes (checked as the task wakes, at least once
/// a renewal period, so also for legs that came after the drain began).
/// Rooms only this node's callers are in stay until they leave.
fn hand_on(core: &mut Leases, rooms: &Rooms) {
    for room in core.held() {
        if rooms.legs(room) > 0 && core.hand_on(Instant::now(), room) {
            tracing::info!(
                room_id = room.0,
                "draining: handing the room on to the other nodes in it"
            );
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Runs one request against the store.
async fn ask(store: Store, node: Arc<Node>, request: Request, ttl: Duration) -> (RoomId, Answer) {
    let now = Utc::now();
    let failed = |room: RoomId, e: crate::store::StoreError| {
        metrics::counter!("dialgate_room_lease_errors_total").increment(1);
        tracing::debug!(room_id = room.0, %e, "room lease: store error");
    };
    match request {
        Request::Claim(room) => {
            let claim = LeaseClaim {
                node_id: node.id(),
                instance: node.instance(),
                sip_address: node.sip_address(),
            };
            let holder = match store.claim_room(room.0, claim, now, ttl).await {
                Ok(row) => Some(Holder {
                    ours: row.instance == node.instance(),
                    node_id: row.node_id,
                    sip_address: row.sip_address,
                    epoch: row.epoch,
                }),
                Err(e) => {
                    failed(room, e);
                    None
                }
            };
            (room, Answer::Claim(holder))
        }
        Request::Renew(room, epoch) => {
            let renewed = store
                .renew_room(room.0, node.instance(), epoch, now, ttl)
                .await;
            (
                room,
                Answer::Renew(renewed.map_err(|e| failed(room, e)).ok()),
            )
        }
        Request::Release(room, epoch) => {
            let released = store
                .release_room(room.0, node.instance(), epoch, now)
                .await
                .map_err(|e| failed(room, e))
                .is_ok();
            (room, Answer::Release(released))
        }
    }
}

/// Records and tells a change of standing.
fn report(rooms: &Rooms, node: &Node, Change { room, standing }: Change) {
    let label = match &standing {
        Standing::Claiming => "claiming",
        Standing::Owner { .. } => "owner",
        Standing::Lapsed { .. } => "lapsed",
        Standing::Guest(_) => "guest",
    };
    metrics::counter!("dialgate_room_lease_changes_total", "standing" => label).increment(1);
    match &standing {
        Standing::Claiming => {}
        Standing::Owner { epoch, .. } => {
            tracing::info!(
                room_id = room.0,
                epoch,
                "room lease held: this node mixes the room"
            );
        }
        Standing::Lapsed { epoch } => {
            tracing::warn!(
                room_id = room.0,
                epoch,
                "room lease lapsed: no renewal reached the store in time; another node may take the room"
            );
        }
        Standing::Guest(holder) => {
            tracing::warn!(
                room_id = room.0,
                owner = %holder.node_id,
                owner_sip = %holder.sip_address,
                epoch = holder.epoch,
                "room owned by another node while mixed here: its callers here do not hear the owner's"
            );
        }
    }
    rooms.set_owner(room, owner(&standing, node), leased_here(&standing));
}

/// The epoch of a lease this node holds now (not lapsed).
fn leased_here(standing: &Standing) -> Option<i64> {
    match standing {
        Standing::Owner { epoch, .. } => Some(*epoch),
        _ => None,
    }
}

/// The node a standing names as the room's owner.
fn owner(standing: &Standing, node: &Node) -> Option<Arc<str>> {
    match standing {
        Standing::Claiming => None,
        Standing::Owner { .. } | Standing::Lapsed { .. } => Some(Arc::from(node.id())),
        Standing::Guest(holder) => Some(Arc::from(holder.node_id.as_str())),
    }
}
