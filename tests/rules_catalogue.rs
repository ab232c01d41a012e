//! The built-in rule catalogue: size, coverage, and every example through the full scanner.

use std::collections::BTreeSet;

use trawl::rules::{check_rules, BUILTIN_RULE_FILES};

use crate::util::{scanner, stdout, trawl, Tree};

#[test]
fn has_at_least_450_rules() {
    let s = scanner();
    let regex_rules = s
        .rules()
        .rules()
        .iter()
        .filter(|r| !r.is_synthetic())
        .count();
    assert!(regex_rules >= 450, "only {regex_rules} regex rules");
}

#[test]
fn the_provider_table_lists_every_rule() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rules/README.md"))
        .expect("rules/README.md");
    let table: BTreeSet<&str> = readme
        .lines()
        .filter(|l| l.starts_with("| "))
        .flat_map(|l| l.split('`').skip(1).step_by(2))
        .collect();
    let s = scanner();
    let missing: Vec<&str> = s
        .rules()
        .rules()
        .iter()
        .filter(|r| !r.is_synthetic())
        .map(|r| r.spec.id.as_str())
        .filter(|id| !table.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "rules missing from the provider table of rules/README.md (run scripts/provider-table): {missing:?}"
    );
}

#[test]
fn every_rule_file_is_listed() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir)
        .expect("rules dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    let listed: BTreeSet<String> = BUILTIN_RULE_FILES
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(
        on_disk, listed,
        "rules/*.toml and src/rules/builtin.rs disagree"
    );
    for (name, text) in BUILTIN_RULE_FILES {
        let disk = std::fs::read_to_string(format!("{dir}/{name}")).expect("read");
        assert_eq!(&disk, text, "{name} differs from its embedded copy");
    }
}

#[test]
fn every_example_and_negative_example_behaves_through_the_full_scanner() {
    let s = scanner();
    let failures = check_rules(&s, |_| true);
    let report: Vec<String> = failures
        .iter()
        .map(|f| format!("{}: {}", f.rule, f.message))
        .collect();
    assert!(
        report.is_empty(),
        "{} problems:\n{}",
        report.len(),
        report.join("\n")
    );
}

#[test]
fn every_rule_has_examples_references_and_keywords() {
    let s = scanner();
    // Decoder rules (unsafe pickle imports) have no regex; the artifact tests cover them.
    for r in s.rules().rules().iter().filter(|r| !r.is_synthetic()) {
        assert!(
            r.spec.examples.len() >= 2,
            "{}: fewer than 2 examples",
            r.id()
        );
        assert!(
            !r.spec.negative_examples.is_empty(),
            "{}: no negative examples",
            r.id()
        );
        assert!(
            !r.spec.keywords.is_empty(),
            "{}: no keywords (runs on every byte)",
            r.id()
        );
        if r.spec.category != "generic" {
            assert!(!r.spec.references.is_empty(), "{}: no reference", r.id());
        }
    }
}

#[test]
fn covers_the_ai_and_classic_secret_surface() {
    let s = scanner();
    let ids: Vec<&str> = s.rules().rules().iter().map(|r| r.id()).collect();
    let providers = [
        "openai.",
        "anthropic.",
        "google.",
        "azure-openai.",
        "mistral.",
        "cohere.",
        "groq.",
        "together.",
        "perplexity.",
        "xai.",
        "deepseek.",
        "fireworks.",
        "openrouter.",
        "replicate.",
        "voyage.",
        "huggingface.",
        "dockerhub.",
        "pinecone.",
        "weaviate.",
        "qdrant.",
        "wandb.",
        "comet.",
        "neptune.",
        "langsmith.",
        "clearml.",
        "databricks.",
        "snowflake.",
        "database.",
        "aws.",
        "gcp.",
        "azure.",
        "digitalocean.",
        "cloudflare.",
        "github.",
        "gitlab.",
        "bitbucket.",
        "npm.",
        "pypi.",
        "rubygems.",
        "crates-io.",
        "nuget.",
        "slack.",
        "discord.",
        "telegram.",
        "twilio.",
        "sendgrid.",
        "mailgun.",
        "stripe.",
        "shopify.",
        "atlassian.",
        "linear.",
        "notion.",
        "datadog.",
        "sentry.",
        "private-key.",
        "jwt.",
        "generic.",
    ];
    let missing: Vec<&str> = providers
        .iter()
        .copied()
        .filter(|p| !ids.iter().any(|id| id.starts_with(p)))
        .collect();
    assert!(missing.is_empty(), "no rule for {missing:?}");
    for id in [
        "github.personal-access-token",
        "github.oauth-token",
        "github.user-to-server-token",
        "github.app-installation-token",
        "github.refresh-token",
        "github.fine-grained-pat",
        "aws.access-key-id",
        "aws.secret-access-key",
        "aws.session-token",
    ] {
        assert!(ids.contains(&id), "missing rule {id}");
    }
    for label in ["RSA", "EC", "OPENSSH", "PGP", "PKCS8", "ENCRYPTED"] {
        let any = s.rules().rules().iter().any(|r| {
            r.spec.category == "private-key"
                && r.spec.examples.iter().any(|e| match label {
                    "PKCS8" => e.contains("BEGIN PRIVATE KEY"),
                    "PGP" => e.contains("PGP PRIVATE KEY"),
                    _ => e.contains(&format!("BEGIN {label} PRIVATE KEY")),
                })
        });
        assert!(any, "no private-key rule example for {label}");
    }
}

#[test]
fn rules_check_command_accepts_good_files_and_reports_bad_examples() {
    let t = Tree::new();
    let good = t.write(
        "good.toml",
        r#"
[[rules]]
id = "acme.api-key"
name = "Acme API key"
category = "saas"
severity = "high"
regex = '''\b(?P<secret>acme_[a-z0-9]{24})\b'''
keywords = ["acme_"]
entropy = 3.0
examples = ["ACME_KEY=acme_q3x9wplm2rt7yvbn4kc8hd1j"]
negative_examples = ["ACME_KEY=acme_short"]
"#,
    );
    let o = trawl(["rules", "check", good.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout(&o).contains("1 rule checked, 0 problems"));

    let bad = t.write(
        "bad.toml",
        r#"
[[rules]]
id = "acme.api-key"
name = "Acme API key"
category = "saas"
severity = "high"
regex = '''\b(?P<secret>acme_[a-z0-9]{24})\b'''
keywords = ["acme_"]
examples = ["ACME_KEY=acme_tooshort"]
negative_examples = ["ACME_KEY=acme_q3x9wplm2rt7yvbn4kc8hd1j"]
"#,
    );
    let o = trawl(["rules", "check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("example not reported"), "{err}");
    assert!(err.contains("negative example reported"), "{err}");

    let broken = t.write(
        "broken.toml",
        "[[rules]]\nid = \"x\"\nname = \"X\"\ncategory = \"saas\"\nseverity = \"high\"\nregex = '''(unclosed'''\n",
    );
    let o = trawl(["rules", "check", broken.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn rules_list_prints_the_catalogue() {
    let o = trawl(["rules", "list"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.contains("huggingface.user-token"));
    let o = trawl(["rules", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(v.as_array().map_or(0, |a| a.len()) >= 120);
}

/// Wraps text as a Jupyter notebook cell source, a protocol-2 pickle string and a zip member.
fn wrappings(text: &str) -> Vec<(&'static str, Vec<u8>)> {
    let nb = serde_json::json!({
        "cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": null,
                   "source": text.split_inclusive('\n').collect::<Vec<_>>()}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5
    });
    let mut pickle = b"\x80\x02X".to_vec();
    pickle.extend_from_slice(&(text.len() as u32).to_le_bytes());
    pickle.extend_from_slice(text.as_bytes());
    pickle.extend_from_slice(b"q\x00.");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file(
        "config/example.txt",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    std::io::Write::write_all(&mut zip, text.as_bytes()).unwrap();
    let zip = zip.finish().unwrap().into_inner();
    vec![
        ("notebook", serde_json::to_vec_pretty(&nb).unwrap()),
        ("pickle", pickle),
        ("zip", zip),
    ]
}

#[test]
fn every_example_is_found_inside_a_notebook_a_pickle_and_a_zip() {
    let s = scanner();
    let mut w = s.worker();
    let limits = trawl::content::Limits::default();
    let mut problems = Vec::new();
    for (i, rule) in s.rules().rules().iter().enumerate() {
        for ex in &rule.spec.examples {
            for (how, data) in wrappings(ex) {
                let found = trawl::content::scan_content(&mut w, &data, &limits);
                if !found.placed.iter().any(|p| p.rule == i) {
                    problems.push(format!("{} in a {how}: {ex:?}", rule.id()));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} examples missed:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn revocation_pages_are_https_and_the_big_providers_have_one() {
    use trawl::org::forge::http::Origin;
    let s = scanner();
    let mut with_page = BTreeSet::new();
    for r in s.rules().rules() {
        if let Some(url) = &r.info().revoke {
            let origin = Origin::of(url);
            assert!(
                origin.is_some_and(|o| o.scheme == "https" && o.host.contains('.')),
                "{}: revoke must be an absolute https URL, got {url}",
                r.id()
            );
            with_page.insert(r.id().to_string());
        }
    }
    for id in [
        "huggingface.user-token",
        "github.personal-access-token",
        "github.fine-grained-pat",
        "gitlab.personal-access-token",
        "openai.api-key",
        "anthropic.api-key",
        "aws.access-key-id",
        "gcp.api-key",
        "slack.bot-token",
        "stripe.secret-key",
        "npm.access-token",
        "sendgrid.api-key",
        "twilio.api-key",
        "sentry.user-auth-token",
        "datadog.api-key",
        "pinecone.api-key",
        "wandb.api-key",
        "cohere.api-key",
        "mistral.api-key",
        "groq.api-key",
        "replicate.api-token",
        "together.api-key",
        "langsmith.api-key",
    ] {
        assert!(with_page.contains(id), "{id} has no revocation page");
    }
}
