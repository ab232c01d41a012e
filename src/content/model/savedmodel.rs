//! TensorFlow SavedModel files: `saved_model.pb` (a `SavedModel` protobuf:
//! saved_model_schema_version(1), meta_graphs(2)) and `keras_metadata.pb` (tf_keras's
//! `SavedMetadata`: nodes(1), each a `SavedObject` with node_id(2), node_path(3),
//! identifier(4), metadata(5) (JSON), version(6)).
//!
//! Neither has a magic number, so each is recognised by the shape of its first fields (see
//! [`is_saved_model`] and [`is_keras_metadata`]), a test that reads only the first bytes (so
//! that the head of a large archive member is enough) and that ONNX models, text and ordinary
//! binary files fail. A graph is read without its schema ([`StringWalk`]): every string, with
//! the key of the map entries above it (a node attribute's name, a signature's name). A Keras
//! node's metadata is read as JSON, each string under `<node_path>.<json path>`, and its
//! `Lambda` layers are reported (as for a `.keras` archive's `config.json`).

use super::keras::lambda_class_offsets;
use super::MetaString;
use crate::content::protobuf::{ProtoMessage, ProtoValue, StringWalk, WALK_MAX_DEPTH};

/// Fields of a first message checked before deciding.
const SNIFF_FIELDS: usize = 16;

/// Strings kept from one file.
const MAX_STRINGS: usize = 1_000_000;

/// What reading a SavedModel file gave.
#[derive(Debug, Default)]
pub struct SavedModelStrings {
    /// The strings, offsets in the file.
    pub strings: Vec<MetaString>,
    /// Offsets of Keras `"Lambda"` class names (keras_metadata.pb).
    pub lambdas: Vec<usize>,
    /// Damage met (the reading kept what came before it).
    pub malformed: Vec<String>,
    /// A limit met.
    pub limited: Option<String>,
}

/// The message that starts at `data[at..]` with a length-delimited tag: its payload's range,
/// cut at the end of `data` (the head of a larger file).
fn first_payload(data: &[u8], tag: u8, at: usize) -> Option<(usize, usize)> {
    if data.get(at) != Some(&tag) {
        return None;
    }
    let mut message = ProtoMessage::range(data, at + 1, data.len());
    let len = message.varint()?;
    let start = message.pos;
    let end = usize::try_from(len).ok()?.saturating_add(start);
    Some((start, end.min(data.len())))
}

/// Whether the payload of the field whose tag is at `at` runs past the end of `data`.
fn cut(data: &[u8], at: usize) -> bool {
    let mut message = ProtoMessage::range(data, at + 1, data.len());
    let len = message.varint().unwrap_or(0);
    len > (data.len() - message.pos.min(data.len())) as u64
}

/// Whether the fields at `data[start..end]` are all `allowed` (number, wire type 0 varint /
/// 2 length-delimited) for up to [`SNIFF_FIELDS`] fields, at least `min` of them; a field
/// cut by the end of `data` ends the check (and counts when its tag is allowed). `each` sees
/// every length-delimited field.
fn fields_allowed(
    data: &[u8],
    (start, end): (usize, usize),
    min: usize,
    allowed: &dyn Fn(u64, bool) -> bool,
    each: &mut dyn FnMut(u64, &[u8]),
) -> bool {
    let mut message = ProtoMessage::range(data, start, end);
    let mut seen = 0;
    for _ in 0..SNIFF_FIELDS {
        let at = message.pos;
        match message.next_field() {
            Ok(Some((number, ProtoValue::Varint(_)))) if allowed(number, false) => {}
            Ok(Some((number, ProtoValue::Bytes { bytes, .. }))) if allowed(number, true) => {
                each(number, bytes);
            }
            Ok(None) => break,
            // A field cut by the end of the data read so far (the head of a larger file): its
            // tag counts.
            Err(_) if end == data.len() => {
                let mut tag = ProtoMessage::range(data, at, end);
                let cut_ok = tag
                    .varint()
                    .is_some_and(|t| t & 7 == 2 && allowed(t >> 3, true));
                return cut_ok && seen + 1 >= min;
            }
            _ => return false,
        }
        seen += 1;
    }
    seen >= min
}

/// Whether `data` starts like a `saved_model.pb`: `saved_model_schema_version` (field 1,
/// varint) equal to 1 as the first field, then a `meta_graphs` entry (field 2) whose first
/// fields (at least two, or one cut by the end of a head that ends inside the entry) are
/// `MetaGraphDef` fields 1 to 7, all length-delimited. An ONNX model
/// (field 1 is its `ir_version`, field 2 its producer name, text) fails at the producer name.
pub fn is_saved_model(data: &[u8]) -> bool {
    if !data.starts_with(&[0x08, 0x01]) {
        return false;
    }
    let Some(range) = first_payload(data, 0x12, 2) else {
        return false;
    };
    // The head of a large file may cut the first field (meta_info_def) short: one then does.
    let min = if cut(data, 2) { 1 } else { 2 };
    fields_allowed(
        data,
        range,
        min,
        &|n, bytes| bytes && (1..=7).contains(&n),
        &mut |_, _| {},
    )
}

/// Whether `data` starts like tf_keras's `keras_metadata.pb`: a first `nodes` entry (field 1)
/// whose first fields are `SavedObject` fields (node_id varint; node_path, identifier,
/// metadata, version length-delimited) and whose `identifier` starts with `_tf_keras_`.
pub fn is_keras_metadata(data: &[u8]) -> bool {
    let Some(range) = first_payload(data, 0x0a, 0) else {
        return false;
    };
    let mut keras = false;
    let allowed = |n: u64, bytes: bool| if bytes { (3..=6).contains(&n) } else { n == 2 };
    let shaped = fields_allowed(data, range, 2, &allowed, &mut |n, bytes| {
        keras |= n == 4 && bytes.starts_with(b"_tf_keras_");
    });
    shaped && keras
}

/// The strings of a `saved_model.pb`, every field read without its schema (key `saved_model`,
/// or the names of the map entries above a string). Damage stops the reading at the
/// top-level field it is in (what came before is kept).
pub fn saved_model_strings(data: &[u8]) -> SavedModelStrings {
    let mut walk = StringWalk::new(MAX_STRINGS);
    let mut out = SavedModelStrings::default();
    let mut message = ProtoMessage::new(data);
    loop {
        match message.next_field() {
            Ok(Some((_, ProtoValue::Bytes { offset, bytes }))) => {
                walk.payload(&message, offset, bytes, "saved_model", 0);
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                out.malformed
                    .push(format!("SavedModel: {e}; the rest is not read"));
                break;
            }
        }
    }
    finish(walk, out)
}

/// The strings of a `keras_metadata.pb`: each node's metadata JSON under its node path (its
/// object keys as keys' names), its other fields under `nodes`, and the offsets of `Lambda`
/// layers in the JSON.
pub fn keras_metadata_strings(data: &[u8]) -> SavedModelStrings {
    let mut walk = StringWalk::new(MAX_STRINGS);
    let mut out = SavedModelStrings::default();
    let mut message = ProtoMessage::new(data);
    loop {
        match message.next_field() {
            Ok(Some((1, ProtoValue::Bytes { offset, bytes }))) => {
                let node = message.nested(offset, bytes);
                if let Err(e) = saved_object(&mut walk, node, &mut out.lambdas) {
                    out.malformed
                        .push(format!("Keras metadata node at byte {offset}: {e}"));
                    walk.payload(&message, offset, bytes, "nodes", 1);
                }
            }
            Ok(Some((_, ProtoValue::Bytes { offset, bytes }))) => {
                walk.payload(&message, offset, bytes, "keras_metadata", 0);
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                out.malformed
                    .push(format!("Keras metadata: {e}; the rest is not read"));
                break;
            }
        }
    }
    finish(walk, out)
}

/// One `SavedObject`: node_path(3) names it; metadata(5) is JSON (kept as it stands when it
/// is not); identifier(4) and other payloads go under the path.
fn saved_object(
    walk: &mut StringWalk,
    node: ProtoMessage<'_>,
    lambdas: &mut Vec<usize>,
) -> Result<(), String> {
    let mark = walk.out.len();
    let mut path = String::from("nodes");
    let mut scan = node.clone();
    while let Some((number, value)) = scan.next_field()? {
        if let (3, ProtoValue::Bytes { bytes, .. }) = (number, value) {
            if !bytes.is_empty() {
                path = String::from_utf8_lossy(bytes).into_owned();
            }
        }
    }
    let mut node = node;
    let mut found = Vec::new();
    loop {
        let field = match node.next_field() {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => {
                walk.out.truncate(mark);
                return Err(e);
            }
        };
        let (number, ProtoValue::Bytes { offset, bytes }) = field else {
            continue;
        };
        match number {
            5 => {
                found.extend(
                    lambda_class_offsets(bytes)
                        .into_iter()
                        .map(|at| offset + at),
                );
                if !walk.json(&path, offset, bytes) {
                    walk.push(&path, offset, bytes, false);
                }
            }
            3 => walk.push("node_path", offset, bytes, false),
            _ => walk.payload(&node, offset, bytes, &path, 2),
        }
    }
    lambdas.extend(found);
    Ok(())
}

fn finish(walk: StringWalk, mut out: SavedModelStrings) -> SavedModelStrings {
    if walk.full {
        out.limited = Some(format!(
            "more than {MAX_STRINGS} strings: the rest are not scanned"
        ));
    }
    if walk.too_deep {
        out.malformed.push(format!(
            "protobuf messages nested deeper than {WALK_MAX_DEPTH}: read as bytes"
        ));
    }
    out.strings = walk.out;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::test_rng::XorShift;

    // Written by tf.saved_model.save and tf_keras model.save(save_format="tf") (fixtures/ai).
    const SECRET: &[u8] = include_bytes!("../../../fixtures/ai/savedmodel/secret/saved_model.pb");
    const CLEAN: &[u8] = include_bytes!("../../../fixtures/ai/savedmodel/clean/saved_model.pb");
    const KERAS_LAMBDA: &[u8] =
        include_bytes!("../../../fixtures/ai/savedmodel/keras_lambda/keras_metadata.pb");
    const KERAS_CLEAN: &[u8] =
        include_bytes!("../../../fixtures/ai/savedmodel/keras_clean/keras_metadata.pb");
    const ONNX: &[u8] = include_bytes!("../../../fixtures/ai/onnx/secret.onnx");
    const TFEVENTS: &[u8] = include_bytes!(
        "../../../fixtures/ai/tensorboard/secret/events.out.tfevents.1733500000.trawl-fixtures.1.0"
    );

    fn pb_bytes(field: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![field << 3 | 2];
        let mut n = payload.len();
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn a_saved_module_constant_is_found_under_its_attribute_key() {
        assert!(is_saved_model(SECRET) && is_saved_model(CLEAN));
        let found = saved_model_strings(SECRET);
        assert!(found.malformed.is_empty() && found.limited.is_none());
        let token: Vec<&MetaString> = found
            .strings
            .iter()
            .filter(|s| s.value.starts_with(b"Bearer hf_"))
            .collect();
        assert_eq!(token.len(), 1);
        assert_eq!(token[0].key, "saved_model.value");
        for s in &found.strings {
            assert_eq!(&SECRET[s.offset..s.offset + s.value.len()], &s.value[..]);
        }
        let clean = saved_model_strings(CLEAN);
        assert!(clean.strings.iter().any(|s| s.value == b"Bearer anonymous"));
    }

    #[test]
    fn keras_metadata_json_is_keyed_and_lambdas_reported() {
        assert!(is_keras_metadata(KERAS_LAMBDA) && is_keras_metadata(KERAS_CLEAN));
        let found = keras_metadata_strings(KERAS_LAMBDA);
        assert!(found.malformed.is_empty());
        let token: Vec<&str> = found
            .strings
            .iter()
            .filter(|s| s.value.starts_with(b"hf_"))
            .map(|s| s.key.as_str())
            .collect();
        assert!(
            token.contains(&"root.layer-0.config.arguments.hub_token"),
            "{token:?}"
        );
        assert!(!found.lambdas.is_empty());
        for &at in &found.lambdas {
            assert_eq!(&KERAS_LAMBDA[at..at + 8], b"\"Lambda\"");
        }
        let clean = keras_metadata_strings(KERAS_CLEAN);
        assert!(clean.lambdas.is_empty() && clean.malformed.is_empty());
        assert!(clean.strings.iter().any(|s| s.key == "root.class_name"));
    }

    #[test]
    fn detection_is_conservative() {
        for other in [
            ONNX,
            TFEVENTS,
            &b""[..],
            b"\x08\x01",
            b"\x08\x01\x12\x00",
            b"hello, world\n",
            b"PK\x03\x04\x14\x00\x00\x00",
            &[0u8; 64],
            KERAS_LAMBDA,
        ] {
            assert!(!is_saved_model(other), "{:?}", &other[..other.len().min(8)]);
        }
        for other in [ONNX, TFEVENTS, SECRET, b"\x0a\x02\x1a\x00", &[0u8; 64]] {
            assert!(!is_keras_metadata(other));
        }
        // An ONNX model with ir_version 1 and a producer name is not a SavedModel.
        let mut onnx = b"\x08\x01".to_vec();
        onnx.extend(pb_bytes(2, b"pytorch"));
        onnx.extend(pb_bytes(7, b""));
        assert!(!is_saved_model(&onnx));
        // The head of a large file is enough.
        assert!(is_saved_model(&SECRET[..64]));
        assert!(is_keras_metadata(&KERAS_LAMBDA[..64]));
    }

    #[test]
    fn damage_keeps_what_came_before() {
        let cut = saved_model_strings(&SECRET[..SECRET.len() / 2]);
        assert!(!cut.malformed.is_empty() || !cut.strings.is_empty());
        let mut two = SECRET.to_vec();
        two.extend_from_slice(&[0x0f]); // wire type 7: not protobuf
        let found = saved_model_strings(&two);
        assert_eq!(found.malformed.len(), 1);
        assert!(found
            .strings
            .iter()
            .any(|s| s.value.starts_with(b"Bearer hf_")));
    }

    #[test]
    fn deep_nesting_is_read_as_bytes_in_linear_time() {
        let mut inner = b"deep token text".to_vec();
        for _ in 0..20_000 {
            inner = pb_bytes(1, &inner);
        }
        let mut graph = pb_bytes(1, &pb_bytes(1, b"v1"));
        graph.extend(pb_bytes(2, &inner));
        let mut file = b"\x08\x01".to_vec();
        file.extend(pb_bytes(2, &graph));
        assert!(is_saved_model(&file));
        let found = saved_model_strings(&file);
        assert_eq!(found.malformed.len(), 1, "{:?}", found.malformed);
        assert!(found
            .strings
            .iter()
            .any(|s| s.value.ends_with(b"deep token text")));
    }

    #[test]
    fn mutated_files_never_panic() {
        let mut rng = XorShift(0xD1CE_5EED);
        for i in 0..2000 {
            let base = [SECRET, KERAS_LAMBDA][i % 2];
            let mut data = base.to_vec();
            for _ in 0..1 + rng.below(6) {
                let at = rng.below(data.len());
                match rng.below(3) {
                    0 => data[at] = rng.next() as u8,
                    1 => data.truncate(at.max(1)),
                    _ => data.insert(at, rng.next() as u8),
                }
            }
            let _ = (is_saved_model(&data), is_keras_metadata(&data));
            for found in [saved_model_strings(&data), keras_metadata_strings(&data)] {
                for s in &found.strings {
                    assert!(s.offset + s.value.len() <= data.len());
                }
                for &at in &found.lambdas {
                    assert_eq!(&data[at..at + 8], b"\"Lambda\"");
                }
            }
        }
    }
}
