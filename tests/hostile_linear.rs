//! Issue 9: notebooks of hostile shapes (millions of tiny strings, one string of escapes, one
//! long string) decode in memory near the file's size.
//!
//! The linear-time shapes (front matter with thousands of secrets, a run of key ids joined by
//! `/`, a line of many secrets, a one-line notebook) are bounded in `content::tests::linear_work`
//! as counts of bytes read (`scan::Work`), not wall time.

use crate::util::{trawl_measured, Tree};

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

/// Scans an ordinary notebook, then `hostile` (about as large): the hostile one's peak is at
/// most half its size above the ordinary one's (whose peak is about the file and its text).
/// A string decoded into a buffer and then copied into the text would be a whole size above.
fn assert_notebook_memory(hostile: &str) {
    let line = format!("\"{}\\n\"", "x".repeat(58));
    let ordinary = notebook(&vec![line; hostile.len() / 64]);
    let (clean, tree) = (Tree::new(), Tree::new());
    clean.write("nb.ipynb", &ordinary);
    tree.write("nb.ipynb", hostile);
    let (clean_kb, hostile_kb) = (peak_kb(&clean), peak_kb(&tree));
    let file_kb = (hostile.len() / 1024) as i64;
    assert!(
        hostile_kb <= clean_kb + file_kb / 2,
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

#[test]
fn a_notebook_of_one_long_string_decodes_near_its_size() {
    // The shape of a 200 MB one-string notebook, at 16 MB.
    assert_notebook_memory(&notebook(&[format!("\"{}\"", "x".repeat(16 << 20))]));
}

#[test]
fn a_notebook_string_of_text_and_escapes_decodes_near_its_size() {
    let piece = format!("{}\\n\\u00e9{}\\\"", "x".repeat(60), "y".repeat(30));
    assert_notebook_memory(&notebook(&[format!(
        "\"{}\"",
        piece.repeat((16 << 20) / piece.len())
    )]));
}
