//! Git read with gix: a repository's history (`history`: each commit's tree compared with
//! its parents' trees by `tree_diff`, every introduced blob read once) and its staged changes
//! (what `git commit` would record) for pre-commit hooks; here, what both share: finding the
//! repository, resolving revisions and tips, reading commits and blobs.
//!
//! Contract: missing or corrupt objects, shallow boundaries, submodules and oversized blobs
//! are warnings; the scan goes on. What could not be read is counted as unread, never clean.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use gix::bstr::{BStr, BString, ByteSlice, ByteVec};
use gix::prelude::{Find, Header};
use gix::ObjectId;

mod history;
mod packs;
mod tree_diff;

pub use history::GitHistory;
use tree_diff::{TreeDiff, MAX_TREE_DEPTH};

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
    let bytes = tuning("TRAWL_DELTA_CACHE_MB", 8) << 20;
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

/// A digest of every ref of `path`'s repository and what it points at (HEAD included): two
/// equal digests mean the same history to scan.
pub fn ref_tips_digest(path: &Path) -> Result<String, SourceError> {
    use sha2::Digest;
    let repo = discover(path)?;
    let unreadable =
        |e: &dyn std::fmt::Display| SourceError::Repository(format!("cannot read refs: {e}"));
    let mut refs: Vec<(Vec<u8>, String)> = Vec::new();
    if let Ok(head) = repo.head() {
        if let Some(id) = head.id() {
            refs.push((b"HEAD".to_vec(), id.to_string()));
        }
    }
    let platform = repo.references().map_err(|e| unreadable(&e))?;
    for r in platform.all().map_err(|e| unreadable(&e))? {
        let mut r = r.map_err(|e| unreadable(&e))?;
        let name = r.name().as_bstr().to_vec();
        let id = r.peel_to_id().map_err(|e| unreadable(&e))?.to_string();
        refs.push((name, id));
    }
    refs.sort();
    let mut h = sha2::Sha256::new();
    for (name, id) in &refs {
        h.update(name);
        h.update(b" ");
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
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
        let mut walker = TreeDiff::new(repo, diag);
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
    fn is_small(&self) -> bool {
        true
    }

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
