//! GGUF: the strings of the key/value metadata (llama.cpp models).

use std::fmt::Write as _;

use super::MetaString;

/// Bounds on the work and output of [`gguf_strings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgufLimits {
    /// Key/value entries read at most, whatever the header claims.
    pub max_entries: u64,
    /// Items of one array recorded at most; the rest are walked (to reach the next entry) but not
    /// recorded, so one huge array cannot use up `max_strings`.
    pub max_array_items: u64,
    /// Strings returned at most; the walk stops when it is reached.
    pub max_strings: usize,
}

impl Default for GgufLimits {
    /// Room for real models (a few dozen entries; vocabularies of a few hundred thousand tokens).
    fn default() -> Self {
        GgufLimits {
            max_entries: 1 << 16,
            max_array_items: 1 << 20,
            max_strings: 1 << 21,
        }
    }
}

/// How deeply GGUF arrays may nest.
const GGUF_MAX_DEPTH: usize = 8;

/// GGUF value type 8: a string.
pub(super) const GGUF_STRING: u32 = 8;
/// GGUF value type 9: an array.
pub(super) const GGUF_ARRAY: u32 = 9;

/// Byte size of the fixed-size GGUF value types.
fn gguf_fixed_size(ty: u32) -> Option<u64> {
    match ty {
        0 | 1 | 7 => Some(1), // u8, i8, bool
        2 | 3 => Some(2),     // u16, i16
        4..=6 => Some(4),     // u32, i32, f32
        10..=12 => Some(8),   // u64, i64, f64
        _ => None,
    }
}

/// Byte order and version of a GGUF file: `(big_endian, version)`.
fn gguf_version(data: &[u8]) -> Result<(bool, u32), String> {
    if !data.starts_with(b"GGUF") {
        return Err("not a GGUF file (no `GGUF` magic)".to_owned());
    }
    let Some(raw) = data.get(4..8) else {
        return Err("GGUF: file ends before the version".to_owned());
    };
    let raw: [u8; 4] = [raw[0], raw[1], raw[2], raw[3]];
    let little = u32::from_le_bytes(raw);
    let big = u32::from_be_bytes(raw);
    if (1..=3).contains(&little) {
        Ok((false, little))
    } else if (2..=3).contains(&big) {
        Ok((true, big))
    } else {
        Err(format!("GGUF: unsupported version {little}"))
    }
}

/// True if `data` starts with the GGUF magic and a known version (1, 2 or 3; versions 2 and 3
/// also big-endian).
pub fn is_gguf(data: &[u8]) -> bool {
    gguf_version(data).is_ok()
}

/// A cursor over GGUF data; all reads are bounds-checked and leave `pos` unchanged on failure.
struct GgufReader<'a> {
    data: &'a [u8],
    pos: usize,
    big_endian: bool,
    /// Version 2 and later store counts and lengths as u64, version 1 as u32.
    wide: bool,
}

impl<'a> GgufReader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let bytes = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }

    /// An unsigned integer of `width` bytes in the file's byte order.
    fn uint(&mut self, width: usize) -> Option<u64> {
        let bytes = self.take(width)?;
        let fold = |acc: u64, &b: &u8| (acc << 8) | u64::from(b);
        Some(if self.big_endian {
            bytes.iter().fold(0, fold)
        } else {
            bytes.iter().rev().fold(0, fold)
        })
    }

    fn u32(&mut self) -> Option<u32> {
        self.uint(4).map(|v| v as u32)
    }

    /// A count or length: u64 from version 2 on, u32 in version 1.
    fn count(&mut self) -> Option<u64> {
        self.uint(if self.wide { 8 } else { 4 })
    }

    fn skip(&mut self, n: u64) -> bool {
        usize::try_from(n).ok().and_then(|n| self.take(n)).is_some()
    }

    /// A length-prefixed string: its offset and bytes. Leaves `pos` unchanged on failure.
    fn string(&mut self) -> Option<(usize, &'a [u8])> {
        let start = self.pos;
        let parsed = self.count().and_then(|n| {
            let offset = self.pos;
            let bytes = self.take(usize::try_from(n).ok()?)?;
            Some((offset, bytes))
        });
        if parsed.is_none() {
            self.pos = start;
        }
        parsed
    }
}

/// The GGUF key/value walk; errors are the reason the walk stopped.
struct GgufWalk<'a, 'l> {
    reader: GgufReader<'a>,
    limits: &'l GgufLimits,
    out: Vec<MetaString>,
    warnings: Vec<String>,
}

impl GgufWalk<'_, '_> {
    fn entry(&mut self) -> Result<(), String> {
        let at = self.reader.pos;
        if at >= self.reader.data.len() {
            return Err(format!("the data ends at byte {at}"));
        }
        let Some((key_at, key_bytes)) = self.reader.string() else {
            return Err(format!(
                "the key at byte {at} runs past the end of the data"
            ));
        };
        let key = String::from_utf8_lossy(key_bytes).into_owned();
        self.push(&key, key_at, key_bytes, true)?;
        let Some(ty) = self.reader.u32() else {
            return Err(format!(
                "the value type of `{key}` runs past the end of the data"
            ));
        };
        self.value(ty, &key, true, 0)
    }

    /// Walks one value of type `ty`; `record` is false for items past `max_array_items`.
    fn value(&mut self, ty: u32, key: &str, record: bool, depth: usize) -> Result<(), String> {
        let at = self.reader.pos;
        if let Some(size) = gguf_fixed_size(ty) {
            return if self.reader.skip(size) {
                Ok(())
            } else {
                Err(format!(
                    "the value of `{key}` at byte {at} runs past the end of the data"
                ))
            };
        }
        match ty {
            GGUF_STRING => {
                let Some((offset, bytes)) = self.reader.string() else {
                    return Err(format!(
                        "the string `{key}` at byte {at} runs past the end of the data"
                    ));
                };
                if record {
                    self.push(key, offset, bytes, false)?;
                }
                Ok(())
            }
            GGUF_ARRAY => self.array(key, record, depth),
            _ => Err(format!("unknown value type {ty} for `{key}` at byte {at}")),
        }
    }

    fn array(&mut self, key: &str, record: bool, depth: usize) -> Result<(), String> {
        let at = self.reader.pos;
        if depth >= GGUF_MAX_DEPTH {
            return Err(format!(
                "arrays nested deeper than {GGUF_MAX_DEPTH} in `{key}` at byte {at}"
            ));
        }
        let (Some(item_type), Some(n)) = (self.reader.u32(), self.reader.count()) else {
            return Err(format!(
                "the array `{key}` at byte {at} runs past the end of the data"
            ));
        };
        if let Some(size) = gguf_fixed_size(item_type) {
            // One bounds check for the whole array: nothing in it is text.
            return match n.checked_mul(size) {
                Some(total) if self.reader.skip(total) => Ok(()),
                _ => Err(format!(
                    "the array `{key}` at byte {at} claims {n} items of {size} bytes, past the end of the data"
                )),
            };
        }
        if item_type != GGUF_STRING && item_type != GGUF_ARRAY {
            return Err(format!(
                "unknown item type {item_type} in the array `{key}` at byte {at}"
            ));
        }
        // Every item takes at least 4 bytes (its length prefix), so the data bounds this loop.
        let mut recording = record;
        let mut item_key = String::new();
        for i in 0..n {
            if self.reader.pos >= self.reader.data.len() {
                return Err(format!(
                    "the array `{key}` at byte {at} claims {n} items; the data ends after {i}"
                ));
            }
            if recording && i >= self.limits.max_array_items {
                self.warnings.push(format!(
                    "GGUF array `{key}` claims {n} items; recorded the first {}",
                    self.limits.max_array_items
                ));
                recording = false;
            }
            if recording {
                item_key.clear();
                let _ = write!(item_key, "{key}[{i}]");
                self.value(item_type, &item_key, true, depth + 1)?;
            } else {
                self.value(item_type, key, false, depth + 1)?;
            }
        }
        Ok(())
    }

    fn push(&mut self, key: &str, offset: usize, value: &[u8], is_key: bool) -> Result<(), String> {
        if value.is_empty() {
            return Ok(());
        }
        if self.out.len() >= self.limits.max_strings {
            return Err(format!(
                "reached the limit of {} strings",
                self.limits.max_strings
            ));
        }
        self.out.push(MetaString {
            key: key.to_owned(),
            value: value.to_vec(),
            offset,
            is_key,
            record: None,
            row: None,
        });
        Ok(())
    }
}

/// The strings of a GGUF file's key/value metadata: string values under their key, strings in
/// arrays as `<key>[i]` (nested arrays `<key>[i][j]`). Tensor infos and data are never read.
///
/// Errors only if the header (magic, version, counts) is unreadable. Anything else that stops the
/// walk (truncation, an unknown type, a hostile count, a limit) returns what was read so far with
/// warnings saying why; no count is trusted beyond the bytes left and `limits`.
pub fn gguf_strings(
    data: &[u8],
    limits: &GgufLimits,
) -> Result<(Vec<MetaString>, Vec<String>), String> {
    let (big_endian, version) = gguf_version(data)?;
    let mut reader = GgufReader {
        data,
        pos: 8,
        big_endian,
        wide: version >= 2,
    };
    let (Some(_tensors), Some(entries)) = (reader.count(), reader.count()) else {
        return Err(format!(
            "GGUF: {} bytes is too short for the header",
            data.len()
        ));
    };
    let mut walk = GgufWalk {
        reader,
        limits,
        out: Vec::new(),
        warnings: Vec::new(),
    };
    if entries > limits.max_entries {
        walk.warnings.push(format!(
            "GGUF header claims {entries} key/value entries; reading at most {}",
            limits.max_entries
        ));
    }
    for i in 0..entries.min(limits.max_entries) {
        if let Err(why) = walk.entry() {
            walk.warnings.push(format!(
                "GGUF metadata: stopped after {i} of {entries} key/value entries: {why}"
            ));
            break;
        }
    }
    Ok((walk.out, walk.warnings))
}
