//! Issue 11, point 3: secrets inside encodings, through the command line. Each is found at the
//! encoded text (line and column), marked as decoded with its chain of encodings in every
//! report format, and redacted like any secret; the formats that carry credentials encoded
//! (Kubernetes Secrets, Docker `config.json`) and in clear (`.netrc`, `.git-credentials`) are
//! covered, in plain files, archive members and notebook cells.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

use crate::content::zip_bytes;
use crate::util::{stderr, stdout, trawl, Fake, Tree};

const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `(rule, location)` of every location of a JSON scan of `tree`.
fn scan_json(tree: &Tree, extra: &[&str]) -> Vec<(String, String, Value)> {
    let dir = tree.path().to_str().unwrap().to_string();
    let mut args = vec!["scan", dir.as_str(), "-f", "json"];
    args.extend_from_slice(extra);
    let o = trawl(&args);
    let v: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| {
            let rule = f["rule"].as_str().unwrap().to_string();
            let secret = f["secret"].as_str().unwrap().to_string();
            f["locations"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |l| (rule.clone(), secret.clone(), l.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Line and column (1-based) of `needle` in `text`.
fn line_col(text: &str, needle: &str) -> (u64, u64) {
    let at = text.find(needle).expect("needle in text");
    let line = 1 + text[..at].matches('\n').count() as u64;
    let col = (at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1) as u64;
    (line, col)
}

/// The location of `rule` in `found`, asserted to be decoded through `chain`, with the secret
/// `secret` (shown with `--show-secrets`), on the line of `encoded` in `text` and within it.
fn assert_decoded(
    found: &[(String, String, Value)],
    rule: &str,
    chain: &str,
    secret: &str,
    text: &str,
    encoded: &str,
) {
    let (_, s, loc) = found
        .iter()
        .find(|(r, _, _)| r == rule)
        .unwrap_or_else(|| panic!("{rule} not in {found:#?}"));
    assert_eq!(s, secret);
    assert_eq!(loc["decoded"], chain, "{loc}");
    let (line, col) = line_col(text, encoded);
    assert_eq!(loc["line"], line, "{loc}");
    let (start, end) = (
        loc["column"].as_u64().unwrap(),
        loc["end_column"].as_u64().unwrap(),
    );
    assert!(start >= col && end <= col + encoded.len() as u64, "{loc}");
}

fn aws_pair(f: &mut Fake) -> (String, String) {
    (
        format!("AKIA{}", f.string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)),
        f.string(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            40,
        ),
    )
}

#[test]
fn kubernetes_secret_data_values_are_decoded_in_context() {
    let mut f = Fake::new(1201);
    let (key_id, secret) = aws_pair(&mut f);
    let password = format!("{}#4{}", f.alnum(8), f.alnum(8));
    let (id64, sk64, pw64) = (
        STANDARD.encode(&key_id),
        STANDARD.encode(&secret),
        STANDARD.encode(&password),
    );
    let manifest = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\ntype: Opaque\ndata:\n  \
         AWS_ACCESS_KEY_ID: {id64}\n  AWS_SECRET_ACCESS_KEY: {sk64}\n  DB_PASSWORD: {pw64}\n"
    );
    let t = Tree::new();
    t.write("deploy/secret.yaml", &manifest);
    let found = scan_json(&t, &["--show-secrets"]);
    assert_decoded(
        &found,
        "aws.access-key-id",
        "base64",
        &key_id,
        &manifest,
        &id64,
    );
    assert_decoded(
        &found,
        "aws.secret-access-key",
        "base64",
        &secret,
        &manifest,
        &sk64,
    );
    assert_decoded(
        &found,
        "generic.password-unquoted",
        "base64",
        &password,
        &manifest,
        &pw64,
    );
    assert_eq!(found.len(), 3, "one finding per value: {found:#?}");
}

#[test]
fn docker_config_auth_is_decoded() {
    let mut f = Fake::new(1202);
    let password = format!("{}~7{}", f.alnum(10), f.alnum(6));
    let auth = STANDARD.encode(format!("ci-pusher:{password}"));
    let config = format!(
        "{{\n  \"auths\": {{\n    \"registry.acme.io\": {{\n      \"auth\": \"{auth}\"\n    }}\n  }}\n}}\n"
    );
    let t = Tree::new();
    t.write(".docker/config.json", &config);
    let found = scan_json(&t, &["--show-secrets"]);
    assert_decoded(
        &found,
        "docker.config-auth",
        "base64",
        &password,
        &config,
        &auth,
    );
    assert_eq!(found.len(), 1, "{found:#?}");
}

#[test]
fn netrc_and_git_credentials_are_found() {
    let mut f = Fake::new(1203);
    let (one_line, multi) = (
        format!("{}!{}", f.alnum(9), f.alnum(7)),
        format!("{}%{}", f.alnum(10), f.alnum(6)),
    );
    let netrc = format!(
        "machine nexus.acme.io login deploy password {one_line}\n\nmachine ftp.acme.io\n  login backup\n  password {multi}\n"
    );
    let token = f.alnum(32);
    let creds = format!("https://ci-bot:{token}@git.acme.io\n");
    let t = Tree::new();
    t.write(".netrc", &netrc);
    t.write(".git-credentials", &creds);
    let found = scan_json(&t, &["--show-secrets"]);
    let of = |secret: &str| {
        found
            .iter()
            .find(|(_, s, _)| s == secret)
            .unwrap_or_else(|| panic!("{secret} not in {found:#?}"))
    };
    for (secret, line) in [(&one_line, 1), (&multi, 5)] {
        let (rule, _, loc) = of(secret);
        assert_eq!(rule, "netrc.password");
        assert_eq!(loc["line"], line);
        assert!(loc.get("decoded").is_none());
    }
    let (rule, _, loc) = of(&token);
    assert_eq!(rule, "generic.url-credentials");
    assert_eq!(loc["path"], ".git-credentials");
}

#[test]
fn basic_auth_header_is_reported_once() {
    let mut f = Fake::new(1204);
    let basic = STANDARD.encode(format!("svc-ci:{}!{}", f.alnum(10), f.alnum(8)));
    let t = Tree::new();
    t.write(
        "call.sh",
        format!("curl -H 'Authorization: Basic {basic}' https://nexus.acme.io\n"),
    );
    let found = scan_json(&t, &["--show-secrets"]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].0, "generic.authorization-basic");
    assert_eq!(found[0].1, basic);
    assert!(found[0].2.get("decoded").is_none());
}

#[test]
fn encoded_secrets_in_archive_members_and_notebook_cells() {
    let mut f = Fake::new(1205);
    let token = format!("hf_{}", f.string(LETTERS, 34));
    let hex: String = token.bytes().map(|b| format!("{b:02x}")).collect();
    let text = format!("# settings\nHUB = \"{hex}\"\n");
    let t = Tree::new();
    t.write(
        "bundle.zip",
        zip_bytes(&[("conf/settings.py", text.as_bytes())]),
    );
    let b64 = STANDARD.encode(format!("token={token}"));
    t.write(
        "nb.ipynb",
        format!(
            r#"{{"nbformat": 4, "nbformat_minor": 5, "metadata": {{}}, "cells": [{{"cell_type": "code", "metadata": {{}}, "outputs": [], "source": ["x = 1\n", "blob = '{b64}'\n"]}}]}}"#
        ),
    );
    let found = scan_json(&t, &["--show-secrets"]);
    let locs: Vec<&Value> = found.iter().map(|(_, _, l)| l).collect();
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found
        .iter()
        .all(|(r, s, _)| r == "huggingface.user-token" && s == &token));
    let member = locs
        .iter()
        .find(|l| l["path"] == "bundle.zip!conf/settings.py")
        .expect("member");
    assert_eq!(member["decoded"], "hex");
    assert_eq!(member["line"], 2);
    let cell = locs
        .iter()
        .find(|l| l["path"] == "nb.ipynb")
        .expect("notebook");
    assert_eq!(cell["decoded"], "base64");
    assert_eq!(cell["cell"], 0);
    assert_eq!(cell["line"], 1, "a one-line notebook: {cell}");
}

#[test]
fn every_report_marks_decoded_findings_and_redacts_them() {
    let mut f = Fake::new(1206);
    let token = format!("hf_{}", f.string(LETTERS, 34));
    let b64 = STANDARD.encode(format!("HF_TOKEN={token}"));
    let t = Tree::new();
    t.write("env.txt", format!("ENV_BLOB={b64}\n"));
    let dir = t.path().to_str().unwrap();
    let text = stdout(&trawl(["scan", dir]));
    assert!(text.contains("decoded from base64"), "{text}");
    let json = stdout(&trawl(["scan", dir, "-f", "json"]));
    assert!(json.contains(r#""decoded": "base64""#), "{json}");
    let sarif: Value = serde_json::from_str(&stdout(&trawl(["scan", dir, "-f", "sarif"]))).unwrap();
    let result = &sarif["runs"][0]["results"][0];
    assert_eq!(result["properties"]["decoded"], "base64", "{result}");
    assert!(result["message"]["text"]
        .as_str()
        .unwrap()
        .contains("decoded from base64"));
    // Neither the decoded token nor its encoding is printed in clear.
    let hidden = &b64[8..];
    for out in [&text, &json, &sarif.to_string()] {
        assert!(!out.contains(&token[4..]), "{out}");
        assert!(!out.contains(hidden), "{out}");
    }
    // The fingerprint is the token's, encoded or not.
    t.write("plain.txt", format!("HF_TOKEN={token}\n"));
    let v: Value = serde_json::from_str(&stdout(&trawl(["scan", dir, "-f", "json"]))).unwrap();
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{v}");
    assert_eq!(findings[0]["locations"].as_array().unwrap().len(), 2);
}
