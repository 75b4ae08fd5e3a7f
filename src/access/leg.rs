//! The pass a node gives the caller it bridges to a room's owner: the
//! `X-Dialgate-Leg` header of the INVITE between nodes. It names the room,
//! the lease epoch the collecting node saw, the caller's role and when it
//! was issued, and is signed with the key every node of a deployment
//! shares (`--secret-file`), bound to the INVITE's Call-ID: nobody without
//! the key can open a leg into a room, and a pass cannot be moved to
//! another dialog or used after [`LEG_PASS_LIFETIME`].
//!
//! ```text
//! X-Dialgate-Leg: room=42;epoch=3;role=host;at=1796630400;mac=<32 hex digits>
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::secret::Secret;
use crate::ids::RoomId;

/// The header that carries the pass.
pub const LEG_HEADER: &str = "X-Dialgate-Leg";

/// How far a pass's issue time may be from the owner's clock, either way
/// (nodes keep their clocks together with NTP).
pub const LEG_PASS_LIFETIME: Duration = Duration::from_secs(30);

/// The HMAC purpose of a pass.
const PURPOSE: &str = "leg";

/// Hex digits of the MAC kept: 128 bits.
const MAC_DIGITS: usize = 32;

/// What a valid pass grants: a member of `room` in `role`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegPass {
    pub room: RoomId,
    /// The lease epoch the collecting node saw the owner hold.
    pub epoch: i64,
    /// The caller keyed the host code.
    pub host: bool,
    /// Unix seconds, when the collecting node issued it.
    pub at: i64,
}

/// Why a pass is refused.
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum LegPassError {
    #[error("malformed leg pass")]
    Malformed,
    #[error("leg pass not signed with this deployment's key")]
    BadMac,
    #[error("leg pass issued {0} s from now: too old or too far ahead")]
    Stale(i64),
}

impl LegPass {
    /// A pass for `room` at `epoch`, issued `now`.
    pub fn new(room: RoomId, epoch: i64, host: bool, now: DateTime<Utc>) -> LegPass {
        LegPass {
            room,
            epoch,
            host,
            at: now.timestamp(),
        }
    }

    fn fields(&self) -> String {
        let role = if self.host { "host" } else { "participant" };
        format!(
            "room={};epoch={};role={role};at={}",
            self.room.0, self.epoch, self.at
        )
    }

    /// The header value for the INVITE whose Call-ID is `call_id`.
    pub fn sign(&self, secret: &Secret, call_id: &str) -> String {
        let fields = self.fields();
        let mac = secret.hash(PURPOSE, &format!("{call_id}\n{fields}"));
        format!("{fields};mac={}", &mac[..MAC_DIGITS])
    }

    /// The pass in `value`, if `secret` signed it for `call_id` and it was
    /// issued within [`LEG_PASS_LIFETIME`] of `now`.
    pub fn verify(
        secret: &Secret,
        call_id: &str,
        value: &str,
        now: DateTime<Utc>,
    ) -> Result<LegPass, LegPassError> {
        let (fields, mac) = value
            .trim()
            .rsplit_once(";mac=")
            .ok_or(LegPassError::Malformed)?;
        let pass = parse_fields(fields).ok_or(LegPassError::Malformed)?;
        // The MAC covers the fields as we write them, so a pass whose
        // fields were rewritten (reordered, spaced) does not verify.
        if pass.fields() != fields || mac.len() != MAC_DIGITS {
            return Err(LegPassError::Malformed);
        }
        let full = secret.hash(PURPOSE, &format!("{call_id}\n{fields}"));
        if !constant_time_eq(&full.as_bytes()[..MAC_DIGITS], mac.as_bytes()) {
            return Err(LegPassError::BadMac);
        }
        let skew = pass.at - now.timestamp();
        let limit = i64::try_from(LEG_PASS_LIFETIME.as_secs()).unwrap_or(i64::MAX);
        if skew.abs() > limit {
            return Err(LegPassError::Stale(skew));
        }
        Ok(pass)
    }
}

fn parse_fields(fields: &str) -> Option<LegPass> {
    let mut parts = fields.split(';');
    let mut next = |name: &str| {
        let (k, v) = parts.next()?.split_once('=')?;
        (k == name).then_some(v)
    };
    let room = next("room")?.parse().ok()?;
    let epoch = next("epoch")?.parse().ok()?;
    let host = match next("role")? {
        "host" => true,
        "participant" => false,
        _ => return None,
    };
    let at = next("at")?.parse().ok()?;
    Some(LegPass {
        room: RoomId(room),
        epoch,
        host,
        at,
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_796_630_400, 0).unwrap()
    }

    #[test]
    fn a_signed_pass_verifies_for_its_call_only() {
        let secret = Secret::from_key([7; 32]);
        let pass = LegPass::new(RoomId(42), 3, true, now());
        let value = pass.sign(&secret, "call-1");
        assert!(value.starts_with("room=42;epoch=3;role=host;at=1796630400;mac="));
        assert_eq!(LegPass::verify(&secret, "call-1", &value, now()), Ok(pass));
        assert_eq!(
            LegPass::verify(&secret, "call-2", &value, now()),
            Err(LegPassError::BadMac)
        );
        let other = Secret::from_key([8; 32]);
        assert_eq!(
            LegPass::verify(&other, "call-1", &value, now()),
            Err(LegPassError::BadMac)
        );
    }

    #[test]
    fn a_rewritten_pass_is_refused() {
        let secret = Secret::from_key([7; 32]);
        let value = LegPass::new(RoomId(42), 3, false, now()).sign(&secret, "c");
        let promoted = value.replace("role=participant", "role=host");
        assert_eq!(
            LegPass::verify(&secret, "c", &promoted, now()),
            Err(LegPassError::BadMac)
        );
        let moved = value.replace("room=42", "room=43");
        assert_eq!(
            LegPass::verify(&secret, "c", &moved, now()),
            Err(LegPassError::BadMac)
        );
        for garbage in [
            "",
            "room=42",
            "mac=00",
            "room=x;epoch=1;role=host;at=1;mac=00",
        ] {
            assert_eq!(
                LegPass::verify(&secret, "c", garbage, now()),
                Err(LegPassError::Malformed),
                "{garbage}"
            );
        }
    }

    #[test]
    fn a_pass_outside_its_lifetime_is_stale() {
        let secret = Secret::from_key([7; 32]);
        let value = LegPass::new(RoomId(1), 1, false, now()).sign(&secret, "c");
        let later = now() + chrono::Duration::seconds(31);
        assert_eq!(
            LegPass::verify(&secret, "c", &value, later),
            Err(LegPassError::Stale(-31))
        );
        let within = now() + chrono::Duration::seconds(30);
        assert!(LegPass::verify(&secret, "c", &value, within).is_ok());
    }
}
