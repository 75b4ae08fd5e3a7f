//! Why the gateway refuses or ends a call: the one list from which every
//! place that reports it derives what it says, so no two spell the mapping.
//!
//! | | before answering | after answering |
//! |---|---|---|
//! | on the wire | the final status, `Retry-After` on a 503 | the BYE's `Reason` (RFC 3326) |
//! | metrics | `dialgate_calls_refused_total{cause}` (and `dialgate_calls_shed_total{reason}`) | `dialgate_calls_total{outcome}` |
//! | attempt log | | the outcome of a refused access code |
//! | replay report | `sip_<status>` | the cause read back from the `Reason` |
//!
//! The label ([`Cause::label`]) is the same word everywhere: a metric's
//! label, the replay report's cause, the attempt-log outcome of an access
//! refusal. The replay tool reads a gateway's `Reason` back into a cause
//! with [`Cause::from_reason`].

use crate::access::Outcome;
use crate::sip::message::{StatusCode, param};

/// What `Retry-After` says on a refusal for want of capacity, in seconds.
pub const RETRY_AFTER_SECS: u32 = 5;

/// Why a call was refused before answering for want of capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shed {
    /// `--max-calls` calls in progress.
    Calls,
    /// The attempt log's writer is behind.
    AttemptLog,
    /// The event loop runs late (CPU saturated).
    LoopLag,
    /// The store did not answer in time.
    Store,
    /// The store answers calls slowly (smoothed mean past the limit).
    StoreLatency,
}

impl Shed {
    /// The `reason` label of `dialgate_calls_shed_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Shed::Calls => "max_calls",
            Shed::AttemptLog => "attempt_log",
            Shed::LoopLag => "loop_lag",
            Shed::Store => "store",
            Shed::StoreLatency => "store_latency",
        }
    }
}

/// Why the gateway refused a call before answering, or hung it up after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The dialled number is not provisioned.
    UnknownNumber,
    /// The gateway cannot serve one more call now.
    Shed(Shed),
    /// The dialled number could not be looked up (the store failed): a
    /// number we cannot route is not answered.
    StoreFailed,
    /// No RTP port is left.
    NoMediaPort,
    /// The INVITE carries no SDP offer (an offer in the ACK is not taken).
    NoOffer,
    /// The offer has no audio stream, or none in a codec we speak.
    NoCommonCodec,
    /// The offer cannot be read.
    BadOffer,
    /// The gateway is stopping.
    ShuttingDown,
    /// The access check turned the caller away (never `Admitted` or
    /// `Abandoned`: those are not the gateway's refusals).
    Access(Outcome),
    /// The room holds its most participants.
    RoomFull,
    /// The host locked the room.
    RoomLocked,
    /// The host ended the conference.
    RoomEnded,
    /// No RTP from the caller for the RTP timeout.
    RtpTimeout,
    /// An operator hung the call up (API or CLI).
    Operator,
    /// A leg from another node whose pass does not verify.
    LegRefused,
    /// A leg for a room this node does not own (any more).
    NotOwner,
}

/// The protocol a `Reason` header's cause is a code of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Sip,
    /// ITU-T Q.850 (ISDN) cause values.
    Q850,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Protocol::Sip => "SIP",
            Protocol::Q850 => "Q.850",
        }
    }
}

impl Cause {
    /// Every cause, once (each access outcome the gateway refuses with).
    pub const ALL: [Cause; 26] = [
        Cause::UnknownNumber,
        Cause::Shed(Shed::Calls),
        Cause::Shed(Shed::AttemptLog),
        Cause::Shed(Shed::LoopLag),
        Cause::Shed(Shed::Store),
        Cause::Shed(Shed::StoreLatency),
        Cause::StoreFailed,
        Cause::NoMediaPort,
        Cause::NoOffer,
        Cause::NoCommonCodec,
        Cause::BadOffer,
        Cause::ShuttingDown,
        Cause::Access(Outcome::Wrong),
        Cause::Access(Outcome::NotStarted),
        Cause::Access(Outcome::Ended),
        Cause::Access(Outcome::Revoked),
        Cause::Access(Outcome::Used),
        Cause::Access(Outcome::Locked),
        Cause::Access(Outcome::Timeout),
        Cause::RoomFull,
        Cause::RoomLocked,
        Cause::RoomEnded,
        Cause::RtpTimeout,
        Cause::Operator,
        Cause::LegRefused,
        Cause::NotOwner,
    ];

    /// The final status of an INVITE refused for this cause, and the SIP
    /// cause a BYE's `Reason` gives for it.
    pub fn status(self) -> StatusCode {
        match self {
            Cause::UnknownNumber => StatusCode::NOT_FOUND,
            Cause::Shed(_)
            | Cause::StoreFailed
            | Cause::NoMediaPort
            | Cause::ShuttingDown
            | Cause::NotOwner => StatusCode::SERVICE_UNAVAILABLE,
            Cause::NoOffer | Cause::NoCommonCodec => StatusCode::NOT_ACCEPTABLE_HERE,
            Cause::BadOffer => StatusCode::BAD_REQUEST,
            Cause::Access(_) | Cause::RoomLocked | Cause::LegRefused => StatusCode::FORBIDDEN,
            Cause::RoomFull => StatusCode::BUSY_HERE,
            // Normal clearing: the BYE's Reason says Q.850 16.
            Cause::RoomEnded | Cause::Operator => StatusCode::OK,
            Cause::RtpTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The `Reason` header's protocol and cause code.
    fn reason_code(self) -> (Protocol, u16) {
        match self {
            // Q.850 16, normal call clearing: the conference is over.
            Cause::RoomEnded => (Protocol::Q850, 16),
            other => (Protocol::Sip, other.status().0),
        }
    }

    /// The `Reason` header's text: what a person reading a trace is told.
    pub fn text(self) -> &'static str {
        match self {
            Cause::UnknownNumber => "unknown number",
            Cause::Shed(Shed::Calls) => "too many calls",
            Cause::Shed(Shed::AttemptLog) => "attempt log behind",
            Cause::Shed(Shed::LoopLag) => "overloaded",
            Cause::Shed(Shed::Store) => "store timeout",
            Cause::Shed(Shed::StoreLatency) => "store slow",
            Cause::StoreFailed => "store failed",
            Cause::NoMediaPort => "no media port",
            Cause::NoOffer => "no SDP offer",
            Cause::NoCommonCodec => "no common codec",
            Cause::BadOffer => "bad SDP offer",
            Cause::ShuttingDown => "shutting down",
            // The outcome's own word (the attempt log's and the API's).
            Cause::Access(outcome) => outcome.as_str(),
            Cause::RoomFull => "conference full",
            Cause::RoomLocked => "conference locked",
            Cause::RoomEnded => "conference ended",
            Cause::RtpTimeout => "RTP timeout",
            Cause::Operator => "hung up by operator",
            Cause::LegRefused => "leg refused",
            Cause::NotOwner => "room not owned here",
        }
    }

    /// The `Reason` header (RFC 3326) of a BYE for this cause, e.g.
    /// `SIP;cause=486;text="conference full"`.
    pub fn reason(self) -> String {
        let (protocol, code) = self.reason_code();
        format!(
            "{};cause={code};text=\"{}\"",
            protocol.as_str(),
            self.text()
        )
    }

    /// The one word for this cause: a metric's label, the replay report's
    /// cause, and an access refusal's attempt-log outcome.
    pub fn label(self) -> &'static str {
        match self {
            Cause::UnknownNumber => "unknown_number",
            Cause::Shed(shed) => shed.as_str(),
            Cause::StoreFailed => "store_failed",
            Cause::NoMediaPort => "no_media_port",
            Cause::NoOffer => "no_offer",
            Cause::NoCommonCodec => "no_common_codec",
            Cause::BadOffer => "bad_offer",
            Cause::ShuttingDown => "shutting_down",
            Cause::Access(outcome) => outcome.as_str(),
            Cause::RoomFull => "room_full",
            Cause::RoomLocked => "room_locked",
            Cause::RoomEnded => "room_ended",
            Cause::RtpTimeout => "media_timeout",
            Cause::Operator => "operator",
            Cause::LegRefused => "leg_refused",
            Cause::NotOwner => "not_owner",
        }
    }

    /// Extra headers of the final answer that refuses an INVITE: a 503
    /// (the gateway may take the call soon) says when to retry.
    pub fn refusal_headers(self) -> Vec<(String, String)> {
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            vec![("Retry-After".to_owned(), RETRY_AFTER_SECS.to_string())]
        } else {
            Vec::new()
        }
    }

    /// Whether the room turned the caller away (after the access check
    /// admitted it).
    pub fn is_room_refusal(self) -> bool {
        matches!(self, Cause::RoomFull | Cause::RoomLocked)
    }

    /// The cause a gateway's `Reason` header names: its protocol, code and
    /// text must all be one of ours (the text compared without regard to
    /// case or quoting). `None` for anyone else's.
    pub fn from_reason(reason: &str) -> Option<Cause> {
        let protocol = reason.split(';').next()?.trim();
        let code: u16 = param(reason, "cause")?.parse().ok()?;
        let text = param(reason, "text")?.trim_matches('"').trim();
        Cause::ALL.into_iter().find(|c| {
            let (p, n) = c.reason_code();
            p.as_str().eq_ignore_ascii_case(protocol)
                && n == code
                && c.text().eq_ignore_ascii_case(text)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_has_its_own_label_and_reason() {
        let all: Vec<Cause> = Cause::ALL.into_iter().collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b, "listed twice");
                assert_ne!(a.label(), b.label(), "{a:?} and {b:?} share a label");
                assert_ne!(a.reason(), b.reason(), "{a:?} and {b:?} share a Reason");
            }
        }
    }

    #[test]
    fn every_access_refusal_is_listed_and_admitted_is_not() {
        let listed: Vec<Outcome> = Cause::ALL
            .into_iter()
            .filter_map(|c| match c {
                Cause::Access(o) => Some(o),
                _ => None,
            })
            .collect();
        for o in Outcome::ALL {
            let refusal = !matches!(o, Outcome::Admitted | Outcome::Abandoned);
            assert_eq!(listed.contains(&o), refusal, "{o:?}");
        }
    }

    #[test]
    fn each_reason_reads_back_as_its_cause() {
        for c in Cause::ALL.into_iter() {
            assert_eq!(Cause::from_reason(&c.reason()), Some(c), "{}", c.reason());
        }
    }

    #[test]
    fn the_wire_says_what_it_said_before() {
        // Phones, SBCs and recorded traces see these: they do not change.
        assert_eq!(
            Cause::RoomFull.reason(),
            "SIP;cause=486;text=\"conference full\""
        );
        assert_eq!(
            Cause::RoomLocked.reason(),
            "SIP;cause=403;text=\"conference locked\""
        );
        assert_eq!(
            Cause::RoomEnded.reason(),
            "Q.850;cause=16;text=\"conference ended\""
        );
        assert_eq!(
            Cause::RtpTimeout.reason(),
            "SIP;cause=408;text=\"RTP timeout\""
        );
        assert_eq!(
            Cause::ShuttingDown.reason(),
            "SIP;cause=503;text=\"shutting down\""
        );
        assert_eq!(
            Cause::Operator.reason(),
            "SIP;cause=200;text=\"hung up by operator\""
        );
        assert_eq!(
            Cause::Access(Outcome::NotStarted).reason(),
            "SIP;cause=403;text=\"not_started\""
        );
        assert_eq!(Cause::UnknownNumber.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            Cause::NoCommonCodec.status(),
            StatusCode::NOT_ACCEPTABLE_HERE
        );
        assert_eq!(Cause::BadOffer.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn only_a_503_says_when_to_retry() {
        for c in Cause::ALL.into_iter() {
            let headers = c.refusal_headers();
            if c.status() == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(headers, vec![("Retry-After".into(), "5".into())], "{c:?}");
            } else {
                assert!(headers.is_empty(), "{c:?}");
            }
        }
    }

    #[test]
    fn a_reason_is_read_without_regard_to_case_spacing_or_order() {
        assert_eq!(
            Cause::from_reason("sip ; text=\"Conference Full\" ; cause=486"),
            Some(Cause::RoomFull)
        );
        assert_eq!(
            Cause::from_reason("q.850;cause=16;text=\"conference ended\""),
            Some(Cause::RoomEnded)
        );
    }

    #[test]
    fn someone_elses_reason_is_none_of_ours() {
        for r in [
            "SIP;cause=486;text=\"busy\"",
            "SIP;cause=403;text=\"conference full\"",
            "Q.850;cause=16",
            "SIP;text=\"wrong\"",
            "SIP;cause=abc;text=\"wrong\"",
            "",
            ";;;",
            "SIP;cause=403;text=\"admitted\"",
        ] {
            assert_eq!(Cause::from_reason(r), None, "{r}");
        }
    }
}
