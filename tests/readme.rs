//! The README's copy-paste examples, run as written (URLs and CI variables substituted).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::{Fake, Tree, BIN};

/// The code block following `<!-- example: NAME -->` in README.md.
pub fn example(name: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let marker = format!("<!-- example: {name} -->");
    let at = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("no example {name}"));
    let rest = &readme[at + marker.len()..];
    let start = rest.find("```").unwrap();
    let body_start = start + rest[start..].find('\n').unwrap() + 1;
    let end = body_start + rest[body_start..].find("```").unwrap();
    rest[body_start..end].to_string()
}

fn bin_dir() -> PathBuf {
    Path::new(BIN).parent().unwrap().to_path_buf()
}

fn sh(dir: &Path, script: &str, env: &[(&str, &str)]) -> Output {
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("PATH", path)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.invalid")
        .env("GIT_COMMITTER_NAME", "Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.invalid")
        .envs(env.iter().copied())
        .output()
        .expect("sh runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The `trawl ...` command lines of a CI example (after `run:` or `- `).
fn trawl_lines(block: &str) -> Vec<String> {
    block
        .lines()
        .filter_map(|l| {
            let l = l
                .trim()
                .trim_start_matches("- run:")
                .trim_start_matches("- ")
                .trim();
            l.starts_with("trawl ").then(|| l.to_string())
        })
        .collect()
}

/// A repository whose `main` has a clean commit and whose `feature` branch adds a secret.
fn pull_request_repo(t: &Tree) -> String {
    let tok = Fake::new(500).hf_token();
    let repo = t.path();
    let o = sh(
        repo,
        &format!(
            "git init -q -b main && echo ok > a.txt && git add -A && git commit -q -m base && \
             git checkout -q -b feature && printf 'HF_TOKEN={tok}\\n' > b.env && git add -A && \
             git commit -q -m feature && git update-ref refs/remotes/origin/main main && git rev-parse main"
        ),
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn check_ci_run(block: &str, env: &[(&str, &str)], sarif: &str) {
    let lines = trawl_lines(block);
    assert_eq!(lines.len(), 1, "{block}");
    let t = Tree::new();
    let base = pull_request_repo(&t);
    let line = lines[0].replace("${{ github.base_ref }}", "main");
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push(("CI_MERGE_REQUEST_DIFF_BASE_SHA", &base));
    let o = sh(t.path(), &line, &env);
    assert_eq!(
        o.status.code(),
        Some(1),
        "the gate fails on the PR's secret: {}",
        text(&o)
    );
    let report = t.path().join(sarif);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let results = v["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["ruleId"], "huggingface.user-token");
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "b.env"
    );
    crate::output::validate_sarif(&report);
}

#[test]
fn github_actions_example_scans_the_pull_request_and_writes_valid_sarif() {
    check_ci_run(&example("github-actions"), &[], "trawl.sarif");
}

#[test]
fn gitlab_ci_example_scans_the_merge_request_and_writes_valid_sarif() {
    check_ci_run(&example("gitlab-ci"), &[], "gl-trawl.sarif");
}

#[test]
fn configuration_example_is_valid_and_applies() {
    let t = Tree::new();
    t.write("trawl.toml", example("config"));
    t.write(
        "security/extra-rules.toml",
        "[[rules]]\nid = \"acme-key\"\ndescription = \"Acme key\"\nregex = '''acme_[a-z0-9]{24}'''\nkeywords = [\"acme_\"]\n",
    );
    let mut f = Fake::new(501);
    t.write("tests/fixtures/hf.env", format!("HF={}\n", f.hf_token()));
    t.write("src/db.py", format!("password = \"{}\"\n", f.alnum(20)));
    t.write("src/acme.py", "KEY = 'acme_q3x9wplm2rt7yvbn4kc8hd1j'\n");
    let o = sh(t.path(), "trawl scan . --format json", &[]);
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    let rules: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["acme-key"], "{}", text(&o));
}

#[test]
fn baseline_example_runs_as_written() {
    let t = Tree::new();
    let tok = Fake::new(502).hf_token();
    let o = sh(
        t.path(),
        &format!("git init -q -b main && printf 'HF={tok}\\n' > x.env && git add -A && git commit -q -m x"),
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    for line in example("baseline")
        .lines()
        .filter(|l| l.starts_with("trawl "))
    {
        let o = sh(t.path(), line, &[]);
        assert_eq!(o.status.code(), Some(0), "{line}: {}", text(&o));
    }
}

#[test]
fn git_hook_example_installs_the_hook() {
    let t = Tree::new();
    std::fs::create_dir_all(t.path().join("scripts")).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pre-commit"),
        t.path().join("scripts/pre-commit"),
    )
    .unwrap();
    let o = sh(
        t.path(),
        &format!("git init -q -b main && {}", example("git-hook").trim()),
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(t.path().join(".git/hooks/pre-commit").exists());
}
