//! Credentials that providers publish in their documentation (emulator keys, sample keys of API
//! references), dropped by value for every rule.
//!
//! The list is data in `rules/data/example-keys.toml`, each value with the page that publishes
//! it, embedded in the binary and parsed on the first look-up (a scan that confirms no candidate
//! never parses it). A malformed embedded file is a programming error that a unit test catches;
//! at run time it degrades to an empty list, never to a panic.

use std::collections::HashSet;
use std::sync::OnceLock;

use serde::Deserialize;

const EXAMPLE_KEYS_TOML: &str = include_str!("../../rules/data/example-keys.toml");

/// `rules/data/example-keys.toml` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExampleKeysFile {
    keys: Vec<ExampleKey>,
}

/// One documented credential. Only `value` is looked up; the rest is the record that the tests
/// check and readers follow.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(test), allow(dead_code))]
struct ExampleKey {
    /// The exact value, as the documentation prints it.
    value: String,
    /// Whose credential format it is.
    provider: String,
    /// What the value is, in a few words.
    what: String,
    /// The documentation page that publishes the value.
    source: String,
    /// Other pages that print it.
    #[serde(default)]
    also: Vec<String>,
}

fn parse(text: &str) -> Result<ExampleKeysFile, toml::de::Error> {
    toml::from_str(text)
}

/// Base64 padding is left out of the comparison: a rule may capture a key with or without it.
fn unpadded(value: &[u8]) -> &[u8] {
    let end = value.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    &value[..end]
}

fn values() -> &'static HashSet<Box<[u8]>> {
    static VALUES: OnceLock<HashSet<Box<[u8]>>> = OnceLock::new();
    VALUES.get_or_init(|| {
        parse(EXAMPLE_KEYS_TOML)
            .map(|file| {
                file.keys
                    .iter()
                    .map(|k| unpadded(k.value.as_bytes()).into())
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Whether `secret` is a credential that a provider publishes in its documentation.
pub fn is_documented_example(secret: &[u8]) -> bool {
    // Every listed value is at least this long: shorter candidates skip the set (and its
    // parsing) altogether.
    const SHORTEST: usize = 16;
    secret.len() >= SHORTEST && values().contains(unpadded(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_file_parses_and_every_entry_cites_its_source() {
        let file = parse(EXAMPLE_KEYS_TOML).expect("rules/data/example-keys.toml");
        assert!(file.keys.len() >= 10, "{} entries", file.keys.len());
        let mut seen = HashSet::new();
        for k in &file.keys {
            assert!(
                k.value.len() >= 16 && !k.value.trim().is_empty(),
                "{}: value shorter than the look-up's floor",
                k.value
            );
            assert_eq!(k.value.trim(), k.value, "{}: white space", k.value);
            assert!(!k.provider.trim().is_empty(), "{}: no provider", k.value);
            assert!(!k.what.trim().is_empty(), "{}: no description", k.value);
            for url in std::iter::once(&k.source).chain(&k.also) {
                assert!(
                    url.starts_with("https://") || url.starts_with("http://"),
                    "{}: source {url:?} is not a URL",
                    k.value
                );
                assert!(url.len() > "https://x.y".len(), "{}: empty source", k.value);
            }
            assert!(seen.insert(&k.value), "{}: listed twice", k.value);
            assert!(is_documented_example(k.value.as_bytes()), "{}", k.value);
        }
    }

    #[test]
    fn matches_whole_values_with_or_without_padding() {
        let azurite = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
        assert!(is_documented_example(azurite.as_bytes()));
        assert!(is_documented_example(
            azurite.trim_end_matches('=').as_bytes()
        ));
        assert!(!is_documented_example(&azurite.as_bytes()[1..]));
        assert!(!is_documented_example(format!("x{azurite}").as_bytes()));
        assert!(is_documented_example(b"sk_test_4eC39HqLyjWDarjtT1zdp7dc"));
        assert!(!is_documented_example(b"sk_test_4eC39HqLyjWDarjtT1zdp7dC"));
        assert!(!is_documented_example(b"===="));
        assert!(!is_documented_example(b""));
    }
}
