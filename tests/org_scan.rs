//! `trawl org scan` and `trawl org merge` on local bare repositories (`file://` URLs): every
//! shard scanned, then merged, gives what `trawl git` finds in each repository; shards are
//! byte-identical when run again, resume after SIGKILL, and read nothing unchanged with
//! `--state`; the exit codes are the engines' contract.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::util::{git_ok, stderr, trawl, Fake, Tree};

/// Bare repositories `NAME.git` under `t/org/`, each with a history: a Hugging Face token
/// shared by `api` and `web` (one secret in two repositories), a GitHub token in `web` only,
/// an `ACME-` key (found only with [`acme_rules`]) in `ml`, and a clean `docs`.
pub fn org_repos(t: &Tree, fake: &mut Fake) -> Vec<PathBuf> {
    let shared = fake.hf_token();
    let gh = fake.github_token("ghp_");
    let acme = format!("ACME-{}", fake.alnum(32));
    let repos: [(&str, Vec<(&str, String)>); 4] = [
        (
            "api",
            vec![
                ("app.py", format!("HF_TOKEN = \"{shared}\"\n")),
                ("app.py", "HF_TOKEN = os.environ['HF_TOKEN']\n".into()),
            ],
        ),
        (
            "web",
            vec![
                ("config/hf.env", format!("HF_TOKEN={shared}\n")),
                ("deploy.sh", format!("export GITHUB_TOKEN={gh}\n")),
            ],
        ),
        (
            "ml",
            vec![
                ("train.py", "import torch\n".into()),
                ("keys.txt", format!("acme_key: {acme}\n")),
            ],
        ),
        ("docs", vec![("README.md", "# docs\n".into())]),
    ];
    let mut out = Vec::new();
    for (name, commits) in repos {
        let work = t.path().join(format!("work/{name}"));
        std::fs::create_dir_all(&work).unwrap();
        git_ok(&work, &["init", "-q", "-b", "main"]);
        for (i, (file, text)) in commits.iter().enumerate() {
            t.write(&format!("work/{name}/{file}"), text);
            git_ok(&work, &["add", "-A"]);
            git_ok(&work, &["commit", "-qm", &format!("change {i}")]);
        }
        let bare = t.path().join(format!("org/{name}.git"));
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
        out.push(bare);
    }
    out
}

pub fn acme_rules(t: &Tree) -> PathBuf {
    t.write(
        "acme.toml",
        "[[rules]]\nid = \"acme.key\"\nname = \"ACME key\"\ncategory = \"cloud\"\n\
         severity = \"high\"\nregex = '''\\b(?P<secret>ACME-[A-Za-z0-9]{32})\\b'''\n\
         keywords = [\"acme-\"]\n",
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `org list --from-file` of `urls`, then `org plan --shards N`; returns the plan's path.
pub fn plan(t: &Tree, urls: &[String], shards: usize) -> PathBuf {
    let list = t.write("urls.txt", urls.join("\n") + "\n");
    let repos = t.path().join("repos.jsonl");
    let o = trawl(["org", "list", "--from-file", s(&list), "-o", s(&repos)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = t.path().join("plan.json");
    let n = shards.to_string();
    let o = trawl(["org", "plan", s(&repos), "--shards", &n, "-o", s(&plan)]);
    assert!(o.status.success(), "{}", stderr(&o));
    plan
}

pub fn shard(plan: &Path, i: usize, n: usize, out: &Path, extra: &[&str]) -> Output {
    let spec = format!("{i}/{n}");
    let mut args = vec![
        "org",
        "scan",
        "--plan",
        s(plan),
        "--shard",
        &spec,
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    trawl(&args)
}

pub fn merge(plan: &Path, out: &Path, extra: &[&str]) -> (Output, Value) {
    let report = out.join("merged.json");
    let mut args = vec![
        "org",
        "merge",
        "--plan",
        s(plan),
        s(out),
        "-f",
        "json",
        "-o",
        s(&report),
    ];
    args.extend_from_slice(extra);
    let o = trawl(&args);
    let v = std::fs::read(&report)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    (o, v)
}

/// (repository, rule, secret fingerprint, location fingerprint, commit, path, line) of every
/// location of a report; `repository` given for a report of one repository.
pub fn places(report: &Value, repository: Option<&str>) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    for f in report["findings"].as_array().unwrap() {
        for l in f["locations"].as_array().unwrap() {
            let repo = repository
                .map(str::to_string)
                .or_else(|| l["repository"].as_str().map(str::to_string))
                .expect("a repository per location");
            out.insert(vec![
                repo,
                f["rule"].as_str().unwrap().to_string(),
                f["fingerprint"].as_str().unwrap().to_string(),
                l["fingerprint"].as_str().unwrap().to_string(),
                l["commit"].as_str().unwrap_or_default().to_string(),
                l["path"].as_str().unwrap().to_string(),
                l["line"].to_string(),
            ]);
        }
    }
    out
}

/// What `trawl git` finds in each bare repository (cloned from `file://` its path), as
/// [`places`] names them.
pub fn git_places(bares: &[PathBuf], extra: &[&str]) -> BTreeSet<Vec<String>> {
    let named: Vec<(String, PathBuf)> = bares
        .iter()
        .map(|b| (format!("file://{}", b.display()), b.clone()))
        .collect();
    git_places_named(&named, extra)
}

/// What `trawl git` finds in each (clone URL, bare repository), as [`places`] names them.
pub fn git_places_named(repos: &[(String, PathBuf)], extra: &[&str]) -> BTreeSet<Vec<String>> {
    let mut all = BTreeSet::new();
    for (url, bare) in repos {
        let mut args = vec!["git", s(bare), "-f", "json"];
        args.extend_from_slice(extra);
        let o = trawl(&args);
        assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        all.extend(places(&v, Some(url)));
    }
    all
}

fn urls(bares: &[PathBuf]) -> Vec<String> {
    bares
        .iter()
        .map(|b| format!("file://{}", b.display()))
        .collect()
}

#[test]
fn every_shard_scanned_then_merged_equals_trawl_git_on_each_repository() {
    let t = Tree::new();
    let bares = org_repos(&t, &mut Fake::new(1301));
    let plan = plan(&t, &urls(&bares), 3);
    let out = t.path().join("out");

    // Merge refuses while a shard is not done.
    let o = shard(&plan, 0, 3, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (o, _) = merge(&plan, &out, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("2 shards of 3 not done"),
        "{}",
        stderr(&o)
    );

    // Shard 1 as a Kubernetes Indexed Job runs it; shard 2 as AWS Batch would.
    for (i, var) in [
        (1, "JOB_COMPLETION_INDEX"),
        (2, "AWS_BATCH_JOB_ARRAY_INDEX"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_trawl"))
            .args([
                "org",
                "scan",
                "--plan",
                s(&plan),
                "--shard-from-env",
                "--out",
                s(&out),
            ])
            .env(var, i.to_string())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(out.join(format!("shard-{i}.done.json")).is_file());
    }

    // Findings fail the gate in merge, never in a shard.
    let (o, merged) = merge(&plan, &out, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("coverage: 4 repositories in 3 shards: 4 scanned"),
        "{err}"
    );
    assert_eq!(places(&merged, None), git_places(&bares, &[]));
    // One secret in two repositories: one finding, a location in each.
    let hf: Vec<&Value> = merged["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "huggingface.user-token")
        .collect();
    assert_eq!(hf.len(), 1, "{merged}");
    let repos: BTreeSet<&str> = hf[0]["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["repository"].as_str().unwrap())
        .collect();
    assert_eq!(repos.len(), 2, "{merged}");

    // SARIF for code scanning: valid, each result naming its repository.
    let sarif = out.join("merged.sarif");
    let o = trawl([
        "org",
        "merge",
        "--plan",
        s(&plan),
        s(&out),
        "-f",
        "sarif",
        "-o",
        s(&sarif),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    crate::output::validate_sarif(&sarif);
    let v: Value = serde_json::from_slice(&std::fs::read(&sarif).unwrap()).unwrap();
    let results = v["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), places(&merged, None).len());
    assert!(results.iter().all(|r| r["properties"]["repository"]
        .as_str()
        .is_some_and(|u| u.starts_with("file://"))));

    // A baseline of everything passes the gate; `--fail-on critical` too.
    let baseline = t.path().join("baseline.json");
    let o = trawl([
        "baseline",
        "create",
        "--from",
        s(&out.join("merged.json")),
        "-o",
        s(&baseline),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (o, v) = merge(&plan, &out, &["--baseline", s(&baseline)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(v["findings"].as_array().unwrap().len(), 0);
    let (o, _) = merge(&plan, &out, &["--fail-on", "critical"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // The same shard run again elsewhere: byte-identical output and marker.
    let again = t.path().join("again");
    for i in 0..3 {
        let o = shard(&plan, i, 3, &again, &["--cache", s(&out.join("cache"))]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        for f in [
            format!("shard-{i}.jsonl.gz"),
            format!("shard-{i}.done.json"),
        ] {
            assert_eq!(
                std::fs::read(out.join(&f)).unwrap(),
                std::fs::read(again.join(&f)).unwrap(),
                "{f} differs"
            );
        }
    }
    // A finished shard run again does nothing.
    let o = shard(&plan, 0, 3, &out, &[]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("already done"), "{}", stderr(&o));
}

#[test]
fn exit_codes_tell_an_engine_what_to_retry() {
    let t = Tree::new();
    let bares = org_repos(&t, &mut Fake::new(1302));
    let plan = plan(&t, &urls(&bares[..1]), 1);
    let out = t.path().join("out");
    // Fatal: an index out of range, a wrong shard count, no index in the environment, a
    // file that is not a plan.
    for o in [
        shard(&plan, 1, 1, &out, &[]),
        shard(&plan, 0, 2, &out, &[]),
        trawl([
            "org",
            "scan",
            "--plan",
            s(&plan),
            "--shard-from-env",
            "--out",
            s(&out),
        ]),
        trawl([
            "org",
            "scan",
            "--plan",
            s(&t.write("x.json", "{\"nope\":1}")),
            "--shard",
            "0/1",
            "--out",
            s(&out),
        ]),
    ] {
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    }
    // Retryable: nothing could be fetched (a refused connection); no marker written.
    let down = crate::org_scan::plan(&t, &["http://127.0.0.1:9/acme/api.git".to_string()], 1);
    let o = shard(&down, 0, 1, &out, &[]);
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    assert!(!out.join("shard-0.done.json").exists());
    // A repository that does not exist is no reason to retry: the shard is done, merge says
    // the repository failed and exits 2 (what was not read is not clean).
    let gone = crate::org_scan::plan(
        &t,
        &[
            urls(&bares[..1])[0].clone(),
            format!("file://{}", t.path().join("org/nothing.git").display()),
        ],
        1,
    );
    let out2 = t.path().join("out2");
    let o = shard(&gone, 0, 1, &out2, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (o, v) = merge(&gone, &out2, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("1 failed") && err.contains("not a git repository"),
        "{err}"
    );
    assert!(!v["findings"].as_array().unwrap().is_empty(), "{v}");
}

#[test]
fn a_shard_killed_mid_run_resumes_without_scanning_finished_repositories_again() {
    let t = Tree::new();
    let bares = org_repos(&t, &mut Fake::new(1303));
    let plan = plan(&t, &urls(&bares), 1);
    let out = t.path().join("out");
    // Slowed down after each repository (an undocumented knob for this test), then killed
    // once the first repository's part is written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_trawl"))
        .args([
            "org",
            "scan",
            "--plan",
            s(&plan),
            "--shard",
            "0/1",
            "--out",
            s(&out),
        ])
        .env("TRAWL_ORG_PAUSE_MS", "60000")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let part = out.join("shard-0.parts/000000.json");
    let start = std::time::Instant::now();
    while !part.exists() {
        assert!(start.elapsed().as_secs() < 60, "no part written");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SIGKILL: no chance to clean up.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.join("shard-0.done.json").exists());

    let o = shard(&plan, 0, 1, &out, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("[1/4] done by an earlier run"), "{err}");
    assert_eq!(err.matches("done by an earlier run").count(), 1, "{err}");
    // The same bytes as a run that was never killed.
    let fresh = t.path().join("fresh");
    let o = shard(&plan, 0, 1, &fresh, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for f in ["shard-0.jsonl.gz", "shard-0.done.json"] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(fresh.join(f)).unwrap(),
            "{f} differs after a resume"
        );
    }
}

fn marker(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("shard-0.done.json")).unwrap()).unwrap()
}

fn total(m: &Value, field: &str) -> u64 {
    m["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[field].as_u64().unwrap())
        .sum()
}

#[test]
fn with_state_an_unchanged_run_reads_no_blob_and_a_new_rule_scans_known_blobs_alone() {
    let t = Tree::new();
    let bares = org_repos(&t, &mut Fake::new(1304));
    let plan = plan(&t, &urls(&bares), 1);
    let state = t.path().join("state");
    let cache = t.path().join("cache");
    let common = ["--state", s(&state), "--cache", s(&cache)];
    let run = |name: &str, extra: &[&str]| -> (PathBuf, Value) {
        let out = t.path().join(name);
        let mut args = common.to_vec();
        args.extend_from_slice(extra);
        let o = shard(&plan, 0, 1, &out, &args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let m = marker(&out);
        (out, m)
    };
    let (first, m1) = run("night1", &[]);
    let blobs = total(&m1, "blobs_scanned");
    assert!(blobs >= 7, "{m1}");
    assert_eq!(total(&m1, "blobs_known"), 0);

    // The next night, nothing changed: every repository unchanged, no blob read.
    let (second, m2) = run("night2", &[]);
    for r in m2["repositories"].as_array().unwrap() {
        assert_eq!(r["status"], "unchanged", "{m2}");
    }
    assert_eq!(total(&m2, "blobs_scanned"), 0, "{m2}");
    assert_eq!(total(&m2, "blobs_known"), 0, "{m2}");
    assert_eq!(
        std::fs::read(first.join("shard-0.jsonl.gz")).unwrap(),
        std::fs::read(second.join("shard-0.jsonl.gz")).unwrap()
    );

    // `plan --state` asks each remote (`git ls-remote`) and marks the unchanged: the shard
    // then neither fetches nor reads them (a fresh cache stays empty).
    let repos = t.path().join("repos.jsonl");
    let replan = |extra: &[&str]| -> (PathBuf, Value) {
        let path = t.path().join("replan.json");
        let mut args = vec![
            "org",
            "plan",
            s(&repos),
            "--shards",
            "1",
            "--state",
            s(&state),
            "-o",
            s(&path),
        ];
        args.extend_from_slice(extra);
        let o = trawl(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        (path, v)
    };
    let (replanned, v) = replan(&[]);
    assert_eq!(
        v["shards"][0]["unchanged"].as_array().unwrap().len(),
        4,
        "{v}"
    );
    let empty_cache = t.path().join("no-cache");
    let out = t.path().join("night2b");
    let o = shard(
        &replanned,
        0,
        1,
        &out,
        &["--state", s(&state), "--cache", s(&empty_cache)],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!empty_cache.exists(), "an unchanged repository was fetched");
    assert_eq!(
        std::fs::read(first.join("shard-0.jsonl.gz")).unwrap(),
        std::fs::read(out.join("shard-0.jsonl.gz")).unwrap()
    );

    // A rule added: every known blob scanned with it alone; what merge gives equals a full
    // scan with the rule.
    let rules = acme_rules(&t);
    // Other rules: nothing is unchanged.
    let (_, v) = replan(&["--rules", s(&rules)]);
    assert!(v["shards"][0].get("unchanged").is_none(), "{v}");
    let (third, m3) = run("night3", &["--rules", s(&rules)]);
    assert_eq!(total(&m3, "blobs_scanned"), blobs, "{m3}");
    assert_eq!(total(&m3, "blobs_rescanned"), blobs, "{m3}");
    let (o, merged) = merge(&plan, &third, &["--rules", s(&rules)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        places(&merged, None),
        git_places(&bares, &["--rules", s(&rules)])
    );
    assert!(merged.to_string().contains("acme.key"));

    // One repository gets a commit: only it is read again, and only its new blob scanned.
    let work = t.path().join("work/docs");
    t.write("work/docs/NOTES.md", "notes\n");
    git_ok(&work, &["add", "-A"]);
    git_ok(&work, &["commit", "-qm", "notes"]);
    git_ok(&work, &["push", "-q", s(&bares[3]), "main"]);
    let (_, m4) = run("night4", &["--rules", s(&rules)]);
    let statuses: Vec<&str> = m4["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == "scanned").count(),
        1,
        "{m4}"
    );
    assert_eq!(total(&m4, "blobs_scanned"), 1, "{m4}");
}
