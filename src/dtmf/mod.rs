//! DTMF: the caller's keypad, however it reaches us.
//!
//! A key press arrives one of three ways, and this module turns each into the
//! same [`Key`] (with its [`DtmfSource`]; [`merge`] keeps one press heard
//! two ways from counting twice):
//!
//! - [`rfc4733`] — RTP telephone-events (RFC 4733 §2.3 payload, §2.5
//!   sender/receiver rules): one press is many packets, and [`rfc4733::Receiver`]
//!   reports it exactly once.
//! - [`sip_info`] — SIP INFO bodies (`application/dtmf-relay`,
//!   `application/dtmf`), one press per request.
//! - [`inband`] — tones in the decoded audio itself (a Goertzel detector
//!   with ITU-T Q.24 tolerances), for trunks that send no telephone-events;
//!   [`tap`] decodes the caller's audio a second time, whatever its codec,
//!   to the 8 kHz the detector reads.
//!
//! Everything here is sans-IO: bytes and `Instant`s in, keys out. No sockets,
//! no clock reads. Keys follow the RFC 4733 §3.2 event-code table (0–9, `*`,
//! `#`, A–D); the other telephone events (flash, tones, trunk signals) are
//! deliberately not keys and are dropped by the decoders.

pub mod inband;
pub mod merge;
pub mod rfc4733;
pub mod sip_info;
pub mod tap;

use std::fmt;

/// A keypad key. Digits 0-9, *, #, A-D.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    D0,
    D1,
    D2,
    D3,
    D4,
    D5,
    D6,
    D7,
    D8,
    D9,
    Star,
    Pound,
    A,
    B,
    C,
    D,
}

impl Key {
    /// All sixteen keys, in RFC 4733 §3.2 event-code order.
    pub const ALL: [Key; 16] = [
        Key::D0,
        Key::D1,
        Key::D2,
        Key::D3,
        Key::D4,
        Key::D5,
        Key::D6,
        Key::D7,
        Key::D8,
        Key::D9,
        Key::Star,
        Key::Pound,
        Key::A,
        Key::B,
        Key::C,
        Key::D,
    ];

    /// `'0'..='9'`, `'*'`, `'#'`, `'A'..='D'` (lowercase `a`–`d` accepted).
    pub fn from_char(c: char) -> Option<Key> {
        let key = match c {
            '0' => Key::D0,
            '1' => Key::D1,
            '2' => Key::D2,
            '3' => Key::D3,
            '4' => Key::D4,
            '5' => Key::D5,
            '6' => Key::D6,
            '7' => Key::D7,
            '8' => Key::D8,
            '9' => Key::D9,
            '*' => Key::Star,
            '#' => Key::Pound,
            'A' | 'a' => Key::A,
            'B' | 'b' => Key::B,
            'C' | 'c' => Key::C,
            'D' | 'd' => Key::D,
            _ => return None,
        };
        Some(key)
    }

    /// The keypad character; letters are uppercase.
    pub fn to_char(self) -> char {
        match self {
            Key::D0 => '0',
            Key::D1 => '1',
            Key::D2 => '2',
            Key::D3 => '3',
            Key::D4 => '4',
            Key::D5 => '5',
            Key::D6 => '6',
            Key::D7 => '7',
            Key::D8 => '8',
            Key::D9 => '9',
            Key::Star => '*',
            Key::Pound => '#',
            Key::A => 'A',
            Key::B => 'B',
            Key::C => 'C',
            Key::D => 'D',
        }
    }

    /// RFC 4733 §3.2: 0–9 are the digits, 10 `*`, 11 `#`, 12–15 A–D.
    /// Any other code (16 flash, tones, …) is not a key.
    pub fn from_event_code(code: u8) -> Option<Key> {
        Key::ALL.get(usize::from(code)).copied()
    }

    /// The RFC 4733 §3.2 event code of this key.
    pub fn event_code(self) -> u8 {
        match self {
            Key::D0 => 0,
            Key::D1 => 1,
            Key::D2 => 2,
            Key::D3 => 3,
            Key::D4 => 4,
            Key::D5 => 5,
            Key::D6 => 6,
            Key::D7 => 7,
            Key::D8 => 8,
            Key::D9 => 9,
            Key::Star => 10,
            Key::Pound => 11,
            Key::A => 12,
            Key::B => 13,
            Key::C => 14,
            Key::D => 15,
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_char())
    }
}

/// How a key press reached us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtmfSource {
    /// RTP telephone-event (RFC 4733).
    Rfc4733,
    /// SIP INFO request body.
    SipInfo,
    /// Tones detected in the audio itself.
    Inband,
}

impl DtmfSource {
    /// The name in the API, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DtmfSource::Rfc4733 => "rfc4733",
            DtmfSource::SipInfo => "sip_info",
            DtmfSource::Inband => "inband",
        }
    }
}

/// When the gateway listens for keypad tones in the caller's audio.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InbandMode {
    /// Only while no telephone-event is negotiated (follows re-INVITEs).
    #[default]
    Auto,
    /// Always, beside RFC 4733 and SIP INFO ([`merge`] keeps presses single).
    Inband,
    /// Never: keys come only as RFC 4733 events or SIP INFO.
    Never,
}

impl InbandMode {
    /// `auto`, `inband` or `never`.
    pub fn parse(text: &str) -> Option<InbandMode> {
        match text {
            "auto" => Some(InbandMode::Auto),
            "inband" => Some(InbandMode::Inband),
            "never" => Some(InbandMode::Never),
            _ => None,
        }
    }

    /// Whether to run the tone detector on a call whose SDP did (or did
    /// not) negotiate telephone-event.
    pub fn listens(self, telephone_event: bool) -> bool {
        match self {
            InbandMode::Auto => !telephone_event,
            InbandMode::Inband => true,
            InbandMode::Never => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn inband_mode_follows_telephone_event_only_in_auto() {
        assert_eq!(InbandMode::parse("auto"), Some(InbandMode::Auto));
        assert_eq!(InbandMode::parse("Always"), None);
        assert!(InbandMode::Auto.listens(false));
        assert!(!InbandMode::Auto.listens(true));
        assert!(InbandMode::Inband.listens(true));
        assert!(!InbandMode::Never.listens(false));
    }

    #[test]
    fn event_codes_follow_rfc4733_table() {
        for (code, key) in Key::ALL.iter().enumerate() {
            let code = u8::try_from(code).expect("16 keys fit in u8");
            assert_eq!(key.event_code(), code);
            assert_eq!(Key::from_event_code(code), Some(*key));
        }
        assert_eq!(Key::from_event_code(10), Some(Key::Star));
        assert_eq!(Key::from_event_code(11), Some(Key::Pound));
        assert_eq!(Key::from_event_code(12), Some(Key::A));
        assert_eq!(Key::from_event_code(15), Some(Key::D));
    }

    #[test]
    fn non_keypad_event_codes_are_not_keys() {
        for code in 16..=u8::MAX {
            assert_eq!(Key::from_event_code(code), None, "code {code}");
        }
    }

    #[test]
    fn chars_round_trip_and_letters_are_case_insensitive() {
        for key in Key::ALL {
            assert_eq!(Key::from_char(key.to_char()), Some(key));
        }
        assert_eq!(Key::from_char('a'), Some(Key::A));
        assert_eq!(Key::from_char('d'), Some(Key::D));
        assert_eq!(Key::from_char('e'), None);
        assert_eq!(Key::from_char(' '), None);
        assert_eq!(Key::from_char('٣'), None);
        assert_eq!(Key::Pound.to_string(), "#");
    }

    /// xorshift64: deterministic noise without a dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn bytes(&mut self, max_len: u64) -> Vec<u8> {
            let len = self.below(max_len + 1);
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    #[test]
    fn random_bytes_never_panic_any_decoder() {
        const CONTENT_TYPES: [&str; 6] = [
            "application/dtmf-relay",
            "APPLICATION/DTMF",
            "application/dtmf-relay; charset=utf-8",
            "text/plain",
            "",
            ";;;",
        ];
        const PREFIXES: [&[u8]; 5] = [
            b"",
            b"Signal=",
            b"signal= ",
            b"Duration=160\r\nSignal=",
            b"1",
        ];

        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut receiver = rfc4733::Receiver::new();
        let mut now = Instant::now();
        for _ in 0..10_000 {
            let payload = rng.bytes(12);
            let _ = rfc4733::TelephoneEvent::parse(&payload);

            now += Duration::from_millis(rng.below(200));
            let timestamp = if rng.below(4) == 0 {
                rng.next() as u32
            } else {
                // Near-collisions exercise the duplicate, stale and continuation paths.
                (rng.below(8) as u32).wrapping_mul(0xFFFF)
            };
            let _ = receiver.on_packet(now, timestamp, rng.below(2) == 0, &payload);

            let content_type = CONTENT_TYPES[rng.below(CONTENT_TYPES.len() as u64) as usize];
            let mut body = PREFIXES[rng.below(PREFIXES.len() as u64) as usize].to_vec();
            body.extend(rng.bytes(24));
            let _ = sip_info::parse_info(content_type, &body);
        }
    }
}
