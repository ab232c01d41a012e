//! AI artifacts made by the real libraries (`fixtures/ai/make_fixtures.py`, described by
//! `fixtures/ai/manifest.json`): every planted fake secret is found where the manifest says,
//! every unsafe import is reported with its severity, and clean artifacts produce nothing.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::util::{stderr, trawl};

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/ai"))
}

/// All locations of one scan of the fixture folder, by top-level file, with their finding.
fn scan_all() -> (BTreeMap<String, Vec<(Value, Value)>>, String) {
    let o = trawl([
        "scan",
        fixtures().to_str().unwrap(),
        "-f",
        "json",
        "--show-secrets",
        "--no-ignore",
    ]);
    let v: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    let mut by_file: BTreeMap<String, Vec<(Value, Value)>> = BTreeMap::new();
    for f in v["findings"].as_array().unwrap() {
        for l in f["locations"].as_array().unwrap() {
            let path = l["path"].as_str().unwrap();
            let top = path.split('!').next().unwrap().to_string();
            by_file.entry(top).or_default().push((f.clone(), l.clone()));
        }
    }
    (by_file, stderr(&o))
}

#[test]
fn every_planted_secret_and_unsafe_import_is_found_where_the_manifest_says() {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("manifest.json")).unwrap()).unwrap();
    let (by_file, err) = scan_all();
    let mut problems = Vec::new();
    let mut checked = 0;
    for entry in manifest["files"].as_array().unwrap() {
        let file = entry["file"].as_str().unwrap();
        let found = by_file.get(file).cloned().unwrap_or_default();
        for planted in entry["planted"].as_array().unwrap() {
            checked += 1;
            let secret = planted["secret"].as_str().unwrap();
            let w = &planted["where"];
            let hit = found.iter().find(|(f, _)| f["secret"] == secret);
            let Some((f, l)) = hit else {
                problems.push(format!("{file}: secret {} not found", &secret[..8]));
                continue;
            };
            if let Some(hint) = planted["rule_id_hint"].as_str() {
                if f["rule"] != hint {
                    problems.push(format!("{file}: reported as {} not {hint}", f["rule"]));
                }
            }
            // Member chains: the manifest names them from the file's own name.
            if let Some(member) = w["member"].as_str() {
                let inner = member.split_once('!').map_or(member, |(_, m)| m);
                if l["member"].as_str() != Some(inner) {
                    problems.push(format!(
                        "{file}: member {:?}, expected {inner}",
                        l["member"]
                    ));
                }
            }
            // A notebook that is not valid JSON is scanned as text: lines, but no cells.
            let as_text = entry["format"]
                .as_str()
                .unwrap_or("")
                .contains("invalid JSON");
            for (k, field) in [("cell", "cell"), ("output", "output")] {
                if as_text {
                    continue;
                }
                if w[k] != l[field] && !(w[k].is_null() && l[field].is_null()) {
                    problems.push(format!("{file}: {k} {:?}, expected {:?}", l[field], w[k]));
                }
            }
            let line = if w["ipynb_line"].is_null() {
                &w["line"]
            } else {
                &w["ipynb_line"]
            };
            let has_lines =
                file.ends_with(".ipynb") || !w["member"].is_null() || file.ends_with(".md");
            if has_lines && !line.is_null() && &l["line"] != line {
                problems.push(format!("{file}: line {:?}, expected {line:?}", l["line"]));
            }
            // Keys, records and rows, where the manifest names them.
            for k in ["key", "record", "row"] {
                if !w[k].is_null() && w[k] != l[k] {
                    problems.push(format!("{file}: {k} {:?}, expected {:?}", l[k], w[k]));
                }
            }
            if w["pickle"] == true && !l["line"].is_null() {
                problems.push(format!(
                    "{file}: a pickle constant has no line, got {:?}",
                    l["line"]
                ));
            }
        }
        for unsafe_import in entry["expect_unsafe"].as_array().unwrap() {
            checked += 1;
            let import = unsafe_import["import"].as_str().unwrap();
            let want = unsafe_import["severity"].as_str().unwrap();
            let hit = found
                .iter()
                .find(|(f, _)| f["category"] == "unsafe-code" && f["secret"] == import);
            match hit {
                None => problems.push(format!("{file}: unsafe import {import} not reported")),
                Some((f, _)) => {
                    let level = match f["severity"].as_str().unwrap() {
                        "critical" | "high" => "error",
                        "medium" => "warning",
                        _ => "note",
                    };
                    if level != want {
                        problems.push(format!("{file}: {import} at {level}, expected {want}"));
                    }
                }
            }
        }
        if entry["expect_clean"] == true {
            checked += 1;
        }
        if entry["expect_quiet"] == true {
            checked += 1;
            if err.lines().any(|line| line.contains(file)) {
                problems.push(format!("{file}: expected no warning"));
            }
        }
        if entry["expect_clean"] == true && !found.is_empty() {
            let what: Vec<String> = found
                .iter()
                .map(|(f, l)| format!("{} at {}", f["rule"], l["path"]))
                .collect();
            problems.push(format!("{file}: expected clean, got {what:?}"));
        }
    }
    assert!(checked >= 50, "only {checked} expectations");
    assert!(
        problems.is_empty(),
        "{} problems:\n{}\nstderr:\n{err}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn benign_checkpoints_raise_no_error_severity_finding() {
    let (by_file, _) = scan_all();
    for file in [
        "torch/clean_state_dict.pt",
        "torch/legacy.pt",
        "pickle/benign.pkl",
        "numpy/benign.joblib",
        "numpy/clean_float.npy",
    ] {
        for (f, l) in by_file.get(file).into_iter().flatten() {
            assert!(
                !matches!(f["severity"].as_str(), Some("critical" | "high")),
                "{file}: {f} at {l}"
            );
        }
    }
}

#[test]
fn hostile_artifacts_finish_with_warnings() {
    let (_, err) = scan_all();
    for needle in [
        "bomb.zip",
        "deep100.zip",
        "hostile_kv_count.gguf",
        "truncated.safetensors",
        "opcodes.pkl",
        "hostile_cyclic_continuation.h5",
        "hostile_truncated.h5",
        "parquet/truncated.parquet",
        "parquet/lying_footer.parquet",
        "parquet/garbled_footer.parquet",
        "parquet/corrupt_pages.parquet",
        "events.out.tfevents.bad_length_crc",
        "events.out.tfevents.lying_length",
        "bad_crc.wandb",
        "truncated.wandb",
        "savedmodel/hostile/saved_model.pb",
    ] {
        assert!(err.contains(needle), "no warning for {needle}:\n{err}");
    }
}

#[test]
fn lfs_pointers_are_counted_in_the_summary_and_not_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let pointer = std::fs::read(fixtures().join("hf/model_repo/model.safetensors")).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), &pointer).unwrap();
    // A pointer with a line added is no pointer: scanned as text, its secret found.
    let mut forged = pointer.clone();
    forged.extend_from_slice(b"HF_TOKEN=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\n");
    std::fs::write(dir.path().join("forged.bin"), &forged).unwrap();
    let o = trawl(["scan", dir.path().to_str().unwrap(), "--no-ignore"]);
    let err = stderr(&o);
    assert!(
        err.contains("1 Git LFS pointer not scanned (content stored elsewhere)"),
        "{err}"
    );
    assert!(!err.contains("warning"), "{err}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("forged.bin"), "{out}");
    assert!(!out.contains("model.safetensors"), "{out}");
}
