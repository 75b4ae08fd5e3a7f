//! Row types the store returns, serialised as the CLI's `--json` output.

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Tenant {
    pub id: i64,
    pub name: String,
    pub created_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct NumberRow {
    pub id: i64,
    /// E.164, e.g. `+15550100`.
    pub number: String,
    pub tenant_id: i64,
    pub tenant: String,
    pub language: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RoomRow {
    pub id: i64,
    pub tenant_id: i64,
    pub tenant: String,
    pub name: String,
    /// Digits as a string: leading zeros are data.
    pub access_code: String,
}

/// One line of the attempt log: who, when, which number, the outcome — never the code.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    pub number: String,
    pub caller_id: String,
    pub source: String,
    pub stage: &'static str,
    pub outcome: &'static str,
    pub room_id: Option<i64>,
    pub call_id: String,
}
