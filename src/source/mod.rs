//! Sources of content: what bytes to scan ([`BlobId`]) and where they were seen
//! ([`Provenance`]). Files on disk come from [`fs`], standard input from [`read_stdin`].
//!
//! Contract: a blob's identity is git's blob id (SHA-1 of `"blob <len>\0"` + bytes), so files
//! and git objects share one dedup space. Sources report unreadable inputs to [`Diagnostics`]
//! and go on.

pub mod fs;
#[cfg(feature = "git")]
pub mod git;
mod mapped;

use std::fmt;
use std::io::Read;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sha1::{Digest, Sha1};

/// Git's object id of a blob with these bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub [u8; 20]);

impl BlobId {
    /// Computes the id as `git hash-object` does.
    pub fn of(data: &[u8]) -> BlobId {
        let mut h = Sha1::new();
        h.update(format!("blob {}\0", data.len()).as_bytes());
        h.update(data);
        BlobId(h.finalize().into())
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({self})")
    }
}

/// The commit that introduced a blob. Ordered by time first, so locations sort oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitMeta {
    /// Author time, seconds since the epoch.
    pub time: i64,
    /// Full commit id (hex).
    pub id: String,
    /// Author name.
    pub author: String,
    /// Author email.
    pub email: String,
    /// Author date, `YYYY-MM-DDTHH:MM:SSZ`.
    pub date: String,
}

/// Where a blob was seen.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provenance {
    /// A file; the path is relative to the scan root with `/` separators.
    File {
        /// The display path.
        path: String,
    },
    /// Standard input.
    Stdin,
    /// A blob in git history: introduced by `commit` at `path` (no commit for a blob that no
    /// ref reaches).
    Git {
        /// The introducing commit.
        commit: Option<Arc<CommitMeta>>,
        /// The path as of that commit.
        path: String,
    },
}

impl Provenance {
    /// The path shown in reports.
    pub fn path(&self) -> &str {
        match self {
            Provenance::File { path } | Provenance::Git { path, .. } => path,
            Provenance::Stdin => "<stdin>",
        }
    }

    /// The introducing commit of a history location.
    pub fn commit(&self) -> Option<&CommitMeta> {
        match self {
            Provenance::Git { commit, .. } => commit.as_deref(),
            _ => None,
        }
    }
}

/// Warnings and counters shared by a whole scan. Warnings go to stderr at once (one line
/// each) and are counted; they never change the exit code.
#[derive(Debug, Default)]
pub struct Diagnostics {
    warnings: AtomicUsize,
    quiet: bool,
    lock: Mutex<()>,
    /// Inputs scanned.
    pub blobs: AtomicU64,
    /// Bytes scanned.
    pub bytes: AtomicU64,
    /// Inputs skipped as binary.
    pub binary: AtomicU64,
}

impl Diagnostics {
    /// `quiet` suppresses the warning lines (they are still counted).
    pub fn new(quiet: bool) -> Diagnostics {
        Diagnostics {
            quiet,
            ..Diagnostics::default()
        }
    }

    /// Reports a problem with one input; the scan goes on.
    pub fn warn(&self, what: &str, message: impl fmt::Display) {
        self.warnings.fetch_add(1, Ordering::Relaxed);
        if !self.quiet {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!("trawl: warning: {what}: {message}");
        }
    }

    /// Number of warnings so far.
    pub fn warnings(&self) -> usize {
        self.warnings.load(Ordering::Relaxed)
    }

    /// Counts one scanned input.
    pub fn scanned(&self, len: usize) {
        self.blobs.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(len as u64, Ordering::Relaxed);
    }
}

/// Reads standard input up to `limit` bytes; more is an error.
pub fn read_stdin(limit: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .take(limit.saturating_add(1))
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(std::io::Error::other(format!(
            "input is larger than the maximum size of {limit} bytes"
        )));
    }
    Ok(buf)
}

/// Whether content looks binary: a NUL byte in its first 8 KiB (as git and ripgrep decide).
pub fn looks_binary(data: &[u8]) -> bool {
    memchr::memchr(0, &data[..data.len().min(8192)]).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_id_matches_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            BlobId::of(b"hello\n").to_string(),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        assert_eq!(
            BlobId::of(b"").to_string(),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
    }
}
