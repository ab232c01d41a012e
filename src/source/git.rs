//! Git history read with gix: every commit reachable from the chosen tips, each commit's tree
//! compared with its parents' trees to find the blobs it introduced, and every unique blob
//! read once. Also the staged changes (`git commit` would record) for pre-commit hooks.
//!
//! Contract: phase one walks commits and trees only and records, for each blob, where it was
//! introduced (commit and path), holding ids and paths but never blob contents; phase two
//! reads each unique blob once, in parallel. Missing or corrupt objects, shallow boundaries,
//! submodules and oversized blobs are warnings; the scan goes on.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use gix::bstr::{BStr, BString, ByteSlice, ByteVec};
use gix::objs::tree::EntryMode;
use gix::prelude::{Find, Header};
use gix::ObjectId;

use super::{
    Blob, BlobId, CommitMeta, Diagnostics, PathName, Provenance, Sink, Source, SourceError,
    Warning, WarningKind,
};
use crate::dates::format_date;

/// Which commits to scan.
#[derive(Clone, Debug, Default)]
pub struct HistoryOptions {
    /// Start from this revision only, instead of every ref.
    pub branch: Option<String>,
    /// Exclude commits reachable from these revisions (`A` of `A..B`, `--since-commit`).
    pub hide: Vec<String>,
    /// Only commits at or after this time (seconds since the epoch).
    pub since: Option<i64>,
    /// Also scan blobs that no ref reaches.
    pub all_objects: bool,
}

/// One place a blob was introduced: by a commit, at a path.
#[derive(Clone, Debug)]
pub struct Introduction {
    /// The introducing commit (None for an unreachable blob).
    pub commit: Option<Arc<CommitMeta>>,
    /// Path of the blob in that commit.
    pub path: PathName,
}

/// The result of phase one: the unique blobs to read and where each was introduced.
#[derive(Debug, Default)]
pub struct History {
    /// Blobs in the order they were first met.
    pub blobs: Vec<ObjectId>,
    /// Introductions of each blob (same index as `blobs`).
    pub introductions: Vec<Vec<Introduction>>,
    /// Commits walked.
    pub commits: usize,
    /// Every path of an introduced blob, with the oldest commit that has it, by path.
    pub names: Vec<(PathName, Arc<CommitMeta>)>,
}

/// Warnings about history, by the path or object they concern.
trait WarnAt {
    /// Something that should be there could not be read (a missing or corrupt object, a
    /// broken ref): the scan is incomplete, an error of the run.
    fn warn_at(&self, what: &str, message: impl std::fmt::Display);
    /// A fact about the history (a shallow boundary, a submodule): the scan is complete.
    fn note_at(&self, what: &str, message: impl std::fmt::Display);
}

impl WarnAt for Diagnostics {
    fn warn_at(&self, what: &str, message: impl std::fmt::Display) {
        self.warn(Warning::new(WarningKind::Unreadable, what, message));
    }

    fn note_at(&self, what: &str, message: impl std::fmt::Display) {
        self.warn(Warning::new(WarningKind::History, what, message));
    }
}

/// Finds the repository at or above `path` (a work tree, a subdirectory of one, a `.git`
/// directory or a bare repository), as git does. The error never quotes what was found at
/// `path` (gix's own message can hold a whole file).
pub fn discover(path: &Path) -> Result<gix::Repository, SourceError> {
    let mut repo =
        gix::discover(path).map_err(|_| SourceError::NotARepository(path.to_path_buf()))?;
    // Trees are read once per commit and again for its children: cache them.
    repo.object_cache_size_if_unset(tuning("TRAWL_OBJECT_CACHE_MB", 64) << 20);
    set_delta_cache(&mut repo);
    Ok(repo)
}

/// A cache size in MiB: `default`, or the value of the environment variable `var` (for
/// measuring; undocumented).
fn tuning(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Replaces gix's default delta-base cache (a 64-slot list searched from end to end on every
/// lookup: 8 % of a long history's time) by a hash map capped in bytes.
fn set_delta_cache(repo: &mut gix::Repository) {
    let bytes = tuning("TRAWL_DELTA_CACHE_MB", 32) << 20;
    if bytes == 0 {
        repo.objects.unset_pack_cache();
        return;
    }
    repo.objects.set_pack_cache(move || {
        Box::new(gix::odb::pack::cache::lru::MemoryCappedHashmap::new(bytes))
    });
}

/// The directory a repository's files live in: the work tree, or the repository itself
/// when bare.
pub fn root(repo: &gix::Repository) -> std::path::PathBuf {
    repo.workdir().unwrap_or_else(|| repo.path()).to_path_buf()
}

fn resolve(repo: &gix::Repository, spec: &str) -> Result<ObjectId, SourceError> {
    let bad = || SourceError::BadRevision(spec.to_string());
    let id = repo
        .rev_parse_single(spec.as_bytes().as_bstr())
        .map_err(|_| bad())?;
    let object = id.object().map_err(|_| bad())?;
    let commit = object.peel_to_commit().map_err(|_| bad())?;
    Ok(commit.id)
}

/// The tips to walk from: the branch, or every ref (branches, tags, remotes, stash) and HEAD.
fn tips(
    repo: &gix::Repository,
    opts: &HistoryOptions,
    diag: &Diagnostics,
) -> Result<Vec<ObjectId>, SourceError> {
    if let Some(b) = &opts.branch {
        return Ok(vec![resolve(repo, b)?]);
    }
    let mut tips = Vec::new();
    let mut seen = HashSet::new();
    // Tags can point at trees or blobs: only commits start a walk. A tip that cannot be read
    // (a corrupt pack index, a missing object) is an error, never silently no history.
    let mut add = |name: &str, id: ObjectId| match repo.find_header(id) {
        Ok(h) if h.kind() == gix::objs::Kind::Commit => {
            if seen.insert(id) {
                tips.push(id);
            }
        }
        Ok(_) => {}
        Err(e) => diag.warn_at(name, format!("ref points at a missing object: {e}")),
    };
    // A detached HEAD (as CI checks out) may be the only tip; an unborn one has no history.
    match repo.head() {
        Ok(head) => {
            if let Some(id) = head.id() {
                add("HEAD", id.detach());
            }
        }
        Err(e) => diag.warn_at("HEAD", format!("cannot read HEAD: {e}")),
    }
    let unreadable =
        |e: &dyn std::fmt::Display| SourceError::Repository(format!("cannot read refs: {e}"));
    let platform = repo.references().map_err(|e| unreadable(&e))?;
    for r in platform.all().map_err(|e| unreadable(&e))? {
        let mut r = match r {
            Ok(r) => r,
            Err(e) => {
                diag.warn_at("refs", format!("unreadable ref: {e}"));
                continue;
            }
        };
        let name = r.name().as_bstr().to_str_lossy().into_owned();
        let id = match r.peel_to_id() {
            Ok(id) => id.detach(),
            Err(e) => {
                diag.warn_at(&name, format!("cannot resolve ref: {e}"));
                continue;
            }
        };
        add(&name, id);
    }
    Ok(tips)
}

/// A tree's entries, owned.
type Entries = Vec<(BString, EntryMode, ObjectId)>;

/// Object ids as hash-map keys: they are hashes already, so the map hashes their first bytes
/// instead of running SipHash over them.
type IdMap<V> = gix::hashtable::HashMap<ObjectId, V>;

struct Walker<'r> {
    repo: &'r gix::Repository,
    diag: &'r Diagnostics,
    /// Buffer for the parent tree being compared (one at a time).
    buf: Vec<u8>,
    /// Tree buffers of finished frames, reused.
    spare: Vec<Vec<u8>>,
    index: IdMap<usize>,
    history: History,
    submodules_noted: HashSet<BString>,
    /// Every path met, with its oldest introducing commit: where a name is first seen.
    names: HashMap<BString, Arc<CommitMeta>>,
}

impl<'r> Walker<'r> {
    fn new(repo: &'r gix::Repository, diag: &'r Diagnostics) -> Walker<'r> {
        Walker {
            repo,
            diag,
            buf: Vec::new(),
            spare: Vec::new(),
            index: IdMap::default(),
            history: History::default(),
            submodules_noted: HashSet::new(),
            names: HashMap::new(),
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
    fn read_tree(&mut self, id: ObjectId, path: &BStr) -> Option<Entries> {
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

    fn introduce(&mut self, id: ObjectId, path: &BStr, commit: &Arc<CommitMeta>) {
        let intro = Introduction {
            commit: Some(commit.clone()),
            path: PathName::from_bytes(path),
        };
        match self.index.get(&id) {
            Some(&i) => self.history.introductions[i].push(intro),
            None => {
                self.index.insert(id, self.history.blobs.len());
                self.history.blobs.push(id);
                self.history.introductions.push(vec![intro]);
            }
        }
        // The walk goes from new to old: the oldest commit seen with a path is where its
        // name was first seen (ties by id, so the answer does not depend on walk order).
        let older = |a: &CommitMeta, b: &CommitMeta| (a.time, &a.id) < (b.time, &b.id);
        match self.names.get_mut(path) {
            Some(c) if older(commit, c) => *c = commit.clone(),
            Some(_) => {}
            None => {
                self.names.insert(path.to_owned(), commit.clone());
            }
        }
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

    /// Records the blobs of tree `new` that no parent tree has at the same path, in the
    /// order a recursive walk meets them. Iterative, on an explicit stack of trees: a
    /// repository's nesting never reaches the thread's stack; trees nested deeper than
    /// [`MAX_TREE_DEPTH`] (git's own limit) are a warning and are not read.
    fn diff(&mut self, new: ObjectId, parents: &[ObjectId], commit: &Arc<CommitMeta>) {
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
                        commit.id.clone(),
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
                self.introduce(oid, prefix.as_bstr(), commit);
            } else if mode.is_commit() && self.submodules_noted.insert(prefix.clone()) {
                self.diag
                    .note_at(&show(prefix.as_bstr()), "submodule noted, not followed");
            }
            prefix.truncate(len);
        }
    }
}

/// Directory nesting read in a commit's tree: git's default `core.maxTreeDepth`, past which
/// git itself refuses a tree.
const MAX_TREE_DEPTH: usize = 4096;

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

fn show(path: &BStr) -> String {
    if path.is_empty() {
        "(root tree)".to_string()
    } else {
        PathName::from_bytes(path).into()
    }
}

/// Reads a commit's tree, parents and author; `None` (with a warning) when missing or corrupt.
fn read_commit(
    repo: &gix::Repository,
    id: ObjectId,
    buf: &mut Vec<u8>,
    diag: &Diagnostics,
) -> Option<(ObjectId, Vec<ObjectId>, CommitMeta)> {
    let data = match repo.objects.try_find(&id, buf) {
        Ok(Some(d)) => d,
        Ok(None) => {
            diag.warn_at(&id.to_string(), "missing commit object");
            return None;
        }
        Err(e) => {
            diag.warn_at(&id.to_string(), format!("cannot read commit: {e}"));
            return None;
        }
    };
    let commit = match gix::objs::CommitRef::from_bytes(data.data, repo.object_hash()) {
        Ok(c) => c,
        Err(e) => {
            diag.warn_at(&id.to_string(), format!("corrupt commit: {e}"));
            return None;
        }
    };
    let (author, email, time) = match commit.author() {
        Ok(a) => (
            a.name.to_str_lossy().trim().to_string(),
            a.email.to_str_lossy().trim().to_string(),
            a.seconds(),
        ),
        Err(_) => (String::new(), String::new(), 0),
    };
    let meta = CommitMeta {
        time,
        id: id.to_string(),
        author,
        email,
        date: format_date(time),
    };
    Some((commit.tree(), commit.parents().collect(), meta))
}

/// Phase one: walks the commits and records each blob's introductions.
pub fn walk_history(
    repo: &gix::Repository,
    opts: &HistoryOptions,
    diag: &Diagnostics,
) -> Result<History, SourceError> {
    if repo.is_shallow().unwrap_or(false) {
        diag.note_at(
            &repo.path().display().to_string(),
            "shallow clone: history before the shallow boundary is not there to scan",
        );
    }
    let shallow: HashSet<ObjectId> = repo
        .shallow_commits()
        .ok()
        .flatten()
        .map(|c| c.iter().copied().collect())
        .unwrap_or_default();
    let tips = tips(repo, opts, diag)?;
    let hidden = opts
        .hide
        .iter()
        .map(|h| resolve(repo, h))
        .collect::<Result<Vec<_>, _>>()?;
    let mut walker = Walker::new(repo, diag);
    if tips.is_empty() {
        return Ok(walker.history);
    }
    let walk = repo
        .rev_walk(tips)
        .with_hidden(hidden)
        .all()
        .map_err(|e| SourceError::Repository(format!("cannot start the commit walk: {e}")))?;
    let mut commit_buf = Vec::new();
    for info in walk {
        let info = match info {
            Ok(i) => i,
            Err(e) => {
                diag.warn_at("history", format!("commit walk stopped early: {e}"));
                break;
            }
        };
        let id = info.id;
        let Some((tree, parents, meta)) = read_commit(repo, id, &mut commit_buf, diag) else {
            continue;
        };
        walker.history.commits += 1;
        if opts.since.is_some_and(|s| meta.time < s) {
            continue;
        }
        // Parents cut off by a shallow boundary or missing count as absent: the commit then
        // introduces everything it holds.
        let mut parent_trees = Vec::new();
        if !shallow.contains(&id) {
            for p in parents {
                match read_commit(repo, p, &mut commit_buf, diag) {
                    Some((t, _, _)) => parent_trees.push(t),
                    None => continue,
                }
            }
        }
        let meta = Arc::new(meta);
        walker.diff(tree, &parent_trees, &meta);
    }
    let mut history = walker.history;
    let mut names: Vec<(BString, Arc<CommitMeta>)> = walker.names.into_iter().collect();
    names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    history.names = names
        .into_iter()
        .map(|(path, commit)| (PathName::from_bytes(&path), commit))
        .collect();
    if opts.all_objects {
        add_unreachable(repo, &mut history, walker.index, diag);
    }
    Ok(history)
}

/// Adds every blob of the object database that no walked commit introduced.
fn add_unreachable(
    repo: &gix::Repository,
    history: &mut History,
    index: IdMap<usize>,
    diag: &Diagnostics,
) {
    let mut seen: gix::hashtable::HashSet<ObjectId> = index.into_keys().collect();
    let ids = match repo.objects.iter() {
        Ok(ids) => ids,
        Err(e) => {
            diag.warn_at("objects", format!("cannot list objects: {e}"));
            return;
        }
    };
    for id in ids {
        let id = match id {
            Ok(id) => id,
            Err(e) => {
                diag.warn_at("objects", format!("cannot list an object: {e}"));
                continue;
            }
        };
        if !seen.insert(id) {
            continue;
        }
        match repo.objects.try_header(&id) {
            Ok(Some(h)) if h.kind() == gix::objs::Kind::Blob => {
                history.blobs.push(id);
                history.introductions.push(vec![Introduction {
                    commit: None,
                    path: format!("unreachable/{id}").into(),
                }]);
            }
            Ok(_) => {}
            Err(e) => diag.warn_at(&id.to_string(), format!("cannot read object header: {e}")),
        }
    }
}

/// Reads a blob for scanning: `Ok(None)` (with a warning) when missing, unreadable or over
/// the size limit.
pub fn read_blob<'b>(
    repo: &gix::Repository,
    id: ObjectId,
    max: u64,
    buf: &'b mut Vec<u8>,
    what: &str,
    diag: &Diagnostics,
) -> Option<&'b [u8]> {
    match repo.objects.try_header(&id) {
        Ok(Some(h)) if h.size() > max => {
            diag.warn(Warning::new(
                WarningKind::TooLarge,
                what,
                format!(
                    "blob {id} skipped: {} bytes, over the maximum size of {max} (see --max-file-size)",
                    h.size()
                ),
            ));
            return None;
        }
        Ok(Some(_)) => {}
        Ok(None) => {
            diag.warn_at(what, format!("missing blob {id}"));
            return None;
        }
        Err(e) => {
            diag.warn_at(what, format!("cannot read blob {id}: {e}"));
            return None;
        }
    }
    match repo.objects.try_find(&id, buf) {
        Ok(Some(d)) => Some(d.data),
        Ok(None) => {
            diag.warn_at(what, format!("missing blob {id}"));
            None
        }
        Err(e) => {
            diag.warn_at(what, format!("cannot read blob {id}: {e}"));
            None
        }
    }
}

/// A staged file that differs from `HEAD`: its path, staged blob and the blob it replaces.
#[derive(Debug)]
pub struct StagedChange {
    /// Path in the index.
    pub path: PathName,
    /// The staged blob.
    pub new: ObjectId,
    /// The blob at that path in `HEAD`, if any.
    pub old: Option<ObjectId>,
}

/// What `git commit` would record: index entries whose blob differs from `HEAD`'s (all of
/// them before the first commit).
pub fn staged_changes(
    repo: &gix::Repository,
    diag: &Diagnostics,
) -> Result<Vec<StagedChange>, SourceError> {
    let index = repo
        .open_index()
        .map_err(|e| SourceError::Repository(format!("cannot read the index: {e}")))?;
    let mut head: HashMap<BString, ObjectId> = HashMap::new();
    // Directories whose cached tree in the index is HEAD's: nothing under them is staged.
    let mut unchanged: HashSet<BString> = HashSet::new();
    if let Ok(tree) = repo.head_tree_id() {
        let mut walker = Walker::new(repo, diag);
        let cached = |node: Option<&gix::index::extension::Tree>, id: ObjectId| {
            node.is_some_and(|n| n.num_entries.is_some() && n.id == id)
        };
        let root = index.tree();
        if !cached(root, tree.detach()) {
            // An explicit stack, as in `Walker::diff`, with the same depth limit.
            let mut stack = vec![(tree.detach(), BString::default(), 0usize, root)];
            while let Some((t, prefix, depth, node)) = stack.pop() {
                for (name, mode, oid) in walker.read_tree(t, prefix.as_bstr()).unwrap_or_default() {
                    let mut path = prefix.clone();
                    if !path.is_empty() {
                        path.push(b'/');
                    }
                    path.push_str(&name);
                    if mode.is_tree() && depth + 1 >= MAX_TREE_DEPTH {
                        diag.warn(Warning::new(
                            WarningKind::Limit,
                            "HEAD",
                            format!("tree nested deeper than {MAX_TREE_DEPTH} directories (git's limit): the deeper part is not compared"),
                        ));
                    } else if mode.is_tree() {
                        let child = node.and_then(|n| {
                            n.children
                                .iter()
                                .find(|c| c.name.as_slice() == name.as_slice())
                        });
                        if cached(child, oid) {
                            unchanged.insert(path);
                        } else {
                            stack.push((oid, path, depth + 1, child));
                        }
                    } else if mode.is_blob_or_symlink() {
                        head.insert(path, oid);
                    }
                }
            }
        } else {
            unchanged.insert(BString::default());
        }
    }
    let under_unchanged = |path: &BStr| {
        unchanged.contains(&BString::default())
            || path
                .iter()
                .enumerate()
                .filter(|&(_, &b)| b == b'/')
                .any(|(i, _)| unchanged.contains(path[..i].as_bstr()))
    };
    let mut out = Vec::new();
    for entry in index.entries() {
        if entry.stage() != gix::index::entry::Stage::Unconflicted
            || entry.mode.is_submodule()
            || entry.mode.is_sparse()
        {
            continue;
        }
        let path = entry.path(&index);
        if !unchanged.is_empty() && under_unchanged(path) {
            continue;
        }
        let old = head.get(path).copied();
        if old == Some(entry.id) {
            continue;
        }
        out.push(StagedChange {
            path: PathName::from_bytes(path),
            new: entry.id,
            old,
        });
    }
    Ok(out)
}

/// One repository to read, with the prefix its paths get in reports (when several are read).
pub struct Repo {
    /// The repository.
    pub repo: gix::Repository,
    /// Prepended to every path of this repository (`repo/`), or empty.
    pub prefix: String,
}

/// The history of repositories: every blob that the chosen commits introduced, each read
/// once, attributed to every introduction.
pub struct GitHistory {
    repos: Vec<Repo>,
    opts: HistoryOptions,
}

impl GitHistory {
    /// The history of `repos` as `opts` selects it.
    pub fn new(repos: Vec<Repo>, opts: HistoryOptions) -> GitHistory {
        GitHistory { repos, opts }
    }
}

impl Source for GitHistory {
    fn feed(&mut self, sink: &dyn Sink) -> Result<(), SourceError> {
        let diag = sink.diagnostics();
        for Repo { repo, prefix } in std::mem::take(&mut self.repos) {
            let history = walk_history(&repo, &self.opts, diag)?;
            diag.total.fetch_add(
                history.blobs.len() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            read_blobs(repo, &history, &prefix, sink.max_blob_size(), sink);
        }
        Ok(())
    }
}

/// Phase two: every blob of `history` read once, by the pipeline's threads, each with its
/// own repository handle, lane and buffer.
fn read_blobs(
    repo: gix::Repository,
    history: &History,
    prefix: &str,
    max_blob_size: u64,
    sink: &dyn Sink,
) {
    let diag = sink.diagnostics();
    let shared = repo.into_sync();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = sink.threads().max(1);
    let names = std::sync::atomic::AtomicBool::new(false);
    sink.install(&mut || {
        rayon::scope(|s| {
            for _ in 0..threads {
                s.spawn(|_| {
                    let mut repo = shared.to_thread_local();
                    // Blobs are read once each: only their delta bases are worth keeping.
                    repo.object_cache_size(None);
                    set_delta_cache(&mut repo);
                    let mut lane = sink.lane();
                    let mut buf = Vec::new();
                    // The first lane to start also looks at every path name once.
                    if !names.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        for (path, commit) in &history.names {
                            if !sink.excluded(path.as_str()) {
                                lane.name(Provenance::Git {
                                    commit: Some(commit.clone()),
                                    path: path.prefixed(prefix),
                                });
                            }
                        }
                    }
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&id) = history.blobs.get(i) else {
                            break;
                        };
                        let intros: Vec<&Introduction> = history.introductions[i]
                            .iter()
                            .filter(|x| !sink.excluded(x.path.as_str()))
                            .collect();
                        let Some(first) = intros.first() else {
                            continue;
                        };
                        let what = format!("{prefix}{}", first.path);
                        let Some(data) = read_blob(&repo, id, max_blob_size, &mut buf, &what, diag)
                        else {
                            continue;
                        };
                        let blob = Blob {
                            data,
                            id: blob_id(id),
                        };
                        lane.blob(blob, &what, &|| {
                            intros
                                .iter()
                                .map(|x| Provenance::Git {
                                    commit: x.commit.clone(),
                                    path: x.path.prefixed(prefix),
                                })
                                .collect()
                        });
                    }
                });
            }
        });
    });
}

fn blob_id(id: ObjectId) -> Option<BlobId> {
    id.as_slice().try_into().ok().map(BlobId)
}

/// What `git commit` would record: staged blobs that differ from `HEAD`, reporting only
/// findings on lines that `HEAD`'s version of the file does not have (moved lines are not
/// additions).
pub struct GitStaged {
    repos: Vec<Repo>,
}

impl GitStaged {
    /// The staged changes of `repos`.
    pub fn new(repos: Vec<Repo>) -> GitStaged {
        GitStaged { repos }
    }
}

impl Source for GitStaged {
    fn feed(&mut self, sink: &dyn Sink) -> Result<(), SourceError> {
        let diag = sink.diagnostics();
        let max = sink.max_blob_size();
        let mut lane = sink.lane();
        let mut buf = Vec::new();
        let mut old_buf = Vec::new();
        for Repo { repo, prefix } in &self.repos {
            let changes = staged_changes(repo, diag)?;
            diag.total
                .fetch_add(changes.len() as u64, std::sync::atomic::Ordering::Relaxed);
            for change in changes {
                let path = change.path.prefixed(prefix);
                if sink.excluded(path.as_str()) {
                    continue;
                }
                if change.old.is_none() {
                    // A new path: its name is added too.
                    lane.name(Provenance::File { path: path.clone() });
                }
                let shown = path.as_str();
                let Some(data) = read_blob(repo, change.new, max, &mut buf, shown, diag) else {
                    continue;
                };
                let old_lines: HashSet<&[u8]> = match change.old {
                    Some(old) => read_blob(repo, old, max, &mut old_buf, shown, diag)
                        .map(|d| d.split(|&b| b == b'\n').map(trim_cr).collect())
                        .unwrap_or_default(),
                    None => HashSet::new(),
                };
                let blob = Blob {
                    data,
                    id: blob_id(change.new),
                };
                lane.blob_lines(
                    blob,
                    shown,
                    &|| vec![Provenance::File { path: path.clone() }],
                    &|line| !old_lines.contains(trim_cr(line)),
                );
            }
        }
        Ok(())
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}
