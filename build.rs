//! Records the git commit trawl is built from, for `trawl --version`, as `TRAWL_GIT_COMMIT`:
//! `git rev-parse HEAD` of the repository whose work tree is this package's folder, or
//! "unknown" when there is none (a source distribution, a wheel built from one, a crate
//! tarball) or git is missing. Never fails the build. The build script runs again when HEAD
//! moves: on a checkout (HEAD), a commit (the branch's ref, loose or packed).

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The commit, when this package's folder is the top of a git work tree (not a folder inside
/// some other repository, as an unpacked source distribution may be). (Also compiled into the
/// tests, tests/release.rs.)
pub(crate) fn commit(dir: &Path) -> Option<String> {
    let top = PathBuf::from(git(dir, &["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    // Rerun when HEAD moves: HEAD itself, the ref it names (in the common folder, shared by
    // worktrees), and packed-refs. Only files that exist: cargo reruns a build script on
    // every build while one of its watched files is missing.
    let resolve = |p: String| {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            dir.join(p)
        }
    };
    let git_dir = resolve(git(dir, &["rev-parse", "--git-dir"])?);
    let common = resolve(git(dir, &["rev-parse", "--git-common-dir"])?);
    let mut watched = vec![git_dir.join("HEAD"), common.join("packed-refs")];
    if let Some(name) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(common.join(name));
    }
    for path in watched.iter().filter(|p| p.is_file()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let head = git(dir, &["rev-parse", "--verify", "-q", "HEAD"])?;
    (matches!(head.len(), 40 | 64) && head.bytes().all(|b| b.is_ascii_hexdigit())).then_some(head)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let commit = commit(&dir).unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=TRAWL_GIT_COMMIT={commit}");
}
