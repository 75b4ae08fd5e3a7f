//! Liveness, readiness and the Prometheus scrape.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, ApiResult, ErrorBody, Shared};
use crate::live::CallState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the process answers.
    status: String,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// The database answered a query.
    database: bool,
    /// The prompts are loaded.
    prompts: bool,
}

/// The process is up (no token needed).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// The gateway can take calls: database reachable, prompts loaded.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Readiness), (status = 401, body = ErrorBody),
              (status = 503, body = Readiness, description = "Not ready")))]
pub async fn readyz(State(state): Shared) -> Response {
    let database = state.provisioner.store().list_tenants().await.is_ok();
    let ready = Readiness {
        database,
        prompts: state.prompts_loaded,
    };
    let status = if database && state.prompts_loaded {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(ready)).into_response()
}

/// Prometheus text exposition of the gateway's metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
              (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn render_metrics(State(s): Shared) -> ApiResult<Response> {
    let handle = s.metrics.as_ref().ok_or(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "metrics recorder not installed",
    ))?;
    if let Some(calls) = &s.calls {
        let all = calls.list();
        for (state, label) in [(CallState::Ivr, "ivr"), (CallState::InRoom, "in_room")] {
            let n = all.iter().filter(|c| c.state == state).count();
            ::metrics::gauge!("dialgate_calls_active", "state" => label).set(n as f64);
        }
    }
    let text = handle.render();
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
        .into_response())
}

/// Drains this node, as SIGTERM does: no new calls (INVITE and OPTIONS
/// answered 503 with `Retry-After`, so a dispatcher in front sends calls to
/// the other nodes), the calls in progress go on, and the process exits
/// when the last one ends or at `--drain-timeout` (then with BYE).
#[utoipa::path(post, path = "/v1/drain", tag = "operations",
    responses((status = 202, body = Draining), (status = 401, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn drain(State(s): Shared) -> ApiResult<(StatusCode, Json<Draining>)> {
    let drain = s.drain.as_ref().ok_or(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "no gateway running with this API",
    ))?;
    // A permit is kept if the gateway is not waiting right now: the
    // request is never lost, and a second one changes nothing.
    drain.notify_one();
    Ok((StatusCode::ACCEPTED, Json(Draining { draining: true })))
}

/// A drain was started (or already under way).
#[derive(Serialize, ToSchema)]
pub struct Draining {
    draining: bool,
}

/// Which node owns each room that is or was live, as the room leases say.
#[utoipa::path(get, path = "/v1/leases", tag = "operations",
    responses((status = 200, body = Vec<LeaseView>), (status = 401, body = ErrorBody),
              (status = 500, body = ErrorBody)))]
pub async fn list_leases(State(s): Shared) -> ApiResult<Json<Vec<LeaseView>>> {
    let rows = s
        .provisioner
        .store()
        .list_room_leases()
        .await
        .map_err(crate::provision::ProvisionError::from)?;
    let now = chrono::Utc::now();
    Ok(Json(
        rows.into_iter()
            .map(|l| LeaseView {
                held: l.held(now),
                room_id: l.room_id,
                node_id: l.node_id,
                sip_address: l.sip_address,
                epoch: l.epoch,
                claimed_at: l.claimed_at,
                expires_at: l.expires_at,
            })
            .collect(),
    ))
}

/// A room's lease: the node whose mix the room's callers hear.
#[derive(Serialize, ToSchema)]
pub struct LeaseView {
    room_id: i64,
    /// The owner (or last owner) node.
    node_id: String,
    /// Where the owner answers SIP.
    sip_address: String,
    /// Grows by one each time another node takes the room over.
    epoch: i64,
    /// When the owner took it, RFC 3339 UTC.
    claimed_at: String,
    /// When the lease ends unless renewed (about every second while the
    /// room is live; the release time once it emptied).
    expires_at: String,
    /// Not expired: the owner holds the room now.
    held: bool,
}

/// A gateway node serving from this store.
#[derive(Serialize, ToSchema)]
pub struct NodeView {
    /// `--node-id` (default: the host name).
    node_id: String,
    /// Where its SIP answers (advertised address and port).
    sip_address: String,
    /// Its REST API.
    api_address: String,
    /// `serving`, `draining` (no new calls) or `stopped` (as it last said).
    state: String,
    /// Calls in progress at its last heartbeat.
    calls: i64,
    /// When it started, RFC 3339 UTC.
    started_at: String,
    /// Its last heartbeat (written every second while it serves).
    heartbeat_at: String,
    /// Not stopped, with a heartbeat newer than 5 s.
    alive: bool,
}

/// The gateway nodes that serve (or served) from this store, by id.
#[utoipa::path(get, path = "/v1/nodes", tag = "operations",
    responses((status = 200, body = Vec<NodeView>), (status = 401, body = ErrorBody),
              (status = 500, body = ErrorBody)))]
pub async fn list_nodes(State(s): Shared) -> ApiResult<Json<Vec<NodeView>>> {
    let rows = s
        .provisioner
        .store()
        .list_nodes()
        .await
        .map_err(crate::provision::ProvisionError::from)?;
    let now = chrono::Utc::now();
    Ok(Json(
        rows.into_iter()
            .map(|n| NodeView {
                alive: n.alive(now),
                node_id: n.node_id,
                sip_address: n.sip_address,
                api_address: n.api_address,
                state: n.state,
                calls: n.calls,
                started_at: n.started_at,
                heartbeat_at: n.heartbeat_at,
            })
            .collect(),
    ))
}
