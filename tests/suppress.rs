//! Suppressions: baselines that survive history rewrites, expiry and stale entries, inline
//! `trawl:allow`, and `trawl.toml` (allowlists, disabled rules, limits, errors).

use serde_json::Value;

use crate::util::git_ok as git;
use crate::util::{stderr, trawl, Fake, Tree};

fn secrets(o: &std::process::Output) -> Vec<String> {
    let v: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(o)));
    let mut s: Vec<String> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["secret"].as_str().unwrap().to_string())
        .collect();
    s.sort();
    s
}

#[test]
fn a_baseline_survives_rebase_squash_and_rename() {
    let mut f = Fake::new(300);
    let (old, new) = (f.hf_token(), f.hf_token());
    let t = Tree::new();
    let repo = t.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("a.py"), format!("TOKEN = '{old}'\n")).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "one"]);
    std::fs::write(repo.join("b.txt"), "b\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "two"]);

    // Baseline the history as it is.
    let report = t.path().join("report.json");
    let o = trawl([
        "git",
        repo.to_str().unwrap(),
        "-f",
        "json",
        "-o",
        report.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let baseline = t.path().join("baseline.json");
    let o = trawl([
        "baseline",
        "create",
        "--from",
        report.to_str().unwrap(),
        "-o",
        baseline.to_str().unwrap(),
        "--reason",
        "rotated",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(&baseline).unwrap();
    assert!(!text.contains(&old), "a baseline never holds the secret");

    // Rewrite history: squash both commits, rename the file, move the secret down a few lines.
    let root = git(&repo, &["rev-list", "--max-parents=0", "HEAD"]);
    git(&repo, &["reset", "-q", "--soft", &root]);
    git(&repo, &["mv", "a.py", "settings.py"]);
    std::fs::create_dir(repo.join("pkg")).unwrap();
    git(&repo, &["mv", "settings.py", "pkg/settings.py"]);
    std::fs::write(
        repo.join("pkg/settings.py"),
        format!("import os\n\n\nDEBUG = False\nTOKEN = '{old}'\n"),
    )
    .unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "--amend", "-m", "squashed"]);
    git(&repo, &["reflog", "expire", "--expire=now", "--all"]);
    git(&repo, &["gc", "-q", "--prune=now"]);

    let base = baseline.to_str().unwrap();
    let o = trawl([
        "git",
        repo.to_str().unwrap(),
        "-f",
        "json",
        "--show-secrets",
        "--baseline",
        base,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(secrets(&o).is_empty());

    // A different secret on the very same line is reported.
    std::fs::write(
        repo.join("pkg/settings.py"),
        format!("import os\n\n\nDEBUG = False\nTOKEN = '{old}'; T2 = '{new}'\n"),
    )
    .unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "another"]);
    let o = trawl([
        "git",
        repo.to_str().unwrap(),
        "-f",
        "json",
        "--show-secrets",
        "--baseline",
        base,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(secrets(&o), vec![new.clone()]);

    // An expired entry stops suppressing and says so.
    let expired = text.replace(
        "\"reason\": \"rotated\"",
        "\"reason\": \"rotated\",\n      \"expires\": \"2020-01-01\"",
    );
    std::fs::write(&baseline, expired).unwrap();
    let o = trawl([
        "git",
        repo.to_str().unwrap(),
        "-f",
        "json",
        "--show-secrets",
        "--baseline",
        base,
    ]);
    assert_eq!(secrets(&o), {
        let mut v = vec![old.clone(), new.clone()];
        v.sort();
        v
    });
    assert!(
        stderr(&o).contains("expired on 2020-01-01"),
        "{}",
        stderr(&o)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v.to_string().contains("baseline entry expired"),
        "the report says so too"
    );

    // Once the secret is gone, the entry is stale.
    std::fs::write(&baseline, &text).unwrap();
    let clean = t.path().join("clean");
    std::fs::create_dir(&clean).unwrap();
    std::fs::write(clean.join("x.txt"), "nothing\n").unwrap();
    let o = trawl([
        "scan",
        clean.to_str().unwrap(),
        "--baseline",
        base,
        "--report-stale",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("stale baseline entry: huggingface.user-token"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("(rotated)"));
}

#[test]
fn baseline_create_scans_paths_directly() {
    let tok = Fake::new(301).hf_token();
    let t = Tree::new();
    t.write("src/app.env", format!("HF={tok}\n"));
    let out = t.path().join("b.json");
    let o = trawl([
        "baseline",
        "create",
        t.path().join("src").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--expires",
        "2999-12-31",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v["entries"][0]["rule"], "huggingface.user-token");
    assert_eq!(v["entries"][0]["expires"], "2999-12-31");
    let o = trawl([
        "scan",
        t.path().join("src").to_str().unwrap(),
        "--baseline",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let o = trawl([
        "baseline",
        "create",
        "-o",
        out.to_str().unwrap(),
        "--expires",
        "soon",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn inline_allow_suppresses_its_line_only() {
    let mut f = Fake::new(302);
    let (a, b) = (f.hf_token(), f.hf_token());
    let t = Tree::new();
    t.write(
        "cfg.py",
        format!("A = '{a}'  # trawl:allow test fixture\nB = '{b}'\n"),
    );
    let o = trawl([
        "scan",
        t.path().to_str().unwrap(),
        "-f",
        "json",
        "--show-secrets",
    ]);
    assert_eq!(secrets(&o), vec![b]);
}

#[test]
fn config_allowlists_disabled_rules_and_limits() {
    let mut f = Fake::new(303);
    let t = Tree::new();
    t.write("app/.env", format!("HF={}\n", f.hf_token()));
    t.write("tests/fixtures/.env", format!("HF={}\n", f.hf_token()));
    let keep = f.hf_token();
    t.write("app/other.env", format!("HF={keep}\n"));
    let drop_by_word = format!("hf_abab{}", &f.hf_token()[7..]);
    t.write("app/words.txt", format!("HF={drop_by_word}\n"));
    t.write(
        "big.txt",
        format!("{}\nHF={}\n", "x".repeat(4000), f.hf_token()),
    );
    t.write("notes.txt", format!("password = \"{}\"\n", f.alnum(20)));
    t.write(
        "trawl.toml",
        "[rules]\ndisable = [\"generic.password\"]\n\n[allowlist]\npaths = [\"tests/**\"]\nstopwords = [\"abab\"]\n\n[rule.\"huggingface.user-token\"]\npaths = [\"app/.env\"]\n\n[limits]\nmax_file_size = \"2K\"\n",
    );
    let o = trawl([
        "scan",
        t.path().to_str().unwrap(),
        "-f",
        "json",
        "--show-secrets",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(secrets(&o), vec![keep]);
    assert!(
        stderr(&o).contains("big.txt"),
        "the size limit applies: {}",
        stderr(&o)
    );

    // --config names another file; a bad one is exit 2 with file, line and reason.
    let bad = t.write(
        "bad.toml",
        "[rules]\ndisable = [\"generic.password\"]\n\n[allowlist]\npathz = [\"x\"]\n",
    );
    let o = trawl([
        "scan",
        t.path().join("app").to_str().unwrap(),
        "--config",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("bad.toml:5") && err.contains("pathz"), "{err}");
    let bad = t.write("bad2.toml", "[rules]\ndisable = [\"no.such-rule\"]\n");
    let o = trawl([
        "scan",
        t.path().join("app").to_str().unwrap(),
        "--config",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no.such-rule"));
}

#[test]
fn fail_on_high_passes_a_scan_with_only_medium_findings() {
    let t = Tree::new();
    t.write(
        "db.py",
        format!("password = \"{}\"\n", Fake::new(304).alnum(20)),
    );
    let o = trawl(["scan", t.path().to_str().unwrap(), "-f", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["severity"] == "medium"));
    let sarif = t.path().join("out.sarif");
    let o = trawl([
        "scan",
        t.path().to_str().unwrap(),
        "--fail-on",
        "high",
        "-f",
        "sarif",
        "-o",
        sarif.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(sarif.exists(), "SARIF is written whatever the gate says");
}

#[test]
fn gitleaks_configs_bring_their_rules() {
    let t = Tree::new();
    let rules = t.write(
        "gitleaks.toml",
        r#"title = "team rules"

[extend]
useDefault = true

[[rules]]
id = "acme-api-key"
description = "Acme API key"
regex = '''(?i)acme[_-]?key\s*[:=]\s*['"]?(acme_[a-z0-9]{24})'''
secretGroup = 1
keywords = ["acme"]

[[rules]]
id = "internal-token"
description = "Internal service token"
regex = '''\b(itk-[A-Za-z0-9]{32})\b'''
entropy = 3.0
keywords = ["itk-"]
[rules.allowlist]
stopwords = ["itk-test"]
"#,
    );
    let mut f = Fake::new(305);
    let itk = format!("itk-{}", f.alnum(32));
    t.write(
        "src/app.py",
        format!("ACME_KEY = 'acme_q3x9wplm2rt7yvbn4kc8hd1j'\nTOKEN = '{itk}'\n"),
    );
    let o = trawl([
        "scan",
        t.path().join("src").to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
        "-f",
        "json",
        "--show-secrets",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("[extend] is ignored"), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut got: Vec<(String, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["secret"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "acme-api-key".to_string(),
                "acme_q3x9wplm2rt7yvbn4kc8hd1j".to_string()
            ),
            ("internal-token".to_string(), itk)
        ]
    );
    // An invalid config: exit 2, naming the file and the line.
    let bad = t.write("bad-gitleaks.toml", "[[rules]]\nid = \"x\"\ndescription = \"x\"\nregex = '''(unclosed'''\nsecretGroup = \"one\"\n");
    let o = trawl([
        "scan",
        t.path().join("src").to_str().unwrap(),
        "--rules",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("bad-gitleaks.toml") && err.contains("line 5"),
        "{err}"
    );
}
