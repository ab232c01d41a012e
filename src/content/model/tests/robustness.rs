//! Random and mutated input never panics, and strings sit at their offsets.

use super::*;
use crate::content::test_rng::XorShift;

/// Runs every function on `data`; raw-format strings must sit at their offsets.
fn run_all(data: &[u8]) {
    let _ = is_safetensors(data);
    if let Ok(strings) = safetensors_strings(data, 1 << 20) {
        assert!(strings.iter().all(|s| s.offset < data.len()));
    }
    let _ = is_gguf(data);
    if let Ok((strings, _)) = gguf_strings(data, &GgufLimits::default()) {
        assert_offsets(data, &strings);
    }
    let _ = is_onnx(data);
    if let Ok(strings) = onnx_strings(data) {
        assert_offsets(data, &strings);
    }
    let _ = is_npy(data);
    if let Ok(header) = npy_header(data) {
        assert!(header.data_offset <= data.len());
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let prefixes: [&[u8]; 8] = [
        b"",
        b"GGUF\x03\x00\x00\x00",
        b"GGUF\x01\x00\x00\x00\x02\x00\x00\x00",
        b"\x93NUMPY\x01\x00",
        b"\x93NUMPY\x02\x00",
        b"\x40\x00\x00\x00\x00\x00\x00\x00{\"",
        b"\x08\x07\x3a",
        b"\x08\x07\x72",
    ];
    for i in 0..2000 {
        let mut data = prefixes[i % prefixes.len()].to_vec();
        let len = rng.below(300);
        data.extend((0..len).map(|_| rng.next() as u8));
        run_all(&data);
    }
}

#[test]
fn mutated_files_never_panic() {
    let seeds = [
        REF_SAFETENSORS.to_vec(),
        REF_GGUF.to_vec(),
        REF_ONNX.to_vec(),
        REF_NPY_F4.to_vec(),
        REF_NPY_OBJECT.to_vec(),
        REF_NPY_STRUCT.to_vec(),
        safetensors_file(
            r#"{"__metadata__":{"token":"a\u00e9\"b"},"t":{"dtype":"F32"}}"#,
            8,
        ),
        sample_gguf(3, false),
        sample_gguf(1, false),
        sample_gguf(3, true),
        sample_onnx(),
        {
            // The sample model without its big initializer, so mutations hit structure.
            let graph = Pb::default()
                .msg(
                    1,
                    Pb::default()
                        .bytes(6, b"d")
                        .msg(5, Pb::default().msg(6, Pb::default().bytes(10, b"g"))),
                )
                .bytes(10, b"graph doc");
            Pb::default()
                .uint(1, 9)
                .bytes(6, b"doc")
                .msg(7, graph)
                .entry(14, "k", "v")
                .0
        },
    ];
    let mut rng = XorShift(0x0123_4567_89AB_CDEF);
    for seed in &seeds {
        for _ in 0..2000 {
            let mut data = seed.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(data.len());
                match rng.below(6) {
                    0 if !data.is_empty() => data[at] ^= 1 << rng.below(8),
                    1 if !data.is_empty() => data[at] = [0x00, 0xff, 0x80, 0x7f][rng.below(4)],
                    2 => data.truncate(at),
                    3 => {
                        let end = (at + 8).min(data.len());
                        data[at..end].fill(0xff);
                    }
                    4 => {
                        let byte = rng.next() as u8;
                        data.insert(at, byte);
                    }
                    _ => {
                        let end = (at + 1 + rng.below(16)).min(data.len());
                        let copy = data[at..end].to_vec();
                        data.splice(at..at, copy);
                    }
                }
            }
            run_all(&data);
        }
    }
}
