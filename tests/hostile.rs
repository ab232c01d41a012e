//! Bad input: unreadable files, invalid UTF-8, a huge single-line file, symlink loops, empty
//! files. Each gets a warning where something could not be scanned; other findings are still
//! reported, the exit code is unaffected by the warnings and memory stays bounded.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::util::{is_root, stderr, stdout, trawl, trawl_measured, Fake, Tree, BIN};

fn finding_paths(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let mut p: Vec<String> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["locations"].as_array().unwrap().iter())
        .map(|l| l["path"].as_str().unwrap().to_string())
        .collect();
    p.sort();
    p
}

#[test]
fn unreadable_file_is_a_warning_and_the_scan_goes_on() {
    let t = Tree::new();
    let mut f = Fake::new(21);
    t.write("ok.env", format!("HF_TOKEN={}\n", f.hf_token()));
    let locked = t.write("locked.env", format!("HF_TOKEN={}\n", f.hf_token()));
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        t.path().join("ok.env"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let root = t.path().to_str().unwrap();
    // Root reads everything: drop to `nobody` so the permission bits count.
    let o = if is_root() {
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                BIN,
                "scan",
                root,
                "-f",
                "json",
            ])
            .output()
            .expect("setpriv runs")
    } else {
        trawl(["scan", root, "-f", "json"])
    };
    // What could not be read was not found clean: exit 2, the other findings reported.
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("locked.env"), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning"), "{}", stderr(&o));
    assert_eq!(finding_paths(&stdout(&o)), ["ok.env"]);
}

#[test]
fn invalid_utf8_and_empty_files_are_scanned_as_bytes() {
    let t = Tree::new();
    let mut f = Fake::new(22);
    let tok = f.hf_token();
    let mut bytes = b"\xff\xfe\xc3\x28 garbage \xe2\x82 \n".to_vec();
    bytes.extend_from_slice(b"\xc3\x28HF_TOKEN=");
    bytes.extend_from_slice(tok.as_bytes());
    bytes.extend_from_slice(b"\xff\n");
    t.write("latin1.txt", &bytes);
    t.write("empty.txt", "");
    let o = trawl(["scan", t.path().to_str().unwrap(), "-f", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(finding_paths(&stdout(&o)), ["latin1.txt"]);
}

#[test]
fn a_100_mb_single_line_file_is_scanned_in_bounded_memory() {
    let t = Tree::new();
    let mut f = Fake::new(23);
    let tok = f.hf_token();
    let mut line = Vec::with_capacity(100 << 20);
    // Keyword-dense filler: every window of the line is searched.
    while line.len() < (100 << 20) {
        line.extend_from_slice(b"token=abc; key=def; password=ghi; ");
    }
    line.extend_from_slice(format!("HF_TOKEN={tok}").as_bytes());
    t.write("huge.min.js", &line);
    drop(line);
    t.write("small.env", format!("HF_TOKEN={}\n", f.hf_token()));
    let root = t.path().join(".");
    let (code, out, err, maxrss_kib) = trawl_measured(
        &["scan", root.to_str().unwrap(), "-f", "json", "-j", "2"],
        t.path(),
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(finding_paths(&out), ["huge.min.js", "small.env"]);
    // The file is mapped, not copied: resident memory stays near its size, not a multiple.
    assert!(maxrss_kib < 260 * 1024, "peak RSS {maxrss_kib} KiB");
}

#[test]
fn symlink_loops_are_warnings() {
    let t = Tree::new();
    let mut f = Fake::new(24);
    t.write("dir/secret.env", format!("HF_TOKEN={}\n", f.hf_token()));
    std::os::unix::fs::symlink("..", t.path().join("dir/up")).unwrap();
    std::os::unix::fs::symlink("b", t.path().join("a")).unwrap();
    std::os::unix::fs::symlink("a", t.path().join("b")).unwrap();
    let root = t.path().to_str().unwrap();
    // Not following links (the default), links are not entered.
    let o = trawl(["scan", root, "-f", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(finding_paths(&stdout(&o)), ["dir/secret.env"]);
    // Following them, the loops are reported and skipped.
    let o = trawl(["scan", root, "-f", "json", "--follow-symlinks"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning"), "{}", stderr(&o));
    assert_eq!(finding_paths(&stdout(&o)), ["dir/secret.env"]);
    // A loop named on the command line.
    let o = trawl([
        "scan",
        t.path().join("a").to_str().unwrap(),
        t.path().join("dir").to_str().unwrap(),
        "-L",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning"), "{}", stderr(&o));
}

/// Regression: a large file is memory-mapped, and one truncated while trawl scanned it killed
/// the process with SIGBUS. Now the bytes past the new end read as zeros and the file gets a
/// warning. Linux only: the test waits for the map to show in `/proc/<pid>/maps`.
#[cfg(target_os = "linux")]
#[test]
fn a_file_truncated_while_scanned_is_a_warning_not_a_crash() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    const WARNING: &str = "changed while being read";
    let t = Tree::new();
    let mut f = Fake::new(26);
    // Large enough to be mapped and to take a while to scan; small enough for 21 runs.
    let mut content = Vec::with_capacity(17 << 20);
    while content.len() < (16 << 20) {
        content.extend_from_slice(b"INFO request served in 12 ms, status 200, bytes 5120\n");
    }
    // Near the end: gone after any of the truncations below.
    content.extend_from_slice(format!("HF_TOKEN={}\n", f.hf_token()).as_bytes());
    let path = t.path().join("server.log");
    let shown = path.to_str().unwrap();

    // One scan of `path`, truncated to `cut` bytes `delay` after the map shows (never when
    // `cut` is None). Returns the output, whether the map was seen before the truncation and
    // the time since it was seen.
    let run = |cut: Option<u64>, delay: Duration| {
        std::fs::write(&path, &content).unwrap();
        let mut child = Command::new(BIN)
            .args(["scan", shown, "-f", "json", "--no-progress"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("trawl runs");
        let maps = format!("/proc/{}/maps", child.id());
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut mapped = false;
        while !mapped && Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            mapped = std::fs::read_to_string(&maps).is_ok_and(|m| m.contains(shown));
            // Leaves the CPU to trawl; the scan takes tens of milliseconds.
            std::thread::sleep(Duration::from_micros(200));
        }
        let mapped_at = Instant::now();
        if let Some(cut) = cut {
            std::thread::sleep(delay);
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(cut).unwrap();
        }
        let out = child.wait_with_output().expect("trawl ends");
        (out, mapped, mapped_at.elapsed())
    };

    // Untouched: the secret is found, no warning, and the time from map to exit paces the
    // delays below.
    let (out, mapped, span) = run(None, Duration::ZERO);
    assert!(mapped, "the file is mapped");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(finding_paths(&stdout(&out)), [shown]);
    assert!(!stderr(&out).contains(WARNING), "{}", stderr(&out));

    let runs: u32 = 20;
    let mut mid_scan = 0;
    for i in 0..runs {
        let cut = if i % 2 == 0 {
            0
        } else {
            content.len() as u64 / 2
        };
        let (out, mapped, _) = run(Some(cut), span * i / runs);
        let err = stderr(&out);
        assert_eq!(out.status.signal(), None, "run {i}: killed: {err}");
        assert!(
            matches!(out.status.code(), Some(0..=2)),
            "run {i}: {:?}: {err}",
            out.status
        );
        let warned = err.contains(&format!("{shown}: {WARNING}"));
        let found = finding_paths(&stdout(&out)) == [shown];
        // Truncated after the map was made: either the whole file had been read before (the
        // secret is found), or a read hit the cut and the file gets the warning.
        if mapped {
            assert!(
                found || warned,
                "run {i}: secret lost without a warning: {err}"
            );
        }
        mid_scan += usize::from(warned);
    }
    eprintln!("{mid_scan} of {runs} runs truncated the file mid-scan");
    assert!(mid_scan > 0, "no run truncated the file mid-scan");
}
