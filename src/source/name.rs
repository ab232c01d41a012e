//! Path names as sources see them: raw bytes for identity, an escaped form for display.
//!
//! Contract: two names are the same place only when their bytes are equal. File names on Unix
//! and paths in git trees are bytes, not text: `a\xff` and `a\xfe` are two files, and a lossy
//! conversion to UTF-8 would make them one location (and one fingerprint). The shown form keeps
//! valid UTF-8 as it is and writes each byte that is not part of valid UTF-8 as `\xNN`.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// A path: what reports show, and the raw bytes when they are not valid UTF-8.
#[derive(Clone)]
pub struct PathName {
    shown: String,
    /// Set only when the bytes are not valid UTF-8 (then `shown` differs from them).
    raw: Option<Box<[u8]>>,
}

impl PathName {
    /// A name from its raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> PathName {
        match std::str::from_utf8(bytes) {
            Ok(s) => PathName {
                shown: s.to_string(),
                raw: None,
            },
            Err(_) => PathName {
                shown: escape_invalid(bytes),
                raw: Some(bytes.into()),
            },
        }
    }

    /// The name as reports show it (bytes that are not UTF-8 as `\xNN`).
    pub fn as_str(&self) -> &str {
        &self.shown
    }

    /// The raw bytes: the name's identity.
    pub fn as_bytes(&self) -> &[u8] {
        self.raw.as_deref().unwrap_or(self.shown.as_bytes())
    }

    /// This name with `prefix` (valid UTF-8, a repository's report prefix) before it.
    pub fn prefixed(&self, prefix: &str) -> PathName {
        if prefix.is_empty() {
            return self.clone();
        }
        PathName {
            shown: format!("{prefix}{}", self.shown),
            raw: self.raw.as_ref().map(|r| {
                let mut v = prefix.as_bytes().to_vec();
                v.extend_from_slice(r);
                v.into_boxed_slice()
            }),
        }
    }
}

impl From<&str> for PathName {
    fn from(s: &str) -> PathName {
        PathName {
            shown: s.to_string(),
            raw: None,
        }
    }
}

impl From<String> for PathName {
    fn from(shown: String) -> PathName {
        PathName { shown, raw: None }
    }
}

impl From<PathName> for String {
    fn from(p: PathName) -> String {
        p.shown
    }
}

impl PartialEq for PathName {
    fn eq(&self, other: &PathName) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for PathName {}

impl Hash for PathName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialOrd for PathName {
    fn partial_cmp(&self, other: &PathName) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PathName {
    fn cmp(&self, other: &PathName) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl fmt::Display for PathName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for PathName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.shown, f)
    }
}

/// Valid UTF-8 as it is; every other byte as `\xNN`.
fn escape_invalid(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    while !bytes.is_empty() {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let (good, rest) = bytes.split_at(e.valid_up_to());
                // Checked valid just above.
                out.push_str(std::str::from_utf8(good).unwrap_or_default());
                let bad = e.error_len().unwrap_or(rest.len());
                for b in &rest[..bad] {
                    out.push_str(&format!("\\x{b:02X}"));
                }
                bytes = &rest[bad..];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differing_in_invalid_bytes_stay_apart() {
        let a = PathName::from_bytes(b"dir/a\xff.env");
        let b = PathName::from_bytes(b"dir/a\xfe.env");
        assert_ne!(a, b);
        assert_eq!(a.as_str(), "dir/a\\xFF.env");
        assert_eq!(b.as_str(), "dir/a\\xFE.env");
        assert_eq!(a.as_bytes(), b"dir/a\xff.env");
        // A name that is valid UTF-8 is its text, and equals the same text given as a string.
        let c = PathName::from_bytes("é/x".as_bytes());
        assert_eq!(c, PathName::from("é/x"));
        assert_eq!(c.as_str(), "é/x");
        // A literal `\xFF` in a name is not the byte 0xFF.
        assert_ne!(PathName::from("dir/a\\xFF.env"), a);
        assert_eq!(a.prefixed("repo/").as_bytes(), b"repo/dir/a\xff.env");
        assert_eq!(
            PathName::from_bytes(b"\xe2\x82x").as_str(),
            "\\xE2\\x82x",
            "a truncated sequence is escaped byte by byte"
        );
    }
}
