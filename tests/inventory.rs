//! `trawl inventory`: the register of credentials from a fresh scan (files and history) and
//! from reports (with verification), CSV injection, hostile reports, and `--report-leaked`
//! against a fake GitHub on 127.0.0.1.

use std::collections::BTreeMap;
use std::path::Path;

use trawl::findings::secret_fingerprint;
use trawl::inventory::COLUMNS;

use crate::fake_forge::FakeForge;
use crate::util::{git_cmd, git_ok, scanner, stderr, stdout, trawl, Fake, Tree};

/// Parses RFC 4180 CSV (quoted cells, doubled quotes, CRLF rows).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut cell, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    assert!(
        !quoted && cell.is_empty() && row.is_empty(),
        "CSV ends mid-row"
    );
    rows
}

/// The rows of a CSV register as maps, after checking the header and that no cell can be
/// read as a formula.
fn csv_rows(text: &str) -> Vec<BTreeMap<String, String>> {
    let rows = parse_csv(text);
    assert_eq!(rows[0], COLUMNS.to_vec(), "header");
    for row in &rows[1..] {
        assert_eq!(row.len(), COLUMNS.len());
        for cell in row {
            let first = cell.trim_start_matches(' ').chars().next();
            assert!(
                !first.is_some_and(|c| "=+-@\t\r".contains(c)),
                "formula cell {cell:?}"
            );
        }
    }
    rows[1..]
        .iter()
        .map(|r| {
            COLUMNS
                .iter()
                .map(|c| c.to_string())
                .zip(r.clone())
                .collect()
        })
        .collect()
}

/// One credential of the fixture: what the register must say of it.
struct Expected {
    rule: &'static str,
    secret: String,
    revoke: &'static str,
    /// (path, line, commit index) of every place.
    places: Vec<(&'static str, u32, usize)>,
}

/// An eval-style project: four providers' secrets, one of them in two files, committed at
/// three dates.
struct Project {
    tree: Tree,
    commits: Vec<String>,
    dates: [&'static str; 3],
    creds: Vec<Expected>,
}

fn project(seed: u64) -> Project {
    let mut fake = Fake::new(seed);
    let hf = fake.hf_token();
    let ghp = fake.github_token("ghp_");
    let openai = format!("sk-{}T3BlbkFJ{}", fake.alnum(20), fake.alnum(20));
    let stripe = format!("sk_live_{}", fake.alnum(24));
    let tree = Tree::new();
    let dir = tree.path();
    git_ok(dir, &["init", "-q", "-b", "main"]);
    let dates = [
        "2021-03-04T10:00:00Z",
        "2022-05-06T11:00:00Z",
        "2023-07-08T12:00:00Z",
    ];
    let mut commits = Vec::new();
    let mut commit = |date: &str| {
        git_ok(dir, &["add", "-A"]);
        let o = git_cmd(
            dir,
            &["commit", "-q", "-m", "work"],
            &[("GIT_AUTHOR_DATE", date), ("GIT_COMMITTER_DATE", date)],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        commits.push(git_ok(dir, &["rev-parse", "HEAD"]));
    };
    tree.write("config/.env", format!("HF_TOKEN={hf}\n"));
    tree.write("README.md", "# demo\n");
    commit(dates[0]);
    tree.write(
        "app/settings.py",
        format!("OPENAI_API_KEY = \"{openai}\"\nHF = \"{hf}\"\n"),
    );
    commit(dates[1]);
    tree.write(
        "config/.env",
        format!("HF_TOKEN={hf}\nGITHUB_TOKEN={ghp}\n"),
    );
    tree.write("billing/stripe.yaml", format!("stripe_key: {stripe}\n"));
    commit(dates[2]);
    let creds = vec![
        Expected {
            rule: "huggingface.user-token",
            secret: hf,
            revoke: "https://huggingface.co/settings/tokens",
            places: vec![
                ("config/.env", 1, 0),
                ("app/settings.py", 2, 1),
                ("config/.env", 1, 2),
            ],
        },
        Expected {
            rule: "openai.api-key",
            secret: openai,
            revoke: "https://platform.openai.com/api-keys",
            places: vec![("app/settings.py", 1, 1)],
        },
        Expected {
            rule: "github.personal-access-token",
            secret: ghp,
            revoke: "https://github.com/settings/tokens",
            places: vec![("config/.env", 2, 2)],
        },
        Expected {
            rule: "stripe.secret-key",
            secret: stripe,
            revoke: "https://dashboard.stripe.com/apikeys",
            places: vec![("billing/stripe.yaml", 1, 2)],
        },
    ];
    Project {
        tree,
        commits,
        dates,
        creds,
    }
}

/// The expected register rows of the project, in the register's order; `history` says whether
/// places carry commits (else the work tree: one place per file).
fn expected_rows(p: &Project, history: bool) -> Vec<BTreeMap<String, String>> {
    let s = scanner();
    let mut rows: Vec<(u8, BTreeMap<String, String>)> = Vec::new();
    for c in &p.creds {
        let rule = s
            .rules()
            .rules()
            .iter()
            .find(|r| r.id() == c.rule)
            .expect("rule")
            .info()
            .clone();
        let mut places = c.places.clone();
        if !history {
            places.sort();
            places.dedup_by(|a, b| a.0 == b.0);
        }
        let mut labels: Vec<String> = places
            .iter()
            .map(|(path, line, i)| match history {
                true => format!("{path}:{line}@{}", p.commits[*i]),
                false => format!("{path}:{line}"),
            })
            .collect();
        labels.sort();
        let first = places.iter().map(|x| x.2).min().unwrap_or(0);
        let last = places.iter().map(|x| x.2).max().unwrap_or(0);
        let seen = |i: usize| match history {
            true => (p.dates[i].to_string(), p.commits[i].clone()),
            false => (String::new(), String::new()),
        };
        let values = [
            c.rule.split('.').next().unwrap_or_default().to_string(),
            c.rule.to_string(),
            rule.name.clone(),
            rule.severity.as_str().to_string(),
            secret_fingerprint(c.rule, c.secret.as_bytes()),
            format!("{}*****", &c.secret[..4]),
            "unverified".into(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            seen(first).0,
            seen(first).1,
            seen(last).0,
            seen(last).1,
            places.len().to_string(),
            labels.join("; "),
            c.revoke.to_string(),
        ];
        let map = COLUMNS.iter().map(|c| c.to_string()).zip(values).collect();
        rows.push((rule.severity as u8, map));
    }
    rows.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| a.1["provider"].cmp(&b.1["provider"]))
    });
    rows.into_iter().map(|(_, r)| r).collect()
}

/// The places cell with its places sorted (the register keeps the report's order).
fn sorted_places(mut row: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut places: Vec<&str> = row["locations"].split("; ").collect();
    places.sort();
    let joined = places.join("; ");
    row.insert("locations".into(), joined);
    row
}

fn run_ok(args: &[&str]) -> String {
    let o = trawl(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

#[test]
fn history_register_in_csv_has_every_column() {
    let p = project(0x1417);
    let dir = p.tree.path().to_str().expect("utf-8 path");
    let csv = run_ok(&["inventory", "--git", dir, "-q"]);
    let rows: Vec<_> = csv_rows(&csv).into_iter().map(sorted_places).collect();
    assert_eq!(rows, expected_rows(&p, true));
    for c in &p.creds {
        assert!(!csv.contains(&c.secret), "a secret reached the register");
    }
}

#[test]
fn history_register_in_json_has_every_column() {
    let p = project(0x1418);
    let dir = p.tree.path().to_str().expect("utf-8 path");
    let out = p.tree.path().join("register.json");
    let out_s = out.to_str().expect("utf-8");
    run_ok(&["inventory", "--git", dir, "-f", "json", "-o", out_s, "-q"]);
    let text = std::fs::read_to_string(&out).expect("register written");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(doc["columns"], serde_json::json!(COLUMNS));
    let creds = doc["credentials"].as_array().expect("credentials");
    let expected = expected_rows(&p, true);
    assert_eq!(creds.len(), expected.len());
    for (got, want) in creds.iter().zip(&expected) {
        let mut keys: Vec<&String> = got.as_object().expect("object").keys().collect();
        keys.sort();
        let mut cols: Vec<&str> = COLUMNS.to_vec();
        cols.sort();
        assert_eq!(keys, cols);
        let text = |k: &str| match &got[k] {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        for col in COLUMNS {
            match col {
                "scopes" => assert_eq!(got[col], serde_json::json!([])),
                "locations" => {
                    let places = got[col].as_array().expect("places");
                    let mut labels: Vec<String> = places
                        .iter()
                        .map(|l| {
                            format!(
                                "{}:{}@{}",
                                l["path"].as_str().unwrap_or_default(),
                                l["line"],
                                l["commit"].as_str().unwrap_or_default()
                            )
                        })
                        .collect();
                    labels.sort();
                    assert_eq!(labels.join("; "), want[col]);
                    for l in places {
                        assert!(l["date"].is_string(), "history places carry their date");
                    }
                }
                _ => assert_eq!(text(col), want[col], "column {col}"),
            }
        }
    }
}

#[test]
fn files_register_has_no_commits_and_counts_each_file() {
    let p = project(0x1419);
    let dir = p.tree.path().to_str().expect("utf-8 path");
    let csv = run_ok(&["inventory", dir, "-q"]);
    let rows: Vec<_> = csv_rows(&csv).into_iter().map(sorted_places).collect();
    assert_eq!(rows, expected_rows(&p, false));
}

/// A report as `--verify` writes it, with hostile values where a spreadsheet would run them.
fn verified_report(dir: &Path, hf: &str) -> std::path::PathBuf {
    let doc = serde_json::json!({"tool": "trawl", "findings": [
        {"rule": "huggingface.user-token", "name": "Hugging Face user access token",
         "category": "ai.model-registry", "severity": "high", "secret": hf,
         "fingerprint": "fp-hf",
         "verification": {"status": "live", "owner": "=HYPERLINK(\"http://evil.example\",\"x\")",
            "scopes": ["read", "@write", "org:acme"], "expires": "2027-01-01T00:00:00Z",
            "endpoint": "https://huggingface.co/api/whoami-v2", "checked": "2026-12-01T08:09:10Z",
            "cached": true},
         "locations": [{"path": "-notes.txt", "line": 3, "column": 1, "offset": 9,
            "snippet": "x", "fingerprint": "l1"}]},
        {"rule": "github.personal-access-token", "name": "GitHub personal access token",
         "category": "vcs", "severity": "high", "secret": "ghp_*****", "fingerprint": "fp-gh",
         "verification": {"status": "invalid", "owner": "+cmd|' /C calc'!A0", "scopes": []},
         "locations": [{"repository": "=evil", "path": "@x.py", "line": 1,
            "commit": "0123abcd", "date": "2024-01-02T03:04:05Z", "author": "\tmallory"}]},
        {"rule": "openai.api-key", "name": "OpenAI API key", "category": "ai.model-api",
         "severity": "critical", "secret": "sk-a*****", "fingerprint": "fp-oa",
         "locations": [{"path": "a\"b,c\nd\r=e", "line": 1}]},
        {"rule": "pickle.dangerous-import", "name": "Pickle", "category": "artifact",
         "severity": "high", "secret": "os.system", "fingerprint": "fp-pk",
         "locations": [{"path": "model.pkl"}]}
    ]});
    let path = dir.join("verified.json");
    std::fs::write(&path, serde_json::to_string_pretty(&doc).expect("json")).expect("write");
    path
}

#[test]
fn verification_fills_status_owner_scopes_and_expiry_and_formulas_are_neutralised() {
    let tree = Tree::new();
    let hf = Fake::new(0x1420).hf_token();
    let report = verified_report(tree.path(), &hf);
    let csv = run_ok(&["inventory", "--from", report.to_str().expect("utf-8")]);
    assert_eq!(
        csv.matches("\r\n").count(),
        4,
        "header and three rows: {csv}"
    );
    assert!(
        !csv.contains(&hf),
        "a secret in clear in the report stays out"
    );
    let rows = csv_rows(&csv);
    let by_fp = |fp: &str| rows.iter().find(|r| r["fingerprint"] == fp).expect(fp);
    assert!(
        rows.iter().all(|r| r["fingerprint"] != "fp-pk"),
        "unsafe code is no credential"
    );
    let hf_row = by_fp("fp-hf");
    assert_eq!(hf_row["status"], "live");
    assert_eq!(
        hf_row["owner"],
        "'=HYPERLINK(\"http://evil.example\",\"x\")"
    );
    assert_eq!(hf_row["scopes"], "read; @write; org:acme");
    assert_eq!(hf_row["expires"], "2027-01-01T00:00:00Z");
    assert_eq!(hf_row["verified_at"], "2026-12-01T08:09:10Z");
    assert_eq!(hf_row["secret"], format!("{}*****", &hf[..4]));
    assert_eq!(hf_row["locations"], "'-notes.txt:3");
    assert_eq!(hf_row["first_seen_date"], "");
    let gh = by_fp("fp-gh");
    assert_eq!(gh["status"], "invalid");
    assert_eq!(gh["owner"], "'+cmd|' /C calc'!A0");
    assert_eq!(gh["scopes"], "");
    assert_eq!(gh["verified_at"], "");
    assert_eq!(gh["locations"], "'=evil @x.py:1@0123abcd");
    assert_eq!(gh["first_seen_date"], "2024-01-02T03:04:05Z");
    assert_eq!(gh["last_seen_commit"], "0123abcd");
    assert_eq!(gh["revoke"], "https://github.com/settings/tokens");
    let oa = by_fp("fp-oa");
    assert_eq!(oa["status"], "unverified");
    assert_eq!(oa["locations"], "a\"b,c\\u{a}d\\u{d}=e:1");
    // Most severe first.
    assert_eq!(rows[0]["fingerprint"], "fp-oa");

    let json = run_ok(&[
        "inventory",
        "--from",
        report.to_str().expect("utf-8"),
        "-f",
        "json",
    ]);
    let doc: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let hf_json = doc["credentials"]
        .as_array()
        .expect("credentials")
        .iter()
        .find(|c| c["fingerprint"] == "fp-hf")
        .expect("hf");
    assert_eq!(
        hf_json["scopes"],
        serde_json::json!(["read", "@write", "org:acme"])
    );
    assert_eq!(
        hf_json["owner"],
        "=HYPERLINK(\"http://evil.example\",\"x\")"
    );
    assert!(!json.contains(&hf));
}

#[test]
fn json_lines_reports_and_repeated_fingerprints_make_one_row() {
    let tree = Tree::new();
    let line = |path: &str, date: &str| {
        serde_json::json!({"rule": "huggingface.user-token", "name": "HF", "severity": "high",
            "secret": "hf_x*****", "fingerprint": "same",
            "locations": [{"repository": "https://h.example/r.git", "path": path, "line": 1,
                "commit": format!("c{}", &date[..4]), "date": date}]})
        .to_string()
    };
    let text = format!(
        "{}\n{}\n",
        line("b.env", "2025-02-01T00:00:00Z"),
        line("a.env", "2019-12-31T23:59:59Z")
    );
    let path = tree.write("merged.jsonl", text);
    let rows = csv_rows(&run_ok(&[
        "inventory",
        "--from",
        path.to_str().expect("utf-8"),
    ]));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["location_count"], "2");
    assert_eq!(rows[0]["first_seen_commit"], "c2019");
    assert_eq!(rows[0]["last_seen_date"], "2025-02-01T00:00:00Z");
    assert_eq!(
        rows[0]["locations"],
        "https://h.example/r.git b.env:1@c2025; https://h.example/r.git a.env:1@c2019"
    );
}

#[test]
fn malformed_and_oversized_reports_are_clear_errors_that_quote_nothing() {
    let tree = Tree::new();
    let marker = "MARKER-7f3a";
    let cases = [
        ("garbage.json", format!("not json {marker}")),
        (
            "wrong-type.json",
            format!("{{\"findings\": [{{\"rule\": 1, \"name\": \"{marker}\"}}]}}"),
        ),
        ("no-findings.json", format!("{{\"other\": \"{marker}\"}}")),
        (
            "bad-status.json",
            format!(
                "{{\"findings\": [{{\"rule\": \"a.b\", \"name\": \"n\", \"severity\": \"high\", \
                 \"fingerprint\": \"f\", \"verification\": {{\"status\": \"{marker}\"}}}}]}}"
            ),
        ),
        (
            "bad-line.jsonl",
            format!(
                "{{\"rule\":\"a.b\",\"name\":\"n\",\"severity\":\"high\",\"fingerprint\":\"f\"}}\n{{\"rule\": \"{marker}\"\n"
            ),
        ),
        ("empty.json", String::new()),
    ];
    for (name, text) in &cases {
        let path = tree.write(name, text);
        let o = trawl(["inventory", "--from", path.to_str().expect("utf-8")]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains("not a trawl JSON"), "{name}: {err}");
        assert!(
            !err.contains(marker) && !err.contains("panicked"),
            "{name}: {err}"
        );
        assert!(stdout(&o).is_empty(), "{name}: nothing written");
    }
    let big = tree.path().join("big.json");
    let f = std::fs::File::create(&big).expect("create");
    f.set_len(trawl::inventory::MAX_REPORT_BYTES + 1)
        .expect("sparse");
    let o = trawl(["inventory", "--from", big.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("larger than"), "{}", stderr(&o));
    let o = trawl(["inventory", "--from", tree.path().to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(2), "a directory is no report");
}

/// A tree with each kind of GitHub token and a Hugging Face token.
fn github_tree(seed: u64) -> (Tree, Vec<String>) {
    let mut fake = Fake::new(seed);
    let ghp = fake.github_token("ghp_");
    let pat = format!("github_pat_{}_{}", fake.alnum(22), fake.alnum(59));
    let ghs = fake.github_token("ghs_");
    let hf = fake.hf_token();
    let tree = Tree::new();
    tree.write(
        "ci.env",
        format!("GH={ghp}\nPAT={pat}\nAPP={ghs}\nHF={hf}\n"),
    );
    tree.write("copy.env", format!("GH={ghp}\n"));
    let mut revocable = vec![ghp, pat];
    revocable.sort();
    (tree, revocable)
}

#[test]
fn report_leaked_sends_only_github_tokens_to_the_revocation_api() {
    let (tree, revocable) = github_tree(0x1421);
    let forge = FakeForge::start();
    forge.page("/credentials/revoke", 202, &[], "");
    let dir = tree.path().to_str().expect("utf-8");
    let o = trawl([
        "inventory",
        dir,
        "--report-leaked",
        "--github-api",
        &forge.url(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("reported 2 GitHub tokens"),
        "{}",
        stderr(&o)
    );
    let seen = forge.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/credentials/revoke");
    assert_eq!(
        seen[0].header("authorization"),
        None,
        "the API takes no token"
    );
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).expect("JSON body");
    assert_eq!(body, serde_json::json!({ "credentials": revocable }));
    // The register itself holds no secret.
    for t in &revocable {
        assert!(!stdout(&o).contains(t.as_str()));
    }
}

#[test]
fn no_request_without_report_leaked_and_refusals() {
    let (tree, _) = github_tree(0x1422);
    let forge = FakeForge::start();
    forge.page("/credentials/revoke", 422, &[], "{}");
    let dir = tree.path().to_str().expect("utf-8");
    // --github-api alone is refused: nothing is sent unless asked.
    let o = trawl(["inventory", dir, "--github-api", &forge.url()]);
    assert_eq!(o.status.code(), Some(2));
    let o = trawl(["inventory", dir, "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        forge.requests().is_empty(),
        "no request without --report-leaked"
    );
    // A report holds no secret in clear: --report-leaked needs a fresh scan.
    let report = tree.write("r.json", "{\"findings\": []}");
    let o = trawl([
        "inventory",
        "--from",
        report.to_str().expect("utf-8"),
        "--report-leaked",
    ]);
    assert_eq!(o.status.code(), Some(2));
    // Plain http off loopback is refused before anything is sent.
    let o = trawl([
        "inventory",
        dir,
        "--report-leaked",
        "--github-api",
        "http://api.example.invalid",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("https"), "{}", stderr(&o));
    assert!(forge.requests().is_empty());
    // A refusal by the API is an error, after the register is written.
    let o = trawl([
        "inventory",
        dir,
        "--report-leaked",
        "--github-api",
        &forge.url(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("HTTP 422"), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("provider,rule,"), "{}", stdout(&o));
    assert_eq!(forge.requests().len(), 1);
}
