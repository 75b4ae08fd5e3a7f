//! Tests for `transaction`.

use super::*;

fn run_until(tx: &mut ServerTx, start: Instant, end: Instant) -> Vec<(Duration, TimerOutput)> {
    let mut out = Vec::new();
    while let Some(at) = tx.poll_timeout() {
        if at > end {
            break;
        }
        let o = tx.handle_timeout(at);
        let done = matches!(o, TimerOutput::AckTimeout | TimerOutput::Terminated);
        out.push((at - start, o));
        if done {
            break;
        }
    }
    out
}

#[test]
fn ok_is_retransmitted_from_t1_doubling_to_t2_until_timer_h() {
    let t0 = Instant::now();
    let mut tx = ServerTx::new(t0, true, false, TimerConfig::default());
    tx.send_response(t0, 200, Bytes::from_static(b"200"));
    let fired = run_until(&mut tx, t0, t0 + Duration::from_secs(60));
    let resend_ms: Vec<u128> = fired
        .iter()
        .filter(|(_, o)| matches!(o, TimerOutput::Retransmit(_)))
        .map(|(d, _)| d.as_millis())
        .collect();
    // 0.5, 1.5, 3.5, 7.5, then every 4 s (T2) until 32 s.
    assert_eq!(
        resend_ms,
        vec![
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert_eq!(
        fired.last().map(|(d, o)| (d.as_millis(), o.clone())),
        Some((32_000, TimerOutput::AckTimeout))
    );
}

#[test]
fn ack_stops_the_2xx_retransmissions() {
    let t0 = Instant::now();
    let mut tx = ServerTx::new(t0, true, false, TimerConfig::default());
    tx.send_response(t0, 200, Bytes::from_static(b"200"));
    assert!(matches!(
        tx.handle_timeout(t0 + Duration::from_millis(500)),
        TimerOutput::Retransmit(_)
    ));
    tx.recv_ack(t0 + Duration::from_millis(600));
    assert_eq!(tx.state(), ServerState::Confirmed);
    // Only Timer L is left: it ends the transaction 64·T1 after the ACK.
    let l = t0 + Duration::from_millis(600) + Duration::from_secs(32);
    assert_eq!(tx.poll_timeout(), Some(l));
    assert_eq!(tx.handle_timeout(l), TimerOutput::Terminated);
}

#[test]
fn unanswered_invite_is_reported_after_the_guard() {
    let t0 = Instant::now();
    let mut tx = ServerTx::new(t0, true, false, TimerConfig::default());
    tx.send_response(t0, 100, Bytes::from_static(b"100"));
    assert_eq!(tx.poll_timeout(), Some(t0 + UNANSWERED_INVITE));
    assert_eq!(
        tx.handle_timeout(t0 + UNANSWERED_INVITE),
        TimerOutput::Unanswered
    );
}

#[test]
fn retransmitted_invite_gets_the_same_response() {
    let t0 = Instant::now();
    let mut tx = ServerTx::new(t0, true, false, TimerConfig::default());
    tx.send_response(t0, 100, Bytes::from_static(b"100"));
    assert_eq!(tx.on_request_retransmission().as_deref(), Some(&b"100"[..]));
    tx.send_response(t0, 200, Bytes::from_static(b"200"));
    assert_eq!(tx.on_request_retransmission().as_deref(), Some(&b"200"[..]));
}

#[test]
fn error_response_waits_for_ack_then_absorbs_for_t4() {
    let t0 = Instant::now();
    let mut tx = ServerTx::new(t0, true, false, TimerConfig::default());
    tx.send_response(t0, 487, Bytes::from_static(b"487"));
    assert_eq!(tx.state(), ServerState::Completed);
    tx.recv_ack(t0 + Duration::from_millis(10));
    assert_eq!(tx.state(), ServerState::Confirmed);
    assert_eq!(tx.on_request_retransmission(), None);
    assert_eq!(
        tx.poll_timeout(),
        Some(t0 + Duration::from_millis(10) + Duration::from_secs(5))
    );
    assert_eq!(
        tx.handle_timeout(t0 + Duration::from_secs(6)),
        TimerOutput::Terminated
    );
}

#[test]
fn error_response_on_tcp_is_not_retransmitted() {
    let t0 = Instant::now();
    let mut tx = ServerTx::new(t0, true, true, TimerConfig::default());
    tx.send_response(t0, 404, Bytes::from_static(b"404"));
    let fired = run_until(&mut tx, t0, t0 + Duration::from_secs(40));
    assert_eq!(
        fired,
        vec![(Duration::from_secs(32), TimerOutput::Terminated)]
    );
}

#[test]
fn non_invite_server_keeps_its_answer_for_timer_j() {
    let t0 = Instant::now();
    let mut tx = ServerTx::new(t0, false, false, TimerConfig::default());
    tx.send_response(t0, 200, Bytes::from_static(b"200"));
    assert_eq!(tx.on_request_retransmission().as_deref(), Some(&b"200"[..]));
    assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
}

#[test]
fn bye_is_retransmitted_until_answered() {
    let t0 = Instant::now();
    let mut tx = ClientTx::new(
        t0,
        Bytes::from_static(b"BYE"),
        false,
        TimerConfig::default(),
    );
    assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_millis(500)));
    assert!(matches!(
        tx.handle_timeout(t0 + Duration::from_millis(500)),
        TimerOutput::Retransmit(_)
    ));
    assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_millis(1500)));
    assert!(tx.recv_response(t0 + Duration::from_secs(1), 200));
    assert!(
        !tx.recv_response(t0 + Duration::from_secs(1), 200),
        "a retransmitted 200 is absorbed"
    );
    assert_eq!(
        tx.handle_timeout(t0 + Duration::from_secs(7)),
        TimerOutput::Terminated
    );
}

#[test]
fn unanswered_bye_times_out_after_64_t1() {
    let t0 = Instant::now();
    let mut tx = ClientTx::new(t0, Bytes::from_static(b"BYE"), true, TimerConfig::default());
    assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    assert_eq!(
        tx.handle_timeout(t0 + Duration::from_secs(32)),
        TimerOutput::RequestTimeout
    );
}

fn invite_tx(t0: Instant, reliable: bool) -> InviteClientTx {
    InviteClientTx::new(
        t0,
        Bytes::from_static(b"INVITE"),
        reliable,
        TimerConfig::default(),
    )
}

#[test]
fn an_unanswered_invite_is_sent_at_t1_doubling_without_a_cap_until_timer_b() {
    let t0 = Instant::now();
    let mut tx = invite_tx(t0, false);
    let mut resent = Vec::new();
    let outcome = loop {
        let at = tx.poll_timeout().expect("a timer while Calling");
        match tx.handle_timeout(at) {
            TimerOutput::Retransmit(b) => {
                assert_eq!(&b[..], b"INVITE");
                resent.push((at - t0).as_millis());
            }
            other => break (at - t0, other),
        }
    };
    // Timer A: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s (past T2: INVITEs are not capped).
    assert_eq!(resent, vec![500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(
        outcome,
        (Duration::from_secs(32), TimerOutput::RequestTimeout)
    );
    assert_eq!(tx.state(), InviteClientState::Terminated);
    assert_eq!(tx.poll_timeout(), None);
}

#[test]
fn a_provisional_stops_timer_a_and_timer_b() {
    let t0 = Instant::now();
    let mut tx = invite_tx(t0, false);
    assert!(matches!(
        tx.handle_timeout(t0 + Duration::from_millis(500)),
        TimerOutput::Retransmit(_)
    ));
    assert_eq!(
        tx.recv_response(t0 + Duration::from_millis(600), 100),
        InviteResponse::Deliver
    );
    assert_eq!(tx.state(), InviteClientState::Proceeding);
    // Proceeding waits for the final answer however long it takes.
    assert_eq!(tx.poll_timeout(), None);
    assert_eq!(
        tx.recv_response(t0 + Duration::from_secs(60), 180),
        InviteResponse::Deliver
    );
    assert_eq!(
        tx.recv_response(t0 + Duration::from_secs(61), 200),
        InviteResponse::Deliver
    );
    assert_eq!(tx.state(), InviteClientState::Accepted);
}

#[test]
fn every_2xx_goes_to_the_tu_until_timer_m() {
    let t0 = Instant::now();
    let mut tx = invite_tx(t0, false);
    assert_eq!(tx.recv_response(t0, 200), InviteResponse::Deliver);
    // A retransmitted 2xx (our ACK was lost): the TU ACKs it again.
    assert_eq!(
        tx.recv_response(t0 + Duration::from_secs(1), 200),
        InviteResponse::Deliver
    );
    // A provisional after the answer is stale.
    assert_eq!(
        tx.recv_response(t0 + Duration::from_secs(1), 180),
        InviteResponse::Absorb
    );
    let m = t0 + Duration::from_secs(32);
    assert_eq!(tx.poll_timeout(), Some(m));
    assert_eq!(tx.handle_timeout(m), TimerOutput::Terminated);
    assert_eq!(tx.recv_response(m, 200), InviteResponse::Absorb);
}

#[test]
fn a_failure_is_acknowledged_by_the_transaction_until_timer_d() {
    let t0 = Instant::now();
    let mut tx = invite_tx(t0, false);
    assert_eq!(tx.recv_response(t0, 100), InviteResponse::Deliver);
    let at = t0 + Duration::from_secs(2);
    assert_eq!(tx.recv_response(at, 486), InviteResponse::Rejected);
    tx.send_ack(Bytes::from_static(b"ACK"));
    assert_eq!(tx.state(), InviteClientState::Completed);
    // The failure again: the same ACK again, not the TU.
    assert_eq!(
        tx.recv_response(at + Duration::from_secs(1), 486),
        InviteResponse::Resend(Bytes::from_static(b"ACK"))
    );
    assert_eq!(
        tx.recv_response(at + Duration::from_secs(1), 200),
        InviteResponse::Absorb
    );
    let d = at + Duration::from_secs(32);
    assert_eq!(tx.poll_timeout(), Some(d));
    assert_eq!(tx.handle_timeout(d), TimerOutput::Terminated);
    assert_eq!(tx.state(), InviteClientState::Terminated);
}

#[test]
fn a_reliable_transport_retransmits_nothing_and_ends_completed_at_once() {
    let t0 = Instant::now();
    let mut tx = invite_tx(t0, true);
    // Only Timer B is armed.
    assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    assert_eq!(tx.recv_response(t0, 503), InviteResponse::Rejected);
    assert_eq!(tx.poll_timeout(), Some(t0));
    assert_eq!(tx.handle_timeout(t0), TimerOutput::Terminated);
}
