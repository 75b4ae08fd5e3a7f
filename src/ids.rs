//! Typed ids for what the gateway's layers hand each other, so a room's id
//! cannot be passed where a meeting's or an invitee's is meant.
//!
//! They run along the call path: the access rules' verdict
//! ([`crate::access::resolve`]), the IVR, the call core and shell, the room
//! registry and the live-call view. The store's rows and the REST API keep
//! plain `i64` at their edges (the OpenAPI document is unchanged); the
//! conversion is `RoomId(id)` and `id.0`, at those edges only.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An `i64` row id with a name of its own; prints and (de)serialises as
/// the number.
macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id!(
    /// A room's id (`rooms.id`).
    RoomId
);
id!(
    /// A tenant's id (`tenants.id`): the dialled number's, whose codes are looked up.
    TenantId
);
id!(
    /// A scheduled meeting's id (`meetings.id`).
    MeetingId
);
id!(
    /// An invitee's id (`invitees.id`), whose personal code was keyed.
    InviteeId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_reads_and_prints_as_its_number() {
        let id = RoomId(42);
        assert_eq!(id.to_string(), "42");
        assert_eq!(serde_json::to_string(&id).unwrap(), "42");
        assert_eq!(serde_json::from_str::<RoomId>("42").unwrap(), id);
        assert_eq!(InviteeId(7).to_string(), "7");
    }
}
