//! Gitleaks and Betterleaks configurations converted into trawl rules, so that teams can bring
//! their custom rules along.
//!
//! Contract: [`parse_gitleaks`] fails only on a file that is not TOML or not shaped like a
//! gitleaks config; everything it cannot convert faithfully is skipped or approximated with a
//! warning, and every spec it returns passes [`Rule::compile`].
//!
//! Mapping (keys are matched case-insensitively, as gitleaks' config loader does):
//! - `id` → id, lowercased, other characters than `a-z0-9._-` replaced by `-`; a second rule with
//!   the same gitleaks id replaces the first (as in gitleaks); ids that collide only after the
//!   rewrite get a `-2`, `-3`… suffix.
//! - `description` → name (the id when absent).
//! - Category `saas`, severity `high`; rules whose id contains `generic` get category `generic`
//!   and severity `medium`, because gitleaks, like trawl's overlap resolution, lets a non-generic
//!   finding win over a generic one on the same secret.
//! - `regex`: Go RE2 syntax rewritten into trawl's byte-mode dialect (see [`translate_regex`]).
//!   `secretGroup = N` renames the N-th capturing group `secret`; without it, gitleaks takes the
//!   first non-empty group, trawl group 1 (the whole match when group 1 does not take part),
//!   which is the same unless group 1 may be empty or skipped: a warning says when.
//! - `entropy` → entropy; Betterleaks' rule `filter = 'entropy(finding["secret"]) <= X'` too.
//! - `keywords` → keywords, lowercased. Gitleaks only requires a keyword somewhere in the file;
//!   trawl runs a rule near its keywords, so a warning names keywords the regex does not spell.
//! - `window`: regexes longer than trawl's default window get their maximum length, unbounded
//!   ones [`UNBOUNDED_WINDOW`].
//! - `path`: path-only rules are skipped, a path on a regex rule is dropped (both warned).
//! - Rule allowlists (`[rules.allowlist]` and `[[rules.allowlists]]`): `regexes` and `stopwords`
//!   are kept; `regexTarget = "match"`/`"line"` regexes are applied to the secret; `paths`,
//!   `commits` and Betterleaks' `resources` are ignored; a `condition = "AND"` allowlist that
//!   combines criteria trawl cannot combine is dropped. All with warnings.
//! - Global allowlists (`[allowlist]`, `[[allowlists]]`, with `targetRules`) are applied to the
//!   converted rules they target, under the same rules; they do not reach trawl's built-in rules
//!   (that is `trawl.toml`'s `[allowlist]`), which a warning says.
//! - `[extend]` is ignored (trawl's built-in rules stand in for gitleaks' defaults), as are
//!   `tags`, `[[rules.required]]` (the rule then reports on its own), `skipReport` rules
//!   (skipped), Betterleaks' `validate`, `prefilter` and other `filter` expressions.
//! - No examples: trawl's example checks do not apply to imported rules.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use anyhow::{anyhow, bail, Context, Result};
use regex_automata::util::syntax;
use serde::Deserialize;
use toml::Value;

use super::{AllowlistSpec, Rule, RuleSpec, Severity, WINDOW_AFTER};

/// The window given to rules whose regex has no maximum length (PEM blocks, long tokens).
pub const UNBOUNDED_WINDOW: usize = 16 << 10;

/// A gitleaks config, keys lowercased.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GlConfig {
    extend: Option<GlExtend>,
    rules: Vec<GlRule>,
    allowlist: Option<GlAllowlist>,
    allowlists: Vec<GlAllowlist>,
    prefilter: Option<Value>,
    filter: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GlExtend {
    #[serde(rename = "usedefault")]
    use_default: bool,
    path: Option<String>,
    url: Option<String>,
    #[serde(rename = "disabledrules")]
    disabled_rules: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GlRule {
    id: String,
    description: String,
    regex: Option<String>,
    path: Option<String>,
    #[serde(rename = "secretgroup")]
    secret_group: Option<usize>,
    entropy: Option<f64>,
    keywords: Vec<String>,
    allowlist: Option<GlAllowlist>,
    allowlists: Vec<GlAllowlist>,
    required: Vec<Value>,
    #[serde(rename = "skipreport")]
    skip_report: bool,
    validate: Option<Value>,
    filter: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GlAllowlist {
    condition: String,
    #[serde(rename = "regextarget")]
    regex_target: String,
    regexes: Vec<String>,
    stopwords: Vec<String>,
    paths: Vec<String>,
    commits: Vec<String>,
    resources: Vec<Value>,
    #[serde(rename = "targetrules")]
    target_rules: Vec<String>,
}

/// Converts a gitleaks/Betterleaks config to trawl rule specs. Returns the specs and warnings
/// (e.g. "[extend] is ignored", "rule X: path-only rules are not supported, skipped").
pub fn parse_gitleaks(text: &str, origin: &str) -> Result<(Vec<RuleSpec>, Vec<String>)> {
    let table: toml::Table =
        toml::from_str(text).with_context(|| format!("{origin}: invalid TOML"))?;
    let config: GlConfig =
        lowercase_keys(Value::Table(table))
            .try_into()
            .map_err(|e: toml::de::Error| {
                // Keys were lowercased, so the error has no position: find the key's line in the text.
                let msg = e.to_string();
                let key = msg
                    .rsplit(['.', '`'])
                    .find(|k| !k.trim().is_empty())
                    .unwrap_or("")
                    .trim();
                let line = text.lines().position(|l| {
                    let l = l.trim_start().to_ascii_lowercase();
                    !key.is_empty()
                        && l.starts_with(key)
                        && l[key.len()..].trim_start().starts_with('=')
                });
                let reason = msg.lines().next().unwrap_or("").to_string();
                match line {
                    Some(n) => anyhow::anyhow!(
                        "{origin}: line {}: invalid gitleaks configuration: {reason} ({})",
                        n + 1,
                        msg.replace('\n', " ")
                    ),
                    None => anyhow::anyhow!(
                        "{origin}: invalid gitleaks configuration: {}",
                        msg.replace('\n', " ")
                    ),
                }
            })?;
    let mut warnings = Vec::new();
    if let Some(extend) = &config.extend {
        warnings.push(extend_warning(extend));
    }
    if config.prefilter.is_some() || config.filter.is_some() {
        warnings.push(
            "top-level Betterleaks `prefilter`/`filter` expressions are ignored \
             (trawl applies its own placeholder filter)"
                .to_string(),
        );
    }
    let globals = global_allowlists(&config, &mut warnings);

    // As in gitleaks, a later rule with the same id replaces an earlier one.
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, rule) in config.rules.iter().enumerate() {
        last.insert(rule.id.trim(), i);
    }
    let mut specs = Vec::new();
    let mut used: HashSet<String> = HashSet::new();
    let mut live_validation = Vec::new();
    for (i, rule) in config.rules.iter().enumerate() {
        let raw_id = rule.id.trim();
        if !raw_id.is_empty() && last[raw_id] != i {
            warnings.push(format!(
                "rule `{raw_id}` is defined more than once: the last definition is used"
            ));
            continue;
        }
        if rule.validate.is_some() {
            live_validation.push(raw_id.to_string());
        }
        let Some(mut spec) = convert_rule(rule, &globals, &mut warnings) else {
            continue;
        };
        if used.contains(&spec.id) {
            let base = spec.id.clone();
            let mut n = 2;
            while used.contains(&format!("{base}-{n}")) {
                n += 1;
            }
            spec.id = format!("{base}-{n}");
            warnings.push(format!(
                "rule `{raw_id}`: id `{base}` is taken, renamed `{}`",
                spec.id
            ));
        }
        match Rule::compile(spec.clone(), origin) {
            Ok(_) => {
                used.insert(spec.id.clone());
                specs.push(spec);
            }
            // The error names the rule.
            Err(e) => warnings.push(format!("{e:#}, skipped")),
        }
    }
    if !live_validation.is_empty() {
        warnings.push(format!(
            "Betterleaks `validate` (live verification) is not supported, ignored in {} rule(s): {}",
            live_validation.len(),
            live_validation.join(", ")
        ));
    }
    Ok((specs, warnings))
}

/// Whether a TOML text looks like a gitleaks config rather than trawl's (gitleaks rules use
/// `description`/`secretGroup`/camelCase keys, `[extend]`, `[allowlist]` at top level, or
/// `[[rules]]` without `name`/`category`/`severity`).
pub fn is_gitleaks_config(text: &str) -> bool {
    const TOP_KEYS: &[&str] = &[
        "title",
        "description",
        "extend",
        "allowlist",
        "allowlists",
        "minversion",
        "betterleaksminversion",
        "prefilter",
        "filter",
    ];
    const RULE_KEYS: &[&str] = &[
        "description",
        "secretgroup",
        "path",
        "tags",
        "allowlists",
        "required",
        "skipreport",
        "filter",
    ];
    let Ok(table) = toml::from_str::<toml::Table>(text) else {
        return false;
    };
    let lower = |k: &String| k.to_ascii_lowercase();
    if table
        .keys()
        .map(lower)
        .any(|k| TOP_KEYS.contains(&k.as_str()))
    {
        return true;
    }
    let rules = table
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("rules"))
        .filter_map(|(_, v)| v.as_array())
        .flatten()
        .filter_map(Value::as_table);
    for rule in rules {
        if rule
            .keys()
            .map(lower)
            .any(|k| RULE_KEYS.contains(&k.as_str()))
            || !["name", "category", "severity"]
                .iter()
                .any(|k| rule.contains_key(*k))
        {
            return true;
        }
    }
    false
}

/// Gitleaks reads its config through a case-insensitive loader (`secretGroup`, `secretgroup`).
fn lowercase_keys(value: Value) -> Value {
    match value {
        Value::Table(t) => Value::Table(
            t.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), lowercase_keys(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(lowercase_keys).collect()),
        other => other,
    }
}

fn extend_warning(extend: &GlExtend) -> String {
    let mut w = "[extend] is ignored".to_string();
    if extend.use_default {
        w.push_str(": trawl's built-in rules stand in for gitleaks' default rules");
    }
    if let Some(path) = &extend.path {
        w.push_str(&format!(
            "; convert `{path}` too and list it in trawl.toml's [rules] files"
        ));
    }
    if let Some(url) = &extend.url {
        w.push_str(&format!("; `{url}` is not fetched"));
    }
    if !extend.disabled_rules.is_empty() {
        w.push_str("; turn rules off with trawl.toml's [rules] disable");
    }
    w
}

/// A global allowlist, converted, with the gitleaks rule ids it targets (all when `None`).
struct GlobalAllowlist {
    targets: Option<HashSet<String>>,
    spec: AllowlistSpec,
}

fn global_allowlists(config: &GlConfig, warnings: &mut Vec<String>) -> Vec<GlobalAllowlist> {
    let ids: HashSet<&str> = config.rules.iter().map(|r| r.id.trim()).collect();
    let mut out = Vec::new();
    for a in config.allowlist.iter().chain(&config.allowlists) {
        let what = if a.target_rules.is_empty() {
            "global allowlist".to_string()
        } else {
            format!("global allowlist for {}", a.target_rules.join(", "))
        };
        for t in &a.target_rules {
            if !ids.contains(t.as_str()) {
                warnings.push(format!(
                    "{what}: rule `{t}` is not in this file, its allowlist is dropped"
                ));
            }
        }
        let Some(spec) = convert_allowlist(a, &what, warnings) else {
            continue;
        };
        if spec.regexes.is_empty() && spec.stopwords.is_empty() {
            continue;
        }
        warnings.push(format!(
            "{what}: applied to the converted rules only; for trawl's built-in rules, \
             copy its regexes and stopwords to trawl.toml's [allowlist]"
        ));
        out.push(GlobalAllowlist {
            targets: (!a.target_rules.is_empty()).then(|| {
                a.target_rules
                    .iter()
                    .map(|t| t.trim().to_string())
                    .collect()
            }),
            spec,
        });
    }
    out
}

fn convert_rule(
    rule: &GlRule,
    globals: &[GlobalAllowlist],
    warnings: &mut Vec<String>,
) -> Option<RuleSpec> {
    let raw_id = rule.id.trim();
    if raw_id.is_empty() {
        warnings.push(format!(
            "a rule without an id ({}) is skipped",
            rule.regex
                .as_deref()
                .or(rule.path.as_deref())
                .unwrap_or(&rule.description)
        ));
        return None;
    }
    let ctx = format!("rule `{raw_id}`");
    if rule.skip_report {
        warnings.push(format!(
            "{ctx}: `skipReport` rules only serve composite rules, skipped"
        ));
        return None;
    }
    let regex = rule.regex.as_deref().unwrap_or("");
    if regex.is_empty() {
        if rule.path.as_deref().is_some_and(|p| !p.is_empty()) {
            warnings.push(format!("{ctx}: path-only rules are not supported, skipped"));
        } else {
            warnings.push(format!(
                "{ctx}: no regex (an override of an extended rule?), skipped"
            ));
        }
        return None;
    }
    if rule.path.as_deref().is_some_and(|p| !p.is_empty()) {
        warnings.push(format!(
            "{ctx}: the path restriction is not applied, the regex runs on every file"
        ));
    }
    if !rule.required.is_empty() {
        warnings.push(format!(
            "{ctx}: [[rules.required]] (composite rules) is not supported, \
             the rule reports without its required rules"
        ));
    }

    let target = rule.secret_group.filter(|&g| g > 0);
    let translated = match translate_regex(regex, Some(target.unwrap_or(1))) {
        Ok(t) => t,
        Err(e) => {
            warnings.push(format!("{ctx}: regex not supported: {e:#}, skipped"));
            return None;
        }
    };
    if let Some(g) = target {
        if g > translated.groups {
            warnings.push(format!(
                "{ctx}: secretGroup {g} but the regex has {} capture group(s), skipped",
                translated.groups
            ));
            return None;
        }
    }
    let hir = match syntax::parse_with(&translated.pattern, &super::syntax_config()) {
        Ok(hir) => hir,
        Err(e) => {
            warnings.push(format!("{ctx}: regex not supported: {e}, skipped"));
            return None;
        }
    };
    let static_captures = hir.properties().static_explicit_captures_len();
    if target.is_none()
        && translated.groups > 0
        && !first_group_is_exact(&translated, static_captures)
    {
        warnings.push(format!(
            "{ctx}: no secretGroup: trawl takes capture group 1 as the secret (the whole match \
             when it does not take part), gitleaks the first non-empty group"
        ));
    }
    let window = match hir.properties().maximum_len() {
        Some(n) if n <= WINDOW_AFTER => None,
        Some(n) => Some(n),
        None => Some(UNBOUNDED_WINDOW),
    };

    let mut entropy = rule.entropy.filter(|&e| e > 0.0);
    if let Some(filter) = &rule.filter {
        match filter.as_str().and_then(filter_entropy) {
            Some(e) => entropy = Some(entropy.map_or(e, |x| x.max(e))),
            None => warnings.push(format!(
                "{ctx}: the Betterleaks `filter` expression is not supported, ignored"
            )),
        }
    }

    let mut keywords: Vec<String> = Vec::new();
    for k in &rule.keywords {
        let k = k.to_lowercase();
        if !keywords.contains(&k) {
            keywords.push(k);
        }
    }
    if let Some(short) = keywords.iter().find(|k| k.len() < 2) {
        warnings.push(format!(
            "{ctx}: keyword `{short}` is shorter than 2 bytes: the rule runs without keywords"
        ));
        keywords.clear();
    }
    let spelled = literal_text(regex);
    for k in &keywords {
        if !spelled_in(&spelled, k) {
            warnings.push(format!(
                "{ctx}: keyword `{k}` does not appear in the regex: trawl runs a rule only near \
                 its keywords (gitleaks anywhere in the file), so matches far from it are missed"
            ));
        }
    }

    let mut allowlist = AllowlistSpec::default();
    let own = rule.allowlist.iter().chain(&rule.allowlists);
    for a in own {
        if let Some(spec) = convert_allowlist(a, &ctx, warnings) {
            allowlist.regexes.extend(spec.regexes);
            allowlist.stopwords.extend(spec.stopwords);
        }
    }
    for g in globals {
        if g.targets.as_ref().is_none_or(|t| t.contains(raw_id)) {
            allowlist.regexes.extend(g.spec.regexes.iter().cloned());
            allowlist.stopwords.extend(g.spec.stopwords.iter().cloned());
        }
    }

    let id = sanitize_id(raw_id);
    let generic = id.contains("generic");
    let description = rule.description.trim();
    Some(RuleSpec {
        name: if description.is_empty() {
            raw_id.to_string()
        } else {
            description.to_string()
        },
        id,
        category: if generic { "generic" } else { "saas" }.to_string(),
        severity: if generic {
            Severity::Medium
        } else {
            Severity::High
        },
        regex: translated.pattern,
        keywords,
        entropy,
        validate: None,
        window,
        references: Vec::new(),
        examples: Vec::new(),
        negative_examples: Vec::new(),
        allowlist,
    })
}

/// Whether "group 1" (trawl) and "the first non-empty group" (gitleaks) always agree: group 1
/// never matches empty, and either it is the only group or every group always takes part.
fn first_group_is_exact(t: &Translated, static_captures: Option<usize>) -> bool {
    let Some(span) = &t.secret_span else {
        return false;
    };
    let non_empty = syntax::parse_with(&t.pattern[span.clone()], &super::syntax_config())
        .ok()
        .and_then(|g| g.properties().minimum_len())
        .is_some_and(|n| n > 0);
    non_empty && (t.groups == 1 || static_captures == Some(t.groups))
}

/// A trawl id from a gitleaks id.
fn sanitize_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The entropy threshold of a Betterleaks filter `entropy(finding["secret"]) <= X` (or `<`,
/// or `filter.entropy`): the finding is dropped at or below X, i.e. kept above it.
fn filter_entropy(expr: &str) -> Option<f64> {
    let e: String = expr
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| if c == '\'' { '"' } else { c })
        .collect();
    let e = e.strip_prefix("filter.").unwrap_or(&e);
    let e = e.strip_prefix(r#"entropy(finding["secret"])"#)?;
    let e = e.strip_prefix("<=").or_else(|| e.strip_prefix('<'))?;
    e.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// The regex lowercased with escapes of punctuation removed: what keyword checks look in.
fn literal_text(regex: &str) -> String {
    let mut out = String::new();
    let mut chars = regex.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek().is_some_and(|n| n.is_ascii_punctuation()) {
            continue;
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Whether `keyword` can be put together from pieces of `text` (the regex's literal text), each
/// at least 2 characters long or a punctuation character: `sk_test` from `(?:sk|rk)_(?:test)`.
/// A heuristic for "the keyword lies inside the match", not a proof.
fn spelled_in(text: &str, keyword: &str) -> bool {
    let mut rest = keyword;
    while let Some(first) = rest.chars().next() {
        let piece = (1..=rest.len()).rev().find(|&end| {
            rest.is_char_boundary(end)
                && (end > first.len_utf8() || !first.is_alphanumeric())
                && text.contains(&rest[..end])
        });
        match piece {
            Some(end) => rest = &rest[end..],
            None => return false,
        }
    }
    true
}

/// Converts one allowlist; `None` when it cannot be applied at all.
fn convert_allowlist(
    a: &GlAllowlist,
    what: &str,
    warnings: &mut Vec<String>,
) -> Option<AllowlistSpec> {
    let and = match a.condition.trim().to_ascii_uppercase().as_str() {
        "" | "OR" | "||" => false,
        "AND" | "&&" => true,
        other => {
            warnings.push(format!(
                "{what}: allowlist condition `{other}` is unknown, allowlist ignored"
            ));
            return None;
        }
    };
    let unsupported = [
        ("paths", a.paths.len()),
        ("commits", a.commits.len()),
        ("resources", a.resources.len()),
    ];
    let kinds = unsupported.iter().filter(|(_, n)| *n > 0).count()
        + usize::from(!a.regexes.is_empty())
        + usize::from(!a.stopwords.is_empty());
    if and && kinds > 1 {
        warnings.push(format!(
            "{what}: an allowlist with condition AND over several kinds of criteria cannot be \
             expressed in trawl, allowlist ignored"
        ));
        return None;
    }
    for (name, n) in unsupported {
        if n > 0 {
            let hint = if name == "paths" {
                " (trawl.toml's [allowlist] paths takes globs)"
            } else {
                ""
            };
            warnings.push(format!("{what}: allowlist `{name}` are ignored{hint}"));
        }
    }
    let mut spec = AllowlistSpec::default();
    if !a.regexes.is_empty() {
        match a.regex_target.trim() {
            "" | "secret" => {}
            t @ ("match" | "line") => warnings.push(format!(
                "{what}: allowlist regexes with regexTarget `{t}` are applied to the secret only"
            )),
            t => {
                warnings.push(format!(
                    "{what}: allowlist regexTarget `{t}` is unknown, its regexes are ignored"
                ));
                return Some(spec);
            }
        }
    }
    for r in &a.regexes {
        match translate_regex(r, None) {
            Ok(t) => spec.regexes.push(t.pattern),
            Err(e) => warnings.push(format!(
                "{what}: allowlist regex `{r}` not supported ({e:#}), ignored"
            )),
        }
    }
    for w in &a.stopwords {
        if w.is_empty() {
            warnings.push(format!("{what}: an empty stopword is ignored"));
        } else {
            spec.stopwords.push(w.clone());
        }
    }
    Some(spec)
}

/// A Go regex translated into trawl's dialect.
#[derive(Debug)]
struct Translated {
    pattern: String,
    /// Capturing groups in the pattern.
    groups: usize,
    /// Where the `secret` group lies in `pattern`.
    secret_span: Option<Range<usize>>,
}

/// Translates a Go (RE2) regex into the byte-mode dialect trawl compiles, renaming capture group
/// `secret_group` (counted as Go counts them, by opening parenthesis, named groups included)
/// `secret` and dropping every other group name (so names cannot clash or be invalid in Rust).
///
/// Differences handled: a `{` that does not start a repetition is a literal in Go; `\<`/`\>` are
/// literals in Go but word boundaries in Rust; `[`, `&&`, `--`, `~~` inside a class are literal
/// in Go but set syntax in Rust; `\Q…\E` and octal escapes do not exist in Rust; `\xE9` is a
/// code point in Go but a byte in byte mode; non-ASCII class members need Unicode mode (see
/// [`Translator::class`]). Errors: look-around and back-references (RE2 rejects them too) and
/// Unicode classes (`\pL`: the engine is built without Unicode tables).
fn translate_regex(go: &str, secret_group: Option<usize>) -> Result<Translated> {
    let mut t = Translator {
        src: go.chars().collect(),
        i: 0,
        out: String::with_capacity(go.len() + 16),
        groups: 0,
        target: secret_group,
        open: Vec::new(),
        secret_span: None,
    };
    t.run()?;
    Ok(Translated {
        pattern: t.out,
        groups: t.groups,
        secret_span: t.secret_span,
    })
}

struct Translator {
    src: Vec<char>,
    i: usize,
    out: String,
    groups: usize,
    target: Option<usize>,
    /// Open groups: the output offset of the `secret` group's start, `None` for the others.
    open: Vec<Option<usize>>,
    secret_span: Option<Range<usize>>,
}

/// An element of a bracketed class after an escape.
enum ClassAtom {
    Char(char),
    /// A POSIX class (`[:digit:]`).
    Set(String),
}

/// trawl's regex engine is built without Unicode tables.
const UNICODE_CLASSES: &str = "Unicode classes (\\p) are not supported";

const POSIX_CLASSES: &[&str] = &[
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

impl Translator {
    fn peek(&self) -> Option<char> {
        self.src.get(self.i).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.src.get(self.i + n).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn run(&mut self) -> Result<()> {
        while let Some(c) = self.next() {
            match c {
                '\\' => self.escape()?,
                '[' => self.class()?,
                '(' => self.group()?,
                ')' => {
                    let secret = self.open.pop().ok_or_else(|| anyhow!("unmatched `)`"))?;
                    self.out.push(')');
                    if let Some(start) = secret {
                        self.secret_span = Some(start..self.out.len());
                    }
                }
                '{' => match self.repetition() {
                    Some(rep) => self.out.push_str(&rep),
                    None => self.out.push_str(r"\{"),
                },
                '}' => self.out.push_str(r"\}"),
                '.' | '^' | '$' | '|' | '*' | '+' | '?' => self.out.push(c),
                c => push_literal(&mut self.out, c),
            }
        }
        if !self.open.is_empty() {
            bail!("missing `)`");
        }
        Ok(())
    }

    /// After `\` outside a class.
    fn escape(&mut self) -> Result<()> {
        let c = self.next().ok_or_else(|| anyhow!("trailing backslash"))?;
        match c {
            'Q' => {
                while let Some(c) = self.next() {
                    if c == '\\' && self.peek() == Some('E') {
                        self.i += 1;
                        break;
                    }
                    push_literal(&mut self.out, c);
                }
            }
            'A' | 'z' | 'b' | 'B' | 'd' | 'D' | 's' | 'S' | 'w' | 'W' => {
                self.out.push('\\');
                self.out.push(c);
            }
            'p' | 'P' => bail!("{UNICODE_CLASSES}"),
            c => {
                let ch = self.escaped_char(c)?;
                push_literal(&mut self.out, ch);
            }
        }
        Ok(())
    }

    /// The character an escape stands for (`c` follows the backslash).
    fn escaped_char(&mut self, c: char) -> Result<char> {
        Ok(match c {
            'a' => '\x07',
            'f' => '\x0C',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\x0B',
            'x' => {
                let digits: String = if self.peek() == Some('{') {
                    self.i += 1;
                    let mut d = String::new();
                    loop {
                        match self.next() {
                            Some('}') => break,
                            Some(h) => d.push(h),
                            None => bail!("unterminated `\\x{{`"),
                        }
                    }
                    d
                } else {
                    (0..2).filter_map(|_| self.next()).collect()
                };
                u32::from_str_radix(&digits, 16)
                    .ok()
                    .filter(|_| !digits.is_empty() && digits.chars().all(|h| h.is_ascii_hexdigit()))
                    .and_then(char::from_u32)
                    .ok_or_else(|| anyhow!("bad hex escape `\\x{digits}`"))?
            }
            '0'..='7' => {
                // Go: `\0` and 2-3 digit octal escapes; a lone `\1`-`\7` is a back-reference.
                if c != '0' && !self.peek().is_some_and(|d| ('0'..='7').contains(&d)) {
                    bail!("back-reference `\\{c}`");
                }
                let mut value = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            value = value * 8 + d;
                            self.i += 1;
                        }
                        None => break,
                    }
                }
                char::from_u32(value).ok_or_else(|| anyhow!("bad octal escape"))?
            }
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => c,
            c => bail!("unsupported escape `\\{c}`"),
        })
    }

    /// After `(`.
    fn group(&mut self) -> Result<()> {
        if self.peek() != Some('?') {
            self.open_capture();
            return Ok(());
        }
        self.i += 1;
        let named = match (self.peek(), self.peek_at(1)) {
            (Some('P'), Some('<')) => {
                self.i += 2;
                true
            }
            (Some('<'), Some(c)) if c != '=' && c != '!' => {
                self.i += 1;
                true
            }
            _ => false,
        };
        if named {
            let mut name = String::new();
            loop {
                match self.next() {
                    Some('>') => break,
                    Some(c) if c.is_alphanumeric() || c == '_' => name.push(c),
                    _ => bail!("bad group name"),
                }
            }
            if name.is_empty() {
                bail!("empty group name");
            }
            self.open_capture();
            return Ok(());
        }
        let mut flags = String::new();
        loop {
            match self.next() {
                Some(c @ ('i' | 'm' | 's' | 'U' | '-')) => flags.push(c),
                Some(':') => {
                    self.out.push_str(&format!("(?{flags}:"));
                    self.open.push(None);
                    return Ok(());
                }
                Some(')') if !flags.is_empty() => {
                    self.out.push_str(&format!("(?{flags})"));
                    return Ok(());
                }
                Some(c) => bail!("unsupported group `(?{flags}{c}` (look-around or unknown flag)"),
                None => bail!("missing `)`"),
            }
        }
    }

    fn open_capture(&mut self) {
        self.groups += 1;
        if self.target == Some(self.groups) {
            self.open.push(Some(self.out.len()));
            self.out.push_str("(?P<secret>");
        } else {
            self.open.push(None);
            self.out.push('(');
        }
    }

    /// After `{`: the repetition `{n}`, `{n,}` or `{n,m}` if one follows (then consumed); Go
    /// reads any other `{` as a literal.
    fn repetition(&mut self) -> Option<String> {
        let mut j = self.i;
        let digits = |j: &mut usize| {
            let start = *j;
            while self.src.get(*j).is_some_and(char::is_ascii_digit) {
                *j += 1;
            }
            *j > start
        };
        if !digits(&mut j) {
            return None;
        }
        if self.src.get(j) == Some(&',') {
            j += 1;
            digits(&mut j);
        }
        if self.src.get(j) != Some(&'}') {
            return None;
        }
        let rep: String = std::iter::once('{')
            .chain(self.src[self.i..=j].iter().copied())
            .collect();
        self.i = j + 1;
        Some(rep)
    }

    /// After `[`: a bracketed class, re-escaped for Rust. Byte-mode classes hold ASCII only:
    /// non-ASCII members go to a Unicode-mode class, case-sensitive because the engine has no
    /// Unicode case tables (`(?i)` still applies to the ASCII members).
    fn class(&mut self) -> Result<()> {
        let mut ascii = String::new();
        let mut other = String::new();
        let negated = self.peek() == Some('^');
        if negated {
            self.i += 1;
        }
        let mut first = true;
        loop {
            let c = self.next().ok_or_else(|| anyhow!("missing `]`"))?;
            if c == ']' && !first {
                break;
            }
            first = false;
            if c == '[' && self.peek() == Some(':') {
                if let Some(posix) = self.posix_class()? {
                    ascii.push_str(&posix);
                    continue;
                }
            }
            let lo = match self.class_atom(c)? {
                ClassAtom::Char(ch) => ch,
                ClassAtom::Set(set) => {
                    ascii.push_str(&set);
                    continue;
                }
            };
            let mut hi = lo;
            if self.peek() == Some('-') && self.peek_at(1).is_some_and(|n| n != ']') {
                self.i += 1;
                let h = self.next().ok_or_else(|| anyhow!("missing `]`"))?;
                let ClassAtom::Char(h) = self.class_atom(h)? else {
                    bail!("bad class range");
                };
                if h < lo {
                    bail!("bad class range `{lo}-{h}`");
                }
                hi = h;
            }
            if lo.is_ascii() {
                push_class_range(&mut ascii, lo, hi.min('\x7F'));
            }
            if !hi.is_ascii() {
                push_class_range(&mut other, lo.max('\u{80}'), hi);
            }
        }
        let out = &mut self.out;
        match (negated, ascii.is_empty(), other.is_empty()) {
            (false, _, true) | (true, false, true) => {
                out.push_str(&format!("[{}{ascii}]", if negated { "^" } else { "" }));
            }
            (false, true, false) => out.push_str(&format!("(?u-i:[{other}])")),
            (false, false, false) => out.push_str(&format!("(?:[{ascii}]|(?u-i:[{other}]))")),
            // Exact, but the ASCII members lose a surrounding `(?i)`.
            (true, _, false) => out.push_str(&format!("(?u-i:[^{ascii}{other}])")),
            (true, true, true) => bail!("empty class"),
        }
        Ok(())
    }

    /// After `[` followed by `:` in a class: `[:name:]`, consumed, or `None` (a literal `[`).
    fn posix_class(&mut self) -> Result<Option<String>> {
        let rest = &self.src[self.i + 1..];
        let Some(end) = rest.windows(2).position(|w| w == [':', ']']) else {
            return Ok(None);
        };
        let name: String = rest[..end].iter().collect();
        if !POSIX_CLASSES.contains(&name.trim_start_matches('^')) {
            bail!("unknown class `[:{name}:]`");
        }
        self.i += 1 + end + 2;
        Ok(Some(format!("[:{name}:]")))
    }

    /// One element of a class starting with `c`.
    fn class_atom(&mut self, c: char) -> Result<ClassAtom> {
        if c != '\\' {
            return Ok(ClassAtom::Char(c));
        }
        let e = self.next().ok_or_else(|| anyhow!("missing `]`"))?;
        let posix = |name: &str| Ok(ClassAtom::Set(format!("[:{name}:]")));
        match e {
            // POSIX classes are ASCII in Rust, even inside `(?u:…)`, like RE2's `\d\w\s`.
            'd' => posix("digit"),
            'D' => posix("^digit"),
            'w' => posix("word"),
            'W' => posix("^word"),
            's' => posix("space"),
            'S' => posix("^space"),
            'p' | 'P' => bail!("{UNICODE_CLASSES}"),
            e => Ok(ClassAtom::Char(self.escaped_char(e)?)),
        }
    }
}

/// Appends a literal character outside a class.
fn push_literal(out: &mut String, c: char) {
    if c.is_ascii_control() {
        out.push_str(&format!("\\x{{{:02X}}}", c as u32));
    } else if c.is_ascii() && regex_syntax_meta(c) {
        out.push('\\');
        out.push(c);
    } else {
        out.push(c);
    }
}

/// Appends the class member `lo-hi` (one character when equal).
fn push_class_range(out: &mut String, lo: char, hi: char) {
    push_class_char(out, lo);
    if hi != lo {
        out.push('-');
        push_class_char(out, hi);
    }
}

fn push_class_char(out: &mut String, c: char) {
    if c.is_control() {
        out.push_str(&format!("\\x{{{:02X}}}", c as u32));
    } else if c.is_ascii_punctuation() && c != '<' && c != '>' {
        // (`\<`, `\>` are word boundaries in Rust, not escapes.)
        out.push('\\');
        out.push(c);
    } else {
        out.push(c);
    }
}

/// Rust regex meta characters (escaping them is always allowed).
fn regex_syntax_meta(c: char) -> bool {
    matches!(
        c,
        '\\' | '.'
            | '+'
            | '*'
            | '?'
            | '('
            | ')'
            | '|'
            | '['
            | ']'
            | '{'
            | '}'
            | '^'
            | '$'
            | '#'
            | '&'
            | '-'
            | '~'
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{compile_regex, RuleSet};
    use crate::scan::Scanner;

    fn scanner(specs: Vec<RuleSpec>) -> Scanner {
        let mut set = RuleSet::default();
        for spec in specs {
            set.add(Rule::compile(spec, "test.toml").unwrap()).unwrap();
        }
        Scanner::new(set).unwrap()
    }

    /// (rule id, secret) of every finding.
    fn findings(scanner: &Scanner, text: &str) -> Vec<(String, String)> {
        scanner
            .worker()
            .scan(text.as_bytes())
            .into_iter()
            .map(|m| {
                (
                    scanner.rule(m.rule).id().to_string(),
                    text[m.secret_span].to_string(),
                )
            })
            .collect()
    }

    fn tr(go: &str, group: Option<usize>) -> String {
        let t = translate_regex(go, group).unwrap();
        compile_regex(&t.pattern).unwrap_or_else(|e| panic!("{go} → {}: {e}", t.pattern));
        t.pattern
    }

    const CONFIG: &str = r#"
title = "Acme gitleaks config"

[extend]
useDefault = true

[allowlist]
description = "global"
paths = ['''(?:^|/)testdata/''']
stopwords = ["sandbox"]

# Secret in group 2, after a non-capturing group, a class holding `(` and an escaped paren.
[[rules]]
id = "ACME API/Key"
description = "Acme API key"
regex = '''(?i)\b(?:acme|acmecorp)[_.-]?(key|token)[\s"':=(]{1,6}\(?(acme_[a-z0-9]{24})\b'''
secretGroup = 2
keywords = ["acme"]

[[rules]]
id = "widget-token"
description = "Widget service token"
regex = '''\b(wdgt_[A-Za-z0-9]{30})\b'''
entropy = 3.5
keywords = ["WDGT_"]
[[rules.allowlists]]
regexTarget = "match"
regexes = ['''^wdgt_0''']

[[rules]]
id = "internal-db-password"
description = "Internal DB password"
regex = '''(?i)intdb_pass(?:word)?\s*=\s*"([^"\s]{12,64})"'''
keywords = ["intdb_pass"]
[rules.allowlist]
regexes = ['''^local-''']
stopwords = ["hunter"]
commits = ["0123abcd"]

[[rules]]
id = "pkcs12-file"
description = "PKCS#12 file"
path = '''(?i)\.p12$'''

[[rules]]
id = "deploy-hook"
description = "Deploy hook URL"
path = '''(?i)deploy'''
regex = '''https://hooks\.acme\.dev/[0-9a-f]{16}'''
keywords = ["hooks.acme.dev"]
"#;

    #[test]
    fn converts_and_runs_custom_rules() {
        let (specs, warnings) = parse_gitleaks(CONFIG, "gitleaks.toml").unwrap();
        let ids: Vec<&str> = specs.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "acme-api-key",
                "widget-token",
                "internal-db-password",
                "deploy-hook"
            ]
        );
        let has = |needle: &str| warnings.iter().any(|w| w.contains(needle));
        assert!(has("[extend] is ignored"), "{warnings:#?}");
        assert!(has(
            "rule `pkcs12-file`: path-only rules are not supported, skipped"
        ));
        assert!(has(
            "rule `deploy-hook`: the path restriction is not applied"
        ));
        assert!(has("regexTarget `match`"));
        assert!(has(
            "rule `internal-db-password`: allowlist `commits` are ignored"
        ));
        assert!(has("global allowlist: allowlist `paths` are ignored"));
        assert!(has("global allowlist: applied to the converted rules only"));
        // Exact conversions raise no secretGroup or keyword warnings.
        assert!(!has("secretGroup"), "{warnings:#?}");
        assert!(!has("does not appear"), "{warnings:#?}");

        let acme = &specs[0];
        assert_eq!(acme.name, "Acme API key");
        assert_eq!(acme.category, "saas");
        assert_eq!(acme.severity, Severity::High);
        assert_eq!(specs[1].keywords, ["wdgt_"]);
        assert_eq!(specs[1].entropy, Some(3.5));

        let scanner = scanner(specs);
        let found = |text: &str| findings(&scanner, text);
        let pair = |id: &str, secret: &str| vec![(id.to_string(), secret.to_string())];

        // Group 2, not group 1 (`TOKEN`) nor the whole match.
        assert_eq!(
            found(r#"ACME_TOKEN = "acme_4f9k2m8x1q7z3w6e5r0t9y8u""#),
            pair("acme-api-key", "acme_4f9k2m8x1q7z3w6e5r0t9y8u")
        );
        assert_eq!(
            found("acmecorp.key(acme_p0o9i8u7y6t5r4e3w2q1l2k3)"),
            pair("acme-api-key", "acme_p0o9i8u7y6t5r4e3w2q1l2k3")
        );

        // Keywords are case-insensitive; entropy applies; the rule allowlist applies.
        let token = "wdgt_Q7vX2mKp9LzR4tWc8NbY3hJd6FsG1a";
        assert_eq!(
            found(&format!("WIDGET={token}")),
            pair("widget-token", token)
        );
        let flat = "wdgt_aabbccddaabbccddaabbccddaabbcd";
        assert!(crate::scan::filters::shannon_entropy(flat.as_bytes()) < 3.5);
        assert!(found(&format!("WIDGET={flat}")).is_empty());
        assert!(found("WIDGET=wdgt_0Q7vX2mKp9LzR4tWc8NbY3hJd6FsG1").is_empty());
        // The global stopword reaches every converted rule.
        assert!(found("WIDGET=wdgt_Q7vX2mKp9sandboxLzR4tWc8NbY3hJ").is_empty());

        let pass = "Zx8#pQ2!vL9@wR4$";
        assert_eq!(
            found(&format!(r#"intdb_password = "{pass}""#)),
            pair("internal-db-password", pass)
        );
        assert!(found(r#"INTDB_PASS = "local-Zx8pQ2vL9wR4""#).is_empty());
        assert!(found(r#"intdb_pass = "Qm7HUNTER2Kx9pL""#).is_empty());

        // No capture group: the whole match; the path restriction is dropped.
        let hook = "https://hooks.acme.dev/9f8e7d6c5b4a3f2e";
        assert_eq!(found(&format!("url: {hook}\n")), pair("deploy-hook", hook));
    }

    #[test]
    fn tells_gitleaks_configs_from_trawl_rule_files() {
        assert!(is_gitleaks_config(CONFIG));
        assert!(is_gitleaks_config(
            "[[rules]]\nid = \"x\"\nregex = '''x_[a-z]{8}'''\nkeywords = [\"x_\"]\n"
        ));
        assert!(is_gitleaks_config(
            "[[rules]]\nid = \"x\"\nregex = '''(a)(b)'''\nsecretGroup = 2\nname = \"x\"\n"
        ));
        assert!(is_gitleaks_config("[extend]\nuseDefault = true\n"));
        assert!(!is_gitleaks_config(include_str!(
            "../../rules/huggingface.toml"
        )));
        assert!(!is_gitleaks_config("not [ toml"));
        assert!(!is_gitleaks_config(""));
    }

    #[test]
    fn secret_group_counts_capturing_groups_only() {
        assert_eq!(tr("(a)(b)", Some(2)), "(a)(?P<secret>b)");
        assert_eq!(tr(r"\((a)", Some(1)), r"\((?P<secret>a)");
        assert_eq!(tr(r"[(\]](a)", Some(1)), r"[\(\]](?P<secret>a)");
        assert_eq!(
            tr("(?:x)(?i:y)(?P<n>a)(b)", Some(2)),
            "(?:x)(?i:y)(a)(?P<secret>b)"
        );
        assert_eq!(tr("(?<n>a)(?P<secret>b)", Some(1)), "(?P<secret>a)(b)");
        assert_eq!(tr("(?i)((a)b)c", Some(2)), "(?i)((?P<secret>a)b)c");
        assert_eq!(tr(r"\Q(x)\E(y)", Some(1)), r"\(x\)(?P<secret>y)");
        assert_eq!(tr("no groups", Some(1)), "no groups");
        let t = translate_regex("a(b(c))d", Some(2)).unwrap();
        assert_eq!(t.groups, 2);
        assert_eq!(&t.pattern[t.secret_span.unwrap()], "(?P<secret>c)");
    }

    #[test]
    fn translates_go_syntax() {
        // `{` that does not start a repetition is a literal in Go.
        assert_eq!(tr("a{2}b{2,}c{1,3}", None), "a{2}b{2,}c{1,3}");
        assert_eq!(tr("x{,3}{y}{", None), r"x\{,3\}\{y\}\{");
        // `\<`, `\>` are literals in Go, word boundaries in Rust.
        assert_eq!(tr(r"\<key\>", None), "<key>");
        // Octal, hex above ASCII, control characters.
        assert_eq!(tr(r"\101\0", None), r"A\x{00}");
        assert_eq!(tr(r"caf\xE9\x{e9}", None), "caféé");
        // Set syntax that Rust reads inside classes.
        assert_eq!(tr("[a&&b~~c]", None), r"[a\&\&b\~\~c]");
        assert_eq!(tr("[--/][a-]", None), r"[\--\/][a\-]");
        assert_eq!(tr("[[][]a]", None), r"[\[][\]a]");
        assert_eq!(
            tr(r"[\w.-][^\s\d]", None),
            r"[[:word:]\.\-][^[:space:][:digit:]]"
        );
        assert_eq!(tr(r"[+-/][\]-a]", None), r"[\+-\/][\]-a]");
        assert_eq!(tr("[[:alpha:][:^digit:]]", None), "[[:alpha:][:^digit:]]");
        assert_eq!(tr(r"[<\>]", None), "[<>]");
        // Non-ASCII class members go to a Unicode-mode class.
        assert_eq!(tr("[àé]", None), "(?u-i:[àé])");
        assert_eq!(
            tr(r"(?i)[a-zé\d]", None),
            "(?i)(?:[a-z[:digit:]]|(?u-i:[é]))"
        );
        assert_eq!(
            tr(r"[^\x00-\x{FF}-]", None),
            r"(?u-i:[^\x{00}-\x{7F}\-\x{80}-ÿ])"
        );
        assert_eq!(tr(r"(?i)caf\xE9", None), "(?i)café");
        assert_eq!(tr("(?i)(?-s:x)(?U)y", None), "(?i)(?-s:x)(?U)y");
        let bad = [
            r"(?=x)",
            r"(?<!x)y",
            r"(a)\1",
            r"\C",
            r"[z-a]",
            "(a",
            "a)",
            r"\e",
            r"\pL",
            r"[\p{Greek}]",
        ];
        for bad in bad {
            assert!(translate_regex(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn translated_classes_match_like_go() {
        let re = compile_regex(&tr(r"^[\w.-]{3}[&~]$", None)).unwrap();
        assert!(re.is_match(b"a.-&"));
        assert!(re.is_match(b"_-z~"));
        assert!(!re.is_match(b"a b&"));
        let re = compile_regex(&tr(r"(?i)^k[é\dx]+$", None)).unwrap();
        assert!(re.is_match("Ké9éX".as_bytes()));
        assert!(!re.is_match("k٣".as_bytes()), "\\d stays ASCII");
        let re = compile_regex(&tr(r"^[^é]$", None)).unwrap();
        assert!(re.is_match("e".as_bytes()));
        assert!(re.is_match("è".as_bytes()), "one character, not one byte");
        assert!(!re.is_match("é".as_bytes()));
    }

    #[test]
    fn warns_where_gitleaks_picks_the_secret_differently() {
        let cfg = r#"
[[rules]]
id = "first-may-be-empty"
regex = '''key=(a*)(b+)'''
[[rules]]
id = "first-optional"
regex = '''key=(x)?(y+)'''
[[rules]]
id = "first-always"
regex = '''key=(x+)-(y+)'''
[[rules]]
id = "bad-group"
regex = '''key=(x+)'''
secretGroup = 3
[[rules]]
id = "far-keyword"
regex = '''\bpat[a-z0-9]{14}\.[a-f0-9]{16}\b'''
keywords = ["airtable", "pat"]
[[rules]]
id = "lookahead"
regex = '''key(?=x)'''
[[rules]]
id = "twice"
regex = '''one'''
[[rules]]
id = "twice"
regex = '''two'''
[[rules]]
id = "Twice"
regex = '''three'''
"#;
        let (specs, warnings) = parse_gitleaks(cfg, "t.toml").unwrap();
        let has = |needle: &str| warnings.iter().any(|w| w.contains(needle));
        assert!(
            has("rule `first-may-be-empty`: no secretGroup"),
            "{warnings:#?}"
        );
        assert!(has("rule `first-optional`: no secretGroup"));
        assert!(!has("rule `first-always`"));
        assert!(has("rule `bad-group`: secretGroup 3 but the regex has 1"));
        assert!(has("keyword `airtable` does not appear"));
        assert!(!has("keyword `pat`"));
        assert!(has("rule `lookahead`: regex not supported"));
        assert!(has("rule `twice` is defined more than once"));
        assert!(has("id `twice` is taken, renamed `twice-2`"));
        let ids: Vec<&str> = specs.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "first-may-be-empty",
                "first-optional",
                "first-always",
                "far-keyword",
                "twice",
                "twice-2"
            ]
        );
        let twice = specs.iter().find(|s| s.id == "twice").unwrap();
        assert_eq!(twice.regex, "two");
    }

    #[test]
    fn allowlist_conditions_and_targets() {
        let cfg = r#"
[[rules]]
id = "a"
regex = '''a_[a-z0-9]{12}'''
[[rules.allowlists]]
condition = "AND"
paths = ['''test''']
regexes = ['''^a_0''']
[[rules.allowlists]]
condition = "AND"
regexes = ['''^a_1''', '''^a_2''']
[[rules]]
id = "b"
regex = '''b_[a-z0-9]{12}'''

[[allowlists]]
targetRules = ["b", "missing"]
stopwords = ["zzz"]
"#;
        let (specs, warnings) = parse_gitleaks(cfg, "t.toml").unwrap();
        let has = |needle: &str| warnings.iter().any(|w| w.contains(needle));
        assert!(has("condition AND over several kinds"), "{warnings:#?}");
        assert!(has("rule `missing` is not in this file"));
        assert_eq!(specs[0].allowlist.regexes, ["^a_1", "^a_2"]);
        assert!(specs[0].allowlist.stopwords.is_empty());
        assert_eq!(specs[1].allowlist.stopwords, ["zzz"]);
    }

    #[test]
    fn betterleaks_filters_and_keys_in_any_case() {
        let cfg = r#"
prefilter = '''matchesAny(get(attributes, "path", ""), [`\.png$`])'''
[[rules]]
ID = "one-secret"
Description = "One secret"
regex = '''\b(os_[A-Za-z0-9]{20})\b'''
KEYWORDS = ["os_"]
filter = '''
filter.entropy(finding["secret"]) < 3.0
'''
validate = '''http.get("https://example.com").status == 200'''
[[rules]]
id = "two-secret"
regex = '''\bts_[A-Za-z0-9]{20}\b'''
keywords = ["ts_"]
filter = '''entropy(finding["secret"]) <= 2.5 || finding["secret"].startsWith("x")'''
[[rules]]
id = "generic-thing"
regex = '''thing=([a-z0-9]{20})'''
secretgroup = 1
skipReport = false
[[rules]]
id = "component"
regex = '''c_[a-z]{10}'''
skipReport = true
"#;
        let (specs, warnings) = parse_gitleaks(cfg, "t.toml").unwrap();
        let has = |needle: &str| warnings.iter().any(|w| w.contains(needle));
        assert_eq!(specs[0].id, "one-secret");
        assert_eq!(specs[0].name, "One secret");
        assert_eq!(specs[0].keywords, ["os_"]);
        assert_eq!(specs[0].entropy, Some(3.0));
        assert_eq!(specs[1].entropy, None);
        assert!(has(
            "rule `two-secret`: the Betterleaks `filter` expression is not supported"
        ));
        assert!(has(
            "`validate` (live verification) is not supported, ignored in 1 rule(s): one-secret"
        ));
        assert!(has("`prefilter`/`filter` expressions are ignored"));
        assert!(has("rule `component`: `skipReport`"));
        assert_eq!(specs[2].id, "generic-thing");
        assert_eq!(specs[2].category, "generic");
        assert_eq!(specs[2].severity, Severity::Medium);
        assert_eq!(specs.len(), 3);
    }

    /// Tricky regexes of gitleaks' default config (rules and allowlists): mid-pattern flags,
    /// `\z`/`\B`, `[^]]`, literal `{`/`}`, `{{…}}`, escaped class members.
    #[test]
    fn tricky_default_regexes_translate() {
        let regexes = [
            r#"\bcurl\b(?:.*?|.*?(?:[\r\n]{1,2}.*?){1,5})[ \t\n\r](?:-H|--header)(?:=|[ \t]{0,5})(?:"(?i)(?:Authorization:[ \t]{0,5}(?:Basic[ \t]([a-z0-9+/]{8,}={0,3})|(?:Bearer|(?:Api-)?Token)[ \t]([\w=~@.+/-]{8,})|([\w=~@.+/-]{8,}))|(?:(?:X-(?:[a-z]+-)?)?(?:Api-?)?(?:Key|Token)):[ \t]{0,5}([\w=~@.+/-]{8,}))"|'(?i)(?:Authorization:[ \t]{0,5}(?:Basic[ \t]([a-z0-9+/]{8,}={0,3})|(?:Bearer|(?:Api-)?Token)[ \t]([\w=~@.+/-]{8,})|([\w=~@.+/-]{8,}))|(?:(?:X-(?:[a-z]+-)?)?(?:Api-?)?(?:Key|Token)):[ \t]{0,5}([\w=~@.+/-]{8,}))')(?:\B|\s|\z)"#,
            r#"\bcurl\b(?:.*|.*(?:[\r\n]{1,2}.*){1,5})[ \t\n\r](?:-u|--user)(?:=|[ \t]{0,5})("(:[^"]{3,}|[^:"]{3,}:|[^:"]{3,}:[^"]{3,})"|'([^:']{3,}:[^']{3,})'|((?:"[^"]{3,}"|'[^']{3,}'|[\w$@.-]+):(?:"[^"]{3,}"|'[^']{3,}'|[\w${}@.-]+)))(?:\s|\z)"#,
            r#"[^:]+:(?:change(?:it|me)|pass(?:word)?|pwd|test|token|\*+|x+)"#,
            r#"['"]?<[^>]+>['"]?:['"]?<[^>]+>|<[^:]+:[^>]+>['"]?"#,
            r#"[^:]+:\[[^]]+]"#,
            r#"['"]?[^:]+['"]?:['"]?\$(?:\d|\w+|\{(?:\d|\w+)})['"]?"#,
            r#"\$\([^)]+\):\$\([^)]+\)"#,
            r#"['"]?\$?{{[^}]+}}['"]?:['"]?\$?{{[^}]+}}['"]?"#,
            r#"(?i)^true|false|null$"#,
            r#"^\$(?:\d+|{\d+})$"#,
            r#"^\${(?:[A-Z_]+|[a-z_]+)}$"#,
            r#"^\{\{[ \t]*[\w ().|]+[ \t]*}}$"#,
            r#"^%[+\-# 0]?[bcdeEfFgGoOpqstTUvxX]$"#,
            r#"^\{\d{0,2}}$"#,
            r#"^/Users/(?i)[a-z0-9]+/[\w .-/]+$"#,
            r#"(?:^|[\\'"\x60\s>=:(,)])([a-zA-Z0-9_~.]{3}\dQ~[a-zA-Z0-9_~.-]{31,34})(?:$|[\\'"\x60\s<),])"#,
            r#"\b((?:sc|ext|scauth|authress)_(?i)[a-z0-9]{5,30}\.[a-z0-9]{4,6}\.(?-i:acc)[_-][a-z0-9-]{10,32}\.[a-z0-9+/_=-]{30,120})(?:[\x60'"\s;]|\\[nr]|$)"#,
            r#"[\w.-]{0,50}?(?i:[\w.-]{0,50}?(?:(?-i:[Mm]eraki|MERAKI))(?:[ \t\w.-]{0,20})[\s'"]{0,3})(?:=|>|:{1,3}=|\|\||:|=>|\?=|,)[\x60'"\s=]{0,5}([0-9a-f]{40})(?:[\x60'"\s;]|\\[nr]|$)"#,
        ];
        for re in regexes {
            tr(re, Some(1));
        }
        // `[^]]`: `]` first in a class is a literal.
        let re = compile_regex(&tr(r#"[^:]+:\[[^]]+]"#, None)).unwrap();
        assert!(re.is_match(b"user:[secret]"));
        let re = compile_regex(&tr(r#"^\$(?:\d+|{\d+})$"#, None)).unwrap();
        assert!(re.is_match(b"${12}"));
        let re = compile_regex(&tr(r#"['"]?\$?{{[^}]+}}['"]?"#, None)).unwrap();
        assert!(re.is_match(b"'{{ token }}'"));
        // Alternative groups without secretGroup: gitleaks takes whichever matched; warned.
        let cfg = r#"
[[rules]]
id = "atlassian-api-token"
regex = '''(?i:atlassian)[ =]{1,3}([a-zA-Z0-9]{24})\b|\b(ATATT3[A-Za-z0-9_\-=]{186})\b'''
keywords = ["atlassian", "atatt3"]
"#;
        let (specs, warnings) = parse_gitleaks(cfg, "t.toml").unwrap();
        assert_eq!(specs.len(), 1);
        assert!(warnings[0].contains("no secretGroup"), "{warnings:#?}");
    }

    /// A few of gitleaks' default rules, trimmed and written from memory: they all convert
    /// without loss, compile and find their tokens.
    const DEFAULT_RULES: &str = r#"
title = "gitleaks config"

[allowlist]
description = "global allow lists"
paths = ['''gitleaks\.toml''', '''(?i)\.(?:bmp|gif|jpe?g|png|svg|tiff?)$''']

[[rules]]
id = "github-pat"
description = "Uncovered a GitHub Personal Access Token, potentially leading to unauthorized repository access and sensitive content exposure."
regex = '''ghp_[0-9a-zA-Z]{36}'''
entropy = 3
keywords = ["ghp_"]

[[rules]]
id = "gitlab-pat"
description = "Identified a GitLab Personal Access Token, risking unauthorized access to GitLab repositories and codebase exposure."
regex = '''glpat-[\w-]{20}'''
entropy = 3
keywords = ["glpat-"]

[[rules]]
id = "slack-webhook-url"
description = "Discovered a Slack Webhook, which could lead to unauthorized message posting and data leakage in Slack channels."
regex = '''(?:https?://)?hooks.slack.com/(?:services|workflows|triggers)/[A-Za-z0-9+/]{43,56}'''
keywords = ["hooks.slack.com"]

[[rules]]
id = "private-key"
description = "Identified a Private Key, which may compromise cryptographic security and sensitive data encryption."
regex = '''(?i)-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----[\s\S-]{64,}?KEY(?: BLOCK)?-----'''
keywords = ["-----begin"]

[[rules]]
id = "aws-access-token"
description = "Identified a pattern that may indicate AWS credentials, risking unauthorized cloud resource access and data breaches on AWS platforms."
regex = '''\b((?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b'''
entropy = 3
keywords = ["a3t", "akia", "asia", "abia", "acca"]
[[rules.allowlists]]
regexes = ['''.+EXAMPLE$''']

[[rules]]
id = "stripe-access-token"
description = "Found a Stripe Access Token, posing a risk to payment processing services and sensitive financial data."
regex = '''\b((?:sk|rk)_(?:test|live|prod)_[a-zA-Z0-9]{10,99})(?:[\x60'"\s;]|\\[nr]|$)'''
entropy = 2
keywords = ["sk_test", "sk_live", "sk_prod", "rk_test", "rk_live", "rk_prod"]

[[rules]]
id = "jwt"
description = "Uncovered a JSON Web Token, which may lead to unauthorized access to web applications and sensitive user data."
regex = '''\b(ey[a-zA-Z0-9]{17,}\.ey[a-zA-Z0-9\/\\_-]{17,}\.(?:[a-zA-Z0-9\/\\_-]{10,}={0,2})?)(?:[\x60'"\s;]|\\[nr]|$)'''
entropy = 3
keywords = ["ey"]

[[rules]]
id = "adafruit-api-key"
description = "Identified a potential Adafruit API Key, which could lead to unauthorized access to Adafruit services and sensitive data exposure."
regex = '''(?i)[\w.-]{0,50}?(?:adafruit)(?:[ \t\w.-]{0,20})[\s'"]{0,3}(?:=|>|:{1,3}=|\|\||:|=>|\?=|,)[\x60'"\s=]{0,5}([a-z0-9_-]{32})(?:[\x60'"\s;]|\\[nr]|$)'''
keywords = ["adafruit"]
"#;

    #[test]
    fn default_gitleaks_rules_convert_and_fire() {
        assert!(is_gitleaks_config(DEFAULT_RULES));
        let (specs, warnings) = parse_gitleaks(DEFAULT_RULES, "gitleaks.toml").unwrap();
        assert_eq!(specs.len(), 8, "{warnings:#?}");
        // Only the global path allowlist is lost.
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert!(warnings[0].contains("`paths` are ignored"));
        let key = specs.iter().find(|s| s.id == "private-key").unwrap();
        assert_eq!(key.window, Some(UNBOUNDED_WINDOW));
        let github = specs.iter().find(|s| s.id == "github-pat").unwrap();
        assert_eq!(github.window, None);

        let scanner = scanner(specs);
        let found = |text: &str| findings(&scanner, text);
        let pat = "ghp_R8fK2pLm9QzX4vT7wY1nB6cD3hJ5sG0aE2uI";
        assert_eq!(
            found(&format!("GITHUB_TOKEN={pat}\n")),
            [("github-pat".to_string(), pat.to_string())]
        );
        let aws = "AKIAZ4QX7LMN2PRTW3VB";
        assert_eq!(
            found(&format!("aws_access_key_id = {aws}\n")),
            [("aws-access-token".to_string(), aws.to_string())]
        );
        let stripe = "sk_live_9Xq2LmT7vR4kW8pZ3nB6yC1d";
        assert_eq!(
            found(&format!("stripe.api_key = '{stripe}'\n")),
            [("stripe-access-token".to_string(), stripe.to_string())]
        );
        let ada = "x7k2m9q4w8e3r6t1y5u0i2o7p4a9s3d6";
        assert_eq!(
            found(&format!("ADAFRUIT_IO_KEY = \"{ada}\"\n")),
            [("adafruit-api-key".to_string(), ada.to_string())]
        );
        let body: String =
            "MIIEowIBAAKCAQEAw9vQ7h3kR2pL8mX5tN1bY6cF4jG0sD2aE7uI9oK3lZ8xV5nB\n".repeat(30);
        let pem = format!("-----BEGIN RSA PRIVATE KEY-----\n{body}-----END RSA PRIVATE KEY-----");
        let hits = found(&format!("key = '''\n{pem}\n'''\n"));
        assert_eq!(hits, [("private-key".to_string(), pem)]);
    }
}
