//! The credential register (issue 14): one row per distinct credential — a secret fingerprint —
//! with its provider, rule, verification, first and last sighting, every place it was seen and
//! the page where its owner revokes it.
//!
//! Contract: the register is built from a JSON or JSON lines report of `trawl scan`, `trawl
//! git` or `trawl org merge` ([`parse_report`]); a fresh scan is first written as such a
//! report (redacted), so both inputs take one path and no secret can reach the register: it
//! holds the fingerprint and at most [`crate::report::DEFAULT_REDACT_KEEP`] leading characters
//! of a secret, even when the report showed secrets in clear. A report is hostile input (a CI
//! artifact): it is read within a size bound, errors never quote it, and every value written
//! to CSV is neutralised against formula injection ([`csv`]). Findings of unsafe code (pickle
//! imports, Keras Lambda layers) are not credentials and are left out.

pub mod csv;
pub mod github;

use std::collections::HashMap;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::report::{redact_keep, DEFAULT_REDACT_KEEP};
use crate::rules::{Severity, KERAS_LAMBDA, PICKLE_DANGEROUS, PICKLE_UNKNOWN};
use crate::verify::Verification;

/// The largest report read by `trawl inventory --from`.
pub const MAX_REPORT_BYTES: u64 = 256 << 20;

/// The verification status of a credential the report says nothing about.
pub const UNVERIFIED: &str = "unverified";

/// The columns of the register, in order (CSV header; JSON keys).
pub const COLUMNS: [&str; 18] = [
    "provider",
    "rule",
    "name",
    "severity",
    "fingerprint",
    "secret",
    "status",
    "owner",
    "scopes",
    "expires",
    "verified_at",
    "first_seen_date",
    "first_seen_commit",
    "last_seen_date",
    "last_seen_commit",
    "location_count",
    "locations",
    "revoke",
];

/// One finding as a trawl JSON report writes it (the fields the register needs).
#[derive(Debug, Deserialize)]
pub struct ReportFinding {
    /// Rule id.
    pub rule: String,
    /// Rule name.
    pub name: String,
    /// `critical` … `info`.
    pub severity: Severity,
    /// The secret as the report shows it (redacted unless the report was asked otherwise).
    #[serde(default)]
    pub secret: String,
    /// Secret fingerprint.
    pub fingerprint: String,
    /// What the provider said, when the report was made with `--verify`.
    #[serde(default)]
    pub verification: Option<Verification>,
    /// Where it was seen.
    #[serde(default)]
    pub locations: Vec<Place>,
}

/// One place a credential was seen.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Place {
    /// The repository, in reports of `trawl org merge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Path (with `!member` for archive members).
    pub path: String,
    /// 1-based line, when the content has lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The commit that introduced it, for history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The commit's author date (`YYYY-MM-DDTHH:MM:SSZ`), for history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
}

impl Place {
    /// `[repository ]path[:line][@commit]`, as the CSV cell lists it.
    pub fn label(&self) -> String {
        let mut s = String::new();
        if let Some(r) = &self.repository {
            s.push_str(r);
            s.push(' ');
        }
        s.push_str(&self.path);
        if let Some(l) = self.line {
            s.push_str(&format!(":{l}"));
        }
        if let Some(c) = &self.commit {
            s.push('@');
            s.push_str(c);
        }
        s
    }
}

/// One row of the register.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Credential {
    /// The rule id's first segment (`huggingface`, `github`, `aws`): rule ids are
    /// `<provider>.<kind>`.
    pub provider: String,
    /// Rule id.
    pub rule: String,
    /// Rule name.
    pub name: String,
    /// Severity of the rule.
    pub severity: Severity,
    /// Secret fingerprint: the row's identity.
    pub fingerprint: String,
    /// At most a few leading characters of the secret, then `*****`.
    pub secret: String,
    /// `live`, `invalid`, `unknown`, `error`, or [`UNVERIFIED`].
    pub status: String,
    /// Owner, as the provider said.
    pub owner: Option<String>,
    /// Scopes, as the provider said.
    pub scopes: Vec<String>,
    /// Expiry, as the provider said.
    pub expires: Option<String>,
    /// When the provider was asked (RFC 3339), when it was.
    pub verified_at: Option<String>,
    /// Author date of the earliest dated place (history only).
    pub first_seen_date: Option<String>,
    /// Its commit.
    pub first_seen_commit: Option<String>,
    /// Author date of the latest dated place (history only).
    pub last_seen_date: Option<String>,
    /// Its commit.
    pub last_seen_commit: Option<String>,
    /// Number of places.
    pub location_count: usize,
    /// Every place, in report order.
    pub locations: Vec<Place>,
    /// Where the owner revokes or rotates it (the rule's `revoke`, https only).
    pub revoke: Option<String>,
}

/// Why a report could not be read. Never quotes the report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Not JSON, or not shaped as a trawl report.
    #[error("not a trawl JSON or JSON lines report ({0})")]
    Malformed(String),
}

/// Where serde stopped, in words that hold no byte of the input.
fn position(e: &serde_json::Error, line_offset: usize) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Io => "read error",
        Category::Syntax => "syntax error",
        Category::Data => "unexpected value",
        Category::Eof => "unexpected end",
    };
    format!(
        "{what} at line {}, column {}",
        e.line() + line_offset,
        e.column()
    )
}

/// The findings of a JSON report (`{"findings": [...]}`) or of JSON lines (one finding a
/// line), told apart by the first non-empty line: a whole finding there means JSON lines.
pub fn parse_report(text: &str) -> Result<Vec<ReportFinding>, ReportError> {
    #[derive(Deserialize)]
    struct Doc {
        findings: Vec<ReportFinding>,
    }
    let first = text.lines().find(|l| !l.trim().is_empty());
    let Some(first) = first else {
        return Err(ReportError::Malformed("empty".into()));
    };
    if serde_json::from_str::<ReportFinding>(first).is_err() {
        return serde_json::from_str::<Doc>(text)
            .map(|d| d.findings)
            .map_err(|e| ReportError::Malformed(position(&e, 0)));
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f = serde_json::from_str::<ReportFinding>(line)
            .map_err(|e| ReportError::Malformed(position(&e, i)))?;
        out.push(f);
    }
    Ok(out)
}

/// Whether a rule finds credentials (not unsafe code in an artifact).
pub fn is_credential_rule(id: &str) -> bool {
    ![PICKLE_DANGEROUS, PICKLE_UNKNOWN, KERAS_LAMBDA].contains(&id)
}

/// A secret as the register shows it: at most [`DEFAULT_REDACT_KEEP`] leading characters
/// of what the report showed before its `*****`; a secret the report showed in clear is
/// redacted here.
fn shown_secret(reported: &str) -> String {
    match reported.strip_suffix("*****") {
        Some(prefix) if !prefix.contains('*') => {
            let keep: String = prefix.chars().take(DEFAULT_REDACT_KEEP).collect();
            format!("{keep}*****")
        }
        _ => redact_keep(reported.as_bytes(), DEFAULT_REDACT_KEEP),
    }
}

/// A revocation page worth writing: an absolute https URL without spaces or controls.
fn https_page(url: &str) -> Option<String> {
    let origin = crate::org::forge::http::Origin::of(url)?;
    (origin.scheme == "https").then(|| url.to_string())
}

/// The register of `findings`: one row per secret fingerprint (the places of findings that
/// share one are joined), credentials only, most severe first, then by provider, rule and
/// fingerprint. `revoke` gives a rule's revocation page by rule id.
pub fn register(
    findings: Vec<ReportFinding>,
    revoke: &dyn Fn(&str) -> Option<String>,
) -> Vec<Credential> {
    let mut rows: Vec<Credential> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for f in findings {
        if !is_credential_rule(&f.rule) {
            continue;
        }
        if let Some(&i) = index.get(&f.fingerprint) {
            let row = &mut rows[i];
            row.locations.extend(f.locations);
            if row.status == UNVERIFIED {
                if let Some(v) = f.verification {
                    set_verification(row, v);
                }
            }
            continue;
        }
        let mut row = Credential {
            provider: f.rule.split('.').next().unwrap_or_default().to_string(),
            revoke: revoke(&f.rule).and_then(|u| https_page(&u)),
            rule: f.rule,
            name: f.name,
            severity: f.severity,
            secret: shown_secret(&f.secret),
            status: UNVERIFIED.to_string(),
            owner: None,
            scopes: Vec::new(),
            expires: None,
            verified_at: None,
            first_seen_date: None,
            first_seen_commit: None,
            last_seen_date: None,
            last_seen_commit: None,
            location_count: 0,
            locations: f.locations,
            fingerprint: f.fingerprint,
        };
        if let Some(v) = f.verification {
            set_verification(&mut row, v);
        }
        index.insert(row.fingerprint.clone(), rows.len());
        rows.push(row);
    }
    for row in &mut rows {
        row.location_count = row.locations.len();
        seen(row);
    }
    rows.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.provider.cmp(&b.provider))
            .then_with(|| a.rule.cmp(&b.rule))
            .then_with(|| a.fingerprint.cmp(&b.fingerprint))
    });
    rows
}

fn set_verification(row: &mut Credential, v: Verification) {
    row.status = v.status.as_str().to_string();
    row.owner = v.owner;
    row.scopes = v.scopes;
    row.expires = v.expires;
    row.verified_at = v.checked;
}

/// First and last seen: the places with the earliest and the latest valid author date (the
/// first in report order on a tie). Places without a date (files) or with one that does not
/// parse leave them empty.
fn seen(row: &mut Credential) {
    let mut first: Option<(i64, &Place)> = None;
    let mut last: Option<(i64, &Place)> = None;
    for p in &row.locations {
        let Some(t) = p
            .date
            .as_deref()
            .and_then(|d| crate::dates::parse_date(d).ok())
        else {
            continue;
        };
        if first.is_none_or(|(f, _)| t < f) {
            first = Some((t, p));
        }
        if last.is_none_or(|(l, _)| t > l) {
            last = Some((t, p));
        }
    }
    let (fd, fc) = split(first);
    let (ld, lc) = split(last);
    (row.first_seen_date, row.first_seen_commit) = (fd, fc);
    (row.last_seen_date, row.last_seen_commit) = (ld, lc);
}

fn split(p: Option<(i64, &Place)>) -> (Option<String>, Option<String>) {
    match p {
        Some((_, p)) => (p.date.clone(), p.commit.clone()),
        None => (None, None),
    }
}

/// Writes the register as one JSON document: `{"tool", "version", "columns", "credentials":
/// [...]}`, each credential an object with [`COLUMNS`] as keys (absent values `null`; scopes
/// and locations arrays).
pub fn write_json(rows: &[Credential], out: &mut dyn Write) -> io::Result<()> {
    #[derive(Serialize)]
    struct Doc<'a> {
        tool: &'static str,
        version: &'static str,
        columns: &'static [&'static str],
        credentials: &'a [Credential],
    }
    let doc = Doc {
        tool: "trawl",
        version: env!("CARGO_PKG_VERSION"),
        columns: &COLUMNS,
        credentials: rows,
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

/// Writes the register as CSV (RFC 4180, a header row of [`COLUMNS`]); scopes and places are
/// joined with `; `.
pub fn write_csv(rows: &[Credential], out: &mut dyn Write) -> io::Result<()> {
    csv::write_row(out, COLUMNS.iter().map(|c| c.to_string()))?;
    for r in rows {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        csv::write_row(
            out,
            [
                r.provider.clone(),
                r.rule.clone(),
                r.name.clone(),
                r.severity.as_str().to_string(),
                r.fingerprint.clone(),
                r.secret.clone(),
                r.status.clone(),
                opt(&r.owner),
                r.scopes.join("; "),
                opt(&r.expires),
                opt(&r.verified_at),
                opt(&r.first_seen_date),
                opt(&r.first_seen_commit),
                opt(&r.last_seen_date),
                opt(&r.last_seen_commit),
                r.location_count.to_string(),
                r.locations
                    .iter()
                    .map(Place::label)
                    .collect::<Vec<_>>()
                    .join("; "),
                opt(&r.revoke),
            ],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(fp: &str, places: &[(&str, Option<&str>)]) -> ReportFinding {
        ReportFinding {
            rule: "github.personal-access-token".into(),
            name: "GitHub PAT".into(),
            severity: Severity::High,
            secret: "ghp_*****".into(),
            fingerprint: fp.into(),
            verification: None,
            locations: places
                .iter()
                .map(|(path, date)| Place {
                    repository: None,
                    path: path.to_string(),
                    line: Some(1),
                    commit: date.map(|d| format!("c{}", &d[..4])),
                    date: date.map(str::to_string),
                })
                .collect(),
        }
    }

    #[test]
    fn one_row_per_fingerprint_with_first_and_last_seen() {
        let rows = register(
            vec![
                finding(
                    "a",
                    &[
                        ("x", Some("2022-01-01T00:00:00Z")),
                        ("y", Some("not a date")),
                    ],
                ),
                finding(
                    "a",
                    &[
                        ("z", Some("2020-06-01T00:00:00Z")),
                        ("w", Some("2023-01-01T00:00:00Z")),
                    ],
                ),
                finding("b", &[("f", None)]),
            ],
            &|_| Some("http://insecure.example/".into()),
        );
        assert_eq!(rows.len(), 2);
        let a = rows.iter().find(|r| r.fingerprint == "a").unwrap();
        assert_eq!(a.location_count, 4);
        assert_eq!(a.first_seen_commit.as_deref(), Some("c2020"));
        assert_eq!(a.last_seen_date.as_deref(), Some("2023-01-01T00:00:00Z"));
        assert_eq!(a.provider, "github");
        assert_eq!(a.revoke, None, "only https pages are written");
        let b = rows.iter().find(|r| r.fingerprint == "b").unwrap();
        assert_eq!(
            (b.first_seen_date.as_deref(), b.status.as_str()),
            (None, UNVERIFIED)
        );
    }

    #[test]
    fn secrets_in_clear_are_redacted_and_redacted_ones_shortened() {
        assert_eq!(shown_secret("ghp_*****"), "ghp_*****");
        assert_eq!(shown_secret("ghp_abcd*****"), "ghp_*****");
        assert_eq!(shown_secret("*****"), "*****");
        assert_eq!(
            shown_secret("hf_abcdefghijklmnopqrstuvwxyzabcdefgh"),
            "hf_a*****"
        );
        assert_eq!(shown_secret("short"), "*****");
    }

    #[test]
    fn malformed_reports_are_errors_that_quote_nothing() {
        for bad in [
            "",
            "not json MARKER",
            "{\"findings\": [{\"rule\": 5, \"x\": \"MARKER\"}]}",
            "{\"findings\": \"MARKER\"}",
        ] {
            let e = parse_report(bad).unwrap_err().to_string();
            assert!(!e.contains("MARKER"), "{e}");
        }
        let line = r#"{"rule":"r.x","name":"n","severity":"high","secret":"*****","fingerprint":"f","locations":[]}"#;
        let two = format!("{line}\n\n{line}\n");
        assert_eq!(parse_report(&two).unwrap().len(), 2);
        let broken = format!("{line}\n{{\"rule\": \"MARKER\"\n");
        let e = parse_report(&broken).unwrap_err().to_string();
        assert!(e.contains("line 2") && !e.contains("MARKER"), "{e}");
    }
}
