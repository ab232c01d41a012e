//! Engine behaviour through the library: validators, placeholders, windows, overlaps.

use crate::util::{scanner, Fake};

fn ids(text: &str) -> Vec<String> {
    let s = scanner();
    let mut w = s.worker();
    w.scan(text.as_bytes())
        .iter()
        .map(|m| s.rule(m.rule).id().to_string())
        .collect()
}

fn secrets(text: &str) -> Vec<(String, String)> {
    let s = scanner();
    let mut w = s.worker();
    w.scan(text.as_bytes())
        .iter()
        .map(|m| {
            (
                s.rule(m.rule).id().to_string(),
                text[m.secret_span.clone()].to_string(),
            )
        })
        .collect()
}

#[test]
fn github_token_with_a_wrong_checksum_is_not_reported() {
    let mut f = Fake::new(7);
    let good = f.github_token("ghp_");
    assert_eq!(
        ids(&format!("GITHUB_TOKEN={good}\n")),
        ["github.personal-access-token"]
    );
    // Change one character of the random part: the checksum no longer matches.
    let mut bad: Vec<u8> = good.clone().into_bytes();
    bad[8] = if bad[8] == b'Q' { b'R' } else { b'Q' };
    let bad = String::from_utf8(bad).unwrap();
    assert!(ids(&format!("GITHUB_TOKEN={bad}\n")).is_empty());
    // And a wrong checksum on its own.
    let wrong = format!("{}000000", &good[..good.len() - 6]);
    assert!(ids(&format!("token: {wrong}\n")).is_empty());
}

#[test]
fn documented_aws_example_keys_are_not_reported() {
    let text = "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n\
                aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n";
    assert!(ids(text).is_empty(), "{:?}", ids(text));
}

#[test]
fn aws_pair_is_reported() {
    let mut f = Fake::new(11);
    let id = format!("AKIA{}", f.string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16));
    let secret = f.string(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+",
        40,
    );
    let text = format!("[default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n");
    let found = secrets(&text);
    assert!(
        found.contains(&("aws.access-key-id".into(), id.clone())),
        "{found:?}"
    );
    assert!(
        found.contains(&("aws.secret-access-key".into(), secret.clone())),
        "{found:?}"
    );
}

#[test]
fn tokens_deep_inside_large_inputs_are_found_once_each() {
    let mut f = Fake::new(3);
    let t1 = f.hf_token();
    let t2 = f.hf_token();
    let mut text = "let x = 1; // filler line with key and token words\n".repeat(100_000);
    text.push_str(&format!("HF_TOKEN={t1}\n"));
    text.push_str(&"y".repeat(3_000_000));
    text.push_str(&format!(" {t2} {t2}\n"));
    let found = secrets(&text);
    let hf: Vec<_> = found
        .iter()
        .filter(|(r, _)| r == "huggingface.user-token")
        .collect();
    assert_eq!(hf.len(), 3, "{found:?}");
}

#[test]
fn keyword_context_reaches_across_notations() {
    let mut f = Fake::new(5);
    let key = f.alnum(40);
    for text in [
        format!("COHERE_API_KEY={key}"),
        format!("cohere_api_key: \"{key}\""),
        format!("const COHERE_API_KEY: string = \"{key}\";"),
        format!("co = cohere.Client(api_key=\"{key}\")"),
    ] {
        assert!(
            secrets(&text)
                .iter()
                .any(|(r, s)| r.starts_with("cohere.") && s == &key),
            "not found in {text}: {:?}",
            secrets(&text)
        );
    }
}

#[test]
fn base64_images_in_data_uris_are_not_reported() {
    // Random base64 that happens to contain token-like runs, inside a data: URI.
    let mut f = Fake::new(9);
    let payload = format!(
        "{}AKIA{}{}",
        f.alnum(200),
        f.string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16),
        f.alnum(200)
    );
    let html = format!("<img src=\"data:image/png;base64,{payload}\">\n");
    assert!(ids(&html).is_empty(), "{:?}", ids(&html));
    let bare = format!(
        "key = AKIA{}\n",
        f.string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
    );
    assert!(!ids(&bare).is_empty());
}

#[test]
fn placeholders_and_variable_references_are_not_reported() {
    for text in [
        "OPENAI_API_KEY=sk-...",
        "OPENAI_API_KEY=<your-key>",
        "api_key = os.environ[\"OPENAI_API_KEY\"]",
        "token: ${{ secrets.GITHUB_TOKEN }}",
        "password = \"${DB_PASSWORD}\"",
        "HF_TOKEN=hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "password: \"********\"",
    ] {
        assert!(ids(text).is_empty(), "{text}: {:?}", ids(text));
    }
}

#[test]
fn a_specific_rule_hides_the_generic_rule_on_the_same_secret() {
    let mut f = Fake::new(13);
    let tok = f.github_token("ghp_");
    let found = ids(&format!("token = \"{tok}\"\n"));
    assert_eq!(found, ["github.personal-access-token"]);
}

#[test]
fn hostile_regex_input_stays_linear() {
    // Long runs of keyword-dense text: every byte is near a keyword hit.
    let text = "password=token=secret=api_key=".repeat(200_000);
    let start = std::time::Instant::now();
    let _ = ids(&text);
    // Not a timing assertion on speed: a generous bound that only catches blow-ups.
    assert!(start.elapsed().as_secs() < 60);
}
