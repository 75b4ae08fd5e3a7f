//! Dialogs (RFC 3261 §12) as seen by a UAS — and, for the legs the
//! gateway places to other nodes, by a UAC — and the builders for the
//! responses and in-dialog requests the gateway sends.
//!
//! Responses copy Via (the top one stamped with `received`/`rport`, RFC 3581),
//! From, To (with our tag), Call-ID and CSeq, and for dialog-creating
//! responses Record-Route and our Contact (§12.1.1). In-dialog requests use
//! the remote target from the caller's Contact and the route set from
//! Record-Route in order (§12.2.1.1); loose routing only.

use std::net::{IpAddr, SocketAddr};

use rand::Rng;

use super::message::{
    Message, Method, StartLine, StatusCode, is_sip_uri, param, uri_of, uri_socket_addr,
};

pub type ConnId = u64;

/// How a message travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    /// One accepted TCP connection.
    Tcp(ConnId),
}

impl Transport {
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp(_))
    }

    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp(_) => "TCP",
        }
    }
}

/// Where a message came from or goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    pub transport: Transport,
    pub remote: SocketAddr,
}

/// The gateway's own SIP address as written in Via and Contact.
#[derive(Clone, Copy, Debug)]
pub struct LocalAddr {
    pub advertise: IpAddr,
    pub port: u16,
}

impl LocalAddr {
    pub fn host_port(&self) -> String {
        SocketAddr::new(self.advertise, self.port).to_string()
    }
}

/// Random token for tags and branches (RFC 3261 §19.3: at least 32 bits of randomness).
pub fn random_token(rng: &mut impl Rng) -> String {
    format!("{:016x}", rng.random::<u64>())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialogState {
    Early,
    Confirmed,
    /// We sent BYE and wait for its answer.
    Terminating,
}

/// A dialog: a UAS's, created by an incoming INVITE, or a UAC's, by an
/// INVITE we send (a leg to another node, [`Dialog::outgoing`]).
#[derive(Clone, Debug)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    /// Our identity: the INVITE's To without a tag.
    pub local_uri: String,
    /// The caller's From, with its tag.
    pub remote: String,
    pub remote_target: String,
    pub route_set: Vec<String>,
    pub local_cseq: u32,
    pub remote_cseq: u32,
    pub flow: Flow,
    pub state: DialogState,
    /// The dialog-creating INVITE, to answer it and its retransmissions.
    pub invite: Message,
    pub local_sdp: Option<Vec<u8>>,
    pub acked: bool,
    /// We sent the INVITE (a leg to another node).
    pub uac: bool,
    /// Hung up before our INVITE was answered: a 2xx that still comes is
    /// acknowledged and then ended with BYE (with this `Reason`).
    pub bye_on_answer: Option<Option<String>>,
    /// Hung up before any provisional came: the CANCEL goes with the
    /// first one (RFC 3261 §9.1 sends none before).
    pub cancel_pending: bool,
}

impl Dialog {
    /// The dialog `invite` creates; its tag and first CSeq drawn from `rng`.
    pub fn from_invite(invite: &Message, flow: Flow, rng: &mut impl Rng) -> Dialog {
        let route_set = invite
            .headers_named("Record-Route")
            .flat_map(split_list)
            .map(str::to_owned)
            .collect();
        Dialog {
            call_id: invite.call_id().to_owned(),
            local_tag: random_token(rng),
            local_uri: invite.header("To").unwrap_or_default().to_owned(),
            remote: invite.header("From").unwrap_or_default().to_owned(),
            // Without a Contact (which RFC 3261 §8.1.1.8 requires), the
            // caller's From if it is a SIP URI, else its address: our BYE
            // must carry a Request-URI a SIP peer reads.
            remote_target: invite
                .header("Contact")
                .or(invite.header("From"))
                .map(uri_of)
                .filter(|uri| is_sip_uri(uri))
                .map_or_else(|| format!("sip:{}", flow.remote), str::to_owned),
            route_set,
            local_cseq: rng.random_range(1..10_000),
            remote_cseq: invite.cseq().map_or(0, |(n, _)| n),
            flow,
            state: DialogState::Early,
            invite: invite.clone(),
            local_sdp: None,
            acked: false,
            uac: false,
            bye_on_answer: None,
            cancel_pending: false,
        }
    }

    /// The early dialog of an INVITE we send (`invite`, from `local_uri`
    /// with `local_tag`, CSeq `cseq`, to `target` over `flow`).
    pub fn outgoing(invite: &Message, local_uri: String, local_tag: String, flow: Flow) -> Dialog {
        let target = match &invite.start {
            StartLine::Request { uri, .. } => uri.clone(),
            StartLine::Response { .. } => String::new(),
        };
        Dialog {
            call_id: invite.call_id().to_owned(),
            local_tag,
            local_uri,
            remote: invite.header("To").unwrap_or_default().to_owned(),
            remote_target: target,
            route_set: Vec::new(),
            local_cseq: invite.cseq().map_or(1, |(n, _)| n),
            remote_cseq: 0,
            flow,
            state: DialogState::Early,
            invite: invite.clone(),
            local_sdp: Some(invite.body.clone()),
            acked: false,
            uac: true,
            bye_on_answer: None,
            cancel_pending: false,
        }
    }

    /// Our INVITE's 2xx (RFC 3261 §12.1.2): the far end's tag, its Contact
    /// as the remote target, Record-Route reversed as the route set.
    pub fn confirm_outgoing(&mut self, ok: &Message) {
        if let Some(to) = ok.header("To") {
            self.remote = to.to_owned();
        }
        if let Some(contact) = ok.header("Contact").map(uri_of).filter(|u| is_sip_uri(u)) {
            self.remote_target = contact.to_owned();
        }
        let mut routes: Vec<String> = ok
            .headers_named("Record-Route")
            .flat_map(split_list)
            .map(str::to_owned)
            .collect();
        routes.reverse();
        self.route_set = routes;
        self.state = DialogState::Confirmed;
    }

    /// The ACK of our INVITE's 2xx: its own transaction, the INVITE's CSeq
    /// number (RFC 3261 §13.2.2.4).
    pub fn ack(&self, local: &LocalAddr, branch: &str) -> Message {
        self.build(Method::Ack, self.local_cseq, local, branch)
    }

    /// Where in-dialog requests go: the first route, else the remote target,
    /// when they are IP literals; otherwise back along the INVITE's flow.
    pub fn request_flow(&self) -> Flow {
        if self.flow.transport.is_reliable() {
            return self.flow;
        }
        let next = self
            .route_set
            .first()
            .map_or(self.remote_target.as_str(), |r| uri_of(r));
        let remote = uri_socket_addr(next).unwrap_or(self.flow.remote);
        Flow {
            transport: self.flow.transport,
            remote,
        }
    }

    /// A new in-dialog request (BYE, …) with the next local CSeq.
    pub fn request(&mut self, method: Method, local: &LocalAddr, branch: &str) -> Message {
        self.local_cseq += 1;
        self.build(method, self.local_cseq, local, branch)
    }

    fn build(&self, method: Method, cseq: u32, local: &LocalAddr, branch: &str) -> Message {
        let flow = self.request_flow();
        let mut headers = vec![
            (
                "Via".to_owned(),
                format!(
                    "SIP/2.0/{} {};branch=z9hG4bK{};rport",
                    flow.transport.via_name(),
                    local.host_port(),
                    branch
                ),
            ),
            ("Max-Forwards".to_owned(), "70".to_owned()),
            (
                "From".to_owned(),
                format!("{};tag={}", self.local_uri, self.local_tag),
            ),
            ("To".to_owned(), self.remote.clone()),
            ("Call-ID".to_owned(), self.call_id.clone()),
            ("CSeq".to_owned(), format!("{cseq} {}", method.as_str())),
        ];
        for route in &self.route_set {
            headers.push(("Route".to_owned(), route.clone()));
        }
        headers.push(("User-Agent".to_owned(), "dialgate".to_owned()));
        Message {
            start: StartLine::Request {
                method,
                uri: self.remote_target.clone(),
            },
            headers,
            body: Vec::new(),
            uri_user: None,
        }
    }
}

/// Splits a comma-separated header list, keeping commas inside `<…>` and quotes.
pub fn split_list(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth <= 0 => {
                parts.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value[start..].trim());
    parts.retain(|p| !p.is_empty());
    parts
}

/// Stamps the top Via with `received` and a filled `rport` (RFC 3581).
fn stamp_via(via: &str, source: SocketAddr) -> String {
    let parts = split_list(via);
    let Some(top) = parts.first() else {
        return via.to_owned();
    };
    let mut stamped = String::new();
    let sent_by_host = top
        .split_whitespace()
        .nth(1)
        .and_then(|hp| hp.split(';').next())
        .map(|hp| {
            hp.rsplit_once(':')
                .map_or(hp, |(h, p)| if p.parse::<u16>().is_ok() { h } else { hp })
        })
        .map(|h| h.trim_matches(['[', ']']));
    let mut has_received = false;
    for (i, piece) in top.split(';').enumerate() {
        if i > 0 {
            stamped.push(';');
        }
        if piece.trim().eq_ignore_ascii_case("rport") {
            stamped.push_str(&format!("rport={}", source.port()));
        } else {
            has_received |= piece.trim().to_ascii_lowercase().starts_with("received=");
            stamped.push_str(piece);
        }
    }
    let needs_received =
        param(top, "rport").is_some() || sent_by_host != Some(source.ip().to_string().as_str());
    if needs_received && !has_received {
        stamped.push_str(&format!(";received={}", source.ip()));
    }
    let mut out = vec![stamped];
    out.extend(parts.iter().skip(1).map(|s| (*s).to_owned()));
    out.join(", ")
}

/// A response to `req` (RFC 3261 §8.2.6): Via, From, To (+`to_tag`), Call-ID, CSeq.
pub fn response(
    req: &Message,
    status: StatusCode,
    to_tag: Option<&str>,
    source: SocketAddr,
) -> Message {
    let mut headers = Vec::with_capacity(10);
    let mut first_via = true;
    for (name, value) in &req.headers {
        match name.as_str() {
            "Via" if first_via => {
                first_via = false;
                headers.push((name.clone(), stamp_via(value, source)));
            }
            "Via" | "From" | "Call-ID" | "CSeq" => headers.push((name.clone(), value.clone())),
            "To" => {
                let to = match to_tag {
                    Some(tag) if param(value, "tag").is_none() => format!("{value};tag={tag}"),
                    _ => value.clone(),
                };
                headers.push((name.clone(), to));
            }
            _ => {}
        }
    }
    headers.push(("Server".to_owned(), "dialgate".to_owned()));
    Message {
        start: StartLine::Response { status },
        headers,
        body: Vec::new(),
        uri_user: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::parse;

    const INVITE: &str = "INVITE sip:+15550100@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bK-7;rport\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-proxy\r\n\
Record-Route: <sip:10.0.0.1;lr>, <sip:10.0.0.2;lr>\r\n\
From: <sip:alice@10.0.0.9>;tag=a1\r\n\
To: <sip:+15550100@127.0.0.1>\r\n\
Call-ID: c-9\r\n\
CSeq: 7 INVITE\r\n\
Contact: <sip:alice@10.0.0.9:5070>\r\n\
Content-Length: 0\r\n\r\n";

    fn flow() -> Flow {
        Flow {
            transport: Transport::Udp,
            remote: "192.0.2.1:6000".parse().unwrap(),
        }
    }

    #[test]
    fn response_stamps_received_and_rport_and_keeps_all_vias() {
        let req = parse(INVITE.as_bytes()).unwrap();
        let resp = response(&req, StatusCode::OK, Some("t1"), flow().remote);
        let vias: Vec<&str> = resp.headers_named("Via").collect();
        assert_eq!(
            vias[0],
            "SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bK-7;rport=6000;received=192.0.2.1"
        );
        assert_eq!(vias[1], "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-proxy");
        assert_eq!(resp.tag("To"), Some("t1"));
        assert_eq!(resp.header("CSeq"), Some("7 INVITE"));
    }

    #[test]
    fn bye_follows_route_set_and_targets_contact() {
        let req = parse(INVITE.as_bytes()).unwrap();
        let mut d = Dialog::from_invite(&req, flow(), &mut rand::rng());
        assert_eq!(d.route_set, vec!["<sip:10.0.0.1;lr>", "<sip:10.0.0.2;lr>"]);
        let local = LocalAddr {
            advertise: "127.0.0.1".parse().unwrap(),
            port: 5060,
        };
        let start_cseq = d.local_cseq;
        let bye = d.request(Method::Bye, &local, "b1");
        assert_eq!(
            bye.start,
            StartLine::Request {
                method: Method::Bye,
                uri: "sip:alice@10.0.0.9:5070".into()
            }
        );
        assert_eq!(bye.tag("From"), Some(d.local_tag.as_str()));
        assert_eq!(bye.tag("To"), Some("a1"));
        assert_eq!(bye.cseq(), Some((start_cseq + 1, Method::Bye)));
        let routes: Vec<&str> = bye.headers_named("Route").collect();
        assert_eq!(routes, vec!["<sip:10.0.0.1;lr>", "<sip:10.0.0.2;lr>"]);
        assert_eq!(d.request_flow().remote, "10.0.0.1:5060".parse().unwrap());
    }

    #[test]
    fn list_split_keeps_commas_inside_brackets_and_quotes() {
        assert_eq!(
            split_list("\"a, b\" <sip:x,y>, <sip:z>"),
            vec!["\"a, b\" <sip:x,y>", "<sip:z>"]
        );
    }
}
