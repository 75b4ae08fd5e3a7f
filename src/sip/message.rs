//! SIP message reading and writing (RFC 3261 §7, §20), with `rsip` as the
//! parser.
//!
//! rsip parses and prints but has gaps: it ignores
//! Content-Length, does not know compact header forms, refuses unknown
//! methods, LF-only line ends and folded headers. [`parse`] covers them
//! before rsip sees the text: it frames the body by Content-Length, turns
//! line ends into CRLF, unfolds continuation lines, expands compact names
//! (`v f t i m l c k s e o`), and swaps an unknown method for a placeholder
//! so the message still parses and can be answered 501.
//!
//! The result is a [`Message`]: the start line plus headers as ordered
//! `(name, value)` pairs with canonical names — what a UA core needs to
//! build responses and in-dialog requests. Nothing here panics on input.

use std::fmt::Write as _;

use bytes::Bytes;

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

/// The largest body accepted (SIP over UDP cannot carry more anyway).
pub const MAX_BODY: usize = 64 * 1024;

/// Splits a stream buffer: returns the length of the first whole message
/// (headers plus Content-Length body), or `None` if more bytes are needed.
/// Used to frame SIP over TCP (RFC 3261 §18.3). Leading CRLF keep-alives are
/// counted into the message they precede.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    Framer::default().next_len(buf)
}

fn find_header_end(buf: &[u8]) -> Option<(usize, usize)> {
    find_header_end_from(buf, 0)
}

/// The first blank line (CRLF CRLF, or LF LF) that ends at or after `from`
/// (a blank line that straddles `from` is found too): its start and where
/// the body begins.
fn find_header_end_from(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let at = |back: usize| from.saturating_sub(back).min(buf.len());
    let crlf = buf[at(3)..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (at(3) + i, at(3) + i + 4));
    let lf = buf[at(1)..]
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (at(1) + i, at(1) + i + 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// [`frame_len`] for a stream read a piece at a time: it remembers how far
/// it has looked for the end of the headers, and the message's length once
/// it has read them, so each read costs what it added, not the whole
/// buffer again (a peer sending a 60 KB header a byte at a time would
/// otherwise cost 60 KB² of scanning). Sans-IO: the caller owns the buffer,
/// and after a `Some(len)` takes those `len` bytes off its front before
/// calling again.
#[derive(Debug, Default)]
pub struct Framer {
    /// Bytes of the buffer already searched for the end of the headers.
    scanned: usize,
    /// The whole message's length, once its headers are read.
    total: Option<usize>,
}

impl Framer {
    /// As [`frame_len`] on `buf`.
    pub fn next_len(&mut self, buf: &[u8]) -> Result<Option<usize>, ParseError> {
        let total = match self.total {
            Some(total) => total,
            None => {
                let Some((head_end, body_start)) = find_header_end_from(buf, self.scanned) else {
                    if buf.len() > 64 * 1024 {
                        return Err(ParseError::NoHeaderEnd);
                    }
                    self.scanned = buf.len();
                    return Ok(None);
                };
                let head =
                    std::str::from_utf8(&buf[..head_end]).map_err(|_| ParseError::NotUtf8)?;
                let len = content_length(head)?.unwrap_or(0);
                let total = body_start
                    .checked_add(len)
                    .ok_or(ParseError::BadContentLength)?;
                self.total = Some(total);
                total
            }
        };
        if buf.len() < total {
            return Ok(None);
        }
        *self = Framer::default();
        Ok(Some(total))
    }

    /// How much of the buffer has been searched (for tests of the cost).
    pub fn scanned(&self) -> usize {
        self.scanned
    }
}

fn unfolded_lines(head: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for raw in head.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if (line.starts_with(' ') || line.starts_with('\t')) && !lines.is_empty() {
            if let Some(last) = lines.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else {
            lines.push(line.to_owned());
        }
    }
    lines
}

fn content_length(head: &str) -> Result<Option<usize>, ParseError> {
    let mut found = None;
    for line in unfolded_lines(head).iter().skip(1) {
        if let Some((name, value)) = line.split_once(':')
            && canonical(name.trim()) == "Content-Length"
        {
            // 1*DIGIT, strictly: no sign, no space inside (RFC 3261 §20.14).
            let value = value.trim();
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::BadContentLength);
            }
            let len = match value.parse::<usize>() {
                Ok(len) if len <= MAX_BODY => len,
                _ => return Err(ParseError::BadContentLength),
            };
            // Two that disagree leave the framing unknowable (RFC 4475 §3.1.2.8).
            if found.is_some_and(|f| f != len) {
                return Err(ParseError::ConflictingContentLength);
            }
            found = Some(len);
        }
    }
    Ok(found)
}

/// Headers that may appear once only (RFC 3261 §7.3.1: not a
/// comma-separated list).
const SINGLE: [&str; 6] = [
    "Call-ID",
    "CSeq",
    "From",
    "To",
    "Max-Forwards",
    "Content-Type",
];

/// Checks a request line before the rest is read: three words (400
/// otherwise), the version SIP/2.0 (505 otherwise) and the Request-URI's
/// scheme sip, sips or tel (416 otherwise).
fn check_request_line(first: &str) -> Result<(), ParseError> {
    let mut words = first.split(' ');
    // Method SP Request-URI SP SIP-Version (RFC 3261 §7.1), exactly: rsip
    // would read a URI on across spaces, or across the line break to a
    // version further down, and our own copy of the line would then differ.
    let (Some(_method), Some(uri), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(ParseError::Syntax(
            "request line is not method SP Request-URI SP version".into(),
        ));
    };
    let version_ok = version.eq_ignore_ascii_case("SIP/2.0");
    // By bytes: the word may hold any UTF-8, and a char may straddle byte 4.
    let says_sip = version
        .as_bytes()
        .get(..4)
        .is_some_and(|v| v.eq_ignore_ascii_case(b"SIP/"));
    if !says_sip {
        return Err(ParseError::Syntax(
            "request line does not end in a SIP version".into(),
        ));
    }
    if !version_ok {
        return Err(ParseError::Version);
    }
    let scheme = uri.split_once(':').map(|(s, _)| s).unwrap_or("");
    let known = ["sip", "sips", "tel"]
        .iter()
        .any(|k| scheme.eq_ignore_ascii_case(k));
    let looks_like_scheme = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if looks_like_scheme && !known {
        return Err(ParseError::UriScheme);
    }
    Ok(())
}

/// Checks a status line: the Status-Code is three digits, 100 to 699
/// (RFC 3261 §7.2, §21), which is what our own copy of it writes.
fn check_status_line(first: &str) -> Result<(), ParseError> {
    let code = first.split(' ').nth(1).unwrap_or_default().as_bytes();
    match code {
        [b'1'..=b'6', b'0'..=b'9', b'0'..=b'9'] => Ok(()),
        _ => Err(ParseError::Syntax(
            "status code is not three digits from 100 to 699".into(),
        )),
    }
}

/// Reads one SIP message from a datagram or a framed stream chunk.
pub fn parse(buf: &[u8]) -> Result<Message, ParseError> {
    // Keep-alive CRLFs before a message are ignored (RFC 5626 §3.5.1).
    let start = buf
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(buf.len());
    let buf = &buf[start..];
    let (head_end, body_start) = find_header_end(buf).ok_or(ParseError::NoHeaderEnd)?;
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| ParseError::NotUtf8)?;
    let rest = &buf[body_start..];
    let body = match content_length(head)? {
        Some(len) if len > rest.len() => return Err(ParseError::TruncatedBody),
        Some(len) => &rest[..len],
        // UDP without Content-Length: the body runs to the datagram's end.
        None => rest,
    };

    let lines = unfolded_lines(head);
    let mut lines = lines.into_iter();
    let first = lines.next().unwrap_or_default();
    if first.starts_with("SIP/") {
        check_status_line(&first)?;
    } else {
        check_request_line(&first)?;
    }
    let mut words = first.splitn(3, ' ');
    let token = words.next().unwrap_or_default();
    let is_response = token.starts_with("SIP/");
    let method = (!is_response).then(|| Method::parse(token));
    // rsip refuses unknown methods and tel: URIs: parse with stand-ins.
    let rest_of_line = first.get(token.len() + 1..).unwrap_or("");
    // rsip's URI grammar is narrower than RFC 3261's (RFC 4475 §3.1.1.2,
    // §3.1.1.9): a sip or sips Request-URI with no white space in it is
    // read here, and rsip is shown a stand-in.
    let (rest_of_line, own_user) = match (rest_of_line.split_once(' '), rest_of_line.get(..4)) {
        (_, Some(scheme)) if scheme.eq_ignore_ascii_case("tel:") => {
            let version = rest_of_line.rsplit(' ').next().unwrap_or("SIP/2.0");
            (format!("sip:tel@invalid {version}"), None)
        }
        (Some((uri, version)), _) if !version.contains(' ') => match sip_uri_user(uri) {
            Some(user) => (format!("sip:invalid {version}"), Some(user)),
            None => (rest_of_line.to_owned(), None),
        },
        _ => (rest_of_line.to_owned(), None),
    };
    let first_for_rsip = match &method {
        Some(Method::Other(_)) => format!("OPTIONS {rest_of_line}"),
        Some(m) => format!("{} {rest_of_line}", m.as_str()),
        None => first.clone(),
    };

    let mut text = String::with_capacity(head.len() + body.len() + 64);
    text.push_str(&first_for_rsip);
    text.push_str("\r\n");
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(|| {
            ParseError::Syntax(format!("header line without colon: {:.40}", line))
        })?;
        let name = canonical(name.trim());
        let value = value.trim().to_owned();
        let _ = write!(text, "{name}: {value}\r\n");
        headers.push((name, value));
    }
    text.push_str("\r\n");

    let parsed =
        rsip::SipMessage::try_from(text.as_str()).map_err(|e| ParseError::Syntax(e.to_string()))?;
    let (start, uri_user) = match (parsed, method) {
        (rsip::SipMessage::Request(req), Some(method)) => {
            let uri = words.next().unwrap_or_default().to_owned();
            let user = tel_user(&uri)
                .or(own_user.flatten())
                .or_else(|| req.uri.auth.as_ref().map(|a| a.user.clone()));
            (StartLine::Request { method, uri }, user)
        }
        (rsip::SipMessage::Response(resp), _) => {
            let code: u16 = resp.status_code.into();
            (
                StartLine::Response {
                    status: StatusCode(code),
                },
                None,
            )
        }
        _ => return Err(ParseError::Syntax("start line".into())),
    };
    let msg = Message {
        start,
        headers,
        body: body.to_vec(),
        uri_user,
    };
    for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if msg.header(h).is_none() {
            return Err(ParseError::MissingHeader(h));
        }
    }
    for h in SINGLE {
        if msg.headers_named(h).nth(1).is_some() {
            return Err(ParseError::Duplicate(h));
        }
    }
    let (_, cseq_method) = msg
        .cseq()
        .ok_or_else(|| ParseError::Syntax("CSeq".into()))?;
    if let Some(method) = msg.method()
        && cseq_method != *method
    {
        return Err(ParseError::CseqMismatch);
    }
    Ok(msg)
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

/// Leniently pulls the headers needed to answer 400 out of a message rsip
/// refused. Returns `None` if no response can be formed.
pub fn salvage_for_400(buf: &[u8]) -> Option<Message> {
    let text = String::from_utf8_lossy(buf);
    let (head, _) = text
        .split_once("\n\n")
        .or_else(|| text.split_once("\r\n\r\n"))
        .unwrap_or((&text, ""));
    let lines = unfolded_lines(head);
    let first = lines.first()?;
    let method = Method::parse(first.split(' ').next()?);
    if first.starts_with("SIP/") || method == Method::Ack {
        return None;
    }
    let headers: Vec<(String, String)> = lines
        .iter()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (canonical(n.trim()), v.trim().to_owned()))
        .collect();
    let msg = Message {
        start: StartLine::Request {
            method,
            uri: String::new(),
        },
        headers,
        body: Vec::new(),
        uri_user: None,
    };
    for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
        msg.header(h)?;
    }
    Some(msg)
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
