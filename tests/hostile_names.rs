//! Names are input too: terminal escape sequences in file names, snippets and commit metadata
//! never reach a terminal as they are.

use crate::util::{git_ok, stderr, stdout, trawl, Fake, Tree};

/// Clears the screen, sets the window title, and turns on concealed text.
const ESCAPES: &str = "\x1b[2J\x1b]0;owned\x07\x1b[8m";

#[test]
fn escape_sequences_in_names_snippets_and_authors_are_escaped_in_text_and_stderr() {
    let t = Tree::new();
    let mut f = Fake::new(91);
    // In a file name, in the snippet next to a secret, and in a file that cannot be read.
    t.write(
        &format!("cfg{ESCAPES}.env"),
        format!("HF_TOKEN={} # {ESCAPES}\n", f.hf_token()),
    );
    git_ok(t.path(), &["init", "-q", "-b", "main"]);
    git_ok(t.path(), &["add", "-A"]);
    git_ok(
        t.path(),
        &[
            "-c",
            &format!("user.name=Eve{ESCAPES}"),
            "-c",
            "user.email=eve@example.invalid",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            "x",
        ],
    );
    let dir = t.path().to_str().unwrap();
    for args in [
        vec!["scan", dir, "--color", "never"],
        vec!["git", dir, "--color", "never"],
    ] {
        let o = trawl(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        let (out, err) = (stdout(&o), stderr(&o));
        assert!(
            !out.contains('\x1b') && !out.contains('\x07'),
            "{args:?}: {out:?}"
        );
        assert!(
            !err.contains('\x1b') && !err.contains('\x07'),
            "{args:?}: {err:?}"
        );
        assert!(
            out.contains("\\u{1b}"),
            "{args:?}: escaped, not dropped: {out:?}"
        );
    }
    // A warning about a name with escapes is escaped too.
    let o = trawl(["scan", dir, &format!("{dir}/missing{ESCAPES}")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!stderr(&o).contains('\x1b'), "{:?}", stderr(&o));
    assert!(stderr(&o).contains("missing\\u{1b}"), "{:?}", stderr(&o));
}

/// A safetensors file whose metadata has `key` (with a harmless value).
fn safetensors_with_key(key: &str) -> Vec<u8> {
    let header = format!(
        r#"{{"__metadata__": {{"{key}": "1", "format": "pt"}}, "w": {{"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}}}"#
    );
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&[0; 4]);
    out
}

/// Secrets that are names: a directory, a file, zip and tar members, a metadata key; and one
/// in a file name that a warning mentions (the file is over the size limit).
fn tree_of_secret_names(f: &mut Fake) -> (Tree, Vec<String>) {
    let t = Tree::new();
    let tokens: Vec<String> = (0..6).map(|_| f.hf_token()).collect();
    t.write(&format!("{}/notes.txt", tokens[0]), "nothing secret here\n");
    t.write(&format!("deploy/{}", tokens[1]), "nothing secret here\n");
    t.write(
        "model.zip",
        crate::content::zip_bytes(&[(&format!("w/{}/a.txt", tokens[2]), b"plain\n")]),
    );
    t.write(
        "model.tar",
        crate::content::tar_bytes(&format!("{}.txt", tokens[3]), b"plain\n"),
    );
    t.write("model.safetensors", safetensors_with_key(&tokens[4]));
    t.write(&format!("big/{}", tokens[5]), "x".repeat(8192));
    (t, tokens)
}

#[test]
fn secrets_in_names_are_findings_located_at_the_name_and_redacted_everywhere() {
    let mut f = Fake::new(93);
    let (t, tokens) = tree_of_secret_names(&mut f);
    let dir = t.path().to_str().unwrap();
    let expect = [
        ("path", 0),
        ("path", 1),
        ("member", 2),
        ("member", 3),
        ("key", 4),
        ("path", 5),
    ];
    for format in ["text", "json", "jsonl", "sarif"] {
        let o = trawl(["scan", dir, "--format", format, "--max-file-size", "3K"]);
        assert_eq!(o.status.code(), Some(1), "{format}: {}", stderr(&o));
        let (out, err) = (stdout(&o), stderr(&o));
        for tok in &tokens {
            assert!(
                !out.contains(tok.as_str()),
                "{format}: {tok} in clear: {out}"
            );
            assert!(
                !err.contains(tok.as_str()),
                "{format}: {tok} on stderr: {err}"
            );
        }
        assert!(err.contains("over") || err.contains("larger"), "{err}");
    }
    let o = trawl(["scan", dir, "--format", "json", "--show-secrets"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for (kind, i) in expect {
        let finding = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["secret"] == tokens[i].as_str())
            .unwrap_or_else(|| panic!("token {i} ({kind}) not reported: {v}"));
        let loc = &finding["locations"][0];
        assert_eq!(loc["in_name"], kind, "{loc}");
        assert!(loc["line"].is_null(), "{loc}");
    }
    // The same names in history: found, attributed to the commit, never printed.
    git_ok(t.path(), &["init", "-q", "-b", "main"]);
    git_ok(t.path(), &["add", "-A"]);
    git_ok(t.path(), &["commit", "-q", "-m", "names"]);
    let o = trawl(["git", dir, "--format", "json", "--max-file-size", "3K"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    for tok in &tokens {
        assert!(!out.contains(tok.as_str()) && !stderr(&o).contains(tok.as_str()));
    }
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let in_names = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["locations"].as_array().unwrap().iter())
        .filter(|l| l["in_name"].is_string() && l["commit"].is_string())
        .count();
    assert_eq!(in_names, 6, "{v}");
}

#[cfg(unix)]
#[test]
fn names_that_differ_only_in_invalid_utf8_stay_two_places() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let t = Tree::new();
    let token = Fake::new(94).hf_token();
    for byte in [0xfe_u8, 0xff] {
        let name = [b'a', byte, b'.', b'e', b'n', b'v'];
        let path = t.path().join(OsStr::from_bytes(&name));
        std::fs::write(path, format!("HF_TOKEN={token}\n")).unwrap();
    }
    let dir = t.path().to_str().unwrap();
    let check = |o: std::process::Output| {
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let locs = v["findings"][0]["locations"].as_array().unwrap().clone();
        let paths: Vec<&str> = locs.iter().map(|l| l["path"].as_str().unwrap()).collect();
        assert_eq!(paths, ["a\\xFE.env", "a\\xFF.env"], "{v}");
        assert_ne!(locs[0]["fingerprint"], locs[1]["fingerprint"]);
    };
    check(trawl(["scan", dir, "--format", "json"]));
    git_ok(t.path(), &["init", "-q", "-b", "main"]);
    git_ok(t.path(), &["add", "-A"]);
    git_ok(t.path(), &["commit", "-q", "-m", "two names"]);
    check(trawl(["git", dir, "--format", "json"]));
}
