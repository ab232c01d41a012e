//! Documented example credentials (`rules/data/example-keys.toml`): dropped by value in the
//! lines people paste them in, while a key of the same shape in the same line is still found.

use std::collections::BTreeSet;

use crate::util::{scanner, Fake};

/// Realistic lines holding every listed value, as the documentation prints them.
const LINES: &[(&str, &[&str])] = &[
    (
        "AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
        &["Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="],
    ),
    (
        "az storage container create -n models --account-name devstoreaccount1 --account-key Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
        &["Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="],
    ),
    (
        "COSMOS_CONNECTION=AccountEndpoint=https://localhost:8081/;AccountKey=C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==;",
        &["C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="],
    ),
    (
        "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
        &["AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"],
    ),
    (
        "[user1]\naws_access_key_id=AKIAI44QH8DHBEXAMPLE\naws_secret_access_key=je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY\n",
        &["AKIAI44QH8DHBEXAMPLE", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"],
    ),
    (
        "aws_access_key_id = 022QF06E7MXBSH9DHM02\naws_secret_access_key = kWcrlUX5JEDGM/LtmEENI/aVmYvHNif5zB+d9+ct\n",
        &["022QF06E7MXBSH9DHM02", "kWcrlUX5JEDGM/LtmEENI/aVmYvHNif5zB+d9+ct"],
    ),
    (
        "const stripe = require('stripe')('sk_test_4eC39HqLyjWDarjtT1zdp7dc'); const pk = 'pk_test_TYooMQauvdEDq54NiTphI7jx';",
        &["sk_test_4eC39HqLyjWDarjtT1zdp7dc", "pk_test_TYooMQauvdEDq54NiTphI7jx"],
    ),
    (
        "curl https://api.stripe.com/v1/charges -u sk_test_BQokikJOvBiI2HlWgH4olfQ2:",
        &["sk_test_BQokikJOvBiI2HlWgH4olfQ2"],
    ),
    (
        "curl -s --user 'api:key-3ax6xnjp29jd6fds4gc373sgvjxteol0' https://api.mailgun.net/v3/samples.mailgun.org/messages",
        &["key-3ax6xnjp29jd6fds4gc373sgvjxteol0"],
    ),
    (
        r#"{"access_token":"2YotnFZFEjr1zCsicMWpAA","token_type":"example","expires_in":3600,"refresh_token":"tGzv3JOkF0XG5Qx2TlKWIA"}"#,
        &["2YotnFZFEjr1zCsicMWpAA", "tGzv3JOkF0XG5Qx2TlKWIA"],
    ),
];

/// Prefixes that give a value its shape; they stay when the rest is redrawn.
const PREFIXES: &[&str] = &["AKIA", "sk_test_", "pk_test_", "key-"];

/// `value` with every letter and digit after its prefix redrawn from the same class (digits
/// stay digits, capitals stay capitals), so the result has the documented value's shape.
fn same_shape(value: &str, fake: &mut Fake) -> String {
    let keep = PREFIXES
        .iter()
        .find(|p| value.starts_with(**p))
        .map_or(0, |p| p.len());
    let (prefix, rest) = value.split_at(keep);
    let aws_id = prefix == "AKIA";
    let redrawn: String = rest
        .bytes()
        .map(|b| {
            let class: &[u8] = match b {
                // An access key id is base32: its digits are 2-7.
                b'0'..=b'9' if aws_id => b"234567",
                b'0'..=b'9' => b"0123456789",
                b'A'..=b'Z' => b"ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                b'a'..=b'z' => b"abcdefghijklmnopqrstuvwxyz",
                _ => return b as char,
            };
            fake.string(class, 1).as_bytes()[0] as char
        })
        .collect();
    format!("{prefix}{redrawn}")
}

#[test]
fn documented_example_keys_are_dropped_and_keys_of_their_shape_are_found() {
    let s = scanner();
    let mut worker = s.worker();
    let mut fake = Fake::new(0x5eed_cafe);
    for (line, values) in LINES {
        let found = worker.scan(line.as_bytes());
        let reported: Vec<String> = found
            .iter()
            .map(|m| {
                let secret = String::from_utf8_lossy(&line.as_bytes()[m.secret_span.clone()]);
                format!("{} {secret}", s.rule(m.rule).id())
            })
            .collect();
        assert!(reported.is_empty(), "{line:?} reported {reported:?}");

        let mut random = line.to_string();
        let mut drawn = Vec::new();
        for v in *values {
            let other = same_shape(v, &mut fake);
            assert_eq!(other.len(), v.len());
            random = random.replace(v, &other);
            drawn.push(other);
        }
        let found = worker.scan(random.as_bytes());
        let secrets: Vec<&[u8]> = found
            .iter()
            .map(|m| &random.as_bytes()[m.secret_span.clone()])
            .collect();
        assert!(
            drawn.iter().any(|d| secrets
                .iter()
                .any(|s| d.as_bytes().starts_with(s.trim_ascii_end()) && s.len() >= 16)),
            "a key of the same shape is not found in {random:?} (found {:?})",
            secrets
                .iter()
                .map(|s| String::from_utf8_lossy(s))
                .collect::<Vec<_>>()
        );
    }
}

#[derive(serde::Deserialize)]
struct ExampleKeysFile {
    keys: Vec<toml::Value>,
}

fn listed_values() -> Vec<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/data/example-keys.toml");
    let text = std::fs::read_to_string(path).expect("read example-keys.toml");
    let file: ExampleKeysFile = toml::from_str(&text).expect("example-keys.toml parses");
    file.keys
        .iter()
        .map(|k| {
            let field = |name: &str| {
                k.get(name)
                    .and_then(toml::Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            (field("value"), field("source"))
        })
        .collect()
}

#[test]
fn every_example_key_cites_a_source_url() {
    let keys = listed_values();
    assert!(!keys.is_empty());
    for (value, source) in &keys {
        assert!(!value.is_empty(), "an entry without a value");
        assert!(
            source.starts_with("https://") || source.starts_with("http://"),
            "{value}: source {source:?} is not a URL"
        );
        let host = source.split("://").nth(1).unwrap_or_default();
        assert!(host.contains('.') && host.len() > 4, "{value}: {source:?}");
    }
}

#[test]
fn every_example_key_is_tried_in_a_realistic_line() {
    let tried: BTreeSet<&str> = LINES.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    for (value, _) in listed_values() {
        assert!(
            tried.contains(value.as_str()),
            "{value}: add a line holding it to LINES"
        );
    }
}
