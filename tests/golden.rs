//! Golden reports: a fixed project (`trawl scan`) and a fixed history (`trawl git`) in every
//! format, compared with the files under `tests/golden/`, so any change of output shows up in
//! review. Only what legitimately varies is normalised: the temporary root (`<ROOT>`, also
//! percent-encoded in SARIF URIs) and the version (`<VERSION>`).
//!
//! After an intended change of output, rewrite the files and review their diff:
//! `TRAWL_BLESS=1 cargo test --test main golden`.

use std::path::{Path, PathBuf};

use crate::output::validate_sarif;
use crate::util::{git_cmd, stderr, stdout, trawl, Tree};

const FORMATS: [(&str, &str); 4] = [
    ("text", "txt"),
    ("json", "json"),
    ("jsonl", "jsonl"),
    ("sarif", "sarif"),
];

// Fixed, random-looking fakes (never real credentials), split so this file is not a leak itself.
/// In `app.py` and `config/settings.toml`: one finding, two locations.
const HF_SHARED: &str = concat!("hf_", "csrmrPJCOtnMMgCuWmIZOLsdOcVxkIXbTk");
/// On the line after `HF_SHARED` in `app.py`.
const OPENAI_APP: &str = concat!(
    "sk-",
    "A7HrXe0RSK88j4S4PVu8",
    "T3Blbk",
    "FJpzULqJXArzP5JIidmBSn"
);
/// After non-ASCII text (an emoji and umlauts), so UTF-16, character and byte columns differ.
const GITHUB_NOTES: &str = concat!("ghp_", "kvRS6VQQlKnHN5dQ3iiIoRE3eOtRz80bKykg");
/// In a notebook's code cell.
const HF_NOTEBOOK: &str = concat!("hf_", "adAtfqBmePPBeYgijZnCHXyaqZhiIldMGa");
/// In a zip member.
const HF_ZIP: &str = concat!("hf_", "exLeFuKcLqcyhMGAuGkbMBOvKGTSdGeoED");
/// History: added in the first commit, still at HEAD.
const HF_KEPT: &str = concat!("hf_", "cKyiCEOVVIkqUzlkZeEXWjagCkUWDDKvpL");
/// History: added in one commit, removed in the next.
const HF_REMOVED: &str = concat!("hf_", "WHAMhYQNDbpuczMvwOFtedVQKPcDFxIqCr");
/// History: added on a branch that was never merged.
const OPENAI_BRANCH: &str = concat!(
    "sk-",
    "OccXkR1ViwC7c6qnjYmS",
    "T3Blbk",
    "FJ4H7HsE4VG2v76A1pkVSl"
);

fn project() -> Tree {
    let t = Tree::new();
    t.write(
        "app.py",
        format!(
            "import os\n\nHF_TOKEN = \"{HF_SHARED}\"\nclient = OpenAI(api_key=\"{OPENAI_APP}\")\n"
        ),
    );
    t.write(
        "config/settings.toml",
        format!("[hub]\nendpoint = \"https://hub.example.invalid\"\ntoken = \"{HF_SHARED}\"\n"),
    );
    t.write(
        "docs/notes.md",
        format!("# Übergabe\n\n🔑 Schlüssel für München: {GITHUB_NOTES}\n"),
    );
    t.write(
        "notebooks/explore.ipynb",
        format!(
            r##"{{
 "cells": [
  {{
   "cell_type": "markdown",
   "metadata": {{}},
   "source": ["# Explore\n"]
  }},
  {{
   "cell_type": "code",
   "execution_count": 1,
   "metadata": {{}},
   "outputs": [],
   "source": ["from huggingface_hub import login\n", "login(token=\"{HF_NOTEBOOK}\")\n"]
  }}
 ],
 "metadata": {{}},
 "nbformat": 4,
 "nbformat_minor": 5
}}
"##
        ),
    );
    t.write(
        "models/bundle.zip",
        zip_bytes(&[
            ("README.txt", b"weights and settings\n".as_slice()),
            (
                "cfg/secrets.env",
                format!("# deploy\nHF_TOKEN={HF_ZIP}\n").as_bytes(),
            ),
        ]),
    );
    t
}

fn zip_bytes(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default());
    for (name, data) in entries {
        w.start_file(*name, opts).expect("zip entry");
        w.write_all(data).expect("zip write");
    }
    w.finish().expect("zip finish").into_inner()
}

/// Runs git in `dir` on a fixed day of January 2024, with `env` on top (identities are fixed by
/// `git_cmd`), so commit ids are the same on every run.
fn git_on(dir: &Path, day: u32, args: &[&str], env: &[(&str, &str)]) {
    let date = format!("2024-01-{day:02}T12:00:00+00:00");
    let mut all = vec![
        ("GIT_AUTHOR_DATE", date.as_str()),
        ("GIT_COMMITTER_DATE", date.as_str()),
    ];
    all.extend_from_slice(env);
    let o = git_cmd(dir, args, &all);
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn history() -> Tree {
    let t = Tree::new();
    let d = t.path();
    git_on(d, 1, &["init", "-q", "-b", "main"], &[]);
    t.write("README.md", "# demo\n");
    t.write("app.py", format!("HF = \"{HF_KEPT}\"\n"));
    git_on(d, 1, &["add", "README.md", "app.py"], &[]);
    git_on(d, 1, &["commit", "-q", "-m", "Initial import"], &[]);
    t.write(".env", format!("DEBUG=1\nHF_TOKEN={HF_REMOVED}\n"));
    git_on(d, 2, &["add", ".env"], &[]);
    git_on(d, 2, &["commit", "-q", "-m", "Add local settings"], &[]);
    t.write(".env", "DEBUG=1\nHF_TOKEN=\n");
    git_on(d, 3, &["commit", "-q", "-am", "Remove the token"], &[]);
    git_on(d, 4, &["checkout", "-q", "-b", "feature"], &[]);
    t.write(
        "client.py",
        format!("OPENAI_API_KEY = \"{OPENAI_BRANCH}\"\n"),
    );
    git_on(d, 4, &["add", "client.py"], &[]);
    git_on(
        d,
        4,
        &["commit", "-q", "-m", "Try the OpenAI client"],
        &[
            ("GIT_AUTHOR_NAME", "Bea Brancher"),
            ("GIT_AUTHOR_EMAIL", "bea@example.invalid"),
        ],
    );
    git_on(d, 5, &["checkout", "-q", "main"], &[]);
    t
}

/// Replaces the temporary root (plain and as a percent-encoded `file://` URI) and the version.
fn normalise(report: &str, root: &Path) -> String {
    let mut roots: Vec<String> = vec![root.display().to_string()];
    if let Ok(canonical) = root.canonicalize() {
        roots.push(canonical.display().to_string());
    }
    let mut out = report.to_string();
    for r in &roots {
        out = out
            .replace(
                &format!("file://{}", trawl::report::uri_encode(r)),
                "file://<ROOT>",
            )
            .replace(r.as_str(), "<ROOT>");
    }
    out.replace(env!("CARGO_PKG_VERSION"), "<VERSION>")
}

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Writes the golden file under `TRAWL_BLESS=1`; otherwise compares and fails with the first
/// differing lines.
fn check_golden(name: &str, actual: &str) -> Result<(), String> {
    let path = golden_path(name);
    if std::env::var_os("TRAWL_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("mkdir golden");
        std::fs::write(&path, actual).expect("write golden");
        return Ok(());
    }
    let expected = std::fs::read_to_string(&path).map_err(|e| {
        format!("{name}: {e} (run `TRAWL_BLESS=1 cargo test --test main golden` to create it)")
    })?;
    if expected == actual {
        return Ok(());
    }
    let (exp, act): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let Some(first) = (0..exp.len().max(act.len())).find(|&i| exp.get(i) != act.get(i)) else {
        return Err(format!(
            "{name} differs from the golden file in line endings only"
        ));
    };
    let mut msg = format!(
        "{name} differs from the golden file ({} lines expected, {} actual), from line {}:\n",
        exp.len(),
        act.len(),
        first + 1
    );
    for i in first..(first + 8).min(exp.len().max(act.len())) {
        if exp.get(i) != act.get(i) {
            msg.push_str(&format!(
                "{:>4} - {}\n",
                i + 1,
                exp.get(i).unwrap_or(&"<end>")
            ));
            msg.push_str(&format!(
                "{:>4} + {}\n",
                i + 1,
                act.get(i).unwrap_or(&"<end>")
            ));
        } else {
            msg.push_str(&format!("{:>4}   {}\n", i + 1, exp[i]));
        }
    }
    Err(msg)
}

/// Runs `command` on `root` in every format and checks each report against its golden file.
fn check_all_formats(command: &str, root: &Path, stem: &str, scratch: &Path) {
    let mut failures = Vec::new();
    for (format, ext) in FORMATS {
        let mut args = vec![
            command,
            root.to_str().expect("utf-8 temp path"),
            "-f",
            format,
        ];
        if command == "scan" {
            args.extend(["--color", "never"]);
        }
        let o = trawl(&args);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{command} -f {format}: {}",
            stderr(&o)
        );
        let report = normalise(&stdout(&o), root);
        if format == "sarif" {
            let copy = scratch.join(format!("{stem}.sarif"));
            std::fs::write(&copy, &report).expect("write SARIF copy");
            validate_sarif(&copy);
        }
        if let Err(e) = check_golden(&format!("{stem}.{ext}"), &report) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn project_reports_match_the_golden_files() {
    let t = project();
    let scratch = Tree::new();
    check_all_formats("scan", t.path(), "project", scratch.path());
}

#[test]
fn history_reports_match_the_golden_files() {
    let t = history();
    let scratch = Tree::new();
    check_all_formats("git", t.path(), "history", scratch.path());
}
