//! Rule regexes: the RE2-like limits a rule file's regexes get, and how every rule regex is
//! compiled (byte mode, bounded NFA, DFA and lazy-DFA cache).

use anyhow::Result;
use regex_automata::meta;
use regex_automata::util::syntax;

use super::{diagnostics, macros};

/// Lazy-DFA cache per rule per thread. Rules × threads × this bounds the regex memory; most
/// caches stay far smaller because windows are short.
const HYBRID_CACHE_BYTES: usize = 1 << 20;

/// Regex limits, after RE2 (what gitleaks rules are written for), so that a rule file (which a
/// scanned repository's `trawl.toml` may name) cannot make a run take minutes or gigabytes:
/// groups, classes and repetitions nest at most this deep…
const NEST_LIMIT: u32 = 100;
/// …a counted repetition (`{n}`, `{n,m}`) repeats at most this often, and nested counted
/// repetitions multiply to at most this (RE2's 1000; `((a{50}){50}){50}` is 125,000 states).
/// Rule files only: built-in private-key and JWT rules count up to 12,000, and are tested.
const MAX_REPEAT: u64 = 1000;
/// …and each compiled NFA (forward and reverse) stays under this many bytes, for every rule
/// (the largest built-in, a private-key rule, takes 1.5 MiB), checked at load for rule files.
const NFA_SIZE_LIMIT: usize = 4 << 20;
/// A fully compiled DFA, tried only for tiny patterns, stays under this many bytes.
const DFA_SIZE_LIMIT: usize = 4 << 20;

/// Where a rule comes from, which decides the regex limits it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RuleSource {
    /// Shipped with trawl and checked by its tests: counted repetitions up to 12,000.
    BuiltIn,
    /// A rule file (trawl or gitleaks format): every RE2-like limit, checked at load.
    File,
}

pub(crate) fn syntax_config() -> syntax::Config {
    syntax::Config::new()
        .unicode(false)
        .utf8(false)
        .nest_limit(NEST_LIMIT)
}

/// Compiles a rule regex (after macro expansion) in byte mode, with every limit of a rule
/// file's regex; errors give the reason, never the pattern.
pub fn compile_regex(pattern: &str) -> Result<meta::Regex> {
    let expanded = macros::expand(pattern);
    check_syntax(&expanded, RuleSource::File).map_err(|r| anyhow::anyhow!("{r}"))?;
    build_regex(&expanded)
}

pub(super) fn build_regex(expanded: &str) -> Result<meta::Regex> {
    meta::Regex::builder()
        .syntax(syntax_config())
        .configure(
            meta::Config::new()
                .utf8_empty(false)
                .nfa_size_limit(Some(NFA_SIZE_LIMIT))
                .dfa_size_limit(Some(DFA_SIZE_LIMIT))
                .hybrid_cache_capacity(HYBRID_CACHE_BYTES),
        )
        .build(expanded)
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Checks a macro-expanded pattern's syntax and, for rule files, its repetition counts and
/// compiled size; the error is the reason, without the pattern.
pub(super) fn check_syntax(expanded: &str, source: RuleSource) -> Result<(), String> {
    if source == RuleSource::BuiltIn {
        // Built-in patterns are checked by the tests (`builtin_regexes_all_compile`); parsing
        // all of them again on every start would cost a pre-commit run a third of its time.
        return Ok(());
    }
    let hir = syntax::parse_with(expanded, &syntax_config())
        .map_err(|e| diagnostics::regex_error_reason(&e))?;
    check_repetitions(&hir.to_string())?;
    regex_automata::nfa::thompson::Compiler::new()
        .syntax(syntax_config())
        .configure(
            regex_automata::nfa::thompson::Config::new().nfa_size_limit(Some(NFA_SIZE_LIMIT)),
        )
        .build(expanded)
        .map(drop)
        .map_err(|_| format!("compiles to more than {NFA_SIZE_LIMIT} bytes"))
}

/// RE2's repetition limits on a pattern as the parser prints it back (comments and `(?x)`
/// spacing gone, literal braces escaped): no count over [`MAX_REPEAT`], and no nested counts
/// whose product is over it.
pub(super) fn check_repetitions(printed: &str) -> Result<(), String> {
    let b = printed.as_bytes();
    // Per open group: the largest product of counts inside it.
    let mut groups: Vec<u64> = vec![1];
    // The product of counts of the atom just before (what a count would repeat).
    let mut last: u64 = 1;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                i += 1;
                if b.get(i).is_some_and(|c| b"xuUpP".contains(c)) && b.get(i + 1) == Some(&b'{') {
                    while i < b.len() && b[i] != b'}' {
                        i += 1;
                    }
                }
                last = 1;
            }
            b'[' => {
                let mut depth = 0;
                while i < b.len() {
                    match b[i] {
                        b'\\' => i += 1,
                        b'[' => depth += 1,
                        b']' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                last = 1;
            }
            b'(' => groups.push(1),
            b')' => {
                let inner = groups.pop().unwrap_or(1);
                let Some(outer) = groups.last_mut() else {
                    return Err("unbalanced group".to_string());
                };
                *outer = (*outer).max(inner);
                last = inner;
            }
            b'{' => {
                let end = printed[i..].find('}').map_or(b.len(), |e| i + e);
                let count = printed[i + 1..end]
                    .split(',')
                    .filter_map(|n| n.parse::<u64>().ok())
                    .max()
                    .unwrap_or(0);
                if count > MAX_REPEAT {
                    return Err(format!("a repetition count is over {MAX_REPEAT}"));
                }
                let product = last.saturating_mul(count.max(1));
                if product > MAX_REPEAT {
                    return Err(format!(
                        "nested repetition counts multiply to over {MAX_REPEAT}"
                    ));
                }
                if let Some(g) = groups.last_mut() {
                    *g = (*g).max(product);
                }
                // The printer drops non-capturing groups: `(?:x{10}){10}` is `x{10}{10}`.
                last = product;
                i = end;
            }
            // Uncounted repetitions keep what a following count would repeat (`x{10}?{10}`).
            b'*' | b'+' | b'?' => {}
            _ => last = 1,
        }
        i += 1;
    }
    Ok(())
}
