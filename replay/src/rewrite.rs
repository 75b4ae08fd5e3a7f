//! Making one recorded call into many: per virtual call a fresh identity
//! (Call-ID, From tag, branches, SSRC, RTP sequence and timestamp bases) and
//! the trace's messages rewritten to it — Request-URI, Via, Contact and SDP
//! `o=`/`c=`/`m=` pointing at this replay's sockets, CSeq numbered anew
//! within the dialog, the gateway's tag and Contact taken from its answer.
//!
//! Identities are unique within a run by construction: Call-ID, tag and
//! branch carry the call's index, and the SSRC is the index through a
//! bijection of 32-bit numbers, so no two of 2³² calls share one.

use std::net::SocketAddr;

use rand::Rng;
use rtp_rs::{RtpPacketBuilder, Seq};

use dialgate::sip::message::{Message, Method, StartLine, StatusCode, param, uri_of, uri_user};

use super::script::RtpPacket;

pub use dialgate::access::OUTCOME_PACKAGE;

/// Where one virtual call lives on this side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Local {
    pub sip: SocketAddr,
    pub rtp: SocketAddr,
}

/// A virtual call's own identifiers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub index: u64,
    pub call_id: String,
    pub tag: String,
    pub ssrc: u32,
    pub sequence_offset: u16,
    pub timestamp_offset: u32,
    run: u64,
    branches: u32,
}

/// Hands out identities for one run.
#[derive(Clone, Copy, Debug)]
pub struct Identities {
    run: u64,
}

impl Identities {
    /// A run with a random salt, so two runs' calls differ too.
    pub fn random() -> Identities {
        Identities {
            run: rand::rng().random(),
        }
    }

    pub fn with_salt(run: u64) -> Identities {
        Identities { run }
    }

    pub fn get(&self, index: u64) -> Identity {
        let mixed = (index as u32).wrapping_mul(0x9E37_79B9);
        Identity {
            index,
            call_id: format!(
                "{:012x}-{index}@dialgate-replay",
                self.run & 0xFFFF_FFFF_FFFF
            ),
            tag: format!("{:08x}-{index}", (self.run >> 16) as u32),
            ssrc: mixed ^ (self.run as u32),
            sequence_offset: (self.run >> 32) as u16 ^ (index as u16).wrapping_mul(40_503),
            timestamp_offset: (self.run >> 20) as u32 ^ mixed.rotate_left(7),
            run: self.run,
            branches: 0,
        }
    }
}

impl Identity {
    /// A branch no other request of the run carries.
    pub fn next_branch(&mut self) -> String {
        self.branches += 1;
        format!(
            "z9hG4bK{:06x}-{}-{}",
            self.run as u32 & 0xFF_FFFF,
            self.index,
            self.branches
        )
    }

    /// Writes the caller's RTP packet, as this call sends it, into `out`;
    /// its length, or `None` when `out` is too small for it.
    pub fn rtp_into(&self, p: &RtpPacket, out: &mut [u8]) -> Option<usize> {
        RtpPacketBuilder::new()
            .payload_type(p.payload_type & 0x7F)
            .marked(p.marker)
            .ssrc(self.ssrc)
            .sequence(Seq::from(p.sequence.wrapping_add(self.sequence_offset)))
            .timestamp(p.timestamp.wrapping_add(self.timestamp_offset))
            .payload(&p.payload)
            .build_into(out)
            .ok()
    }
}

/// What the gateway's answer told us about the dialog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dialog {
    pub remote_tag: String,
    /// The gateway's Contact URI: where in-dialog requests go.
    pub remote_target: String,
    /// Our next CSeq number.
    pub cseq: u32,
}

fn set(m: &mut Message, name: &str, value: String) {
    let mut value = Some(value);
    m.headers.retain_mut(|(n, v)| {
        if n != name {
            return true;
        }
        match value.take() {
            Some(new) => {
                *v = new;
                true
            }
            None => false,
        }
    });
    if let Some(v) = value {
        m.headers.push((name.to_owned(), v));
    }
}

fn remove(m: &mut Message, name: &str) {
    m.headers.retain(|(n, _)| n != name);
}

/// A From/To value with its tag replaced (or removed).
pub fn with_tag(value: &str, tag: Option<&str>) -> String {
    let (head, params) = match value.rfind('>') {
        Some(i) => value.split_at(i + 1),
        None => match value.find(';') {
            Some(i) => value.split_at(i),
            None => (value, ""),
        },
    };
    let mut out = head.trim().to_owned();
    for p in params.split(';').skip(1) {
        let name = p.split('=').next().unwrap_or_default().trim();
        if !name.eq_ignore_ascii_case("tag") && !p.trim().is_empty() {
            out.push(';');
            out.push_str(p.trim());
        }
    }
    if let Some(tag) = tag {
        out.push_str(";tag=");
        out.push_str(tag);
    }
    out
}

/// The SDP of an offer or answer with our RTP address, port and session id.
pub fn sdp(body: &[u8], rtp: SocketAddr, session: u64) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let family = if rtp.is_ipv4() { "IP4" } else { "IP6" };
    let mut out = String::with_capacity(text.len() + 32);
    let mut audio_done = false;
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(o) = line.strip_prefix("o=") {
            let f: Vec<&str> = o.split_whitespace().collect();
            let user = f.first().copied().unwrap_or("-");
            out.push_str(&format!(
                "o={user} {session} {session} IN {family} {}",
                rtp.ip()
            ));
        } else if line.starts_with("c=") {
            out.push_str(&format!("c=IN {family} {}", rtp.ip()));
        } else if let Some(m) = line.strip_prefix("m=") {
            let mut f = m.splitn(3, ' ');
            let (kind, _port, rest) = (f.next(), f.next(), f.next());
            let port = if kind == Some("audio") && !audio_done {
                audio_done = true;
                rtp.port()
            } else {
                0
            };
            out.push_str(&format!(
                "m={} {port} {}",
                kind.unwrap_or("audio"),
                rest.unwrap_or("RTP/AVP 0")
            ));
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    out.into_bytes()
}

fn contact(user: &str, local: &Local) -> String {
    format!("<sip:{user}@{}>", local.sip)
}

fn via(local: &Local, branch: &str) -> String {
    format!("SIP/2.0/UDP {};rport;branch={branch}", local.sip)
}

/// The trace's INVITE as this call sends it to `target`.
pub fn invite(trace: &Message, id: &mut Identity, local: &Local, target: SocketAddr) -> Message {
    let mut m = trace.clone();
    let uri = match &trace.start {
        StartLine::Request { uri, .. } => uri.as_str(),
        StartLine::Response { .. } => "",
    };
    let user = uri_user(uri).unwrap_or("s").to_owned();
    m.start = StartLine::Request {
        method: Method::Invite,
        uri: format!("sip:{user}@{target}"),
    };
    common(&mut m, id, local);
    let to = trace.header("To").unwrap_or_default();
    set(&mut m, "To", with_tag(to, None));
    set(&mut m, "Recv-Info", OUTCOME_PACKAGE.to_owned());
    if !m.body.is_empty() {
        m.body = sdp(&m.body, local.rtp, 1_000_000 + id.index);
    }
    m
}

/// Via, Call-ID, From tag, Contact: the same for every request of the call.
fn common(m: &mut Message, id: &mut Identity, local: &Local) {
    let branch = id.next_branch();
    remove(m, "Via");
    m.headers.insert(0, ("Via".into(), via(local, &branch)));
    for name in ["Route", "Record-Route", "Content-Length", "Authorization"] {
        remove(m, name);
    }
    set(m, "Call-ID", id.call_id.clone());
    let from = m
        .header("From")
        .unwrap_or("<sip:replay@invalid>")
        .to_owned();
    set(m, "From", with_tag(&from, Some(&id.tag)));
    if m.header("Contact").is_some() {
        let user = m
            .header("Contact")
            .and_then(|c| uri_user(uri_of(c)).map(str::to_owned))
            .unwrap_or_else(|| "replay".into());
        set(m, "Contact", contact(&user, local));
    }
    if m.header("Max-Forwards").is_none() {
        m.headers.push(("Max-Forwards".into(), "70".into()));
    }
}

/// A request of the trace sent inside this call's dialog.
pub fn in_dialog(
    trace: &Message,
    id: &mut Identity,
    local: &Local,
    dialog: &mut Dialog,
) -> Message {
    let mut m = trace.clone();
    let method = trace.method().cloned().unwrap_or(Method::Info);
    m.start = StartLine::Request {
        method: method.clone(),
        uri: dialog.remote_target.clone(),
    };
    common(&mut m, id, local);
    let to = trace.header("To").unwrap_or_default();
    set(&mut m, "To", with_tag(to, Some(&dialog.remote_tag)));
    set(
        &mut m,
        "CSeq",
        format!("{} {}", dialog.cseq, method.as_str()),
    );
    dialog.cseq += 1;
    let is_sdp = m
        .content_type()
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/sdp"));
    if is_sdp {
        m.body = sdp(&m.body, local.rtp, 1_000_000 + id.index);
    }
    m
}

/// CANCEL for the INVITE we sent (same branch, CSeq number, Request-URI).
pub fn cancel(sent_invite: &Message) -> Message {
    let mut m = sent_invite.clone();
    let uri = match &sent_invite.start {
        StartLine::Request { uri, .. } => uri.clone(),
        StartLine::Response { .. } => String::new(),
    };
    m.start = StartLine::Request {
        method: Method::Cancel,
        uri,
    };
    let n = sent_invite.cseq().map_or(1, |c| c.0);
    set(&mut m, "CSeq", format!("{n} CANCEL"));
    for name in ["Content-Type", "Contact", "Recv-Info", "Supported", "Allow"] {
        remove(&mut m, name);
    }
    m.body.clear();
    m
}

/// ACK for the INVITE's final response: a new transaction to the gateway's
/// Contact for a 2xx, the INVITE's own branch and URI otherwise (§17.1.1.3).
pub fn ack(sent_invite: &Message, response: &Message, id: &mut Identity, local: &Local) -> Message {
    let success = response.status().is_some_and(StatusCode::is_success);
    let mut m = sent_invite.clone();
    let uri = match (&sent_invite.start, response.header("Contact")) {
        (_, Some(c)) if success => uri_of(c).to_owned(),
        (StartLine::Request { uri, .. }, _) => uri.clone(),
        _ => String::new(),
    };
    m.start = StartLine::Request {
        method: Method::Ack,
        uri,
    };
    if success {
        let branch = id.next_branch();
        set(&mut m, "Via", via(local, &branch));
    }
    if let Some(to) = response.header("To") {
        set(&mut m, "To", to.to_owned());
    }
    let n = sent_invite.cseq().map_or(1, |c| c.0);
    set(&mut m, "CSeq", format!("{n} ACK"));
    for name in ["Content-Type", "Recv-Info", "Supported", "Allow", "Contact"] {
        remove(&mut m, name);
    }
    m.body.clear();
    m
}

/// Our answer to a request the gateway sent (BYE, INFO, re-INVITE, OPTIONS).
pub fn respond(
    request: &Message,
    status: StatusCode,
    id: &Identity,
    local: &Local,
    body: Option<Vec<u8>>,
) -> Message {
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .filter(|(n, _)| matches!(n.as_str(), "Via" | "From" | "Call-ID" | "CSeq"))
        .cloned()
        .collect();
    let to = request.header("To").unwrap_or_default();
    let to = if param(to, "tag").is_some() {
        to.to_owned()
    } else {
        with_tag(to, Some(&id.tag))
    };
    headers.push(("To".into(), to));
    if status.is_success() && request.method() == Some(&Method::Invite) {
        headers.push(("Contact".into(), contact("replay", local)));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() {
        headers.push(("Content-Type".into(), "application/sdp".into()));
    }
    Message {
        start: StartLine::Response { status },
        headers,
        body,
        uri_user: None,
    }
}

#[cfg(test)]
mod tests {
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
}
