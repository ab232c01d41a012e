//! Parquet tables (the default format of Hugging Face datasets): the string columns are read
//! row group by row group, column chunk by column chunk, and each value is scanned as
//! `column = "value"`, so rules that need a key name fire on a column named `hf_token`. A
//! finding names the column path as its `key` and the 0-based row of the file (counted
//! across row groups) as its `row`; its offset is the start of the column chunk (see
//! [`chunk_range`]), never exact: values sit in pages that are usually compressed and
//! dictionary-encoded. The footer's key/value metadata is scanned too, at exact offsets.
//!
//! Recognised by `PAR1` at both ends; a file that starts with `PAR1`, is binary and lacks
//! the closing magic is taken as a damaged Parquet file and warned about.
//!
//! Bounds: the footer ([`ParquetLimits::max_footer`], and its length must fit the file) is
//! walked by [`thrift`] before the `parquet` crate reads it (schema depth, columns, row groups,
//! column chunks, every count against the bytes holding it); pages are read by [`pages`]
//! (declared sizes against the budget and a ratio, bounded decompressors, values per page);
//! values, levels and rows read per file are capped; decoded bytes are taken from the shared
//! [`Budget`](super::Budget). Memory holds one column chunk's bytes, one page and one batch of
//! values at a time. Calls into the crate run under [`guarded`]: a panic there is a warning.

mod pages;
#[cfg(test)]
mod tests;
mod thrift;

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, Once};

use bytes::Bytes;
use parquet::basic::{ConvertedType, LogicalType, Type as PhysicalType};
use parquet::column::reader::ColumnReaderImpl;
use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaDataReader};
use parquet::schema::types::ColumnDescriptor;

use super::model::MetaString;
use super::{Context, StringItem};
use crate::source::looks_binary;
use pages::{ChunkPages, Codec, Meter};
use thrift::FooterBounds;

const MAGIC: &[u8; 4] = b"PAR1";

/// Limits on one Parquet file, on top of the shared budget.
#[derive(Clone, Debug)]
pub struct ParquetLimits {
    /// Largest footer read (real ones are kilobytes to a few megabytes).
    pub max_footer: usize,
    /// Schema nesting (structs and lists of structs); deeper is refused.
    pub max_schema_depth: usize,
    /// Leaf columns.
    pub max_columns: usize,
    /// Row groups.
    pub max_row_groups: usize,
    /// Row groups times columns: what the crate's parsed footer holds.
    pub max_column_chunks: usize,
    /// Values (and nulls) declared by one page: the reader's buffers are this large.
    pub max_page_values: usize,
    /// Values and nulls read in the whole file, all columns.
    pub max_values: u64,
    /// Rows of one column read (the rows past it are not scanned).
    pub max_rows: u64,
}

impl Default for ParquetLimits {
    fn default() -> ParquetLimits {
        ParquetLimits {
            max_footer: 16 << 20,
            max_schema_depth: 64,
            max_columns: 10_000,
            max_row_groups: 1 << 16,
            max_column_chunks: 1 << 19,
            // Writers cut pages at 20,000 rows (Arrow, parquet-mr); a list column has a few
            // values per row.
            max_page_values: 1 << 20,
            max_values: 1 << 27,
            max_rows: 1 << 26,
        }
    }
}

/// Records read per call of the column reader (a record is a row: all its list elements).
const BATCH_RECORDS: usize = 1024;

/// Column chunks warned about one by one per file; the rest are counted in one warning.
const CHUNK_WARNINGS: usize = 5;

/// True for a Parquet file: `PAR1` at the start and at the end.
pub fn is_parquet(data: &[u8]) -> bool {
    data.len() >= 12 && data.starts_with(MAGIC) && data.ends_with(MAGIC)
}

/// A damaged Parquet file: the opening magic, binary content, no closing magic (truncated, or
/// its end overwritten). Claimed so that it is warned about rather than skipped as binary.
pub fn is_damaged_parquet(data: &[u8]) -> bool {
    data.starts_with(MAGIC) && !data.ends_with(MAGIC) && looks_binary(data)
}

/// Scans a Parquet file (`data` is the whole file) under `ctx`'s budget.
pub(crate) fn decode(ctx: &mut Context<'_, '_, '_>, data: &[u8], member: Option<&str>) {
    let limits = ParquetLimits::default();
    if !is_parquet(data) {
        ctx.warn(
            member,
            "Parquet file without its closing PAR1 magic (truncated?): not read",
        );
        return;
    }
    let Some(footer) = footer(ctx, data, member, &limits) else {
        return;
    };
    let meta = match guarded(|| ParquetMetaDataReader::decode_metadata(footer)) {
        Ok(Ok(meta)) => meta,
        Ok(Err(e)) => {
            let e = crate_error(&e);
            ctx.warn(member, format!("Parquet footer unreadable: {e}"));
            return;
        }
        Err(e) => {
            ctx.warn(member, format!("Parquet footer: {e}"));
            return;
        }
    };
    let schema = meta.file_metadata().schema_descr();
    let columns: Vec<(usize, bool)> = (0..schema.num_columns())
        .filter_map(|i| text_column(&schema.column(i)).map(|all| (i, all)))
        .collect();
    let mut file = FileRead {
        data,
        member,
        limits: &limits,
        row_base: 0,
        values: 0,
        problems: 0,
        stopped: false,
    };
    for (g, group) in meta.row_groups().iter().enumerate() {
        for &(c, all) in &columns {
            let Some(chunk) = group.columns().get(c) else {
                continue;
            };
            file.column_chunk(ctx, chunk, g, c, all);
            if file.stopped {
                break;
            }
        }
        if file.stopped {
            break;
        }
        file.row_base = file
            .row_base
            .saturating_add(u64::try_from(group.num_rows()).unwrap_or(0));
    }
    if file.problems > CHUNK_WARNINGS {
        ctx.warn(
            member,
            format!(
                "{} more Parquet column chunks unreadable",
                file.problems - CHUNK_WARNINGS
            ),
        );
    }
}

/// Checks the footer's length and structure, scans its key/value metadata and returns its
/// bytes; `None` (after a warning) when it cannot be read.
fn footer<'d>(
    ctx: &mut Context<'_, '_, '_>,
    data: &'d [u8],
    member: Option<&str>,
    limits: &ParquetLimits,
) -> Option<&'d [u8]> {
    let end = data.len() - 8;
    let declared = u32::from_le_bytes(data[end..end + 4].try_into().unwrap_or_default()) as usize;
    if declared > end - 4 {
        ctx.warn(
            member,
            format!("Parquet footer length {declared} is longer than the file: not read"),
        );
        return None;
    }
    if declared > limits.max_footer {
        ctx.limit(
            member,
            format!(
                "Parquet footer of {declared} bytes, more than the {} read: not read",
                limits.max_footer
            ),
        );
        return None;
    }
    let start = end - declared;
    let bounds = FooterBounds {
        max_schema_depth: limits.max_schema_depth,
        max_columns: limits.max_columns,
        max_row_groups: limits.max_row_groups,
        max_column_chunks: limits.max_column_chunks,
    };
    let facts = match thrift::check_footer(&data[start..end], start, &bounds) {
        Ok(facts) => facts,
        Err(e) => {
            ctx.warn(member, format!("Parquet footer: {e}: not read"));
            return None;
        }
    };
    let mut strings = Vec::with_capacity(facts.key_values.len() * 2);
    for kv in &facts.key_values {
        let key = String::from_utf8_lossy(kv.key);
        strings.push(meta_string(
            "key_value_metadata".to_owned(),
            kv.key,
            kv.key_offset,
            true,
        ));
        strings.push(meta_string(
            format!("key_value_metadata.{key}"),
            kv.value,
            kv.value_offset,
            false,
        ));
    }
    strings.retain(|s| !s.value.is_empty());
    ctx.scan_meta(&strings, member);
    Some(&data[start..end])
}

fn meta_string(key: String, value: &[u8], offset: usize, is_key: bool) -> MetaString {
    MetaString {
        key,
        value: value.to_vec(),
        offset,
        is_key,
        record: None,
        row: None,
    }
}

/// Whether a leaf column holds strings: `Some(true)` for byte arrays annotated as text
/// (string, JSON, enum), whose values are all scanned; `Some(false)` for plain byte arrays
/// (some writers leave text unannotated; images and audio are binary too), whose values are
/// scanned when they do not look binary.
fn text_column(column: &ColumnDescriptor) -> Option<bool> {
    if column.physical_type() != PhysicalType::BYTE_ARRAY {
        return None;
    }
    let text = matches!(
        column.logical_type_ref(),
        Some(LogicalType::String | LogicalType::Json | LogicalType::Enum)
    ) || matches!(
        column.converted_type(),
        ConvertedType::UTF8 | ConvertedType::JSON | ConvertedType::ENUM
    );
    Some(text)
}

/// The byte range of a column chunk in the file: from its dictionary page when it has one,
/// else its first data page, for its compressed size. This start is the offset findings in
/// the chunk report.
fn chunk_range(chunk: &ColumnChunkMetaData, file_len: usize) -> Option<(usize, usize)> {
    let data_start = chunk.data_page_offset();
    // Some writers put 0 here for "no dictionary".
    let start = match chunk.dictionary_page_offset() {
        Some(d) if d > 0 && d < data_start => d,
        _ => data_start,
    };
    let start = usize::try_from(start).ok()?;
    let len = usize::try_from(chunk.compressed_size()).ok()?;
    let end = start.checked_add(len).filter(|&e| e <= file_len)?;
    (start >= MAGIC.len()).then_some((start, end))
}

/// The reading of one file: where it stands against its limits.
struct FileRead<'a> {
    data: &'a [u8],
    member: Option<&'a str>,
    limits: &'a ParquetLimits,
    /// The file row of the current row group's first row.
    row_base: u64,
    /// Values and nulls read so far.
    values: u64,
    /// Column chunks that could not be read.
    problems: usize,
    /// A file-wide limit was reached: nothing more is read.
    stopped: bool,
}

impl FileRead<'_> {
    fn problem(&mut self, ctx: &mut Context<'_, '_, '_>, is_limit: bool, message: String) {
        if is_limit {
            ctx.limit(self.member, message);
            return;
        }
        self.problems += 1;
        if self.problems <= CHUNK_WARNINGS {
            ctx.warn(self.member, message);
        }
    }

    /// Reads and scans one column chunk (row group `g`, leaf column `c`).
    fn column_chunk(
        &mut self,
        ctx: &mut Context<'_, '_, '_>,
        chunk: &ColumnChunkMetaData,
        g: usize,
        c: usize,
        all: bool,
    ) {
        let at = format!("Parquet row group {g}, column {c}");
        let codec = match Codec::of(chunk.compression()) {
            Ok(codec) => codec,
            Err(name) => {
                let message = format!("{at}: {name} compression is not read");
                return self.problem(ctx, false, message);
            }
        };
        let Some((start, end)) = chunk_range(chunk, self.data.len()) else {
            let message = format!("{at}: column chunk outside the file");
            return self.problem(ctx, false, message);
        };
        if ctx.budget.is_exhausted() {
            self.stopped = true;
            if ctx.budget.newly_exhausted() {
                let total = ctx.budget.total;
                let message = format!("{at}: decoded more than {total} bytes in all: the rest of the file is not read");
                self.problem(ctx, true, message);
            }
            return;
        }
        let allowance = ctx.budget.member_allowance((end - start) as u64);
        let meter = Arc::new(Mutex::new(Meter {
            left: allowance,
            ..Meter::default()
        }));
        let page_reader = ChunkPages::new(
            Bytes::copy_from_slice(&self.data[start..end]),
            start,
            codec,
            self.limits.max_page_values,
            ctx.budget.limits.max_ratio,
            Arc::clone(&meter),
        );
        let descr = chunk.column_descr_ptr();
        let path = descr.path().string();
        let (max_def, max_rep) = (descr.max_def_level(), descr.max_rep_level());
        let mut reader = match guarded(|| {
            ColumnReaderImpl::<ByteArrayType>::new(descr, Box::new(page_reader))
        }) {
            Ok(reader) => reader,
            Err(e) => return self.problem(ctx, false, format!("{at}: {e}")),
        };
        let (mut defs, mut reps, mut values) = (Vec::new(), Vec::new(), Vec::<ByteArray>::new());
        let mut rows = Rows::default();
        let mut charged = 0;
        loop {
            defs.clear();
            reps.clear();
            values.clear();
            let read = guarded(|| {
                let n = reader.read_records(
                    BATCH_RECORDS,
                    Some(&mut defs),
                    Some(&mut reps),
                    &mut values,
                )?;
                // Every value is set once the batch is read; reading each one here keeps a
                // panic of the crate's accessor inside the guard.
                let bytes: usize = values.iter().map(|v| v.data().len()).sum();
                Ok::<_, parquet::errors::ParquetError>((n, bytes))
            });
            let used = {
                let m = meter.lock().unwrap_or_else(|e| e.into_inner());
                m.used
            };
            let ((records, levels), bytes) = match read {
                Ok(Ok(((records, _, levels), bytes))) => ((records, levels), bytes),
                Ok(Err(e)) => {
                    ctx.budget.take_bytes(used - charged);
                    let m = meter.lock().unwrap_or_else(|e| e.into_inner());
                    let (is_limit, why) = match (&m.limit, &m.malformed) {
                        (Some(l), _) => (true, l.clone()),
                        (None, Some(w)) => (false, w.clone()),
                        (None, None) => (false, crate_error(&e)),
                    };
                    drop(m);
                    let message = format!("{at}: {why}; the rest of the chunk is not read");
                    return self.problem(ctx, is_limit, message);
                }
                Err(e) => {
                    ctx.budget.take_bytes(used - charged);
                    return self.problem(ctx, false, format!("{at}: {e}"));
                }
            };
            ctx.budget.take_bytes(used - charged + bytes as u64);
            charged = used;
            if records == 0 && levels == 0 {
                return;
            }
            self.values += levels as u64;
            let batch = Batch {
                defs: (max_def > 0).then_some(&defs[..]),
                reps: (max_rep > 0).then_some(&reps[..]),
                max_def,
                levels,
            };
            let items = rows.items(&batch, &values, &path, start, self.row_base, all);
            ctx.scan_strings(&items, self.member, None);
            if self.values > self.limits.max_values {
                self.stopped = true;
                let message = format!(
                    "{at}: more than {} values read in the file: the rest is not read",
                    self.limits.max_values
                );
                return self.problem(ctx, true, message);
            }
            if rows.next > self.limits.max_rows {
                let message = format!(
                    "{at}: more than {} rows read in the column: the rest is not read",
                    self.limits.max_rows
                );
                return self.problem(ctx, true, message);
            }
            if ctx.budget.is_exhausted() {
                // Said once, by the next chunk's check.
                return;
            }
        }
    }
}

/// The levels of one batch: definition levels (absent for required columns), repetition
/// levels (absent for columns outside lists), and how many were read.
struct Batch<'a> {
    defs: Option<&'a [i16]>,
    reps: Option<&'a [i16]>,
    max_def: i16,
    levels: usize,
}

/// Row numbering within one column chunk.
#[derive(Default)]
struct Rows {
    /// Rows started so far in the chunk.
    next: u64,
}

impl Rows {
    /// The batch's values as items to scan, each with its file row: a level with repetition
    /// level 0 starts a row (every level does outside lists), a level at the column's full
    /// definition level holds the next value (every level does in a required column).
    fn items<'v>(
        &mut self,
        batch: &Batch<'_>,
        values: &'v [ByteArray],
        path: &'v str,
        offset: usize,
        row_base: u64,
        all: bool,
    ) -> Vec<StringItem<'v>> {
        let mut items = Vec::with_capacity(values.len());
        let mut values = values.iter();
        for i in 0..batch.levels {
            if batch.reps.is_none_or(|r| r.get(i) == Some(&0)) {
                self.next += 1;
            }
            if batch.defs.is_some_and(|d| d.get(i) != Some(&batch.max_def)) {
                continue;
            }
            let Some(value) = values.next() else { break };
            let value = value.data();
            if value.is_empty() || (!all && looks_binary(value)) {
                continue;
            }
            items.push(StringItem {
                offset,
                exact: false,
                key: Some(path),
                value,
                record: None,
                row: Some(row_base + self.next.saturating_sub(1)),
            });
        }
        items
    }
}

thread_local! {
    /// Set while a guarded call runs on this thread: its panics are not printed.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

static QUIET_HOOK: Once = Once::new();

/// Runs a call into the `parquet` crate, turning a panic into an error message.
///
/// The crate panics on some malformed input: asserts and out-of-bounds indexing in its
/// decoders (arrow-rs issues #7102, #9434 and #10107 fixed panics of this kind; #11121, a
/// BYTE_STREAM_SPLIT page declaring more values than it holds, still panics on 59.3.0 and
/// 60.0.0, and #9742, open, asks for fuzzing because more keep turning up). Its maintainers
/// treat a panic on bad input as a bug but not a soundness issue, so the version pinned here
/// cannot be taken as panic-free. Only the crate's own calls run under this guard (our code
/// never relies on it), and what a panic interrupted (the column reader) is dropped. The
/// process-wide panic hook is chained once so that a caught panic prints nothing; others go to
/// the previous hook as before.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    result.map_err(|_| "the Parquet reader failed on malformed data".to_owned())
}

/// The crate's error, without anything it quotes from the file (names in quotes), cut short.
fn crate_error(e: &parquet::errors::ParquetError) -> String {
    let text = e.to_string();
    let mut out = String::new();
    let mut quote = None;
    for ch in text.chars() {
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => {}
            None if ch == '\'' || ch == '"' || ch == '`' => {
                quote = Some(ch);
                out.push('…');
            }
            None if ch.is_control() => out.push(' '),
            None => out.push(ch),
        }
        if out.len() >= 160 {
            out.push('…');
            break;
        }
    }
    out
}
