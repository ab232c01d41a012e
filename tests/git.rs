//! `trawl git`: history attribution, ranges, staged changes, and broken repositories, on
//! repositories built here with the git CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::{stderr, trawl, Fake, Tree};

/// A repository built with the git CLI, with fixed identities and dates.
struct Repo {
    tree: Tree,
    tick: u32,
}

impl Repo {
    fn new() -> Repo {
        let r = Repo {
            tree: Tree::new(),
            tick: 0,
        };
        r.git(&["init", "-q", "-b", "main"]);
        r
    }

    fn path(&self) -> &Path {
        self.tree.path()
    }

    fn git(&self, args: &[&str]) -> String {
        let o = Command::new("git")
            .arg("-C")
            .arg(self.path())
            .args([
                "-c",
                "user.name=Test Author",
                "-c",
                "user.email=author@example.invalid",
            ])
            .args(["-c", "commit.gpgsign=false", "-c", "core.autocrlf=false"])
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env(
                "GIT_AUTHOR_DATE",
                format!("2024-01-{:02}T00:00:00Z", 1 + self.tick),
            )
            .env(
                "GIT_COMMITTER_DATE",
                format!("2024-01-{:02}T00:00:00Z", 1 + self.tick),
            )
            .output()
            .expect("git runs");
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    fn write(&self, rel: &str, content: &str) {
        self.tree.write(rel, content);
    }

    /// Stages everything and commits; returns the commit id.
    fn commit(&mut self, msg: &str) -> String {
        self.tick += 1;
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", msg]);
        self.git(&["rev-parse", "HEAD"])
    }
}

fn scan(dir: &Path, extra: &[&str]) -> (Option<i32>, Value, String) {
    let mut args = vec![
        "git".to_string(),
        dir.display().to_string(),
        "-f".into(),
        "json".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let o = trawl(&args);
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    (o.status.code(), v, stderr(&o))
}

/// (secret, [(commit, path, line)]) of every finding, with --show-secrets.
/// (commit, path, line) of one history location.
type Place = (String, String, u64);

fn found(dir: &Path, extra: &[&str]) -> Vec<(String, Vec<Place>)> {
    let mut extra = extra.to_vec();
    extra.push("--show-secrets");
    let (_, v, _) = scan(dir, &extra);
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let locs = f["locations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    (
                        l["commit"].as_str().unwrap_or("").to_string(),
                        l["path"].as_str().unwrap().to_string(),
                        l["line"].as_u64().unwrap(),
                    )
                })
                .collect();
            (f["secret"].as_str().unwrap().to_string(), locs)
        })
        .collect()
}

fn secrets(dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut s: Vec<String> = found(dir, extra).into_iter().map(|(s, _)| s).collect();
    s.sort();
    s
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn history_attribution_across_removals_deletions_branches_merges_and_tags() {
    let mut f = Fake::new(100);
    let (t_removed, t_deleted, t_branch, t_merge, t_tag, t_head) = (
        f.hf_token(),
        f.hf_token(),
        f.hf_token(),
        f.hf_token(),
        f.hf_token(),
        f.hf_token(),
    );
    let mut r = Repo::new();
    r.write("app.py", &format!("TOKEN = '{t_removed}'\n"));
    r.write("old/creds.env", &format!("HF_TOKEN={t_deleted}\n"));
    let c1 = r.commit("add secrets");
    r.write("app.py", "TOKEN = os.environ['TOKEN']\n");
    r.git(&["rm", "-q", "-r", "old"]);
    let c2 = r.commit("remove them");
    // An unmerged branch.
    r.git(&["checkout", "-q", "-b", "feature"]);
    r.write("feature.py", &format!("T = '{t_branch}'\n"));
    let c_branch = r.commit("feature work");
    // A side branch merged with a merge commit that itself adds a secret.
    r.git(&["checkout", "-q", "main"]);
    r.git(&["checkout", "-q", "-b", "side"]);
    r.write("side.txt", "side\n");
    r.commit("side");
    r.git(&["checkout", "-q", "main"]);
    r.write("main.txt", "main\n");
    r.commit("main moves on");
    r.tick += 1;
    r.git(&["merge", "-q", "--no-ff", "--no-commit", "side"]);
    r.write("merge.cfg", &format!("hf={t_merge}\n"));
    r.git(&["add", "-A"]);
    r.git(&["commit", "-q", "-m", "merge side"]);
    let c_merge = r.git(&["rev-parse", "HEAD"]);
    // A commit reachable only from a tag.
    r.git(&["checkout", "-q", "--detach"]);
    r.write("tagged.txt", &format!("{t_tag}\n"));
    let c_tag = r.commit("tagged only");
    r.git(&["tag", "v1"]);
    r.git(&["checkout", "-q", "main"]);
    r.write("head.txt", &format!("x\n{t_head}\n"));
    let c_head = r.commit("head");

    let all = found(r.path(), &[]);
    let expect = [
        (&t_removed, &c1, "app.py", 1),
        (&t_deleted, &c1, "old/creds.env", 1),
        (&t_branch, &c_branch, "feature.py", 1),
        (&t_merge, &c_merge, "merge.cfg", 1),
        (&t_tag, &c_tag, "tagged.txt", 1),
        (&t_head, &c_head, "head.txt", 2),
    ];
    assert_eq!(all.len(), expect.len(), "{all:?}");
    for (secret, commit, path, line) in expect {
        let (_, locs) = all
            .iter()
            .find(|(s, _)| s == secret)
            .unwrap_or_else(|| panic!("{path} not found"));
        assert_eq!(
            locs,
            &vec![(commit.clone(), path.to_string(), line)],
            "{path}"
        );
    }
    let _ = c2;
    // Author, email and date travel with every history location.
    let (code, v, _) = scan(r.path(), &[]);
    assert_eq!(code, Some(1));
    let l = &v["findings"][0]["locations"][0];
    assert_eq!(l["author"], "Test Author");
    assert_eq!(l["email"], "author@example.invalid");
    assert!(l["date"].as_str().unwrap().starts_with("2024-01-"));
}

#[test]
fn one_secret_in_many_commits_is_one_finding_with_its_introducing_commit_first() {
    let tok = Fake::new(101).hf_token();
    let mut r = Repo::new();
    r.write("a.py", &format!("T = '{tok}'\n"));
    let c1 = r.commit("one");
    r.write("a.py", &format!("import os\nT = '{tok}'\n"));
    let c2 = r.commit("two");
    r.write("b/c.yaml", &format!("token: {tok}\n"));
    let c3 = r.commit("three");
    r.write("unrelated.txt", "x\n");
    r.commit("four");
    let all = found(r.path(), &[]);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        all[0].1,
        vec![
            (c1, "a.py".to_string(), 1),
            (c2, "a.py".to_string(), 2),
            (c3, "b/c.yaml".to_string(), 1)
        ]
    );
}

#[test]
fn range_and_since_commit_return_only_the_commits_in_the_range() {
    let mut f = Fake::new(102);
    let (a, b, c) = (f.hf_token(), f.hf_token(), f.hf_token());
    let mut r = Repo::new();
    r.write("a.txt", &format!("{a}\n"));
    let c1 = r.commit("a");
    r.write("b.txt", &format!("{b}\n"));
    let c2 = r.commit("b");
    r.write("c.txt", &format!("{c}\n"));
    let c3 = r.commit("c");
    assert_eq!(
        secrets(r.path(), &["--range", &format!("{c1}..{c3}")]),
        sorted(vec![b.clone(), c.clone()])
    );
    assert_eq!(
        secrets(r.path(), &["--range", &format!("{c2}..{c3}")]),
        vec![c.clone()]
    );
    assert_eq!(secrets(r.path(), &["--since-commit", &c2]), vec![c.clone()]);
    assert_eq!(
        secrets(r.path(), &["--branch", &c2]),
        sorted(vec![a.clone(), b.clone()])
    );
    assert_eq!(secrets(r.path(), &["--since", "2024-01-04"]), vec![c]);
    let o = trawl(["git", r.path().to_str().unwrap(), "--range", "nope..HEAD"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn dangling_blobs_are_found_only_with_all_objects() {
    let tok = Fake::new(103).hf_token();
    let mut r = Repo::new();
    r.write("readme.txt", "hello\n");
    r.commit("init");
    let loose = r.path().join("loose.txt");
    std::fs::write(&loose, format!("HF_TOKEN={tok}\n")).unwrap();
    r.git(&["hash-object", "-w", loose.to_str().unwrap()]);
    std::fs::remove_file(&loose).unwrap();
    assert!(secrets(r.path(), &[]).is_empty());
    let all = found(r.path(), &["--all-objects"]);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0, tok);
    assert!(all[0].1[0].1.starts_with("unreachable/"));
}

#[test]
fn staged_reports_only_added_lines_with_staged_line_numbers() {
    let mut f = Fake::new(104);
    let (old, new, moved) = (f.hf_token(), f.hf_token(), f.hf_token());
    let mut r = Repo::new();
    // The first commit: everything staged is new.
    r.write("cfg.env", &format!("A={old}\nB={moved}\n"));
    r.git(&["add", "-A"]);
    assert_eq!(
        secrets(r.path(), &["--staged"]),
        sorted(vec![old.clone(), moved.clone()])
    );
    r.commit("first");
    assert!(secrets(r.path(), &["--staged"]).is_empty());
    // Add a line with a new secret, move an old one; leave an unstaged secret in the tree.
    r.write("cfg.env", &format!("B={moved}\nA={old}\n# new\nC={new}\n"));
    r.git(&["add", "cfg.env"]);
    r.write("unstaged.env", &format!("D={}\n", f.hf_token()));
    let all = found(r.path(), &["--staged"]);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].0, new);
    assert_eq!(all[0].1, vec![(String::new(), "cfg.env".to_string(), 4)]);
    let (code, _, _) = scan(r.path(), &["--staged"]);
    assert_eq!(code, Some(1));
}

fn clone_shallow(src: &Path, dest: &Path) {
    let o = Command::new("git")
        .args(["clone", "-q", "--depth", "1"])
        .arg(format!("file://{}", src.display()))
        .arg(dest)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn shallow_clones_are_scanned_with_a_warning() {
    let mut f = Fake::new(105);
    let (a, b) = (f.hf_token(), f.hf_token());
    let mut r = Repo::new();
    r.write("a.txt", &format!("{a}\n"));
    r.commit("a");
    r.write("b.txt", &format!("{b}\n"));
    r.commit("b");
    let dest = Tree::new();
    let shallow: PathBuf = dest.path().join("shallow");
    clone_shallow(r.path(), &shallow);
    let (code, v, err) = scan(&shallow, &["--show-secrets"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("shallow"), "{err}");
    let mut got: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["secret"].as_str().unwrap())
        .collect();
    got.sort();
    // Only the tip commit is there; it holds both files.
    assert_eq!(got, sorted(vec![a, b]));
}

#[test]
fn a_missing_object_is_a_warning_and_the_rest_is_reported() {
    let mut f = Fake::new(106);
    let (a, b) = (f.hf_token(), f.hf_token());
    let mut r = Repo::new();
    r.write("a.txt", &format!("{a}\n"));
    r.write("b.txt", &format!("{b}\n"));
    r.commit("both");
    // Delete b.txt's loose blob object.
    let id = r.git(&["rev-parse", "HEAD:b.txt"]);
    let obj = r.path().join(".git/objects").join(&id[..2]).join(&id[2..]);
    std::fs::remove_file(&obj).unwrap();
    let (code, v, err) = scan(r.path(), &["--show-secrets"]);
    // A history that could not be read whole is not clean: exit 2, the rest reported.
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("warning") && err.contains(&id[..]), "{err}");
    let got: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["secret"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![a.as_str()]);
}

#[test]
fn not_a_repository_is_an_error() {
    let t = Tree::new();
    let o = trawl(["git", t.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not a git repository"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn history_sarif_carries_commit_properties() {
    let tok = Fake::new(107).hf_token();
    let mut r = Repo::new();
    r.write("a.txt", &format!("{tok}\n"));
    let c = r.commit("a");
    let o = trawl(["git", r.path().to_str().unwrap(), "-f", "sarif"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let p = &v["runs"][0]["results"][0]["properties"];
    assert_eq!(p["commit"], Value::String(c));
    assert_eq!(p["author"], "Test Author");
    assert_eq!(p["email"], "author@example.invalid");
}

#[test]
fn many_refs_non_utf8_names_and_oversized_blobs() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let mut f = Fake::new(108);
    let (a, big) = (f.hf_token(), f.hf_token());
    let r = Repo::new();
    // A file name and an author name that are not UTF-8.
    let name = OsStr::from_bytes(b"caf\xe9.env");
    std::fs::write(r.path().join(name), format!("HF={a}\n")).unwrap();
    std::fs::write(
        r.path().join("big.txt"),
        format!("{}\n{big}\n", "x".repeat(4096)),
    )
    .unwrap();
    r.git(&["add", "-A"]);
    let o = Command::new("git")
        .arg("-C")
        .arg(r.path())
        .arg("-c")
        .arg(OsStr::from_bytes(b"user.name=J\xf6rg"))
        .args([
            "-c",
            "user.email=j@example.invalid",
            "commit",
            "-q",
            "-m",
            "latin1",
        ])
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Twenty thousand tags on the same commit.
    let head = r.git(&["rev-parse", "HEAD"]);
    let mut stdin = String::new();
    for i in 0..20_000 {
        stdin.push_str(&format!("create refs/tags/t{i} {head}\n"));
    }
    let mut child = Command::new("git")
        .arg("-C")
        .arg(r.path())
        .args(["update-ref", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    r.git(&["pack-refs", "--all"]);

    let (code, v, err) = scan(r.path(), &["--show-secrets", "--max-file-size", "1K"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("big.txt") && err.contains("over the maximum size"),
        "{err}"
    );
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{v}");
    assert_eq!(findings[0]["secret"], Value::String(a));
    let loc = &findings[0]["locations"][0];
    // The name is not UTF-8: its byte is shown escaped (and the raw bytes are its identity).
    assert_eq!(loc["path"], "caf\\xE9.env");
    // git may re-encode a Latin-1 ident as UTF-8; either way it reaches the report readable.
    let author = loc["author"].as_str().unwrap();
    assert!(
        author.starts_with('J') && author.ends_with("rg"),
        "{author}"
    );
}

/// The history engine compares commits on several threads and reads packed blobs through a
/// pack traversal, loose ones one by one: the report must not depend on either. A history
/// with secrets added, moved, removed and added again, and one blob at two paths, gives the
/// same report loose and packed, at 1, 3 and 4 threads, with every introduction listed,
/// oldest first.
#[test]
fn reports_do_not_depend_on_threads_or_packing() {
    let mut f = Fake::new(101);
    let (moved, readded, twice) = (f.hf_token(), f.hf_token(), f.hf_token());
    let mut r = Repo::new();
    r.write("a/keys.env", &format!("HF_TOKEN={moved}\n"));
    r.write("b/one.txt", &format!("{twice}\n"));
    r.write("b/two.txt", &format!("{twice}\n"));
    let c_first = r.commit("secrets");
    // (The helper dates commits a day apart within one month.)
    for i in 0..25 {
        r.write(&format!("src/m{}/f{i}.py", i % 7), &format!("x = {i}\n"));
        if i == 5 {
            r.git(&["rm", "-q", "a/keys.env"]);
            r.write("c/keys.env", &format!("HF_TOKEN={moved}\n"));
        }
        if i == 10 {
            r.write("cfg/old.env", &format!("T={readded}\n"));
        }
        if i == 14 {
            r.git(&["rm", "-q", "cfg/old.env"]);
        }
        if i == 19 {
            r.write("cfg/new.env", &format!("T={readded}\n"));
        }
        r.commit(&format!("work {i}"));
    }
    let run = |threads: &str| {
        let (code, v, err) = scan(r.path(), &["--show-secrets", "--threads", threads]);
        assert_eq!(code, Some(1), "{err}");
        v
    };
    let loose = run("1");
    assert_eq!(run("3"), loose);
    r.git(&["gc", "-q", "--aggressive"]);
    assert_eq!(run("1"), loose, "packed, one thread");
    assert_eq!(run("4"), loose, "packed, four threads");
    // Commits compared oldest first (as for a pack whose deltas run that way): the same.
    for order in ["oldest", "newest"] {
        let o = std::process::Command::new(crate::util::BIN)
            .args([
                "git",
                r.path().to_str().unwrap(),
                "-f",
                "json",
                "--show-secrets",
            ])
            .args(["--threads", "2"])
            .env("TRAWL_HISTORY_ORDER", order)
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v, loose, "{order} first");
    }

    let all = found(r.path(), &[]);
    let places = |secret: &str| {
        all.iter()
            .find(|(s, _)| s == secret)
            .map(|(_, p)| {
                p.iter()
                    .map(|(_, path, _)| path.clone())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    // A move introduces the same blob at a new path: both places, oldest first.
    assert_eq!(places(&moved), ["a/keys.env", "c/keys.env"]);
    assert_eq!(places(&twice), ["b/one.txt", "b/two.txt"]);
    // Added again later (same content, new path): both introductions, oldest first.
    assert_eq!(places(&readded), ["cfg/old.env", "cfg/new.env"]);
    let first = all.iter().find(|(s, _)| *s == moved).unwrap();
    assert_eq!(first.1[0].0, c_first);
}

#[test]
fn history_reads_mlflow_params_under_their_name_and_counts_lfs_pointers() {
    let mut f = Fake::new(512);
    let key = f.string(b"0123456789abcdef", 40);
    let mut r = Repo::new();
    let run = "mlruns/1/0123456789abcdef0123456789abcdef";
    r.write(&format!("{run}/params/wandb_api_key"), &key);
    // The same value elsewhere says nothing of what it is.
    r.write("notes/value.txt", &key);
    r.write(
        "weights/model.safetensors",
        "version https://git-lfs.github.com/spec/v1\n\
         oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n\
         size 268435456\n",
    );
    r.commit("run");
    let o = trawl([
        "git",
        r.path().to_str().unwrap(),
        "-f",
        "json",
        "--show-secrets",
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{v}");
    assert_eq!(findings[0]["rule"], "wandb.api-key");
    assert_eq!(findings[0]["secret"], key.as_str());
    // One blob in history is scanned once, under the first path it is met at.
    let l = &findings[0]["locations"][0];
    assert_eq!(l["key"], "wandb_api_key");
    assert_eq!(l["line"], 1);
    assert!(
        l["path"]
            .as_str()
            .unwrap()
            .ends_with("params/wandb_api_key"),
        "{l}"
    );
    let err = stderr(&o);
    assert!(err.contains("1 Git LFS pointer not scanned"), "{err}");
}
