//! The operator REST API (axum), over the same service layer as the CLI
//! (`provision`): JSON in and out, bearer tokens on every route but
//! `/healthz`, errors as `{"error": …, "field": …}` with 400/401/404/409/422.
//!
//! Served: tenants, numbers and rooms (create, list with `?limit=&offset=`),
//! live calls (`GET /v1/calls`, `GET /v1/rooms/{id}/participants`,
//! `DELETE /v1/calls/{id}`, `POST /v1/calls/{id}/mute|unmute`), `/healthz`,
//! `/readyz`. Meetings, invitees, attempts, `/metrics` and the OpenAPI
//! document are still to come (issue 4).

pub mod metrics;

use std::sync::Arc;

use axum::extract::Path;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::gateway::live::{CallState, ControlError, LiveCall, LiveCalls};
use crate::provision::{ProvisionError, Provisioner};

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub provisioner: Provisioner,
    /// Whether the prompts loaded (they always have once `serve` is up).
    pub prompts_loaded: bool,
    /// The gateway's live calls (`None` when the API runs without one).
    pub calls: Option<LiveCalls>,
    /// Renders `/metrics`.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// An API error: status plus `{"error", "field"}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: String,
    field: Option<&'static str>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'static str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: &self.error,
            field: self.field,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<ProvisionError> for ApiError {
    fn from(e: ProvisionError) -> Self {
        let (status, field) = match &e {
            ProvisionError::Invalid { field, .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, Some(*field))
            }
            ProvisionError::NotFound { .. } => (StatusCode::NOT_FOUND, None),
            ProvisionError::Conflict(_) => (StatusCode::CONFLICT, None),
            ProvisionError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, None),
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "API store error");
        }
        ApiError {
            status,
            error: e.to_string(),
            field,
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = match r {
            // Well-formed JSON of the wrong shape (missing or mistyped field).
            JsonRejection::JsonDataError(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError {
            status,
            error: r.body_text(),
            field: None,
        }
    }
}

fn unauthorized() -> ApiError {
    ApiError {
        status: StatusCode::UNAUTHORIZED,
        error: "missing or invalid bearer token".into(),
        field: None,
    }
}

async fn require_token(
    State(state): State<Arc<ApiState>>,
    request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match token {
        Some(t) => match state.provisioner.token_valid(t).await {
            Ok(true) => next.run(request).await,
            Ok(false) => unauthorized().into_response(),
            Err(e) => ApiError::from(e).into_response(),
        },
        None => unauthorized().into_response(),
    }
}

/// `?limit=&offset=` for lists (limit 1–1000, default 100).
#[derive(Debug, Deserialize)]
pub struct Page {
    limit: Option<usize>,
    offset: Option<usize>,
}

fn page<T>(items: Vec<T>, p: &Page) -> Result<Vec<T>, ApiError> {
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            error: "limit must be 1 to 1000".into(),
            field: Some("limit"),
        });
    }
    Ok(items
        .into_iter()
        .skip(p.offset.unwrap_or(0))
        .take(limit)
        .collect())
}

type ApiResult<T> = Result<T, ApiError>;

#[derive(Deserialize)]
struct NewTenant {
    name: String,
}

#[derive(Deserialize)]
struct NewNumber {
    number: String,
    tenant: String,
    language: Option<String>,
}

#[derive(Deserialize)]
struct NewRoom {
    tenant: String,
    name: String,
    access_code: Option<String>,
    security_code: Option<String>,
}

#[derive(Deserialize)]
struct NewMeeting {
    room: String,
    tenant: Option<String>,
    start: String,
    duration: Option<String>,
    end: Option<String>,
    one_time: Option<bool>,
    security_code: Option<String>,
}

#[derive(Deserialize)]
struct MeetingFilter {
    room: Option<String>,
    tenant: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

#[derive(Deserialize)]
struct NewInvitee {
    name: String,
    phone: Option<String>,
    email: Option<String>,
}

#[derive(Deserialize)]
struct AttemptFilter {
    since: Option<String>,
    number: Option<String>,
    room: Option<String>,
    tenant: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(state): State<Arc<ApiState>>) -> Response {
    let database = state.provisioner.store().list_tenants().await.is_ok();
    let ok = database && state.prompts_loaded;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({"database": database, "prompts": state.prompts_loaded});
    (status, Json(body)).into_response()
}

async fn list_tenants(
    State(s): State<Arc<ApiState>>,
    Query(p): Query<Page>,
) -> ApiResult<impl IntoResponse> {
    let all = s
        .provisioner
        .store()
        .list_tenants()
        .await
        .map_err(ProvisionError::from)?;
    Ok(Json(page(all, &p)?))
}

async fn create_tenant(
    State(s): State<Arc<ApiState>>,
    body: Result<Json<NewTenant>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(t) = body?;
    Ok((
        StatusCode::CREATED,
        Json(s.provisioner.add_tenant(&t.name).await?),
    ))
}

async fn list_numbers(
    State(s): State<Arc<ApiState>>,
    Query(p): Query<Page>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(page(s.provisioner.list_numbers().await?, &p)?))
}

async fn create_number(
    State(s): State<Arc<ApiState>>,
    body: Result<Json<NewNumber>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(n) = body?;
    let language = n.language.as_deref().unwrap_or("en");
    Ok((
        StatusCode::CREATED,
        Json(
            s.provisioner
                .add_number(&n.number, &n.tenant, language)
                .await?,
        ),
    ))
}

async fn list_rooms(
    State(s): State<Arc<ApiState>>,
    Query(p): Query<Page>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(page(s.provisioner.list_rooms().await?, &p)?))
}

async fn create_room(
    State(s): State<Arc<ApiState>>,
    body: Result<Json<NewRoom>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(r) = body?;
    let room = s
        .provisioner
        .add_room(
            &r.tenant,
            &r.name,
            r.access_code.as_deref(),
            r.security_code.as_deref(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(room)))
}

fn live(s: &ApiState) -> Result<&LiveCalls, ApiError> {
    s.calls.as_ref().ok_or(ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        error: "no gateway running with this API".into(),
        field: None,
    })
}

fn control_error(e: ControlError, id: u64) -> ApiError {
    match e {
        ControlError::NotFound => ApiError {
            status: StatusCode::NOT_FOUND,
            error: format!("call not found: {id}"),
            field: None,
        },
        ControlError::NotInRoom => ApiError {
            status: StatusCode::CONFLICT,
            error: "the call is not in a room yet".into(),
            field: None,
        },
    }
}

async fn list_calls(
    State(s): State<Arc<ApiState>>,
    Query(p): Query<Page>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(page(live(&s)?.list(), &p)?))
}

async fn room_participants(
    State(s): State<Arc<ApiState>>,
    Path(room_id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    let calls: Vec<LiveCall> = live(&s)?
        .list()
        .into_iter()
        .filter(|c| c.room_id == Some(room_id))
        .collect();
    Ok(Json(calls))
}

async fn hang_up(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<u64>,
) -> ApiResult<impl IntoResponse> {
    live(&s)?.hang_up(id).map_err(|e| control_error(e, id))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn mute(State(s): State<Arc<ApiState>>, Path(id): Path<u64>) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        live(&s)?
            .set_muted(id, true)
            .map_err(|e| control_error(e, id))?,
    ))
}

async fn unmute(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<u64>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        live(&s)?
            .set_muted(id, false)
            .map_err(|e| control_error(e, id))?,
    ))
}

async fn render_metrics(State(s): State<Arc<ApiState>>) -> ApiResult<Response> {
    let handle = s.metrics.as_ref().ok_or(ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        error: "metrics recorder not installed".into(),
        field: None,
    })?;
    if let Some(calls) = &s.calls {
        let all = calls.list();
        for state in [CallState::Ivr, CallState::InRoom] {
            let n = all.iter().filter(|c| c.state == state).count();
            let label = match state {
                CallState::Ivr => "ivr",
                CallState::InRoom => "in_room",
            };
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

async fn create_meeting(
    State(s): State<Arc<ApiState>>,
    body: Result<Json<NewMeeting>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(m) = body?;
    let req = crate::provision::Schedule {
        room: &m.room,
        tenant: m.tenant.as_deref(),
        start: &m.start,
        duration: m.duration.as_deref(),
        end: m.end.as_deref(),
        one_time: m.one_time,
        security_code: m.security_code.as_deref(),
    };
    let view = s
        .provisioner
        .schedule_meeting(&req, chrono::Utc::now())
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn list_meetings(
    State(s): State<Arc<ApiState>>,
    Query(f): Query<MeetingFilter>,
) -> ApiResult<impl IntoResponse> {
    let room = f.room.as_deref().map(|r| (r, f.tenant.as_deref()));
    let all = s.provisioner.list_meetings(room).await?;
    Ok(Json(page(
        all,
        &Page {
            limit: f.limit,
            offset: f.offset,
        },
    )?))
}

async fn cancel_meeting(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        s.provisioner.cancel_meeting(id, chrono::Utc::now()).await?,
    ))
}

async fn invite(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<i64>,
    body: Result<Json<NewInvitee>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(i) = body?;
    let view = s
        .provisioner
        .invite(
            id,
            &i.name,
            i.phone.as_deref(),
            i.email.as_deref(),
            chrono::Utc::now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn revoke_invitee(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        s.provisioner.revoke_invitee(id, chrono::Utc::now()).await?,
    ))
}

async fn attempt_rows(s: &ApiState, f: &AttemptFilter) -> ApiResult<Vec<crate::store::AttemptRow>> {
    let room = f.room.as_deref().map(|r| (r, f.tenant.as_deref()));
    Ok(s.provisioner
        .attempts(f.since.as_deref(), f.number.as_deref(), room)
        .await?)
}

async fn list_attempts(
    State(s): State<Arc<ApiState>>,
    Query(f): Query<AttemptFilter>,
) -> ApiResult<impl IntoResponse> {
    let rows = attempt_rows(&s, &f).await?;
    Ok(Json(page(
        rows,
        &Page {
            limit: f.limit,
            offset: f.offset,
        },
    )?))
}

async fn attempts_summary(
    State(s): State<Arc<ApiState>>,
    Query(f): Query<AttemptFilter>,
) -> ApiResult<impl IntoResponse> {
    let rows = attempt_rows(&s, &f).await?;
    Ok(Json(crate::provision::summarise(&rows)))
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    let state = Arc::new(state);
    let protected = Router::new()
        .route("/readyz", get(readyz))
        .route("/v1/tenants", get(list_tenants).post(create_tenant))
        .route("/v1/numbers", get(list_numbers).post(create_number))
        .route("/v1/rooms", get(list_rooms).post(create_room))
        .route("/v1/rooms/{id}/participants", get(room_participants))
        .route("/v1/meetings", get(list_meetings).post(create_meeting))
        .route("/v1/meetings/{id}", delete(cancel_meeting))
        .route("/v1/meetings/{id}/invitees", post(invite))
        .route("/v1/invitees/{id}", delete(revoke_invitee))
        .route("/v1/attempts", get(list_attempts))
        .route("/v1/attempts/summary", get(attempts_summary))
        .route("/v1/calls", get(list_calls))
        .route("/metrics", get(render_metrics))
        .route("/v1/calls/{id}", delete(hang_up))
        .route("/v1/calls/{id}/mute", post(mute))
        .route("/v1/calls/{id}/unmute", post(unmute))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
        .with_state(state)
}
