//! Hostile nesting and unreadable repositories (issue 9): trees and archives nested deeper
//! than any stack, a corrupt pack index, files tracked in spite of an ignore rule. The run
//! ends normally with a warning, still reports what it could read, and never reports clean
//! when something was not read.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::util::{git_ok, stderr, stdout, trawl, Fake, Tree, BIN};

/// The run ended by itself (no stack overflow abort, no other signal) with `code`.
fn assert_exit(o: &Output, code: i32) {
    assert_eq!(o.status.signal(), None, "killed by a signal: {}", stderr(o));
    assert_eq!(o.status.code(), Some(code), "{}{}", stdout(o), stderr(o));
}

/// `trawl <command> --no-progress <dir>`.
fn run_on(command: &str, dir: &Path) -> Output {
    trawl([command.as_ref(), "--no-progress".as_ref(), dir.as_os_str()])
}

/// The run ended normally with the secret of `top.env` reported and a warning saying `warning`.
fn assert_finds_top_and_warns(o: &Output, warning: &str) {
    assert_exit(o, 1);
    assert!(stdout(o).contains("top.env"), "{}", stdout(o));
    assert!(stderr(o).contains(warning), "{}", stderr(o));
}

/// Runs `git fast-import` in `dir` on `stream`.
fn fast_import(dir: &Path, stream: &[u8]) {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["fast-import", "--quiet"])
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("git fast-import runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stream)
        .expect("stream written");
    assert!(child.wait().expect("fast-import ends").success());
}

#[test]
fn tree_nested_30000_directories_deep_is_a_warning_not_a_stack_overflow() {
    let t = Tree::new();
    git_ok(t.path(), &["init", "-q", "-b", "main"]);
    let token = Fake::new(91).github_token("ghp_");
    let top = format!("GITHUB_TOKEN={token}\n");
    let deep = format!("{}/secret.txt", vec!["d"; 30_000].join("/"));
    // One commit, built without a checkout: git refuses to check out such a tree.
    let mut stream = b"commit refs/heads/main\n\
        committer Dev <dev@example.invalid> 1700000000 +0000\n\
        data 4\ndeep\n"
        .to_vec();
    for (path, data) in [(deep.as_str(), "deep\n"), ("top.env", top.as_str())] {
        stream.extend_from_slice(
            format!("M 100644 inline {path}\ndata {}\n{data}", data.len()).as_bytes(),
        );
    }
    stream.push(b'\n');
    fast_import(t.path(), &stream);

    let o = run_on("git", t.path());
    assert_finds_top_and_warns(&o, "nested deeper than 4096 directories");
}

#[test]
fn gzip_nested_5000_layers_under_a_raised_archive_depth_is_a_warning() {
    let t = Tree::new();
    let mut f = Fake::new(92);
    // A repository's own trawl.toml raises the depth: the cap holds anyway.
    t.write("trawl.toml", "[limits]\narchive_depth = 100000\n");
    t.write("top.env", format!("HF_TOKEN={}\n", f.hf_token()));
    let made = Command::new("python3")
        .arg("-c")
        .arg(
            "import gzip, sys\n\
             d = b'x\\n'\n\
             for _ in range(5000): d = gzip.compress(d, compresslevel=0, mtime=0)\n\
             open(sys.argv[1], 'wb').write(d)\n",
        )
        .arg(t.path().join("deep.gz"))
        .status()
        .expect("python3 runs");
    assert!(made.success());

    let o = run_on("scan", t.path());
    assert_finds_top_and_warns(&o, "archive nested deeper than 128 levels");
}

/// A repository with one committed secret, packed by `git gc`, whose pack index is then
/// overwritten with garbage of the same length.
fn repo_with_corrupt_pack_index(detached: bool) -> Tree {
    let t = Tree::new();
    git_ok(t.path(), &["init", "-q", "-b", "main"]);
    t.write(
        "app.env",
        format!("HF_TOKEN={}\n", Fake::new(93).hf_token()),
    );
    git_ok(t.path(), &["add", "app.env"]);
    git_ok(t.path(), &["commit", "-q", "-m", "app"]);
    if detached {
        // As CI checks out: HEAD holds the commit id and no branch is left.
        git_ok(t.path(), &["checkout", "-q", "--detach"]);
        git_ok(t.path(), &["update-ref", "-d", "refs/heads/main"]);
    }
    git_ok(t.path(), &["gc", "-q"]);
    let pack = t.path().join(".git/objects/pack");
    let idx = std::fs::read_dir(&pack)
        .expect("pack dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|x| x == "idx"))
        .expect("a pack index after git gc");
    let len = std::fs::metadata(&idx).expect("idx").len() as usize;
    std::fs::set_permissions(&idx, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::write(&idx, vec![0x5a; len]).expect("idx overwritten");
    t
}

#[test]
fn corrupt_pack_index_is_exit_2_and_the_summary_says_what_was_not_read() {
    for detached in [false, true] {
        let t = repo_with_corrupt_pack_index(detached);
        let o = run_on("git", t.path());
        assert_exit(&o, 2);
        let err = stderr(&o);
        let summary = err.lines().last().unwrap_or_default();
        assert!(
            summary.contains("could not be read: the scan is incomplete"),
            "detached HEAD {detached}: {err}"
        );
    }
}

#[test]
fn a_force_added_file_under_an_ignore_rule_is_scanned() {
    let t = Tree::new();
    let mut f = Fake::new(94);
    git_ok(t.path(), &["init", "-q", "-b", "main"]);
    t.write(".gitignore", "*.env\n/build/\n");
    t.write("secrets.env", format!("HF_TOKEN={}\n", f.hf_token()));
    t.write("build/deploy.sh", format!("HF_TOKEN={}\n", f.hf_token()));
    t.write("other.env", format!("HF_TOKEN={}\n", f.hf_token()));
    t.write(".trawlignore", "vendor.env\n");
    t.write("vendor.env", format!("HF_TOKEN={}\n", f.hf_token()));
    git_ok(t.path(), &["add", ".gitignore", ".trawlignore"]);
    git_ok(
        t.path(),
        &["add", "-f", "secrets.env", "build/deploy.sh", "vendor.env"],
    );

    // Run from inside the work tree, as `trawl scan .` in a checkout.
    let o = Command::new(BIN)
        .args(["scan", "--no-progress", "--format", "json", "."])
        .current_dir(t.path())
        .output()
        .expect("trawl runs");
    assert_exit(&o, 1);
    let out = stdout(&o);
    for tracked in ["secrets.env", "build/deploy.sh"] {
        assert!(out.contains(&format!("\"{tracked}\"")), "{tracked}: {out}");
    }
    // Untracked and ignored stays skipped; .trawlignore still holds for tracked files.
    for skipped in ["other.env", "vendor.env"] {
        assert!(!out.contains(skipped), "{skipped}: {out}");
    }

    // --no-ignore reads everything, each file once.
    let o = trawl([
        "scan".as_ref(),
        "--no-progress".as_ref(),
        "--no-ignore".as_ref(),
        t.path().as_os_str(),
    ]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("scanned 6 files"), "{}", stderr(&o));
}

/// A 1,500-parent octopus merge: a base of 1,500 files, one branch per file changing it, and
/// a merge of all the branches. A merge's cost must not multiply by its parent count: each
/// parent's tree is compared in one pass over borrowed entries, never copied into a map.
#[test]
fn a_1500_parent_octopus_merge_costs_what_its_trees_cost() {
    const N: usize = 1500;
    let t = Tree::new();
    git_ok(t.path(), &["init", "-q", "-b", "main"]);
    let token = Fake::new(95).github_token("ghp_");
    let who = "committer Dev <dev@example.invalid> 1700000000 +0000\n";
    let mut s = format!("commit refs/heads/base\nmark :1\n{who}data 4\nbase\n");
    for i in 0..N {
        s.push_str(&format!(
            "M 100644 inline f{i}.txt\ndata 7\nbase {:1}\n",
            i % 10
        ));
    }
    s.push('\n');
    let branch_content = |i: usize| {
        if i == 700 {
            format!("GITHUB_TOKEN={token}\n")
        } else {
            format!("branch {i}\n")
        }
    };
    for i in 0..N {
        let data = branch_content(i);
        s.push_str(&format!(
            "commit refs/heads/b{i}\nmark :{}\n{who}data 2\nb\nfrom :1\nM 100644 inline f{i}.txt\ndata {}\n{data}\n",
            i + 2,
            data.len()
        ));
    }
    s.push_str(&format!(
        "commit refs/heads/main\n{who}data 8\noctopus\nfrom :2\n"
    ));
    for i in 1..N {
        s.push_str(&format!("merge :{}\n", i + 2));
    }
    for i in 1..N {
        let data = branch_content(i);
        s.push_str(&format!(
            "M 100644 inline f{i}.txt\ndata {}\n{data}",
            data.len()
        ));
    }
    s.push('\n');
    fast_import(t.path(), s.as_bytes());
    let parents = git_ok(t.path(), &["rev-list", "--parents", "-n", "1", "main"]);
    assert_eq!(
        parents.split(' ').count(),
        N + 1,
        "an octopus of {N} parents"
    );

    let dir = t.path().to_str().unwrap();
    let (code, out, err, peak_kb) =
        crate::util::trawl_measured(&["git", dir, "--format", "json"], t.path());
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let locs = v["findings"][0]["locations"].as_array().unwrap();
    // The secret was introduced by its branch, not by the merge that kept it.
    assert_eq!(locs.len(), 1, "{v}");
    let merge = git_ok(t.path(), &["rev-parse", "main"]);
    assert_ne!(locs[0]["commit"].as_str(), Some(merge.as_str()));
    // Every parent tree held in a map cost 440 MB; one tree at a time costs a few.
    assert!(peak_kb < 120 * 1024, "peak {peak_kb} kB");
}
