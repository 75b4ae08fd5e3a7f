use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::synth::{Keying, keyed_code};
use crate::trace::Datagram;

const CALLER: &str = "127.0.0.1:5062";
const GATEWAY: &str = "127.0.0.1:5060";
const CALLER_RTP: &str = "127.0.0.1:40000";
const GATEWAY_RTP: &str = "127.0.0.1:30000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn request(
    method: &str,
    cseq: u32,
    branch: &str,
    to_tag: bool,
    extra: &str,
    body: &str,
) -> Vec<u8> {
    let to = if to_tag { ";tag=gw" } else { "" };
    format!(
        "{method} sip:+15550100@{GATEWAY} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch={branch}\r\n\
         From: <sip:alice@{CALLER}>;tag=al\r\nTo: <sip:+15550100@{GATEWAY}>{to}\r\n\
         Call-ID: c1\r\nCSeq: {cseq} {method}\r\nContact: <sip:alice@{CALLER}>\r\n{extra}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn response(
    status: &str,
    cseq: u32,
    method: &str,
    branch: &str,
    extra: &str,
    body: &str,
) -> Vec<u8> {
    format!(
        "SIP/2.0 {status}\r\nVia: SIP/2.0/UDP {CALLER};branch={branch}\r\n\
         From: <sip:alice@{CALLER}>;tag=al\r\nTo: <sip:+15550100@{GATEWAY}>;tag=gw\r\n\
         Call-ID: c1\r\nCSeq: {cseq} {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn offer() -> String {
    "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
     m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
        .into()
}

struct Builder(Vec<Datagram>);

impl Builder {
    fn up(&mut self, ms: u64, payload: Vec<u8>) {
        self.0.push(Datagram {
            at: Duration::from_millis(ms),
            src: addr(CALLER),
            dst: addr(GATEWAY),
            payload,
        });
    }
    fn down(&mut self, ms: u64, payload: Vec<u8>) {
        self.0.push(Datagram {
            at: Duration::from_millis(ms),
            src: addr(GATEWAY),
            dst: addr(CALLER),
            payload,
        });
    }
    fn answered() -> Builder {
        let mut b = Builder(Vec::new());
        let sdp_type = "Content-Type: application/sdp\r\n";
        b.up(0, request("INVITE", 1, "b1", false, sdp_type, &offer()));
        // A retransmission of the INVITE: dropped.
        b.up(500, request("INVITE", 1, "b1", false, sdp_type, &offer()));
        b.down(510, response("100 Trying", 1, "INVITE", "b1", "", ""));
        let answer = offer().replace("40000", "30000");
        b.down(
            600,
            response("200 OK", 1, "INVITE", "b1", sdp_type, &answer),
        );
        b.up(610, request("ACK", 1, "b2", true, "", ""));
        b
    }
    fn trace(mut self) -> Trace {
        self.0.sort_by_key(|d| d.at);
        Trace {
            datagrams: self.0,
            skipped: 0,
        }
    }
}

/// A call keying `code` by RFC 4733 from 700 ms, hanging up 1 s after.
fn rfc4733_trace(code: &str) -> Trace {
    let mut b = Builder::answered();
    let packets = keyed_code(code, &Keying::default()).unwrap();
    let mut last = 0;
    for p in &packets {
        let at = 700 + p.at.as_millis() as u64;
        last = at;
        b.0.push(Datagram {
            at: Duration::from_millis(at),
            src: addr(CALLER_RTP),
            dst: addr(GATEWAY_RTP),
            payload: p.bytes.clone(),
        });
        // The gateway's RTP is not the caller's.
        b.0.push(Datagram {
            at: Duration::from_millis(at),
            src: addr(GATEWAY_RTP),
            dst: addr(CALLER_RTP),
            payload: p.bytes.clone(),
        });
    }
    b.up(last + 1000, request("BYE", 2, "b3", true, "", ""));
    b.down(last + 1010, response("200 OK", 2, "BYE", "b3", "", ""));
    b.trace()
}

fn info_trace(code: &str) -> Trace {
    let mut b = Builder::answered();
    let mut at = 1000;
    for (n, key) in code.chars().enumerate() {
        let branch = format!("i{n}");
        let body = format!("Signal={key}\r\nDuration=160\r\n");
        b.up(
            at,
            request(
                "INFO",
                2 + n as u32,
                &branch,
                true,
                "Content-Type: application/dtmf-relay\r\n",
                &body,
            ),
        );
        b.down(
            at + 5,
            response("200 OK", 2 + n as u32, "INFO", &branch, "", ""),
        );
        at += 300;
    }
    b.down(
        at + 500,
        request(
            "BYE",
            1,
            "g1",
            true,
            "Reason: SIP;cause=403;text=\"wrong\"\r\n",
            "",
        ),
    );
    b.trace()
}

fn requests(s: &Script) -> Vec<(Duration, String)> {
    s.steps
        .iter()
        .filter_map(|st| match &st.kind {
            StepKind::Request { message, .. } => {
                Some((st.at, message.method()?.as_str().to_owned()))
            }
            StepKind::Rtp(_) => None,
        })
        .collect()
}

fn rtp(s: &Script) -> Vec<(Duration, &RtpPacket)> {
    s.steps
        .iter()
        .filter_map(|st| match &st.kind {
            StepKind::Rtp(p) => Some((st.at, p)),
            StepKind::Request { .. } => None,
        })
        .collect()
}

#[test]
fn caller_side_is_taken_without_retransmissions_acks_or_the_gateways_rtp() {
    let trace = rfc4733_trace("123#");
    let s = Script::from_trace(&trace).unwrap();
    assert_eq!(s.answered_at, Some(Duration::from_millis(600)));
    assert_eq!(s.expected.invite_status, Some(200));
    assert_eq!(s.expected.gateway_bye, None);
    let reqs = requests(&s);
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].1, "BYE");
    let StepKind::Request { expect, .. } = &s
        .steps
        .iter()
        .find(|st| matches!(st.kind, StepKind::Request { .. }))
        .unwrap()
        .kind
    else {
        unreachable!()
    };
    assert_eq!(*expect, Some(200));
    let sent = keyed_code("123#", &Keying::default()).unwrap();
    assert_eq!(rtp(&s).len(), sent.len());
    assert_eq!(s.media.event_payload_type, Some(101));
    assert_eq!(s.media.audio_payload_type, Some(0));
    assert_eq!(s.media.clock_rate, 8000);
    assert_eq!(s.keyed(), "123#");
}

#[test]
fn sip_info_keys_and_the_gateways_bye_are_read() {
    let s = Script::from_trace(&info_trace("42#")).unwrap();
    assert_eq!(s.keyed(), "42#");
    assert!(s.presses().iter().all(|p| p.via == Via::SipInfo));
    assert_eq!(
        s.expected.gateway_bye,
        Some(Some("SIP;cause=403;text=\"wrong\"".into()))
    );
}

#[test]
fn a_longer_code_by_rfc4733_is_keyed_and_what_follows_moves_later() {
    let s = Script::from_trace(&rfc4733_trace("12#")).unwrap();
    let before_bye = requests(&s)[0].0;
    let presses = s.presses();
    let pitch = presses[1].start - presses[0].start;
    let longer = s.with_codes(&["98765"]).unwrap();
    assert_eq!(longer.keyed(), "98765#");
    // Three more keys: everything after the code is three pitches later.
    assert_eq!(requests(&longer)[0].0, before_bye + pitch * 3);
    // Still one stream: sequence +1 per packet, time in order.
    let packets = rtp(&longer);
    for w in packets.windows(2) {
        assert_eq!(w[1].1.sequence, w[0].1.sequence.wrapping_add(1));
        assert!(w[1].0 >= w[0].0);
    }
    // Each press has one event timestamp, different from the others, and
    // the receiver the gateway runs hears each key once.
    let mut rx = dialgate::dtmf::rfc4733::Receiver::new();
    let t0 = std::time::Instant::now();
    let heard: String = packets
        .iter()
        .filter(|(_, p)| p.payload_type == 101)
        .filter_map(|(at, p)| rx.on_packet(t0 + *at, p.timestamp, p.marker, &p.payload))
        .map(Key::to_char)
        .collect();
    assert_eq!(heard, "98765#");
    // Audio after the code carries on in timestamp with the time it moved.
    let audio: Vec<_> = packets
        .iter()
        .filter(|(_, p)| p.payload_type == 0)
        .collect();
    let (a, b) = (audio[audio.len() - 2], audio[audio.len() - 1]);
    assert_eq!(b.1.timestamp.wrapping_sub(a.1.timestamp), 160);
}

#[test]
fn a_shorter_code_by_sip_info_replaces_the_infos() {
    let s = Script::from_trace(&info_trace("123456#")).unwrap();
    let short = s.with_codes(&["7"]).unwrap();
    assert_eq!(short.keyed(), "7#");
    let reqs = requests(&short);
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].0 - reqs[0].0, Duration::from_millis(300));
    let StepKind::Request { message, expect } = &short.steps[0].kind else {
        panic!("INFO first")
    };
    assert_eq!(*expect, Some(200));
    assert_eq!(message.body, b"Signal=7\r\nDuration=160\r\n");
}

#[test]
fn a_second_code_replaces_the_second_group_only() {
    let s = Script::from_trace(&info_trace("11#22#33#")).unwrap();
    assert_eq!(s.with_codes(&["5", "66"]).unwrap().keyed(), "5#66#33#");
}

#[test]
fn codes_need_keys_to_replace_and_digits_to_key() {
    let mut b = Builder::answered();
    b.up(2000, request("BYE", 2, "b3", true, "", ""));
    let silent = Script::from_trace(&b.trace()).unwrap();
    assert_eq!(silent.with_codes(&["1"]), Err(ScriptError::NoKeys));
    let s = Script::from_trace(&info_trace("1#")).unwrap();
    assert!(matches!(
        s.with_codes(&["12a"]),
        Err(ScriptError::BadCode(_))
    ));
    let empty = Trace::default();
    assert_eq!(Script::from_trace(&empty), Err(ScriptError::NoInvite));
}
