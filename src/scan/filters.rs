//! Secret checks after a regex match: entropy, offline validators, the global placeholder
//! filter, the identifier and coordinate filters of generic rules, and base64 `data:` URI
//! detection.

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

/// Words that name credentials, or what code keeps about them. A value made of such words
/// (`openai-api-key-prod`, `X-CSRF-TOKEN`, `csrfmiddlewaretoken`) names a secret; it is not one.
const NAME_WORDS: &[&str] = &[
    "access",
    "account",
    "admin",
    "api",
    "apikey",
    "auth",
    "authenticity",
    "authorization",
    "base",
    "bearer",
    "client",
    "config",
    "confirmation",
    "cookie",
    "credential",
    "credentials",
    "csrf",
    "current",
    "dev",
    "env",
    "expires",
    "expiry",
    "field",
    "form",
    "hash",
    "header",
    "hint",
    "id",
    "input",
    "jwt",
    "key",
    "keys",
    "label",
    "login",
    "master",
    "middleware",
    "name",
    "new",
    "oauth",
    "old",
    "param",
    "pass",
    "passphrase",
    "passwd",
    "password",
    "private",
    "prod",
    "production",
    "public",
    "pwd",
    "refresh",
    "reset",
    "salt",
    "secret",
    "secrets",
    "session",
    "signing",
    "staging",
    "test",
    "title",
    "token",
    "tokens",
    "user",
    "username",
    "value",
    "var",
    "version",
    "webhook",
    "xsrf",
];

/// Separators of identifiers, dotted paths, header names and coordinates.
fn is_name_separator(b: u8) -> bool {
    matches!(b, b'_' | b'-' | b'.' | b':')
}

/// The words of one separator-free segment, split at case changes (`accessTokenExpiresAt` →
/// `access`, `Token`, `Expires`, `At`; `HTTPServer` → `HTTP`, `Server`) and between letters
/// and digits.
fn camel_words(segment: &[u8]) -> Vec<&[u8]> {
    let mut words = Vec::new();
    let mut start = 0;
    for i in 1..segment.len() {
        let (prev, cur) = (segment[i - 1], segment[i]);
        let next = segment.get(i + 1).copied();
        let boundary = (prev.is_ascii_lowercase() && cur.is_ascii_uppercase())
            || (prev.is_ascii_uppercase()
                && cur.is_ascii_uppercase()
                && next.is_some_and(|n| n.is_ascii_lowercase()))
            || prev.is_ascii_digit() != cur.is_ascii_digit();
        if boundary {
            words.push(&segment[start..i]);
            start = i;
        }
    }
    words.push(&segment[start..]);
    words
}

fn is_name_word(word: &[u8]) -> bool {
    NAME_WORDS
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w.as_bytes()))
}

/// Whether a word reads as one: a listed name word, a short acronym (`CSRF`, `HTTP`), or
/// letters with a vowel and no run of five consonants. Random strings cut at case changes
/// give words like `Tm`, `Rxywb`, `Kul` that mostly fail this.
fn is_wordlike(word: &[u8]) -> bool {
    if word.iter().all(u8::is_ascii_digit) {
        return word.len() <= 4;
    }
    if word.len() == 1 || is_name_word(word) || holds_credential_word(word) {
        return true;
    }
    if word.len() <= 4 && word.iter().all(u8::is_ascii_uppercase) {
        return true;
    }
    let vowel = |b: &u8| b"aeiouAEIOU".contains(b);
    let soft = |b: &u8| vowel(b) || matches!(b, b'y' | b'Y');
    let mut run = 0;
    for b in word {
        run = if soft(b) { 0 } else { run + 1 };
        if run >= 5 {
            return false;
        }
    }
    // Two-letter words (`At`, `Id`, `By`) may lean on a `y`; longer ones need a vowel.
    if word.len() == 2 {
        word.iter().any(soft)
    } else {
        word.iter().any(vowel)
    }
}

/// Whether a candidate is an identifier rather than a secret: `user_password_hash`,
/// `accessTokenExpiresAt`, `SECRET_KEY_BASE`, `X-CSRF-TOKEN`, `openai-api-key-prod`,
/// `csrfmiddlewaretoken`, `secret.label.title`. For generic rules only, whose values have no
/// shape of their own.
///
/// snake_case, camelCase and PascalCase names of two words or more are identifiers by their
/// shape; words joined by `-`, `.` or `:`, and single words, only when one of them names a
/// credential (so that a passphrase like `correct-horse-battery-staple` stays a secret).
/// Digits inside a segment (`Tr0ub4dor`, `g3LqrQRB`) are never part of an identifier.
pub fn is_identifier(secret: &[u8]) -> bool {
    if secret.len() < 3 || secret.len() > 100 || !secret[0].is_ascii_alphabetic() {
        return false;
    }
    if !secret
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || is_name_separator(b))
    {
        return false;
    }
    let mut words = Vec::new();
    let mut camel = false;
    for segment in secret.split(|&b| is_name_separator(b)) {
        if segment.is_empty() {
            continue;
        }
        let split = camel_words(segment);
        // Digits only end a segment (`oauth2`, `ApiKeyV2`); inside one (`Tr0ub4dor`,
        // `g3LqrQRB`) they make it a secret.
        if split[..split.len() - 1]
            .iter()
            .any(|w| w[0].is_ascii_digit())
        {
            return false;
        }
        camel |= split.iter().filter(|w| w[0].is_ascii_alphabetic()).count() > 1;
        words.extend(split);
    }
    let letters: Vec<&[u8]> = words
        .iter()
        .copied()
        .filter(|w| w[0].is_ascii_alphabetic())
        .collect();
    if letters.is_empty()
        || letters.iter().filter(|w| w.len() == 1).count() > 1
        || !words.iter().all(|w| is_wordlike(w))
    {
        return false;
    }
    // Identifiers are made of words; random mixed case cuts into short pieces and capital runs.
    let letter_count: usize = letters.iter().map(|w| w.len()).sum();
    let all_caps = !secret.iter().any(u8::is_ascii_lowercase);
    let acronyms = letters
        .iter()
        .filter(|w| w.len() > 1 && w.iter().all(u8::is_ascii_uppercase))
        .count();
    if letter_count < 3 * letters.len() || (!all_caps && acronyms > 1) {
        return false;
    }
    if !all_caps && secret.iter().any(u8::is_ascii_uppercase) {
        // Mixed case: a one-letter word only at either end (`getX`, `X-Api-Key`), and
        // two-letter words from the short list or acronyms.
        let inner = letters.len().saturating_sub(2);
        if letters.iter().skip(1).take(inner).any(|w| w.len() == 1) {
            return false;
        }
        // Numbers are versions (`ApiKeyV2`, `tokenV3`) or follow a name word (`Key2`).
        let numbered = words.windows(2).filter(|p| p[1][0].is_ascii_digit());
        if numbered
            .into_iter()
            .any(|p| !(p[0].eq_ignore_ascii_case(b"v") || is_name_word(p[0])))
            || words[0][0].is_ascii_digit()
        {
            return false;
        }
        let odd_pair = |w: &&[u8]| {
            w.len() == 2
                && !w.iter().all(u8::is_ascii_uppercase)
                && !SHORT_WORDS
                    .iter()
                    .any(|s| w.eq_ignore_ascii_case(s.as_bytes()))
        };
        if letters.iter().any(odd_pair) {
            return false;
        }
        // Letter statistics of English words, outside acronyms: about two letters in five are
        // vowels and few are j, k, q, v, w, x, z; in random letters one in five and one in four.
        let (mut total, mut vowels, mut rare) = (0, 0, 0);
        for w in letters
            .iter()
            .filter(|w| !w.iter().all(u8::is_ascii_uppercase) || w.len() == 1)
        {
            for b in w.iter().map(u8::to_ascii_lowercase) {
                total += 1;
                vowels += usize::from(b"aeiou".contains(&b));
                rare += usize::from(b"jkqvwxz".contains(&b));
            }
        }
        if vowels * 4 < total || rare * 5 > total {
            return false;
        }
    }
    let snake = secret.contains(&b'_') && letters.len() > 1;
    if snake || camel {
        return true;
    }
    if letters.iter().any(|w| is_name_word(w)) {
        return true;
    }
    // One word: a name when it holds a credential word (`csrfmiddlewaretoken`).
    letters.len() == 1 && letters[0].len() > 8 && holds_credential_word(letters[0])
}

/// Whether a word runs a credential word into others (`csrfmiddlewaretoken`).
fn holds_credential_word(word: &[u8]) -> bool {
    ["token", "password", "secret", "csrf", "apikey", "passwd"]
        .iter()
        .any(|w| {
            word.windows(w.len())
                .any(|x| x.eq_ignore_ascii_case(w.as_bytes()))
        })
}

/// Two-letter words of identifiers. In mixed case, random strings cut into many two-letter
/// pieces (`Ih`, `Tm`); identifiers use few, and these.
const SHORT_WORDS: &[&str] = &[
    "an", "as", "at", "be", "by", "db", "do", "go", "id", "if", "in", "io", "is", "me", "my", "no",
    "of", "ok", "on", "or", "to", "ui", "up", "us", "we",
];

/// Whether a candidate is a dependency coordinate or a versioned name: `artifact-1.2.3`,
/// `com.example:api-key-client:1.4.2`, `password-hasher@4.2.0`, `left-pad@^1.3.0`,
/// `requests==2.31.0`, `google-cloud-secret-manager-2.16.1`. A name, a separator (`-`, `_`,
/// `:`, `/`, `@`, `@^`, `@~`, `==`, `>=`, `~=`), then a version: three numbers or more, or two
/// when the name has parts of its own (`group:artifact:1.2`), with qualifiers (`-SNAPSHOT`,
/// `.RELEASE`, `-beta.1`, `+build5`) after it.
pub fn is_version_coordinate(secret: &[u8]) -> bool {
    if !secret.first().is_some_and(u8::is_ascii_alphabetic) {
        return false;
    }
    for i in 1..secret.len() {
        if !secret[i].is_ascii_digit() || secret[i - 1].is_ascii_digit() || secret[i - 1] == b'.' {
            continue;
        }
        let Some(numbers) = version_numbers(&secret[i..]) else {
            continue;
        };
        let mut name = &secret[..i];
        if name.len() > 1
            && matches!(name.last(), Some(b'v' | b'V'))
            && !name[name.len() - 2].is_ascii_alphanumeric()
        {
            name = &name[..name.len() - 1];
        }
        let Some(name) = strip_coordinate_separator(name) else {
            continue;
        };
        if name.is_empty()
            || !name[0].is_ascii_alphabetic()
            || !name
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"_-.:/@".contains(&b))
        {
            continue;
        }
        let has = |f: fn(&u8) -> bool| name.iter().any(f);
        if has(u8::is_ascii_digit) && has(u8::is_ascii_lowercase) && has(u8::is_ascii_uppercase) {
            return false;
        }
        let parts = name.iter().any(|&b| b"_-.:/@".contains(&b));
        return numbers >= 3 || (numbers == 2 && parts);
    }
    false
}

/// The name part of a coordinate without its trailing separator, if it ends in one.
fn strip_coordinate_separator(name: &[u8]) -> Option<&[u8]> {
    for sep in [
        &b"@^"[..],
        b"@~",
        b"==",
        b">=",
        b"~=",
        b"@",
        b"-",
        b"_",
        b":",
        b"/",
    ] {
        if let Some(rest) = name.strip_suffix(sep) {
            return Some(rest);
        }
    }
    None
}

/// How many dotted numbers `tail` starts with (`2.16.1` → 3), if it is a version to its end:
/// at least two numbers, then only qualifiers (`-SNAPSHOT`, `.RELEASE`, `-rc.1`, `+build5`).
fn version_numbers(tail: &[u8]) -> Option<usize> {
    let mut numbers = 0;
    let mut i = 0;
    loop {
        let start = i;
        while i < tail.len() && tail[i].is_ascii_digit() {
            i += 1;
        }
        if i == start || i - start > 8 {
            return None;
        }
        numbers += 1;
        if i + 1 < tail.len() && tail[i] == b'.' && tail[i + 1].is_ascii_digit() && numbers < 4 {
            i += 1;
            continue;
        }
        break;
    }
    if numbers < 2 {
        return None;
    }
    let mut qualifiers = 0;
    while i < tail.len() {
        if !b"-.+".contains(&tail[i]) {
            return None;
        }
        i += 1;
        let start = i;
        while i < tail.len() && tail[i].is_ascii_alphanumeric() {
            i += 1;
        }
        qualifiers += 1;
        if i == start || qualifiers > 3 {
            return None;
        }
    }
    Some(numbers)
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
    fn identifiers_are_told_from_secrets() {
        for name in [
            "user_password_hash",
            "accessTokenExpiresAt",
            "openai-api-key-prod",
            "csrfmiddlewaretoken",
            "X-CSRF-TOKEN",
            "SECRET_KEY_BASE",
            "password_confirmation",
            "authenticity_token",
            "secret.label.title",
            "HTTPServerToken",
            "oauth2_client_secret",
            "apiKeyVersion2",
        ] {
            assert!(is_identifier(name.as_bytes()), "{name}");
        }
        for secret in [
            "Tr0ub4dor&3xK9!q",
            "correct-horse-battery-staple",
            "dpTmVCKulFWaxMJmGDlt40ddF3wOZ7kW",
            "dpTmVCKulFWaxMJmGDlt",
            "spWX4OPRfGnbNeutqh2GnG5p_4GtWRoSdOXRi5W6",
            "g3LqrQRB-Y3qLAvELm",
            "XBy4gj65Rfpdbm",
            "qzrXCaUZAxgZ2C",
            "76fed94bd9bc3e64c246ecee3f607a80",
            "hunter2",
            "xkcdPwqrtzPlmn",
        ] {
            assert!(!is_identifier(secret.as_bytes()), "{secret}");
        }
    }

    #[test]
    fn random_tokens_are_neither_identifiers_nor_coordinates() {
        // xorshift64*: random tokens over the alphabets generic rules capture.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let mut draw = |alphabet: &[u8]| -> Vec<u8> {
            let len = 16 + (next() % 33) as usize;
            (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect()
        };
        let dropped = |t: &[u8]| is_identifier(t) || is_version_coordinate(t);
        const N: usize = 20_000;
        // With digits (what the token, secret and API key rules require): never.
        for alphabet in [
            &b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"[..],
            b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_",
            b"0123456789abcdefghijklmnopqrstuvwxyz.-",
        ] {
            let hits: Vec<String> = (0..N)
                .map(|_| draw(alphabet))
                .filter(|t| dropped(t))
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .collect();
            assert!(hits.is_empty(), "{hits:?}");
        }
        // Letters only (a quoted password may be): mixed case sometimes spells a camelCase
        // name by chance (`AMIpdwupxErcouonh`); keep that under one in two thousand.
        let hits = (0..N)
            .filter(|_| {
                dropped(&draw(
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                ))
            })
            .count();
        assert!(hits * 2_000 < N, "{hits} of {N}");
    }

    #[test]
    fn version_coordinates_are_told_from_secrets() {
        for coordinate in [
            "artifact-1.2.3",
            "google-cloud-secret-manager-2.16.1",
            "com.example:api-key-client:1.4.2",
            "password-hasher@4.2.0",
            "left-pad@^1.3.0",
            "requests==2.31.0",
            "org.springframework:spring-core:6.1.2",
            "group:artifact:1.2",
            "spring-security-5.8.0-SNAPSHOT",
            "tokenizers-v0.15.2",
        ] {
            assert!(is_version_coordinate(coordinate.as_bytes()), "{coordinate}");
        }
        for secret in [
            "Summer-2023.1",
            "artifact-1.2",
            "Gx7b2Lp9Qw-1.2.3",
            "1.2.3",
            "t0k3n-AbC9.1.2.3",
            "v3rY-s3cr3t",
            "pa55.word.1",
        ] {
            assert!(!is_version_coordinate(secret.as_bytes()), "{secret}");
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
