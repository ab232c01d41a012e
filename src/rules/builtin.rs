//! The built-in rule files, embedded in the binary. Every `rules/*.toml` file must be listed
//! here; a test fails otherwise.

/// `(file name, contents)` of every built-in rule file.
pub const BUILTIN_RULE_FILES: &[(&str, &str)] = &[
    ("huggingface.toml", include_str!("../../rules/huggingface.toml")),
];
