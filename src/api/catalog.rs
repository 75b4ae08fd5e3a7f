//! Tenants, dial-in numbers and rooms: create, read, list, update, delete.
//!
//! Updates are partial (`PATCH`: absent fields keep their value); a
//! security code or webhook set to `""` is removed.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{ApiError, ApiResult, Body, ErrorBody, Page, Path, Query, Shared, page};
use crate::ids::RoomId;
use crate::provision::{
    NumberChange, ProvisionError, RoomChange, RoomSettings, TenantChange, TenantSettings,
};
use crate::store::{NumberRow, RoomRow, Tenant};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// 1 to 100 printable characters, unique.
    name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    name: Option<String>,
    /// Whether scheduled meetings get a one-time code by default.
    one_time_default: Option<bool>,
    /// How long before the start one-time codes admit, e.g. `15m` (at most 24h).
    early_join: Option<String>,
    /// How long after the end they still admit, e.g. `5m` (at most 24h).
    grace: Option<String>,
    /// Digits in generated one-time codes, 6 to 12.
    #[schema(minimum = 6, maximum = 12)]
    code_length: Option<usize>,
    /// Security code one-time meetings ask for by default; `""` removes it.
    default_security_code: Option<String>,
    /// Where personal codes are POSTed; `""` removes it.
    invite_webhook: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNumber {
    /// E.164, e.g. `+15550100`.
    number: String,
    /// The tenant's name.
    tenant: String,
    /// Prompt language tag (default `en`).
    language: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NumberPatch {
    /// Moves the number to this tenant (by name).
    tenant: Option<String>,
    language: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRoom {
    /// The tenant's name.
    tenant: String,
    name: String,
    /// Digits; drawn (9 digits) when absent.
    access_code: Option<String>,
    /// Digits asked for after the access code, if any.
    security_code: Option<String>,
    /// Keyed in place of the access code by the room's hosts.
    host_code: Option<String>,
    /// Participants wait, hearing hold music, until a host is in the room
    /// (needs a host code).
    wait_for_host: Option<bool>,
    /// Participants wait until admitted with `POST /v1/calls/{id}/admit`.
    host_admits: Option<bool>,
    /// Everyone is hung up when the last host leaves (needs a host code).
    end_with_host: Option<bool>,
    /// At most this many callers in the room, waiting ones included; 0: no limit.
    #[schema(minimum = 0, maximum = 10000)]
    max_members: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomPatch {
    name: Option<String>,
    /// A new regular code; it must clash with no live code of the tenant.
    access_code: Option<String>,
    /// A new standing security code; `""` removes it.
    security_code: Option<String>,
    /// Keyed in place of the access code by the room's hosts; `""` removes it.
    host_code: Option<String>,
    /// Participants wait, hearing hold music, until a host is in the room
    /// (needs a host code).
    wait_for_host: Option<bool>,
    /// Participants wait until admitted with `POST /v1/calls/{id}/admit`.
    host_admits: Option<bool>,
    /// Everyone is hung up when the last host leaves (needs a host code).
    end_with_host: Option<bool>,
    /// At most this many callers in the room, waiting ones included; 0: no limit.
    #[schema(minimum = 0, maximum = 10000)]
    max_members: Option<i64>,
}

/// Tenants, oldest first.
#[utoipa::path(get, path = "/v1/tenants", tag = "catalog", params(Page),
    responses((status = 200, body = Vec<Tenant>), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_tenants(State(s): Shared, Query(p): Query<Page>) -> ApiResult<impl IntoResponse> {
    let all = s
        .provisioner
        .store()
        .list_tenants()
        .await
        .map_err(ProvisionError::from)?;
    Ok(Json(page(all, &p)?))
}

#[utoipa::path(post, path = "/v1/tenants", tag = "catalog", request_body = NewTenant,
    responses((status = 201, body = Tenant), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_tenant(
    State(s): Shared,
    Body(body): Body<NewTenant>,
) -> ApiResult<impl IntoResponse> {
    let t = body;
    Ok((
        StatusCode::CREATED,
        Json(s.provisioner.add_tenant(&t.name).await?),
    ))
}

#[utoipa::path(get, path = "/v1/tenants/{id}", tag = "catalog", params(("id" = i64, Path, description = "Tenant id")),
    responses((status = 200, body = Tenant), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_tenant(State(s): Shared, Path(id): Path<i64>) -> ApiResult<Json<Tenant>> {
    Ok(Json(s.provisioner.tenant_by_id(id).await?))
}

/// Renames a tenant or changes its meeting settings.
#[utoipa::path(patch, path = "/v1/tenants/{id}", tag = "catalog", params(("id" = i64, Path, description = "Tenant id")),
    request_body = TenantPatch,
    responses((status = 200, body = Tenant), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_tenant(
    State(s): Shared,
    Path(id): Path<i64>,
    Body(body): Body<TenantPatch>,
) -> ApiResult<Json<Tenant>> {
    let p = body;
    let change = TenantChange {
        name: p.name.as_deref(),
        settings: TenantSettings {
            one_time_default: p.one_time_default,
            early_join: p.early_join.as_deref(),
            grace: p.grace.as_deref(),
            code_length: p.code_length,
            default_security_code: p.default_security_code.as_deref(),
            invite_webhook: p.invite_webhook.as_deref(),
        },
    };
    Ok(Json(s.provisioner.update_tenant(id, &change).await?))
}

/// Deletes a tenant that has no numbers and no rooms left (409 otherwise).
#[utoipa::path(delete, path = "/v1/tenants/{id}", tag = "catalog", params(("id" = i64, Path, description = "Tenant id")),
    responses((status = 200, body = Tenant, description = "The deleted tenant"), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_tenant(State(s): Shared, Path(id): Path<i64>) -> ApiResult<Json<Tenant>> {
    Ok(Json(s.provisioner.delete_tenant(id).await?))
}

#[utoipa::path(get, path = "/v1/numbers", tag = "catalog", params(Page),
    responses((status = 200, body = Vec<NumberRow>), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_numbers(State(s): Shared, Query(p): Query<Page>) -> ApiResult<impl IntoResponse> {
    Ok(Json(page(s.provisioner.list_numbers().await?, &p)?))
}

#[utoipa::path(post, path = "/v1/numbers", tag = "catalog", request_body = NewNumber,
    responses((status = 201, body = NumberRow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_number(
    State(s): Shared,
    Body(body): Body<NewNumber>,
) -> ApiResult<impl IntoResponse> {
    let n = body;
    let language = n.language.as_deref().unwrap_or("en");
    let row = s
        .provisioner
        .add_number(&n.number, &n.tenant, language)
        .await?;
    Ok((StatusCode::CREATED, Json(row)))
}

#[utoipa::path(get, path = "/v1/numbers/{id}", tag = "catalog", params(("id" = i64, Path, description = "Number id")),
    responses((status = 200, body = NumberRow), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_number(State(s): Shared, Path(id): Path<i64>) -> ApiResult<Json<NumberRow>> {
    Ok(Json(s.provisioner.number_by_id(id).await?))
}

/// Moves a number to another tenant or changes its prompt language.
#[utoipa::path(patch, path = "/v1/numbers/{id}", tag = "catalog", params(("id" = i64, Path, description = "Number id")),
    request_body = NumberPatch,
    responses((status = 200, body = NumberRow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_number(
    State(s): Shared,
    Path(id): Path<i64>,
    Body(body): Body<NumberPatch>,
) -> ApiResult<Json<NumberRow>> {
    let p = body;
    let change = NumberChange {
        tenant: p.tenant.as_deref(),
        language: p.language.as_deref(),
    };
    Ok(Json(s.provisioner.update_number(id, &change).await?))
}

/// Stops answering a number; calls already up on it go on.
#[utoipa::path(delete, path = "/v1/numbers/{id}", tag = "catalog", params(("id" = i64, Path, description = "Number id")),
    responses((status = 200, body = NumberRow, description = "The deleted number"), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn delete_number(State(s): Shared, Path(id): Path<i64>) -> ApiResult<Json<NumberRow>> {
    Ok(Json(s.provisioner.delete_number(id).await?))
}

#[utoipa::path(get, path = "/v1/rooms", tag = "catalog", params(Page),
    responses((status = 200, body = Vec<RoomRow>), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_rooms(State(s): Shared, Query(p): Query<Page>) -> ApiResult<impl IntoResponse> {
    Ok(Json(page(s.provisioner.list_rooms().await?, &p)?))
}

#[utoipa::path(post, path = "/v1/rooms", tag = "catalog", request_body = NewRoom,
    responses((status = 201, body = RoomRow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_room(
    State(s): Shared,
    Body(body): Body<NewRoom>,
) -> ApiResult<impl IntoResponse> {
    let r = body;
    let room = s
        .provisioner
        .add_room(
            &r.tenant,
            &r.name,
            r.access_code.as_deref(),
            r.security_code.as_deref(),
            &RoomSettings {
                host_code: r.host_code.as_deref(),
                wait_for_host: r.wait_for_host,
                host_admits: r.host_admits,
                end_with_host: r.end_with_host,
                max_members: r.max_members,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(room)))
}

#[utoipa::path(get, path = "/v1/rooms/{id}", tag = "catalog", params(("id" = i64, Path, description = "Room id")),
    responses((status = 200, body = RoomRow), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_room(State(s): Shared, Path(id): Path<i64>) -> ApiResult<Json<RoomRow>> {
    Ok(Json(s.provisioner.room_by_id(id).await?))
}

/// Renames a room, changes its regular code or its security code.
#[utoipa::path(patch, path = "/v1/rooms/{id}", tag = "catalog", params(("id" = i64, Path, description = "Room id")),
    request_body = RoomPatch,
    responses((status = 200, body = RoomRow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_room(
    State(s): Shared,
    Path(id): Path<i64>,
    Body(body): Body<RoomPatch>,
) -> ApiResult<Json<RoomRow>> {
    let p = body;
    let change = RoomChange {
        name: p.name.as_deref(),
        access_code: p.access_code.as_deref(),
        security_code: p.security_code.as_deref(),
        settings: RoomSettings {
            host_code: p.host_code.as_deref(),
            wait_for_host: p.wait_for_host,
            host_admits: p.host_admits,
            end_with_host: p.end_with_host,
            max_members: p.max_members,
        },
    };
    Ok(Json(s.provisioner.update_room(id, &change).await?))
}

/// Deletes a room with no callers in it and no meeting still to come (409
/// otherwise); its past meetings go with it, its attempt-log rows stay.
#[utoipa::path(delete, path = "/v1/rooms/{id}", tag = "catalog", params(("id" = i64, Path, description = "Room id")),
    responses((status = 200, body = RoomRow, description = "The deleted room"), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_room(State(s): Shared, Path(id): Path<i64>) -> ApiResult<Json<RoomRow>> {
    if let Some(calls) = &s.calls {
        let inside = calls
            .list()
            .iter()
            .filter(|c| c.room_id == Some(RoomId(id)))
            .count();
        if inside > 0 {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("{inside} caller(s) in the room: hang them up first"),
            ));
        }
    }
    Ok(Json(
        s.provisioner.delete_room(id, chrono::Utc::now()).await?,
    ))
}
