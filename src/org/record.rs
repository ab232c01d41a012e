//! The lines of a shard's output (`shard-I.jsonl.gz`): one finding of one repository a line,
//! secrets redacted, everything a report needs kept, so that `trawl org merge` rebuilds the
//! findings and writes any report format with the reporters of a single scan.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::findings::{Finding, Location, What};
use crate::report::{ReportContext, DEFAULT_REDACT_KEEP};
use crate::rules::{Category, RuleInfo, Severity};
use crate::source::{CommitMeta, PathName, Provenance};
use crate::state::Place;

/// One finding of one repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The repository's clone URL.
    pub repository: String,
    /// Rule id.
    pub rule: String,
    /// Rule name, category and severity when the shard ran (merge prefers its own rules').
    pub name: String,
    /// Rule category.
    pub category: String,
    /// Rule severity.
    pub severity: String,
    /// `secret`, or `code` for unsafe code.
    pub kind: String,
    /// The secret redacted (the callable, for unsafe code).
    pub shown: String,
    /// Secret fingerprint.
    pub fingerprint: String,
    /// Places in this repository.
    pub locations: Vec<RecordLocation>,
}

/// One place of a [`Record`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordLocation {
    /// Path as of the commit.
    pub path: String,
    /// Introducing commit, when a ref reaches the blob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<RecordCommit>,
    /// Where in the blob, with a redacted snippet.
    #[serde(flatten)]
    pub place: Place,
    /// Location fingerprint (as `trawl git` gives it for the repository).
    pub fingerprint: String,
}

/// A commit of a [`RecordLocation`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordCommit {
    /// Commit id.
    pub id: String,
    /// Author.
    pub author: String,
    /// Author email.
    pub email: String,
    /// Author date.
    pub date: String,
    /// Author time (seconds since the epoch).
    pub time: i64,
}

/// The record of `f`, found in `repository`: secrets redacted as reports redact them by
/// default (the same text whether the secret was found now or read from the state store).
pub fn record(repository: &str, f: &Finding) -> Record {
    let ctx = ReportContext {
        redact_keep: DEFAULT_REDACT_KEEP,
        ..ReportContext::default()
    };
    Record {
        repository: repository.to_string(),
        rule: f.rule.id.clone(),
        name: f.rule.name.clone(),
        category: f.rule.category.as_str().to_string(),
        severity: f.rule.severity.as_str().to_string(),
        kind: match f.what {
            What::UnsafeCode(_) => "code",
            _ => "secret",
        }
        .to_string(),
        shown: ctx.secret_of(f),
        fingerprint: f.fingerprint.clone(),
        locations: f
            .locations
            .iter()
            .map(|l| RecordLocation {
                path: l.provenance.path().to_string(),
                commit: l.provenance.commit().map(|c| RecordCommit {
                    id: c.id.clone(),
                    author: c.author.clone(),
                    email: c.email.clone(),
                    date: c.date.clone(),
                    time: c.time,
                }),
                place: Place::new(
                    l.offset,
                    l.position,
                    l.member.as_deref(),
                    &l.extra,
                    ctx.snippet(l),
                ),
                fingerprint: l.fingerprint.clone(),
            })
            .collect(),
    }
}

/// The finding of a record, its rule's metadata from `rule` when the merging run knows the
/// rule, else from the record.
pub fn finding(r: &Record, rule: Option<Arc<RuleInfo>>) -> Finding {
    let rule = rule.unwrap_or_else(|| {
        Arc::new(RuleInfo {
            id: r.rule.clone(),
            name: r.name.clone(),
            category: Category::parse(&r.category).unwrap_or(Category::Generic),
            severity: r.severity.parse().unwrap_or(Severity::High),
            references: Vec::new(),
            revoke: None,
            verify: None,
        })
    });
    let repository: Arc<str> = Arc::from(r.repository.as_str());
    let locations = r
        .locations
        .iter()
        .map(|l| Location {
            provenance: Provenance::Git {
                commit: l.commit.as_ref().map(|c| {
                    Arc::new(CommitMeta {
                        time: c.time,
                        id: c.id.clone(),
                        author: c.author.clone(),
                        email: c.email.clone(),
                        date: c.date.clone(),
                    })
                }),
                path: PathName::from_bytes(l.path.as_bytes()),
            },
            member: l.place.member.clone(),
            position: l.place.position(),
            offset: l.place.offset,
            extra: l.place.extra(),
            snippet: l.place.snippet.clone().into_bytes(),
            snippet_secret: 0..0,
            snippet_others: Vec::new(),
            fingerprint: l.fingerprint.clone(),
            snippet_redacted: true,
            repository: Some(repository.clone()),
        })
        .collect();
    Finding {
        rule,
        what: if r.kind == "code" {
            What::UnsafeCode(r.shown.clone())
        } else {
            What::Redacted(r.shown.clone())
        },
        fingerprint: r.fingerprint.clone(),
        locations,
        verification: None,
    }
}
