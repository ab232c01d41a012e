//! A parsed gitleaks/Betterleaks config (keys lowercased) mapped to trawl rule specs: ids,
//! names, `secretGroup`, entropy and filters, keywords, windows, rule and global allowlists,
//! `[extend]`; the mapping is documented in the parent module.

use std::collections::{HashMap, HashSet};

use regex_automata::util::syntax;
use serde::Deserialize;
use toml::Value;

use super::re2::{translate_regex, Translated};
use crate::rules::diagnostics::{self, RuleFileWarning, RuleWarningKind};
use crate::rules::{AllowlistSpec, Rule, RuleSpec, Severity, WINDOW_AFTER};

use RuleWarningKind::{Approximated, DuplicateId, IgnoredField, Unconvertible};

/// The window given to rules whose regex has no maximum length (PEM blocks, long tokens).
pub const UNBOUNDED_WINDOW: usize = 16 << 10;

/// A gitleaks config, keys lowercased.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct GlConfig {
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

/// Where warnings point: a rule (its id as written and line) or a global allowlist.
struct Subject {
    rule: Option<String>,
    line: Option<usize>,
    /// Put before messages about a global allowlist.
    prefix: String,
}

impl Subject {
    fn rule(id: &str, line: Option<usize>) -> Subject {
        Subject {
            rule: Some(id.to_string()),
            line,
            prefix: String::new(),
        }
    }

    fn warn(&self, kind: RuleWarningKind, message: impl AsRef<str>) -> RuleFileWarning {
        RuleFileWarning {
            kind,
            line: self.line,
            rule: self.rule.clone(),
            message: format!("{}{}", self.prefix, message.as_ref()),
        }
    }
}

/// Converts a parsed config; `text` gives the rules' lines, `origin` names the file in rule
/// compile checks.
pub(super) fn convert_config(
    config: &GlConfig,
    text: &str,
    origin: &str,
) -> (Vec<RuleSpec>, Vec<RuleFileWarning>) {
    let mut warnings = Vec::new();
    if let Some(extend) = &config.extend {
        warnings.push(RuleFileWarning::new(IgnoredField, extend_warning(extend)));
    }
    if config.prefilter.is_some() || config.filter.is_some() {
        warnings.push(RuleFileWarning::new(
            IgnoredField,
            "top-level Betterleaks `prefilter`/`filter` expressions are ignored \
             (trawl applies its own placeholder filter)",
        ));
    }
    let globals = global_allowlists(config, &mut warnings);
    let lines = diagnostics::rule_lines(text, config.rules.len());

    // As in gitleaks, a later rule with the same id replaces an earlier one.
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, rule) in config.rules.iter().enumerate() {
        last.insert(rule.id.trim(), i);
    }
    let mut specs = Vec::new();
    let mut used: HashSet<String> = HashSet::new();
    let mut live_validation = Vec::new();
    for ((i, rule), line) in config.rules.iter().enumerate().zip(lines) {
        let raw_id = rule.id.trim();
        let at = Subject::rule(raw_id, line);
        if !raw_id.is_empty() && last[raw_id] != i {
            warnings.push(at.warn(
                DuplicateId,
                "defined more than once: the last definition is used",
            ));
            continue;
        }
        if rule.validate.is_some() {
            live_validation.push(raw_id.to_string());
        }
        let Some(mut spec) = convert_rule(rule, &at, &globals, &mut warnings) else {
            continue;
        };
        if used.contains(&spec.id) {
            let base = spec.id.clone();
            let mut n = 2;
            while used.contains(&format!("{base}-{n}")) {
                n += 1;
            }
            spec.id = format!("{base}-{n}");
            warnings.push(at.warn(
                DuplicateId,
                format!("id `{base}` is taken, renamed `{}`", spec.id),
            ));
        }
        match Rule::compile(spec.clone(), origin) {
            Ok(_) => {
                used.insert(spec.id.clone());
                specs.push(spec);
            }
            Err(e) => warnings.push(at.warn(Unconvertible, format!("{}, skipped", e.reason))),
        }
    }
    if !live_validation.is_empty() {
        warnings.push(RuleFileWarning::new(
            IgnoredField,
            format!(
                "Betterleaks `validate` (live verification) is not supported, ignored in {} \
                 rule(s): {}",
                live_validation.len(),
                live_validation.join(", ")
            ),
        ));
    }
    (specs, warnings)
}

/// The `[extend]` warning; the extended file's path or URL is not repeated (it is the file's
/// content).
fn extend_warning(extend: &GlExtend) -> String {
    let mut w = "[extend] is ignored".to_string();
    if extend.use_default {
        w.push_str(": trawl's built-in rules stand in for gitleaks' default rules");
    }
    if extend.path.is_some() {
        w.push_str("; convert the extended file too and list it in trawl.toml's [rules] files");
    }
    if extend.url.is_some() {
        w.push_str("; the extended URL is not fetched");
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

fn global_allowlists(
    config: &GlConfig,
    warnings: &mut Vec<RuleFileWarning>,
) -> Vec<GlobalAllowlist> {
    let ids: HashSet<&str> = config.rules.iter().map(|r| r.id.trim()).collect();
    let mut out = Vec::new();
    for a in config.allowlist.iter().chain(&config.allowlists) {
        let at = Subject {
            rule: None,
            line: None,
            prefix: if a.target_rules.is_empty() {
                "global allowlist: ".to_string()
            } else {
                format!("global allowlist for {}: ", a.target_rules.join(", "))
            },
        };
        for t in &a.target_rules {
            if !ids.contains(t.as_str()) {
                warnings.push(at.warn(
                    IgnoredField,
                    format!("rule `{t}` is not in this file, its allowlist is dropped"),
                ));
            }
        }
        let Some(spec) = convert_allowlist(a, &at, warnings) else {
            continue;
        };
        if spec.regexes.is_empty() && spec.stopwords.is_empty() {
            continue;
        }
        warnings.push(at.warn(
            Approximated,
            "applied to the converted rules only; for trawl's built-in rules, \
             copy its regexes and stopwords to trawl.toml's [allowlist]",
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
    at: &Subject,
    globals: &[GlobalAllowlist],
    warnings: &mut Vec<RuleFileWarning>,
) -> Option<RuleSpec> {
    let raw_id = rule.id.trim();
    if raw_id.is_empty() {
        // Named by its line: its regex or path would quote the file.
        warnings.push(RuleFileWarning {
            rule: None,
            ..at.warn(Unconvertible, "a rule without an id is skipped")
        });
        return None;
    }
    if rule.skip_report {
        warnings.push(at.warn(
            Unconvertible,
            "`skipReport` rules only serve composite rules, skipped",
        ));
        return None;
    }
    let regex = rule.regex.as_deref().unwrap_or("");
    if regex.is_empty() {
        if rule.path.as_deref().is_some_and(|p| !p.is_empty()) {
            warnings.push(at.warn(Unconvertible, "path-only rules are not supported, skipped"));
        } else {
            warnings.push(at.warn(
                Unconvertible,
                "no regex (an override of an extended rule?), skipped",
            ));
        }
        return None;
    }
    if rule.path.as_deref().is_some_and(|p| !p.is_empty()) {
        warnings.push(at.warn(
            IgnoredField,
            "the path restriction is not applied, the regex runs on every file",
        ));
    }
    if !rule.required.is_empty() {
        warnings.push(at.warn(
            IgnoredField,
            "[[rules.required]] (composite rules) is not supported, \
             the rule reports without its required rules",
        ));
    }

    let target = rule.secret_group.filter(|&g| g > 0);
    let translated = match translate_regex(regex, Some(target.unwrap_or(1))) {
        Ok(t) => t,
        Err(e) => {
            warnings.push(at.warn(Unconvertible, format!("regex not supported: {e}, skipped")));
            return None;
        }
    };
    if let Some(g) = target {
        if g > translated.groups {
            warnings.push(at.warn(
                Unconvertible,
                format!(
                    "secretGroup {g} but the regex has {} capture group(s), skipped",
                    translated.groups
                ),
            ));
            return None;
        }
    }
    let hir = match syntax::parse_with(&translated.pattern, &crate::rules::limits::syntax_config())
    {
        Ok(hir) => hir,
        Err(e) => {
            warnings.push(at.warn(
                Unconvertible,
                format!(
                    "regex not supported: {}, skipped",
                    diagnostics::regex_error_reason(&e)
                ),
            ));
            return None;
        }
    };
    let static_captures = hir.properties().static_explicit_captures_len();
    if target.is_none()
        && translated.groups > 0
        && !first_group_is_exact(&translated, static_captures)
    {
        warnings.push(at.warn(
            Approximated,
            "no secretGroup: trawl takes capture group 1 as the secret (the whole match \
             when it does not take part), gitleaks the first non-empty group",
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
            None => warnings.push(at.warn(
                IgnoredField,
                "the Betterleaks `filter` expression is not supported, ignored",
            )),
        }
    }

    // Keywords are named by position: they are the file's content.
    let mut keywords: Vec<String> = Vec::new();
    for k in &rule.keywords {
        let k = k.to_lowercase();
        if !keywords.contains(&k) {
            keywords.push(k);
        }
    }
    if let Some(short) = keywords.iter().position(|k| k.len() < 2) {
        warnings.push(at.warn(
            Approximated,
            format!(
                "keyword {} is shorter than 2 bytes: the rule runs without keywords",
                short + 1
            ),
        ));
        keywords.clear();
    }
    let spelled = literal_text(regex);
    for (i, k) in keywords.iter().enumerate() {
        if !spelled_in(&spelled, k) {
            warnings.push(at.warn(
                Approximated,
                format!(
                    "keyword {} of {} does not appear in the regex: trawl runs a rule only near \
                     its keywords (gitleaks anywhere in the file), so matches far from it are \
                     missed",
                    i + 1,
                    keywords.len()
                ),
            ));
        }
    }

    let mut allowlist = AllowlistSpec::default();
    let own = rule.allowlist.iter().chain(&rule.allowlists);
    for a in own {
        if let Some(spec) = convert_allowlist(a, at, warnings) {
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
        revoke: None,
        verify: None,
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
    let non_empty = syntax::parse_with(
        &t.pattern[span.clone()],
        &crate::rules::limits::syntax_config(),
    )
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
    at: &Subject,
    warnings: &mut Vec<RuleFileWarning>,
) -> Option<AllowlistSpec> {
    let and = match a.condition.trim().to_ascii_uppercase().as_str() {
        "" | "OR" | "||" => false,
        "AND" | "&&" => true,
        _ => {
            warnings.push(at.warn(
                IgnoredField,
                "allowlist condition is unknown (expected AND or OR), allowlist ignored",
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
        warnings.push(at.warn(
            IgnoredField,
            "an allowlist with condition AND over several kinds of criteria cannot be \
             expressed in trawl, allowlist ignored",
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
            warnings.push(at.warn(
                IgnoredField,
                format!("allowlist `{name}` are ignored{hint}"),
            ));
        }
    }
    let mut spec = AllowlistSpec::default();
    if !a.regexes.is_empty() {
        match a.regex_target.trim() {
            "" | "secret" => {}
            t @ ("match" | "line") => warnings.push(at.warn(
                Approximated,
                format!("allowlist regexes with regexTarget `{t}` are applied to the secret only"),
            )),
            _ => {
                warnings.push(at.warn(
                    IgnoredField,
                    "allowlist regexTarget is unknown (expected secret, match or line), its \
                     regexes are ignored",
                ));
                return Some(spec);
            }
        }
    }
    for (i, r) in a.regexes.iter().enumerate() {
        match translate_regex(r, None) {
            Ok(t) => spec.regexes.push(t.pattern),
            Err(e) => warnings.push(at.warn(
                IgnoredField,
                format!("allowlist regex {} not supported ({e}), ignored", i + 1),
            )),
        }
    }
    for w in &a.stopwords {
        if w.is_empty() {
            warnings.push(at.warn(IgnoredField, "an empty stopword is ignored"));
        } else {
            spec.stopwords.push(w.clone());
        }
    }
    Some(spec)
}
