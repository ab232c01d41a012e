//! Verification answers kept in a state store (`--verify-cache`, `trawl git --state`): reused
//! within `--verify-max-age`, asked again after it or after an error, read back for secrets
//! known only by their fingerprint (`org merge`), and carried into `trawl inventory --verify`.

use std::path::Path;

use serde_json::Value;

use super::{findings_in, findings_of, letters, tree_with, HF_LIVE, HF_PATH};
use crate::fake_forge::FakeForge;
use crate::org_scan::{merge, plan, shard};
use crate::util::{git_ok, stderr, stdout, trawl, Tree};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `trawl scan DIR -f json --verify --verify-endpoint E --verify-cache DB [extra]`: the first
/// finding's verification.
fn scan_verified(dir: &Path, endpoint: &str, db: &Path, extra: &[&str]) -> (Value, String) {
    let mut args = vec![
        "scan",
        s(dir),
        "-f",
        "json",
        "--verify",
        "--verify-endpoint",
        endpoint,
        "--verify-cache",
        s(db),
    ];
    args.extend_from_slice(extra);
    let o = trawl(&args);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    (findings_of(&o)[0]["verification"].clone(), stderr(&o))
}

#[test]
fn kept_answers_stand_until_too_old_and_errors_are_asked_again() {
    let fake = FakeForge::start();
    fake.json(HF_PATH, HF_LIVE);
    let secret = letters("hf_", 34, 60);
    let tree = tree_with(std::slice::from_ref(&secret));
    let state = Tree::new();
    let db = state.path().join("state.db");
    let endpoint = format!("huggingface={}", fake.url());

    let (first, _) = scan_verified(tree.path(), &endpoint, &db, &[]);
    assert_eq!(first["status"], "live");
    assert!(first.get("cached").is_none(), "{first}");
    let checked = first["checked"]
        .as_str()
        .expect("when it was asked")
        .to_string();
    assert!(trawl::dates::parse_date(&checked).is_ok(), "{checked}");
    assert_eq!(fake.requests().len(), 1);

    // Within the age: nobody is asked; the answer and its time are the first run's.
    let (second, notes) = scan_verified(tree.path(), &endpoint, &db, &[]);
    assert_eq!(
        fake.requests().len(),
        1,
        "asked again within --verify-max-age"
    );
    assert_eq!(second["cached"], true);
    assert_eq!(second["checked"], checked.as_str());
    assert_eq!(
        (&second["status"], &second["owner"], &second["scopes"]),
        (&first["status"], &first["owner"], &first["scopes"])
    );
    assert!(
        notes.contains("1 verification kept from an earlier run"),
        "{notes}"
    );
    let text = trawl([
        "scan",
        s(tree.path()),
        "--color",
        "never",
        "--verify",
        "--verify-endpoint",
        &endpoint,
        "--verify-cache",
        s(&db),
    ]);
    assert!(
        stdout(&text).contains(&format!("(as answered {checked}, kept)")),
        "{}",
        stdout(&text)
    );

    // Too old: asked again.
    let (third, _) = scan_verified(tree.path(), &endpoint, &db, &["--verify-max-age", "0"]);
    assert_eq!(fake.requests().len(), 2);
    assert!(third.get("cached").is_none());

    // Nothing of the secret is in the store.
    let bytes = std::fs::read(&db).unwrap();
    assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    assert!(!bytes.windows(12).any(|w| w == &secret.as_bytes()[3..15]));

    // An error is not kept: the next run asks again.
    let broken = FakeForge::start();
    broken.page(HF_PATH, 404, &[], "gone fishing");
    broken.page(HF_PATH, 500, &[], "down");
    let endpoint = format!("huggingface={}", broken.url());
    let other = tree_with(&[letters("hf_", 34, 61)]);
    let (v, _) = scan_verified(other.path(), &endpoint, &db, &[]);
    let asked = broken.requests().len();
    assert!(asked >= 1);
    let (w, _) = scan_verified(other.path(), &endpoint, &db, &[]);
    assert!(
        broken.requests().len() > asked,
        "an {} was kept",
        v["status"]
    );
    assert!(w.get("cached").is_none());

    // A bad age is refused before anything is read.
    let o = trawl([
        "scan",
        s(other.path()),
        "--verify",
        "--verify-max-age",
        "soon",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// A repository whose history holds `secret`, as a `file://` URL for `org plan`.
fn repo_with(t: &Tree, secret: &str) -> String {
    let work = t.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    git_ok(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("app.py"), format!("HF_TOKEN = \"{secret}\"\n")).unwrap();
    git_ok(&work, &["add", "app.py"]);
    git_ok(&work, &["commit", "-q", "-m", "app"]);
    let bare = t.path().join("app.git");
    git_ok(t.path(), &["clone", "-q", "--bare", s(&work), s(&bare)]);
    format!("file://{}", bare.display())
}

#[test]
fn git_state_keeps_answers_and_org_merge_reads_them_for_redacted_secrets() {
    let fake = FakeForge::start();
    fake.json(HF_PATH, HF_LIVE);
    let t = Tree::new();
    let secret = letters("hf_", 34, 62);
    let url = repo_with(&t, &secret);
    let db = t.path().join("state.db");
    let endpoint = format!("huggingface={}", fake.url());
    let bare = t.path().join("app.git");
    let git = |extra: &[&str]| {
        let mut args = vec![
            "git",
            s(&bare),
            "-f",
            "json",
            "--verify",
            "--verify-endpoint",
        ];
        args.push(&endpoint);
        args.extend_from_slice(extra);
        let o = trawl(&args);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        findings_of(&o)[0]["verification"].clone()
    };
    // `trawl git --state` keeps the answer in its store.
    let first = git(&["--state", s(&db)]);
    assert_eq!(first["status"], "live");
    let again = git(&["--state", s(&db)]);
    assert_eq!(again["cached"], true);
    assert_eq!(fake.requests().len(), 1);

    // The shards keep secrets redacted: merge can only say "not kept"...
    let plan = plan(&t, &[url], 1);
    let out = t.path().join("out");
    let o = shard(&plan, 0, 1, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (o, report) = merge(&plan, &out, &["--verify", "--verify-endpoint", &endpoint]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v = &findings_in(&report)[0]["verification"];
    assert_eq!(v["status"], "unknown", "{v}");
    assert!(v["message"].as_str().unwrap().contains("not kept"), "{v}");
    // ...unless a store holds an answer for that fingerprint at that endpoint.
    let (o, report) = merge(
        &plan,
        &out,
        &[
            "--verify",
            "--verify-endpoint",
            &endpoint,
            "--verify-cache",
            s(&db),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v = &findings_in(&report)[0]["verification"];
    assert_eq!(
        (v["status"].as_str(), v["cached"].as_bool()),
        (Some("live"), Some(true)),
        "{v}"
    );
    assert_eq!(v["owner"], first["owner"]);
    assert_eq!(fake.requests().len(), 1, "merge sent nothing");
}

#[test]
fn inventory_verify_fills_status_owner_scopes_and_when() {
    let fake = FakeForge::start();
    fake.json(HF_PATH, HF_LIVE);
    let secret = letters("hf_", 34, 63);
    let tree = tree_with(std::slice::from_ref(&secret));
    let endpoint = format!("huggingface={}", fake.url());
    let o = trawl([
        "inventory",
        s(tree.path()),
        "-f",
        "json",
        "--verify",
        "--verify-endpoint",
        &endpoint,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let rows = doc["credentials"].as_array().expect("rows");
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row["status"], "live");
    assert_eq!(row["owner"], "alice, acme-ml");
    assert_eq!(row["scopes"][0], "fineGrained");
    assert!(
        trawl::dates::parse_date(row["verified_at"].as_str().unwrap()).is_ok(),
        "{row}"
    );
    assert_eq!(fake.requests().len(), 1);
    assert!(!stdout(&o).contains(&secret) && !stderr(&o).contains(&secret));
    // Without --verify nobody is asked and the row says so.
    let o = trawl(["inventory", s(tree.path()), "-f", "json"]);
    let doc: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["credentials"][0]["status"], "unverified");
    assert_eq!(fake.requests().len(), 1);
    // A report holds no secret in clear: --verify with --from is refused.
    let report = tree.write("r.json", "[]");
    let o = trawl(["inventory", "--from", s(&report), "--verify"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("fresh scan"), "{}", stderr(&o));
}
