//! Companion values: the second half of a credential that comes in two parts, found near the
//! first (an AWS access key id near its secret key).
//!
//! Contract: [`companions`] pairs each finding of one rule whose secret is known in clear with
//! the secret of the nearest finding of a companion rule seen in the same input — same
//! repository, same path at the same commit, same archive member — at most [`MAX_LINES`]
//! lines away. Nearest means fewest lines apart, then fewest bytes apart, then the companion
//! written before rather than after (configuration files name the key id first), then the
//! smaller companion secret: the result does not depend on the order of findings or
//! locations. Places without lines (binary content) and secrets found in names are not
//! paired; neither are redacted findings (read back from a state store or shard file), whose
//! secrets are unknown.

use std::collections::HashMap;
use std::sync::Arc;

use crate::findings::{Finding, What};
use crate::source::Provenance;

/// Farthest a companion may sit, in lines, from the finding it completes.
pub const MAX_LINES: usize = 20;

/// One input: the repository (in scans of many), where the bytes were seen, the member.
type Input<'f> = (&'f Option<Arc<str>>, &'f Provenance, &'f Option<String>);

/// A companion secret at a place of an input.
struct Place<'f> {
    line: usize,
    offset: usize,
    secret: &'f [u8],
}

/// For each finding of `rule_id` with a secret in clear, keyed by its secret fingerprint: the
/// secret of the nearest `companion_rule` finding in the same input, if one is within
/// [`MAX_LINES`] lines.
pub fn companions(
    findings: &[Finding],
    rule_id: &str,
    companion_rule: &str,
) -> HashMap<String, Vec<u8>> {
    let mut places: HashMap<Input<'_>, Vec<Place<'_>>> = HashMap::new();
    for f in findings.iter().filter(|f| f.rule.id == companion_rule) {
        let What::Secret(secret) = &f.what else {
            continue;
        };
        for loc in &f.locations {
            let Some(pos) = loc.position.filter(|_| loc.extra.name.is_none()) else {
                continue;
            };
            places
                .entry((&loc.repository, &loc.provenance, &loc.member))
                .or_default()
                .push(Place {
                    line: pos.line,
                    offset: loc.offset,
                    secret,
                });
        }
    }
    for list in places.values_mut() {
        list.sort_by(|a, b| (a.line, a.offset, a.secret).cmp(&(b.line, b.offset, b.secret)));
    }

    let mut out = HashMap::new();
    for f in findings.iter().filter(|f| f.rule.id == rule_id) {
        if !matches!(f.what, What::Secret(_)) {
            continue;
        }
        // (lines apart, bytes apart, written after, companion secret)
        let mut best: Option<(usize, usize, bool, &[u8])> = None;
        for loc in &f.locations {
            let Some(pos) = loc.position.filter(|_| loc.extra.name.is_none()) else {
                continue;
            };
            let Some(list) = places.get(&(&loc.repository, &loc.provenance, &loc.member)) else {
                continue;
            };
            let first = list.partition_point(|p| p.line + MAX_LINES < pos.line);
            for p in list[first..]
                .iter()
                .take_while(|p| p.line <= pos.line + MAX_LINES)
            {
                if p.offset == loc.offset {
                    // The same place (a rule paired with itself).
                    continue;
                }
                let key = (
                    p.line.abs_diff(pos.line),
                    p.offset.abs_diff(loc.offset),
                    p.offset > loc.offset,
                    p.secret,
                );
                if best.is_none_or(|b| key < b) {
                    best = Some(key);
                }
            }
        }
        if let Some((.., secret)) = best {
            out.insert(f.fingerprint.clone(), secret.to_vec());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{secret_fingerprint, Extra, Location, NameKind, Position};
    use crate::rules::{Category, RuleInfo, Severity};
    use crate::source::CommitMeta;

    const KEY: &str = "aws.access-key-id";
    const SECRET: &str = "aws.secret-access-key";

    fn rule(id: &str) -> Arc<RuleInfo> {
        Arc::new(RuleInfo {
            id: id.to_string(),
            name: id.to_string(),
            category: Category::Cloud,
            severity: Severity::High,
            references: Vec::new(),
            revoke: None,
            verify: None,
        })
    }

    fn file(path: &str) -> Provenance {
        Provenance::File { path: path.into() }
    }

    fn at(provenance: &Provenance, line: usize, offset: usize) -> Location {
        Location {
            provenance: provenance.clone(),
            member: None,
            position: Some(Position {
                line,
                column: 1,
                end_line: line,
                end_column: 21,
                column_utf16: 1,
                end_column_utf16: 21,
            }),
            offset,
            extra: Extra::default(),
            snippet: Vec::new(),
            snippet_secret: 0..0,
            snippet_others: Vec::new(),
            fingerprint: String::new(),
            snippet_redacted: false,
            repository: None,
        }
    }

    fn finding(rule_id: &str, secret: &str, locations: Vec<Location>) -> Finding {
        Finding {
            rule: rule(rule_id),
            what: What::Secret(secret.as_bytes().to_vec()),
            fingerprint: secret_fingerprint(rule_id, secret.as_bytes()),
            locations,
            verification: None,
        }
    }

    fn paired(findings: &[Finding], secret: &str) -> Option<String> {
        companions(findings, SECRET, KEY)
            .get(&secret_fingerprint(SECRET, secret.as_bytes()))
            .map(|s| String::from_utf8_lossy(s).into_owned())
    }

    #[test]
    fn each_secret_takes_the_nearest_key_id_of_its_own_file() {
        let a = file("config/credentials");
        let b = file("deploy/env");
        // Two profiles in one file, key id above its secret; a third key far below; another
        // file holding a lone secret whose key id sits only in the first file.
        let findings = vec![
            finding("aws.secret-access-key", "s-one", vec![at(&a, 3, 80)]),
            finding(KEY, "AKIA-ONE", vec![at(&a, 2, 40)]),
            finding(KEY, "AKIA-TWO", vec![at(&a, 6, 160)]),
            finding(SECRET, "s-two", vec![at(&a, 7, 200)]),
            finding(KEY, "AKIA-FAR", vec![at(&a, 60, 2000)]),
            finding(SECRET, "s-far", vec![at(&a, 90, 3000)]),
            finding(SECRET, "s-lone", vec![at(&b, 2, 40)]),
        ];
        assert_eq!(paired(&findings, "s-one").as_deref(), Some("AKIA-ONE"));
        assert_eq!(paired(&findings, "s-two").as_deref(), Some("AKIA-TWO"));
        // 30 lines from AKIA-FAR: past the bound.
        assert_eq!(paired(&findings, "s-far"), None);
        assert_eq!(paired(&findings, "s-lone"), None);
        assert_eq!(companions(&findings, SECRET, KEY).len(), 2);
        // The order of findings does not matter.
        let mut reversed = findings.clone();
        reversed.reverse();
        assert_eq!(
            companions(&reversed, SECRET, KEY),
            companions(&findings, SECRET, KEY)
        );
    }

    #[test]
    fn ties_are_broken_the_same_way_every_time() {
        let a = file("a.env");
        // One line above and one below, the same number of bytes away: the one above wins.
        let findings = vec![
            finding(KEY, "AKIA-BELOW", vec![at(&a, 6, 150)]),
            finding(SECRET, "s", vec![at(&a, 5, 100)]),
            finding(KEY, "AKIA-ABOVE", vec![at(&a, 4, 50)]),
        ];
        assert_eq!(paired(&findings, "s").as_deref(), Some("AKIA-ABOVE"));
        // Equal lines apart, fewer bytes apart wins even when below.
        let findings = vec![
            finding(KEY, "AKIA-BELOW", vec![at(&a, 6, 120)]),
            finding(SECRET, "s", vec![at(&a, 5, 100)]),
            finding(KEY, "AKIA-ABOVE", vec![at(&a, 4, 50)]),
        ];
        assert_eq!(paired(&findings, "s").as_deref(), Some("AKIA-BELOW"));
        // A secret seen in two files takes the nearer key over both.
        let b = file("b.env");
        let findings = vec![
            finding(SECRET, "s", vec![at(&a, 10, 500), at(&b, 10, 500)]),
            finding(KEY, "AKIA-A", vec![at(&a, 4, 100)]),
            finding(KEY, "AKIA-B", vec![at(&b, 9, 450)]),
        ];
        assert_eq!(paired(&findings, "s").as_deref(), Some("AKIA-B"));
    }

    #[test]
    fn other_commits_members_names_and_redacted_secrets_are_not_paired() {
        let commit = |id: &str| {
            Some(Arc::new(CommitMeta {
                time: 0,
                id: id.to_string(),
                author: String::new(),
                email: String::new(),
                date: String::new(),
            }))
        };
        let c1 = Provenance::Git {
            commit: commit("c1"),
            path: "creds".into(),
        };
        let c2 = Provenance::Git {
            commit: commit("c2"),
            path: "creds".into(),
        };
        let mut in_member = at(&c1, 2, 10);
        in_member.member = Some("inner.zip!creds".into());
        let mut in_name = at(&c1, 2, 10);
        in_name.extra.name = Some(NameKind::Path);
        let findings = vec![
            finding(SECRET, "s", vec![at(&c1, 3, 40)]),
            finding(KEY, "AKIA-OTHER-COMMIT", vec![at(&c2, 2, 10)]),
            finding(KEY, "AKIA-MEMBER", vec![in_member]),
            finding(KEY, "AKIA-NAME", vec![in_name]),
        ];
        assert_eq!(paired(&findings, "s"), None);
        let mut findings = findings;
        findings.push(finding(KEY, "AKIA-SAME", vec![at(&c1, 1, 0)]));
        assert_eq!(paired(&findings, "s").as_deref(), Some("AKIA-SAME"));
        // A redacted secret is never a key, nor a companion.
        findings[0].what = What::Redacted("s…".into());
        assert_eq!(paired(&findings, "s"), None);
        let mut findings = vec![
            finding(SECRET, "t", vec![at(&c1, 3, 40)]),
            finding(KEY, "AKIA-SAME", vec![at(&c1, 1, 0)]),
        ];
        findings[1].what = What::Redacted("AKIA…".into());
        assert_eq!(paired(&findings, "t"), None);
    }
}
