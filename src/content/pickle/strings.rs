//! Decoding of protocol-0 text arguments: string escapes, numbers, and cutting at a char
//! boundary.

pub(super) fn truncate_chars(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub(super) fn is_int_text(line: &[u8]) -> bool {
    let text = line.trim_ascii();
    let digits = text
        .strip_prefix(b"-")
        .or_else(|| text.strip_prefix(b"+"))
        .unwrap_or(text);
    !digits.is_empty()
        && digits.first().is_some_and(u8::is_ascii_digit)
        && digits
            .iter()
            .all(|&b| b.is_ascii_hexdigit() || b"xXoObB_".contains(&b))
}

pub(super) fn is_float_text(line: &[u8]) -> bool {
    let text = line.trim_ascii();
    let digits = text
        .strip_prefix(b"-")
        .or_else(|| text.strip_prefix(b"+"))
        .unwrap_or(text);
    let lower = digits.to_ascii_lowercase();
    matches!(lower.as_slice(), b"inf" | b"infinity" | b"nan")
        || (digits.iter().any(u8::is_ascii_digit)
            && digits
                .iter()
                .all(|&b| b.is_ascii_digit() || b".eE+-_".contains(&b)))
}

/// Python's `codecs.escape_decode`, as protocol-0 `STRING` needs; stops at `cap` bytes.
/// The flag is false when an escape was invalid (kept as written).
pub(super) fn unescape(body: &[u8], cap: usize) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(body.len().min(cap));
    let mut ok = true;
    let mut i = 0;
    while i < body.len() && out.len() < cap {
        let b = body[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&e) = body.get(i) else {
            ok = false;
            out.push(b'\\');
            break;
        };
        i += 1;
        match e {
            b'\\' | b'\'' | b'"' => out.push(e),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut value = u32::from(e - b'0');
                for _ in 0..2 {
                    match body.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((value & 0xff) as u8);
            }
            b'x' => match body
                .get(i..i + 2)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(value) => {
                    out.push(value);
                    i += 2;
                }
                None => {
                    ok = false;
                    out.extend_from_slice(b"\\x");
                }
            },
            _ => out.extend_from_slice(&[b'\\', e]),
        }
    }
    out.truncate(cap);
    (out, ok)
}

/// Python's `raw-unicode-escape` decoding, as protocol-0 `UNICODE` needs: `\uXXXX` and
/// `\UXXXXXXXX` after an odd run of backslashes, other bytes as Latin-1; stops near `cap` bytes.
pub(super) fn raw_unicode_unescape(line: &[u8], cap: usize) -> String {
    let mut out = String::with_capacity(line.len().min(cap));
    let mut i = 0;
    while i < line.len() && out.len() < cap {
        let b = line[i];
        if b != b'\\' {
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let run = line[i..].iter().take_while(|&&c| c == b'\\').count();
        i += run;
        let width = match line.get(i) {
            Some(b'u') if run % 2 == 1 => 4,
            Some(b'U') if run % 2 == 1 => 8,
            _ => 0,
        };
        let code = line
            .get(i + 1..i + 1 + width)
            .filter(|_| width > 0)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok());
        match code {
            Some(code) => {
                out.extend(std::iter::repeat_n('\\', run - 1));
                out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
                i += 1 + width;
            }
            None => out.extend(std::iter::repeat_n('\\', run)),
        }
    }
    if out.len() > cap {
        let end = truncate_chars(&out, cap).len();
        out.truncate(end);
    }
    out
}
