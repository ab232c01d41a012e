//! `.npy` headers: the dtype, and whether the array holds Python objects (then its data is a
//! pickle).

use super::le_u32;
use crate::content::pylit::PyLiteral;

/// How deeply Python literals may nest in an `.npy` header.
const NPY_MAX_DEPTH: usize = 32;

/// The header of an `.npy` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// The `descr` value: the type string (`<f4`, `|O`) or, for structured dtypes, the literal's
    /// source text (`[('name', '|O'), ('v', '<i4')]`).
    pub dtype: String,
    /// True if the dtype holds Python objects anywhere: the array data is then a pickle.
    pub object: bool,
    /// Offset of the array data (where the pickle starts for object arrays).
    pub data_offset: usize,
    /// The header dictionary's text, trailing padding removed.
    pub header: String,
}

/// True if `data` starts with the `.npy` magic `\x93NUMPY`.
pub fn is_npy(data: &[u8]) -> bool {
    data.starts_with(b"\x93NUMPY")
}

/// Parses an `.npy` header (format versions 1.0, 2.0 and 3.0) for its `descr`.
///
/// Errors if the magic is missing, the version is unknown, the header length runs past the end of
/// the file, or the header is not a dictionary literal with a `descr` key.
pub fn npy_header(data: &[u8]) -> Result<NpyHeader, String> {
    if !is_npy(data) {
        return Err("not an .npy file (no \\x93NUMPY magic)".to_owned());
    }
    let (Some(&major), Some(&minor)) = (data.get(6), data.get(7)) else {
        return Err(".npy: file ends before the format version".to_owned());
    };
    let (len, start) = match major {
        1 => (
            data.get(8..10)
                .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]]))),
            10usize,
        ),
        2 | 3 => (le_u32(data, 8).and_then(|n| usize::try_from(n).ok()), 12),
        _ => return Err(format!(".npy: unsupported format version {major}.{minor}")),
    };
    let Some(len) = len else {
        return Err(".npy: file ends before the header length".to_owned());
    };
    let Some(end) = start.checked_add(len).filter(|&end| end <= data.len()) else {
        return Err(format!(
            ".npy: header length {len} runs past the end of the {}-byte file",
            data.len()
        ));
    };
    let raw = &data[start..end];
    let mut literal = PyLiteral::new(raw, NPY_MAX_DEPTH);
    let (dtype, object) = descr(&mut literal)
        .map_err(|why| format!(".npy header: {why} at byte {}", start + literal.pos))?;
    let header = if major >= 3 {
        String::from_utf8_lossy(raw).into_owned()
    } else {
        raw.iter().copied().map(char::from).collect() // latin-1
    };
    Ok(NpyHeader {
        dtype,
        object,
        data_offset: end,
        header: header.trim_end().to_owned(),
    })
}

/// True if a numpy type string names Python objects (`O`, `|O`, `O8`, `object`); no other type
/// character or datetime unit uses a capital `O`. Comma-separated lists such as `O,i4` count too.
fn is_object_typestr(s: &[u8]) -> bool {
    s.contains(&b'O') || memchr::memmem::find(s, b"object").is_some()
}

/// The header dictionary: the `descr` value as text and whether it holds objects. Only `descr`
/// is examined; other values are skipped without being stored, so a huge header costs no memory.
fn descr(lit: &mut PyLiteral<'_>) -> Result<(String, bool), String> {
    lit.ws();
    if lit.peek() != Some(b'{') {
        return Err("header is not a dictionary literal".to_owned());
    }
    let mut found = None;
    if !lit.open(b'}') {
        loop {
            lit.ws();
            let key = match lit.peek() {
                Some(b'\'' | b'"') => Some(lit.string()?),
                _ => {
                    lit.skip_value(0)?;
                    None
                }
            };
            lit.ws();
            if lit.peek() != Some(b':') {
                return Err("expected `:` after a dictionary key".to_owned());
            }
            lit.pos += 1;
            lit.ws();
            if key.as_deref() == Some(b"descr") {
                let start = lit.pos;
                let quoted = matches!(lit.peek(), Some(b'\'' | b'"'));
                let object = dtype(lit, 0)?;
                let text = &lit.s[start..lit.pos];
                let text = if quoted && text.len() >= 2 {
                    &text[1..text.len() - 1]
                } else {
                    text
                };
                found = Some((String::from_utf8_lossy(text).into_owned(), object));
            } else {
                lit.skip_value(0)?;
            }
            if lit.after_item(b'}')? {
                break;
            }
        }
    }
    found.ok_or_else(|| "no 'descr' key in the header".to_owned())
}

/// A dtype description: a type string, a list of fields `(name, dtype[, shape])`, or a
/// subarray `(dtype, shape)`. Returns whether it holds objects.
fn dtype(lit: &mut PyLiteral<'_>, depth: usize) -> Result<bool, String> {
    if depth > NPY_MAX_DEPTH {
        return Err("literal nested too deeply".to_owned());
    }
    lit.ws();
    match lit.peek() {
        Some(b'\'' | b'"') => Ok(is_object_typestr(&lit.string()?)),
        Some(b'[') => {
            let mut object = false;
            if !lit.open(b']') {
                loop {
                    lit.ws();
                    object |= if lit.peek() == Some(b'(') {
                        field(lit, depth + 1)?
                    } else {
                        dtype(lit, depth + 1)?
                    };
                    if lit.after_item(b']')? {
                        break;
                    }
                }
            }
            Ok(object)
        }
        Some(b'(') => {
            if lit.open(b')') {
                return Ok(false);
            }
            let object = dtype(lit, depth + 1)?;
            lit.skip_rest(b')', depth)?;
            Ok(object)
        }
        _ => {
            lit.skip_value(depth)?;
            Ok(false)
        }
    }
}

/// A structured field `(name, dtype[, shape])`: whether its dtype holds objects.
fn field(lit: &mut PyLiteral<'_>, depth: usize) -> Result<bool, String> {
    if lit.open(b')') {
        return Ok(false);
    }
    lit.skip_value(depth)?; // the name, or a (title, name) pair
    if lit.after_item(b')')? {
        return Ok(false);
    }
    let object = dtype(lit, depth + 1)?;
    lit.skip_rest(b')', depth)?;
    Ok(object)
}
