//! The command line: exit codes, walking, ignore files, stdin, dedup.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::util::{stderr, stdout, trawl, Fake, Tree, BIN};

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", stdout(o)))
}

fn rule_ids(v: &serde_json::Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["rule"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn exit_codes_follow_the_design() {
    let t = Tree::new();
    t.write("clean/main.py", "print('hello')\n");
    let o = trawl(["scan", t.path().join("clean").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let mut f = Fake::new(1);
    t.write("dirty/.env", format!("HF_TOKEN={}\n", f.hf_token()));
    let dirty = t.path().join("dirty");
    let o = trawl(["scan", dirty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    // --fail-on above the finding's severity (high) passes.
    let o = trawl(["scan", dirty.to_str().unwrap(), "--fail-on", "critical"]);
    assert_eq!(o.status.code(), Some(0));

    let o = trawl(["scan", t.path().join("missing").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing"));
    let o = trawl(["scan", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
    let o = trawl([
        "scan",
        "--rules",
        t.path().join("nope.toml").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn gitignore_is_respected_and_git_dirs_are_never_scanned() {
    let t = Tree::new();
    let mut f = Fake::new(2);
    t.write(".gitignore", "ignored.txt\n");
    t.write("ignored.txt", format!("HF_TOKEN={}\n", f.hf_token()));
    t.write(".git/config", format!("token={}\n", f.hf_token()));
    t.write("visible.txt", format!("HF_TOKEN={}\n", f.hf_token()));
    let root = t.path().to_str().unwrap();
    let v = json(&trawl(["scan", root, "-f", "json"]));
    let paths: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["locations"][0]["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["visible.txt"]);
    let v = json(&trawl(["scan", root, "-f", "json", "--no-ignore"]));
    assert_eq!(v["findings"].as_array().unwrap().len(), 2);
}

#[test]
fn one_secret_in_many_places_is_one_finding_with_all_locations() {
    let t = Tree::new();
    let tok = Fake::new(3).hf_token();
    t.write("a.py", format!("A = '{tok}'\n"));
    t.write("b/c.yaml", format!("x: 1\ntoken: {tok}\n"));
    t.write("b/d.env", format!("\n\nHF={tok}\n"));
    t.write("copy.py", format!("A = '{tok}'\n")); // identical content: scanned once
    let v = json(&trawl(["scan", t.path().to_str().unwrap(), "-f", "json"]));
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{v}");
    let locs: Vec<(String, u64)> = findings[0]["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["path"].as_str().unwrap().to_string(),
                l["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        locs,
        [
            ("a.py".into(), 1),
            ("b/c.yaml".into(), 2),
            ("b/d.env".into(), 3),
            ("copy.py".into(), 1)
        ]
    );
    let fps: Vec<&str> = findings[0]["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["fingerprint"].as_str().unwrap())
        .collect();
    let unique: std::collections::BTreeSet<_> = fps.iter().collect();
    assert_eq!(unique.len(), fps.len(), "location fingerprints must differ");
}

#[test]
fn stdin_is_scanned_with_a_dash() {
    let tok = Fake::new(4).hf_token();
    let mut child = Command::new(BIN)
        .args(["scan", "-", "-f", "jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("x\nHF_TOKEN={tok}\n").as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let line: serde_json::Value = serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap();
    assert_eq!(line["locations"][0]["path"], "<stdin>");
    assert_eq!(line["locations"][0]["line"], 2);
}

#[test]
fn output_file_and_max_file_size() {
    let t = Tree::new();
    let mut f = Fake::new(5);
    t.write("small.txt", format!("HF_TOKEN={}\n", f.hf_token()));
    t.write(
        "big.txt",
        format!("{}\nHF_TOKEN={}\n", "a".repeat(20_000), f.hf_token()),
    );
    let out = t.path().join("report.json");
    let o = trawl([
        "scan",
        t.path().to_str().unwrap(),
        "-f",
        "json",
        "-o",
        out.to_str().unwrap(),
        "--max-file-size",
        "10K",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(stderr(&o).contains("big.txt"), "{}", stderr(&o));
    assert!(stderr(&o).contains("maximum file size"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(rule_ids(&v), ["huggingface.user-token"]);
}

#[test]
fn binary_files_are_skipped() {
    let t = Tree::new();
    let mut data = vec![0u8, 1, 2, 3];
    data.extend_from_slice(format!("HF_TOKEN={}\n", Fake::new(6).hf_token()).as_bytes());
    t.write("blob.bin", data);
    let o = trawl(["scan", t.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("1 binary file skipped"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn threads_flag_gives_the_same_findings() {
    let t = Tree::new();
    let mut f = Fake::new(8);
    for i in 0..50 {
        t.write(
            &format!("d{}/f{i}.txt", i % 7),
            format!("n={i}\nHF_TOKEN={}\n", f.hf_token()),
        );
    }
    let one = json(&trawl([
        "scan",
        t.path().to_str().unwrap(),
        "-f",
        "json",
        "-j",
        "1",
    ]));
    let four = json(&trawl([
        "scan",
        t.path().to_str().unwrap(),
        "-f",
        "json",
        "-j",
        "4",
    ]));
    assert_eq!(one["findings"].as_array().unwrap().len(), 50);
    assert_eq!(one["findings"], four["findings"]);
}
