//! Pickles, parsed statically: string constants and imported callables, never executed.
//!
//! [`analyze`] walks the opcode stream of protocols 0–5 with an emulated stack and memo, so an
//! import is resolved however its module and name strings reach `STACK_GLOBAL` (directly or
//! through `PUT`/`MEMOIZE` and later `GET`s), and the opcodes that call it (`REDUCE`, `OBJ`,
//! `NEWOBJ`, `NEWOBJ_EX`, `INST`, `BUILD`) are attributed to it. Pickles stored back to back are
//! all walked; a truncated or malformed stream still reports what came before the break, because
//! a real unpickler has already run that part. joblib files, which hold each numpy array's bytes
//! (or a nested pickle) right after the `BUILD` of its `NumpyArrayWrapper`, are walked past
//! each array, sized from the wrapper's shape and dtype. [`judge`] classifies an import against an allowlist
//! of what honest checkpoints use and a blocklist by family; anything else is
//! [`ImportVerdict::Unknown`]. Nothing is imported or called, and [`PickleLimits`] bound time and
//! memory on hostile input.
//!
//! The emulation is lenient where CPython would raise (a stack underflow, a missing memo entry):
//! the anomaly goes to [`PickleReport::errors`] and the walk goes on. CPython stops at such a
//! point, so going on can only report more than a real load would reach, never less.

mod collect;
mod joblib;
mod objects;
#[cfg(test)]
mod objects_tests;
mod opcodes;
mod policy;
mod strings;
#[cfg(test)]
mod tests;
mod values;
mod vm;

pub use policy::judge;
use std::sync::Arc;
use vm::{Halt, Walker, NAME_CAP, PROTOCOL_MAX, SNIFF_MIN_OPS, SNIFF_OPS};

/// Limits that bound time and memory on hostile streams.
///
/// Reaching `max_ops` or `max_stack` stops the walk and marks the report
/// [`truncated`](PickleReport::truncated). A full memo does not stop it: later entries are not
/// remembered, and an import named through one of them is reported as unresolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PickleLimits {
    /// Opcodes decoded over the whole input, all pickles together.
    pub max_ops: usize,
    /// Values and marks on the emulated stack at once.
    pub max_stack: usize,
    /// Entries in the emulated memo of one pickle.
    pub max_memo: usize,
    /// Bytes kept of one string constant; longer constants are cut to this length.
    pub max_string: usize,
}

impl Default for PickleLimits {
    fn default() -> Self {
        PickleLimits {
            // Every opcode takes at least one byte, so this bounds the input walked rather than
            // the time per byte; 10 MB of honest one-byte opcodes must not hit it.
            max_ops: 100_000_000,
            max_stack: 1_000_000,
            max_memo: 1_000_000,
            max_string: 64 << 20,
        }
    }
}

/// A string or bytes constant found in a pickle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleString {
    /// Byte offset in the input of the opcode that holds the constant.
    pub offset: usize,
    /// The decoded value: UTF-8 for text opcodes, raw bytes for bytes and protocol-0/1 strings
    /// (escapes of protocol-0 `STRING`, `\u` escapes of `UNICODE` decoded).
    pub value: Vec<u8>,
    /// The key the value was stored under, when a string: a dict key (`SETITEM`, `SETITEMS`,
    /// `DICT`; an object's state dict and slot state, so an attribute name; keyword arguments
    /// of `NEWOBJ_EX`), or the first item of a `(key, value)` pair given to `dict` or
    /// `OrderedDict`. Shared, as a pickle may give one key (from its memo) to many values.
    pub key: Option<Arc<str>>,
}

/// A callable or class that the pickle imports when loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleImport {
    /// Byte offset of the first opcode that imports it (`GLOBAL`, `INST`, `STACK_GLOBAL`, `EXT*`).
    pub offset: usize,
    /// Module as the pickle names it (`posix`, not `os`); `<unresolved>` when `STACK_GLOBAL`
    /// takes it from a value that is not a constant string, `<extension>` for `EXT1/2/4`.
    pub module: String,
    /// Qualified name inside the module (may be dotted); `<unresolved>` as for `module`, the
    /// extension code for `EXT1/2/4`.
    pub name: String,
    /// True when the pickle calls it or applies state to it (`REDUCE`, `OBJ`, `NEWOBJ`,
    /// `NEWOBJ_EX`, `INST`, `BUILD`), anywhere in the input.
    pub called: bool,
    /// What [`judge`] says of it.
    pub verdict: ImportVerdict,
}

/// The verdict on one imported callable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportVerdict {
    /// On the allowlist of what honest checkpoints import.
    Safe,
    /// On neither list: worth a warning, not proof of an attack.
    Unknown,
    /// On the blocklist; carries the family: "code execution", "process execution",
    /// "indirection", "nested loading", "file system" or "network".
    Dangerous(&'static str),
}

/// What [`analyze`] found in a stream of pickles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PickleReport {
    /// Every non-empty string and bytes constant, in stream order.
    pub strings: Vec<PickleString>,
    /// Every distinct (module, name) imported, in order of first appearance.
    pub imports: Vec<PickleImport>,
    /// Pickles walked, the last one included even when it is truncated or broken.
    pub pickles: usize,
    /// Anomalies and the reason the walk stopped early, each with its byte offset.
    pub errors: Vec<String>,
    /// True when the walk did not reach the end of the last pickle: the input ended inside it or
    /// a limit stopped the walk.
    pub truncated: bool,
}

/// Whether `data` plausibly starts a pickle.
///
/// The first opcodes are decoded and emulated strictly, as CPython would (and with
/// `GLOBAL`/`INST` names that must be dotted identifiers). Protocol 2+ streams start with `PROTO`
/// (`\x80` and a version 2..=5) and are claimed unless their first 16 opcodes are invalid; the
/// data may be a prefix. Protocols 0 and 1 have no magic, so more is asked: a `STOP` that ends the
/// data or is followed by another pickle, 16 valid opcodes, or the end of the data after at least
/// three (a prefix like `(dp0\n`), and in the last two cases at least one opcode that builds or
/// names something, since a text whose lines all start with `V` is a valid run of `UNICODE`
/// constants. Ordinary text and binary fail within a few bytes. A run of valid constants is
/// followed to its end (CPython would load a payload behind it), so the cost is linear at worst.
pub fn looks_like_pickle(data: &[u8]) -> bool {
    match data {
        [0x80, version, ..] if (2..=PROTOCOL_MAX).contains(version) => sniff(data, true),
        [] => false,
        _ => sniff(data, false),
    }
}

/// Walks every pickle in `data`, protocols 0–5, and reports their string constants and imports.
///
/// Several pickles can follow each other: after a `STOP` the walk goes on while the remaining
/// bytes [look like a pickle](looks_like_pickle), so trailing raw data (legacy PyTorch storages)
/// is left alone. Each pickle gets a fresh stack and memo, as each `pickle.load` call does.
pub fn analyze(data: &[u8], limits: &PickleLimits) -> PickleReport {
    let mut walker = Walker::new(data, *limits, false);
    while walker.pos < data.len() {
        walker.report.pickles += 1;
        let start = walker.pos;
        match walker.walk_pickle() {
            Ok(()) => {
                if !looks_like_pickle(&data[walker.pos..]) {
                    break;
                }
            }
            Err(Halt::Eof) => {
                let n = walker.report.pickles;
                walker.report.errors.push(format!(
                    "offset {}: the stream ends inside pickle {n} (started at offset {start})",
                    data.len()
                ));
                walker.report.truncated = true;
                break;
            }
            Err(Halt::Broken(message)) => {
                walker.report.errors.push(message);
                break;
            }
            Err(Halt::Limit(message)) => {
                walker.report.errors.push(message);
                walker.report.truncated = true;
                break;
            }
        }
    }
    walker.finish()
}

/// Strict walk of the first opcodes for [`looks_like_pickle`]; `magic` when the data starts
/// with a protocol 2+ `PROTO`, which is evidence enough unless the opcodes are invalid.
///
/// Without magic the opcodes must also build something: a text whose every line starts with
/// `P` or `V` ("Package: ...", "Version ...") is a valid run of `PERSID`/`UNICODE` constants.
fn sniff(data: &[u8], magic: bool) -> bool {
    let limits = PickleLimits {
        max_ops: if magic { SNIFF_OPS } else { usize::MAX },
        max_string: NAME_CAP,
        ..PickleLimits::default()
    };
    let mut walker = Walker::new(data, limits, true);
    let mut complete = 0;
    let mut structure = false;
    loop {
        let op = data.get(walker.pos).copied();
        let step = walker.step();
        if magic {
            return match step {
                Ok(false) => continue,
                Err(Halt::Broken(_)) => false,
                Ok(true) | Err(Halt::Eof | Halt::Limit(_)) => true,
            };
        }
        match step {
            // A STOP claims the data only when nothing follows or another pickle does: "G",
            // eight bytes, "2." is also how "Git 1.7.12.2 Release Notes" starts.
            Ok(true) if walker.pos == data.len() => return true,
            Ok(true) => {
                walker.reset();
                structure = true;
            }
            Ok(false) => structure |= op.is_some_and(is_structural),
            // Only the stack limit: a million valid constants are no text.
            Err(Halt::Limit(_)) => return true,
            Err(Halt::Eof) => return structure && complete >= SNIFF_MIN_OPS,
            Err(Halt::Broken(_)) => return false,
        }
        complete += 1;
        // Constants alone do not end the look: CPython loads a payload behind any number of
        // them, so a prefix of constants must not hide it.
        if structure && complete >= SNIFF_OPS {
            return true;
        }
    }
}

/// Opcodes that build, name or reference something, as opposed to pushing a constant. `PROTO`,
/// `FRAME` and `EXT*` are left out: honest protocol 0/1 streams never hold them.
fn is_structural(op: u8) -> bool {
    !matches!(
        op,
        b'0' | b'2'
            | b'B'
            | b'C'
            | b'F'
            | b'G'
            | b'I'
            | b'J'
            | b'K'
            | b'L'
            | b'M'
            | b'N'
            | b'P'
            | b'Q'
            | b'S'
            | b'T'
            | b'U'
            | b'V'
            | b'X'
            | 0x80
            | 0x82..=0x84
            | 0x88..=0x8e
            | 0x95..=0x98
    )
}
