//! Tests for `rewrite`.

use std::collections::HashSet;

use super::*;
use dialgate::sip::message::parse;

const SDP: &str = "v=0\r\no=alice 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
    m=audio 40000 RTP/AVP 0 101\r\nm=video 40002 RTP/AVP 96\r\n";

fn trace_invite() -> Message {
    let text = format!(
        "INVITE sip:+15550100@10.0.0.9:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKtrace\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKproxy\r\n\
         From: \"Alice\" <sip:+15551234@10.0.0.5>;tag=tracetag\r\n\
         To: <sip:+15550100@10.0.0.9>\r\n\
         Call-ID: trace-call@10.0.0.5\r\nCSeq: 20 INVITE\r\n\
         Contact: <sip:alice@10.0.0.5:5062>\r\nMax-Forwards: 70\r\n\
         Record-Route: <sip:10.0.0.1;lr>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    );
    parse(text.as_bytes()).unwrap()
}

fn local(n: u16) -> Local {
    Local {
        sip: SocketAddr::from(([127, 0, 0, 1], 6000)),
        rtp: SocketAddr::from(([127, 0, 0, 1], 20_000 + 2 * n)),
    }
}

#[test]
fn every_virtual_call_has_its_own_call_id_tags_branches_and_ssrc() {
    let trace = trace_invite();
    let ids = Identities::random();
    let target: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let (mut call_ids, mut tags, mut branches, mut ssrcs) = (
        HashSet::new(),
        HashSet::new(),
        HashSet::new(),
        HashSet::new(),
    );
    let calls = 5_000u64;
    for i in 0..calls {
        let mut id = ids.get(i);
        let l = local((i % 1000) as u16);
        let inv = invite(&trace, &mut id, &l, target);
        let sent = parse(&inv.to_bytes()).unwrap();
        let mut dialog = Dialog {
            remote_tag: "gw".into(),
            remote_target: "sip:dialgate@127.0.0.1:5060".into(),
            cseq: 21,
        };
        let info = in_dialog(&trace, &mut id, &l, &mut dialog);
        let mut rtp = [0u8; 512];
        let len = id
            .rtp_into(
                &RtpPacket {
                    payload_type: 0,
                    marker: false,
                    sequence: 7,
                    timestamp: 160,
                    payload: vec![0xFF; 160],
                },
                &mut rtp,
            )
            .unwrap();
        let rtp = &rtp[..len];
        assert!(call_ids.insert(sent.call_id().to_owned()));
        assert!(tags.insert(sent.tag("From").unwrap().to_owned()));
        assert!(branches.insert(sent.branch().unwrap().to_owned()));
        assert!(branches.insert(info.branch().unwrap().to_owned()));
        let (h, _) = dialgate::media::rtp::read(rtp).unwrap();
        assert!(ssrcs.insert(h.ssrc));
    }
    assert_eq!(ssrcs.len() as u64, calls);
    // A second run differs from the first.
    let other = Identities::random().get(0);
    assert!(!call_ids.contains(&other.call_id));
}

#[test]
fn invite_points_at_the_target_and_this_calls_sockets() {
    let trace = trace_invite();
    let mut id = Identities::with_salt(7).get(3);
    let target: SocketAddr = "127.0.0.1:5070".parse().unwrap();
    let m = parse(&invite(&trace, &mut id, &local(1), target).to_bytes()).unwrap();
    assert_eq!(
        m.start,
        StartLine::Request {
            method: Method::Invite,
            uri: "sip:+15550100@127.0.0.1:5070".into()
        }
    );
    assert_eq!(m.headers_named("Via").count(), 1);
    assert!(
        m.header("Via")
            .unwrap()
            .starts_with("SIP/2.0/UDP 127.0.0.1:6000;")
    );
    assert_eq!(m.header("Record-Route"), None);
    assert_eq!(m.tag("To"), None);
    assert_eq!(m.tag("From"), Some(id.tag.as_str()));
    assert!(
        m.header("From")
            .unwrap()
            .starts_with("\"Alice\" <sip:+15551234@")
    );
    assert_eq!(m.header("Contact"), Some("<sip:alice@127.0.0.1:6000>"));
    assert_eq!(m.header("Recv-Info"), Some(OUTCOME_PACKAGE));
    let body = String::from_utf8(m.body.clone()).unwrap();
    assert!(body.contains("c=IN IP4 127.0.0.1\r\n"), "{body}");
    assert!(body.contains("m=audio 20002 RTP/AVP 0 101\r\n"), "{body}");
    assert!(body.contains("m=video 0 RTP/AVP 96\r\n"), "{body}");
    assert!(!body.contains("10.0.0.5"), "{body}");
}

#[test]
fn in_dialog_requests_follow_the_gateways_answer() {
    let trace = trace_invite();
    let mut id = Identities::with_salt(1).get(0);
    let mut dialog = Dialog {
        remote_tag: "gwtag".into(),
        remote_target: "sip:dialgate@127.0.0.1:5060".into(),
        cseq: 21,
    };
    let mut bye = trace.clone();
    bye.start = StartLine::Request {
        method: Method::Bye,
        uri: "sip:x@10.0.0.9".into(),
    };
    bye.body.clear();
    let a = in_dialog(&bye, &mut id, &local(0), &mut dialog);
    let b = in_dialog(&bye, &mut id, &local(0), &mut dialog);
    assert_eq!(a.header("CSeq"), Some("21 BYE"));
    assert_eq!(b.header("CSeq"), Some("22 BYE"));
    assert_eq!(a.tag("To"), Some("gwtag"));
    assert_ne!(a.branch(), b.branch());
    assert_eq!(
        a.start,
        StartLine::Request {
            method: Method::Bye,
            uri: "sip:dialgate@127.0.0.1:5060".into()
        }
    );
}

#[test]
fn ack_for_2xx_is_a_new_transaction_and_for_errors_reuses_the_invites() {
    let trace = trace_invite();
    let mut id = Identities::with_salt(1).get(0);
    let target: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let sent = invite(&trace, &mut id, &local(0), target);
    let mut ok = respond(&sent, StatusCode::OK, &id, &local(0), None);
    set(&mut ok, "To", "<sip:+15550100@127.0.0.1>;tag=gw".into());
    set(&mut ok, "Contact", "<sip:dialgate@127.0.0.1:5060>".into());
    let ack_ok = ack(&sent, &ok, &mut id, &local(0));
    assert_ne!(ack_ok.branch(), sent.branch());
    assert!(
        ack_ok
            .header("Via")
            .unwrap()
            .starts_with("SIP/2.0/UDP 127.0.0.1:6000;")
    );
    assert_eq!(ack_ok.tag("To"), Some("gw"));
    assert_eq!(ack_ok.header("CSeq"), Some("20 ACK"));
    assert!(ack_ok.body.is_empty());
    let mut busy = ok.clone();
    busy.start = StartLine::Response {
        status: StatusCode(486),
    };
    let ack_busy = ack(&sent, &busy, &mut id, &local(0));
    assert_eq!(ack_busy.branch(), sent.branch());
    let c = cancel(&sent);
    assert_eq!(c.branch(), sent.branch());
    assert_eq!(c.header("CSeq"), Some("20 CANCEL"));
}

#[test]
fn tags_are_replaced_not_doubled() {
    assert_eq!(
        with_tag("<sip:a@b>;tag=1;x=y", Some("2")),
        "<sip:a@b>;x=y;tag=2"
    );
    assert_eq!(with_tag("sip:a@b;tag=1", None), "sip:a@b");
    assert_eq!(
        with_tag("<sip:a@b;user=phone>", Some("t")),
        "<sip:a@b;user=phone>;tag=t"
    );
}
