//! The scanner: a shared, immutable [`Scanner`] (rules plus one keyword automaton) and a
//! per-thread [`Worker`] that owns its scratch (regex caches, window lists).
//!
//! Contract: [`Worker::scan`] takes any bytes and returns the confirmed secrets in them, in
//! order of position; it never panics on input and its time is linear in the input times the
//! number of candidate rules. Scanning is two-phase: keyword hits pick candidate rules and the
//! windows they run on; only those regexes run, then entropy, validators, placeholder and
//! allowlist checks confirm each secret.

pub mod filters;
pub mod names;

use std::collections::HashMap;
use std::ops::Range;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use anyhow::{Context, Result};
use regex_automata::meta;
use regex_automata::util::captures::Captures;
use regex_automata::Input;

use crate::rules::{self, Compiled, Rule, RuleSet, WINDOW_BEFORE};

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
    /// The keyword patterns, lower-cased (the automaton matches them ASCII case-insensitively).
    patterns: Vec<String>,
    /// For each keyword pattern, the rules to run where it occurs.
    keyword_rules: Vec<Vec<usize>>,
    /// For each keyword pattern, the occurrences of other keywords that a report of it can
    /// hide (see [`hidden_keywords`]).
    hidden: Vec<Vec<Hidden>>,
    /// Rules without keywords: they run on whole inputs.
    unkeyworded: Vec<usize>,
    generic: Vec<bool>,
}

impl Scanner {
    /// Builds the keyword automaton over all rules: a DFA, the quickest to search.
    pub fn new(rules: RuleSet) -> Result<Scanner> {
        Scanner::build(rules, AhoCorasickKind::DFA)
    }

    /// [`Scanner::new`] for a job that scans little (staged changes, a pre-commit hook): the
    /// keyword automaton is a contiguous NFA, several times slower to search but built in a
    /// fraction of the DFA's time (the DFA over the whole catalogue is about 2.4 MB).
    pub fn for_small_inputs(rules: RuleSet) -> Result<Scanner> {
        Scanner::build(rules, AhoCorasickKind::ContiguousNFA)
    }

    fn build(rules: RuleSet, kind: AhoCorasickKind) -> Result<Scanner> {
        let mut patterns: Vec<String> = Vec::new();
        let mut keyword_rules: Vec<Vec<usize>> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut unkeyworded = Vec::new();
        for (i, rule) in rules.rules().iter().enumerate() {
            if rule.is_synthetic() {
                continue;
            }
            if rule.spec.keywords.is_empty() {
                unkeyworded.push(i);
            }
            for k in &rule.spec.keywords {
                let k = k.to_ascii_lowercase();
                match index.get(&k) {
                    Some(&p) => {
                        if !keyword_rules[p].contains(&i) {
                            keyword_rules[p].push(i);
                        }
                    }
                    None => {
                        index.insert(k.clone(), patterns.len());
                        patterns.push(k);
                        keyword_rules.push(vec![i]);
                    }
                }
            }
        }
        let hidden = hidden_keywords(&patterns);
        // Leftmost-longest, non-overlapping: much faster than reporting every overlapping
        // occurrence; `hidden` restores the occurrences a report hides.
        let keywords = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(kind))
            .build(&patterns)
            .context("building the keyword automaton")?;
        let generic = rules.rules().iter().map(Rule::is_generic).collect();
        Ok(Scanner {
            rules,
            keywords,
            patterns,
            keyword_rules,
            hidden,
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
            let (start, p) = (hit.start(), hit.pattern().as_usize());
            self.add_windows(p, start, hit.end(), hay.len());
            for h in &scanner.hidden[p] {
                let k = &scanner.patterns[h.pattern];
                let at = start + h.offset;
                let occurs = !h.verify
                    || hay
                        .get(at..at + k.len())
                        .is_some_and(|b| b.eq_ignore_ascii_case(k.as_bytes()));
                if occurs {
                    self.add_windows(h.pattern, at, at + k.len(), hay.len());
                }
            }
        }
    }

    /// Adds the windows around an occurrence of keyword pattern `p` at `start..end` to the
    /// lists of its rules.
    fn add_windows(&mut self, p: usize, start: usize, end: usize, len: usize) {
        let scanner = self.scanner;
        for &r in &scanner.keyword_rules[p] {
            let ws = start.saturating_sub(WINDOW_BEFORE);
            let we = end.saturating_add(scanner.rule(r).window_after).min(len);
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

/// An occurrence of another keyword that a report of a keyword can hide.
#[derive(Debug)]
struct Hidden {
    /// The other keyword's pattern.
    pattern: usize,
    /// Where it would start, from the start of the reported keyword.
    offset: usize,
    /// Whether the input must be checked: an occurrence inside the reported keyword is
    /// certain; one that runs past its end is not.
    verify: bool,
}

/// Keyword occurrences a leftmost-longest report of `k` can hide: keywords inside `k`, and
/// keywords that start inside `k` and run past its end (a proper suffix of `k` is a proper
/// prefix of theirs). Any other occurrence starts at or after the report's end, where the
/// search resumes, so checking these restores every occurrence. Patterns are lower-cased.
fn hidden_keywords(patterns: &[String]) -> Vec<Vec<Hidden>> {
    // Keywords by their first byte: an occurrence inside `k` or running past its end starts
    // with the byte of `k` at its offset.
    let mut by_first: Vec<Vec<usize>> = vec![Vec::new(); 256];
    for (j, other) in patterns.iter().enumerate() {
        if let Some(&b) = other.as_bytes().first() {
            by_first[usize::from(b)].push(j);
        }
    }
    patterns
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let k = k.as_bytes();
            let mut out = Vec::new();
            for offset in 0..k.len() {
                let rest = &k[offset..];
                for &j in &by_first[usize::from(rest[0])] {
                    let other = patterns[j].as_bytes();
                    if j == i || (offset == 0 && other.len() >= k.len()) {
                        // Itself, or one that starts where `k` does and is no shorter: a
                        // leftmost-longest report of `k` means it was not there.
                        continue;
                    }
                    if rest.starts_with(other) {
                        out.push(Hidden {
                            pattern: j,
                            offset,
                            verify: false,
                        });
                    } else if other.starts_with(rest) {
                        out.push(Hidden {
                            pattern: j,
                            offset,
                            verify: true,
                        });
                    }
                }
            }
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
    if filters::is_placeholder(secret)
        || rules::is_documented_example(secret)
        || rule.allowlisted(secret)
    {
        return Verdict::Dropped;
    }
    // Generic rules key on a name, not on a shape: a value that is itself a name (an
    // identifier, a dependency coordinate) is what the name refers to, not a secret.
    if rule.is_generic() && (names::is_identifier(secret) || names::is_version_coordinate(secret)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A scanner over rules `a` (keyword `ab`), `b` (keyword `bcd`) and `c` (keyword `abx`),
    /// each finding its keyword followed by `=` and 12 characters.
    fn overlapping() -> Scanner {
        Scanner::new(overlapping_rules()).expect("scanner")
    }

    fn overlapping_rules() -> RuleSet {
        let mut rules = RuleSet::default();
        let rule = |id: &str, kw: &str| {
            format!(
                "[[rules]]\nid = \"{id}\"\nname = \"{id}\"\ncategory = \"generic\"\n\
                 severity = \"low\"\nregex = '''(?i:{kw})=(?P<secret>[A-Za-z0-9]{{12}})'''\n\
                 keywords = [\"{kw}\"]\n"
            )
        };
        let text = [rule("t.a", "ab"), rule("t.b", "bcd"), rule("t.c", "abx")].concat();
        rules.add_toml(&text, "test").expect("rules");
        rules
    }

    fn found(s: &Scanner, hay: &[u8]) -> Vec<String> {
        let mut w = s.worker();
        w.scan(hay)
            .iter()
            .map(|m| s.rule(m.rule).spec.id.clone())
            .collect()
    }

    #[test]
    fn a_keyword_hidden_by_a_longer_or_overlapping_report_still_runs_its_rules() {
        let s = overlapping();
        // `ABCD=`: the report is `ab` (leftmost), which hides `bcd` running past its end.
        assert_eq!(found(&s, b"xx ABCD=q8Rf3LmZ2wPk yy"), ["t.b"]);
        // `abx` is reported (longest); `ab` inside it is certain.
        assert_eq!(
            found(&s, b"abx=q8Rf3LmZ2wPk and ab=Zt5Yc1Vn7Hs2"),
            ["t.c", "t.a"]
        );
    }

    #[test]
    fn the_scanner_for_small_inputs_finds_the_same() {
        let small = Scanner::for_small_inputs(overlapping_rules()).expect("scanner");
        let dfa = overlapping();
        for hay in [
            &b"xx ABCD=q8Rf3LmZ2wPk yy"[..],
            b"abx=q8Rf3LmZ2wPk and ab=Zt5Yc1Vn7Hs2",
            b"ab=q8Rf3LmZ2wPk bce bcd=Zt5Yc1Vn7Hs2",
        ] {
            assert_eq!(found(&small, hay), found(&dfa, hay));
            assert!(!found(&small, hay).is_empty());
        }
    }

    #[test]
    fn a_hidden_keyword_is_checked_against_the_input() {
        let s = overlapping();
        let hidden = &s.hidden[s.patterns.iter().position(|p| p == "ab").expect("ab")];
        let bcd = s.patterns.iter().position(|p| p == "bcd").expect("bcd");
        let abx = s.patterns.iter().position(|p| p == "abx").expect("abx");
        assert!(hidden
            .iter()
            .any(|h| h.pattern == bcd && h.offset == 1 && h.verify));
        // `abx` starts where `ab` does: a report of `ab` means `abx` was not there.
        assert!(!hidden.iter().any(|h| h.pattern == abx));
        // `ab` followed by `ce`: `bcd` does not occur, its rule gets no window.
        let mut w = s.worker();
        w.collect_windows(b"ab=q8Rf3LmZ2wPk bce");
        let b = s.rules().index_of("t.b").expect("t.b");
        assert!(w.windows[b].is_empty());
    }
}
