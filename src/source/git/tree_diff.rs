//! The history tree diff: a commit's tree against its parents' trees, in one merge pass per
//! parent over the sorted entries of each changed directory, on borrowed bytes.

use gix::bstr::{BStr, BString, ByteSlice};
use gix::objs::tree::EntryMode;
use gix::prelude::Find;
use gix::ObjectId;

use super::{show, WarnAt};
use crate::source::{Diagnostics, Warning, WarningKind};

/// A tree's entries, owned.
pub(super) type Entries = Vec<(BString, EntryMode, ObjectId)>;

/// Object ids as hash-map keys: they are hashes already, so the map hashes their first bytes
/// instead of running SipHash over them.
pub(super) type IdMap<V> = gix::hashtable::HashMap<ObjectId, V>;

/// Compares commits' trees with their parents' trees, one thread's worth: its repository
/// handle (whose object cache keeps the trees a parent and its child share) and buffers.
pub(super) struct TreeDiff<'r> {
    repo: &'r gix::Repository,
    diag: &'r Diagnostics,
    /// Buffer for the parent tree being compared (one at a time).
    buf: Vec<u8>,
    /// Tree buffers of finished frames, reused.
    spare: Vec<Vec<u8>>,
    /// Paths of submodules met (reported once by the caller).
    pub(super) submodules: Vec<BString>,
}

/// A blob a commit introduced: its id and path (relative to the repository).
pub(super) type Introduced = (ObjectId, BString);

impl<'r> TreeDiff<'r> {
    pub(super) fn new(repo: &'r gix::Repository, diag: &'r Diagnostics) -> TreeDiff<'r> {
        TreeDiff {
            repo,
            diag,
            buf: Vec::new(),
            spare: Vec::new(),
            submodules: Vec::new(),
        }
    }

    /// Reads tree `id` into `buf`; false (with a warning) when it is missing or not a tree.
    fn load_tree(&self, id: ObjectId, path: &BStr, buf: &mut Vec<u8>) -> bool {
        if id == ObjectId::empty_tree(self.repo.object_hash()) {
            buf.clear();
            return true;
        }
        match self.repo.objects.try_find(&id, buf) {
            Ok(Some(d)) if d.kind == gix::objs::Kind::Tree => true,
            Ok(Some(d)) => {
                self.diag
                    .warn_at(&show(path), format!("tree {id} is a {}", d.kind));
                false
            }
            Ok(None) => {
                self.diag
                    .warn_at(&show(path), format!("missing tree object {id}"));
                false
            }
            Err(e) => {
                self.diag
                    .warn_at(&show(path), format!("cannot read tree {id}: {e}"));
                false
            }
        }
    }

    /// A tree's entries, owned (for the staged comparison).
    pub(super) fn read_tree(&mut self, id: ObjectId, path: &BStr) -> Option<Entries> {
        let mut buf = std::mem::take(&mut self.buf);
        let loaded = self.load_tree(id, path, &mut buf);
        let mut out = Vec::new();
        if loaded {
            for e in self.entries(&buf, id, path, true) {
                out.push((e.filename.to_owned(), e.mode, e.oid.to_owned()));
            }
        }
        self.buf = buf;
        loaded.then_some(out)
    }

    /// The entries of tree `id` (read into `data`); a corrupt entry ends them with a warning.
    fn entries<'d>(
        &self,
        data: &'d [u8],
        id: ObjectId,
        path: &'d BStr,
        warn: bool,
    ) -> impl Iterator<Item = gix::objs::tree::EntryRef<'d>> + 'd
    where
        'r: 'd,
    {
        let diag = self.diag;
        gix::objs::TreeRefIter::from_bytes(data, self.repo.object_hash()).map_while(move |e| {
            e.map_err(|err| {
                if warn {
                    diag.warn_at(&show(path), format!("corrupt tree {id}: {err}"));
                }
            })
            .ok()
        })
    }

    /// Tree `new` compared with the same directory in the parents (`parents`, trees that
    /// differ from `new`): which entries some parent has unchanged, and each changed
    /// subdirectory's versions in the parents. One merge pass over sorted entries per parent,
    /// on borrowed bytes: the cost is the size of the trees read, with nothing allocated per
    /// entry. `None` (with a warning) when `new` cannot be read.
    fn frame(&mut self, new: ObjectId, parents: &[ObjectId], prefix: &BStr) -> Option<Frame> {
        let mut data = self.spare.pop().unwrap_or_default();
        if !self.load_tree(new, prefix, &mut data) {
            self.spare.push(data);
            return None;
        }
        let count = self.entries(&data, new, prefix, true).count();
        let mut unchanged = vec![false; count];
        let mut sub_parents: Vec<(usize, ObjectId)> = Vec::new();
        let mut buf = std::mem::take(&mut self.buf);
        for &parent in parents {
            if !self.load_tree(parent, prefix, &mut buf) {
                continue; // warned; every entry counts as new against this parent
            }
            let mut olds = self.entries(&buf, parent, prefix, true).peekable();
            for (i, e) in self.entries(&data, new, prefix, false).enumerate() {
                let is_tree = e.mode.is_tree();
                while let Some(o) = olds.peek() {
                    let order = gix::objs::tree::name_order(
                        o.filename,
                        o.mode.is_tree(),
                        e.filename,
                        is_tree,
                    );
                    if order == std::cmp::Ordering::Less {
                        olds.next();
                        continue;
                    }
                    if order == std::cmp::Ordering::Equal {
                        if o.oid == e.oid {
                            unchanged[i] = true;
                        } else if is_tree && o.mode.is_tree() {
                            sub_parents.push((i, o.oid.to_owned()));
                        }
                        olds.next();
                    }
                    break;
                }
            }
        }
        self.buf = buf;
        sub_parents.sort_unstable();
        sub_parents.dedup();
        Some(Frame {
            data,
            offset: 0,
            next: 0,
            unchanged,
            sub_parents,
            prefix_len: 0,
        })
    }

    /// Appends to `out` the blobs of tree `new` (commit `commit`'s) that no parent tree has at
    /// the same path, in the order a recursive walk meets them. Iterative, on an explicit stack
    /// of trees: a repository's nesting never reaches the thread's stack; trees nested deeper
    /// than [`MAX_TREE_DEPTH`] (git's own limit) are a warning and are not read.
    pub(super) fn diff(
        &mut self,
        new: ObjectId,
        parents: &[ObjectId],
        commit: &str,
        out: &mut Vec<Introduced>,
    ) {
        if parents.contains(&new) {
            return; // the same tree as a parent: nothing introduced
        }
        let mut prefix = BString::default();
        let Some(root) = self.frame(new, parents, prefix.as_bstr()) else {
            return;
        };
        let mut stack = vec![root];
        let mut sub: Vec<ObjectId> = Vec::new();
        loop {
            let depth = stack.len();
            let Some(top) = stack.last_mut() else { break };
            let Some((i, name, mode, oid)) = top.advance(self.repo.object_hash()) else {
                if let Some(done) = stack.pop() {
                    prefix.truncate(done.prefix_len);
                    self.spare.push(done.data);
                }
                continue;
            };
            if top.unchanged.get(i).copied().unwrap_or(false) {
                continue; // unchanged relative to some parent
            }
            let len = prefix.len();
            if !prefix.is_empty() {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(&top.data[name]);
            if mode.is_tree() {
                if depth >= MAX_TREE_DEPTH {
                    self.diag.warn(Warning::new(
                        WarningKind::Limit,
                        commit,
                        format!("tree nested deeper than {MAX_TREE_DEPTH} directories (git's limit): the deeper part is not read"),
                    ));
                } else {
                    sub.clear();
                    let from = top.sub_parents.partition_point(|&(j, _)| j < i);
                    sub.extend(
                        top.sub_parents[from..]
                            .iter()
                            .take_while(|&&(j, _)| j == i)
                            .map(|&(_, o)| o),
                    );
                    if let Some(mut frame) = self.frame(oid, &sub, prefix.as_bstr()) {
                        frame.prefix_len = len;
                        stack.push(frame);
                        continue; // the prefix is cut back when the frame is done
                    }
                }
            } else if mode.is_blob_or_symlink() {
                out.push((oid, prefix.clone()));
            } else if mode.is_commit() {
                self.submodules.push(prefix.clone());
            }
            prefix.truncate(len);
        }
    }
}

/// Directory nesting read in a commit's tree: git's default `core.maxTreeDepth`, past which
/// git itself refuses a tree.
pub(super) const MAX_TREE_DEPTH: usize = 4096;

/// One tree being compared in [`Walker::diff`]: its bytes and the next entry to visit, which
/// entries some parent has unchanged, the parents' versions of its changed subdirectories
/// (by entry index, sorted), and the prefix length to restore when it is done.
struct Frame {
    data: Vec<u8>,
    offset: usize,
    next: usize,
    unchanged: Vec<bool>,
    sub_parents: Vec<(usize, ObjectId)>,
    prefix_len: usize,
}

impl Frame {
    /// The next entry: its index, the range of its name in `data`, its mode and id. (A
    /// corrupt entry was warned about when the frame was made, and ends the tree.)
    fn advance(
        &mut self,
        hash: gix::hash::Kind,
    ) -> Option<(usize, std::ops::Range<usize>, EntryMode, ObjectId)> {
        let rest = self.data.get(self.offset..)?;
        let mut iter = gix::objs::TreeRefIter::from_bytes(rest, hash);
        let e = iter.next()?.ok()?;
        let base = self.data.as_ptr() as usize;
        let start = e.filename.as_ptr() as usize - base;
        let name = start..start + e.filename.len();
        let (mode, oid) = (e.mode, e.oid.to_owned());
        self.offset += iter.offset_to_next_entry(rest);
        let i = self.next;
        self.next += 1;
        Some((i, name, mode, oid))
    }
}
