//! Regression tests of the redesigned command line (one pipeline), one per bug they pin: error
//! paths that printed secrets, repository discovery, revisions, missing paths, closed pipes,
//! limits from `trawl.toml` in history, `baseline create` flags, archive members, other tools'
//! suppressions, rule selection, and the auxiliary commands.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::util::{stderr, stdout, trawl, Fake, Tree, BIN};

use crate::util::git_ok as git;

/// A new repository (branch `main`) in `dir`.
fn init(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    git(dir, &["init", "-q", "-b", "main"]);
}

/// Stages everything in `dir` and commits; returns the commit id.
fn commit(dir: &Path, msg: &str) -> String {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", msg]);
    git(dir, &["rev-parse", "HEAD"])
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// The secrets of a JSON report run with `--show-secrets`, sorted.
fn secrets(o: &Output) -> Vec<String> {
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)));
    let mut out: Vec<String> = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["secret"].as_str().unwrap_or_default().to_string())
        .collect();
    out.sort();
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Fake secrets of several rule types, and a file that holds them all.
struct Planted {
    hf: String,
    github: String,
    aws_id: String,
    aws_secret: String,
    openai: String,
}

impl Planted {
    fn new(seed: u64) -> Planted {
        let mut f = Fake::new(seed);
        let hf = f.hf_token();
        let github = f.github_token("ghp_");
        let aws_id = format!("AKIA{}", f.string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16));
        let aws_secret = f.string(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+",
            40,
        );
        let openai = format!("sk-{}T3BlbkFJ{}", f.alnum(20), f.alnum(20));
        Planted {
            hf,
            github,
            aws_id,
            aws_secret,
            openai,
        }
    }

    fn all(&self) -> [&str; 5] {
        [
            &self.hf,
            &self.github,
            &self.aws_id,
            &self.aws_secret,
            &self.openai,
        ]
    }

    /// A Python file with every secret in a form the built-in rules report.
    fn python(&self) -> String {
        format!(
            "HF_TOKEN = '{}'\nGITHUB_TOKEN = '{}'\naws_access_key_id = '{}'\n\
             aws_secret_access_key = '{}'\nOPENAI_API_KEY = '{}'\n",
            self.hf, self.github, self.aws_id, self.aws_secret, self.openai
        )
    }

    /// The first 16-character piece of a planted secret that `text` contains.
    fn leaked_in(&self, text: &str) -> Option<String> {
        self.all().into_iter().find_map(|secret| {
            let b = secret.as_bytes();
            (0..=b.len().saturating_sub(16))
                .map(|i| &secret[i..(i + 16).min(b.len())])
                .find(|w| text.contains(w))
                .map(|w| format!("`{w}` of {secret}"))
        })
    }

    /// Runs trawl; records a failure when the exit code is not one of `codes` or stderr
    /// holds a piece of a planted secret.
    fn run(&self, fails: &mut Failures, case: &str, args: &[&str], codes: &[i32]) {
        let o = trawl(args);
        let err = stderr(&o);
        let code = o.status.code();
        fails.check(case, code.is_some_and(|c| codes.contains(&c)), || {
            format!(
                "`trawl {}`: exit {code:?}, expected one of {codes:?}\nstderr: {err}",
                args.join(" ")
            )
        });
        fails.check(case, self.leaked_in(&err).is_none(), || {
            format!(
                "`trawl {}`: stderr holds {}\nstderr: {err}",
                args.join(" "),
                self.leaked_in(&err).unwrap_or_default()
            )
        });
    }
}

/// Collects the failures of a table of cases, so that one failing case does not hide the others.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, case: &str, ok: bool, detail: impl FnOnce() -> String) {
        if !ok {
            self.0.push(format!("{case}: {}", detail()));
        }
    }

    fn assert_none(self) {
        assert!(
            self.0.is_empty(),
            "{} failing case(s):\n{}",
            self.0.len(),
            self.0.join("\n\n")
        );
    }
}

/// A stored (uncompressed) zip of `members`.
fn zip(members: &[(&str, &[u8])]) -> Vec<u8> {
    fn u16le(v: &mut Vec<u8>, n: usize) {
        v.extend_from_slice(&u16::try_from(n).expect("u16").to_le_bytes());
    }
    fn u32le(v: &mut Vec<u8>, n: usize) {
        v.extend_from_slice(&u32::try_from(n).expect("u32").to_le_bytes());
    }
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for (name, data) in members {
        let crc = crc32fast::hash(data) as usize;
        let offset = out.len();
        // Local header: version 2.0, no flags, stored, 1980-01-01 00:00.
        u32le(&mut out, 0x0403_4b50);
        for n in [20, 0, 0, 0, 0x21] {
            u16le(&mut out, n);
        }
        for n in [crc, data.len(), data.len()] {
            u32le(&mut out, n);
        }
        u16le(&mut out, name.len());
        u16le(&mut out, 0);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        u32le(&mut central, 0x0201_4b50);
        for n in [20, 20, 0, 0, 0, 0x21] {
            u16le(&mut central, n);
        }
        for n in [crc, data.len(), data.len()] {
            u32le(&mut central, n);
        }
        for n in [name.len(), 0, 0, 0, 0] {
            u16le(&mut central, n);
        }
        u32le(&mut central, 0);
        u32le(&mut central, offset);
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len();
    out.extend_from_slice(&central);
    u32le(&mut out, 0x0605_4b50);
    for n in [0, 0, members.len(), members.len()] {
        u16le(&mut out, n);
    }
    u32le(&mut out, central.len());
    u32le(&mut out, cd_offset);
    u16le(&mut out, 0);
    out
}

/// The write end of a pipe whose read end is already closed: every write fails with EPIPE.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: both descriptors were just created and are owned here alone.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

#[test]
fn no_secret_or_file_content_reaches_stderr_on_any_error_path() {
    let p = Planted::new(900);
    let t = Tree::new();
    let mut fails = Failures::default();
    // A repository whose committed file holds the secrets, scanned by naming the file.
    let repo = t.path().join("repo");
    init(&repo);
    std::fs::create_dir_all(repo.join("path/to")).expect("mkdir");
    std::fs::write(repo.join("path/to/file.py"), p.python()).expect("write");
    commit(&repo, "secrets");
    let file = repo.join("path/to/file.py");
    p.run(&mut fails, "git on a file", &["git", s(&file)], &[1, 2]);
    // An uncommitted file outside any repository.
    let loose = t.write("plain/creds.py", p.python());
    p.run(
        &mut fails,
        "git on a file outside a repository",
        &["git", s(&loose)],
        &[2],
    );
    p.run(
        &mut fails,
        "git on a directory that is not a repository",
        &["git", s(&t.path().join("plain"))],
        &[2],
    );

    // Configuration files that do not parse, their bad line a secret.
    let scan_dir = t.path().join("plain");
    let bad_configs = [
        ("unquoted hf", format!("[rules]\ntoken = {}\n", p.hf)),
        ("unquoted aws id", format!("token = {}\n", p.aws_id)),
        ("unquoted aws secret", format!("token = {}\n", p.aws_secret)),
        ("wrong type hf", format!("[rules]\nfiles = \"{}\"\n", p.hf)),
        (
            "wrong type aws secret",
            format!("[rules]\nfiles = \"{}\"\n", p.aws_secret),
        ),
        (
            "wrong type openai",
            format!("[limits]\narchive_depth = \"{}\"\n", p.openai),
        ),
        (
            "wrong type in a list",
            format!("[allowlist]\npaths = [\"{}\", 3]\n", p.github),
        ),
        (
            "bad glob",
            format!("[allowlist]\npaths = [\"{}[\"]\n", p.openai),
        ),
        (
            "bad regex",
            format!("[allowlist]\nregexes = ['''{}(''']\n", p.hf),
        ),
        (
            "whole file",
            format!("{}\n[rules]\nfiles = 1\n", p.python().replace(" = ", ": ")),
        ),
    ];
    for (i, (case, text)) in bad_configs.iter().enumerate() {
        let path = t.write(&format!("configs/bad{i}.toml"), text);
        p.run(
            &mut fails,
            &format!("--config: {case}"),
            &["scan", s(&scan_dir), "--config", s(&path)],
            &[2],
        );
    }
    // The same configuration as `trawl.toml` of a scanned repository.
    let cfg_repo = t.path().join("cfg-repo");
    init(&cfg_repo);
    std::fs::write(
        cfg_repo.join("trawl.toml"),
        format!("token = {}\n", p.aws_secret),
    )
    .expect("write");
    commit(&cfg_repo, "config");
    p.run(
        &mut fails,
        "trawl.toml of a repository",
        &["git", s(&cfg_repo)],
        &[2],
    );

    // Rule files that do not load and hold secrets.
    let bad_rules = [
        (
            "unquoted example",
            format!(
                "[[rules]]\nid = \"x.y\"\nname = \"x\"\ncategory = \"cloud\"\nseverity = \"high\"\n\
                 regex = '''x_[a-z]{{8}}'''\nkeywords = [\"x_\"]\nexamples = [{}]\n",
                p.aws_secret
            ),
        ),
        (
            "regex that does not compile",
            format!(
                "[[rules]]\nid = \"x.y\"\nname = \"x\"\ncategory = \"cloud\"\nseverity = \"high\"\n\
                 regex = '''{}('''\nkeywords = [\"ghp_\"]\n",
                p.github
            ),
        ),
        (
            "secret as rule id",
            format!(
                "[[rules]]\nid = \"{}\"\nname = \"x\"\ncategory = \"cloud\"\nseverity = 3\n\
                 regex = '''x'''\nkeywords = [\"x\"]\n",
                p.aws_id
            ),
        ),
        (
            "wrong type",
            format!(
                "[[rules]]\nid = \"x.y\"\nname = \"{}\"\ncategory = \"cloud\"\nseverity = \"{}\"\n\
                 regex = '''x'''\nkeywords = [\"x\"]\n",
                p.openai, p.hf
            ),
        ),
        (
            "gitleaks, bad regex",
            format!(
                "[[rules]]\nid = \"k\"\ndescription = \"k\"\nregex = '''{}(unclosed'''\n\
                 secretGroup = 1\n",
                p.openai
            ),
        ),
        (
            "gitleaks, unquoted allowlist",
            format!(
                "[[rules]]\nid = \"k\"\ndescription = \"k\"\nregex = '''k_[a-z]+'''\n\
                 [rules.allowlist]\nstopwords = [{}]\n",
                p.hf
            ),
        ),
        ("a file of secrets", p.python()),
    ];
    for (i, (case, text)) in bad_rules.iter().enumerate() {
        let path = t.write(&format!("rules/bad{i}.toml"), text);
        // A gitleaks rule that cannot be converted is skipped with a warning: the run goes on.
        let codes: &[i32] = if case.starts_with("gitleaks, bad regex") {
            &[1]
        } else {
            &[2]
        };
        p.run(
            &mut fails,
            &format!("--rules: {case}"),
            &["scan", s(&scan_dir), "--rules", s(&path)],
            codes,
        );
        let o = trawl(["rules", "check", s(&path)]);
        let err = format!("{}{}", stderr(&o), stdout(&o));
        fails.check(
            &format!("rules check: {case}"),
            p.leaked_in(&err).is_none(),
            || {
                format!(
                    "`trawl rules check {}`: output holds {}\n{err}",
                    path.display(),
                    p.leaked_in(&err).unwrap_or_default()
                )
            },
        );
    }

    // A corrupt loose object: the blob of a file holding secrets overwritten with garbage that
    // still carries the secrets in clear.
    let corrupt = t.path().join("corrupt");
    init(&corrupt);
    std::fs::write(corrupt.join("creds.py"), p.python()).expect("write");
    std::fs::write(
        corrupt.join("other.txt"),
        format!("{}\n", Fake::new(901).hf_token()),
    )
    .expect("write");
    commit(&corrupt, "secrets");
    let id = git(&corrupt, &["rev-parse", "HEAD:creds.py"]);
    let obj = corrupt.join(".git/objects").join(&id[..2]).join(&id[2..]);
    std::fs::set_permissions(&obj, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::write(&obj, format!("blob 9999\0{}garbage\x00\x01", p.python())).expect("write");
    p.run(
        &mut fails,
        "corrupt loose object",
        &["git", s(&corrupt)],
        &[1, 2],
    );
    // Baselines that are not baselines and hold secrets.
    let bad_baselines = [
        (
            "invalid JSON",
            format!("{{\"version\": 1, \"entries\": [{}]}}", p.aws_secret),
        ),
        (
            "wrong type",
            format!("{{\"version\": 1, \"entries\": \"{}\"}}", p.aws_secret),
        ),
        (
            "wrong field type",
            format!(
                "{{\"version\": 1, \"entries\": [{{\"fingerprint\": 1, \"rule\": \"{}\"}}]}}",
                p.openai
            ),
        ),
        ("a file of secrets", p.python()),
    ];
    for (i, (case, text)) in bad_baselines.iter().enumerate() {
        let path = t.write(&format!("baselines/bad{i}.json"), text);
        p.run(
            &mut fails,
            &format!("--baseline: {case}"),
            &["scan", s(&scan_dir), "--baseline", s(&path)],
            &[2],
        );
    }
    fails.assert_none();
}

/// Error messages that quote a value of the file they name: a size in `trawl.toml`, the
/// fingerprint of a baseline entry.
#[test]
fn no_secret_reaches_stderr_from_a_quoted_size_or_baseline_fingerprint() {
    let p = Planted::new(902);
    let t = Tree::new();
    let dir = t.write("plain/x.txt", "nothing\n");
    let dir = dir.parent().expect("dir");
    let mut fails = Failures::default();
    let config = t.write(
        "bad-size.toml",
        format!("[limits]\nmax_file_size = \"{}\"\n", p.aws_secret),
    );
    p.run(
        &mut fails,
        "--config: bad size",
        &["scan", s(dir), "--config", s(&config)],
        &[2],
    );
    let baseline = t.write(
        "bad-expiry.json",
        format!(
            "{{\"version\": 1, \"entries\": [{{\"fingerprint\": \"{}\", \"rule\": \"x\", \
             \"expires\": \"{}\"}}]}}",
            p.aws_secret, p.hf
        ),
    );
    p.run(
        &mut fails,
        "--baseline: bad expiry",
        &["scan", s(dir), "--baseline", s(&baseline)],
        &[2],
    );
    fails.assert_none();
}

/// A history that cannot be read at all (a truncated pack) must not pass the gate as clean.
#[test]
fn a_history_that_cannot_be_read_is_exit_2_not_a_clean_pass() {
    let p = Planted::new(903);
    let t = Tree::new();
    let mut fails = Failures::default();
    // A truncated pack holding the secrets.
    let packed = t.path().join("packed");
    init(&packed);
    std::fs::write(packed.join("creds.py"), p.python()).expect("write");
    commit(&packed, "secrets");
    git(&packed, &["gc", "-q"]);
    let pack_dir = packed.join(".git/objects/pack");
    for e in std::fs::read_dir(&pack_dir).expect("pack dir") {
        let path = e.expect("entry").path();
        if path.extension().is_some_and(|x| x == "pack") {
            let bytes = std::fs::read(&path).expect("pack");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
        }
    }
    p.run(&mut fails, "truncated pack", &["git", s(&packed)], &[2]);

    fails.assert_none();
}

/// A repository with one committed secret under `sub/dir`; returns (repo, secret).
fn repo_with_secret(root: &Path, seed: u64) -> (PathBuf, String) {
    let tok = Fake::new(seed).hf_token();
    let repo = root.join("repo");
    init(&repo);
    std::fs::create_dir_all(repo.join("sub/dir")).expect("mkdir");
    std::fs::write(repo.join("sub/dir/app.env"), format!("HF_TOKEN={tok}\n")).expect("write");
    commit(&repo, "secret");
    (repo, tok)
}

#[test]
fn git_finds_the_repository_upward_and_accepts_bare_repositories_and_worktrees() {
    let t = Tree::new();
    let (repo, tok) = repo_with_secret(t.path(), 910);
    let mut fails = Failures::default();
    let mut expect_found = |case: &str, o: Output| {
        let ok = o.status.code() == Some(1)
            && serde_json::from_slice::<Value>(&o.stdout).is_ok()
            && secrets(&o) == vec![tok.clone()];
        fails.check(case, ok, || {
            format!(
                "exit {:?}\nstdout: {}\nstderr: {}",
                o.status.code(),
                stdout(&o),
                stderr(&o)
            )
        });
    };
    let json = ["-f", "json", "--show-secrets"];
    let sub = repo.join("sub/dir");
    expect_found(
        "subdirectory as the path",
        trawl(["git", s(&sub)].iter().chain(&json)),
    );
    expect_found(
        "current directory a subdirectory, no path",
        Command::new(BIN)
            .current_dir(&sub)
            .arg("git")
            .args(json)
            .output()
            .expect("trawl runs"),
    );
    let bare = t.path().join("bare.git");
    let o = Command::new("git")
        .args(["clone", "-q", "--bare", s(&repo), s(&bare)])
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs");
    assert!(o.status.success(), "{}", stderr(&o));
    expect_found(
        "bare repository",
        trawl(["git", s(&bare)].iter().chain(&json)),
    );
    expect_found(
        "current directory a bare repository, no path",
        Command::new(BIN)
            .current_dir(&bare)
            .arg("git")
            .args(json)
            .output()
            .expect("trawl runs"),
    );
    let wt = t.path().join("wt");
    git(&repo, &["worktree", "add", "-q", "-b", "other", s(&wt)]);
    expect_found("worktree", trawl(["git", s(&wt)].iter().chain(&json)));
    expect_found(
        "subdirectory of a worktree",
        trawl(["git", s(&wt.join("sub"))].iter().chain(&json)),
    );
    fails.assert_none();
}

#[test]
fn a_bad_revision_is_exit_2_naming_it() {
    let t = Tree::new();
    let (repo, _) = repo_with_secret(t.path(), 920);
    let mut fails = Failures::default();
    for flags in [
        ["--range", "main..nope"],
        ["--range", "nope..main"],
        ["--branch", "nope"],
        ["--since-commit", "nope"],
    ] {
        let o = trawl(["git", s(&repo)].iter().chain(&flags));
        let err = stderr(&o);
        fails.check(
            &flags.join(" "),
            o.status.code() == Some(2) && err.contains("cannot resolve `nope`"),
            || format!("exit {:?}\nstderr: {err}", o.status.code()),
        );
    }
    fails.assert_none();
}

#[test]
fn a_missing_path_is_exit_2_after_the_complete_report() {
    let t = Tree::new();
    let tok = Fake::new(930).hf_token();
    t.write("present/app.env", format!("HF_TOKEN={tok}\n"));
    let present = t.path().join("present");
    let missing = t.path().join("missing_path");
    let mut fails = Failures::default();

    let o = trawl(["scan", s(&present), s(&missing), "--color", "never"]);
    let (out, err) = (stdout(&o), stderr(&o));
    fails.check(
        "text",
        o.status.code() == Some(2)
            && out.contains("huggingface.user-token")
            && out.contains("app.env")
            && err.contains("missing_path"),
        || format!("exit {:?}\nstdout: {out}\nstderr: {err}", o.status.code()),
    );

    for format in ["json", "sarif"] {
        let o = trawl([
            "scan",
            s(&present),
            s(&missing),
            "-f",
            format,
            "--show-secrets",
        ]);
        let (out, err) = (stdout(&o), stderr(&o));
        let v: Option<Value> = serde_json::from_slice(&o.stdout).ok();
        let complete = v.is_some_and(|v| match format {
            "json" => v["findings"]
                .as_array()
                .is_some_and(|f| f.len() == 1 && f[0]["secret"] == Value::String(tok.clone())),
            _ => v["runs"][0]["results"]
                .as_array()
                .is_some_and(|r| r.len() == 1),
        });
        fails.check(
            format,
            o.status.code() == Some(2) && complete && err.contains("missing_path"),
            || format!("exit {:?}\nstdout: {out}\nstderr: {err}", o.status.code()),
        );
    }
    // Missing first, present second: the same.
    let o = trawl([
        "scan",
        s(&missing),
        s(&present),
        "-f",
        "json",
        "--show-secrets",
    ]);
    fails.check(
        "missing path first",
        o.status.code() == Some(2)
            && serde_json::from_slice::<Value>(&o.stdout).is_ok()
            && secrets(&o) == vec![tok.clone()],
        || {
            format!(
                "exit {:?}\nstdout: {}\nstderr: {}",
                o.status.code(),
                stdout(&o),
                stderr(&o)
            )
        },
    );
    fails.assert_none();
}

/// A tree whose report is far larger than a pipe's buffer (64 KiB) in every format.
fn many_findings(t: &Tree) -> PathBuf {
    let mut f = Fake::new(940);
    for i in 0..20 {
        let text: String = (0..50)
            .map(|_| format!("HF_TOKEN={}\n", f.hf_token()))
            .collect();
        t.write(&format!("many/f{i}.env"), text);
    }
    t.path().join("many")
}

/// Runs `trawl args` with stdout to a reader that reads `n` bytes and goes away; returns
/// (exit code, stderr, bytes read).
fn with_early_reader(args: &[&str], n: usize) -> (Option<i32>, String, usize) {
    use std::io::Read;
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("trawl runs");
    let mut first = vec![0; n];
    let mut got = 0;
    {
        let mut out = child.stdout.take().expect("stdout");
        while got < n {
            match out.read(&mut first[got..]) {
                Ok(0) | Err(_) => break,
                Ok(k) => got += k,
            }
        }
    }
    let o = child.wait_with_output().expect("trawl ends");
    (o.status.code(), stderr(&o), got)
}

fn quiet_about_the_pipe(err: &str) -> bool {
    let lower = err.to_lowercase();
    !lower.contains("broken pipe") && !lower.contains("error") && !lower.contains("panick")
}

#[test]
fn a_closed_stdout_ends_quietly_with_the_exit_code_of_the_run() {
    let t = Tree::new();
    let dir = many_findings(&t);
    let mut fails = Failures::default();
    for format in ["text", "json", "jsonl", "sarif"] {
        let (code, err, got) = with_early_reader(&["scan", s(&dir), "-f", format], 10);
        fails.check(
            &format!("scan -f {format}, reader gone after 10 bytes"),
            got == 10 && code == Some(1) && quiet_about_the_pipe(&err),
            || format!("read {got} bytes, exit {code:?}\nstderr: {err}"),
        );
    }
    // As a shell runs it.
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{BIN}' scan '{}' -f sarif | head -c 10 >/dev/null; exit ${{PIPESTATUS[0]}}",
            dir.display()
        ))
        .output()
        .expect("bash runs");
    fails.check(
        "bash: trawl scan -f sarif | head -c 10",
        o.status.code() == Some(1) && quiet_about_the_pipe(&stderr(&o)),
        || format!("exit {:?}\nstderr: {}", o.status.code(), stderr(&o)),
    );

    // A reader gone before the first byte (deterministic, whatever the output's size).
    let closed: &[(&[&str], i32)] = &[
        (&["scan", s(&dir)], 1),
        (&["scan", s(&dir), "-f", "json"], 1),
        (&["rules", "list"], 0),
        (&["rules", "check"], 0),
        (&["completions", "bash"], 0),
        (&["man"], 0),
        (&["--help"], 0),
        (&["--version"], 0),
    ];
    for (args, want) in closed {
        let o = Command::new(BIN)
            .args(*args)
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .output()
            .expect("trawl runs");
        let err = stderr(&o);
        fails.check(
            &format!("trawl {} | (closed)", args.join(" ")),
            o.status.code() == Some(*want) && quiet_about_the_pipe(&err),
            || format!("exit {:?}, expected {want}\nstderr: {err}", o.status.code()),
        );
    }
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{BIN}' rules list | head -1 >/dev/null; exit ${{PIPESTATUS[0]}}"
        ))
        .output()
        .expect("bash runs");
    fails.check(
        "bash: trawl rules list | head -1",
        o.status.code() == Some(0) && stderr(&o).is_empty(),
        || format!("exit {:?}\nstderr: {}", o.status.code(), stderr(&o)),
    );
    fails.assert_none();
}

/// `rules list --json` writes through serde_json, whose error wraps the broken pipe.
#[test]
fn rules_list_json_to_a_closed_pipe_ends_quietly() {
    let o = Command::new(BIN)
        .args(["rules", "list", "--json"])
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .output()
        .expect("trawl runs");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(quiet_about_the_pipe(&err), "{err}");
}

#[test]
fn a_closed_stderr_is_never_a_panic() {
    let t = Tree::new();
    let mut f = Fake::new(950);
    // Findings, warnings (files over the size limit), a binary file.
    t.write("d/app.env", format!("HF_TOKEN={}\n", f.hf_token()));
    for i in 0..20 {
        t.write(
            &format!("d/big{i}.txt"),
            format!("{}\nHF_TOKEN={}\n", "x".repeat(2000), f.hf_token()),
        );
    }
    t.write("d/blob.bin", b"\0\x01\x02binary");
    let dir = t.path().join("d");
    let (repo, _) = repo_with_secret(t.path(), 951);
    // A rule file whose example the rule does not report: `rules check` prints failures.
    let rules = t.write(
        "failing-rules.toml",
        "[[rules]]\nid = \"acme.key\"\nname = \"Acme key\"\ncategory = \"cloud\"\n\
         severity = \"high\"\nregex = '''\\b(?P<secret>acme_[a-z0-9]{24})\\b'''\n\
         keywords = [\"acme_\"]\nexamples = ['ACME=nothing here']\n",
    );
    let (missing, baseline) = (t.path().join("missing"), t.path().join("b.json"));
    let mut fails = Failures::default();
    let cases: &[(&[&str], &[i32])] = &[
        (&["scan", s(&dir), "--max-file-size", "1K"], &[1]),
        (
            &["scan", s(&dir), "--max-file-size", "1K", "-f", "json"],
            &[1],
        ),
        (&["git", s(&repo)], &[1]),
        (&["git", s(&repo), "--staged"], &[0]),
        (&["scan", s(&missing)], &[2]),
        (&["git", s(&dir)], &[2]),
        (&["scan", "--no-such-flag"], &[2]),
        (&["rules", "check", s(&rules)], &[1]),
        (
            &["baseline", "create", s(&dir), "-o", s(&baseline)],
            &[0, 2],
        ),
    ];
    for (args, want) in cases {
        let o = Command::new(BIN)
            .args(*args)
            .stdout(Stdio::null())
            .stderr(closed_pipe())
            .output()
            .expect("trawl runs");
        fails.check(
            &format!("trawl {} 2>(closed)", args.join(" ")),
            o.status.code().is_some_and(|c| want.contains(&c)),
            || format!("exit {:?}, expected one of {want:?}", o.status.code()),
        );
    }
    // As a shell runs it: stderr to a reader that leaves after one line.
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "('{BIN}' scan '{}' --max-file-size 1K 2>&1 >/dev/null; echo \"exit $?\" >&3) 3>&1 \
             | head -1 >/dev/null; true",
            dir.display()
        ))
        .output()
        .expect("bash runs");
    let out = stdout(&o);
    fails.check(
        "bash: trawl scan 2>&1 >/dev/null | head -1",
        !out.contains("exit 101"),
        || format!("{out}{}", stderr(&o)),
    );
    fails.assert_none();
}

#[test]
fn git_honours_archive_depth_from_the_repository_config_and_the_flag() {
    let t = Tree::new();
    let tok = Fake::new(960).hf_token();
    let inner = zip(&[("secret.txt", format!("HF_TOKEN={tok}\n").as_bytes())]);
    let mid = zip(&[("inner.zip", &inner)]);
    let outer = zip(&[("mid.zip", &mid)]);
    let repo = t.path().join("repo");
    init(&repo);
    std::fs::write(repo.join("outer.zip"), &outer).expect("write");
    commit(&repo, "nested archive");
    let mut fails = Failures::default();
    let json = ["-f", "json", "--show-secrets"];

    let o = trawl(["git", s(&repo)].iter().chain(&json));
    fails.check(
        "default depth",
        o.status.code() == Some(1) && secrets(&o) == vec![tok.clone()],
        || format!("exit {:?}\n{}\n{}", o.status.code(), stdout(&o), stderr(&o)),
    );
    let not_found = |o: &Output| {
        o.status.code() == Some(0)
            && secrets(o).is_empty()
            && stderr(o).contains("nested deeper than 1")
    };
    let o = trawl(
        ["git", s(&repo), "--archive-depth", "1"]
            .iter()
            .chain(&json),
    );
    fails.check("--archive-depth 1", not_found(&o), || {
        format!("exit {:?}\n{}\n{}", o.status.code(), stdout(&o), stderr(&o))
    });
    // The same limit from trawl.toml, committed in the repository.
    std::fs::write(repo.join("trawl.toml"), "[limits]\narchive_depth = 1\n").expect("write");
    commit(&repo, "limits");
    let o = trawl(["git", s(&repo)].iter().chain(&json));
    fails.check("[limits] archive_depth = 1", not_found(&o), || {
        format!("exit {:?}\n{}\n{}", o.status.code(), stdout(&o), stderr(&o))
    });
    // And `trawl scan` of the same work tree agrees.
    let o = trawl(["scan", s(&repo)].iter().chain(&json));
    fails.check(
        "scan with [limits] archive_depth = 1",
        not_found(&o),
        || format!("exit {:?}\n{}\n{}", o.status.code(), stdout(&o), stderr(&o)),
    );
    fails.assert_none();
}

const CUSTOM_RULE: &str = "[[rules]]\nid = \"acme.key\"\nname = \"Acme key\"\n\
    category = \"cloud\"\nseverity = \"high\"\n\
    regex = '''\\b(?P<secret>acme_[a-z0-9]{24})\\b'''\nkeywords = [\"acme_\"]\n\
    examples = ['ACME_KEY=acme_q3x9wplm2rt7yvbn4kc8hd1j']\n";

#[test]
fn baseline_create_takes_rule_files_and_history() {
    let t = Tree::new();
    let mut fails = Failures::default();

    // --rules: a finding only the custom rule makes is baselined.
    let rules = t.write("custom.toml", CUSTOM_RULE);
    t.write("src/app.py", "ACME_KEY = 'acme_k4x9wplm2rt7yvbn4kc8hd1q'\n");
    let src = t.path().join("src");
    let out = t.path().join("custom-baseline.json");
    let o = trawl([
        "baseline",
        "create",
        "--rules",
        s(&rules),
        s(&src),
        "-o",
        s(&out),
    ]);
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    fails.check(
        "baseline create --rules",
        o.status.code() == Some(0) && text.contains("\"acme.key\""),
        || {
            format!(
                "exit {:?}\nstderr: {}\nbaseline: {text}",
                o.status.code(),
                stderr(&o)
            )
        },
    );
    let o = trawl(["scan", s(&src), "--rules", s(&rules)]);
    fails.check(
        "the custom rule reports it",
        o.status.code() == Some(1),
        || format!("exit {:?}\nstderr: {}", o.status.code(), stderr(&o)),
    );
    let o = trawl(["scan", s(&src), "--rules", s(&rules), "--baseline", s(&out)]);
    fails.check(
        "the baseline suppresses it",
        o.status.code() == Some(0),
        || format!("exit {:?}\nstderr: {}", o.status.code(), stderr(&o)),
    );

    // --git: a secret only in an old commit is baselined.
    let tok = Fake::new(970).hf_token();
    let repo = t.path().join("repo");
    init(&repo);
    std::fs::write(repo.join("old.env"), format!("HF_TOKEN={tok}\n")).expect("write");
    commit(&repo, "secret");
    std::fs::write(repo.join("old.env"), "HF_TOKEN=\n").expect("write");
    commit(&repo, "removed");
    let out = t.path().join("git-baseline.json");
    let o = trawl(["baseline", "create", "--git", s(&repo), "-o", s(&out)]);
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    fails.check(
        "baseline create --git",
        o.status.code() == Some(0) && text.contains("huggingface.user-token"),
        || {
            format!(
                "exit {:?}\nstderr: {}\nbaseline: {text}",
                o.status.code(),
                stderr(&o)
            )
        },
    );
    let o = trawl(["git", s(&repo)]);
    fails.check(
        "history holds the secret",
        o.status.code() == Some(1),
        || format!("exit {:?}\nstderr: {}", o.status.code(), stderr(&o)),
    );
    let o = trawl(["git", s(&repo), "--baseline", s(&out)]);
    fails.check("trawl git --baseline", o.status.code() == Some(0), || {
        format!("exit {:?}\nstderr: {}", o.status.code(), stderr(&o))
    });
    fails.assert_none();
}

#[test]
fn identical_archive_members_are_two_locations() {
    let t = Tree::new();
    let tok = Fake::new(980).hf_token();
    let text = format!("x = 1\nHF_TOKEN={tok}\n");
    t.write(
        "bundle.zip",
        zip(&[("a.txt", text.as_bytes()), ("b.txt", text.as_bytes())]),
    );
    let o = trawl(["scan", s(t.path()), "-f", "json", "--show-secrets"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let findings = v["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{v}");
    let mut places: Vec<String> = findings[0]["locations"]
        .as_array()
        .expect("locations")
        .iter()
        .map(|l| {
            format!(
                "{}{}:{}",
                l["path"].as_str().unwrap_or_default(),
                l["member"]
                    .as_str()
                    .map(|m| format!("!{m}"))
                    .unwrap_or_default(),
                l["line"]
            )
        })
        .collect();
    places.sort();
    assert_eq!(places.len(), 2, "{places:?}");
    assert!(
        places[0].contains("a.txt") && places[1].contains("b.txt"),
        "{places:?}"
    );
    assert!(places.iter().all(|p| p.ends_with(":2")), "{places:?}");
}

#[test]
fn gitleaks_and_trufflehog_suppressions_are_honoured() {
    let t = Tree::new();
    let mut f = Fake::new(990);
    let (gl, th, tr, kept, ignored) = (
        f.hf_token(),
        f.hf_token(),
        f.hf_token(),
        f.hf_token(),
        f.hf_token(),
    );
    let mut fails = Failures::default();
    t.write(
        "d/cfg.py",
        format!(
            "A = '{gl}'  # gitleaks:allow\nB = '{th}'  # trufflehog:ignore\n\
             C = '{tr}'  # trawl:allow\nD = '{kept}'\n"
        ),
    );
    t.write("d/other.env", format!("# comment\nHF_TOKEN={ignored}\n"));
    let dir = t.path().join("d");
    let o = trawl(["scan", s(&dir), "-f", "json", "--show-secrets"]);
    fails.check(
        "inline allows",
        secrets(&o) == sorted(vec![kept.clone(), ignored.clone()]),
        || format!("{:?}", secrets(&o)),
    );
    t.write(
        "d/.gitleaksignore",
        "# gitleaks fingerprints\nother.env:huggingface.user-token:2\n",
    );
    let o = trawl(["scan", s(&dir), "-f", "json", "--show-secrets"]);
    fails.check(
        ".gitleaksignore path:rule:line",
        secrets(&o) == vec![kept.clone()],
        || format!("{:?}\n{}", secrets(&o), stderr(&o)),
    );

    // History: a commit-prefixed entry suppresses that commit's location only.
    let (a, b) = (f.hf_token(), f.hf_token());
    let repo = t.path().join("repo");
    init(&repo);
    std::fs::write(repo.join("x.env"), format!("HF_TOKEN={a}\n")).expect("write");
    let c1 = commit(&repo, "a");
    std::fs::write(repo.join("y.env"), format!("\nHF_TOKEN={b}\n")).expect("write");
    let c2 = commit(&repo, "b");
    std::fs::write(
        repo.join(".gitleaksignore"),
        format!(
            "{}:x.env:generic-api-key:1\n{c2}:y.env:hugging-face:1\n",
            &c1[..12]
        ),
    )
    .expect("write");
    let o = trawl(["git", s(&repo), "-f", "json", "--show-secrets"]);
    fails.check(
        ".gitleaksignore commit:path:rule:line",
        o.status.code() == Some(1) && secrets(&o) == vec![b.clone()],
        || {
            format!(
                "exit {:?} {:?}\n{}",
                o.status.code(),
                secrets(&o),
                stderr(&o)
            )
        },
    );
    fails.assert_none();
}

#[test]
fn exclude_disable_rule_and_enable_rule_select_what_is_scanned() {
    let t = Tree::new();
    let mut f = Fake::new(1000);
    let (app, vendored, minified, gh) = (
        f.hf_token(),
        f.hf_token(),
        f.hf_token(),
        f.github_token("ghp_"),
    );
    let repo = t.path().join("repo");
    init(&repo);
    std::fs::create_dir_all(repo.join("vendor/lib")).expect("mkdir");
    std::fs::create_dir_all(repo.join("app")).expect("mkdir");
    std::fs::write(
        repo.join("app/a.env"),
        format!("HF_TOKEN={app}\nGITHUB_TOKEN={gh}\n"),
    )
    .expect("write");
    std::fs::write(
        repo.join("vendor/lib/v.env"),
        format!("HF_TOKEN={vendored}\n"),
    )
    .expect("write");
    std::fs::write(repo.join("app/x.min.js"), format!("var t='{minified}';\n")).expect("write");
    commit(&repo, "all");
    let mut fails = Failures::default();
    let json = ["-f", "json", "--show-secrets"];
    for cmd in ["scan", "git"] {
        let run = |extra: &[&str]| trawl([cmd, s(&repo)].iter().chain(&json).chain(extra.iter()));
        let o = run(&["--exclude", "vendor", "--exclude", "*.min.js"]);
        fails.check(
            &format!("{cmd} --exclude"),
            secrets(&o) == sorted(vec![app.clone(), gh.clone()]),
            || format!("{:?}\n{}", secrets(&o), stderr(&o)),
        );
        let o = run(&["--exclude", "vendor/lib/", "--exclude", "app/x.min.js"]);
        fails.check(
            &format!("{cmd} --exclude with /"),
            secrets(&o) == sorted(vec![app.clone(), gh.clone()]),
            || format!("{:?}\n{}", secrets(&o), stderr(&o)),
        );
        let o = run(&["--disable-rule", "huggingface.user-token"]);
        fails.check(
            &format!("{cmd} --disable-rule"),
            secrets(&o) == vec![gh.clone()],
            || format!("{:?}\n{}", secrets(&o), stderr(&o)),
        );
        let o = run(&["--enable-rule", "huggingface.user-token"]);
        fails.check(
            &format!("{cmd} --enable-rule"),
            secrets(&o) == sorted(vec![app.clone(), vendored.clone(), minified.clone()]),
            || format!("{:?}\n{}", secrets(&o), stderr(&o)),
        );
        for flag in ["--disable-rule", "--enable-rule"] {
            let o = run(&[flag, "no.such-rule"]);
            fails.check(
                &format!("{cmd} {flag} no.such-rule"),
                o.status.code() == Some(2) && stderr(&o).contains("no.such-rule"),
                || format!("exit {:?}\n{}", o.status.code(), stderr(&o)),
            );
        }
    }
    fails.assert_none();
}

#[test]
fn completions_man_and_version_work() {
    let o = trawl(["completions", "bash"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("trawl"), "{}", stdout(&o));
    let o = trawl(["man"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains(".TH"), "{}", stdout(&o));
    let o = trawl(["--version"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("trawl "), "{}", stdout(&o));
}

/// `--redact N` keeps N leading characters (never more than a quarter of the secret), in
/// every format, and the text report shows a short fingerprint to tell secrets apart.
#[test]
fn redact_keeps_the_asked_prefix_and_text_shows_a_short_fingerprint() {
    let t = Tree::new();
    let token = Fake::new(77).hf_token();
    t.write("a.env", format!("HF_TOKEN={token}\n"));
    let dir = t.path().to_str().unwrap();
    for (n, kept) in [("0", 0usize), ("6", 6), ("99", token.len() / 4)] {
        for format in ["text", "json", "sarif"] {
            let o = trawl(["scan", dir, "--redact", n, "-f", format, "--color", "never"]);
            assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
            let out = stdout(&o);
            let shown = format!("{}*****", &token[..kept]);
            assert!(out.contains(&shown), "--redact {n} -f {format}: {out}");
            let longer = &token[..kept.max(3) + 1];
            assert!(!out.contains(longer), "--redact {n} -f {format}: {out}");
        }
    }
    let o = trawl(["scan", dir, "--color", "never"]);
    let json = trawl(["scan", dir, "-f", "json"]);
    let v: Value = serde_json::from_str(&stdout(&json)).unwrap();
    let fp = v["findings"][0]["fingerprint"].as_str().unwrap();
    assert!(
        stdout(&o).contains(&format!("[{}]", &fp[..8])),
        "{}",
        stdout(&o)
    );
}
