//! Jupyter notebooks (nbformat 4 and 3): every string of the notebook is scanned except base64
//! payloads (binary MIME outputs, attachments), joined into one text whose bytes map back to
//! the `.ipynb` file's bytes, with the cell and output index of each piece.
//!
//! The shared [`JsonReader`] walks the raw JSON, so positions survive (serde's `Value` forgets
//! them); each piece keeps an [`OffsetMap`] of its escape points, not an offset per byte.

use std::ops::Range;

use super::json::{JsonEvent, JsonReader, OffsetMap, PathItem};

/// One decoded string of the notebook and where its bytes came from.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Offset of the segment in the joined text.
    pub text_start: usize,
    /// Length of the segment in the joined text.
    pub len: usize,
    /// Raw file offset of each byte of the segment (and of its end).
    pub map: OffsetMap,
    /// Cell index, if inside `cells`.
    pub cell: Option<usize>,
    /// Output index, if inside a cell's `outputs`.
    pub output: Option<usize>,
}

impl Segment {
    /// Raw file offset of the segment's end (the closing quote of its string).
    fn raw_end(&self) -> usize {
        self.map.raw(self.len)
    }
}

/// A notebook's scannable text and its map back to the file.
#[derive(Debug, Default)]
pub struct NotebookText {
    /// The joined strings.
    pub text: Vec<u8>,
    /// Pieces of `text`, in order.
    pub segments: Vec<Segment>,
}

impl NotebookText {
    /// The segment holding text offset `at`.
    pub fn segment(&self, at: usize) -> Option<&Segment> {
        let i = self.segments.partition_point(|s| s.text_start <= at);
        self.segments.get(i.checked_sub(1)?)
    }

    /// Raw file offset of text offset `at` (`at` may be the end of the text).
    pub fn raw_offset(&self, at: usize) -> Option<usize> {
        let seg = self.segment(at)?;
        let within = at - seg.text_start;
        (within <= seg.len).then(|| seg.map.raw(within))
    }

    /// Appends one string of the notebook as its own line of the joined text.
    fn push(&mut self, text: &[u8], map: OffsetMap, cell: Option<usize>, output: Option<usize>) {
        if !self.text.is_empty() && self.text.last() != Some(&b'\n') {
            let last = self.segments.last().map_or(0, Segment::raw_end);
            self.segments.push(Segment {
                text_start: self.text.len(),
                len: 1,
                map: OffsetMap::collapsed(last, 1),
                cell,
                output,
            });
            self.text.push(b'\n');
        }
        self.segments.push(Segment {
            text_start: self.text.len(),
            len: text.len(),
            map,
            cell,
            output,
        });
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

    #[test]
    fn invalid_json_is_not_a_notebook() {
        assert!(decode(br#"{"cells": [ {"source": "x"#).is_none());
        assert!(decode(&[b'['; 10_000]).is_none(), "deep nesting is bounded");
    }
}
