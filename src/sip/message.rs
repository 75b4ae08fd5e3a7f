//! SIP message reading and writing (RFC 3261 §7, §20), by our own grammar.
//!
//! [`parse`] frames the body by Content-Length, takes CRLF or LF line ends,
//! unfolds continuation lines, expands compact names (`v f t i m l c k s e
//! o`), keeps an unknown method so it can be answered 501, and checks the
//! start line, the Request-URI and the headers that may appear once. (It
//! once handed the text on to `rsip`, which added nothing RFC 4475's
//! torture messages or the fuzz corpus could tell: it is gone.)
//!
//! The result is a [`Message`]: the start line plus headers as ordered
//! `(name, value)` pairs with canonical names — what a UA core needs to
//! build responses and in-dialog requests. Nothing here panics on input.
//!
//! Here: the types, header names, URIs and writing. Reading is
//! `message/parse.rs`; where a message ends in a TCP stream,
//! `message/framing.rs`.

use std::fmt::Write as _;

use bytes::Bytes;

mod framing;
mod parse;

pub use framing::{Framer, MAX_BODY, frame_len};
pub use parse::{parse, salvage_for_400};

/// Methods this user agent knows; anything else is `Other`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Info,
    Register,
    Subscribe,
    Notify,
    Publish,
    Message,
    Refer,
    Update,
    Prack,
    Other(String),
}

impl Method {
    pub fn parse(token: &str) -> Method {
        match token.to_ascii_uppercase().as_str() {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "REGISTER" => Method::Register,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "PUBLISH" => Method::Publish,
            "MESSAGE" => Method::Message,
            "REFER" => Method::Refer,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            _ => Method::Other(token.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Register => "REGISTER",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Publish => "PUBLISH",
            Method::Message => "MESSAGE",
            Method::Refer => "REFER",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Other(s) => s,
        }
    }
}

/// The methods a dial-in UA accepts, for `Allow:`.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO";

/// A status code with the constants this UA sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatusCode(pub u16);

impl StatusCode {
    pub const TRYING: StatusCode = StatusCode(100);
    pub const RINGING: StatusCode = StatusCode(180);
    pub const OK: StatusCode = StatusCode(200);
    pub const BAD_REQUEST: StatusCode = StatusCode(400);
    pub const FORBIDDEN: StatusCode = StatusCode(403);
    pub const NOT_FOUND: StatusCode = StatusCode(404);
    pub const REQUEST_TIMEOUT: StatusCode = StatusCode(408);
    pub const UNSUPPORTED_URI_SCHEME: StatusCode = StatusCode(416);
    pub const BAD_EXTENSION: StatusCode = StatusCode(420);
    pub const METHOD_NOT_ALLOWED: StatusCode = StatusCode(405);
    pub const UNSUPPORTED_MEDIA_TYPE: StatusCode = StatusCode(415);
    pub const TEMPORARILY_UNAVAILABLE: StatusCode = StatusCode(480);
    pub const CALL_DOES_NOT_EXIST: StatusCode = StatusCode(481);
    pub const BUSY_HERE: StatusCode = StatusCode(486);
    pub const REQUEST_TERMINATED: StatusCode = StatusCode(487);
    pub const NOT_ACCEPTABLE_HERE: StatusCode = StatusCode(488);
    pub const BAD_INFO_PACKAGE: StatusCode = StatusCode(469);
    pub const REQUEST_PENDING: StatusCode = StatusCode(491);
    pub const SERVER_ERROR: StatusCode = StatusCode(500);
    pub const NOT_IMPLEMENTED: StatusCode = StatusCode(501);
    pub const SERVICE_UNAVAILABLE: StatusCode = StatusCode(503);
    pub const VERSION_NOT_SUPPORTED: StatusCode = StatusCode(505);

    pub fn reason(self) -> &'static str {
        match self.0 {
            100 => "Trying",
            180 => "Ringing",
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            403 => "Forbidden",
            408 => "Request Timeout",
            415 => "Unsupported Media Type",
            416 => "Unsupported URI Scheme",
            420 => "Bad Extension",
            480 => "Temporarily Unavailable",
            481 => "Call/Transaction Does Not Exist",
            486 => "Busy Here",
            487 => "Request Terminated",
            469 => "Bad Info Package",
            488 => "Not Acceptable Here",
            491 => "Request Pending",
            500 => "Server Internal Error",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            505 => "Version Not Supported",
            _ => "Unknown",
        }
    }

    pub fn is_provisional(self) -> bool {
        self.0 < 200
    }

    pub fn is_success(self) -> bool {
        (200..300).contains(&self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    Request { method: Method, uri: String },
    Response { status: StatusCode },
}

/// A parsed SIP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub start: StartLine,
    /// Headers in order, names canonical (`Via`, `Call-ID`, `CSeq`, …).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The Request-URI's user part, for requests that have one.
    pub uri_user: Option<String>,
}

#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum ParseError {
    #[error("no blank line ends the headers")]
    NoHeaderEnd,
    #[error("headers are not UTF-8")]
    NotUtf8,
    #[error("Content-Length is not a number")]
    BadContentLength,
    #[error("body shorter than Content-Length")]
    TruncatedBody,
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    #[error("malformed message: {0}")]
    Syntax(String),
    #[error("SIP version other than SIP/2.0")]
    Version,
    #[error("Request-URI scheme is not sip, sips or tel")]
    UriScheme,
    #[error("Content-Length headers disagree")]
    ConflictingContentLength,
    #[error("{0} appears more than once")]
    Duplicate(&'static str),
    #[error("CSeq method differs from the request's")]
    CseqMismatch,
}

/// Compact header forms (RFC 3261 §7.3.3 and later RFCs).
fn expand_compact(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "v" => "Via",
        "f" => "From",
        "t" => "To",
        "i" => "Call-ID",
        "m" => "Contact",
        "l" => "Content-Length",
        "c" => "Content-Type",
        "k" => "Supported",
        "s" => "Subject",
        "e" => "Content-Encoding",
        "o" => "Event",
        _ => return None,
    })
}

/// Canonical spelling for the headers this UA reads.
fn canonical(name: &str) -> String {
    if let Some(full) = expand_compact(name) {
        return full.to_owned();
    }
    const KNOWN: [&str; 20] = [
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Content-Length",
        "Content-Type",
        "Max-Forwards",
        "Record-Route",
        "Route",
        "Allow",
        "Supported",
        "User-Agent",
        "Server",
        "Reason",
        "P-Asserted-Identity",
        "Require",
        "Accept",
        "Expires",
    ];
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_owned(), |k| (*k).to_owned())
}

/// For a `sip:` or `sips:` URI: `Some(user)` (the user part, `None` when
/// it has none), or `None` if it is not such a URI. The user part runs to
/// the last `@` (it may hold `;`, RFC 4475 §3.1.1.9); no header part.
fn sip_uri_user(uri: &str) -> Option<Option<String>> {
    let (scheme, rest) = uri.split_once(':')?;
    if !(scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")) {
        return None;
    }
    if rest.is_empty() || rest.contains(['<', '>', '"']) || rest.bytes().any(|b| b < 0x21) {
        return None;
    }
    let user = rest
        .rsplit_once('@')
        .map(|(user, _)| user.to_owned())
        .filter(|u| !u.is_empty());
    Some(user)
}

fn tel_user(uri: &str) -> Option<String> {
    let scheme = uri.get(..4)?;
    let rest = uri.get(4..)?;
    scheme
        .eq_ignore_ascii_case("tel:")
        .then_some(rest)
        .map(|s| s.split(';').next().unwrap_or_default().to_owned())
}

impl ParseError {
    /// A short fixed description, safe to put on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::NoHeaderEnd => "no end of headers",
            ParseError::NotUtf8 => "headers not UTF-8",
            ParseError::BadContentLength => "bad Content-Length",
            ParseError::TruncatedBody => "body shorter than Content-Length",
            ParseError::MissingHeader(h) => h,
            ParseError::Syntax(_) => "malformed message",
            ParseError::Version => "SIP version not supported",
            ParseError::UriScheme => "URI scheme not supported",
            ParseError::ConflictingContentLength => "conflicting Content-Length",
            ParseError::Duplicate(h) => h,
            ParseError::CseqMismatch => "CSeq method mismatch",
        }
    }

    /// The status a request that failed with this error is answered with
    /// (RFC 3261 §8.2, RFC 4475).
    pub fn status(&self) -> StatusCode {
        match self {
            ParseError::Version => StatusCode::VERSION_NOT_SUPPORTED,
            ParseError::UriScheme => StatusCode::UNSUPPORTED_URI_SCHEME,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self.start {
            StartLine::Response { status } => Some(status),
            StartLine::Request { .. } => None,
        }
    }

    pub fn call_id(&self) -> &str {
        self.header("Call-ID").unwrap_or_default()
    }

    /// `(number, method)` from CSeq.
    pub fn cseq(&self) -> Option<(u32, Method)> {
        let v = self.header("CSeq")?;
        let mut it = v.split_whitespace();
        let n = it.next()?.parse().ok()?;
        Some((n, Method::parse(it.next()?)))
    }

    /// The top Via's branch parameter.
    pub fn branch(&self) -> Option<&str> {
        let via = self.header("Via")?;
        // A Via header may hold several comma-separated values: the first counts.
        let top = via.split(',').next()?;
        param(top, "branch")
    }

    /// The tag parameter of From or To.
    pub fn tag(&self, header: &str) -> Option<&str> {
        param(self.header(header)?, "tag")
    }

    pub fn content_type(&self) -> Option<&str> {
        self.header("Content-Type")
    }

    /// Serialises with Content-Length set from the body.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = String::with_capacity(512 + self.body.len());
        match &self.start {
            StartLine::Request { method, uri } => {
                let _ = write!(out, "{} {} SIP/2.0\r\n", method.as_str(), uri);
            }
            StartLine::Response { status } => {
                let _ = write!(out, "SIP/2.0 {} {}\r\n", status.0, status.reason());
            }
        }
        for (n, v) in &self.headers {
            if n != "Content-Length" {
                let _ = write!(out, "{n}: {v}\r\n");
            }
        }
        let _ = write!(out, "Content-Length: {}\r\n\r\n", self.body.len());
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        Bytes::from(bytes)
    }
}

/// A `sip:` or `sips:` URI that a request line we send may carry: one we
/// read ourselves (no white space, control characters, `<`, `>` or `"`,
/// which RFC 3986 escapes), so that the request reads back as sent.
pub fn is_sip_uri(uri: &str) -> bool {
    sip_uri_user(uri).is_some()
}

/// A `;name=value` parameter of a header value (outside `<…>`), case-insensitive name.
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let after_uri = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    after_uri.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The URI inside a name-addr (`"Bob" <sip:bob@h>;tag=x` → `sip:bob@h`) or an addr-spec.
pub fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// The user part of a SIP URI (`sip:alice@h` → `alice`).
pub fn uri_user(uri: &str) -> Option<&str> {
    let rest = uri.split_once(':')?.1;
    let (user, _) = rest.split_once('@')?;
    Some(user.split(';').next().unwrap_or(user))
}

/// `host[:port]` of a SIP URI parsed as a socket address when the host is an IP literal.
pub fn uri_socket_addr(uri: &str) -> Option<std::net::SocketAddr> {
    let rest = uri.split_once(':')?.1;
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let hostport = hostport.split([';', '?', '>']).next()?;
    if let Ok(sa) = hostport.parse() {
        return Some(sa);
    }
    if let Ok(ip) = hostport
        .trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
    {
        return Some(std::net::SocketAddr::new(ip, 5060));
    }
    None
}

#[cfg(test)]
mod tests;
