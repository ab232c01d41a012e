//! Report formats: text, JSON, JSON lines, SARIF (validated by the official validator), and
//! redaction in every one of them.

use std::path::Path;
use std::process::Command;

use crate::util::{stderr, stdout, trawl, write_rule_examples, Tree};

/// Scans a tree holding every rule's examples plus the committed fixture project.
fn fixture_tree() -> Tree {
    let t = Tree::new();
    write_rule_examples(&t);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/project");
    copy_dir(&fixtures, &t.path().join("project"));
    t
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn secrets_in(tree: &Tree) -> Vec<String> {
    let o = trawl([
        "scan",
        tree.path().to_str().unwrap(),
        "-f",
        "json",
        "--show-secrets",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["secret"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn no_format_prints_a_secret_unless_asked() {
    let t = fixture_tree();
    let secrets = secrets_in(&t);
    assert!(
        secrets.len() >= 120,
        "only {} secrets found in the fixture tree",
        secrets.len()
    );
    for format in ["text", "json", "jsonl", "sarif"] {
        let o = trawl([
            "scan",
            t.path().to_str().unwrap(),
            "-f",
            format,
            "--color",
            "always",
        ]);
        assert_eq!(o.status.code(), Some(1), "{format}: {}", stderr(&o));
        let out = stdout(&o);
        for s in &secrets {
            // The secret itself, each long line of a multi-line secret, and the middle of a
            // long one (the redacted form keeps a 4-byte prefix).
            let mut probes: Vec<&str> = s
                .lines()
                .filter(|l| l.len() >= 12 && !l.starts_with("-----"))
                .collect();
            if s.len() > 24 && s.is_ascii() {
                probes.push(&s[4..s.len() - 4]);
            } else {
                probes.push(s);
            }
            for p in probes {
                assert!(!out.contains(p), "{format} output contains a secret: {s}");
            }
        }
    }
    // With --show-secrets they are all there.
    let o = trawl([
        "scan",
        t.path().to_str().unwrap(),
        "-f",
        "text",
        "--show-secrets",
        "--color",
        "never",
    ]);
    let shown = stdout(&o);
    for s in &secrets {
        let first = s.lines().next().unwrap_or(s);
        assert!(shown.contains(first), "text with --show-secrets hides {s}");
    }
}

#[test]
fn json_and_jsonl_carry_the_finding_fields() {
    let t = fixture_tree();
    let root = t.path().to_str().unwrap();
    let o = trawl(["scan", root, "-f", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = &v["findings"][0];
    for k in [
        "rule",
        "name",
        "category",
        "severity",
        "secret",
        "fingerprint",
        "locations",
    ] {
        assert!(!f[k].is_null(), "missing {k}");
    }
    for k in [
        "path",
        "line",
        "column",
        "end_line",
        "end_column",
        "snippet",
        "fingerprint",
    ] {
        assert!(!f["locations"][0][k].is_null(), "missing location {k}");
    }
    let o = trawl(["scan", root, "-f", "jsonl"]);
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), v["findings"].as_array().unwrap().len());
}

#[test]
fn text_output_reads_at_a_glance() {
    let t = fixture_tree();
    let o = trawl([
        "scan",
        t.path().join("project").to_str().unwrap(),
        "--color",
        "never",
    ]);
    let out = stdout(&o);
    assert!(out.contains("huggingface.user-token"), "{out}");
    assert!(out.contains("at notebooks/settings.py:"), "{out}");
    assert!(!out.contains("\x1b["), "no colour when asked");
    let o = trawl([
        "scan",
        t.path().join("project").to_str().unwrap(),
        "--color",
        "always",
    ]);
    assert!(stdout(&o).contains("\x1b["));
}

fn validator() -> std::path::PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/node_modules/.bin/sarif-multitool");
    assert!(
        p.exists(),
        "the SARIF validator is not installed: run scripts/install-test-tools.sh (scripts/test does)"
    );
    p
}

#[test]
fn sarif_passes_the_official_validator() {
    let t = fixture_tree();
    let sarif = t.path().join("out.sarif");
    let o = trawl([
        "scan",
        t.path().to_str().unwrap(),
        "-f",
        "sarif",
        "-o",
        sarif.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&sarif).unwrap()).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    let results = run["results"].as_array().unwrap();
    assert!(results.len() >= 120);
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    for r in results {
        let idx = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[idx]["id"], r["ruleId"]);
        assert!(r["partialFingerprints"]["secretFingerprint/v1"].is_string());
        assert!(r["partialFingerprints"]["locationFingerprint/v1"].is_string());
    }
    validate_sarif(&sarif);
}

/// Runs the official SARIF validator on a file; fails the test on any error it reports.
pub fn validate_sarif(sarif: &Path) {
    let report = sarif.with_extension("validation.sarif");
    let o = Command::new(validator())
        .args([
            "validate",
            sarif.to_str().unwrap(),
            "-o",
            report.to_str().unwrap(),
        ])
        .output()
        .expect("validator runs");
    let text = format!("{}{}", stdout(&o), stderr(&o));
    assert!(o.status.success(), "validator failed: {text}");
    assert!(
        !text.contains(": error "),
        "SARIF validation errors:\n{text}"
    );
    assert!(text.contains("Analysis completed successfully"), "{text}");
}
