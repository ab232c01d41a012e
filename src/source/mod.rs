//! Sources of content: each [`Source`] pushes blobs ([`Blob`]: bytes and, when known, their
//! [`BlobId`]) with where they were seen ([`Provenance`]) into a [`Sink`], the one pipeline.
//! Files on disk come from [`fs`], standard input from [`stdin`], history and staged changes
//! from [`git`].
//!
//! Contract: a blob's identity is git's blob id (SHA-1 of `"blob <len>\0"` + bytes), so files
//! and git objects share one dedup space. Sources report unreadable inputs to the sink's
//! [`Diagnostics`] and go on; a source fails as a whole only for what makes the run
//! meaningless (no repository, a revision that does not resolve), with a typed
//! [`SourceError`]. Sources never scan, decode or print: the sink does the rest.

pub mod fs;
#[cfg(feature = "git")]
pub mod git;
mod mapped;
mod name;
pub mod stdin;

pub use name::PathName;

use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

pub use crate::warning::{Diagnostics, Warning, WarningKind};

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
        /// The path.
        path: PathName,
    },
    /// Standard input.
    Stdin,
    /// A blob in git history: introduced by `commit` at `path` (no commit for a blob that no
    /// ref reaches).
    Git {
        /// The introducing commit.
        commit: Option<Arc<CommitMeta>>,
        /// The path as of that commit.
        path: PathName,
    },
}

impl Provenance {
    /// The path shown in reports.
    pub fn path(&self) -> &str {
        match self {
            Provenance::File { path } | Provenance::Git { path, .. } => path.as_str(),
            Provenance::Stdin => "<stdin>",
        }
    }

    /// The path's raw bytes: its identity (two names that differ only in bytes that are not
    /// UTF-8 are two places).
    pub fn path_bytes(&self) -> &[u8] {
        match self {
            Provenance::File { path } | Provenance::Git { path, .. } => path.as_bytes(),
            Provenance::Stdin => b"<stdin>",
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

/// Bytes to scan, with their git blob id when the source already knows it (git objects).
#[derive(Clone, Copy, Debug)]
pub struct Blob<'a> {
    /// The content.
    pub data: &'a [u8],
    /// Git's id of the content, when known; the sink computes it otherwise.
    pub id: Option<BlobId>,
}

/// What the pipeline found in one blob, kept until the source knows every place the blob
/// was seen (a history's introductions are all known only when its walk ends); then given to
/// [`Sink::attribute`].
#[derive(Clone, Debug)]
pub struct Found(pub(crate) Arc<Vec<crate::findings::Placed>>);

/// Receives the blobs of one thread of a source.
pub trait Lane: Send {
    /// One blob: `what` names it in warnings; `provenance` lists every place it was seen, and
    /// is called only when the blob holds findings.
    fn blob(&mut self, blob: Blob<'_>, what: &str, provenance: &dyn Fn() -> Vec<Provenance>);

    /// Scans one blob now, to attribute what it holds later: `None` when it holds nothing.
    /// The source hands each blob id to `scan` once (a history claims its blobs): the
    /// pipeline neither looks the blob up among those already scanned nor keeps its result.
    fn scan(&mut self, blob: Blob<'_>, what: &str) -> Option<Found>;

    /// As [`Lane::blob`], keeping only findings on lines of the blob for which `keep_line`
    /// holds (findings inside members or without lines are kept). For staged changes: only
    /// added lines count.
    fn blob_lines(
        &mut self,
        blob: Blob<'_>,
        what: &str,
        provenance: &dyn Fn() -> Vec<Provenance>,
        keep_line: &dyn Fn(&[u8]) -> bool,
    );

    /// A name content was seen under (a path, all of its directories included): a secret
    /// in the name is a finding located at the name. Sources give each name once, with
    /// the place it was first seen, whether or not its content could be read.
    fn name(&mut self, provenance: Provenance);
}

/// Where sources push blobs: the pipeline.
pub trait Sink: Sync {
    /// A lane for the calling thread (each thread of a source takes its own).
    fn lane(&self) -> Box<dyn Lane + '_>;
    /// Warnings and counters.
    fn diagnostics(&self) -> &Diagnostics;
    /// Records what [`Lane::scan`] found in a blob at every place the blob was seen.
    fn attribute(&self, found: &Found, provenance: &[Provenance]);
    /// Whether a path (as reports show it) is excluded from the scan.
    fn excluded(&self, path: &str) -> bool;
    /// Largest blob read; larger ones are skipped with a warning.
    fn max_blob_size(&self) -> u64;
    /// Whether content over the size limit is still worth opening, judged from its first
    /// bytes: formats whose decoders read only headers or bounded parts (model weights).
    fn reads_large(&self, head: &[u8]) -> bool;
    /// Threads for the source's own parallel work.
    fn threads(&self) -> usize;
    /// Runs `job` inside the pipeline's thread pool, so that rayon's parallel iterators in it
    /// use that pool: the one concurrency model for work that is not the file walk.
    fn install(&self, job: &mut (dyn FnMut() + Send));
}

/// Something that yields blobs: files, standard input, history, staged changes.
pub trait Source {
    /// Pushes every blob into `sink`. Problems with single inputs are warnings.
    fn feed(&mut self, sink: &dyn Sink) -> Result<(), SourceError>;

    /// Whether the source is known to yield little (staged changes): the scanner then builds
    /// the keyword automaton that is quick to build rather than the one quick to search.
    fn is_small(&self) -> bool {
        false
    }
}

/// Why a source could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// No git repository at or above the path.
    #[error("{}: not a git repository (or any parent up to the file system root)", .0.display())]
    NotARepository(PathBuf),
    /// A revision given on the command line does not resolve to a commit.
    #[error("cannot resolve `{0}`")]
    BadRevision(String),
    /// Standard input or another stream failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being read.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The repository could not be read as a whole (index, refs).
    #[error("{0}")]
    Repository(String),
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
