//! A repository's history as one source: every blob the chosen commits introduced, read and
//! scanned once, attributed to every introduction.
//!
//! Contract, in three steps:
//! 1. The commit walk only lists commits (ids, trees, parents, authors).
//! 2. The pipeline's threads compare each commit's tree with its parents' in chunks of
//!    consecutive commits (a parent and its child share most trees, so a thread's tree cache
//!    serves both), in the direction the trees' delta chains run ([`newest_first`]), and
//!    gather every introduction: blob, path, commit.
//! 3. Each pack is traversed once in its own order, every object decoded once, and the
//!    introduced blobs are scanned as the traversal meets them; blobs no pack gave (loose
//!    objects) are read one by one.
//!
//! What a blob holds is attributed only at the end, to all of its introductions in walk order:
//! the report depends neither on the number of threads nor on which thread met a blob first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use gix::prelude::Header;
use gix::ObjectId;

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
        let shard = usize::from(id.as_slice()[0]) % SHARDS;
        self.0[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id)
    }

    fn contains(&self, id: &ObjectId) -> bool {
        let shard = usize::from(id.as_slice()[0]) % SHARDS;
        self.0[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(id)
    }
}

/// Compares every commit with its parents on the pipeline's threads, scans each introduced
/// blob once (packed ones in pack order), then attributes what was found and looks at every
/// path name.
fn scan(repo: gix::Repository, commits: &[Commit], prefix: &str, all: bool, sink: &dyn Sink) {
    let diag = sink.diagnostics();
    let shared = repo.into_sync();
    let next = AtomicUsize::new(0);
    let claimed = Claimed::new();
    let met: Mutex<Vec<Met>> = Mutex::new(Vec::new());
    let threads = sink.threads().max(1);
    let packs = pack_indices(&shared);
    let newest_first = newest_first(&packs, shared.objects.object_hash(), commits);
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
    let mut intros = Vec::new();
    let mut submodules = Vec::new();
    for m in met.into_inner().unwrap_or_else(PoisonError::into_inner) {
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
    // The packs are mapped again by the traversal, which hands its pages back as it goes:
    // the repository's own mappings (the trees' pages) are let go first.
    let (git_dir, hash) = (shared.git_dir().to_path_buf(), shared.objects.object_hash());
    drop(shared);
    scan_packed(&packs, hash, &wanted, sink);
    let Ok(shared) = gix::ThreadSafeRepository::open_opts(&git_dir, gix::open::Options::isolated())
    else {
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
        return;
    };
    scan_loose(&shared, &wanted, sink);
    let found: IdMap<Found> = wanted
        .found
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .into_iter()
        .collect();
    attribute(commits, &intros, &found, prefix, sink);
    names(commits, &intros, prefix, sink);
    submodules.sort_unstable();
    submodules.dedup();
    for path in submodules {
        diag.note_at(&show(path.as_ref()), "submodule noted, not followed");
    }
    if all {
        scan_unreachable(&shared, &claimed, prefix, sink);
    }
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
/// decoded once by gix's delta-tree traversal (a base before its deltas), on `sink`'s number
/// of threads: reading blobs one by one would decode each delta chain again per blob.
fn scan_packed(
    indices: &[std::path::PathBuf],
    hash: gix::hash::Kind,
    wanted: &Wanted<'_>,
    sink: &dyn Sink,
) {
    use gix::odb::pack;
    let diag = sink.diagnostics();
    let max = sink.max_blob_size();
    for index_path in indices {
        let pack_path = index_path.with_extension("pack");
        let Some(map) = map_pack(&pack_path) else {
            continue; // its blobs are read on their own
        };
        let (Ok(index), Ok(data)) = (
            pack::index::File::at(index_path, hash),
            pack::data::File::from_data(SharedMap(map.clone()), pack_path, hash),
        ) else {
            continue;
        };
        let decoded = std::sync::atomic::AtomicU64::new(0);
        let (map, decoded) = (&map, &decoded);
        let mut lane: LazyLane<'_> = LazyLane { sink, lane: None };
        let processor = move |kind: gix::objs::Kind,
                              bytes: &[u8],
                              entry: &pack::index::Entry,
                              _: &dyn gix::progress::Progress| {
            let id = entry.oid;
            release_pages(map, decoded, bytes.len() as u64);
            if kind != gix::objs::Kind::Blob || !wanted.claim(&id) {
                return Ok(());
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
                return Ok(());
            }
            wanted.scan(lane.get(), id, bytes, &what);
            Ok(())
        };
        let options = pack::index::traverse::with_index::Options {
            check: pack::index::traverse::SafetyCheck::SkipFileAndObjectChecksumVerificationAndNoAbortOnDecodeError,
            thread_limit: Some(sink.threads().max(1)),
            // An object declaring more than this is not decoded here (a hostile pack cannot
            // make the traversal allocate what it claims); a blob that is refused falls back
            // to the one-by-one read, which reports it as over the size limit.
            alloc_limit_bytes: Some(usize::try_from(max.max(64 << 20)).unwrap_or(usize::MAX)),
        };
        let interrupt = std::sync::atomic::AtomicBool::new(false);
        let mut progress = gix::progress::Discard;
        // Blobs the traversal could not decode stay unclaimed and are read on their own.
        let _ = index.traverse_with_index(&data, processor, &mut progress, &interrupt, options);
    }
}

/// The index files of a repository's packs (none when they cannot be listed: every blob is
/// then read on its own).
fn pack_indices(shared: &gix::ThreadSafeRepository) -> Vec<std::path::PathBuf> {
    use gix::odb::store::structure::Record;
    let repo = shared.to_thread_local();
    let Ok(records) = repo.objects.store_ref().structure() else {
        return Vec::new();
    };
    records
        .into_iter()
        .filter_map(|r| match r {
            Record::Index { path, .. } => Some(path),
            _ => None,
        })
        .collect()
}

/// Whether to compare commits newest first (the walk's order) or oldest first. A tree is
/// often stored as a delta on another version of itself, and gix keeps in its delta cache
/// only the objects it was asked for, not the bases in between: reading versions against the
/// direction of their delta chains decodes a chain again for every version (a pack written by
/// `git fast-import` chains newer versions on older ones; `git gc` and clones, mostly the
/// reverse). The order chosen starts where the root trees' chains are shallower.
fn newest_first(packs: &[std::path::PathBuf], hash: gix::hash::Kind, commits: &[Commit]) -> bool {
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
    for path in packs {
        let (Ok(index), Ok(pack)) = (
            gix::odb::pack::index::File::at(path, hash),
            gix::odb::pack::data::File::at(path.with_extension("pack"), hash),
        ) else {
            continue;
        };
        // Delta chain length of an object in this pack (`None` when it is not in it).
        let depth = |id: &ObjectId| -> Option<usize> {
            let mut offset = index.pack_offset_at_index(index.lookup(id)?);
            for d in 0..64 {
                let entry = pack.entry(offset).ok()?;
                offset = match entry.header {
                    gix::odb::pack::data::entry::Header::OfsDelta { base_distance } => {
                        entry.checked_base_pack_offset(base_distance)?
                    }
                    gix::odb::pack::data::entry::Header::RefDelta { base_id } => {
                        index.pack_offset_at_index(index.lookup(base_id)?)
                    }
                    _ => return Some(d),
                };
            }
            Some(64)
        };
        let sum = |cs: &[Commit]| cs.iter().filter_map(|c| depth(&c.tree)).sum::<usize>();
        let (newest, oldest) = (sum(&commits[..n]), sum(&commits[commits.len() - n..]));
        if newest + oldest > 0 {
            return newest <= oldest;
        }
    }
    true
}

/// A pack mapped read-only, shared by the traversal and [`release_pages`].
struct SharedMap(Arc<memmap2::Mmap>);

impl std::ops::Deref for SharedMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

fn map_pack(path: &std::path::Path) -> Option<Arc<memmap2::Mmap>> {
    let file = std::fs::File::open(path).ok()?;
    // SAFETY: git never rewrites a pack in place (a repack writes a new file and renames
    // it); a pack truncated under us would fault, as it would in gix's own mapping.
    unsafe { memmap2::Mmap::map(&file) }.ok().map(Arc::new)
}

/// Decoded bytes after which the pack's pages are handed back to the kernel.
const RELEASE_EVERY: u64 = 32 << 20;

/// Counts decoded bytes; every [`RELEASE_EVERY`] of them, drops the pack's pages from this
/// process, so that its resident memory follows the work in flight, not the size of the
/// pack. Pages still needed fault back in from the page cache.
fn release_pages(map: &memmap2::Mmap, decoded: &std::sync::atomic::AtomicU64, n: u64) {
    let before = decoded.fetch_add(n, Ordering::Relaxed);
    if before / RELEASE_EVERY != (before + n) / RELEASE_EVERY {
        // SAFETY: the mapping is read-only and backed by a file that is not written: after
        // MADV_DONTNEED, reads fault the same bytes back in from the file.
        let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
    }
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
