//! The UA core driven with byte strings and simulated time.

use std::time::Duration;

use super::*;
use crate::sip::dialog::Transport;

const CALLER: &str = "127.0.0.1:5070";

fn flow() -> Flow {
    Flow {
        transport: Transport::Udp,
        remote: CALLER.parse().unwrap(),
    }
}

fn endpoint() -> Endpoint {
    seeded(7)
}

fn seeded(seed: u64) -> Endpoint {
    Endpoint::with_seed(
        LocalAddr {
            advertise: "127.0.0.1".parse().unwrap(),
            port: 5060,
        },
        TimerConfig::default(),
        seed,
    )
}

fn request(method: &str, branch: &str, cseq: u32, to_tag: Option<&str>) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    format!(
        "{method} sip:+15550100@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP {CALLER};branch={branch};rport\r\n\
From: <sip:alice@127.0.0.1>;tag=from1\r\n\
To: <sip:+15550100@127.0.0.1>{to_tag}\r\n\
Call-ID: call-1\r\n\
CSeq: {cseq} {method}\r\n\
Contact: <sip:alice@{CALLER}>\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n"
    )
}

#[derive(Default)]
struct Drained {
    sent: Vec<Message>,
    incoming: Vec<IncomingCall>,
    events: Vec<(CallRef, CallEvent)>,
}

fn drain(ep: &mut Endpoint) -> Drained {
    let mut d = Drained::default();
    while let Some(o) = ep.poll_output() {
        match o {
            Output::Transmit { bytes, .. } => d
                .sent
                .push(message::parse(&bytes).expect("we send parseable SIP")),
            Output::Incoming(i) => d.incoming.push(i),
            Output::Call(c, e) => d.events.push((c, e)),
        }
    }
    d
}

fn statuses(d: &Drained) -> Vec<u16> {
    d.sent
        .iter()
        .filter_map(|m| m.status())
        .map(|s| s.0)
        .collect()
}

fn invite(ep: &mut Endpoint, now: Instant) -> (CallRef, String) {
    ep.handle_input(
        now,
        flow(),
        request("INVITE", "z9hG4bK-inv", 1, None).as_bytes(),
    );
    let d = drain(ep);
    assert_eq!(statuses(&d), vec![100]);
    assert_eq!(d.sent[0].tag("To"), None, "100 Trying carries no tag");
    let call = d.incoming[0].call;
    assert_eq!(d.incoming[0].dialled.as_deref(), Some("+15550100"));
    ep.respond_invite(
        now,
        call,
        StatusCode::OK,
        Vec::new(),
        Some(b"v=0\r\n".to_vec()),
    );
    let d = drain(ep);
    assert_eq!(statuses(&d), vec![200]);
    let tag = d.sent[0].tag("To").expect("2xx has our tag").to_owned();
    assert!(d.sent[0].header("Contact").is_some());
    (call, tag)
}

#[test]
fn invite_gets_trying_then_ok_retransmitted_until_ack() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let (call, tag) = invite(&mut ep, t0);
    ep.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(statuses(&drain(&mut ep)), vec![200]);
    ep.handle_input(
        t0 + Duration::from_millis(600),
        flow(),
        request("ACK", "z9hG4bK-ack", 1, Some(&tag)).as_bytes(),
    );
    let d = drain(&mut ep);
    assert!(matches!(d.events.as_slice(), [(c, CallEvent::Ack)] if *c == call));
    ep.handle_timeout(t0 + Duration::from_secs(2));
    assert!(drain(&mut ep).sent.is_empty(), "no 2xx after the ACK");
}

#[test]
fn retransmitted_invite_gets_the_same_answer_and_no_second_call() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    invite(&mut ep, t0);
    ep.handle_input(
        t0,
        flow(),
        request("INVITE", "z9hG4bK-inv", 1, None).as_bytes(),
    );
    let d = drain(&mut ep);
    assert_eq!(statuses(&d), vec![200]);
    assert!(d.incoming.is_empty());
}

#[test]
fn missing_ack_ends_in_ack_timeout_after_64_t1() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let (call, _) = invite(&mut ep, t0);
    let mut t = t0;
    let mut timed_out = false;
    while let Some(next) = ep.poll_timeout() {
        t = next;
        ep.handle_timeout(t);
        if drain(&mut ep)
            .events
            .iter()
            .any(|(c, e)| *c == call && matches!(e, CallEvent::AckTimeout))
        {
            timed_out = true;
            break;
        }
    }
    assert!(timed_out);
    assert_eq!(t - t0, Duration::from_secs(32));
}

#[test]
fn cancel_before_answer_gets_200_and_the_invite_487() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    ep.handle_input(
        t0,
        flow(),
        request("INVITE", "z9hG4bK-inv", 1, None).as_bytes(),
    );
    let call = drain(&mut ep).incoming[0].call;
    ep.handle_input(
        t0,
        flow(),
        request("CANCEL", "z9hG4bK-inv", 1, None).as_bytes(),
    );
    let d = drain(&mut ep);
    assert_eq!(statuses(&d), vec![200, 487]);
    assert_eq!(d.sent[1].header("CSeq"), Some("1 INVITE"));
    assert!(matches!(d.events.as_slice(), [(c, CallEvent::Cancelled)] if *c == call));
    // The ACK for the 487 stops its retransmission.
    ep.handle_input(
        t0,
        flow(),
        request("ACK", "z9hG4bK-inv", 1, Some("x")).as_bytes(),
    );
    ep.handle_timeout(t0 + Duration::from_secs(1));
    assert!(drain(&mut ep).sent.is_empty());
}

#[test]
fn bye_from_caller_is_answered_and_reported() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let (call, tag) = invite(&mut ep, t0);
    ep.handle_input(
        t0,
        flow(),
        request("BYE", "z9hG4bK-bye", 2, Some(&tag)).as_bytes(),
    );
    let d = drain(&mut ep);
    assert_eq!(statuses(&d), vec![200]);
    assert!(matches!(d.events.as_slice(), [(c, CallEvent::Bye { .. })] if *c == call));
    assert_eq!(ep.active_dialogs(), 0);
}

#[test]
fn bye_for_unknown_dialog_gets_481() {
    let mut ep = endpoint();
    ep.handle_input(
        Instant::now(),
        flow(),
        request("BYE", "z9hG4bK-b", 2, Some("nope")).as_bytes(),
    );
    assert_eq!(statuses(&drain(&mut ep)), vec![481]);
}

#[test]
fn options_register_and_unknown_methods() {
    let mut ep = endpoint();
    let now = Instant::now();
    ep.handle_input(
        now,
        flow(),
        request("OPTIONS", "z9hG4bK-o", 1, None).as_bytes(),
    );
    ep.handle_input(
        now,
        flow(),
        request("REGISTER", "z9hG4bK-r", 1, None).as_bytes(),
    );
    ep.handle_input(
        now,
        flow(),
        request("FROB", "z9hG4bK-f", 1, None).as_bytes(),
    );
    let d = drain(&mut ep);
    assert_eq!(statuses(&d), vec![200, 405, 501]);
    assert!(d.sent.iter().all(|m| m.header("Allow") == Some(ALLOW)));
}

#[test]
fn options_gets_503_with_retry_after_while_overloaded_and_200_after() {
    let mut ep = endpoint();
    let now = Instant::now();
    ep.set_overloaded(Some(5));
    ep.handle_input(
        now,
        flow(),
        request("OPTIONS", "z9hG4bK-o1", 1, None).as_bytes(),
    );
    let d = drain(&mut ep);
    assert_eq!(statuses(&d), vec![503]);
    assert_eq!(d.sent[0].header("Retry-After"), Some("5"));
    ep.set_overloaded(None);
    ep.handle_input(
        now,
        flow(),
        request("OPTIONS", "z9hG4bK-o2", 2, None).as_bytes(),
    );
    assert_eq!(statuses(&drain(&mut ep)), vec![200]);
}

#[test]
fn info_is_handed_over_and_answered_once() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let (call, tag) = invite(&mut ep, t0);
    let info = request("INFO", "z9hG4bK-i", 2, Some(&tag)).replace(
        "Content-Length: 0\r\n\r\n",
        "Content-Type: application/dtmf-relay\r\nContent-Length: 24\r\n\r\nSignal=5\r\nDuration=160\r\n",
    );
    ep.handle_input(t0, flow(), info.as_bytes());
    let d = drain(&mut ep);
    let Some((
        c,
        CallEvent::Info {
            tx,
            content_type,
            body,
            ..
        },
    )) = d.events.first()
    else {
        panic!("no INFO event: {:?}", d.events)
    };
    assert_eq!(*c, call);
    assert_eq!(content_type, "application/dtmf-relay");
    assert_eq!(body, b"Signal=5\r\nDuration=160\r\n");
    ep.respond(t0, tx, StatusCode::OK);
    assert_eq!(statuses(&drain(&mut ep)), vec![200]);
    // A retransmitted INFO is answered from the transaction, not handed over again.
    ep.handle_input(t0, flow(), info.as_bytes());
    let d = drain(&mut ep);
    assert_eq!(statuses(&d), vec![200]);
    assert!(d.events.is_empty());
}

/// The caller's 200 OK to a request the gateway sent.
/// A call answered, then hung up by us, and an OPTIONS answered
/// statelessly (its tag is keyed): every byte the endpoint sent.
fn answered_and_hung_up(mut ep: Endpoint) -> Vec<Vec<u8>> {
    let t0 = Instant::now();
    let mut sent = Vec::new();
    let mut call = None;
    let mut pump = |ep: &mut Endpoint, call: &mut Option<CallRef>| {
        while let Some(o) = ep.poll_output() {
            match o {
                Output::Transmit { bytes, .. } => sent.push(bytes.to_vec()),
                Output::Incoming(i) => *call = Some(i.call),
                Output::Call(..) => {}
            }
        }
    };
    let invite = request("INVITE", "z9hG4bK-inv", 1, None);
    ep.handle_input(t0, flow(), invite.as_bytes());
    pump(&mut ep, &mut call);
    let call = call.expect("the INVITE is a call");
    ep.respond_invite(
        t0,
        call,
        StatusCode::OK,
        Vec::new(),
        Some(b"v=0\r\n".to_vec()),
    );
    ep.send_bye(t0, call, None);
    let options = request("OPTIONS", "z9hG4bK-o", 1, None);
    ep.handle_input(t0, flow(), options.as_bytes());
    pump(&mut ep, &mut None);
    sent
}

#[test]
fn a_seed_repeats_every_tag_branch_and_cseq_and_another_seed_does_not() {
    let a = answered_and_hung_up(seeded(1));
    assert!(!a.is_empty());
    assert_eq!(a, answered_and_hung_up(seeded(1)));
    assert_ne!(a, answered_and_hung_up(seeded(2)));
}

fn ok_to(request: &Message) -> String {
    format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: call-1\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        request.header("Via").unwrap(),
        request.header("From").unwrap(),
        request.header("To").unwrap(),
        request.header("CSeq").unwrap()
    )
}

#[test]
fn gateway_bye_carries_reason_and_ends_on_200() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let (call, _) = invite(&mut ep, t0);
    ep.send_bye(t0, call, Some("SIP;cause=403;text=\"wrong\"".into()));
    let d = drain(&mut ep);
    let bye = &d.sent[0];
    assert_eq!(bye.method(), Some(&Method::Bye));
    assert_eq!(bye.header("Reason"), Some("SIP;cause=403;text=\"wrong\""));
    ep.handle_input(t0, flow(), ok_to(bye).as_bytes());
    assert!(matches!(drain(&mut ep).events.as_slice(), [(c, CallEvent::Ended)] if *c == call));
}

#[test]
fn info_package_is_sent_in_the_dialog_and_its_answer_ends_nothing() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let with_recv_info = request("INVITE", "z9hG4bK-ri", 1, None).replace(
        "Max-Forwards: 70",
        "Max-Forwards: 70\r\nRecv-Info: Foo, dialgate-outcome",
    );
    ep.handle_input(t0, flow(), with_recv_info.as_bytes());
    let d = drain(&mut ep);
    assert_eq!(d.incoming[0].recv_info, vec!["foo", "dialgate-outcome"]);
    let (call, _) = invite(&mut ep, t0);
    ep.send_info(
        t0,
        call,
        "dialgate-outcome",
        "outcome=wrong\r\nstage=access\r\n".into(),
    );
    let d = drain(&mut ep);
    let info = &d.sent[0];
    assert_eq!(info.method(), Some(&Method::Info));
    assert_eq!(info.header("Info-Package"), Some("dialgate-outcome"));
    assert_eq!(info.body, b"outcome=wrong\r\nstage=access\r\n");
    ep.handle_input(t0, flow(), ok_to(info).as_bytes());
    assert!(drain(&mut ep).events.is_empty());
    // Unanswered, it times out quietly too; the call goes on to its BYE.
    ep.send_info(t0, call, "dialgate-outcome", "outcome=wrong\r\n".into());
    let d = run_timers(&mut ep, t0 + Duration::from_secs(60));
    // (No ACK was sent in this test, so AckTimeout comes; Ended must not.)
    assert!(!d.events.iter().any(|(_, e)| matches!(e, CallEvent::Ended)));
    ep.send_bye(t0 + Duration::from_secs(60), call, None);
    assert_eq!(drain(&mut ep).sent[0].method(), Some(&Method::Bye));
}

#[test]
fn garbage_with_enough_headers_gets_400_and_pure_noise_is_dropped() {
    let mut ep = endpoint();
    let broken =
        request("INVITE", "z9hG4bK-x", 1, None).replace("Max-Forwards: 70", "Max-Forwards 70");
    ep.handle_input(Instant::now(), flow(), broken.as_bytes());
    ep.handle_input(Instant::now(), flow(), b"\x00\x01hello");
    assert_eq!(statuses(&drain(&mut ep)), vec![400]);
}

/// Runs every timer up to `until`; returns what came out.
fn run_timers(ep: &mut Endpoint, until: Instant) -> Drained {
    let mut all = Drained::default();
    while let Some(t) = ep.poll_timeout() {
        if t > until {
            break;
        }
        ep.handle_timeout(t);
        let d = drain(ep);
        all.sent.extend(d.sent);
        all.events.extend(d.events);
    }
    all
}

#[test]
fn answered_and_acknowledged_call_leaves_no_transaction_behind() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let (_, tag) = invite(&mut ep, t0);
    ep.handle_input(
        t0,
        flow(),
        request("ACK", "z9hG4bK-ack", 1, Some(&tag)).as_bytes(),
    );
    ep.handle_input(
        t0,
        flow(),
        request("BYE", "z9hG4bK-bye", 2, Some(&tag)).as_bytes(),
    );
    drain(&mut ep);
    run_timers(&mut ep, t0 + Duration::from_secs(3600));
    assert_eq!(ep.transactions(), 0);
    assert_eq!(ep.active_dialogs(), 0);
    assert_eq!(ep.poll_timeout(), None);
}

#[test]
fn refusing_an_invite_reports_the_call_ended() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    ep.handle_input(
        t0,
        flow(),
        request("INVITE", "z9hG4bK-inv", 1, None).as_bytes(),
    );
    let call = drain(&mut ep).incoming[0].call;
    ep.respond_invite(t0, call, StatusCode::NOT_FOUND, Vec::new(), None);
    let d = drain(&mut ep);
    assert_eq!(statuses(&d), vec![404]);
    assert!(matches!(d.events.as_slice(), [(c, CallEvent::Ended)] if *c == call));
    assert_eq!(ep.active_dialogs(), 0);
}

#[test]
fn an_invite_nobody_answers_gets_500_and_ends() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    ep.handle_input(
        t0,
        flow(),
        request("INVITE", "z9hG4bK-inv", 1, None).as_bytes(),
    );
    let call = drain(&mut ep).incoming[0].call;
    let d = run_timers(&mut ep, t0 + crate::sip::transaction::UNANSWERED_INVITE);
    assert_eq!(statuses(&d).first(), Some(&500));
    assert!(
        d.events
            .iter()
            .any(|(c, e)| *c == call && matches!(e, CallEvent::Ended))
    );
    assert_eq!(ep.active_dialogs(), 0);
    run_timers(&mut ep, t0 + Duration::from_secs(3600));
    assert_eq!(ep.transactions(), 0);
}

#[test]
fn ack_to_a_reinvite_stops_its_200() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let (_, tag) = invite(&mut ep, t0);
    ep.handle_input(
        t0,
        flow(),
        request("ACK", "z9hG4bK-ack", 1, Some(&tag)).as_bytes(),
    );
    ep.handle_input(
        t0,
        flow(),
        request("INVITE", "z9hG4bK-re", 2, Some(&tag)).as_bytes(),
    );
    assert_eq!(statuses(&drain(&mut ep)), vec![200]);
    acknowledge_reinvite_and_hear_no_more(&mut ep, t0, &tag);
}

/// `request` with an SDP body.
fn with_offer(req: &str, sdp: &str) -> String {
    req.replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ),
    )
}

#[test]
fn reinvite_with_an_offer_is_handed_over_answered_once_and_one_at_a_time() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let (call, tag) = invite(&mut ep, t0);
    ep.handle_input(
        t0,
        flow(),
        request("ACK", "z9hG4bK-ack", 1, Some(&tag)).as_bytes(),
    );
    drain(&mut ep);
    let re = with_offer(
        &request("INVITE", "z9hG4bK-re", 2, Some(&tag)),
        "v=0\r\na=sendonly\r\n",
    );
    ep.handle_input(t0, flow(), re.as_bytes());
    let d = drain(&mut ep);
    assert_eq!(statuses(&d), vec![100]);
    let tx = match d.events.as_slice() {
        [
            (
                c,
                CallEvent::Reinvite {
                    tx,
                    content_type,
                    body,
                    ..
                },
            ),
        ] if *c == call => {
            assert_eq!(content_type, "application/sdp");
            assert!(body.ends_with(b"a=sendonly\r\n"));
            tx.clone()
        }
        other => panic!("a re-INVITE event: {other:?}"),
    };
    // Another re-INVITE while this one is open: 500 with Retry-After 0-10 s.
    let second = with_offer(&request("INVITE", "z9hG4bK-re2", 3, Some(&tag)), "v=0\r\n");
    ep.handle_input(t0, flow(), second.as_bytes());
    let d = drain(&mut ep);
    assert_eq!(statuses(&d), vec![500]);
    // Its ACK shares the branch (a non-2xx) and stops the retransmissions.
    ep.handle_input(
        t0,
        flow(),
        request("ACK", "z9hG4bK-re2", 3, Some(&tag)).as_bytes(),
    );
    let after: u8 = d.sent[0]
        .header("Retry-After")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(after <= 10);
    assert!(d.events.is_empty());

    ep.respond_reinvite(
        t0,
        &tx,
        StatusCode::OK,
        Some(b"v=0\r\na=recvonly\r\n".to_vec()),
    );
    let d = drain(&mut ep);
    assert_eq!(statuses(&d), vec![200]);
    assert_eq!(d.sent[0].tag("To"), Some(tag.as_str()));
    assert!(d.sent[0].header("Contact").is_some());
    assert!(d.sent[0].body.ends_with(b"a=recvonly\r\n"));
    ep.respond_reinvite(t0, &tx, StatusCode::OK, None);
    assert!(drain(&mut ep).sent.is_empty(), "answered once");
    acknowledge_reinvite_and_hear_no_more(&mut ep, t0, &tag);
    // Answered, it no longer blocks the next one.
    let third = with_offer(&request("INVITE", "z9hG4bK-re3", 4, Some(&tag)), "v=0\r\n");
    ep.handle_input(t0 + Duration::from_secs(5), flow(), third.as_bytes());
    let d = drain(&mut ep);
    assert_eq!(statuses(&d), vec![100]);
    assert!(matches!(
        d.events.as_slice(),
        [(_, CallEvent::Reinvite { .. })]
    ));
}

/// ACKs the re-INVITE (CSeq 2) and checks that its 200 is not sent again.
fn acknowledge_reinvite_and_hear_no_more(ep: &mut Endpoint, t0: Instant, tag: &str) {
    ep.handle_input(
        t0,
        flow(),
        request("ACK", "z9hG4bK-ack2", 2, Some(tag)).as_bytes(),
    );
    let d = run_timers(ep, t0 + Duration::from_secs(5));
    assert!(
        d.sent.is_empty(),
        "the ACK stopped the 200: {:?}",
        statuses(&d)
    );
}

#[test]
fn a_refused_reinvite_gets_its_status_and_keeps_the_session() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let (_, tag) = invite(&mut ep, t0);
    let re = with_offer(&request("INVITE", "z9hG4bK-re", 2, Some(&tag)), "v=0\r\n");
    ep.handle_input(t0, flow(), re.as_bytes());
    let d = drain(&mut ep);
    let [(_, CallEvent::Reinvite { tx, .. })] = d.events.as_slice() else {
        panic!("a re-INVITE event")
    };
    ep.respond_reinvite(t0, tx, StatusCode::NOT_ACCEPTABLE_HERE, None);
    assert_eq!(statuses(&drain(&mut ep)), vec![488]);
    // A later offer-less re-INVITE is answered with the first session.
    ep.handle_input(
        t0,
        flow(),
        request("INVITE", "z9hG4bK-re3", 3, Some(&tag)).as_bytes(),
    );
    let d = drain(&mut ep);
    assert_eq!(statuses(&d), vec![200]);
    assert_eq!(d.sent[0].body, b"v=0\r\n");
}

#[test]
fn huge_content_length_is_refused() {
    let mut ep = endpoint();
    let raw = request("OPTIONS", "z9hG4bK-big", 1, None)
        .replace("Content-Length: 0", "Content-Length: 99999999999");
    assert!(message::frame_len(raw.as_bytes()).is_err());
    ep.handle_input(Instant::now(), flow(), raw.as_bytes());
    let d = drain(&mut ep);
    assert_eq!(statuses(&d), vec![400]);
    assert!(d.sent[0].tag("To").is_some(), "400 carries a To tag");
}

/// `request` in a dialog of its own Call-ID.
fn request_in(
    call_id: &str,
    method: &str,
    branch: &str,
    cseq: u32,
    to_tag: Option<&str>,
) -> String {
    request(method, branch, cseq, to_tag).replace("Call-ID: call-1", &format!("Call-ID: {call_id}"))
}

/// A small deterministic generator (xorshift), so the mix is the same each run.
struct Mix(u64);

impl Mix {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    /// One of the last 32 of `len` (recent calls are the ones still busy).
    fn recent(&mut self, len: usize) -> usize {
        len - 1 - self.below(len.min(32) as u64) as usize
    }
}

#[test]
fn the_timer_heap_agrees_with_a_sweep_of_every_transaction_through_a_busy_mix() {
    let t0 = Instant::now();
    let mut now = t0;
    let mut ep = endpoint();
    let mut mix = Mix(0x9e37_79b9_7f4a_7c15);
    // Calls the caller side knows: (Call-ID, our call, our tag once answered, next CSeq).
    let mut calls: Vec<(String, CallRef, Option<String>, u32)> = Vec::new();
    let mut sent_requests: Vec<Message> = Vec::new();
    let mut timers_fired = 0;
    for step in 0..20_000u32 {
        match mix.below(12) {
            0 | 1 => {
                let call_id = format!("mix-{step}");
                let req = request_in(&call_id, "INVITE", &format!("z9hG4bK-i{step}"), 1, None);
                ep.handle_input(now, flow(), req.as_bytes());
                if let Some(i) = drain(&mut ep).incoming.pop() {
                    calls.push((call_id, i.call, None, 2));
                }
            }
            2 if !calls.is_empty() => {
                // The gateway answers (or refuses) a pending call.
                let n = mix.recent(calls.len());
                let (_, call, tag, _) = &mut calls[n];
                if tag.is_none() {
                    let status = if mix.below(4) == 0 {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    };
                    ep.respond_invite(now, *call, status, Vec::new(), Some(b"v=0\r\n".to_vec()));
                    let d = drain(&mut ep);
                    *tag = d.sent.iter().find_map(|m| m.tag("To").map(str::to_owned));
                }
            }
            3 | 4 if !calls.is_empty() => {
                // The caller ACKs, sends INFO or hangs up.
                let n = mix.recent(calls.len());
                let (call_id, _, tag, cseq) = &mut calls[n];
                if let Some(tag) = tag.clone() {
                    let (method, ack_cseq) = match mix.below(3) {
                        0 => ("ACK", 1),
                        1 => ("INFO", *cseq),
                        _ => ("BYE", *cseq),
                    };
                    *cseq += 1;
                    let branch = format!("z9hG4bK-c{step}");
                    let req = request_in(call_id, method, &branch, ack_cseq, Some(&tag));
                    ep.handle_input(now, flow(), req.as_bytes());
                    for (_, event) in drain(&mut ep).events {
                        if let CallEvent::Info { tx, .. } = event
                            && mix.below(2) == 0
                        {
                            ep.respond(now, &tx, StatusCode::OK);
                        }
                    }
                }
            }
            5 if !calls.is_empty() => {
                // The gateway hangs up; the caller answers its BYE or not.
                let n = mix.recent(calls.len());
                ep.send_bye(now, calls[n].1, None);
                sent_requests.extend(
                    drain(&mut ep)
                        .sent
                        .into_iter()
                        .filter(|m| m.method().is_some()),
                );
            }
            6 if !sent_requests.is_empty() => {
                let n = mix.below(sent_requests.len() as u64) as usize;
                let req = sent_requests.swap_remove(n);
                let ok =
                    ok_to(&req).replace("Call-ID: call-1", &format!("Call-ID: {}", req.call_id()));
                ep.handle_input(now, flow(), ok.as_bytes());
                drain(&mut ep);
            }
            7 => {
                let req = request_in("probe", "OPTIONS", &format!("z9hG4bK-o{step}"), 1, None);
                ep.handle_input(now, flow(), req.as_bytes());
                drain(&mut ep);
            }
            8 if !calls.is_empty() => {
                let n = mix.recent(calls.len());
                let (call_id, ..) = &calls[n];
                let branch = format!("z9hG4bK-i{}", call_id.trim_start_matches("mix-"));
                let req = request_in(call_id, "CANCEL", &branch, 1, None);
                ep.handle_input(now, flow(), req.as_bytes());
                drain(&mut ep);
            }
            _ => {
                // Time passes: up to 1 s, and every due timer runs.
                now += Duration::from_millis(mix.below(1000));
                if ep.poll_timeout().is_some_and(|t| t <= now) {
                    timers_fired += 1;
                }
                ep.handle_timeout(now);
                drain(&mut ep);
            }
        }
        assert_eq!(ep.misarmed(), 0, "step {step}");
        assert_eq!(ep.poll_timeout(), ep.swept_timeout(), "step {step}");
        // Whatever was due has run: the next deadline is in the future.
        assert!(ep.poll_timeout().is_none_or(|t| t > now), "step {step}");
    }
    assert!(timers_fired > 500, "the mix ran timers: {timers_fired}");
    // Then every transaction ends, and the heap with them.
    run_timers(&mut ep, now + Duration::from_secs(3600));
    assert_eq!(ep.transactions(), 0);
    assert_eq!(ep.poll_timeout(), None);
}

#[test]
fn a_timer_costs_the_same_with_twenty_thousand_live_transactions() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let (_, tag) = invite(&mut ep, t0);
    // 20,000 INFOs in the call nobody answers, each a transaction kept
    // 64·T1 (32 s).
    for i in 0..20_000 {
        let req = request("INFO", &format!("z9hG4bK-n{i}"), i + 2, Some(&tag));
        ep.handle_input(t0, flow(), req.as_bytes());
    }
    assert_eq!(drain(&mut ep).events.len(), 20_000);
    assert_eq!(ep.transactions(), 20_001);
    let before = ep.timers_examined();
    // Timer G: the 200 goes again at T1; nothing else is due.
    let due = ep.poll_timeout().expect("the 200's retransmission");
    assert_eq!(due, t0 + Duration::from_millis(500));
    ep.handle_timeout(due);
    assert_eq!(statuses(&drain(&mut ep)), vec![200]);
    assert!(
        ep.timers_examined() - before <= 2,
        "examined {} heap entries for one due timer",
        ep.timers_examined() - before
    );
    // At 32 s the INFO transactions all end, each examined once.
    let before = ep.timers_examined();
    ep.handle_timeout(t0 + Duration::from_secs(32));
    drain(&mut ep);
    assert_eq!(ep.transactions(), 0);
    assert!(ep.timers_examined() - before <= 20_010);
}

#[test]
fn stateless_answers_leave_no_transaction_and_answer_a_retransmission_alike() {
    let mut ep = endpoint();
    let now = Instant::now();
    let probes = [
        request("OPTIONS", "z9hG4bK-o", 1, None),
        request("REGISTER", "z9hG4bK-r", 1, None),
        request("FROB", "z9hG4bK-f", 1, None),
        request("BYE", "z9hG4bK-b", 2, Some("nope")),
        request("INFO", "z9hG4bK-i", 2, Some("nope")),
        request("CANCEL", "z9hG4bK-c", 1, None),
    ];
    let mut first = Vec::new();
    for p in &probes {
        ep.handle_input(now, flow(), p.as_bytes());
        first.extend(drain(&mut ep).sent);
    }
    assert_eq!(
        statuses(&Drained {
            sent: first.clone(),
            ..Default::default()
        }),
        vec![200, 405, 501, 481, 481, 481]
    );
    assert_eq!(ep.transactions(), 0, "nothing kept");
    assert_eq!(ep.poll_timeout(), None, "nothing to retransmit");
    // The same requests again (retransmissions): the same answers, To tag and all.
    for (p, was) in probes.iter().zip(&first) {
        ep.handle_input(now + Duration::from_secs(1), flow(), p.as_bytes());
        let again = drain(&mut ep).sent;
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].to_bytes(), was.to_bytes());
    }
    // Another request gets another tag; a flood of them keeps nothing.
    for i in 0..10_000 {
        let p = request("OPTIONS", &format!("z9hG4bK-f{i}"), 1, None);
        ep.handle_input(now, flow(), p.as_bytes());
    }
    let tags: std::collections::HashSet<String> = drain(&mut ep)
        .sent
        .iter()
        .filter_map(|m| m.tag("To").map(str::to_owned))
        .collect();
    assert_eq!(tags.len(), 10_000);
    assert_eq!(ep.transactions(), 0);
}

/// Refuses an INVITE from `from` with 404 and never ACKs it.
fn refused_invite(ep: &mut Endpoint, now: Instant, from: Flow, n: u32) {
    let req = request_in(
        &format!("refused-{n}"),
        "INVITE",
        &format!("z9hG4bK-x{n}"),
        1,
        None,
    )
    .replace(CALLER, &from.remote.to_string());
    ep.handle_input(now, from, req.as_bytes());
    let call = drain(ep).incoming.pop().expect("a new call").call;
    ep.respond_invite(now, call, StatusCode::NOT_FOUND, Vec::new(), None);
    assert_eq!(statuses(&drain(ep)), vec![404]);
}

#[test]
fn refusals_a_source_never_acknowledges_are_retransmitted_eight_at_a_time() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let forged = flow();
    let other = Flow {
        transport: Transport::Udp,
        remote: "127.0.0.9:5070".parse().unwrap(),
    };
    for n in 0..20 {
        refused_invite(&mut ep, t0, forged, n);
    }
    refused_invite(&mut ep, t0, other, 100);
    // Over the 32 s until Timer H, only 8 of the forged source's 20
    // refusals are sent again (each about 10 times), and the other
    // source's one is, as ever.
    let d = run_timers(&mut ep, t0 + Duration::from_secs(40));
    let again = |who: &str| {
        let mut ids: Vec<&str> = d
            .sent
            .iter()
            .filter(|m| m.call_id().starts_with(who))
            .map(|m| m.call_id())
            .collect();
        let total = ids.len();
        ids.sort_unstable();
        ids.dedup();
        (ids.len(), total)
    };
    let (forged_calls, forged_total) = again("refused-");
    assert_eq!(forged_calls, 9, "8 of the forged source's and the other's");
    assert!(
        (80..=100).contains(&forged_total),
        "{forged_total} retransmissions"
    );
    assert!(d.sent.iter().any(|m| m.call_id() == "refused-100"));
    assert_eq!(ep.transactions(), 0);
    assert!(
        ep.unacked.is_empty(),
        "the counts go with their transactions"
    );

    // A source that ACKs is never capped: 20 refusals acknowledged one by
    // one, and the 21st is still retransmitted.
    let t1 = t0 + Duration::from_secs(60);
    for n in 200..220 {
        refused_invite(&mut ep, t1, forged, n);
        let ack = request_in(
            &format!("refused-{n}"),
            "ACK",
            &format!("z9hG4bK-x{n}"),
            1,
            Some("x"),
        );
        ep.handle_input(t1, forged, ack.as_bytes());
    }
    refused_invite(&mut ep, t1, forged, 300);
    let d = run_timers(&mut ep, t1 + Duration::from_secs(1));
    assert!(
        d.sent.iter().any(|m| m.call_id() == "refused-300"),
        "retransmitted at T1"
    );
    assert!(d.sent.iter().all(|m| m.call_id() == "refused-300"));
}

#[test]
fn a_capped_refusal_is_still_sent_again_for_a_retransmitted_invite() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    for n in 0..9 {
        refused_invite(&mut ep, t0, flow(), n);
    }
    // The 9th's INVITE comes again (its 404 was lost): the 404 goes again.
    let req = request_in("refused-8", "INVITE", "z9hG4bK-x8", 1, None);
    ep.handle_input(t0 + Duration::from_millis(500), flow(), req.as_bytes());
    let d = drain(&mut ep);
    assert_eq!(statuses(&d), vec![404]);
    assert_eq!(d.sent[0].call_id(), "refused-8");
}

#[test]
fn version_scheme_extension_and_mismatch_refusals() {
    let mut ep = endpoint();
    let now = Instant::now();
    let cases = [
        (
            request("OPTIONS", "z9hG4bK-v", 1, None).replacen("SIP/2.0\r\n", "SIP/3.0\r\n", 1),
            505,
        ),
        (
            request("OPTIONS", "z9hG4bK-s", 1, None).replacen(
                "sip:+15550100@127.0.0.1:5060",
                "NOTSIP:a@b",
                1,
            ),
            416,
        ),
        (
            request("INVITE", "z9hG4bK-r", 1, None).replace(
                "Max-Forwards: 70\r\n",
                "Require: 100rel, nothing\r\nMax-Forwards: 70\r\n",
            ),
            420,
        ),
        (
            request("OPTIONS", "z9hG4bK-m", 1, None).replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE"),
            400,
        ),
    ];
    for (req, want) in &cases {
        ep.handle_input(now, flow(), req.as_bytes());
        let d = drain(&mut ep);
        assert_eq!(statuses(&d), vec![*want], "{req}");
        if *want == 420 {
            assert_eq!(d.sent[0].header("Unsupported"), Some("100rel, nothing"));
            assert!(d.incoming.is_empty(), "no call for a refused INVITE");
        }
    }
    assert_eq!(ep.transactions(), 0);
}

/// Found by the `sip_endpoint` fuzz target: a Contact we could not send a
/// BYE to was taken as the dialog's remote target.
#[test]
fn an_invite_whose_contact_is_no_sip_uri_gets_400_and_no_call() {
    let t0 = Instant::now();
    for contact in [
        "<qip:alice@127.0.0.1:5070>",
        "<sip:alice@127.0.0.1:5 70>",
        "<sip:alice:x-B1<7.0.0.1:5080>",
    ] {
        let mut ep = endpoint();
        let req = request("INVITE", "z9hG4bK-c", 1, None).replacen(
            &format!("<sip:alice@{CALLER}>"),
            contact,
            1,
        );
        ep.handle_input(t0, flow(), req.as_bytes());
        let d = drain(&mut ep);
        assert_eq!(statuses(&d), vec![400], "{contact}");
        assert!(d.incoming.is_empty(), "{contact}");
        assert_eq!(ep.active_dialogs(), 0);
    }
}

#[test]
fn without_a_contact_the_bye_goes_to_the_callers_address_when_from_is_not_sip() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let req = request("INVITE", "z9hG4bK-nc", 1, None)
        .replacen(&format!("Contact: <sip:alice@{CALLER}>\r\n"), "", 1)
        .replacen("<sip:alice@127.0.0.1>", "<tel:+15550111>", 1);
    ep.handle_input(t0, flow(), req.as_bytes());
    let call = drain(&mut ep).incoming[0].call;
    ep.respond_invite(
        t0,
        call,
        StatusCode::OK,
        Vec::new(),
        Some(b"v=0\r\n".to_vec()),
    );
    let _ = drain(&mut ep);
    ep.send_bye(t0, call, None);
    let d = drain(&mut ep);
    let bye = d
        .sent
        .iter()
        .find(|m| m.method() == Some(&Method::Bye))
        .expect("BYE");
    match &bye.start {
        message::StartLine::Request { uri, .. } => assert_eq!(uri, &format!("sip:{CALLER}")),
        other => panic!("{other:?}"),
    }
}

// ---- INVITEs we send (the leg to a room's owner node) ----

const OWNER: &str = "127.0.0.4:5060";

fn leg_call() -> OutgoingCall {
    OutgoingCall {
        target: OWNER.parse().unwrap(),
        uri: format!("sip:room-42@{OWNER}"),
        from_user: "+15550111".into(),
        call_id: "leg-1".into(),
        headers: vec![("X-Dialgate-Leg".into(), "room=42".into())],
        sdp: b"v=0\r\n".to_vec(),
    }
}

/// Places the leg call; returns it and the INVITE as sent.
fn place(ep: &mut Endpoint, now: Instant) -> (CallRef, Message) {
    let call = ep.invite(now, leg_call());
    let d = drain(ep);
    assert_eq!(d.sent.len(), 1);
    (call, d.sent[0].clone())
}

/// The far end's answer to `invite`, with its tag and Contact.
fn answer_to(invite: &Message, status: u16) -> Vec<u8> {
    let via = invite.header("Via").unwrap();
    let from = invite.header("From").unwrap();
    let to = invite.header("To").unwrap();
    let (cseq, _) = invite.cseq().unwrap();
    let reason = if status == 200 { "OK" } else { "Busy Here" };
    format!(
        "SIP/2.0 {status} {reason}\r\nVia: {via}\r\nFrom: {from}\r\nTo: {to};tag=owner1\r\n\
Call-ID: leg-1\r\nCSeq: {cseq} INVITE\r\nContact: <sip:dialgate@{OWNER}>\r\n\
Record-Route: <sip:127.0.0.9;lr>\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"
    )
    .into_bytes()
}

fn owner_flow() -> Flow {
    Flow {
        transport: Transport::Udp,
        remote: OWNER.parse().unwrap(),
    }
}

#[test]
fn our_invite_carries_its_headers_and_its_2xx_is_acknowledged_once_told() {
    let mut ep = endpoint();
    let now = Instant::now();
    let (call, invite) = place(&mut ep, now);
    assert_eq!(invite.method(), Some(&Method::Invite));
    assert_eq!(invite.header("X-Dialgate-Leg"), Some("room=42"));
    assert_eq!(invite.call_id(), "leg-1");
    assert!(invite.tag("From").is_some());
    assert_eq!(invite.body, b"v=0\r\n");

    ep.handle_input(now, owner_flow(), &answer_to(&invite, 200));
    let d = drain(&mut ep);
    let ack = &d.sent[0];
    assert_eq!(ack.method(), Some(&Method::Ack));
    let (invite_cseq, _) = invite.cseq().unwrap();
    assert_eq!(ack.cseq(), Some((invite_cseq, Method::Ack)));
    assert_ne!(
        ack.branch(),
        invite.branch(),
        "a 2xx's ACK is its own transaction"
    );
    assert_eq!(ack.tag("To"), Some("owner1"));
    assert_eq!(
        ack.headers_named("Route").collect::<Vec<_>>(),
        vec!["<sip:127.0.0.9;lr>"]
    );
    assert!(matches!(
        &d.events[..],
        [(c, CallEvent::Answered { body, .. })] if *c == call && body == b"v=0\r\n"
    ));

    // The 2xx again: acknowledged again, told no more.
    ep.handle_input(now, owner_flow(), &answer_to(&invite, 200));
    let d = drain(&mut ep);
    assert_eq!(d.sent.len(), 1);
    assert_eq!(d.sent[0].method(), Some(&Method::Ack));
    assert!(d.events.is_empty());

    // The owner hangs up: our tag is its To tag.
    let from = invite.header("From").unwrap();
    let bye = format!(
        "BYE sip:dialgate@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {OWNER};branch=z9hG4bK-ob\r\n\
From: <sip:room-42@{OWNER}>;tag=owner1\r\nTo: {from}\r\nCall-ID: leg-1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    ep.handle_input(now, owner_flow(), bye.as_bytes());
    let d = drain(&mut ep);
    assert_eq!(statuses(&d), vec![200]);
    assert!(matches!(&d.events[..], [(c, CallEvent::Bye { .. })] if *c == call));
    assert_eq!(ep.active_dialogs(), 0);
}

#[test]
fn a_failure_to_our_invite_is_acknowledged_in_its_transaction_and_refuses_the_leg() {
    let mut ep = endpoint();
    let now = Instant::now();
    let (call, invite) = place(&mut ep, now);
    ep.handle_input(now, owner_flow(), &answer_to(&invite, 486));
    let d = drain(&mut ep);
    let ack = &d.sent[0];
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(
        ack.branch(),
        invite.branch(),
        "a failure's ACK shares the INVITE's branch"
    );
    assert_eq!(ack.tag("To"), Some("owner1"));
    assert!(matches!(&d.events[..], [(c, CallEvent::Refused { status: 486 })] if *c == call));
    assert_eq!(ep.active_dialogs(), 0);
    // Retransmitted: the same ACK again.
    ep.handle_input(now, owner_flow(), &answer_to(&invite, 486));
    let d = drain(&mut ep);
    assert_eq!(d.sent.len(), 1);
    assert_eq!(d.sent[0].branch(), invite.branch());
    assert!(d.events.is_empty());
}

#[test]
fn our_invite_unanswered_is_resent_then_refused_408_after_64_t1() {
    let mut ep = endpoint();
    let start = Instant::now();
    let (call, _) = place(&mut ep, start);
    let mut resent = 0;
    let mut events = Vec::new();
    while let Some(at) = ep.poll_timeout() {
        ep.handle_timeout(at);
        let d = drain(&mut ep);
        resent += d.sent.len();
        events.extend(d.events);
        if !events.is_empty() {
            assert_eq!(at - start, 64 * TimerConfig::default().t1);
            break;
        }
    }
    assert_eq!(resent, 6, "Timer A: 0.5, 1, 2, 4, 8, 16 s");
    assert!(matches!(&events[..], [(c, CallEvent::Refused { status: 408 })] if *c == call));
    assert_eq!(ep.active_dialogs(), 0);
}

#[test]
fn a_leg_hung_up_before_its_answer_is_acknowledged_then_ended_with_bye() {
    let mut ep = endpoint();
    let now = Instant::now();
    let (call, invite) = place(&mut ep, now);
    ep.send_bye(now, call, Some("Q.850;cause=16".into()));
    // No CANCEL before a provisional (RFC 3261 §9.1).
    assert!(drain(&mut ep).sent.is_empty());
    ep.handle_input(now, owner_flow(), &answer_to(&invite, 200));
    let d = drain(&mut ep);
    let methods: Vec<_> = d.sent.iter().filter_map(|m| m.method().cloned()).collect();
    assert_eq!(methods, vec![Method::Ack, Method::Bye]);
    assert_eq!(d.sent[1].header("Reason"), Some("Q.850;cause=16"));
    assert!(d.events.is_empty(), "the call that hung up hears no answer");
}

/// The far end's answer to our CANCEL of `invite`.
fn cancel_ok(invite: &Message) -> Vec<u8> {
    let via = invite.header("Via").unwrap();
    let from = invite.header("From").unwrap();
    let (cseq, _) = invite.cseq().unwrap();
    format!(
        "SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: {from}\r\nTo: <sip:room-42@{OWNER}>;tag=owner1\r\n\
Call-ID: leg-1\r\nCSeq: {cseq} CANCEL\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// A provisional answer to `invite`.
fn trying_to(invite: &Message) -> Vec<u8> {
    String::from_utf8(answer_to(invite, 200))
        .unwrap()
        .replace("SIP/2.0 200 OK", "SIP/2.0 100 Trying")
        .into_bytes()
}

#[test]
fn a_leg_hung_up_while_ringing_is_cancelled_and_its_487_acknowledged() {
    let mut ep = endpoint();
    let now = Instant::now();
    let (call, invite) = place(&mut ep, now);
    ep.handle_input(now, owner_flow(), &trying_to(&invite));
    assert!(drain(&mut ep).events.is_empty());
    ep.send_bye(now, call, None);
    let cancel = drain(&mut ep).sent.remove(0);
    assert_eq!(cancel.method(), Some(&Method::Cancel));
    assert_eq!(
        cancel.branch(),
        invite.branch(),
        "a CANCEL shares its INVITE's branch"
    );
    let (n, _) = invite.cseq().unwrap();
    assert_eq!(cancel.cseq(), Some((n, Method::Cancel)));
    assert_eq!(cancel.tag("To"), None);
    // Its 200 is the CANCEL's, not the INVITE's: no ACK, no answer told.
    ep.handle_input(now, owner_flow(), &cancel_ok(&invite));
    let d = drain(&mut ep);
    assert!(d.sent.is_empty() && d.events.is_empty(), "{:?}", d.sent);
    // The INVITE's 487: acknowledged, and the leg is over.
    let terminated = String::from_utf8(answer_to(&invite, 486))
        .unwrap()
        .replace("486 Busy Here", "487 Request Terminated");
    ep.handle_input(now, owner_flow(), terminated.as_bytes());
    let d = drain(&mut ep);
    assert_eq!(d.sent[0].method(), Some(&Method::Ack));
    assert!(matches!(
        &d.events[..],
        [(_, CallEvent::Refused { status: 487 })]
    ));
    assert_eq!(ep.active_dialogs(), 0);
}

#[test]
fn a_cancelled_leg_nobody_answers_any_more_gives_up_after_64_t1() {
    let mut ep = endpoint();
    let start = Instant::now();
    let (call, invite) = place(&mut ep, start);
    ep.handle_input(start, owner_flow(), &trying_to(&invite));
    ep.send_bye(start, call, None);
    drain(&mut ep);
    // Another provisional does not lift the limit on a cancelled INVITE.
    ep.handle_input(start, owner_flow(), &trying_to(&invite));
    drain(&mut ep);
    let mut events = Vec::new();
    while let Some(at) = ep.poll_timeout() {
        ep.handle_timeout(at);
        events.extend(drain(&mut ep).events);
        if !events.is_empty() {
            assert_eq!(at - start, 64 * TimerConfig::default().t1);
            break;
        }
    }
    assert!(matches!(&events[..], [(c, CallEvent::Refused { status: 408 })] if *c == call));
    assert_eq!(ep.active_dialogs(), 0);
}

#[test]
fn a_leg_hung_up_before_any_provisional_is_cancelled_when_one_comes() {
    let mut ep = endpoint();
    let now = Instant::now();
    let (call, invite) = place(&mut ep, now);
    ep.send_bye(now, call, None);
    assert!(
        drain(&mut ep).sent.is_empty(),
        "no CANCEL before a provisional"
    );
    ep.handle_input(now, owner_flow(), &trying_to(&invite));
    let d = drain(&mut ep);
    assert_eq!(d.sent.len(), 1);
    assert_eq!(d.sent[0].method(), Some(&Method::Cancel));
    assert_eq!(d.sent[0].branch(), invite.branch());
    // Once only.
    ep.handle_input(now, owner_flow(), &trying_to(&invite));
    assert!(drain(&mut ep).sent.is_empty());
}
