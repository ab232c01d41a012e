//! Reports: one writer per format (text, JSON, JSON lines, SARIF 2.1.0), each writing the
//! sorted findings to a `&mut dyn Write`.
//!
//! Contract: secrets and every secret inside a snippet are redacted unless `show_secrets`;
//! paths are the provenance's display paths (`/`-separated, relative to the scan root).

mod json;
mod sarif;

pub use sarif::{uri_encode, MAX_RESULTS as SARIF_MAX_RESULTS};
mod text;

use std::io::{self, Write};
use std::ops::Range;

use clap::ValueEnum;

use crate::findings::{Finding, Location};
use crate::rules::Rule;
use crate::scan::Scanner;

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

/// What every reporter needs to know besides the findings.
pub struct ReportContext<'a> {
    /// The scanner whose rules produced the findings.
    pub scanner: &'a Scanner,
    /// Print secrets in clear.
    pub show_secrets: bool,
    /// Colour the text output.
    pub color: bool,
    /// Absolute scan root, for SARIF's `originalUriBaseIds`.
    pub root_uri: Option<String>,
}

impl ReportContext<'_> {
    fn rule(&self, f: &Finding) -> &Rule {
        self.scanner.rule(f.rule)
    }

    /// The secret as reports show it (decoder findings, such as an unsafe import, are not
    /// secrets and are shown as they are).
    pub fn secret_of(&self, f: &Finding) -> String {
        if self.rule(f).is_synthetic() {
            String::from_utf8_lossy(&f.secret).into_owned()
        } else {
            self.secret(&f.secret)
        }
    }

    /// The secret as reports show it.
    pub fn secret(&self, secret: &[u8]) -> String {
        if self.show_secrets {
            String::from_utf8_lossy(secret).into_owned()
        } else {
            redact(secret)
        }
    }

    /// The snippet of a location as reports show it, trimmed of surrounding white space.
    pub fn snippet(&self, loc: &Location) -> String {
        let text = if self.show_secrets {
            String::from_utf8_lossy(&loc.snippet).into_owned()
        } else {
            let mut ranges: Vec<Range<usize>> = Vec::with_capacity(1 + loc.snippet_others.len());
            ranges.push(loc.snippet_secret.clone());
            ranges.extend(loc.snippet_others.iter().cloned());
            redact_ranges(&loc.snippet, &ranges)
        };
        text.trim().to_string()
    }
}

/// Keeps a short prefix of long secrets (enough to recognise a token type) and hides the rest.
pub fn redact(secret: &[u8]) -> String {
    let keep = if secret.len() >= 16 { 4 } else { 0 };
    let prefix: String = String::from_utf8_lossy(&secret[..keep])
        .chars()
        .take(keep)
        .collect();
    format!("{prefix}*****")
}

/// Replaces each range of `text` (clamped, possibly overlapping) by `*****`, keeping the
/// first range's short prefix as [`redact`] does.
fn redact_ranges(text: &[u8], ranges: &[Range<usize>]) -> String {
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
            out.extend_from_slice(redact(&text[r.clone()]).as_bytes());
        } else {
            out.extend_from_slice(b"*****");
        }
        pos = r.end;
    }
    out.extend_from_slice(&text[pos..]);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes the findings in `format`.
pub fn write(
    format: Format,
    ctx: &ReportContext<'_>,
    findings: &[Finding],
    out: &mut dyn Write,
) -> io::Result<()> {
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
    fn redaction_hides_all_secret_ranges() {
        let text = b"id=AKIAZQ3XW9PLM2RT7YVB secret=Zq3xW9pLm2Rt7YvBn4Kc8Hd1Jf6Gs0aQwErTyUiO";
        let s = redact_ranges(text, &[31..text.len(), 3..23]);
        assert_eq!(s, "id=***** secret=Zq3x*****");
        assert_eq!(redact(b"short"), "*****");
    }
}
