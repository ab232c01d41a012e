//! Reports: one writer per format (text, JSON, JSON lines, SARIF 2.1.0), each writing the
//! sorted findings to a `&mut dyn Write`.
//!
//! Contract: secrets and every secret inside a snippet are redacted unless `show_secrets`;
//! paths are the provenance's display paths (`/`-separated, relative to the scan root).

mod json;
mod sarif;

pub use sarif::{uri_encode, MAX_RESULTS as SARIF_MAX_RESULTS};
mod text;

use std::borrow::Cow;
use std::io::{self, Write};
use std::ops::Range;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use clap::ValueEnum;

use crate::findings::{Finding, Location, What};

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable, coloured on a terminal.
    Text,
    /// One JSON document.
    Json,
    /// One JSON object per finding per line.
    Jsonl,
    /// SARIF 2.1.0, for code-scanning tools.
    Sarif,
}

/// Leading characters of a long secret that reports keep by default (enough to recognise a
/// token type, `ghp_`, `hf_x`).
pub const DEFAULT_REDACT_KEEP: usize = 4;

/// What every reporter needs to know besides the findings (which carry their rules).
#[derive(Clone, Debug)]
pub struct ReportContext {
    /// Print secrets in clear.
    pub show_secrets: bool,
    /// Leading characters kept of secrets of 16 characters or more when redacting.
    pub redact_keep: usize,
    /// Colour the text output.
    pub color: bool,
    /// Absolute scan root, for SARIF's `originalUriBaseIds`.
    pub root_uri: Option<String>,
    /// Every secret of the report, hidden wherever a name shows it (set by [`write`]).
    pub(crate) hide: Option<Arc<Hide>>,
}

impl Default for ReportContext {
    fn default() -> ReportContext {
        ReportContext {
            show_secrets: false,
            redact_keep: DEFAULT_REDACT_KEEP,
            color: false,
            root_uri: None,
            hide: None,
        }
    }
}

impl ReportContext {
    /// What was found as reports show it: a secret redacted unless asked, unsafe code (a
    /// pickle import, a Keras layer) as it is.
    pub fn secret_of(&self, f: &Finding) -> String {
        match &f.what {
            What::UnsafeCode(callable) => callable.clone(),
            What::Secret(secret) => self.secret(secret),
            What::Redacted(redacted) => redacted.clone(),
        }
    }

    /// The secret as reports show it.
    pub fn secret(&self, secret: &[u8]) -> String {
        if self.show_secrets {
            String::from_utf8_lossy(secret).into_owned()
        } else {
            redact_keep(secret, self.redact_keep)
        }
    }

    /// The snippet of a location as reports show it, trimmed of surrounding white space.
    pub fn snippet(&self, loc: &Location) -> String {
        let text = if self.show_secrets || loc.snippet_redacted {
            String::from_utf8_lossy(&loc.snippet).into_owned()
        } else {
            let mut ranges: Vec<Range<usize>> = Vec::with_capacity(1 + loc.snippet_others.len());
            ranges.push(loc.snippet_secret.clone());
            ranges.extend(loc.snippet_others.iter().cloned());
            redact_ranges(&loc.snippet, &ranges, self.redact_keep)
        };
        self.text(text.trim()).into_owned()
    }

    /// Text from the scanned content that a report prints besides snippets (a path, a member
    /// or key name, a commit author): every secret of the report in it redacted, unless asked.
    pub fn text<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match &self.hide {
            Some(hide) if !self.show_secrets => hide.apply(text, self.redact_keep),
            _ => Cow::Borrowed(text),
        }
    }

    /// The location's path (and member) as reports show it.
    pub fn path(&self, loc: &Location) -> String {
        self.text(&loc.display_path()).into_owned()
    }

    /// This context, hiding the secrets of `findings` in every name it prints.
    fn hiding(&self, findings: &[Finding]) -> ReportContext {
        let mut ctx = self.clone();
        if !self.show_secrets {
            ctx.hide = Hide::new(findings).map(Arc::new);
        }
        ctx
    }
}

/// Secrets shorter than this are not looked for in names (too likely to be ordinary text).
const HIDE_MIN_LEN: usize = 8;

/// The secrets of a report, found in any text in one pass.
#[derive(Debug)]
pub(crate) struct Hide {
    secrets: AhoCorasick,
}

impl Hide {
    fn new(findings: &[Finding]) -> Option<Hide> {
        let mut secrets: Vec<&[u8]> = findings
            .iter()
            .filter_map(|f| match &f.what {
                // Names are shown as text: a secret that is not UTF-8 cannot be in one.
                What::Secret(s) if s.len() >= HIDE_MIN_LEN && std::str::from_utf8(s).is_ok() => {
                    Some(s.as_slice())
                }
                _ => None,
            })
            .collect();
        if secrets.is_empty() {
            return None;
        }
        secrets.sort_unstable();
        secrets.dedup();
        AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(secrets)
            .ok()
            .map(|secrets| Hide { secrets })
    }

    fn apply<'t>(&self, text: &'t str, keep: usize) -> Cow<'t, str> {
        let mut matches = self.secrets.find_iter(text).peekable();
        if matches.peek().is_none() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for m in matches {
            out.push_str(&text[at..m.start()]);
            out.push_str(&redact_keep(&text.as_bytes()[m.range()], keep));
            at = m.end();
        }
        out.push_str(&text[at..]);
        Cow::Owned(out)
    }
}

/// Keeps a short prefix of long secrets (enough to recognise a token type) and hides the rest.
pub fn redact(secret: &[u8]) -> String {
    redact_keep(secret, DEFAULT_REDACT_KEEP)
}

/// Keeps `keep` leading characters of a secret of 16 characters or more (never more than a
/// quarter of it) and hides the rest.
pub fn redact_keep(secret: &[u8], keep: usize) -> String {
    let text = String::from_utf8_lossy(secret);
    let chars = text.chars().count();
    let keep = if chars >= 16 { keep.min(chars / 4) } else { 0 };
    let prefix: String = text.chars().take(keep).collect();
    format!("{prefix}*****")
}

/// Replaces each range of `text` (clamped, possibly overlapping) by `*****`, keeping the
/// first range's short prefix as [`redact_keep`] does.
pub fn redact_ranges(text: &[u8], ranges: &[Range<usize>], keep: usize) -> String {
    let mut sorted: Vec<(Range<usize>, bool)> = ranges
        .iter()
        .enumerate()
        .map(|(i, r)| (r.start.min(text.len())..r.end.min(text.len()), i == 0))
        .filter(|(r, _)| r.start < r.end)
        .collect();
    sorted.sort_by_key(|(r, _)| r.start);
    let mut out = Vec::with_capacity(text.len());
    let mut pos = 0;
    for (r, primary) in sorted {
        if r.end <= pos {
            continue;
        }
        let start = r.start.max(pos);
        out.extend_from_slice(&text[pos..start]);
        if primary && start == r.start {
            out.extend_from_slice(redact_keep(&text[r.clone()], keep).as_bytes());
        } else {
            out.extend_from_slice(b"*****");
        }
        pos = r.end;
    }
    out.extend_from_slice(&text[pos..]);
    String::from_utf8_lossy(&out).into_owned()
}

/// Text for a human's terminal: control characters (C0 but `keep`, DEL, C1) and bidirectional
/// overrides are written as escapes, so a file name, snippet or commit author can never clear
/// the screen, set a title, hide text or disguise a path. JSON and SARIF escape on their own.
pub fn escape_control<'t>(text: &'t str, keep: &[char]) -> std::borrow::Cow<'t, str> {
    let needs = |c: char| {
        (c.is_control() && !keep.contains(&c))
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(needs) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `n` with the singular or plural noun: `1 finding`, `2 findings`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Writes the findings in `format`.
pub fn write(
    format: Format,
    ctx: &ReportContext,
    findings: &[Finding],
    out: &mut dyn Write,
) -> io::Result<()> {
    let ctx = &ctx.hiding(findings);
    match format {
        Format::Text => text::write(ctx, findings, out),
        Format::Json => json::write(ctx, findings, out, false),
        Format::Jsonl => json::write(ctx, findings, out, true),
        Format::Sarif => sarif::write(ctx, findings, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_control("plain é 😀", &[]), "plain é 😀");
        assert_eq!(escape_control("a\x1b[2Jb", &[]), "a\\u{1b}[2Jb");
        assert_eq!(escape_control("x\u{202e}y", &[]), "x\\u{202e}y");
        assert_eq!(escape_control("l1\nl2\u{9b}", &['\n']), "l1\nl2\\u{9b}");
    }

    #[test]
    fn redaction_hides_all_secret_ranges() {
        let text = b"id=AKIAZQ3XW9PLM2RT7YVB secret=Zq3xW9pLm2Rt7YvBn4Kc8Hd1Jf6Gs0aQwErTyUiO";
        let s = redact_ranges(text, &[31..text.len(), 3..23], 4);
        assert_eq!(s, "id=***** secret=Zq3x*****");
        assert_eq!(redact(b"short"), "*****");
        assert_eq!(redact_keep(b"0123456789abcdefXYZ", 0), "*****");
        assert_eq!(redact_keep(b"0123456789abcdefXYZ", 2), "01*****");
        // Never more than a quarter of the secret.
        assert_eq!(redact_keep(b"0123456789abcdef", 12), "0123*****");
    }
}
