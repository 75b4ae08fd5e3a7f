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
mod tests;
