use super::*;
use crate::content::test_rng::XorShift;

// Files written by keras 3.15.1 (`model.save("m.h5")`, superblock 0, version 1 object headers,
// symbol table groups) and h5py 3.14.0; see fixtures/ai/make_fixtures.py.
const SECRET: &[u8] = include_bytes!("../../../../fixtures/ai/keras/secret_config.h5");
const LAMBDA: &[u8] = include_bytes!("../../../../fixtures/ai/keras/lambda.h5");
const CLEAN: &[u8] = include_bytes!("../../../../fixtures/ai/keras/clean.h5");

fn value<'a>(found: &'a Hdf5Strings, key: &str) -> &'a [u8] {
    let s = found.strings.iter().find(|s| s.key == key && !s.is_key);
    &s.unwrap_or_else(|| panic!("no {key}")).value
}

fn quiet(found: &Hdf5Strings) {
    assert!(found.malformed.is_empty(), "{:?}", found.malformed);
    assert!(found.skipped.is_empty(), "{:?}", found.skipped);
}

#[test]
fn a_keras_model_gives_its_attributes_with_keys_and_offsets() {
    let found = hdf5_strings(SECRET).unwrap();
    quiet(&found);
    for s in &found.strings {
        // No JSON escapes in these files: each value is where its offset says.
        assert_eq!(
            &SECRET[s.offset..s.offset + s.value.len()],
            &s.value[..],
            "{}",
            s.key
        );
    }
    let key = value(&found, "model_config.config.layers[1].config.wandb_api_key");
    assert_eq!(key.len(), 40);
    assert!(value(&found, "model_weights/hf_token").starts_with(b"hf_"));
    assert_eq!(value(&found, "keras_version"), b"3.15.1");
    assert_eq!(value(&found, "backend"), b"torch");
    assert_eq!(value(&found, "model_weights/layer_names[0]"), b"tagged");
    assert_eq!(
        value(&found, "model_weights/dense/weight_names[1]"),
        b"sequential_1/dense/bias"
    );
    // JSON keys are given as keys' names.
    assert!(found
        .strings
        .iter()
        .any(|s| s.is_key && s.value == b"wandb_api_key"));
    assert!(found.lambdas.is_empty());
}

#[test]
fn lambda_layers_of_the_model_config_are_found() {
    let found = hdf5_strings(LAMBDA).unwrap();
    quiet(&found);
    assert_eq!(found.lambdas.len(), 1);
    let at = found.lambdas[0];
    assert_eq!(&LAMBDA[at..at + keras::LAMBDA_TOKEN_LEN], b"\"Lambda\"");
    let clean = hdf5_strings(CLEAN).unwrap();
    quiet(&clean);
    assert!(clean.lambdas.is_empty());
    assert!(!clean.strings.is_empty());
}

#[test]
fn the_signature_is_looked_for_at_powers_of_two() {
    assert!(is_hdf5(CLEAN));
    let mut user_block = vec![b'u'; 1024];
    user_block.extend_from_slice(CLEAN);
    assert_eq!(superblock_offset(&user_block), Some(1024));
    let mut off = vec![0u8; 700];
    off.extend_from_slice(CLEAN);
    assert!(!is_hdf5(&off));
    assert!(!is_hdf5(b"\x89HDF\r\n\x1a"));
}

/// A file with a version 3 superblock (8-byte offsets and lengths) and a version 2 root object
/// header holding `messages`; `tail` is placed at byte [`TAIL`].
fn v3_file(messages: &[(u8, Vec<u8>)], tail: &[u8]) -> Vec<u8> {
    let mut d = b"\x89HDF\r\n\x1a\n\x03\x08\x08\x00".to_vec();
    d.extend_from_slice(&0u64.to_le_bytes()); // base
    d.extend_from_slice(&u64::MAX.to_le_bytes()); // no extension
    d.extend_from_slice(&0u64.to_le_bytes()); // end of file (not checked)
    d.extend_from_slice(&ROOT.to_le_bytes());
    d.extend_from_slice(&[0; 4]); // checksum (not checked)
    d.resize(ROOT as usize, 0);
    d.extend_from_slice(b"OHDR\x02\x02");
    let body: Vec<u8> = messages
        .iter()
        .flat_map(|(kind, data)| {
            let mut m = vec![*kind];
            m.extend_from_slice(&(data.len() as u16).to_le_bytes());
            m.push(0);
            m.extend_from_slice(data);
            m
        })
        .collect();
    d.extend_from_slice(&(body.len() as u32).to_le_bytes());
    d.extend_from_slice(&body);
    d.extend_from_slice(&[0; 4]);
    assert!(d.len() <= TAIL, "messages too long for the test layout");
    d.resize(TAIL, 0);
    d.extend_from_slice(tail);
    d
}

const ROOT: u64 = 56;
const TAIL: usize = 16384;

/// A version 3 attribute message.
fn attribute(name: &str, datatype: &[u8], dataspace: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = vec![3, 0];
    m.extend_from_slice(&(name.len() as u16 + 1).to_le_bytes());
    m.extend_from_slice(&(datatype.len() as u16).to_le_bytes());
    m.extend_from_slice(&(dataspace.len() as u16).to_le_bytes());
    m.push(0);
    m.extend_from_slice(name.as_bytes());
    m.push(0);
    m.extend_from_slice(datatype);
    m.extend_from_slice(dataspace);
    m.extend_from_slice(data);
    m
}

const VLEN_STRING: &[u8] = b"\x19\x01\x00\x00\x10\x00\x00\x00\x13\x00\x00\x00\x01\x00\x00\x00";
const SCALAR: &[u8] = b"\x02\x00\x00\x00";

fn simple(n: u64) -> Vec<u8> {
    let mut s = vec![2, 1, 0, 1];
    s.extend_from_slice(&n.to_le_bytes());
    s
}

/// Variable-length string elements: length, collection address, object index.
fn vlen(elements: &[(u32, u64, u32)]) -> Vec<u8> {
    elements
        .iter()
        .flat_map(|&(len, at, index)| {
            let mut e = len.to_le_bytes().to_vec();
            e.extend_from_slice(&at.to_le_bytes());
            e.extend_from_slice(&index.to_le_bytes());
            e
        })
        .collect()
}

/// A global heap collection of `size` bytes (as it says) holding `objects`.
fn collection(size: u64, objects: &[&[u8]]) -> Vec<u8> {
    let mut c = b"GCOL\x01\x00\x00\x00".to_vec();
    c.extend_from_slice(&size.to_le_bytes());
    for (i, o) in objects.iter().enumerate() {
        c.extend_from_slice(&(i as u16 + 1).to_le_bytes());
        c.extend_from_slice(&[1, 0, 0, 0, 0, 0]);
        c.extend_from_slice(&(o.len() as u64).to_le_bytes());
        c.extend_from_slice(o);
        c.resize(c.len().div_ceil(8) * 8, 0);
    }
    if size < 1 << 20 {
        c.resize(size as usize, 0); // free space to the end
    }
    c
}

#[test]
fn version_2_headers_with_variable_and_fixed_strings() {
    let json = br#"{"class_name": "Lambda", "config": {"api_key": "v"}}"#;
    let heap = collection(4096, &[b"hello", json]);
    let fixed = b"\x13\x00\x00\x00\x08\x00\x00\x00";
    let file = v3_file(
        &[
            (
                0x0c,
                attribute(
                    "greeting",
                    VLEN_STRING,
                    SCALAR,
                    &vlen(&[(5, TAIL as u64, 1)]),
                ),
            ),
            (
                0x0c,
                attribute(
                    "model_config",
                    VLEN_STRING,
                    SCALAR,
                    &vlen(&[(json.len() as u32, TAIL as u64, 2)]),
                ),
            ),
            (
                0x0c,
                attribute("names", fixed, &simple(2), b"abc\0\0\0\0\0defghijk"),
            ),
        ],
        &heap,
    );
    let found = hdf5_strings(&file).unwrap();
    quiet(&found);
    assert_eq!(value(&found, "greeting"), b"hello");
    assert_eq!(value(&found, "model_config.config.api_key"), b"v");
    assert_eq!(value(&found, "names[0]"), b"abc");
    assert_eq!(value(&found, "names[1]"), b"defghijk");
    assert_eq!(found.lambdas.len(), 1);
    for s in &found.strings {
        assert_eq!(&file[s.offset..s.offset + s.value.len()], &s.value[..]);
    }
}

#[test]
fn continuation_chunks_are_followed_once() {
    // The root header continues at TAIL, whose chunk continues at TAIL again: a cycle.
    let mut cont = (TAIL as u64).to_le_bytes().to_vec();
    cont.extend_from_slice(&64u64.to_le_bytes());
    let mut chunk = b"OCHK".to_vec();
    chunk.push(0x10);
    chunk.extend_from_slice(&(cont.len() as u16).to_le_bytes());
    chunk.push(0);
    chunk.extend_from_slice(&cont);
    chunk.resize(64, 0);
    let file = v3_file(&[(0x10, cont)], &chunk);
    let found = hdf5_strings(&file).unwrap();
    assert_eq!(found.malformed.len(), 1, "{:?}", found.malformed);
    assert!(found.malformed[0].contains("repeat"));
}

#[test]
fn lying_heaps_and_counts_are_warned_about() {
    // A collection that says 1 TB, an element longer than its heap object, a dataspace of
    // 2^60 elements over a few bytes of data.
    let heap = collection(1 << 40, &[b"hello"]);
    let file = v3_file(
        &[
            (
                0x0c,
                attribute("a", VLEN_STRING, SCALAR, &vlen(&[(999, TAIL as u64, 1)])),
            ),
            (
                0x0c,
                attribute(
                    "b",
                    VLEN_STRING,
                    &simple(1 << 60),
                    &vlen(&[(5, TAIL as u64, 1)]),
                ),
            ),
            (
                0x0c,
                attribute("c", VLEN_STRING, SCALAR, &vlen(&[(5, TAIL as u64, 9)])),
            ),
        ],
        &heap,
    );
    let found = hdf5_strings(&file).unwrap();
    assert_eq!(value(&found, "a"), b"hello");
    assert_eq!(value(&found, "b[0]"), b"hello");
    let all = found.malformed.join("\n");
    for what in [
        "past the end of the file",
        "in a heap object of 5",
        "holds 1 elements",
        "missing",
    ] {
        assert!(all.contains(what), "{what}: {all}");
    }
    // No message quotes the file's content.
    assert!(!all.contains("hello") && !all.contains("\"a\""));
}

#[test]
fn one_heap_object_given_many_times_is_bounded() {
    let big = vec![b'x'; 3000];
    let heap = collection(4096, &[&big]);
    let n = 200;
    let elements = vlen(&vec![(3000, TAIL as u64, 1); n]);
    let file = v3_file(
        &[(
            0x0c,
            attribute("a", VLEN_STRING, &simple(n as u64), &elements),
        )],
        &heap,
    );
    let found = hdf5_strings(&file).unwrap();
    let given: usize = found.strings.iter().map(|s| s.value.len()).sum();
    assert!(given as u64 <= file.len() as u64 + (1 << 20));
    assert!(found.skipped.is_empty() || found.skipped[0].contains("attribute strings"));
    // Past the budget (a 1 MiB allowance and the file's size) it stops with a warning.
    let n = 600;
    let elements = vlen(&vec![(3000, TAIL as u64, 1); n]);
    let file = v3_file(
        &[(
            0x0c,
            attribute("a", VLEN_STRING, &simple(n as u64), &elements),
        )],
        &heap,
    );
    let found = hdf5_strings(&file).unwrap();
    assert_eq!(found.skipped.len(), 1, "{:?}", found.skipped);
    assert!(found.strings.len() < n);
}

#[test]
fn broken_superblocks_are_errors() {
    for cut in [8, 9, 16, 40, 90] {
        assert!(hdf5_strings(&CLEAN[..cut]).is_err(), "{cut}");
    }
    let mut bad = CLEAN.to_vec();
    bad[13] = 3; // size of offsets
    assert!(hdf5_strings(&bad).unwrap_err().contains("sizes of offsets"));
    bad[8] = 7;
    assert!(hdf5_strings(&bad).unwrap_err().contains("version 7"));
}

#[test]
fn every_truncation_and_random_damage_finishes_without_panic() {
    for cut in 0..SECRET.len() {
        let _ = hdf5_strings(&SECRET[..cut]);
    }
    let mut rng = XorShift(0x4844_4635);
    for _ in 0..3000 {
        let mut d = SECRET.to_vec();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(d.len());
            d[at] = rng.next() as u8;
        }
        if let Ok(found) = hdf5_strings(&d) {
            let given: usize = found.strings.iter().map(|s| s.value.len()).sum();
            assert!(given <= 2 * (d.len() + (1 << 20)));
        }
    }
}

/// A version 1 link message: a hard link named `name` to `to`.
fn link(name: &str, to: u64) -> Vec<u8> {
    let mut m = vec![1, 0, name.len() as u8];
    m.extend_from_slice(name.as_bytes());
    m.extend_from_slice(&to.to_le_bytes());
    m
}

#[test]
fn links_back_to_a_group_are_read_once() {
    let heap = collection(64, &[b"hello"]);
    let file = v3_file(
        &[
            (0x06, link("self", ROOT)),
            (0x06, link("again", ROOT)),
            (
                0x0c,
                attribute("a", VLEN_STRING, SCALAR, &vlen(&[(5, TAIL as u64, 1)])),
            ),
        ],
        &heap,
    );
    let found = hdf5_strings(&file).unwrap();
    quiet(&found);
    assert_eq!(found.strings.len(), 1);
    assert_eq!(found.strings[0].key, "a");
}

#[test]
fn dense_storage_is_said_to_be_unread() {
    // Attribute info: version 0, no creation order, a fractal heap address, a B-tree address.
    let mut info = vec![0, 0];
    info.extend_from_slice(&(TAIL as u64).to_le_bytes());
    info.extend_from_slice(&u64::MAX.to_le_bytes());
    let file = v3_file(&[(0x15, info.clone()), (0x15, info)], b"FRHP");
    let found = hdf5_strings(&file).unwrap();
    assert_eq!(found.skipped.len(), 1, "{:?}", found.skipped);
    assert!(found.skipped[0].contains("attributes in dense storage"));
    assert!(found.malformed.is_empty());
}

#[test]
fn deep_json_paths_over_many_values_are_bounded() {
    // 100 keys of 1,000 bytes nest 20,000 values: a 100 kB path for each would be 2 GB of keys.
    let k = "k".repeat(1000);
    let mut json = format!("{{\"{k}\": ").repeat(100);
    json.push('[');
    json.push_str(&vec!["\"a\""; 20_000].join(","));
    json.push(']');
    json.push_str(&"}".repeat(100));
    let heap = collection(json.len() as u64 + 64, &[json.as_bytes()]);
    let element = vlen(&[(json.len() as u32, TAIL as u64, 1)]);
    let file = v3_file(
        &[(0x0c, attribute("cfg", VLEN_STRING, SCALAR, &element))],
        &heap,
    );
    let found = hdf5_strings(&file).unwrap();
    let keys: usize = found.strings.iter().map(|s| s.key.len()).sum();
    assert!(keys as u64 <= file.len() as u64 + (1 << 20), "{keys}");
    assert_eq!(found.skipped.len(), 1, "{:?}", found.skipped);
    assert!(found.skipped[0].contains("JSON keys"));
}

#[test]
fn addresses_are_relative_to_the_superblock_after_a_user_block() {
    let plain = hdf5_strings(SECRET).unwrap();
    let mut with_block = vec![b'u'; 512];
    with_block.extend_from_slice(SECRET);
    let found = hdf5_strings(&with_block).unwrap();
    quiet(&found);
    assert_eq!(found.strings.len(), plain.strings.len());
    for (a, b) in found.strings.iter().zip(&plain.strings) {
        assert_eq!(
            (&a.key, &a.value, a.offset),
            (&b.key, &b.value, b.offset + 512)
        );
    }
}

#[test]
fn many_broken_attributes_give_few_warnings() {
    let broken = (0x0c, vec![9u8; 8]); // attribute message version 9
    let file = v3_file(&vec![broken; 500], b"");
    let found = hdf5_strings(&file).unwrap();
    assert_eq!(found.malformed.len(), MAX_WARNINGS + 1);
    assert_eq!(found.malformed[MAX_WARNINGS], "480 more broken structures");
}
