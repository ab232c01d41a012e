//! HDF5 (Keras `.h5` models, h5py files): the string attributes of the root group and of every
//! group and dataset reachable from it, read without the HDF5 library.
//!
//! Keras (`model.save("m.h5")`, tf_keras) keeps the model architecture as JSON in the root
//! group's `model_config` attribute, beside `training_config`, `keras_version` and `backend`;
//! its `model_weights` group lists layer and weight names in attributes. h5py writes a Python
//! `str` as a variable-length string (its bytes in a global heap collection) and `bytes` as a
//! fixed-length string. Each string attribute becomes a [`MetaString`] keyed by the attribute's
//! name, prefixed with its object's path (`model_weights/dense/weight_names[0]`); a string that
//! is a JSON object or array is given as its JSON strings instead, keyed
//! `model_config.config.layers[1].config.name`, and `Lambda` layers in a `model_config` are
//! reported at their class name's offset.
//!
//! Read: superblocks of versions 0 to 3 (the signature at 0, 512, 1024, …), object headers of
//! versions 1 and 2 with their continuation chunks, attribute messages of versions 1 to 3,
//! groups as symbol tables (version 1 B-tree and local heap) and as compact link messages.
//! Not read, and said so in a warning: links and attributes kept in dense storage (a fractal
//! heap: more than 8 links or attributes with h5py's `libver="latest"`, or attributes too big
//! for the object header), and attributes whose datatype or dataspace is a shared message.
//! Checksums are not verified. Dataset contents (weights) are never read.
//!
//! Why our own reader: the pure-Rust HDF5 crates (hdf5-reader, hdf5-pure, rustyhdf5) read values
//! but not where a value's bytes sit in the file, which a finding needs; they carry far more
//! than this walk (datasets, filters, writers), and their behaviour on hostile input is not
//! bounded the way this scanner needs. Here every object, chunk, B-tree node and heap is read
//! at most once, all work is capped by a multiple of the file's size, and nothing panics.

mod format;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use super::{keras, MetaString};
use crate::content::json::{dotted, JsonEvent, JsonReader};
use format::{File, Message, StringType};

pub use format::superblock_offset;

/// Deepest group nesting followed.
const MAX_DEPTH: usize = 32;
/// Most objects (groups, datasets) whose headers are read.
const MAX_OBJECTS: usize = 100_000;
/// Most messages read across all object headers.
const MAX_MESSAGES: usize = 1_000_000;
/// Most string elements given across all attributes.
const MAX_ELEMENTS: u64 = 1_000_000;
/// Longest object or attribute name kept (the end of a longer one is dropped).
const MAX_NAME: usize = 1024;
/// Broken structures told one by one (the rest are counted in one more warning).
const MAX_WARNINGS: usize = 20;
/// How deeply a JSON attribute may nest.
const JSON_MAX_DEPTH: usize = 128;

/// What [`hdf5_strings`] found.
#[derive(Debug, Default)]
pub struct Hdf5Strings {
    /// String attributes (and the strings of JSON ones).
    pub strings: Vec<MetaString>,
    /// Offsets of `"Lambda"` class names in `model_config` attributes.
    pub lambdas: Vec<usize>,
    /// Broken structures met (the walk went on around them).
    pub malformed: Vec<String>,
    /// What was left unread: a limit reached, or storage this reader does not read.
    pub skipped: Vec<String>,
}

/// True if `data` carries the HDF5 signature at 0, 512, 1024, 2048, ….
pub fn is_hdf5(data: &[u8]) -> bool {
    superblock_offset(data).is_some()
}

/// The string attributes of an HDF5 file (see the module comment). Errors only when the
/// superblock cannot be read; what breaks further in is a warning in the result.
pub fn hdf5_strings(data: &[u8]) -> Result<Hdf5Strings, String> {
    let (f, root) = format::superblock(data)?;
    let len = data.len() as u64;
    let mut walk = Walk {
        f,
        out: Hdf5Strings::default(),
        heaps: HashMap::new(),
        work: 0,
        work_max: len.saturating_mul(8).saturating_add(1 << 20),
        string_bytes: 0,
        string_max: len.saturating_add(1 << 20),
        messages: 0,
        elements: 0,
        stopped: false,
        more: 0,
        noted: HashSet::new(),
    };
    let mut visited = HashSet::new();
    let mut stack = vec![(root, String::new(), 0usize)];
    while let Some((at, path, depth)) = stack.pop() {
        if walk.stopped {
            break;
        }
        if !visited.insert(at) {
            continue; // a hard link to an object already read, or a cycle
        }
        if visited.len() > MAX_OBJECTS {
            walk.skip(format!(
                "more than {MAX_OBJECTS} objects: the rest are not read"
            ));
            break;
        }
        let children = walk.object(at, &path);
        if depth >= MAX_DEPTH && !children.is_empty() {
            walk.skip(format!(
                "groups nested deeper than {MAX_DEPTH} levels are not read"
            ));
            continue;
        }
        stack.extend(children.into_iter().rev().map(|(a, p)| (a, p, depth + 1)));
    }
    if walk.more > 0 {
        let more = format!("{} more broken structures", walk.more);
        walk.out.malformed.push(more);
    }
    Ok(walk.out)
}

struct Walk<'a> {
    f: File<'a>,
    out: Hdf5Strings,
    /// Global heap collections read: object index → (start, size) of its data.
    heaps: HashMap<usize, HashMap<u64, (usize, usize)>>,
    /// Structure bytes read, against `work_max`.
    work: u64,
    work_max: u64,
    /// String bytes given, against `string_max` (heap objects can be referred to many times).
    string_bytes: u64,
    string_max: u64,
    messages: usize,
    elements: u64,
    stopped: bool,
    /// Broken structures past [`MAX_WARNINGS`].
    more: usize,
    /// Kinds of skipped storage already warned about (once each).
    noted: HashSet<&'static str>,
}

/// `path/name`, the name cut at its first NUL and to [`MAX_NAME`] bytes.
fn join(path: &str, name: &[u8]) -> String {
    let name = &name[..memchr::memchr(0, name).unwrap_or(name.len())];
    let name = String::from_utf8_lossy(&name[..name.len().min(MAX_NAME)]);
    if path.is_empty() {
        name.into_owned()
    } else {
        format!("{path}/{name}")
    }
}

impl Walk<'_> {
    fn skip(&mut self, msg: String) {
        self.out.skipped.push(msg);
    }

    /// A broken structure: the first [`MAX_WARNINGS`] are told, the rest counted.
    fn broken(&mut self, msg: String) {
        if self.out.malformed.len() < MAX_WARNINGS {
            self.out.malformed.push(msg);
        } else {
            self.more += 1;
        }
    }

    /// Warns once per kind about storage that is not read.
    fn note(&mut self, kind: &'static str, msg: String) {
        if self.noted.insert(kind) {
            self.skip(msg);
        }
    }

    /// Adds `n` bytes of work; false (and the walk stops) past the limit.
    fn spend(&mut self, n: u64) -> bool {
        self.work = self.work.saturating_add(n);
        if self.work > self.work_max && !self.stopped {
            self.stopped = true;
            self.skip(format!(
                "more than {} bytes of structures read (8 per byte of the file): the rest is not read",
                self.work_max
            ));
        }
        !self.stopped
    }

    /// Reads one object header: its string attributes go out; its children (links of a group)
    /// come back with their paths.
    fn object(&mut self, at: usize, path: &str) -> Vec<(usize, String)> {
        let mut work = 0;
        let left = MAX_MESSAGES.saturating_sub(self.messages);
        let (messages, err) = format::object_messages(&self.f, at, left, &mut work);
        self.messages += messages.len();
        if let Some(e) = err {
            if self.messages >= MAX_MESSAGES {
                self.skip(format!("more than {MAX_MESSAGES} header messages: {e}"));
                self.stopped = true;
            } else {
                self.broken(e);
            }
        }
        let mut children = Vec::new();
        if !self.spend(work) {
            return children;
        }
        for m in &messages {
            if self.stopped {
                break;
            }
            match m.kind {
                format::MSG_ATTRIBUTE if m.flags & 0x02 != 0 => self.note(
                    "shared attribute",
                    format!(
                        "shared attribute messages (first at byte {}) are not read",
                        m.at
                    ),
                ),
                format::MSG_ATTRIBUTE => self.attribute(m, path),
                format::MSG_LINK => {
                    if let Some((name, child)) = format::hard_link(&self.f, m) {
                        let name = &self.f.data[name.0..name.1];
                        // Paths are copied once per child: their bytes count as work.
                        if !self.spend((path.len() + name.len().min(MAX_NAME)) as u64) {
                            break;
                        }
                        children.push((child, join(path, name)));
                    }
                }
                format::MSG_SYMBOL_TABLE => self.symbol_table(m, path, &mut children),
                format::MSG_LINK_INFO | format::MSG_ATTRIBUTE_INFO
                    if format::dense_storage(&self.f, m) =>
                {
                    let what = if m.kind == format::MSG_LINK_INFO {
                        "links"
                    } else {
                        "attributes"
                    };
                    self.note(
                        what,
                        format!(
                            "object header at byte {at} keeps its {what} in dense storage (a fractal heap), which is not read"
                        ),
                    );
                }
                _ => {}
            }
        }
        children
    }

    /// The strings of one attribute message.
    fn attribute(&mut self, m: &Message, path: &str) {
        let d = self.f.data;
        let a = match format::attribute(d, m) {
            Some(Some(a)) => a,
            Some(None) => {
                self.note(
                    "shared type",
                    format!(
                        "attributes with a shared datatype or dataspace (first at byte {}) are not read",
                        m.at
                    ),
                );
                return;
            }
            None => {
                self.broken(format!("attribute message at byte {} is malformed", m.at));
                return;
            }
        };
        let Some(kind) = format::string_type(d, a.datatype) else {
            return; // numbers and other non-string values
        };
        let left = MAX_ELEMENTS.saturating_sub(self.elements);
        let Some(n) = format::dataspace_elements(&self.f, a.dataspace, a.data.0, left) else {
            self.broken(format!(
                "attribute message at byte {}: unreadable dataspace",
                m.at
            ));
            return;
        };
        let size = match kind {
            StringType::Fixed { size, .. } => size,
            StringType::Variable => 4 + self.f.so + 4,
        };
        if size == 0 || n == 0 {
            return;
        }
        let fit = ((a.data.1 - a.data.0) / size) as u64;
        let mut count = n;
        if n > fit {
            self.broken(format!(
                "attribute message at byte {}: its data holds {fit} elements, not the {}{} its dataspace says",
                m.at,
                if n > left { "over " } else { "" },
                n.min(left)
            ));
            count = fit;
        }
        if count > left {
            self.skip(format!(
                "more than {MAX_ELEMENTS} attribute strings: the rest are not read"
            ));
            self.stopped = true;
            count = left;
        }
        self.elements += count;
        let key = join(path, &d[a.name.0..a.name.1]);
        for i in 0..count as usize {
            if self.stopped {
                return;
            }
            let e = a.data.0 + i * size;
            // A long path copied for each of many elements: its bytes count as work.
            if !self.spend(key.len() as u64) {
                return;
            }
            let key = if n == 1 {
                key.clone()
            } else {
                format!("{key}[{i}]")
            };
            match kind {
                StringType::Fixed { size, pad } => {
                    let raw = &d[e..e + size];
                    let end = match pad {
                        0 => memchr::memchr(0, raw).unwrap_or(size),
                        1 => raw.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1),
                        _ => raw.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1),
                    };
                    self.string(key, e, end);
                }
                StringType::Variable => {
                    let Some((start, len)) = self.variable(e, m.at) else {
                        continue;
                    };
                    self.string(key, start, len);
                }
            }
        }
    }

    /// Where a variable-length string's bytes are: its global heap object (length checked).
    fn variable(&mut self, e: usize, msg: usize) -> Option<(usize, usize)> {
        let d = self.f.data;
        let len = format::uint(d, e, 4)? as usize;
        let collection = self.f.addr(e + 4);
        let index = format::uint(d, e + 4 + self.f.so, 4)?;
        if len == 0 {
            return None;
        }
        let Some(collection) = collection else {
            self.broken(format!(
                "attribute message at byte {msg}: a string's heap address is outside the file"
            ));
            return None;
        };
        if !self.heaps.contains_key(&collection) {
            let objects = self.collection(collection);
            self.heaps.insert(collection, objects);
        }
        let Some(&(start, size)) = self.heaps.get(&collection).and_then(|h| h.get(&index)) else {
            self.broken(format!(
                "attribute message at byte {msg}: a string's heap object is missing"
            ));
            return None;
        };
        if len > size {
            self.broken(format!(
                "attribute message at byte {msg}: a string of {len} bytes is in a heap object of {size}"
            ));
        }
        Some((start, len.min(size)))
    }

    /// The objects of a global heap collection.
    fn collection(&mut self, at: usize) -> HashMap<u64, (usize, usize)> {
        let mut objects = HashMap::new();
        let d = self.f.data;
        let sl = self.f.sl;
        if d.get(at..at + 4) != Some(b"GCOL") || d.get(at + 4) != Some(&1) {
            self.broken(format!(
                "global heap collection at byte {at} has no signature"
            ));
            return objects;
        }
        let Some(size) = self.f.len(at + 8) else {
            self.broken(format!("global heap collection at byte {at} is truncated"));
            return objects;
        };
        let mut end = at.saturating_add(usize::try_from(size).unwrap_or(usize::MAX));
        if end > d.len() {
            self.broken(format!(
                "global heap collection at byte {at} says {size} bytes, past the end of the file"
            ));
            end = d.len();
        }
        let mut p = at + 8 + sl;
        while p + 8 + sl <= end {
            let (Some(index), Some(len)) = (format::uint(d, p, 2), self.f.len(p + 8)) else {
                break;
            };
            if index == 0 {
                break; // free space: the end of the objects
            }
            let start = p + 8 + sl;
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > end - start {
                self.broken(format!(
                    "global heap collection at byte {at}: object {index} runs past the collection"
                ));
                break;
            }
            objects.insert(index, (start, len));
            p = start + len.div_ceil(8) * 8;
        }
        self.spend((p - at) as u64);
        objects
    }

    /// Gives the string `start..start + len` of the file under `key`: as its JSON strings when
    /// it is a JSON object or array, whole otherwise.
    fn string(&mut self, key: String, start: usize, len: usize) {
        if len == 0 {
            return;
        }
        self.string_bytes = self.string_bytes.saturating_add(len as u64);
        if self.string_bytes > self.string_max {
            self.skip(format!(
                "attribute strings of more than {} bytes (heap objects given many times): the rest are not read",
                self.string_max
            ));
            self.stopped = true;
            return;
        }
        let d = self.f.data;
        let value = &d[start..start + len];
        if key.rsplit('/').next() == Some("model_config") {
            let lambdas = keras::lambda_class_offsets(value);
            self.out
                .lambdas
                .extend(lambdas.into_iter().map(|at| start + at));
        }
        let first = value.iter().find(|b| !b.is_ascii_whitespace());
        if matches!(first, Some(b'{' | b'[')) {
            let mut budget = self.string_max.saturating_sub(self.string_bytes);
            if let Some(parts) = json_strings(&d[..start + len], start, &key, &mut budget) {
                self.out.strings.extend(parts);
                self.string_bytes = self.string_max.saturating_sub(budget);
                if budget == 0 {
                    self.skip(format!(
                        "JSON keys of more than {} bytes (deep paths over many values): the rest are not read",
                        self.string_max
                    ));
                    self.stopped = true;
                }
                return;
            }
        }
        self.out.strings.push(MetaString {
            key,
            value: value.to_vec(),
            offset: start,
            is_key: false,
            record: None,
            row: None,
        });
    }

    /// The children of a group kept as a symbol table: a version 1 B-tree of symbol table
    /// nodes, whose names are in a local heap.
    fn symbol_table(&mut self, m: &Message, path: &str, children: &mut Vec<(usize, String)>) {
        let (f, d) = (self.f, self.f.data);
        let (Some(tree), Some(heap)) = (f.addr(m.at), f.addr(m.at + f.so)) else {
            self.broken(format!(
                "symbol table message at byte {}: an address is outside the file",
                m.at
            ));
            return;
        };
        // The local heap's data segment holds the names.
        let names = (d.get(heap..heap + 4) == Some(b"HEAP"))
            .then(|| {
                let size = usize::try_from(f.len(heap + 8)?).ok()?;
                let seg = f.addr(heap + 8 + 2 * f.sl)?;
                Some(&d[seg..seg.saturating_add(size).min(d.len())])
            })
            .flatten();
        let Some(names) = names else {
            self.broken(format!("local heap at byte {heap} is unreadable"));
            return;
        };
        let mut nodes = vec![tree];
        let mut seen = HashSet::new();
        while let Some(node) = nodes.pop() {
            if !seen.insert(node) {
                continue; // a B-tree cycle
            }
            if !self.spend(64) {
                return;
            }
            if d.get(node..node + 4) != Some(b"TREE") || d.get(node + 4) != Some(&0) {
                self.broken(format!("group B-tree node at byte {node} is unreadable"));
                continue;
            }
            let level = d.get(node + 5).copied().unwrap_or(0);
            let entries = format::uint(d, node + 6, 2).unwrap_or(0) as usize;
            let first = node + 8 + 2 * f.so + f.sl;
            for i in 0..entries {
                let Some(child) = f.addr(first + i * (f.sl + f.so)) else {
                    self.broken(format!(
                        "group B-tree node at byte {node}: a child is outside the file"
                    ));
                    break;
                };
                if level > 0 {
                    nodes.push(child);
                } else if seen.insert(child) {
                    self.symbol_node(child, names, path, children);
                }
            }
        }
    }

    /// The entries of one symbol table node.
    fn symbol_node(
        &mut self,
        at: usize,
        names: &[u8],
        path: &str,
        children: &mut Vec<(usize, String)>,
    ) {
        let (f, d) = (self.f, self.f.data);
        if d.get(at..at + 4) != Some(b"SNOD") {
            self.broken(format!("symbol table node at byte {at} has no signature"));
            return;
        }
        let count = format::uint(d, at + 6, 2).unwrap_or(0) as usize;
        let entry = 2 * f.so + 24;
        if !self.spend((count * entry) as u64) {
            return;
        }
        for i in 0..count {
            let e = at + 8 + i * entry;
            let (Some(name), Some(object)) = (format::uint(d, e, f.so), f.addr(e + f.so)) else {
                self.broken(format!(
                    "symbol table node at byte {at}: entry {i} is unreadable"
                ));
                return;
            };
            let name = usize::try_from(name).ok().and_then(|n| names.get(n..));
            let Some(name) = name else {
                self.broken(format!(
                    "symbol table node at byte {at}: entry {i} has no name"
                ));
                continue;
            };
            let name = &name[..name.len().min(MAX_NAME)];
            if !self.spend((path.len() + name.len()) as u64) {
                return;
            }
            children.push((object, join(path, name)));
        }
    }
}

/// The strings (values and keys) of the JSON text ending at `data.len()`, from `start`, keyed
/// `key.<dotted path>`; `None` when it is not well-formed JSON. The keys' bytes are taken from
/// `budget`: when it runs out, the strings so far are given and `budget` is 0.
fn json_strings(data: &[u8], start: usize, key: &str, budget: &mut u64) -> Option<Vec<MetaString>> {
    let mut reader = JsonReader::new(data, start, JSON_MAX_DEPTH);
    let mut out = Vec::new();
    while let Some(event) = reader.next().ok()? {
        let (s, is_key) = match event {
            JsonEvent::String(s) => (s, false),
            JsonEvent::Key(k) => (k, true),
            _ => continue,
        };
        if s.is_empty() {
            continue;
        }
        let path = dotted(reader.path());
        let cost = (key.len() + path.len()) as u64;
        if cost > *budget {
            *budget = 0;
            break;
        }
        *budget -= cost;
        out.push(MetaString {
            key: if path.is_empty() || path.starts_with('[') {
                format!("{key}{path}")
            } else {
                format!("{key}.{path}")
            },
            offset: s.start(),
            value: s.value().into_owned(),
            is_key,
            record: None,
            row: None,
        });
    }
    Some(out)
}
