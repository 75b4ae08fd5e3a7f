//! DTMF carried in SIP INFO request bodies.
//!
//! SIP INFO (RFC 6086) has no standard DTMF package, so two de-facto bodies
//! are read, each giving one key press per request:
//!
//! - `application/dtmf-relay` (Cisco/BroadSoft): `name=value` lines, e.g.
//!
//!   ```text
//!   Signal=5
//!   Duration=160
//!   ```
//!
//!   in any order, CRLF or LF line ends, names case-insensitive, spaces
//!   around `=` and values tolerated. Only `Signal` matters; `Duration` and
//!   unknown lines are ignored.
//! - `application/dtmf`: the body is the signal itself, e.g. `5` or `#`.
//!
//! A signal is a keypad character (`0`–`9`, `*`, `#`, `A`–`D`, any case) or
//! an RFC 4733 §3.2 event code (`10` = `*`, `11` = `#`, `12`–`15` = A–D).
//! Content-Type matching follows RFC 7231 §3.1.1.1: case-insensitive, with
//! parameters ignored. Left out: `application/dtmf` variants carrying
//! several keys, and flash-hook (`Signal=16`/`!`), which is not a key and is
//! reported as [`SipInfoError::NotAKey`].
//!
//! Errors split "unsupported" (answer 415 Unsupported Media Type) from "the
//! peer sent garbage" (400 Bad Request); the mapping to status codes lives
//! with the SIP layer.

use super::Key;

/// Why an INFO body gave no key.
#[derive(thiserror::Error, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SipInfoError {
    #[error("content type is not application/dtmf-relay or application/dtmf")]
    UnsupportedContentType,
    #[error("DTMF body is not UTF-8")]
    NotUtf8,
    #[error("DTMF body has no signal")]
    MissingSignal,
    #[error("DTMF signal is not a keypad character or event code")]
    InvalidSignal,
    #[error("DTMF body has several different signals")]
    ConflictingSignals,
    #[error("DTMF event code {0} is not a keypad key")]
    NotAKey(u8),
}

/// The DTMF body formats we read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    DtmfRelay,
    Dtmf,
}

impl Format {
    fn from_content_type(content_type: &str) -> Option<Format> {
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if media_type.eq_ignore_ascii_case("application/dtmf-relay") {
            Some(Format::DtmfRelay)
        } else if media_type.eq_ignore_ascii_case("application/dtmf") {
            Some(Format::Dtmf)
        } else {
            None
        }
    }
}

/// Decodes the key press in a SIP INFO body with the given Content-Type
/// header value.
pub fn parse_info(content_type: &str, body: &[u8]) -> Result<Key, SipInfoError> {
    let format =
        Format::from_content_type(content_type).ok_or(SipInfoError::UnsupportedContentType)?;
    let text = std::str::from_utf8(body).map_err(|_| SipInfoError::NotUtf8)?;
    let text = text.trim_start_matches('\u{FEFF}');
    match format {
        Format::DtmfRelay => parse_relay(text),
        Format::Dtmf => parse_signal(text),
    }
}

/// `application/dtmf-relay`: the `Signal` line, wherever it is.
fn parse_relay(text: &str) -> Result<Key, SipInfoError> {
    let mut signal: Option<Key> = None;
    for line in text.lines() {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("signal") {
            continue;
        }
        let key = parse_signal(value)?;
        match signal {
            Some(seen) if seen != key => return Err(SipInfoError::ConflictingSignals),
            _ => signal = Some(key),
        }
    }
    signal.ok_or(SipInfoError::MissingSignal)
}

/// A keypad character or a §3.2 event code, surrounding whitespace ignored.
fn parse_signal(value: &str) -> Result<Key, SipInfoError> {
    let value = value.trim();
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (None, _) => Err(SipInfoError::MissingSignal),
        (Some(c), None) => Key::from_char(c).ok_or(SipInfoError::InvalidSignal),
        _ if value.bytes().all(|b| b.is_ascii_digit()) => {
            let code: u8 = value.parse().map_err(|_| SipInfoError::InvalidSignal)?;
            Key::from_event_code(code).ok_or(SipInfoError::NotAKey(code))
        }
        _ => Err(SipInfoError::InvalidSignal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELAY: &str = "application/dtmf-relay";
    const DTMF: &str = "application/dtmf";

    #[test]
    fn dtmf_relay_signal_and_duration_crlf() {
        assert_eq!(
            parse_info(RELAY, b"Signal=5\r\nDuration=160\r\n"),
            Ok(Key::D5)
        );
    }

    #[test]
    fn dtmf_relay_lf_only_any_order() {
        assert_eq!(
            parse_info(RELAY, b"Duration=250\nSignal=#\n"),
            Ok(Key::Pound)
        );
        assert_eq!(parse_info(RELAY, b"Duration=250\nSignal=*"), Ok(Key::Star));
    }

    #[test]
    fn dtmf_relay_whitespace_and_case_tolerated() {
        assert_eq!(parse_info(RELAY, b"Signal= 5\r\n"), Ok(Key::D5));
        assert_eq!(parse_info(RELAY, b"signal=#\r\n"), Ok(Key::Pound));
        assert_eq!(
            parse_info(RELAY, b"  SIGNAL = d \t\r\nduration = 100"),
            Ok(Key::D)
        );
        assert_eq!(parse_info(RELAY, b"\r\n\r\nSignal=1\r\n\r\n"), Ok(Key::D1));
    }

    #[test]
    fn dtmf_relay_numeric_event_codes() {
        assert_eq!(
            parse_info(RELAY, b"Signal=10\r\nDuration=160"),
            Ok(Key::Star)
        );
        assert_eq!(parse_info(RELAY, b"Signal=11"), Ok(Key::Pound));
        assert_eq!(parse_info(RELAY, b"Signal=12"), Ok(Key::A));
        assert_eq!(parse_info(RELAY, b"Signal=15"), Ok(Key::D));
        assert_eq!(parse_info(RELAY, b"Signal=05"), Ok(Key::D5));
    }

    #[test]
    fn dtmf_relay_flash_is_not_a_key() {
        assert_eq!(
            parse_info(RELAY, b"Signal=16"),
            Err(SipInfoError::NotAKey(16))
        );
    }

    #[test]
    fn dtmf_relay_without_signal_is_missing() {
        assert_eq!(
            parse_info(RELAY, b"Duration=160\r\n"),
            Err(SipInfoError::MissingSignal)
        );
        assert_eq!(parse_info(RELAY, b""), Err(SipInfoError::MissingSignal));
        assert_eq!(
            parse_info(RELAY, b"Signal=\r\n"),
            Err(SipInfoError::MissingSignal)
        );
    }

    #[test]
    fn dtmf_relay_garbage_signal_is_invalid() {
        for body in [
            &b"Signal=X"[..],
            b"Signal=55x",
            b"Signal=#5",
            b"Signal=999",
            b"Signal=-1",
            b"Signal=\xEF\xBC\x95", // fullwidth digit five
        ] {
            assert_eq!(
                parse_info(RELAY, body),
                Err(SipInfoError::InvalidSignal),
                "{body:?}"
            );
        }
    }

    #[test]
    fn dtmf_relay_conflicting_signals_rejected() {
        assert_eq!(
            parse_info(RELAY, b"Signal=1\r\nSignal=2"),
            Err(SipInfoError::ConflictingSignals)
        );
        assert_eq!(parse_info(RELAY, b"Signal=1\r\nSignal=1"), Ok(Key::D1));
    }

    #[test]
    fn application_dtmf_body_is_the_key() {
        assert_eq!(parse_info(DTMF, b"5"), Ok(Key::D5));
        assert_eq!(parse_info(DTMF, b"#"), Ok(Key::Pound));
        assert_eq!(parse_info(DTMF, b" \r\n*\r\n"), Ok(Key::Star));
        assert_eq!(parse_info(DTMF, b"b\n"), Ok(Key::B));
    }

    #[test]
    fn application_dtmf_numeric_event_codes() {
        assert_eq!(parse_info(DTMF, b"11"), Ok(Key::Pound));
        assert_eq!(parse_info(DTMF, b"10\r\n"), Ok(Key::Star));
        assert_eq!(parse_info(DTMF, b"14"), Ok(Key::C));
    }

    #[test]
    fn application_dtmf_garbage_and_empty_rejected() {
        assert_eq!(parse_info(DTMF, b""), Err(SipInfoError::MissingSignal));
        assert_eq!(
            parse_info(DTMF, b"  \r\n"),
            Err(SipInfoError::MissingSignal)
        );
        assert_eq!(
            parse_info(DTMF, b"Signal=5"),
            Err(SipInfoError::InvalidSignal)
        );
        assert_eq!(parse_info(DTMF, b"5 5"), Err(SipInfoError::InvalidSignal));
    }

    #[test]
    fn content_type_is_case_insensitive_and_ignores_parameters() {
        assert_eq!(
            parse_info("Application/DTMF-Relay", b"Signal=3"),
            Ok(Key::D3)
        );
        assert_eq!(
            parse_info("application/dtmf-relay; charset=x", b"Signal=3"),
            Ok(Key::D3)
        );
        assert_eq!(parse_info(" APPLICATION/DTMF ;q=1", b"7"), Ok(Key::D7));
    }

    #[test]
    fn unsupported_content_type_rejected() {
        for content_type in [
            "text/plain",
            "application/sdp",
            "application/dtmf-relayx",
            "",
            "application",
        ] {
            assert_eq!(
                parse_info(content_type, b"Signal=5"),
                Err(SipInfoError::UnsupportedContentType),
                "{content_type:?}"
            );
        }
    }

    #[test]
    fn body_not_utf8_rejected() {
        assert_eq!(
            parse_info(RELAY, b"Signal=\xFF"),
            Err(SipInfoError::NotUtf8)
        );
        assert_eq!(parse_info(DTMF, b"\xC3"), Err(SipInfoError::NotUtf8));
    }

    #[test]
    fn utf8_bom_is_ignored() {
        assert_eq!(parse_info(DTMF, "\u{FEFF}9".as_bytes()), Ok(Key::D9));
    }
}
