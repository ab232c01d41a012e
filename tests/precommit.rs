//! trawl as a pre-commit hook: through the real pre-commit framework (PyPI, pinned, installed
//! by scripts/install-test-tools.sh) with `.pre-commit-hooks.yaml` — the hook `trawl`, which
//! pre-commit compiles with cargo, and `trawl-bin`, which installs the prebuilt wheel with pip
//! (here from the test wheel, offline, with no Rust toolchain on PATH) — and as the plain git
//! hook `scripts/pre-commit`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::util::{git_cmd, Fake, Tree, BIN};

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn git(dir: &Path, args: &[&str]) -> Output {
    git_env(dir, args, &[])
}

fn git_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    git_cmd(dir, args, env)
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn all_output(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Stages a file holding a fake token and tries to commit; then replaces it with a clean file
/// and commits again. Returns both attempts.
fn commit_dirty_then_clean(repo: &Path, env: &[(&str, &str)]) -> (Output, Output) {
    let tok = Fake::new(400).hf_token();
    std::fs::write(
        repo.join("settings.py"),
        format!("DEBUG = True\nHF_TOKEN = \"{tok}\"\n"),
    )
    .unwrap();
    ok(git(repo, &["add", "settings.py"]));
    let dirty = git_env(repo, &["commit", "-q", "-m", "add settings"], env);
    std::fs::write(
        repo.join("settings.py"),
        "DEBUG = True\nHF_TOKEN = os.environ[\"HF_TOKEN\"]\n",
    )
    .unwrap();
    ok(git(repo, &["add", "settings.py"]));
    let clean = git_env(repo, &["commit", "-q", "-m", "add settings"], env);
    (dirty, clean)
}

fn assert_refused_then_accepted(dirty: &Output, clean: &Output) {
    let out = all_output(dirty);
    assert!(
        !dirty.status.success(),
        "the commit with a secret went through:\n{out}"
    );
    assert!(out.contains("huggingface.user-token"), "{out}");
    assert!(out.contains("settings.py:2:"), "names file and line: {out}");
    assert!(
        out.contains("trawl:allow"),
        "says how to allow a false positive: {out}"
    );
    assert!(
        !out.contains(&Fake::new(400).hf_token()),
        "the secret itself is not printed"
    );
    assert!(
        clean.status.success(),
        "the clean commit was refused:\n{}",
        all_output(clean)
    );
}

#[test]
fn the_plain_git_hook_refuses_a_secret_and_passes_a_clean_commit() {
    let t = Tree::new();
    let repo = t.path();
    ok(git(repo, &["init", "-q", "-b", "main"]));
    let hook = repo.join(".git/hooks/pre-commit");
    std::fs::copy(manifest_dir().join("scripts/pre-commit"), &hook).unwrap();
    // The hook finds trawl through $TRAWL (or PATH).
    let (dirty, clean) = commit_dirty_then_clean(repo, &[("TRAWL", BIN)]);
    assert_refused_then_accepted(&dirty, &clean);
}

fn pre_commit_bin() -> PathBuf {
    let p = manifest_dir().join(".tools/venv/bin/pre-commit");
    assert!(
        p.exists(),
        "pre-commit is not installed: run scripts/install-test-tools.sh (scripts/test does)"
    );
    p
}

/// A new repository in `repo` whose `.pre-commit-config.yaml` is the README's example `name`,
/// pointed at this checkout's HEAD (pre-commit installs hooks from the committed tree).
fn configured_repo(repo: &Path, name: &str) {
    let head = ok(git(manifest_dir(), &["rev-parse", "HEAD"]));
    std::fs::create_dir_all(repo).unwrap();
    ok(git(repo, &["init", "-q", "-b", "main"]));
    let config = crate::readme::example(name);
    let url_line = config
        .lines()
        .find(|l| l.contains("repo:"))
        .unwrap()
        .to_string();
    let rev_line = config
        .lines()
        .find(|l| l.contains("rev:"))
        .unwrap()
        .to_string();
    let config = config
        .replace(
            &url_line,
            &format!("  - repo: {}", manifest_dir().display()),
        )
        .replace(&rev_line, &format!("    rev: {head}"));
    std::fs::write(repo.join(".pre-commit-config.yaml"), config).unwrap();
    ok(git(repo, &["add", ".pre-commit-config.yaml"]));
}

/// Runs pre-commit in `repo` with `env`.
fn pre_commit(repo: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(pre_commit_bin())
        .args(args)
        .current_dir(repo)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .envs(env.iter().copied())
        .output()
        .expect("pre-commit runs")
}

#[test]
fn the_pre_commit_framework_installs_and_runs_the_hook() {
    let t = Tree::new();
    let repo = t.path();
    // The README's example, pointed at this checkout.
    configured_repo(repo, "pre-commit-config");
    // pre-commit builds the hook with `cargo install` from the committed tree at HEAD; its
    // cache lives under target/ so that repeated runs reuse the build.
    let home = manifest_dir().join("target/pre-commit-home");
    let env = [("PRE_COMMIT_HOME", home.to_str().unwrap())];
    ok(pre_commit(repo, &["install"], &env));
    let started = Instant::now();
    ok(pre_commit(repo, &["install-hooks"], &env));
    eprintln!(
        "pre-commit install-hooks, hook `trawl` (cargo install): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let path = format!(
        "{}:{}",
        home.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let (dirty, clean) = commit_dirty_then_clean(
        repo,
        &[("PRE_COMMIT_HOME", home.to_str().unwrap()), ("PATH", &path)],
    );
    assert_refused_then_accepted(&dirty, &clean);
}

/// The folders of PATH without a Rust toolchain (`cargo`, `rustc`, `rustup`) or a `trawl`.
fn path_without_rust() -> String {
    let dirs: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .filter(|d| {
            ["cargo", "rustc", "rustup", "trawl"]
                .iter()
                .all(|exe| !d.join(exe).exists())
        })
        .collect();
    std::env::join_paths(dirs).unwrap().into_string().unwrap()
}

#[test]
fn the_binary_hook_installs_the_wheel_in_seconds_without_a_rust_toolchain() {
    let path = path_without_rust();
    let which = |exe: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {exe}")])
            .env("PATH", &path)
            .output()
            .unwrap()
            .status
            .success()
    };
    for exe in ["cargo", "rustc", "trawl"] {
        assert!(!which(exe), "{exe} is on the hook's PATH {path}");
    }
    assert!(which("git") && which("python3"), "{path}");

    let t = Tree::new();
    let repo = t.path().join("repo");
    configured_repo(&repo, "pre-commit-config-bin");
    let home = t.path().join("pre-commit-home");
    let find_links = crate::release::find_links();
    let env = [
        ("PATH", path.as_str()),
        ("PRE_COMMIT_HOME", home.to_str().unwrap()),
        // pip installs the shim, its build backend and the wheel from the local folders only.
        ("PIP_NO_INDEX", "1"),
        ("PIP_FIND_LINKS", find_links.as_str()),
        ("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
    ];
    ok(pre_commit(&repo, &["install"], &env));
    let started = Instant::now();
    ok(pre_commit(&repo, &["install-hooks"], &env));
    let took = started.elapsed();
    eprintln!(
        "pre-commit install-hooks, hook `trawl-bin` (wheel): {:.1} s",
        took.as_secs_f64()
    );
    assert!(
        took < Duration::from_secs(120),
        "installing the wheel hook took {took:?}"
    );
    let (dirty, clean) = commit_dirty_then_clean(&repo, &env);
    assert_refused_then_accepted(&dirty, &clean);
}
