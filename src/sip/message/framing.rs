//! Where a SIP message ends in a byte stream (RFC 3261 §18.3, SIP over
//! TCP): the blank line after the headers, then Content-Length bytes.
//! Incremental, so a message arriving in pieces is not rescanned.

use super::{ParseError, canonical};

/// The largest body accepted (SIP over UDP cannot carry more anyway).
pub const MAX_BODY: usize = 64 * 1024;

/// Splits a stream buffer: returns the length of the first whole message
/// (headers plus Content-Length body), or `None` if more bytes are needed.
/// Used to frame SIP over TCP (RFC 3261 §18.3). Leading CRLF keep-alives are
/// counted into the message they precede.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    Framer::default().next_len(buf)
}

pub(super) fn find_header_end(buf: &[u8]) -> Option<(usize, usize)> {
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

pub(super) fn unfolded_lines(head: &str) -> Vec<String> {
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

pub(super) fn content_length(head: &str) -> Result<Option<usize>, ParseError> {
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
