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
//!
//! A caller who was in the room already (moved to another owner: the old
//! one died, or the room was mixed apart) brings its [`Standing`] back in a
//! `back=` field before the MAC, which covers it:
//! `…;at=1796630400;back=muted,admitted,locked;mac=…` (`back=` alone: none
//! of the three).

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
    /// The caller was in the room before, with this standing.
    pub back: Option<Standing>,
}

/// What a caller who was in a room already brings back to it when it moves
/// to the room's next owner: the room state that must survive the move
/// (who is muted, who got past the waiting room, whether the room was
/// locked), kept by the node the caller is on from what the owner reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Standing {
    pub muted: bool,
    /// Past the "host admits" waiting room (let in, or a host).
    pub admitted: bool,
    /// The room was locked to new participants.
    pub locked: bool,
}

impl Standing {
    fn flags(&self) -> String {
        let flags = [
            (self.muted, "muted"),
            (self.admitted, "admitted"),
            (self.locked, "locked"),
        ];
        flags
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, name)| *name)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The flags as [`Standing::flags`] writes them (in that order).
    fn parse_flags(flags: &str) -> Option<Standing> {
        let mut standing = Standing::default();
        for flag in flags.split(',').filter(|f| !f.is_empty()) {
            match flag {
                "muted" => standing.muted = true,
                "admitted" => standing.admitted = true,
                "locked" => standing.locked = true,
                _ => return None,
            }
        }
        Some(standing)
    }
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
    pub fn new(
        room: RoomId,
        epoch: i64,
        host: bool,
        back: Option<Standing>,
        now: DateTime<Utc>,
    ) -> LegPass {
        LegPass {
            room,
            epoch,
            host,
            at: now.timestamp(),
            back,
        }
    }

    fn fields(&self) -> String {
        let role = if self.host { "host" } else { "participant" };
        let mut fields = format!(
            "room={};epoch={};role={role};at={}",
            self.room.0, self.epoch, self.at
        );
        if let Some(back) = &self.back {
            fields.push_str(";back=");
            fields.push_str(&back.flags());
        }
        fields
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
    let back = match parts.next() {
        None => None,
        Some(field) => Some(Standing::parse_flags(field.strip_prefix("back=")?)?),
    };
    if parts.next().is_some() {
        return None;
    }
    Some(LegPass {
        room: RoomId(room),
        epoch,
        host,
        at,
        back,
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
        let pass = LegPass::new(RoomId(42), 3, true, None, now());
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
        let value = LegPass::new(RoomId(42), 3, false, None, now()).sign(&secret, "c");
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
    fn a_returning_caller_s_standing_is_signed_with_the_pass() {
        let secret = Secret::from_key([7; 32]);
        for back in [
            Standing::default(),
            Standing {
                muted: true,
                admitted: false,
                locked: true,
            },
            Standing {
                muted: true,
                admitted: true,
                locked: true,
            },
        ] {
            let pass = LegPass::new(RoomId(42), 3, false, Some(back), now());
            let value = pass.sign(&secret, "c");
            assert_eq!(LegPass::verify(&secret, "c", &value, now()), Ok(pass));
        }
        let value = LegPass::new(
            RoomId(42),
            3,
            false,
            Some(Standing {
                muted: true,
                admitted: false,
                locked: false,
            }),
            now(),
        )
        .sign(&secret, "c");
        assert!(value.contains(";back=muted;mac="), "{value}");
        // Unmuting oneself, or getting past the waiting room, by rewriting it.
        for forged in [
            value.replace(";back=muted", ";back="),
            value.replace(";back=muted", ";back=muted,admitted"),
        ] {
            assert_eq!(
                LegPass::verify(&secret, "c", &forged, now()),
                Err(LegPassError::BadMac),
                "{forged}"
            );
        }
        for garbage in [
            "room=1;epoch=1;role=host;at=1;back=deaf;mac=00",
            "room=1;epoch=1;role=host;at=1;back=;x=1;mac=00",
            "room=1;epoch=1;role=host;at=1;front=muted;mac=00",
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
        let value = LegPass::new(RoomId(1), 1, false, None, now()).sign(&secret, "c");
        let later = now() + chrono::Duration::seconds(31);
        assert_eq!(
            LegPass::verify(&secret, "c", &value, later),
            Err(LegPassError::Stale(-31))
        );
        let within = now() + chrono::Duration::seconds(30);
        assert!(LegPass::verify(&secret, "c", &value, within).is_ok());
    }
}
