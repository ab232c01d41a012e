//! Suppressions: the `trawl.toml` configuration's allowlists, baselines keyed on the secret
//! fingerprint, and inline `trawl:allow` comments (applied when matches are placed).
//!
//! Contract: a baseline never holds a secret, only its fingerprint (a hash of rule id and
//! secret), so it survives rebases, squashes, renames and moved lines; look-ups are hash-based.
//! Expired entries stop suppressing and say so; entries that match nothing are reported stale.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use globset::{Glob, GlobSet, GlobSetBuilder};
use regex_automata::meta;
use serde::{Deserialize, Serialize};

use super::Finding;
use crate::rules::compile_regex;
use crate::scan::Scanner;

/// The marker that suppresses findings on its line.
pub const INLINE_ALLOW: &[u8] = b"trawl:allow";

/// `trawl.toml` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Rule selection.
    #[serde(default)]
    pub rules: RulesConfig,
    /// Allowlist for every rule.
    #[serde(default)]
    pub allowlist: AllowlistConfig,
    /// Allowlists for one rule each, by rule id.
    #[serde(default)]
    pub rule: HashMap<String, AllowlistConfig>,
    /// Limits.
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// `[rules]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Extra rule files (trawl or gitleaks format), relative to the config file.
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// Rule ids to turn off.
    #[serde(default)]
    pub disable: Vec<String>,
}

/// An allowlist: paths (globs), regexes on the secret, stopwords.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowlistConfig {
    /// Glob patterns of paths (as reports show them) whose findings are dropped.
    #[serde(default)]
    pub paths: Vec<String>,
    /// A secret matching one of these is dropped.
    #[serde(default)]
    pub regexes: Vec<String>,
    /// A secret containing one of these (any case) is dropped.
    #[serde(default)]
    pub stopwords: Vec<String>,
}

/// `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest file scanned (`"10M"`).
    pub max_file_size: Option<String>,
    /// Archive nesting depth.
    pub archive_depth: Option<usize>,
}

/// A loaded configuration, with paths resolved against its folder.
#[derive(Debug, Default)]
pub struct Config {
    /// Where it came from.
    pub path: Option<PathBuf>,
    /// The parsed file.
    pub file: ConfigFile,
}

/// The name looked for at the scan root.
pub const CONFIG_NAME: &str = "trawl.toml";

impl Config {
    /// Loads `explicit`, or `trawl.toml` in `root` when present; a bad file is an error that
    /// names the file, line and reason.
    pub fn load(explicit: Option<&Path>, root: Option<&Path>) -> Result<Config> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => root.map(|r| r.join(CONFIG_NAME)).filter(|p| p.is_file()),
        };
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let file: ConfigFile = toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| 1 + text[..s.start.min(text.len())].matches('\n').count());
            let reason = e.message().to_string();
            match line {
                Some(l) => anyhow!("{}:{l}: {reason}", path.display()),
                None => anyhow!("{}: {reason}", path.display()),
            }
        })?;
        Ok(Config {
            path: Some(path),
            file,
        })
    }

    /// Extra rule files, resolved against the config's folder.
    pub fn rule_files(&self) -> Vec<PathBuf> {
        let dir = self
            .path
            .as_deref()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."));
        self.file.rules.files.iter().map(|f| dir.join(f)).collect()
    }
}

#[derive(Debug, Default)]
struct CompiledAllowlist {
    paths: Option<GlobSet>,
    regexes: Vec<meta::Regex>,
    stopwords: Vec<String>,
}

impl CompiledAllowlist {
    fn new(a: &AllowlistConfig, what: &str) -> Result<CompiledAllowlist> {
        let paths = if a.paths.is_empty() {
            None
        } else {
            let mut b = GlobSetBuilder::new();
            for p in &a.paths {
                b.add(Glob::new(p).with_context(|| format!("{what}: bad path glob `{p}`"))?);
            }
            Some(b.build()?)
        };
        let regexes = a
            .regexes
            .iter()
            .map(|r| compile_regex(r).with_context(|| format!("{what}: bad regex `{r}`")))
            .collect::<Result<_>>()?;
        let stopwords = a.stopwords.iter().map(|w| w.to_lowercase()).collect();
        Ok(CompiledAllowlist {
            paths,
            regexes,
            stopwords,
        })
    }

    fn allows_path(&self, path: &str) -> bool {
        self.paths
            .as_ref()
            .is_some_and(|g| g.is_match(path) || g.is_match(path.split('!').next().unwrap_or(path)))
    }

    fn allows_secret(&self, secret: &[u8]) -> bool {
        self.regexes.iter().any(|r| r.is_match(secret)) || {
            let s = String::from_utf8_lossy(secret).to_lowercase();
            self.stopwords.iter().any(|w| s.contains(w.as_str()))
        }
    }
}

/// A baseline file: findings accepted for now, by secret fingerprint.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Baseline {
    /// Format version.
    pub version: u32,
    /// The accepted findings.
    pub entries: Vec<BaselineEntry>,
}

/// One accepted finding. Never holds the secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaselineEntry {
    /// The secret fingerprint (hash of rule id and secret).
    pub fingerprint: String,
    /// The rule id (for readers; matching uses the fingerprint).
    pub rule: String,
    /// Where it was seen when the entry was made (for readers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Why it is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Last day (`YYYY-MM-DD`) the entry suppresses; after it the finding is reported again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

impl Baseline {
    /// A baseline accepting these findings.
    pub fn from_findings(
        scanner: &Scanner,
        findings: &[Finding],
        reason: Option<&str>,
    ) -> Baseline {
        let entries = findings
            .iter()
            .map(|f| {
                let mut paths: Vec<String> = f.locations.iter().map(|l| l.display_path()).collect();
                paths.dedup();
                paths.truncate(5);
                BaselineEntry {
                    fingerprint: f.fingerprint.clone(),
                    rule: scanner.rule(f.rule).id().to_string(),
                    paths,
                    reason: reason.map(str::to_string),
                    expires: None,
                }
            })
            .collect();
        Baseline {
            version: 1,
            entries,
        }
    }

    /// Reads a baseline file.
    pub fn load(path: &Path) -> Result<Baseline> {
        let text = std::fs::read(path)
            .with_context(|| format!("cannot read baseline {}", path.display()))?;
        let b: Baseline = serde_json::from_slice(&text)
            .map_err(|e| anyhow!("{}:{}: {e}", path.display(), e.line()))?;
        for e in &b.entries {
            if let Some(d) = &e.expires {
                parse_day(d)
                    .map_err(|m| anyhow!("{}: entry {}: {m}", path.display(), e.fingerprint))?;
            }
        }
        Ok(b)
    }
}

/// `YYYY-MM-DD` to days since 1970-01-01.
fn parse_day(s: &str) -> Result<i64, String> {
    crate::dates::parse_date(s).map(|secs| secs.div_euclid(86_400))
}

fn today() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64 / 86_400)
}

/// What suppression did, for the summary and `--report-stale`.
#[derive(Debug, Default)]
pub struct SuppressionReport {
    /// Findings dropped by the baseline.
    pub baselined: usize,
    /// Locations dropped by allowlists.
    pub allowlisted: usize,
    /// Baseline entries that matched no finding.
    pub stale: Vec<BaselineEntry>,
    /// Findings whose baseline entry expired (reported again).
    pub expired: Vec<(String, String)>,
}

/// Allowlists and a baseline, ready to filter findings.
#[derive(Debug, Default)]
pub struct Suppressions {
    global: CompiledAllowlist,
    per_rule: HashMap<String, CompiledAllowlist>,
    baseline: HashMap<String, BaselineEntry>,
}

impl Suppressions {
    /// Builds the filters of a configuration and an optional baseline.
    pub fn new(config: &Config, baseline: Option<Baseline>) -> Result<Suppressions> {
        let where_ = config
            .path
            .as_ref()
            .map_or_else(|| CONFIG_NAME.to_string(), |p| p.display().to_string());
        let global =
            CompiledAllowlist::new(&config.file.allowlist, &format!("{where_}: [allowlist]"))?;
        let mut per_rule = HashMap::new();
        for (id, a) in &config.file.rule {
            per_rule.insert(
                id.clone(),
                CompiledAllowlist::new(a, &format!("{where_}: [rule.\"{id}\"]"))?,
            );
        }
        let baseline = baseline
            .map(|b| {
                b.entries
                    .into_iter()
                    .map(|e| (e.fingerprint.clone(), e))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Suppressions {
            global,
            per_rule,
            baseline,
        })
    }

    /// Drops what the allowlists and the baseline cover.
    pub fn apply(&self, scanner: &Scanner, findings: &mut Vec<Finding>) -> SuppressionReport {
        let mut report = SuppressionReport::default();
        let mut matched: HashSet<&str> = HashSet::new();
        let today = today();
        findings.retain_mut(|f| {
            let id = scanner.rule(f.rule).id();
            if let Some(entry) = self.baseline.get(&f.fingerprint) {
                matched.insert(entry.fingerprint.as_str());
                let expired = entry
                    .expires
                    .as_deref()
                    .and_then(|d| parse_day(d).ok())
                    .is_some_and(|d| d < today);
                if !expired {
                    report.baselined += 1;
                    return false;
                }
                report
                    .expired
                    .push((id.to_string(), entry.expires.clone().unwrap_or_default()));
                for l in &mut f.locations {
                    let note = format!(
                        "baseline entry expired on {}",
                        entry.expires.as_deref().unwrap_or("")
                    );
                    l.extra.message = Some(match l.extra.message.take() {
                        Some(m) => format!("{m}; {note}"),
                        None => note,
                    });
                }
            }
            let rule_list = self.per_rule.get(id);
            let secret_allowed = self.global.allows_secret(&f.secret)
                || rule_list.is_some_and(|a| a.allows_secret(&f.secret));
            if secret_allowed && !scanner.rule(f.rule).is_synthetic() {
                report.allowlisted += f.locations.len();
                return false;
            }
            let before = f.locations.len();
            f.locations.retain(|l| {
                let path = l.display_path();
                !(self.global.allows_path(&path) || rule_list.is_some_and(|a| a.allows_path(&path)))
            });
            report.allowlisted += before - f.locations.len();
            !f.locations.is_empty()
        });
        let mut stale: Vec<BaselineEntry> = self
            .baseline
            .values()
            .filter(|e| !matched.contains(e.fingerprint.as_str()))
            .cloned()
            .collect();
        stale.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        report.stale = stale;
        report
    }
}

/// Checks a config's rule ids against the rule set (disabled and per-rule ids must exist).
pub fn check_rule_ids(config: &Config, ids: &HashSet<&str>) -> Result<()> {
    let where_ = config
        .path
        .as_ref()
        .map_or_else(|| CONFIG_NAME.to_string(), |p| p.display().to_string());
    for id in config
        .file
        .rules
        .disable
        .iter()
        .chain(config.file.rule.keys())
    {
        if !ids.contains(id.as_str()) {
            bail!("{where_}: unknown rule id `{id}`");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_dates() {
        assert_eq!(parse_day("1970-01-02"), Ok(1));
        assert_eq!(parse_day("2026-11-23"), Ok(20_780));
        assert!(parse_day("next week").is_err());
    }
}
