//! The opcode machine: decodes one opcode at a time and emulates its effect on a stack, marks
//! and a memo, so that imports are resolved and call opcodes attributed to them.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use super::objects::Kind;
use super::opcodes::op_name;
use super::strings::{is_float_text, is_int_text, raw_unicode_unescape, unescape};
use super::values::Value;
use super::{PickleLimits, PickleReport};

pub(super) const PROTOCOL_MAX: u8 = 5;
/// Longest string kept on the emulated stack as a possible module or name for `STACK_GLOBAL`.
pub(super) const NAME_CAP: usize = 1024;
/// Distinct imports recorded; a stream naming more is hostile.
pub(super) const MAX_IMPORTS: usize = 100_000;
/// Error messages recorded; the rest are counted in one final message.
pub(super) const MAX_ERRORS: usize = 100;
/// Opcodes [`looks_like_pickle`] decodes before claiming data (that builds something).
pub(super) const SNIFF_OPS: usize = 16;
/// Valid opcodes before the end of the data that let a prefix be claimed.
pub(super) const SNIFF_MIN_OPS: usize = 3;
pub(super) const UNRESOLVED: &str = "<unresolved>";

/// Why the walk of one pickle stopped before its `STOP`.
pub(super) enum Halt {
    /// The input ended inside the pickle.
    Eof,
    /// The bytes cannot be decoded further (unknown opcode, bad argument).
    Broken(String),
    /// A limit was reached.
    Limit(String),
}

pub(super) type Step<T> = Result<T, Halt>;

/// The emulator: decodes opcodes one at a time and keeps a stack, marks and memo.
pub(super) struct Walker<'d> {
    pub(super) data: &'d [u8],
    pub(super) pos: usize,
    pub(super) limits: PickleLimits,
    /// Sniffing: every anomaly is fatal and nothing is collected.
    pub(super) strict: bool,
    /// Walking the nested pickle of a joblib object array.
    pub(super) nested: bool,
    pub(super) stack: Vec<Value>,
    /// Stack lengths at each open `MARK`.
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    /// The memo reached `max_memo`: new keys are dropped.
    memo_full: bool,
    /// A `MEMOIZE` ran on a full memo, whose key we cannot know: no entry is trusted any more.
    memo_unreliable: bool,
    ops: usize,
    pub(super) report: PickleReport,
    pub(super) import_ids: HashMap<(String, String), usize>,
    /// What each import builds when called, by import index.
    pub(super) kinds: Vec<Kind>,
    pub(super) imports_capped: bool,
    /// The one string value that sniffing pushes.
    pub(super) empty: Rc<str>,
    /// Dict keys given to string values, shared by every value under the same key.
    pub(super) keys: HashMap<usize, (Rc<str>, Arc<str>)>,
    errors_omitted: usize,
}

/// The stack, marks and memo of a pickle put aside while a nested one is walked.
pub(super) struct Saved {
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    memo_full: bool,
    memo_unreliable: bool,
}

impl<'d> Walker<'d> {
    pub(super) fn new(data: &'d [u8], limits: PickleLimits, strict: bool) -> Self {
        Walker {
            data,
            pos: 0,
            limits,
            strict,
            nested: false,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            memo_full: false,
            memo_unreliable: false,
            keys: HashMap::new(),
            ops: 0,
            report: PickleReport::default(),
            import_ids: HashMap::new(),
            kinds: Vec::new(),
            imports_capped: false,
            empty: Rc::from(""),
            errors_omitted: 0,
        }
    }

    /// Walks one pickle from `pos` through its `STOP`, with a fresh stack and memo.
    pub(super) fn walk_pickle(&mut self) -> Step<()> {
        self.reset();
        while !self.step()? {}
        Ok(())
    }

    /// A fresh stack and memo for the next pickle.
    pub(super) fn reset(&mut self) {
        self.stack.clear();
        self.marks.clear();
        self.memo.clear();
        self.memo_full = false;
        self.memo_unreliable = false;
    }

    /// Puts the current pickle's stack, marks and memo aside and starts fresh ones.
    pub(super) fn save(&mut self) -> Saved {
        let saved = Saved {
            stack: std::mem::take(&mut self.stack),
            marks: std::mem::take(&mut self.marks),
            memo: std::mem::take(&mut self.memo),
            memo_full: self.memo_full,
            memo_unreliable: self.memo_unreliable,
        };
        self.reset();
        saved
    }

    /// Takes back what [`save`](Self::save) put aside.
    pub(super) fn restore(&mut self, saved: Saved) {
        self.stack = saved.stack;
        self.marks = saved.marks;
        self.memo = saved.memo;
        self.memo_full = saved.memo_full;
        self.memo_unreliable = saved.memo_unreliable;
    }

    /// Records an error message, within [`MAX_ERRORS`]; the message is only built when kept.
    pub(super) fn error(&mut self, message: impl FnOnce() -> String) {
        if self.report.errors.len() < MAX_ERRORS {
            self.report.errors.push(message());
        } else {
            self.errors_omitted += 1;
        }
    }

    /// The report, with a note of the errors that were not kept.
    pub(super) fn finish(mut self) -> PickleReport {
        if self.errors_omitted > 0 {
            let note = format!("{} further errors omitted", self.errors_omitted);
            self.report.errors.push(note);
        }
        self.report
    }

    /// Something CPython would reject: fatal when sniffing, recorded otherwise.
    fn anomaly(&mut self, at: usize, op: &str, message: &str) -> Step<()> {
        if self.strict {
            return Err(Halt::Broken(String::new()));
        }
        self.error(|| format!("offset {at}: {op}: {message}"));
        Ok(())
    }

    pub(super) fn broken(&self, at: usize, op: &str, message: &str) -> Halt {
        Halt::Broken(format!("offset {at}: {op}: {message}"))
    }

    // --- Reading arguments.

    fn fixed(&mut self, n: usize) -> Step<&'d [u8]> {
        let rest = &self.data[self.pos..];
        if rest.len() < n {
            self.pos = self.data.len();
            return Err(Halt::Eof);
        }
        self.pos += n;
        Ok(&rest[..n])
    }

    fn uint(&mut self, n: usize) -> Step<u64> {
        let bytes = self.fixed(n)?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// A protocol-0 argument: the bytes up to the next newline, which is consumed.
    pub(super) fn line(&mut self) -> Step<&'d [u8]> {
        let rest = &self.data[self.pos..];
        match memchr::memchr(b'\n', rest) {
            Some(end) => {
                self.pos += end + 1;
                Ok(&rest[..end])
            }
            None => {
                self.pos = self.data.len();
                Err(Halt::Eof)
            }
        }
    }

    /// A decimal protocol-0 argument (`GET`, `PUT`).
    fn decimal_line(&mut self, at: usize, op: &'static str) -> Step<Option<u64>> {
        let line = self.line()?;
        let text = std::str::from_utf8(line).unwrap_or("").trim();
        match text.parse::<u64>() {
            Ok(n) => Ok(Some(n)),
            Err(_) => {
                self.anomaly(at, op, "argument is not a decimal index")?;
                Ok(None)
            }
        }
    }

    // --- Stack and memo.

    fn fence(&self) -> usize {
        self.marks
            .last()
            .copied()
            .unwrap_or(0)
            .min(self.stack.len())
    }

    pub(super) fn push(&mut self, value: Value) -> Step<()> {
        if self.stack.len() + self.marks.len() >= self.limits.max_stack {
            return Err(Halt::Limit(format!(
                "offset {}: stack limit of {} items reached",
                self.pos, self.limits.max_stack
            )));
        }
        self.stack.push(value);
        Ok(())
    }

    fn pop(&mut self, at: usize, op: &str) -> Step<Value> {
        if self.stack.len() > self.fence() {
            Ok(self.stack.pop().unwrap_or(Value::Opaque))
        } else {
            self.anomaly(at, op, "stack underflow")?;
            Ok(Value::Opaque)
        }
    }

    /// The value on top of the stack, which stays there.
    fn top(&mut self, at: usize, op: &str) -> Step<Value> {
        if self.stack.len() > self.fence() {
            Ok(self.stack.last().cloned().unwrap_or(Value::Opaque))
        } else {
            self.anomaly(at, op, "stack underflow")?;
            Ok(Value::Opaque)
        }
    }

    /// Closes the innermost mark; the items above it are `stack[start..]`, left for the caller
    /// to read and truncate.
    fn pop_mark(&mut self, at: usize, op: &str) -> Step<usize> {
        match self.marks.pop() {
            Some(start) => Ok(start.min(self.stack.len())),
            None => {
                self.anomaly(at, op, "no MARK to close")?;
                Ok(self.stack.len())
            }
        }
    }

    /// Closes the innermost mark and discards the items above it.
    fn drop_mark(&mut self, at: usize, op: &str) -> Step<usize> {
        let start = self.pop_mark(at, op)?;
        let count = self.stack.len() - start;
        self.stack.truncate(start);
        Ok(count)
    }

    fn memo_put(&mut self, key: u64, value: Value) {
        if let Some(slot) = self.memo.get_mut(&key) {
            *slot = value;
        } else if self.memo.len() < self.limits.max_memo {
            self.memo.insert(key, value);
        } else if !self.memo_full {
            self.memo_full = true;
            let (pos, max) = (self.pos, self.limits.max_memo);
            self.error(|| {
                format!("offset {pos}: memo limit of {max} entries reached; later entries are not resolved")
            });
        }
    }

    fn memo_get(&mut self, at: usize, op: &str, key: Option<u64>) -> Step<Value> {
        if self.memo_unreliable {
            return Ok(Value::Opaque);
        }
        match key.and_then(|key| self.memo.get(&key)) {
            Some(value) => Ok(value.clone()),
            None if self.memo_full => Ok(Value::Opaque),
            None => {
                self.anomaly(at, op, "no memo entry at this index")?;
                Ok(Value::Opaque)
            }
        }
    }

    // --- One opcode.

    /// Decodes and emulates one opcode; true after `STOP`.
    pub(super) fn step(&mut self) -> Step<bool> {
        let at = self.pos;
        let Some(&op) = self.data.get(at) else {
            return Err(Halt::Eof);
        };
        if self.ops >= self.limits.max_ops {
            return Err(Halt::Limit(format!(
                "offset {at}: opcode limit of {} reached",
                self.limits.max_ops
            )));
        }
        let Some(name) = op_name(op) else {
            return Err(Halt::Broken(format!(
                "offset {at}: unknown opcode 0x{op:02x}"
            )));
        };
        self.ops += 1;
        self.pos += 1;
        match op {
            b'(' => {
                if self.stack.len() + self.marks.len() >= self.limits.max_stack {
                    return Err(Halt::Limit(format!(
                        "offset {at}: stack limit of {} items reached",
                        self.limits.max_stack
                    )));
                }
                self.marks.push(self.stack.len());
            }
            b'.' => {
                self.pop(at, name)?;
                return Ok(true);
            }
            b'0' => {
                if self.marks.last() == Some(&self.stack.len()) {
                    self.marks.pop();
                } else {
                    self.pop(at, name)?;
                }
            }
            b'1' => {
                self.drop_mark(at, name)?;
            }
            b'2' => {
                let value = self.top(at, name)?;
                self.push(value)?;
            }
            b'F' => {
                let line = self.line()?;
                if !is_float_text(line) {
                    self.anomaly(at, name, "not a float")?;
                }
                self.push(Value::Opaque)?;
            }
            b'I' | b'L' => {
                let line = self.line()?;
                let digits = if op == b'L' {
                    line.strip_suffix(b"L").unwrap_or(line)
                } else {
                    line
                };
                if !is_int_text(digits) {
                    self.anomaly(at, name, "not an integer")?;
                }
                self.push(int_text(digits))?;
            }
            b'J' => {
                let bytes = self.fixed(4)?;
                self.push(long_bytes(bytes))?;
            }
            b'K' | b'M' => {
                let n = self.uint(if op == b'K' { 1 } else { 2 })?;
                self.push(Value::Int(n as i64))?;
            }
            b'G' => {
                self.fixed(8)?;
                self.push(Value::Opaque)?;
            }
            0x8a | 0x8b => {
                let len = if op == 0x8a {
                    self.uint(1)?
                } else {
                    self.uint(4)?
                };
                if op == 0x8b && len > i32::MAX as u64 {
                    return Err(self.broken(at, name, "negative byte count"));
                }
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                let bytes = self.fixed(len)?;
                self.push(long_bytes(bytes))?;
            }
            b'N' => self.push(Value::None)?,
            b')' => self.push(Value::tuple(Vec::new()))?,
            b'}' => self.push(self.new_dict())?,
            b']' => self.push(self.new_list())?,
            0x88 | 0x89 | 0x8f | 0x97 => self.push(Value::Opaque)?,
            b'P' => {
                let line = self.line()?;
                if !line.is_ascii() {
                    self.anomaly(at, name, "persistent id is not ASCII")?;
                }
                self.string(at, line);
                self.push(Value::Opaque)?;
            }
            b'Q' => {
                self.pop(at, name)?;
                self.push(Value::Opaque)?;
            }
            b'R' => {
                let args = self.pop(at, name)?;
                let callable = self.pop(at, name)?;
                self.call(&callable);
                let value = self.reduce(&callable, &args);
                self.push(value)?;
            }
            b'S' => {
                let line = self.line()?;
                let body = match line {
                    [q, body @ .., last] if (*q == b'\'' || *q == b'"') && q == last => body,
                    _ => {
                        self.anomaly(at, name, "argument is not quoted")?;
                        line
                    }
                };
                let (value, ok) = unescape(body, self.limits.max_string);
                if !ok {
                    self.anomaly(at, name, "bad escape")?;
                }
                let value = self.string(at, &value);
                self.push(value)?;
            }
            b'V' => {
                let line = self.line()?;
                let value = raw_unicode_unescape(line, self.limits.max_string);
                let value = self.string(at, value.as_bytes());
                self.push(value)?;
            }
            b'T' => {
                let len = self.uint(4)?;
                if len > i32::MAX as u64 {
                    return Err(self.broken(at, name, "negative byte count"));
                }
                self.counted_string(at, len)?;
            }
            b'U' | b'C' | 0x8c => {
                let len = self.uint(1)?;
                self.counted_string(at, len)?;
            }
            b'X' | b'B' => {
                let len = self.uint(4)?;
                self.counted_string(at, len)?;
            }
            0x8d | 0x8e | 0x96 => {
                let len = self.uint(8)?;
                self.counted_string(at, len)?;
            }
            b'a' => {
                let item = self.pop(at, name)?;
                let target = self.top(at, name)?;
                self.append(&target, std::slice::from_ref(&item));
            }
            b'e' => {
                let start = self.pop_mark(at, name)?;
                let items = self.stack.split_off(start);
                let target = self.top(at, name)?;
                self.append(&target, &items);
            }
            0x90 => {
                self.drop_mark(at, name)?;
                self.top(at, name)?;
            }
            b'b' => {
                let state = self.pop(at, name)?;
                let target = self.top(at, name)?;
                self.call(&target);
                self.build(at, &target, &state)?;
            }
            b'c' => {
                let (module, global) = self.name_lines(at, name)?;
                let value = self.import(at, &module, &global, false);
                self.push(value)?;
            }
            b'i' => {
                let (module, global) = self.name_lines(at, name)?;
                let class = self.import(at, &module, &global, true);
                self.drop_mark(at, name)?;
                self.push(self.instance(&class))?;
            }
            0x93 => {
                let global = self.pop(at, name)?;
                let module = self.pop(at, name)?;
                let text = |value: &Value| match value {
                    Value::Str(s, _) => Some(s.to_string()),
                    _ => None,
                };
                let (module, global) = (text(&module), text(&global));
                let resolved = module.is_some() && global.is_some();
                if self.strict && !resolved {
                    return Err(self.broken(at, name, "operands are not strings"));
                }
                let module = module.as_deref().unwrap_or(UNRESOLVED);
                let global = global.as_deref().unwrap_or(UNRESOLVED);
                let value = self.import_named(at, module, global, false, resolved);
                self.push(value)?;
            }
            0x82..=0x84 => {
                let code = match op {
                    0x82 => self.uint(1)?,
                    0x83 => self.uint(2)?,
                    _ => self.uint(4)?,
                };
                if code == 0 || code > i32::MAX as u64 {
                    self.anomaly(at, name, "extension code is not positive")?;
                }
                let value = self.import(at, "<extension>", &code.to_string(), false);
                self.push(value)?;
            }
            b'd' | b'u' => {
                let start = self.pop_mark(at, name)?;
                let items = self.stack.split_off(start);
                if items.len() % 2 != 0 {
                    self.anomaly(at, name, "odd number of items")?;
                }
                let target = if op == b'd' {
                    self.new_dict()
                } else {
                    self.top(at, name)?
                };
                for pair in items.chunks_exact(2) {
                    self.set_item(&target, &pair[0], &pair[1]);
                }
                if op == b'd' {
                    self.push(target)?;
                }
            }
            b'l' => {
                let start = self.pop_mark(at, name)?;
                let items = self.stack.split_off(start);
                let list = self.new_list();
                self.append(&list, &items);
                self.push(list)?;
            }
            b't' => {
                let start = self.pop_mark(at, name)?;
                let items = self.stack.split_off(start);
                self.push(Value::tuple(items))?;
            }
            0x91 => {
                self.drop_mark(at, name)?;
                self.push(Value::Opaque)?;
            }
            0x85..=0x87 => {
                let mut items = Vec::with_capacity(3);
                for _ in 0..(op - 0x84) {
                    items.push(self.pop(at, name)?);
                }
                items.reverse();
                self.push(Value::tuple(items))?;
            }
            b's' => {
                let value = self.pop(at, name)?;
                let key = self.pop(at, name)?;
                let target = self.top(at, name)?;
                self.set_item(&target, &key, &value);
            }
            b'o' => {
                let start = self.pop_mark(at, name)?;
                let class = self.stack.get(start).cloned();
                match &class {
                    Some(class) => self.call(class),
                    None => self.anomaly(at, name, "no class to instantiate")?,
                }
                self.stack.truncate(start);
                self.push(class.map_or(Value::Opaque, |c| self.instance(&c)))?;
            }
            0x81 | 0x92 => {
                if op == 0x92 {
                    self.pop(at, name)?;
                }
                self.pop(at, name)?;
                let class = self.pop(at, name)?;
                self.call(&class);
                self.push(self.instance(&class))?;
            }
            b'g' => {
                let key = self.decimal_line(at, name)?;
                let value = self.memo_get(at, name, key)?;
                self.push(value)?;
            }
            b'h' | b'j' => {
                let key = self.uint(if op == b'h' { 1 } else { 4 })?;
                let value = self.memo_get(at, name, Some(key))?;
                self.push(value)?;
            }
            b'p' | b'q' | b'r' => {
                let key = match op {
                    b'p' => self.decimal_line(at, name)?,
                    b'q' => Some(self.uint(1)?),
                    _ => Some(self.uint(4)?),
                };
                let value = self.top(at, name)?;
                if let Some(key) = key {
                    self.memo_put(key, value);
                }
            }
            0x94 => {
                let value = self.top(at, name)?;
                if self.memo_full {
                    self.memo_unreliable = true;
                } else {
                    self.memo_put(self.memo.len() as u64, value);
                }
            }
            0x80 => {
                let version = self.uint(1)?;
                if version > u64::from(PROTOCOL_MAX) {
                    self.anomaly(at, name, "unsupported protocol")?;
                }
            }
            0x95 => {
                let len = self.uint(8)?;
                // A sniffed prefix may well end inside a frame.
                if !self.strict && len > (self.data.len() - self.pos) as u64 {
                    self.anomaly(at, name, "frame runs past the end of the data")?;
                }
            }
            0x98 => {
                self.top(at, name)?;
            }
            _ => return Err(self.broken(at, name, "opcode not handled")),
        }
        Ok(false)
    }
}

/// The value of a protocol-0 `INT`/`LONG` argument: decimal, else opaque (CPython also takes
/// other bases, which honest pickles never write).
fn int_text(digits: &[u8]) -> Value {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .map_or(Value::Opaque, Value::Int)
}

/// The value of a little-endian two's complement integer (`BININT`, `LONG1`, `LONG4`):
/// opaque past 8 bytes.
fn long_bytes(bytes: &[u8]) -> Value {
    let Some(&last) = bytes.last() else {
        return Value::Int(0);
    };
    if bytes.len() > 8 {
        return Value::Opaque;
    }
    let mut full = if last & 0x80 != 0 { [0xff; 8] } else { [0; 8] };
    full[..bytes.len()].copy_from_slice(bytes);
    Value::Int(i64::from_le_bytes(full))
}
