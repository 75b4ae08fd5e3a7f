//! Reading a datagram or a framed message into a [`Message`]: framing by
//! Content-Length, CRLF or LF line ends, unfolding, compact names, unknown
//! methods; the checks of the start line, the Request-URI and headers that
//! may appear once; and the salvage of a message too broken to parse,
//! enough to answer it 400. Our own grammar, fuzzed (`sip_message`) and
//! held to RFC 4475's torture messages (`tests/rfc4475.rs`).

use super::framing::{content_length, find_header_end, unfolded_lines};
use super::{
    Message, Method, ParseError, StartLine, StatusCode, canonical, sip_uri_user, tel_user,
};

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
    // Method SP Request-URI SP SIP-Version (RFC 3261 §7.1), exactly: a URI
    // is never read on across spaces, or across the line break to a version
    // further down.
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

/// Reads a status line's Status-Code: three digits, 100 to 699 (RFC 3261
/// §7.2, §21), which is what our own copy of it writes.
fn status_of(first: &str) -> Result<StatusCode, ParseError> {
    match first.split(' ').nth(1).unwrap_or_default().as_bytes() {
        &[a @ b'1'..=b'6', b @ b'0'..=b'9', c @ b'0'..=b'9'] => Ok(StatusCode(
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'),
        )),
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
    let status = if first.starts_with("SIP/") {
        Some(status_of(&first)?)
    } else {
        check_request_line(&first)?;
        None
    };
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(|| {
            ParseError::Syntax(format!("header line without colon: {:.40}", line))
        })?;
        headers.push((canonical(name.trim()), value.trim().to_owned()));
    }
    let (start, uri_user) = match status {
        Some(status) => (StartLine::Response { status }, None),
        None => {
            // `check_request_line` saw exactly three words.
            let mut words = first.split(' ');
            let method = Method::parse(words.next().unwrap_or_default());
            let uri = words.next().unwrap_or_default().to_owned();
            // A tel: URI's number, or a sip/sips URI's user part (RFC 3261
            // §19.1.1, as RFC 4475 §3.1.1.2 and §3.1.1.9 stretch it), also
            // inside the `<>` RFC 4475 §3.1.2.11 lets a liberal UAS accept;
            // any other Request-URI is not one we can read (400).
            let user = if uri.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("tel:")) {
                tel_user(&uri)
            } else {
                let bracketed = uri.strip_prefix('<').and_then(|u| u.strip_suffix('>'));
                sip_uri_user(&uri)
                    .or_else(|| bracketed.and_then(sip_uri_user))
                    .ok_or_else(|| ParseError::Syntax("Request-URI".into()))?
            };
            (StartLine::Request { method, uri }, user)
        }
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

/// Leniently pulls the headers needed to answer 400 out of a message
/// `parse` refused. Returns `None` if no response can be formed.
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
