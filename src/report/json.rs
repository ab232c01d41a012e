//! JSON report (`{"findings": [...]}`) and JSON lines (one finding object per line).

use std::borrow::Cow;
use std::io::{self, Write};

use serde::Serialize;

use super::ReportContext;
use crate::findings::Finding;

#[derive(Serialize)]
struct JsonLocation<'a> {
    /// The repository, in scans of many (`trawl org merge`).
    #[serde(skip_serializing_if = "Option::is_none")]
    repository: Option<Cow<'a, str>>,
    path: String,
    line: Option<usize>,
    column: Option<usize>,
    end_line: Option<usize>,
    end_column: Option<usize>,
    offset: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    member: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cell: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<Cow<'a, str>>,
    /// Record index in a record log (TensorBoard events, W&B run log).
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<u64>,
    /// Row index in a table (Parquet); the column is `key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    row: Option<u64>,
    /// Set when the secret is in a name (`path`, `member` or `key`), not in content.
    #[serde(skip_serializing_if = "Option::is_none")]
    in_name: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    /// Set when the secret was found by decoding the text at the location: the encodings,
    /// outermost first (`base64`, `base64+hex`).
    #[serde(skip_serializing_if = "Option::is_none")]
    decoded: Option<&'a str>,
    snippet: String,
    fingerprint: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    author: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    date: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    rule: &'a str,
    name: &'a str,
    category: &'a str,
    severity: &'a str,
    secret: String,
    fingerprint: &'a str,
    /// What the provider said, with `--verify`.
    #[serde(skip_serializing_if = "Option::is_none")]
    verification: Option<&'a crate::verify::Verification>,
    locations: Vec<JsonLocation<'a>>,
}

fn finding<'a>(ctx: &'a ReportContext, f: &'a Finding) -> JsonFinding<'a> {
    let rule = &f.rule;
    JsonFinding {
        rule: &rule.id,
        name: &rule.name,
        category: rule.category.as_str(),
        severity: rule.severity.as_str(),
        secret: ctx.secret_of(f),
        fingerprint: &f.fingerprint,
        verification: f.verification.as_ref(),
        locations: f
            .locations
            .iter()
            .map(|l| JsonLocation {
                repository: l.repository.as_deref().map(|r| ctx.text(r)),
                path: ctx.path(l),
                line: l.position.map(|p| p.line),
                column: l.position.map(|p| p.column),
                end_line: l.position.map(|p| p.end_line),
                end_column: l.position.map(|p| p.end_column),
                offset: l.offset,
                member: l.member.as_deref().map(|m| ctx.text(m)),
                cell: l.extra.cell,
                output: l.extra.output,
                key: l.extra.key.as_deref().map(|k| ctx.text(k)),
                record: l.extra.record,
                row: l.extra.row,
                in_name: l.extra.name.map(|n| n.as_str()),
                message: l.extra.message.as_deref(),
                decoded: l.extra.decoded.as_deref(),
                snippet: ctx.snippet(l),
                fingerprint: &l.fingerprint,
                commit: l.provenance.commit().map(|c| c.id.as_str()),
                author: l.provenance.commit().map(|c| ctx.text(&c.author)),
                email: l.provenance.commit().map(|c| ctx.text(&c.email)),
                date: l.provenance.commit().map(|c| c.date.as_str()),
            })
            .collect(),
    }
}

pub fn write(
    ctx: &ReportContext,
    findings: &[Finding],
    out: &mut dyn Write,
    lines: bool,
) -> io::Result<()> {
    if lines {
        for f in findings {
            serde_json::to_writer(&mut *out, &finding(ctx, f))?;
            writeln!(out)?;
        }
        return Ok(());
    }
    #[derive(Serialize)]
    struct Doc<'a> {
        tool: &'static str,
        version: &'static str,
        findings: Vec<JsonFinding<'a>>,
    }
    let doc = Doc {
        tool: "trawl",
        version: env!("CARGO_PKG_VERSION"),
        findings: findings.iter().map(|f| finding(ctx, f)).collect(),
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}
