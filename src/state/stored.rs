//! What the state store keeps of one match: everything a report needs, the secret only as its
//! fingerprint and redacted form. [`Place`] is also how shard files (`org::record`) write a
//! location.

use serde::{Deserialize, Serialize};

use crate::findings::{secret_fingerprint, Extra, NameKind, Placed, Position};
use crate::report::{redact, redact_ranges, DEFAULT_REDACT_KEEP};
use crate::rules::Rule;

/// Where in an input a secret sits, and the facts a decoder added, with a redacted snippet.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// Byte offset of the secret (in `member` when set).
    pub offset: usize,
    /// Line, column, end line, end column, and the two columns in UTF-16 units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<[usize; 6]>,
    /// Archive member chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// Notebook cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<usize>,
    /// Notebook output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<usize>,
    /// Key the value sits under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Message of a finding that is no secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Which name the secret is in (`path`, `member`, `key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Encodings the secret was found under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoded: Option<String>,
    /// Record index in a record log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<u64>,
    /// Row index in a table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
    /// The snippet with every secret in it redacted.
    pub snippet: String,
}

impl Place {
    /// The place of a secret at `offset`, `position`, `member` with `extra`, and its snippet
    /// already redacted.
    pub fn new(
        offset: usize,
        position: Option<Position>,
        member: Option<&str>,
        extra: &Extra,
        snippet: String,
    ) -> Place {
        Place {
            offset,
            position: position.map(|q| {
                [
                    q.line,
                    q.column,
                    q.end_line,
                    q.end_column,
                    q.column_utf16,
                    q.end_column_utf16,
                ]
            }),
            member: member.map(str::to_string),
            cell: extra.cell,
            output: extra.output,
            key: extra.key.clone(),
            message: extra.message.clone(),
            name: extra.name.map(|n| n.as_str().to_string()),
            decoded: extra.decoded.clone(),
            record: extra.record,
            row: extra.row,
            snippet,
        }
    }

    /// Lines and columns.
    pub fn position(&self) -> Option<Position> {
        self.position.map(|q| Position {
            line: q[0],
            column: q[1],
            end_line: q[2],
            end_column: q[3],
            column_utf16: q[4],
            end_column_utf16: q[5],
        })
    }

    /// Which name the secret is in.
    pub fn name_kind(&self) -> Option<NameKind> {
        let name = self.name.as_deref()?;
        [NameKind::Path, NameKind::Member, NameKind::Key]
            .into_iter()
            .find(|k| k.as_str() == name)
    }

    /// The decoder facts.
    pub fn extra(&self) -> Extra {
        Extra {
            cell: self.cell,
            output: self.output,
            key: self.key.clone(),
            message: self.message.clone(),
            name: self.name_kind(),
            decoded: self.decoded.clone(),
            record: self.record,
            row: self.row,
        }
    }
}

/// One stored match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMatch {
    /// Rule id.
    pub rule: String,
    /// The rule's match digest when it found this ([`Rule::match_digest`]).
    pub digest: String,
    /// Secret fingerprint.
    pub fingerprint: String,
    /// The secret redacted (a callable of unsafe code, which is no secret, in clear).
    pub shown: String,
    /// Length in bytes of the secret, for overlap checks.
    pub len: usize,
    /// Where it is.
    #[serde(flatten)]
    pub place: Place,
}

impl StoredMatch {
    /// What to store of a match of `rule`, whose match digest (in the store's generation) is
    /// `digest`.
    pub fn of(rule: &Rule, digest: &str, p: &Placed) -> StoredMatch {
        let (fingerprint, shown, snippet) = match &p.stored {
            Some(fp) => (
                fp.clone(),
                String::from_utf8_lossy(&p.secret).into_owned(),
                String::from_utf8_lossy(&p.snippet).into_owned(),
            ),
            None => {
                let shown = if rule.is_synthetic() {
                    String::from_utf8_lossy(&p.secret).into_owned()
                } else {
                    redact(&p.secret)
                };
                let mut ranges = vec![p.snippet_secret.clone()];
                ranges.extend(p.snippet_others.iter().cloned());
                let snippet = redact_ranges(&p.snippet, &ranges, DEFAULT_REDACT_KEEP);
                (secret_fingerprint(rule.id(), &p.secret), shown, snippet)
            }
        };
        StoredMatch {
            rule: rule.id().to_string(),
            digest: digest.to_string(),
            fingerprint,
            shown,
            len: p.secret.len(),
            place: Place::new(p.offset, p.position, p.member.as_deref(), &p.extra, snippet),
        }
    }

    /// The match as the pipeline hands it on, for the rule at `rule` in the scanner: the
    /// secret and the snippet redacted, the fingerprint given.
    pub fn placed(&self, rule: usize) -> Placed {
        Placed {
            rule,
            secret: self.shown.clone().into_bytes(),
            offset: self.place.offset,
            position: self.place.position(),
            member: self.place.member.clone(),
            extra: self.place.extra(),
            snippet_secret: 0..0,
            snippet_others: Vec::new(),
            snippet: self.place.snippet.clone().into_bytes(),
            stored: Some(self.fingerprint.clone()),
        }
    }

    /// Whether this match and `p` cover overlapping bytes of the same text.
    pub fn overlaps(&self, p: &Placed) -> bool {
        let at = &self.place;
        at.member == p.member
            && at.name_kind() == p.extra.name
            && at.decoded == p.extra.decoded
            && at.offset < p.offset + p.secret.len().max(1)
            && p.offset < at.offset + self.len.max(1)
    }
}
