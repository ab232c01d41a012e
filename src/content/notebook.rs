//! Jupyter notebooks (nbformat 4 and 3): every string of the notebook is scanned except base64
//! payloads (binary MIME outputs, attachments), joined into one text whose bytes map back to
//! the `.ipynb` file's bytes, with the cell and output index of each piece.
//!
//! The shared [`JsonReader`] walks the raw JSON, so positions survive (serde's `Value` forgets
//! them). The map back is a byte stream of one record per string, most of them one byte (a
//! notebook of millions of one-character strings stays near its own size), with a checkpoint
//! every [`CHECKPOINT`] records for look-ups; cells and outputs are kept per run of strings.

use std::ops::Range;

use super::json::{get_varint, put_varint, JsonEvent, JsonReader, OffsetMap, PathItem};

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
/// The separator bit, in both forms: a `\n` was put before the string, standing for the end
/// of the one before.
const SEPARATOR: u8 = 0x40;
/// In the long form: the string has escape points (after the gap and length varints).
const ESCAPED: u8 = 0x01;

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
    checkpoints: Vec<Checkpoint>,
    /// Strings recorded, and the raw end of the last one.
    strings: usize,
    raw_end: usize,
}

/// One string's record, read back.
struct Record {
    separator: bool,
    len: usize,
    map: OffsetMap,
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
    fn read(&self, cp: &mut Checkpoint) -> Option<Record> {
        let at = &mut cp.record;
        let head = *self.records.get(*at)?;
        *at += 1;
        let separator = head & SEPARATOR != 0;
        if head & SHORT != 0 {
            let raw_start = cp.raw_end + usize::from((head >> 3) & 7);
            return Some(Record {
                separator,
                len: usize::from(head & 7) + 1,
                map: OffsetMap::linear(raw_start),
            });
        }
        let raw_start = cp.raw_end + usize::try_from(get_varint(&self.records, at)?).ok()?;
        let len = usize::try_from(get_varint(&self.records, at)?).ok()?;
        let map = if head & ESCAPED != 0 {
            OffsetMap::read_points(raw_start, &self.records, at)?
        } else {
            OffsetMap::linear(raw_start)
        };
        Some(Record {
            separator,
            len,
            map,
        })
    }

    /// Appends one string of the notebook as its own line of the joined text.
    fn push(&mut self, text: &[u8], map: OffsetMap, cell: Option<usize>, output: Option<usize>) {
        if self.strings % CHECKPOINT == 0 {
            self.checkpoints.push(Checkpoint {
                record: self.records.len(),
                text: self.text.len(),
                raw_end: self.raw_end,
            });
        }
        self.strings += 1;
        let separator = !self.text.is_empty() && self.text.last() != Some(&b'\n');
        if self.segments.last().map(|s| (s.cell, s.output)) != Some((cell, output)) {
            self.segments.push(Segment {
                text_start: self.text.len(),
                cell,
                output,
            });
        }
        if separator {
            self.text.push(b'\n');
        }
        // Strings come in file order: each starts past the end of the one before.
        let gap = map.start().saturating_sub(self.raw_end);
        let sep_bit = if separator { SEPARATOR } else { 0 };
        if map.is_linear() && gap < 8 && (1..=8).contains(&text.len()) {
            self.records
                .push(SHORT | sep_bit | (gap as u8) << 3 | (text.len() - 1) as u8);
        } else {
            let escaped = if map.is_linear() { 0 } else { ESCAPED };
            self.records.push(sep_bit | escaped);
            put_varint(&mut self.records, gap as u64);
            put_varint(&mut self.records, text.len() as u64);
            if !map.is_linear() {
                map.write_points(&mut self.records);
            }
        }
        self.raw_end = map.raw(text.len());
        self.text.extend_from_slice(text);
    }
}

/// Whether `data` looks like a notebook: a JSON object naming `nbformat` and `cells` or
/// `worksheets` near its start.
pub fn looks_like_notebook(data: &[u8]) -> bool {
    let start = data.iter().position(|b| !b.is_ascii_whitespace());
    if start.map(|s| data[s]) != Some(b'{') {
        return false;
    }
    let head = &data[..data.len().min(1 << 20)];
    memchr::memmem::find(head, b"\"nbformat\"").is_some()
        && (memchr::memmem::find(head, b"\"cells\"").is_some()
            || memchr::memmem::find(head, b"\"worksheets\"").is_some())
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
    while let Some(event) = reader.next().ok()? {
        let JsonEvent::String(string) = event else {
            continue;
        };
        let (cell, output, skip) = location(reader.path());
        if skip || string.value.is_empty() {
            continue;
        }
        let (text, map) = strip_ansi(string.value, string.map);
        if !text.is_empty() {
            out.push(&text, map, cell, output);
        }
    }
    Some(out)
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
/// themselves to the text around them, keeping the raw offsets of what remains.
fn strip_ansi(text: Vec<u8>, map: OffsetMap) -> (Vec<u8>, OffsetMap) {
    if !text.contains(&0x1b) {
        return (text, map);
    }
    let mut kept: Vec<Range<usize>> = Vec::new();
    let mut from = 0;
    let mut i = 0;
    while i < text.len() {
        if text[i] == 0x1b && text.get(i + 1) == Some(&b'[') {
            kept.push(from..i);
            i += 2;
            while i < text.len() && !(0x40..=0x7e).contains(&text[i]) {
                i += 1;
            }
            i = (i + 1).min(text.len());
            from = i;
            continue;
        }
        i += 1;
    }
    kept.push(from..text.len());
    let stripped = kept
        .iter()
        .flat_map(|r| &text[r.clone()])
        .copied()
        .collect();
    (stripped, map.retain(&kept, text.len()))
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
            if skip || string.value.is_empty() {
                continue;
            }
            let (value, map) = strip_ansi(string.value, string.map);
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
        let nb = format!(
            r#"{{"nbformat": 4, "cells": [
  {{"source": ["a", "bb\n", "ccc", "", "\u00e9\n\"q\"", "{long}", "d"],
    "outputs": [{{"text": ["x\u001b[1my\u001b[0m", "z"]}},
                {{"data": {{"image/png": "QUFB", "text/plain": "p"}}}}, "\n"]}},
  {{"source": "s\tt"}},
  "w",   "{long}\n\u2603"
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
    fn invalid_json_is_not_a_notebook() {
        assert!(decode(br#"{"cells": [ {"source": "x"#).is_none());
        assert!(decode(&[b'['; 10_000]).is_none(), "deep nesting is bounded");
    }
}
