//! action.yml, trawl's composite GitHub Action, used as the README's example uses it: its
//! steps run with bash the way a runner runs them (the GITHUB_* environment and event payload,
//! `${{ inputs.* }}` from the example's `with:` or the defaults, each step's `env:`, GITHUB_PATH
//! carried to the next step, outputs read from GITHUB_OUTPUT), installing trawl from the test
//! wheel (`find-links`), since the runner's PyPI is not reachable here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::release::{root, wheel_dir};
use crate::util::{git_ok, stderr, Fake, Tree};

/// The README's workflow using the action: the `with:` of the action's step, and the workflow.
fn readme_workflow() -> (BTreeMap<String, String>, Value) {
    let t = Tree::new();
    let file = t.write("workflow.yml", crate::readme::example("github-action"));
    let wf = crate::deploy::yaml_docs(&file).remove(0);
    let steps = wf["jobs"]["trawl"]["steps"].as_array().unwrap().clone();
    let uses = |prefix: &str| {
        steps
            .iter()
            .find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(prefix)))
            .unwrap_or_else(|| panic!("no step uses {prefix}"))
            .clone()
    };
    let action = uses("trawl-scanner/trawl@");
    assert_eq!(
        action["uses"],
        format!("trawl-scanner/trawl@v{}", env!("CARGO_PKG_VERSION"))
    );
    let with = action["with"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    // The base commit must be in the clone.
    assert_eq!(uses("actions/checkout@")["with"]["fetch-depth"], 0);
    (with, wf)
}

/// Runs the action's steps, as a runner would, with the inputs of `with`.
struct Runner {
    action: Value,
    with: BTreeMap<String, String>,
    temp: PathBuf,
    base_path: String,
}

/// What a run of the action left: the exit code of the step that failed (or 0), the
/// action's outputs, and the steps' stderr.
struct Run {
    /// The `id` (or name) of the step that failed.
    failed: Option<String>,
    code: Option<i32>,
    outputs: BTreeMap<String, String>,
    stderr: String,
}

impl Runner {
    fn new(t: &Tree, with: BTreeMap<String, String>) -> Runner {
        let action = crate::deploy::yaml_docs(&root().join("action.yml")).remove(0);
        assert_eq!(action["runs"]["using"], "composite");
        let temp = t.path().join("runner-temp");
        std::fs::create_dir_all(&temp).unwrap();
        // No trawl on the runner's PATH: the action must install it.
        let base_path = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .filter(|d| !d.join("trawl").exists())
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        Runner {
            action,
            with,
            temp,
            base_path,
        }
    }

    /// An input's value: from `with:`, else the action's default.
    fn input(&self, name: &str) -> String {
        let declared = &self.action["inputs"][name];
        assert!(declared.is_object(), "the action has no input {name}");
        self.with
            .get(name)
            .cloned()
            .unwrap_or_else(|| declared["default"].as_str().unwrap_or_default().to_string())
    }

    /// Runs every step in `workspace` for `event`, whose payload is `payload`.
    fn run(&self, workspace: &Path, event: &str, payload: Value) -> Run {
        let files = self.temp.join(format!("files-{}", next_id()));
        std::fs::create_dir_all(&files).unwrap();
        let (event_path, output, github_path) = (
            files.join("event.json"),
            files.join("output"),
            files.join("path"),
        );
        std::fs::write(&event_path, payload.to_string()).unwrap();
        std::fs::write(&output, "").unwrap();
        std::fs::write(&github_path, "").unwrap();
        let mut err = String::new();
        for step in self.action["runs"]["steps"].as_array().unwrap() {
            let script = step["run"].as_str().unwrap();
            assert_eq!(step["shell"], "bash");
            assert!(
                !script.contains("${{"),
                "an expression inside a script (inputs go through env:): {script}"
            );
            // GITHUB_PATH entries come before the PATH, the latest first.
            let added: Vec<String> = std::fs::read_to_string(&github_path)
                .unwrap()
                .lines()
                .rev()
                .map(str::to_string)
                .collect();
            let path = added
                .into_iter()
                .chain([self.base_path.clone()])
                .collect::<Vec<_>>()
                .join(":");
            let mut cmd = Command::new("bash");
            cmd.args([
                "--noprofile",
                "--norc",
                "-e",
                "-o",
                "pipefail",
                "-c",
                script,
            ])
            .current_dir(workspace)
            .env("PATH", path)
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_EVENT_NAME", event)
            .env("GITHUB_EVENT_PATH", &event_path)
            .env("GITHUB_WORKSPACE", workspace)
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_PATH", &github_path)
            .env("RUNNER_TEMP", &self.temp)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1");
            for (name, value) in step["env"].as_object().into_iter().flatten() {
                let v = value.as_str().unwrap();
                let input = v
                    .strip_prefix("${{ inputs.")
                    .and_then(|r| r.strip_suffix(" }}"))
                    .unwrap_or_else(|| panic!("{name}: {v} is not an input"));
                cmd.env(name, self.input(input));
            }
            let o = cmd.output().unwrap();
            err.push_str(&stderr(&o));
            if !o.status.success() {
                let id = step["id"].as_str().or(step["name"].as_str());
                return Run {
                    failed: id.map(str::to_string),
                    code: o.status.code(),
                    outputs: outputs(&output),
                    stderr: err,
                };
            }
        }
        Run {
            failed: None,
            code: Some(0),
            outputs: outputs(&output),
            stderr: err,
        }
    }
}

impl Run {
    /// Every step passed (`code` 0), or the scan step failed with `code`.
    fn expect(&self, code: i32) {
        let failed = (code != 0).then_some("scan");
        assert_eq!(
            (self.failed.as_deref(), self.code),
            (failed, Some(code)),
            "{}",
            self.stderr
        );
    }
}

fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn outputs(file: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A clone as actions/checkout leaves it: `main` holds a token committed long ago (not the
/// pull request's doing); `clean` adds a harmless file, `leak` adds a new token in b.env.
/// Returns the commit of `main`.
fn repository(t: &Tree) -> (PathBuf, String) {
    let repo = t.path().join("workspace");
    std::fs::create_dir_all(&repo).unwrap();
    let mut fake = Fake::new(1503);
    git_ok(&repo, &["init", "-q", "-b", "main"]);
    t.write("workspace/old.env", format!("HF={}\n", fake.hf_token()));
    git_ok(&repo, &["add", "-A"]);
    git_ok(&repo, &["commit", "-qm", "base"]);
    let base = git_ok(&repo, &["rev-parse", "HEAD"]);
    git_ok(&repo, &["checkout", "-q", "-b", "clean"]);
    t.write("workspace/docs.md", "# how to deploy\n");
    git_ok(&repo, &["add", "-A"]);
    git_ok(&repo, &["commit", "-qm", "docs"]);
    git_ok(&repo, &["checkout", "-q", "-b", "leak", "main"]);
    t.write("workspace/b.env", format!("HF_TOKEN={}\n", fake.hf_token()));
    git_ok(&repo, &["add", "-A"]);
    git_ok(&repo, &["commit", "-qm", "feature"]);
    (repo, base)
}

fn pull_request(base: &str, head: &str) -> Value {
    json!({"pull_request": {"base": {"sha": base, "ref": "main"}, "head": {"sha": head}}})
}

fn sarif_results(path: &Path) -> Vec<(String, String)> {
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["ruleId"].as_str().unwrap().to_string(),
                r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

#[test]
fn the_readme_action_fails_a_pull_request_that_adds_a_secret_with_sarif_and_passes_a_clean_one() {
    let (mut with, wf) = readme_workflow();
    with.insert("find-links".into(), wheel_dir().display().to_string());
    let t = Tree::new();
    let (repo, base) = repository(&t);
    let runner = Runner::new(&t, with);
    let sarif = runner.input("sarif");
    // The example uploads the file the action writes, also when the gate failed.
    let upload = wf["jobs"]["trawl"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.contains("upload-sarif"))
        })
        .unwrap();
    assert_eq!(upload["with"]["sarif_file"], sarif.as_str());
    assert_eq!(upload["if"], "always()");
    assert_eq!(wf["on"], "pull_request");

    git_ok(&repo, &["checkout", "-q", "leak"]);
    let head = git_ok(&repo, &["rev-parse", "HEAD"]);
    let run = runner.run(&repo, "pull_request", pull_request(&base, &head));
    run.expect(1);
    assert_eq!(run.outputs["exit-code"], "1");
    assert_eq!(run.outputs["sarif"], sarif);
    let report = repo.join(&sarif);
    // Only what the pull request adds: not the token already on main.
    assert_eq!(
        sarif_results(&report),
        [("huggingface.user-token".to_string(), "b.env".to_string())]
    );
    crate::output::validate_sarif(&report);

    git_ok(&repo, &["checkout", "-q", "clean"]);
    let head = git_ok(&repo, &["rev-parse", "HEAD"]);
    let run = runner.run(&repo, "pull_request", pull_request(&base, &head));
    run.expect(0);
    assert_eq!(run.outputs["exit-code"], "0");
    assert_eq!(sarif_results(&repo.join(&sarif)), []);
}

#[test]
fn on_a_push_the_action_scans_the_checkout_with_its_args_and_fail_on() {
    let t = Tree::new();
    let (repo, _) = repository(&t);
    let with = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([("find-links".to_string(), wheel_dir().display().to_string())])
            .collect()
    };
    // The whole checkout (`leak`): the old token and the new one.
    let run = Runner::new(&t, with(&[("sarif", "out/trawl.sarif")])).run(
        &repo,
        "push",
        json!({"ref": "refs/heads/leak"}),
    );
    run.expect(1);
    let mut found = sarif_results(&repo.join("out/trawl.sarif"));
    found.sort();
    let hf = "huggingface.user-token".to_string();
    assert_eq!(
        found,
        [
            (hf.clone(), "b.env".to_string()),
            (hf, "old.env".to_string())
        ]
    );
    // `fail-on` above the findings' severity (high): reported, not failing.
    let run = Runner::new(&t, with(&[("fail-on", "critical")])).run(&repo, "push", json!({}));
    run.expect(0);
    assert_eq!(sarif_results(&repo.join("trawl.sarif")).len(), 2);
    // `args` reach trawl, split on spaces.
    let run = Runner::new(&t, with(&[("args", "--exclude b.env --exclude old.env")])).run(
        &repo,
        "push",
        json!({}),
    );
    run.expect(0);
    assert_eq!(sarif_results(&repo.join("trawl.sarif")), []);
    // A bad argument is an error (2), not a pass.
    let run = Runner::new(&t, with(&[("args", "--no-such-flag")])).run(&repo, "push", json!({}));
    run.expect(2);
}
