//! Typed diagnostics of rule files: warnings about what a file loses in conversion, errors that
//! stop it from loading.
//!
//! Contract: no message quotes a rule file beyond rule ids and line numbers. A repository's
//! config can point a rule file at any file, one full of secrets included, so parser messages
//! pass through [`content_free`] and the rest name positions, never text.

use std::fmt;

/// What a warning about a rule file is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleWarningKind {
    /// A rule that cannot be converted and was skipped: a problem of the file.
    Unconvertible,
    /// A setting that is not applied: `[extend]`, a path restriction, allowlist `paths` or
    /// `commits`, live validation, filter expressions, an allowlist trawl cannot express.
    IgnoredField,
    /// A rule converted with a behaviour that may differ: which group is the secret, where its
    /// keywords are looked for, what its allowlists reach.
    Approximated,
    /// A rule id defined twice (the last definition is used) or renamed to stay unique.
    DuplicateId,
}

impl RuleWarningKind {
    /// Whether `trawl rules check` counts the warning as a problem of the file.
    pub fn is_problem(self) -> bool {
        matches!(self, RuleWarningKind::Unconvertible)
    }
}

/// A warning about a rule file that loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleFileWarning {
    /// What the warning is about.
    pub kind: RuleWarningKind,
    /// The 1-based line of the rule or setting, when known.
    pub line: Option<usize>,
    /// The rule's id as written in the file, when the warning is about one rule.
    pub rule: Option<String>,
    /// What happened, without the file's content.
    pub message: String,
}

impl RuleFileWarning {
    /// A warning about the file as a whole.
    pub fn new(kind: RuleWarningKind, message: impl Into<String>) -> RuleFileWarning {
        RuleFileWarning {
            kind,
            line: None,
            rule: None,
            message: message.into(),
        }
    }

    /// A warning about one rule.
    pub fn for_rule(
        kind: RuleWarningKind,
        rule: &str,
        line: Option<usize>,
        message: impl Into<String>,
    ) -> RuleFileWarning {
        RuleFileWarning {
            kind,
            line,
            rule: Some(rule.to_string()),
            message: message.into(),
        }
    }
}

impl fmt::Display for RuleFileWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", At(self.line))?;
        if let Some(rule) = &self.rule {
            write!(f, "rule `{rule}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The two rule-file formats trawl reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleFileFormat {
    /// trawl's `[[rules]]` files.
    Trawl,
    /// gitleaks and Betterleaks configurations.
    Gitleaks,
}

impl fmt::Display for RuleFileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuleFileFormat::Trawl => "rule file",
            RuleFileFormat::Gitleaks => "gitleaks configuration",
        })
    }
}

/// A rule that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("rule `{rule}` ({origin}): {reason}")]
pub struct RuleError {
    /// The rule id.
    pub rule: String,
    /// Where the rule came from.
    pub origin: String,
    /// Why, without the rule's content.
    pub reason: String,
}

/// Why a rule file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RuleFileError {
    /// The text is not TOML, or not shaped like a rule file of its format.
    #[error("{origin}: {}invalid {format}: {reason}", At(*.line))]
    Invalid {
        /// The file.
        origin: String,
        /// The 1-based line of the error, when known.
        line: Option<usize>,
        /// The format the file was read as.
        format: RuleFileFormat,
        /// The parser's message, quoted text removed ([`content_free`]).
        reason: String,
    },
    /// A rule does not compile.
    #[error("{}: {}rule `{}`: {}", .error.origin, At(*.line), .error.rule, .error.reason)]
    Rule {
        /// The 1-based line of the rule, when known.
        line: Option<usize>,
        /// The rule's error.
        error: RuleError,
    },
    /// Two rules share an id (within the file or with a rule loaded before).
    #[error("{origin}: duplicate rule id `{rule}`")]
    DuplicateId {
        /// The file.
        origin: String,
        /// The id.
        rule: String,
    },
}

/// `line N: ` when the line is known.
struct At(Option<usize>);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, "line {n}: "),
            None => Ok(()),
        }
    }
}

/// Keys and values of the two formats: parser messages may quote these, nothing else.
const VOCABULARY: &[&str] = &[
    // trawl's format
    "rules",
    "id",
    "name",
    "category",
    "severity",
    "regex",
    "keywords",
    "entropy",
    "validate",
    "window",
    "references",
    "examples",
    "negative_examples",
    "allowlist",
    "regexes",
    "stopwords",
    "info",
    "low",
    "medium",
    "high",
    "critical",
    "github-checksum",
    "jwt",
    "pem",
    "base64-json",
    // gitleaks' and Betterleaks' (keys lowercased)
    "title",
    "description",
    "extend",
    "usedefault",
    "path",
    "url",
    "disabledrules",
    "secretgroup",
    "allowlists",
    "required",
    "skipreport",
    "filter",
    "prefilter",
    "condition",
    "regextarget",
    "paths",
    "commits",
    "resources",
    "targetrules",
    "tags",
];

/// A parser's message on one line with every quoted piece (`` `…` `` or `"…"`) that is not a
/// key or value of the rule formats, or TOML punctuation, replaced by `…`: serde and the TOML
/// parser quote the keys and values they reject, which may be secrets.
pub(crate) fn content_free(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        match c {
            '`' | '"' => {
                let mut inner = String::new();
                let mut closed = false;
                while let Some(d) = chars.next() {
                    if d == c {
                        closed = true;
                        break;
                    }
                    inner.push(d);
                    if d == '\\' && c == '"' {
                        inner.extend(chars.next());
                    }
                }
                let known = VOCABULARY.contains(&inner.as_str())
                    || (!inner.is_empty()
                        && inner.len() <= 3
                        && inner.chars().all(|p| p.is_ascii_punctuation()));
                out.push(c);
                out.push_str(if known { &inner } else { "…" });
                if closed {
                    out.push(c);
                } else {
                    break;
                }
            }
            '\n' | '\r' => {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            c => out.push(c),
        }
    }
    out.trim().to_string()
}

/// The reason of a regex syntax error without the pattern: its `Display` prints the pattern
/// and a caret line above `error: <reason>`.
pub(crate) fn regex_error_reason(e: &impl fmt::Display) -> String {
    let text = e.to_string();
    text.lines()
        .last()
        .and_then(|l| l.strip_prefix("error: "))
        .map_or_else(|| "invalid syntax".to_string(), str::to_string)
}

/// The 1-based line holding byte `offset` of `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The 1-based lines of the `[[rules]]` headers of a file, when there are exactly `count` (the
/// rules may also be written as an inline array, and then no line is known).
pub(crate) fn rule_lines(text: &str, count: usize) -> Vec<Option<usize>> {
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let header: String = l
                .split('#')
                .next()
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            header.eq_ignore_ascii_case("[[rules]]")
        })
        .map(|(n, _)| n + 1)
        .collect();
    if lines.len() == count {
        lines.into_iter().map(Some).collect()
    } else {
        vec![None; count]
    }
}

/// An invalid-file error from a TOML error, with its line and without the file's content (the
/// TOML parser's `Display` prints the offending line).
pub(crate) fn toml_error(
    e: &toml::de::Error,
    text: &str,
    origin: &str,
    format: RuleFileFormat,
) -> RuleFileError {
    RuleFileError::Invalid {
        origin: origin.to_string(),
        line: e.span().map(|s| line_of(text, s.start)),
        format,
        reason: content_free(e.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_free_keeps_the_vocabulary_only() {
        assert_eq!(
            content_free("invalid type: string \"hunter2\\\"x\", expected usize"),
            "invalid type: string \"…\", expected usize"
        );
        assert_eq!(
            content_free("unknown field `ghp_x`, expected `rules`"),
            "unknown field `…`, expected `rules`"
        );
        assert_eq!(
            content_free("invalid key\nexpected `.`, `=`"),
            "invalid key expected `.`, `=`"
        );
        assert_eq!(content_free("unclosed `secret"), "unclosed `…");
    }

    #[test]
    fn rule_lines_need_every_header() {
        let text = "a = 1\n[[rules]]\nid = 'x'\n [[ Rules ]] # two\n";
        assert_eq!(rule_lines(text, 2), [Some(2), Some(4)]);
        assert_eq!(rule_lines(text, 3), [None, None, None]);
    }

    /// A trawl-format rule file that is a file of secrets: the error names the file and the
    /// line, never the text.
    #[test]
    fn rule_file_errors_never_quote_the_file() {
        use crate::rules::RuleSet;
        let secret = "AKIAZ4QX7LMN2PRTW3VB:wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLE";
        let head = "[[rules]]\nid = \"x\"\nname = \"x\"\n";
        let texts = [
            (format!("aws = {secret}\n"), "line 1"),
            (format!("# keys\naws_secret = \"{secret}\"\n"), "line 2"),
            (
                format!("[[rules]]\nid = \"x\"\nname = \"{secret}\"\n"),
                "line 1",
            ),
            (
                format!("{head}category = \"{secret}\"\nseverity = \"high\"\nregex = 'x'\n"),
                "line 1",
            ),
            (
                format!("{head}category = \"saas\"\nseverity = \"high\"\nregex = '({secret}'\n"),
                "line 1",
            ),
        ];
        for (text, line) in &texts {
            let e = RuleSet::default()
                .add_file(text, "secrets.env")
                .expect_err(text);
            let shown = format!("{e} {e:?}");
            let shown = format!("{shown} {:#}", anyhow::Error::from(e));
            assert!(!shown.contains(secret), "{shown}");
            assert!(
                !shown.contains("AKIA") && !shown.contains("EXAMPLE"),
                "{shown}"
            );
            assert!(
                shown.contains("secrets.env") && shown.contains(line),
                "{shown}"
            );
        }
    }
}
