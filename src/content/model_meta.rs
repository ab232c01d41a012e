//! Model metadata: safetensors headers, GGUF key/value strings, ONNX metadata, `.npy` headers.
//!
//! Each format is recognised by its bytes (`is_*`) and walked without trusting a single length or
//! count in it: every count is bounded by the bytes that are left (and, for GGUF, by
//! [`GgufLimits`]), recursion has a fixed depth, tensor data is never read or copied, and no input
//! makes these functions panic. The walkers return the metadata strings as [`MetaString`]s with a
//! dotted key saying where the string sits and the byte offset of its value in the file, so a
//! finding maps back to the file. Empty strings are not reported.

use std::fmt::Write as _;

/// A metadata string found in a model file.
///
/// `key` is a dotted path such as `__metadata__.hf_token`, `general.name`,
/// `tokenizer.ggml.tokens[3]`, `metadata_props.api_key`, `graph.doc_string` or
/// `graph.node[2].doc_string`; `value` holds the string's bytes (JSON escapes decoded for
/// safetensors, raw bytes otherwise) and `offset` is the byte offset of the value in the file (for
/// a JSON string, the byte after its opening quote).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaString {
    /// Where the string sits in the file's metadata, as a dotted path.
    pub key: String,
    /// The string's bytes.
    pub value: Vec<u8>,
    /// Byte offset of the value in the file.
    pub offset: usize,
}

fn le_u64(data: &[u8], at: usize) -> Option<u64> {
    let bytes = data.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

fn le_u32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

// ---------------------------------------------------------------------------------------------
// safetensors
// ---------------------------------------------------------------------------------------------

/// How deeply JSON values may nest in a safetensors header.
const SAFETENSORS_MAX_DEPTH: usize = 64;

/// Fields of a tensor entry that describe the tensor rather than carry text.
const TENSOR_FIELDS: [&str; 3] = ["dtype", "shape", "data_offsets"];

/// True if `data` looks like a safetensors file: an 8-byte little-endian header length `n` with
/// `2 <= n <= data.len() - 8`, and a header that starts with `{`.
pub fn is_safetensors(data: &[u8]) -> bool {
    let Some(n) = le_u64(data, 0) else {
        return false;
    };
    let after = (data.len() - 8) as u64;
    (2..=after).contains(&n) && data.get(8) == Some(&b'{')
}

/// The strings of a safetensors header: every value of `__metadata__` (key `__metadata__.<k>`)
/// and any other string in the header JSON except the `dtype`, `shape` and `data_offsets` fields
/// of tensor entries (a tensor's other fields get the key `<tensor>.<field>`).
///
/// Errors if the file is too short for the length prefix, if the header length runs past the end
/// of the file or exceeds `max_header`, or if the header is not a well-formed JSON object.
pub fn safetensors_strings(data: &[u8], max_header: usize) -> Result<Vec<MetaString>, String> {
    let Some(n) = le_u64(data, 0) else {
        return Err(format!(
            "safetensors: {} bytes is too short for the 8-byte header length",
            data.len()
        ));
    };
    let after = data.len() - 8;
    if n > after as u64 {
        return Err(format!(
            "safetensors: header length {n} is larger than the {after} bytes after it (truncated or malformed file)"
        ));
    }
    // Fits in usize: it is at most `after`.
    let n = n as usize;
    if n > max_header {
        return Err(format!(
            "safetensors: header length {n} exceeds the limit of {max_header} bytes"
        ));
    }
    let mut walker = JsonWalker {
        buf: &data[..8 + n],
        pos: 8,
        out: Vec::new(),
    };
    walker.header()?;
    Ok(walker.out)
}

/// Where a JSON value sits in a safetensors header, which decides the keys of its strings.
#[derive(Clone, Copy, PartialEq, Eq)]
enum JsonLevel {
    /// The header object itself: its members are `__metadata__` and tensor entries.
    Top,
    /// A tensor entry: `dtype`, `shape` and `data_offsets` are skipped.
    Tensor,
    /// Anything else.
    Other,
}

/// A JSON walker that records strings with their offsets (serde_json does not report offsets).
/// `buf` ends where the header ends; positions are offsets in the file.
struct JsonWalker<'a> {
    buf: &'a [u8],
    pos: usize,
    out: Vec<MetaString>,
}

impl JsonWalker<'_> {
    fn err(&self, what: &str) -> String {
        format!("safetensors header: {what} at byte {}", self.pos)
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn header(&mut self) -> Result<(), String> {
        self.ws();
        if self.peek() != Some(b'{') {
            return Err(self.err("header is not a JSON object"));
        }
        self.value(&mut String::new(), JsonLevel::Top, false, 0)?;
        self.ws();
        if self.pos != self.buf.len() {
            return Err(self.err("unexpected data after the header object"));
        }
        Ok(())
    }

    /// Walks one value at `path`; `skip` drops its strings.
    fn value(
        &mut self,
        path: &mut String,
        level: JsonLevel,
        skip: bool,
        depth: usize,
    ) -> Result<(), String> {
        if depth > SAFETENSORS_MAX_DEPTH {
            return Err(self.err("JSON nested too deeply"));
        }
        self.ws();
        match self.peek() {
            Some(b'{') => self.object(path, level, skip, depth),
            Some(b'[') => self.array(path, skip, depth),
            Some(b'"') => {
                let (offset, value) = self.string()?;
                if !skip && !value.is_empty() {
                    self.out.push(MetaString {
                        key: path.clone(),
                        value,
                        offset,
                    });
                }
                Ok(())
            }
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => {
                while matches!(
                    self.peek(),
                    Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                ) {
                    self.pos += 1;
                }
                Ok(())
            }
            Some(_) => Err(self.err("unexpected byte in JSON")),
            None => Err(self.err("header ends inside a JSON value")),
        }
    }

    fn object(
        &mut self,
        path: &mut String,
        level: JsonLevel,
        skip: bool,
        depth: usize,
    ) -> Result<(), String> {
        self.pos += 1; // `{`
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a string key"));
            }
            let (_, key) = self.string()?;
            let key = String::from_utf8_lossy(&key);
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected `:` after an object key"));
            }
            self.pos += 1;
            let (child_level, child_skip) = match level {
                JsonLevel::Top if key == "__metadata__" => (JsonLevel::Other, skip),
                JsonLevel::Top => (JsonLevel::Tensor, skip),
                JsonLevel::Tensor => (JsonLevel::Other, skip || TENSOR_FIELDS.contains(&&*key)),
                JsonLevel::Other => (JsonLevel::Other, skip),
            };
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&key);
            self.value(path, child_level, child_skip, depth + 1)?;
            path.truncate(len);
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected `,` or `}` in an object")),
            }
        }
    }

    fn array(&mut self, path: &mut String, skip: bool, depth: usize) -> Result<(), String> {
        self.pos += 1; // `[`
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        let mut index = 0usize;
        loop {
            let len = path.len();
            // Writing to a String cannot fail.
            let _ = write!(path, "[{index}]");
            self.value(path, JsonLevel::Other, skip, depth + 1)?;
            path.truncate(len);
            index += 1;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected `,` or `]` in an array")),
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), String> {
        if self.buf[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.err("invalid JSON literal"))
        }
    }

    /// Reads the string at `pos` (on its opening quote): the offset of its first content byte and
    /// its decoded bytes.
    fn string(&mut self) -> Result<(usize, Vec<u8>), String> {
        let start = self.pos + 1;
        let rest = &self.buf[start..];
        match memchr::memchr2(b'"', b'\\', rest) {
            Some(i) if rest[i] == b'"' => {
                self.pos = start + i + 1;
                return Ok((start, rest[..i].to_vec()));
            }
            Some(_) => {}
            None => return Err(self.err("unterminated JSON string")),
        }
        let mut out = Vec::new();
        let mut i = start;
        loop {
            let Some(&b) = self.buf.get(i) else {
                return Err(self.err("unterminated JSON string"));
            };
            match b {
                b'"' => {
                    self.pos = i + 1;
                    return Ok((start, out));
                }
                b'\\' => {
                    let escaped = self.buf.get(i + 1).copied();
                    i += 2;
                    let byte = match escaped {
                        Some(b'"') => b'"',
                        Some(b'\\') => b'\\',
                        Some(b'/') => b'/',
                        Some(b'b') => 0x08,
                        Some(b'f') => 0x0c,
                        Some(b'n') => b'\n',
                        Some(b'r') => b'\r',
                        Some(b't') => b'\t',
                        Some(b'u') => {
                            let (ch, used) = self.unicode_escape(i)?;
                            i += used;
                            let mut utf8 = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
                            continue;
                        }
                        _ => {
                            self.pos = i - 2;
                            return Err(self.err("invalid escape in JSON string"));
                        }
                    };
                    out.push(byte);
                }
                _ => {
                    out.push(b);
                    i += 1;
                }
            }
        }
    }

    /// Decodes the `XXXX` of a `\uXXXX` escape starting at `at`, joining a surrogate pair when a
    /// second escape follows; lone surrogates become U+FFFD. Returns the char and bytes used.
    fn unicode_escape(&mut self, at: usize) -> Result<(char, usize), String> {
        let Some(unit) = self.hex4(at) else {
            self.pos = at;
            return Err(self.err("invalid \\u escape in JSON string"));
        };
        if (0xD800..0xDC00).contains(&unit) && self.buf.get(at + 4..at + 6) == Some(b"\\u") {
            if let Some(low) = self
                .hex4(at + 6)
                .filter(|low| (0xDC00..0xE000).contains(low))
            {
                let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                return Ok((char::from_u32(code).unwrap_or('\u{FFFD}'), 10));
            }
        }
        Ok((char::from_u32(unit).unwrap_or('\u{FFFD}'), 4))
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.buf.get(at..at.checked_add(4)?)?;
        digits
            .iter()
            .try_fold(0u32, |acc, &d| Some(acc * 16 + char::from(d).to_digit(16)?))
    }
}

// ---------------------------------------------------------------------------------------------
// GGUF
// ---------------------------------------------------------------------------------------------

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
const GGUF_STRING: u32 = 8;
/// GGUF value type 9: an array.
const GGUF_ARRAY: u32 = 9;

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
        let Some((_, key)) = self.reader.string() else {
            return Err(format!(
                "the key at byte {at} runs past the end of the data"
            ));
        };
        let key = String::from_utf8_lossy(key).into_owned();
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
                    self.push(key, offset, bytes)?;
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

    fn push(&mut self, key: &str, offset: usize, value: &[u8]) -> Result<(), String> {
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

// ---------------------------------------------------------------------------------------------
// ONNX
// ---------------------------------------------------------------------------------------------

/// How deeply ONNX messages may nest (a subgraph costs three levels: node, attribute, graph).
const ONNX_MAX_DEPTH: usize = 64;

/// Top-level fields [`is_onnx`] reads before deciding.
const ONNX_SNIFF_FIELDS: usize = 4096;

/// The highest `ir_version` taken as plausible (version 11 was current in 2025).
const ONNX_MAX_IR_VERSION: u64 = 64;

/// A protobuf field value; length-delimited payloads are borrowed, never copied.
enum ProtoValue<'a> {
    Varint(u64),
    Fixed,
    Bytes { offset: usize, bytes: &'a [u8] },
}

/// The fields of one protobuf message: `data` is the whole file, `pos..end` the message.
struct ProtoMessage<'a> {
    data: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> ProtoMessage<'a> {
    fn new(data: &'a [u8]) -> Self {
        ProtoMessage {
            data,
            pos: 0,
            end: data.len(),
        }
    }

    fn nested(&self, offset: usize, bytes: &[u8]) -> Self {
        ProtoMessage {
            data: self.data,
            pos: offset,
            end: offset + bytes.len(),
        }
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = *self.data[..self.end].get(self.pos)?;
            self.pos += 1;
            if i == 9 && byte > 1 {
                return None; // more than 64 bits
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// The next field, `None` at the end of the message.
    fn next_field(&mut self) -> Result<Option<(u64, ProtoValue<'a>)>, String> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let at = self.pos;
        let bad = |what: &str| format!("ONNX: {what} at byte {at}");
        let tag = self.varint().ok_or_else(|| bad("malformed field tag"))?;
        let number = tag >> 3;
        if number == 0 || number > 0x1FFF_FFFF {
            return Err(bad("invalid field number"));
        }
        let value = match tag & 7 {
            0 => ProtoValue::Varint(self.varint().ok_or_else(|| bad("malformed varint"))?),
            1 | 5 => {
                let size = if tag & 7 == 1 { 8 } else { 4 };
                if self.end - self.pos < size {
                    return Err(bad("fixed-size field runs past the end of its message"));
                }
                self.pos += size;
                ProtoValue::Fixed
            }
            2 => {
                let len = self.varint().ok_or_else(|| bad("malformed length"))?;
                let fits = usize::try_from(len)
                    .ok()
                    .filter(|&len| len <= self.end - self.pos);
                let Some(len) = fits else {
                    return Err(bad(&format!(
                        "length {len} runs past the end of its message"
                    )));
                };
                let offset = self.pos;
                self.pos += len;
                ProtoValue::Bytes {
                    offset,
                    bytes: &self.data[offset..offset + len],
                }
            }
            wire => return Err(bad(&format!("unsupported wire type {wire}"))),
        };
        Ok(Some((number, value)))
    }
}

/// True if `data` parses as an ONNX `ModelProto`: every top-level field is a known `ModelProto`
/// field with its wire type, lengths stay inside the data, and there is a plausible `ir_version`
/// and a graph or an opset import. Text, zips, pickles and images fail on the first bytes.
pub fn is_onnx(data: &[u8]) -> bool {
    let mut message = ProtoMessage::new(data);
    let (mut ir_version, mut body) = (false, false);
    for _ in 0..ONNX_SNIFF_FIELDS {
        match message.next_field() {
            Ok(None) => break,
            Ok(Some((number, value))) => match (number, value) {
                (1, ProtoValue::Varint(v)) => {
                    ir_version = (1..=ONNX_MAX_IR_VERSION).contains(&v);
                }
                (5, ProtoValue::Varint(_)) => {}
                (7 | 8, ProtoValue::Bytes { .. }) => body = true,
                (2 | 3 | 4 | 6 | 14 | 20 | 25 | 26, ProtoValue::Bytes { .. }) => {}
                _ => return false,
            },
            Err(_) => return false,
        }
    }
    ir_version && body
}

/// The strings of an ONNX model: `producer_name`, `producer_version`, `domain`, `doc_string`,
/// `metadata_props.<key>`, and in graphs (`graph`, subgraphs of node attributes such as
/// `graph.node[3].attribute[0].g`, `training_info[i].algorithm`) their `name`, `doc_string`,
/// `metadata_props.<key>` and `node[i].doc_string`; functions give `functions[i].doc_string` and
/// their nodes' doc strings. Initializers and other tensors are skipped without being read.
///
/// Errors on malformed protobuf (bad tags or varints, lengths past the end of their message,
/// group wire types) or nesting deeper than a fixed bound.
pub fn onnx_strings(data: &[u8]) -> Result<Vec<MetaString>, String> {
    if data.is_empty() {
        return Err("ONNX: empty file".to_owned());
    }
    let mut walk = OnnxWalk {
        data,
        out: Vec::new(),
    };
    walk.model()?;
    Ok(walk.out)
}

struct OnnxWalk<'a> {
    data: &'a [u8],
    out: Vec<MetaString>,
}

impl<'a> OnnxWalk<'a> {
    fn push(&mut self, path: &str, field: &str, offset: usize, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let key = if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        };
        self.out.push(MetaString {
            key,
            value: bytes.to_vec(),
            offset,
        });
    }

    fn model(&mut self) -> Result<(), String> {
        let mut message = ProtoMessage::new(self.data);
        let mut path = String::new();
        let (mut training, mut functions) = (0usize, 0usize);
        while let Some((number, value)) = message.next_field()? {
            let ProtoValue::Bytes { offset, bytes } = value else {
                continue;
            };
            match number {
                2 => self.push("", "producer_name", offset, bytes),
                3 => self.push("", "producer_version", offset, bytes),
                4 => self.push("", "domain", offset, bytes),
                6 => self.push("", "doc_string", offset, bytes),
                7 => {
                    path.push_str("graph");
                    self.graph(message.nested(offset, bytes), &mut path, 1)?;
                }
                14 => self.metadata_entry(message.nested(offset, bytes), "metadata_props")?,
                20 => {
                    let _ = write!(path, "training_info[{training}]");
                    self.training_info(message.nested(offset, bytes), &mut path, 1)?;
                    training += 1;
                }
                25 => {
                    let _ = write!(path, "functions[{functions}]");
                    self.function(message.nested(offset, bytes), &mut path, 1)?;
                    functions += 1;
                }
                _ => {}
            }
            path.clear();
        }
        Ok(())
    }

    fn check_depth(message: &ProtoMessage<'_>, depth: usize) -> Result<(), String> {
        if depth > ONNX_MAX_DEPTH {
            return Err(format!(
                "ONNX: messages nested deeper than {ONNX_MAX_DEPTH} at byte {}",
                message.pos
            ));
        }
        Ok(())
    }

    /// Walks the message in `message` with `walk`, under `path` + `segment`.
    fn child(
        &mut self,
        message: ProtoMessage<'a>,
        path: &mut String,
        segment: std::fmt::Arguments<'_>,
        depth: usize,
        walk: fn(&mut Self, ProtoMessage<'a>, &mut String, usize) -> Result<(), String>,
    ) -> Result<(), String> {
        let len = path.len();
        let _ = path.write_fmt(segment);
        walk(self, message, path, depth)?;
        path.truncate(len);
        Ok(())
    }

    /// GraphProto: node(1), name(2), doc_string(10), metadata_props(16).
    fn graph(
        &mut self,
        mut message: ProtoMessage<'a>,
        path: &mut String,
        depth: usize,
    ) -> Result<(), String> {
        Self::check_depth(&message, depth)?;
        let mut nodes = 0usize;
        while let Some((number, value)) = message.next_field()? {
            let ProtoValue::Bytes { offset, bytes } = value else {
                continue;
            };
            match number {
                1 => {
                    let node = message.nested(offset, bytes);
                    self.child(
                        node,
                        path,
                        format_args!(".node[{nodes}]"),
                        depth + 1,
                        Self::node,
                    )?;
                    nodes += 1;
                }
                2 => self.push(path, "name", offset, bytes),
                10 => self.push(path, "doc_string", offset, bytes),
                16 => {
                    let entry = message.nested(offset, bytes);
                    self.metadata_entry(entry, &format!("{path}.metadata_props"))?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// NodeProto: attribute(5), doc_string(6), metadata_props(9).
    fn node(
        &mut self,
        mut message: ProtoMessage<'a>,
        path: &mut String,
        depth: usize,
    ) -> Result<(), String> {
        Self::check_depth(&message, depth)?;
        let mut attributes = 0usize;
        while let Some((number, value)) = message.next_field()? {
            let ProtoValue::Bytes { offset, bytes } = value else {
                continue;
            };
            match number {
                5 => {
                    let attribute = message.nested(offset, bytes);
                    self.child(
                        attribute,
                        path,
                        format_args!(".attribute[{attributes}]"),
                        depth + 1,
                        Self::attribute,
                    )?;
                    attributes += 1;
                }
                6 => self.push(path, "doc_string", offset, bytes),
                9 => {
                    let entry = message.nested(offset, bytes);
                    self.metadata_entry(entry, &format!("{path}.metadata_props"))?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// AttributeProto: subgraphs g(6) and graphs(11), doc_string(13).
    fn attribute(
        &mut self,
        mut message: ProtoMessage<'a>,
        path: &mut String,
        depth: usize,
    ) -> Result<(), String> {
        Self::check_depth(&message, depth)?;
        let mut graphs = 0usize;
        while let Some((number, value)) = message.next_field()? {
            let ProtoValue::Bytes { offset, bytes } = value else {
                continue;
            };
            match number {
                6 => {
                    let graph = message.nested(offset, bytes);
                    self.child(graph, path, format_args!(".g"), depth + 1, Self::graph)?;
                }
                11 => {
                    let graph = message.nested(offset, bytes);
                    self.child(
                        graph,
                        path,
                        format_args!(".graphs[{graphs}]"),
                        depth + 1,
                        Self::graph,
                    )?;
                    graphs += 1;
                }
                13 => self.push(path, "doc_string", offset, bytes),
                _ => {}
            }
        }
        Ok(())
    }

    /// FunctionProto: node(7), doc_string(8), metadata_props(14).
    fn function(
        &mut self,
        mut message: ProtoMessage<'a>,
        path: &mut String,
        depth: usize,
    ) -> Result<(), String> {
        Self::check_depth(&message, depth)?;
        let mut nodes = 0usize;
        while let Some((number, value)) = message.next_field()? {
            let ProtoValue::Bytes { offset, bytes } = value else {
                continue;
            };
            match number {
                7 => {
                    let node = message.nested(offset, bytes);
                    self.child(
                        node,
                        path,
                        format_args!(".node[{nodes}]"),
                        depth + 1,
                        Self::node,
                    )?;
                    nodes += 1;
                }
                8 => self.push(path, "doc_string", offset, bytes),
                14 => {
                    let entry = message.nested(offset, bytes);
                    self.metadata_entry(entry, &format!("{path}.metadata_props"))?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// TrainingInfoProto: initialization(1) and algorithm(2) graphs.
    fn training_info(
        &mut self,
        mut message: ProtoMessage<'a>,
        path: &mut String,
        depth: usize,
    ) -> Result<(), String> {
        Self::check_depth(&message, depth)?;
        while let Some((number, value)) = message.next_field()? {
            let ProtoValue::Bytes { offset, bytes } = value else {
                continue;
            };
            let graph = message.nested(offset, bytes);
            match number {
                1 => self.child(
                    graph,
                    path,
                    format_args!(".initialization"),
                    depth + 1,
                    Self::graph,
                )?,
                2 => self.child(
                    graph,
                    path,
                    format_args!(".algorithm"),
                    depth + 1,
                    Self::graph,
                )?,
                _ => {}
            }
        }
        Ok(())
    }

    /// StringStringEntryProto key(1), value(2): the value under `<prefix>.<key>`.
    fn metadata_entry(
        &mut self,
        mut message: ProtoMessage<'a>,
        prefix: &str,
    ) -> Result<(), String> {
        let (mut key, mut value) = (None, None);
        while let Some((number, field)) = message.next_field()? {
            if let ProtoValue::Bytes { offset, bytes } = field {
                match number {
                    1 => key = Some(bytes),
                    2 => value = Some((offset, bytes)),
                    _ => {}
                }
            }
        }
        if let Some((offset, bytes)) = value {
            let key = String::from_utf8_lossy(key.unwrap_or_default());
            self.push(prefix, &key, offset, bytes);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// .npy
// ---------------------------------------------------------------------------------------------

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
    let mut literal = PyLiteral { s: raw, pos: 0 };
    let (dtype, object) = literal
        .descr()
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

/// A reader for the Python dictionary literal of an `.npy` header. Only `descr` is examined;
/// other values are skipped without being stored, so a huge header costs no memory.
struct PyLiteral<'a> {
    s: &'a [u8],
    pos: usize,
}

impl PyLiteral<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// On the opening bracket: consumes it and returns true if the sequence closes at once.
    fn open(&mut self, close: u8) -> bool {
        self.pos += 1;
        self.ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// After an item: consumes `,` (and the closing bracket after a trailing comma) or the
    /// closing bracket; returns true if the sequence is closed.
    fn after_item(&mut self, close: u8) -> Result<bool, String> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                self.ws();
                if self.peek() == Some(close) {
                    self.pos += 1;
                    Ok(true)
                } else {
                    Ok(false)
                }
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(true)
            }
            _ => Err(format!("expected `,` or `{}`", char::from(close))),
        }
    }

    /// A quoted string at `pos` (on its quote): its bytes, backslash escapes taken literally.
    fn string(&mut self) -> Result<Vec<u8>, String> {
        let quote = self.s[self.pos];
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err("unterminated string".to_owned()),
                Some(b) if b == quote => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    if let Some(&next) = self.s.get(self.pos + 1) {
                        out.push(next);
                    }
                    self.pos += 2;
                }
                Some(b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    /// The header dictionary: the `descr` value as text and whether it holds objects.
    fn descr(&mut self) -> Result<(String, bool), String> {
        self.ws();
        if self.peek() != Some(b'{') {
            return Err("header is not a dictionary literal".to_owned());
        }
        let mut found = None;
        if !self.open(b'}') {
            loop {
                self.ws();
                let key = match self.peek() {
                    Some(b'\'' | b'"') => Some(self.string()?),
                    _ => {
                        self.skip_value(0)?;
                        None
                    }
                };
                self.ws();
                if self.peek() != Some(b':') {
                    return Err("expected `:` after a dictionary key".to_owned());
                }
                self.pos += 1;
                self.ws();
                if key.as_deref() == Some(b"descr") {
                    let start = self.pos;
                    let quoted = matches!(self.peek(), Some(b'\'' | b'"'));
                    let object = self.dtype(0)?;
                    let text = &self.s[start..self.pos];
                    let text = if quoted && text.len() >= 2 {
                        &text[1..text.len() - 1]
                    } else {
                        text
                    };
                    found = Some((String::from_utf8_lossy(text).into_owned(), object));
                } else {
                    self.skip_value(0)?;
                }
                if self.after_item(b'}')? {
                    break;
                }
            }
        }
        found.ok_or_else(|| "no 'descr' key in the header".to_owned())
    }

    /// A dtype description: a type string, a list of fields `(name, dtype[, shape])`, or a
    /// subarray `(dtype, shape)`. Returns whether it holds objects.
    fn dtype(&mut self, depth: usize) -> Result<bool, String> {
        if depth > NPY_MAX_DEPTH {
            return Err("literal nested too deeply".to_owned());
        }
        self.ws();
        match self.peek() {
            Some(b'\'' | b'"') => Ok(is_object_typestr(&self.string()?)),
            Some(b'[') => {
                let mut object = false;
                if !self.open(b']') {
                    loop {
                        self.ws();
                        object |= if self.peek() == Some(b'(') {
                            self.field(depth + 1)?
                        } else {
                            self.dtype(depth + 1)?
                        };
                        if self.after_item(b']')? {
                            break;
                        }
                    }
                }
                Ok(object)
            }
            Some(b'(') => {
                if self.open(b')') {
                    return Ok(false);
                }
                let object = self.dtype(depth + 1)?;
                self.skip_rest(b')', depth)?;
                Ok(object)
            }
            _ => {
                self.skip_value(depth)?;
                Ok(false)
            }
        }
    }

    /// A structured field `(name, dtype[, shape])`: whether its dtype holds objects.
    fn field(&mut self, depth: usize) -> Result<bool, String> {
        if self.open(b')') {
            return Ok(false);
        }
        self.skip_value(depth)?; // the name, or a (title, name) pair
        if self.after_item(b')')? {
            return Ok(false);
        }
        let object = self.dtype(depth + 1)?;
        self.skip_rest(b')', depth)?;
        Ok(object)
    }

    /// After an item of a sequence: skips the remaining items and the closing bracket.
    fn skip_rest(&mut self, close: u8, depth: usize) -> Result<(), String> {
        while !self.after_item(close)? {
            self.skip_value(depth + 1)?;
        }
        Ok(())
    }

    /// Skips one value: a string, a tuple, list or dict, or an atom (number, `True`, `None`).
    fn skip_value(&mut self, depth: usize) -> Result<(), String> {
        if depth > NPY_MAX_DEPTH {
            return Err("literal nested too deeply".to_owned());
        }
        self.ws();
        match self.peek() {
            Some(b'\'' | b'"') => {
                self.string()?;
            }
            Some(open @ (b'(' | b'[' | b'{')) => {
                let close = match open {
                    b'(' => b')',
                    b'[' => b']',
                    _ => b'}',
                };
                if !self.open(close) {
                    loop {
                        self.skip_value(depth + 1)?;
                        if open == b'{' {
                            self.ws();
                            if self.peek() != Some(b':') {
                                return Err("expected `:` in a dictionary".to_owned());
                            }
                            self.pos += 1;
                            self.skip_value(depth + 1)?;
                        }
                        if self.after_item(close)? {
                            break;
                        }
                    }
                }
            }
            Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-') => {
                while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-'))
                {
                    self.pos += 1;
                }
            }
            Some(_) => return Err("unexpected character".to_owned()),
            None => return Err("header ends inside a value".to_owned()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference files written by the real libraries (safetensors 0.x `save`, gguf-py
    // `GGUFWriter`, onnx `helper.make_model`, numpy `np.save`), to pin the formats.
    const REF_SAFETENSORS: &[u8] = b"\
        \x90\x00\x00\x00\x00\x00\x00\x00{\"__metadata__\":{\"format\":\"pt\",\"hf_token\":\"\
        hf_abcdefghijklmnopqrstuvwxyzABCDEFGH\"},\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"da\
        ta_offsets\":[0,16]}}       \x00\x00\x00\x00\x00\x00\x80?\x00\x00\x00@\x00\x00@@";
    const REF_GGUF: &[u8] = b"\
        GGUF\x03\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\
        \x14\x00\x00\x00\x00\x00\x00\x00general.architecture\x08\x00\x00\x00\x05\x00\x00\x00\
        \x00\x00\x00\x00llama\x0c\x00\x00\x00\x00\x00\x00\x00general.name\x08\x00\x00\x00\
        \x04\x00\x00\x00\x00\x00\x00\x00tiny\x15\x00\x00\x00\x00\x00\x00\x00tokenizer.ggml.t\
        okens\x09\x00\x00\x00\x08\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\
        \x00\x00\x00\x00\x00<s>\x05\x00\x00\x00\x00\x00\x00\x00hello\x09\x00\x00\x00\x00\x00\
        \x00\x00hf_secret\x14\x00\x00\x00\x00\x00\x00\x00llama.context_length\x04\x00\x00\
        \x00\x80\x00\x00\x00\x06\x00\x00\x00\x00\x00\x00\x00nested\x09\x00\x00\x00\x09\x00\
        \x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\
        \x00\x01\x00\x00\x00\x02\x00\x00\x00\x05\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\
        \x03\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00t\x01\x00\x00\x00\x04\x00\x00\x00\
        \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\
        \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\
        \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\
        \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    const REF_ONNX: &[u8] = b"\
        \x08\x0e\x12\x0atrawl-test2\x09model doc:L\x0a\x1a\x0a\x01x\x12\x01y\"\x08Identity2\
        \x08node doc\x12\x01gR\x09graph docZ\x0f\x0a\x01x\x12\x0a\x0a\x08\x08\x01\x12\x04\
        \x0a\x02\x08\x01b\x0f\x0a\x01y\x12\x0a\x0a\x08\x08\x01\x12\x04\x0a\x02\x08\x01B\x04\
        \x0a\x00\x10\x11r\x1d\x0a\x07api_key\x12\x12sk-test-1234567890";
    const REF_NPY_F4: &[u8] = b"\
        \x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }     \
        \x20                                                      \x0a\x00\x00\xc0?\x00\x00 \
        @";
    const REF_NPY_OBJECT: &[u8] = b"\
        \x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (2,), }      \
        \x20                                                      \x0a\x80\x04\x95\x8f\x00\
        \x00\x00\x00\x00\x00\x00\x8c\x16numpy._core.multiarray\x94\x8c\x0c_reconstruct\x94\
        \x93\x94\x8c\x05numpy\x94\x8c\x07ndarray\x94\x93\x94K\x00\x85\x94C\x01b\x94\x87\x94R\
        \x94(K\x01K\x02\x85\x94h\x03\x8c\x05dtype\x94\x93\x94\x8c\x02O8\x94\x89\x88\x87\x94R\
        \x94(K\x03\x8c\x01|\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?t\x94b\x89]\x94(\x8c\
        \x01x\x94Net\x94b.";
    const REF_NPY_STRUCT: &[u8] = b"\
        \x93NUMPY\x01\x00v\x00{'descr': [('name', '|O'), ('v', '<i4')], 'fortran_order': Fal\
        se, 'shape': (2,), }                                   \x0a\x80\x04\x95\xf6\x00\x00\
        \x00\x00\x00\x00\x00\x8c\x16numpy._core.multiarray\x94\x8c\x0c_reconstruct\x94\x93\
        \x94\x8c\x05numpy\x94\x8c\x07ndarray\x94\x93\x94K\x00\x85\x94C\x01b\x94\x87\x94R\x94\
        (K\x01K\x02\x85\x94h\x03\x8c\x05dtype\x94\x93\x94\x8c\x03V12\x94\x89\x88\x87\x94R\
        \x94(K\x03\x8c\x01|\x94N\x8c\x04name\x94\x8c\x01v\x94\x86\x94}\x94(h\x11h\x0c\x8c\
        \x02O8\x94\x89\x88\x87\x94R\x94(K\x03h\x10NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?t\
        \x94bK\x00\x86\x94h\x12h\x0c\x8c\x02i4\x94\x89\x88\x87\x94R\x94(K\x03\x8c\x01<\x94NN\
        NJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t\x94bK\x08\x86\x94uK\x0cK\x01K\x1bt\x94b\
        \x89]\x94(K\x00K\x00\x86\x94K\x00K\x00\x86\x94et\x94b.";

    /// The value of each string as the file holds it at its offset (no escapes in these files).
    fn assert_offsets(data: &[u8], strings: &[MetaString]) {
        for s in strings {
            assert_eq!(
                data.get(s.offset..s.offset + s.value.len()),
                Some(&s.value[..]),
                "offset of {}",
                s.key
            );
        }
    }

    fn pairs(strings: &[MetaString]) -> Vec<(&str, &[u8])> {
        strings
            .iter()
            .map(|s| (s.key.as_str(), &s.value[..]))
            .collect()
    }

    // --- safetensors ---------------------------------------------------------------------

    fn safetensors_file(header: &str, data_len: usize) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.resize(out.len() + data_len, 0);
        out
    }

    #[test]
    fn safetensors_reference_file() {
        assert!(is_safetensors(REF_SAFETENSORS));
        let strings = safetensors_strings(REF_SAFETENSORS, 1 << 20).unwrap();
        assert_eq!(
            pairs(&strings),
            [
                ("__metadata__.format", &b"pt"[..]),
                (
                    "__metadata__.hf_token",
                    b"hf_abcdefghijklmnopqrstuvwxyzABCDEFGH"
                ),
            ]
        );
        assert_offsets(REF_SAFETENSORS, &strings);
    }

    #[test]
    fn safetensors_other_strings_and_escapes() {
        let header = r#"{"__metadata__": {"token": "a\"b\u00e9\ud83d\ude00\n", "n": "x"},
            "t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "note": "extra"},
            "odd": ["s", {"deep": "v"}, 1.5e3, true, null, false]}  "#;
        let file = safetensors_file(header, 4);
        assert!(is_safetensors(&file));
        let strings = safetensors_strings(&file, 1 << 20).unwrap();
        assert_eq!(
            pairs(&strings),
            [
                ("__metadata__.token", "a\"b\u{e9}\u{1F600}\n".as_bytes()),
                ("__metadata__.n", b"x"),
                ("t.note", b"extra"),
                ("odd[0]", b"s"),
                ("odd[1].deep", b"v"),
            ]
        );
        // The escaped value starts right after its opening quote.
        assert_eq!(&file[strings[0].offset..strings[0].offset + 3], br#"a\""#);
        assert_offsets(&file, &strings[1..]);
    }

    #[test]
    fn safetensors_malformed() {
        // Too short for the length prefix.
        assert!(safetensors_strings(b"\x02\x00", 100).is_err());
        // Header length larger than the file.
        let mut file = safetensors_file(r#"{"a":"b"}"#, 0);
        file[..8].copy_from_slice(&1000u64.to_le_bytes());
        assert!(!is_safetensors(&file));
        let err = safetensors_strings(&file, 1 << 20).unwrap_err();
        assert!(err.contains("larger than"), "{err}");
        // Length of 2^64 - 1.
        file[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(safetensors_strings(&file, usize::MAX).is_err());
        // Truncated JSON inside a header whose length fits.
        let file = safetensors_file(r#"{"__metadata__":{"k":"hf_"#, 0);
        let err = safetensors_strings(&file, 1 << 20).unwrap_err();
        assert!(err.contains("unterminated"), "{err}");
        // Header over the limit.
        let file = safetensors_file(r#"{"a":"b"}"#, 0);
        assert!(safetensors_strings(&file, 4).unwrap_err().contains("limit"));
        // Not an object, trailing garbage, deep nesting.
        assert!(safetensors_strings(&safetensors_file("[1]", 0), 100).is_err());
        assert!(safetensors_strings(&safetensors_file(r#"{"a":"b"} x"#, 0), 100).is_err());
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(5000), "]".repeat(5000));
        let err = safetensors_strings(&safetensors_file(&deep, 0), 1 << 20).unwrap_err();
        assert!(err.contains("deeply"), "{err}");
    }

    #[test]
    fn safetensors_detection() {
        assert!(!is_safetensors(b""));
        assert!(!is_safetensors(b"hello world, this is plain text"));
        assert!(!is_safetensors(REF_GGUF));
        assert!(!is_safetensors(REF_NPY_OBJECT));
        assert!(!is_safetensors(&safetensors_file("[]", 0)));
        assert!(is_safetensors(&safetensors_file("{}", 0)));
    }

    // --- GGUF ------------------------------------------------------------------------------

    /// A GGUF writer for tests: `wide` counts (version 2+) and either byte order.
    struct GgufFile {
        out: Vec<u8>,
        big: bool,
        wide: bool,
    }

    impl GgufFile {
        fn new(version: u32, big: bool, entries: u64) -> Self {
            let mut file = GgufFile {
                out: b"GGUF".to_vec(),
                big,
                wide: version >= 2,
            };
            file.u32(version);
            file.count(0); // tensors
            file.count(entries);
            file
        }

        fn uint(&mut self, v: u64, width: usize) -> &mut Self {
            if self.big {
                self.out.extend_from_slice(&v.to_be_bytes()[8 - width..]);
            } else {
                self.out.extend_from_slice(&v.to_le_bytes()[..width]);
            }
            self
        }

        fn u32(&mut self, v: u32) -> &mut Self {
            self.uint(u64::from(v), 4)
        }

        fn u64(&mut self, v: u64) -> &mut Self {
            self.uint(v, 8)
        }

        fn count(&mut self, v: u64) -> &mut Self {
            self.uint(v, if self.wide { 8 } else { 4 })
        }

        fn string(&mut self, s: &str) -> &mut Self {
            self.count(s.len() as u64);
            self.out.extend_from_slice(s.as_bytes());
            self
        }

        fn kv_string(&mut self, key: &str, value: &str) -> &mut Self {
            self.string(key).u32(GGUF_STRING).string(value)
        }

        fn kv_u32(&mut self, key: &str, value: u32) -> &mut Self {
            self.string(key).u32(4).u32(value)
        }

        fn kv_strings(&mut self, key: &str, items: &[&str]) -> &mut Self {
            self.string(key).u32(GGUF_ARRAY).u32(GGUF_STRING);
            self.count(items.len() as u64);
            for item in items {
                self.string(item);
            }
            self
        }
    }

    fn sample_gguf(version: u32, big: bool) -> Vec<u8> {
        let mut file = GgufFile::new(version, big, 5);
        file.kv_string("general.name", "tiny")
            .kv_u32("general.alignment", 32)
            .kv_strings("tokenizer.ggml.tokens", &["<s>", "", "hf_secret"])
            .kv_string("hf.token", "hf_abc");
        // An array of arrays of strings.
        file.string("nested")
            .u32(GGUF_ARRAY)
            .u32(GGUF_ARRAY)
            .count(2);
        file.u32(GGUF_STRING).count(1).string("x");
        file.u32(GGUF_STRING).count(2).string("y").string("z");
        file.out.extend_from_slice(&[0u8; 64]); // tensor infos, never read
        file.out
    }

    #[test]
    fn gguf_reference_file() {
        assert!(is_gguf(REF_GGUF));
        let (strings, warnings) = gguf_strings(REF_GGUF, &GgufLimits::default()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            pairs(&strings),
            [
                ("general.architecture", &b"llama"[..]),
                ("general.name", b"tiny"),
                ("tokenizer.ggml.tokens[0]", b"<s>"),
                ("tokenizer.ggml.tokens[1]", b"hello"),
                ("tokenizer.ggml.tokens[2]", b"hf_secret"),
            ]
        );
        assert_offsets(REF_GGUF, &strings);
    }

    #[test]
    fn gguf_versions_and_byte_orders() {
        let expected = [
            ("general.name", &b"tiny"[..]),
            ("tokenizer.ggml.tokens[0]", b"<s>"),
            ("tokenizer.ggml.tokens[2]", b"hf_secret"),
            ("hf.token", b"hf_abc"),
            ("nested[0][0]", b"x"),
            ("nested[1][0]", b"y"),
            ("nested[1][1]", b"z"),
        ];
        for (version, big) in [(3, false), (2, false), (1, false), (3, true), (2, true)] {
            let file = sample_gguf(version, big);
            assert!(is_gguf(&file), "v{version} big={big}");
            let (strings, warnings) = gguf_strings(&file, &GgufLimits::default()).unwrap();
            assert!(warnings.is_empty(), "v{version} big={big}: {warnings:?}");
            assert_eq!(pairs(&strings), expected, "v{version} big={big}");
            assert_offsets(&file, &strings);
        }
    }

    #[test]
    fn gguf_header_errors() {
        assert!(!is_gguf(b"GGUF"));
        assert!(!is_gguf(b"GGUF\x07\x00\x00\x00"));
        assert!(!is_gguf(b"PK\x03\x04"));
        assert!(gguf_strings(b"GGUF\x03\x00\x00\x00\x00", &GgufLimits::default()).is_err());
        assert!(gguf_strings(b"not gguf", &GgufLimits::default()).is_err());
        // A header with no entries at all is fine.
        let file = GgufFile::new(3, false, 0).out;
        assert_eq!(
            gguf_strings(&file, &GgufLimits::default()).unwrap(),
            (vec![], vec![])
        );
    }

    #[test]
    fn gguf_claims_two_to_the_sixty_entries() {
        let mut file = GgufFile::new(3, false, 1 << 60);
        file.kv_string("general.name", "tiny")
            .kv_string("k", "hf_abc");
        for limits in [
            GgufLimits::default(),
            GgufLimits {
                max_entries: u64::MAX,
                ..GgufLimits::default()
            },
        ] {
            let (strings, warnings) = gguf_strings(&file.out, &limits).unwrap();
            assert_eq!(strings.len(), 2);
            assert!(
                warnings
                    .iter()
                    .any(|w| w.contains("stopped after 2 of 1152921504606846976")),
                "{warnings:?}"
            );
        }
        // Many real (tiny) entries stop at `max_entries`.
        let mut file = GgufFile::new(3, false, 1 << 60);
        for _ in 0..100 {
            file.kv_u32("k", 1);
        }
        let limits = GgufLimits {
            max_entries: 10,
            ..GgufLimits::default()
        };
        let (_, warnings) = gguf_strings(&file.out, &limits).unwrap();
        assert!(warnings[0].contains("reading at most 10"), "{warnings:?}");
    }

    #[test]
    fn gguf_hostile_lengths() {
        // A string length of 2^63 after a good entry.
        let mut file = GgufFile::new(3, false, 2);
        file.kv_string("a", "first")
            .string("b")
            .u32(GGUF_STRING)
            .u64(1 << 63);
        file.out.extend_from_slice(b"short");
        let (strings, warnings) = gguf_strings(&file.out, &GgufLimits::default()).unwrap();
        assert_eq!(pairs(&strings), [("a", &b"first"[..])]);
        assert!(warnings[0].contains("runs past the end"), "{warnings:?}");

        // A key length of 2^63.
        let mut file = GgufFile::new(3, false, 1);
        file.u64(1 << 63);
        let (strings, warnings) = gguf_strings(&file.out, &GgufLimits::default()).unwrap();
        assert!(strings.is_empty() && warnings.len() == 1, "{warnings:?}");

        // Arrays claiming 2^62 items: strings, fixed-size (overflowing u64 bytes) and arrays.
        for item_type in [GGUF_STRING, 10, GGUF_ARRAY] {
            let mut file = GgufFile::new(3, false, 1);
            file.string("arr")
                .u32(GGUF_ARRAY)
                .u32(item_type)
                .u64(1 << 62);
            file.string("only one");
            let (_, warnings) = gguf_strings(&file.out, &GgufLimits::default()).unwrap();
            assert_eq!(warnings.len(), 1, "type {item_type}: {warnings:?}");
        }

        // Arrays nested a thousand deep.
        let mut file = GgufFile::new(3, false, 1);
        file.string("deep").u32(GGUF_ARRAY);
        for _ in 0..1000 {
            file.u32(GGUF_ARRAY).u64(1);
        }
        let (_, warnings) = gguf_strings(&file.out, &GgufLimits::default()).unwrap();
        assert!(warnings[0].contains("nested deeper"), "{warnings:?}");

        // Unknown value type.
        let mut file = GgufFile::new(3, false, 2);
        file.kv_string("a", "x").string("b").u32(99).u64(0);
        let (strings, warnings) = gguf_strings(&file.out, &GgufLimits::default()).unwrap();
        assert_eq!(strings.len(), 1);
        assert!(
            warnings[0].contains("unknown value type 99"),
            "{warnings:?}"
        );
    }

    #[test]
    fn gguf_limits() {
        let file = sample_gguf(3, false);
        let limits = GgufLimits {
            max_array_items: 1,
            ..GgufLimits::default()
        };
        let (strings, warnings) = gguf_strings(&file, &limits).unwrap();
        // One item per array, and the walk goes on to the entries after the array.
        let keys: Vec<_> = strings.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "general.name",
                "tokenizer.ggml.tokens[0]",
                "hf.token",
                "nested[0][0]"
            ]
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");

        let limits = GgufLimits {
            max_strings: 2,
            ..GgufLimits::default()
        };
        let (strings, warnings) = gguf_strings(&file, &limits).unwrap();
        assert_eq!(strings.len(), 2);
        assert!(warnings[0].contains("limit of 2 strings"), "{warnings:?}");
    }

    // --- ONNX ------------------------------------------------------------------------------

    fn pb_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A protobuf message writer for tests.
    #[derive(Default)]
    struct Pb(Vec<u8>);

    impl Pb {
        fn uint(mut self, field: u64, v: u64) -> Self {
            pb_varint(&mut self.0, field << 3);
            pb_varint(&mut self.0, v);
            self
        }

        fn bytes(mut self, field: u64, bytes: &[u8]) -> Self {
            pb_varint(&mut self.0, (field << 3) | 2);
            pb_varint(&mut self.0, bytes.len() as u64);
            self.0.extend_from_slice(bytes);
            self
        }

        fn msg(self, field: u64, message: Pb) -> Self {
            self.bytes(field, &message.0)
        }

        fn entry(self, field: u64, key: &str, value: &str) -> Self {
            let entry = Pb::default()
                .bytes(1, key.as_bytes())
                .bytes(2, value.as_bytes());
            self.msg(field, entry)
        }
    }

    fn sample_onnx() -> Vec<u8> {
        let tensor = Pb::default()
            .uint(1, 4096)
            .uint(2, 1)
            .bytes(8, b"weight")
            .bytes(9, &[0x5a; 4096 * 4]); // raw_data, skipped
        let subgraph = Pb::default()
            .msg(
                1,
                Pb::default().bytes(4, b"Relu").bytes(6, b"inner node doc"),
            )
            .bytes(10, b"then doc");
        let node = Pb::default()
            .bytes(1, b"x")
            .bytes(2, b"y")
            .bytes(4, b"If")
            .msg(
                5,
                Pb::default()
                    .bytes(1, b"then_branch")
                    .uint(20, 5)
                    .msg(6, subgraph),
            )
            .bytes(6, b"node doc")
            .entry(9, "owner", "node-owner");
        let graph = Pb::default()
            .msg(1, Pb::default().bytes(4, b"Identity"))
            .msg(1, node)
            .bytes(2, b"main")
            .msg(5, tensor)
            .bytes(10, b"graph doc")
            .entry(16, "graph_key", "graph-value");
        let function = Pb::default()
            .bytes(1, b"f")
            .msg(7, Pb::default().bytes(6, b"function node doc"))
            .bytes(8, b"function doc");
        let training = Pb::default().msg(2, Pb::default().bytes(10, b"algorithm doc"));
        Pb::default()
            .uint(1, 10)
            .bytes(2, b"trawl-test")
            .bytes(3, b"1.0")
            .bytes(4, b"ai.trawl")
            .uint(5, 1)
            .bytes(6, b"model doc")
            .msg(7, graph)
            .msg(8, Pb::default().bytes(1, b"").uint(2, 21))
            .entry(14, "api_key", "sk-test-1234567890")
            .entry(14, "", "no key")
            .msg(20, training)
            .msg(25, function)
            .0
    }

    #[test]
    fn onnx_reference_file() {
        assert!(is_onnx(REF_ONNX));
        let strings = onnx_strings(REF_ONNX).unwrap();
        assert_eq!(
            pairs(&strings),
            [
                ("producer_name", &b"trawl-test"[..]),
                ("doc_string", b"model doc"),
                ("graph.node[0].doc_string", b"node doc"),
                ("graph.name", b"g"),
                ("graph.doc_string", b"graph doc"),
                ("metadata_props.api_key", b"sk-test-1234567890"),
            ]
        );
        assert_offsets(REF_ONNX, &strings);
    }

    #[test]
    fn onnx_hand_built_model() {
        let file = sample_onnx();
        assert!(is_onnx(&file));
        let strings = onnx_strings(&file).unwrap();
        assert_eq!(
            pairs(&strings),
            [
                ("producer_name", &b"trawl-test"[..]),
                ("producer_version", b"1.0"),
                ("domain", b"ai.trawl"),
                ("doc_string", b"model doc"),
                (
                    "graph.node[1].attribute[0].g.node[0].doc_string",
                    b"inner node doc"
                ),
                ("graph.node[1].attribute[0].g.doc_string", b"then doc"),
                ("graph.node[1].doc_string", b"node doc"),
                ("graph.node[1].metadata_props.owner", b"node-owner"),
                ("graph.name", b"main"),
                ("graph.doc_string", b"graph doc"),
                ("graph.metadata_props.graph_key", b"graph-value"),
                ("metadata_props.api_key", b"sk-test-1234567890"),
                ("metadata_props.", b"no key"),
                ("training_info[0].algorithm.doc_string", b"algorithm doc"),
                ("functions[0].node[0].doc_string", b"function node doc"),
                ("functions[0].doc_string", b"function doc"),
            ]
        );
        assert_offsets(&file, &strings);
    }

    #[test]
    fn onnx_malformed() {
        let file = sample_onnx();
        // Truncated anywhere inside the graph: a length runs past the end.
        let err = onnx_strings(&file[..file.len() / 2]).unwrap_err();
        assert!(err.contains("runs past the end"), "{err}");
        assert!(!is_onnx(&file[..file.len() / 2]));
        // A nested length larger than its parent message.
        let mut inner = Vec::new();
        pb_varint(&mut inner, (10 << 3) | 2);
        pb_varint(&mut inner, 1 << 40);
        let model = Pb::default().uint(1, 8).bytes(7, &inner).0;
        assert!(onnx_strings(&model).is_err());
        // Varints of more than 64 bits; group wire types; field number 0.
        assert!(
            onnx_strings(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])
                .is_err()
        );
        assert!(onnx_strings(&[0x0b, 0x0c]).is_err());
        assert!(onnx_strings(&[0x02, 0x00]).is_err());
        assert!(onnx_strings(b"").is_err());
        // Subgraphs nested 500 deep.
        let mut graph = Pb::default().bytes(10, b"bottom");
        for _ in 0..500 {
            let attribute = Pb::default().msg(6, graph);
            graph = Pb::default().msg(1, Pb::default().msg(5, attribute));
        }
        let model = Pb::default().uint(1, 8).msg(7, graph).0;
        let err = onnx_strings(&model).unwrap_err();
        assert!(err.contains("nested deeper"), "{err}");
    }

    #[test]
    fn onnx_detection() {
        let rejected: [&[u8]; 10] = [
            b"",
            b"hello world",
            b"# README\n\nsome text",
            b"{\"json\": true}",
            b"PK\x03\x04\x14\x00\x00\x00",
            b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94.",
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR",
            b"\x08\x07", // an ir_version alone
            b"(\x05\x12\x01a",
            REF_NPY_OBJECT,
        ];
        for data in rejected {
            assert!(!is_onnx(data), "{data:?}");
        }
        assert!(!is_onnx(REF_GGUF));
        assert!(!is_onnx(REF_SAFETENSORS));
        // ir_version out of range.
        assert!(!is_onnx(
            &Pb::default().uint(1, 1000).msg(7, Pb::default()).0
        ));
        assert!(is_onnx(&Pb::default().uint(1, 3).msg(7, Pb::default()).0));
    }

    // --- .npy ------------------------------------------------------------------------------

    fn npy_file(major: u8, header: &str, payload: &[u8]) -> Vec<u8> {
        let mut out = b"\x93NUMPY".to_vec();
        out.extend_from_slice(&[major, 0]);
        if major == 1 {
            out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn npy_reference_files() {
        let f4 = npy_header(REF_NPY_F4).unwrap();
        assert_eq!(
            (f4.dtype.as_str(), f4.object, f4.data_offset),
            ("<f4", false, 128)
        );
        assert!(f4.header.starts_with("{'descr': '<f4'") && f4.header.ends_with('}'));

        let object = npy_header(REF_NPY_OBJECT).unwrap();
        assert_eq!((object.dtype.as_str(), object.object), ("|O", true));
        assert_eq!(REF_NPY_OBJECT[object.data_offset], 0x80); // the pickle's PROTO opcode

        let structured = npy_header(REF_NPY_STRUCT).unwrap();
        assert_eq!(structured.dtype, "[('name', '|O'), ('v', '<i4')]");
        assert!(structured.object);
        assert_eq!(REF_NPY_STRUCT[structured.data_offset], 0x80);
    }

    #[test]
    fn npy_versions_and_dtypes() {
        for major in [1, 2, 3] {
            let file = npy_file(
                major,
                "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }\n",
                b"\x80\x02",
            );
            assert!(is_npy(&file));
            let header = npy_header(&file).unwrap();
            assert!(header.object);
            assert_eq!(&file[header.data_offset..], b"\x80\x02");
        }
        let cases = [
            ("{'descr': '<f8', 'shape': ()}", "<f8", false),
            ("{\"shape\": (3, 4), \"descr\": \"O\"}", "O", true),
            ("{'descr': 'object'}", "object", true),
            (
                "{'descr': [('O', '<f4'), ('b', [('c', '|O', (2,))])], 'shape': (1,)}",
                "[('O', '<f4'), ('b', [('c', '|O', (2,))])]",
                true,
            ),
            (
                "{'descr': [('O', '<f4'), (('title', 'n'), '|S5')]}",
                "[('O', '<f4'), (('title', 'n'), '|S5')]",
                false,
            ),
            ("{'descr': ('|O', (2, 2))}", "('|O', (2, 2))", true),
            ("{'descr': '<M8[ns]'}", "<M8[ns]", false),
        ];
        for (header, dtype, object) in cases {
            let parsed = npy_header(&npy_file(1, header, b"")).unwrap();
            assert_eq!(
                (parsed.dtype.as_str(), parsed.object),
                (dtype, object),
                "{header}"
            );
        }
    }

    #[test]
    fn npy_malformed() {
        // Absurd header lengths.
        let mut file = npy_file(1, "{'descr': '<f4'}", b"");
        file[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(npy_header(&file).unwrap_err().contains("past the end"));
        let mut file = npy_file(2, "{'descr': '<f4'}", b"");
        file[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(npy_header(&file).unwrap_err().contains("past the end"));
        // Truncated before the length, unknown version, not a dict, no descr, bad literals.
        assert!(npy_header(b"\x93NUMPY\x01\x00\x05").is_err());
        assert!(npy_header(b"\x93NUMPY").is_err());
        assert!(npy_header(&npy_file(1, "{'descr': '<f4'}", b"")[..]).is_ok());
        let mut file = npy_file(1, "{'descr': '<f4'}", b"");
        file[6] = 9;
        assert!(npy_header(&file).unwrap_err().contains("version 9.0"));
        for header in [
            "['descr', '<f4']",
            "{'shape': (1,)}",
            "{'descr': '<f4",
            "{'descr' '<f4'}",
            "{'descr': [('a', '<f4')",
            "{'descr': @}",
        ] {
            assert!(npy_header(&npy_file(1, header, b"")).is_err(), "{header}");
        }
        let deep = format!(
            "{{'shape': {}1{}, 'descr': '<f4'}}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        assert!(npy_header(&npy_file(2, &deep, b""))
            .unwrap_err()
            .contains("deeply"));
        assert!(!is_npy(b"\x93NUMP"));
        assert!(npy_header(b"plain text").is_err());
    }

    // --- robustness ------------------------------------------------------------------------

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Runs every function on `data`; raw-format strings must sit at their offsets.
    fn run_all(data: &[u8]) {
        let _ = is_safetensors(data);
        if let Ok(strings) = safetensors_strings(data, 1 << 20) {
            assert!(strings.iter().all(|s| s.offset < data.len()));
        }
        let _ = is_gguf(data);
        if let Ok((strings, _)) = gguf_strings(data, &GgufLimits::default()) {
            assert_offsets(data, &strings);
        }
        let _ = is_onnx(data);
        if let Ok(strings) = onnx_strings(data) {
            assert_offsets(data, &strings);
        }
        let _ = is_npy(data);
        if let Ok(header) = npy_header(data) {
            assert!(header.data_offset <= data.len());
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let prefixes: [&[u8]; 8] = [
            b"",
            b"GGUF\x03\x00\x00\x00",
            b"GGUF\x01\x00\x00\x00\x02\x00\x00\x00",
            b"\x93NUMPY\x01\x00",
            b"\x93NUMPY\x02\x00",
            b"\x40\x00\x00\x00\x00\x00\x00\x00{\"",
            b"\x08\x07\x3a",
            b"\x08\x07\x72",
        ];
        for i in 0..2000 {
            let mut data = prefixes[i % prefixes.len()].to_vec();
            let len = rng.below(300);
            data.extend((0..len).map(|_| rng.next() as u8));
            run_all(&data);
        }
    }

    #[test]
    fn mutated_files_never_panic() {
        let seeds = [
            REF_SAFETENSORS.to_vec(),
            REF_GGUF.to_vec(),
            REF_ONNX.to_vec(),
            REF_NPY_F4.to_vec(),
            REF_NPY_OBJECT.to_vec(),
            REF_NPY_STRUCT.to_vec(),
            safetensors_file(
                r#"{"__metadata__":{"token":"a\u00e9\"b"},"t":{"dtype":"F32"}}"#,
                8,
            ),
            sample_gguf(3, false),
            sample_gguf(1, false),
            sample_gguf(3, true),
            sample_onnx(),
            {
                // The sample model without its big initializer, so mutations hit structure.
                let graph = Pb::default()
                    .msg(
                        1,
                        Pb::default()
                            .bytes(6, b"d")
                            .msg(5, Pb::default().msg(6, Pb::default().bytes(10, b"g"))),
                    )
                    .bytes(10, b"graph doc");
                Pb::default()
                    .uint(1, 9)
                    .bytes(6, b"doc")
                    .msg(7, graph)
                    .entry(14, "k", "v")
                    .0
            },
        ];
        let mut rng = XorShift(0x0123_4567_89AB_CDEF);
        for seed in &seeds {
            for _ in 0..2000 {
                let mut data = seed.clone();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(data.len());
                    match rng.below(6) {
                        0 if !data.is_empty() => data[at] ^= 1 << rng.below(8),
                        1 if !data.is_empty() => data[at] = [0x00, 0xff, 0x80, 0x7f][rng.below(4)],
                        2 => data.truncate(at),
                        3 => {
                            let end = (at + 8).min(data.len());
                            data[at..end].fill(0xff);
                        }
                        4 => {
                            let byte = rng.next() as u8;
                            data.insert(at, byte);
                        }
                        _ => {
                            let end = (at + 1 + rng.below(16)).min(data.len());
                            let copy = data[at..end].to_vec();
                            data.splice(at..at, copy);
                        }
                    }
                }
                run_all(&data);
            }
        }
    }
}
