//! Collecting what the walk meets: string constants (with the values they leave on the
//! stack) and imports (with the verdict of the policy and what calling them builds).

use std::rc::Rc;

use super::objects::Kind;
use super::policy::{is_identifier, judge, INDIRECTION};
use super::strings::truncate_chars;
use super::values::Value;
use super::vm::{Halt, Step, Walker, MAX_IMPORTS, NAME_CAP};
use super::{ImportVerdict, PickleImport, PickleString};

impl Walker<'_> {
    /// Records a string constant and returns its stack value.
    pub(super) fn string(&mut self, at: usize, bytes: &[u8]) -> Value {
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
    pub(super) fn counted_string(&mut self, at: usize, len: u64) -> Step<()> {
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
    pub(super) fn import(&mut self, at: usize, module: &str, name: &str, called: bool) -> Value {
        self.import_named(at, module, name, called, true)
    }

    /// Records an import whose module or name may be unknown (`resolved` false): a name
    /// computed at load time is indirection whatever the part that is known.
    pub(super) fn import_named(
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
        self.kinds.push(Kind::of(module, name));
        self.import_ids.insert(key, index);
        Value::Global(index)
    }

    /// Marks the callable consumed by a call opcode.
    pub(super) fn call(&mut self, callable: &Value) {
        if let Value::Global(index) = *callable {
            if let Some(import) = self.report.imports.get_mut(index) {
                import.called = true;
            }
        }
    }

    /// The `module` and `name` lines of `GLOBAL` and `INST`.
    pub(super) fn name_lines(&mut self, at: usize, op: &'static str) -> Step<(String, String)> {
        let module = self.line()?;
        let name = self.line()?;
        if self.strict && !(is_dotted_identifier(module) && is_dotted_identifier(name)) {
            return Err(self.broken(at, op, "not an identifier"));
        }
        let cap =
            |line: &[u8]| String::from_utf8_lossy(&line[..line.len().min(NAME_CAP)]).into_owned();
        Ok((cap(module), cap(name)))
    }
}

fn is_dotted_identifier(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|s| s.split('.').all(is_identifier))
}
