//! Issue 9: content shaped to make per-finding work grow with the input (a walk back over
//! everything before each finding) runs in time linear in its size, and notebooks of tiny
//! strings decode in memory near the file's size.
//!
//! Each timing test scans an adversarial tree and the same secrets without the adversarial
//! shape in the same test, and bounds the ratio of the two: the old quadratic code was 30× or
//! more slower on these inputs, the linear code about as fast.

use std::path::Path;
use std::time::Instant;

use crate::util::{trawl, trawl_measured, Fake, Tree};

/// Slowdown allowed against the same secrets in an ordinary shape.
const SLOWDOWN: f64 = 8.0;

/// Scans `dir` and returns the wall time in seconds and the number of locations reported.
fn timed_scan(dir: &Path) -> (f64, usize) {
    let start = Instant::now();
    let out = trawl([
        "scan".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        dir.as_os_str(),
    ]);
    let secs = start.elapsed().as_secs_f64();
    let json = String::from_utf8_lossy(&out.stdout);
    (secs, json.matches("\"offset\":").count())
}

/// Scans the `clean` and `hostile` trees: both report the same locations, nearly all of the
/// `planted` secrets (a random one can look like a placeholder), and the hostile one takes no
/// more than [`SLOWDOWN`] times as long (plus a second for a loaded machine).
fn assert_linear(clean: &Tree, hostile: &Tree, planted: usize) {
    let (clean_secs, clean_found) = timed_scan(clean.path());
    let (hostile_secs, hostile_found) = timed_scan(hostile.path());
    assert!(
        clean_found > planted * 99 / 100,
        "{clean_found} of {planted}"
    );
    assert_eq!(hostile_found, clean_found);
    assert!(
        hostile_secs <= clean_secs * SLOWDOWN + 1.0,
        "{hostile_secs:.2} s against {clean_secs:.2} s for the same secrets in an ordinary shape"
    );
}

#[test]
fn front_matter_with_thousands_of_secrets_is_walked_once() {
    let mut fake = Fake::new(91);
    let lines: Vec<String> = (0..8_000)
        .map(|i| format!("  key{i}: {}", fake.hf_token()))
        .collect();
    let lines = lines.join("\n");
    let (clean, hostile) = (Tree::new(), Tree::new());
    clean.write("README.md", format!("# card\nsecrets:\n{lines}\n"));
    hostile.write(
        "README.md",
        format!("---\nsecrets:\n{lines}\n---\n# card\n"),
    );
    assert_linear(&clean, &hostile, 8_000);
}

/// `n` AWS access key ids.
fn aws_key_ids(seed: u64, n: usize) -> Vec<String> {
    let mut fake = Fake::new(seed);
    (0..n)
        .map(|_| {
            format!(
                "AKIA{}",
                fake.string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
            )
        })
        .collect()
}

#[test]
fn a_run_of_key_ids_joined_by_slashes_is_walked_back_over_once() {
    // `/` is a base64 byte: the whole line is one run that a data: URI check walks back over.
    let ids = aws_key_ids(92, 8_000);
    let (clean, hostile) = (Tree::new(), Tree::new());
    let lines: Vec<String> = ids.chunks(50).map(|c| c.join(" ")).collect();
    clean.write("keys.txt", lines.join("\n"));
    hostile.write("keys.txt", ids.join("/"));
    assert_linear(&clean, &hostile, 8_000);
}

#[test]
fn a_line_of_many_secrets_is_read_once() {
    let ids = aws_key_ids(93, 40_000);
    let (clean, hostile) = (Tree::new(), Tree::new());
    clean.write("keys.txt", ids.join("\n"));
    hostile.write("keys.txt", ids.join(" "));
    assert_linear(&clean, &hostile, 40_000);
}

/// A notebook with one code cell whose source is `strings`.
fn notebook(strings: &[String]) -> String {
    format!(
        r#"{{"nbformat": 4, "nbformat_minor": 5, "metadata": {{}}, "cells": [{{"cell_type": "code", "metadata": {{}}, "outputs": [], "source": [{}]}}]}}"#,
        strings.join(",")
    )
}

/// Peak RSS in kB of a scan of `tree`.
fn peak_kb(tree: &Tree) -> i64 {
    let (code, _, stderr, peak) =
        trawl_measured(&["scan", &tree.path().to_string_lossy()], tree.path());
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("scanned"), "{stderr}");
    peak
}

/// Scans an ordinary notebook of 4 MB, then `hostile` (about as large): the hostile one's
/// peak is at most twice its size above the ordinary one's.
fn assert_notebook_memory(hostile: &str) {
    let line = format!("\"{}\\n\"", "x".repeat(58));
    let ordinary = notebook(&vec![line; hostile.len() / 64]);
    let (clean, tree) = (Tree::new(), Tree::new());
    clean.write("nb.ipynb", &ordinary);
    tree.write("nb.ipynb", hostile);
    let (clean_kb, hostile_kb) = (peak_kb(&clean), peak_kb(&tree));
    let file_kb = (hostile.len() / 1024) as i64;
    assert!(
        hostile_kb <= clean_kb + 2 * file_kb,
        "peak {hostile_kb} kB against {clean_kb} kB for an ordinary notebook of {file_kb} kB"
    );
}

#[test]
fn a_notebook_of_tiny_strings_decodes_near_its_size() {
    // A million one-character strings.
    assert_notebook_memory(&notebook(&vec!["\"x\"".to_string(); 1_000_000]));
}

#[test]
fn a_notebook_string_of_escapes_decodes_near_its_size() {
    // Two million `\n` escapes in one string.
    assert_notebook_memory(&notebook(&[format!("\"{}\"", "\\n".repeat(2_000_000))]));
}
