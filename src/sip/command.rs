//! What a call asks of the SIP endpoint's task: answers to its INVITE and
//! in-dialog requests, BYE, INFO. Calls send these; the task that owns the
//! [`super::endpoint::Endpoint`] carries them out.

use super::endpoint::{CallRef, OutgoingCall, TxKey};
use super::message::StatusCode;

/// What a call task asks of the SIP endpoint.
#[derive(Debug)]
pub enum SipCommand {
    /// Answers the INVITE: a provisional, 200 with SDP, or a refusal with
    /// its extra headers (`Retry-After`).
    RespondInvite {
        call: CallRef,
        status: StatusCode,
        headers: Vec<(String, String)>,
        sdp: Option<Vec<u8>>,
    },
    Respond {
        tx: TxKey,
        status: StatusCode,
    },
    /// Answers a re-INVITE: 200 with our answer, or a failure.
    RespondReinvite {
        tx: TxKey,
        status: StatusCode,
        sdp: Option<Vec<u8>>,
    },
    Bye {
        call: CallRef,
        reason: Option<String>,
    },
    /// An INFO of an Info Package the caller asked for.
    Info {
        call: CallRef,
        package: &'static str,
        body: String,
    },
    /// Places `call`'s leg to another node (one at a time per call); its
    /// events come back to `call` as the leg's.
    Invite {
        call: CallRef,
        leg: OutgoingCall,
    },
    /// Passes a key `call`'s caller sent by SIP INFO on over its leg.
    LegKey {
        call: CallRef,
        signal: char,
    },
    /// An INFO of an Info Package the owner takes, over `call`'s leg.
    LegInfo {
        call: CallRef,
        package: &'static str,
        body: String,
    },
    /// Hangs up `call`'s leg (or drops it, unanswered, when it answers).
    LegBye {
        call: CallRef,
        reason: Option<String>,
    },
}
