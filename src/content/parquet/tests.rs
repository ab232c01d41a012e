//! Parquet: the fixtures made by pyarrow (every codec read, keys and rows right), and hostile
//! files built here (lying lengths, huge counts, deep schemas, compression bombs) that end
//! quickly with a warning.

use std::sync::OnceLock;

use super::thrift::write::{binary_field, field, i32_field, list_header, varint, zigzag};
use super::*;
use crate::content::test_rng::XorShift;
use crate::content::{scan_content, Decoded, Limits};
use crate::rules::RuleSet;
use crate::scan::Scanner;
use crate::warning::WarningKind;

fn scanner() -> &'static Scanner {
    static SCANNER: OnceLock<Scanner> = OnceLock::new();
    SCANNER.get_or_init(|| Scanner::new(RuleSet::builtin().expect("rules")).expect("scanner"))
}

fn scan_with(data: &[u8], limits: &Limits) -> Decoded {
    let mut worker = scanner().worker();
    scan_content(&mut worker, data, limits)
}

fn scan(data: &[u8]) -> Decoded {
    scan_with(data, &Limits::default())
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/ai/parquet/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// (rule id, key, row) of each finding, sorted.
fn found(d: &Decoded) -> Vec<(String, String, Option<u64>)> {
    let mut v: Vec<_> = d
        .placed
        .iter()
        .map(|p| {
            (
                scanner().rule(p.rule).id().to_owned(),
                p.extra.key.clone().unwrap_or_default(),
                p.extra.row,
            )
        })
        .collect();
    v.sort();
    v
}

fn warnings(d: &Decoded) -> String {
    d.warnings
        .iter()
        .map(|w| w.message.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_codec_of_pyarrow_is_read_with_keys_and_rows() {
    for (codec, column, rule) in [
        ("snappy", "hf_token", "huggingface.user-token"),
        ("zstd", "wandb_api_key", "wandb.api-key"),
        ("gzip", "hf_token", "huggingface.user-token"),
        ("lz4", "hf_token", "huggingface.user-token"),
    ] {
        let data = fixture(&format!("secret_{codec}.parquet"));
        assert!(is_parquet(&data) && crate::content::claims(&data));
        let d = scan(&data);
        assert!(d.warnings.is_empty(), "{codec}: {}", warnings(&d));
        let mut want = vec![
            ("openai.project-key".to_owned(), "text".to_owned(), Some(7)),
            (rule.to_owned(), column.to_owned(), Some(8)),
            (
                "aws.access-key-id".to_owned(),
                "messages.list.element.content".to_owned(),
                Some(10),
            ),
        ];
        want.sort();
        assert_eq!(found(&d), want, "{codec}");
        for p in &d.placed {
            // The start of the value's column chunk: past the magic, before the footer.
            assert!(p.offset >= 4 && p.offset < data.len() - 8, "{codec}");
            assert!(p.position.is_none());
        }
    }
}

#[test]
fn a_clean_dataset_gives_nothing_and_no_warning() {
    let d = scan(&fixture("clean.parquet"));
    assert!(d.placed.is_empty(), "{:?}", found(&d));
    assert!(d.warnings.is_empty(), "{}", warnings(&d));
}

#[test]
fn broken_files_from_the_fixtures_end_with_a_warning() {
    for (name, says) in [
        ("truncated.parquet", "closing PAR1"),
        ("lying_footer.parquet", "longer than the file"),
        ("garbled_footer.parquet", "footer"),
        ("corrupt_pages.parquet", "row group"),
    ] {
        let data = fixture(name);
        assert!(crate::content::claims(&data), "{name}");
        let d = scan(&data);
        assert!(d.placed.is_empty(), "{name}");
        let w = warnings(&d);
        assert!(w.contains(says), "{name}: {w}");
        assert!(d.warnings.iter().all(|w| w.kind == WarningKind::Malformed));
    }
}

#[test]
fn recognised_by_both_magics() {
    let good = fixture("clean.parquet");
    assert!(is_parquet(&good));
    assert!(!is_parquet(b"PAR1PAR1")); // too short to hold a footer
    assert!(!is_parquet(&good[..good.len() - 1]));
    assert!(is_damaged_parquet(&good[..good.len() - 1]));
    // Text that starts with the magic is text.
    let text = b"PAR1 is the name of the next milestone\n";
    assert!(!is_damaged_parquet(text) && !crate::content::claims(text));
    assert!(crate::content::decodes_large(b"PAR1\x15\x04"));
}

/// A minimal Parquet file, as the format defines it, built here so that every field can lie:
/// one required UTF-8 column `s` in one row group with one data page.
struct Tiny {
    /// The page body as stored (compressed with `codec` when it is not 0).
    body: Vec<u8>,
    codec: i32,
    num_values: i32,
    uncompressed: i32,
    num_rows: i64,
    /// The footer's schema list, header included.
    schema: Vec<u8>,
    /// Key/value metadata of the footer.
    key_values: Vec<(&'static [u8], &'static [u8])>,
}

/// PLAIN byte arrays: a 4-byte length, then the bytes.
fn plain(values: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
    out
}

fn i64_field(out: &mut Vec<u8>, last: &mut i16, id: i16, v: i64) {
    field(out, last, id, 6);
    varint(out, zigzag(v));
}

impl Tiny {
    fn plain(values: &[&[u8]]) -> Tiny {
        let body = plain(values);
        Tiny {
            uncompressed: body.len() as i32,
            body,
            codec: 0,
            num_values: values.len() as i32,
            num_rows: values.len() as i64,
            schema: nested_schema(1, true),
            key_values: Vec::new(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut file = MAGIC.to_vec();
        let page_at = file.len() as i64;
        let mut last = 0;
        i32_field(&mut file, &mut last, 1, 0);
        i32_field(&mut file, &mut last, 2, self.uncompressed);
        i32_field(&mut file, &mut last, 3, self.body.len() as i32);
        field(&mut file, &mut last, 5, 12);
        let mut inner = 0;
        i32_field(&mut file, &mut inner, 1, self.num_values);
        i32_field(&mut file, &mut inner, 2, 0);
        i32_field(&mut file, &mut inner, 3, 3);
        i32_field(&mut file, &mut inner, 4, 3);
        file.push(0);
        file.push(0);
        file.extend_from_slice(&self.body);
        let chunk_len = file.len() as i64 - page_at;

        let mut meta = Vec::new();
        let mut last = 0;
        i32_field(&mut meta, &mut last, 1, 2);
        field(&mut meta, &mut last, 2, 9);
        meta.extend_from_slice(&self.schema);
        i64_field(&mut meta, &mut last, 3, self.num_rows);
        field(&mut meta, &mut last, 4, 9);
        list_header(&mut meta, 12, 1);
        // RowGroup
        let mut rg = 0;
        field(&mut meta, &mut rg, 1, 9);
        list_header(&mut meta, 12, 1);
        // ColumnChunk
        let mut cc = 0;
        i64_field(&mut meta, &mut cc, 2, page_at);
        field(&mut meta, &mut cc, 3, 12);
        // ColumnMetaData
        let mut cm = 0;
        i32_field(&mut meta, &mut cm, 1, 6);
        field(&mut meta, &mut cm, 2, 9);
        list_header(&mut meta, 5, 1);
        varint(&mut meta, zigzag(0));
        field(&mut meta, &mut cm, 3, 9);
        list_header(&mut meta, 8, 1);
        varint(&mut meta, 1);
        meta.push(b's');
        i32_field(&mut meta, &mut cm, 4, self.codec);
        i64_field(&mut meta, &mut cm, 5, i64::from(self.num_values));
        i64_field(&mut meta, &mut cm, 6, chunk_len);
        i64_field(&mut meta, &mut cm, 7, chunk_len);
        i64_field(&mut meta, &mut cm, 9, page_at);
        meta.push(0); // ColumnMetaData
        meta.push(0); // ColumnChunk
        i64_field(&mut meta, &mut rg, 2, chunk_len);
        i64_field(&mut meta, &mut rg, 3, self.num_rows);
        meta.push(0); // RowGroup
        if !self.key_values.is_empty() {
            field(&mut meta, &mut last, 5, 9);
            list_header(&mut meta, 12, self.key_values.len());
            for (k, v) in &self.key_values {
                let mut kv = 0;
                binary_field(&mut meta, &mut kv, 1, k);
                binary_field(&mut meta, &mut kv, 2, v);
                meta.push(0);
            }
        }
        meta.push(0); // FileMetaData

        file.extend_from_slice(&meta);
        file.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        file.extend_from_slice(MAGIC);
        file
    }
}

const HF_TOKEN: &[u8] = b"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";

#[test]
fn the_handmade_file_reads() {
    // The builder makes what the crate reads; the hostile tests below change one field each.
    let d = scan(&Tiny::plain(&[b"hello", HF_TOKEN, b"bye"]).bytes());
    assert!(d.warnings.is_empty(), "{}", warnings(&d));
    assert_eq!(
        found(&d),
        vec![("huggingface.user-token".into(), "s".into(), Some(1))]
    );
}

#[test]
fn footer_metadata_is_scanned_at_its_offset() {
    let mut t = Tiny::plain(&[b"hello"]);
    t.key_values = vec![(b"huggingface", b"{}"), (b"hub_token", HF_TOKEN)];
    let data = t.bytes();
    let d = scan(&data);
    assert!(d.warnings.is_empty(), "{}", warnings(&d));
    assert_eq!(
        found(&d),
        vec![(
            "huggingface.user-token".into(),
            "key_value_metadata.hub_token".into(),
            None
        )]
    );
    let at = data.windows(HF_TOKEN.len()).position(|w| w == HF_TOKEN);
    assert_eq!(Some(d.placed[0].offset), at);
}

#[test]
fn a_zstd_bomb_in_a_page_is_refused_before_it_is_inflated() {
    // 512 MiB of zeros in a few kilobytes, the page header telling the truth.
    let zeros = vec![0u8; 512 << 20];
    let bomb = zstd::bulk::compress(&zeros, 19).expect("zstd");
    drop(zeros);
    assert!(bomb.len() < 64 << 10, "{}", bomb.len());
    let mut t = Tiny::plain(&[b"x"]);
    t.body = bomb.clone();
    t.codec = 6;
    t.uncompressed = 512 << 20;
    let start = std::time::Instant::now();
    let d = scan(&t.bytes());
    assert!(
        warnings(&d).contains("possible compression bomb"),
        "{}",
        warnings(&d)
    );
    assert_eq!(d.warnings[0].kind, WarningKind::Limit);
    // The header lying small instead: the decompressor stops at the declared size.
    t.uncompressed = 1000;
    let d = scan(&t.bytes());
    assert!(warnings(&d).contains("bad zstd data"), "{}", warnings(&d));
    assert!(start.elapsed().as_secs() < 10);
}

#[test]
fn gzip_past_its_declared_size_stops_there() {
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b'a'; 8 << 20]).unwrap();
    let gz = gz.finish().unwrap();
    let err = pages::decompress(Codec::Gzip, &gz, 100, 4).unwrap_err();
    assert!(err.contains("differs from its header"), "{err}");
    let ok = pages::decompress(Codec::Gzip, &gz, 8 << 20, 4).unwrap();
    assert_eq!(ok.len(), 8 << 20);
}

#[test]
fn lying_counts_and_sizes_end_with_a_warning() {
    let base = Tiny::plain(&[b"hello", HF_TOKEN]);
    let cases: Vec<(&str, Tiny, &str)> = vec![
        (
            "a page declaring 2^31-1 values",
            Tiny {
                num_values: i32::MAX,
                ..Tiny::plain(&[b"hello"])
            },
            "values, more than",
        ),
        (
            "a page larger than its chunk",
            Tiny {
                uncompressed: 1 << 30,
                ..Tiny::plain(&[b"hello"])
            },
            "possible compression bomb",
        ),
        (
            "a negative page size",
            Tiny {
                uncompressed: -5,
                ..Tiny::plain(&[b"hello"])
            },
            "runs past",
        ),
        (
            "more values than the page holds",
            Tiny {
                num_values: 900,
                ..Tiny::plain(&[b"hello"])
            },
            "row group 0, column 0",
        ),
        (
            "an unknown codec",
            Tiny {
                codec: 3,
                ..Tiny::plain(&[b"hello"])
            },
            "LZO",
        ),
    ];
    for (what, t, says) in cases {
        let start = std::time::Instant::now();
        let d = scan(&t.bytes());
        let w = warnings(&d);
        assert!(w.contains(says), "{what}: {w}");
        assert!(start.elapsed().as_secs() < 5, "{what}");
    }
    // Rows claimed by the footer do not matter to the reading: 2^62 rows, one value found.
    let huge = Tiny {
        num_rows: 1 << 62,
        ..base
    };
    let d = scan(&huge.bytes());
    assert_eq!(d.placed.len(), 1, "{}", warnings(&d));
}

/// A schema list of `depth` nested groups (the first is the root), each with one child, over
/// the leaf column `s` (BYTE_ARRAY, required; UTF8 when `utf8`).
fn nested_schema(depth: usize, utf8: bool) -> Vec<u8> {
    let mut out = Vec::new();
    list_header(&mut out, 12, depth + 1);
    for _ in 0..depth {
        let mut last = 0;
        i32_field(&mut out, &mut last, 3, 0);
        binary_field(&mut out, &mut last, 4, b"g");
        i32_field(&mut out, &mut last, 5, 1);
        out.push(0);
    }
    let mut last = 0;
    i32_field(&mut out, &mut last, 1, 6);
    i32_field(&mut out, &mut last, 3, 0);
    binary_field(&mut out, &mut last, 4, b"s");
    if utf8 {
        i32_field(&mut out, &mut last, 6, 0);
    }
    out.push(0);
    out
}

#[test]
fn hostile_footers_are_refused_before_the_crate_reads_them() {
    let bounds = FooterBounds {
        max_schema_depth: 64,
        max_columns: 10_000,
        max_row_groups: 1 << 16,
        max_column_chunks: 1 << 19,
    };
    let footer = |schema: Vec<u8>, extra: &[u8]| {
        let mut meta = Vec::new();
        let mut last = 0;
        i32_field(&mut meta, &mut last, 1, 2);
        field(&mut meta, &mut last, 2, 9);
        meta.extend_from_slice(&schema);
        meta.extend_from_slice(extra);
        meta.push(0);
        meta
    };
    let check = |meta: &[u8]| thrift::check_footer(meta, 0, &bounds).map(|f| f.row_groups);

    // 200,000 nested groups: the crate would recurse once per level.
    let err = check(&footer(nested_schema(200_000, false), &[])).unwrap_err();
    assert!(err.contains("nested deeper than 64"), "{err}");
    assert!(check(&footer(nested_schema(60, false), &[])).is_ok());

    // A root announcing 2^31-1 children in a list of two elements (the crate would reserve
    // a vector of that many).
    let mut schema = Vec::new();
    list_header(&mut schema, 12, 2);
    let mut last = 0;
    binary_field(&mut schema, &mut last, 4, b"r");
    i32_field(&mut schema, &mut last, 5, i32::MAX);
    schema.push(0);
    schema.push(0);
    let err = check(&footer(schema, &[])).unwrap_err();
    assert!(err.contains("more children than it holds"), "{err}");

    // A row group list of 2^31-1 entries in a few bytes.
    let mut groups = Vec::new();
    let mut last = 2;
    field(&mut groups, &mut last, 4, 9);
    list_header(&mut groups, 12, i32::MAX as usize);
    let err = check(&footer(nested_schema(1, false), &groups)).unwrap_err();
    assert!(err.contains("larger than the data left"), "{err}");

    // Structures nested past any real footer.
    let mut nested = Vec::new();
    let mut last = 2;
    field(&mut nested, &mut last, 7, 12);
    // Each byte opens a struct field (id +1) inside the one before.
    nested.extend(std::iter::repeat_n(0x1c, 10_000));
    let err = check(&footer(nested_schema(1, false), &nested)).unwrap_err();
    assert!(err.contains("nested too deeply"), "{err}");

    // End to end: the deep schema in a file.
    let mut t = Tiny::plain(&[HF_TOKEN]);
    t.schema = nested_schema(100_000, false);
    let d = scan(&t.bytes());
    assert!(d.placed.is_empty());
    assert!(warnings(&d).contains("nested deeper"), "{}", warnings(&d));
}

#[test]
fn a_footer_past_the_limit_is_not_read() {
    let mut data = fixture("clean.parquet");
    let n = data.len();
    data[n - 8..n - 4].copy_from_slice(&((n - 12) as u32).to_le_bytes());
    // Pointing at the first byte after the magic is legal; what is there is not a footer.
    let d = scan(&data);
    assert!(warnings(&d).contains("footer"), "{}", warnings(&d));
}

#[test]
fn the_budget_stops_the_file() {
    let values: Vec<Vec<u8>> = (0..3000)
        .map(|i| format!("row {i} {}", "x".repeat(400)).into_bytes())
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
    let data = Tiny::plain(&refs).bytes();
    let limits = Limits {
        max_total_bytes: 100_000,
        max_member_bytes: 100_000,
        ..Limits::default()
    };
    // The file is 1.2 MB: its own budget is 8 times that, so the page fits; the values do not
    // once the page is counted too.
    let d = scan_with(&data, &limits);
    assert!(
        d.warnings.iter().any(|w| w.kind == WarningKind::Limit),
        "{}",
        warnings(&d)
    );
}

#[test]
fn rows_follow_repetition_and_definition_levels() {
    let vals: Vec<ByteArray> = ["a", "b", "c", "d"]
        .iter()
        .map(|s| ByteArray::from(*s))
        .collect();
    // Rows: [a, b], null, [], [c], [d]  (max def 2: 0 null list, 1 empty list, 2 value)
    let defs = [2, 2, 0, 1, 2, 2];
    let reps = [0, 1, 0, 0, 0, 0];
    let batch = Batch {
        defs: Some(&defs),
        reps: Some(&reps),
        max_def: 2,
        levels: 6,
    };
    let mut rows = Rows { next: 3 };
    let items = rows.items(&batch, &vals, "l", 9, 100, true);
    let got: Vec<(&[u8], Option<u64>)> = items.iter().map(|i| (i.value, i.row)).collect();
    assert_eq!(
        got,
        vec![
            (&b"a"[..], Some(103)),
            (b"b", Some(103)),
            (b"c", Some(106)),
            (b"d", Some(107)),
        ]
    );
    assert_eq!(rows.next, 8);
    // A flat optional column: one row per level.
    let defs = [1, 0, 1];
    let batch = Batch {
        defs: Some(&defs),
        reps: None,
        max_def: 1,
        levels: 3,
    };
    let mut rows = Rows::default();
    let items = rows.items(&batch, &vals[..2], "o", 9, 0, false);
    let got: Vec<Option<u64>> = items.iter().map(|i| i.row).collect();
    assert_eq!(got, vec![Some(0), Some(2)]);
}

#[test]
fn a_panic_in_the_crate_becomes_an_error() {
    let r: Result<(), String> = guarded(|| panic!("inside the crate"));
    assert!(r.unwrap_err().contains("malformed"));
    assert_eq!(guarded(|| 7).unwrap(), 7);
}

#[test]
fn crate_errors_do_not_quote_the_file() {
    let e = parquet::errors::ParquetError::General(
        "Cannot annotate UTF8 from INT32 for field 'hf_secret_name'".into(),
    );
    let m = crate_error(&e);
    assert!(!m.contains("hf_secret_name"), "{m}");
    assert!(m.contains("Cannot annotate"));
}

#[test]
fn page_headers_round_trip() {
    let mut h = Vec::new();
    let mut last = 0;
    i32_field(&mut h, &mut last, 1, 3);
    i32_field(&mut h, &mut last, 2, 100);
    i32_field(&mut h, &mut last, 3, 40);
    field(&mut h, &mut last, 8, 12);
    let mut inner = 0;
    i32_field(&mut h, &mut inner, 1, 10);
    i32_field(&mut h, &mut inner, 2, 1);
    i32_field(&mut h, &mut inner, 3, 9);
    i32_field(&mut h, &mut inner, 4, 8);
    i32_field(&mut h, &mut inner, 5, 4);
    i32_field(&mut h, &mut inner, 6, 0);
    field(&mut h, &mut inner, 7, 2); // is_compressed = false
    h.push(0);
    h.push(0);
    let (got, len) = thrift::page_header(&h, 0).unwrap();
    assert_eq!(len, h.len());
    assert_eq!(
        (got.kind, got.uncompressed, got.compressed, got.num_values),
        (3, 100, 40, 10)
    );
    assert_eq!((got.num_nulls, got.num_rows, got.encoding), (1, Some(9), 8));
    assert_eq!((got.def_len, got.rep_len, got.is_compressed), (4, 0, false));
    for cut in 0..h.len() {
        assert!(thrift::page_header(&h[..cut], 0).is_err(), "{cut}");
    }
}

/// Random damage to real files: every scan ends, without a panic, in bounded time.
#[test]
fn damaged_fixtures_never_panic() {
    let mut rng = XorShift(0x9a4e7);
    for name in [
        "secret_snappy.parquet",
        "secret_zstd.parquet",
        "secret_gzip.parquet",
    ] {
        let good = fixture(name);
        for round in 0..300 {
            let mut data = good.clone();
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(data.len());
                data[at] = rng.next() as u8;
            }
            if round % 7 == 0 {
                data.truncate(rng.below(data.len()));
                data.extend_from_slice(&good[good.len() - 8..]);
            }
            let _ = scan(&data);
        }
    }
}
