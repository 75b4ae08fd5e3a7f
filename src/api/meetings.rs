//! Scheduled meetings, their invitees, and the attempt log (read-only).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{ApiResult, Body, ErrorBody, Page, Path, Query, Shared, page};
use crate::provision::{
    AttemptSummary, InviteView, InviteeChange, MeetingView, Reschedule, Schedule,
};
use crate::store::{AttemptRow, InviteeRow};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMeeting {
    /// Room id or name.
    room: String,
    /// Settles a room name several tenants use.
    tenant: Option<String>,
    /// RFC 3339, e.g. `2026-11-23T10:00:00Z`.
    start: String,
    /// e.g. `45m`; give this or `end`.
    duration: Option<String>,
    /// RFC 3339; give this or `duration`.
    end: Option<String>,
    /// Whether the meeting gets a one-time code (default: the tenant's setting).
    one_time: Option<bool>,
    /// Asked for after the one-time code; needs one.
    security_code: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeetingTimes {
    /// RFC 3339 new start.
    start: String,
    /// e.g. `45m`; give this or `end`.
    duration: Option<String>,
    /// RFC 3339; give this or `duration`.
    end: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MeetingFilter {
    /// Only this room (id or name).
    room: Option<String>,
    /// Settles a room name several tenants use.
    tenant: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Items to skip.
    #[param(minimum = 0)]
    offset: Option<i32>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvitee {
    name: String,
    phone: Option<String>,
    email: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteePatch {
    name: Option<String>,
    /// `""` removes it.
    phone: Option<String>,
    /// `""` removes it.
    email: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttemptFilter {
    /// Only attempts this recent, e.g. `1h`.
    since: Option<String>,
    /// Only calls to this dialled number (E.164).
    number: Option<String>,
    /// Only attempts admitted to this room (id or name).
    room: Option<String>,
    /// Settles a room name several tenants use.
    tenant: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Items to skip.
    #[param(minimum = 0)]
    offset: Option<i32>,
}

const MEETING_ID: &str = "Meeting id";

/// Schedules a meeting; the one-time code, if any, is in the answer.
#[utoipa::path(post, path = "/v1/meetings", tag = "meetings", request_body = NewMeeting,
    responses((status = 201, body = MeetingView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_meeting(
    State(s): Shared,
    Body(body): Body<NewMeeting>,
) -> ApiResult<impl IntoResponse> {
    let m = body;
    let req = Schedule {
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

/// Meetings by start time.
#[utoipa::path(get, path = "/v1/meetings", tag = "meetings", params(MeetingFilter),
    responses((status = 200, body = Vec<MeetingView>), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_meetings(
    State(s): Shared,
    Query(f): Query<MeetingFilter>,
) -> ApiResult<impl IntoResponse> {
    let room = f.room.as_deref().map(|r| (r, f.tenant.as_deref()));
    let all = s.provisioner.list_meetings(room).await?;
    let p = Page {
        limit: f.limit,
        offset: f.offset,
    };
    Ok(Json(page(all, &p)?))
}

#[utoipa::path(get, path = "/v1/meetings/{id}", tag = "meetings", params(("id" = i64, Path, description = MEETING_ID)),
    responses((status = 200, body = MeetingView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_meeting(State(s): Shared, Path(id): Path<i64>) -> ApiResult<Json<MeetingView>> {
    Ok(Json(s.provisioner.meeting(id).await?))
}

/// Moves a meeting; it keeps its one-time code (409 if that would clash
/// with a code live in the new window).
#[utoipa::path(patch, path = "/v1/meetings/{id}", tag = "meetings", params(("id" = i64, Path, description = MEETING_ID)),
    request_body = MeetingTimes,
    responses((status = 200, body = MeetingView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn reschedule_meeting(
    State(s): Shared,
    Path(id): Path<i64>,
    Body(body): Body<MeetingTimes>,
) -> ApiResult<Json<MeetingView>> {
    let t = body;
    let req = Reschedule {
        start: &t.start,
        duration: t.duration.as_deref(),
        end: t.end.as_deref(),
    };
    Ok(Json(
        s.provisioner
            .reschedule_meeting(id, &req, chrono::Utc::now())
            .await?,
    ))
}

/// Cancels a meeting: its one-time and personal codes stop admitting.
#[utoipa::path(delete, path = "/v1/meetings/{id}", tag = "meetings", params(("id" = i64, Path, description = MEETING_ID)),
    responses((status = 200, body = MeetingView, description = "The cancelled meeting"),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn cancel_meeting(State(s): Shared, Path(id): Path<i64>) -> ApiResult<Json<MeetingView>> {
    Ok(Json(
        s.provisioner.cancel_meeting(id, chrono::Utc::now()).await?,
    ))
}

/// Invites someone with a personal single-use code, shown in this answer
/// only (and sent to the tenant's invite webhook, if set).
#[utoipa::path(post, path = "/v1/meetings/{id}/invitees", tag = "meetings",
    params(("id" = i64, Path, description = MEETING_ID)), request_body = NewInvitee,
    responses((status = 201, body = InviteView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn invite(
    State(s): Shared,
    Path(id): Path<i64>,
    Body(body): Body<NewInvitee>,
) -> ApiResult<impl IntoResponse> {
    let i = body;
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

/// A meeting's invitees (their codes are never readable again).
#[utoipa::path(get, path = "/v1/meetings/{id}/invitees", tag = "meetings",
    params(("id" = i64, Path, description = MEETING_ID), Page),
    responses((status = 200, body = Vec<InviteeRow>), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_invitees(
    State(s): Shared,
    Path(id): Path<i64>,
    Query(p): Query<Page>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(page(s.provisioner.invitees(id).await?, &p)?))
}

#[utoipa::path(get, path = "/v1/invitees/{id}", tag = "meetings", params(("id" = i64, Path, description = "Invitee id")),
    responses((status = 200, body = InviteeRow), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_invitee(State(s): Shared, Path(id): Path<i64>) -> ApiResult<Json<InviteeRow>> {
    Ok(Json(s.provisioner.invitee(id).await?))
}

/// Corrects an invitee's name, phone or e-mail (the code stays).
#[utoipa::path(patch, path = "/v1/invitees/{id}", tag = "meetings", params(("id" = i64, Path, description = "Invitee id")),
    request_body = InviteePatch,
    responses((status = 200, body = InviteeRow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_invitee(
    State(s): Shared,
    Path(id): Path<i64>,
    Body(body): Body<InviteePatch>,
) -> ApiResult<Json<InviteeRow>> {
    let change = InviteeChange {
        name: body.name.as_deref(),
        phone: body.phone.as_deref(),
        email: body.email.as_deref(),
    };
    Ok(Json(s.provisioner.update_invitee(id, &change).await?))
}

/// Revokes an invitee's personal code.
#[utoipa::path(delete, path = "/v1/invitees/{id}", tag = "meetings", params(("id" = i64, Path, description = "Invitee id")),
    responses((status = 200, body = InviteeRow, description = "The revoked invitee"),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_invitee(State(s): Shared, Path(id): Path<i64>) -> ApiResult<Json<InviteeRow>> {
    Ok(Json(
        s.provisioner.revoke_invitee(id, chrono::Utc::now()).await?,
    ))
}

async fn attempt_rows(s: &super::ApiState, f: &AttemptFilter) -> ApiResult<Vec<AttemptRow>> {
    let room = f.room.as_deref().map(|r| (r, f.tenant.as_deref()));
    Ok(s.provisioner
        .attempts(f.since.as_deref(), f.number.as_deref(), room)
        .await?)
}

/// The attempt log, oldest first: who, when, which number, the outcome —
/// never the code.
#[utoipa::path(get, path = "/v1/attempts", tag = "meetings", params(AttemptFilter),
    responses((status = 200, body = Vec<AttemptRow>), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_attempts(
    State(s): Shared,
    Query(f): Query<AttemptFilter>,
) -> ApiResult<impl IntoResponse> {
    let rows = attempt_rows(&s, &f).await?;
    let p = Page {
        limit: f.limit,
        offset: f.offset,
    };
    Ok(Json(page(rows, &p)?))
}

/// Failures by room, by number and by outcome (the filters of `/v1/attempts`; no paging).
#[utoipa::path(get, path = "/v1/attempts/summary", tag = "meetings", params(AttemptFilter),
    responses((status = 200, body = AttemptSummary), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn attempts_summary(
    State(s): Shared,
    Query(f): Query<AttemptFilter>,
) -> ApiResult<Json<AttemptSummary>> {
    let rows = attempt_rows(&s, &f).await?;
    Ok(Json(crate::provision::summarise(&rows)))
}
