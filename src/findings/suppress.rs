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
use sha2::Digest;

use super::Finding;
use crate::rules::compile_regex;

/// The marker that suppresses findings on its line.
pub const INLINE_ALLOW: &[u8] = b"trawl:allow";

/// Markers of other scanners honoured like [`INLINE_ALLOW`], so teams can switch without
/// re-triaging: gitleaks' `gitleaks:allow` and TruffleHog's `trufflehog:ignore`.
const OTHER_INLINE_ALLOWS: [&[u8]; 2] = [b"gitleaks:allow", b"trufflehog:ignore"];

/// Whether a line carries an inline allow marker.
pub fn allowed_inline(line: &[u8]) -> bool {
    // One scan for the common `:` of all markers keeps clean lines cheap.
    memchr::memchr(b':', line).is_some()
        && std::iter::once(INLINE_ALLOW)
            .chain(OTHER_INLINE_ALLOWS)
            .any(|m| memchr::memmem::find(line, m).is_some())
}

/// A parse error's reason without quoted values: serde and TOML messages quote the offending
/// value (`invalid type: string "…"`), which in a hostile file can be anything, secrets
/// included. Names in backticks (fields) are kept, cut short.
pub fn unquoted_reason(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default();
    let mut out = String::with_capacity(first.len());
    let mut rest = first;
    while let Some(i) = rest.find(['"', '`']) {
        let q = rest.as_bytes()[i] as char;
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let Some(j) = after.find(q) else {
            out.push(q);
            out.push('…');
            rest = "";
            break;
        };
        let inner = &after[..j];
        out.push(q);
        if q == '`' && inner.chars().count() <= 40 {
            out.push_str(inner);
        } else {
            out.push('…');
        }
        out.push(q);
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    out
}

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
    /// Verification endpoints and hosts (`--verify`); honoured only from `--config`.
    #[serde(default)]
    pub verify: VerifyConfig,
}

/// `[verify]`: where `--verify` may send a provider's secrets besides the rule's hosts. Read
/// only from a configuration named with `--config`: a scanned repository's `trawl.toml` must
/// not choose where its secrets go.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// Provider → extra hosts (GitHub Enterprise, self-hosted GitLab, Databricks workspaces).
    #[serde(default)]
    pub hosts: HashMap<String, Vec<String>>,
    /// Provider → endpoint base URL (https, on a rule host or one of `hosts`).
    #[serde(default)]
    pub endpoints: HashMap<String, String>,
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
    /// The canonical scan root when the configuration was found there (untrusted: the scanned
    /// repository wrote it); `None` when the user named it with `--config`.
    within: Option<PathBuf>,
}

/// Most bytes of a `trawl.toml` found at the scan root, and of each rule file it names.
pub const UNTRUSTED_FILE_MAX: u64 = 1 << 20;
/// Most bytes of a file the user named (`--config`, `--rules`, and what such a config names).
pub const TRUSTED_FILE_MAX: u64 = 16 << 20;

/// A configuration or rule file to read, with the checks its origin calls for: always a
/// regular file (never a FIFO or a device, which would hang or never end) of at most
/// `max_bytes`; when `within` is set (the file came from the scanned tree), inside that
/// folder once symlinks and `..` are resolved. Errors name the file and the reason, never its
/// content.
#[derive(Clone, Debug)]
pub struct BoundedFile {
    /// The file as named (resolved against the naming config's folder).
    pub path: PathBuf,
    /// Largest size accepted.
    pub max_bytes: u64,
    /// Canonical folder the file must lie in.
    pub within: Option<PathBuf>,
}

impl BoundedFile {
    /// A file the user named on the command line: anywhere, generously capped.
    pub fn trusted(path: PathBuf) -> BoundedFile {
        BoundedFile {
            path,
            max_bytes: TRUSTED_FILE_MAX,
            within: None,
        }
    }

    /// Reads the file as UTF-8 text after the checks; `what` names it in errors
    /// (`config`, `rule file`).
    pub fn read(&self, what: &str) -> Result<String> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let shown = self.path.display();
        if let Some(root) = &self.within {
            let real = std::fs::canonicalize(&self.path)
                .with_context(|| format!("cannot read {what} {shown}"))?;
            if !real.starts_with(root) {
                bail!(
                    "{what} {shown}: outside the scanned tree {} (a configuration found there \
                     may only name files inside it)",
                    root.display()
                );
            }
        }
        let not_regular = || anyhow!("{what} {shown}: not a regular file");
        let meta =
            std::fs::metadata(&self.path).with_context(|| format!("cannot read {what} {shown}"))?;
        if !meta.is_file() {
            return Err(not_regular());
        }
        // O_NONBLOCK: a file swapped for a FIFO after the check still cannot block the open.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path)
            .with_context(|| format!("cannot read {what} {shown}"))?;
        if !file
            .metadata()
            .with_context(|| format!("cannot read {what} {shown}"))?
            .is_file()
        {
            return Err(not_regular());
        }
        let mut bytes = Vec::new();
        file.take(self.max_bytes + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {what} {shown}"))?;
        if bytes.len() as u64 > self.max_bytes {
            bail!("{what} {shown}: larger than {} bytes", self.max_bytes);
        }
        String::from_utf8(bytes).map_err(|_| anyhow!("{what} {shown}: not UTF-8 text"))
    }
}

/// The name looked for at the scan root.
pub const CONFIG_NAME: &str = "trawl.toml";

impl Config {
    /// Loads `explicit`, or `trawl.toml` in `root` when present; a bad file is an error that
    /// names the file, line and reason.
    ///
    /// `trawl.toml` at the root is written by the scanned repository, so it is untrusted: it
    /// must be a regular file inside the root of at most [`UNTRUSTED_FILE_MAX`] bytes, and so
    /// must every rule file it names (see [`Config::rule_files`]). Anything else there (a
    /// FIFO, a device, a symlink out) is an error, not a skipped file: a repository must
    /// neither lose its own configuration silently nor make trawl read outside itself.
    pub fn load(explicit: Option<&Path>, root: Option<&Path>) -> Result<Config> {
        let (source, within) = match (explicit, root) {
            (Some(p), _) => (BoundedFile::trusted(p.to_path_buf()), None),
            (None, Some(r)) => {
                let path = r.join(CONFIG_NAME);
                if std::fs::symlink_metadata(&path).is_err() {
                    return Ok(Config::default());
                }
                let within = std::fs::canonicalize(r)
                    .with_context(|| format!("cannot read config {}", path.display()))?;
                let source = BoundedFile {
                    path,
                    max_bytes: UNTRUSTED_FILE_MAX,
                    within: Some(within.clone()),
                };
                (source, Some(within))
            }
            (None, None) => return Ok(Config::default()),
        };
        let text = source.read("config")?;
        let path = source.path;
        let file: ConfigFile = toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| 1 + text[..s.start.min(text.len())].matches('\n').count());
            let reason = unquoted_reason(e.message());
            match line {
                Some(l) => anyhow!("{}:{l}: {reason}", path.display()),
                None => anyhow!("{}: {reason}", path.display()),
            }
        })?;
        Ok(Config {
            path: Some(path),
            file,
            within,
        })
    }

    /// Extra rule files, resolved against the config's folder, with the limits of the
    /// config's origin: a config found at the scan root may only name regular files inside
    /// that root, of at most [`UNTRUSTED_FILE_MAX`] bytes (a forbidden file is an error when
    /// read); one named with `--config` may name any regular file.
    pub fn rule_files(&self) -> Vec<BoundedFile> {
        let dir = self
            .path
            .as_deref()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."));
        self.file
            .rules
            .files
            .iter()
            .map(|f| BoundedFile {
                path: dir.join(f),
                max_bytes: match self.within {
                    Some(_) => UNTRUSTED_FILE_MAX,
                    None => TRUSTED_FILE_MAX,
                },
                within: self.within.clone(),
            })
            .collect()
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
            // Entries are named by position: the configuration may come from the scanned
            // repository, and its text never reaches an error message.
            for (i, p) in a.paths.iter().enumerate() {
                let glob = Glob::new(p)
                    .map_err(|_| anyhow!("{what}: path glob {} is not a valid glob", i + 1))?;
                b.add(glob);
            }
            Some(b.build()?)
        };
        let regexes = a
            .regexes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                compile_regex(r).map_err(|_| {
                    anyhow!(
                        "{what}: regex {} is not a valid regex (or over the limits)",
                        i + 1
                    )
                })
            })
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
    pub fn from_findings(findings: &[Finding], reason: Option<&str>) -> Baseline {
        let entries = findings
            .iter()
            .map(|f| {
                let mut paths: Vec<String> = f.locations.iter().map(|l| l.display_path()).collect();
                paths.dedup();
                paths.truncate(5);
                BaselineEntry {
                    fingerprint: f.fingerprint.clone(),
                    rule: f.rule.id.clone(),
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
        let b: Baseline = serde_json::from_slice(&text).map_err(|e| {
            anyhow!(
                "{}:{}: not a baseline: {}",
                path.display(),
                e.line(),
                unquoted_reason(&e.to_string())
            )
        })?;
        for (i, e) in b.entries.iter().enumerate() {
            if let Some(d) = &e.expires {
                parse_day(d).map_err(|_| {
                    anyhow!(
                        "{}: entry {}: `expires` is not a date (YYYY-MM-DD)",
                        path.display(),
                        i + 1
                    )
                })?;
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
    gitleaks: GitleaksIgnore,
}

/// A `.gitleaksignore`: gitleaks fingerprints (`commit:file:rule:line` for history,
/// `file:rule:line` for files), one a line, `#` comments. A location is suppressed when its
/// path and line (and commit, when the entry names one) match; the rule id is not compared,
/// since gitleaks names its rules differently.
#[derive(Debug, Default)]
pub struct GitleaksIgnore {
    entries: HashSet<(Option<String>, String, usize)>,
}

/// The file gitleaks reads at the scan root.
pub const GITLEAKS_IGNORE: &str = ".gitleaksignore";

impl GitleaksIgnore {
    /// Reads `.gitleaksignore` in `root` when present; unreadable lines are skipped.
    pub fn load(root: Option<&Path>) -> GitleaksIgnore {
        let Some(path) = root.map(|r| r.join(GITLEAKS_IGNORE)) else {
            return GitleaksIgnore::default();
        };
        // Regular files only, and bounded: the file comes from the scanned repository.
        let text = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() && m.len() <= 16 << 20 => std::fs::read(&path).unwrap_or_default(),
            _ => Vec::new(),
        };
        GitleaksIgnore::parse(&String::from_utf8_lossy(&text))
    }

    /// Parses the lines of a `.gitleaksignore`.
    pub fn parse(text: &str) -> GitleaksIgnore {
        let mut entries = HashSet::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.rsplitn(3, ':');
            let (Some(n), Some(_rule), Some(rest)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Ok(n) = n.parse::<usize>() else { continue };
            let (commit, file) = match rest.split_once(':') {
                Some((c, f)) if c.len() >= 7 && c.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    (Some(c.to_ascii_lowercase()), f)
                }
                _ => (None, rest),
            };
            entries.insert((commit, file.to_string(), n));
        }
        GitleaksIgnore { entries }
    }

    fn covers(&self, loc: &super::Location) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        let Some(line) = loc.position.map(|p| p.line) else {
            return false;
        };
        let path = loc.display_path();
        if self.entries.contains(&(None, path.clone(), line)) {
            return true;
        }
        loc.provenance.commit().is_some_and(|c| {
            self.entries
                .contains(&(Some(c.id.clone()), path.clone(), line))
                || self.entries.iter().any(|(ec, f, l)| {
                    *l == line
                        && *f == path
                        && ec.as_ref().is_some_and(|ec| c.id.starts_with(ec.as_str()))
                })
        })
    }
}

impl Config {
    /// A digest of what in the configuration decides whether a secret is kept by its
    /// content alone (the regexes and stopwords of the allowlists): the state store keeps no
    /// secret, so these are applied before a blob's results are stored, and a change of them
    /// makes stored results stale. Paths, baselines and `.gitleaksignore` apply at report
    /// time and are not in it.
    pub fn secret_filter_digest(&self) -> String {
        let mut per_rule: Vec<(&String, &AllowlistConfig)> = self.file.rule.iter().collect();
        per_rule.sort_by(|a, b| a.0.cmp(b.0));
        let mut h = sha2::Sha256::new();
        let mut add = |a: &AllowlistConfig| {
            for r in &a.regexes {
                h.update(b"r\0");
                h.update(r.as_bytes());
                h.update(b"\0");
            }
            for w in &a.stopwords {
                h.update(b"w\0");
                h.update(w.as_bytes());
                h.update(b"\0");
            }
        };
        add(&self.file.allowlist);
        for (id, a) in per_rule {
            add(&AllowlistConfig {
                paths: Vec::new(),
                regexes: vec![format!("rule {id}")],
                stopwords: Vec::new(),
            });
            add(a);
        }
        hex(&h.finalize())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Suppressions {
    /// Whether the configuration's allowlists drop a secret of rule `rule_id` by its content
    /// (regexes, stopwords), whatever its path.
    pub fn allows_secret(&self, rule_id: &str, secret: &[u8]) -> bool {
        self.global.allows_secret(secret)
            || self
                .per_rule
                .get(rule_id)
                .is_some_and(|a| a.allows_secret(secret))
    }

    /// Builds the filters of a configuration and an optional baseline.
    pub fn new(
        config: &Config,
        baseline: Option<Baseline>,
        gitleaks: GitleaksIgnore,
    ) -> Result<Suppressions> {
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
            gitleaks,
        })
    }

    /// Drops what the allowlists and the baseline cover.
    pub fn apply(&self, findings: &mut Vec<Finding>) -> SuppressionReport {
        let mut report = SuppressionReport::default();
        let mut matched: HashSet<&str> = HashSet::new();
        let today = today();
        findings.retain_mut(|f| {
            let id = f.rule.id.as_str();
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
            let secret_allowed = match &f.what {
                super::What::Secret(secret) => {
                    self.global.allows_secret(secret)
                        || rule_list.is_some_and(|a| a.allows_secret(secret))
                }
                // Checked before it was stored (see `state`).
                super::What::UnsafeCode(_) | super::What::Redacted(_) => false,
            };
            if secret_allowed {
                report.allowlisted += f.locations.len();
                return false;
            }
            let before = f.locations.len();
            f.locations.retain(|l| {
                let path = l.display_path();
                !(self.global.allows_path(&path)
                    || rule_list.is_some_and(|a| a.allows_path(&path))
                    || self.gitleaks.covers(l))
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
    fn other_scanners_markers() {
        assert!(allowed_inline(b"key = 'x' # gitleaks:allow"));
        assert!(allowed_inline(b"key = 'x' // trufflehog:ignore"));
        assert!(allowed_inline(b"key = 'x' # trawl:allow"));
        assert!(!allowed_inline(b"key = 'x' # allow"));
    }

    #[test]
    fn gitleaksignore_lines() {
        let g = GitleaksIgnore::parse(
            "# comment\nsrc/a.py:generic-api-key:3\n0123456789abcdef0123456789abcdef01234567:b/c:d.py:aws-access-token:9\nnonsense\n",
        );
        assert!(g.entries.contains(&(None, "src/a.py".into(), 3)));
        assert!(g.entries.contains(&(
            Some("0123456789abcdef0123456789abcdef01234567".into()),
            "b/c:d.py".into(),
            9
        )));
        assert_eq!(g.entries.len(), 2);
    }

    #[test]
    fn reasons_lose_quoted_values() {
        let r =
            unquoted_reason("invalid type: string \"AKIAQYLPMN5HHHFPZAM2\", expected a sequence");
        assert!(!r.contains("AKIA"), "{r}");
        assert_eq!(
            unquoted_reason("unknown field `files`"),
            "unknown field `files`"
        );
    }

    #[test]
    fn expiry_dates() {
        assert_eq!(parse_day("1970-01-02"), Ok(1));
        assert_eq!(parse_day("2026-11-23"), Ok(20_780));
        assert!(parse_day("next week").is_err());
    }
}
