//! `trawl git --state FILE`: the state store makes a re-run read nothing new, scans known
//! blobs with added or changed rules only, forgets the findings of removed rules, and never
//! holds a secret.

use std::path::Path;

use serde_json::Value;

use crate::util::{git_ok, stderr, trawl, Fake, Tree};

/// A repository with a Hugging Face token, an `ACME-` token (found only by the extra rule of
/// [`acme_rules`]) and some clean files over three commits; returns the two secrets.
fn repo(t: &Tree, fake: &mut Fake) -> (String, String) {
    let dir = t.path().join("repo");
    std::fs::create_dir_all(&dir).unwrap();
    git_ok(&dir, &["init", "-q", "-b", "main"]);
    let hf = fake.hf_token();
    let acme = format!("ACME-{}", fake.alnum(32));
    let commit = |files: &[(&str, String)], msg: &str| {
        for (name, text) in files {
            t.write(&format!("repo/{name}"), text);
        }
        git_ok(&dir, &["add", "-A"]);
        git_ok(&dir, &["commit", "-qm", msg]);
    };
    commit(
        &[
            ("app.py", format!("HF = \"{hf}\"\n")),
            ("README.md", "# demo\n".to_string()),
        ],
        "one",
    );
    commit(&[("deploy.sh", format!("export ACME_KEY={acme}\n"))], "two");
    commit(
        &[("app.py", "HF = os.environ['HF']\n".to_string())],
        "three",
    );
    (hf, acme)
}

fn acme_rules(t: &Tree, regex: &str) -> String {
    t.write(
        "acme.toml",
        format!(
            "[[rules]]\nid = \"acme.key\"\nname = \"ACME key\"\ncategory = \"cloud\"\n\
             severity = \"high\"\nregex = '''{regex}'''\nkeywords = [\"acme-\"]\n"
        ),
    )
    .display()
    .to_string()
}

/// Runs `trawl git` in the repository with `args`; returns the JSON report and stderr.
fn run(t: &Tree, args: &[&str]) -> (Value, String) {
    let dir = t.path().join("repo");
    let mut all = vec!["git", dir.to_str().unwrap(), "-f", "json", "--no-progress"];
    all.extend_from_slice(args);
    let o = trawl(&all);
    let err = stderr(&o);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{err}");
    (serde_json::from_slice(&o.stdout).expect("JSON report"), err)
}

fn rules_found(v: &Value) -> Vec<String> {
    let mut r: Vec<String> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .collect();
    r.sort();
    r
}

fn state_bytes(path: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for ext in ["", "-journal", "-wal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(ext);
        all.extend(std::fs::read(&p).unwrap_or_default());
    }
    all
}

#[test]
fn a_rerun_reads_nothing_a_new_rule_scans_known_blobs_alone_and_a_removed_one_is_forgotten() {
    let t = Tree::new();
    let (hf, acme) = repo(&t, &mut Fake::new(13));
    let state = t.path().join("state.db");
    let st = state.to_str().unwrap();

    // First run: every blob scanned, results stored.
    let (first, err) = run(&t, &["--state", st]);
    assert!(err.contains("scanned 4 blobs"), "{err}");
    assert_eq!(rules_found(&first), ["huggingface.user-token"], "{first}");
    let (plain, _) = run(&t, &[]);
    assert_eq!(first, plain, "the store changed the report");

    // Unchanged: nothing scanned, the same report.
    let (second, err) = run(&t, &["--state", st]);
    assert!(
        err.contains("scanned 0 blobs") && err.contains("4 blobs known from the state store"),
        "{err}"
    );
    assert_eq!(second, first);

    // A rule added: each known blob scanned with that rule only; the report equals a full
    // scan's with the rule.
    let rules = acme_rules(&t, r"\b(?P<secret>ACME-[A-Za-z0-9]{32})\b");
    let (third, err) = run(&t, &["--state", st, "--rules", &rules]);
    assert!(
        err.contains("scanned 4 blobs") && err.contains("(4 with new or changed rules only)"),
        "{err}"
    );
    assert_eq!(
        rules_found(&third),
        ["acme.key", "huggingface.user-token"],
        "{third}"
    );
    let (full, _) = run(&t, &["--rules", &rules]);
    assert_eq!(third, full, "a rule-delta scan differs from a full scan");
    let (fourth, err) = run(&t, &["--state", st, "--rules", &rules]);
    assert!(err.contains("scanned 0 blobs"), "{err}");
    assert_eq!(fourth, full);

    // The rule changed (a stricter regex that no longer matches): scanned again with it
    // alone, its finding gone.
    let stricter = acme_rules(&t, r"\b(?P<secret>ACME-[0-9]{32})\b");
    let (fifth, err) = run(&t, &["--state", st, "--rules", &stricter]);
    assert!(err.contains("(4 with new or changed rules only)"), "{err}");
    assert_eq!(rules_found(&fifth), ["huggingface.user-token"], "{fifth}");

    // The rule removed: nothing scanned, its findings forgotten.
    let (sixth, err) = run(&t, &["--state", st]);
    assert!(err.contains("scanned 0 blobs"), "{err}");
    assert_eq!(sixth, first);

    // Path allowlists and baselines apply at report time: no re-scan.
    t.write("repo/trawl.toml", "[allowlist]\npaths = [\"app.py\"]\n");
    let (seventh, err) = run(&t, &["--state", st]);
    assert!(err.contains("scanned 0 blobs"), "{err}");
    assert_eq!(rules_found(&seventh), Vec::<String>::new(), "{seventh}");

    // Never a secret in the store.
    let bytes = state_bytes(&state);
    for secret in [&hf, &acme] {
        let tail = &secret.as_bytes()[6..];
        assert!(
            !bytes.windows(tail.len()).any(|w| w == tail),
            "a secret is in the state store"
        );
    }
}

#[test]
fn a_state_file_that_is_not_a_store_is_an_error_not_a_clean_scan() {
    let t = Tree::new();
    repo(&t, &mut Fake::new(14));
    let bogus = t.write("bogus.db", "not a database at all, just text\n".repeat(100));
    let dir = t.path().join("repo");
    let o = trawl([
        "git",
        dir.to_str().unwrap(),
        "--state",
        bogus.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("state store"), "{err}");
    assert!(
        !err.contains("just text"),
        "the error quotes the file: {err}"
    );
}
