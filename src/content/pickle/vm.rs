//! The opcode machine: decodes one opcode at a time and emulates its effect on a stack, marks
//! and a memo, so that imports are resolved and call opcodes attributed to them.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use super::opcodes::op_name;
use super::policy::{is_identifier, judge, INDIRECTION};
use super::strings::{is_float_text, is_int_text, raw_unicode_unescape, truncate_chars, unescape};
use super::{ImportVerdict, PickleImport, PickleLimits, PickleReport, PickleString};

pub(super) const PROTOCOL_MAX: u8 = 5;
/// Longest string kept on the emulated stack as a possible module or name for `STACK_GLOBAL`.
pub(super) const NAME_CAP: usize = 1024;
/// Distinct imports recorded; a stream naming more is hostile.
const MAX_IMPORTS: usize = 100_000;
/// Error messages recorded; the rest are counted in one final message.
pub(super) const MAX_ERRORS: usize = 100;
/// Opcodes [`looks_like_pickle`] decodes before claiming data (that builds something).
pub(super) const SNIFF_OPS: usize = 16;
/// Valid opcodes before the end of the data that let a prefix be claimed.
pub(super) const SNIFF_MIN_OPS: usize = 3;
pub(super) const UNRESOLVED: &str = "<unresolved>";

/// A value on the emulated stack or in the memo.
#[derive(Debug, Clone)]
enum Value {
    /// A short string or bytes constant, a possible `STACK_GLOBAL` operand or dict key, with
    /// its index in the report's strings (when recorded).
    Str(Rc<str>, Option<usize>),
    /// A string constant too long to be a name: its index in the report's strings.
    Long(usize),
    /// An imported callable: its index in the report's imports.
    Global(usize),
    /// Anything else.
    Opaque,
}

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
    data: &'d [u8],
    pub(super) pos: usize,
    limits: PickleLimits,
    /// Sniffing: every anomaly is fatal and nothing is collected.
    strict: bool,
    stack: Vec<Value>,
    /// Stack lengths at each open `MARK`.
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    /// The memo reached `max_memo`: new keys are dropped.
    memo_full: bool,
    /// A `MEMOIZE` ran on a full memo, whose key we cannot know: no entry is trusted any more.
    memo_unreliable: bool,
    ops: usize,
    pub(super) report: PickleReport,
    import_ids: HashMap<(String, String), usize>,
    imports_capped: bool,
    /// The one string value that sniffing pushes.
    empty: Rc<str>,
    /// Dict keys given to string values, shared by every value under the same key.
    keys: HashMap<usize, (Rc<str>, Arc<str>)>,
    errors_omitted: usize,
}

impl<'d> Walker<'d> {
    pub(super) fn new(data: &'d [u8], limits: PickleLimits, strict: bool) -> Self {
        Walker {
            data,
            pos: 0,
            limits,
            strict,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            memo_full: false,
            memo_unreliable: false,
            keys: HashMap::new(),
            ops: 0,
            report: PickleReport::default(),
            import_ids: HashMap::new(),
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

    /// Records an error message, within [`MAX_ERRORS`]; the message is only built when kept.
    fn error(&mut self, message: impl FnOnce() -> String) {
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

    fn broken(&self, at: usize, op: &str, message: &str) -> Halt {
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
    fn line(&mut self) -> Step<&'d [u8]> {
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

    fn push(&mut self, value: Value) -> Step<()> {
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

    // --- Collecting.

    /// A dict item (`SETITEM`, `SETITEMS`): a string value under a string key keeps the key,
    /// so that rules that need the name (`aws_secret_access_key`) see it.
    fn pair(&mut self, key: &Value, value: &Value) {
        let (Value::Str(key, _), Value::Str(_, Some(i)) | Value::Long(i)) = (key, value) else {
            return;
        };
        if key.is_empty() || self.report.strings.get(*i).is_none_or(|s| s.key.is_some()) {
            return;
        }
        // One shared copy per key: a memoized key given to many values is not copied for each.
        // Keyed by the `Rc`'s address, which the entry keeps alive; every distinct key is a
        // string of the input, so the copies add up to no more than the input.
        let id = Rc::as_ptr(key).cast::<u8>() as usize;
        let shared = Arc::clone(
            &self
                .keys
                .entry(id)
                .or_insert_with(|| (Rc::clone(key), Arc::from(&**key)))
                .1,
        );
        self.report.strings[*i].key = Some(shared);
    }

    /// Records a string constant and returns its stack value.
    fn string(&mut self, at: usize, bytes: &[u8]) -> Value {
        let mut index = None;
        if !self.strict && !bytes.is_empty() {
            let kept = &bytes[..bytes.len().min(self.limits.max_string)];
            index = Some(self.report.strings.len());
            self.report.strings.push(PickleString {
                offset: at,
                value: kept.to_vec(),
                key: None,
            });
        }
        if self.strict {
            // Sniffing only needs to know that it is a string.
            Value::Str(Rc::clone(&self.empty), None)
        } else if bytes.len() <= NAME_CAP {
            Value::Str(Rc::from(String::from_utf8_lossy(bytes).as_ref()), index)
        } else {
            index.map_or(Value::Opaque, Value::Long)
        }
    }

    /// A length-prefixed string constant; a short read still records what is there.
    fn counted_string(&mut self, at: usize, len: u64) -> Step<()> {
        let rest = &self.data[self.pos..];
        match usize::try_from(len) {
            Ok(len) if len <= rest.len() => {
                self.pos += len;
                let value = self.string(at, &rest[..len]);
                self.push(value)
            }
            _ => {
                self.string(at, rest);
                self.pos = self.data.len();
                Err(Halt::Eof)
            }
        }
    }

    /// Records an import and returns its stack value.
    fn import(&mut self, at: usize, module: &str, name: &str, called: bool) -> Value {
        self.import_named(at, module, name, called, true)
    }

    /// Records an import whose module or name may be unknown (`resolved` false): a name
    /// computed at load time is indirection whatever the part that is known.
    fn import_named(
        &mut self,
        at: usize,
        module: &str,
        name: &str,
        called: bool,
        resolved: bool,
    ) -> Value {
        if self.strict {
            return Value::Opaque;
        }
        let module = truncate_chars(module, NAME_CAP);
        let name = truncate_chars(name, NAME_CAP);
        let key = (module.to_owned(), name.to_owned());
        if let Some(&index) = self.import_ids.get(&key) {
            self.report.imports[index].called |= called;
            return Value::Global(index);
        }
        if self.report.imports.len() >= MAX_IMPORTS {
            if !self.imports_capped {
                self.imports_capped = true;
                self.error(|| {
                    format!(
                        "offset {at}: more than {MAX_IMPORTS} distinct imports are not recorded"
                    )
                });
            }
            return Value::Opaque;
        }
        let mut verdict = judge(module, name);
        if !resolved && !matches!(verdict, ImportVerdict::Dangerous(_)) {
            verdict = ImportVerdict::Dangerous(INDIRECTION);
        }
        let index = self.report.imports.len();
        self.report.imports.push(PickleImport {
            offset: at,
            module: key.0.clone(),
            name: key.1.clone(),
            called,
            verdict,
        });
        self.import_ids.insert(key, index);
        Value::Global(index)
    }

    /// Marks the callable consumed by a call opcode.
    fn call(&mut self, callable: &Value) {
        if let Value::Global(index) = *callable {
            if let Some(import) = self.report.imports.get_mut(index) {
                import.called = true;
            }
        }
    }

    /// The `module` and `name` lines of `GLOBAL` and `INST`.
    fn name_lines(&mut self, at: usize, op: &'static str) -> Step<(String, String)> {
        let module = self.line()?;
        let name = self.line()?;
        if self.strict && !(is_dotted_identifier(module) && is_dotted_identifier(name)) {
            return Err(self.broken(at, op, "not an identifier"));
        }
        let cap =
            |line: &[u8]| String::from_utf8_lossy(&line[..line.len().min(NAME_CAP)]).into_owned();
        Ok((cap(module), cap(name)))
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
                self.push(Value::Opaque)?;
            }
            b'J' | b'K' | b'M' | b'G' => {
                let width = match op {
                    b'J' => 4,
                    b'K' => 1,
                    b'M' => 2,
                    _ => 8,
                };
                self.fixed(width)?;
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
                self.fixed(len)?;
                self.push(Value::Opaque)?;
            }
            b'N' | 0x88 | 0x89 | b'}' | b']' | b')' | 0x8f | 0x97 => self.push(Value::Opaque)?,
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
                self.pop(at, name)?;
                let callable = self.pop(at, name)?;
                self.call(&callable);
                self.push(Value::Opaque)?;
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
                self.pop(at, name)?;
                self.top(at, name)?;
            }
            b'e' | 0x90 => {
                self.drop_mark(at, name)?;
                self.top(at, name)?;
            }
            b'b' => {
                self.pop(at, name)?;
                let target = self.top(at, name)?;
                self.call(&target);
            }
            b'c' => {
                let (module, global) = self.name_lines(at, name)?;
                let value = self.import(at, &module, &global, false);
                self.push(value)?;
            }
            b'i' => {
                let (module, global) = self.name_lines(at, name)?;
                self.import(at, &module, &global, true);
                self.drop_mark(at, name)?;
                self.push(Value::Opaque)?;
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
            b'd' => {
                if self.drop_mark(at, name)? % 2 != 0 {
                    self.anomaly(at, name, "odd number of items")?;
                }
                self.push(Value::Opaque)?;
            }
            b'l' | b't' | 0x91 => {
                self.drop_mark(at, name)?;
                self.push(Value::Opaque)?;
            }
            0x85..=0x87 => {
                for _ in 0..(op - 0x84) {
                    self.pop(at, name)?;
                }
                self.push(Value::Opaque)?;
            }
            b's' => {
                let value = self.pop(at, name)?;
                let key = self.pop(at, name)?;
                self.pair(&key, &value);
                self.top(at, name)?;
            }
            b'u' => {
                let start = self.pop_mark(at, name)?;
                let items = self.stack.split_off(start);
                if items.len() % 2 != 0 {
                    self.anomaly(at, name, "odd number of items")?;
                }
                for pair in items.chunks_exact(2) {
                    self.pair(&pair[0], &pair[1]);
                }
                self.top(at, name)?;
            }
            b'o' => {
                let start = self.pop_mark(at, name)?;
                match self.stack.get(start).cloned() {
                    Some(class) => self.call(&class),
                    None => self.anomaly(at, name, "no class to instantiate")?,
                }
                self.stack.truncate(start);
                self.push(Value::Opaque)?;
            }
            0x81 | 0x92 => {
                if op == 0x92 {
                    self.pop(at, name)?;
                }
                self.pop(at, name)?;
                let class = self.pop(at, name)?;
                self.call(&class);
                self.push(Value::Opaque)?;
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

fn is_dotted_identifier(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|s| s.split('.').all(is_identifier))
}
