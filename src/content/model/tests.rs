use super::gguf::{GGUF_ARRAY, GGUF_STRING};
use super::*;

// Reference files written by the real libraries (safetensors 0.x `save`, gguf-py
// `GGUFWriter`, onnx `helper.make_model`, numpy `np.save`), to pin the formats.
const REF_SAFETENSORS: &[u8] = b"\
        \x90\x00\x00\x00\x00\x00\x00\x00{\"__metadata__\":{\"format\":\"pt\",\"hf_token\":\"\
        hf_abcdefghijklmnopqrstuvwxyzABCDEFGH\"},\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"da\
        ta_offsets\":[0,16]}}       \x00\x00\x00\x00\x00\x00\x80?\x00\x00\x00@\x00\x00@@";
const REF_GGUF: &[u8] = b"\
        GGUF\x03\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\
        \x14\x00\x00\x00\x00\x00\x00\x00general.architecture\x08\x00\x00\x00\x05\x00\x00\x00\
        \x00\x00\x00\x00llama\x0c\x00\x00\x00\x00\x00\x00\x00general.name\x08\x00\x00\x00\
        \x04\x00\x00\x00\x00\x00\x00\x00tiny\x15\x00\x00\x00\x00\x00\x00\x00tokenizer.ggml.t\
        okens\x09\x00\x00\x00\x08\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\
        \x00\x00\x00\x00\x00<s>\x05\x00\x00\x00\x00\x00\x00\x00hello\x09\x00\x00\x00\x00\x00\
        \x00\x00hf_secret\x14\x00\x00\x00\x00\x00\x00\x00llama.context_length\x04\x00\x00\
        \x00\x80\x00\x00\x00\x06\x00\x00\x00\x00\x00\x00\x00nested\x09\x00\x00\x00\x09\x00\
        \x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\
        \x00\x01\x00\x00\x00\x02\x00\x00\x00\x05\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\
        \x03\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00t\x01\x00\x00\x00\x04\x00\x00\x00\
        \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\
        \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\
        \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\
        \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
const REF_ONNX: &[u8] = b"\
        \x08\x0e\x12\x0atrawl-test2\x09model doc:L\x0a\x1a\x0a\x01x\x12\x01y\"\x08Identity2\
        \x08node doc\x12\x01gR\x09graph docZ\x0f\x0a\x01x\x12\x0a\x0a\x08\x08\x01\x12\x04\
        \x0a\x02\x08\x01b\x0f\x0a\x01y\x12\x0a\x0a\x08\x08\x01\x12\x04\x0a\x02\x08\x01B\x04\
        \x0a\x00\x10\x11r\x1d\x0a\x07api_key\x12\x12sk-test-1234567890";
const REF_NPY_F4: &[u8] = b"\
        \x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }     \
        \x20                                                      \x0a\x00\x00\xc0?\x00\x00 \
        @";
const REF_NPY_OBJECT: &[u8] = b"\
        \x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (2,), }      \
        \x20                                                      \x0a\x80\x04\x95\x8f\x00\
        \x00\x00\x00\x00\x00\x00\x8c\x16numpy._core.multiarray\x94\x8c\x0c_reconstruct\x94\
        \x93\x94\x8c\x05numpy\x94\x8c\x07ndarray\x94\x93\x94K\x00\x85\x94C\x01b\x94\x87\x94R\
        \x94(K\x01K\x02\x85\x94h\x03\x8c\x05dtype\x94\x93\x94\x8c\x02O8\x94\x89\x88\x87\x94R\
        \x94(K\x03\x8c\x01|\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?t\x94b\x89]\x94(\x8c\
        \x01x\x94Net\x94b.";
const REF_NPY_STRUCT: &[u8] = b"\
        \x93NUMPY\x01\x00v\x00{'descr': [('name', '|O'), ('v', '<i4')], 'fortran_order': Fal\
        se, 'shape': (2,), }                                   \x0a\x80\x04\x95\xf6\x00\x00\
        \x00\x00\x00\x00\x00\x8c\x16numpy._core.multiarray\x94\x8c\x0c_reconstruct\x94\x93\
        \x94\x8c\x05numpy\x94\x8c\x07ndarray\x94\x93\x94K\x00\x85\x94C\x01b\x94\x87\x94R\x94\
        (K\x01K\x02\x85\x94h\x03\x8c\x05dtype\x94\x93\x94\x8c\x03V12\x94\x89\x88\x87\x94R\
        \x94(K\x03\x8c\x01|\x94N\x8c\x04name\x94\x8c\x01v\x94\x86\x94}\x94(h\x11h\x0c\x8c\
        \x02O8\x94\x89\x88\x87\x94R\x94(K\x03h\x10NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?t\
        \x94bK\x00\x86\x94h\x12h\x0c\x8c\x02i4\x94\x89\x88\x87\x94R\x94(K\x03\x8c\x01<\x94NN\
        NJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t\x94bK\x08\x86\x94uK\x0cK\x01K\x1bt\x94b\
        \x89]\x94(K\x00K\x00\x86\x94K\x00K\x00\x86\x94et\x94b.";

/// The value of each string as the file holds it at its offset (no escapes in these files).
fn assert_offsets(data: &[u8], strings: &[MetaString]) {
    for s in strings {
        assert_eq!(
            data.get(s.offset..s.offset + s.value.len()),
            Some(&s.value[..]),
            "offset of {}",
            s.key
        );
    }
}

/// The values, each under its key.
fn pairs(strings: &[MetaString]) -> Vec<(&str, &[u8])> {
    strings
        .iter()
        .filter(|s| !s.is_key)
        .map(|s| (s.key.as_str(), &s.value[..]))
        .collect()
}

/// The keys' own names.
fn key_names(strings: &[MetaString]) -> Vec<&[u8]> {
    strings
        .iter()
        .filter(|s| s.is_key)
        .map(|s| &s.value[..])
        .collect()
}

// --- safetensors ---------------------------------------------------------------------

fn safetensors_file(header: &str, data_len: usize) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.resize(out.len() + data_len, 0);
    out
}

#[test]
fn safetensors_reference_file() {
    assert!(is_safetensors(REF_SAFETENSORS));
    let strings = safetensors_strings(REF_SAFETENSORS, 1 << 20).unwrap();
    assert_eq!(
        pairs(&strings),
        [
            ("__metadata__.format", &b"pt"[..]),
            (
                "__metadata__.hf_token",
                b"hf_abcdefghijklmnopqrstuvwxyzABCDEFGH"
            ),
        ]
    );
    assert_offsets(REF_SAFETENSORS, &strings);
}

#[test]
fn safetensors_other_strings_and_escapes() {
    let header = r#"{"__metadata__": {"token": "a\"b\u00e9\ud83d\ude00\n", "n": "x"},
            "t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "note": "extra"},
            "odd": ["s", {"deep": "v"}, 1.5e3, true, null, false]}  "#;
    let file = safetensors_file(header, 4);
    assert!(is_safetensors(&file));
    let strings = safetensors_strings(&file, 1 << 20).unwrap();
    assert_eq!(
        pairs(&strings),
        [
            ("__metadata__.token", "a\"b\u{e9}\u{1F600}\n".as_bytes()),
            ("__metadata__.n", b"x"),
            ("t.note", b"extra"),
            ("odd[0]", b"s"),
            ("odd[1].deep", b"v"),
        ]
    );
    // Every key's own name, but a tensor's `dtype`, `shape` and `data_offsets`.
    assert_eq!(
        key_names(&strings),
        [
            &b"__metadata__"[..],
            b"token",
            b"n",
            b"t",
            b"note",
            b"odd",
            b"deep"
        ]
    );
    // The escaped value starts right after its opening quote.
    let (escaped, rest): (Vec<MetaString>, Vec<MetaString>) = strings
        .into_iter()
        .partition(|s| !s.is_key && s.key == "__metadata__.token");
    assert_eq!(&file[escaped[0].offset..escaped[0].offset + 3], br#"a\""#);
    assert_offsets(&file, &rest);
}

#[test]
fn safetensors_malformed() {
    // Too short for the length prefix.
    assert!(safetensors_strings(b"\x02\x00", 100).is_err());
    // Header length larger than the file.
    let mut file = safetensors_file(r#"{"a":"b"}"#, 0);
    file[..8].copy_from_slice(&1000u64.to_le_bytes());
    assert!(!is_safetensors(&file));
    let err = safetensors_strings(&file, 1 << 20).unwrap_err();
    assert!(err.contains("larger than"), "{err}");
    // Length of 2^64 - 1.
    file[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(safetensors_strings(&file, usize::MAX).is_err());
    // Truncated JSON inside a header whose length fits.
    let file = safetensors_file(r#"{"__metadata__":{"k":"hf_"#, 0);
    let err = safetensors_strings(&file, 1 << 20).unwrap_err();
    assert!(err.contains("unterminated"), "{err}");
    // Header over the limit.
    let file = safetensors_file(r#"{"a":"b"}"#, 0);
    assert!(safetensors_strings(&file, 4).unwrap_err().contains("limit"));
    // Not an object, trailing garbage, deep nesting.
    assert!(safetensors_strings(&safetensors_file("[1]", 0), 100).is_err());
    assert!(safetensors_strings(&safetensors_file(r#"{"a":"b"} x"#, 0), 100).is_err());
    let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(5000), "]".repeat(5000));
    let err = safetensors_strings(&safetensors_file(&deep, 0), 1 << 20).unwrap_err();
    assert!(err.contains("deeply"), "{err}");
}

#[test]
fn safetensors_detection() {
    assert!(!is_safetensors(b""));
    assert!(!is_safetensors(b"hello world, this is plain text"));
    assert!(!is_safetensors(REF_GGUF));
    assert!(!is_safetensors(REF_NPY_OBJECT));
    assert!(!is_safetensors(&safetensors_file("[]", 0)));
    assert!(is_safetensors(&safetensors_file("{}", 0)));
}

// --- GGUF ------------------------------------------------------------------------------

/// A GGUF writer for tests: `wide` counts (version 2+) and either byte order.
struct GgufFile {
    out: Vec<u8>,
    big: bool,
    wide: bool,
}

impl GgufFile {
    fn new(version: u32, big: bool, entries: u64) -> Self {
        let mut file = GgufFile {
            out: b"GGUF".to_vec(),
            big,
            wide: version >= 2,
        };
        file.u32(version);
        file.count(0); // tensors
        file.count(entries);
        file
    }

    fn uint(&mut self, v: u64, width: usize) -> &mut Self {
        if self.big {
            self.out.extend_from_slice(&v.to_be_bytes()[8 - width..]);
        } else {
            self.out.extend_from_slice(&v.to_le_bytes()[..width]);
        }
        self
    }

    fn u32(&mut self, v: u32) -> &mut Self {
        self.uint(u64::from(v), 4)
    }

    fn u64(&mut self, v: u64) -> &mut Self {
        self.uint(v, 8)
    }

    fn count(&mut self, v: u64) -> &mut Self {
        self.uint(v, if self.wide { 8 } else { 4 })
    }

    fn string(&mut self, s: &str) -> &mut Self {
        self.count(s.len() as u64);
        self.out.extend_from_slice(s.as_bytes());
        self
    }

    fn kv_string(&mut self, key: &str, value: &str) -> &mut Self {
        self.string(key).u32(GGUF_STRING).string(value)
    }

    fn kv_u32(&mut self, key: &str, value: u32) -> &mut Self {
        self.string(key).u32(4).u32(value)
    }

    fn kv_strings(&mut self, key: &str, items: &[&str]) -> &mut Self {
        self.string(key).u32(GGUF_ARRAY).u32(GGUF_STRING);
        self.count(items.len() as u64);
        for item in items {
            self.string(item);
        }
        self
    }
}

fn sample_gguf(version: u32, big: bool) -> Vec<u8> {
    let mut file = GgufFile::new(version, big, 5);
    file.kv_string("general.name", "tiny")
        .kv_u32("general.alignment", 32)
        .kv_strings("tokenizer.ggml.tokens", &["<s>", "", "hf_secret"])
        .kv_string("hf.token", "hf_abc");
    // An array of arrays of strings.
    file.string("nested")
        .u32(GGUF_ARRAY)
        .u32(GGUF_ARRAY)
        .count(2);
    file.u32(GGUF_STRING).count(1).string("x");
    file.u32(GGUF_STRING).count(2).string("y").string("z");
    file.out.extend_from_slice(&[0u8; 64]); // tensor infos, never read
    file.out
}

#[test]
fn gguf_reference_file() {
    assert!(is_gguf(REF_GGUF));
    let (strings, warnings) = gguf_strings(REF_GGUF, &GgufLimits::default()).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        pairs(&strings),
        [
            ("general.architecture", &b"llama"[..]),
            ("general.name", b"tiny"),
            ("tokenizer.ggml.tokens[0]", b"<s>"),
            ("tokenizer.ggml.tokens[1]", b"hello"),
            ("tokenizer.ggml.tokens[2]", b"hf_secret"),
        ]
    );
    assert_offsets(REF_GGUF, &strings);
}

#[test]
fn gguf_versions_and_byte_orders() {
    let expected = [
        ("general.name", &b"tiny"[..]),
        ("tokenizer.ggml.tokens[0]", b"<s>"),
        ("tokenizer.ggml.tokens[2]", b"hf_secret"),
        ("hf.token", b"hf_abc"),
        ("nested[0][0]", b"x"),
        ("nested[1][0]", b"y"),
        ("nested[1][1]", b"z"),
    ];
    for (version, big) in [(3, false), (2, false), (1, false), (3, true), (2, true)] {
        let file = sample_gguf(version, big);
        assert!(is_gguf(&file), "v{version} big={big}");
        let (strings, warnings) = gguf_strings(&file, &GgufLimits::default()).unwrap();
        assert!(warnings.is_empty(), "v{version} big={big}: {warnings:?}");
        assert_eq!(pairs(&strings), expected, "v{version} big={big}");
        assert_offsets(&file, &strings);
    }
}

#[test]
fn gguf_header_errors() {
    assert!(!is_gguf(b"GGUF"));
    assert!(!is_gguf(b"GGUF\x07\x00\x00\x00"));
    assert!(!is_gguf(b"PK\x03\x04"));
    assert!(gguf_strings(b"GGUF\x03\x00\x00\x00\x00", &GgufLimits::default()).is_err());
    assert!(gguf_strings(b"not gguf", &GgufLimits::default()).is_err());
    // A header with no entries at all is fine.
    let file = GgufFile::new(3, false, 0).out;
    assert_eq!(
        gguf_strings(&file, &GgufLimits::default()).unwrap(),
        (vec![], vec![])
    );
}

#[test]
fn gguf_claims_two_to_the_sixty_entries() {
    let mut file = GgufFile::new(3, false, 1 << 60);
    file.kv_string("general.name", "tiny")
        .kv_string("k", "hf_abc");
    for limits in [
        GgufLimits::default(),
        GgufLimits {
            max_entries: u64::MAX,
            ..GgufLimits::default()
        },
    ] {
        let (strings, warnings) = gguf_strings(&file.out, &limits).unwrap();
        assert_eq!(pairs(&strings).len(), 2);
        assert_eq!(key_names(&strings), [&b"general.name"[..], b"k"]);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("stopped after 2 of 1152921504606846976")),
            "{warnings:?}"
        );
    }
    // Many real (tiny) entries stop at `max_entries`.
    let mut file = GgufFile::new(3, false, 1 << 60);
    for _ in 0..100 {
        file.kv_u32("k", 1);
    }
    let limits = GgufLimits {
        max_entries: 10,
        ..GgufLimits::default()
    };
    let (_, warnings) = gguf_strings(&file.out, &limits).unwrap();
    assert!(warnings[0].contains("reading at most 10"), "{warnings:?}");
}

#[test]
fn gguf_hostile_lengths() {
    // A string length of 2^63 after a good entry.
    let mut file = GgufFile::new(3, false, 2);
    file.kv_string("a", "first")
        .string("b")
        .u32(GGUF_STRING)
        .u64(1 << 63);
    file.out.extend_from_slice(b"short");
    let (strings, warnings) = gguf_strings(&file.out, &GgufLimits::default()).unwrap();
    assert_eq!(pairs(&strings), [("a", &b"first"[..])]);
    assert!(warnings[0].contains("runs past the end"), "{warnings:?}");

    // A key length of 2^63.
    let mut file = GgufFile::new(3, false, 1);
    file.u64(1 << 63);
    let (strings, warnings) = gguf_strings(&file.out, &GgufLimits::default()).unwrap();
    assert!(strings.is_empty() && warnings.len() == 1, "{warnings:?}");

    // Arrays claiming 2^62 items: strings, fixed-size (overflowing u64 bytes) and arrays.
    for item_type in [GGUF_STRING, 10, GGUF_ARRAY] {
        let mut file = GgufFile::new(3, false, 1);
        file.string("arr")
            .u32(GGUF_ARRAY)
            .u32(item_type)
            .u64(1 << 62);
        file.string("only one");
        let (_, warnings) = gguf_strings(&file.out, &GgufLimits::default()).unwrap();
        assert_eq!(warnings.len(), 1, "type {item_type}: {warnings:?}");
    }

    // Arrays nested a thousand deep.
    let mut file = GgufFile::new(3, false, 1);
    file.string("deep").u32(GGUF_ARRAY);
    for _ in 0..1000 {
        file.u32(GGUF_ARRAY).u64(1);
    }
    let (_, warnings) = gguf_strings(&file.out, &GgufLimits::default()).unwrap();
    assert!(warnings[0].contains("nested deeper"), "{warnings:?}");

    // Unknown value type.
    let mut file = GgufFile::new(3, false, 2);
    file.kv_string("a", "x").string("b").u32(99).u64(0);
    let (strings, warnings) = gguf_strings(&file.out, &GgufLimits::default()).unwrap();
    assert_eq!(pairs(&strings), [("a", &b"x"[..])]);
    // The key of the entry with the unknown type was read before its type.
    assert_eq!(key_names(&strings), [&b"a"[..], b"b"]);
    assert!(
        warnings[0].contains("unknown value type 99"),
        "{warnings:?}"
    );
}

#[test]
fn gguf_limits() {
    let file = sample_gguf(3, false);
    let limits = GgufLimits {
        max_array_items: 1,
        ..GgufLimits::default()
    };
    let (strings, warnings) = gguf_strings(&file, &limits).unwrap();
    // One item per array, and the walk goes on to the entries after the array.
    let keys: Vec<_> = pairs(&strings).iter().map(|s| s.0).collect();
    assert_eq!(
        keys,
        [
            "general.name",
            "tokenizer.ggml.tokens[0]",
            "hf.token",
            "nested[0][0]"
        ]
    );
    assert_eq!(warnings.len(), 2, "{warnings:?}");

    let limits = GgufLimits {
        max_strings: 2,
        ..GgufLimits::default()
    };
    let (strings, warnings) = gguf_strings(&file, &limits).unwrap();
    assert_eq!(strings.len(), 2);
    assert!(warnings[0].contains("limit of 2 strings"), "{warnings:?}");
}

// --- ONNX ------------------------------------------------------------------------------

fn pb_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A protobuf message writer for tests.
#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn uint(mut self, field: u64, v: u64) -> Self {
        pb_varint(&mut self.0, field << 3);
        pb_varint(&mut self.0, v);
        self
    }

    fn bytes(mut self, field: u64, bytes: &[u8]) -> Self {
        pb_varint(&mut self.0, (field << 3) | 2);
        pb_varint(&mut self.0, bytes.len() as u64);
        self.0.extend_from_slice(bytes);
        self
    }

    fn msg(self, field: u64, message: Pb) -> Self {
        self.bytes(field, &message.0)
    }

    fn entry(self, field: u64, key: &str, value: &str) -> Self {
        let entry = Pb::default()
            .bytes(1, key.as_bytes())
            .bytes(2, value.as_bytes());
        self.msg(field, entry)
    }
}

fn sample_onnx() -> Vec<u8> {
    let tensor = Pb::default()
        .uint(1, 4096)
        .uint(2, 1)
        .bytes(8, b"weight")
        .bytes(9, &[0x5a; 4096 * 4]); // raw_data, skipped
    let subgraph = Pb::default()
        .msg(
            1,
            Pb::default().bytes(4, b"Relu").bytes(6, b"inner node doc"),
        )
        .bytes(10, b"then doc");
    let node = Pb::default()
        .bytes(1, b"x")
        .bytes(2, b"y")
        .bytes(4, b"If")
        .msg(
            5,
            Pb::default()
                .bytes(1, b"then_branch")
                .uint(20, 5)
                .msg(6, subgraph),
        )
        .bytes(6, b"node doc")
        .entry(9, "owner", "node-owner");
    let graph = Pb::default()
        .msg(1, Pb::default().bytes(4, b"Identity"))
        .msg(1, node)
        .bytes(2, b"main")
        .msg(5, tensor)
        .bytes(10, b"graph doc")
        .entry(16, "graph_key", "graph-value");
    let function = Pb::default()
        .bytes(1, b"f")
        .msg(7, Pb::default().bytes(6, b"function node doc"))
        .bytes(8, b"function doc");
    let training = Pb::default().msg(2, Pb::default().bytes(10, b"algorithm doc"));
    Pb::default()
        .uint(1, 10)
        .bytes(2, b"trawl-test")
        .bytes(3, b"1.0")
        .bytes(4, b"ai.trawl")
        .uint(5, 1)
        .bytes(6, b"model doc")
        .msg(7, graph)
        .msg(8, Pb::default().bytes(1, b"").uint(2, 21))
        .entry(14, "api_key", "sk-test-1234567890")
        .entry(14, "", "no key")
        .msg(20, training)
        .msg(25, function)
        .0
}

#[test]
fn onnx_reference_file() {
    assert!(is_onnx(REF_ONNX));
    let strings = onnx_strings(REF_ONNX).unwrap();
    assert_eq!(
        pairs(&strings),
        [
            ("producer_name", &b"trawl-test"[..]),
            ("doc_string", b"model doc"),
            ("graph.node[0].doc_string", b"node doc"),
            ("graph.name", b"g"),
            ("graph.doc_string", b"graph doc"),
            ("metadata_props.api_key", b"sk-test-1234567890"),
        ]
    );
    assert_offsets(REF_ONNX, &strings);
}

#[test]
fn onnx_hand_built_model() {
    let file = sample_onnx();
    assert!(is_onnx(&file));
    let strings = onnx_strings(&file).unwrap();
    assert_eq!(
        pairs(&strings),
        [
            ("producer_name", &b"trawl-test"[..]),
            ("producer_version", b"1.0"),
            ("domain", b"ai.trawl"),
            ("doc_string", b"model doc"),
            (
                "graph.node[1].attribute[0].g.node[0].doc_string",
                b"inner node doc"
            ),
            ("graph.node[1].attribute[0].g.doc_string", b"then doc"),
            ("graph.node[1].doc_string", b"node doc"),
            ("graph.node[1].metadata_props.owner", b"node-owner"),
            ("graph.name", b"main"),
            ("graph.doc_string", b"graph doc"),
            ("graph.metadata_props.graph_key", b"graph-value"),
            ("metadata_props.api_key", b"sk-test-1234567890"),
            ("metadata_props.", b"no key"),
            ("training_info[0].algorithm.doc_string", b"algorithm doc"),
            ("functions[0].node[0].doc_string", b"function node doc"),
            ("functions[0].doc_string", b"function doc"),
        ]
    );
    assert_offsets(&file, &strings);
}

#[test]
fn onnx_malformed() {
    let file = sample_onnx();
    // Truncated anywhere inside the graph: a length runs past the end.
    let err = onnx_strings(&file[..file.len() / 2]).unwrap_err();
    assert!(err.contains("runs past the end"), "{err}");
    assert!(!is_onnx(&file[..file.len() / 2]));
    // A nested length larger than its parent message.
    let mut inner = Vec::new();
    pb_varint(&mut inner, (10 << 3) | 2);
    pb_varint(&mut inner, 1 << 40);
    let model = Pb::default().uint(1, 8).bytes(7, &inner).0;
    assert!(onnx_strings(&model).is_err());
    // Varints of more than 64 bits; group wire types; field number 0.
    assert!(
        onnx_strings(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]).is_err()
    );
    assert!(onnx_strings(&[0x0b, 0x0c]).is_err());
    assert!(onnx_strings(&[0x02, 0x00]).is_err());
    assert!(onnx_strings(b"").is_err());
    // Subgraphs nested 500 deep.
    let mut graph = Pb::default().bytes(10, b"bottom");
    for _ in 0..500 {
        let attribute = Pb::default().msg(6, graph);
        graph = Pb::default().msg(1, Pb::default().msg(5, attribute));
    }
    let model = Pb::default().uint(1, 8).msg(7, graph).0;
    let err = onnx_strings(&model).unwrap_err();
    assert!(err.contains("nested deeper"), "{err}");
}

#[test]
fn onnx_detection() {
    let rejected: [&[u8]; 10] = [
        b"",
        b"hello world",
        b"# README\n\nsome text",
        b"{\"json\": true}",
        b"PK\x03\x04\x14\x00\x00\x00",
        b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94.",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR",
        b"\x08\x07", // an ir_version alone
        b"(\x05\x12\x01a",
        REF_NPY_OBJECT,
    ];
    for data in rejected {
        assert!(!is_onnx(data), "{data:?}");
    }
    assert!(!is_onnx(REF_GGUF));
    assert!(!is_onnx(REF_SAFETENSORS));
    // ir_version out of range.
    assert!(!is_onnx(
        &Pb::default().uint(1, 1000).msg(7, Pb::default()).0
    ));
    assert!(is_onnx(&Pb::default().uint(1, 3).msg(7, Pb::default()).0));
}

// --- .npy ------------------------------------------------------------------------------

fn npy_file(major: u8, header: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[major, 0]);
    if major == 1 {
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
    out
}

#[test]
fn npy_reference_files() {
    let f4 = npy_header(REF_NPY_F4).unwrap();
    assert_eq!(
        (f4.dtype.as_str(), f4.object, f4.data_offset),
        ("<f4", false, 128)
    );
    assert!(f4.header.starts_with("{'descr': '<f4'") && f4.header.ends_with('}'));

    let object = npy_header(REF_NPY_OBJECT).unwrap();
    assert_eq!((object.dtype.as_str(), object.object), ("|O", true));
    assert_eq!(REF_NPY_OBJECT[object.data_offset], 0x80); // the pickle's PROTO opcode

    let structured = npy_header(REF_NPY_STRUCT).unwrap();
    assert_eq!(structured.dtype, "[('name', '|O'), ('v', '<i4')]");
    assert!(structured.object);
    assert_eq!(REF_NPY_STRUCT[structured.data_offset], 0x80);
}

#[test]
fn npy_versions_and_dtypes() {
    for major in [1, 2, 3] {
        let file = npy_file(
            major,
            "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }\n",
            b"\x80\x02",
        );
        assert!(is_npy(&file));
        let header = npy_header(&file).unwrap();
        assert!(header.object);
        assert_eq!(&file[header.data_offset..], b"\x80\x02");
    }
    let cases = [
        ("{'descr': '<f8', 'shape': ()}", "<f8", false),
        ("{\"shape\": (3, 4), \"descr\": \"O\"}", "O", true),
        ("{'descr': 'object'}", "object", true),
        (
            "{'descr': [('O', '<f4'), ('b', [('c', '|O', (2,))])], 'shape': (1,)}",
            "[('O', '<f4'), ('b', [('c', '|O', (2,))])]",
            true,
        ),
        (
            "{'descr': [('O', '<f4'), (('title', 'n'), '|S5')]}",
            "[('O', '<f4'), (('title', 'n'), '|S5')]",
            false,
        ),
        ("{'descr': ('|O', (2, 2))}", "('|O', (2, 2))", true),
        ("{'descr': '<M8[ns]'}", "<M8[ns]", false),
    ];
    for (header, dtype, object) in cases {
        let parsed = npy_header(&npy_file(1, header, b"")).unwrap();
        assert_eq!(
            (parsed.dtype.as_str(), parsed.object),
            (dtype, object),
            "{header}"
        );
    }
}

#[test]
fn npy_malformed() {
    // Absurd header lengths.
    let mut file = npy_file(1, "{'descr': '<f4'}", b"");
    file[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
    assert!(npy_header(&file).unwrap_err().contains("past the end"));
    let mut file = npy_file(2, "{'descr': '<f4'}", b"");
    file[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(npy_header(&file).unwrap_err().contains("past the end"));
    // Truncated before the length, unknown version, not a dict, no descr, bad literals.
    assert!(npy_header(b"\x93NUMPY\x01\x00\x05").is_err());
    assert!(npy_header(b"\x93NUMPY").is_err());
    assert!(npy_header(&npy_file(1, "{'descr': '<f4'}", b"")[..]).is_ok());
    let mut file = npy_file(1, "{'descr': '<f4'}", b"");
    file[6] = 9;
    assert!(npy_header(&file).unwrap_err().contains("version 9.0"));
    for header in [
        "['descr', '<f4']",
        "{'shape': (1,)}",
        "{'descr': '<f4",
        "{'descr' '<f4'}",
        "{'descr': [('a', '<f4')",
        "{'descr': @}",
    ] {
        assert!(npy_header(&npy_file(1, header, b"")).is_err(), "{header}");
    }
    let deep = format!(
        "{{'shape': {}1{}, 'descr': '<f4'}}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    assert!(npy_header(&npy_file(2, &deep, b""))
        .unwrap_err()
        .contains("deeply"));
    assert!(!is_npy(b"\x93NUMP"));
    assert!(npy_header(b"plain text").is_err());
}

// Random and mutated input: `tests/robustness.rs`.
mod robustness;

#[test]
fn safetensors_keys_are_bounded_by_the_header_size() {
    // 60 levels of 10 kB keys, then an array of 100,000 strings: full keys would take 60 GB.
    let mut header = String::from("{\"__metadata__\": ");
    for i in 0..60 {
        header.push_str(&format!("{{\"{}{i}\": ", "k".repeat(10_000)));
    }
    header.push('[');
    header.push_str(&vec!["\"v\""; 100_000].join(","));
    header.push(']');
    header.push_str(&"}".repeat(61));
    let file = safetensors_file(&header, 0);
    let strings = safetensors_strings(&file, 100 << 20).unwrap();
    let values: Vec<_> = strings.iter().filter(|s| !s.is_key).collect();
    assert_eq!(values.len(), 100_000);
    let key_bytes: usize = strings.iter().map(|s| s.key.len()).sum();
    assert!(
        key_bytes < 2 * file.len() + (4 << 20),
        "{key_bytes} key bytes"
    );
    // Past the budget, a string keeps the last item of its path.
    assert_eq!(values[99_999].key, "[99999]");
}
