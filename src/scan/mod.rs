//! The scanner: a shared, immutable [`Scanner`] (rules plus one keyword automaton) and a
//! per-thread [`Worker`] that owns its scratch (regex caches, window lists).
//!
//! Contract: [`Worker::scan`] takes any bytes and returns the confirmed secrets in them, in
//! order of position; it never panics on input and its time is linear in the input times the
//! number of candidate rules. Scanning is two-phase: keyword hits pick candidate rules and the
//! windows they run on; only those regexes run, then entropy, validators, placeholder and
//! allowlist checks confirm each secret.

pub mod filters;

use std::ops::Range;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use anyhow::{Context, Result};
use regex_automata::meta;
use regex_automata::util::captures::Captures;
use regex_automata::Input;

use crate::rules::{Compiled, Rule, RuleSet, WINDOW_BEFORE};

/// Windows of one rule closer than this are searched as one.
const WINDOW_MERGE_GAP: usize = 64;

/// A confirmed secret in one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// Index of the rule in the scanner's rule set.
    pub rule: usize,
    /// Byte range of the whole regex match.
    pub span: Range<usize>,
    /// Byte range of the secret.
    pub secret_span: Range<usize>,
}

/// Bytes looked at by the steps that run once per candidate or finding and read the input
/// around it. Each must cost a small constant times the input in all, however many findings
/// it holds (issue 9): a walk back over everything before each finding would make these grow
/// with the square of the input. Counted with plain adds; tests bound them on hostile shapes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// Bytes walked back over (and marker bytes compared) by the base64 `data:` URI check.
    pub data_uri: u64,
    /// Bytes read by [`crate::findings::place`] and the notebook's positions: newlines
    /// counted, line ends looked for, lines checked for inline allows, UTF-16 columns.
    pub place: u64,
    /// Bytes of model-card front matter read to find the keys findings sit under.
    pub front_matter: u64,
    /// Bytes the decoding layer ([`crate::content`]'s encoded runs) looked at: encoded runs
    /// decoded and text written around decodings to scan them in context.
    pub decoded: u64,
}

impl Work {
    /// All the bytes counted.
    pub fn total(&self) -> u64 {
        self.data_uri + self.place + self.front_matter + self.decoded
    }
}

/// Rules compiled together with the keyword prefilter. Shared by all threads.
#[derive(Debug)]
pub struct Scanner {
    rules: RuleSet,
    keywords: AhoCorasick,
    /// For each keyword pattern, the rules to run when it is reported: its own, and those of
    /// every keyword that a report of it can hide (see [`keyword_closure`]).
    keyword_rules: Vec<Vec<usize>>,
    /// Extra bytes after a hit for keywords reached through the closure.
    keyword_pad: usize,
    /// Rules without keywords: they run on whole inputs.
    unkeyworded: Vec<usize>,
    generic: Vec<bool>,
}

impl Scanner {
    /// Builds the keyword automaton over all rules.
    pub fn new(rules: RuleSet) -> Result<Scanner> {
        let mut patterns: Vec<String> = Vec::new();
        let mut keyword_rules: Vec<Vec<usize>> = Vec::new();
        let mut unkeyworded = Vec::new();
        for (i, rule) in rules.rules().iter().enumerate() {
            if rule.is_synthetic() {
                continue;
            }
            if rule.spec.keywords.is_empty() {
                unkeyworded.push(i);
            }
            for k in &rule.spec.keywords {
                match patterns.iter().position(|p| p == k) {
                    Some(p) => {
                        if !keyword_rules[p].contains(&i) {
                            keyword_rules[p].push(i);
                        }
                    }
                    None => {
                        patterns.push(k.clone());
                        keyword_rules.push(vec![i]);
                    }
                }
            }
        }
        let keyword_rules = keyword_closure(&patterns, &keyword_rules);
        let keyword_pad = patterns.iter().map(String::len).max().unwrap_or(0);
        // Leftmost-longest, non-overlapping: much faster than reporting every overlapping
        // occurrence; the closure above restores the occurrences a report hides.
        let keywords = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&patterns)
            .context("building the keyword automaton")?;
        let generic = rules.rules().iter().map(Rule::is_generic).collect();
        Ok(Scanner {
            rules,
            keywords,
            keyword_rules,
            keyword_pad,
            unkeyworded,
            generic,
        })
    }

    /// The compiled rules.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The rule at `index` (as in [`Match::rule`]).
    pub fn rule(&self, index: usize) -> &Rule {
        &self.rules.rules()[index]
    }

    /// A worker with its own scratch space, for one thread.
    pub fn worker(&self) -> Worker<'_> {
        let n = self.rules.len();
        Worker {
            scanner: self,
            scratch: (0..n).map(|_| None).collect(),
            windows: vec![Vec::new(); n],
            touched: Vec::new(),
            work: Work::default(),
        }
    }
}

struct RuleScratch {
    cache: meta::Cache,
    caps: Captures,
}

/// Per-thread scanning state: regex caches and window lists, reused across inputs.
pub struct Worker<'s> {
    scanner: &'s Scanner,
    scratch: Vec<Option<RuleScratch>>,
    windows: Vec<Vec<(usize, usize)>>,
    touched: Vec<usize>,
    work: Work,
}

impl Worker<'_> {
    /// The scanner this worker belongs to.
    pub fn scanner(&self) -> &Scanner {
        self.scanner
    }

    /// The work counted since the worker was made, over every input it scanned.
    pub fn work(&self) -> Work {
        self.work
    }

    /// The counters, for the steps after scanning (placing findings) to add to.
    pub fn work_mut(&mut self) -> &mut Work {
        &mut self.work
    }

    /// Finds the confirmed secrets in `hay`, ordered by position.
    pub fn scan(&mut self, hay: &[u8]) -> Vec<Match> {
        let scanner = self.scanner;
        self.collect_windows(hay);
        let mut found = Found::default();
        let touched = std::mem::take(&mut self.touched);
        for &r in &touched {
            let windows = std::mem::take(&mut self.windows[r]);
            let rule = scanner.rule(r);
            if let Some(compiled) = rule.compiled() {
                let scratch = self.scratch[r].get_or_insert_with(|| RuleScratch {
                    cache: compiled.regex.create_cache(),
                    caps: compiled.regex.create_captures(),
                });
                for &(ws, we) in &windows {
                    confirm_window(rule, compiled, r, hay, ws..we, scratch, &mut found);
                }
            }
            let mut windows = windows;
            windows.clear();
            self.windows[r] = windows;
        }
        self.touched = touched;
        self.touched.clear();
        let Found {
            mut matches,
            claims,
            data_uri_work,
            ..
        } = found;
        self.work.data_uri += data_uri_work;
        resolve_overlaps(&scanner.generic, &mut matches, claims);
        matches
    }

    fn collect_windows(&mut self, hay: &[u8]) {
        let scanner = self.scanner;
        for &r in &scanner.unkeyworded {
            self.windows[r].push((0, hay.len()));
            self.touched.push(r);
        }
        for hit in scanner.keywords.find_iter(hay) {
            for &r in &scanner.keyword_rules[hit.pattern().as_usize()] {
                let ws = hit.start().saturating_sub(WINDOW_BEFORE);
                let we = (hit.end() + scanner.keyword_pad)
                    .saturating_add(scanner.rule(r).window_after)
                    .min(hay.len());
                let list = &mut self.windows[r];
                match list.last_mut() {
                    Some(last) if ws <= last.1 + WINDOW_MERGE_GAP => {
                        last.0 = last.0.min(ws);
                        last.1 = last.1.max(we);
                    }
                    Some(_) => list.push((ws, we)),
                    None => {
                        list.push((ws, we));
                        self.touched.push(r);
                    }
                }
            }
        }
    }
}

/// Keyword occurrences a leftmost-longest report of `k` can hide: keywords inside `k`, and
/// keywords that start inside `k` and run past its end (a proper suffix of `k` is a proper
/// prefix of theirs). A report of `k` therefore stands for all of them, and runs their rules.
fn keyword_closure(patterns: &[String], rules: &[Vec<usize>]) -> Vec<Vec<usize>> {
    patterns
        .iter()
        .map(|k| {
            let mut out: Vec<usize> = Vec::new();
            for (j, other) in patterns.iter().enumerate() {
                let inside = k.contains(other.as_str());
                let overlaps = (1..k.len().min(other.len())).any(|n| {
                    k.is_char_boundary(k.len() - n)
                        && other.is_char_boundary(n)
                        && k[k.len() - n..] == other[..n]
                });
                if inside || overlaps {
                    out.extend(&rules[j]);
                }
            }
            out.sort_unstable();
            out.dedup();
            out
        })
        .collect()
}

/// What one input's windows yielded so far.
#[derive(Default)]
struct Found {
    matches: Vec<Match>,
    /// Secret spans of specific rules whose validator rejected them.
    claims: Vec<Range<usize>>,
    /// The base64 run the last candidate sat in, so a long one is walked once.
    base64_run: Option<filters::Base64Run>,
    /// Bytes the data: URI check looked at.
    data_uri_work: u64,
}

fn confirm_window(
    rule: &Rule,
    compiled: &Compiled,
    rule_index: usize,
    hay: &[u8],
    window: Range<usize>,
    scratch: &mut RuleScratch,
    found: &mut Found,
) {
    let mut input = Input::new(hay).range(window.clone());
    loop {
        compiled
            .regex
            .search_captures_with(&mut scratch.cache, &input, &mut scratch.caps);
        let Some(m) = scratch.caps.get_match() else {
            break;
        };
        let span = m.range();
        let secret_span = scratch
            .caps
            .get_group(compiled.secret_group)
            .map(|s| s.range())
            .unwrap_or_else(|| span.clone());
        let memo = (&mut found.base64_run, &mut found.data_uri_work);
        match confirm_secret(rule, hay, &secret_span, memo) {
            Verdict::Confirmed => found.matches.push(Match {
                rule: rule_index,
                span: span.clone(),
                secret_span,
            }),
            // The shape of a specific token whose checksum or structure is wrong: not a
            // secret, and not one for generic rules either.
            Verdict::Invalid if !rule.is_generic() => found.claims.push(secret_span),
            Verdict::Invalid | Verdict::Dropped => {}
        }
        let next = if span.end > span.start {
            span.end
        } else {
            span.end + 1
        };
        if next >= window.end {
            break;
        }
        input.set_start(next);
    }
}

/// What the checks after a regex match decided.
enum Verdict {
    /// A secret.
    Confirmed,
    /// Failed the rule's validator (checksum, structure).
    Invalid,
    /// Low entropy, a placeholder, allowlisted, or inside a data: URI.
    Dropped,
}

fn confirm_secret(
    rule: &Rule,
    hay: &[u8],
    secret_span: &Range<usize>,
    (base64_run, work): (&mut Option<filters::Base64Run>, &mut u64),
) -> Verdict {
    let secret = &hay[secret_span.clone()];
    if secret.is_empty() {
        return Verdict::Dropped;
    }
    if let Some(min) = rule.spec.entropy {
        if filters::shannon_entropy(secret) < min {
            return Verdict::Dropped;
        }
    }
    if let Some(v) = rule.spec.validate {
        if !filters::validate(v, secret) {
            return Verdict::Invalid;
        }
    }
    if filters::is_placeholder(secret) || rule.allowlisted(secret) {
        return Verdict::Dropped;
    }
    // Inside an image embedded as a data: URI? The run is remembered so that a long one is
    // walked once, however many candidates it holds.
    if filters::in_data_uri(hay, secret_span.start, base64_run, work) {
        return Verdict::Dropped;
    }
    Verdict::Confirmed
}

/// Orders matches by position and drops redundant ones: a generic-rule secret that overlaps a
/// specific rule's secret, and, among rules reporting the same secret span, all but the one with
/// the longest match (the one that saw the most context).
///
/// `claims` are secret spans that a specific rule's regex matched but its validator rejected:
/// generic matches overlapping them are dropped too.
fn resolve_overlaps(generic: &[bool], matches: &mut Vec<Match>, mut claims: Vec<Range<usize>>) {
    if !claims.is_empty() {
        // Sorted by start with a running maximum of ends: one binary search per match.
        claims.sort_by_key(|c| c.start);
        let mut max_end = Vec::with_capacity(claims.len());
        let mut m = 0;
        for c in &claims {
            m = m.max(c.end);
            max_end.push(m);
        }
        matches.retain(|mt| {
            if !generic[mt.rule] {
                return true;
            }
            let i = claims.partition_point(|c| c.start < mt.secret_span.end);
            !(i > 0 && max_end[i - 1] > mt.secret_span.start)
        });
    }
    if matches.len() < 2 {
        return;
    }
    matches.sort_by(|a, b| {
        (a.secret_span.start, a.secret_span.end)
            .cmp(&(b.secret_span.start, b.secret_span.end))
            .then((b.span.end - b.span.start).cmp(&(a.span.end - a.span.start)))
            .then(a.rule.cmp(&b.rule))
    });
    // Non-generic coverage: the furthest end among earlier-starting specific matches, and the
    // nearest start among later ones.
    let n = matches.len();
    let mut overlapped = vec![false; n];
    let mut max_end = 0usize;
    for (i, m) in matches.iter().enumerate() {
        if generic[m.rule] {
            overlapped[i] = max_end > m.secret_span.start;
        } else {
            max_end = max_end.max(m.secret_span.end);
        }
    }
    let mut min_start = usize::MAX;
    for (i, m) in matches.iter().enumerate().rev() {
        if generic[m.rule] {
            overlapped[i] |= min_start < m.secret_span.end;
        } else {
            min_start = min_start.min(m.secret_span.start);
        }
    }
    let mut i = 0;
    matches.retain(|_| {
        i += 1;
        !overlapped[i - 1]
    });
    matches.dedup_by(|later, earlier| later.secret_span == earlier.secret_span);
}
