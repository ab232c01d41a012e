//! Every encoding found, located at its encoded bytes and marked with its chain; binary
//! decodings and `data:` URIs left alone; hostile shapes decoded in linear work.

use std::sync::OnceLock;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;

use super::runs::{candidates, decode, Kind};
use super::*;
use crate::content::test_rng::XorShift;
use crate::content::{scan_content, Limits};
use crate::findings::Placed;
use crate::rules::RuleSet;
use crate::scan::Scanner;

fn scanner() -> &'static Scanner {
    static SCANNER: OnceLock<Scanner> = OnceLock::new();
    SCANNER.get_or_init(|| Scanner::new(RuleSet::builtin().expect("rules")).expect("scanner"))
}

/// The placed findings of `text` and the work counted.
fn scan_text(text: &[u8]) -> (Vec<Placed>, crate::scan::Work) {
    let mut worker = scanner().worker();
    let placed = scan_content(&mut worker, text, &Limits::default()).placed;
    (placed, worker.work())
}

fn rule_id(p: &Placed) -> &str {
    scanner().rule(p.rule).id()
}

fn random(rng: &mut XorShift, alphabet: &[u8], n: usize) -> String {
    (0..n)
        .map(|_| char::from(alphabet[rng.below(alphabet.len())]))
        .collect()
}

const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const BASE64_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn hf_token(rng: &mut XorShift) -> String {
    format!("hf_{}", random(rng, LETTERS, 34))
}

fn aws_secret(rng: &mut XorShift) -> String {
    random(rng, BASE64_CHARS, 40)
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The one decoded finding of `text`: its rule, chain, secret, and where it is.
fn the_decoded(text: &str) -> Placed {
    let (placed, _) = scan_text(text.as_bytes());
    let decoded: Vec<&Placed> = placed
        .iter()
        .filter(|p| p.extra.decoded.is_some())
        .collect();
    assert_eq!(decoded.len(), 1, "{text}\n{placed:#?}");
    decoded[0].clone()
}

/// Asserts `p` is `secret` found by `rule` through `chain`, placed inside `encoded`, which sits
/// on line `line` of `text`, and that its snippet shows the encoded bytes, not the secret.
fn assert_found(text: &str, p: &Placed, rule: &str, chain: &str, secret: &str, encoded: &str) {
    assert_eq!(rule_id(p), rule, "{p:#?}");
    assert_eq!(p.extra.decoded.as_deref(), Some(chain));
    assert_eq!(String::from_utf8_lossy(&p.secret), secret);
    let at = text
        .find(encoded)
        .expect("the encoded text is in the input");
    let line = 1 + text[..at].matches('\n').count();
    let column = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    let pos = p.position.expect("a position");
    assert_eq!(pos.line, line, "{pos:?}");
    assert!(
        pos.column >= column && pos.end_column <= column + encoded.len(),
        "{pos:?} outside columns {column}..{}",
        column + encoded.len()
    );
    assert!(p.offset >= at && p.offset < at + encoded.len());
    let shown = &p.snippet[p.snippet_secret.clone()];
    assert!(encoded.as_bytes().windows(shown.len()).any(|w| w == shown));
    let snippet = String::from_utf8_lossy(&p.snippet);
    assert!(!snippet.contains(secret), "{snippet}");
}

#[test]
fn base64_standard_in_a_kubernetes_secret() {
    let mut rng = XorShift(1101);
    let (key_id, secret) = (
        format!("AKIA{}", random(&mut rng, UPPER_DIGITS, 16)),
        aws_secret(&mut rng),
    );
    let (id64, secret64) = (STANDARD.encode(&key_id), STANDARD.encode(&secret));
    let text = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: aws\ntype: Opaque\ndata:\n  \
         AWS_ACCESS_KEY_ID: {id64}\n  AWS_SECRET_ACCESS_KEY: {secret64}\n"
    );
    let (placed, _) = scan_text(text.as_bytes());
    let find = |rule: &str| {
        placed
            .iter()
            .find(|p| rule_id(p) == rule)
            .unwrap_or_else(|| panic!("{rule} in {placed:#?}"))
    };
    let id = find("aws.access-key-id");
    assert_found(&text, id, "aws.access-key-id", "base64", &key_id, &id64);
    let sk = find("aws.secret-access-key");
    assert_found(
        &text,
        sk,
        "aws.secret-access-key",
        "base64",
        &secret,
        &secret64,
    );
    // The generic raw match of the base64 value gives way to the decoded secret.
    assert_eq!(placed.len(), 2, "{placed:#?}");
}

#[test]
fn base64_url_safe() {
    // Seeds until the URL-safe encoding uses `-` or `_`.
    let mut rng = XorShift(1102);
    // (Letters and `=` never make `-` or `_`; `?` and `~` can.)
    let (token, encoded) = loop {
        let token = hf_token(&mut rng);
        let pad = " ".repeat(rng.below(3));
        let encoded = URL_SAFE_NO_PAD.encode(format!("{pad}token={token}; ok?~>"));
        if encoded.contains(['-', '_']) {
            break (token, encoded);
        }
    };
    let text = format!("x = 1\nblob = \"{encoded}\"\n");
    let p = the_decoded(&text);
    assert_found(
        &text,
        &p,
        "huggingface.user-token",
        "base64",
        &token,
        &encoded,
    );
}

#[test]
fn hex_encoding() {
    let mut rng = XorShift(1103);
    let token = hf_token(&mut rng);
    let encoded = hex(&token);
    let text = format!("# settings\n\n  \"token\": \"{encoded}\",\n");
    let p = the_decoded(&text);
    assert_found(&text, &p, "huggingface.user-token", "hex", &token, &encoded);
    // Exactly the encoded bytes of the token: two hex digits per byte.
    assert_eq!(p.snippet_secret.len(), 2 * token.len());
}

#[test]
fn percent_encoding() {
    let mut rng = XorShift(1104);
    let token = hf_token(&mut rng);
    let encoded = format!(
        "https://hub.acme.io/login?next=%2Fhome&t=hf%5F{}",
        &token[3..]
    );
    let text = format!("see\n<a href=\"{encoded}\">login</a>\n");
    let p = the_decoded(&text);
    assert_found(
        &text,
        &p,
        "huggingface.user-token",
        "percent",
        &token,
        &encoded,
    );
    let shown = String::from_utf8_lossy(&p.snippet[p.snippet_secret.clone()]).into_owned();
    assert!(shown.starts_with("hf%5F"), "{shown}");
}

#[test]
fn unicode_escapes() {
    let mut rng = XorShift(1105);
    let token = hf_token(&mut rng);
    let escaped: String = token[..6]
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    let encoded = format!("{escaped}{}", &token[6..]);
    let text = format!("{{\n  \"hub\": \"{encoded}\"\n}}\n");
    let p = the_decoded(&text);
    assert_found(
        &text,
        &p,
        "huggingface.user-token",
        "escape",
        &token,
        &encoded,
    );
}

#[test]
fn hex_escapes() {
    let mut rng = XorShift(1106);
    let token = hf_token(&mut rng);
    let encoded: String = token.bytes().map(|b| format!("\\x{b:02x}")).collect();
    let text = format!("KEY = b\"{encoded}\"\n");
    let p = the_decoded(&text);
    assert_found(
        &text,
        &p,
        "huggingface.user-token",
        "escape",
        &token,
        &encoded,
    );
}

#[test]
fn two_levels() {
    let mut rng = XorShift(1107);
    let token = hf_token(&mut rng);
    // Base64 of a JSON document holding the token hex-encoded, and one holding it escaped.
    let inner = STANDARD.encode(format!("{{\"hub_token\": \"{}\"}}", hex(&token)));
    let text = format!("config: {inner}\n");
    let p = the_decoded(&text);
    assert_found(
        &text,
        &p,
        "huggingface.user-token",
        "base64+hex",
        &token,
        &inner,
    );
    let escaped: String = token.bytes().map(|b| format!("\\x{b:02x}")).collect();
    let inner = STANDARD.encode(format!("{{\"hub_token\": \"{escaped}\"}}"));
    let text = format!("config: {inner}\n");
    let p = the_decoded(&text);
    assert_found(
        &text,
        &p,
        "huggingface.user-token",
        "base64+escape",
        &token,
        &inner,
    );
}

#[test]
fn three_levels_are_not_decoded() {
    let mut rng = XorShift(1108);
    let token = hf_token(&mut rng);
    let once = STANDARD.encode(format!("t={token}"));
    let twice = STANDARD.encode(format!("blob: {once}"));
    let thrice = STANDARD.encode(format!("blob: {twice}"));
    assert_eq!(
        the_decoded(&format!("x: {twice}\n"))
            .extra
            .decoded
            .as_deref(),
        Some("base64+base64")
    );
    let (placed, _) = scan_text(format!("x: {thrice}\n").as_bytes());
    assert!(placed.is_empty(), "{placed:#?}");
}

#[test]
fn jwt_payload_carrying_keys() {
    let mut rng = XorShift(1109);
    let secret = aws_secret(&mut rng);
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"sub":"ci","aws_secret_access_key":"{secret}","iat":1718000000}}"#
    ));
    let sig = URL_SAFE_NO_PAD.encode(random(&mut rng, LETTERS, 32));
    let jwt = format!("{header}.{payload}.{sig}");
    let text = format!("SESSION={jwt}\n");
    let (placed, _) = scan_text(text.as_bytes());
    let p = placed
        .iter()
        .find(|p| p.extra.decoded.is_some())
        .unwrap_or_else(|| panic!("{placed:#?}"));
    assert_found(
        &text,
        p,
        "aws.secret-access-key",
        "base64",
        &secret,
        &payload,
    );
    // The token itself is still reported, raw.
    assert!(placed
        .iter()
        .any(|p| rule_id(p) == "jwt.token" || p.secret == jwt.as_bytes()));
}

#[test]
fn docker_config_auth() {
    let mut rng = XorShift(1110);
    let password = format!(
        "{}7#{}",
        random(&mut rng, LETTERS, 10),
        random(&mut rng, LETTERS, 6)
    );
    let auth = STANDARD.encode(format!("ci-pusher:{password}"));
    let text = format!(
        "{{\n  \"auths\": {{\n    \"registry.acme.io\": {{\n      \"auth\": \"{auth}\"\n    }}\n  }}\n}}\n"
    );
    let p = the_decoded(&text);
    assert_found(&text, &p, "docker.config-auth", "base64", &password, &auth);
}

#[test]
fn basic_auth_is_reported_once_raw_unless_a_specific_token_is_inside() {
    let mut rng = XorShift(1111);
    let password = format!(
        "{}4!{}",
        random(&mut rng, LETTERS, 9),
        random(&mut rng, LETTERS, 7)
    );
    let basic = STANDARD.encode(format!("svc-ci:{password}"));
    let text = format!("curl -H 'Authorization: Basic {basic}' https://nexus.acme.io\n");
    let (placed, _) = scan_text(text.as_bytes());
    assert_eq!(placed.len(), 1, "{placed:#?}");
    assert_eq!(rule_id(&placed[0]), "generic.authorization-basic");
    assert!(placed[0].extra.decoded.is_none());
    // A token as the password: its own rule, decoded, instead of the generic header match.
    let token = hf_token(&mut rng);
    let basic = STANDARD.encode(format!("svc-ci:{token}"));
    let text = format!("curl -H 'Authorization: Basic {basic}' https://nexus.acme.io\n");
    let p = the_decoded(&text);
    assert_found(
        &text,
        &p,
        "huggingface.user-token",
        "base64",
        &token,
        &basic,
    );
    assert_eq!(scan_text(text.as_bytes()).0.len(), 1);
}

#[test]
fn inline_allow_covers_decoded_findings() {
    let mut rng = XorShift(1112);
    let encoded = hex(&hf_token(&mut rng));
    let (placed, _) = scan_text(format!("t = \"{encoded}\"  # trawl:allow\n").as_bytes());
    assert!(placed.is_empty(), "{placed:#?}");
}

/// No decoded finding, and nothing decoded at all when `nothing_decoded`.
fn assert_no_decoded(text: &[u8]) {
    let (placed, _) = scan_text(text);
    assert!(
        placed.iter().all(|p| p.extra.decoded.is_none()),
        "{placed:#?}"
    );
}

#[test]
fn binary_and_data_uris_are_not_decoded() {
    let mut rng = XorShift(1113);
    let binary: Vec<u8> = (0..3000).map(|_| rng.next() as u8).collect();
    // A PNG as a data: URI, whatever it holds (here text naming a key).
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(format!("aws_secret_access_key = {}", aws_secret(&mut rng)).as_bytes());
    let uri = format!(
        "<img src=\"data:image/png;base64,{}\">\n",
        STANDARD.encode(&png)
    );
    assert_no_decoded(uri.as_bytes());
    let text_uri = format!(
        "x = \"data:text/plain;base64,{}\"\n",
        STANDARD.encode(format!("aws_secret_access_key = {}", aws_secret(&mut rng)))
    );
    assert_no_decoded(text_uri.as_bytes());
    // A PEM body of DER bytes, and a long random base64 blob.
    let body = STANDARD.encode(&binary[..1200]);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    );
    assert_no_decoded(pem.as_bytes());
    assert_no_decoded(format!("blob = \"{}\"\n", STANDARD.encode(&binary)).as_bytes());
    // Git SHAs and digests.
    let digests: Vec<String> = (0..50)
        .map(|i| {
            let h = random(
                &mut rng,
                b"0123456789abcdef",
                if i % 2 == 0 { 40 } else { 64 },
            );
            format!("commit {h}\nsha256:{h}\n")
        })
        .collect();
    assert_no_decoded(digests.concat().as_bytes());
}

#[test]
fn minified_code_decodes_nothing() {
    let mut rng = XorShift(1114);
    let idents: Vec<String> = (0..2000)
        .map(|_| {
            let n = 16 + rng.below(20);
            random(
                &mut rng,
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_0123456789",
                n,
            )
        })
        .collect();
    let js: String = idents
        .chunks(2)
        .map(|c| {
            format!(
                "function {}(a,b){{return a.{}(b)}};",
                c[0],
                c.get(1).unwrap_or(&c[0])
            )
        })
        .collect();
    let mut worker = scanner().worker();
    let mut raw = worker.scan(js.as_bytes());
    assert!(scan(&mut worker, js.as_bytes(), &mut raw).is_empty());
    let level = build_level(js.as_bytes(), &[(0..js.len(), "")], &mut 0);
    assert!(level.pieces.is_empty(), "{:?}", &level.pieces[..1]);
}

#[test]
fn runs_are_split_by_kind() {
    let hay =
        b"a=QUJDREVGR0hJSktMTU5PUA== h=0123456789abcdef0123456789abcdef u=x%2Fy \"\\u0041bc\"";
    let mut out = Vec::new();
    candidates(hay, 0..hay.len(), &mut out);
    let kinds: Vec<(Kind, &[u8])> = out
        .iter()
        .map(|c| (c.kind, &hay[c.range.clone()]))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (Kind::Base64, &b"QUJDREVGR0hJSktMTU5PUA=="[..]),
            (Kind::Hex, b"0123456789abcdef0123456789abcdef"),
            (Kind::Percent, b"u=x%2Fy"),
            (Kind::Escape, b"\\u0041bc"),
        ]
    );
}

#[test]
fn random_escapes_and_runs_never_panic() {
    // Inputs made of the bytes the runs and escapes are made of, cut anywhere.
    let mut rng = XorShift(1115);
    let alphabet = b"\\uxUX%=+/-_09afAFdD8 \"'\n.";
    let mut worker = scanner().worker();
    for n in 0..3000 {
        let len = n % 64;
        let text: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        let mut raw = worker.scan(&text);
        let hits = scan(&mut worker, &text, &mut raw);
        place(&text, &raw, &hits, &mut 0);
        let (mut out, mut table) = (Vec::new(), Vec::new());
        for kind in [Kind::Base64, Kind::Hex, Kind::Percent, Kind::Escape] {
            decode(kind, &text, &mut out, &mut table);
        }
    }
    // A high surrogate at the very end, and one followed by a short escape.
    let (mut out, mut table) = (Vec::new(), Vec::new());
    for s in [
        &b"\\ud83d"[..],
        b"\\ud83d\\u",
        b"\\ud83d\\ude0",
        b"\\ud83d\\ude00",
    ] {
        decode(Kind::Escape, s, &mut out, &mut table);
    }
    assert_eq!(out, "\u{1f600}".as_bytes());
}

/// Issue 11: a 10 MB line of base64 of base64 of … is decoded two levels deep, each at most
/// the size of what it decodes, and the work counted stays a small multiple of the input.
#[test]
fn nested_base64_line_decodes_in_linear_work() {
    let mut text = b"aws_secret_access_key = r8eA2pTa3683mPtQJdWKYwZOQEtw8CMe92VaYUiD".to_vec();
    while text.len() < 10 << 20 {
        text = STANDARD.encode(&text).into_bytes();
    }
    let (_, work) = scan_text(&text);
    let len = text.len() as u64;
    assert!(work.decoded >= len, "{work:?}");
    assert!(
        work.decoded <= 8 * len,
        "{} bytes for {len}: {work:?}",
        work.decoded
    );
    // Many short runs that each decode to text: context copied stays bounded too.
    let piece = format!("{} ", STANDARD.encode("plain text!!"));
    let line = piece.repeat((2 << 20) / piece.len());
    let (_, work) = scan_text(line.as_bytes());
    assert!(work.decoded <= 8 * line.len() as u64, "{work:?}");
}

#[test]
fn the_skipping_run_finder_finds_every_word_run_a_byte_walk_finds() {
    // Word runs of every length around the shortest candidate, at every alignment, between
    // separators: the candidates are exactly the base64 runs of 14+ word bytes (16 with
    // padding) and nothing shorter.
    let mut rng = XorShift(77);
    let word = b"AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/";
    for n in 0..2000 {
        let mut text = Vec::new();
        let mut expected = Vec::new();
        for _ in 0..1 + n % 5 {
            text.extend(std::iter::repeat_n(b' ', 1 + rng.below(20)));
            let len = 10 + rng.below(10);
            let start = text.len();
            // A `z` first: never a hex run.
            text.push(b'z');
            text.extend((1..len).map(|_| word[rng.below(word.len())]));
            let pad = rng.below(3);
            text.extend(std::iter::repeat_n(b'=', pad));
            if len + pad.min(2) >= 16 {
                expected.push(start..start + len + pad);
            }
        }
        text.extend(std::iter::repeat_n(b' ', rng.below(3)));
        let mut found = Vec::new();
        candidates(&text, 0..text.len(), &mut found);
        let found: Vec<_> = found.into_iter().map(|c| c.range).collect();
        assert_eq!(found, expected, "{:?}", String::from_utf8_lossy(&text));
    }
}
