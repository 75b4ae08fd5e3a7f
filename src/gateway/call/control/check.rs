//! The code check: a code looked up, the failure counts asked before its
//! verdict (the lockout, with the settings of the room a right code
//! opens), a probed number's delay, the security code against the grant.

use super::*;

use crate::ids::{InviteeId, RoomId};

/// What a right access code granted, kept while a security code is asked for.
#[derive(Clone, Debug)]
pub(super) struct Grant {
    pub(super) room_id: RoomId,
    /// Keyed hash of the security code to ask for, if any.
    pub(super) security: Option<String>,
    /// The invitee whose personal code it was.
    pub(super) invitee: Option<InviteeId>,
    /// The host code was keyed.
    pub(super) host: bool,
    /// The room's settings, read with the last check's counts.
    pub(super) policy: Policy,
}

/// What a code that has been looked at leads to, once the lockout lets
/// its verdict be given.
#[derive(Debug)]
pub(super) enum Next {
    /// Right: admitted, with the room's settings read with the counts.
    Admit {
        room_id: RoomId,
    },
    /// A right access code: now the security code.
    Security {
        room_id: RoomId,
    },
    Refused(Outcome),
}

impl Next {
    /// Whether it is a failed guess (counted towards lockouts).
    pub(super) fn failed(&self) -> bool {
        matches!(self, Next::Refused(o) if FAILURES.contains(o))
    }
}

/// A code check under way: which store answer it waits for.
///
/// A code is looked at first, then the lockout counts decide whether its
/// verdict may be given: so only guesses known to have failed are held
/// against the limit while they are recorded, and right codes never wait
/// on one another (a trunk's or SBC's callers share one source).
#[derive(Debug)]
pub(super) enum Check {
    /// The access code's lookup.
    Resolving,
    /// A personal code: is the invitee still valid, then the security code.
    Invitee { code: AccessCode },
    /// The code was looked at: the failure counts before its verdict.
    Guessing { next: Next, security: bool },
    /// The probed number's delay before the verdict.
    Slowed { next: Next, until: Instant },
}

/// Asks for the failure counts before `next`'s verdict is given (and, for
/// a right code, the room's settings with them).
pub(super) fn count_guess(t: &mut Talk, out: &mut VecDeque<Action>, next: Next, security: bool) {
    let failed = next.failed();
    let room = match next {
        Next::Admit { room_id } => Some(room_id),
        _ => None,
    };
    t.check = Some(Check::Guessing { next, security });
    out.push_back(Action::Ask(Ask::Guess { failed, room }));
}

/// A security code against the grant's hash: right leads to the room.
pub(super) fn verify(secret: &Secret, grant: Option<&Grant>, code: &AccessCode) -> Next {
    match grant {
        Some(grant)
            if grant
                .security
                .as_deref()
                .is_some_and(|stored| secret.verify(SECURITY, code.as_str(), stored)) =>
        {
            Next::Admit {
                room_id: grant.room_id,
            }
        }
        _ => Next::Refused(Outcome::Wrong),
    }
}

impl CallCore {
    /// A store answer in the middle of a code check.
    pub(super) fn on_check(&mut self, now: Instant, answer: Answer) {
        let Phase::Talking(t) = &mut self.phase else {
            return;
        };
        let result = match (t.check.take(), answer) {
            (Some(Check::Resolving), Answer::Resolve(decided)) => {
                let next = match decided {
                    Ok(Decision::Admit {
                        room_id,
                        security,
                        invitee,
                        host,
                        ..
                    }) => {
                        let needs_security = security.is_some();
                        t.grant = Some(Grant {
                            room_id,
                            security,
                            invitee,
                            host,
                            policy: Policy::default(),
                        });
                        if needs_security {
                            // The room's settings are read at the security check.
                            Next::Security { room_id }
                        } else {
                            Next::Admit { room_id }
                        }
                    }
                    Ok(Decision::Refuse(outcome)) => Next::Refused(outcome),
                    Err(e) => {
                        // Fail closed: the caller is refused rather than left
                        // waiting or let in; the operator sees the error.
                        tracing::error!(%e, "access code lookup failed");
                        Next::Refused(Outcome::Wrong)
                    }
                };
                count_guess(t, &mut self.out, next, false);
                None
            }
            (Some(Check::Invitee { code }), Answer::Invitee(valid)) => {
                let next = match valid {
                    Ok(true) => verify(&self.rules.secret, t.grant.as_ref(), &code),
                    Ok(false) => Next::Refused(Outcome::Revoked),
                    Err(e) => {
                        // Fail closed, as for the code.
                        tracing::error!(%e, "invitee check failed");
                        Next::Refused(Outcome::Revoked)
                    }
                };
                count_guess(t, &mut self.out, next, true);
                None
            }
            (Some(Check::Guessing { next, security }), Answer::Guess(guessed)) => {
                let counted = guessed.map(|g| {
                    if matches!(next, Next::Admit { .. })
                        && let Some(grant) = t.grant.as_mut()
                    {
                        // A room gone since its code was looked up: its
                        // defaults (the code was right). Where the store
                        // failed, `judge` logs it and fails open, and the
                        // defaults apply as well.
                        grant.policy = g.policy.unwrap_or_default();
                    }
                    g.failures
                });
                match self.judge(counted) {
                    Verdict::Locked => {
                        if let Phase::Talking(t) = &mut self.phase
                            && !security
                        {
                            t.grant = None;
                        }
                        Some(LookupResult::Refused(Outcome::Locked))
                    }
                    Verdict::Alarm if !security => {
                        if let Phase::Talking(t) = &mut self.phase {
                            t.check = Some(Check::Slowed {
                                next,
                                until: now + PROBED_NUMBER_DELAY,
                            });
                        }
                        None
                    }
                    _ => self.proceed(next, security),
                }
            }
            (check, answer) => {
                tracing::debug!(answer = answer.kind(), "store answer no check waits for");
                t.check = check;
                None
            }
        };
        self.reveal(now, result);
    }

    /// Gives the IVR a check's verdict, if there is one yet.
    pub(super) fn reveal(&mut self, now: Instant, result: Option<LookupResult>) {
        if let Some(result) = result
            && let Phase::Talking(t) = &mut self.phase
        {
            t.ivr.handle(now, ivr::Event::Lookup(result));
            self.drain_ivr(now);
        }
    }

    /// Carries out a verdict the lockout let through, for the IVR.
    pub(super) fn proceed(&mut self, next: Next, security: bool) -> Option<LookupResult> {
        let Phase::Talking(t) = &mut self.phase else {
            return None;
        };
        match next {
            Next::Admit { room_id } => Some(LookupResult::Admitted { room_id }),
            Next::Security { room_id } => Some(LookupResult::NeedSecurity { room_id }),
            Next::Refused(outcome) => {
                if !security {
                    t.grant = None;
                }
                Some(LookupResult::Refused(outcome))
            }
        }
    }
}
