//! Dialled numbers: the Request-URI user part (or a `tel:` URI) normalised
//! to E.164 (ITU-T E.164: `+` and up to 15 digits).
//!
//! Accepted forms: `+15550100`, `15550100`, `+1-555-0100`, `+1 (555) 0100`,
//! `%2B15550100`; visual separators (RFC 3966 §5.1.1: `-` `.` `(` `)` and
//! spaces) are dropped; URI parameters after `;` are ignored. Numbers without
//! `+` are taken as already in international form. Local numbers with a
//! `phone-context` are not expanded (left for a later issue).

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(String);

#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum NumberError {
    #[error("number is empty")]
    Empty,
    #[error("number must be digits with an optional leading + (E.164)")]
    NotDigits,
    #[error("E.164 numbers have at most 15 digits")]
    TooLong,
}

impl E164 {
    pub fn parse(input: &str) -> Result<E164, NumberError> {
        let user = input.split(';').next().unwrap_or_default().trim();
        let user = user
            .strip_prefix("tel:")
            .or_else(|| user.strip_prefix("TEL:"))
            .unwrap_or(user);
        let user = user
            .replace("%2B", "+")
            .replace("%2b", "+")
            .replace("%20", "");
        let rest = user.strip_prefix('+').unwrap_or(&user);
        let digits: String = rest
            .chars()
            .filter(|c| !matches!(c, '-' | '.' | '(' | ')' | ' '))
            .collect();
        if digits.is_empty() {
            return Err(NumberError::Empty);
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NumberError::NotDigits);
        }
        if digits.len() > 15 {
            return Err(NumberError::TooLong);
        }
        Ok(E164(format!("+{digits}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for E164 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_and_bare_forms_are_the_same_number() {
        assert_eq!(E164::parse("+15550100").unwrap().as_str(), "+15550100");
        assert_eq!(E164::parse("15550100").unwrap().as_str(), "+15550100");
    }

    #[test]
    fn tel_uri_with_visual_separators_normalises() {
        assert_eq!(
            E164::parse("tel:+1-555-0100").unwrap().as_str(),
            "+15550100"
        );
        assert_eq!(E164::parse("+1 (555) 01.00").unwrap().as_str(), "+15550100");
        assert_eq!(E164::parse("%2B15550100").unwrap().as_str(), "+15550100");
    }

    #[test]
    fn uri_parameters_are_ignored() {
        assert_eq!(
            E164::parse("+15550100;npdi;rn=+1555").unwrap().as_str(),
            "+15550100"
        );
    }

    #[test]
    fn non_numbers_are_refused() {
        assert_eq!(E164::parse("alice"), Err(NumberError::NotDigits));
        assert_eq!(E164::parse("+"), Err(NumberError::Empty));
        assert_eq!(E164::parse("+1234567890123456"), Err(NumberError::TooLong));
    }
}
