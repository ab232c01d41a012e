//! The import policy: which callables a pickle may import.
//!
//! The tables (blocklist by family, allowlists, module aliases) are data in
//! `rules/data/pickle-policy.toml`, embedded in the binary and parsed once; the rules that are
//! logic rather than lists (dotted suffixes, dunders, storage types, sklearn classes) are here.
//! A malformed embedded file is a programming error that a unit test catches; at run time it
//! degrades to an empty policy (every import [`ImportVerdict::Unknown`] unless it is
//! indirection), never to a panic.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use super::ImportVerdict;

pub(super) const CODE: &str = "code execution";
pub(super) const PROCESS: &str = "process execution";
pub(super) const INDIRECTION: &str = "indirection";
pub(super) const NESTED: &str = "nested loading";
pub(super) const FILES: &str = "file system";
pub(super) const NETWORK: &str = "network";

/// The families a blocklist entry may name, as [`ImportVerdict::Dangerous`] carries them.
const FAMILIES: [&str; 6] = [CODE, PROCESS, INDIRECTION, NESTED, FILES, NETWORK];

const POLICY_TOML: &str = include_str!("../../../rules/data/pickle-policy.toml");

/// `rules/data/pickle-policy.toml` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    aliases: BTreeMap<String, String>,
    blocked: BTreeMap<String, Vec<String>>,
    allow: AllowFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowFile {
    dunder_exempt: Vec<String>,
    allowed: Vec<String>,
    torch_dtypes: Vec<String>,
    estimators: Vec<String>,
    sklearn_excluded: Vec<String>,
}

/// The policy, ready for look-ups.
#[derive(Debug, Default)]
struct Policy {
    /// (alias, canonical module).
    aliases: Vec<(String, String)>,
    /// (dotted path prefix, family); the longest matching prefix decides.
    blocked: Vec<(String, &'static str)>,
    /// Dunder names that honest pickles of protocol 0/1 may import.
    dunder_exempt: Vec<String>,
    /// Exact `module.name` paths that honest checkpoints import.
    allowed: Vec<String>,
    /// Torch dtype objects, pickled as `torch.<name>`.
    torch_dtypes: Vec<String>,
    /// Explicit estimator helpers (joblib wrappers, sklearn and scipy reconstructors).
    estimators: Vec<String>,
    /// Modules under `sklearn.` whose classes are not estimators.
    sklearn_excluded: Vec<String>,
}

/// Parses and checks the policy text: known families, no prefix in two families.
fn parse_policy(text: &str) -> Result<Policy, String> {
    let file: PolicyFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut blocked: Vec<(String, &'static str)> = Vec::new();
    for (family, prefixes) in file.blocked {
        let Some(&family) = FAMILIES.iter().find(|&&f| f == family) else {
            return Err(format!("unknown family {family:?}"));
        };
        for prefix in prefixes {
            if blocked.iter().any(|(p, _)| *p == prefix) {
                return Err(format!("{prefix:?} is blocked twice"));
            }
            blocked.push((prefix, family));
        }
    }
    let allow = file.allow;
    Ok(Policy {
        aliases: file.aliases.into_iter().collect(),
        blocked,
        dunder_exempt: allow.dunder_exempt,
        allowed: allow.allowed,
        torch_dtypes: allow.torch_dtypes,
        estimators: allow.estimators,
        sklearn_excluded: allow.sklearn_excluded,
    })
}

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| parse_policy(POLICY_TOML).unwrap_or_default())
}

/// The verdict for one imported callable (module, qualified name).
///
/// In order:
/// 1. **Blocklist** by family, matched on dotted path prefixes of `module.name` (so `os` blocks
///    `os.path.join` and `torch.jit` blocks `torch.jit.load`), with module aliases folded
///    (`__builtin__` → `builtins`, `_pickle`/`cPickle` → `pickle`, `_io` → `io`, ...). A dotted
///    name is also matched from each of its segments, because attribute lookup can walk into
///    another module (`torch` + `serialization.pickle.loads`). Asyncio paths naming a subprocess
///    count as process execution.
/// 2. A dunder segment in the name (`OrderedDict.__init__.__globals__`) is indirection, except
///    `copyreg.__newobj__`/`__newobj_ex__`.
/// 3. **Allowlist** (single-segment names only): torch tensor/storage rebuild functions, storage
///    types, dtypes, layouts and memory formats, `torch.device`/`Size`/`Parameter`,
///    `torch.nn.modules.*` classes, `collections.OrderedDict` and friends, numpy array and scalar
///    reconstruction, dtypes, `_codecs.encode`, plain builtins types, `datetime`/`decimal` values
///    and `argparse.Namespace`.
/// 4. **Estimators**, a separate list: explicit joblib/scipy/sklearn helpers, and any
///    capitalised class under `sklearn.` (except `sklearn.externals` and test utilities). Building
///    such an object runs `__new__` and `__setstate__` only; callables stored in its parameters
///    are imports of their own and judged separately.
/// 5. Everything else, `copyreg._reconstructor` included, is [`ImportVerdict::Unknown`].
pub fn judge(module: &str, name: &str) -> ImportVerdict {
    let policy = policy();
    let module = policy.canonical_module(module);
    let path = format!("{module}.{name}");
    let mut family = policy.blocked(&path);
    if name.contains('.') {
        let starts = std::iter::once(0).chain(name.match_indices('.').map(|(i, _)| i + 1));
        for start in starts {
            let suffix = &name[start..];
            let (head, tail) = suffix.split_once('.').unwrap_or((suffix, ""));
            let folded = policy.canonical_module(head);
            let candidate = if tail.is_empty() {
                folded.into_owned()
            } else {
                format!("{folded}.{tail}")
            };
            family = family.or_else(|| policy.blocked(&candidate));
        }
    }
    if let Some(family) = family {
        return ImportVerdict::Dangerous(family);
    }
    if name.split('.').any(is_dunder) && !policy.dunder_exempt.contains(&path) {
        return ImportVerdict::Dangerous(INDIRECTION);
    }
    if !name.contains('.')
        && (policy.is_allowlisted(&module, name, &path)
            || policy.is_estimator(&module, name, &path))
    {
        return ImportVerdict::Safe;
    }
    ImportVerdict::Unknown
}

impl Policy {
    /// Folds module aliases (Python 2 names, C accelerator modules) onto one spelling.
    fn canonical_module<'m>(&self, module: &'m str) -> Cow<'m, str> {
        for (alias, canonical) in &self.aliases {
            if let Some(rest) = module.strip_prefix(alias.as_str()) {
                if rest.is_empty() || rest.starts_with('.') {
                    return format!("{canonical}{rest}").into();
                }
            }
        }
        module.into()
    }

    /// The family of the longest blocklist prefix of `path`, if any.
    fn blocked(&self, path: &str) -> Option<&'static str> {
        let mut best: Option<(usize, &'static str)> = None;
        for (rule, family) in &self.blocked {
            if is_segment_prefix(path, rule) && best.is_none_or(|(len, _)| rule.len() > len) {
                best = Some((rule.len(), *family));
            }
        }
        let asyncio = is_segment_prefix(path, "asyncio");
        if best.is_none() && asyncio && path.to_ascii_lowercase().contains("subprocess") {
            return Some(PROCESS);
        }
        best.map(|(_, family)| family)
    }

    fn is_allowlisted(&self, module: &str, name: &str, path: &str) -> bool {
        if self.allowed.iter().any(|p| p == path) {
            return true;
        }
        match module {
            "torch._utils" => name.starts_with("_rebuild_"),
            "torch" => self.torch_dtypes.iter().any(|d| d == name) || is_storage_type(name),
            "torch.cuda" | "torch.storage" => is_storage_type(name),
            "numpy.dtypes" => name.ends_with("DType") && is_identifier(name),
            _ => module.starts_with("torch.nn.modules.") && is_class_name(name),
        }
    }

    fn is_estimator(&self, module: &str, name: &str, path: &str) -> bool {
        if self.estimators.iter().any(|p| p == path) {
            return true;
        }
        let sklearn = is_segment_prefix(module, "sklearn");
        let excluded = self
            .sklearn_excluded
            .iter()
            .any(|prefix| is_segment_prefix(module, prefix));
        sklearn && !excluded && is_class_name(name)
    }
}

/// True when `prefix` is `path` or a run of its leading dotted segments.
fn is_segment_prefix(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

fn is_dunder(segment: &str) -> bool {
    segment.len() > 4 && segment.starts_with("__") && segment.ends_with("__")
}

fn is_storage_type(name: &str) -> bool {
    name.ends_with("Storage") && is_identifier(name)
}

pub(super) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_class_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase()) && is_identifier(s)
}

#[cfg(test)]
mod policy_file {
    use super::*;

    #[test]
    fn embedded_policy_parses() {
        let policy = parse_policy(POLICY_TOML).expect("rules/data/pickle-policy.toml");
        assert!(policy.blocked.len() > 100);
        assert!(!policy.allowed.is_empty() && !policy.aliases.is_empty());
        for family in FAMILIES {
            assert!(policy.blocked.iter().any(|(_, f)| *f == family), "{family}");
        }
    }

    #[test]
    fn malformed_policy_is_an_error_not_a_panic() {
        assert!(parse_policy("[blocked]\n\"magic\" = [\"x\"]").is_err());
        assert!(parse_policy("not toml").is_err());
        let twice = POLICY_TOML.replace("\"sqlite3\",", "\"sqlite3\",\n\"socket\",");
        assert!(parse_policy(&twice).unwrap_err().contains("twice"));
    }
}
