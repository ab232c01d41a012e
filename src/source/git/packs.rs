//! A repository's packs read the way they are laid out: each object decoded once, a base
//! before its deltas, by gix's delta-tree traversal on several threads.
//!
//! Contract: only the chains whose base is a blob are decoded (a pack deltas an object only
//! against one of its own kind; trees and commits, most of a busy history's objects, are
//! read by the tree diff, not here). What a pack cannot give (a chain gix refuses, a pack it
//! cannot open, a blob delta on a base of another kind) is simply not handed out: the caller
//! reads those blobs one by one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use gix::odb::pack;
use gix::ObjectId;

/// One pack: its index and its own read-only mapping (held apart from the repository's, so
/// that [`release_pages`] can hand the pages back while the traversal runs).
pub(super) struct Pack {
    index: pack::index::File,
    data: pack::data::File<SharedMap>,
    map: Arc<memmap2::Mmap>,
}

/// The objects of one pack to decode: its blob chains, each object by its position in the
/// index.
pub(super) struct DeltaTree(pack::cache::delta::Tree<u32>);

impl Pack {
    /// The repository's packs, the largest first (none when they cannot be listed: every
    /// blob is then read on its own; a pack that cannot be opened is left out the same way).
    pub(super) fn open_all(repo: &gix::Repository) -> Vec<Pack> {
        use gix::odb::store::structure::Record;
        let hash = repo.object_hash();
        let Ok(records) = repo.objects.store_ref().structure() else {
            return Vec::new();
        };
        let mut packs: Vec<Pack> = records
            .into_iter()
            .filter_map(|r| match r {
                Record::Index { path, .. } => Pack::open(&path, hash),
                _ => None,
            })
            .collect();
        packs.sort_by_key(|p| std::cmp::Reverse(p.map.len()));
        packs
    }

    fn open(index_path: &std::path::Path, hash: gix::hash::Kind) -> Option<Pack> {
        let pack_path = index_path.with_extension("pack");
        let file = std::fs::File::open(&pack_path).ok()?;
        // SAFETY: git never rewrites a pack in place (a repack writes a new file and renames
        // it); a pack truncated under us would fault, as it would in gix's own mapping.
        let map = Arc::new(unsafe { memmap2::Mmap::map(&file) }.ok()?);
        let index = pack::index::File::at(index_path, hash).ok()?;
        let data = pack::data::File::from_data(SharedMap(map.clone()), pack_path, hash).ok()?;
        Some(Pack { index, data, map })
    }

    /// The length of `id`'s delta chain in this pack (`None` when it is not in it), up to 64.
    pub(super) fn delta_depth(&self, id: &ObjectId) -> Option<usize> {
        let mut offset = self.offset_of(id)?;
        for d in 0..64 {
            let entry = self.data.entry(offset).ok()?;
            offset = match entry.header {
                pack::data::entry::Header::OfsDelta { base_distance } => {
                    entry.checked_base_pack_offset(base_distance)?
                }
                pack::data::entry::Header::RefDelta { base_id } => self.offset_of(&base_id)?,
                _ => return Some(d),
            };
        }
        Some(64)
    }

    fn offset_of(&self, id: &gix::hash::oid) -> Option<u64> {
        Some(self.index.pack_offset_at_index(self.index.lookup(id)?))
    }

    /// The pack's blob chains, ready to traverse (`None` when gix cannot make a tree of
    /// them: a damaged pack, a ref delta on a base in another pack).
    pub(super) fn blob_chains(&self) -> Option<DeltaTree> {
        use pack::data::entry::Header;
        let index = &self.index;
        let hash = index.object_hash();
        // Every object by pack offset, and whether its chain's base is a blob.
        let mut order: Vec<(u64, u32)> = (0..index.num_objects())
            .map(|i| (index.pack_offset_at_index(i), i))
            .collect();
        order.sort_unstable();
        let position = |offset: u64| order.binary_search_by_key(&offset, |o| o.0).ok();
        // 0: not yet known (a ref delta on a later base), 1: a blob chain, 2: another kind.
        let mut kind = vec![0u8; order.len()];
        let end = self.data.pack_end() as u64;
        // The headers are read through the mapping: its pages are handed back as the pass
        // goes, or the whole pack would stay resident while the trees are compared.
        let read = AtomicU64::new(0);
        let mut last = 0;
        for (k, &(offset, _)) in order.iter().enumerate() {
            release_pages(&self.map, &read, offset - last);
            last = offset;
            let head = self.data.entry_slice(offset..(offset + 64).min(end))?;
            let entry = pack::data::Entry::from_bytes(head, offset, hash).ok()?;
            kind[k] = match entry.header {
                Header::Blob => 1,
                Header::Tree | Header::Commit | Header::Tag => 2,
                Header::OfsDelta { base_distance } => entry
                    .checked_base_pack_offset(base_distance)
                    .and_then(position)
                    .map_or(0, |b| kind[b]),
                Header::RefDelta { base_id } => self
                    .offset_of(&base_id)
                    .and_then(position)
                    .map_or(0, |b| kind[b]),
            };
        }
        // gix reads the headers from the start of the pack on: the first object is listed
        // whatever its kind.
        let chains: Vec<u32> = order
            .iter()
            .zip(&kind)
            .enumerate()
            .filter(|&(k, (_, &kind))| kind != 2 || k == 0)
            .map(|(_, (&(_, i), _))| i)
            .collect();
        drop((order, kind));
        hand_back(&self.map);
        let offset = |i: &u32| index.pack_offset_at_index(*i);
        let lookup = |id: &gix::hash::oid| Ok(self.offset_of(id));
        pack::cache::delta::Tree::from_offsets_in_pack(
            self.data.path(),
            chains.into_iter(),
            &offset,
            &lookup,
            &mut gix::progress::Discard,
            &AtomicBool::new(false),
            hash,
        )
        .ok()
        .map(DeltaTree)
    }

    /// Decodes every object of `chains` once, on up to `threads` threads, and hands each
    /// blob to `blob` (a clone of it per thread). An object declaring more than
    /// `alloc_limit` bytes is not decoded (a hostile pack cannot make the traversal
    /// allocate what it claims), nor are the deltas on it.
    pub(super) fn traverse<F>(&self, chains: DeltaTree, threads: usize, alloc_limit: usize, blob: F)
    where
        F: FnMut(ObjectId, &[u8]) + Send + Clone,
    {
        let decoded = AtomicU64::new(0);
        let (pack, decoded) = (self, &decoded);
        let mut blob = blob;
        let inspect =
            move |i: &mut u32,
                  _: &dyn gix::progress::Progress,
                  object: pack::cache::delta::traverse::Context<'_>| {
                release_pages(&pack.map, decoded, object.decompressed.len() as u64);
                if object.entry.header.as_kind() == Some(gix::objs::Kind::Blob) {
                    blob(pack.index.oid_at_index(*i).to_owned(), object.decompressed);
                }
                Ok(())
            };
        let options = pack::cache::delta::traverse::Options {
            object_progress: Box::new(gix::progress::Discard),
            size_progress: &mut gix::progress::Discard,
            thread_limit: Some(threads.max(1)),
            should_interrupt: &AtomicBool::new(false),
            object_hash: self.index.object_hash(),
            alloc_limit_bytes: Some(alloc_limit),
        };
        // Objects the traversal could not decode are not handed out: read on their own.
        let _ = chains.0.traverse(
            |range, data: &pack::data::File<SharedMap>| data.entry_slice(range),
            &self.data,
            self.data.pack_end() as u64,
            inspect,
            options,
        );
    }
}

/// A pack mapped read-only, shared by the traversal and [`release_pages`].
struct SharedMap(Arc<memmap2::Mmap>);

impl std::ops::Deref for SharedMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Decoded bytes after which the pack's pages are handed back to the kernel.
const RELEASE_EVERY: u64 = 32 << 20;

/// Counts decoded bytes; every [`RELEASE_EVERY`] of them, drops the pack's pages from this
/// process, so that its resident memory follows the work in flight, not the size of the
/// pack. Pages still needed fault back in from the page cache.
fn release_pages(map: &memmap2::Mmap, decoded: &AtomicU64, n: u64) {
    let before = decoded.fetch_add(n, Ordering::Relaxed);
    if before / RELEASE_EVERY != (before + n) / RELEASE_EVERY {
        hand_back(map);
    }
}

/// Drops all of the pack's pages from this process.
fn hand_back(map: &memmap2::Mmap) {
    // SAFETY: the mapping is read-only and backed by a file that is not written: after
    // MADV_DONTNEED, reads fault the same bytes back in from the file.
    let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;
    use std::sync::Mutex;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=Dev",
                "-c",
                "user.email=dev@example.invalid",
            ])
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?} failed");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Object ids of one kind in the repository, as git lists them.
    fn listed(dir: &Path, kind: &str) -> BTreeSet<ObjectId> {
        git(
            dir,
            &[
                "cat-file",
                "--batch-all-objects",
                "--batch-check=%(objecttype) %(objectname)",
            ],
        )
        .lines()
        .filter_map(|l| l.strip_prefix(kind)?.trim().parse().ok())
        .collect()
    }

    #[test]
    fn the_traversal_hands_out_every_packed_blob_once_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        git(dir, &["init", "-q"]);
        // Versions of a growing file (deltas on each other), in nested directories (trees
        // deltified too), then one pack.
        let mut text = String::new();
        for c in 0..12 {
            for line in 0..40 {
                text.push_str(&format!(
                    "commit {c} line {line} of a file that keeps growing\n"
                ));
            }
            std::fs::create_dir_all(dir.join("a/b")).unwrap();
            std::fs::write(dir.join("a/b/grow.txt"), &text).unwrap();
            std::fs::write(dir.join(format!("a/f{c}.txt")), format!("file {c}\n")).unwrap();
            git(dir, &["add", "-A"]);
            git(dir, &["commit", "-q", "-m", &format!("c{c}")]);
        }
        git(dir, &["gc", "-q", "--aggressive"]);
        let repo = gix::open(dir).unwrap();
        let packs = Pack::open_all(&repo);
        assert_eq!(packs.len(), 1);
        let deepest = listed(dir, "tree")
            .iter()
            .filter_map(|id| packs[0].delta_depth(id))
            .max();
        assert!(deepest > Some(0), "trees are stored as deltas");
        let chains = packs[0].blob_chains().expect("blob chains");
        let (shared, met) = (repo.into_sync(), Mutex::new(Vec::new()));
        packs[0].traverse(chains, 2, 1 << 20, |id, bytes| {
            let repo = shared.to_thread_local();
            let object = repo.find_object(id).unwrap();
            assert_eq!(object.data, bytes, "blob {id} decoded as git stores it");
            met.lock().unwrap().push(id);
        });
        let mut met = met.into_inner().unwrap();
        let all = met.len();
        met.sort_unstable();
        met.dedup();
        assert_eq!(met.len(), all, "each blob once");
        assert_eq!(
            met.into_iter().collect::<BTreeSet<_>>(),
            listed(dir, "blob")
        );
    }
}
