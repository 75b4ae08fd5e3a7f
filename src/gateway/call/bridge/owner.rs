//! The owning node's end of a leg: an INVITE carrying a pass is a member
//! of a room this node owns if the pass verifies, was not used before, and
//! the room's lease is held here at the pass's epoch (not lapsed);
//! otherwise it is refused before answering (403, or 503 so the other node
//! asks again or keeps its caller itself).

use std::time::Instant;

use super::super::control::LegGrant;
use crate::access::leg::{LEG_PASS_LIFETIME, LegPass};
use crate::cause::Cause;
use crate::sip::endpoint::IncomingCall;

/// What an INVITE's pass grants, if it carries one: `Ok(None)` for an
/// ordinary call, `Err` for a leg to refuse before answering.
pub(in crate::gateway::call) fn leg_grant(
    shared: &crate::gateway::Shared,
    incoming: &IncomingCall,
) -> Result<Option<LegGrant>, Cause> {
    let Some(value) = incoming.leg.as_deref() else {
        return Ok(None);
    };
    let pass = LegPass::verify(&shared.secret, &incoming.call_id, value, chrono::Utc::now())
        .map_err(|e| {
            // Counted as refused (`leg_refused`); at debug level, so a flood
            // of forged legs does not flood the log.
            tracing::debug!(source = %incoming.source, %e, "leg from another node refused");
            Cause::LegRefused
        })?;
    if !shared.leg_passes.first_use(&incoming.call_id) {
        tracing::warn!(source = %incoming.source, "leg pass used again: refused");
        return Err(Cause::LegRefused);
    }
    // Held here at the epoch the other node saw, and not lapsed: a node
    // that cannot renew takes no new legs.
    let held = shared.rooms.leased_here(pass.room);
    if held != Some(pass.epoch) {
        tracing::info!(
            room_id = pass.room.0,
            epoch = pass.epoch,
            held_here = ?held,
            "leg for a room this node does not hold: 503"
        );
        return Err(Cause::NotOwner);
    }
    tracing::info!(
        room_id = pass.room.0,
        epoch = pass.epoch,
        host = pass.host,
        back = pass.back.is_some(),
        "leg from another node"
    );
    Ok(Some(LegGrant {
        room_id: pass.room,
        host: pass.host,
        back: pass.back,
    }))
}

/// The Call-IDs of the legs taken within two pass lifetimes: a pass is
/// good for one leg (a captured INVITE sent again, under another From tag,
/// is refused). Retransmissions never get here: the endpoint absorbs them.
#[derive(Debug, Default)]
pub struct LegPasses {
    seen: std::sync::Mutex<std::collections::HashMap<String, Instant>>,
}

impl LegPasses {
    /// Records `call_id`; false if it was used already.
    pub fn first_use(&self, call_id: &str) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        let now = Instant::now();
        let keep = 2 * LEG_PASS_LIFETIME;
        seen.retain(|_, at| now.duration_since(*at) < keep);
        seen.insert(call_id.to_owned(), now).is_none()
    }
}
