//! Jupyter notebooks (nbformat 4 and 3): every string of the notebook is scanned except base64
//! payloads (binary MIME outputs, attachments), joined into one text whose bytes map back to
//! the `.ipynb` file's bytes, with the cell and output index of each piece.
//!
//! The shared [`JsonReader`] walks the raw JSON, so positions survive (serde's `Value` forgets
//! them). The map back is a byte stream of one record per string, most of them one byte (a
//! notebook of millions of one-character strings stays near its own size), with a checkpoint
//! every [`CHECKPOINT`] records for look-ups; cells and outputs are kept per run of strings.

use std::borrow::Cow;
use std::ops::Range;

use super::json::{get_varint, put_varint, JsonEvent, JsonReader, JsonString, OffsetMap, PathItem};

/// A run of the joined text whose strings share a cell and an output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Offset of the run in the joined text.
    pub text_start: usize,
    /// Cell index, if inside `cells`.
    pub cell: Option<usize>,
    /// Output index, if inside a cell's `outputs`.
    pub output: Option<usize>,
}

/// Strings between two checkpoints of the map.
const CHECKPOINT: usize = 64;

/// Where a record of the map starts, and the text and raw positions there.
#[derive(Debug, Clone, Copy, Default)]
struct Checkpoint {
    /// Offset of the record in [`NotebookText::records`].
    record: usize,
    /// Text offset where the record's separator (or string) starts.
    text: usize,
    /// Raw offset the previous string ends at (its closing quote); 0 before the first.
    raw_end: usize,
}

/// A record's first byte: set for the one-byte form (a string without escapes, a gap below
/// 8 and 1 to 8 bytes long); then a separator bit, 3 bits of gap and 3 of length.
const SHORT: u8 = 0x80;
/// The separator bit, in both forms: a byte was put before the string, standing for the end
/// of the one before: `\n`, or `=` between a key and its value.
const SEPARATOR: u8 = 0x40;
/// In the long form: the string has escape points (after the gap and length varints).
const ESCAPED: u8 = 0x01;
/// In the long form: the string has more than [`INLINE_POINTS`] escape points, kept as their
/// own map in [`NotebookText::maps`] (its index after the gap and length varints) rather than
/// copied into the records.
const OWN_MAP: u8 = 0x02;
/// Escape points packed into the records at most; a string with more keeps its map.
const INLINE_POINTS: usize = 64;

/// A notebook's scannable text and its map back to the file.
#[derive(Debug, Default)]
pub struct NotebookText {
    /// The joined strings.
    pub text: Vec<u8>,
    /// Runs of `text` by cell and output, in order.
    pub segments: Vec<Segment>,
    /// One record per string: whether a separator precedes it, the gap in the file from the
    /// end of the string before, its length, and its escape points.
    records: Vec<u8>,
    /// The maps of strings with many escapes, moved here whole.
    maps: Vec<OffsetMap>,
    checkpoints: Vec<Checkpoint>,
    /// Strings recorded, and the raw end of the last one.
    strings: usize,
    raw_end: usize,
}

/// One string's record, read back.
struct Record<'a> {
    separator: bool,
    len: usize,
    map: Cow<'a, OffsetMap>,
}

impl NotebookText {
    /// The run holding text offset `at`.
    pub fn segment(&self, at: usize) -> Option<&Segment> {
        let i = self.segments.partition_point(|s| s.text_start <= at);
        self.segments.get(i.checked_sub(1)?)
    }

    /// Raw file offset of text offset `at` (`at` may be the end of the text).
    pub fn raw_offset(&self, at: usize) -> Option<usize> {
        let i = self.checkpoints.partition_point(|c| c.text <= at);
        let mut cp = *self.checkpoints.get(i.checked_sub(1)?)?;
        while let Some(rec) = self.read(&mut cp) {
            let mut pos = cp.text;
            if rec.separator {
                if at == pos {
                    return Some(cp.raw_end);
                }
                pos += 1;
            }
            if at < pos + rec.len {
                return Some(rec.map.raw(at - pos));
            }
            cp.text = pos + rec.len;
            cp.raw_end = rec.map.raw(rec.len);
        }
        (at == cp.text).then_some(cp.raw_end)
    }

    /// Reads the record at `cp` and moves `cp.record` past it; `None` at the end.
    fn read(&self, cp: &mut Checkpoint) -> Option<Record<'_>> {
        let at = &mut cp.record;
        let head = *self.records.get(*at)?;
        *at += 1;
        let separator = head & SEPARATOR != 0;
        if head & SHORT != 0 {
            let raw_start = cp.raw_end + usize::from((head >> 3) & 7);
            return Some(Record {
                separator,
                len: usize::from(head & 7) + 1,
                map: Cow::Owned(OffsetMap::linear(raw_start)),
            });
        }
        let raw_start = cp.raw_end + usize::try_from(get_varint(&self.records, at)?).ok()?;
        let len = usize::try_from(get_varint(&self.records, at)?).ok()?;
        let map = if head & OWN_MAP != 0 {
            let i = usize::try_from(get_varint(&self.records, at)?).ok()?;
            Cow::Borrowed(self.maps.get(i)?)
        } else if head & ESCAPED != 0 {
            Cow::Owned(OffsetMap::read_points(raw_start, &self.records, at)?)
        } else {
            Cow::Owned(OffsetMap::linear(raw_start))
        };
        Some(Record {
            separator,
            len,
            map,
        })
    }

    /// Appends one string of the notebook as its own line of the joined text, decoded
    /// straight into it (a large string is never held twice), without ANSI escapes; a value
    /// right after its key (`after_key`) goes on the key's line, as `key=value`.
    fn push(
        &mut self,
        string: &JsonString<'_>,
        cell: Option<usize>,
        output: Option<usize>,
        after_key: bool,
    ) {
        let mark = self.text.len();
        let separator = !self.text.is_empty() && self.text.last() != Some(&b'\n');
        if separator {
            self.text.push(if after_key { b'=' } else { b'\n' });
        }
        let from = self.text.len();
        let map = string.decode_into(&mut self.text);
        let map = strip_ansi(&mut self.text, from, map);
        let len = self.text.len() - from;
        if len == 0 {
            self.text.truncate(mark);
            return;
        }
        if self.strings % CHECKPOINT == 0 {
            self.checkpoints.push(Checkpoint {
                record: self.records.len(),
                text: mark,
                raw_end: self.raw_end,
            });
        }
        self.strings += 1;
        if self.segments.last().map(|s| (s.cell, s.output)) != Some((cell, output)) {
            self.segments.push(Segment {
                text_start: mark,
                cell,
                output,
            });
        }
        // Strings come in file order: each starts past the end of the one before.
        let gap = map.start().saturating_sub(self.raw_end);
        let sep_bit = if separator { SEPARATOR } else { 0 };
        self.raw_end = map.raw(len);
        if map.is_linear() && gap < 8 && (1..=8).contains(&len) {
            self.records
                .push(SHORT | sep_bit | (gap as u8) << 3 | (len - 1) as u8);
            return;
        }
        let kind = match map.points() {
            0 => 0,
            n if n <= INLINE_POINTS => ESCAPED,
            _ => OWN_MAP,
        };
        self.records.push(sep_bit | kind);
        put_varint(&mut self.records, gap as u64);
        put_varint(&mut self.records, len as u64);
        if kind == ESCAPED {
            map.write_points(&mut self.records);
        } else if kind == OWN_MAP {
            put_varint(&mut self.records, self.maps.len() as u64);
            self.maps.push(map);
        }
    }
}

/// Whether `data` looks like a notebook: a JSON object naming `nbformat` and `cells` or
/// `worksheets` near its start.
pub fn looks_like_notebook(data: &[u8]) -> bool {
    let start = data.iter().position(|b| !b.is_ascii_whitespace());
    if start.map(|s| data[s]) != Some(b'{') {
        return false;
    }
    // Jupyter writes its keys sorted: `cells` first, `nbformat` last, after cells of any size.
    let head = &data[..data.len().min(1 << 20)];
    let tail = &data[data.len().saturating_sub(1 << 20)..];
    let near_an_end = |key: &[u8]| {
        memchr::memmem::find(head, key).is_some() || memchr::memmem::find(tail, key).is_some()
    };
    near_an_end(b"\"nbformat\"") && (near_an_end(b"\"cells\"") || near_an_end(b"\"worksheets\""))
}

/// MIME types whose payload is base64 (or otherwise binary): never scanned as text.
fn binary_mime(mime: &str) -> bool {
    mime.starts_with("image/")
        || mime.starts_with("audio/")
        || mime.starts_with("video/")
        || mime.starts_with("font/")
        || mime == "application/pdf"
        || mime == "application/octet-stream"
        || mime.ends_with("+zip")
}

/// Deepest nesting of JSON containers read.
const MAX_DEPTH: usize = 256;

/// Parses a notebook; `None` when it is not valid JSON (the caller then scans it as text).
pub fn decode(data: &[u8]) -> Option<NotebookText> {
    let mut reader = JsonReader::new(data, 0, MAX_DEPTH);
    let mut out = NotebookText::default();
    // Whether the last string pushed is a key whose value may follow on its line.
    let mut key_pushed = false;
    while let Some(event) = reader.next().ok()? {
        let after_key = std::mem::take(&mut key_pushed);
        let (string, is_key) = match event {
            JsonEvent::String(s) => (s, false),
            JsonEvent::Key(k) => (k, true),
            _ => continue,
        };
        let path = reader.path();
        let (cell, output, skip) = location(path);
        if skip || string.is_empty() {
            continue;
        }
        if is_key {
            // The key is the last item of the path by now: its object is the path before.
            if !keyed(&path[..path.len().saturating_sub(1)]) {
                continue;
            }
            key_pushed = true;
        }
        out.push(&string, cell, output, after_key && !is_key);
    }
    Some(out)
}

/// Whether the keys of the object at `path` are written before their values: objects that
/// hold data (metadata, widget state, JSON outputs), not the notebook's own structure, so
/// that rules which need a key's name (`wandb_api_key`) see it beside its value.
fn keyed(path: &[PathItem]) -> bool {
    path.iter().enumerate().any(|(i, item)| match item {
        PathItem::Key(k) if k == "metadata" => true,
        PathItem::Key(mime) => {
            let in_data =
                matches!(path.get(i.wrapping_sub(1)), Some(PathItem::Key(d)) if d == "data");
            in_data && i > 0 && (mime.ends_with("/json") || mime.ends_with("+json"))
        }
        PathItem::Index(_) => false,
    })
}

fn location(path: &[PathItem]) -> (Option<usize>, Option<usize>, bool) {
    let mut cell = None;
    let mut output = None;
    let mut skip = false;
    for (i, item) in path.iter().enumerate() {
        let prev = if i > 0 { path.get(i - 1) } else { None };
        match (prev, item) {
            (Some(PathItem::Key(k)), PathItem::Index(n)) if k == "cells" => cell = Some(*n),
            (Some(PathItem::Key(k)), PathItem::Index(n)) if k == "outputs" => output = Some(*n),
            (Some(PathItem::Key(k)), PathItem::Key(mime)) if k == "data" && binary_mime(mime) => {
                skip = true
            }
            (_, PathItem::Key(k)) if k == "attachments" => skip = true,
            _ => {}
        }
    }
    (cell, output, skip)
}

/// Removes ANSI escape sequences (`ESC [ ... final`), which colour tracebacks and glue
/// themselves to the text around them, from `text[from..]` (in place), keeping the raw offsets
/// of what remains.
fn strip_ansi(text: &mut Vec<u8>, from: usize, map: OffsetMap) -> OffsetMap {
    let s = &text[from..];
    if memchr::memchr(0x1b, s).is_none() {
        return map;
    }
    let mut kept: Vec<Range<usize>> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        if s[i] == 0x1b && s.get(i + 1) == Some(&b'[') {
            kept.push(start..i);
            i += 2;
            while i < s.len() && !(0x40..=0x7e).contains(&s[i]) {
                i += 1;
            }
            i = (i + 1).min(s.len());
            start = i;
            continue;
        }
        i += 1;
    }
    let len = s.len();
    kept.push(start..len);
    let mut to = from;
    for r in &kept {
        text.copy_within(from + r.start..from + r.end, to);
        to += r.len();
    }
    text.truncate(to);
    map.retain(&kept, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_sources_and_outputs_back_to_the_file() {
        let nb = br#"{
 "cells": [
  {
   "cell_type": "code",
   "metadata": {},
   "outputs": [
    {"output_type": "stream", "name": "stdout", "text": ["token=abc\n", "done\n"]},
    {"output_type": "display_data", "data": {"image/png": "aGZfc2VjcmV0", "text/plain": ["<Figure>"]}}
   ],
   "source": ["import os\n", "key = \"k\u0065y\"\n"]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}"#;
        assert!(looks_like_notebook(nb));
        let t = decode(nb).expect("valid");
        let text = String::from_utf8(t.text.clone()).unwrap();
        assert!(text.contains("token=abc\ndone\n"));
        assert!(text.contains("key = \"key\""));
        assert!(!text.contains("aGZfc2VjcmV0"), "base64 image skipped");
        let at = text.find("token").unwrap();
        let seg = t.segment(at).unwrap();
        assert_eq!((seg.cell, seg.output), (Some(0), Some(0)));
        let raw = t.raw_offset(at).unwrap();
        assert_eq!(&nb[raw..raw + 5], b"token");
        let at = text.find("import").unwrap();
        assert_eq!(
            (t.segment(at).unwrap().cell, t.segment(at).unwrap().output),
            (Some(0), None)
        );
    }

    #[test]
    fn ansi_colours_are_stripped_from_tracebacks() {
        let nb = br#"{"cells": [{"outputs": [{"traceback": ["\u001b[38;5;124mkey=abc\u001b[39m x"]}]}], "nbformat": 4}"#;
        let t = decode(nb).expect("valid");
        assert_eq!(t.text, b"key=abc x");
        let raw = t.raw_offset(0).unwrap();
        assert_eq!(&nb[raw..raw + 3], b"key");
    }

    /// The map as built before it was made compact: a segment per string and per separator,
    /// each with its own offset map. Per text offset (and the end): raw offset, cell, output.
    type Located = (Option<usize>, Option<usize>, Option<usize>);
    fn reference(data: &[u8]) -> Vec<Located> {
        let mut reader = JsonReader::new(data, 0, MAX_DEPTH);
        let mut text: Vec<u8> = Vec::new();
        // (text start, length, map, cell, output)
        type OldSegment = (usize, usize, OffsetMap, Option<usize>, Option<usize>);
        let mut segs: Vec<OldSegment> = Vec::new();
        while let Some(event) = reader.next().expect("valid") {
            let JsonEvent::String(string) = event else {
                continue;
            };
            let (cell, output, skip) = location(reader.path());
            if skip || string.is_empty() {
                continue;
            }
            let mut value = Vec::new();
            let map = string.decode_into(&mut value);
            let map = strip_ansi(&mut value, 0, map);
            if value.is_empty() {
                continue;
            }
            if !text.is_empty() && text.last() != Some(&b'\n') {
                let last = segs.last().map_or(0, |s| s.2.raw(s.1));
                segs.push((text.len(), 1, OffsetMap::collapsed(last, 1), cell, output));
                text.push(b'\n');
            }
            segs.push((text.len(), value.len(), map, cell, output));
            text.extend_from_slice(&value);
        }
        (0..=text.len())
            .map(|at| {
                let i = segs.partition_point(|s| s.0 <= at);
                let Some(s) = i.checked_sub(1).map(|i| &segs[i]) else {
                    return (None, None, None);
                };
                let raw = (at - s.0 <= s.1).then(|| s.2.raw(at - s.0));
                (raw, s.3, s.4)
            })
            .collect()
    }

    #[test]
    fn compact_map_agrees_with_a_segment_per_string() {
        let long = "y".repeat(300);
        // More escape points than the records hold inline: a map of its own.
        let escapes = r"a\n\u00e9".repeat(INLINE_POINTS);
        let nb = format!(
            r#"{{"nbformat": 4, "cells": [
  {{"source": ["a", "bb\n", "ccc", "", "\u00e9\n\"q\"", "{long}", "d"],
    "outputs": [{{"text": ["x\u001b[1my\u001b[0m", "z"]}},
                {{"data": {{"image/png": "QUFB", "text/plain": "p"}}}}, "\n"]}},
  {{"source": "s\tt"}},
  "w",   "{long}\n\u2603", "{escapes}z\t"
]}}"#
        );
        let mut many = String::from(r#"{"nbformat": 4, "cells": [{"source": ["#);
        for i in 0..500 {
            let sep = if i == 0 {
                ""
            } else {
                [",", ", ", ",\n   "][i % 3]
            };
            let s = ["k", "k\\n", r"kk\u0041", "kkkkkkkkk", "é"][i % 5];
            many.push_str(&format!(r#"{sep}"{s}""#));
        }
        many.push_str("]}]}");
        for data in [nb.as_bytes(), many.as_bytes()] {
            let t = decode(data).expect("valid");
            let want = reference(data);
            assert_eq!(want.len(), t.text.len() + 1);
            for (at, w) in want.iter().enumerate() {
                let seg = t.segment(at);
                let got = (
                    t.raw_offset(at),
                    seg.and_then(|s| s.cell),
                    seg.and_then(|s| s.output),
                );
                assert_eq!(&got, w, "text offset {at}");
            }
            assert_eq!(t.raw_offset(t.text.len() + 1), None);
        }
    }

    #[test]
    fn a_notebook_with_its_format_after_a_large_cell_is_recognised() {
        // Jupyter's key order: `cells` first, `nbformat` last.
        let nb = format!(
            r#"{{"cells": [{{"source": ["{}"]}}], "metadata": {{}}, "nbformat": 4}}"#,
            "x".repeat(3 << 20)
        );
        assert!(looks_like_notebook(nb.as_bytes()));
        let text = format!(r#"{{"cells": "{}"}}"#, "x".repeat(3 << 20));
        assert!(!looks_like_notebook(text.as_bytes()));
    }

    #[test]
    fn a_long_string_is_decoded_into_the_text_once() {
        let long = "x".repeat(1 << 20);
        let nb = format!(r#"{{"nbformat": 4, "cells": [{{"source": ["{long}", "\n{long}"]}}]}}"#);
        let t = decode(nb.as_bytes()).expect("valid");
        assert_eq!(t.text.len(), 2 * long.len() + 2);
        assert!(t.maps.is_empty() && t.records.len() < 16);
        let escaped = format!(
            r#"{{"nbformat": 4, "cells": [{{"source": "{}"}}]}}"#,
            r"\n".repeat(1 << 20)
        );
        let t = decode(escaped.as_bytes()).expect("valid");
        assert_eq!(t.text.len(), 1 << 20);
        // The string's map is moved in whole: the records hold its index, not its points.
        assert_eq!(t.maps.len(), 1);
        assert!(t.records.len() < 16);
        assert_eq!(t.raw_offset(12345), Some(nb_offset(&escaped, 12345)));
    }

    /// Raw offset of the `n`-th `\n` escape in `escaped`.
    fn nb_offset(escaped: &str, n: usize) -> usize {
        escaped.find(r"\n").unwrap() + 2 * n
    }

    #[test]
    fn invalid_json_is_not_a_notebook() {
        assert!(decode(br#"{"cells": [ {"source": "x"#).is_none());
        assert!(decode(&[b'['; 10_000]).is_none(), "deep nesting is bounded");
    }

    #[test]
    fn data_keys_are_written_before_their_values_and_structure_keys_are_not() {
        let nb = br#"{"cells": [{"cell_type": "code", "source": "x = 1", "outputs": [
            {"output_type": "display_data", "data": {"application/json": {"w": {"api_key": "v1"}},
             "text/plain": "t"}}]}],
          "metadata": {"tracking": {"token": "v2", "n": 3}}, "nbformat": 4, "nbformat_minor": 5}"#;
        let text = decode(nb).unwrap();
        let lines: Vec<&str> = std::str::from_utf8(&text.text).unwrap().lines().collect();
        assert_eq!(
            lines,
            [
                "code",
                "x = 1",
                "display_data",
                "w",
                "api_key=v1",
                "t",
                "tracking",
                "token=v2",
                "n"
            ]
        );
        // The value still maps back to its bytes in the file, and the key to its own.
        let at = text.text.windows(2).position(|w| w == b"v1").unwrap();
        let raw = text.raw_offset(at).unwrap();
        assert_eq!(&nb[raw..raw + 2], b"v1");
        let key = text.raw_offset(at - "api_key=".len()).unwrap();
        assert_eq!(&nb[key..key + 7], b"api_key");
    }
}
