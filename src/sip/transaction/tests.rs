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
