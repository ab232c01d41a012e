//! Typed warnings and the counters of one run.
//!
//! Contract: the library never prints. Every stage reports a problem with one input as a
//! [`Warning`] to [`Diagnostics`], which counts it and hands it to the sink the caller
//! installed (the binary prints it, redacted and escaped); the scan goes on. Warnings that
//! mean something was not read ([`WarningKind::is_error`]: a missing path, an unreadable file,
//! a corrupt object) are errors of the run: the exit code becomes 2 after the report is
//! written, so a typo or a broken repository never turns a gate green.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// What kind of problem a warning reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WarningKind {
    /// A path given on the command line does not exist or cannot be opened (an error of the
    /// run: exit code 2).
    MissingInput,
    /// A file or object that exists could not be read, or is corrupt (an error of the run:
    /// exit code 2, since what was not read was not found clean).
    Unreadable,
    /// Skipped: larger than the size limit.
    TooLarge,
    /// A file changed (was truncated) while it was being read.
    Changed,
    /// A decoder met malformed content (corrupt archive member, broken pickle, bad header).
    Malformed,
    /// A decoding limit was reached (depth, bytes, entries, compression ratio).
    Limit,
    /// Git history facts: shallow boundaries, submodules.
    History,
    /// A rule could not be used (a regex over a size limit, a rule file problem).
    Rule,
    /// Suppressions: expired or stale baseline entries.
    Baseline,
    /// The file walk (symlink loops, unreadable directories).
    Walk,
    /// The state store could not record results (they are reported; the next run scans the
    /// blob again).
    State,
}

impl WarningKind {
    /// Whether the warning means part of the input was not read: the run then exits 2.
    pub fn is_error(self) -> bool {
        matches!(self, WarningKind::MissingInput | WarningKind::Unreadable)
    }
}

/// A problem with one input; the scan went on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// What kind of problem.
    pub kind: WarningKind,
    /// The input it concerns, as reports show paths (may be empty for run-wide warnings).
    pub path: String,
    /// The archive member chain below `path`, if any.
    pub member: Option<String>,
    /// What happened. Never quotes the content of the input.
    pub message: String,
}

impl Warning {
    /// A warning about `path`.
    pub fn new(kind: WarningKind, path: impl Into<String>, message: impl fmt::Display) -> Warning {
        Warning {
            kind,
            path: path.into(),
            member: None,
            message: message.to_string(),
        }
    }

    /// The same warning about a member below its path.
    pub fn in_member(mut self, member: Option<&str>) -> Warning {
        self.member = member.map(str::to_string);
        self
    }

    /// Where: `path`, then `!member` when set.
    pub fn place(&self) -> String {
        match &self.member {
            Some(m) if self.path.is_empty() => m.clone(),
            Some(m) => format!("{}!{m}", self.path),
            None => self.path.clone(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = self.place();
        if place.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{place}: {}", self.message)
        }
    }
}

/// Where warnings go: the binary installs one that prints them.
pub type WarningSink = Box<dyn Fn(&Warning) + Send + Sync>;

/// Warnings and counters shared by a whole run.
pub struct Diagnostics {
    sink: WarningSink,
    warnings: AtomicUsize,
    errors: AtomicUsize,
    unreadable: AtomicUsize,
    /// Inputs scanned.
    pub blobs: AtomicU64,
    /// Bytes scanned.
    pub bytes: AtomicU64,
    /// Inputs skipped as binary.
    pub binary: AtomicU64,
    /// Git LFS pointers met: their content is stored elsewhere and was not scanned.
    pub lfs: AtomicU64,
    /// Inputs expected in all, when a source knows it in advance (history); 0 when unknown.
    pub total: AtomicU64,
    /// Inputs the state store knew under the current rules: not scanned again.
    pub known: AtomicU64,
    /// Inputs the state store knew under older rules: scanned with the new or changed rules
    /// only (also counted in `blobs`).
    pub rescanned: AtomicU64,
}

impl fmt::Debug for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Diagnostics")
            .field("warnings", &self.warnings)
            .field("errors", &self.errors)
            .field("unreadable", &self.unreadable)
            .field("blobs", &self.blobs)
            .finish_non_exhaustive()
    }
}

impl Default for Diagnostics {
    fn default() -> Diagnostics {
        Diagnostics::new(Box::new(|_| {}))
    }
}

impl Diagnostics {
    /// Counters starting at zero; every warning is handed to `sink`.
    pub fn new(sink: WarningSink) -> Diagnostics {
        Diagnostics {
            sink,
            warnings: AtomicUsize::new(0),
            errors: AtomicUsize::new(0),
            unreadable: AtomicUsize::new(0),
            blobs: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            binary: AtomicU64::new(0),
            lfs: AtomicU64::new(0),
            total: AtomicU64::new(0),
            known: AtomicU64::new(0),
            rescanned: AtomicU64::new(0),
        }
    }

    /// Reports a problem; the scan goes on.
    pub fn warn(&self, warning: Warning) {
        self.warnings.fetch_add(1, Ordering::Relaxed);
        if warning.kind.is_error() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        if warning.kind == WarningKind::Unreadable {
            self.unreadable.fetch_add(1, Ordering::Relaxed);
        }
        (self.sink)(&warning);
    }

    /// Number of warnings so far.
    pub fn warnings(&self) -> usize {
        self.warnings.load(Ordering::Relaxed)
    }

    /// Number of warnings that make the run an error (exit code 2).
    pub fn errors(&self) -> usize {
        self.errors.load(Ordering::Relaxed)
    }

    /// Number of inputs that exist but could not be read ([`WarningKind::Unreadable`]): the
    /// summary says so, so that a run that read nothing never looks clean.
    pub fn unreadable(&self) -> usize {
        self.unreadable.load(Ordering::Relaxed)
    }

    /// Counts one scanned input.
    pub fn scanned(&self, len: usize) {
        self.blobs.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(len as u64, Ordering::Relaxed);
    }

    /// Counts one Git LFS pointer: a file whose content is stored elsewhere, not scanned.
    pub fn lfs_pointer(&self) {
        self.lfs.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one input skipped as binary.
    pub fn skipped_binary(&self) {
        self.binary.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot of the counters, for a progress line.
    pub fn progress(&self) -> Progress {
        Progress {
            blobs: self.blobs.load(Ordering::Relaxed)
                + self.binary.load(Ordering::Relaxed)
                + self.lfs.load(Ordering::Relaxed)
                + self.known.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// Counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Inputs read so far (scanned or skipped as binary).
    pub blobs: u64,
    /// Inputs expected in all; 0 when unknown.
    pub total: u64,
    /// Bytes scanned so far.
    pub bytes: u64,
}
