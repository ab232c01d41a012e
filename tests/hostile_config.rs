//! A hostile `trawl.toml` in the scanned tree (issue 9): it may only name regular files inside
//! the tree, capped in size, never quoted; FIFOs and devices never hang a run, even when the
//! user names them; regexes from any rule file have RE2-like limits, checked at load.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Fake, Tree, BIN};

/// What a run printed and how it ended.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs trawl with `args` and `env`, killing it (and failing the test) after `limit`.
fn run_within(limit: Duration, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = tempfile::tempdir().expect("temp dir");
    let (o, e) = (out.path().join("out"), out.path().join("err"));
    let mut child = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&o).expect("stdout file"))
        .stderr(std::fs::File::create(&e).expect("stderr file"))
        .spawn()
        .expect("trawl runs");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("trawl {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    Run {
        code: status.code(),
        stdout: read(&o),
        stderr: read(&e),
    }
}

fn run(args: &[&str]) -> Run {
    run_within(Duration::from_secs(20), args, &[])
}

/// A rule finding `acme_` tokens, and a file holding one.
const ACME_RULE: &str = r#"[[rules]]
id = "acme.token"
name = "Acme token"
category = "saas"
severity = "high"
regex = '''acme_(?P<secret>[a-z0-9]{24})'''
keywords = ["acme_"]
"#;

fn repo_with_token(t: &Tree) -> String {
    t.write("repo/app.env", "TOKEN=acme_q3x9wplm2rt7yvbn4kc8hd1j\n");
    t.path().join("repo").to_str().unwrap().to_string()
}

fn files_config(names: &[&str]) -> String {
    let list: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    format!("[rules]\nfiles = [{}]\n", list.join(", "))
}

/// Exit 2, the reason on stderr, and nothing found.
fn assert_refused(r: &Run, reason: &str) {
    assert_eq!(r.code, Some(2), "stderr: {}", r.stderr);
    assert!(r.stderr.contains(reason), "want {reason:?}: {}", r.stderr);
    assert!(!r.stdout.contains("acme.token"), "{}", r.stdout);
}

#[test]
fn repo_config_naming_proc_environ_is_refused_and_never_quoted() {
    let t = Tree::new();
    let root = repo_with_token(&t);
    t.write("repo/trawl.toml", files_config(&["/proc/self/environ"]));
    let canary = format!("canary{}", Fake::new(901).alnum(24));
    let r = run_within(
        Duration::from_secs(20),
        &["scan", &root],
        &[("TRAWL_TEST_CANARY", &canary)],
    );
    assert_refused(&r, "outside the scanned tree");
    assert!(!r.stderr.contains(&canary) && !r.stdout.contains(&canary));
}

#[test]
fn repo_config_naming_dev_zero_is_refused_quickly() {
    let t = Tree::new();
    let root = repo_with_token(&t);
    t.write("repo/trawl.toml", files_config(&["/dev/zero"]));
    assert_refused(&run(&["scan", &root]), "outside the scanned tree");
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(ok.success());
}

#[test]
fn repo_config_naming_a_fifo_in_the_repo_does_not_hang() {
    let t = Tree::new();
    let root = repo_with_token(&t);
    mkfifo(&t.path().join("repo/rules.toml"));
    t.write("repo/trawl.toml", files_config(&["rules.toml"]));
    assert_refused(&run(&["scan", &root]), "not a regular file");
}

#[test]
fn repo_config_naming_a_file_outside_by_dotdot_is_refused() {
    let t = Tree::new();
    let root = repo_with_token(&t);
    t.write("outside.toml", ACME_RULE);
    t.write("repo/trawl.toml", files_config(&["../outside.toml"]));
    assert_refused(&run(&["scan", &root]), "outside the scanned tree");
}

#[test]
fn repo_config_naming_an_absolute_path_outside_is_refused() {
    let t = Tree::new();
    let root = repo_with_token(&t);
    let outside = t.write("elsewhere/rules.toml", ACME_RULE);
    t.write(
        "repo/trawl.toml",
        files_config(&[outside.to_str().unwrap()]),
    );
    assert_refused(&run(&["scan", &root]), "outside the scanned tree");
}

#[test]
fn repo_config_naming_a_symlink_pointing_out_is_refused() {
    let t = Tree::new();
    let root = repo_with_token(&t);
    let outside = t.write("elsewhere/rules.toml", ACME_RULE);
    std::os::unix::fs::symlink(&outside, t.path().join("repo/rules.toml")).unwrap();
    t.write("repo/trawl.toml", files_config(&["rules.toml"]));
    assert_refused(&run(&["scan", &root]), "outside the scanned tree");
}

#[test]
fn repo_config_naming_an_oversized_rule_file_is_refused() {
    let t = Tree::new();
    let root = repo_with_token(&t);
    let padding = "# padding\n".repeat(200_000);
    t.write("repo/rules.toml", format!("{ACME_RULE}{padding}"));
    t.write("repo/trawl.toml", files_config(&["rules.toml"]));
    assert_refused(&run(&["scan", &root]), "larger than 1048576 bytes");
}

#[test]
fn repo_config_naming_a_rule_file_inside_still_works() {
    let t = Tree::new();
    let root = repo_with_token(&t);
    t.write("repo/rules/acme.toml", ACME_RULE);
    t.write("repo/trawl.toml", files_config(&["rules/acme.toml"]));
    let r = run(&["scan", &root]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stdout.contains("acme.token"), "{}", r.stdout);
}

#[test]
fn repo_config_that_is_a_fifo_is_an_error_not_a_hang() {
    let t = Tree::new();
    let root = repo_with_token(&t);
    mkfifo(&t.path().join("repo/trawl.toml"));
    let r = run(&["scan", &root]);
    assert_refused(&r, "not a regular file");
    assert!(r.stderr.contains("trawl.toml"), "{}", r.stderr);
}

#[test]
fn repo_config_that_is_a_symlink_to_dev_zero_is_an_error() {
    let t = Tree::new();
    let root = repo_with_token(&t);
    std::os::unix::fs::symlink("/dev/zero", t.path().join("repo/trawl.toml")).unwrap();
    let r = run(&["scan", &root]);
    assert_refused(&r, "outside the scanned tree");
    assert!(r.stderr.contains("trawl.toml"), "{}", r.stderr);
}

#[test]
fn repo_config_that_is_oversized_is_an_error() {
    let t = Tree::new();
    let root = repo_with_token(&t);
    t.write("repo/trawl.toml", "# padding\n".repeat(200_000));
    assert_refused(&run(&["scan", &root]), "larger than 1048576 bytes");
}

#[test]
fn user_config_may_name_files_anywhere_but_never_a_device() {
    let t = Tree::new();
    let root = repo_with_token(&t);
    t.write("rules/acme.toml", ACME_RULE);
    let good = t.write("conf/good.toml", files_config(&["../rules/acme.toml"]));
    let r = run(&["scan", &root, "--config", good.to_str().unwrap()]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stdout.contains("acme.token"), "{}", r.stdout);
    let zero = t.write("conf/zero.toml", files_config(&["/dev/zero"]));
    let r = run(&["scan", &root, "--config", zero.to_str().unwrap()]);
    assert_refused(&r, "not a regular file");
}

#[test]
fn rules_flag_naming_a_file_outside_the_root_still_works() {
    let t = Tree::new();
    let root = repo_with_token(&t);
    let outside = t.write("elsewhere/rules.toml", ACME_RULE);
    let r = run(&["scan", &root, "--rules", outside.to_str().unwrap()]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stdout.contains("acme.token"), "{}", r.stdout);
}

/// 125,000 nested repetitions of `a`: minutes on 200 KB of `a` without load-time limits.
const EXPLODING_RULE: &str = r#"[[rules]]
id = "evil.nested-repeat"
name = "Nested repetition"
category = "generic"
severity = "low"
regex = '''(?P<secret>((a{50}){50}){50})'''
keywords = ["aa"]
"#;

fn assert_regex_refused(r: &Run) {
    assert_eq!(r.code, Some(2), "stderr: {}", r.stderr);
    assert!(r.stderr.contains("evil.nested-repeat"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("{50}"),
        "the regex is never quoted: {}",
        r.stderr
    );
}

#[test]
fn exploding_regex_from_the_rules_flag_is_refused_at_load() {
    let t = Tree::new();
    t.write("repo/big.txt", "a".repeat(200_000));
    let rules = t.write("evil.toml", EXPLODING_RULE);
    let root = t.path().join("repo");
    assert_regex_refused(&run(&[
        "scan",
        root.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
    ]));
}

#[test]
fn exploding_regex_from_the_repo_config_is_refused_at_load() {
    let t = Tree::new();
    t.write("repo/big.txt", "a".repeat(200_000));
    t.write("repo/evil.toml", EXPLODING_RULE);
    t.write("repo/trawl.toml", files_config(&["evil.toml"]));
    let root = t.path().join("repo");
    assert_regex_refused(&run(&["scan", root.to_str().unwrap()]));
}

#[test]
fn repetition_counts_over_1000_are_refused() {
    let t = Tree::new();
    t.write("repo/a.txt", "nothing\n");
    let rules = t.write(
        "big-count.toml",
        EXPLODING_RULE.replace("((a{50}){50}){50}", "a{1001}"),
    );
    let root = t.path().join("repo");
    let r = run(&[
        "scan",
        root.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(2), "stderr: {}", r.stderr);
    assert!(r.stderr.contains("evil.nested-repeat"), "{}", r.stderr);
}
