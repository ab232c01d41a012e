//! Secret checks after a regex match: entropy, offline validators, the global placeholder
//! filter and base64 `data:` URI detection (the identifier and coordinate filters of generic
//! rules are in [`super::names`]).

use std::sync::OnceLock;

use aho_corasick::AhoCorasick;
use base64::Engine;

use crate::rules::Validator;

/// Shannon entropy of `s` in bits per byte.
pub fn shannon_entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[b as usize] += 1;
    }
    let len = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / len;
            -p * p.log2()
        })
        .sum()
}

/// Runs an offline validator on a candidate secret.
pub fn validate(v: Validator, secret: &[u8]) -> bool {
    match v {
        Validator::GithubChecksum => github_checksum(secret),
        Validator::Jwt => jwt(secret),
        Validator::Pem => pem(secret),
        Validator::Base64Json => decode_base64_any(secret)
            .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
            .is_some_and(|v| v.is_object()),
    }
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn base62_value(b: u8) -> Option<u64> {
    BASE62.iter().position(|&c| c == b).map(|p| p as u64)
}

/// GitHub's token format: `<prefix>_<random><checksum>`, where the checksum is the last six
/// characters, the base62 encoding of the CRC32 of the random part.
pub fn github_checksum(secret: &[u8]) -> bool {
    let body = match secret.iter().rposition(|&b| b == b'_') {
        Some(i) => &secret[i + 1..],
        None => secret,
    };
    if body.len() <= 6 || !body.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let (random, check) = body.split_at(body.len() - 6);
    let mut value = 0u64;
    for &b in check {
        match base62_value(b) {
            Some(d) => value = value * 62 + d,
            None => return false,
        }
    }
    value == u64::from(crc32fast::hash(random))
}

fn decode_base64_any(s: &[u8]) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(s).ok())
}

fn jwt(secret: &[u8]) -> bool {
    let parts: Vec<&[u8]> = secret.split(|&b| b == b'.').collect();
    if parts.len() != 3 {
        return false;
    }
    let mut objects = parts[..2].iter().map(|p| {
        decode_base64_any(p).and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
    });
    let header = objects.next().flatten();
    let payload = objects.next().flatten();
    matches!((header, payload), (Some(h), Some(p)) if h.get("alg").is_some() && p.is_object())
}

fn pem(secret: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(secret) else {
        return false;
    };
    // Keys embedded in JSON, YAML or code strings carry escaped line breaks.
    let unescaped;
    let text = if text.contains("\\n") {
        unescaped = text.replace("\\r\\n", "\n").replace("\\n", "\n");
        unescaped.trim()
    } else {
        text.trim()
    };
    let Some(rest) = text.strip_prefix("-----BEGIN ") else {
        return false;
    };
    let Some(label_end) = rest.find("-----") else {
        return false;
    };
    let label = &rest[..label_end];
    let end_marker = format!("-----END {label}-----");
    let Some(body) = rest[label_end + 5..].strip_suffix(end_marker.as_str()) else {
        return false;
    };
    let mut base64_len = 0;
    // Keys pasted into source keep their decoration: string literals (`"MIIE...\n"` per
    // line) and comment markers (`// MIIE...`, `# MIIE...`, ` * MIIE...`).
    let decoration = |c: char| c.is_whitespace() || "\"'/#*;".contains(c);
    for line in body.lines().map(|l| {
        l.trim_start_matches(decoration)
            .trim_end_matches(decoration)
    }) {
        // Armor headers (`Proc-Type:`, `DEK-Info:`, `Version:`) and PGP checksums (`=abcd`).
        if line.is_empty() || line.contains(':') || (line.starts_with('=') && line.len() <= 5) {
            continue;
        }
        if !line
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        {
            return false;
        }
        base64_len += line.len();
    }
    base64_len >= 64
}

const PLACEHOLDER_WORDS: &[&[u8]] = &[
    b"example",
    b"xxxx",
    b"****",
    b"...",
    "\u{2026}".as_bytes(),
    b"<",
    b">",
    b"${",
    b"{{",
    b"%(",
    b"$(",
    b"your_",
    b"your-",
    b"yourkey",
    b"placeholder",
    b"changeme",
    b"redacted",
    b"dummy",
    b"insert",
    b"replace_me",
    b"sample",
    b"notreal",
    b"fake_",
];

/// Secrets longer than this are structured blobs (PEM bodies, JWTs) where runs of a character
/// are normal, so the run checks do not apply to them.
const RUN_CHECK_MAX_LEN: usize = 128;

/// One case-insensitive automaton over the placeholder words, built once.
fn placeholder_words() -> &'static AhoCorasick {
    static WORDS: OnceLock<AhoCorasick> = OnceLock::new();
    WORDS.get_or_init(|| {
        AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(PLACEHOLDER_WORDS)
            .expect("placeholder words build an automaton")
    })
}

/// Whether a candidate secret is a documented example, a template or a redacted value.
pub fn is_placeholder(secret: &[u8]) -> bool {
    if placeholder_words().is_match(secret) || is_bracketed_name(secret) {
        return true;
    }
    if secret.len() > RUN_CHECK_MAX_LEN {
        return false;
    }
    let mut seen = [false; 256];
    let mut distinct = 0;
    for &b in secret {
        if !seen[b as usize] {
            seen[b as usize] = true;
            distinct += 1;
        }
    }
    if distinct <= 1 || (secret.len() > 8 && distinct < 4) {
        return true;
    }
    let (mut same, mut ascending) = (1, 1);
    for w in secret.windows(2) {
        same = if w[1] == w[0] { same + 1 } else { 1 };
        ascending = if w[1] == w[0].wrapping_add(1) && w[0].is_ascii_alphanumeric() {
            ascending + 1
        } else {
            1
        };
        if same >= 6 || ascending >= 6 {
            return true;
        }
    }
    false
}

/// A name in brackets, as documentation and templates write the value to fill in:
/// `[PASSWORD]`, `{password}`, `{{ token }}`, `(api key)`, `[YOUR_TOKEN]`. The inside is a
/// word or a few, with no digits mixed into letters of both cases, so that a password that
/// happens to start and end with brackets (`[Tr0ub4dor&3]`) is not taken for one.
fn is_bracketed_name(secret: &[u8]) -> bool {
    const PAIRS: [(u8, u8); 4] = [(b'[', b']'), (b'{', b'}'), (b'(', b')'), (b'<', b'>')];
    let (Some(&first), Some(&last)) = (secret.first(), secret.last()) else {
        return false;
    };
    let Some(&(open, close)) = PAIRS.iter().find(|p| **p == (first, last)) else {
        return false;
    };
    let mut inner = secret;
    while inner.len() >= 2 && inner[0] == open && inner[inner.len() - 1] == close {
        inner = &inner[1..inner.len() - 1];
    }
    let inner = inner.trim_ascii();
    if inner.is_empty() || inner.len() > 64 || !inner[0].is_ascii_alphabetic() {
        return false;
    }
    if !inner
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b" _-.:".contains(&b))
    {
        return false;
    }
    let has = |f: fn(&u8) -> bool| inner.iter().any(f);
    !(has(u8::is_ascii_digit) && has(u8::is_ascii_lowercase) && has(u8::is_ascii_uppercase))
}

fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
}

/// The run of base64 bytes a candidate was last found in, remembered per input so that a long
/// run is walked once however many candidates it holds.
#[derive(Debug, Default, Clone, Copy)]
pub struct Base64Run {
    /// Where the run starts (the byte before it is not base64).
    start: usize,
    /// How far the run is known to reach: `start..known` are all base64 bytes.
    known: usize,
    /// Whether the run is the payload of a `data:<mime>;base64,` URI.
    data_uri: bool,
}

/// Whether `at` lies inside the payload of a base64 `data:` URI. `seen` remembers the run
/// looked at last: candidates come in increasing order (per rule), so the walk back from each
/// stops where the previous one's began, and every byte is looked at once. The bytes looked
/// at are added to `work`.
pub fn in_data_uri(hay: &[u8], at: usize, seen: &mut Option<Base64Run>, work: &mut u64) -> bool {
    let known = seen.filter(|run| run.start <= at);
    let floor = known.map_or(0, |run| run.known.min(at));
    let mut start = at;
    while start > floor && is_base64_byte(hay[start - 1]) {
        start -= 1;
    }
    *work += (at - start) as u64 + 1;
    let run = match known {
        // Walked back into the known run: the same run, and the same verdict.
        Some(run) if start == floor => Base64Run {
            known: run.known.max(at),
            ..run
        },
        _ => Base64Run {
            start,
            known: at,
            data_uri: data_uri_marker(hay, start, work),
        },
    };
    *seen = Some(run);
    run.data_uri
}

/// Whether a base64 run starting at `start` follows `data:<mime>;base64,`, with a short MIME
/// type before the marker.
pub(crate) fn data_uri_marker(hay: &[u8], start: usize, work: &mut u64) -> bool {
    const MARKER: &[u8] = b";base64,";
    *work += MARKER.len() as u64;
    if start < MARKER.len() || &hay[start - MARKER.len()..start] != MARKER {
        return false;
    }
    let head_from = start.saturating_sub(MARKER.len() + 128);
    *work += (start - MARKER.len() - head_from) as u64;
    let head = &hay[head_from..start - MARKER.len()];
    memchr::memmem::rfind(head, b"data:").is_some_and(|data| {
        head[data + 5..]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"/+.-;=".contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_of_known_strings() {
        assert_eq!(shannon_entropy(b"aaaa"), 0.0);
        assert!((shannon_entropy(b"abcd") - 2.0).abs() < 1e-9);
    }

    #[test]
    fn github_checksum_accepts_valid_and_rejects_changed() {
        // A random 30-character body with its CRC32 appended in base62.
        let body = b"Zq3xW9pLm2Rt7YvBn4Kc8Hd1Jf6Gs0";
        let mut crc = u64::from(crc32fast::hash(body));
        let mut check = [b'0'; 6];
        for slot in check.iter_mut().rev() {
            *slot = BASE62[(crc % 62) as usize];
            crc /= 62;
        }
        let token = [b"ghp_".as_slice(), body, &check].concat();
        assert!(github_checksum(&token));
        let mut bad = token.clone();
        bad[10] = if bad[10] == b'a' { b'b' } else { b'a' };
        assert!(!github_checksum(&bad));
    }

    #[test]
    fn placeholders() {
        assert!(is_placeholder(b"AKIAIOSFODNN7EXAMPLE"));
        assert!(is_placeholder(b"sk-...abcd"));
        assert!(is_placeholder(b"aaaaaaaaaaaaaaaa"));
        assert!(is_placeholder(b"abcabcabcabcabc"));
        assert!(is_placeholder(b"key123456789"));
        assert!(is_placeholder(b"<your-key>"));
        assert!(!is_placeholder(b"Zq3xW9pLm2Rt7YvB"));
    }

    #[test]
    fn bracketed_names_are_placeholders() {
        for p in [
            "[PASSWORD]",
            "[TOKEN]",
            "{password}",
            "{{ token }}",
            "<password>",
            "(api key)",
            "[YOUR_TOKEN]",
            "[db-password]",
            "{S3_SECRET_KEY}",
            "****",
            "...",
        ] {
            assert!(is_placeholder(p.as_bytes()), "{p}");
        }
        for secret in [
            "[Tr0ub4dor&3]",
            "{Zq3xW9pLm2Rt7YvB}",
            "[k9#Lm2!x]",
            "(Gx7b2Lp9Qw)",
        ] {
            assert!(!is_placeholder(secret.as_bytes()), "{secret}");
        }
    }

    #[test]
    fn data_uri() {
        let hay = b"<img src=\"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB\">";
        let at = memchr::memmem::find(hay, b"AAAAEAAA").unwrap();
        assert!(in_data_uri(hay, at, &mut None, &mut 0));
        assert!(!in_data_uri(
            b"token=iVBORw0KGgoAAAANSUhEUg",
            8,
            &mut None,
            &mut 0
        ));
        // One remembered run across candidates, as a scan of one input asks.
        let hay = b"a=data:text/plain;base64,QUFB/QkJC/Q0ND b=QUFB/QkJC c=data:x;base64,RA";
        let at = |s: &[u8], from: usize| from + memchr::memmem::find(&hay[from..], s).unwrap();
        let mut seen = None;
        let first = at(b"QUFB", 0);
        let in_uri = [first, at(b"QkJC", 0), at(b"Q0ND", 0), first + 2];
        for a in in_uri {
            assert!(in_data_uri(hay, a, &mut seen, &mut 0), "{a}");
        }
        let b = at(b"b=", 0) + 2;
        for a in [b, at(b"QkJC", b), b + 1] {
            assert!(!in_data_uri(hay, a, &mut seen, &mut 0), "{a}");
        }
        assert!(in_data_uri(hay, hay.len() - 1, &mut seen, &mut 0));
        assert!(
            in_data_uri(hay, first + 1, &mut seen, &mut 0),
            "back to an earlier run"
        );
    }

    #[test]
    fn pem_framing() {
        let body = "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\nKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ==\n";
        let good = format!("-----BEGIN RSA PRIVATE KEY-----\n{body}-----END RSA PRIVATE KEY-----");
        assert!(pem(good.as_bytes()));
        let bad = format!("-----BEGIN RSA PRIVATE KEY-----\n{body}-----END EC PRIVATE KEY-----");
        assert!(!pem(bad.as_bytes()));
        let escaped = good.replace('\n', "\\n");
        assert!(pem(escaped.as_bytes()));
        // As C string literals, one per line.
        let c_strings: String = good.lines().map(|l| format!("\"{l}\\n\"\n    ")).collect();
        assert!(
            pem(c_strings.trim().trim_matches('"').as_bytes()),
            "{c_strings}"
        );
        let commented: String = good.lines().map(|l| format!("// {l}\n")).collect();
        assert!(
            pem(commented.trim_start_matches("// ").trim().as_bytes()),
            "{commented}"
        );
    }
}
