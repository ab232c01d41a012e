//! deploy/: `trawl org scan` shards on engines teams already run. The Kubernetes manifests are
//! parsed, their contract checked, and their containers' very commands run against the built
//! binary (the volume paths mapped to a temporary directory); deploy/shard.sh's retries run
//! against a fake trawl; the GitHub Actions workflow's steps run as written; the Dask driver runs
//! end to end on a LocalCluster. YAML is read with PyYAML (in .tools/venv, beside pre-commit),
//! Dask comes from .tools/dask-venv: both installed by scripts/install-test-tools.sh, which
//! scripts/test runs first.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::{git_ok, stderr, Fake, Tree, BIN};

mod actions;
mod dask;
mod kubernetes;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A tool installed by scripts/install-test-tools.sh.
fn tool(rel: &str) -> PathBuf {
    let p = root().join(".tools").join(rel);
    assert!(
        p.exists(),
        "{} is not installed: run scripts/install-test-tools.sh (scripts/test does)",
        p.display()
    );
    p
}

const READ_YAML: &str = r#"
import json, sys, yaml
# YAML 1.1 reads a bare `on` key as true; GitHub Actions reads it as "on".
def fix(o):
    if isinstance(o, dict):
        return {("on" if k is True else k): fix(v) for k, v in o.items()}
    if isinstance(o, list):
        return [fix(v) for v in o]
    return o
with open(sys.argv[1], encoding="utf-8") as f:
    json.dump([fix(d) for d in yaml.safe_load_all(f) if d is not None], sys.stdout)
"#;

/// The YAML documents of a file, as JSON values.
pub(crate) fn yaml_docs(path: &Path) -> Vec<Value> {
    let o = Command::new(tool("venv/bin/python"))
        .args(["-c", READ_YAML])
        .arg(path)
        .output()
        .expect("python runs");
    assert!(o.status.success(), "{}: {}", path.display(), stderr(&o));
    serde_json::from_slice(&o.stdout).expect("JSON from PyYAML")
}

/// The YAML documents of a file under deploy/.
fn yaml(rel: &str) -> Vec<Value> {
    yaml_docs(&root().join("deploy").join(rel))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Three bare repositories, each with fake tokens committed and then removed (only history
/// holds them), under `t`. Returns their paths.
fn org_repos(t: &Tree) -> Vec<PathBuf> {
    let mut fake = Fake::new(1313);
    (0..3)
        .map(|k| {
            let work = t.path().join(format!("work/r{k}"));
            std::fs::create_dir_all(&work).unwrap();
            git_ok(&work, &["init", "-q", "-b", "main"]);
            let mut env = format!("GITHUB_TOKEN={}\n", fake.github_token("ghp_"));
            if k == 1 {
                env.push_str(&format!("HF_TOKEN={}\n", fake.hf_token()));
            }
            std::fs::write(work.join("deploy.env"), env).unwrap();
            std::fs::write(work.join("README.md"), format!("service {k}\n")).unwrap();
            git_ok(&work, &["add", "-A"]);
            git_ok(&work, &["commit", "-q", "-m", "deploy settings"]);
            git_ok(&work, &["rm", "-q", "deploy.env"]);
            git_ok(
                &work,
                &["commit", "-q", "-m", "tokens come from the environment"],
            );
            let bare = t.path().join(format!("repos/r{k}.git"));
            git_ok(
                t.path(),
                &[
                    "clone",
                    "-q",
                    "--bare",
                    work.to_str().unwrap(),
                    bare.to_str().unwrap(),
                ],
            );
            bare
        })
        .collect()
}

/// The (rule, secret fingerprint) pairs `trawl git` finds in each repository, together.
fn expected_findings(repos: &[PathBuf]) -> BTreeSet<(String, String)> {
    let mut all = BTreeSet::new();
    for r in repos {
        let o = Command::new(BIN)
            .args(["git", r.to_str().unwrap(), "--format", "json"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let found = json_findings(&serde_json::from_slice(&o.stdout).unwrap());
        assert!(!found.is_empty(), "no finding in {}", r.display());
        all.extend(found);
    }
    all
}

/// The (rule, secret fingerprint) pairs of a JSON report.
fn json_findings(report: &Value) -> BTreeSet<(String, String)> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["fingerprint"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The (rule, secret fingerprint) pairs of a SARIF report.
fn sarif_findings(report: &Value) -> BTreeSet<(String, String)> {
    report["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["ruleId"].as_str().unwrap().to_string(),
                r["partialFingerprints"]["secretFingerprint/v1"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

/// A fake trawl: records its arguments in `$FAKE_DIR/calls`; `org merge` exits
/// `$FAKE_MERGE`; the k-th `org scan --plan P --shard I/N ...` of shard I exits the k-th code
/// of `$FAKE_CODES_I` (0 when there is none).
fn fake_trawl(t: &Tree) -> PathBuf {
    let p = t.write(
        "fake/trawl",
        "#!/bin/sh\n\
         echo \"$*\" >> \"$FAKE_DIR/calls\"\n\
         if [ \"$2\" = merge ]; then exit \"${FAKE_MERGE:-0}\"; fi\n\
         i=${6%/*}\n\
         echo x >> \"$FAKE_DIR/count-$i\"\n\
         n=$(wc -l < \"$FAKE_DIR/count-$i\")\n\
         eval \"codes=\\${FAKE_CODES_$i:-0}\"\n\
         code=$(echo \"$codes\" | cut -d' ' -f\"$n\")\n\
         exit \"${code:-0}\"\n",
    );
    executable(p)
}

fn calls(t: &Tree) -> Vec<String> {
    std::fs::read_to_string(t.path().join("calls"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn executable(p: PathBuf) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}
