//! Rules: the rule-file syntax (TOML, serde), compilation into regexes and a keyword table,
//! the built-in rule list, and the checks that run each rule's examples through a scanner.
//!
//! Contract: a [`RuleSet`] is immutable once built; rule ids are unique; every rule's regex is
//! compiled in byte mode (ASCII `\w`, `\b`), with the secret in the capture group `secret`.

mod builtin;
mod check;
mod diagnostics;
mod example_keys;
mod gitleaks;
mod limits;
mod macros;

pub use builtin::BUILTIN_RULE_FILES;
pub use check::{check_rules, RuleCheckFailure};
pub use diagnostics::{RuleError, RuleFileError, RuleFileFormat, RuleFileWarning, RuleWarningKind};
pub use example_keys::is_documented_example;
pub use gitleaks::{is_gitleaks_config, parse_gitleaks};
pub use limits::compile_regex;
use limits::{build_regex, check_syntax, RuleSource};

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use anyhow::Result;
use regex_automata::meta;
use serde::{Deserialize, Serialize};

/// How bad a leak of this kind is. Ordered from least to most severe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing, not a secret on its own.
    Info,
    /// An identifier or a low-impact credential.
    Low,
    /// A credential found by context (keyword rules, generic assignments).
    Medium,
    /// A credential with a distinctive format.
    High,
    /// Root-level cloud credentials and private keys.
    Critical,
}

impl Severity {
    /// The lowercase name used in rule files, flags and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The SARIF `level` for this severity.
    pub fn sarif_level(self) -> &'static str {
        match self {
            Severity::Critical | Severity::High => "error",
            Severity::Medium => "warning",
            Severity::Low | Severity::Info => "note",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Ok(Severity::Info),
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            _ => Err(format!(
                "unknown severity `{s}` (expected critical, high, medium, low or info)"
            )),
        }
    }
}

/// An offline check of a candidate secret's structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Validator {
    /// GitHub/npm tokens: the last 6 characters are the base62 CRC32 of the random part.
    GithubChecksum,
    /// Three base64url parts, the first two JSON objects, the header naming `alg`.
    Jwt,
    /// A PEM block with matching BEGIN/END labels and a base64 body.
    Pem,
    /// Base64 (standard or URL-safe) of a JSON object.
    Base64Json,
}

/// The categories a rule may name.
pub const CATEGORIES: &[&str] = &[
    "ai.model-api",
    "ai.model-registry",
    "ai.vector-db",
    "ai.experiment-tracker",
    "ai.data-platform",
    "cloud",
    "vcs",
    "ci",
    "package-registry",
    "container-registry",
    "messaging",
    "payments",
    "saas",
    "monitoring",
    "database",
    "private-key",
    "jwt",
    "generic",
    "unsafe-code",
];

/// What a rule finds (rule files name it with one of [`CATEGORIES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// Model API keys (OpenAI, Anthropic, …).
    AiModelApi,
    /// Model registries (Hugging Face, …).
    AiModelRegistry,
    /// Vector databases.
    AiVectorDb,
    /// Experiment trackers.
    AiExperimentTracker,
    /// Data platforms.
    AiDataPlatform,
    /// Cloud providers.
    Cloud,
    /// Version control.
    Vcs,
    /// Continuous integration.
    Ci,
    /// Package registries.
    PackageRegistry,
    /// Container registries.
    ContainerRegistry,
    /// Messaging.
    Messaging,
    /// Payments.
    Payments,
    /// Other SaaS.
    Saas,
    /// Monitoring.
    Monitoring,
    /// Database credentials.
    Database,
    /// Private keys.
    PrivateKey,
    /// JSON web tokens.
    Jwt,
    /// Keyword-and-entropy rules, which yield to specific ones.
    Generic,
    /// Findings that are code, not secrets (pickle imports, Keras Lambda layers).
    UnsafeCode,
}

impl Category {
    /// Every category, in the order of [`CATEGORIES`].
    pub const ALL: [Category; 19] = [
        Category::AiModelApi,
        Category::AiModelRegistry,
        Category::AiVectorDb,
        Category::AiExperimentTracker,
        Category::AiDataPlatform,
        Category::Cloud,
        Category::Vcs,
        Category::Ci,
        Category::PackageRegistry,
        Category::ContainerRegistry,
        Category::Messaging,
        Category::Payments,
        Category::Saas,
        Category::Monitoring,
        Category::Database,
        Category::PrivateKey,
        Category::Jwt,
        Category::Generic,
        Category::UnsafeCode,
    ];

    /// The category a rule file names, if it is one of [`CATEGORIES`].
    pub fn parse(name: &str) -> Option<Category> {
        CATEGORIES
            .iter()
            .position(|c| *c == name)
            .map(|i| Category::ALL[i])
    }

    /// The name rule files and reports use.
    pub fn as_str(self) -> &'static str {
        CATEGORIES[self as usize]
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What reports need to know of a rule: findings carry it, so reports never need the scanner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleInfo {
    /// Stable dotted id.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// What it finds.
    pub category: Category,
    /// How bad a finding is.
    pub severity: Severity,
    /// Documentation of the token format.
    pub references: Vec<String>,
    /// Where the owner of a leaked credential revokes or rotates it.
    pub revoke: Option<String>,
    /// How `--verify` checks a secret of this rule, if it can.
    pub verify: Option<Arc<crate::verify::spec::VerifySpec>>,
}

/// A rule file as written: `[[rules]]` entries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// The rules of the file.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

/// One rule as written in a rule file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Stable dotted id, e.g. `huggingface.user-token`.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// One of [`CATEGORIES`].
    pub category: String,
    /// How bad a leak is.
    pub severity: Severity,
    /// The pattern; the secret is the group `secret` (the whole match when absent).
    pub regex: String,
    /// Lowercase keywords; the regex runs only near them.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Minimum Shannon entropy (bits per byte) of the secret.
    pub entropy: Option<f64>,
    /// Offline structural check of the secret.
    pub validate: Option<Validator>,
    /// Bytes after a keyword hit that the regex may reach (default 512).
    pub window: Option<usize>,
    /// Documentation of the token format.
    #[serde(default)]
    pub references: Vec<String>,
    /// Where the owner of a leaked credential revokes or rotates it (a page of the provider).
    pub revoke: Option<String>,
    /// How `--verify` asks the provider whether a secret is live (`[rules.verify]`).
    pub verify: Option<crate::verify::spec::VerifySpec>,
    /// Inputs that must produce a finding of this rule.
    #[serde(default)]
    pub examples: Vec<String>,
    /// Inputs that must not produce a finding of this rule.
    #[serde(default)]
    pub negative_examples: Vec<String>,
    /// Secrets to drop.
    #[serde(default)]
    pub allowlist: AllowlistSpec,
}

/// A rule's allowlist as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowlistSpec {
    /// A secret matching any of these is dropped.
    #[serde(default)]
    pub regexes: Vec<String>,
    /// A secret containing any of these (ASCII case-insensitively) is dropped.
    #[serde(default)]
    pub stopwords: Vec<String>,
}

/// Bytes before a keyword hit that a rule's regex may start at.
pub const WINDOW_BEFORE: usize = 256;
/// Default bytes after a keyword hit that a rule's regex may reach.
pub const WINDOW_AFTER: usize = 512;

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// The rule as written.
    pub spec: RuleSpec,
    /// Where the rule came from (built-in file name or a path).
    pub origin: String,
    /// The macro-expanded pattern, checked at load time and compiled on first use: compiling
    /// every regex up front cost 80 ms of start-up, most of a pre-commit run.
    pattern: String,
    compiled: OnceLock<Option<Compiled>>,
    /// The allowlist's macro-expanded regexes, compiled on first use like `pattern` (those of
    /// a rule file are compiled at load, to report errors there).
    allow_patterns: Vec<String>,
    allow_regexes: OnceLock<Vec<meta::Regex>>,
    pub(crate) stopwords: Vec<Vec<u8>>,
    pub(crate) window_after: usize,
    /// Reported by a decoder (an unsafe pickle import), never matched by a regex.
    pub(crate) synthetic: bool,
    info: Arc<RuleInfo>,
    /// Why the regex failed to build on first use (a size limit), if it did.
    compile_error: OnceLock<String>,
}

/// A rule's compiled regex and the index of its `secret` group (0 = whole match).
#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) regex: meta::Regex,
    pub(crate) secret_group: usize,
}

impl Rule {
    /// A digest of everything that decides this rule's matches: id, expanded regex,
    /// keywords, window, entropy, validator and allowlist (not its name, severity or
    /// references, which reports take from the rule as it is now). The state store keys what
    /// it knows of a blob on it: a changed digest means the blob must be scanned again with
    /// this rule.
    pub fn match_digest(&self) -> String {
        use sha2::Digest;
        let s = &self.spec;
        let mut h = sha2::Sha256::new();
        let mut field = |name: &str, value: &[u8]| {
            h.update(name.as_bytes());
            h.update((value.len() as u64).to_le_bytes());
            h.update(value);
        };
        field("id", s.id.as_bytes());
        field("pattern", self.pattern.as_bytes());
        for k in &s.keywords {
            field("keyword", k.as_bytes());
        }
        field("window", &self.window_after.to_le_bytes());
        field("entropy", format!("{:?}", s.entropy).as_bytes());
        field("validate", format!("{:?}", s.validate).as_bytes());
        for a in &self.allow_patterns {
            field("allow", a.as_bytes());
        }
        for w in &self.stopwords {
            field("stopword", w);
        }
        field("synthetic", &[u8::from(self.synthetic)]);
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The compiled regex, built on first use; `None` when it fails to build (a size limit:
    /// the syntax was checked at load time), reported once on stderr.
    pub(crate) fn compiled(&self) -> Option<&Compiled> {
        self.compiled
            .get_or_init(|| match build_regex(&self.pattern) {
                Ok(regex) => {
                    let secret_group = regex
                        .group_info()
                        .to_index(regex_automata::PatternID::ZERO, "secret")
                        .unwrap_or(0);
                    Some(Compiled {
                        regex,
                        secret_group,
                    })
                }
                Err(e) => {
                    let _ = self.compile_error.set(format!("{e:#}"));
                    None
                }
            })
            .as_ref()
    }

    /// The rule id.
    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// What reports need of the rule.
    pub fn info(&self) -> &Arc<RuleInfo> {
        &self.info
    }

    /// Why the regex could not be built when it was first needed (then the rule found nothing).
    pub fn compile_error(&self) -> Option<&str> {
        self.compile_error.get().map(String::as_str)
    }

    /// A rule whose findings come from a decoder, not from a regex: unsafe imports in pickles,
    /// code-carrying Keras layers.
    pub fn synthetic(id: &str, name: &str, severity: Severity, reference: &str) -> Rule {
        Rule {
            info: Arc::new(RuleInfo {
                id: id.to_string(),
                name: name.to_string(),
                category: Category::UnsafeCode,
                severity,
                references: vec![reference.to_string()],
                revoke: None,
                verify: None,
            }),
            compile_error: OnceLock::new(),
            spec: RuleSpec {
                id: id.to_string(),
                name: name.to_string(),
                category: "unsafe-code".to_string(),
                severity,
                regex: String::new(),
                keywords: Vec::new(),
                entropy: None,
                validate: None,
                window: None,
                references: vec![reference.to_string()],
                revoke: None,
                verify: None,
                examples: Vec::new(),
                negative_examples: Vec::new(),
                allowlist: AllowlistSpec::default(),
            },
            origin: "built-in decoder".to_string(),
            pattern: String::new(),
            compiled: OnceLock::new(),
            allow_patterns: Vec::new(),
            allow_regexes: OnceLock::new(),
            stopwords: Vec::new(),
            window_after: 0,
            synthetic: true,
        }
    }

    /// Whether findings of this rule come from a decoder rather than a regex.
    pub fn is_synthetic(&self) -> bool {
        self.synthetic
    }

    /// Whether the rule is a generic (keyword and entropy) rule, which yields to specific ones.
    pub fn is_generic(&self) -> bool {
        self.info.category == Category::Generic
    }

    /// Whether a candidate secret is dropped by this rule's allowlist.
    pub(crate) fn allowlisted(&self, secret: &[u8]) -> bool {
        self.allow_regexes
            .get_or_init(|| {
                // Built-in patterns are known to compile (a test builds them all).
                self.allow_patterns
                    .iter()
                    .filter_map(|p| build_regex(p).ok())
                    .collect()
            })
            .iter()
            .any(|re| re.is_match(secret))
            || self
                .stopwords
                .iter()
                .any(|w| contains_ignore_ascii_case(secret, w))
    }
}

/// ASCII case-insensitive substring test; `needle` must already be lowercase.
pub(crate) fn contains_ignore_ascii_case(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    if needle.len() > hay.len() {
        return false;
    }
    hay.windows(needle.len()).any(|w| {
        w.iter()
            .zip(needle)
            .all(|(a, b)| a.to_ascii_lowercase() == *b)
    })
}

impl Rule {
    /// Compiles and lints one rule of a rule file, with every regex limit. Errors name the
    /// rule, never its content.
    pub fn compile(spec: RuleSpec, origin: &str) -> Result<Rule, RuleError> {
        Rule::compile_from(spec, origin, RuleSource::File)
    }

    fn compile_from(spec: RuleSpec, origin: &str, source: RuleSource) -> Result<Rule, RuleError> {
        let fail = |reason: String| RuleError {
            rule: spec.id.clone(),
            origin: origin.to_string(),
            reason,
        };
        if spec.id.is_empty()
            || !spec
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        {
            return Err(fail(
                "id must be lowercase letters, digits, `.`, `_` or `-`".to_string(),
            ));
        }
        if let Some(v) = &spec.verify {
            v.check().map_err(&fail)?;
        }
        let Some(category) = Category::parse(&spec.category) else {
            return Err(fail(format!(
                "unknown category (expected one of {})",
                CATEGORIES.join(", ")
            )));
        };
        for (i, k) in spec.keywords.iter().enumerate() {
            if k.len() < 2 {
                return Err(fail(format!("keyword {} is shorter than 2 bytes", i + 1)));
            }
            if k.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(fail(format!("keyword {} must be lowercase", i + 1)));
            }
        }
        let pattern = macros::expand(&spec.regex);
        check_syntax(&pattern, source).map_err(|r| fail(format!("bad regex: {r}")))?;
        let mut allow_patterns = Vec::new();
        let allow_regexes = OnceLock::new();
        let mut built = Vec::new();
        for (i, r) in spec.allowlist.regexes.iter().enumerate() {
            let bad = |reason: String| fail(format!("bad allowlist regex {}: {reason}", i + 1));
            let expanded = macros::expand(r);
            check_syntax(&expanded, source).map_err(bad)?;
            if source != RuleSource::BuiltIn {
                built.push(build_regex(&expanded).map_err(|e| bad(format!("{e:#}")))?);
            }
            allow_patterns.push(expanded);
        }
        if source != RuleSource::BuiltIn {
            let _ = allow_regexes.set(built);
        }
        let stopwords = spec
            .allowlist
            .stopwords
            .iter()
            .map(|w| w.to_ascii_lowercase().into_bytes())
            .collect();
        let window_after = spec.window.unwrap_or(WINDOW_AFTER).clamp(16, 1 << 20);
        Ok(Rule {
            info: Arc::new(RuleInfo {
                id: spec.id.clone(),
                name: spec.name.clone(),
                category,
                severity: spec.severity,
                references: spec.references.clone(),
                revoke: spec.revoke.clone(),
                verify: spec.verify.clone().map(Arc::new),
            }),
            compile_error: OnceLock::new(),
            synthetic: false,
            origin: origin.to_string(),
            pattern,
            compiled: OnceLock::new(),
            allow_patterns,
            allow_regexes,
            stopwords,
            window_after,
            spec,
        })
    }
}

/// Ids of the decoders' rules.
pub const PICKLE_DANGEROUS: &str = "pickle.dangerous-import";
/// A pickle imports a callable outside the safe list.
pub const PICKLE_UNKNOWN: &str = "pickle.unknown-import";
/// A Keras model config holds a `Lambda` layer (code).
pub const KERAS_LAMBDA: &str = "keras.lambda-layer";

fn decoder_rules() -> Vec<Rule> {
    vec![
        Rule::synthetic(
            PICKLE_DANGEROUS,
            "Pickle imports a dangerous callable (code runs on load)",
            Severity::High,
            "https://docs.python.org/3/library/pickle.html#restricting-globals",
        ),
        Rule::synthetic(
            PICKLE_UNKNOWN,
            "Pickle imports a callable outside the safe list",
            Severity::Medium,
            "https://docs.python.org/3/library/pickle.html#restricting-globals",
        ),
        Rule::synthetic(
            KERAS_LAMBDA,
            "Keras model with a Lambda layer (serialized code)",
            Severity::Medium,
            "https://keras.io/api/layers/core_layers/lambda/",
        ),
    ]
}

/// An ordered, id-unique collection of compiled rules.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// The rules' ids, for [`RuleSet::add`]'s uniqueness check.
    taken: HashSet<String>,
}

impl RuleSet {
    /// The built-in rules, compiled, with the decoders' rules.
    pub fn builtin() -> Result<RuleSet> {
        let mut set = RuleSet::default();
        for (name, text) in BUILTIN_RULE_FILES {
            set.add_rules(text, name, RuleSource::BuiltIn)?;
        }
        for rule in decoder_rules() {
            set.add(rule)?;
        }
        Ok(set)
    }

    /// Index of the rule with this id.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.spec.id == id)
    }

    /// Adds the rules of a file in trawl's format or in gitleaks/Betterleaks' format (told
    /// apart by its keys); returns warnings about gitleaks features that do not carry over.
    pub fn add_file(
        &mut self,
        text: &str,
        origin: &str,
    ) -> Result<Vec<RuleFileWarning>, RuleFileError> {
        if !is_gitleaks_config(text) {
            self.add_toml(text, origin)?;
            return Ok(Vec::new());
        }
        let (specs, warnings) = parse_gitleaks(text, origin)?;
        for spec in specs {
            let rule = Rule::compile(spec, origin)
                .map_err(|error| RuleFileError::Rule { line: None, error })?;
            self.add(rule)?;
        }
        Ok(warnings)
    }

    /// Parses a rule file's text in trawl's format and adds its rules.
    pub fn add_toml(&mut self, text: &str, origin: &str) -> Result<(), RuleFileError> {
        self.add_rules(text, origin, RuleSource::File)
    }

    fn add_rules(
        &mut self,
        text: &str,
        origin: &str,
        source: RuleSource,
    ) -> Result<(), RuleFileError> {
        let file: RuleFile = toml::from_str(text)
            .map_err(|e| diagnostics::toml_error(&e, text, origin, RuleFileFormat::Trawl))?;
        let count = file.rules.len();
        for (i, spec) in file.rules.into_iter().enumerate() {
            let rule = Rule::compile_from(spec, origin, source).map_err(|error| {
                let line = diagnostics::rule_lines(text, count)[i];
                RuleFileError::Rule { line, error }
            })?;
            self.add(rule)?;
        }
        Ok(())
    }

    /// Adds a compiled rule; ids must be unique.
    pub fn add(&mut self, rule: Rule) -> Result<(), RuleFileError> {
        if !self.taken.insert(rule.spec.id.clone()) {
            return Err(RuleFileError::DuplicateId {
                origin: rule.origin,
                rule: rule.spec.id,
            });
        }
        self.rules.push(rule);
        Ok(())
    }

    /// Drops the verifiers of the rules `which` selects (rules from a file the scanned tree
    /// named: a repository must not choose where its secrets are sent); returns their ids.
    pub fn drop_verifiers(&mut self, which: impl Fn(&Rule) -> bool) -> Vec<String> {
        let mut dropped = Vec::new();
        for rule in &mut self.rules {
            if rule.spec.verify.is_some() && which(rule) {
                rule.spec.verify = None;
                let mut info = (*rule.info).clone();
                info.verify = None;
                rule.info = Arc::new(info);
                dropped.push(rule.spec.id.clone());
            }
        }
        dropped
    }

    /// Keeps only the rules `keep` accepts.
    pub fn retain(&mut self, keep: impl FnMut(&Rule) -> bool) {
        self.rules.retain(keep);
        self.taken = self.rules.iter().map(|r| r.spec.id.clone()).collect();
    }

    /// The rules in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Ids of all rules.
    pub fn ids(&self) -> HashSet<&str> {
        self.rules.iter().map(|r| r.spec.id.as_str()).collect()
    }
}

#[cfg(test)]
mod category_tests {
    use super::{Category, CATEGORIES};

    #[test]
    fn every_category_name_round_trips() {
        assert_eq!(Category::ALL.len(), CATEGORIES.len());
        for (i, name) in CATEGORIES.iter().enumerate() {
            let c = Category::parse(name).unwrap();
            assert_eq!(c as usize, i);
            assert_eq!(c.as_str(), *name);
        }
        assert_eq!(Category::Generic.as_str(), "generic");
        assert_eq!(Category::UnsafeCode.as_str(), "unsafe-code");
        assert_eq!(Category::parse("nope"), None);
    }
}

#[cfg(test)]
mod builtin_tests {
    use super::RuleSet;

    /// Built-in patterns are not parsed at load (see `check_syntax`): this is their check.
    #[test]
    fn builtin_regexes_all_compile() {
        let set = RuleSet::builtin().unwrap();
        for rule in set.rules() {
            if rule.is_synthetic() {
                continue;
            }
            assert!(
                rule.compiled().is_some(),
                "{}: {:?}",
                rule.id(),
                rule.compile_error()
            );
        }
    }
}
