//! Gitleaks and Betterleaks configurations converted into trawl rules, so that teams can bring
//! their custom rules along.
//!
//! Contract: [`parse_gitleaks`] fails only on a file that is not TOML or not shaped like a
//! gitleaks config; everything it cannot convert faithfully is skipped or approximated with a
//! warning, and every spec it returns passes [`Rule::compile`](crate::rules::Rule::compile).
//!
//! Mapping (keys are matched case-insensitively, as gitleaks' config loader does):
//! - `id` → id, lowercased, other characters than `a-z0-9._-` replaced by `-`; a second rule with
//!   the same gitleaks id replaces the first (as in gitleaks); ids that collide only after the
//!   rewrite get a `-2`, `-3`… suffix.
//! - `description` → name (the id when absent).
//! - Category `saas`, severity `high`; rules whose id contains `generic` get category `generic`
//!   and severity `medium`, because gitleaks, like trawl's overlap resolution, lets a non-generic
//!   finding win over a generic one on the same secret.
//! - `regex`: Go RE2 syntax rewritten into trawl's byte-mode dialect (see
//!   [`re2::translate_regex`]). `secretGroup = N` renames the N-th capturing group `secret`;
//!   without it, gitleaks takes the first non-empty group, trawl group 1 (the whole match when
//!   group 1 does not take part), which is the same unless group 1 may be empty or skipped: a
//!   warning says when.
//! - `entropy` → entropy; Betterleaks' rule `filter = 'entropy(finding["secret"]) <= X'` too.
//! - `keywords` → keywords, lowercased. Gitleaks only requires a keyword somewhere in the file;
//!   trawl runs a rule near its keywords, so a warning points at the keywords (by position)
//!   that the regex does not spell.
//! - `window`: regexes longer than trawl's default window get their maximum length, unbounded
//!   ones [`convert::UNBOUNDED_WINDOW`].
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
//!
//! Files: `convert.rs` maps the config's rules and allowlists, `re2.rs` translates Go regexes.
//! Warnings and errors are typed ([`RuleFileWarning`], [`RuleFileError`]) and never quote the
//! file beyond rule ids and line numbers.

mod convert;
mod re2;
#[cfg(test)]
mod tests;

use toml::Value;

use super::diagnostics::{self, content_free, RuleFileError, RuleFileFormat, RuleFileWarning};
use super::RuleSpec;

/// Converts a gitleaks/Betterleaks config to trawl rule specs. Returns the specs and warnings
/// (e.g. "[extend] is ignored", "rule X: path-only rules are not supported, skipped").
pub fn parse_gitleaks(
    text: &str,
    origin: &str,
) -> Result<(Vec<RuleSpec>, Vec<RuleFileWarning>), RuleFileError> {
    let table: toml::Table = toml::from_str(text)
        .map_err(|e| diagnostics::toml_error(&e, text, origin, RuleFileFormat::Gitleaks))?;
    let config: convert::GlConfig =
        lowercase_keys(Value::Table(table))
            .try_into()
            .map_err(|e: toml::de::Error| RuleFileError::Invalid {
                origin: origin.to_string(),
                line: key_line(text, &e.to_string()),
                format: RuleFileFormat::Gitleaks,
                reason: content_free(e.message()),
            })?;
    Ok(convert::convert_config(&config, text, origin))
}

/// Keys were lowercased, so a deserialization error has no position: the line of the key it
/// names (its last backquoted or dotted part), if a line of the text sets that key.
fn key_line(text: &str, message: &str) -> Option<usize> {
    let key = message
        .rsplit(['.', '`'])
        .find(|k| !k.trim().is_empty())
        .unwrap_or("")
        .trim();
    if key.is_empty() {
        return None;
    }
    let line = text.lines().position(|l| {
        let l = l.trim_start().to_ascii_lowercase();
        l.starts_with(key) && l[key.len()..].trim_start().starts_with('=')
    })?;
    Some(line + 1)
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
