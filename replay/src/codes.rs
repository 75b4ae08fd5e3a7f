//! The `--codes` file: one code per line, used in turn by the virtual
//! calls; an optional first line `code` (or `code,security`) names the
//! columns. A second column is the security code keyed after the access
//! code. Spaces and hyphens inside a code are dropped and leading zeros
//! kept, as the gateway does; blank lines and `#` comments are skipped.

use std::path::Path;

/// One row: the access code, and the security code if the file has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeRow {
    pub code: String,
    pub security: Option<String>,
}

impl CodeRow {
    pub fn codes(&self) -> Vec<&str> {
        let mut v = vec![self.code.as_str()];
        v.extend(self.security.as_deref());
        v
    }
}

#[derive(thiserror::Error, Debug)]
pub enum CodesError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("line {line}: a code is digits only (spaces and hyphens are dropped)")]
    NotDigits { line: usize },
    #[error("line {line}: more than two columns (code,security)")]
    Columns { line: usize },
    #[error("the file holds no code")]
    Empty,
}

fn normalise(field: &str) -> Option<String> {
    let code: String = field
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    (!code.is_empty() && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

pub fn read(path: &Path) -> Result<Vec<CodeRow>, CodesError> {
    let text = std::fs::read_to_string(path).map_err(|source| CodesError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text)
}

pub fn parse(text: &str) -> Result<Vec<CodeRow>, CodesError> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim().trim_start_matches('\u{FEFF}');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if rows.is_empty() && line.to_ascii_lowercase().starts_with("code") {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        let (code, security) = match fields.as_slice() {
            [code] => (*code, None),
            [code, security] if security.trim().is_empty() => (*code, None),
            [code, security] => (*code, Some(*security)),
            _ => return Err(CodesError::Columns { line: n + 1 }),
        };
        let not_digits = || CodesError::NotDigits { line: n + 1 };
        rows.push(CodeRow {
            code: normalise(code).ok_or_else(not_digits)?,
            security: security
                .map(|s| normalise(s).ok_or_else(not_digits))
                .transpose()?,
        });
    }
    if rows.is_empty() {
        return Err(CodesError::Empty);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_comments_and_security_column_are_read() {
        let rows = parse("code,security\n# a comment\n0012-345\n\n777 888,0042\n").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].code, "0012345");
        assert_eq!(rows[0].security, None);
        assert_eq!(rows[1].codes(), vec!["777888", "0042"]);
    }

    #[test]
    fn letters_extra_columns_and_empty_files_are_refused_with_the_line() {
        assert!(matches!(
            parse("code\n12a\n"),
            Err(CodesError::NotDigits { line: 2 })
        ));
        assert!(matches!(
            parse("1,2,3"),
            Err(CodesError::Columns { line: 1 })
        ));
        assert!(matches!(parse("code\n"), Err(CodesError::Empty)));
    }
}
