//! The talking part: the ACK starts the media and the IVR, keys from any
//! source drive it, and its actions become the call's (prompts, code
//! checks, the room, the in-room keypad).

use super::*;

/// The state of an acknowledged call.
pub(super) struct Talk {
    pub(super) ivr: Machine,
    pub(super) grant: Option<Grant>,
    pub(super) check: Option<Check>,
    /// When the last key asked for a verdict.
    pub(super) asked: Option<Instant>,
    /// The room the caller is in.
    pub(super) room: Option<RoomId>,
    pub(super) keypad: Keypad,
    pub(super) rtp_timeout: Option<Duration>,
    pub(super) last_media: Instant,
    /// When silence is next checked: re-armed from `last_media` when it
    /// comes, not moved by every packet (the shell's one timer stays put).
    pub(super) silence_check: Instant,
}

impl Talk {
    /// A call just acknowledged, with `ivr`; silence ends it after
    /// `rtp_timeout` if there is one.
    pub(super) fn new(ivr: Machine, now: Instant, rtp_timeout: Option<Duration>) -> Talk {
        let mut talk = Talk {
            ivr,
            grant: None,
            check: None,
            asked: None,
            room: None,
            keypad: Keypad::new(),
            rtp_timeout: None,
            last_media: now,
            silence_check: now,
        };
        talk.rearm_silence(now, rtp_timeout);
        talk
    }

    /// Media arrived or the session changed at `now`.
    pub(super) fn heard(&mut self, now: Instant) {
        self.last_media = now;
    }

    /// Restarts the silence clock (a new session: `limit` may differ).
    pub(super) fn rearm_silence(&mut self, now: Instant, limit: Option<Duration>) {
        self.rtp_timeout = limit;
        self.last_media = now;
        self.silence_check = limit.map_or(now, |l| now + l);
    }
}

impl std::fmt::Debug for Talk {
    // No digits: the IVR's state holds what was keyed so far.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Talk")
            .field("room", &self.room)
            .field("check", &self.check.as_ref().map(|_| "…"))
            .finish_non_exhaustive()
    }
}

impl CallCore {
    /// The ACK came: media starts, and the IVR (locked out, or not).
    pub(super) fn talk(&mut self, now: Instant) {
        let Some(media) = &self.media else {
            return;
        };
        let (sends, _) = media_flow(&media.negotiated);
        self.out
            .push_back(Action::StartMedia(media.negotiated.clone()));
        if let Some(leg) = self.leg {
            return self.talk_in_room(now, leg, sends);
        }
        let ivr = match self.verdict {
            Verdict::Locked => {
                tracing::info!("caller locked out");
                Machine::locked(self.rules.ivr.clone())
            }
            Verdict::Open | Verdict::Alarm => Machine::new(self.rules.ivr.clone()),
        };
        let talk = Talk::new(ivr, now, self.rules.rtp_timeout.filter(|_| sends));
        self.phase = Phase::Talking(Box::new(talk));
        self.drain_ivr(now);
    }

    /// A leg's caller goes straight into its room (as the collecting node
    /// admitted it, with its role); the room keeps the settings it runs by.
    ///
    /// The RTP timeout holds as for any caller: a leg whose node died or
    /// was cut off must not stay in the room for good.
    fn talk_in_room(&mut self, now: Instant, leg: LegGrant, sends: bool) {
        let grant = Grant {
            room_id: leg.room_id,
            security: None,
            invitee: None,
            host: leg.host,
            policy: Policy::default(),
        };
        let ivr = Machine::in_room(self.rules.ivr.clone());
        let mut talk = Talk::new(ivr, now, self.rules.rtp_timeout.filter(|_| sends));
        talk.grant = Some(grant);
        talk.room = Some(leg.room_id);
        self.phase = Phase::Talking(Box::new(talk));
        self.out.push_back(Action::Join {
            room_id: leg.room_id,
            host: leg.host,
            policy: None,
            back: leg.back,
        });
    }

    pub(super) fn on_key(&mut self, now: Instant, key: Key) {
        let Phase::Talking(t) = &mut self.phase else {
            return;
        };
        if t.room.is_none() {
            t.ivr.handle(now, ivr::Event::Digit(key));
            return self.drain_ivr(now);
        }
        let host = t.grant.as_ref().is_some_and(|g| g.host);
        match t.keypad.on_key(now, key.to_char()) {
            Some(Command::ToggleLock | Command::ToggleMuteAll) if !host => {
                tracing::debug!("host command from a participant ignored");
            }
            Some(command) => self.out.push_back(Action::Room(command)),
            None => {}
        }
    }

    /// Carries out what the IVR asked for.
    pub(super) fn drain_ivr(&mut self, now: Instant) {
        let Phase::Talking(t) = &mut self.phase else {
            return;
        };
        let mut ended = None;
        while let Some(action) = t.ivr.poll_action() {
            match action {
                ivr::Action::Play { id, prompts } => {
                    self.out.push_back(Action::Play { id, prompts });
                }
                ivr::Action::StopPlay => self.out.push_back(Action::StopPlay),
                ivr::Action::Lookup(code) => {
                    t.asked = Some(now);
                    t.check = Some(Check::Resolving);
                    self.out.push_back(Action::Ask(Ask::Resolve(code)));
                }
                ivr::Action::VerifySecurity(code) => {
                    t.asked = Some(now);
                    if let Some(grant) = &t.grant {
                        if let Some(id) = grant.invitee {
                            t.check = Some(Check::Invitee { code });
                            self.out.push_back(Action::Ask(Ask::Invitee(id)));
                        } else {
                            let next = verify(&self.rules.secret, Some(grant), &code);
                            count_guess(t, &mut self.out, next, true);
                        }
                    } else {
                        t.ivr.handle(
                            now,
                            ivr::Event::Lookup(LookupResult::Refused(Outcome::Wrong)),
                        );
                    }
                }
                ivr::Action::Attempt { stage, outcome } => {
                    let room_id = t
                        .grant
                        .as_ref()
                        .filter(|_| outcome == Outcome::Admitted)
                        .map(|g| g.room_id);
                    let latency = t.asked.take().map(|at| now.saturating_duration_since(at));
                    self.out.push_back(Action::Record {
                        stage,
                        outcome,
                        room_id,
                        latency,
                    });
                }
                ivr::Action::Join { room_id } => {
                    let (host, policy) = t
                        .grant
                        .as_ref()
                        .map_or((false, Policy::default()), |g| (g.host, g.policy));
                    t.room = Some(room_id);
                    self.out.push_back(Action::Join {
                        room_id,
                        host,
                        policy: Some(policy),
                        back: None,
                    });
                }
                ivr::Action::Hangup(outcome) => {
                    ended = Some(End::HangUp(outcome));
                    break;
                }
            }
        }
        if let Some(end) = ended {
            self.end(now, end);
        }
    }
}
