//! Files on disk: a parallel, `.gitignore`-aware walk (the `ignore` crate, as ripgrep uses it)
//! that reads each file (memory-mapped when large) and hands its bytes to a per-thread visitor.
//!
//! Contract: never descends into `.git`; a file that cannot be read, is larger than the limit or
//! sits in a symlink loop is a warning and the walk goes on; binary files (a NUL in the first
//! 8 KiB) are skipped and counted.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use ignore::{WalkBuilder, WalkState};

use super::mapped::MappedFile;
use super::{looks_binary, Diagnostics};

/// Files at least this large are memory-mapped instead of read.
const MMAP_THRESHOLD: u64 = 4 << 20;

/// How to walk.
#[derive(Clone, Debug)]
pub struct WalkOptions {
    /// Honour `.gitignore`, `.ignore` and `.trawlignore` files.
    pub respect_ignore: bool,
    /// Follow symbolic links (loops are reported, not followed).
    pub follow_symlinks: bool,
    /// Files larger than this are skipped with a warning.
    pub max_file_size: u64,
    /// Worker threads.
    pub threads: usize,
}

/// Receives the files of one walker thread.
pub trait FileVisitor: Send {
    /// One readable, non-binary file: its display path and content.
    fn visit(&mut self, path: &str, data: &[u8]);
}

/// Walks `roots` in parallel; `make_visitor` is called once per thread.
pub fn walk<V, F>(roots: &[PathBuf], opts: &WalkOptions, diag: &Diagnostics, make_visitor: F)
where
    V: FileVisitor,
    F: Fn() -> V + Sync,
{
    let Some((first, rest)) = roots.split_first() else {
        return;
    };
    let mut builder = WalkBuilder::new(first);
    for r in rest {
        builder.add(r);
    }
    let respect = opts.respect_ignore;
    builder
        .hidden(false)
        .parents(respect)
        .ignore(respect)
        .git_ignore(respect)
        .git_global(respect)
        .git_exclude(respect)
        .require_git(false)
        .follow_links(opts.follow_symlinks)
        .threads(opts.threads.max(1))
        .filter_entry(|e| e.file_name() != ".git");
    if respect {
        builder.add_custom_ignore_filename(".trawlignore");
    }
    // With one directory root, paths are shown relative to it; otherwise as given.
    let strip: Option<&Path> = match roots {
        [only] if only.is_dir() => Some(only.as_path()),
        _ => None,
    };
    builder.build_parallel().run(|| {
        let mut visitor = make_visitor();
        let mut buf = Vec::new();
        Box::new(move |entry| {
            let entry = match entry {
                Ok(e) => e,
                Err(err) => {
                    diag.warn("walk", err);
                    return WalkState::Continue;
                }
            };
            let Some(ft) = entry.file_type() else {
                // stdin-like entries have no type; not produced for paths.
                return WalkState::Continue;
            };
            if !ft.is_file() {
                return WalkState::Continue;
            }
            let path = entry.path();
            let shown = display_path(path, strip);
            match read(path, opts.max_file_size, &mut buf) {
                Ok(Some(content)) => {
                    let data = content.bytes(&buf);
                    if looks_binary(data) && !crate::content::claims(data) {
                        diag.binary
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    } else {
                        diag.scanned(data.len());
                        visitor.visit(&shown, data);
                    }
                    if content.faulted() {
                        diag.warn(
                            &shown,
                            "changed while being read (truncated?); \
                             findings in it may be incomplete",
                        );
                    }
                }
                Ok(None) => diag.warn(
                    &shown,
                    format!(
                    "skipped: larger than the maximum file size ({} bytes; see --max-file-size)",
                    opts.max_file_size
                ),
                ),
                Err(err) => diag.warn(&shown, format!("cannot read: {err}")),
            }
            WalkState::Continue
        })
    });
}

/// A path for reports: relative to `strip` when given, `/`-separated, without a leading `./`.
pub fn display_path(path: &Path, strip: Option<&Path>) -> String {
    let rel = strip
        .and_then(|s| path.strip_prefix(s).ok())
        .unwrap_or(path);
    let mut s = rel.to_string_lossy().into_owned();
    if std::path::MAIN_SEPARATOR != '/' {
        s = s.replace(std::path::MAIN_SEPARATOR, "/");
    }
    while let Some(rest) = s.strip_prefix("./") {
        s = rest.to_string();
    }
    if s.is_empty() {
        s = path.to_string_lossy().into_owned();
    }
    s
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
fn read(path: &Path, max: u64, buf: &mut Vec<u8>) -> io::Result<Option<Content>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut large_model = false;
    if len > max {
        // Multi-gigabyte model files cost only their headers: map them anyway.
        let mut head = [0u8; 16];
        let n = file.read(&mut head)?;
        if !crate::content::decodes_large(&head[..n]) {
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
