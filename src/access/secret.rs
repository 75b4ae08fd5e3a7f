//! Secrets at rest: security codes and personal (invitee) codes are stored
//! as HMAC-SHA256 under a server key that lives outside the database, in
//! the file `--secret-file` names (created with 32 random bytes, mode 0600,
//! when absent; every gateway node gets the same file). Verification is one
//! HMAC and a constant-time comparison: microseconds, cheap enough for
//! hundreds of calls per second. Regular and one-time access codes are
//! identifiers hosts read back, and are not hashed.

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// HMAC purposes: the same digits hash differently as a security code and as a personal code.
pub const SECURITY: &str = "security";
pub const PERSONAL: &str = "personal";

/// The server key.
#[derive(Clone)]
pub struct Secret {
    key: [u8; 32],
}

/// Never shows the key.
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

#[derive(thiserror::Error, Debug)]
pub enum SecretError {
    #[error("cannot read secret file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create secret file {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret file {path} must hold 64 hex digits")]
    Malformed { path: PathBuf },
}

impl Secret {
    pub fn from_key(key: [u8; 32]) -> Secret {
        Secret { key }
    }

    /// Reads the key from `path`, creating the file with a fresh key if absent.
    pub fn load_or_create(path: &Path) -> Result<Secret, SecretError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim()).map_err(|_| SecretError::Malformed {
                    path: path.to_owned(),
                })?;
                let key: [u8; 32] = bytes.try_into().map_err(|_| SecretError::Malformed {
                    path: path.to_owned(),
                })?;
                Ok(Secret { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                let create = |source| SecretError::Create {
                    path: path.to_owned(),
                    source,
                };
                // Written whole to a file of this process's, then linked
                // into place: a node starting beside another on a shared
                // volume reads either no file or a complete one, never a
                // half-written key.
                let mut staged = path.as_os_str().to_owned();
                staged.push(format!(
                    ".{}-{:016x}.new",
                    std::process::id(),
                    rand::random::<u64>()
                ));
                let staged = std::path::PathBuf::from(staged);
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create(true).truncate(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let written = options.open(&staged).and_then(|mut f| {
                    writeln!(f, "{}", hex::encode(key)).and_then(|()| f.sync_all())
                });
                let linked = written.and_then(|()| std::fs::hard_link(&staged, path));
                let _ = std::fs::remove_file(&staged);
                match linked {
                    Ok(()) => Ok(Secret { key }),
                    // Another process put its key there first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Secret::load_or_create(path)
                    }
                    Err(e) => Err(create(e)),
                }
            }
            Err(source) => Err(SecretError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    fn mac(&self, purpose: &str, code: &str) -> HmacSha256 {
        // A 32-byte key is always a valid HMAC key.
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(code.as_bytes());
        mac
    }

    /// The stored form of a code used for `purpose` (e.g. `"security"`), hex.
    pub fn hash(&self, purpose: &str, code: &str) -> String {
        hex::encode(self.mac(purpose, code).finalize().into_bytes())
    }

    /// Whether `code` matches `stored`, in constant time.
    pub fn verify(&self, purpose: &str, code: &str, stored: &str) -> bool {
        match hex::decode(stored) {
            Ok(expected) => self.mac(purpose, code).verify_slice(&expected).is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_only_the_same_code_and_purpose() {
        let s = Secret::from_key([7; 32]);
        let h = s.hash("security", "0042");
        assert!(s.verify("security", "0042", &h));
        assert!(
            !s.verify("security", "42", &h),
            "leading zeros are part of the code"
        );
        assert!(!s.verify("personal", "0042", &h));
        assert!(!s.verify("security", "0042", "not hex"));
        assert!(!h.contains("0042"));
    }

    #[test]
    fn another_key_gives_another_hash() {
        let a = Secret::from_key([1; 32]).hash("security", "1234");
        let b = Secret::from_key([2; 32]).hash("security", "1234");
        assert_ne!(a, b);
    }

    #[test]
    fn secret_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let a = Secret::load_or_create(&path).unwrap();
        let b = Secret::load_or_create(&path).unwrap();
        assert_eq!(a.hash("x", "1"), b.hash("x", "1"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "short").unwrap();
        assert!(matches!(
            Secret::load_or_create(&path),
            Err(SecretError::Malformed { .. })
        ));
    }

    /// Nodes starting at once on a shared volume: every one gets the one
    /// key, none reads a half-written file, and no staged file is left.
    #[test]
    fn racing_creators_all_get_the_same_whole_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s");
            let hashes: Vec<String> = std::thread::scope(|s| {
                let racers: Vec<_> = (0..8)
                    .map(|_| s.spawn(|| Secret::load_or_create(&path).map(|k| k.hash("x", "1"))))
                    .collect();
                racers
                    .into_iter()
                    .map(|r| r.join().unwrap().expect("a whole key"))
                    .collect()
            });
            assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        }
    }
}
