//! Encoded secrets: after a text's raw scan, finds runs of base64 (standard and URL-safe), hex,
//! percent-encoding and `\uXXXX` / `\xXX` string escapes, decodes those that decode to text,
//! and scans each decoding in its line's context (`AWS_SECRET_ACCESS_KEY: <decoded>`,
//! `"auth": "<decoded>"`), one level deeper for an encoding inside a decoding.
//!
//! Contract: [`scan`] takes a text and its raw matches and returns the secrets that only a
//! decoding shows ([`Hit`]), each with the range of the encoded bytes of the text that hold
//! it and the chain of encodings (`base64`, `base64+hex`). Binary decodings (images, DER key
//! bodies, digests, random identifiers) are dropped, and so are runs inside `data:` URIs.
//! Against the raw matches of the same bytes: a decoded match of a secret the raw scan saw as
//! it is goes, and so does one whose encoded bytes hold all of a specific raw match (the same
//! secret, encoded), or whose rule is the raw match's specific rule; a generic raw match
//! gives way to a hit of its own rule (the decoded value is the secret) and to a specific
//! hit; a generic hit goes when another rule matched there; a specific one stands beside a
//! specific raw match of more than it (a JWT carrying a key). The work is linear in the text: every level
//! decodes at most the text's length plus [`DECODED_SLACK`] bytes in all, [`MAX_LEVELS`] levels,
//! [`MAX_TRIES`] runs tried per level, [`CONTEXT`] bytes of line kept on each side.
//! [`place`] places raw matches and hits together; a hit's snippet is the encoded text.

use std::ops::Range;

use crate::findings::{place_indexed, Placed};
use crate::scan::{Match, Worker};

mod runs;

use runs::{candidates, decode, Kind};

/// Levels of decoding: a decoding may hold an encoding, decoded once more.
pub const MAX_LEVELS: usize = 2;
/// Decoded bytes allowed per level beyond the text's own length.
pub const DECODED_SLACK: usize = 4096;
/// Encoded runs tried per level.
pub const MAX_TRIES: usize = 1 << 20;
/// Bytes of the line kept on each side of a decoding (the key it is assigned to, quotes).
pub const CONTEXT: usize = 96;

/// A decoding placed in a level's text.
#[derive(Debug)]
struct Piece {
    /// Where the decoding sits in the level's text.
    text: Range<usize>,
    /// The encoded run in the level's input (the text, or the level above's text).
    src: Range<usize>,
    kind: Kind,
    /// The piece's offset table in [`Level::tables`] (percent and escape runs).
    table: Range<usize>,
    /// The encodings from the outside in (`base64+hex`).
    chain: String,
}

/// One level of decoding: the decodings of the level's input, each with the rest of its line
/// around it, joined one segment per line.
#[derive(Debug, Default)]
struct Level {
    text: Vec<u8>,
    pieces: Vec<Piece>,
    tables: Vec<u32>,
}

impl Level {
    /// The range of the level's input that the decoded bytes `a..b` of piece `p` come from.
    fn source(&self, p: &Piece, a: usize, b: usize) -> Range<usize> {
        let (s, e) = match p.kind {
            Kind::Base64 => {
                let end = |b: usize| {
                    if b == 0 {
                        0
                    } else {
                        4 * ((b - 1) / 3) + (b - 1) % 3 + 2
                    }
                };
                (4 * (a / 3) + a % 3, end(b))
            }
            Kind::Hex => (2 * a, 2 * b),
            Kind::Percent | Kind::Escape => {
                let t = &self.tables[p.table.clone()];
                let at = |i: usize| t.get(i).map_or(p.src.len(), |&o| o as usize);
                (at(a), at(b))
            }
        };
        let len = p.src.len();
        p.src.start + s.min(len)..p.src.start + e.clamp(s.min(len), len)
    }

    /// The piece whose decoding holds `range` of the level's text.
    fn piece_holding(&self, range: &Range<usize>) -> Option<&Piece> {
        let i = self.pieces.partition_point(|p| p.text.start <= range.start);
        let p = self.pieces.get(i.checked_sub(1)?)?;
        (range.end <= p.text.end).then_some(p)
    }
}

/// What one level may still decode and copy.
struct Allowance {
    /// Decoded bytes.
    decoded: usize,
    /// Runs tried.
    tries: usize,
    /// Bytes of lines copied around decodings (runs overlapping each other each start a
    /// segment of their own, with their own context).
    context: usize,
}

/// Builds one level: the runs of `hay` inside `regions` (each with the chain of encodings that
/// made it) that decode to text, each in a segment with up to [`CONTEXT`] bytes of its line on
/// either side; decodings close on one line share a segment.
fn build_level(hay: &[u8], regions: &[(Range<usize>, &str)], work: &mut u64) -> Level {
    let mut level = Level::default();
    let mut allow = Allowance {
        decoded: hay.len() + DECODED_SLACK,
        tries: MAX_TRIES,
        context: 2 * hay.len() + DECODED_SLACK,
    };
    let (mut cands, mut out, mut table) = (Vec::new(), Vec::new(), Vec::new());
    // The end in `hay` of the last decoding of the open segment.
    let mut open: Option<usize> = None;
    for (region, chain) in regions {
        cands.clear();
        candidates(hay, region.clone(), &mut cands);
        *work += region.len() as u64;
        for c in &cands {
            if allow.tries == 0 {
                break;
            }
            allow.tries -= 1;
            let src = &hay[c.range.clone()];
            *work += src.len() as u64;
            if !decode(c.kind, src, &mut out, &mut table) || out.len() > allow.decoded {
                continue;
            }
            allow.decoded -= out.len();
            let joins = open.is_some_and(|end| {
                c.range.start >= end
                    && c.range.start - end <= 2 * CONTEXT
                    && memchr::memchr(b'\n', &hay[end..c.range.start]).is_none()
            });
            let before = level.text.len();
            match open {
                Some(end) if joins => level.text.extend_from_slice(&hay[end..c.range.start]),
                _ => {
                    if let Some(end) = open {
                        close_segment(hay, end, &mut level.text, &mut allow.context);
                    }
                    let from = c.range.start.saturating_sub(CONTEXT.min(allow.context));
                    let line = memchr::memrchr(b'\n', &hay[from..c.range.start])
                        .map_or(from, |i| from + i + 1);
                    level.text.extend_from_slice(&hay[line..c.range.start]);
                    allow.context = allow.context.saturating_sub(c.range.start - line);
                }
            }
            let start = level.text.len();
            level.text.extend_from_slice(&out);
            let tables = level.tables.len();
            level.tables.extend_from_slice(&table);
            level.pieces.push(Piece {
                text: start..level.text.len(),
                src: c.range.clone(),
                kind: c.kind,
                table: tables..level.tables.len(),
                chain: if chain.is_empty() {
                    c.kind.name().to_string()
                } else {
                    format!("{chain}+{}", c.kind.name())
                },
            });
            *work += (level.text.len() - before) as u64;
            open = Some(c.range.end);
        }
    }
    if let Some(end) = open {
        close_segment(hay, end, &mut level.text, &mut allow.context);
    }
    level
}

/// Ends a segment: the rest of the line after `end`, up to [`CONTEXT`] bytes (and what is
/// left of `allowance`), and a newline.
fn close_segment(hay: &[u8], end: usize, text: &mut Vec<u8>, allowance: &mut usize) {
    let to = (end + CONTEXT.min(*allowance)).min(hay.len());
    let line_end = memchr::memchr(b'\n', &hay[end..to]).map_or(to, |i| end + i);
    text.extend_from_slice(&hay[end..line_end]);
    *allowance = allowance.saturating_sub(line_end - end);
    text.push(b'\n');
}

/// A secret found in a decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// Index of the rule in the scanner.
    pub rule: usize,
    /// The decoded secret.
    pub secret: Vec<u8>,
    /// The encoded bytes of the text that hold it.
    pub encoded: Range<usize>,
    /// The encodings from the outside in (`base64`, `base64+hex`).
    pub chain: String,
    /// 1 for a decoding of the text, 2 for a decoding inside a decoding.
    pub level: usize,
}

/// Decodes the encoded runs of `hay` and scans the decodings in context; returns what they
/// hold that the raw scan did not report, ordered by the encoded range. Raw generic matches
/// that a decoded specific secret covers are removed from `raw`.
pub fn scan(worker: &mut Worker<'_>, hay: &[u8], raw: &mut Vec<Match>) -> Vec<Hit> {
    let mut work = 0;
    let mut levels: Vec<Level> = Vec::with_capacity(MAX_LEVELS);
    let mut hits = Vec::new();
    for depth in 0..MAX_LEVELS {
        let level = match levels.last() {
            None => build_level(hay, &[(0..hay.len(), "")], &mut work),
            Some(above) => {
                let regions: Vec<(Range<usize>, &str)> = above
                    .pieces
                    .iter()
                    .map(|p| (p.text.clone(), p.chain.as_str()))
                    .collect();
                build_level(&above.text, &regions, &mut work)
            }
        };
        if level.pieces.is_empty() {
            break;
        }
        for m in worker.scan(&level.text) {
            let Some(p) = level.piece_holding(&m.secret_span) else {
                continue;
            };
            let local = m.secret_span.start - p.text.start..m.secret_span.end - p.text.start;
            let mut encoded = level.source(p, local.start, local.end);
            // Up through the levels above, to the text.
            for above in levels.iter().rev() {
                let Some(q) = above.piece_holding(&encoded) else {
                    break;
                };
                encoded = above.source(q, encoded.start - q.text.start, encoded.end - q.text.start);
            }
            hits.push(Hit {
                rule: m.rule,
                secret: level.text[m.secret_span.clone()].to_vec(),
                encoded,
                chain: p.chain.clone(),
                level: depth + 1,
            });
        }
        levels.push(level);
    }
    worker.work_mut().decoded += work;
    if hits.is_empty() {
        return hits;
    }
    resolve(worker, hay, raw, hits)
}

/// Raw matches looked at around each hit for overlaps (raw matches rarely overlap each other).
const OVERLAP_LOOKBACK: usize = 64;

/// Drops the hits the raw scan already reported, or that a deeper or specific hit makes
/// redundant, and the raw generic matches a specific hit covers.
fn resolve(worker: &Worker<'_>, hay: &[u8], raw: &mut Vec<Match>, mut hits: Vec<Hit>) -> Vec<Hit> {
    let scanner = worker.scanner();
    let generic = |rule: usize| scanner.rule(rule).is_generic();
    // A secret the decoding left as it was is not encoded: the raw scan saw it.
    hits.retain(|h| hay.get(h.encoded.clone()) != Some(&h.secret[..]));
    let mut dropped_raw = vec![false; raw.len()];
    let mut covered = Vec::new();
    hits.retain(|h| {
        let i = raw.partition_point(|m| m.secret_span.start < h.encoded.end);
        covered.clear();
        for j in (i.saturating_sub(OVERLAP_LOOKBACK)..i).rev() {
            let m = &raw[j];
            if m.secret_span.end <= h.encoded.start {
                continue;
            }
            if hay.get(m.secret_span.clone()) == Some(&h.secret[..]) {
                return false;
            }
            // A specific raw match of the whole encoded secret (a kubeconfig's base64
            // `client-key-data`, whose decoding is the PEM key) already reports it; the
            // padding is the only part of a run no decoded byte maps to.
            let whole =
                h.encoded.start <= m.secret_span.start && m.secret_span.end <= h.encoded.end + 2;
            if whole && !generic(m.rule) && m.rule != h.rule {
                return false;
            }
            // A generic rule on the encoded value (a Kubernetes `password:` in base64) matched
            // it by accident: the decoded value is the secret. A specific rule meant the form
            // it matched (a SAS `sig=` percent-encoded). A generic hit adds nothing to another
            // rule's match (basic credentials stay reported as the header's base64); a
            // specific one replaces a generic match and stands beside a specific match of
            // another secret (a JWT carrying a key).
            if m.rule == h.rule && !generic(m.rule) {
                return false;
            }
            if generic(m.rule) && (m.rule == h.rule || !generic(h.rule)) {
                covered.push(j);
            } else if generic(h.rule) {
                return false;
            }
        }
        for &j in &covered {
            dropped_raw[j] = true;
        }
        true
    });
    if dropped_raw.iter().any(|&d| d) {
        let mut j = 0;
        raw.retain(|_| {
            j += 1;
            !dropped_raw[j - 1]
        });
    }
    hits.sort_by(|a, b| {
        (a.encoded.start, a.encoded.end, b.level).cmp(&(b.encoded.start, b.encoded.end, a.level))
    });
    // A generic hit overlapped by a specific one goes, as in the raw scan; of overlapping
    // generic hits, the deepest decoding stays; the same secret of one rule is kept once.
    let mut drop = vec![false; hits.len()];
    let mut max_end = 0;
    for (i, h) in hits.iter().enumerate() {
        if generic(h.rule) {
            drop[i] = max_end > h.encoded.start;
        } else {
            max_end = max_end.max(h.encoded.end);
        }
    }
    let mut min_start = usize::MAX;
    for (i, h) in hits.iter().enumerate().rev() {
        if generic(h.rule) {
            drop[i] |= min_start < h.encoded.end;
        } else {
            min_start = min_start.min(h.encoded.start);
        }
    }
    let mut last: Option<usize> = None;
    for i in 0..hits.len() {
        if drop[i] {
            continue;
        }
        if let Some(k) = last {
            let (a, b) = (&hits[k], &hits[i]);
            let overlap = b.encoded.start < a.encoded.end;
            let same = a.rule == b.rule && a.secret == b.secret;
            if overlap && (same || (generic(a.rule) && generic(b.rule))) {
                let deeper_later = b.level > a.level;
                drop[if deeper_later { k } else { i }] = true;
                if !deeper_later {
                    continue;
                }
            }
        }
        last = Some(i);
    }
    let mut i = 0;
    hits.retain(|_| {
        i += 1;
        !drop[i - 1]
    });
    hits
}

/// Places raw matches and hits together (ordered by position, lines counted once): a hit is
/// placed at its encoded bytes, which its snippet shows (redacted like any secret), with the
/// decoded secret and the chain of encodings in [`crate::findings::Extra::decoded`].
pub fn place(hay: &[u8], raw: &[Match], hits: &[Hit], work: &mut u64) -> Vec<Placed> {
    if hits.is_empty() {
        return crate::findings::place(hay, raw, work);
    }
    let mut all: Vec<(Match, Option<&Hit>)> = raw.iter().map(|m| (m.clone(), None)).collect();
    all.extend(hits.iter().map(|h| {
        let m = Match {
            rule: h.rule,
            span: h.encoded.clone(),
            secret_span: h.encoded.clone(),
        };
        (m, Some(h))
    }));
    all.sort_by_key(|(m, _)| m.secret_span.start);
    let matches: Vec<Match> = all.iter().map(|(m, _)| m.clone()).collect();
    let mut placed = place_indexed(hay, &matches, work);
    for (i, p) in &mut placed {
        if let Some(h) = all[*i].1 {
            p.secret.clone_from(&h.secret);
            p.extra.decoded = Some(h.chain.clone());
        }
    }
    placed.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests;
