//! Row types the store returns, serialised as the CLI's `--json` output.

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Tenant {
    pub id: i64,
    pub name: String,
    pub created_at: String,
    /// Scheduled meetings get a one-time code unless asked otherwise (0/1).
    #[serde(serialize_with = "as_bool")]
    #[schema(value_type = bool)]
    pub one_time_default: i64,
    /// One-time codes admit from this long before the start.
    pub early_join_secs: i64,
    /// … until this long after the end.
    pub grace_secs: i64,
    /// Digits in generated one-time codes (6–12).
    pub code_length: i64,
    /// Keyed hash of the security code one-time meetings ask for by default.
    #[serde(skip)]
    pub default_security_code_hash: Option<String>,
    /// Where personal codes are POSTed (JSON), if anywhere.
    pub invite_webhook: Option<String>,
}

fn as_bool<S: serde::Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(*v != 0)
}

/// A scheduled meeting on a room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct MeetingRow {
    pub id: i64,
    pub room_id: i64,
    pub room: String,
    pub tenant_id: i64,
    pub starts_at: String,
    pub ends_at: String,
    /// Readable back, like a meeting ID; `None` when the room's regular code is used.
    pub one_time_code: Option<String>,
    pub cancelled_at: Option<String>,
    #[serde(skip)]
    pub security_code_hash: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct NumberRow {
    pub id: i64,
    /// E.164, e.g. `+15550100`.
    pub number: String,
    pub tenant_id: i64,
    pub tenant: String,
    pub language: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RoomRow {
    pub id: i64,
    pub tenant_id: i64,
    pub tenant: String,
    pub name: String,
    /// Digits as a string: leading zeros are data.
    pub access_code: String,
    /// Keyed hash of the room's standing security code.
    #[serde(skip)]
    pub security_code_hash: Option<String>,
    /// Keyed in place of the access code by the room's host(s).
    pub host_code: Option<String>,
    /// Participants wait, hearing hold music, until a host is in the room.
    #[serde(serialize_with = "as_bool")]
    #[schema(value_type = bool)]
    pub wait_for_host: i64,
    /// Participants wait until admitted through the API.
    #[serde(serialize_with = "as_bool")]
    #[schema(value_type = bool)]
    pub host_admits: i64,
    /// The room ends (everyone is hung up) when its last host leaves.
    #[serde(serialize_with = "as_bool")]
    #[schema(value_type = bool)]
    pub end_with_host: i64,
    /// At most this many callers in the room, waiting ones included.
    pub max_members: Option<i64>,
}

/// A room's settings, as a call joining it needs them (and nothing else:
/// no code).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoomSettings {
    pub wait_for_host: bool,
    pub host_admits: bool,
    pub end_with_host: bool,
    pub max_members: Option<i64>,
}

/// One line of the attempt log: who, when, which number, the outcome — never the code.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    pub number: String,
    pub caller_id: String,
    pub source: String,
    /// The source's IP alone, for per-source lockouts.
    pub source_ip: String,
    pub stage: &'static str,
    pub outcome: &'static str,
    pub room_id: Option<i64>,
    pub call_id: String,
}

/// One attempt-log row as read back (no code in it, ever).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AttemptRow {
    pub id: i64,
    pub at: String,
    pub number: String,
    pub caller_id: String,
    pub source: String,
    pub stage: String,
    pub outcome: String,
    pub room_id: Option<i64>,
    pub call_id: String,
}
