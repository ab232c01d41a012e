//! The Weights & Biases binary run log (`run-<id>.wandb`): a 7-byte header (`:W&B`, magic
//! 0xBEE1 little-endian, version 0), then the LevelDB log format (32 KiB blocks counted from
//! the start of the file; chunks with a 7-byte header: CRC-32 (IEEE, as wandb-core's
//! `CRCAlgoIEEE`) of the type byte and payload, u16 length, type FULL 1, FIRST 2, MIDDLE 3,
//! LAST 4; a block's last 6 bytes or fewer are zero padding). Each reassembled record is a
//! `wandb_internal.Record` protobuf (wandb/proto/wandb_internal.proto).
//!
//! Keys: config, summary, history and stats items give `<key> = "<value>"` (the key, or the
//! nested key joined with dots; a JSON value's own strings under `<key>.<path>`), run fields
//! their name (`run.project`, `run.notes`), other records their field name
//! (`output_raw`, `files`, …), read by the schemaless [`StringWalk`].

use super::crc::crc32;
use super::{Damage, LogStrings, LogWarning, RecordLimits};
use crate::content::protobuf::{has_text_run, join_key, ProtoMessage, ProtoValue, StringWalk};

/// `:W&B` and the magic 0xBEE1, little-endian.
const MAGIC: &[u8; 6] = b":W&B\xe1\xbe";
const FILE_HEADER: usize = 7;
const BLOCK: usize = 32 * 1024;
const CHUNK_HEADER: usize = 7;

const FULL: u8 = 1;
const FIRST: u8 = 2;
const MIDDLE: u8 = 3;
const LAST: u8 = 4;

/// Whether `data` starts with the W&B run log header.
pub fn is_wandb_log(data: &[u8]) -> bool {
    data.starts_with(MAGIC) && data.len() >= FILE_HEADER
}

/// A record being put together from chunks: its bytes, and where each chunk's bytes start in
/// them and in the file.
#[derive(Default)]
struct Assembly {
    bytes: Vec<u8>,
    pieces: Vec<(usize, usize)>,
    open: bool,
    /// Past the size limit: the rest of its chunks are dropped.
    oversized: bool,
}

impl Assembly {
    fn start(&mut self) {
        self.bytes.clear();
        self.pieces.clear();
        self.open = true;
        self.oversized = false;
    }

    fn add(&mut self, at: usize, payload: &[u8], max: usize) {
        if self.oversized || self.bytes.len() + payload.len() > max {
            self.oversized = true;
            self.bytes.clear();
            self.pieces.clear();
            return;
        }
        self.pieces.push((self.bytes.len(), at));
        self.bytes.extend_from_slice(payload);
    }

    /// The file offset of byte `at` of the record.
    fn file_offset(&self, at: usize) -> usize {
        let i = self.pieces.partition_point(|&(start, _)| start <= at);
        match i.checked_sub(1).and_then(|i| self.pieces.get(i)) {
            Some(&(start, file)) => file + (at - start),
            None => at,
        }
    }
}

/// The strings of every record of a W&B run log, each with its 0-based record index.
///
/// A chunk whose checksum fails, or whose length runs past its block, leaves the rest of the
/// block untrusted: as LevelDB's reader does, the reading resynchronises at the next block
/// (and drops the record being put together), but the bytes of a failing chunk that fits its
/// block are still scanned as they are (damaged or not, they may hold a secret). A MIDDLE or
/// LAST chunk without a FIRST is dropped. Each kind of damage is one warning with the first
/// record it hit; a file that ends inside a chunk or a record is a truncated tail, whose
/// bytes are scanned as they are.
pub fn wandb_strings(data: &[u8], limits: &RecordLimits) -> LogStrings {
    let mut walk = StringWalk::new(limits.max_strings);
    let mut warnings = Vec::new();
    if !is_wandb_log(data) {
        warnings.push(LogWarning::Malformed(
            "not a W&B run log: no `:W&B` header".to_owned(),
        ));
        return LogStrings {
            strings: Vec::new(),
            warnings,
            records: 0,
        };
    }
    if data[6] != 0 {
        warnings.push(LogWarning::Malformed(format!(
            "W&B run log version {} (version 0 is known): read as version 0",
            data[6]
        )));
    }
    let (mut bad_crc, mut bad_length, mut orphans, mut bad_type, mut not_record) = (
        Damage::default(),
        Damage::default(),
        Damage::default(),
        Damage::default(),
        Damage::default(),
    );
    let mut record = Assembly::default();
    let (mut pos, mut index, mut read, mut oversized) = (FILE_HEADER, 0u64, 0u64, 0u64);
    while pos < data.len() {
        let block_end = (pos / BLOCK + 1) * BLOCK;
        if block_end - pos < CHUNK_HEADER {
            pos = block_end;
            continue;
        }
        if index >= limits.max_records || read >= limits.max_total_bytes || walk.full {
            let why = if index >= limits.max_records {
                format!("more than {} records", limits.max_records)
            } else if walk.full {
                format!("more than {} strings", limits.max_strings)
            } else {
                format!("{read} bytes of records read")
            };
            warnings.push(LogWarning::Limit(format!(
                "{why}: the rest of the file (from byte {pos}) is not read"
            )));
            break;
        }
        let Some(head) = data.get(pos..pos + CHUNK_HEADER) else {
            warnings.push(LogWarning::Malformed(format!(
                "record {index}: {} bytes at the end are too few for a chunk header (truncated file)",
                data.len() - pos
            )));
            break;
        };
        let stored = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let len = usize::from(u16::from_le_bytes([head[4], head[5]]));
        let kind = head[6];
        if stored == 0 && len == 0 && kind == 0 {
            // Zeroed space (a preallocated file): nothing more in this block.
            pos = block_end;
            continue;
        }
        let start = pos + CHUNK_HEADER;
        let end = start + len;
        if end > block_end {
            bad_length.note(index);
            record.open = false;
            pos = block_end;
            continue;
        }
        let Some(payload) = data.get(start..end) else {
            warnings.push(LogWarning::Malformed(format!(
                "record {index}: a chunk of {len} bytes runs past the end of the file (truncated file): what is there was scanned as it is"
            )));
            if record.open && !record.oversized {
                record.add(
                    start,
                    data.get(start..).unwrap_or_default(),
                    limits.max_record_bytes,
                );
                raw(&mut walk, &record, index);
            } else {
                let mut tail = Assembly::default();
                tail.add(
                    start,
                    data.get(start..).unwrap_or_default(),
                    limits.max_record_bytes,
                );
                raw(&mut walk, &tail, index);
            }
            record.open = false;
            break;
        };
        if crc32(&[kind], payload) != stored {
            bad_crc.note(index);
            if has_text_run(payload) {
                walk.record = Some(index);
                walk.push("damaged chunk", start, payload, false);
            }
            record.open = false;
            pos = block_end;
            continue;
        }
        pos = end;
        match kind {
            FULL => {
                if record.open {
                    orphans.note(index);
                    record.open = false;
                }
                walk.record = Some(index);
                let message = ProtoMessage::range(data, start, end);
                if record_strings(&mut walk, message).is_err() {
                    not_record.note(index);
                    if has_text_run(payload) {
                        walk.push("record", start, payload, false);
                    }
                }
                read += len as u64;
                index += 1;
            }
            FIRST => {
                if record.open {
                    orphans.note(index);
                }
                record.start();
                record.add(start, payload, limits.max_record_bytes);
            }
            MIDDLE | LAST if record.open => {
                record.add(start, payload, limits.max_record_bytes);
                if kind == LAST {
                    record.open = false;
                    if record.oversized {
                        oversized += 1;
                        if oversized == 1 {
                            warnings.push(LogWarning::Limit(format!(
                                "record {index}: more than {} bytes: not read",
                                limits.max_record_bytes
                            )));
                        }
                    } else {
                        assembled(&mut walk, &record, index, &mut not_record);
                        read += record.bytes.len() as u64;
                    }
                    index += 1;
                }
            }
            MIDDLE | LAST => orphans.note(index),
            _ => bad_type.note(index),
        }
    }
    if record.open {
        warnings.push(LogWarning::Malformed(format!(
            "record {index}: the file ends inside a record split across chunks (truncated file): what is there was scanned as it is"
        )));
        raw(&mut walk, &record, index);
    }
    bad_crc.warn(
        &mut warnings,
        "chunk checksum mismatch: its bytes were scanned as they are and the reading went on at the next 32 KiB block",
    );
    bad_length.warn(
        &mut warnings,
        "chunk length runs past its 32 KiB block: the reading went on at the next block",
    );
    orphans.warn(
        &mut warnings,
        "a record split across chunks is incomplete: its chunks were dropped",
    );
    bad_type.warn(&mut warnings, "unknown chunk type: chunk skipped");
    not_record.warn(
        &mut warnings,
        "not a W&B Record protobuf: its bytes were scanned as they are",
    );
    LogStrings::of(walk, warnings, index)
}

/// The bytes of an incomplete record, scanned as they are (when they hold text).
fn raw(walk: &mut StringWalk, record: &Assembly, index: u64) {
    if record.oversized || !has_text_run(&record.bytes) {
        return;
    }
    walk.record = Some(index);
    let at = record.file_offset(0);
    walk.push("truncated record", at, &record.bytes, false);
}

/// Walks a record put together from several chunks; offsets go back to the file.
fn assembled(walk: &mut StringWalk, record: &Assembly, index: u64, not_record: &mut Damage) {
    let mark = walk.out.len();
    walk.record = Some(index);
    let message = ProtoMessage::new(&record.bytes);
    if record_strings(walk, message).is_err() {
        not_record.note(index);
        if has_text_run(&record.bytes) {
            walk.push("record", 0, &record.bytes, false);
        }
    }
    for s in &mut walk.out[mark..] {
        s.offset = record.file_offset(s.offset);
    }
}

/// Names of `Record` fields read without their schema.
const RECORD_FIELDS: [(u64, &str); 20] = [
    (4, "output"),
    (6, "files"),
    (8, "artifact"),
    (9, "tbrecord"),
    (10, "alert"),
    (11, "telemetry"),
    (12, "metric"),
    (13, "output_raw"),
    (16, "control"),
    (18, "exit"),
    (19, "uuid"),
    (20, "final"),
    (21, "header"),
    (22, "footer"),
    (23, "preempting"),
    (25, "use_artifact"),
    (26, "environment"),
    (27, "output_logger"),
    (100, "request"),
    (200, "_info"),
];

/// String fields of `RunRecord`.
const RUN_FIELDS: [(u64, &str); 15] = [
    (1, "run.run_id"),
    (2, "run.entity"),
    (3, "run.project"),
    (6, "run.run_group"),
    (7, "run.job_type"),
    (8, "run.display_name"),
    (9, "run.notes"),
    (10, "run.tags"),
    (11, "run.settings"),
    (12, "run.sweep_id"),
    (13, "run.host"),
    (16, "run.storage_id"),
    (19, "run.telemetry"),
    (21, "run.git"),
    (23, "run.branch_point"),
];

fn name_of(table: &[(u64, &'static str)], number: u64, or: &str) -> String {
    match table.iter().find(|(n, _)| *n == number) {
        Some((_, name)) => (*name).to_owned(),
        None => format!("{or}.{number}"),
    }
}

/// `Record`: history(2), summary(3), config(5), stats(7) and run(17) by their schema; the
/// rest without it. On an error the strings it gave are taken back.
fn record_strings(walk: &mut StringWalk, mut message: ProtoMessage<'_>) -> Result<(), String> {
    let mark = walk.out.len();
    let result = (|| {
        while let Some((number, value)) = message.next_field()? {
            let ProtoValue::Bytes { offset, bytes } = value else {
                continue;
            };
            let nested = message.nested(offset, bytes);
            match number {
                2 => items(walk, nested, &[1], "history")?,
                3 => items(walk, nested, &[1, 2], "summary")?,
                5 => items(walk, nested, &[1, 2], "config")?,
                7 => items(walk, nested, &[3], "stats")?,
                17 => run(walk, nested)?,
                n => {
                    let key = name_of(&RECORD_FIELDS, n, "record");
                    walk.payload(&message, offset, bytes, &key, 1);
                }
            }
        }
        Ok(())
    })();
    if result.is_err() {
        walk.out.truncate(mark);
    }
    result
}

/// `RunRecord`: its string fields by name, config(4) and summary(5) as item lists.
fn run(walk: &mut StringWalk, mut message: ProtoMessage<'_>) -> Result<(), String> {
    while let Some((number, value)) = message.next_field()? {
        let ProtoValue::Bytes { offset, bytes } = value else {
            continue;
        };
        match number {
            4 => items(walk, message.nested(offset, bytes), &[1, 2], "config")?,
            5 => items(walk, message.nested(offset, bytes), &[1, 2], "summary")?,
            n => {
                let key = name_of(&RUN_FIELDS, n, "run");
                walk.payload(&message, offset, bytes, &key, 2);
            }
        }
    }
    Ok(())
}

/// A message holding items (`ConfigItem`, `SummaryItem`, `HistoryItem`, `StatsItem`) in the
/// fields `item_fields`; its other payloads are walked under `what`.
fn items(
    walk: &mut StringWalk,
    mut message: ProtoMessage<'_>,
    item_fields: &[u64],
    what: &str,
) -> Result<(), String> {
    while let Some((number, value)) = message.next_field()? {
        let ProtoValue::Bytes { offset, bytes } = value else {
            continue;
        };
        if item_fields.contains(&number) {
            item(walk, message.nested(offset, bytes), what)?;
        } else {
            walk.payload(&message, offset, bytes, what, 3);
        }
    }
    Ok(())
}

/// One item: key(1) or nested_key(2, repeated, joined with dots) names it; value_json(16) is
/// read as JSON under that name (as it stands when it is not JSON); a history item's
/// text(7) and json(8) are its value too.
fn item(walk: &mut StringWalk, message: ProtoMessage<'_>, what: &str) -> Result<(), String> {
    let mut key = String::new();
    let mut nested = Vec::new();
    let mut scan = message.clone();
    while let Some((number, value)) = scan.next_field()? {
        match (number, value) {
            (1, ProtoValue::Bytes { offset, bytes }) if !bytes.is_empty() => {
                key = String::from_utf8_lossy(bytes).into_owned();
                walk.push(&key, offset, bytes, true);
            }
            (2, ProtoValue::Bytes { offset, bytes }) => {
                walk.push(&String::from_utf8_lossy(bytes), offset, bytes, true);
                nested.push(String::from_utf8_lossy(bytes).into_owned());
            }
            _ => {}
        }
    }
    if key.is_empty() {
        key = if nested.is_empty() {
            what.to_owned()
        } else {
            nested.join(".")
        };
    }
    let mut message = message;
    while let Some((number, value)) = message.next_field()? {
        let ProtoValue::Bytes { offset, bytes } = value else {
            continue;
        };
        match number {
            1 | 2 => {}
            16 | 8 => {
                if !walk.json(&key, offset, bytes) {
                    walk.push(&key, offset, bytes, false);
                }
            }
            7 => walk.push(&key, offset, bytes, false),
            _ => walk.payload(&message, offset, bytes, &join_key(what, &key), 4),
        }
    }
    Ok(())
}
