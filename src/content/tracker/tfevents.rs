//! TensorBoard event files: TFRecord framing (u64 length, masked CRC-32C of the length, the
//! data, masked CRC-32C of the data), each record an `Event` protobuf
//! (tensorflow/core/util/event.proto, summary.proto; the hparams plugin's
//! tensorboard/plugins/hparams/plugin_data.proto).
//!
//! Keys: a summary value's strings (text summaries' `string_val`, display names, plugin data)
//! are under its tag, and the tag itself is a key's name; hparams of a session are
//! `<hparam name> = "<value>"`; other fields are under their field name (`file_version`,
//! `log_message`, `session_log.msg`, `graph_def`, …), nested messages read by the schemaless
//! [`StringWalk`].

use super::crc::masked_crc32c;
use super::{Damage, LogStrings, LogWarning, RecordLimits};
use crate::content::protobuf::{has_text_run, ProtoMessage, ProtoValue, StringWalk};

/// Length, its checksum; after the data, the data's checksum.
const HEADER: usize = 12;
const FOOTER: usize = 4;

/// Fields of `Event` read before deciding it is one.
const SNIFF_FIELDS: usize = 64;

/// The length of the record at `at` if its length checksum holds.
fn checked_length(data: &[u8], at: usize) -> Option<u64> {
    let head = data.get(at..at.checked_add(HEADER)?)?;
    let stored = u32::from_le_bytes(head[8..12].try_into().ok()?);
    (masked_crc32c(&head[..8]) == stored)
        .then(|| u64::from_le_bytes(head[..8].try_into().unwrap_or_default()))
}

/// Whether `data` starts like a TensorBoard event file: a first record whose length and data
/// checksums hold, whose data is an `Event` with a `wall_time` (field 1, a double) and only
/// fields of `Event`'s numbers (1 to 10) with their wire types. Two CRC-32Cs make a chance
/// match about one in 2^64.
pub fn is_tfevents(data: &[u8]) -> bool {
    let Some(len) = checked_length(data, 0) else {
        return false;
    };
    let Some(end) = usize::try_from(len)
        .ok()
        .and_then(|l| l.checked_add(HEADER))
    else {
        return false;
    };
    let (Some(body), Some(crc)) = (data.get(HEADER..end), data.get(end..end + FOOTER)) else {
        return false;
    };
    if masked_crc32c(body) != u32::from_le_bytes(crc.try_into().unwrap_or_default()) {
        return false;
    }
    let mut event = ProtoMessage::new(body);
    let mut wall_time = false;
    for _ in 0..SNIFF_FIELDS {
        match event.next_field() {
            Ok(Some((1, ProtoValue::Fixed))) => wall_time = true,
            Ok(Some((2, ProtoValue::Varint(_)))) => {}
            Ok(Some((3..=10, ProtoValue::Bytes { .. }))) => {}
            Ok(None) => break,
            _ => return false,
        }
    }
    wall_time
}

/// The strings of every record of a TensorBoard event file, each with its record index.
///
/// A record whose length checksum fails cannot be trusted to say where the next record starts:
/// the reader resynchronises by looking forward, byte by byte, for the next position whose
/// length checksum holds and whose length fits in the file (a chance match is one in 2^32; a
/// TensorFlow reader would stop with a data-loss error, which would leave the rest of the file
/// unread). A record whose data checksum fails is decoded anyway (its framing is sound; its
/// damaged bytes may still hold a secret). Each kind of damage is one warning with the first
/// record it hit. A record that runs past the end of the file ends the reading (a truncated
/// tail, whose bytes are scanned as they are); so do the limits.
pub fn tfevents_strings(data: &[u8], limits: &RecordLimits) -> LogStrings {
    let mut walk = StringWalk::new(limits.max_strings);
    let mut warnings = Vec::new();
    let (mut bad_length, mut bad_data, mut not_event) =
        (Damage::default(), Damage::default(), Damage::default());
    let (mut pos, mut index, mut read) = (0usize, 0u64, 0u64);
    let mut oversized = 0u64;
    while pos < data.len() {
        if index >= limits.max_records {
            warnings.push(LogWarning::Limit(format!(
                "more than {} records: the rest of the file (from byte {pos}) is not read",
                limits.max_records
            )));
            break;
        }
        if read >= limits.max_total_bytes {
            warnings.push(LogWarning::Limit(format!(
                "{read} bytes of records read: the rest of the file (from byte {pos}) is not read"
            )));
            break;
        }
        if walk.full {
            warnings.push(LogWarning::Limit(format!(
                "more than {} strings: the rest of the file (from byte {pos}) is not read",
                limits.max_strings
            )));
            break;
        }
        let left = data.len() - pos;
        if left < HEADER + FOOTER {
            warnings.push(LogWarning::Malformed(format!(
                "record {index}: {left} bytes at the end are too few for a record (truncated file)"
            )));
            break;
        }
        let Some(len) = checked_length(data, pos) else {
            bad_length.note(index);
            match resync(data, pos + 1) {
                Some(next) => {
                    pos = next;
                    index += 1;
                    continue;
                }
                None => break,
            }
        };
        let fits = usize::try_from(len)
            .ok()
            .filter(|&l| l <= left - HEADER - FOOTER);
        let Some(len) = fits else {
            warnings.push(LogWarning::Malformed(format!(
                "record {index}: length {len} runs past the end of the file ({left} bytes left; truncated file): what is there was scanned as it is"
            )));
            // The tail of a run that stopped mid-write may hold what was being logged.
            let tail = &data[pos + HEADER..];
            if has_text_run(tail) {
                walk.record = Some(index);
                walk.push("truncated record", pos + HEADER, tail, false);
            }
            break;
        };
        let body = pos + HEADER..pos + HEADER + len;
        let next = body.end + FOOTER;
        if len > limits.max_record_bytes {
            oversized += 1;
            if oversized == 1 {
                warnings.push(LogWarning::Limit(format!(
                    "record {index}: {len} bytes, past the limit of {}: not read",
                    limits.max_record_bytes
                )));
            }
        } else {
            let stored = u32::from_le_bytes(data[body.end..next].try_into().unwrap_or_default());
            if masked_crc32c(&data[body.clone()]) != stored {
                bad_data.note(index);
            }
            walk.record = Some(index);
            let event = ProtoMessage::range(data, body.start, body.end);
            if event_strings(&mut walk, event).is_err() {
                not_event.note(index);
                if has_text_run(&data[body.clone()]) {
                    walk.push("event", body.start, &data[body], false);
                }
            }
            read += len as u64;
        }
        pos = next;
        index += 1;
    }
    bad_length.warn(
        &mut warnings,
        "length checksum mismatch: resynchronised at the next byte where a record's length checksum holds",
    );
    bad_data.warn(
        &mut warnings,
        "data checksum mismatch: the damaged record was decoded anyway",
    );
    not_event.warn(
        &mut warnings,
        "not an Event protobuf: its bytes were scanned as they are",
    );
    LogStrings::of(walk, warnings, index)
}

/// The first position at or after `from` where a record header's length checksum holds and
/// the record fits in the file. Eight bytes of CRC per position: linear.
fn resync(data: &[u8], from: usize) -> Option<usize> {
    (from..data.len().saturating_sub(HEADER + FOOTER - 1)).find(|&at| {
        checked_length(data, at)
            .is_some_and(|len| len <= (data.len() - at - HEADER - FOOTER) as u64)
    })
}

/// The next field of a message, or an error naming the byte.
type Field<'a> = Option<(u64, ProtoValue<'a>)>;

fn next<'a>(message: &mut ProtoMessage<'a>) -> Result<Field<'a>, String> {
    message.next_field()
}

/// `Event`: wall_time(1), step(2), file_version(3), graph_def(4), summary(5), log_message(6),
/// session_log(7), tagged_run_metadata(8), meta_graph_def(9), source_metadata(10). On an
/// error the strings it gave are taken back.
fn event_strings(walk: &mut StringWalk, mut event: ProtoMessage<'_>) -> Result<(), String> {
    let mark = walk.out.len();
    let result = (|| {
        while let Some((number, value)) = next(&mut event)? {
            let ProtoValue::Bytes { offset, bytes } = value else {
                continue;
            };
            let nested = event.nested(offset, bytes);
            match number {
                3 => walk.push("file_version", offset, bytes, false),
                5 => summary(walk, nested)?,
                6 => fields(walk, nested, &[(2, "log_message")])?,
                7 => fields(
                    walk,
                    nested,
                    &[(2, "session_log.checkpoint_path"), (3, "session_log.msg")],
                )?,
                8 => tagged_run_metadata(walk, nested)?,
                10 => fields(walk, nested, &[(1, "source_metadata.writer")])?,
                4 => walk.payload(&event, offset, bytes, "graph_def", 1),
                9 => walk.payload(&event, offset, bytes, "meta_graph_def", 1),
                n => walk.payload(&event, offset, bytes, &format!("event.{n}"), 1),
            }
        }
        Ok(())
    })();
    if result.is_err() {
        walk.out.truncate(mark);
    }
    result
}

/// The string fields of a flat message, each under its own key; other payloads are walked
/// under the message's first key.
fn fields(
    walk: &mut StringWalk,
    mut message: ProtoMessage<'_>,
    keys: &[(u64, &str)],
) -> Result<(), String> {
    while let Some((number, value)) = next(&mut message)? {
        let ProtoValue::Bytes { offset, bytes } = value else {
            continue;
        };
        match keys.iter().find(|(n, _)| *n == number) {
            Some((_, key)) => walk.push(key, offset, bytes, false),
            None => {
                let key = keys.first().map_or("event", |(_, k)| k);
                walk.payload(&message, offset, bytes, key, 2);
            }
        }
    }
    Ok(())
}

/// `TaggedRunMetadata`: tag(1), run_metadata(2) (a `RunMetadata`, walked under the tag).
fn tagged_run_metadata(walk: &mut StringWalk, mut message: ProtoMessage<'_>) -> Result<(), String> {
    let mut tag = String::from("tagged_run_metadata");
    let mut payloads = Vec::new();
    while let Some((number, value)) = next(&mut message)? {
        let ProtoValue::Bytes { offset, bytes } = value else {
            continue;
        };
        if number == 1 {
            tag = String::from_utf8_lossy(bytes).into_owned();
            walk.push(&tag, offset, bytes, true);
        } else {
            payloads.push((offset, bytes));
        }
    }
    for (offset, bytes) in payloads {
        walk.payload(&message, offset, bytes, &tag, 2);
    }
    Ok(())
}

/// `Summary`: value(1) repeated.
fn summary(walk: &mut StringWalk, mut message: ProtoMessage<'_>) -> Result<(), String> {
    while let Some((number, value)) = next(&mut message)? {
        if let (1, ProtoValue::Bytes { offset, bytes }) = (number, value) {
            summary_value(walk, message.nested(offset, bytes))?;
        }
    }
    Ok(())
}

/// `Summary.Value`: tag(1), node_name(7), metadata(9) (`SummaryMetadata`), tensor(8)
/// (`TensorProto`), image(4), audio(6), histo(5) and obsolete_old_style_histogram(3) (pixels,
/// samples and numbers: not read). The tag is read first, whatever the field order.
fn summary_value(walk: &mut StringWalk, message: ProtoMessage<'_>) -> Result<(), String> {
    let mut tag = None;
    let mut scan = message.clone();
    while let Some((number, value)) = next(&mut scan)? {
        if let (1, ProtoValue::Bytes { offset, bytes }) = (number, value) {
            tag = Some((offset, bytes));
        }
    }
    let key = match tag {
        Some((offset, bytes)) => {
            walk.push(&String::from_utf8_lossy(bytes), offset, bytes, true);
            String::from_utf8_lossy(bytes).into_owned()
        }
        None => "summary".to_owned(),
    };
    let mut message = message;
    while let Some((number, value)) = next(&mut message)? {
        let ProtoValue::Bytes { offset, bytes } = value else {
            continue;
        };
        let nested = message.nested(offset, bytes);
        match number {
            7 => walk.push(&key, offset, bytes, false),
            8 => tensor(walk, nested, &key)?,
            9 => summary_metadata(walk, nested, &key)?,
            _ => {}
        }
    }
    Ok(())
}

/// `TensorProto`: string_val(8) repeated; numbers and tensor_content are not read.
fn tensor(walk: &mut StringWalk, mut message: ProtoMessage<'_>, key: &str) -> Result<(), String> {
    while let Some((number, value)) = next(&mut message)? {
        if let (8, ProtoValue::Bytes { offset, bytes }) = (number, value) {
            walk.push(key, offset, bytes, false);
        }
    }
    Ok(())
}

/// `SummaryMetadata`: plugin_data(1) (`PluginData`: plugin_name(1), content(2)),
/// display_name(2), summary_description(3).
fn summary_metadata(
    walk: &mut StringWalk,
    mut message: ProtoMessage<'_>,
    key: &str,
) -> Result<(), String> {
    while let Some((number, value)) = next(&mut message)? {
        let ProtoValue::Bytes { offset, bytes } = value else {
            continue;
        };
        match number {
            1 => plugin_data(walk, message.nested(offset, bytes), key)?,
            2 | 3 => walk.push(key, offset, bytes, false),
            _ => {}
        }
    }
    Ok(())
}

fn plugin_data(walk: &mut StringWalk, message: ProtoMessage<'_>, key: &str) -> Result<(), String> {
    let mut name: &[u8] = b"";
    let mut content = None;
    let mut scan = message.clone();
    while let Some((number, value)) = next(&mut scan)? {
        match (number, value) {
            (1, ProtoValue::Bytes { bytes, .. }) => name = bytes,
            (2, ProtoValue::Bytes { offset, bytes }) => content = Some((offset, bytes)),
            _ => {}
        }
    }
    let Some((offset, bytes)) = content else {
        return Ok(());
    };
    if name == b"hparams" {
        let mark = walk.out.len();
        if hparams(walk, message.nested(offset, bytes)).is_ok() {
            return Ok(());
        }
        walk.out.truncate(mark);
    }
    walk.payload(&message, offset, bytes, key, 3);
    Ok(())
}

/// `HParamsPluginData`: version(1), experiment(2), session_start_info(3),
/// session_end_info(4).
fn hparams(walk: &mut StringWalk, mut message: ProtoMessage<'_>) -> Result<(), String> {
    while let Some((number, value)) = next(&mut message)? {
        let ProtoValue::Bytes { offset, bytes } = value else {
            continue;
        };
        match number {
            3 => session_start(walk, message.nested(offset, bytes))?,
            2 => walk.payload(&message, offset, bytes, "hparams.experiment", 4),
            _ => walk.payload(&message, offset, bytes, "hparams", 4),
        }
    }
    Ok(())
}

/// `SessionStartInfo`: hparams(1) (map of name to `google.protobuf.Value`), model_uri(2),
/// monitor_url(3), group_name(4).
fn session_start(walk: &mut StringWalk, mut message: ProtoMessage<'_>) -> Result<(), String> {
    while let Some((number, value)) = next(&mut message)? {
        let ProtoValue::Bytes { offset, bytes } = value else {
            continue;
        };
        match number {
            1 => hparam(walk, message.nested(offset, bytes))?,
            2 => walk.push("hparams.model_uri", offset, bytes, false),
            3 => walk.push("hparams.monitor_url", offset, bytes, false),
            4 => walk.push("hparams.group_name", offset, bytes, false),
            _ => walk.payload(&message, offset, bytes, "hparams", 5),
        }
    }
    Ok(())
}

/// One hparam (map entry key(1), value(2)): its name is a key's name, its value a
/// `google.protobuf.Value` whose string_value(3) is the hparam's value; a struct or list
/// value is walked under the name.
fn hparam(walk: &mut StringWalk, mut message: ProtoMessage<'_>) -> Result<(), String> {
    let mut name = None;
    let mut value = None;
    while let Some((number, field)) = next(&mut message)? {
        match (number, field) {
            (1, ProtoValue::Bytes { offset, bytes }) => name = Some((offset, bytes)),
            (2, ProtoValue::Bytes { offset, bytes }) => value = Some((offset, bytes)),
            _ => {}
        }
    }
    let key = match name {
        Some((offset, bytes)) => {
            let key = String::from_utf8_lossy(bytes).into_owned();
            walk.push(&key, offset, bytes, true);
            key
        }
        None => "hparams".to_owned(),
    };
    let Some((offset, bytes)) = value else {
        return Ok(());
    };
    let mut value = message.nested(offset, bytes);
    while let Some((number, field)) = next(&mut value)? {
        match (number, field) {
            (3, ProtoValue::Bytes { offset, bytes }) => walk.push(&key, offset, bytes, false),
            (5 | 6, ProtoValue::Bytes { offset, bytes }) => {
                walk.payload(&value, offset, bytes, &key, 6)
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether the first 12 bytes are a TFRecord length whose masked CRC-32C holds (enough to
/// open a large file: [`is_tfevents`] checks the rest once it is read).
pub fn starts_like_tfevents(head: &[u8]) -> bool {
    checked_length(head, 0).is_some()
}
