//! Content decoders: formats chosen by their bytes (magic numbers and structure), never by
//! file name alone, each yielding text to scan with a map back to where it came from.
//!
//! Contract: [`scan_content`] takes one top-level blob and returns every placed finding in it
//! and in everything nested inside it (archive members, notebook cells and outputs), under
//! one [`Budget`] per top-level blob (depth, total decoded bytes, entries, compression ratio).
//! What a limit cuts off is reported as a warning; nothing here panics on input.

#[cfg(feature = "archive")]
mod archive;
mod budget;
mod encoded;
pub mod json;
mod layout;
pub mod model;
pub mod notebook;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod pickle;
mod protobuf;
mod pylit;
pub mod tracker;

use crate::findings::{place, place_name, Extra, Line, NameKind, Placed, Position};
use crate::scan::Worker;
use crate::source::looks_binary;
use crate::warning::WarningKind;

pub use budget::{Budget, Limits, MAX_ARCHIVE_DEPTH};
pub use layout::{is_lfs_pointer, path_key};

use budget::BOMB_WARNINGS;

/// What decoding one blob found: findings and warnings (with the member they concern).
#[derive(Debug, Default)]
pub struct Decoded {
    /// Placed findings, `member` set for nested content.
    pub placed: Vec<Placed>,
    /// Problems met (a limit reached, a corrupt member); the scan went on.
    pub warnings: Vec<DecodeWarning>,
}

/// A problem met while decoding; the pipeline adds the blob's path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeWarning {
    /// [`WarningKind::Malformed`] or [`WarningKind::Limit`].
    pub kind: WarningKind,
    /// The archive member chain it concerns, if any.
    pub member: Option<String>,
    /// What happened.
    pub message: String,
}

/// Whether a decoder claims `data` (so binary content is not skipped).
pub fn claims(data: &[u8]) -> bool {
    #[cfg(feature = "archive")]
    if archive::is_archive(data) {
        return true;
    }
    #[cfg(feature = "parquet")]
    if parquet::is_parquet(data) || parquet::is_damaged_parquet(data) {
        return true;
    }
    model::is_npy(data)
        || model::is_safetensors(data)
        || truncated_safetensors(data)
        || model::is_gguf(data)
        || pickle::looks_like_pickle(data)
        || model::is_onnx(data)
        || model::is_hdf5(data)
        || notebook::looks_like_notebook(data)
        || tracker::is_tfevents(data)
        || tracker::is_wandb_log(data)
        || model::is_saved_model(data)
        || model::is_keras_metadata(data)
}

/// A safetensors start: a little-endian header length below 4 GiB, then `{`. (Text whose
/// ninth byte is `{` has ASCII in the length bytes, far above that.)
fn safetensors_prefix(data: &[u8]) -> bool {
    // The header is a JSON object whose first key is quoted: `{"` (a gettext `.mo` file with
    // 123 strings has `{` there too, followed by NULs).
    data.len() > 9
        && data[4..8] == [0, 0, 0, 0]
        && data[8] == b'{'
        && matches!(data[9], b'"' | b'}' | b' ' | b'\n' | b'\r' | b'\t')
}

/// A safetensors file whose header length points past its end: claimed, so that it is
/// reported as malformed rather than skipped as binary.
fn truncated_safetensors(data: &[u8]) -> bool {
    safetensors_prefix(data)
        && u64::from_le_bytes(data[..8].try_into().unwrap_or([0xff; 8])) > (data.len() - 8) as u64
}

/// Whether a file over the size limit is still worth opening: formats whose decoders read
/// only headers or bounded parts (model weights, archives), judged from the first bytes.
pub fn decodes_large(head: &[u8]) -> bool {
    #[cfg(feature = "archive")]
    if head.starts_with(b"PK\x03\x04") {
        return true;
    }
    // Dataset shards run to gigabytes; the decoder holds one column chunk and one page at a
    // time and stops at the budget, so a large file costs what a small one may.
    #[cfg(feature = "parquet")]
    if head.starts_with(b"PAR1") {
        return true;
    }
    // An HDF5 file (Keras `.h5` weights) is walked by its headers; its datasets are not read.
    head.starts_with(b"GGUF")
        || model::is_npy(head)
        || safetensors_prefix(head)
        || model::is_hdf5(head)
        // Record logs are read record by record under `tracker::RecordLimits`.
        || tracker::is_wandb_log(head)
        || tracker::starts_like_tfevents(head)
}

/// What a Keras `Lambda` layer finding says.
const KERAS_LAMBDA_MESSAGE: &str =
    "Keras Lambda layer: the model carries Python code that runs when it is loaded";

/// Largest model header (safetensors JSON) read.
const MAX_MODEL_HEADER: usize = 100 << 20;

/// Scans a blob and everything nested in it.
pub fn scan_content(worker: &mut Worker<'_>, data: &[u8], limits: &Limits) -> Decoded {
    scan_content_keyed(worker, data, limits, None)
}

/// [`scan_content`] for a blob whose path gives its content a key ([`path_key`]): text is
/// scanned as that key's value.
pub fn scan_content_keyed(
    worker: &mut Worker<'_>,
    data: &[u8],
    limits: &Limits,
    key: Option<&str>,
) -> Decoded {
    let mut out = Decoded::default();
    let mut budget = Budget::new(limits, data.len());
    let mut ctx = Context {
        worker,
        budget: &mut budget,
        out: &mut out,
    };
    match key {
        Some(key) => ctx.scan_keyed_file(data, key),
        None => ctx.decode(data, None, 0),
    }
    if budget.bomb_members > BOMB_WARNINGS {
        out.warnings.push(DecodeWarning {
            kind: WarningKind::Limit,
            member: None,
            message: format!(
                "{} more archive members declare sizes past the limits (possible zip bomb)",
                budget.bomb_members - BOMB_WARNINGS
            ),
        });
    }
    out
}

pub(crate) struct Context<'a, 'w, 'l> {
    pub(crate) worker: &'a mut Worker<'w>,
    pub(crate) budget: &'a mut Budget<'l>,
    pub(crate) out: &'a mut Decoded,
}

/// Joins a member chain: `outer!inner`.
pub(crate) fn join_member(parent: Option<&str>, name: &str) -> String {
    match parent {
        Some(p) => format!("{p}!{name}"),
        None => name.to_string(),
    }
}

impl Context<'_, '_, '_> {
    /// Malformed content: a corrupt member, a broken header.
    pub(crate) fn warn(&mut self, member: Option<&str>, msg: impl std::fmt::Display) {
        self.push_warning(WarningKind::Malformed, member, msg);
    }

    /// A decoding limit was reached.
    pub(crate) fn limit(&mut self, member: Option<&str>, msg: impl std::fmt::Display) {
        self.push_warning(WarningKind::Limit, member, msg);
    }

    fn push_warning(
        &mut self,
        kind: WarningKind,
        member: Option<&str>,
        msg: impl std::fmt::Display,
    ) {
        self.out.warnings.push(DecodeWarning {
            kind,
            member: member.map(str::to_string),
            message: msg.to_string(),
        });
    }

    /// Decodes `data` (a top-level blob when `member` is `None`) by what its bytes are.
    pub(crate) fn decode(&mut self, data: &[u8], member: Option<&str>, depth: usize) {
        #[cfg(feature = "archive")]
        if archive::is_archive(data) {
            let max_depth = self.budget.limits.max_depth.min(MAX_ARCHIVE_DEPTH);
            if depth >= max_depth {
                self.limit(
                    member,
                    format!("archive nested deeper than {max_depth} levels: not opened"),
                );
                return;
            }
            archive::decode(self, data, member, depth + 1);
            return;
        }
        #[cfg(feature = "parquet")]
        if parquet::is_parquet(data) || parquet::is_damaged_parquet(data) {
            parquet::decode(self, data, member);
            return;
        }
        if model::is_npy(data) {
            match model::npy_header(data) {
                // Object arrays are pickles after the header.
                Ok(h) if h.object => self.scan_pickle(
                    data.get(h.data_offset..).unwrap_or_default(),
                    h.data_offset,
                    member,
                    true,
                ),
                Ok(_) => {}
                Err(e) => self.warn(member, format!("unreadable .npy header: {e}")),
            }
            return;
        }
        if model::is_safetensors(data) || truncated_safetensors(data) {
            match model::safetensors_strings(data, MAX_MODEL_HEADER) {
                Ok(strings) => self.scan_meta(&strings, member),
                Err(e) => self.warn(member, e),
            }
            return;
        }
        if model::is_gguf(data) {
            match model::gguf_strings(data, &model::GgufLimits::default()) {
                Ok((strings, warnings)) => {
                    for w in warnings {
                        self.warn(member, format!("GGUF metadata: {w}"));
                    }
                    self.scan_meta(&strings, member);
                }
                Err(e) => self.warn(member, format!("GGUF header: {e}")),
            }
            return;
        }
        if model::is_hdf5(data) {
            self.scan_hdf5(data, member);
            return;
        }
        if tracker::is_tfevents(data) {
            let log = tracker::tfevents_strings(data, &tracker::RecordLimits::default());
            self.scan_log("TensorBoard events", log, member);
            return;
        }
        if tracker::is_wandb_log(data) {
            let log = tracker::wandb_strings(data, &tracker::RecordLimits::default());
            self.scan_log("W&B run log", log, member);
            return;
        }
        if pickle::looks_like_pickle(data) {
            let framed = data.first() == Some(&0x80);
            self.scan_pickle(data, 0, member, framed);
            // A protocol-0 pickle is text too: a text file taken for one is still scanned.
            if framed || looks_binary(data) {
                return;
            }
        }
        if model::is_onnx(data) {
            match model::onnx_strings(data) {
                Ok(strings) => self.scan_meta(&strings, member),
                Err(e) => self.warn(member, format!("ONNX model: {e}")),
            }
            return;
        }
        if model::is_saved_model(data) {
            let found = model::saved_model_strings(data);
            self.scan_saved_model(found, member);
            return;
        }
        if model::is_keras_metadata(data) {
            let found = model::keras_metadata_strings(data);
            self.scan_saved_model(found, member);
            return;
        }
        if notebook::looks_like_notebook(data) {
            if let Some(nb) = notebook::decode(data) {
                self.scan_notebook(data, &nb, member);
                return;
            }
        }
        if looks_binary(data) {
            return;
        }
        if layout::is_wandb_config(data) {
            self.scan_wandb_config(data, member);
        }
        self.scan_text(data, member);
    }

    /// Records a decoder finding (not a secret): an unsafe import or a code-carrying layer.
    pub(crate) fn unsafe_code(
        &mut self,
        rule_id: &str,
        what: &str,
        offset: usize,
        position: Option<Position>,
        member: Option<&str>,
        message: String,
    ) {
        let Some(rule) = self.worker.scanner().rules().index_of(rule_id) else {
            return;
        };
        let mut p = binary_placed(
            rule,
            what.as_bytes().to_vec(),
            offset,
            member,
            Extra {
                message: Some(message.clone()),
                ..Extra::default()
            },
        );
        // The snippet is the message; nothing in it is secret.
        p.snippet = message.into_bytes();
        p.snippet_secret = 0..0;
        p.position = position;
        self.out.placed.push(p);
    }

    /// A Keras `config.json` (inside a `.keras` zip) with `Lambda` layers: serialized code.
    fn check_keras_config(&mut self, data: &[u8], member: Option<&str>) {
        for at in model::keras_lambda_offsets(data, member) {
            let position = position_of(data, at, at + model::LAMBDA_TOKEN_LEN);
            self.keras_lambda(at, Some(position), member);
        }
    }

    /// A Keras `Lambda` layer's class name at `offset`.
    fn keras_lambda(&mut self, offset: usize, position: Option<Position>, member: Option<&str>) {
        self.unsafe_code(
            crate::rules::KERAS_LAMBDA,
            "keras.layers.Lambda",
            offset,
            position,
            member,
            KERAS_LAMBDA_MESSAGE.to_string(),
        );
    }

    /// An HDF5 file (a Keras `.h5` model): its string attributes, the JSON ones by their keys;
    /// `Lambda` layers of its `model_config`.
    fn scan_hdf5(&mut self, data: &[u8], member: Option<&str>) {
        let found = match model::hdf5_strings(data) {
            Ok(found) => found,
            Err(e) => return self.warn(member, format!("HDF5: {e}")),
        };
        for w in &found.malformed {
            self.warn(member, format!("HDF5: {w}"));
        }
        for w in &found.skipped {
            self.limit(member, format!("HDF5: {w}"));
        }
        self.scan_meta(&found.strings, member);
        for &at in &found.lambdas {
            self.keras_lambda(at, None, member);
        }
    }

    /// The strings of a record log, with its warnings (`what` names the format).
    fn scan_log(&mut self, what: &str, log: tracker::LogStrings, member: Option<&str>) {
        for w in log.warnings {
            match w {
                tracker::LogWarning::Malformed(m) => self.warn(member, format!("{what}: {m}")),
                tracker::LogWarning::Limit(m) => self.limit(member, format!("{what}: {m}")),
            }
        }
        self.scan_meta(&log.strings, member);
    }

    /// The strings of a SavedModel file, its warnings and its Keras `Lambda` layers.
    fn scan_saved_model(&mut self, found: model::SavedModelStrings, member: Option<&str>) {
        for m in found.malformed {
            self.warn(member, m);
        }
        if let Some(m) = found.limited {
            self.limit(member, format!("SavedModel: {m}"));
        }
        self.scan_meta(&found.strings, member);
        for at in found.lambdas {
            self.keras_lambda(at, None, member);
        }
    }

    /// Scans plain text, and the encoded runs in it ([`encoded`]).
    fn scan_text(&mut self, data: &[u8], member: Option<&str>) {
        self.check_keras_config(data, member);
        let mut matches = self.worker.scan(data);
        let hits = encoded::scan(self.worker, data, &mut matches);
        if matches.is_empty() && hits.is_empty() {
            return;
        }
        let work = self.worker.work_mut();
        let mut placed = encoded::place(data, &matches, &hits, &mut work.place);
        if data.starts_with(b"---\n") || data.starts_with(b"---\r\n") {
            annotate_front_matter(data, &mut placed, &mut work.front_matter);
        }
        for p in &mut placed {
            p.member = member.map(str::to_string);
        }
        self.out.placed.extend(placed);
    }

    /// Model metadata strings, each with its key and the offset of its value; the keys' own
    /// names too (a secret in one is a secret in a name).
    fn scan_meta(&mut self, strings: &[model::MetaString], member: Option<&str>) {
        for names in [false, true] {
            let items: Vec<StringItem<'_>> = strings
                .iter()
                .filter(|m| m.is_key == names)
                .map(|m| StringItem {
                    offset: m.offset,
                    exact: true,
                    key: Some(&m.key),
                    value: &m.value,
                    record: m.record,
                    row: m.row,
                })
                .collect();
            self.scan_strings(&items, member, names.then_some(NameKind::Key));
        }
    }

    /// An archive member's name (`member` is its chain, the name last).
    pub(crate) fn scan_member_name(&mut self, name: &str, member: &str) {
        let matches = self.worker.scan(name.as_bytes());
        if matches.is_empty() {
            return;
        }
        let work = &mut self.worker.work_mut().place;
        for mut p in place_name(name.as_bytes(), &matches, NameKind::Member, work) {
            p.member = Some(member.to_string());
            self.out.placed.push(p);
        }
    }

    /// A pickle stream (at `base` in its member): its string constants are scanned, and each
    /// imported callable outside the safe list is a finding. `framed` says the stream is known
    /// to be a pickle (protocol 2+ header, `.npy` object array); an unframed (protocol 0/1)
    /// guess that does not parse cleanly and imports nothing was text after all, and is
    /// dropped without a word.
    fn scan_pickle(&mut self, data: &[u8], base: usize, member: Option<&str>, framed: bool) {
        let report = pickle::analyze(data, &pickle::PickleLimits::default());
        let clean = report.errors.is_empty() && !report.truncated && report.pickles > 0;
        if !framed && !clean && report.imports.is_empty() {
            return;
        }
        for e in &report.errors {
            self.warn(member, format!("pickle: {e}"));
        }
        let items: Vec<StringItem<'_>> = report
            .strings
            .iter()
            .map(|s| StringItem {
                offset: base + s.offset,
                exact: false,
                key: s.key.as_deref(),
                value: &s.value,
                record: None,
                row: None,
            })
            .collect();
        self.scan_strings(&items, member, None);
        for import in &report.imports {
            let (rule, family) = match import.verdict {
                pickle::ImportVerdict::Safe => continue,
                pickle::ImportVerdict::Unknown => {
                    (crate::rules::PICKLE_UNKNOWN, "not on the safe list")
                }
                pickle::ImportVerdict::Dangerous(family) => {
                    (crate::rules::PICKLE_DANGEROUS, family)
                }
            };
            let callable = format!("{}.{}", import.module, import.name);
            let how = if import.called {
                "called when the pickle is loaded"
            } else {
                "imported, not called"
            };
            let message = format!("pickle imports {callable} ({family}); {how}");
            self.unsafe_code(rule, &callable, base + import.offset, None, member, message);
        }
    }

    /// Scans strings pulled out of binary content (pickle constants, model metadata): joined
    /// one per line, each finding placed at its string's byte offset, with its key.
    fn scan_strings(
        &mut self,
        items: &[StringItem<'_>],
        member: Option<&str>,
        name: Option<NameKind>,
    ) {
        // One line per value. A value under a key is written as an assignment, `key = "value"`,
        // so that rules which need the key's name (`wandb_api_key`, `aws_secret_access_key`)
        // see it; `starts` holds where each value begins, past its key.
        //
        // A pickle can refer to one long key from many values (its memo), so the keys written
        // are bounded by the values' own bytes, plus 1 MiB: past that, values are written bare.
        let mut key_budget = items.iter().map(|i| i.value.len()).sum::<usize>() + (1 << 20);
        let mut text = Vec::new();
        let mut starts = Vec::with_capacity(items.len());
        for item in items {
            let keyed = match (&item.key, name) {
                (Some(key), None) if key.len().min(MAX_KEY) <= key_budget => {
                    key_budget -= key.len().min(MAX_KEY);
                    push_key(&mut text, key);
                    text.extend_from_slice(b" = \"");
                    true
                }
                _ => false,
            };
            starts.push(text.len());
            text.extend_from_slice(item.value);
            if keyed {
                text.push(b'"');
            }
            text.push(b'\n');
        }
        let matches = self.worker.scan(&text);
        for mut p in place(&text, &matches, &mut self.worker.work_mut().place) {
            let i = starts.partition_point(|&s| s <= p.offset);
            let Some(i) = i.checked_sub(1) else { continue };
            let Some(item) = items.get(i) else { continue };
            let within = p.offset - starts[i];
            if within >= item.value.len() {
                // In the next line's key: a secret in a key is found when keys are scanned.
                continue;
            }
            p.offset = item.offset + if item.exact { within } else { 0 };
            p.position = None;
            p.member = member.map(str::to_string);
            p.extra.key = item.key.map(str::to_string);
            p.extra.record = item.record;
            p.extra.row = item.row;
            p.extra.name = name;
            self.out.placed.push(p);
        }
    }

    fn scan_notebook(&mut self, raw: &[u8], nb: &notebook::NotebookText, member: Option<&str>) {
        let mut matches = self.worker.scan(&nb.text);
        let hits = encoded::scan(self.worker, &nb.text, &mut matches);
        if matches.is_empty() && hits.is_empty() {
            return;
        }
        let mut work = 0;
        // Findings come in text order, which is file order: lines are counted on, not again.
        let mut line = Line::first();
        for mut p in encoded::place(&nb.text, &matches, &hits, &mut work) {
            let (Some(start), Some(seg)) = (nb.raw_offset(p.offset), nb.segment(p.offset)) else {
                continue;
            };
            // A decoded secret sits at its encoded bytes, which never span lines.
            let len = if p.extra.decoded.is_some() {
                p.snippet_secret.len()
            } else {
                p.secret.len()
            };
            let end = nb
                .raw_offset(p.offset + len.saturating_sub(1))
                .map_or(start + len, |e| e + 1);
            p.extra.cell = seg.cell;
            p.extra.output = seg.output;
            p.offset = start;
            p.position = Some(line.position(raw, start, end, &mut work));
            p.member = member.map(str::to_string);
            self.out.placed.push(p);
        }
        self.worker.work_mut().place += work;
    }
}

/// The longest key written before a value: rules look at the end of a key, next to its value.
const MAX_KEY: usize = 200;

/// Writes the end of `key` with the bytes that would end its line or its quoted value
/// (control bytes, quotes) replaced, so that a hostile key cannot forge another line.
fn push_key(text: &mut Vec<u8>, key: &str) {
    let bytes = key.as_bytes();
    let mut from = bytes.len().saturating_sub(MAX_KEY);
    while !key.is_char_boundary(from) {
        from += 1;
    }
    text.extend(bytes[from..].iter().map(|&b| {
        if b < 0x20 || b == 0x7f || b == b'"' {
            b'_'
        } else {
            b
        }
    }));
}

/// A string found in binary content.
pub(crate) struct StringItem<'a> {
    /// Byte offset in the member: of the value itself when `exact`, else of the record holding it.
    pub(crate) offset: usize,
    pub(crate) exact: bool,
    pub(crate) key: Option<&'a str>,
    pub(crate) value: &'a [u8],
    /// The record of a record log, or the row of a table, the value is in.
    pub(crate) record: Option<u64>,
    pub(crate) row: Option<u64>,
}

/// Lines and columns of raw byte range `start..end`.
pub(crate) fn position_of(raw: &[u8], start: usize, end: usize) -> Position {
    Position::of(raw, start, end)
}

/// For findings inside YAML front matter (`---` … `---`, as Hugging Face model and dataset
/// cards have), records the dotted key path they sit under. The front-matter bytes read are
/// added to `work`.
fn annotate_front_matter(data: &[u8], placed: &mut [Placed], work: &mut u64) {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.lines().collect();
    let Some(close) = lines.iter().skip(1).position(|l| {
        *work += l.len() as u64 + 1;
        l.trim_end() == "---" || l.trim_end() == "..."
    }) else {
        return;
    };
    let end_line = close + 2; // 1-based line of the closing marker
                              // Findings by line, so the front matter is walked once, top to bottom.
    let mut order: Vec<(usize, usize)> = placed
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((p.position?.line, i)))
        .filter(|&(line, _)| line > 1 && line < end_line)
        .collect();
    order.sort_unstable();
    let mut order = order.into_iter().peekable();
    // The keys enclosing the current line: each with its indentation, strictly increasing (a
    // key line closes every key at its indentation or deeper).
    let mut stack: Vec<(usize, &str)> = Vec::new();
    for (i, l) in lines.iter().enumerate().take(end_line - 1).skip(1) {
        *work += l.len() as u64 + 1;
        if let Some((indent, key)) = front_matter_key(l) {
            while stack.last().is_some_and(|&(d, _)| d >= indent) {
                stack.pop();
            }
            stack.push((indent, key));
        }
        let line = i + 1;
        let mut path = None;
        while let Some((_, p)) = order.next_if(|&(l, _)| l == line) {
            if stack.is_empty() {
                continue;
            }
            let path = path.get_or_insert_with(|| {
                *work += stack.iter().map(|&(_, k)| k.len() as u64 + 1).sum::<u64>();
                stack.iter().map(|&(_, k)| k).collect::<Vec<_>>().join(".")
            });
            placed[p].extra.key = Some(path.clone());
        }
    }
}

/// The key a front-matter line opens, trimmed, with its indentation (a list item's key is
/// indented past its dash); `None` for a line without a plain `key:`.
fn front_matter_key(l: &str) -> Option<(usize, &str)> {
    let trimmed = l.trim_start();
    let body = trimmed.trim_start_matches("- ");
    let indent = l.len() - body.len();
    let key = &body[..body.find(':')?];
    let plain = key
        .chars()
        .all(|c| c.is_alphanumeric() || "_-. ".contains(c));
    (!key.is_empty() && plain).then(|| (indent, key.trim()))
}

/// A placed finding for binary content (no lines): offset in the member, and a key.
pub(crate) fn binary_placed(
    rule: usize,
    secret: Vec<u8>,
    offset: usize,
    member: Option<&str>,
    extra: Extra,
) -> Placed {
    let len = secret.len();
    Placed {
        rule,
        snippet: secret.clone(),
        snippet_secret: 0..len,
        snippet_others: Vec::new(),
        secret,
        offset,
        position: None,
        member: member.map(str::to_string),
        extra,
        stored: None,
    }
}

/// A small xorshift generator for the decoders' robustness tests: fixed seed, reproducible
/// failures.
#[cfg(test)]
pub(crate) mod test_rng {
    pub(crate) struct XorShift(pub(crate) u64);

    impl XorShift {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_keys() {
        let card =
            b"---\nlicense: mit\nwidget:\n  - text: hi\n    token: SECRET\n---\nbody SECRET\n";
        let at = card.windows(6).position(|w| w == b"SECRET").unwrap();
        let mut placed = vec![binary_placed(
            0,
            b"SECRET".to_vec(),
            at,
            None,
            Extra::default(),
        )];
        placed[0].position = Some(position_of(card, at, at + 6));
        annotate_front_matter(card, &mut placed, &mut 0);
        assert_eq!(placed[0].extra.key.as_deref(), Some("widget.token"));
    }

    /// Issue 9: content shaped so that each finding's placing would walk back over everything
    /// before it. Each shape is scanned with its secrets in an ordinary shape too; the work
    /// counted for the hostile one, step by step, stays within [`WORK_PER_BYTE`] bytes read per
    /// input byte (a walk back per finding reads thousands: 8,000 findings in 160 kB would
    /// read about 600 MB).
    mod linear_work {
        use super::super::*;
        use crate::content::test_rng::XorShift;
        use crate::rules::RuleSet;
        use crate::scan::{Scanner, Work};

        /// Bytes read per input byte allowed to each counted step. Placing reads a line up to
        /// four times (newlines, its end, allow markers, columns), a notebook's placing both
        /// its joined text and its raw file.
        const WORK_PER_BYTE: u64 = 8;

        fn random(rng: &mut XorShift, alphabet: &[u8], n: usize) -> String {
            (0..n)
                .map(|_| char::from(alphabet[rng.below(alphabet.len())]))
                .collect()
        }

        fn aws_key_ids(seed: u64, n: usize) -> Vec<String> {
            let mut rng = XorShift(seed);
            (0..n)
                .map(|_| {
                    format!(
                        "AKIA{}",
                        random(&mut rng, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
                    )
                })
                .collect()
        }

        /// Scans `data` with a fresh worker: the locations found and the work counted.
        fn scan(data: &[u8]) -> (usize, Work) {
            let scanner =
                Scanner::new(RuleSet::builtin().expect("built-in rules")).expect("scanner");
            let mut worker = scanner.worker();
            let found = scan_content(&mut worker, data, &Limits::default())
                .placed
                .len();
            (found, worker.work())
        }

        /// Both shapes find nearly all `planted` secrets, the same number; the hostile one's
        /// counted work is within bounds. Returns its work, for the caller to look closer.
        fn assert_linear(clean: &str, hostile: &str, planted: usize) -> Work {
            let (clean_found, _) = scan(clean.as_bytes());
            let (found, work) = scan(hostile.as_bytes());
            assert!(
                clean_found > planted * 99 / 100,
                "{clean_found} of {planted}"
            );
            assert_eq!(found, clean_found);
            let len = hostile.len() as u64;
            for (step, bytes) in [
                ("data: URI check", work.data_uri),
                ("placing", work.place),
                ("front matter", work.front_matter),
            ] {
                assert!(
                    bytes <= WORK_PER_BYTE * len,
                    "{step}: {bytes} bytes read for {len} bytes with {found} findings ({work:?})"
                );
            }
            work
        }

        #[test]
        fn front_matter_with_thousands_of_secrets_is_walked_once() {
            let mut rng = XorShift(91);
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
            let lines: Vec<String> = (0..8_000)
                .map(|i| format!("  key{i}: hf_{}", random(&mut rng, alphabet, 34)))
                .collect();
            let lines = lines.join("\n");
            let work = assert_linear(
                &format!("# card\nsecrets:\n{lines}\n"),
                &format!("---\nsecrets:\n{lines}\n---\n# card\n"),
                8_000,
            );
            assert!(work.front_matter > 0, "the front matter was read");
        }

        #[test]
        fn a_run_of_key_ids_joined_by_slashes_is_walked_back_over_once() {
            // `/` is a base64 byte: the whole line is one run that the data: URI check walks
            // back over.
            let ids = aws_key_ids(92, 8_000);
            let lines: Vec<String> = ids.chunks(50).map(|c| c.join(" ")).collect();
            let work = assert_linear(&lines.join("\n"), &ids.join("/"), 8_000);
            assert!(
                work.data_uri >= ids.join("/").len() as u64,
                "the run was walked"
            );
        }

        #[test]
        fn a_line_of_many_secrets_is_read_once() {
            let ids = aws_key_ids(93, 40_000);
            let work = assert_linear(&ids.join("\n"), &ids.join(" "), 40_000);
            assert!(
                work.place >= ids.join(" ").len() as u64,
                "the line was read"
            );
        }

        #[test]
        fn a_one_line_notebook_of_many_secrets_is_placed_in_one_pass() {
            // Minified JSON: the whole notebook is one raw line, every secret on it.
            let ids = aws_key_ids(94, 8_000);
            let notebook = |strings: &[String]| {
                let quoted: Vec<String> = strings.iter().map(|s| format!("\"{s}\"")).collect();
                format!(
                    r#"{{"nbformat": 4, "cells": [{{"cell_type": "code", "source": [{}]}}]}}"#,
                    quoted.join(",")
                )
            };
            let lines: Vec<String> = ids.iter().map(|id| format!("{id}\n")).collect();
            let clean = notebook(&lines).replace(",", ",\n");
            let work = assert_linear(&clean, &notebook(&ids), 8_000);
            assert!(work.place > 0);
        }
    }

    #[test]
    fn a_gettext_catalogue_is_not_a_truncated_safetensors_file() {
        // .mo magic, revision 0, 123 strings (`{` at byte 8), then offsets.
        let mut mo = vec![
            0xde, 0x12, 0x04, 0x95, 0, 0, 0, 0, b'{', 0, 0, 0, 28, 0, 0, 0,
        ];
        mo.extend_from_slice(&[0u8; 64]);
        assert!(!truncated_safetensors(&mo));
        assert!(!claims(&mo));
        let mut st = (4096u64).to_le_bytes().to_vec();
        st.extend_from_slice(br#"{"__metadata__":{"#);
        assert!(truncated_safetensors(&st));
    }

    #[test]
    fn positions() {
        let raw = b"ab\ncdef\ng";
        assert_eq!(
            position_of(raw, 4, 6),
            Position {
                line: 2,
                column: 2,
                end_line: 2,
                end_column: 4,
                column_utf16: 2,
                end_column_utf16: 4,
            }
        );
        assert_eq!(position_of(raw, 0, 9).end_line, 3);
    }

    #[test]
    fn a_key_cannot_end_its_line_or_its_value() {
        let mut text = Vec::new();
        push_key(&mut text, "a\nwandb_api_key = \"x\r");
        assert_eq!(text, b"a_wandb_api_key = _x_");
        // Only the end of a long key is kept, cut at a character boundary.
        let long = format!("{}é{}", "k".repeat(300), "z".repeat(199));
        text.clear();
        push_key(&mut text, &long);
        assert_eq!(text, "z".repeat(199).as_bytes());
    }
}
