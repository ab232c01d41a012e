//! SARIF 2.1.0: one run; the rules that fired in `tool.driver.rules`; one result per location
//! with both fingerprints in `partialFingerprints`; snippets redacted unless asked.
//!
//! Kept within GitHub code scanning's upload limits: at most [`MAX_RESULTS`] results per run.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;
use serde_json::{json, Value};

use super::ReportContext;
use crate::findings::{Finding, Location};
use crate::rules::{Category, RuleInfo, Severity};

/// GitHub code scanning accepts at most 25,000 results per run.
pub const MAX_RESULTS: usize = 25_000;

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Log {
    #[serde(rename = "$schema")]
    schema: &'static str,
    version: &'static str,
    runs: Vec<Run>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Run {
    tool: Tool,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_uri_base_ids: Option<Value>,
    results: Vec<SarifResult>,
    column_kind: &'static str,
}

#[derive(Serialize)]
struct Tool {
    driver: Driver,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Driver {
    name: &'static str,
    version: &'static str,
    semantic_version: &'static str,
    rules: Vec<ReportingDescriptor>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReportingDescriptor {
    id: String,
    name: String,
    short_description: Message,
    full_description: Message,
    #[serde(skip_serializing_if = "Option::is_none")]
    help_uri: Option<String>,
    help: Message,
    default_configuration: Value,
    properties: Value,
}

#[derive(Serialize)]
struct Message {
    text: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult {
    rule_id: String,
    rule_index: usize,
    level: &'static str,
    message: Message,
    locations: Vec<Value>,
    partial_fingerprints: BTreeMap<&'static str, String>,
    properties: Value,
}

fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "1.0",
    }
}

/// `huggingface.user-token` → `HuggingfaceUserToken`: SARIF wants an identifier-like name.
fn pascal_case(id: &str) -> String {
    id.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Percent-encodes a relative path as a URI reference (keeps `/` and `!` of member chains).
pub fn uri_encode(path: &str) -> String {
    let mut s = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn descriptor(spec: &RuleInfo) -> ReportingDescriptor {
    let help = format!(
        "{} ({}). Revoke or rotate the credential, then remove it from the code and its history. \
         Category: {}.",
        spec.name, spec.id, spec.category
    );
    ReportingDescriptor {
        id: spec.id.clone(),
        name: pascal_case(&spec.id),
        short_description: Message {
            text: spec.name.clone(),
        },
        full_description: Message {
            text: format!("{} leaked in source or artifacts.", spec.name),
        },
        help_uri: spec.references.first().cloned(),
        help: Message { text: help },
        default_configuration: json!({ "level": spec.severity.sarif_level() }),
        properties: json!({
            "tags": ["security", if spec.category == Category::UnsafeCode { "unsafe-code" } else { "secret" }, spec.category.as_str()],
            "precision": if spec.category == Category::Generic { "medium" } else { "high" },
            "security-severity": security_severity(spec.severity),
        }),
    }
}

fn location(ctx: &ReportContext, loc: &Location) -> Value {
    let mut region = match loc.position {
        // Columns in UTF-16 code units, as `columnKind` says; byte columns in properties.
        Some(p) => json!({
            "startLine": p.line,
            "startColumn": p.column_utf16,
            "endLine": p.end_line,
            "endColumn": p.end_column_utf16,
        }),
        None => json!({ "byteOffset": loc.offset }),
    };
    let snippet = ctx.snippet(loc);
    if !snippet.is_empty() {
        region["snippet"] = json!({ "text": snippet });
    }
    let path = ctx.path(loc);
    let path = path.as_str();
    let artifact = if path.starts_with('/') {
        json!({ "uri": format!("file://{}", uri_encode(path)) })
    } else if ctx.root_uri.is_some() {
        json!({ "uri": uri_encode(path), "uriBaseId": "%SRCROOT%" })
    } else {
        json!({ "uri": uri_encode(path) })
    };
    if loc.extra.name.is_some() {
        // The secret is in the name, not at a place in the file's content.
        return json!({ "physicalLocation": { "artifactLocation": artifact } });
    }
    json!({ "physicalLocation": { "artifactLocation": artifact, "region": region } })
}

fn result_properties(ctx: &ReportContext, rule: &RuleInfo, f: &Finding, loc: &Location) -> Value {
    let mut p = json!({
        "severity": rule.severity.as_str(),
        "category": rule.category.as_str(),
        "locationsOfSecret": f.locations.len(),
        "byteOffset": loc.offset,
    });
    if let Some(pos) = loc.position {
        p["byteColumn"] = json!(pos.column);
        p["byteEndColumn"] = json!(pos.end_column);
    }
    if let Some(m) = &loc.member {
        p["member"] = json!(ctx.text(m));
    }
    if let Some(c) = loc.extra.cell {
        p["cell"] = json!(c);
    }
    if let Some(o) = loc.extra.output {
        p["output"] = json!(o);
    }
    if let Some(k) = &loc.extra.key {
        p["key"] = json!(ctx.text(k));
    }
    if let Some(r) = loc.extra.record {
        p["record"] = json!(r);
    }
    if let Some(r) = loc.extra.row {
        p["row"] = json!(r);
    }
    if let Some(m) = &loc.extra.message {
        p["detail"] = json!(m);
    }
    if let Some(n) = loc.extra.name {
        p["inName"] = json!(n.as_str());
    }
    if let Some(d) = &loc.extra.decoded {
        p["decoded"] = json!(d);
    }
    if let Some(r) = &loc.repository {
        p["repository"] = json!(ctx.text(r));
    }
    if let Some(c) = loc.provenance.commit() {
        p["commit"] = json!(c.id);
        p["author"] = json!(ctx.text(&c.author));
        p["email"] = json!(ctx.text(&c.email));
        p["date"] = json!(c.date);
    }
    if let Some(v) = &f.verification {
        p["verification"] = json!(v);
    }
    p
}

pub fn write(ctx: &ReportContext, findings: &[Finding], out: &mut dyn Write) -> io::Result<()> {
    // Rules that fired, in id order, with their index.
    let mut fired: Vec<&RuleInfo> = findings.iter().map(|f| &*f.rule).collect();
    fired.sort_by(|a, b| a.id.cmp(&b.id));
    fired.dedup_by(|a, b| a.id == b.id);
    let index_of = |id: &str| {
        fired
            .binary_search_by(|r| r.id.as_str().cmp(id))
            .unwrap_or(0)
    };
    let rules = fired.iter().map(|r| descriptor(r)).collect();

    let mut results = Vec::new();
    'outer: for f in findings {
        let rule = &*f.rule;
        let secret = ctx.secret_of(f);
        for loc in &f.locations {
            if results.len() >= MAX_RESULTS {
                break 'outer;
            }
            let mut fps = BTreeMap::new();
            fps.insert("secretFingerprint/v1", f.fingerprint.clone());
            fps.insert("locationFingerprint/v1", loc.fingerprint.clone());
            results.push(SarifResult {
                rule_id: rule.id.clone(),
                rule_index: index_of(&rule.id),
                level: rule.severity.sarif_level(),
                message: Message {
                    text: match loc.extra.name {
                        Some(n) => {
                            format!("{} found in a {} name: {secret}", rule.name, n.as_str())
                        }
                        None => match &loc.extra.decoded {
                            Some(d) => format!("{} found (decoded from {d}): {secret}", rule.name),
                            None => format!("{} found: {secret}", rule.name),
                        },
                    },
                },
                locations: vec![location(ctx, loc)],
                partial_fingerprints: fps,
                properties: result_properties(ctx, rule, f, loc),
            });
        }
    }
    let log = Log {
        schema: SCHEMA,
        version: "2.1.0",
        runs: vec![Run {
            tool: Tool {
                driver: Driver {
                    name: "trawl",
                    version: env!("CARGO_PKG_VERSION"),
                    semantic_version: env!("CARGO_PKG_VERSION"),
                    rules,
                },
            },
            original_uri_base_ids: ctx
                .root_uri
                .as_ref()
                .map(|u| json!({ "%SRCROOT%": { "uri": u } })),
            results,
            column_kind: "utf16CodeUnits",
        }],
    };
    serde_json::to_writer_pretty(&mut *out, &log)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_uris() {
        assert_eq!(
            pascal_case("huggingface.user-token"),
            "HuggingfaceUserToken"
        );
        assert_eq!(uri_encode("a b/c!d.py"), "a%20b/c!d.py");
    }
}
