//! A repository's history as one source: every blob the chosen commits introduced, read and
//! scanned once, attributed to every introduction.
//!
//! Contract: the commit walk only lists commits (ids, trees, parents, authors). Comparing
//! each commit's tree with its parents' and scanning the blobs it introduced is one job,
//! shared by the pipeline's threads in chunks of consecutive commits (a parent and its child
//! share most trees, so a thread's tree cache serves both): a blob is scanned by the thread
//! that meets it first, while the other threads go on comparing trees, so reading history
//! and scanning overlap. What a blob holds is attributed only when every thread is done, to
//! all of its introductions in walk order: the report does not depend on which thread met a
//! blob first.

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

/// Consecutive commits one thread compares at a time.
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
    found: Vec<(ObjectId, Found)>,
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

/// Compares every commit with its parents and scans each introduced blob once, on the
/// pipeline's threads; then attributes what was found, and looks at every path name.
fn scan(repo: gix::Repository, commits: &[Commit], prefix: &str, all: bool, sink: &dyn Sink) {
    let diag = sink.diagnostics();
    let max = sink.max_blob_size();
    let shared = repo.into_sync();
    let next = AtomicUsize::new(0);
    let claimed = Claimed::new();
    let met: Mutex<Vec<Met>> = Mutex::new(Vec::new());
    let threads = sink.threads().max(1);
    sink.install(&mut || {
        rayon::scope(|s| {
            for _ in 0..threads {
                s.spawn(|_| {
                    // Trees through a handle that caches objects; blobs (read once each)
                    // through one that keeps only delta bases.
                    let mut trees = shared.to_thread_local();
                    trees.object_cache_size_if_unset(
                        super::tuning("TRAWL_OBJECT_CACHE_MB", 16) << 20,
                    );
                    set_delta_cache(&mut trees);
                    let mut blobs = shared.to_thread_local();
                    blobs.object_cache_size(None);
                    set_delta_cache(&mut blobs);
                    let mut lane = sink.lane();
                    let mut diff = TreeDiff::new(&trees, diag);
                    let mut buf = Vec::new();
                    let mut mine = Met::default();
                    let mut introduced: Vec<Introduced> = Vec::new();
                    loop {
                        let start = next.fetch_add(1, Ordering::Relaxed) * CHUNK;
                        let Some(chunk) = commits.get(start..(start + CHUNK).min(commits.len()))
                        else {
                            break;
                        };
                        if chunk.is_empty() {
                            break;
                        }
                        for (i, c) in chunk.iter().enumerate() {
                            introduced.clear();
                            diff.diff(c.tree, &c.parents, &c.meta.id, &mut introduced);
                            for (seq, (id, path)) in introduced.drain(..).enumerate() {
                                let path = PathName::from_bytes(&path);
                                if sink.excluded(path.as_str()) {
                                    continue;
                                }
                                if claimed.claim(id) {
                                    diag.total.fetch_add(1, Ordering::Relaxed);
                                    let what = format!("{prefix}{path}");
                                    if let Some(data) =
                                        read_blob(&blobs, id, max, &mut buf, &what, diag)
                                    {
                                        let blob = Blob {
                                            data,
                                            id: blob_id(id),
                                        };
                                        if let Some(found) = lane.scan(blob, &what) {
                                            mine.found.push((id, found));
                                        }
                                    }
                                }
                                mine.intros.push(((start + i) as u32, seq as u32, id, path));
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
    let mut found = IdMap::default();
    let mut submodules = Vec::new();
    for m in met.into_inner().unwrap_or_else(PoisonError::into_inner) {
        intros.extend(m.intros);
        found.extend(m.found);
        submodules.extend(m.submodules);
    }
    intros.sort_unstable_by_key(|&(c, seq, _, _)| (c, seq));
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
