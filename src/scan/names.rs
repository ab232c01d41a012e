//! Values that name things rather than hold secrets: identifiers (`accessTokenExpiresAt`,
//! `X-CSRF-TOKEN`, `openai-api-key-prod`) and dependency coordinates (`artifact-1.2.3`,
//! `pkg==1.2.3`). Generic rules, whose values have no shape of their own, drop them.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
