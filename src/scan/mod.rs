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

use crate::rules::{Rule, RuleSet, WINDOW_BEFORE};

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

/// Rules compiled together with the keyword prefilter. Shared by all threads.
#[derive(Debug)]
pub struct Scanner {
    rules: RuleSet,
    keywords: AhoCorasick,
    /// For each keyword pattern, the rules that listed it.
    keyword_rules: Vec<Vec<usize>>,
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
        let keywords = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&patterns)
            .context("building the keyword automaton")?;
        let generic = rules
            .rules()
            .iter()
            .map(|r| r.spec.category == "generic")
            .collect();
        Ok(Scanner {
            rules,
            keywords,
            keyword_rules,
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
}

impl Worker<'_> {
    /// The scanner this worker belongs to.
    pub fn scanner(&self) -> &Scanner {
        self.scanner
    }

    /// Finds the confirmed secrets in `hay`, ordered by position.
    pub fn scan(&mut self, hay: &[u8]) -> Vec<Match> {
        let scanner = self.scanner;
        self.collect_windows(hay);
        let mut out = Vec::new();
        let mut data_uri: Option<(usize, usize)> = None;
        let touched = std::mem::take(&mut self.touched);
        for &r in &touched {
            let windows = std::mem::take(&mut self.windows[r]);
            let rule = scanner.rule(r);
            let scratch = self.scratch[r].get_or_insert_with(|| RuleScratch {
                cache: rule.regex.create_cache(),
                caps: rule.regex.create_captures(),
            });
            for &(ws, we) in &windows {
                confirm_window(rule, r, hay, ws..we, scratch, &mut data_uri, &mut out);
            }
            let mut windows = windows;
            windows.clear();
            self.windows[r] = windows;
        }
        self.touched = touched;
        self.touched.clear();
        resolve_overlaps(&scanner.generic, &mut out);
        out
    }

    fn collect_windows(&mut self, hay: &[u8]) {
        let scanner = self.scanner;
        for &r in &scanner.unkeyworded {
            self.windows[r].push((0, hay.len()));
            self.touched.push(r);
        }
        for hit in scanner.keywords.find_overlapping_iter(hay) {
            for &r in &scanner.keyword_rules[hit.pattern().as_usize()] {
                let ws = hit.start().saturating_sub(WINDOW_BEFORE);
                let we = hit.end().saturating_add(scanner.rule(r).window_after).min(hay.len());
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

fn confirm_window(
    rule: &Rule,
    rule_index: usize,
    hay: &[u8],
    window: Range<usize>,
    scratch: &mut RuleScratch,
    data_uri: &mut Option<(usize, usize)>,
    out: &mut Vec<Match>,
) {
    let mut input = Input::new(hay).range(window.clone());
    loop {
        rule.regex
            .search_captures_with(&mut scratch.cache, &input, &mut scratch.caps);
        let Some(m) = scratch.caps.get_match() else {
            break;
        };
        let span = m.range();
        let secret_span = scratch
            .caps
            .get_group(rule.secret_group)
            .map(|s| s.range())
            .unwrap_or_else(|| span.clone());
        if confirm_secret(rule, hay, &secret_span, data_uri) {
            out.push(Match {
                rule: rule_index,
                span: span.clone(),
                secret_span,
            });
        }
        let next = if span.end > span.start { span.end } else { span.end + 1 };
        if next >= window.end {
            break;
        }
        input.set_start(next);
    }
}

fn confirm_secret(
    rule: &Rule,
    hay: &[u8],
    secret_span: &Range<usize>,
    data_uri: &mut Option<(usize, usize)>,
) -> bool {
    let secret = &hay[secret_span.clone()];
    if secret.is_empty() {
        return false;
    }
    if let Some(min) = rule.spec.entropy {
        if filters::shannon_entropy(secret) < min {
            return false;
        }
    }
    if let Some(v) = rule.spec.validate {
        if !filters::validate(v, secret) {
            return false;
        }
    }
    if filters::is_placeholder(secret) || rule.allowlisted(secret) {
        return false;
    }
    // Inside an image embedded as a data: URI? The span is remembered so that a long
    // payload is walked once, however many candidates it holds.
    let at = secret_span.start;
    if let Some((s, e)) = *data_uri {
        if at >= s && at < e {
            return false;
        }
    }
    if let Some(span) = filters::data_uri_span(hay, at) {
        *data_uri = Some(span);
        return false;
    }
    true
}

/// Orders matches by position and drops redundant ones: a generic-rule secret that overlaps a
/// specific rule's secret, and, among rules reporting the same secret span, all but the one with
/// the longest match (the one that saw the most context).
fn resolve_overlaps(generic: &[bool], matches: &mut Vec<Match>) {
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
