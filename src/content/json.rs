//! A JSON pull reader that keeps positions, shared by notebooks and safetensors headers.
//!
//! [`JsonReader`] yields [`JsonEvent`]s one at a time with an explicit stack (no recursion; the
//! nesting is capped and deeper input is an error), keeps the [path](JsonReader::path) of the
//! current value, and gives each string (value or key) with the raw offset of its first content
//! byte and an [`OffsetMap`] from decoded bytes back to the raw text. Escapes are decoded as JSON
//! says, surrogate pairs included; a lone surrogate becomes U+FFFD. serde_json forgets
//! positions, which is why this exists.
//!
//! Beyond strict JSON it accepts `NaN`, `Infinity` and `-Infinity` (Python's `json` writes them)
//! and raw control characters inside strings; numbers are scanned, not validated.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

/// Why the input is not JSON, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// What is wrong.
    pub what: &'static str,
    /// Byte offset in the input.
    pub at: usize,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

/// One step through the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonEvent<'a> {
    /// `{`: the path is the object's.
    ObjectStart,
    /// `}`.
    ObjectEnd,
    /// `[`: the path is the array's.
    ArrayStart,
    /// `]`.
    ArrayEnd,
    /// An object key; the value that follows has it as the last item of its path.
    Key(JsonString<'a>),
    /// A string value.
    String(JsonString<'a>),
    /// A number, `true`, `false`, `null`, `NaN` or an infinity.
    Scalar,
}

/// Where a value sits: object keys (decoded, lossy UTF-8) and array indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathItem {
    /// A member of an object.
    Key(String),
    /// An element of an array.
    Index(usize),
}

/// A JSON string as it sits in the input, checked but not yet decoded: decoding is left to
/// the caller, who may borrow it ([`JsonString::value`] copies nothing when there are no
/// escapes) or decode it straight into a buffer of its own ([`JsonString::decode_into`]), so
/// that a large string is never held twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonString<'a> {
    /// The raw bytes between the quotes.
    raw: &'a [u8],
    /// Raw offset of `raw[0]` in the input.
    start: usize,
    /// Whether `raw` holds a backslash.
    escaped: bool,
}

impl<'a> JsonString<'a> {
    /// Raw offset of the first content byte (the byte after the opening quote).
    pub fn start(&self) -> usize {
        self.start
    }

    /// Whether the string is `""`.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The decoded bytes (UTF-8 unless the raw text was not), borrowed when there are no
    /// escapes.
    pub fn value(&self) -> Cow<'a, [u8]> {
        if !self.escaped {
            return Cow::Borrowed(self.raw);
        }
        let mut out = Vec::with_capacity(self.raw.len());
        self.decode_into(&mut out);
        Cow::Owned(out)
    }

    /// The map from decoded offsets back to the input.
    pub fn map(&self) -> OffsetMap {
        if !self.escaped {
            return OffsetMap::linear(self.start);
        }
        self.decode_into(&mut Vec::new())
    }

    /// Appends the decoded bytes to `out` and returns the map from offsets in them (0 at
    /// the first appended byte) back to the input.
    pub fn decode_into(&self, out: &mut Vec<u8>) -> OffsetMap {
        let mut map = OffsetMap::linear(self.start);
        let raw = self.raw;
        let base = out.len();
        let mut i = 0;
        while i < raw.len() {
            // Escapes often come in runs: look for the next one only past literal bytes.
            let next = if raw[i] == b'\\' {
                Some(0)
            } else {
                memchr::memchr(b'\\', &raw[i..])
            };
            let Some(bs) = next else {
                out.extend_from_slice(&raw[i..]);
                break;
            };
            out.extend_from_slice(&raw[i..i + bs]);
            i += bs;
            let decoded = out.len() - base;
            let byte = match raw.get(i + 1) {
                Some(b'b') => 0x08,
                Some(b'f') => 0x0c,
                Some(b'n') => b'\n',
                Some(b'r') => b'\r',
                Some(b't') => b'\t',
                Some(b'u') => {
                    // Checked by the reader: four hex digits follow.
                    let (ch, used) = unicode_escape(raw, i).unwrap_or(('\u{FFFD}', 6));
                    let mut utf8 = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
                    map.escape(decoded, self.start + i, out.len() - base - decoded, used);
                    i += used;
                    continue;
                }
                // `"`, `\\` and `/` stand for themselves (the reader let no other through).
                Some(&b) => b,
                None => break,
            };
            out.push(byte);
            map.escape(decoded, self.start + i, 1, 2);
            i += 2;
        }
        map
    }
}

/// Maps offsets in a decoded string back to offsets in the raw text.
///
/// Outside escapes the two advance together, so only the escape points are stored, in order:
/// at each one, where its decoded bytes start, where its raw text starts, and both lengths.
/// Every decoded byte of an escape maps to the escape's backslash. The points are packed as
/// varints of what is not implied by the point before (an ordinary escape is one byte), with a
/// checkpoint every [`POINT_CHECKPOINT`] points: a string of escapes maps back in less memory
/// than it takes. A string without escapes costs no allocation; a look-up is a binary search
/// and a short walk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetMap {
    /// Raw offset of decoded offset 0.
    start: usize,
    /// The packed points.
    packed: Vec<u8>,
    /// Every [`POINT_CHECKPOINT`]-th point: where it is packed, where the one before left
    /// decoded and raw offsets, and its decoded offset.
    checkpoints: Vec<PointCheckpoint>,
    count: usize,
    last: Option<MapPoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PointCheckpoint {
    packed: usize,
    prev: (usize, usize),
    decoded: usize,
}

/// Points between two checkpoints of an [`OffsetMap`].
const POINT_CHECKPOINT: usize = 128;

/// Decoded `decoded..decoded + decoded_len` all map to `raw`; after them, decoded and raw advance
/// together from `decoded + decoded_len` and `raw + raw_len`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct MapPoint {
    decoded: usize,
    raw: usize,
    decoded_len: usize,
    raw_len: usize,
}

impl MapPoint {
    /// Where decoded and raw offsets are after the point.
    fn after(&self) -> (usize, usize) {
        (self.decoded + self.decoded_len, self.raw + self.raw_len)
    }

    /// The raw offset of decoded `at`, the point being the last at or before it.
    fn raw_of(&self, at: usize) -> usize {
        if at < self.decoded + self.decoded_len {
            self.raw
        } else {
            self.raw + self.raw_len + (at - self.decoded - self.decoded_len)
        }
    }
}

/// The lengths of an escape packed as a kind: `\n` and the like, `\uXXXX` as one, two or three
/// UTF-8 bytes, a surrogate pair, and anything else spelled out.
const KINDS: [(usize, usize); 5] = [(1, 2), (1, 6), (2, 6), (3, 6), (4, 12)];
const KIND_SPELLED: u64 = 7;

/// Reads the points packed in `bytes[at..]`, the first after `prev` (or from `start`).
struct Points<'a> {
    bytes: &'a [u8],
    at: usize,
    prev: (usize, usize),
    left: usize,
}

impl Iterator for Points<'_> {
    type Item = MapPoint;

    fn next(&mut self) -> Option<MapPoint> {
        self.left = self.left.checked_sub(1)?;
        let head = get_varint(self.bytes, &mut self.at)?;
        let kind = head & 7;
        let decoded = unzigzag(head >> 4, self.prev.0);
        // Raw is implied (decoded and raw advance together from the point before) unless the
        // flag says a difference follows.
        let mut raw = self.prev.1.wrapping_add(decoded.wrapping_sub(self.prev.0));
        if head & 8 != 0 {
            raw = unzigzag(get_varint(self.bytes, &mut self.at)?, raw);
        }
        let (decoded_len, raw_len) = match KINDS.get(kind as usize) {
            Some(&lens) => lens,
            None => (
                usize::try_from(get_varint(self.bytes, &mut self.at)?).ok()?,
                usize::try_from(get_varint(self.bytes, &mut self.at)?).ok()?,
            ),
        };
        let p = MapPoint {
            decoded,
            raw,
            decoded_len,
            raw_len,
        };
        self.prev = p.after();
        Some(p)
    }
}

impl OffsetMap {
    /// A map for text copied byte for byte from `start`.
    pub fn linear(start: usize) -> Self {
        OffsetMap {
            start,
            ..OffsetMap::default()
        }
    }

    /// A map for `len` bytes that all stand for one raw position (a separator, say).
    pub fn collapsed(raw: usize, len: usize) -> Self {
        let mut map = OffsetMap::linear(raw);
        map.escape(0, raw, len, 0);
        map
    }

    /// Records an escape at decoded offset `decoded` and raw offset `raw`; escapes are recorded
    /// in order.
    fn escape(&mut self, decoded: usize, raw: usize, decoded_len: usize, raw_len: usize) {
        let p = MapPoint {
            decoded,
            raw,
            decoded_len,
            raw_len,
        };
        let prev = self.last.map_or((0, self.start), |l| l.after());
        if self.count % POINT_CHECKPOINT == 0 {
            self.checkpoints.push(PointCheckpoint {
                packed: self.packed.len(),
                prev,
                decoded,
            });
        }
        let implied = prev.1.wrapping_add(decoded.wrapping_sub(prev.0));
        let kind = KINDS
            .iter()
            .position(|&k| k == (decoded_len, raw_len))
            .map_or(KIND_SPELLED, |k| k as u64);
        let moved = u64::from(raw != implied) << 3;
        put_varint(
            &mut self.packed,
            zigzag(decoded, prev.0) << 4 | moved | kind,
        );
        if raw != implied {
            put_varint(&mut self.packed, zigzag(raw, implied));
        }
        if kind == KIND_SPELLED {
            put_varint(&mut self.packed, decoded_len as u64);
            put_varint(&mut self.packed, raw_len as u64);
        }
        self.count += 1;
        self.last = Some(p);
    }

    /// The points from the `i`-th checkpoint on.
    fn points_from(&self, i: usize) -> Points<'_> {
        let cp = self.checkpoints.get(i).copied();
        Points {
            bytes: &self.packed,
            at: cp.map_or(self.packed.len(), |c| c.packed),
            prev: cp.map_or((0, self.start), |c| c.prev),
            left: self.count.saturating_sub(i * POINT_CHECKPOINT),
        }
    }

    /// The raw offset of decoded offset `at`; `at` may be the decoded length (then it is the raw
    /// offset of the closing quote).
    pub fn raw(&self, at: usize) -> usize {
        let i = self.checkpoints.partition_point(|c| c.decoded <= at);
        let Some(i) = i.checked_sub(1) else {
            return self.start + at;
        };
        self.points_from(i)
            .take(POINT_CHECKPOINT)
            .take_while(|p| p.decoded <= at)
            .last()
            .map_or(self.start + at, |p| p.raw_of(at))
    }

    /// Raw offset of decoded offset 0 before any escape point (the string's first content byte).
    pub fn start(&self) -> usize {
        self.start
    }

    /// How many escape points the map holds.
    pub fn points(&self) -> usize {
        self.count
    }

    /// Whether decoded and raw offsets advance together throughout (no escape points).
    pub fn is_linear(&self) -> bool {
        self.count == 0
    }

    /// Appends the escape points to `out`, packed; [`OffsetMap::read_points`] reads them back.
    pub fn write_points(&self, out: &mut Vec<u8>) {
        put_varint(out, self.count as u64);
        put_varint(out, self.packed.len() as u64);
        out.extend_from_slice(&self.packed);
    }

    /// The map starting at raw offset `start` whose points [`OffsetMap::write_points`] wrote
    /// at `bytes[*at..]`; moves `at` past them. `None` if they are cut short.
    pub fn read_points(start: usize, bytes: &[u8], at: &mut usize) -> Option<OffsetMap> {
        let count = usize::try_from(get_varint(bytes, at)?).ok()?;
        let len = usize::try_from(get_varint(bytes, at)?).ok()?;
        let packed = bytes.get(*at..at.checked_add(len)?)?;
        *at += len;
        let mut map = OffsetMap::linear(start);
        let points = Points {
            bytes: packed,
            at: 0,
            prev: (0, start),
            left: count,
        };
        for p in points {
            map.escape(p.decoded, p.raw, p.decoded_len, p.raw_len);
        }
        (map.count == count).then_some(map)
    }

    /// The map of the text that keeps only the `kept` ranges (in order, not overlapping) of a
    /// decoded text of `len` bytes; the new end maps to the old end.
    pub fn retain(&self, kept: &[Range<usize>], len: usize) -> OffsetMap {
        let points: Vec<MapPoint> = self.points_from(0).collect();
        let mut out = OffsetMap::linear(self.start);
        let mut at = 0;
        for range in kept.iter().filter(|r| !r.is_empty()) {
            // Where the kept range starts: inside (or at) an escape, or in a literal run.
            let i = points.partition_point(|p| p.decoded <= range.start);
            match i.checked_sub(1).map(|i| points[i]) {
                Some(p) if range.start < p.decoded + p.decoded_len => {
                    let rest = p.decoded + p.decoded_len - range.start;
                    out.escape(at, p.raw, rest, p.raw_len);
                }
                _ => out.escape(at, self.raw(range.start), 0, 0),
            }
            for p in &points[i..] {
                if p.decoded >= range.end {
                    break;
                }
                out.escape(
                    p.decoded - range.start + at,
                    p.raw,
                    p.decoded_len,
                    p.raw_len,
                );
            }
            at += range.len();
        }
        out.escape(at, self.raw(len), 0, 0);
        out
    }
}

/// Appends `v` as a LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads the LEB128 varint at `bytes[*at..]` and moves `at` past it.
pub fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// `to - from` as a zigzag-encoded unsigned number (small either way).
fn zigzag(to: usize, from: usize) -> u64 {
    let d = to.wrapping_sub(from) as i64;
    ((d << 1) ^ (d >> 63)) as u64
}

/// The inverse of [`zigzag`]: `from` moved by the encoded difference.
fn unzigzag(z: u64, from: usize) -> usize {
    let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
    from.wrapping_add(d as usize)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Object,
    Array,
}

/// What the reader expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Value,
    /// After `{`: a key or `}`.
    FirstKey,
    /// After `,` in an object.
    Key,
    /// After `[`: a value or `]`.
    FirstValue,
    /// After a value inside a container.
    CommaOrEnd,
    /// After the top-level value: only whitespace.
    Done,
}

/// A path as a dotted key: `a.b[0].c`.
pub fn dotted(path: &[PathItem]) -> String {
    use std::fmt::Write as _;
    let mut key = String::new();
    for item in path {
        match item {
            PathItem::Key(k) => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(k);
            }
            PathItem::Index(i) => {
                // Writing to a String cannot fail.
                let _ = write!(key, "[{i}]");
            }
        }
    }
    key
}

/// A pull reader over one JSON document.
pub struct JsonReader<'a> {
    data: &'a [u8],
    pos: usize,
    max_depth: usize,
    open: Vec<Container>,
    /// One item per open container that has a current key or index.
    path: Vec<PathItem>,
    expect: Expect,
}

impl<'a> JsonReader<'a> {
    /// A reader for the document in `data[start..]`; offsets are offsets in `data`. More than
    /// `max_depth` containers open at once is an error.
    pub fn new(data: &'a [u8], start: usize, max_depth: usize) -> Self {
        JsonReader {
            data,
            pos: start,
            max_depth,
            open: Vec::new(),
            path: Vec::new(),
            expect: Expect::Value,
        }
    }

    /// The path of the value of the last event (for a container start, of the container).
    pub fn path(&self) -> &[PathItem] {
        &self.path
    }

    fn err(&self, what: &'static str) -> JsonError {
        JsonError { what, at: self.pos }
    }

    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// The next event; `None` once the document is complete and only whitespace follows.
    #[allow(clippy::should_implement_trait)] // fallible, so not an `Iterator`
    pub fn next(&mut self) -> Result<Option<JsonEvent<'a>>, JsonError> {
        loop {
            self.ws();
            match self.expect {
                Expect::Done => {
                    return match self.peek() {
                        None => Ok(None),
                        Some(_) => Err(self.err("unexpected data after the JSON value")),
                    };
                }
                Expect::FirstKey if self.peek() == Some(b'}') => {
                    return Ok(Some(self.close(JsonEvent::ObjectEnd)));
                }
                Expect::FirstKey | Expect::Key => return self.key().map(Some),
                Expect::FirstValue if self.peek() == Some(b']') => {
                    return Ok(Some(self.close(JsonEvent::ArrayEnd)));
                }
                Expect::FirstValue | Expect::Value => return self.value().map(Some),
                Expect::CommaOrEnd => {
                    let (close, end, what) = match self.open.last() {
                        Some(Container::Object) => (
                            b'}',
                            JsonEvent::ObjectEnd,
                            "expected `,` or `}` in an object",
                        ),
                        _ => (b']', JsonEvent::ArrayEnd, "expected `,` or `]` in an array"),
                    };
                    match self.peek() {
                        Some(b',') => {
                            self.pos += 1;
                            self.expect = match self.open.last() {
                                Some(Container::Object) => Expect::Key,
                                _ => Expect::Value,
                            };
                        }
                        Some(b) if b == close => return Ok(Some(self.close(end))),
                        _ => return Err(self.err(what)),
                    }
                }
            }
        }
    }

    /// Consumes the closing bracket of the innermost container.
    fn close(&mut self, event: JsonEvent<'a>) -> JsonEvent<'a> {
        self.pos += 1;
        if self.path.len() == self.open.len() {
            self.path.pop();
        }
        self.open.pop();
        self.after_value();
        event
    }

    fn after_value(&mut self) {
        self.expect = if self.open.is_empty() {
            Expect::Done
        } else {
            Expect::CommaOrEnd
        };
    }

    /// Sets the last path item to `item` for a new member or element.
    fn enter(&mut self, item: PathItem) {
        if self.path.len() == self.open.len() {
            self.path.pop();
        }
        self.path.push(item);
    }

    fn key(&mut self) -> Result<JsonEvent<'a>, JsonError> {
        if self.peek() != Some(b'"') {
            return Err(self.err("expected a string key"));
        }
        let key = self.string()?;
        self.ws();
        if self.peek() != Some(b':') {
            return Err(self.err("expected `:` after an object key"));
        }
        self.pos += 1;
        self.enter(PathItem::Key(
            String::from_utf8_lossy(&key.value()).into_owned(),
        ));
        self.expect = Expect::Value;
        Ok(JsonEvent::Key(key))
    }

    fn value(&mut self) -> Result<JsonEvent<'a>, JsonError> {
        if self.open.last() == Some(&Container::Array) {
            let next = match self.path.last() {
                Some(PathItem::Index(i)) if self.path.len() == self.open.len() => i + 1,
                _ => 0,
            };
            self.enter(PathItem::Index(next));
        }
        let event = match self.peek() {
            Some(open @ (b'{' | b'[')) => {
                if self.open.len() >= self.max_depth {
                    return Err(self.err("JSON nested too deeply"));
                }
                self.pos += 1;
                return Ok(if open == b'{' {
                    self.open.push(Container::Object);
                    self.expect = Expect::FirstKey;
                    JsonEvent::ObjectStart
                } else {
                    self.open.push(Container::Array);
                    self.expect = Expect::FirstValue;
                    JsonEvent::ArrayStart
                });
            }
            Some(b'"') => JsonEvent::String(self.string()?),
            Some(b't') => self.literal(b"true")?,
            Some(b'f') => self.literal(b"false")?,
            Some(b'n') => self.literal(b"null")?,
            Some(b'N') => self.literal(b"NaN")?,
            Some(b'I') => self.literal(b"Infinity")?,
            Some(b'-') if self.data[self.pos..].starts_with(b"-I") => self.literal(b"-Infinity")?,
            Some(b'-' | b'0'..=b'9') => {
                while matches!(
                    self.peek(),
                    Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                ) {
                    self.pos += 1;
                }
                JsonEvent::Scalar
            }
            Some(_) => return Err(self.err("unexpected byte in JSON")),
            None => return Err(self.err("the input ends inside a JSON value")),
        };
        self.after_value();
        Ok(event)
    }

    fn literal(&mut self, word: &[u8]) -> Result<JsonEvent<'a>, JsonError> {
        if self.data[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(JsonEvent::Scalar)
        } else {
            Err(self.err("invalid JSON literal"))
        }
    }

    /// The string at `pos` (on its opening quote), checked (escapes valid, closed) but not
    /// decoded.
    fn string(&mut self) -> Result<JsonString<'a>, JsonError> {
        let start = self.pos + 1;
        let data = self.data;
        let mut i = start;
        let mut escaped = false;
        loop {
            let next = match data.get(i) {
                Some(b'"' | b'\\') => Some(0),
                _ => memchr::memchr2(b'"', b'\\', data.get(i..).unwrap_or_default()),
            };
            let Some(at) = next else {
                self.pos = data.len();
                return Err(self.err("unterminated JSON string"));
            };
            i += at;
            if data[i] == b'"' {
                self.pos = i + 1;
                return Ok(JsonString {
                    raw: &data[start..i],
                    start,
                    escaped,
                });
            }
            escaped = true;
            match data.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => match unicode_escape(data, i) {
                    Some((_, used)) => i += used,
                    None => {
                        self.pos = i;
                        return Err(self.err("invalid \\u escape in JSON string"));
                    }
                },
                Some(_) => {
                    self.pos = i;
                    return Err(self.err("invalid escape in JSON string"));
                }
                None => {
                    self.pos = i + 1;
                    return Err(self.err("unterminated JSON string"));
                }
            }
        }
    }
}

/// Decodes the `\\uXXXX` escape at `bytes[at..]` (on its backslash), joining a surrogate pair
/// when a low surrogate escape follows a high one; a lone surrogate becomes U+FFFD. Returns the
/// char and the raw bytes used (6 or 12); `None` without four hex digits.
pub(crate) fn unicode_escape(bytes: &[u8], at: usize) -> Option<(char, usize)> {
    let unit = hex4(bytes, at + 2)?;
    if (0xD800..0xDC00).contains(&unit) && bytes.get(at + 6..at + 8) == Some(b"\\u") {
        if let Some(low) = hex4(bytes, at + 8).filter(|low| (0xDC00..0xE000).contains(low)) {
            let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
            return Some((char::from_u32(code).unwrap_or('\u{FFFD}'), 12));
        }
    }
    Some((char::from_u32(unit).unwrap_or('\u{FFFD}'), 6))
}

fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at.checked_add(4)?)?;
    digits
        .iter()
        .try_fold(0u32, |acc, &d| Some(acc * 16 + char::from(d).to_digit(16)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event of `text`, or the first error.
    fn events(text: &[u8]) -> Result<Vec<JsonEvent<'_>>, JsonError> {
        let mut reader = JsonReader::new(text, 0, 64);
        let mut out = Vec::new();
        while let Some(event) = reader.next()? {
            out.push(event);
        }
        Ok(out)
    }

    /// The string values of `text`, with the path of each.
    fn strings(text: &[u8]) -> Vec<(Vec<PathItem>, JsonString<'_>)> {
        let mut reader = JsonReader::new(text, 0, 64);
        let mut out = Vec::new();
        while let Some(event) = reader.next().expect("valid") {
            if let JsonEvent::String(s) = event {
                out.push((reader.path().to_vec(), s));
            }
        }
        out
    }

    /// The first string of `text`, decoded, with its map.
    struct Owned {
        value: Vec<u8>,
        map: OffsetMap,
    }

    fn one_string(text: &[u8]) -> Owned {
        let s = strings(text).remove(0).1;
        let mut value = Vec::new();
        let map = s.decode_into(&mut value);
        assert_eq!(s.value(), &value[..]);
        assert_eq!(s.map(), map);
        Owned { value, map }
    }

    #[test]
    fn surrogate_pairs_make_one_char() {
        let s = one_string(br#""a\ud83d\ude00b""#);
        assert_eq!(s.value, "a\u{1F600}b".as_bytes());
        // The four bytes of the emoji map to its first backslash; `b` to itself.
        for at in 1..5 {
            assert_eq!(s.map.raw(at), 2);
        }
        assert_eq!(s.map.raw(5), 14);
        assert_eq!(s.map.raw(6), 15, "the end maps to the closing quote");
    }

    #[test]
    fn lone_surrogates_become_replacement_chars() {
        let s = one_string(br#""\ud83dx\ude00\ud83d\u0041""#);
        assert_eq!(s.value, "\u{FFFD}x\u{FFFD}\u{FFFD}A".as_bytes());
        let s = one_string(br#""\ud83d""#);
        assert_eq!(s.value, "\u{FFFD}".as_bytes());
    }

    #[test]
    fn offsets_after_escapes() {
        let text = br#"{"k": "a\n\"b\u00e9c\\d"}"#;
        let s = one_string(text);
        assert_eq!(s.value, "a\n\"b\u{e9}c\\d".as_bytes());
        assert_eq!(s.map.start(), 7);
        let raw_of = |decoded: usize| s.map.raw(decoded);
        assert_eq!(text[raw_of(0)], b'a');
        assert_eq!(&text[raw_of(1)..raw_of(1) + 2], br"\n");
        assert_eq!(&text[raw_of(2)..raw_of(2) + 2], br#"\""#);
        assert_eq!(text[raw_of(3)], b'b');
        assert_eq!(&text[raw_of(4)..raw_of(4) + 6], br"\u00e9");
        assert_eq!(raw_of(5), raw_of(4), "both bytes of é map to the escape");
        assert_eq!(text[raw_of(6)], b'c');
        assert_eq!(&text[raw_of(7)..raw_of(7) + 2], br"\\");
        assert_eq!(text[raw_of(8)], b'd');
        assert_eq!(text[raw_of(9)], b'"');
        assert_eq!(s.map.count, 4, "one point per escape, none per byte");
        assert_eq!(s.map.packed.len(), 4, "one byte each");
    }

    #[test]
    fn many_escapes_map_back_past_checkpoints() {
        let mut text = String::from("\"");
        for i in 0..200 {
            text.push_str(["a\\n", "\\u00e9b", "\\ud83d\\ude00", "\\\"", "\\u2603"][i % 5]);
        }
        text.push('"');
        let s = one_string(text.as_bytes());
        let raw = text.as_bytes();
        let mut literal = 0;
        for at in 0..s.value.len() {
            let r = s.map.raw(at);
            if s.value[at].is_ascii_lowercase() {
                assert_eq!(raw[r], s.value[at], "decoded {at}");
                literal += 1;
            } else {
                assert_eq!(raw[r], b'\\', "decoded {at}");
            }
        }
        assert_eq!(literal, 80);
        assert_eq!(s.map.raw(s.value.len()), raw.len() - 1);
        assert!(
            s.map.packed.len() <= s.map.count,
            "a byte per ordinary escape"
        );
    }

    #[test]
    fn retain_keeps_offsets_of_what_remains() {
        let text = br#""\u001b[1mkey=\u00e9x\u001b[0m""#;
        let s = one_string(text);
        assert_eq!(s.value, "\x1b[1mkey=\u{e9}x\x1b[0m".as_bytes());
        // Keep "key=é" and "x", cut once between the two bytes of é.
        let map = s.map.retain(&[4..9, 9..11], s.value.len());
        assert_eq!(&text[map.raw(0)..map.raw(0) + 4], b"key=");
        assert_eq!(&text[map.raw(4)..map.raw(4) + 6], br"\u00e9");
        assert_eq!(map.raw(5), map.raw(4));
        assert_eq!(text[map.raw(6)], b'x');
        assert_eq!(map.raw(7), text.len() - 1, "the new end is the old end");
        let map = s.map.retain(&[5..10, 11..12], s.value.len());
        assert_eq!(&text[map.raw(0)..map.raw(0) + 3], b"ey=");
        assert_eq!(&text[map.raw(5)..map.raw(5) + 6], br"\u001b");
    }

    #[test]
    fn points_written_compactly_read_back() {
        let text = br#""\u001b[1mkey=\u00e9x\u001b[0m""#;
        let s = one_string(text);
        let cut = s.map.retain(&[4..9, 9..11], s.value.len());
        for map in [&s.map, &cut, &OffsetMap::linear(3)] {
            let mut bytes = vec![7];
            map.write_points(&mut bytes);
            let mut at = 1;
            let back = OffsetMap::read_points(map.start, &bytes, &mut at);
            assert_eq!(back.as_ref(), Some(map));
            assert_eq!(at, bytes.len());
        }
        let mut bytes = Vec::new();
        put_varint(&mut bytes, u64::MAX);
        assert_eq!(get_varint(&bytes, &mut 0), Some(u64::MAX));
        assert_eq!(get_varint(&bytes[..3], &mut 0), None);
    }

    #[test]
    fn paths_keys_and_events() {
        let text = br#" {"a": [1, "x", {"b": "y"}], "c": true, "d": [[], {}], "e": -Infinity} "#;
        let got = strings(text);
        let paths: Vec<_> = got.iter().map(|(p, _)| p.clone()).collect();
        use PathItem::{Index, Key};
        assert_eq!(
            paths,
            [
                vec![Key("a".into()), Index(1)],
                vec![Key("a".into()), Index(2), Key("b".into())],
            ]
        );
        let all = events(text).unwrap();
        assert_eq!(
            all.iter()
                .filter(|e| matches!(e, JsonEvent::Key(_)))
                .count(),
            5
        );
        assert_eq!(all.first(), Some(&JsonEvent::ObjectStart));
        assert_eq!(all.last(), Some(&JsonEvent::ObjectEnd));
        if let JsonEvent::Key(k) = &all[1] {
            assert_eq!((&k.value()[..], k.start()), (&b"a"[..], 3));
        } else {
            panic!("{:?}", all[1]);
        }
    }

    #[test]
    fn deep_nesting_is_an_error_without_recursion() {
        let deep = [b'['; 1_000_000];
        let err = events(&deep).unwrap_err();
        assert_eq!(err.what, "JSON nested too deeply");
        assert_eq!(err.at, 64);
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(events(ok.as_bytes()).is_ok());
    }

    #[test]
    fn truncated_and_malformed_input() {
        for bad in [
            &br#"{"a": "b"#[..],
            br#"{"a": "b\"#,
            br#"{"a": "\u12"#,
            br#"{"a": 1"#,
            br#"{"a" 1}"#,
            br#"{"a": 1,}"#,
            br#"[1 2]"#,
            br#"{"a": "\q"}"#,
            br#"{"a": "\uZZZZ"}"#,
            b"",
            b"   ",
            b"{",
            b"[",
            b"tru",
            br#"{} x"#,
            br#"{1: 2}"#,
        ] {
            assert!(
                events(bad).is_err(),
                "{:?} was accepted",
                String::from_utf8_lossy(bad)
            );
        }
        let err = events(br#"{"a": "hf_"#).unwrap_err();
        assert!(err.to_string().contains("unterminated"), "{err}");
        let err = events(br#"{"a": "x\n"#).unwrap_err();
        assert!(err.to_string().contains("unterminated"), "{err}");
        assert!(events(b" [] ").is_ok());
        assert!(events(b"\"x\"").is_ok());
    }
}
