//! Keys of every key/value structure, and joblib arrays skipped (objects.rs, joblib.rs).

use std::time::{Duration, Instant};

use super::*;

// Test vectors from CPython 3.11 `pickle.dumps` (dumped, never loaded); classes in module `m`.
/// An object whose `__dict__` holds `aws_secret_access_key`, protocol 0 (`copy_reg`, `DICT`,
/// `SETITEM`, `BUILD`) and 2 (`NEWOBJ`, `SETITEMS`, `BUILD`).
const CREDS_P0: &[u8] = b"ccopy_reg\x0a_reconstructor\x0ap0\x0a(cm\x0aCreds\x0ap1\x0ac__builtin__\x0aobject\x0ap2\x0aNtp3\x0aRp4\x0a(dp5\x0aVregion\x0ap6\x0aVeu\x0ap7\x0asVaws_secret_access_key\x0ap8\x0aVS1\x0ap9\x0asb.";
const CREDS_P2: &[u8] = b"\x80\x02cm\x0aCreds\x0aq\x00)\x81q\x01}q\x02(X\x06\x00\x00\x00regionq\x03X\x02\x00\x00\x00euq\x04X\x15\x00\x00\x00aws_secret_access_keyq\x05X\x02\x00\x00\x00S1q\x06ub.";
/// A `__slots__` object: its state is `(None, {"token": "S2", "n": 1})`.
const SLOTS_P2: &[u8] = b"\x80\x02cm\x0aSlots\x0aq\x00)\x81q\x01N}q\x02(X\x05\x00\x00\x00tokenq\x03X\x02\x00\x00\x00S2q\x04X\x01\x00\x00\x00nq\x05K\x01u\x86q\x06b.";
/// `__getnewargs_ex__` giving the keyword argument `api_key="S3"` to `NEWOBJ_EX`.
const KW_P4: &[u8] = b"\x80\x04\x95+\x00\x00\x00\x00\x00\x00\x00\x8c\x01m\x94\x8c\x02Kw\x94\x93\x94)}\x94\x8c\x07api_key\x94\x8c\x02S3\x94s\x92\x94}\x94\x8c\x01x\x94K\x01sb.";
/// `__reduce__` returning `(dict, ([("openai_api_key", "S4"), ("n", 1)],))`.
const PAIRS_P2: &[u8] = b"\x80\x02c__builtin__\x0adict\x0aq\x00]q\x01(X\x0e\x00\x00\x00openai_api_keyq\x02X\x02\x00\x00\x00S4q\x03\x86q\x04X\x01\x00\x00\x00nq\x05K\x01\x86q\x06e\x85q\x07Rq\x08.";
/// `__reduce__` returning `(OrderedDict, ((("hf_token", "S5"),),))`, protocol 0.
const OD_TUPLE_P0: &[u8] = b"ccollections\x0aOrderedDict\x0ap0\x0a(((Vhf_token\x0ap1\x0aVS5\x0ap2\x0atp3\x0atp4\x0atp5\x0aRp6\x0a.";
/// Hand-made as Python 2.7 pickles `OrderedDict([("hf_token", "S6"), ("n", 1)])` at protocol
/// 2: a list of 2-lists given to `REDUCE`.
const OD_PY2: &[u8] = b"\x80\x02ccollections\nOrderedDict\nq\x00]q\x01(]q\x02(U\x08hf_tokenq\x03U\x02S6q\x04e]q\x05(U\x01nq\x06K\x01ee\x85q\x07Rq\x08.";

fn run(data: &[u8]) -> PickleReport {
    analyze(data, &PickleLimits::default())
}

/// (value, key) of every recorded string that has a key.
fn keyed(report: &PickleReport) -> Vec<(String, String)> {
    report
        .strings
        .iter()
        .filter_map(|s| {
            let value = String::from_utf8_lossy(&s.value).into_owned();
            Some((value, s.key.as_deref()?.to_string()))
        })
        .collect()
}

fn pairs(want: &[(&str, &str)]) -> Vec<(String, String)> {
    want.iter()
        .map(|(v, k)| (v.to_string(), k.to_string()))
        .collect()
}

#[test]
fn every_key_value_structure_gives_its_key() {
    // `DICT` with its items inside the mark, as protocol 0/1 allow (CPython itself writes an
    // empty DICT then SETITEMs).
    let dict = b"(VWANDB_API_KEY\np0\nVS0\np1\nVn\nI1\nd.";
    type Case<'a> = (&'a [u8], &'a [(&'a str, &'a str)]);
    let cases: [Case; 8] = [
        (dict, &[("S0", "WANDB_API_KEY")]),
        (
            CREDS_P0,
            &[("eu", "region"), ("S1", "aws_secret_access_key")],
        ),
        (
            CREDS_P2,
            &[("eu", "region"), ("S1", "aws_secret_access_key")],
        ),
        (SLOTS_P2, &[("S2", "token")]),
        (KW_P4, &[("S3", "api_key")]),
        (PAIRS_P2, &[("S4", "openai_api_key")]),
        (OD_TUPLE_P0, &[("S5", "hf_token")]),
        (OD_PY2, &[("S6", "hf_token")]),
    ];
    for (data, want) in cases {
        let report = run(data);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(keyed(&report), pairs(want), "{}", data.escape_ascii());
    }
    // The value's location is its opcode.
    let report = run(CREDS_P0);
    let s1 = report.strings.iter().find(|s| s.value == b"S1").unwrap();
    let at = CREDS_P0.windows(4).position(|w| w == b"VS1\n").unwrap();
    assert_eq!(s1.offset, at);
}

#[test]
fn a_key_is_given_once_and_lists_of_pairs_are_taken_once() {
    // A value already under a key keeps it when a later structure holds it too.
    let data = b"\x80\x02}(X\x01\x00\x00\x00aX\x01\x00\x00\x00vq\x00uc__builtin__\ndict\n]((X\x01\x00\x00\x00bh\x00te\x85R.";
    let report = run(data);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(keyed(&report), pairs(&[("v", "a")]));
    // One memoized list of 100,000 pairs reduced 100,000 times: linear, not quadratic.
    let mut data = b"\x80\x02c__builtin__\ndict\nq\x00]q\x01(".to_vec();
    for _ in 0..100_000 {
        data.extend(b"X\x01\x00\x00\x00kX\x01\x00\x00\x00v\x86");
    }
    data.push(b'e');
    for _ in 0..100_000 {
        data.extend(b"h\x00h\x01\x85R0");
    }
    data.extend(b"N.");
    let start = Instant::now();
    let report = run(&data);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(report.errors.is_empty(), "{:?}", &report.errors[..1]);
    assert_eq!(
        report.strings.iter().filter(|s| s.key.is_some()).count(),
        100_000
    );
}

#[test]
fn self_referencing_lists_and_dicts_do_not_panic() {
    // `l.append(l)`, a dict stored under itself, a tuple holding both, reduced by `dict`.
    let data = b"\x80\x02]q\x00h\x00a}q\x01X\x05\x00\x00\x00shapeh\x01sh\x00h\x01\x86q\x02c__builtin__\ndict\nh\x02\x85R.";
    let report = run(data);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

// --- joblib

/// Pushes a short string (`SHORT_BINUNICODE`).
fn s(out: &mut Vec<u8>, text: &str) {
    out.push(0x8c);
    out.push(text.len() as u8);
    out.extend(text.as_bytes());
}

/// `numpy.dtype(typestr, False, True)` and its BUILD state with `elsize` and `flags`
/// (`J` 4-byte ints; a longer `elsize` is given as raw `LONG1` bytes).
fn dtype(out: &mut Vec<u8>, typestr: &str, elsize: &[u8], flags: u8) {
    s(out, "numpy");
    s(out, "dtype");
    out.push(0x93);
    s(out, typestr);
    out.extend(b"\x89\x88\x87R(K\x03");
    s(out, "<");
    out.extend(b"NNN");
    out.extend(elsize);
    out.extend(b"J\xff\xff\xff\xff");
    out.extend([b'K', flags]);
    out.extend(b"tb");
}

/// A joblib-style stream as `joblib.dump({"a": array, "after": secret})` writes it: the wrapper
/// (its shape given by the opcodes `shape`), `tail` right after its `BUILD` (the array), then
/// the string `after`.
fn joblib(
    shape: &[u8],
    typestr: &str,
    elsize: &[u8],
    flags: u8,
    align: bool,
    tail: &[u8],
) -> Vec<u8> {
    let mut out = b"\x80\x04}(".to_vec();
    s(&mut out, "a");
    s(&mut out, "joblib.numpy_pickle");
    s(&mut out, "NumpyArrayWrapper");
    out.extend(b"\x93\x94)\x81}(");
    s(&mut out, "subclass");
    s(&mut out, "numpy");
    s(&mut out, "ndarray");
    out.push(0x93);
    s(&mut out, "shape");
    out.extend(shape);
    s(&mut out, "order");
    s(&mut out, "F");
    s(&mut out, "dtype");
    dtype(&mut out, typestr, elsize, flags);
    if align {
        s(&mut out, "numpy_array_alignment_bytes");
        out.extend(b"K\x10");
    }
    out.extend(b"ub");
    out.extend(tail);
    s(&mut out, "after");
    s(&mut out, "WANDB_API_KEY=abc");
    out.extend(b"u.");
    out
}

const NO_SIZE: &[u8] = b"J\xff\xff\xff\xff";

fn after_found(report: &PickleReport) -> bool {
    report
        .strings
        .iter()
        .any(|s| s.value == b"WANDB_API_KEY=abc" && s.key.as_deref() == Some("after"))
}

#[test]
fn joblib_arrays_are_skipped_and_the_walk_goes_on() {
    // float32 (3, 4) with padding; (2, 3) of U2 (8 bytes each, from the state's elsize); an
    // old-joblib array without padding; a 0-d array; an empty one; a LONG1 dimension.
    let f32 = [&[5u8][..], &[0xff; 5], &[0x4e; 48]].concat();
    // (shape opcodes, typestr, elsize opcode, padded, the bytes after BUILD)
    type Case<'a> = (&'a [u8], &'a str, &'a [u8], bool, Vec<u8>);
    let cases: [Case; 6] = [
        (b"K\x03K\x04\x86", "f4", NO_SIZE, true, f32),
        (
            b"K\x02K\x03\x86",
            "U2",
            b"K\x08",
            true,
            [vec![0], vec![b'N'; 48]].concat(),
        ),
        (b"K\x03\x85", "i8", NO_SIZE, false, vec![b'('; 24]),
        (
            b")",
            "c16",
            NO_SIZE,
            true,
            [vec![2, b'N', b'N'], vec![b'.'; 16]].concat(),
        ),
        (b"K\x00K\x04\x86", "f8", NO_SIZE, true, vec![0]),
        (
            b"\x8a\x02\x00\x01\x85",
            "u1",
            NO_SIZE,
            true,
            [vec![0], vec![b'a'; 256]].concat(),
        ),
    ];
    for (shape, typestr, elsize, align, tail) in cases {
        let data = joblib(shape, typestr, elsize, 0, align, &tail);
        let report = run(&data);
        assert!(report.errors.is_empty(), "{typestr}: {:?}", report.errors);
        assert!(after_found(&report), "{typestr}");
        assert_eq!(report.pickles, 1);
    }
    // An object array is a nested pickle: its strings are read, then the outer walk goes on.
    let nested = b"\x80\x05\x8c\x0bhf_in_arrayN\x86.";
    let data = joblib(b"K\x01\x85", "O8", NO_SIZE, 63, true, nested);
    let report = run(&data);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.strings.iter().any(|s| s.value == b"hf_in_array"));
    assert!(after_found(&report));
    // A structured dtype with an object field is one too (flags bit 0).
    let data = joblib(b"K\x01\x85", "V16", b"K\x10", 1, true, nested);
    assert!(run(&data).errors.is_empty());
}

#[test]
fn real_joblib_files_walk_cleanly() {
    for data in [
        &include_bytes!("../../../fixtures/ai/joblib/dtypes.joblib")[..],
        include_bytes!("../../../fixtures/ai/joblib/model_p0.joblib"),
        include_bytes!("../../../fixtures/ai/joblib/model_p5.joblib"),
        include_bytes!("../../../fixtures/ai/numpy/benign.joblib"),
    ] {
        let report = run(data);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(!report.truncated);
        assert_eq!(report.pickles, 1);
    }
    // The last string of the dict comes after every array.
    let report = run(include_bytes!(
        "../../../fixtures/ai/joblib/model_p2.joblib"
    ));
    assert_eq!(report.strings.last().unwrap().value, b"tiny-logreg");
}

/// Hostile wrappers: each ends quickly with an error that names the problem, and no string of
/// the data is quoted in it.
#[test]
fn hostile_wrappers_stop_with_a_warning() {
    let deep = [vec![b')'], vec![0x85; 100_000]].concat();
    let cases: [(Vec<u8>, &str, &[u8], &str); 8] = [
        // 2^62 × 2^62 elements.
        (
            b"\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40\x86"
                .to_vec(),
            "f4",
            NO_SIZE,
            "overflows",
        ),
        // A trillion float64: 8 TB announced, a few bytes there.
        (
            b"\x8a\x06\x00\x10\xa5\xd4\xe8\x00\x85".to_vec(),
            "f8",
            NO_SIZE,
            "bytes, ",
        ),
        (
            b"J\xff\xff\xff\xff\x85".to_vec(),
            "f4",
            NO_SIZE,
            "negative dimension",
        ),
        // An itemsize of 2^62 bytes over 8 elements.
        (
            b"K\x08\x85".to_vec(),
            "V4",
            b"\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40",
            "overflow",
        ),
        (
            b"K\x02\x85".to_vec(),
            "V4",
            b"\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40",
            "bytes, ",
        ),
        // A shape nested 100,000 tuples deep, a shape that is a string, an unknown dtype.
        (deep, "f4", NO_SIZE, "not an integer"),
        (b"\x8c\x02xy".to_vec(), "f4", NO_SIZE, "not a tuple"),
        (b"K\x02\x85".to_vec(), "Z9", NO_SIZE, "dtype is unknown"),
    ];
    for (shape, typestr, elsize, want) in cases {
        let data = joblib(&shape, typestr, elsize, 0, true, &[0; 16]);
        let start = Instant::now();
        let report = run(&data);
        assert!(start.elapsed() < Duration::from_secs(5), "{want}");
        assert_eq!(report.errors.len(), 1, "{want}: {:?}", report.errors);
        let error = &report.errors[0];
        assert!(
            error.contains("NumpyArrayWrapper") && error.contains(want),
            "{error}"
        );
        assert!(!error.contains("WANDB"), "{error}");
    }
    // The wrapper's BUILD ends the data: no padding byte.
    let mut data = joblib(b"K\x02\x85", "f4", NO_SIZE, 0, true, b"");
    data.truncate(data.len() - 2 - 7 - 19);
    let report = run(&data);
    assert!(report.errors[0].contains("ends before the array's padding byte"));
    // Padding that runs past the end.
    let data = joblib(b"K\x00\x85", "f4", NO_SIZE, 0, true, b"");
    let cut = data.len() - 2 - 7 - 19;
    let report = run(&[&data[..cut], &[200]].concat());
    assert!(report.errors[0].contains("takes 201 bytes, 1 are left"));
    // A nested object pickle cut short, and one that never stops: the stream ends inside.
    let data = joblib(b"K\x01\x85", "O8", NO_SIZE, 63, true, b"\x80\x05(((");
    assert!(run(&data).truncated);
}

#[test]
fn deep_tuples_and_wrappers_in_nested_pickles_stay_bounded() {
    // Ten million TUPLE1s: one tuple chain, opaque past the depth limit, dropped without
    // recursion.
    let mut data = b"\x80\x04)".to_vec();
    data.extend(std::iter::repeat_n(0x85, 10_000_000));
    data.push(b'.');
    let start = Instant::now();
    let report = run(&data);
    assert!(start.elapsed() < Duration::from_secs(30));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    // A wrapper inside an object array's nested pickle is not followed by an array (a plain
    // unpickler reads it): no recursion, the nested walk reads opcodes on.
    let inner = joblib(b"K\x01\x85", "f4", NO_SIZE, 0, true, b"");
    let inner = &inner[..inner.len() - 2 - 7 - 19];
    let nested = [inner, b"0."].concat();
    let data = joblib(b"K\x01\x85", "O8", NO_SIZE, 63, true, &nested);
    let report = run(&data);
    assert!(
        report
            .errors
            .iter()
            .all(|e| !e.contains("NumpyArrayWrapper")),
        "{:?}",
        report.errors
    );
}
