//! What the two nodes of a leg tell each other about the member it
//! carries, in INFO requests of the `dialgate-member` Info Package (RFC
//! 6086; `text/plain`, one `name=value` per line):
//!
//! - the room's owner reports the member's standing after every change
//!   (`presence=in_room`, `muted=1`, `locked=0`), so the node the caller is
//!   on shows it in its live view and brings it along when the caller
//!   moves to the room's next owner ([`Standing`], carried in the pass);
//! - that node passes on what its operator asks for the caller (`mute=1`,
//!   `admit=1`, `lock=1`), which the owner applies as if asked itself.
//!
//! Pure: bodies in, [`MemberInfo`] out, and back.

use super::roster::Presence;
use crate::access::leg::Standing;

/// What a member in `presence`, `muted` or not, in a room `locked` or
/// not, brings to the room's next owner.
pub fn standing_of(presence: Presence, muted: bool, locked: bool) -> Standing {
    Standing {
        muted,
        admitted: presence != Presence::WaitingForAdmission,
        locked,
    }
}

/// The Info Package of these INFOs, in `Recv-Info` and `Info-Package`.
pub const MEMBER_PACKAGE: &str = "dialgate-member";

/// One INFO of the package.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberInfo {
    /// Owner to the caller's node: where the member is, whether it is
    /// muted, whether the room is locked.
    Report {
        presence: Presence,
        muted: bool,
        locked: bool,
    },
    /// The caller's node to the owner: mute or unmute the member.
    Mute(bool),
    /// Let the member in from the waiting room.
    Admit,
    /// Lock or unlock the member's room.
    Lock(bool),
}

fn presence_name(presence: Presence) -> Option<&'static str> {
    match presence {
        Presence::InRoom => Some("in_room"),
        Presence::WaitingForHost => Some("waiting_for_host"),
        Presence::WaitingForAdmission => Some("waiting_for_admission"),
        // The leg ends with these: nothing to report.
        Presence::Ended | Presence::Moved => None,
    }
}

fn flag(on: bool) -> &'static str {
    if on { "1" } else { "0" }
}

impl MemberInfo {
    /// The INFO's body; `None` for a report of a presence that ends the leg.
    pub fn body(&self) -> Option<String> {
        Some(match self {
            MemberInfo::Report {
                presence,
                muted,
                locked,
            } => format!(
                "presence={}\r\nmuted={}\r\nlocked={}\r\n",
                presence_name(*presence)?,
                flag(*muted),
                flag(*locked)
            ),
            MemberInfo::Mute(on) => format!("mute={}\r\n", flag(*on)),
            MemberInfo::Admit => "admit=1\r\n".to_owned(),
            MemberInfo::Lock(on) => format!("lock={}\r\n", flag(*on)),
        })
    }

    /// The INFO in `body`; `None` if it is not one this package knows.
    pub fn parse(body: &[u8]) -> Option<MemberInfo> {
        let text = std::str::from_utf8(body).ok()?;
        let mut fields = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once('=')?;
            fields.push((name.trim(), value.trim()));
        }
        let get = |name: &str| fields.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let bit = |name: &str| match get(name)? {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        };
        let info = if let Some(presence) = get("presence") {
            let presence = match presence {
                "in_room" => Presence::InRoom,
                "waiting_for_host" => Presence::WaitingForHost,
                "waiting_for_admission" => Presence::WaitingForAdmission,
                _ => return None,
            };
            MemberInfo::Report {
                presence,
                muted: bit("muted")?,
                locked: bit("locked")?,
            }
        } else if get("mute").is_some() {
            MemberInfo::Mute(bit("mute")?)
        } else if get("admit").is_some() {
            bit("admit").filter(|on| *on)?;
            MemberInfo::Admit
        } else {
            MemberInfo::Lock(bit("lock")?)
        };
        // One request per INFO: a body naming more is not ours.
        let expected = if matches!(info, MemberInfo::Report { .. }) {
            3
        } else {
            1
        };
        (fields.len() == expected).then_some(info)
    }

    /// What a report means for the member's next move; `None` for the
    /// requests.
    pub fn standing(&self) -> Option<Standing> {
        match *self {
            MemberInfo::Report {
                presence,
                muted,
                locked,
            } => Some(standing_of(presence, muted, locked)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_reads_back_as_written() {
        let all = [
            MemberInfo::Report {
                presence: Presence::InRoom,
                muted: true,
                locked: false,
            },
            MemberInfo::Report {
                presence: Presence::WaitingForHost,
                muted: false,
                locked: true,
            },
            MemberInfo::Report {
                presence: Presence::WaitingForAdmission,
                muted: false,
                locked: false,
            },
            MemberInfo::Mute(true),
            MemberInfo::Mute(false),
            MemberInfo::Admit,
            MemberInfo::Lock(true),
            MemberInfo::Lock(false),
        ];
        for info in all {
            let body = info.body().unwrap();
            assert_eq!(MemberInfo::parse(body.as_bytes()), Some(info), "{body}");
        }
        let ended = MemberInfo::Report {
            presence: Presence::Ended,
            muted: false,
            locked: false,
        };
        assert_eq!(ended.body(), None);
    }

    #[test]
    fn a_report_says_what_the_member_brings_to_its_next_room() {
        let waiting = MemberInfo::Report {
            presence: Presence::WaitingForAdmission,
            muted: true,
            locked: true,
        };
        assert_eq!(
            waiting.standing(),
            Some(Standing {
                muted: true,
                admitted: false,
                locked: true
            })
        );
        let waiting_for_host = MemberInfo::Report {
            presence: Presence::WaitingForHost,
            muted: false,
            locked: false,
        };
        assert_eq!(waiting_for_host.standing().map(|s| s.admitted), Some(true));
        assert_eq!(MemberInfo::Admit.standing(), None);
    }

    #[test]
    fn bodies_it_does_not_know_are_refused() {
        for body in [
            "",
            "mute=yes\r\n",
            "admit=0\r\n",
            "presence=in_room\r\nmuted=1\r\n",
            "presence=ended\r\nmuted=1\r\nlocked=0\r\n",
            "mute=1\r\nlock=1\r\n",
            "volume=11\r\n",
            "just text",
        ] {
            assert_eq!(MemberInfo::parse(body.as_bytes()), None, "{body:?}");
        }
        assert_eq!(MemberInfo::parse(&[0xff, 0xfe]), None);
    }
}
