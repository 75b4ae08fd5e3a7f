//! Live calls: list them, list a room's participants, hang up, mute, admit.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::{ApiError, ApiResult, ApiState, ErrorBody, Page, Path, Query, Shared, page};
use crate::ids::RoomId;
use crate::live::{ControlError, LiveCall, LiveCalls};

fn live(s: &ApiState) -> Result<&LiveCalls, ApiError> {
    s.calls.as_ref().ok_or(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "no gateway running with this API",
    ))
}

fn control_error(e: ControlError, id: u64) -> ApiError {
    match e {
        ControlError::NotFound => {
            ApiError::new(StatusCode::NOT_FOUND, format!("call not found: {id}"))
        }
        ControlError::NotInRoom => {
            ApiError::new(StatusCode::CONFLICT, "the call is not in a room yet")
        }
        ControlError::NotWaiting => {
            ApiError::new(StatusCode::CONFLICT, "the call is not in a waiting room")
        }
    }
}

const CALL_ID: &str = "Live call id (from GET /v1/calls)";

/// Calls up now, in the IVR or in a room.
#[utoipa::path(get, path = "/v1/calls", tag = "calls", params(Page),
    responses((status = 200, body = Vec<LiveCall>), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list_calls(State(s): Shared, Query(p): Query<Page>) -> ApiResult<impl IntoResponse> {
    Ok(Json(page(live(&s)?.list(), &p)?))
}

/// The calls in one room's mix.
#[utoipa::path(get, path = "/v1/rooms/{id}/participants", tag = "calls",
    params(("id" = i64, Path, description = "Room id")),
    responses((status = 200, body = Vec<LiveCall>), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn room_participants(
    State(s): Shared,
    Path(room_id): Path<i64>,
) -> ApiResult<Json<Vec<LiveCall>>> {
    let calls = live(&s)?
        .list()
        .into_iter()
        .filter(|c| c.room_id == Some(RoomId(room_id)))
        .collect();
    Ok(Json(calls))
}

/// Hangs a call up: the gateway sends BYE.
#[utoipa::path(delete, path = "/v1/calls/{id}", tag = "calls", params(("id" = u64, Path, description = CALL_ID)),
    responses((status = 204, description = "BYE sent"), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn hang_up(State(s): Shared, Path(id): Path<u64>) -> ApiResult<StatusCode> {
    live(&s)?.hang_up(id).map_err(|e| control_error(e, id))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stops mixing a caller's audio into the room.
#[utoipa::path(post, path = "/v1/calls/{id}/mute", tag = "calls", params(("id" = u64, Path, description = CALL_ID)),
    responses((status = 200, body = LiveCall), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn mute(State(s): Shared, Path(id): Path<u64>) -> ApiResult<Json<LiveCall>> {
    let call = live(&s)?
        .set_muted(id, true)
        .map_err(|e| control_error(e, id))?;
    Ok(Json(call))
}

/// Mixes a muted caller's audio again.
#[utoipa::path(post, path = "/v1/calls/{id}/unmute", tag = "calls", params(("id" = u64, Path, description = CALL_ID)),
    responses((status = 200, body = LiveCall), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn unmute(State(s): Shared, Path(id): Path<u64>) -> ApiResult<Json<LiveCall>> {
    let call = live(&s)?
        .set_muted(id, false)
        .map_err(|e| control_error(e, id))?;
    Ok(Json(call))
}

/// Lets a caller in from its room's waiting room (rooms set to "host
/// admits", or waiting for a host that has not come).
#[utoipa::path(post, path = "/v1/calls/{id}/admit", tag = "calls", params(("id" = u64, Path, description = CALL_ID)),
    responses((status = 200, body = LiveCall), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn admit(State(s): Shared, Path(id): Path<u64>) -> ApiResult<Json<LiveCall>> {
    let call = live(&s)?.admit(id).map_err(|e| control_error(e, id))?;
    Ok(Json(call))
}

/// A room with callers in it, as its lock sees it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RoomLock {
    pub room_id: i64,
    /// Locked rooms refuse new participants; hosts still get in.
    pub locked: bool,
}

async fn set_lock(s: &ApiState, room_id: i64, locked: bool) -> ApiResult<Json<RoomLock>> {
    live(s)?.lock_room(RoomId(room_id), locked).map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no callers in room {room_id}: only a room in use can be locked"),
        )
    })?;
    Ok(Json(RoomLock { room_id, locked }))
}

/// Locks a room in use: participants calling in now are refused
/// ("this conference is locked"); hosts still get in. Ends with the room.
#[utoipa::path(post, path = "/v1/rooms/{id}/lock", tag = "calls",
    params(("id" = i64, Path, description = "Room id")),
    responses((status = 200, body = RoomLock), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn lock_room(State(s): Shared, Path(room_id): Path<i64>) -> ApiResult<Json<RoomLock>> {
    set_lock(&s, room_id, true).await
}

/// Unlocks a room in use.
#[utoipa::path(post, path = "/v1/rooms/{id}/unlock", tag = "calls",
    params(("id" = i64, Path, description = "Room id")),
    responses((status = 200, body = RoomLock), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn unlock_room(State(s): Shared, Path(room_id): Path<i64>) -> ApiResult<Json<RoomLock>> {
    set_lock(&s, room_id, false).await
}
