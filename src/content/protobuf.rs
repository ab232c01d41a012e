//! A reader of the protobuf wire format: fields of one message at a time, length-delimited
//! payloads borrowed (never copied), every length checked against the bytes of its message.
//!
//! [`StringWalk`] reads the strings of a message whose schema is not known (or not worth
//! writing down, such as a TensorFlow graph): each length-delimited payload is either text or
//! a nested message, decided by its bytes, with map entries giving their key to the strings
//! under them.

use crate::content::json::{dotted, JsonEvent, JsonReader};
use crate::content::model::MetaString;

/// A protobuf field value; length-delimited payloads are borrowed, never copied.
pub(crate) enum ProtoValue<'a> {
    Varint(u64),
    Fixed,
    Bytes { offset: usize, bytes: &'a [u8] },
}

/// The fields of one protobuf message: `data` is the whole file, `pos..end` the message.
#[derive(Clone)]
pub(crate) struct ProtoMessage<'a> {
    data: &'a [u8],
    pub(crate) pos: usize,
    end: usize,
}

impl<'a> ProtoMessage<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        ProtoMessage {
            data,
            pos: 0,
            end: data.len(),
        }
    }

    /// The message in `data[start..end]` (offsets stay offsets in `data`); an empty message
    /// when the range does not fit.
    pub(crate) fn range(data: &'a [u8], start: usize, end: usize) -> Self {
        let end = end.min(data.len());
        ProtoMessage {
            data,
            pos: start.min(end),
            end,
        }
    }

    /// Whether every byte of the message has been read.
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.end
    }

    pub(crate) fn nested(&self, offset: usize, bytes: &[u8]) -> Self {
        ProtoMessage {
            data: self.data,
            pos: offset,
            end: offset + bytes.len(),
        }
    }

    pub(crate) fn varint(&mut self) -> Option<u64> {
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
    pub(crate) fn next_field(&mut self) -> Result<Option<(u64, ProtoValue<'a>)>, String> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let at = self.pos;
        let bad = |what: &str| format!("{what} at byte {at}");
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

/// How deeply [`StringWalk`] follows nested messages; a payload deeper than this is read as
/// bytes (its text is still scanned).
pub(crate) const WALK_MAX_DEPTH: usize = 32;

/// Longest map key taken as the key of the strings under it.
const MAX_MAP_KEY: usize = 256;

/// Shortest run of printable bytes that makes a payload which is neither text nor a message
/// worth scanning (no credential is shorter).
const MIN_TEXT_RUN: usize = 8;

/// The strings of protobuf messages read without their schema.
///
/// A length-delimited payload that is printable UTF-8 is a string. Otherwise it is walked as
/// a nested message, and if that fails (a field runs past its end, a bad tag, too deep) the
/// strings it gave are taken back and the payload is a string after all when it holds a
/// printable run of [`MIN_TEXT_RUN`] bytes (a bytes field: serialized data, a pickled blob),
/// else it is skipped (numbers, tensor data). A message shaped like a map entry (field 1
/// text, then field 2, nothing else) names the strings under its field 2: they get the key
/// `<key>.<field 1>`.
///
/// Each byte is read at most three times per level that encloses it (printable check, walk,
/// text-run check), and levels are bounded by [`WALK_MAX_DEPTH`]: the work is linear in the
/// input. At most `max_strings` strings are kept; [`StringWalk::full`] says the limit was met.
pub(crate) struct StringWalk {
    /// The strings found, offsets in the walked data.
    pub(crate) out: Vec<MetaString>,
    max_strings: usize,
    /// The string limit was met: later strings were dropped.
    pub(crate) full: bool,
    /// A payload nested deeper than [`WALK_MAX_DEPTH`] was read as bytes.
    pub(crate) too_deep: bool,
    /// The record strings are pushed with.
    pub(crate) record: Option<u64>,
}

impl StringWalk {
    pub(crate) fn new(max_strings: usize) -> Self {
        StringWalk {
            out: Vec::new(),
            max_strings,
            full: false,
            too_deep: false,
            record: None,
        }
    }

    /// Keeps one string (empty ones are dropped).
    pub(crate) fn push(&mut self, key: &str, offset: usize, bytes: &[u8], is_key: bool) {
        if bytes.is_empty() || self.full {
            return;
        }
        if self.out.len() >= self.max_strings {
            self.full = true;
            return;
        }
        self.out.push(MetaString {
            key: key.to_owned(),
            value: bytes.to_vec(),
            offset,
            is_key,
            record: self.record,
            row: None,
        });
    }

    /// The strings of `message`, under `key`. On an error, what the message gave is taken
    /// back.
    pub(crate) fn message(
        &mut self,
        mut message: ProtoMessage<'_>,
        key: &str,
        depth: usize,
    ) -> Result<(), String> {
        if depth > WALK_MAX_DEPTH {
            self.too_deep = true;
            return Err(format!(
                "messages nested deeper than {WALK_MAX_DEPTH} at byte {}",
                message.pos
            ));
        }
        let mark = self.out.len();
        let entry_key = map_entry_key(&message);
        let mut inner = String::new();
        let result = loop {
            if self.full {
                break Ok(());
            }
            let (number, value) = match message.next_field() {
                Ok(Some(field)) => field,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            let ProtoValue::Bytes { offset, bytes } = value else {
                continue;
            };
            let under = match entry_key {
                Some(name) if number == 2 => {
                    if inner.is_empty() {
                        inner = join_key(key, &String::from_utf8_lossy(name));
                    }
                    inner.as_str()
                }
                _ => key,
            };
            self.payload(&message, offset, bytes, under, depth);
        };
        if result.is_err() {
            self.out.truncate(mark);
        }
        result
    }

    /// A length-delimited payload at `offset` of `parent`'s data: text, a nested message, or
    /// bytes with text in them.
    pub(crate) fn payload(
        &mut self,
        parent: &ProtoMessage<'_>,
        offset: usize,
        bytes: &[u8],
        key: &str,
        depth: usize,
    ) {
        if bytes.is_empty() {
            return;
        }
        if is_text(bytes) {
            self.push(key, offset, bytes, false);
            return;
        }
        if self
            .message(parent.nested(offset, bytes), key, depth + 1)
            .is_err()
            && has_text_run(bytes)
        {
            self.push(key, offset, bytes, false);
        }
    }
}

impl StringWalk {
    /// The strings of the JSON document `bytes` (at `offset`), each under `key` joined with
    /// its path, object keys as keys' names; false (nothing kept) when it is not JSON.
    /// Offsets are those of each string's first byte.
    pub(crate) fn json(&mut self, key: &str, offset: usize, bytes: &[u8]) -> bool {
        let mark = self.out.len();
        let mut reader = JsonReader::new(bytes, 0, JSON_MAX_DEPTH);
        loop {
            let (s, is_key) = match reader.next() {
                Ok(Some(JsonEvent::String(s))) => (s, false),
                Ok(Some(JsonEvent::Key(k))) => (k, true),
                Ok(Some(_)) => continue,
                Ok(None) => return true,
                Err(_) => {
                    self.out.truncate(mark);
                    return false;
                }
            };
            if s.is_empty() {
                continue;
            }
            let path = dotted(reader.path());
            let under = match (key.is_empty(), path.is_empty()) {
                (_, true) => key.to_owned(),
                (true, false) => path,
                (false, false) if path.starts_with('[') => format!("{key}{path}"),
                (false, false) => format!("{key}.{path}"),
            };
            self.push(&under, offset + s.start(), &s.value(), is_key);
        }
    }
}

/// How deeply a JSON value inside a protobuf may nest.
const JSON_MAX_DEPTH: usize = 64;

/// `prefix.name`, or `name` alone.
pub(crate) fn join_key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Field 1 of a message shaped like a map entry: field 1 printable text, field 2, nothing
/// more (reads at most three fields ahead).
fn map_entry_key<'a>(message: &ProtoMessage<'a>) -> Option<&'a [u8]> {
    let mut ahead = message.clone();
    let Ok(Some((1, ProtoValue::Bytes { bytes: name, .. }))) = ahead.next_field() else {
        return None;
    };
    let Ok(Some((2, _))) = ahead.next_field() else {
        return None;
    };
    let named = ahead.at_end() && name.len() <= MAX_MAP_KEY && is_text(name);
    named.then_some(name)
}

/// Printable UTF-8: no control character but tab, newline and carriage return.
pub(crate) fn is_text(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    text.chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
}

/// Whether `bytes` holds [`MIN_TEXT_RUN`] printable ASCII bytes in a row.
pub(crate) fn has_text_run(bytes: &[u8]) -> bool {
    let mut run = 0;
    for &b in bytes {
        if (0x20..0x7f).contains(&b) {
            run += 1;
            if run >= MIN_TEXT_RUN {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![number << 3 | 2, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    fn walk(data: &[u8]) -> StringWalk {
        let mut walk = StringWalk::new(100);
        walk.message(ProtoMessage::new(data), "top", 0).unwrap();
        walk
    }

    #[test]
    fn text_nested_messages_and_map_entries() {
        // A node: name, and an attr map entry "value" -> { tensor { string_val } }.
        let tensor = field(8, b"the secret value");
        let mut entry = field(1, b"value");
        entry.extend(field(2, &field(4, &tensor)));
        let mut node = field(1, b"Const");
        node.extend(field(5, &entry));
        let data = field(1, &node);
        let w = walk(&data);
        let got: Vec<(&str, &[u8])> = w
            .out
            .iter()
            .map(|s| (s.key.as_str(), &s.value[..]))
            .collect();
        assert_eq!(
            got,
            [
                ("top", &b"Const"[..]),
                ("top", b"value"),
                ("top.value", b"the secret value")
            ]
        );
        for s in &w.out {
            assert_eq!(&data[s.offset..s.offset + s.value.len()], &s.value[..]);
        }
    }

    #[test]
    fn bytes_that_are_not_a_message_are_text_when_they_hold_a_run() {
        // Field 1 with a payload that fails as a message (wire type 7) but holds text.
        let data = field(1, b"\x0f\x00 some text here");
        assert_eq!(walk(&data).out[0].value, b"\x0f\x00 some text here");
        // Numbers only: skipped.
        assert!(walk(&field(1, b"\x0f\x01\x02\x03")).out.is_empty());
    }

    #[test]
    fn a_failed_nested_message_takes_back_its_strings() {
        // A message whose first field is text and whose second runs past its end: its text
        // comes back once, as part of the payload read as bytes.
        let mut inner = field(1, b"inner text");
        inner.extend_from_slice(&[0x12, 0x7f]);
        let w = walk(&field(2, &inner));
        assert_eq!(w.out.len(), 1);
        assert_eq!(w.out[0].value, inner);
    }

    #[test]
    fn the_string_limit_is_kept() {
        let mut data = Vec::new();
        for i in 0..50u8 {
            data.extend(field(1, &[b'a' + i % 26; 3]));
        }
        let mut w = StringWalk::new(10);
        w.message(ProtoMessage::new(&data), "k", 0).unwrap();
        assert_eq!(w.out.len(), 10);
        assert!(w.full);
    }
}
