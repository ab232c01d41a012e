//! JSON report (`{"findings": [...]}`) and JSON lines (one finding object per line).

use std::io::{self, Write};

use serde::Serialize;

use super::ReportContext;
use crate::findings::Finding;

#[derive(Serialize)]
struct JsonLocation<'a> {
    path: String,
    line: Option<usize>,
    column: Option<usize>,
    end_line: Option<usize>,
    end_column: Option<usize>,
    offset: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    member: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cell: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    snippet: String,
    fingerprint: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    author: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
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
        locations: f
            .locations
            .iter()
            .map(|l| JsonLocation {
                path: l.display_path(),
                line: l.position.map(|p| p.line),
                column: l.position.map(|p| p.column),
                end_line: l.position.map(|p| p.end_line),
                end_column: l.position.map(|p| p.end_column),
                offset: l.offset,
                member: l.member.as_deref(),
                cell: l.extra.cell,
                output: l.extra.output,
                key: l.extra.key.as_deref(),
                message: l.extra.message.as_deref(),
                snippet: ctx.snippet(l),
                fingerprint: &l.fingerprint,
                commit: l.provenance.commit().map(|c| c.id.as_str()),
                author: l.provenance.commit().map(|c| c.author.as_str()),
                email: l.provenance.commit().map(|c| c.email.as_str()),
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
