//! The call's control flow on simulated time: every phase, every store
//! answer (and failure), nothing sleeps and nothing binds a socket.

use super::*;
use crate::ids::{InviteeId, MeetingId, RoomId};
use crate::store::StoreError;

const OFFER: &str = "v=0\r\no=caller 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
m=audio 5000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";
const HOLD: &str = "v=0\r\no=caller 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
m=audio 5000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n";
const SECRET: [u8; 32] = [5; 32];

fn rules() -> Rules {
    Rules {
        ivr: IvrConfig::default(),
        lockout: LockoutPolicy::default(),
        answer_delay: Duration::ZERO,
        store_timeout: Duration::from_secs(2),
        rtp_timeout: Some(Duration::from_secs(30)),
        advertise: "127.0.0.1".parse().unwrap(),
        codecs: vec![Codec::Pcmu],
        secret: Secret::from_key(SECRET),
    }
}

/// The store's answer for the provisioned number, with `failures`.
fn routed(failures: Failures) -> Answer {
    Answer::Route(Ok(Some(Routed {
        number: "+15550100".into(),
        failures,
    })))
}

fn store_down() -> StoreError {
    StoreError::Database(sqlx::Error::PoolTimedOut)
}

fn tx(n: u32) -> TxKey {
    TxKey::for_tests(&format!("z9hG4bK-{n}"))
}

/// An INFO in the dialog, as the endpoint hands it over.
fn info(n: u32, content_type: &str, body: &[u8]) -> CallEvent {
    CallEvent::Info {
        tx: tx(n),
        package: None,
        content_type: content_type.into(),
        body: body.to_vec(),
    }
}

/// A re-INVITE offering `sdp`.
fn reinvite(n: u32, sdp: &[u8]) -> CallEvent {
    CallEvent::Reinvite {
        tx: tx(n),
        content_type: "application/sdp".into(),
        body: sdp.to_vec(),
        source: "192.0.2.1:5060".parse().unwrap(),
        vias: vec!["SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKre".into()],
    }
}

/// A call driven on simulated time.
struct Harness {
    core: CallCore,
    now: Instant,
}

impl Harness {
    fn with(rules: Rules) -> Harness {
        let now = Instant::now();
        let offer = Offer {
            content_type: Some("application/sdp".into()),
            body: OFFER.as_bytes().to_vec(),
        };
        Harness {
            core: CallCore::new(now, Arc::new(rules), offer),
            now,
        }
    }

    fn drain(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.core.poll_action()).collect()
    }

    /// Answers a code's lookup with `decided`, then its failure count with
    /// `counted` (and no settings for the room: its defaults): what
    /// follows both.
    fn check(
        &mut self,
        decided: Result<Decision, StoreError>,
        counted: Result<Failures, StoreError>,
    ) -> Vec<Action> {
        let a = self.answer(Answer::Resolve(decided));
        assert!(
            matches!(&a[..], [Action::Ask(Ask::Guess { .. })]),
            "a looked-at code is counted first: {a:?}"
        );
        self.answer(Answer::Guess(counted.map(|failures| Guessed {
            failures,
            policy: None,
        })))
    }

    /// `asked` ends with a failed guess's count (no room's settings to
    /// read): answered with no failures on record; what follows.
    fn count_failed(&mut self, asked: &[Action]) -> Vec<Action> {
        let count = Action::Ask(Ask::Guess {
            failed: true,
            room: None,
        });
        assert_eq!(asked.last(), Some(&count), "{asked:?}");
        self.answer(Answer::Guess(Ok(Guessed {
            failures: Failures::default(),
            policy: None,
        })))
    }

    fn give(&mut self, input: Input) -> Vec<Action> {
        self.core.handle(self.now, input);
        self.drain()
    }

    fn answer(&mut self, answer: Answer) -> Vec<Action> {
        self.give(Input::Answer(answer))
    }

    fn sip(&mut self, event: CallEvent) -> Vec<Action> {
        self.give(Input::Sip(event))
    }

    /// Moves time on by `d`, running what falls due.
    fn advance(&mut self, d: Duration) -> Vec<Action> {
        self.now += d;
        if self.core.poll_timeout().is_some_and(|t| t <= self.now) {
            self.core.handle_timeout(self.now);
        }
        self.drain()
    }

    /// The last prompt of `actions` plays to its end.
    fn finish_play(&mut self, actions: &[Action]) -> Vec<Action> {
        let id = actions
            .iter()
            .rev()
            .find_map(|a| match a {
                Action::Play { id, .. } => Some(*id),
                _ => None,
            })
            .expect("a prompt plays");
        self.give(Input::PlayDone(id))
    }

    fn keys(&mut self, keys: &str) -> Vec<Action> {
        let mut out = Vec::new();
        for c in keys.chars() {
            self.now += Duration::from_millis(200);
            out.extend(self.give(Input::Key(Key::from_char(c).unwrap())));
        }
        out
    }

    /// Routed, counted (`failures`), port opened: the 200 goes out.
    fn answered(rules: Rules, failures: Failures) -> Harness {
        let mut h = Harness::with(rules);
        assert_eq!(h.drain(), vec![Action::Ask(Ask::Route)]);
        let a = h.answer(routed(failures));
        assert_eq!(a, vec![Action::OpenPort]);
        let a = h.give(Input::Port(Some(Session {
            port: 40000,
            id: 7,
            version: 7,
        })));
        assert!(
            matches!(&a[..], [Action::Respond { status, sdp: Some(_) }] if *status == StatusCode::OK),
            "{a:?}"
        );
        h
    }

    /// Answered and acknowledged: the IVR greets.
    fn talking() -> Harness {
        let mut h = Harness::answered(rules(), Failures::default());
        let a = h.sip(CallEvent::Ack);
        assert!(matches!(a.first(), Some(Action::StartMedia(_))), "{a:?}");
        assert!(plays(&a).contains(&PromptId::Welcome), "{a:?}");
        h
    }
}

fn plays(actions: &[Action]) -> Vec<PromptId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Play { prompts, .. } => Some(prompts.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn records(actions: &[Action]) -> Vec<(Stage, Outcome)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Record { stage, outcome, .. } => Some((*stage, *outcome)),
            _ => None,
        })
        .collect()
}

fn admit(room_id: i64, security: Option<String>) -> Decision {
    Decision::Admit {
        room_id: RoomId(room_id),
        meeting_id: None,
        security,
        invitee: None,
        host: false,
    }
}

#[test]
fn a_call_is_routed_counted_answered_and_greeted_after_the_ack() {
    let mut h = Harness::answered(rules(), Failures::default());
    assert!(!h.core.in_media(), "no media before the ACK");
    let a = h.sip(CallEvent::Ack);
    assert!(matches!(a.first(), Some(Action::StartMedia(n)) if n.codec == Codec::Pcmu));
    assert_eq!(
        plays(&a),
        vec![PromptId::Welcome, PromptId::EnterAccessCode]
    );
    assert!(h.core.plays_prompts());
}

#[test]
fn an_unprovisioned_number_gets_404_and_a_store_failure_503() {
    let mut h = Harness::with(rules());
    h.drain();
    let a = h.answer(Answer::Route(Ok(None)));
    assert_eq!(a, vec![Action::Refuse(Cause::UnknownNumber)]);
    assert!(h.core.is_done());
    // Fail closed: a number the store cannot route is not answered.
    let mut h = Harness::with(rules());
    h.drain();
    let a = h.answer(Answer::Route(Err(store_down())));
    assert_eq!(a, vec![Action::Refuse(Cause::StoreFailed)]);
    assert!(h.core.is_done());
}

#[test]
fn a_store_too_slow_before_answering_sheds_the_call_with_503() {
    let mut h = Harness::with(rules());
    h.drain();
    assert_eq!(h.core.poll_timeout(), Some(h.now + Duration::from_secs(2)));
    assert!(h.advance(Duration::from_millis(1999)).is_empty());
    let a = h.advance(Duration::from_millis(1));
    assert_eq!(a, vec![Action::Refuse(Cause::Shed(Shed::Store))]);
    assert!(h.core.is_done());
    // The answer that comes too late changes nothing.
    assert!(h.answer(routed(Failures::default())).is_empty());
}

#[test]
fn no_rtp_port_or_no_common_codec_refuse_before_answering() {
    let mut h = Harness::with(rules());
    h.drain();
    h.answer(routed(Failures::default()));
    let a = h.give(Input::Port(None));
    assert_eq!(a, vec![Action::Refuse(Cause::NoMediaPort)]);
    let mut r = rules();
    r.codecs = vec![Codec::Pcma];
    let mut h = Harness::with(r);
    h.drain();
    h.answer(routed(Failures::default()));
    let a = h.give(Input::Port(Some(Session {
        port: 40000,
        id: 1,
        version: 1,
    })));
    assert_eq!(a, vec![Action::Refuse(Cause::NoCommonCodec)]);
}

#[test]
fn an_answer_delay_rings_first_and_answers_when_it_is_over() {
    let mut r = rules();
    r.answer_delay = Duration::from_secs(3);
    let mut h = Harness::with(r);
    h.drain();
    h.answer(routed(Failures::default()));
    let a = h.give(Input::Port(Some(Session {
        port: 40000,
        id: 1,
        version: 1,
    })));
    assert_eq!(
        a,
        vec![Action::Respond {
            status: StatusCode::RINGING,
            sdp: None
        }]
    );
    // INFO while ringing is taken (200), a re-INVITE must wait (491).
    let a = h.sip(info(
        2,
        "application/dtmf-relay",
        b"Signal=5\r\nDuration=160\r\n",
    ));
    assert_eq!(
        a,
        vec![Action::RespondInfo {
            tx: tx(2),
            status: StatusCode::OK
        }]
    );
    let a = h.sip(reinvite(3, HOLD.as_bytes()));
    assert!(
        matches!(&a[..], [Action::RespondReinvite { status, .. }] if *status == StatusCode::REQUEST_PENDING)
    );
    assert!(h.advance(Duration::from_millis(2999)).is_empty());
    let a = h.advance(Duration::from_millis(1));
    assert!(
        matches!(&a[..], [Action::Respond { status, sdp: Some(_) }] if *status == StatusCode::OK)
    );
}

#[test]
fn a_caller_who_cancels_while_ringing_is_gone_without_an_answer() {
    let mut r = rules();
    r.answer_delay = Duration::from_secs(3);
    let mut h = Harness::with(r);
    h.drain();
    h.answer(routed(Failures::default()));
    h.give(Input::Port(Some(Session {
        port: 40000,
        id: 1,
        version: 1,
    })));
    assert!(h.sip(CallEvent::Cancelled).is_empty());
    assert!(h.core.is_done());
    assert!(h.advance(Duration::from_secs(5)).is_empty());
}

#[test]
fn without_an_ack_the_call_is_hung_up_and_no_media_starts() {
    let mut h = Harness::answered(rules(), Failures::default());
    let a = h.sip(CallEvent::AckTimeout);
    assert_eq!(a, vec![Action::Bye { cause: None }]);
    assert!(h.core.is_done());
    assert!(h.sip(CallEvent::Ack).is_empty());
}

#[test]
fn info_during_a_prompt_keys_a_digit_and_is_answered() {
    let mut h = Harness::talking();
    let a = h.sip(info(
        2,
        "application/dtmf-relay",
        b"Signal=5\r\nDuration=160\r\n",
    ));
    assert_eq!(
        a,
        vec![
            Action::InfoKey(Key::D5),
            Action::RespondInfo {
                tx: tx(2),
                status: StatusCode::OK
            }
        ]
    );
    // The key comes back from the merger and stops the prompt (barge-in).
    assert_eq!(h.give(Input::Key(Key::D5)), vec![Action::StopPlay]);
    // A body it cannot read gets 400, a type it does not take 415.
    let a = h.sip(info(3, "application/dtmf-relay", b"nonsense"));
    assert_eq!(
        a,
        vec![Action::RespondInfo {
            tx: tx(3),
            status: StatusCode::BAD_REQUEST
        }]
    );
    let a = h.sip(info(4, "text/plain", b"5"));
    assert_eq!(
        a,
        vec![Action::RespondInfo {
            tx: tx(4),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE
        }]
    );
}

#[test]
fn a_reinvite_in_the_ivr_puts_the_caller_on_hold_with_a_new_version() {
    let mut h = Harness::talking();
    let a = h.sip(reinvite(2, HOLD.as_bytes()));
    let [
        Action::Renegotiated { old, new, held },
        Action::RespondReinvite {
            status,
            sdp: Some(sdp),
            ..
        },
    ] = &a[..]
    else {
        panic!("{a:?}");
    };
    assert!(*held);
    assert_eq!(old.direction, Direction::SendRecv);
    assert_eq!(new.direction, Direction::SendOnly);
    assert_eq!(*status, StatusCode::OK);
    let sdp = String::from_utf8_lossy(sdp);
    assert!(
        sdp.contains("o=dialgate 7 8 IN IP4") || sdp.contains(" 7 8 IN IP4"),
        "{sdp}"
    );
    assert!(sdp.contains("a=recvonly"), "{sdp}");
    // The same offer again: the same answer, no change, the same version.
    let a = h.sip(reinvite(3, HOLD.as_bytes()));
    assert!(
        matches!(&a[..], [Action::RespondReinvite { status, sdp: Some(s), .. }]
            if *status == StatusCode::OK && String::from_utf8_lossy(s).contains(" 7 8 IN IP4")),
        "{a:?}"
    );
    // An offer it cannot take is refused and the session kept.
    let a = h.sip(reinvite(4, b"garbage"));
    assert!(
        matches!(&a[..], [Action::RespondReinvite { status, sdp: None, .. }] if status.0 >= 400)
    );
}

#[test]
fn a_right_code_is_resolved_counted_and_joined_with_the_rooms_settings() {
    let mut h = Harness::talking();
    let a = h.keys("1234#");
    assert!(
        matches!(a.last(), Some(Action::Ask(Ask::Resolve(code))) if code.as_str() == "1234"),
        "{a:?}"
    );
    let a = h.answer(Answer::Resolve(Ok(admit(9, None))));
    // The counts, and the room's settings with them.
    assert_eq!(
        a,
        vec![Action::Ask(Ask::Guess {
            failed: false,
            room: Some(RoomId(9))
        })]
    );
    h.now += Duration::from_millis(30);
    let policy = Policy {
        wait_for_host: true,
        ..Policy::default()
    };
    let a = h.answer(Answer::Guess(Ok(Guessed {
        failures: Failures::default(),
        policy: Some(policy),
    })));
    assert!(a.contains(&Action::Record {
        stage: Stage::Access,
        outcome: Outcome::Admitted,
        room_id: Some(RoomId(9)),
        latency: Some(Duration::from_millis(30)),
    }));
    assert!(h.core.plays_prompts(), "the joining prompt first");
    let a = h.finish_play(&a);
    assert!(a.contains(&Action::Join {
        room_id: RoomId(9),
        host: false,
        policy: Some(policy),
        back: None,
    }));
    assert!(!h.core.plays_prompts(), "the room's mix takes over");
    assert!(h.give(Input::Joined(Ok(()))).is_empty());
    // Keys in the room are keypad commands; a participant's host command is ignored.
    assert!(h.keys("*6").contains(&Action::Room(Command::ToggleMute)));
    assert!(h.keys("*7").is_empty());
    // The caller leaves: counted as admitted.
    let a = h.sip(CallEvent::Bye { reason: None });
    assert_eq!(
        a,
        vec![Action::MediaEnded {
            outcome: "admitted"
        }]
    );
    assert!(h.core.is_done());
}

#[test]
fn hanging_up_during_a_lookup_records_the_abandoned_attempt_and_ignores_the_late_answer() {
    let mut h = Harness::talking();
    h.keys("1234#");
    let a = h.sip(CallEvent::Bye { reason: None });
    assert_eq!(
        a[0],
        Action::MediaEnded {
            outcome: "abandoned"
        }
    );
    assert_eq!(records(&a), vec![(Stage::Access, Outcome::Abandoned)]);
    assert!(h.core.is_done());
    assert!(h.answer(Answer::Resolve(Ok(admit(9, None)))).is_empty());
}

#[test]
fn a_failed_code_lookup_refuses_the_code_and_a_failed_count_admits_with_the_rooms_defaults() {
    // Fail closed for the code.
    let mut h = Harness::talking();
    h.keys("1234#");
    let a = h.answer(Answer::Resolve(Err(store_down())));
    let a = h.count_failed(&a);
    assert_eq!(records(&a), vec![(Stage::Access, Outcome::Wrong)]);
    // Fail open for the count, and the room's settings read with it: the
    // code was right, no lockout is applied and the room's defaults hold.
    let mut h = Harness::talking();
    h.keys("1234#");
    let a = h.check(Ok(admit(9, None)), Err(store_down()));
    assert_eq!(records(&a), vec![(Stage::Access, Outcome::Admitted)]);
    let a = h.finish_play(&a);
    assert!(a.contains(&Action::Join {
        room_id: RoomId(9),
        host: false,
        policy: Some(Policy::default()),
        back: None,
    }));
}

#[test]
fn a_caller_past_the_lockout_limit_is_refused_locked_and_never_told_the_codes_verdict() {
    let locked = Failures {
        caller_id: LockoutPolicy::default().attempts,
        ..Failures::default()
    };
    for decision in [admit(9, None), Decision::Refuse(Outcome::Wrong)] {
        let mut h = Harness::talking();
        h.keys("1234#");
        let a = h.check(Ok(decision), Ok(locked));
        assert!(!a.iter().any(|x| matches!(x, Action::Ask(_))), "{a:?}");
        assert_eq!(records(&a), vec![(Stage::Access, Outcome::Locked)]);
    }
    // Locked before the answer too: the IVR says so and hangs up.
    let mut h = Harness::answered(rules(), locked);
    let a = h.sip(CallEvent::Ack);
    assert!(plays(&a).contains(&PromptId::TooManyAttempts), "{a:?}");
}

#[test]
fn a_probed_number_slows_each_verdict_by_two_seconds() {
    let probed = Failures {
        number: LockoutPolicy::default().number_alarm,
        ..Failures::default()
    };
    // A wrong code: refused two seconds later.
    let mut h = Harness::talking();
    h.keys("1234#");
    assert!(
        h.check(Ok(Decision::Refuse(Outcome::Wrong)), Ok(probed))
            .is_empty()
    );
    assert_eq!(h.core.poll_timeout(), Some(h.now + PROBED_NUMBER_DELAY));
    assert!(
        h.advance(PROBED_NUMBER_DELAY - Duration::from_millis(1))
            .is_empty()
    );
    let a = h.advance(Duration::from_millis(1));
    assert_eq!(records(&a), vec![(Stage::Access, Outcome::Wrong)]);
    // A right one: admitted two seconds later.
    let mut h = Harness::talking();
    h.keys("1234#");
    assert!(h.check(Ok(admit(9, None)), Ok(probed)).is_empty());
    let a = h.advance(PROBED_NUMBER_DELAY);
    assert_eq!(records(&a), vec![(Stage::Access, Outcome::Admitted)]);
}

#[test]
fn a_security_code_is_verified_against_the_grant_and_the_settings_read_at_the_join() {
    let secret = Secret::from_key(SECRET);
    let hash = secret.hash(SECURITY, "4321");
    let mut h = Harness::talking();
    h.keys("1234#");
    let a = h.check(Ok(admit(9, Some(hash))), Ok(Failures::default()));
    assert!(plays(&a).contains(&PromptId::EnterSecurityCode), "{a:?}");
    assert_eq!(records(&a), vec![]);
    // Wrong first: counted as a failure, refused without reading anything more.
    let a = h.keys("1111#");
    let a = h.count_failed(&a);
    assert_eq!(records(&a), vec![(Stage::Security, Outcome::Wrong)]);
    // Right: the settings are read with the counts, then the join.
    let a = h.keys("4321#");
    assert_eq!(
        a.last(),
        Some(&Action::Ask(Ask::Guess {
            failed: false,
            room: Some(RoomId(9))
        }))
    );
    let policy = Policy {
        host_admits: true,
        ..Policy::default()
    };
    let a = h.answer(Answer::Guess(Ok(Guessed {
        failures: Failures::default(),
        policy: Some(policy),
    })));
    assert!(records(&a).contains(&(Stage::Security, Outcome::Admitted)));
    let a = h.finish_play(&a);
    assert!(
        a.iter().any(|x| matches!(
            x,
            Action::Join {
                room_id: RoomId(9),
                policy: Some(p),
                ..
            } if *p == policy
        )),
        "{a:?}"
    );
}

#[test]
fn a_revoked_invitee_is_refused_at_the_security_code_even_when_the_store_fails() {
    for valid in [Ok(false), Err(store_down())] {
        let secret = Secret::from_key(SECRET);
        let mut h = Harness::talking();
        h.keys("1234#");
        let decision = Decision::Admit {
            room_id: RoomId(9),
            meeting_id: Some(MeetingId(3)),
            security: Some(secret.hash(SECURITY, "4321")),
            invitee: Some(InviteeId(11)),
            host: false,
        };
        h.check(Ok(decision), Ok(Failures::default()));
        let a = h.keys("4321#");
        assert_eq!(a.last(), Some(&Action::Ask(Ask::Invitee(InviteeId(11)))));
        let a = h.answer(Answer::Invitee(valid));
        let a = h.count_failed(&a);
        assert_eq!(records(&a), vec![(Stage::Security, Outcome::Revoked)]);
    }
}

#[test]
fn silence_past_the_rtp_timeout_hangs_up_with_408_and_media_resets_it() {
    let mut h = Harness::talking();
    h.now += Duration::from_secs(20);
    assert!(h.give(Input::Media).is_empty());
    assert!(
        h.advance(Duration::from_secs(29))
            .iter()
            .all(|a| !matches!(a, Action::Bye { .. }))
    );
    let a = h.advance(Duration::from_secs(1));
    assert_eq!(
        a[0],
        Action::MediaEnded {
            outcome: "media_timeout"
        }
    );
    assert!(a.contains(&Action::Bye {
        cause: Some(Cause::RtpTimeout)
    }));
    // Then the BYE's answer ends it.
    assert!(h.sip(CallEvent::Ended).is_empty());
    assert!(h.core.is_done());
}

#[test]
fn a_room_that_turns_the_caller_away_plays_why_then_hangs_up() {
    let mut h = Harness::talking();
    h.keys("1234#");
    let a = h.check(Ok(admit(9, None)), Ok(Failures::default()));
    h.finish_play(&a);
    let a = h.give(Input::Joined(Err(Refusal::Full)));
    assert_eq!(
        a[0],
        Action::MediaEnded {
            outcome: "room_full"
        }
    );
    assert_eq!(plays(&a), vec![PromptId::ConferenceFull]);
    assert!(h.core.plays_prompts());
    // A re-INVITE while it closes must wait; INFO is taken.
    let a = h.sip(reinvite(5, HOLD.as_bytes()));
    assert!(
        matches!(&a[..], [Action::RespondReinvite { status, .. }] if *status == StatusCode::REQUEST_PENDING)
    );
    let a = h.give(Input::PlayDone(CLOSING_PLAY));
    assert_eq!(
        a,
        vec![Action::Bye {
            cause: Some(Cause::RoomFull)
        }]
    );
    // While the BYE is out, INFO gets 481; 40 s without an answer ends it.
    let a = h.sip(info(6, "application/dtmf-relay", b"Signal=1\r\n"));
    assert_eq!(
        a,
        vec![Action::RespondInfo {
            tx: tx(6),
            status: StatusCode::CALL_DOES_NOT_EXIST
        }]
    );
    h.advance(BYE_WAIT);
    assert!(h.core.is_done());
}

#[test]
fn a_closing_prompt_plays_ten_seconds_at_most() {
    let mut h = Harness::talking();
    h.keys("1234#");
    let a = h.check(Ok(admit(9, None)), Ok(Failures::default()));
    h.finish_play(&a);
    h.give(Input::Joined(Ok(())));
    let a = h.give(Input::Presence(Presence::Ended));
    assert_eq!(plays(&a), vec![PromptId::ConferenceEnded]);
    let a = h.advance(CLOSING_PROMPT_LIMIT);
    assert_eq!(
        a,
        vec![Action::Bye {
            cause: Some(Cause::RoomEnded)
        }]
    );
}

#[test]
fn three_wrong_codes_hang_up_with_the_outcome() {
    let mut h = Harness::talking();
    let mut all = Vec::new();
    for _ in 0..3 {
        h.keys("1111#");
        all.extend(h.check(
            Ok(Decision::Refuse(Outcome::Wrong)),
            Ok(Failures::default()),
        ));
        // The "wrong code" prompt finishes; the next attempt may start.
        if let Some(id) = all.iter().rev().find_map(|a| match a {
            Action::Play { id, .. } => Some(*id),
            _ => None,
        }) {
            all.extend(h.give(Input::PlayDone(id)));
        }
    }
    assert_eq!(records(&all).len(), 3);
    assert!(
        all.iter()
            .any(|a| matches!(a, Action::MediaEnded { outcome: "wrong" })),
        "{all:?}"
    );
    assert!(
        all.contains(&Action::Bye {
            cause: Some(Cause::Access(Outcome::Wrong))
        }),
        "{all:?}"
    );
}

// ---- a leg from the node that collected the code ----

/// The standing of the leg's caller in the room on its previous owner.
const MOVED: Standing = Standing {
    muted: true,
    admitted: true,
    locked: false,
};

fn leg_harness(rules: Rules) -> Harness {
    let offer = Offer {
        content_type: Some("application/sdp".into()),
        body: OFFER.as_bytes().to_vec(),
    };
    let grant = LegGrant {
        room_id: RoomId(42),
        host: true,
        back: Some(MOVED),
    };
    Harness {
        core: CallCore::for_leg(Arc::new(rules), offer, grant),
        now: Instant::now(),
    }
}

/// A leg answered (its port open, 200 sent), not acknowledged yet.
fn leg_answered() -> Harness {
    let mut h = leg_harness(rules());
    h.drain();
    h.give(Input::Port(Some(Session {
        port: 40000,
        id: 1,
        version: 1,
    })));
    h
}

/// A leg acknowledged and in its room.
fn leg_in_room() -> Harness {
    let mut h = leg_answered();
    h.sip(CallEvent::Ack);
    h.give(Input::Joined(Ok(())));
    h
}

#[test]
fn a_leg_is_answered_at_once_and_its_ack_puts_it_in_the_room_with_no_prompt() {
    // Even with an answer delay: the caller heard its ringing on the node
    // that collected the code.
    let mut rules = rules();
    rules.answer_delay = Duration::from_secs(3);
    let mut h = leg_harness(rules);
    assert_eq!(h.drain(), vec![Action::OpenPort], "no route, no count");
    let session = Session {
        port: 40000,
        id: 1,
        version: 1,
    };
    let a = h.give(Input::Port(Some(session)));
    assert!(
        matches!(&a[..], [Action::Respond { status, sdp: Some(_) }] if *status == StatusCode::OK),
        "{a:?}"
    );
    let a = h.sip(CallEvent::Ack);
    assert!(matches!(a[0], Action::StartMedia(_)), "{a:?}");
    assert_eq!(
        a[1..],
        [Action::Join {
            room_id: RoomId(42),
            host: true,
            policy: None,
            back: Some(MOVED),
        }]
    );
    assert!(!h.core.plays_prompts());
    assert!(h.give(Input::Joined(Ok(()))).is_empty());
    // The host's keypad works in the room.
    let a = h.give(Input::Key(Key::Star));
    assert!(a.is_empty());
    let a = h.give(Input::Key(Key::D5));
    assert_eq!(a, vec![Action::Room(Command::ToggleLock)]);
}

/// An INFO of the member package (RFC 6086) with `body`.
fn member_info(n: u32, body: &str) -> CallEvent {
    CallEvent::Info {
        tx: tx(n),
        package: Some(MEMBER_PACKAGE.into()),
        content_type: "text/plain".into(),
        body: body.as_bytes().to_vec(),
    }
}

fn info_status(a: &[Action]) -> StatusCode {
    a.iter()
        .find_map(|a| match a {
            Action::RespondInfo { status, .. } => Some(*status),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no answer to the INFO: {a:?}"))
}

#[test]
fn the_node_that_placed_a_leg_mutes_admits_and_locks_through_member_infos() {
    // Before the ACK the leg is in no room yet: asked again later.
    let mut h = leg_answered();
    let a = h.sip(member_info(1, "mute=1\r\n"));
    assert_eq!(info_status(&a), StatusCode::REQUEST_PENDING, "{a:?}");
    let mut h = leg_in_room();
    for (n, body, info) in [
        (2, "mute=1\r\n", MemberInfo::Mute(true)),
        (3, "admit=1\r\n", MemberInfo::Admit),
        (4, "lock=0\r\n", MemberInfo::Lock(false)),
    ] {
        let a = h.sip(member_info(n, body));
        assert_eq!(a[0], Action::Member(info), "{a:?}");
        assert_eq!(info_status(&a), StatusCode::OK);
    }
    // A report goes the other way; a body the package does not know.
    let a = h.sip(member_info(
        5,
        "presence=in_room\r\nmuted=0\r\nlocked=0\r\n",
    ));
    assert_eq!(info_status(&a), StatusCode::BAD_REQUEST, "{a:?}");
    let a = h.sip(member_info(6, "volume=11\r\n"));
    assert_eq!(info_status(&a), StatusCode::BAD_REQUEST, "{a:?}");
}

#[test]
fn a_caller_sending_the_member_package_is_told_it_was_never_offered() {
    let mut h = Harness::talking();
    let a = h.sip(member_info(1, "mute=1\r\n"));
    assert_eq!(
        a,
        vec![Action::RespondInfo {
            tx: tx(1),
            status: StatusCode::BAD_INFO_PACKAGE
        }]
    );
}

#[test]
fn a_leg_whose_room_ends_hangs_up_without_a_closing_prompt() {
    let mut h = leg_in_room();
    let a = h.give(Input::Presence(Presence::Ended));
    assert!(
        !a.iter().any(|a| matches!(a, Action::Play { .. })),
        "the caller's node says it: {a:?}"
    );
    assert!(a.contains(&Action::Bye {
        cause: Some(Cause::RoomEnded)
    }));
}

#[test]
fn a_leg_in_a_room_handed_on_hangs_up_as_shutting_down_and_other_calls_ignore_it() {
    let mut h = leg_in_room();
    let a = h.give(Input::HandedOn);
    assert!(
        a.iter().any(|a| matches!(a, Action::MediaEnded { .. })),
        "{a:?}"
    );
    assert!(a.contains(&Action::Bye {
        cause: Some(Cause::ShuttingDown)
    }));
    assert!(!a.iter().any(|a| matches!(a, Action::Play { .. })), "{a:?}");
    let mut h = Harness::talking();
    assert!(h.give(Input::HandedOn).is_empty());
}
