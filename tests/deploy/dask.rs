//! deploy/dask/driver.py: its retries and exit codes against a fake trawl, and a whole
//! organisation scanned on a LocalCluster.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use super::{calls, expected_findings, fake_trawl, json_findings, org_repos, root, tool};
use crate::util::{stderr, Tree, BIN};

/// Runs deploy/dask/driver.py with `args`, `env` set.
fn dask_driver(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(tool("dask-venv/bin/python"))
        .arg(root().join("deploy/dask/driver.py"))
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .expect("the driver runs")
}

#[test]
fn the_dask_driver_retries_75_fails_on_2_and_exits_with_merges_code() {
    let t = Tree::new();
    let fake = fake_trawl(&t);
    t.write(
        "plan.json",
        r#"{"version": 1, "digest": "d", "shards": [{}, {}, {}]}"#,
    );
    let dir = t.path().to_str().unwrap();
    let args = [
        "--trawl",
        fake.to_str().unwrap(),
        "--plan",
        "plan.json",
        "--out",
        "shards",
        "-o",
        "report.sarif",
        "--fail-on",
        "high",
        "--retry-delay",
        "0",
    ];
    // Shard 0 fails retryably once, then is done; merge finds something (1): the driver's
    // exit code is merge's.
    let env = [
        ("FAKE_DIR", dir),
        ("FAKE_CODES_0", "75 0"),
        ("FAKE_MERGE", "1"),
    ];
    let o = dask_driver(t.path(), &args, &env);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let c = calls(&t);
    let scans: BTreeSet<&str> = c[..c.len() - 1].iter().map(String::as_str).collect();
    let expected: BTreeSet<String> = (0..3)
        .map(|i| format!("org scan --plan plan.json --shard {i}/3 --out shards"))
        .collect();
    assert_eq!(c.len(), 5, "{c:?}");
    assert_eq!(scans, expected.iter().map(String::as_str).collect());
    assert_eq!(
        c.last().unwrap(),
        "org merge --plan plan.json shards --format sarif -o report.sarif --fail-on high"
    );

    // A fatal shard fails the run, without retries and without a merge.
    let t = Tree::new();
    t.write(
        "plan.json",
        r#"{"version": 1, "digest": "d", "shards": [{}, {}, {}]}"#,
    );
    let dir = t.path().to_str().unwrap();
    let env = [("FAKE_DIR", dir), ("FAKE_CODES_1", "2 0")];
    let o = dask_driver(t.path(), &args, &env);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("shard 1 exited 2 after 1 attempt"),
        "{}",
        stderr(&o)
    );
    let c = calls(&t);
    assert_eq!(c.len(), 3, "{c:?}");
    assert!(c.iter().all(|l| l.starts_with("org scan")), "{c:?}");

    // Still retryable after the retries: 75, so the run can be retried.
    let t = Tree::new();
    t.write(
        "plan.json",
        r#"{"version": 1, "digest": "d", "shards": [{}, {}, {}]}"#,
    );
    let dir = t.path().to_str().unwrap();
    let env = [("FAKE_DIR", dir), ("FAKE_CODES_2", "75 75 75")];
    let mut retry_args = args.to_vec();
    retry_args.extend(["--retries", "1"]);
    let o = dask_driver(t.path(), &retry_args, &env);
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    assert_eq!(calls(&t).len(), 4);
}

#[test]
fn the_dask_driver_scans_an_organisation_end_to_end_on_a_local_cluster() {
    let t = Tree::new();
    let repos = org_repos(&t);
    let list = t.write(
        "repos.txt",
        "# the organisation\nrepos/r0.git\nrepos/r1.git\nrepos/r2.git\n",
    );
    let jsonl = t.path().join("repos.jsonl");
    let o = Command::new(BIN)
        .args(["org", "list", "--from-file", list.to_str().unwrap(), "-o"])
        .arg(&jsonl)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = t.path().join("plan.json");
    let o = Command::new(BIN)
        .args([
            "org",
            "plan",
            jsonl.to_str().unwrap(),
            "--shards",
            "2",
            "-o",
        ])
        .arg(&plan)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    let o = dask_driver(
        t.path(),
        &[
            "--trawl",
            BIN,
            "--plan",
            "plan.json",
            "--out",
            "shards",
            "--cache",
            "cache",
            "--state",
            "state",
            "--format",
            "json",
            "-o",
            "report.json",
            "--workers",
            "2",
        ],
        &[],
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "findings fail the gate: {}",
        stderr(&o)
    );
    for i in 0..2 {
        assert!(t
            .path()
            .join(format!("shards/shard-{i}.done.json"))
            .exists());
    }
    let report: Value =
        serde_json::from_slice(&std::fs::read(t.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(json_findings(&report), expected_findings(&repos));
}
