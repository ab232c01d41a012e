//! The limits of decoding one top-level blob, and what is left of them as it is decoded.

/// The deepest archive nesting ever opened, whatever [`Limits::max_depth`] says: decoding
/// recurses once per level (4 to 6 KiB of stack each in a debug build: 128 mixed zip, gzip
/// and tar levels fit in 768 KiB, well inside a 2 MiB thread stack), and the limits may come
/// from a scanned repository's configuration.
pub const MAX_ARCHIVE_DEPTH: usize = 128;

/// Limits for decoding one top-level blob and everything nested in it.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Archive nesting depth (a zip in a zip is depth 2), at most [`MAX_ARCHIVE_DEPTH`].
    pub max_depth: usize,
    /// Decoded bytes in all, across all members: this many, or 8 times the blob's own size
    /// when that is larger (a large archive may hold much; a small one may not).
    pub max_total_bytes: u64,
    /// Archive entries in all.
    pub max_entries: usize,
    /// Largest decoded/compressed ratio accepted for one member (zip bombs).
    pub max_ratio: u64,
    /// Largest single decoded member.
    pub max_member_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_depth: 8,
            max_total_bytes: 256 << 20,
            max_entries: 100_000,
            max_ratio: 1_000,
            max_member_bytes: 256 << 20,
        }
    }
}

/// What is left of the limits while decoding one top-level blob.
#[derive(Debug)]
pub struct Budget<'l> {
    pub(super) limits: &'l Limits,
    pub(super) total: u64,
    pub(super) bytes: u64,
    pub(super) entries: usize,
    pub(super) exhausted: bool,
    pub(super) bomb_members: usize,
}

impl<'l> Budget<'l> {
    /// A fresh budget for a top-level blob of `len` bytes.
    pub fn new(limits: &'l Limits, len: usize) -> Budget<'l> {
        let total = limits
            .max_total_bytes
            .max((len as u64).saturating_mul(8))
            .min(4 << 30);
        Budget {
            limits,
            total,
            bytes: 0,
            entries: 0,
            exhausted: false,
            bomb_members: 0,
        }
    }

    /// Counts a member that declares more than it may decode; true for the first few, which
    /// get a warning each (the rest are summed up once).
    pub(crate) fn note_bomb_member(&mut self) -> bool {
        self.bomb_members += 1;
        self.bomb_members <= BOMB_WARNINGS
    }

    /// Whether the decoded-bytes limit is used up.
    pub(crate) fn is_exhausted(&self) -> bool {
        self.bytes >= self.total
    }

    /// True the first time the limit is found used up (the caller warns once).
    pub(crate) fn newly_exhausted(&mut self) -> bool {
        let first = self.is_exhausted() && !self.exhausted;
        self.exhausted |= first;
        first
    }

    /// Decoded bytes still allowed for one member.
    pub(crate) fn member_allowance(&self, compressed: u64) -> u64 {
        let by_ratio = compressed
            .saturating_mul(self.limits.max_ratio)
            .max(1 << 20);
        self.limits
            .max_member_bytes
            .min(self.total.saturating_sub(self.bytes))
            .min(by_ratio)
    }

    /// Takes one entry; false when the entry limit is reached.
    pub(crate) fn take_entry(&mut self) -> bool {
        self.entries += 1;
        self.entries <= self.limits.max_entries
    }

    /// Accounts decoded bytes.
    pub(crate) fn take_bytes(&mut self, n: u64) {
        self.bytes = self.bytes.saturating_add(n);
    }
}

/// Members past the limits warned about one by one, per top-level blob.
pub(super) const BOMB_WARNINGS: usize = 3;
