//! The bridge's decisions on simulated time.

use super::*;

fn holder(instance: &str) -> Holder {
    Holder {
        node_id: "edge-a".into(),
        instance: instance.into(),
        sip_address: "127.0.0.2:5060".into(),
        epoch: 4,
    }
}

struct Harness {
    core: BridgeCore,
    now: Instant,
}

impl Harness {
    fn new() -> Harness {
        let now = Instant::now();
        let mut h = Harness {
            core: BridgeCore::new(now),
            now,
        };
        assert_eq!(h.drain(), vec![Do::Claim]);
        h
    }

    fn drain(&mut self) -> Vec<Do> {
        std::iter::from_fn(|| self.core.poll()).collect()
    }

    fn lease(&mut self, lease: Lease) -> Vec<Do> {
        self.core.on_lease(self.now, lease);
        self.drain()
    }

    fn advance(&mut self, d: Duration) -> Vec<Do> {
        self.now += d;
        while let Some(at) = self.core.poll_timeout() {
            if at > self.now {
                break;
            }
            self.core.handle_timeout(self.now);
        }
        self.drain()
    }

    /// Claims, finds `instance` holding the room, and gets the leg answered.
    fn up(&mut self, instance: &str) {
        assert_eq!(
            self.lease(Lease::Elsewhere(holder(instance))),
            vec![Do::Invite(holder(instance))]
        );
        self.core.on_answered(self.now);
        assert_eq!(self.drain(), vec![Do::Up]);
        assert!(self.core.is_up());
    }
}

#[test]
fn a_room_held_here_or_by_nobody_is_joined_here() {
    for lease in [Lease::Ours, Lease::Unknown] {
        let mut h = Harness::new();
        assert_eq!(h.lease(lease), vec![Do::JoinHere]);
        assert!(h.core.is_over());
        assert_eq!(h.core.poll_timeout(), None);
    }
}

#[test]
fn a_leg_unanswered_in_its_limit_is_cancelled_and_the_caller_joins_here() {
    let mut h = Harness::new();
    assert_eq!(
        h.lease(Lease::Elsewhere(holder("p1"))),
        vec![Do::Invite(holder("p1"))]
    );
    assert!(
        h.advance(LEG_ANSWER_LIMIT - Duration::from_millis(1))
            .is_empty()
    );
    assert_eq!(
        h.advance(Duration::from_millis(1)),
        vec![Do::Bye, Do::JoinHere]
    );
    // Its answer, late, changes nothing.
    h.core.on_answered(h.now);
    assert!(h.drain().is_empty());
    assert!(h.core.is_over());
}

#[test]
fn an_owner_not_ready_is_asked_again_three_times_then_the_caller_joins_here() {
    let mut h = Harness::new();
    h.lease(Lease::Elsewhere(holder("p1")));
    for _ in 0..LEG_RETRIES {
        h.core.on_refused(h.now, 503);
        assert!(h.drain().is_empty(), "waits before asking again");
        assert_eq!(h.advance(LEG_RETRY_AFTER), vec![Do::Claim]);
        assert_eq!(
            h.lease(Lease::Elsewhere(holder("p1"))),
            vec![Do::Invite(holder("p1"))]
        );
    }
    h.core.on_refused(h.now, 503);
    assert_eq!(h.drain(), vec![Do::JoinHere]);
}

#[test]
fn a_refusal_other_than_503_joins_here_at_once() {
    for status in [403, 486, 488, 408] {
        let mut h = Harness::new();
        h.lease(Lease::Elsewhere(holder("p1")));
        h.core.on_refused(h.now, status);
        assert_eq!(h.drain(), vec![Do::JoinHere], "{status}");
    }
}

#[test]
fn media_keeps_a_leg_up_and_one_silent_second_asks_the_owner_again() {
    let mut h = Harness::new();
    h.up("p1");
    // Media every 20 ms for 3 s: the leg stays.
    for _ in 0..150 {
        assert!(h.advance(Duration::from_millis(20)).is_empty());
        h.core.on_media(h.now);
    }
    assert!(h.core.is_up());
    // Then nothing for LEG_SILENCE.
    assert_eq!(h.advance(LEG_SILENCE), vec![Do::Bye, Do::Claim]);
    // The same owner, which answers: a stall, not a death.
    h.up("p1");
}

#[test]
fn an_owner_silent_then_unanswering_is_avoided_while_its_lease_lasts() {
    let mut h = Harness::new();
    h.up("p1");
    assert_eq!(h.advance(LEG_SILENCE), vec![Do::Bye, Do::Claim]);
    h.lease(Lease::Elsewhere(holder("p1")));
    assert_eq!(h.advance(LEG_ANSWER_LIMIT), vec![Do::Bye, Do::JoinHere]);
    assert!(h.core.is_over());
}

#[test]
fn an_owner_silent_twice_in_a_row_is_not_asked_a_third_time() {
    let mut h = Harness::new();
    h.up("p1");
    h.advance(LEG_SILENCE);
    h.up("p1");
    assert_eq!(h.advance(LEG_SILENCE), vec![Do::Bye, Do::Claim]);
    assert_eq!(h.lease(Lease::Elsewhere(holder("p1"))), vec![Do::JoinHere]);
}

#[test]
fn after_a_silence_a_new_owner_is_bridged_to() {
    let mut h = Harness::new();
    h.up("p1");
    h.advance(LEG_SILENCE);
    // Another node took the room meanwhile.
    h.up("p2");
}

#[test]
fn a_new_session_places_the_leg_again_and_the_owners_bye_ends_the_bridge() {
    let mut h = Harness::new();
    h.up("p1");
    h.core.renegotiated(h.now);
    assert_eq!(h.drain(), vec![Do::Bye, Do::Claim]);
    h.up("p1");
    assert!(h.core.on_owner_bye());
    assert!(h.core.is_over());
    assert!(!h.core.on_owner_bye(), "told once");
}

#[test]
fn closing_hangs_up_a_leg_placed_or_up_and_nothing_else() {
    let mut h = Harness::new();
    h.lease(Lease::Elsewhere(holder("p1")));
    h.core.close();
    assert_eq!(h.drain(), vec![Do::Bye]);
    let mut h = Harness::new();
    h.core.close();
    assert!(h.drain().is_empty(), "a claim under way has no leg yet");
    assert!(h.core.is_over());
}

#[test]
fn a_claim_the_store_does_not_answer_in_time_joins_here() {
    let mut h = Harness::new();
    assert!(
        h.advance(LEG_CLAIM_LIMIT - Duration::from_millis(1))
            .is_empty()
    );
    assert_eq!(h.advance(Duration::from_millis(1)), vec![Do::JoinHere]);
    // Its late answer changes nothing.
    assert!(h.lease(Lease::Elsewhere(holder("p1"))).is_empty());
}

#[test]
fn ten_seconds_of_media_after_a_silence_clear_the_owner_of_suspicion() {
    let mut h = Harness::new();
    h.up("p1");
    h.advance(LEG_SILENCE);
    h.up("p1");
    for _ in 0..(LEG_TRUSTED_AFTER.as_millis() / 20 + 60) {
        assert!(h.advance(Duration::from_millis(20)).is_empty());
        h.core.on_media(h.now);
    }
    // A silence much later is a first one again: the owner is asked.
    assert_eq!(h.advance(LEG_SILENCE), vec![Do::Bye, Do::Claim]);
    h.up("p1");
}

#[test]
fn retries_start_again_with_each_answered_leg() {
    let mut h = Harness::new();
    h.lease(Lease::Elsewhere(holder("p1")));
    for _ in 0..LEG_RETRIES {
        h.core.on_refused(h.now, 503);
        h.advance(LEG_RETRY_AFTER);
        h.lease(Lease::Elsewhere(holder("p1")));
    }
    h.core.on_answered(h.now);
    assert_eq!(h.drain(), vec![Do::Up]);
    h.advance(LEG_SILENCE);
    h.lease(Lease::Elsewhere(holder("p2")));
    h.core.on_refused(h.now, 503);
    assert!(h.drain().is_empty(), "asked again, not given up");
}

#[test]
fn the_caller_is_moving_from_its_legs_silence_until_a_new_leg_is_up() {
    let mut h = Harness::new();
    assert!(!h.core.is_moving(), "not while the first leg is placed");
    h.up("p1");
    assert!(!h.core.is_moving());
    h.advance(LEG_SILENCE);
    assert!(h.core.is_moving(), "asking again after the silence");
    h.lease(Lease::Elsewhere(holder("p2")));
    assert!(h.core.is_moving(), "while the new leg is placed");
    h.core.on_refused(h.now, 503);
    assert!(h.core.is_moving(), "while waiting to ask again");
    h.advance(LEG_RETRY_AFTER);
    h.up("p2");
    assert!(!h.core.is_moving(), "back in the room over the new leg");
}

#[test]
fn the_caller_stops_moving_when_it_joins_here_or_the_call_ends() {
    let mut h = Harness::new();
    h.up("p1");
    h.advance(LEG_SILENCE);
    h.lease(Lease::Elsewhere(holder("p1")));
    assert!(h.core.is_moving());
    assert_eq!(h.advance(LEG_ANSWER_LIMIT), vec![Do::Bye, Do::JoinHere]);
    assert!(!h.core.is_moving(), "in the room here");

    let mut h = Harness::new();
    h.up("p1");
    h.advance(LEG_SILENCE);
    assert!(h.core.is_moving());
    h.core.close();
    assert!(!h.core.is_moving(), "the call ended");
}

#[test]
fn a_leg_placed_again_for_a_new_session_is_no_move() {
    let mut h = Harness::new();
    h.up("p1");
    h.core.renegotiated(h.now);
    assert_eq!(h.drain(), vec![Do::Bye, Do::Claim]);
    assert!(!h.core.is_moving());
    h.up("p1");
    assert!(!h.core.is_moving());
}

#[test]
fn a_caller_moved_from_a_room_mixed_apart_is_moving_until_its_leg_is_up_or_it_joins_here() {
    let now = Instant::now();
    let mut core = BridgeCore::moving(now);
    assert!(core.is_moving());
    assert_eq!(core.poll(), Some(Do::Claim));
    core.on_lease(now, Lease::Elsewhere(holder("p1")));
    assert!(core.is_moving());
    core.on_answered(now);
    assert!(!core.is_moving());

    let mut core = BridgeCore::moving(now);
    core.on_lease(now, Lease::Ours);
    assert!(!core.is_moving(), "the room is this node's after all");
}

#[test]
fn an_owner_that_stops_is_left_at_once_and_the_caller_moves() {
    let mut h = Harness::new();
    h.up("p1");
    h.core.on_owner_stopping(h.now);
    assert!(h.core.is_moving());
    // Its BYE ended the leg: no BYE of ours, a claim.
    assert_eq!(h.drain(), vec![Do::Claim]);
    // Its lease not released yet: not asked again, joined here.
    assert_eq!(h.lease(Lease::Elsewhere(holder("p1"))), vec![Do::JoinHere]);
    assert!(!h.core.is_moving());
    // Another owner by then: bridged there.
    let mut h = Harness::new();
    h.up("p1");
    h.core.on_owner_stopping(h.now);
    h.drain();
    h.up("p2");
}
