//! Access rules: dialled-number normalisation, access codes and the
//! outcome vocabulary shared by the attempt log, the IVR, the API, metrics
//! and the replay report ([`Outcome`], [`Stage`]).
//!
//! Codes are strings of digits — leading zeros are data, never integers.
//! Generation uses the thread-local CSPRNG (`rand::rng`, ChaCha-based).
//!
//! - [`resolve`]: which room (or meeting, or invitee) a keyed code opens now.
//! - [`window`]: one-time codes' validity windows (`start − early_join`
//!   until `end + grace`), time as an argument.
//! - [`codes`]: drawing codes that collide with no live code or prefix.
//! - [`secret`]: security and personal codes kept as HMACs under the
//!   server key.
//! - [`lockout`]: lockouts against guessing, from failure counts.
//! - [`leg`]: the signed pass of a caller bridged to a room's owner node.
//!
//! Access knows the store's rows but no SIP: who is calling is worked out
//! by [`crate::sip::identity`] and handed in.

pub mod codes;
pub mod leg;
pub mod lockout;
mod number;
pub mod resolve;
pub mod secret;
pub mod window;

pub use number::{E164, NumberError};

use rand::Rng;

/// The longest access code the IVR collects before it treats the entry as submitted.
pub const MAX_CODE_LEN: usize = 32;

/// An access code: 1..=32 ASCII digits, leading zeros kept.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AccessCode(String);

/// Codes never reach a log, even through `{:?}`.
impl std::fmt::Debug for AccessCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccessCode(<{} digits>)", self.0.len())
    }
}

#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum CodeError {
    #[error("access code must not be empty")]
    Empty,
    #[error("access code must contain digits only (spaces and hyphens allowed)")]
    NotDigits,
    #[error("access code must be at most {MAX_CODE_LEN} digits")]
    TooLong,
}

impl AccessCode {
    /// Normalises operator input: spaces and hyphens are dropped, anything
    /// else but digits is refused.
    pub fn parse(input: &str) -> Result<AccessCode, CodeError> {
        let digits: String = input.chars().filter(|c| *c != ' ' && *c != '-').collect();
        if digits.is_empty() {
            return Err(CodeError::Empty);
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CodeError::NotDigits);
        }
        if digits.len() > MAX_CODE_LEN {
            return Err(CodeError::TooLong);
        }
        Ok(AccessCode(digits))
    }

    /// A fresh code of `len` uniformly random digits from the CSPRNG.
    pub fn generate(len: usize) -> AccessCode {
        let mut rng = rand::rng();
        AccessCode(
            (0..len)
                .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
                .collect(),
        )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which code the caller was keying when an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Access,
    Security,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Access => "access",
            Stage::Security => "security",
        }
    }
}

/// The Info Package (RFC 6086) in which the gateway tells a caller that
/// listed it in `Recv-Info` how each code attempt went: a `text/plain` body
/// `outcome=<outcome>` and `stage=<stage>` lines, never the code. Phones do
/// not ask for it; the replay load tool does, to time admissions.
pub const OUTCOME_PACKAGE: &str = "dialgate-outcome";

/// How an access attempt ended — the one list used by the attempt log, the
/// API, metrics and replay reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Admitted,
    Wrong,
    NotStarted,
    Ended,
    Revoked,
    Used,
    Locked,
    Timeout,
    Abandoned,
}

impl Outcome {
    pub const ALL: [Outcome; 9] = [
        Outcome::Admitted,
        Outcome::Wrong,
        Outcome::NotStarted,
        Outcome::Ended,
        Outcome::Revoked,
        Outcome::Used,
        Outcome::Locked,
        Outcome::Timeout,
        Outcome::Abandoned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Admitted => "admitted",
            Outcome::Wrong => "wrong",
            Outcome::NotStarted => "not_started",
            Outcome::Ended => "ended",
            Outcome::Revoked => "revoked",
            Outcome::Used => "used",
            Outcome::Locked => "locked",
            Outcome::Timeout => "timeout",
            Outcome::Abandoned => "abandoned",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_keeps_leading_zeros_and_drops_separators() {
        assert_eq!(AccessCode::parse("007 123-4").unwrap().as_str(), "0071234");
    }

    #[test]
    fn code_with_letters_is_refused() {
        assert_eq!(AccessCode::parse("12a4"), Err(CodeError::NotDigits));
        assert_eq!(AccessCode::parse(" - "), Err(CodeError::Empty));
        assert_eq!(AccessCode::parse(&"1".repeat(33)), Err(CodeError::TooLong));
    }

    #[test]
    fn generated_code_has_requested_length_and_digits_only() {
        for _ in 0..100 {
            let c = AccessCode::generate(9);
            assert_eq!(c.as_str().len(), 9);
            assert!(c.as_str().bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn generated_codes_cover_every_digit_position() {
        // 2,000 codes: every digit should appear in the first position.
        let mut seen = [false; 10];
        for _ in 0..2000 {
            let c = AccessCode::generate(9);
            seen[usize::from(c.as_str().as_bytes()[0] - b'0')] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn debug_never_shows_the_digits() {
        let c = AccessCode::parse("424242").unwrap();
        assert!(!format!("{c:?}").contains("4242"));
    }
}
