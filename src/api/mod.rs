//! The operator REST API (axum), over the same service layer as the CLI
//! (`provision`): JSON in and out, bearer tokens on every route but
//! `/healthz`, errors as `{"error": …, "field": …}` with 400/401/404/409/422.
//!
//! Every route is declared with `#[utoipa::path]` and registered through
//! `utoipa_axum`'s router, so the OpenAPI 3 document served at
//! `/v1/openapi.json` is built from the same declarations axum routes by:
//! a route cannot exist without its entry in the document.
//!
//! Resources: tenants, numbers, rooms (`catalog`); meetings, invitees, the
//! attempt log (`meetings`); live calls (`calls`); `/healthz`, `/readyz`,
//! `/metrics` (`health`). The attempt log is read-only: it is the audit
//! trail.

mod calls;
mod catalog;
mod health;
mod meetings;
pub mod metrics;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::live::LiveCalls;
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
    /// Asks this node to drain, as SIGTERM does (`None` when the API runs
    /// without a gateway).
    pub drain: Option<Arc<tokio::sync::Notify>>,
}

pub(crate) type Shared = State<Arc<ApiState>>;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// The request field at fault, where one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An API error: status plus `{"error", "field"}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error: error.into(),
                field: None,
            },
        }
    }

    pub(crate) fn invalid(field: &'static str, error: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error);
        e.body.field = Some(field.to_owned());
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
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
        let mut out = ApiError::new(status, e.to_string());
        out.body.field = field.map(str::to_owned);
        out
    }
}

impl From<PathRejection> for ApiError {
    /// A path segment that is not an id of the right type names nothing.
    fn from(r: PathRejection) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no such resource: {}", r.body_text()),
        )
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        let text = r.body_text();
        // serde names the parameter first: "…: limit: invalid digit …".
        let field = text
            .trim_start_matches("Failed to deserialize query string: ")
            .split(':')
            .next()
            .filter(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .map(str::to_owned);
        let mut e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, text);
        e.body.field = field;
        e
    }
}

/// `axum`'s `Path`, rejecting with our JSON error (404).
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct Path<T>(pub T);

/// `axum`'s `Query`, rejecting with our JSON error (422 naming the parameter).
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct Query<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = match r {
            // Well-formed JSON of the wrong shape (missing or mistyped field).
            JsonRejection::JsonDataError(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, r.body_text())
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// A JSON object request body. Anything else (not JSON, not an object, a
/// field missing, mistyped or unknown) is refused with our JSON error,
/// naming the field where serde does.
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<serde_json::Value>::from_request(req, state).await?;
        if !value.is_object() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the body must be a JSON object",
            ));
        }
        serde_json::from_value(value).map(Body).map_err(|e| {
            let text = e.to_string();
            // serde: "missing field `name`", "unknown field `colour`, expected …".
            let field = text.split('`').nth(1).map(str::to_owned);
            let mut err = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, text);
            err.body.field =
                field.filter(|f| f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            err
        })
    }
}

async fn require_token(State(state): Shared, request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let unauthorized = || {
        ApiError::new(StatusCode::UNAUTHORIZED, "missing or invalid bearer token").into_response()
    };
    match token {
        Some(t) => match state.provisioner.token_valid(t).await {
            Ok(true) => next.run(request).await,
            Ok(false) => unauthorized(),
            Err(e) => ApiError::from(e).into_response(),
        },
        None => unauthorized(),
    }
}

/// `?limit=&offset=` for lists.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Items to skip (default 0).
    #[param(minimum = 0)]
    offset: Option<i32>,
}

pub(crate) fn page<T>(items: Vec<T>, p: &Page) -> Result<Vec<T>, ApiError> {
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit must be 1 to 1000"));
    }
    let offset = usize::try_from(p.offset.unwrap_or(0))
        .map_err(|_| ApiError::invalid("offset", "offset must be 0 or more"))?;
    Ok(items.into_iter().skip(offset).take(limit).collect())
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "dialgate operator API",
        description = "Provision tenants, dial-in numbers, rooms and meetings; read the attempt log; watch and control live calls. Every route but /healthz needs `Authorization: Bearer <token>` (`dialgate token create`).",
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "catalog", description = "Tenants, dial-in numbers and rooms"),
        (name = "meetings", description = "Scheduled meetings, invitees and the attempt log"),
        (name = "calls", description = "Live calls"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    ),
)]
struct ApiDoc;

/// The document, rendered once, as `/v1/openapi.json` serves it.
#[derive(Clone)]
struct Document(Arc<String>);

/// This API's OpenAPI 3 document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json"),
              (status = 401, body = ErrorBody)))]
async fn openapi_json(Extension(doc): Extension<Document>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        doc.0.as_str().to_owned(),
    )
        .into_response()
}

fn routes() -> OpenApiRouter<Arc<ApiState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(catalog::list_tenants, catalog::create_tenant))
        .routes(routes!(
            catalog::get_tenant,
            catalog::update_tenant,
            catalog::delete_tenant
        ))
        .routes(routes!(catalog::list_numbers, catalog::create_number))
        .routes(routes!(
            catalog::get_number,
            catalog::update_number,
            catalog::delete_number
        ))
        .routes(routes!(catalog::list_rooms, catalog::create_room))
        .routes(routes!(
            catalog::get_room,
            catalog::update_room,
            catalog::delete_room
        ))
        .routes(routes!(calls::room_participants))
        .routes(routes!(meetings::list_meetings, meetings::create_meeting))
        .routes(routes!(
            meetings::get_meeting,
            meetings::reschedule_meeting,
            meetings::cancel_meeting
        ))
        .routes(routes!(meetings::list_invitees, meetings::invite))
        .routes(routes!(
            meetings::get_invitee,
            meetings::update_invitee,
            meetings::revoke_invitee
        ))
        .routes(routes!(meetings::list_attempts))
        .routes(routes!(meetings::attempts_summary))
        .routes(routes!(calls::list_calls))
        .routes(routes!(calls::hang_up))
        .routes(routes!(calls::mute))
        .routes(routes!(calls::admit))
        .routes(routes!(calls::lock_room))
        .routes(routes!(calls::unlock_room))
        .routes(routes!(calls::unmute))
        .routes(routes!(health::readyz))
        .routes(routes!(health::list_nodes))
        .routes(routes!(health::list_leases))
        .routes(routes!(health::drain))
        .routes(routes!(health::render_metrics))
        .routes(routes!(openapi_json))
}

/// The OpenAPI 3 document of every route [`router`] serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes().routes(routes!(health::healthz)).into_openapi();
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.patch,
            &mut item.put,
            &mut item.delete,
        ];
        for op in operations.into_iter().flatten() {
            // /healthz is for probes and load balancers: no token.
            if path == "/healthz" {
                op.security = Some(vec![
                    utoipa::openapi::security::SecurityRequirement::default(),
                ]);
            }
            describe_responses(op);
        }
    }
    doc
}

/// OpenAPI requires a description on every response: where a route gave
/// none, the status's reason phrase.
fn describe_responses(op: &mut utoipa::openapi::path::Operation) {
    for (status, response) in op.responses.responses.iter_mut() {
        if let utoipa::openapi::RefOr::T(r) = response
            && r.description.is_empty()
        {
            r.description = status
                .parse::<u16>()
                .ok()
                .and_then(|code| StatusCode::from_u16(code).ok())
                .and_then(|code| code.canonical_reason())
                .unwrap_or("Response")
                .to_owned();
        }
    }
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    let state = Arc::new(state);
    let rendered = openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    let (protected, _) = routes()
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .split_for_parts();
    let (open, _) = OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .split_for_parts();
    open.merge(protected)
        .layer(Extension(Document(Arc::new(rendered))))
        .with_state(state)
}
