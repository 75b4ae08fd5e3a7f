use super::*;

const R: RoomId = RoomId(7);

fn ours(epoch: i64) -> Option<Holder> {
    Some(Holder {
        node_id: "a".into(),
        sip_address: "127.0.0.2:5060".into(),
        epoch,
        ours: true,
    })
}

fn theirs(epoch: i64) -> Option<Holder> {
    Some(Holder {
        node_id: "b".into(),
        sip_address: "127.0.0.3:5060".into(),
        epoch,
        ours: false,
    })
}

fn requests(l: &mut Leases) -> Vec<Request> {
    std::iter::from_fn(|| l.poll_request()).collect()
}

fn changes(l: &mut Leases) -> Vec<Standing> {
    std::iter::from_fn(|| l.poll_change())
        .map(|c| c.standing)
        .collect()
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Runs the core's timers up to `at`.
fn run_to(l: &mut Leases, at: Instant) {
    while let Some(t) = l.poll_timeout().filter(|t| *t <= at) {
        l.handle_timeout(t);
    }
    l.handle_timeout(at);
}

#[test]
fn the_first_member_claims_and_the_owner_renews_every_second() {
    let t0 = Instant::now();
    let mut l = Leases::default();
    l.open(t0, R);
    assert_eq!(requests(&mut l), [Request::Claim(R)]);
    assert_eq!(l.standing(R), Some(&Standing::Claiming));
    l.on_claim(t0 + secs(0.01), R, ours(1));
    let until = t0 + LEASE_TTL - CLOCK_MARGIN;
    assert_eq!(changes(&mut l), [Standing::Owner { epoch: 1, until }]);
    // Nothing before the period; a renewal at it, one at a time.
    assert_eq!(l.poll_timeout(), Some(t0 + secs(1.01)));
    run_to(&mut l, t0 + secs(1.0));
    assert!(requests(&mut l).is_empty());
    run_to(&mut l, t0 + secs(1.01));
    assert_eq!(requests(&mut l), [Request::Renew(R, 1)]);
    run_to(&mut l, t0 + secs(2.0));
    assert!(requests(&mut l).is_empty(), "one request in flight");
    l.on_renew(t0 + secs(2.0), R, Some(true));
    // Validity runs from when the renewal was sent; a renewal is no change.
    assert_eq!(
        l.standing(R),
        Some(&Standing::Owner {
            epoch: 1,
            until: t0 + secs(1.01) + LEASE_TTL - CLOCK_MARGIN
        })
    );
    assert!(changes(&mut l).is_empty());
}

#[test]
fn a_guest_asks_every_second_and_takes_the_room_once_the_lease_lapses() {
    let t0 = Instant::now();
    let mut l = Leases::default();
    l.open(t0, R);
    let _ = requests(&mut l);
    l.on_claim(t0, R, theirs(4));
    assert_eq!(changes(&mut l), [Standing::Guest(theirs(4).unwrap())]);
    for n in 1..=3 {
        let at = t0 + RENEW_EVERY * n;
        run_to(&mut l, at);
        assert_eq!(requests(&mut l), [Request::Claim(R)], "ask {n}");
        if n < 3 {
            l.on_claim(at, R, theirs(4));
            assert!(changes(&mut l).is_empty(), "still the same holder");
        } else {
            // The owner's lease lapsed: the store gave it to us, epoch + 1.
            l.on_claim(at, R, ours(5));
        }
    }
    assert!(matches!(
        changes(&mut l)[..],
        [Standing::Owner { epoch: 5, .. }]
    ));
}

#[test]
fn an_owner_that_cannot_renew_lapses_at_its_validity_and_is_owner_again_if_a_renewal_lands() {
    let t0 = Instant::now();
    let mut l = Leases::default();
    l.open(t0, R);
    let _ = requests(&mut l);
    l.on_claim(t0, R, ours(2));
    let _ = changes(&mut l);
    let until = t0 + LEASE_TTL - CLOCK_MARGIN;
    // Renewals fail (the store is down); each is retried a period on.
    let mut at = t0;
    while at < until {
        at = l.poll_timeout().expect("a timer");
        run_to(&mut l, at);
        for r in requests(&mut l) {
            assert_eq!(r, Request::Renew(R, 2));
            l.on_renew(at, R, None);
        }
    }
    assert_eq!(l.standing(R), Some(&Standing::Lapsed { epoch: 2 }));
    assert_eq!(changes(&mut l), [Standing::Lapsed { epoch: 2 }]);
    // Still renewing at the same epoch; one that lands restores it.
    run_to(&mut l, at + RENEW_EVERY);
    assert_eq!(requests(&mut l), [Request::Renew(R, 2)]);
    l.on_renew(at + RENEW_EVERY, R, Some(true));
    assert!(matches!(
        changes(&mut l)[..],
        [Standing::Owner { epoch: 2, .. }]
    ));
}

#[test]
fn a_refused_renewal_demotes_and_asks_at_once_who_holds_the_room() {
    let t0 = Instant::now();
    let mut l = Leases::default();
    l.open(t0, R);
    let _ = requests(&mut l);
    l.on_claim(t0, R, ours(2));
    run_to(&mut l, t0 + RENEW_EVERY);
    assert_eq!(requests(&mut l), [Request::Renew(R, 2)]);
    let _ = changes(&mut l);
    // Another node took the room at a higher epoch while we were cut off.
    l.on_renew(t0 + RENEW_EVERY, R, Some(false));
    assert_eq!(changes(&mut l), [Standing::Claiming]);
    assert_eq!(requests(&mut l), [Request::Claim(R)]);
    l.on_claim(t0 + RENEW_EVERY, R, theirs(3));
    assert_eq!(changes(&mut l), [Standing::Guest(theirs(3).unwrap())]);
}

#[test]
fn a_failed_claim_is_retried_a_period_on_not_at_once() {
    let t0 = Instant::now();
    let mut l = Leases::default();
    l.open(t0, R);
    let _ = requests(&mut l);
    l.on_claim(t0, R, None);
    assert!(requests(&mut l).is_empty());
    assert_eq!(l.standing(R), Some(&Standing::Claiming));
    assert_eq!(l.poll_timeout(), Some(t0 + RENEW_EVERY));
    run_to(&mut l, t0 + RENEW_EVERY);
    assert_eq!(requests(&mut l), [Request::Claim(R)]);
}

#[test]
fn closing_an_owned_room_releases_it_and_a_reopening_claims_after_the_release() {
    let t0 = Instant::now();
    let mut l = Leases::default();
    l.open(t0, R);
    let _ = requests(&mut l);
    l.on_claim(t0, R, ours(1));
    l.close(t0 + secs(0.5), R);
    assert_eq!(requests(&mut l), [Request::Release(R, 1)]);
    // A caller comes back before the release is answered: no claim yet.
    l.open(t0 + secs(0.6), R);
    assert!(requests(&mut l).is_empty());
    l.on_release(t0 + secs(0.7), R, true);
    assert_eq!(requests(&mut l), [Request::Claim(R)]);
    l.on_claim(t0 + secs(0.7), R, ours(2));
    assert!(matches!(
        l.standing(R),
        Some(Standing::Owner { epoch: 2, .. })
    ));
}

#[test]
fn a_room_closed_with_a_request_in_flight_is_released_when_it_is_answered() {
    let t0 = Instant::now();
    let mut l = Leases::default();
    l.open(t0, R);
    let _ = requests(&mut l);
    l.close(t0, R);
    assert!(requests(&mut l).is_empty(), "the claim is still in flight");
    l.on_claim(t0, R, ours(1));
    assert_eq!(requests(&mut l), [Request::Release(R, 1)]);
    l.on_release(t0, R, true);
    assert!(l.is_empty());
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn a_guest_room_closing_is_forgotten_without_a_release() {
    let t0 = Instant::now();
    let mut l = Leases::default();
    l.open(t0, R);
    let _ = requests(&mut l);
    l.on_claim(t0, R, theirs(1));
    l.close(t0, R);
    assert!(requests(&mut l).is_empty());
    assert!(l.is_empty());
}

#[test]
fn answers_for_rooms_not_asked_about_change_nothing() {
    let t0 = Instant::now();
    let mut l = Leases::default();
    l.on_claim(t0, R, ours(1));
    l.on_renew(t0, R, Some(true));
    l.on_release(t0, R, true);
    assert!(l.is_empty());
    l.open(t0, R);
    let _ = requests(&mut l);
    l.on_claim(t0, R, ours(1));
    // A second answer to the one claim is not a renewal.
    l.on_renew(t0, R, Some(false));
    assert!(matches!(
        l.standing(R),
        Some(Standing::Owner { epoch: 1, .. })
    ));
}

#[test]
fn close_all_releases_every_room_held_and_forgets_the_rest() {
    let t0 = Instant::now();
    let mut l = Leases::default();
    for (room, holder) in [(1, ours(1)), (2, theirs(1)), (3, ours(9))] {
        l.open(t0, RoomId(room));
        let _ = requests(&mut l);
        l.on_claim(t0, RoomId(room), holder);
    }
    l.close_all(t0);
    assert_eq!(
        requests(&mut l),
        [
            Request::Release(RoomId(1), 1),
            Request::Release(RoomId(3), 9)
        ]
    );
    assert_eq!(l.len(), 2);
}

fn moves(l: &mut Leases) -> Vec<RoomId> {
    std::iter::from_fn(|| l.poll_move()).collect()
}

/// The guest's claim due by `at` (one a second), answered with `holder`.
fn claim_at(l: &mut Leases, at: Instant, holder: Option<Holder>) {
    run_to(l, at);
    assert_eq!(requests(l), [Request::Claim(R)]);
    l.on_claim(at, R, holder);
}

#[test]
fn a_room_mixed_here_moves_to_an_owner_that_keeps_it_for_a_lease_once_per_epoch() {
    let t0 = Instant::now();
    let mut l = Leases::default();
    l.open(t0, R);
    let _ = requests(&mut l);
    l.on_claim(t0, R, theirs(4));
    assert!(
        moves(&mut l).is_empty(),
        "a dead owner's lease may be about to run out"
    );
    claim_at(&mut l, t0 + secs(1.0), theirs(4));
    claim_at(&mut l, t0 + secs(2.0), theirs(4));
    assert!(moves(&mut l).is_empty());
    // Held for a whole lease since: the owner renews, it lives.
    claim_at(&mut l, t0 + LEASE_TTL, theirs(4));
    assert_eq!(moves(&mut l), [R], "its members here move to the owner");
    claim_at(&mut l, t0 + LEASE_TTL + secs(1.0), theirs(4));
    assert!(moves(&mut l).is_empty(), "told once");
    // The room empties and opens again (the owner did not answer the
    // legs: its callers joined here again): not moved again so soon.
    let t1 = t0 + secs(5.0);
    l.close(t1, R);
    l.open(t1, R);
    assert_eq!(requests(&mut l), [Request::Claim(R)]);
    l.on_claim(t1, R, theirs(4));
    claim_at(&mut l, t1 + LEASE_TTL, theirs(4));
    assert!(moves(&mut l).is_empty(), "not back and forth");
    // Once MOVE_AGAIN_AFTER has passed, again.
    let t2 = t0 + LEASE_TTL + MOVE_AGAIN_AFTER;
    claim_at(&mut l, t2, theirs(4));
    assert_eq!(moves(&mut l), [R]);
}

#[test]
fn a_dead_owner_whose_lease_runs_out_is_taken_over_not_moved_to() {
    let t0 = Instant::now();
    let mut l = Leases::default();
    l.open(t0, R);
    let _ = requests(&mut l);
    l.on_claim(t0, R, theirs(4));
    claim_at(&mut l, t0 + secs(1.0), theirs(4));
    // The owner's lease ran out: this node takes the room at epoch 5.
    claim_at(&mut l, t0 + secs(2.0), ours(5));
    run_to(&mut l, t0 + secs(10.0));
    assert!(moves(&mut l).is_empty());
    // A new holder's epoch starts its own lease's wait.
    let mut l = Leases::default();
    l.open(t0, R);
    let _ = requests(&mut l);
    l.on_claim(t0, R, theirs(4));
    claim_at(&mut l, t0 + secs(2.0), theirs(5));
    claim_at(&mut l, t0 + secs(4.0), theirs(5));
    assert!(moves(&mut l).is_empty(), "epoch 5 seen for 2 s only");
    claim_at(&mut l, t0 + secs(5.0), theirs(5));
    assert_eq!(moves(&mut l), [R]);
}

#[test]
fn an_owner_or_a_closed_room_moves_nothing() {
    let t0 = Instant::now();
    let mut l = Leases::default();
    l.open(t0, R);
    let _ = requests(&mut l);
    l.on_claim(t0, R, ours(1));
    run_to(&mut l, t0 + secs(10.0));
    assert!(moves(&mut l).is_empty(), "held here");
    // Closed while its claim was in flight: nobody here to move.
    let mut l = Leases::default();
    l.open(t0, R);
    let _ = requests(&mut l);
    l.on_claim(t0, R, theirs(2));
    claim_at(&mut l, t0 + secs(1.0), theirs(2));
    claim_at(&mut l, t0 + secs(2.0), theirs(2));
    run_to(&mut l, t0 + LEASE_TTL);
    assert_eq!(requests(&mut l), [Request::Claim(R)]);
    l.close(t0 + LEASE_TTL, R);
    l.on_claim(t0 + LEASE_TTL, R, theirs(2));
    assert!(moves(&mut l).is_empty());
}

/// A core whose room `R` it claimed at `t0` and holds at `epoch`.
fn owner_at(t0: Instant, epoch: i64) -> Leases {
    let mut l = Leases::default();
    l.open(t0, R);
    let _ = requests(&mut l);
    l.on_claim(t0, R, ours(epoch));
    l
}

#[test]
fn a_draining_owner_hands_its_room_on_and_moves_its_own_callers_to_the_taker_at_once() {
    let t0 = Instant::now();
    let mut l = owner_at(t0, 3);
    let _ = changes(&mut l);
    assert_eq!(l.held(), [R]);
    // A renewal in flight: not now.
    run_to(&mut l, t0 + secs(1.0));
    assert_eq!(requests(&mut l), [Request::Renew(R, 3)]);
    assert!(!l.hand_on(t0 + secs(1.0), R));
    l.on_renew(t0 + secs(1.01), R, Some(true));
    // Handed on: released, owner no more (legs are refused from now on).
    assert!(l.hand_on(t0 + secs(1.02), R));
    assert_eq!(requests(&mut l), [Request::Release(R, 3)]);
    assert_eq!(changes(&mut l), [Standing::Claiming]);
    assert!(l.held().is_empty());
    assert!(!l.hand_on(t0 + secs(1.03), R), "once");
    // The release is answered: the legs end now; no claim before the pause.
    assert_eq!(l.poll_handed(), None);
    l.on_release(t0 + secs(1.05), R, true);
    assert_eq!(l.poll_handed(), Some(R));
    run_to(&mut l, t0 + secs(1.05) + HAND_ON_PAUSE - secs(0.01));
    assert!(requests(&mut l).is_empty(), "the others claim first");
    run_to(&mut l, t0 + secs(1.05) + HAND_ON_PAUSE);
    assert_eq!(requests(&mut l), [Request::Claim(R)]);
    // Another node took it: this node's callers move there at once.
    l.on_claim(t0 + secs(2.1), R, theirs(4));
    assert_eq!(moves(&mut l), [R]);
}

#[test]
fn a_room_handed_on_that_nobody_takes_is_kept() {
    let t0 = Instant::now();
    let mut l = owner_at(t0, 3);
    assert!(l.hand_on(t0, R));
    let _ = requests(&mut l);
    l.on_release(t0, R, true);
    run_to(&mut l, t0 + HAND_ON_PAUSE);
    assert_eq!(requests(&mut l), [Request::Claim(R)]);
    l.on_claim(t0 + HAND_ON_PAUSE, R, ours(4));
    assert!(matches!(
        l.standing(R),
        Some(Standing::Owner { epoch: 4, .. })
    ));
    assert!(moves(&mut l).is_empty());
    assert!(l.held().is_empty(), "not handed on twice");
}

#[test]
fn a_hand_on_whose_release_fails_is_tried_again_and_ends_no_leg() {
    let t0 = Instant::now();
    let mut l = owner_at(t0, 3);
    assert!(l.hand_on(t0, R));
    let _ = requests(&mut l);
    l.on_release(t0, R, false);
    assert_eq!(l.poll_handed(), None, "the legs stay");
    // Claimed again at once: still this node's, and handed on again.
    assert_eq!(requests(&mut l), [Request::Claim(R)]);
    l.on_claim(t0, R, ours(3));
    assert_eq!(l.held(), [R]);
    assert!(l.hand_on(t0, R));
}
