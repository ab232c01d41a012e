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

    fn u32(&mut self) -> Option<u32> {
        let bytes: [u8; 4] = self
            .data
            .get(self.pos..self.pos.checked_add(4)?)?
            .try_into()
            .ok()?;
        self.pos += 4;
        Some(if self.big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        })
    }

    fn u64(&mut self) -> Option<u64> {
        let bytes: [u8; 8] = self
            .data
            .get(self.pos..self.pos.checked_add(8)?)?
            .try_into()
            .ok()?;
        self.pos += 8;
        Some(if self.big_endian {
            u64::from_be_bytes(bytes)
        } else {
            u64::from_le_bytes(bytes)
        })
    }

    fn count(&mut self) -> Option<u64> {
        if self.wide {
            self.u64()
        } else {
            self.u32().map(u64::from)
        }
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
                    let segment = format_args!(".attribute[{attributes}]");
                    self.child(attribute, path, segment, depth + 1, Self::attribute)?;
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
                    let segment = format_args!(".graphs[{graphs}]");
                    self.child(graph, path, segment, depth + 1, Self::graph)?;
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
            10,
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
