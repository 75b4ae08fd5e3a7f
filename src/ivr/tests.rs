//! IVR paths with simulated time: nothing here sleeps.

use super::*;
use crate::ids::RoomId;

const T0_OFFSET: Duration = Duration::from_secs(1000);

struct Harness {
    m: Machine,
    now: Instant,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(IvrConfig::default())
    }

    fn with(config: IvrConfig) -> Harness {
        Harness {
            m: Machine::new(config),
            now: Instant::now() + T0_OFFSET,
        }
    }

    fn drain(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.m.poll_action()).collect()
    }

    fn keys(&mut self, s: &str) -> Vec<Action> {
        for c in s.chars() {
            self.now += Duration::from_millis(200);
            let key = Key::from_char(c).expect("test key");
            self.m.handle(self.now, Event::Digit(key));
        }
        self.drain()
    }

    fn advance(&mut self, d: Duration) -> Vec<Action> {
        self.now += d;
        if let Some(deadline) = self.m.poll_timeout()
            && self.now >= deadline
        {
            self.m.handle_timeout(self.now);
        }
        self.drain()
    }

    fn finish_play(&mut self, actions: &[Action]) -> Vec<Action> {
        let id = last_play(actions).expect("a Play action");
        self.m.handle(self.now, Event::PlayDone(id));
        self.drain()
    }

    fn lookup(&mut self, result: LookupResult) -> Vec<Action> {
        self.m.handle(self.now, Event::Lookup(result));
        self.drain()
    }
}

fn last_play(actions: &[Action]) -> Option<PlayId> {
    actions.iter().rev().find_map(|a| match a {
        Action::Play { id, .. } => Some(*id),
        _ => None,
    })
}

fn looked_up(actions: &[Action]) -> Option<String> {
    actions.iter().find_map(|a| match a {
        Action::Lookup(code) => Some(code.as_str().to_owned()),
        _ => None,
    })
}

fn prompts_of(actions: &[Action]) -> Vec<PromptId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Play { prompts, .. } => Some(prompts.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn greets_with_welcome_then_code_prompt() {
    let mut h = Harness::new();
    let a = h.drain();
    assert_eq!(
        prompts_of(&a),
        vec![PromptId::Welcome, PromptId::EnterAccessCode]
    );
    assert_eq!(h.m.poll_timeout(), None, "no timer while the prompt plays");
}

#[test]
fn digit_during_prompt_is_kept_and_stops_the_prompt() {
    let mut h = Harness::new();
    h.drain();
    let a = h.keys("1");
    assert_eq!(a, vec![Action::StopPlay]);
    let a = h.keys("23#");
    assert_eq!(looked_up(&a).as_deref(), Some("123"));
}

#[test]
fn leading_zeros_are_kept() {
    let mut h = Harness::new();
    h.drain();
    let a = h.keys("000123#");
    assert_eq!(looked_up(&a).as_deref(), Some("000123"));
}

#[test]
fn star_clears_the_entry_and_reprompts() {
    let mut h = Harness::new();
    h.drain();
    let a = h.keys("99*");
    assert_eq!(prompts_of(&a), vec![PromptId::EnterAccessCode]);
    let a = h.keys("42#");
    assert_eq!(looked_up(&a).as_deref(), Some("42"));
}

#[test]
fn pound_on_empty_entry_reprompts_without_counting_an_attempt() {
    let mut h = Harness::with(IvrConfig {
        max_attempts: 1,
        ..IvrConfig::default()
    });
    h.drain();
    let a = h.keys("#");
    assert_eq!(prompts_of(&a), vec![PromptId::EnterAccessCode]);
    assert!(!a.iter().any(|x| matches!(x, Action::Attempt { .. })));
}

#[test]
fn first_digit_timeout_starts_after_the_prompt_finishes() {
    let mut h = Harness::new();
    let a = h.drain();
    // A long prompt: 30 s pass, no timeout because it is still playing.
    assert!(h.advance(Duration::from_secs(30)).is_empty());
    h.finish_play(&a);
    assert!(h.advance(Duration::from_millis(9_999)).is_empty());
    let a = h.advance(Duration::from_millis(1));
    assert!(a.contains(&Action::Attempt {
        stage: Stage::Access,
        outcome: Outcome::Timeout
    }));
    assert_eq!(prompts_of(&a), vec![PromptId::EnterAccessCode]);
}

#[test]
fn inter_digit_timeout_is_separate_and_shorter() {
    let mut h = Harness::new();
    let a = h.drain();
    h.finish_play(&a);
    h.keys("12");
    assert!(h.advance(Duration::from_millis(4_999)).is_empty());
    let a = h.advance(Duration::from_millis(1));
    assert!(a.contains(&Action::Attempt {
        stage: Stage::Access,
        outcome: Outcome::Timeout
    }));
}

#[test]
fn each_digit_restarts_the_inter_digit_timer() {
    let mut h = Harness::new();
    let a = h.drain();
    h.finish_play(&a);
    for _ in 0..5 {
        h.keys("1");
        assert!(h.advance(Duration::from_secs(4)).is_empty());
    }
    let a = h.keys("#");
    assert_eq!(looked_up(&a).as_deref(), Some("11111"));
}

#[test]
fn right_code_joins_after_the_joining_prompt() {
    let mut h = Harness::new();
    h.drain();
    h.keys("123456789#");
    let a = h.lookup(LookupResult::Admitted { room_id: RoomId(7) });
    assert!(a.contains(&Action::Attempt {
        stage: Stage::Access,
        outcome: Outcome::Admitted
    }));
    assert_eq!(prompts_of(&a), vec![PromptId::Joining]);
    let a = h.finish_play(&a);
    assert_eq!(a, vec![Action::Join { room_id: RoomId(7) }]);
    assert!(h.m.is_in_room());
}

#[test]
fn wrong_code_three_times_says_goodbye_and_hangs_up() {
    let mut h = Harness::new();
    h.drain();
    for attempt in 1..=3 {
        h.keys("555#");
        let a = h.lookup(LookupResult::Refused(Outcome::Wrong));
        if attempt < 3 {
            assert_eq!(
                prompts_of(&a),
                vec![PromptId::InvalidCode, PromptId::EnterAccessCode]
            );
        } else {
            assert_eq!(
                prompts_of(&a),
                vec![PromptId::InvalidCode, PromptId::Goodbye]
            );
            let a = h.finish_play(&a);
            assert_eq!(a, vec![Action::Hangup(Outcome::Wrong)]);
        }
    }
    assert!(h.m.is_done());
}

#[test]
fn attempt_limit_is_configurable() {
    let mut h = Harness::with(IvrConfig {
        max_attempts: 1,
        ..IvrConfig::default()
    });
    h.drain();
    h.keys("5#");
    let a = h.lookup(LookupResult::Refused(Outcome::Wrong));
    assert!(prompts_of(&a).contains(&PromptId::Goodbye));
}

#[test]
fn digits_typed_during_lookup_and_invalid_prompt_are_kept() {
    let mut h = Harness::new();
    h.drain();
    h.keys("555#");
    // Type-ahead while the store is being asked.
    assert!(h.keys("12").is_empty());
    let a = h.lookup(LookupResult::Refused(Outcome::Wrong));
    // The first typed-ahead key barges into the "invalid" prompt.
    assert_eq!(a.last(), Some(&Action::StopPlay));
    let a = h.keys("3#");
    assert_eq!(looked_up(&a).as_deref(), Some("123"));
}

#[test]
fn late_play_done_for_a_stopped_prompt_is_ignored() {
    let mut h = Harness::new();
    let first = h.drain();
    h.keys("1");
    h.finish_play(&first);
    // The stale PlayDone must not arm the first-digit timer over the inter-digit one.
    assert_eq!(
        h.m.poll_timeout(),
        Some(h.now + IvrConfig::default().inter_digit_timeout)
    );
}

#[test]
fn hangup_during_entry_is_logged_as_abandoned() {
    let mut h = Harness::new();
    h.drain();
    h.keys("12");
    h.m.handle(h.now, Event::CallerGone);
    assert_eq!(
        h.drain(),
        vec![Action::Attempt {
            stage: Stage::Access,
            outcome: Outcome::Abandoned
        }]
    );
    assert!(h.m.is_done());
}

#[test]
fn overlong_entry_is_submitted_and_refused_not_grown_forever() {
    let mut h = Harness::new();
    h.drain();
    let a = h.keys(&"9".repeat(MAX_CODE_LEN));
    assert_eq!(looked_up(&a).map(|c| c.len()), Some(MAX_CODE_LEN));
}

#[test]
fn keys_a_to_d_neither_stop_the_prompt_nor_count() {
    let mut h = Harness::new();
    let first = h.drain();
    assert!(h.keys("A").is_empty(), "A does not barge in");
    // The prompt still finishes and arms the first-digit timer.
    h.finish_play(&first);
    assert_eq!(
        h.m.poll_timeout(),
        Some(h.now + IvrConfig::default().first_digit_timeout)
    );
    let a = h.keys("1B2#");
    assert_eq!(looked_up(&a).as_deref(), Some("12"));
}

#[test]
fn not_started_and_ended_have_their_own_prompts_and_count_as_failures() {
    let mut h = Harness::with(IvrConfig {
        max_attempts: 2,
        ..IvrConfig::default()
    });
    h.drain();
    h.keys("123#");
    let a = h.lookup(LookupResult::Refused(Outcome::NotStarted));
    assert!(a.contains(&Action::Attempt {
        stage: Stage::Access,
        outcome: Outcome::NotStarted
    }));
    assert_eq!(
        prompts_of(&a),
        vec![PromptId::NotStarted, PromptId::EnterAccessCode]
    );
    h.keys("123#");
    let a = h.lookup(LookupResult::Refused(Outcome::Ended));
    assert_eq!(
        prompts_of(&a),
        vec![PromptId::MeetingEnded, PromptId::Goodbye]
    );
    assert_eq!(h.finish_play(&a), vec![Action::Hangup(Outcome::Ended)]);
}

#[test]
fn security_code_is_asked_after_a_right_access_code_and_admits() {
    let mut h = Harness::new();
    h.drain();
    h.keys("777#");
    let a = h.lookup(LookupResult::NeedSecurity { room_id: RoomId(4) });
    assert!(
        !a.iter().any(|x| matches!(x, Action::Attempt { .. })),
        "the access stage logs nothing yet"
    );
    assert_eq!(prompts_of(&a), vec![PromptId::EnterSecurityCode]);
    assert_eq!(h.m.stage(), Stage::Security);
    let a = h.keys("0042#");
    assert_eq!(
        a.iter().find_map(|x| match x {
            Action::VerifySecurity(c) => Some(c.as_str().to_owned()),
            _ => None,
        }),
        Some("0042".to_owned())
    );
    let a = h.lookup(LookupResult::Admitted { room_id: RoomId(0) });
    assert!(a.contains(&Action::Attempt {
        stage: Stage::Security,
        outcome: Outcome::Admitted
    }));
    let a = h.finish_play(&a);
    assert_eq!(
        a,
        vec![Action::Join { room_id: RoomId(4) }],
        "the room comes from the access code"
    );
}

#[test]
fn wrong_security_code_has_its_own_counter_then_goodbye() {
    let mut h = Harness::with(IvrConfig {
        max_attempts: 2,
        ..IvrConfig::default()
    });
    h.drain();
    // One wrong access code first: it must not eat into the security attempts.
    h.keys("1#");
    h.lookup(LookupResult::Refused(Outcome::Wrong));
    h.keys("777#");
    h.lookup(LookupResult::NeedSecurity { room_id: RoomId(4) });
    h.keys("9#");
    let a = h.lookup(LookupResult::Refused(Outcome::Wrong));
    assert!(a.contains(&Action::Attempt {
        stage: Stage::Security,
        outcome: Outcome::Wrong
    }));
    assert_eq!(
        prompts_of(&a),
        vec![PromptId::InvalidCode, PromptId::EnterSecurityCode]
    );
    h.keys("9#");
    let a = h.lookup(LookupResult::Refused(Outcome::Wrong));
    assert_eq!(
        prompts_of(&a),
        vec![PromptId::InvalidCode, PromptId::Goodbye]
    );
    assert_eq!(h.finish_play(&a), vec![Action::Hangup(Outcome::Wrong)]);
}

#[test]
fn security_stage_timeout_and_star_reprompt_for_the_security_code() {
    let mut h = Harness::new();
    h.drain();
    h.keys("777#");
    let _ = h.lookup(LookupResult::NeedSecurity { room_id: RoomId(4) });
    let a = h.keys("12*");
    assert_eq!(prompts_of(&a), vec![PromptId::EnterSecurityCode]);
    h.finish_play(&a);
    let a = h.advance(IvrConfig::default().first_digit_timeout);
    assert!(a.contains(&Action::Attempt {
        stage: Stage::Security,
        outcome: Outcome::Timeout
    }));
    assert_eq!(prompts_of(&a), vec![PromptId::EnterSecurityCode]);
}

#[test]
fn a_locked_caller_hears_too_many_attempts_and_is_hung_up_without_a_code() {
    let mut m = Machine::locked(IvrConfig::default());
    let a: Vec<Action> = std::iter::from_fn(|| m.poll_action()).collect();
    assert_eq!(
        a[0],
        Action::Attempt {
            stage: Stage::Access,
            outcome: Outcome::Locked
        }
    );
    assert_eq!(
        prompts_of(&a),
        vec![PromptId::TooManyAttempts, PromptId::Goodbye]
    );
    assert!(!a.iter().any(|x| matches!(x, Action::Lookup(_))));
    let id = last_play(&a).unwrap();
    m.handle(Instant::now(), Event::Digit(Key::D1));
    m.handle(Instant::now(), Event::PlayDone(id));
    let a: Vec<Action> = std::iter::from_fn(|| m.poll_action()).collect();
    assert_eq!(a, vec![Action::Hangup(Outcome::Locked)]);
}

#[test]
fn a_lockout_during_entry_ends_the_call_even_with_attempts_left() {
    let mut h = Harness::new();
    h.drain();
    h.keys("1#");
    let a = h.lookup(LookupResult::Refused(Outcome::Locked));
    assert_eq!(
        prompts_of(&a),
        vec![PromptId::TooManyAttempts, PromptId::Goodbye]
    );
    assert_eq!(h.finish_play(&a), vec![Action::Hangup(Outcome::Locked)]);
}
