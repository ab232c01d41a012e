//! Record logs: files written by the real libraries (fixtures/ai, made by torch's
//! SummaryWriter and wandb offline runs), and hand-built damage.

use super::crc::{crc32, masked_crc32c};
use super::*;
use crate::content::test_rng::XorShift;

const TB_TEXT: &[u8] = include_bytes!(
    "../../../fixtures/ai/tensorboard/secret/events.out.tfevents.1733500000.trawl-fixtures.1.0"
);
const TB_HPARAMS: &[u8] = include_bytes!(
    "../../../fixtures/ai/tensorboard/secret/hp/events.out.tfevents.1733500000.trawl-fixtures.1.1"
);
const TB_CLEAN: &[u8] = include_bytes!(
    "../../../fixtures/ai/tensorboard/clean/events.out.tfevents.1733500000.trawl-fixtures.1.0"
);
const WANDB_RUN: &[u8] = include_bytes!(
    "../../../fixtures/ai/wandb/offline-run-20241206_120000-trawlsec1/run-trawlsec1.wandb"
);
const WANDB_CLEAN: &[u8] = include_bytes!(
    "../../../fixtures/ai/wandb/offline-run-20241206_120000-trawlcln1/run-trawlcln1.wandb"
);
const ONNX: &[u8] = include_bytes!("../../../fixtures/ai/onnx/secret.onnx");
const SAVED_MODEL: &[u8] = include_bytes!("../../../fixtures/ai/savedmodel/secret/saved_model.pb");

fn small() -> RecordLimits {
    RecordLimits::default()
}

/// Every string's value sits at its offset in the file (records in one chunk).
fn assert_offsets(data: &[u8], strings: &[MetaString]) {
    for s in strings {
        assert_eq!(
            data.get(s.offset..s.offset + s.value.len()),
            Some(&s.value[..]),
            "{} at {}",
            s.key,
            s.offset
        );
    }
}

fn find<'a>(strings: &'a [MetaString], key: &str) -> Vec<&'a MetaString> {
    strings
        .iter()
        .filter(|s| s.key == key && !s.is_key)
        .collect()
}

fn malformed(warnings: &[LogWarning]) -> Vec<&str> {
    warnings
        .iter()
        .filter_map(|w| match w {
            LogWarning::Malformed(m) => Some(m.as_str()),
            LogWarning::Limit(_) => None,
        })
        .collect()
}

fn limits(warnings: &[LogWarning]) -> Vec<&str> {
    warnings
        .iter()
        .filter_map(|w| match w {
            LogWarning::Limit(m) => Some(m.as_str()),
            LogWarning::Malformed(_) => None,
        })
        .collect()
}

// ---- TensorBoard ------------------------------------------------------------------------

/// A TFRecord around `payload`, its length written as `length`.
fn tfrecord_len(payload: &[u8], length: u64) -> Vec<u8> {
    let mut out = length.to_le_bytes().to_vec();
    out.extend_from_slice(&masked_crc32c(&out[..8]).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&masked_crc32c(payload).to_le_bytes());
    out
}

fn tfrecord(payload: &[u8]) -> Vec<u8> {
    tfrecord_len(payload, payload.len() as u64)
}

fn pb_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn pb_bytes(field: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    pb_varint(&mut out, field << 3 | 2);
    pb_varint(&mut out, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

/// An `Event` with a wall time and a log message.
fn log_event(text: &str) -> Vec<u8> {
    let mut e = vec![0x09, 0, 0, 0, 0, 0, 0, 0, 0];
    e.extend(pb_bytes(6, &pb_bytes(2, text.as_bytes())));
    e
}

/// The first record of a file: wall time and file_version.
fn version_event() -> Vec<u8> {
    let mut e = vec![0x09, 0, 0, 0, 0, 0, 0, 0, 0];
    e.extend(pb_bytes(3, b"brain.Event:2"));
    tfrecord(&e)
}

#[test]
fn summary_writer_text_file() {
    assert!(is_tfevents(TB_TEXT));
    assert!(starts_like_tfevents(&TB_TEXT[..16]));
    let log = tfevents_strings(TB_TEXT, &small());
    assert!(log.warnings.is_empty(), "{:?}", log.warnings);
    assert_offsets(TB_TEXT, &log.strings);
    let version = find(&log.strings, "file_version");
    assert_eq!(version[0].value, b"brain.Event:2");
    assert_eq!(version[0].record, Some(0));
    let text = find(&log.strings, "notes/text_summary");
    assert_eq!(text.len(), 1);
    assert!(text[0]
        .value
        .starts_with(b"Pushed the checkpoint with HF_TOKEN=hf_"));
    assert_eq!(text[0].record, Some(1));
    // The tag is a key's own name too.
    assert!(log
        .strings
        .iter()
        .any(|s| s.is_key && s.value == b"notes/text_summary"));
    assert_eq!(log.records, 3);
}

#[test]
fn summary_writer_hparams_are_keyed_by_name() {
    let log = tfevents_strings(TB_HPARAMS, &small());
    assert!(log.warnings.is_empty(), "{:?}", log.warnings);
    assert_offsets(TB_HPARAMS, &log.strings);
    let key = find(&log.strings, "wandb_api_key");
    assert_eq!(key.len(), 1);
    assert_eq!(key[0].value.len(), 40);
    assert_eq!(key[0].record, Some(2));
    assert_eq!(find(&log.strings, "optimizer")[0].value, b"adamw");
    assert!(log
        .strings
        .iter()
        .any(|s| s.is_key && s.value == b"wandb_api_key"));
}

#[test]
fn a_clean_scalar_file_has_only_names() {
    let log = tfevents_strings(TB_CLEAN, &small());
    assert!(log.warnings.is_empty());
    assert!(log.records > 3);
    let values: Vec<&[u8]> = log
        .strings
        .iter()
        .filter(|s| !s.is_key)
        .map(|s| &s.value[..])
        .collect();
    assert!(values.contains(&&b"brain.Event:2"[..]), "{values:?}");
}

#[test]
fn tfevents_detection() {
    assert!(is_tfevents(&version_event()));
    // A TFRecord of something else (a tf.train.Example starts with field 1, length-delimited).
    assert!(!is_tfevents(&tfrecord(&pb_bytes(1, b"features"))));
    // Checksums: either one wrong and it is not claimed.
    let mut bad = version_event();
    bad[8] ^= 1;
    assert!(!is_tfevents(&bad));
    let mut bad = version_event();
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert!(!is_tfevents(&bad));
    for other in [
        &b""[..],
        b"hello world, this is text",
        ONNX,
        SAVED_MODEL,
        WANDB_RUN,
        b"PK\x03\x04\x14\x00\x00\x00",
        &[0u8; 64],
    ] {
        assert!(!is_tfevents(other));
        assert!(!starts_like_tfevents(other));
    }
}

#[test]
fn a_bad_data_checksum_is_decoded_anyway_and_warned_once() {
    let mut file = version_event();
    for i in 0..5 {
        let mut r = tfrecord(&log_event(&format!("message {i}")));
        let n = r.len();
        r[n - 1] ^= 0xff;
        file.extend(r);
    }
    let log = tfevents_strings(&file, &small());
    assert_eq!(find(&log.strings, "log_message").len(), 5);
    let warned = malformed(&log.warnings);
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].starts_with("record 1 (and 4 more records): data checksum"));
}

#[test]
fn a_bad_length_checksum_resynchronises_at_the_next_record() {
    let mut file = version_event();
    let mut broken = tfrecord(&log_event("lost"));
    broken[3] ^= 0x40;
    file.extend(broken);
    file.extend(tfrecord(&log_event("found again")));
    let log = tfevents_strings(&file, &small());
    let found = find(&log.strings, "log_message");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].value, b"found again");
    assert_eq!(found[0].record, Some(2));
    assert_eq!(log.records, 3);
    let warned = malformed(&log.warnings);
    assert_eq!(warned.len(), 1);
    assert!(warned[0].contains("length checksum"));
    // Nothing to resynchronise on: the reading stops, with the warning.
    let mut file = version_event();
    file.extend_from_slice(&[0xAB; 100]);
    let log = tfevents_strings(&file, &small());
    assert_eq!(malformed(&log.warnings).len(), 1);
}

#[test]
fn a_truncated_tail_is_warned_about_and_its_bytes_scanned() {
    let mut file = version_event();
    let full = tfrecord(&log_event("the tail of a crashed run"));
    file.extend_from_slice(&full[..full.len() - 10]);
    let log = tfevents_strings(&file, &small());
    let warned = malformed(&log.warnings);
    assert_eq!(warned.len(), 1);
    assert!(warned[0].contains("truncated"));
    let tail = find(&log.strings, "truncated record");
    assert!(tail[0].value.windows(9).any(|w| w == b"the tail "));
    // A few bytes after the last record.
    let mut file = version_event();
    file.extend_from_slice(&[1, 2, 3]);
    let log = tfevents_strings(&file, &small());
    assert!(malformed(&log.warnings)[0].contains("too few"));
}

#[test]
fn a_lying_length_stops_the_reading() {
    let mut file = version_event();
    file.extend_from_slice(&tfrecord_len(b"", u64::MAX)[..12]);
    file.extend_from_slice(&[0; 32]);
    let log = tfevents_strings(&file, &small());
    let warned = malformed(&log.warnings);
    assert_eq!(warned.len(), 1);
    assert!(warned[0].contains("runs past the end"));
    assert_eq!(log.records, 1);
}

#[test]
fn tfevents_limits() {
    let mut file = version_event();
    for i in 0..50 {
        file.extend(tfrecord(&log_event(&format!("message {i}"))));
    }
    let limited = RecordLimits {
        max_records: 10,
        ..RecordLimits::default()
    };
    let log = tfevents_strings(&file, &limited);
    assert_eq!(log.records, 10);
    assert_eq!(limits(&log.warnings).len(), 1);
    let limited = RecordLimits {
        max_record_bytes: 8,
        ..RecordLimits::default()
    };
    let log = tfevents_strings(&file, &limited);
    assert!(find(&log.strings, "log_message").is_empty());
    assert_eq!(limits(&log.warnings).len(), 1, "one warning for many");
    let limited = RecordLimits {
        max_strings: 5,
        ..RecordLimits::default()
    };
    let log = tfevents_strings(&file, &limited);
    assert_eq!(log.strings.len(), 5);
    assert_eq!(limits(&log.warnings).len(), 1);
    let limited = RecordLimits {
        max_total_bytes: 100,
        ..RecordLimits::default()
    };
    let log = tfevents_strings(&file, &limited);
    assert!(log.records < 10);
    assert_eq!(limits(&log.warnings).len(), 1);
}

#[test]
fn deep_nesting_is_read_as_bytes() {
    let mut inner = b"nested secret text".to_vec();
    for _ in 0..5_000 {
        inner = pb_bytes(1, &inner);
    }
    let mut event = vec![0x09, 0, 0, 0, 0, 0, 0, 0, 0];
    event.extend(pb_bytes(4, &inner));
    let mut file = version_event();
    file.extend(tfrecord(&event));
    let log = tfevents_strings(&file, &small());
    let graph = find(&log.strings, "graph_def");
    assert_eq!(graph.len(), 1);
    assert!(graph[0].value.ends_with(b"nested secret text"));
    assert!(malformed(&log.warnings)[0].contains("deeper than"));
}

#[test]
fn many_tiny_records_are_read_in_linear_time() {
    // 200,000 empty records: counted, bounded, no string.
    let mut file = version_event();
    let empty = tfrecord(&[0x09, 0, 0, 0, 0, 0, 0, 0, 0]);
    for _ in 0..200_000 {
        file.extend_from_slice(&empty);
    }
    let log = tfevents_strings(&file, &small());
    assert_eq!(log.records, 200_001);
    assert!(log.warnings.is_empty());
}

// ---- W&B --------------------------------------------------------------------------------

/// A W&B run log of `records`, framed as wandb-core frames them.
fn wandb_file(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b":W&B\xe1\xbe\x00".to_vec();
    for record in records {
        let (mut first, mut rest) = (true, &record[..]);
        loop {
            let mut left = 32768 - out.len() % 32768;
            if left < 7 {
                out.resize(out.len() + left, 0);
                left = 32768;
            }
            let take = (left - 7).min(rest.len());
            let (piece, after) = rest.split_at(take);
            rest = after;
            let kind = match (first, rest.is_empty()) {
                (true, true) => 1u8,
                (true, false) => 2,
                (false, false) => 3,
                (false, true) => 4,
            };
            out.extend_from_slice(&crc32(&[kind], piece).to_le_bytes());
            out.extend_from_slice(&(piece.len() as u16).to_le_bytes());
            out.push(kind);
            out.extend_from_slice(piece);
            first = false;
            if rest.is_empty() {
                break;
            }
        }
    }
    out
}

/// A `Record` with one config item: key, value_json.
fn config_record(key: &str, value_json: &str) -> Vec<u8> {
    let mut item = pb_bytes(1, key.as_bytes());
    item.extend(pb_bytes(16, value_json.as_bytes()));
    pb_bytes(5, &pb_bytes(1, &item))
}

#[test]
fn wandb_offline_run() {
    assert!(is_wandb_log(WANDB_RUN));
    let log = wandb_strings(WANDB_RUN, &small());
    assert!(log.warnings.is_empty(), "{:?}", log.warnings);
    let openai = find(&log.strings, "openai_api_key");
    assert_eq!(openai.len(), 1);
    assert!(openai[0].value.starts_with(b"sk-proj-"));
    assert_eq!(openai[0].record, Some(1));
    let nested = find(&log.strings, "nested.wandb_api_key");
    assert_eq!(nested[0].value.len(), 40);
    assert!(find(&log.strings, "note")[0]
        .value
        .starts_with(b"pushed to the hub with hf_"));
    assert_eq!(
        find(&log.strings, "run.project")[0].value,
        b"trawl-fixtures"
    );
    // A record split across blocks: its strings' first bytes sit at their offsets.
    let transcript = find(&log.strings, "transcript");
    assert!(!transcript.is_empty());
    for s in transcript {
        assert_eq!(&WANDB_RUN[s.offset..s.offset + 16], &s.value[..16]);
    }
    // Strings of records in one chunk sit at their offsets.
    let single: Vec<MetaString> = log
        .strings
        .iter()
        .filter(|s| s.key != "transcript")
        .cloned()
        .collect();
    assert_offsets(WANDB_RUN, &single);
}

#[test]
fn wandb_clean_run() {
    let log = wandb_strings(WANDB_CLEAN, &small());
    assert!(log.warnings.is_empty(), "{:?}", log.warnings);
    assert!(log.records >= 4);
    assert_eq!(
        find(&log.strings, "run.project")[0].value,
        b"trawl-fixtures"
    );
}

#[test]
fn wandb_items_present_keys_and_json() {
    let mut history = pb_bytes(2, b"outer");
    history.extend(pb_bytes(2, b"inner"));
    history.extend(pb_bytes(16, br#"{"token": "abc\"def", "n": [1, "two"]}"#));
    let records = vec![
        config_record(
            "wandb_api_key",
            "\"0123456789abcdef0123456789abcdef01234567\"",
        ),
        config_record("broken", "{not json"),
        pb_bytes(2, &pb_bytes(1, &history)),
    ];
    let log = wandb_strings(&wandb_file(&records), &small());
    assert!(log.warnings.is_empty(), "{:?}", log.warnings);
    let key = find(&log.strings, "wandb_api_key");
    assert_eq!(key[0].value, b"0123456789abcdef0123456789abcdef01234567");
    assert_eq!(key[0].record, Some(0));
    assert_eq!(find(&log.strings, "broken")[0].value, b"{not json");
    assert_eq!(
        find(&log.strings, "outer.inner.token")[0].value,
        b"abc\"def"
    );
    assert_eq!(find(&log.strings, "outer.inner.n[1]")[0].value, b"two");
    assert_eq!(find(&log.strings, "outer.inner.n[1]")[0].record, Some(2));
}

#[test]
fn wandb_detection() {
    assert!(is_wandb_log(b":W&B\xe1\xbe\x00"));
    assert!(!is_wandb_log(b":W&B\xe1\xbe"));
    assert!(!is_wandb_log(b":W&B\xbe\xe1\x00"));
    assert!(!is_wandb_log(TB_TEXT));
    let log = wandb_strings(b"not a log", &small());
    assert_eq!(malformed(&log.warnings).len(), 1);
    let mut other = wandb_file(&[config_record("a", "\"b\"")]);
    other[6] = 7;
    let log = wandb_strings(&other, &small());
    assert!(malformed(&log.warnings)[0].contains("version 7"));
    assert_eq!(find(&log.strings, "a")[0].value, b"b");
}

#[test]
fn a_bad_chunk_checksum_skips_to_the_next_block() {
    let big = "x".repeat(40_000);
    let records = vec![
        config_record("first", "\"damaged text here\""),
        config_record("second", "\"lost with the block\""),
        config_record("long", &format!("\"{big}\"")),
        config_record("after", "\"in the next block\""),
    ];
    let mut file = wandb_file(&records);
    file[7 + 7 + 3] ^= 0x01;
    let log = wandb_strings(&file, &small());
    let warned = malformed(&log.warnings);
    assert!(
        warned.iter().any(|w| w.contains("checksum mismatch")),
        "{warned:?}"
    );
    // The damaged chunk's bytes are scanned as they are; the rest of its block is skipped; the
    // record split into the next blocks lost its first chunk and is dropped.
    let damaged = find(&log.strings, "damaged chunk");
    assert!(damaged[0].value.windows(7).any(|w| w == b"damaged"));
    assert!(find(&log.strings, "second").is_empty());
    assert!(find(&log.strings, "long").is_empty());
    assert!(
        warned.iter().any(|w| w.contains("incomplete")),
        "{warned:?}"
    );
    assert_eq!(find(&log.strings, "after")[0].value, b"in the next block");
}

#[test]
fn a_truncated_run_log_scans_what_is_there() {
    let big = format!("\"{} tail text\"", "y".repeat(40_000));
    let file = wandb_file(&[config_record("a", "\"b\""), config_record("long", &big)]);
    // Cut inside the second chunk of the long record.
    let log = wandb_strings(&file[..34_000], &small());
    let warned = malformed(&log.warnings);
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains("truncated"));
    assert!(!find(&log.strings, "truncated record").is_empty());
    // Cut between chunks of a split record.
    let log = wandb_strings(&file[..32768], &small());
    let warned = malformed(&log.warnings);
    assert!(warned[0].contains("ends inside a record"), "{warned:?}");
    // Cut inside a chunk header.
    let log = wandb_strings(&file[..10], &small());
    assert!(malformed(&log.warnings)[0].contains("too few"));
}

#[test]
fn a_chunk_longer_than_its_block_is_skipped() {
    let mut file = b":W&B\xe1\xbe\x00".to_vec();
    file.extend_from_slice(&[0, 0, 0, 0, 0xff, 0xff, 1]);
    file.extend_from_slice(&[b'a'; 100]);
    let log = wandb_strings(&file, &small());
    let warned = malformed(&log.warnings);
    assert_eq!(warned.len(), 1);
    assert!(warned[0].contains("past its 32 KiB block"));
    assert_eq!(log.records, 0);
}

#[test]
fn orphan_chunks_and_unknown_types_are_dropped() {
    let mut file = b":W&B\xe1\xbe\x00".to_vec();
    for (kind, payload) in [
        (4u8, &b"orphan last"[..]),
        (9, b"odd type"),
        (3, b"orphan middle"),
    ] {
        file.extend_from_slice(&crc32(&[kind], payload).to_le_bytes());
        file.extend_from_slice(&(payload.len() as u16).to_le_bytes());
        file.push(kind);
        file.extend_from_slice(payload);
    }
    let log = wandb_strings(&file, &small());
    assert!(log.strings.is_empty());
    assert_eq!(malformed(&log.warnings).len(), 2, "{:?}", log.warnings);
}

#[test]
fn wandb_limits() {
    let records: Vec<Vec<u8>> = (0..50)
        .map(|i| config_record(&format!("k{i}"), "\"v\""))
        .collect();
    let file = wandb_file(&records);
    let limited = RecordLimits {
        max_records: 10,
        ..RecordLimits::default()
    };
    let log = wandb_strings(&file, &limited);
    assert_eq!(log.records, 10);
    assert_eq!(limits(&log.warnings).len(), 1);
    let big = format!("\"{}\"", "z".repeat(50_000));
    let file = wandb_file(&[config_record("big", &big), config_record("small", "\"s\"")]);
    let limited = RecordLimits {
        max_record_bytes: 1000,
        ..RecordLimits::default()
    };
    let log = wandb_strings(&file, &limited);
    assert!(find(&log.strings, "big").is_empty());
    assert_eq!(find(&log.strings, "small")[0].value, b"s");
    assert_eq!(limits(&log.warnings).len(), 1);
}

// ---- Robustness -------------------------------------------------------------------------

fn mutate(rng: &mut XorShift, base: &[u8]) -> Vec<u8> {
    let mut data = base.to_vec();
    for _ in 0..1 + rng.below(8) {
        if data.is_empty() {
            break;
        }
        let at = rng.below(data.len());
        match rng.below(4) {
            0 => data[at] = rng.next() as u8,
            1 => data.truncate(at),
            2 => data.insert(at, rng.next() as u8),
            _ => data[at] ^= 0x80,
        }
    }
    data
}

#[test]
fn mutated_logs_never_panic_and_strings_stay_in_the_file() {
    let mut rng = XorShift(0x5EED_7FE7);
    for i in 0..3000 {
        let base = [TB_TEXT, TB_HPARAMS, WANDB_CLEAN][i % 3];
        let data = mutate(&mut rng, base);
        let _ = is_tfevents(&data);
        let _ = is_wandb_log(&data);
        for log in [
            tfevents_strings(&data, &small()),
            wandb_strings(&data, &small()),
        ] {
            for s in &log.strings {
                assert!(s.offset + s.value.len() <= data.len(), "{}", s.key);
            }
            assert!(log.warnings.len() < 10);
        }
    }
}
