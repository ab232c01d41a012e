//! A repository's history as one source: every blob the chosen commits introduced, read and
//! scanned once, attributed to every introduction.
//!
//! Contract, in three steps:
//! 1. The commit walk only lists commits (ids, trees, parents, authors).
//! 2. The pipeline's threads compare each commit's tree with its parents' in chunks of
//!    consecutive commits (a parent and its child share most trees, so a thread's tree cache
//!    serves both), in the direction the trees' delta chains run ([`newest_first`]), and
//!    gather every introduction: blob, path, commit.
//! 3. Each pack's blob chains are traversed once in the pack's own order, every blob decoded
//!    once, and the introduced blobs are scanned as the traversal meets them (the largest
//!    pack's chains are listed while step 2 runs); blobs no pack gave (loose objects) are
//!    read one by one.
//!
//! What a blob holds is attributed only at the end, to all of its introductions in walk order:
//! the report depends neither on the number of threads nor on which thread met a blob first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use gix::prelude::Header;
use gix::ObjectId;

use super::packs::{DeltaTree, Pack};
use super::tree_diff::{IdMap, Introduced, TreeDiff};
use super::{
    blob_id, read_blob, read_commit, resolve, set_delta_cache, show, tips, HistoryOptions, Repo,
    WarnAt,
};
use crate::source::{
    Blob, CommitMeta, Diagnostics, Found, PathName, Provenance, Sink, Source, SourceError,
};

/// Consecutive commits one thread compares at a time, at most (a short history is cut in
/// smaller chunks, several per thread, so that the threads finish together).
const CHUNK: usize = 32;

/// Shards of the set of blobs already claimed by a thread.
const SHARDS: usize = 64;

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
            let commits = commits(&repo, &self.opts, diag)?;
            scan(repo, &commits, &prefix, self.opts.all_objects, sink);
        }
        Ok(())
    }
}

/// A commit to compare with its parents: its tree, its parents' trees (none past a shallow
/// boundary or for a missing parent: the commit then introduces all it holds), its author.
struct Commit {
    tree: ObjectId,
    parents: Vec<ObjectId>,
    meta: Arc<CommitMeta>,
}

/// The commits the options select, in walk order (newest first).
fn commits(
    repo: &gix::Repository,
    opts: &HistoryOptions,
    diag: &Diagnostics,
) -> Result<Vec<Commit>, SourceError> {
    if repo.is_shallow().unwrap_or(false) {
        diag.note_at(
            &repo.path().display().to_string(),
            "shallow clone: history before the shallow boundary is not there to scan",
        );
    }
    let shallow: gix::hashtable::HashSet<ObjectId> = repo
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
    if tips.is_empty() {
        return Ok(Vec::new());
    }
    let walk = repo
        .rev_walk(tips)
        .with_hidden(hidden)
        .all()
        .map_err(|e| SourceError::Repository(format!("cannot start the commit walk: {e}")))?;
    let mut buf = Vec::new();
    // Every walked commit's tree, for its children; then the commits to compare.
    let mut tree_of: IdMap<ObjectId> = IdMap::default();
    let mut walked = Vec::new();
    for info in walk {
        let id = match info {
            Ok(i) => i.id,
            Err(e) => {
                diag.warn_at("history", format!("commit walk stopped early: {e}"));
                break;
            }
        };
        let Some((tree, parents, meta)) = read_commit(repo, id, &mut buf, diag) else {
            continue;
        };
        tree_of.insert(id, tree);
        if opts.since.is_some_and(|s| meta.time < s) {
            continue;
        }
        let parents = if shallow.contains(&id) {
            Vec::new()
        } else {
            parents
        };
        walked.push((tree, parents, meta));
    }
    let mut out = Vec::with_capacity(walked.len());
    for (tree, parent_ids, meta) in walked {
        // Parents outside the walk (hidden by a range) are read here.
        let parents = parent_ids
            .iter()
            .filter_map(|p| match tree_of.get(p) {
                Some(&t) => Some(t),
                None => read_commit(repo, *p, &mut buf, diag).map(|(t, _, _)| t),
            })
            .collect();
        out.push(Commit {
            tree,
            parents,
            meta: Arc::new(meta),
        });
    }
    Ok(out)
}

/// One blob introduction: commit index, its place in that commit's diff, blob, path.
type Intro = (u32, u32, ObjectId, PathName);

/// What one thread met.
#[derive(Default)]
struct Met {
    intros: Vec<Intro>,
    submodules: Vec<gix::bstr::BString>,
}

/// The blobs already claimed for scanning, sharded to keep threads apart.
struct Claimed(Vec<Mutex<gix::hashtable::HashSet<ObjectId>>>);

impl Claimed {
    fn new() -> Claimed {
        Claimed((0..SHARDS).map(|_| Mutex::default()).collect())
    }

    /// True for the first caller with this id.
    fn claim(&self, id: ObjectId) -> bool {
        self.shard(&id).insert(id)
    }

    fn contains(&self, id: &ObjectId) -> bool {
        self.shard(id).contains(id)
    }

    fn shard(&self, id: &ObjectId) -> std::sync::MutexGuard<'_, gix::hashtable::HashSet<ObjectId>> {
        self.0[usize::from(id.as_slice()[0]) % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Compares every commit with its parents on the pipeline's threads, scans each introduced
/// blob once (packed ones in pack order), then attributes what was found and looks at every
/// path name.
fn scan(repo: gix::Repository, commits: &[Commit], prefix: &str, all: bool, sink: &dyn Sink) {
    let diag = sink.diagnostics();
    let packs = Pack::open_all(&repo);
    let newest_first = newest_first(&packs, commits);
    let shared = repo.into_sync();
    let claimed = Claimed::new();
    let (met, first_chains) = std::thread::scope(|s| {
        // The largest pack's blob chains are made while the commits are compared (when no
        // thread can be started for it, the traversal makes them).
        let making = packs.first().and_then(|pack| {
            std::thread::Builder::new()
                .name("trawl-pack".into())
                .spawn_scoped(s, || pack.blob_chains())
                .ok()
        });
        let met = compare(&shared, commits, newest_first, sink);
        (met, making.and_then(|m| m.join().ok().flatten()))
    });
    let mut intros = Vec::new();
    let mut submodules = Vec::new();
    for m in met {
        intros.extend(m.intros);
        submodules.extend(m.submodules);
    }
    intros.sort_unstable_by_key(|&(c, seq, _, _)| (c, seq));
    // Each blob once, named by its first introduction.
    let mut first: IdMap<usize> = IdMap::default();
    for (i, intro) in intros.iter().enumerate() {
        first.entry(intro.2).or_insert(i);
    }
    diag.total.fetch_add(first.len() as u64, Ordering::Relaxed);
    let wanted = Wanted {
        first,
        intros: &intros,
        prefix,
        claimed: &claimed,
        found: Mutex::new(Vec::new()),
    };
    let reopened = std::thread::scope(|s| {
        // Path names are looked at while the blobs are read (here when no thread can be
        // started for them).
        let naming = std::thread::Builder::new()
            .name("trawl-names".into())
            .spawn_scoped(s, || names(commits, &intros, prefix, sink));
        if naming.is_err() {
            names(commits, &intros, prefix, sink);
        }
        // The traversal reads the packs through their own mappings, handing pages back as
        // it goes: the repository's own mappings (the trees' pages) are let go first.
        let git_dir = shared.git_dir().to_path_buf();
        drop(shared);
        scan_packed(&packs, first_chains, &wanted, sink);
        drop(packs);
        let opened = gix::ThreadSafeRepository::open_opts(&git_dir, gix::open::Options::isolated());
        let Ok(shared) = opened else {
            let unread = wanted
                .first
                .keys()
                .filter(|id| !claimed.contains(id))
                .count();
            if unread > 0 {
                diag.warn_at(
                    &git_dir.display().to_string(),
                    format!("repository could not be opened again: {unread} blobs not read"),
                );
            }
            return None;
        };
        scan_loose(&shared, &wanted, sink);
        let found: IdMap<Found> = wanted
            .found
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .into_iter()
            .collect();
        attribute(commits, &intros, &found, prefix, sink);
        Some(shared)
    });
    let Some(shared) = reopened else {
        return;
    };
    submodules.sort_unstable();
    submodules.dedup();
    for path in submodules {
        diag.note_at(&show(path.as_ref()), "submodule noted, not followed");
    }
    if all {
        scan_unreachable(&shared, &claimed, prefix, sink);
    }
}

/// Compares every commit with its parents on the pipeline's threads, in chunks of
/// consecutive commits taken in the order chosen: what each thread met.
fn compare(
    shared: &gix::ThreadSafeRepository,
    commits: &[Commit],
    newest_first: bool,
    sink: &dyn Sink,
) -> Vec<Met> {
    let diag = sink.diagnostics();
    let next = AtomicUsize::new(0);
    let met: Mutex<Vec<Met>> = Mutex::new(Vec::new());
    let threads = sink.threads().max(1);
    sink.install(&mut || {
        rayon::scope(|s| {
            for _ in 0..threads {
                s.spawn(|_| {
                    // Trees through a handle that caches objects (a commit's trees are its
                    // child's parent trees).
                    let mut trees = shared.to_thread_local();
                    trees.object_cache_size_if_unset(
                        super::tuning("TRAWL_OBJECT_CACHE_MB", 16) << 20,
                    );
                    set_delta_cache(&mut trees);
                    let mut diff = TreeDiff::new(&trees, diag);
                    let mut mine = Met::default();
                    let mut introduced: Vec<Introduced> = Vec::new();
                    let n = commits.len();
                    let chunk = (n / (threads * 8)).clamp(1, CHUNK);
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed) * chunk;
                        if k >= n {
                            break;
                        }
                        // Chunk `k..k + chunk` of the order chosen: the walk's, or reversed.
                        let order: Box<dyn Iterator<Item = usize>> = if newest_first {
                            Box::new(k..(k + chunk).min(n))
                        } else {
                            Box::new((k..(k + chunk).min(n)).map(|j| n - 1 - j))
                        };
                        for ci in order {
                            let c = &commits[ci];
                            introduced.clear();
                            diff.diff(c.tree, &c.parents, &c.meta.id, &mut introduced);
                            for (seq, (id, path)) in introduced.drain(..).enumerate() {
                                let path = PathName::from_bytes(&path);
                                if !sink.excluded(path.as_str()) {
                                    mine.intros.push((ci as u32, seq as u32, id, path));
                                }
                            }
                        }
                    }
                    mine.submodules = std::mem::take(&mut diff.submodules);
                    met.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(mine);
                });
            }
        });
    });
    met.into_inner().unwrap_or_else(PoisonError::into_inner)
}

/// The blobs the commits introduced: each named by its first introduction, claimed by the
/// first thread to meet it, and what was found in it.
struct Wanted<'a> {
    first: IdMap<usize>,
    intros: &'a [Intro],
    prefix: &'a str,
    claimed: &'a Claimed,
    found: Mutex<Vec<(ObjectId, Found)>>,
}

impl Wanted<'_> {
    /// True for the first caller with a wanted blob.
    fn claim(&self, id: &ObjectId) -> bool {
        self.first.contains_key(id) && self.claimed.claim(*id)
    }

    /// The blob's name in warnings: its first introduction's path.
    fn what(&self, id: &ObjectId) -> String {
        self.first
            .get(id)
            .map(|&i| format!("{}{}", self.prefix, self.intros[i].3))
            .unwrap_or_default()
    }

    /// Scans a claimed blob and keeps what it holds.
    fn scan(&self, lane: &mut dyn crate::source::Lane, id: ObjectId, data: &[u8], what: &str) {
        let blob = Blob {
            data,
            id: blob_id(id),
        };
        if let Some(f) = lane.scan(blob, what) {
            self.found
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((id, f));
        }
    }
}

/// Scans the wanted blobs of every pack in the order the pack holds them, each object
/// decoded once (a base before its deltas), on `sink`'s number of threads: reading blobs one
/// by one would decode each delta chain again per blob. `first` is the first pack's chains,
/// when they were made while the commits were compared.
fn scan_packed(packs: &[Pack], mut first: Option<DeltaTree>, wanted: &Wanted<'_>, sink: &dyn Sink) {
    let diag = sink.diagnostics();
    let max = sink.max_blob_size();
    // A blob declaring more is not decoded by the traversal; it falls back to the one-by-one
    // read, which reports it as over the size limit.
    let alloc_limit = usize::try_from(max.max(64 << 20)).unwrap_or(usize::MAX);
    for (k, pack) in packs.iter().enumerate() {
        let Some(chains) = first
            .take()
            .filter(|_| k == 0)
            .or_else(|| pack.blob_chains())
        else {
            continue; // its blobs are read on their own
        };
        let mut lane: LazyLane<'_> = LazyLane { sink, lane: None };
        pack.traverse(chains, sink.threads(), alloc_limit, move |id, bytes| {
            if !wanted.claim(&id) {
                return;
            }
            let what = wanted.what(&id);
            if bytes.len() as u64 > max {
                diag.warn(crate::source::Warning::new(
                    crate::source::WarningKind::TooLarge,
                    what,
                    format!(
                        "blob {id} skipped: {} bytes, over the maximum size of {max} (see --max-file-size)",
                        bytes.len()
                    ),
                ));
                return;
            }
            wanted.scan(lane.get(), id, bytes, &what);
        });
    }
}

/// Whether to compare commits newest first (the walk's order) or oldest first. A tree is
/// often stored as a delta on another version of itself, and gix keeps in its delta cache
/// only the objects it was asked for, not the bases in between: reading versions against the
/// direction of their delta chains decodes a chain again for every version (a pack written by
/// `git fast-import` chains newer versions on older ones; `git gc` and clones, mostly the
/// reverse). The order chosen starts where the root trees' chains are shallower.
fn newest_first(packs: &[Pack], commits: &[Commit]) -> bool {
    const SAMPLE: usize = 16;
    // For tests and measurements (undocumented): force one order.
    match std::env::var("TRAWL_HISTORY_ORDER").as_deref() {
        Ok("newest") => return true,
        Ok("oldest") => return false,
        _ => {}
    }
    let n = commits.len().min(SAMPLE);
    if commits.len() < 2 * SAMPLE {
        return true; // a short history costs little either way
    }
    for pack in packs {
        let sum = |cs: &[Commit]| {
            cs.iter()
                .filter_map(|c| pack.delta_depth(&c.tree))
                .sum::<usize>()
        };
        let (newest, oldest) = (sum(&commits[..n]), sum(&commits[commits.len() - n..]));
        if newest + oldest > 0 {
            return newest <= oldest;
        }
    }
    true
}

/// A lane made on first use by each of the pack traversal's threads (the processor is
/// cloned per thread; a clone starts without a lane).
struct LazyLane<'s> {
    sink: &'s dyn Sink,
    lane: Option<Box<dyn crate::source::Lane + 's>>,
}

impl Clone for LazyLane<'_> {
    fn clone(&self) -> Self {
        LazyLane {
            sink: self.sink,
            lane: None,
        }
    }
}

impl<'s> LazyLane<'s> {
    fn get(&mut self) -> &mut (dyn crate::source::Lane + 's) {
        self.lane.get_or_insert_with(|| self.sink.lane()).as_mut()
    }
}

/// Reads one by one the wanted blobs that no pack traversal gave (loose objects, multi-pack
/// indexes, damaged packs), on `sink`'s threads.
fn scan_loose(shared: &gix::ThreadSafeRepository, wanted: &Wanted<'_>, sink: &dyn Sink) {
    let diag = sink.diagnostics();
    let max = sink.max_blob_size();
    let rest: Vec<ObjectId> = wanted
        .first
        .keys()
        .filter(|id| !wanted.claimed.contains(id))
        .copied()
        .collect();
    let next = AtomicUsize::new(0);
    let threads = sink.threads().max(1);
    sink.install(&mut || {
        rayon::scope(|s| {
            for _ in 0..threads {
                s.spawn(|_| {
                    let mut repo = shared.to_thread_local();
                    repo.object_cache_size(None);
                    set_delta_cache(&mut repo);
                    let mut lane = sink.lane();
                    let mut buf = Vec::new();
                    while let Some(&id) = rest.get(next.fetch_add(1, Ordering::Relaxed)) {
                        if !wanted.claim(&id) {
                            continue;
                        }
                        let what = wanted.what(&id);
                        if let Some(data) = read_blob(&repo, id, max, &mut buf, &what, diag) {
                            wanted.scan(lane.as_mut(), id, data, &what);
                        }
                    }
                });
            }
        });
    });
}

/// Records what each blob holds at every one of its introductions, in walk order.
fn attribute(
    commits: &[Commit],
    intros: &[Intro],
    found: &IdMap<Found>,
    prefix: &str,
    sink: &dyn Sink,
) {
    if found.is_empty() {
        return;
    }
    let mut places: IdMap<Vec<Provenance>> = IdMap::default();
    for (c, _, id, path) in intros {
        if found.contains_key(id) {
            places.entry(*id).or_default().push(Provenance::Git {
                commit: Some(commits[*c as usize].meta.clone()),
                path: path.prefixed(prefix),
            });
        }
    }
    for (id, found) in found {
        if let Some(provenance) = places.get(id) {
            sink.attribute(found, provenance);
        }
    }
}

/// Looks at every path name once, with the oldest commit that has it (ties by id, so the
/// answer does not depend on walk order).
fn names(commits: &[Commit], intros: &[Intro], prefix: &str, sink: &dyn Sink) {
    let older = |a: &CommitMeta, b: &CommitMeta| (a.time, &a.id) < (b.time, &b.id);
    let mut first: HashMap<&PathName, usize> = HashMap::new();
    for (c, _, _, path) in intros {
        let c = *c as usize;
        first
            .entry(path)
            .and_modify(|f| {
                if older(&commits[c].meta, &commits[*f].meta) {
                    *f = c;
                }
            })
            .or_insert(c);
    }
    let mut first: Vec<(&PathName, usize)> = first.into_iter().collect();
    first.sort_unstable();
    let mut lane = sink.lane();
    for (path, c) in first {
        lane.name(Provenance::Git {
            commit: Some(commits[c].meta.clone()),
            path: path.prefixed(prefix),
        });
    }
}

/// Scans every blob of the object database that no walked commit introduced.
fn scan_unreachable(
    shared: &gix::ThreadSafeRepository,
    claimed: &Claimed,
    prefix: &str,
    sink: &dyn Sink,
) {
    let diag = sink.diagnostics();
    let repo = shared.to_thread_local();
    let ids = match repo.objects.iter() {
        Ok(ids) => ids,
        Err(e) => {
            diag.warn_at("objects", format!("cannot list objects: {e}"));
            return;
        }
    };
    let mut lane = sink.lane();
    let mut buf = Vec::new();
    for id in ids {
        let id = match id {
            Ok(id) => id,
            Err(e) => {
                diag.warn_at("objects", format!("cannot list an object: {e}"));
                continue;
            }
        };
        if claimed.contains(&id) {
            continue;
        }
        match repo.objects.try_header(&id) {
            Ok(Some(h)) if h.kind() == gix::objs::Kind::Blob => {}
            Ok(_) => continue,
            Err(e) => {
                diag.warn_at(&id.to_string(), format!("cannot read object header: {e}"));
                continue;
            }
        }
        if !claimed.claim(id) {
            continue; // listed twice (in two packs)
        }
        diag.total.fetch_add(1, Ordering::Relaxed);
        let path: PathName = format!("unreachable/{id}").into();
        let what = format!("{prefix}{path}");
        let Some(data) = read_blob(&repo, id, sink.max_blob_size(), &mut buf, &what, diag) else {
            continue;
        };
        let blob = Blob {
            data,
            id: blob_id(id),
        };
        if let Some(found) = lane.scan(blob, &what) {
            sink.attribute(
                &found,
                &[Provenance::Git {
                    commit: None,
                    path: path.prefixed(prefix),
                }],
            );
        }
    }
}
