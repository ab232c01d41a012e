//! Files on disk: a parallel, `.gitignore`-aware walk (the `ignore` crate, as ripgrep uses it)
//! that reads each file (memory-mapped when large) and pushes its bytes into a lane of the
//! sink, one lane per walker thread.
//!
//! Contract: never descends into `.git` or excluded paths; a path argument that does not exist
//! is an error of the run ([`WarningKind::MissingInput`]); a file that cannot be read, is
//! larger than the limit or sits in a symlink loop is a warning and the walk goes on; a mapped
//! file truncated while it is read is a warning too ([`super::mapped`]), never a crash.
//! Ignore rules never hide a file that git tracks: `.gitignore` does not apply to tracked files
//! (`git add -f`), so those under a directory root that the walk skipped are read in a second
//! walk that honours only `.ignore` and `.trawlignore`.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ignore::{WalkBuilder, WalkState};

use super::mapped::MappedFile;
use super::{Blob, PathName, Provenance, Sink, Source, SourceError, Warning, WarningKind};

/// Files at least this large are memory-mapped instead of read.
const MMAP_THRESHOLD: u64 = 4 << 20;

/// How to walk.
#[derive(Clone, Debug)]
pub struct WalkOptions {
    /// Honour `.gitignore`, `.ignore` and `.trawlignore` files.
    pub respect_ignore: bool,
    /// Follow symbolic links (loops are reported, not followed).
    pub follow_symlinks: bool,
}

/// Files and directories on disk.
#[derive(Debug)]
pub struct Files {
    roots: Vec<PathBuf>,
    opts: WalkOptions,
}

impl Files {
    /// The files under `roots` (files or directories).
    pub fn new(roots: Vec<PathBuf>, opts: WalkOptions) -> Files {
        Files { roots, opts }
    }
}

impl Source for Files {
    fn feed(&mut self, sink: &dyn Sink) -> Result<(), SourceError> {
        let diag = sink.diagnostics();
        let mut roots = Vec::new();
        for p in &self.roots {
            match std::fs::symlink_metadata(p) {
                Ok(_) => roots.push(p.clone()),
                Err(e) => diag.warn(Warning::new(
                    WarningKind::MissingInput,
                    p.to_string_lossy(),
                    format!("cannot scan: {}", io_reason(&e)),
                )),
            }
        }
        let tracked = Tracked::new(if self.opts.respect_ignore {
            tracked_files(&roots)
        } else {
            HashSet::new()
        });
        walk(&roots, &self.opts, sink, &tracked, None);
        let skipped = tracked.into_unvisited();
        if !skipped.is_empty() {
            let only = Arc::new(Only::new(skipped, &roots));
            walk(&roots, &self.opts, sink, &Tracked::default(), Some(only));
        }
        Ok(())
    }
}

/// Tracked files the walk has not met yet (empty when the roots are not in a work tree).
#[derive(Default)]
struct Tracked {
    unvisited: Mutex<HashSet<PathBuf>>,
    any: bool,
}

impl Tracked {
    fn new(files: HashSet<PathBuf>) -> Tracked {
        Tracked {
            any: !files.is_empty(),
            unvisited: Mutex::new(files),
        }
    }

    fn visit(&self, path: &Path) {
        if self.any {
            if let Ok(mut set) = self.unvisited.lock() {
                set.remove(path);
            }
        }
    }

    fn into_unvisited(self) -> HashSet<PathBuf> {
        self.unvisited.into_inner().unwrap_or_default()
    }
}

/// What the second walk may enter: the tracked files an ignore rule hid and their directories.
struct Only {
    files: HashSet<PathBuf>,
    dirs: HashSet<PathBuf>,
}

impl Only {
    fn new(files: HashSet<PathBuf>, roots: &[PathBuf]) -> Only {
        let mut dirs = HashSet::new();
        for f in &files {
            for a in f.ancestors().skip(1) {
                if roots.iter().any(|r| r == a) || !dirs.insert(a.to_path_buf()) {
                    break;
                }
            }
        }
        Only { files, dirs }
    }

    fn admits(&self, e: &ignore::DirEntry) -> bool {
        e.depth() == 0 || self.files.contains(e.path()) || self.dirs.contains(e.path())
    }
}

/// The regular files git tracks under each directory root that lies in a work tree, as the
/// walk names them (the root joined with the path below it). Empty without the git feature,
/// outside a work tree, or when the index cannot be read (the walk then behaves as before).
#[cfg(feature = "git")]
fn tracked_files(roots: &[PathBuf]) -> HashSet<PathBuf> {
    let mut out = HashSet::new();
    for root in roots.iter().filter(|r| r.is_dir()) {
        let Ok(repo) = gix::discover(root) else {
            continue;
        };
        let (Some(workdir), Ok(index)) = (repo.workdir(), repo.open_index()) else {
            continue;
        };
        let (Ok(root_abs), Ok(workdir)) = (root.canonicalize(), workdir.canonicalize()) else {
            continue;
        };
        let Ok(below) = root_abs.strip_prefix(&workdir) else {
            continue;
        };
        use gix::index::entry::Mode;
        for entry in index.entries() {
            if entry.mode != Mode::FILE && entry.mode != Mode::FILE_EXECUTABLE {
                continue; // symlinks, submodules, sparse directories
            }
            let Ok(rel) = gix::path::from_bstr(entry.path(&index)) else {
                continue;
            };
            if let Ok(rest) = rel.strip_prefix(below) {
                let path = root.join(rest);
                if path.symlink_metadata().is_ok_and(|m| m.is_file()) {
                    out.insert(path);
                }
            }
        }
    }
    out
}

#[cfg(not(feature = "git"))]
fn tracked_files(_roots: &[PathBuf]) -> HashSet<PathBuf> {
    HashSet::new()
}

/// The reason of an I/O error without the OS's decoration (`(os error 2)`).
pub(crate) fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Walks `roots` in parallel, one lane of `sink` per walker thread, noting the tracked files
/// it meets; with `only`, the second walk: tracked files hidden by git's ignore rules.
fn walk(
    roots: &[PathBuf],
    opts: &WalkOptions,
    sink: &dyn Sink,
    tracked: &Tracked,
    only: Option<Arc<Only>>,
) {
    let Some((first, rest)) = roots.split_first() else {
        return;
    };
    let diag = sink.diagnostics();
    let max_file_size = sink.max_blob_size();
    let mut builder = WalkBuilder::new(first);
    for r in rest {
        builder.add(r);
    }
    let respect = opts.respect_ignore;
    let git_rules = respect && only.is_none();
    builder
        .hidden(false)
        .parents(respect)
        .ignore(respect)
        .git_ignore(git_rules)
        .git_global(git_rules)
        .git_exclude(git_rules)
        .require_git(false)
        .follow_links(opts.follow_symlinks)
        .threads(sink.threads().max(1))
        .filter_entry(move |e| {
            e.file_name() != ".git" && only.as_ref().is_none_or(|o| o.admits(e))
        });
    if respect {
        builder.add_custom_ignore_filename(".trawlignore");
    }
    // With one directory root, paths are shown relative to it; otherwise as given.
    let strip: Option<&Path> = match roots {
        [only] if only.is_dir() => Some(only.as_path()),
        _ => None,
    };
    builder.build_parallel().run(|| {
        let mut lane = sink.lane();
        let mut buf = Vec::new();
        Box::new(move |entry| {
            let entry = match entry {
                Ok(e) => e,
                Err(err) => {
                    diag.warn(walk_warning(&err, strip));
                    return WalkState::Continue;
                }
            };
            let Some(ft) = entry.file_type() else {
                // stdin-like entries have no type; not produced for paths.
                return WalkState::Continue;
            };
            let path = entry.path();
            let shown = display_path(path, strip);
            if entry.depth() > 0 && sink.excluded(shown.as_str()) {
                return WalkState::Skip;
            }
            if !ft.is_file() {
                return WalkState::Continue;
            }
            tracked.visit(path);
            lane.name(Provenance::File {
                path: shown.clone(),
            });
            match read(path, max_file_size, &|head| sink.reads_large(head), &mut buf) {
                Ok(Some(content)) => {
                    let data = content.bytes(&buf);
                    lane.blob(Blob { data, id: None }, shown.as_str(), &|| {
                        vec![Provenance::File {
                            path: shown.clone(),
                        }]
                    });
                    if content.faulted() {
                        diag.warn(Warning::new(
                            WarningKind::Changed,
                            shown,
                            "changed while being read (truncated?); findings in it may be incomplete",
                        ));
                    }
                }
                Ok(None) => diag.warn(Warning::new(
                    WarningKind::TooLarge,
                    shown,
                    format!(
                        "skipped: larger than the maximum file size ({max_file_size} bytes; see --max-file-size)"
                    ),
                )),
                Err(err) => diag.warn(Warning::new(
                    WarningKind::Unreadable,
                    shown,
                    format!("cannot read: {}", io_reason(&err)),
                )),
            }
            WalkState::Continue
        })
    });
}

/// Whether an I/O error is "too many levels of symbolic links" (ELOOP).
fn is_link_loop(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        e.raw_os_error() == Some(libc::ELOOP)
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// A walk error as a warning: the path it concerns, the reason without the path repeated.
fn walk_warning(err: &ignore::Error, strip: Option<&Path>) -> Warning {
    let mut path = String::new();
    let mut e = err;
    loop {
        match e {
            ignore::Error::WithPath { path: p, err } => {
                path = display_path(p, strip).into();
                e = err;
            }
            ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
                e = err
            }
            ignore::Error::Loop { child, .. } => {
                return Warning::new(
                    WarningKind::Walk,
                    display_path(child, strip),
                    "symbolic link loop: not followed",
                )
            }
            ignore::Error::Io(io) => {
                // A dangling link or a cycle of links is the shape of the tree, not a file
                // that could not be read.
                let kind = if io.kind() == io::ErrorKind::NotFound || is_link_loop(io) {
                    WarningKind::Walk
                } else {
                    WarningKind::Unreadable
                };
                return Warning::new(kind, path, io_reason(io));
            }
            other => return Warning::new(WarningKind::Walk, path, other),
        }
    }
}

/// A path for reports: relative to `strip` when given, `/`-separated, without a leading `./`;
/// its raw bytes kept for identity (see [`PathName`]).
pub fn display_path(path: &Path, strip: Option<&Path>) -> PathName {
    let rel = strip
        .and_then(|s| path.strip_prefix(s).ok())
        .filter(|r| !r.as_os_str().is_empty())
        .unwrap_or(path);
    let mut bytes = path_bytes(rel);
    while let Some(rest) = bytes.strip_prefix(b"./") {
        bytes = rest.to_vec();
    }
    if bytes.is_empty() {
        bytes = path_bytes(path);
    }
    PathName::from_bytes(&bytes)
}

/// A path's bytes, `/`-separated.
fn path_bytes(path: &Path) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    }
    #[cfg(not(unix))]
    {
        let s = path
            .to_string_lossy()
            .replace(std::path::MAIN_SEPARATOR, "/");
        s.into_bytes()
    }
}

enum Content {
    Buffer,
    Mapped(MappedFile),
}

impl Content {
    fn bytes<'a>(&'a self, buf: &'a [u8]) -> &'a [u8] {
        match self {
            Content::Buffer => buf,
            Content::Mapped(m) => m,
        }
    }

    /// Whether the file shrank while mapped: bytes past its new end were read as zeros.
    fn faulted(&self) -> bool {
        matches!(self, Content::Mapped(m) if m.faulted())
    }
}

/// Reads a file into `buf`, or maps it when large. `Ok(None)` when over `max` bytes.
fn read(
    path: &Path,
    max: u64,
    reads_large: &dyn Fn(&[u8]) -> bool,
    buf: &mut Vec<u8>,
) -> io::Result<Option<Content>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut large_model = false;
    if len > max {
        // Multi-gigabyte model files cost only their headers: map them anyway.
        let mut head = [0u8; 16];
        let n = file.read(&mut head)?;
        if !reads_large(&head[..n]) {
            return Ok(None);
        }
        large_model = true;
    }
    if len >= MMAP_THRESHOLD || large_model {
        // A file truncated while mapped reads zeros and is reported, not a crash (`mapped`).
        if let Some(map) = MappedFile::map(&file) {
            return Ok(Some(Content::Mapped(map)));
        }
    }
    use std::io::Seek;
    file.rewind()?;
    buf.clear();
    // `take` bounds the read when the file grew after the size check.
    file.take(max.saturating_add(1)).read_to_end(buf)?;
    if buf.len() as u64 > max {
        return Ok(None);
    }
    if buf.capacity() > (16 << 20) && buf.len() < (1 << 20) {
        buf.shrink_to(1 << 20);
    }
    Ok(Some(Content::Buffer))
}
