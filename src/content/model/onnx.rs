//! ONNX: producer, doc strings and metadata properties of a `ModelProto`, its graphs,
//! subgraphs, training infos and functions.

use std::fmt::Write as _;

use super::MetaString;
use crate::content::protobuf::{ProtoMessage, ProtoValue};

/// How deeply ONNX messages may nest (a subgraph costs three levels: node, attribute, graph).
const ONNX_MAX_DEPTH: usize = 64;

/// Top-level fields [`is_onnx`] reads before deciding.
const ONNX_SNIFF_FIELDS: usize = 4096;

/// The highest `ir_version` taken as plausible (version 11 was current in 2025).
const ONNX_MAX_IR_VERSION: u64 = 64;

/// True if `data` parses as an ONNX `ModelProto`: every top-level field is a known `ModelProto`
/// field with its wire type, lengths stay inside the data, and there is a plausible `ir_version`
/// and a graph or an opset import. Text, zips, pickles and images fail on the first bytes.
pub fn is_onnx(data: &[u8]) -> bool {
    let mut message = ProtoMessage::new(data);
    let (mut ir_version, mut body) = (false, false);
    for _ in 0..ONNX_SNIFF_FIELDS {
        match next_field(&mut message) {
            Ok(None) => break,
            Ok(Some((number, value))) => match (number, value) {
                (1, ProtoValue::Varint(v)) => {
                    ir_version = (1..=ONNX_MAX_IR_VERSION).contains(&v);
                }
                (5, ProtoValue::Varint(_)) => {}
                (7 | 8, ProtoValue::Bytes { .. }) => body = true,
                (2 | 3 | 4 | 6 | 14 | 20 | 25 | 26, ProtoValue::Bytes { .. }) => {}
                _ => return false,
            },
            Err(_) => return false,
        }
    }
    ir_version && body
}

/// The strings of an ONNX model: `producer_name`, `producer_version`, `domain`, `doc_string`,
/// `metadata_props.<key>`, and in graphs (`graph`, subgraphs of node attributes such as
/// `graph.node[3].attribute[0].g`, `training_info[i].algorithm`) their `name`, `doc_string`,
/// `metadata_props.<key>` and `node[i].doc_string`; functions give `functions[i].doc_string` and
/// their nodes' doc strings. Initializers and other tensors are skipped without being read.
///
/// Errors on malformed protobuf (bad tags or varints, lengths past the end of their message,
/// group wire types) or nesting deeper than a fixed bound.
pub fn onnx_strings(data: &[u8]) -> Result<Vec<MetaString>, String> {
    if data.is_empty() {
        return Err("ONNX: empty file".to_owned());
    }
    let mut walk = OnnxWalk {
        data,
        out: Vec::new(),
    };
    walk.model()?;
    Ok(walk.out)
}

struct OnnxWalk<'a> {
    data: &'a [u8],
    out: Vec<MetaString>,
}

impl<'a> OnnxWalk<'a> {
    fn push(&mut self, path: &str, field: &str, offset: usize, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let key = if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        };
        self.out.push(MetaString {
            key,
            value: bytes.to_vec(),
            offset,
            is_key: false,
            record: None,
            row: None,
        });
    }

    fn model(&mut self) -> Result<(), String> {
        let mut message = ProtoMessage::new(self.data);
        let mut path = String::new();
        let (mut training, mut functions) = (0usize, 0usize);
        while let Some((number, value)) = next_field(&mut message)? {
            let ProtoValue::Bytes { offset, bytes } = value else {
                continue;
            };
            match number {
                2 => self.push("", "producer_name", offset, bytes),
                3 => self.push("", "producer_version", offset, bytes),
                4 => self.push("", "domain", offset, bytes),
                6 => self.push("", "doc_string", offset, bytes),
                7 => {
                    path.push_str("graph");
                    self.graph(message.nested(offset, bytes), &mut path, 1)?;
                }
                14 => self.metadata_entry(message.nested(offset, bytes), "metadata_props")?,
                20 => {
                    let _ = write!(path, "training_info[{training}]");
                    self.training_info(message.nested(offset, bytes), &mut path, 1)?;
                    training += 1;
                }
                25 => {
                    let _ = write!(path, "functions[{functions}]");
                    self.function(message.nested(offset, bytes), &mut path, 1)?;
                    functions += 1;
                }
                _ => {}
            }
            path.clear();
        }
        Ok(())
    }

    fn check_depth(message: &ProtoMessage<'_>, depth: usize) -> Result<(), String> {
        if depth > ONNX_MAX_DEPTH {
            return Err(format!(
                "ONNX: messages nested deeper than {ONNX_MAX_DEPTH} at byte {}",
                message.pos
            ));
        }
        Ok(())
    }

    /// Walks the message in `message` with `walk`, under `path` + `segment`.
    fn child(
        &mut self,
        message: ProtoMessage<'a>,
        path: &mut String,
        segment: std::fmt::Arguments<'_>,
        depth: usize,
        walk: fn(&mut Self, ProtoMessage<'a>, &mut String, usize) -> Result<(), String>,
    ) -> Result<(), String> {
        let len = path.len();
        let _ = path.write_fmt(segment);
        walk(self, message, path, depth)?;
        path.truncate(len);
        Ok(())
    }

    /// GraphProto: node(1), name(2), doc_string(10), metadata_props(16).
    fn graph(
        &mut self,
        mut message: ProtoMessage<'a>,
        path: &mut String,
        depth: usize,
    ) -> Result<(), String> {
        Self::check_depth(&message, depth)?;
        let mut nodes = 0usize;
        while let Some((number, value)) = next_field(&mut message)? {
            let ProtoValue::Bytes { offset, bytes } = value else {
                continue;
            };
            match number {
                1 => {
                    let node = message.nested(offset, bytes);
                    self.child(
                        node,
                        path,
                        format_args!(".node[{nodes}]"),
                        depth + 1,
                        Self::node,
                    )?;
                    nodes += 1;
                }
                2 => self.push(path, "name", offset, bytes),
                10 => self.push(path, "doc_string", offset, bytes),
                16 => {
                    let entry = message.nested(offset, bytes);
                    self.metadata_entry(entry, &format!("{path}.metadata_props"))?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// NodeProto: attribute(5), doc_string(6), metadata_props(9).
    fn node(
        &mut self,
        mut message: ProtoMessage<'a>,
        path: &mut String,
        depth: usize,
    ) -> Result<(), String> {
        Self::check_depth(&message, depth)?;
        let mut attributes = 0usize;
        while let Some((number, value)) = next_field(&mut message)? {
            let ProtoValue::Bytes { offset, bytes } = value else {
                continue;
            };
            match number {
                5 => {
                    let attribute = message.nested(offset, bytes);
                    self.child(
                        attribute,
                        path,
                        format_args!(".attribute[{attributes}]"),
                        depth + 1,
                        Self::attribute,
                    )?;
                    attributes += 1;
                }
                6 => self.push(path, "doc_string", offset, bytes),
                9 => {
                    let entry = message.nested(offset, bytes);
                    self.metadata_entry(entry, &format!("{path}.metadata_props"))?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// AttributeProto: subgraphs g(6) and graphs(11), doc_string(13).
    fn attribute(
        &mut self,
        mut message: ProtoMessage<'a>,
        path: &mut String,
        depth: usize,
    ) -> Result<(), String> {
        Self::check_depth(&message, depth)?;
        let mut graphs = 0usize;
        while let Some((number, value)) = next_field(&mut message)? {
            let ProtoValue::Bytes { offset, bytes } = value else {
                continue;
            };
            match number {
                6 => {
                    let graph = message.nested(offset, bytes);
                    self.child(graph, path, format_args!(".g"), depth + 1, Self::graph)?;
                }
                11 => {
                    let graph = message.nested(offset, bytes);
                    self.child(
                        graph,
                        path,
                        format_args!(".graphs[{graphs}]"),
                        depth + 1,
                        Self::graph,
                    )?;
                    graphs += 1;
                }
                13 => self.push(path, "doc_string", offset, bytes),
                _ => {}
            }
        }
        Ok(())
    }

    /// FunctionProto: node(7), doc_string(8), metadata_props(14).
    fn function(
        &mut self,
        mut message: ProtoMessage<'a>,
        path: &mut String,
        depth: usize,
    ) -> Result<(), String> {
        Self::check_depth(&message, depth)?;
        let mut nodes = 0usize;
        while let Some((number, value)) = next_field(&mut message)? {
            let ProtoValue::Bytes { offset, bytes } = value else {
                continue;
            };
            match number {
                7 => {
                    let node = message.nested(offset, bytes);
                    self.child(
                        node,
                        path,
                        format_args!(".node[{nodes}]"),
                        depth + 1,
                        Self::node,
                    )?;
                    nodes += 1;
                }
                8 => self.push(path, "doc_string", offset, bytes),
                14 => {
                    let entry = message.nested(offset, bytes);
                    self.metadata_entry(entry, &format!("{path}.metadata_props"))?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// TrainingInfoProto: initialization(1) and algorithm(2) graphs.
    fn training_info(
        &mut self,
        mut message: ProtoMessage<'a>,
        path: &mut String,
        depth: usize,
    ) -> Result<(), String> {
        Self::check_depth(&message, depth)?;
        while let Some((number, value)) = next_field(&mut message)? {
            let ProtoValue::Bytes { offset, bytes } = value else {
                continue;
            };
            let graph = message.nested(offset, bytes);
            match number {
                1 => self.child(
                    graph,
                    path,
                    format_args!(".initialization"),
                    depth + 1,
                    Self::graph,
                )?,
                2 => self.child(
                    graph,
                    path,
                    format_args!(".algorithm"),
                    depth + 1,
                    Self::graph,
                )?,
                _ => {}
            }
        }
        Ok(())
    }

    /// StringStringEntryProto key(1), value(2): the value under `<prefix>.<key>`.
    fn metadata_entry(
        &mut self,
        mut message: ProtoMessage<'a>,
        prefix: &str,
    ) -> Result<(), String> {
        let (mut key, mut value) = (None, None);
        while let Some((number, field)) = next_field(&mut message)? {
            if let ProtoValue::Bytes { offset, bytes } = field {
                match number {
                    1 => key = Some(bytes),
                    2 => value = Some((offset, bytes)),
                    _ => {}
                }
            }
        }
        if let Some((offset, bytes)) = value {
            let key = String::from_utf8_lossy(key.unwrap_or_default());
            self.push(prefix, &key, offset, bytes);
        }
        Ok(())
    }
}

/// The next field of `message`, its errors said to be ONNX's.
fn next_field<'a>(message: &mut ProtoMessage<'a>) -> Result<Option<(u64, ProtoValue<'a>)>, String> {
    message.next_field().map_err(|e| format!("ONNX: {e}"))
}
