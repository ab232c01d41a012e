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
