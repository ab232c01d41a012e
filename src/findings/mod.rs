//! Findings: a secret found by a rule, with every place it was seen.
//!
//! Contract: a finding's identity is its secret fingerprint, a hash of (rule id, secret); one
//! secret seen in 50 places is one [`Finding`] with 50 [`Location`]s. Each location has its own
//! fingerprint, a hash of (secret fingerprint, path, line). Secrets stay in memory; reports
//! redact them unless asked not to.

pub mod suppress;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::rules::RuleInfo;
use crate::scan::{Match, Scanner};
use crate::source::Provenance;

/// Bytes of context kept on each side of a secret in a snippet.
const SNIPPET_CONTEXT: usize = 80;

/// A match placed in its input: lines and columns are 1-based; columns count bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// Index of the rule in the scanner.
    pub rule: usize,
    /// The secret bytes.
    pub secret: Vec<u8>,
    /// Byte offset of the secret in the input (in `member` when set).
    pub offset: usize,
    /// Lines and columns; `None` for binary content (a pickle constant, model metadata).
    pub position: Option<Position>,
    /// Archive member chain below the input (`inner.zip!dir/file.py`), if any.
    pub member: Option<String>,
    /// Notebook cell and output, YAML key, or a message.
    pub extra: Extra,
    /// The text around the secret on its first line (not redacted).
    pub snippet: Vec<u8>,
    /// Where the secret sits in `snippet`.
    pub snippet_secret: Range<usize>,
    /// Where other secrets of the same input sit in `snippet`, so reports redact them too.
    pub snippet_others: Vec<Range<usize>>,
    /// Set for a match read back from the state store: its secret fingerprint. `secret` and
    /// `snippet` then hold the redacted text reports print (the store never keeps a secret).
    pub stored: Option<String>,
}

/// Where a secret sits in a text: 1-based lines, 1-based byte columns, and the same columns
/// in UTF-16 code units (SARIF's default `columnKind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Line of the secret's first byte.
    pub line: usize,
    /// Column of the secret's first byte.
    pub column: usize,
    /// Line of the secret's last byte.
    pub end_line: usize,
    /// Column just past the secret's last byte on `end_line`.
    pub end_column: usize,
    /// `column` in UTF-16 code units of the line's text (invalid UTF-8 counts one unit per
    /// replacement character).
    pub column_utf16: usize,
    /// `end_column` in UTF-16 code units.
    pub end_column_utf16: usize,
}

impl Position {
    /// The position of `raw[start..end]`, whose first byte is on `line`, a line that starts at
    /// byte `line_start`.
    pub fn at(raw: &[u8], line: usize, line_start: usize, start: usize, end: usize) -> Position {
        let units_before = utf16_len(&raw[line_start..start]);
        Position::at_units(raw, line, line_start, units_before, start, end)
    }

    /// [`Position::at`] with the UTF-16 length of `raw[line_start..start]` already counted.
    fn at_units(
        raw: &[u8],
        line: usize,
        line_start: usize,
        units_before: usize,
        start: usize,
        end: usize,
    ) -> Position {
        let inner = &raw[start..end];
        let newlines = memchr::memchr_iter(b'\n', inner).count();
        let column_utf16 = units_before + 1;
        let (end_line, end_column, end_column_utf16) = if newlines == 0 {
            (line, end - line_start + 1, column_utf16 + utf16_len(inner))
        } else {
            let last = memchr::memrchr(b'\n', inner).map_or(start, |i| start + i + 1);
            (
                line + newlines,
                end - last + 1,
                utf16_len(&raw[last..end]) + 1,
            )
        };
        Position {
            line,
            column: start - line_start + 1,
            end_line,
            end_column,
            column_utf16,
            end_column_utf16,
        }
    }

    /// The position of `raw[start..end]`, counting lines from the start of `raw`.
    pub fn of(raw: &[u8], start: usize, end: usize) -> Position {
        let start = start.min(raw.len());
        let end = end.clamp(start, raw.len());
        let line = 1 + memchr::memchr_iter(b'\n', &raw[..start]).count();
        let line_start = memchr::memrchr(b'\n', &raw[..start]).map_or(0, |i| i + 1);
        Position::at(raw, line, line_start, start, end)
    }
}

/// UTF-16 code units of `bytes` read as UTF-8 (invalid sequences as U+FFFD).
fn utf16_len(bytes: &[u8]) -> usize {
    if bytes.is_ascii() {
        return bytes.len();
    }
    String::from_utf8_lossy(bytes).encode_utf16().count()
}

/// Facts a decoder adds to a location.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Extra {
    /// Notebook cell index (0-based).
    pub cell: Option<usize>,
    /// Output index within the cell (0-based).
    pub output: Option<usize>,
    /// The key a value sits under (model-card front matter, model metadata).
    pub key: Option<String>,
    /// A message for findings that are not secrets (unsafe pickle imports).
    pub message: Option<String>,
    /// Set when the secret is in a name rather than in content: the offset is then in the
    /// name.
    pub name: Option<NameKind>,
    /// Set when the secret was found by decoding the text at the location: the chain of
    /// encodings, outermost first (`base64`, `base64+hex`). The location is the encoded text;
    /// the secret is the decoded one.
    pub decoded: Option<String>,
    /// Record index (0-based) in a record log: a TensorBoard event file, a W&B run log.
    pub record: Option<u64>,
    /// Row index (0-based) in a table (a Parquet dataset); the column is the key.
    pub row: Option<u64>,
}

/// Which name a secret was found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NameKind {
    /// The path of the input (a file or directory name).
    Path,
    /// An archive member's name (the location's `member`).
    Member,
    /// A metadata key (the location's `key`): model-card front matter, safetensors, GGUF.
    Key,
}

impl NameKind {
    /// How reports name it.
    pub fn as_str(self) -> &'static str {
        match self {
            NameKind::Path => "path",
            NameKind::Member => "member",
            NameKind::Key => "key",
        }
    }
}

/// Neighbouring matches looked at for secrets that share a snippet.
const SNIPPET_NEIGHBOURS: usize = 64;

/// Computes lines, columns and snippets for matches ordered by position. Matches on a line
/// that carries an inline `trawl:allow` are dropped.
///
/// The bytes looked at to find lines and columns are added to `work`.
pub fn place(hay: &[u8], matches: &[Match], work: &mut u64) -> Vec<Placed> {
    place_indexed(hay, matches, work)
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

/// [`place`], each placed match with its index in `matches` (those on allowed lines are left
/// out, so the indices say which ones remain).
pub(crate) fn place_indexed(hay: &[u8], matches: &[Match], work: &mut u64) -> Vec<(usize, Placed)> {
    let mut out = Vec::with_capacity(matches.len());
    // Matches come ordered by secret start: lines are counted incrementally, and a line's end,
    // its inline-allow verdict and its UTF-16 columns are worked out once, however many
    // matches it holds.
    let mut line = Line::first();
    for (idx, m) in matches.iter().enumerate() {
        let s = m.secret_span.start;
        line.advance(hay, s, work);
        // `trawl:allow` (or gitleaks' and TruffleHog's markers) anywhere on the line
        // suppresses what the line holds.
        if line.allowed {
            continue;
        }
        let (line_start, line_end) = (line.start, line.end.unwrap_or(hay.len()));
        let e = m.secret_span.end;
        let inner = &hay[s..e];
        let snip_start = line_start.max(s.saturating_sub(SNIPPET_CONTEXT));
        let snip_end = line_end.min(e.max(s) + SNIPPET_CONTEXT).max(s);
        let snip_secret_end = e.min(snip_end);
        let mut snippet = hay[snip_start..snip_end].to_vec();
        if snippet.last() == Some(&b'\r') {
            snippet.pop();
        }
        let lo = idx.saturating_sub(SNIPPET_NEIGHBOURS);
        let hi = (idx + SNIPPET_NEIGHBOURS + 1).min(matches.len());
        let snippet_others = (lo..hi)
            .filter(|&j| j != idx)
            .map(|j| &matches[j].secret_span)
            .filter(|o| o.start < snip_end && o.end > snip_start)
            .map(|o| (o.start.max(snip_start) - snip_start)..(o.end.min(snip_end) - snip_start))
            .collect();
        let units_before = line.units_before(hay, s, work);
        out.push((
            idx,
            Placed {
                rule: m.rule,
                snippet_others,
                secret: inner.to_vec(),
                offset: s,
                position: Some(Position::at_units(
                    hay,
                    line.number,
                    line_start,
                    units_before,
                    s,
                    e,
                )),
                member: None,
                extra: Extra::default(),
                snippet_secret: (s - snip_start)..(snip_secret_end - snip_start).min(snippet.len()),
                snippet,
                stored: None,
            },
        ));
    }
    out
}

/// Places matches found in a name (a path, an archive member's name, a metadata key): no
/// lines, the offset is in the name, the snippet is the name.
pub fn place_name(name: &[u8], matches: &[Match], kind: NameKind, work: &mut u64) -> Vec<Placed> {
    let mut placed = place(name, matches, work);
    for p in &mut placed {
        p.position = None;
        p.extra.name = Some(kind);
    }
    placed
}

/// The line [`place`] is on, and what has been worked out about it.
pub(crate) struct Line {
    /// 1-based line number.
    number: usize,
    /// Byte offset of the line's first byte.
    start: usize,
    /// Offset of the line's `\n` (or of the end of the input); `None` before it is looked for.
    end: Option<usize>,
    /// Whether the line carries an inline allow marker.
    allowed: bool,
    /// Newlines are counted up to here.
    counted: usize,
    /// A char boundary on the line, and the UTF-16 length of the line up to it.
    mark: usize,
    units: usize,
}

impl Line {
    pub(crate) fn first() -> Line {
        Line {
            number: 1,
            start: 0,
            end: None,
            allowed: false,
            counted: 0,
            mark: 0,
            units: 0,
        }
    }

    /// Moves to the line holding offset `at` (offsets come in increasing order).
    pub(crate) fn advance(&mut self, hay: &[u8], at: usize, work: &mut u64) {
        if at < self.counted {
            // Out of order (cannot happen for ordered input); recount from the start.
            *self = Line::first();
        }
        let same_line = self.end.is_some_and(|end| at <= end);
        let from = self.counted;
        self.counted = at;
        if same_line {
            return;
        }
        for i in memchr::memchr_iter(b'\n', &hay[from..at]) {
            self.number += 1;
            self.start = from + i + 1;
        }
        let end = memchr::memchr(b'\n', &hay[at..]).map_or(hay.len(), |i| at + i);
        // Newlines counted up to `at`, the rest of the line, and the whole line for allows.
        *work += (at - from + end - at + end - self.start) as u64;
        self.end = Some(end);
        self.allowed = suppress::allowed_inline(&hay[self.start..end]);
        self.mark = self.start;
        self.units = 0;
    }

    /// The position of `hay[start..end]` for offsets that come in increasing order: lines and
    /// columns are counted on from the offset before.
    pub(crate) fn position(
        &mut self,
        hay: &[u8],
        start: usize,
        end: usize,
        work: &mut u64,
    ) -> Position {
        let start = start.min(hay.len());
        let end = end.clamp(start, hay.len());
        self.advance(hay, start, work);
        let units = self.units_before(hay, start, work);
        Position::at_units(hay, self.number, self.start, units, start, end)
    }

    /// The UTF-16 length of the line up to offset `at`, counted on from the last offset asked
    /// about. Counts split only before a byte that starts a char (or is invalid), where a
    /// lossy decoding adds up piece by piece.
    fn units_before(&mut self, hay: &[u8], at: usize, work: &mut u64) -> usize {
        let boundary = hay.get(at).is_none_or(|&b| !(0x80..0xc0).contains(&b));
        if at < self.mark || !boundary {
            *work += (at - self.start) as u64;
            return utf16_len(&hay[self.start..at]);
        }
        *work += (at - self.mark) as u64;
        self.units += utf16_len(&hay[self.mark..at]);
        self.mark = at;
        self.units
    }
}

/// Hex of the first 16 bytes of SHA-256 over the parts, each followed by a NUL.
fn hash_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
        h.update([0u8]);
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The secret fingerprint: stable across moves, rebases and squashes.
pub fn secret_fingerprint(rule_id: &str, secret: &[u8]) -> String {
    hash_hex(&[rule_id.as_bytes(), secret])
}

/// The location fingerprint: distinguishes the places a secret was seen. It hashes named
/// fields (path, member, line, and the byte offset only where there is no line, and the kind
/// of name for a secret in a name), so a line number can never be mistaken for an offset.
pub fn location_fingerprint(
    secret_fp: &str,
    path: &[u8],
    member: Option<&str>,
    position: Option<Position>,
    offset: usize,
    name: Option<NameKind>,
) -> String {
    let line = position.map(|p| p.line.to_string()).unwrap_or_default();
    let offset = if position.is_some() {
        String::new()
    } else {
        offset.to_string()
    };
    let mut parts: Vec<&[u8]> = vec![
        b"v2",
        secret_fp.as_bytes(),
        b"path",
        path,
        b"member",
        member.unwrap_or_default().as_bytes(),
        b"line",
        line.as_bytes(),
        b"offset",
        offset.as_bytes(),
    ];
    if let Some(kind) = name {
        parts.extend([&b"name"[..], kind.as_str().as_bytes()]);
    }
    hash_hex(&parts)
}

/// What a finding is: a secret, or code that runs when an artifact is loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum What {
    /// A credential (redacted in reports unless asked).
    Secret(Vec<u8>),
    /// A callable or layer that runs code on load (a pickle import, a Keras Lambda layer);
    /// not secret, shown as it is.
    UnsafeCode(String),
    /// A secret known only by its fingerprint and its redacted form, as the state store and
    /// shard files keep it: printed as it is.
    Redacted(String),
}

impl What {
    /// The bytes the finding's fingerprint is made of (for a redacted secret, the redacted
    /// text: its fingerprint was made when it was found).
    pub fn bytes(&self) -> &[u8] {
        match self {
            What::Secret(s) => s,
            What::UnsafeCode(c) | What::Redacted(c) => c.as_bytes(),
        }
    }
}

/// One place a secret was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Where the input came from.
    pub provenance: Provenance,
    /// Archive member chain below the input, if any.
    pub member: Option<String>,
    /// Lines and columns, when the content has lines.
    pub position: Option<Position>,
    /// Byte offset of the secret in the input (in the member when set).
    pub offset: usize,
    /// Decoder facts (notebook cell and output, key, message).
    pub extra: Extra,
    /// Text around the secret (unredacted) and the secret's range in it.
    pub snippet: Vec<u8>,
    /// Range of the secret in `snippet`.
    pub snippet_secret: Range<usize>,
    /// Ranges of other secrets in `snippet`.
    pub snippet_others: Vec<Range<usize>>,
    /// Hash of the secret fingerprint and the named fields of the place.
    pub fingerprint: String,
    /// The snippet is already redacted (read from the state store or a shard file).
    pub snippet_redacted: bool,
    /// The repository, in scans of many (`trawl org`): its clone URL.
    pub repository: Option<Arc<str>>,
}

/// A secret (or unsafe code) found by one rule, with every place it was seen.
#[derive(Clone, Debug)]
pub struct Finding {
    /// The rule, by id with its metadata.
    pub rule: Arc<RuleInfo>,
    /// What was found (never printed in clear unless asked, for secrets).
    pub what: What,
    /// hash(rule id, secret).
    pub fingerprint: String,
    /// Places, ordered.
    pub locations: Vec<Location>,
    /// What its provider said of it, when verification was asked (`--verify`).
    pub verification: Option<crate::verify::Verification>,
}

/// Findings deduplicated by secret fingerprint.
#[derive(Debug, Default)]
pub struct FindingSet {
    index: HashMap<String, usize>,
    findings: Vec<Finding>,
}

impl Location {
    /// The path reports show: the input's path, then `!member` for archive members.
    pub fn display_path(&self) -> String {
        match &self.member {
            Some(m) => format!("{}!{m}", self.provenance.path()),
            None => self.provenance.path().to_string(),
        }
    }

    /// What makes two locations the same place: repository, input, member, name or
    /// content, offset.
    #[allow(clippy::type_complexity)]
    fn key(
        &self,
    ) -> (
        &Option<Arc<str>>,
        &Provenance,
        &Option<String>,
        Option<NameKind>,
        usize,
    ) {
        (
            &self.repository,
            &self.provenance,
            &self.member,
            self.extra.name,
            self.offset,
        )
    }
}

impl FindingSet {
    /// Adds the placed matches of one input seen at `provenance`.
    pub fn add(&mut self, scanner: &Scanner, provenance: &Provenance, placed: &[Placed]) {
        for p in placed {
            let rule = scanner.rule(p.rule);
            let what = if rule.is_synthetic() {
                What::UnsafeCode(String::from_utf8_lossy(&p.secret).into_owned())
            } else if p.stored.is_some() {
                What::Redacted(String::from_utf8_lossy(&p.secret).into_owned())
            } else {
                What::Secret(p.secret.clone())
            };
            let fp = match &p.stored {
                Some(fp) => fp.clone(),
                None => secret_fingerprint(rule.id(), what.bytes()),
            };
            let location = Location {
                provenance: provenance.clone(),
                member: p.member.clone(),
                position: p.position,
                offset: p.offset,
                extra: p.extra.clone(),
                snippet: p.snippet.clone(),
                snippet_secret: p.snippet_secret.clone(),
                snippet_others: p.snippet_others.clone(),
                fingerprint: location_fingerprint(
                    &fp,
                    provenance.path_bytes(),
                    p.member.as_deref(),
                    p.position,
                    p.offset,
                    p.extra.name,
                ),
                snippet_redacted: p.stored.is_some(),
                repository: None,
            };
            match self.index.get(&fp) {
                Some(&i) => {
                    let f = &mut self.findings[i];
                    // The secret in clear, when one of the places gave it.
                    if matches!(f.what, What::Redacted(_)) && matches!(what, What::Secret(_)) {
                        f.what = what;
                    }
                    f.locations.push(location);
                }
                None => {
                    self.index.insert(fp.clone(), self.findings.len());
                    self.findings.push(Finding {
                        rule: rule.info().clone(),
                        what,
                        fingerprint: fp,
                        locations: vec![location],
                        verification: None,
                    });
                }
            }
        }
    }

    /// Number of distinct findings.
    pub fn len(&self) -> usize {
        self.findings.len()
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.findings.is_empty()
    }

    /// The findings in a deterministic order: locations by (input, member, offset), the same
    /// place once; findings by their first location, then rule id.
    pub fn into_sorted(self) -> Vec<Finding> {
        sorted(self.findings)
    }
}

/// Findings in a deterministic order: locations by (repository, input, member, offset), the
/// same place once; findings by their first location, then rule id.
pub fn sorted(mut v: Vec<Finding>) -> Vec<Finding> {
    for f in &mut v {
        f.locations.sort_by(|a, b| a.key().cmp(&b.key()));
        f.locations.dedup_by(|a, b| a.key() == b.key());
    }
    v.sort_by(|a, b| {
        let ka = a.locations.first().map(Location::key);
        let kb = b.locations.first().map(Location::key);
        ka.cmp(&kb).then_with(|| a.rule.id.cmp(&b.rule.id))
    });
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_counts_lines_and_columns() {
        let hay = b"a\nbb secret1 x\nc\n  secret2\n";
        let mk = |s: usize, e: usize| Match {
            rule: 0,
            span: s..e,
            secret_span: s..e,
        };
        let s1 = 5;
        let s2 = hay.windows(7).rposition(|w| w == b"secret2").unwrap();
        let placed = place(hay, &[mk(s1, s1 + 7), mk(s2, s2 + 7)], &mut 0);
        let (p0, p1) = (placed[0].position.unwrap(), placed[1].position.unwrap());
        assert_eq!((p0.line, p0.column, p0.end_column), (2, 4, 11));
        assert_eq!((p1.line, p1.column), (4, 3));
        assert_eq!(
            &placed[0].snippet[placed[0].snippet_secret.clone()],
            b"secret1"
        );
    }

    #[test]
    fn fingerprints_ignore_location_but_locations_differ() {
        let a = secret_fingerprint("r", b"s");
        assert_eq!(a, secret_fingerprint("r", b"s"));
        assert_ne!(a, secret_fingerprint("q", b"s"));
        let at = |line: usize| Some(Position::of(b"x\nx\nx\n", 2 * (line - 1), 2 * line - 1));
        assert_ne!(
            location_fingerprint(&a, b"p", None, at(1), 0, None),
            location_fingerprint(&a, b"p", None, at(2), 2, None)
        );
        // A line number is never taken for an offset, nor a member for none.
        assert_ne!(
            location_fingerprint(&a, b"p", None, at(1), 0, None),
            location_fingerprint(&a, b"p", None, None, 1, None)
        );
        assert_ne!(
            location_fingerprint(&a, b"p", Some("m"), at(1), 0, None),
            location_fingerprint(&a, b"p", None, at(1), 0, None)
        );
    }

    #[test]
    fn placement_on_one_line_matches_positions_counted_from_scratch() {
        // Many matches on one line, with multi-byte chars and a bad byte between them.
        let hay = b"x \xc3\xa9 AAAA \xf0\x9f\x98\x80 BBBB \xff CCCC\nDDDD \xe2\x82\xac EEEE";
        let spans: Vec<_> = [&b"AAAA"[..], b"BBBB", b"CCCC", b"DDDD", b"EEEE"]
            .iter()
            .map(|w| {
                let at = hay.windows(4).position(|x| x == *w).unwrap();
                Match {
                    rule: 0,
                    span: at..at + 4,
                    secret_span: at..at + 4,
                }
            })
            .collect();
        let placed = place(hay, &spans, &mut 0);
        for (p, m) in placed.iter().zip(&spans) {
            let span = m.secret_span.clone();
            assert_eq!(p.position, Some(Position::of(hay, span.start, span.end)));
        }
        let allowed = b"AAAA BBBB trawl:allow\nCCCC";
        let m = |at: usize| Match {
            rule: 0,
            span: at..at + 4,
            secret_span: at..at + 4,
        };
        let placed = place(allowed, &[m(0), m(5), m(22)], &mut 0);
        assert_eq!(
            placed.len(),
            1,
            "the allowed line's two matches are dropped"
        );
    }

    #[test]
    fn utf16_columns_count_code_units() {
        // "é" is 2 bytes and 1 UTF-16 unit; "😀" is 4 bytes and 2 units.
        let raw = "x = \"é😀 SECRET\"\n".as_bytes();
        let at = raw.windows(6).position(|w| w == b"SECRET").unwrap();
        let p = Position::of(raw, at, at + 6);
        assert_eq!(p.column, at + 1);
        assert_eq!(p.column_utf16, at + 1 - 1 - 2);
        assert_eq!(p.end_column_utf16 - p.column_utf16, 6);
    }
}
