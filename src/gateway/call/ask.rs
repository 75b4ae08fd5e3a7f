//! The store, answering what the call core asks: the dialled number's
//! route, a guess's check, a room's settings, a personal code's validity.
//! Each question is a future the call's select loop polls; its reply is
//! settled into the core's answer.

use super::control::{Answer, Ask, Guessed, Routed};
use super::{Pending, Reply, Shell};
use crate::access::E164;
use crate::access::lockout::{Verdict, countable_caller_id};
use crate::access::resolve::{Caller, invitee_still_valid, resolve};
use crate::conference::Policy;
use crate::ids::TenantId;
use crate::store::{Checked, FailureKeys, RoomSettings, timed};

/// `Policy` from a room's stored settings.
fn policy_of(room: RoomSettings) -> Policy {
    Policy {
        wait_for_host: room.wait_for_host,
        host_admits: room.host_admits,
        end_with_host: room.end_with_host,
        max_members: room.max_members.and_then(|n| usize::try_from(n).ok()),
    }
}

impl Shell {
    /// Starts answering `ask` from the store (the future owns what it needs).
    pub(super) fn ask(&self, ask: Ask, dialled: Option<String>) -> Pending<'static> {
        let shared = self.shared.clone();
        let number = self.number.clone();
        let caller_id = self.who.caller_id.clone();
        let source_ip = self.who.source_ip.clone();
        Box::pin(async move {
            let number_str = number
                .as_ref()
                .map(|n| n.number.clone())
                .unwrap_or_default();
            let keys = FailureKeys {
                caller_id: countable_caller_id(&caller_id).then_some(caller_id.as_str()),
                source_ip: &source_ip,
                number: &number_str,
            };
            let since = chrono::Utc::now() - shared.settings.lockout.window;
            match ask {
                Ask::Route => {
                    let Some(dialled) = dialled.as_deref().and_then(|d| E164::parse(d).ok()) else {
                        return Reply::Route(Ok(None));
                    };
                    // Failures on the number dialled, which is the number
                    // routed (the row's own, normalised, E.164).
                    let keys = FailureKeys {
                        number: dialled.as_str(),
                        ..keys
                    };
                    let routed = timed("number", shared.attempts.route(keys, since)).await;
                    if let Ok(None) = routed {
                        tracing::info!(number = %dialled, source = %source_ip, "number not provisioned");
                    }
                    Reply::Route(routed)
                }
                Ask::Guess { failed, room } => {
                    let policy = shared.settings.lockout.clone();
                    let allow = move |f| policy.verdict(f) != Verdict::Locked;
                    let room = room.map(|r| r.0);
                    let counted = shared.attempts.guess(keys, since, failed, room, allow);
                    Reply::Guess(timed("failures", counted).await)
                }
                Ask::Resolve(code) => {
                    // The store keeps plain ids.
                    let tenant = TenantId(number.as_ref().map_or(0, |n| n.tenant_id));
                    let caller = Caller {
                        caller_id: &caller_id,
                    };
                    let decided = resolve(
                        &shared.store,
                        &shared.secret,
                        tenant,
                        code.as_str(),
                        caller,
                        chrono::Utc::now(),
                    );
                    Reply::Other(Answer::Resolve(timed("resolve", decided).await))
                }
                Ask::Invitee(id) => {
                    let valid = invitee_still_valid(&shared.store, id);
                    Reply::Other(Answer::Invitee(timed("invitee", valid).await))
                }
            }
        })
    }

    /// Keeps what the shell needs of a store reply; the core gets the rest.
    pub(super) fn settle(&mut self, reply: Reply) -> Answer {
        match reply {
            Reply::Route(routed) => Answer::Route(routed.map(|routed| {
                let (row, failures) = routed?;
                let number = row.number.clone();
                self.number = Some(row);
                Some(Routed { number, failures })
            })),
            Reply::Guess(counted) => Answer::Guess(counted.map(|(checked, room)| {
                let failures = checked.failures();
                if let Checked::Open(_, guess) = checked {
                    self.guess = guess;
                }
                Guessed {
                    failures,
                    policy: room.map(policy_of),
                }
            })),
            Reply::Other(answer) => answer,
        }
    }
}
