//! safetensors: the strings of the JSON header (`__metadata__` and any non-tensor field).

use super::{le_u64, MetaString};
use crate::content::json::{dotted, JsonEvent, JsonReader, PathItem};

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
    let header = &data[..8 + n];
    let first = header[8..].iter().position(|b| !b" \t\n\r".contains(b));
    if first.map(|i| header[8 + i]) != Some(b'{') {
        let at = 8 + first.unwrap_or(n);
        return Err(format!(
            "safetensors header: header is not a JSON object at byte {at}"
        ));
    }
    let mut reader = JsonReader::new(header, 8, SAFETENSORS_MAX_DEPTH);
    let mut out = Vec::new();
    // Keys are built per string: a header of deep, long keys over many small values would
    // build far more key bytes than it has. Past the header's own size (plus 1 MiB) of keys,
    // strings come with the last item of their path only.
    let mut key_budget = n + (1 << 20);
    while let Some(event) = reader
        .next()
        .map_err(|e| format!("safetensors header: {e}"))?
    {
        let (s, is_key) = match event {
            JsonEvent::String(s) => (s, false),
            JsonEvent::Key(k) => (k, true),
            _ => continue,
        };
        let path = reader.path();
        // After a key, the path ends with the key itself: a tensor's `dtype`, `shape` and
        // `data_offsets` keys are skipped with their values.
        if s.is_empty() || is_tensor_field(path) {
            continue;
        }
        let full: usize = path.iter().map(|item| item_len(item) + 1).sum();
        let key = if full <= key_budget {
            key_budget -= full;
            dotted(path)
        } else {
            dotted(&path[path.len().saturating_sub(1)..])
        };
        out.push(MetaString {
            key,
            offset: s.start(),
            value: s.value().into_owned(),
            is_key,
            record: None,
            row: None,
        });
    }
    Ok(out)
}

/// The bytes a path item takes in a dotted key (an index counts 20, its longest).
fn item_len(item: &PathItem) -> usize {
    match item {
        PathItem::Key(k) => k.len(),
        PathItem::Index(_) => 20,
    }
}

/// True inside the `dtype`, `shape` or `data_offsets` field of a tensor entry (a top-level
/// member other than `__metadata__`).
fn is_tensor_field(path: &[PathItem]) -> bool {
    match path {
        [PathItem::Key(top), PathItem::Key(field), ..] => {
            top != "__metadata__" && TENSOR_FIELDS.contains(&field.as_str())
        }
        _ => false,
    }
}
