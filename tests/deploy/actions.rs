//! deploy/shard.sh (the retry wrapper of a CI matrix) and the GitHub Actions workflow.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::{calls, expected_findings, fake_trawl, org_repos, root, sarif_findings, yaml};
use crate::util::{stderr, Fake, Tree, BIN};

#[test]
fn shard_sh_retries_75_passes_2_through_and_stops_after_its_retries() {
    let run = |codes: &str, retries: &str| {
        let t = Tree::new();
        let fake = fake_trawl(&t);
        let o = Command::new(root().join("deploy/shard.sh"))
            .args(["--plan", "p.json", "--shard", "1/4", "--out", "o"])
            .env("TRAWL", &fake)
            .env("FAKE_DIR", t.path())
            .env("FAKE_CODES_1", codes)
            .env("TRAWL_RETRIES", retries)
            .env("TRAWL_RETRY_DELAY", "0")
            .output()
            .unwrap();
        (o.status.code(), calls(&t), stderr(&o))
    };
    let (code, calls, err) = run("75 75 0", "3");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(calls, vec!["org scan --plan p.json --shard 1/4 --out o"; 3]);
    let (code, calls, err) = run("2 0", "3");
    assert_eq!((code, calls.len()), (Some(2), 1), "{err}");
    let (code, calls, err) = run("75 75 75 75 0", "2");
    assert_eq!((code, calls.len()), (Some(75), 3), "{err}");
    assert!(err.contains("after 3 attempts"), "{err}");
    // A crash or a kill is not a retryable failure: passed through.
    let (code, calls, _) = run("137 0", "3");
    assert_eq!((code, calls.len()), (Some(137), 1));
    let (code, calls, _) = run("0", "x");
    assert_eq!(
        (code, calls.len()),
        (Some(2), 0),
        "a bad TRAWL_RETRIES is refused"
    );
}

/// The steps of a workflow job, by name or `uses`.
fn step<'a>(job: &'a Value, name: &str) -> &'a Value {
    job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name || s["uses"].as_str().is_some_and(|u| u.starts_with(name)))
        .unwrap_or_else(|| panic!("no step {name}"))
}

/// A workflow step's `run:` as bash in `dir` (where deploy/ is this checkout's), with the
/// step's `env:` (each `${{ expression }}` given a value by `exprs`) and trawl on PATH.
fn step_command(step: &Value, dir: &Path, exprs: &[(&str, &str)]) -> Command {
    let bin_dir = Path::new(BIN).parent().unwrap();
    let mut cmd = Command::new("bash");
    cmd.args(["-e", "-c", step["run"].as_str().unwrap()])
        .current_dir(dir)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env_remove("GITHUB_TOKEN");
    for (name, value) in step["env"].as_object().into_iter().flatten() {
        let v = value.as_str().unwrap();
        let resolved = exprs
            .iter()
            .find(|(e, _)| v == format!("${{{{ {e} }}}}"))
            .map(|(_, r)| r.to_string())
            .unwrap_or_else(|| panic!("{name}: {v} has no value in this test"));
        cmd.env(name, resolved);
    }
    cmd
}

#[test]
fn the_actions_workflow_plans_a_capped_matrix_and_its_steps_call_the_deploy_scripts() {
    let wf = yaml("github-actions/org-scan.yml").remove(0);
    assert!(wf["on"]["schedule"][0]["cron"].is_string(), "{}", wf["on"]);
    assert!(wf["on"]["workflow_dispatch"].is_object());
    let jobs = &wf["jobs"];
    let (plan, shard, merge) = (&jobs["plan"], &jobs["shard"], &jobs["merge"]);

    // The matrix is the plan's list of shards.
    assert_eq!(
        plan["outputs"]["shards"],
        "${{ steps.plan.outputs.shards }}"
    );
    assert_eq!(shard["strategy"]["fail-fast"], false);
    assert_eq!(
        shard["strategy"]["matrix"]["shard"],
        "${{ fromJSON(needs.plan.outputs.shards) }}"
    );
    let plan_step = step(plan, "Plan");
    assert_eq!(plan_step["id"], "plan");
    assert!(plan_step["run"]
        .as_str()
        .unwrap()
        .starts_with("deploy/plan.sh "));
    let scan_step = step(shard, "Scan shard");
    assert!(scan_step["run"]
        .as_str()
        .unwrap()
        .starts_with("deploy/shard.sh "));
    let merge_step = step(merge, "Merge");
    let merge_run = merge_step["run"].as_str().unwrap();
    assert!(merge_run.starts_with("trawl org merge ") && merge_run.contains("--format sarif"));
    let upload = step(merge, "github/codeql-action/upload-sarif");
    assert!(merge_run.contains(&format!(
        "-o {}",
        upload["with"]["sarif_file"].as_str().unwrap()
    )));
    assert_eq!(merge["permissions"]["security-events"], "write");
    // Secrets reach the steps only as environment variables.
    for job in [plan, shard, merge] {
        for s in job["steps"].as_array().unwrap() {
            let run = s["run"].as_str().unwrap_or_default();
            assert!(
                !run.contains("secrets."),
                "a secret in a command line: {run}"
            );
        }
    }

    // The plan step as written: more shards than a matrix holds are planned as 256.
    let t = Tree::new();
    std::os::unix::fs::symlink(root().join("deploy"), t.path().join("deploy")).unwrap();
    t.write(
        ".github/trawl-repos.txt",
        "https://github.com/acme/api.git\nhttps://github.com/acme/web.git\n",
    );
    let output = t.path().join("github-output");
    let token = Fake::new(1315).github_token("ghp_");
    for (asked, count) in [("300", 256), ("3", 3)] {
        std::fs::write(&output, "").unwrap();
        let exprs = [
            ("inputs.shards || '16'", asked),
            ("secrets.TRAWL_GITHUB_TOKEN", token.as_str()),
        ];
        let o = step_command(plan_step, t.path(), &exprs)
            .env("GITHUB_OUTPUT", &output)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(!stderr(&o).contains(&token), "the token reached stderr");
        let out = std::fs::read_to_string(&output).unwrap();
        let indexes: Vec<String> = (0..count).map(|i| i.to_string()).collect();
        assert!(
            out.contains(&format!("shards=[{}]\ncount={count}\n", indexes.join(","))),
            "{out}"
        );
        assert_eq!(
            asked == "300",
            stderr(&o).contains("planning 256"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn the_actions_shard_and_merge_steps_run_as_written() {
    let wf = yaml("github-actions/org-scan.yml").remove(0);
    let jobs = &wf["jobs"];
    let t = Tree::new();
    std::os::unix::fs::symlink(root().join("deploy"), t.path().join("deploy")).unwrap();
    let repos = org_repos(&t);
    let urls: String = repos.iter().map(|r| format!("{}\n", r.display())).collect();
    t.write(".github/trawl-repos.txt", urls);
    let token = Fake::new(1316).github_token("ghp_");
    let output = t.path().join("github-output");
    std::fs::write(&output, "").unwrap();
    let exprs = [
        ("inputs.shards || '16'", "2"),
        ("secrets.TRAWL_GITHUB_TOKEN", token.as_str()),
    ];
    let o = step_command(step(&jobs["plan"], "Plan"), t.path(), &exprs)
        .env("GITHUB_OUTPUT", &output)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    // Each matrix job: the scan step, then the files its upload step names.
    let scan = step(&jobs["shard"], "Scan shard");
    let upload = step(&jobs["shard"], "actions/upload-artifact");
    for i in ["0", "1"] {
        let exprs = [
            ("matrix.shard", i),
            ("needs.plan.outputs.count", "2"),
            ("secrets.TRAWL_GITHUB_TOKEN", token.as_str()),
        ];
        let o = step_command(scan, t.path(), &exprs).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "shard {i}: {}", stderr(&o));
        assert!(!stderr(&o).contains(&token), "the token reached stderr");
        let paths = upload["with"]["path"].as_str().unwrap();
        for p in paths.lines().filter(|p| !p.trim().is_empty()) {
            let p = p.trim().replace("${{ matrix.shard }}", i);
            assert!(t.path().join(&p).exists(), "{p} is not there to upload");
        }
    }
    // The merge job: findings fail the step after writing the SARIF the upload step sends.
    let o = step_command(step(&jobs["merge"], "Merge"), t.path(), &[])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let sarif: Value =
        serde_json::from_slice(&std::fs::read(t.path().join("trawl.sarif")).unwrap()).unwrap();
    assert_eq!(sarif_findings(&sarif), expected_findings(&repos));
}

#[test]
fn shard_sh_retries_a_real_retryable_failure_of_org_scan_and_then_gives_up_with_75() {
    // Nothing listens on the loopback discard port: every fetch fails as unreachable, which
    // trawl retries itself, then reports as retryable (75) for the whole shard.
    let t = Tree::new();
    let list = t.write("urls.txt", "http://127.0.0.1:9/acme/api.git\n");
    let repos = t.path().join("repos.jsonl");
    let plan = t.path().join("plan.json");
    for args in [
        vec![
            "org",
            "list",
            "--from-file",
            list.to_str().unwrap(),
            "-o",
            repos.to_str().unwrap(),
        ],
        vec![
            "org",
            "plan",
            repos.to_str().unwrap(),
            "--shards",
            "1",
            "-o",
            plan.to_str().unwrap(),
        ],
    ] {
        let o = Command::new(BIN).args(args).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = Command::new(root().join("deploy/shard.sh"))
        .args(["--plan", plan.to_str().unwrap(), "--shard", "0/1", "--out"])
        .arg(t.path().join("shards"))
        .env("TRAWL", BIN)
        .env("TRAWL_RETRIES", "1")
        .env("TRAWL_RETRY_DELAY", "0")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(75), "{err}");
    assert!(err.contains("attempt 2 of 2"), "{err}");
    assert!(
        err.contains("still failing (exit 75) after 2 attempts"),
        "{err}"
    );
    assert!(!t.path().join("shards/shard-0.done.json").exists());
}
