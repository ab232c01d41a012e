//! Jupyter notebooks (nbformat 4 and 3): every string of the notebook is scanned except base64
//! payloads (binary MIME outputs, attachments), joined into one text whose bytes map back to
//! the `.ipynb` file's bytes, with the cell and output index of each piece.
//!
//! A small pull parser walks the raw JSON, so positions survive (serde's `Value` forgets them).

/// One decoded string of the notebook and where its bytes came from.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Offset of the segment in the joined text.
    pub text_start: usize,
    /// Raw file offset of each decoded byte, plus one past the end.
    pub raw: Vec<u32>,
    /// Cell index, if inside `cells`.
    pub cell: Option<usize>,
    /// Output index, if inside a cell's `outputs`.
    pub output: Option<usize>,
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

    /// Raw file offset of text offset `at`.
    pub fn raw_offset(&self, at: usize) -> Option<usize> {
        let seg = self.segment(at)?;
        seg.raw.get(at - seg.text_start).map(|&r| r as usize)
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

#[derive(Debug, Clone, PartialEq)]
enum PathItem {
    Key(String),
    Index(usize),
}

struct Parser<'a> {
    data: &'a [u8],
    pos: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 256;

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

/// Parses a notebook; `None` when it is not valid JSON (the caller then scans it as text).
pub fn decode(data: &[u8]) -> Option<NotebookText> {
    let mut p = Parser {
        data,
        pos: 0,
        depth: 0,
    };
    let mut out = NotebookText::default();
    let mut path = Vec::new();
    p.value(&mut path, &mut out)?;
    p.skip_ws();
    (p.pos == data.len()).then_some(out)
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

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.data.len() && self.data[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn value(&mut self, path: &mut Vec<PathItem>, out: &mut NotebookText) -> Option<()> {
        self.skip_ws();
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let r = match *self.data.get(self.pos)? {
            b'{' => self.object(path, out),
            b'[' => self.array(path, out),
            b'"' => {
                let (text, raw) = strip_ansi(self.string()?);
                let (cell, output, skip) = location(path);
                if !skip && !text.is_empty() {
                    // Each string is its own line of the joined text.
                    if !out.text.is_empty() && out.text.last() != Some(&b'\n') {
                        let last = out
                            .segments
                            .last()
                            .and_then(|s| s.raw.last().copied())
                            .unwrap_or(0);
                        out.segments.push(Segment {
                            text_start: out.text.len(),
                            raw: vec![last, last],
                            cell,
                            output,
                        });
                        out.text.push(b'\n');
                    }
                    out.segments.push(Segment {
                        text_start: out.text.len(),
                        raw,
                        cell,
                        output,
                    });
                    out.text.extend_from_slice(&text);
                }
                Some(())
            }
            _ => {
                // Numbers, true, false, null.
                let start = self.pos;
                while self.pos < self.data.len() && !b",]} \t\r\n".contains(&self.data[self.pos]) {
                    self.pos += 1;
                }
                (self.pos > start).then_some(())
            }
        };
        self.depth -= 1;
        r
    }

    fn object(&mut self, path: &mut Vec<PathItem>, out: &mut NotebookText) -> Option<()> {
        self.pos += 1;
        self.skip_ws();
        if self.data.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.skip_ws();
            if self.data.get(self.pos) != Some(&b'"') {
                return None;
            }
            let (key, _) = self.string()?;
            self.skip_ws();
            if self.data.get(self.pos) != Some(&b':') {
                return None;
            }
            self.pos += 1;
            path.push(PathItem::Key(String::from_utf8_lossy(&key).into_owned()));
            let r = self.value(path, out);
            path.pop();
            r?;
            self.skip_ws();
            match self.data.get(self.pos)? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, path: &mut Vec<PathItem>, out: &mut NotebookText) -> Option<()> {
        self.pos += 1;
        self.skip_ws();
        if self.data.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Some(());
        }
        let mut i = 0;
        loop {
            path.push(PathItem::Index(i));
            let r = self.value(path, out);
            path.pop();
            r?;
            i += 1;
            self.skip_ws();
            match self.data.get(self.pos)? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A JSON string: its decoded bytes and the raw offset of each (plus one past the end).
    fn string(&mut self) -> Option<(Vec<u8>, Vec<u32>)> {
        self.pos += 1;
        let mut text = Vec::new();
        let mut raw = Vec::new();
        loop {
            let at = self.pos;
            let b = *self.data.get(self.pos)?;
            match b {
                b'"' => {
                    self.pos += 1;
                    raw.push(at as u32);
                    return Some((text, raw));
                }
                b'\\' => {
                    let e = *self.data.get(self.pos + 1)?;
                    self.pos += 2;
                    let decoded: Vec<u8> = match e {
                        b'n' => vec![b'\n'],
                        b't' => vec![b'\t'],
                        b'r' => vec![b'\r'],
                        b'b' => vec![8],
                        b'f' => vec![12],
                        b'/' | b'\\' | b'"' => vec![e],
                        b'u' => {
                            let hex = self.data.get(self.pos..self.pos + 4)?;
                            let cp =
                                u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                            self.pos += 4;
                            let c = char::from_u32(cp).unwrap_or('\u{fffd}');
                            c.to_string().into_bytes()
                        }
                        _ => return None,
                    };
                    for d in decoded {
                        text.push(d);
                        raw.push(at as u32);
                    }
                }
                _ => {
                    text.push(b);
                    raw.push(at as u32);
                    self.pos += 1;
                }
            }
        }
    }
}

/// Removes ANSI escape sequences (`ESC [ ... final`), which colour tracebacks and glue
/// themselves to the text around them, keeping the raw offsets of what remains.
fn strip_ansi((text, raw): (Vec<u8>, Vec<u32>)) -> (Vec<u8>, Vec<u32>) {
    if !text.contains(&0x1b) {
        return (text, raw);
    }
    let (mut t, mut r) = (
        Vec::with_capacity(text.len()),
        Vec::with_capacity(raw.len()),
    );
    let mut i = 0;
    while i < text.len() {
        if text[i] == 0x1b && text.get(i + 1) == Some(&b'[') {
            i += 2;
            while i < text.len() && !(0x40..=0x7e).contains(&text[i]) {
                i += 1;
            }
            i += 1;
            continue;
        }
        t.push(text[i]);
        r.push(raw[i]);
        i += 1;
    }
    r.push(*raw.last().unwrap_or(&0));
    (t, r)
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
