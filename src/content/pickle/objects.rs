//! What the call and container opcodes build: keys for string values in every key/value
//! structure a pickle can express, and joblib's arrays, which are skipped.
//!
//! A string value gets its key from `SETITEM`/`SETITEMS` and `DICT` (which is also how an
//! object's state dict, its slot-state dict and the keyword arguments of `NEWOBJ_EX` are
//! built), and from `dict(pairs)` / `OrderedDict(pairs)` called by `REDUCE` on a list or tuple
//! of `(key, value)` 2-tuples or 2-lists (Python 2 pickles `OrderedDict` that way). A key is
//! given once: the first structure that holds a value names it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use super::joblib::{array_after, Array};
use super::values::{Dict, Dtype, List, Value};
use super::vm::{Halt, Step, Walker};

/// Imports that the walk follows by what calling them builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Other,
    /// `joblib.numpy_pickle.NumpyArrayWrapper`.
    Wrapper,
    /// `numpy.dtype`.
    Dtype,
    /// `dict` and `OrderedDict`, which take an iterable of pairs.
    DictOfPairs,
    /// `copyreg._reconstructor`, `__newobj__` and `__newobj_ex__`: they build an instance of
    /// their first argument.
    Reconstructor,
}

impl Kind {
    /// The kind of `module.name` as pickled (Python 2 names included).
    pub(super) fn of(module: &str, name: &str) -> Kind {
        match (module, name) {
            (
                "joblib.numpy_pickle" | "sklearn.externals.joblib.numpy_pickle",
                "NumpyArrayWrapper",
            ) => Kind::Wrapper,
            ("numpy", "dtype") => Kind::Dtype,
            ("builtins" | "__builtin__", "dict") | ("collections", "OrderedDict") => {
                Kind::DictOfPairs
            }
            ("copyreg" | "copy_reg", "_reconstructor" | "__newobj__" | "__newobj_ex__") => {
                Kind::Reconstructor
            }
            _ => Kind::Other,
        }
    }
}

impl Walker<'_> {
    fn kind(&self, value: &Value) -> Kind {
        match value {
            Value::Global(i) => self.kinds.get(*i).copied().unwrap_or(Kind::Other),
            _ => Kind::Other,
        }
    }

    /// A new empty dict (opaque when sniffing, which needs no state).
    pub(super) fn new_dict(&self) -> Value {
        if self.strict {
            return Value::Opaque;
        }
        Value::Dict(Rc::new(RefCell::new(Dict::default())))
    }

    /// A new empty list (opaque when sniffing).
    pub(super) fn new_list(&self) -> Value {
        if self.strict {
            return Value::Opaque;
        }
        Value::List(Rc::new(RefCell::new(List::default())))
    }

    /// `SETITEM` and each pair of `SETITEMS` and `DICT`: the value gets the key, and a dict
    /// keeps the fields a joblib wrapper's state needs.
    pub(super) fn set_item(&mut self, target: &Value, key: &Value, value: &Value) {
        if let Value::Str(key, _) = key {
            if let Value::Str(_, Some(i)) | Value::Long(i) = value {
                self.give_key(key, *i);
            }
            if let Value::Dict(dict) = target {
                dict.borrow_mut().set(key, value);
            }
        }
    }

    /// `APPEND`, `APPENDS` and `LIST` onto `target`.
    pub(super) fn append(&mut self, target: &Value, items: &[Value]) {
        let Value::List(list) = target else {
            return;
        };
        for item in items {
            // Asked before the list is borrowed: the item may be the list itself.
            let pair = item.as_pair();
            list.borrow_mut().append(item, pair);
        }
    }

    /// What `REDUCE` of `callable` on `args` builds.
    pub(super) fn reduce(&mut self, callable: &Value, args: &Value) -> Value {
        let first = match args {
            Value::Tuple(items, _) => items.first(),
            _ => None,
        };
        match (self.kind(callable), first) {
            (Kind::Wrapper, _) => Value::Wrapper,
            (Kind::Reconstructor, Some(class)) => self.instance(class),
            (Kind::Dtype, Some(Value::Str(typestr, _))) => {
                Value::Dtype(Rc::new(Cell::new(Dtype::from_typestr(typestr))))
            }
            (Kind::DictOfPairs, Some(pairs)) => {
                match pairs {
                    // Taken, not copied: a list reduced again has given its keys already.
                    Value::List(list) => {
                        let pairs = std::mem::take(&mut list.borrow_mut().pairs);
                        for (key, i) in pairs {
                            self.give_key(&key, i);
                        }
                    }
                    Value::Tuple(items, _) => {
                        for (key, i) in items.iter().filter_map(Value::as_pair) {
                            self.give_key(&key, i);
                        }
                    }
                    _ => {}
                }
                Value::Opaque
            }
            _ => Value::Opaque,
        }
    }

    /// What instantiating `class` (`NEWOBJ`, `NEWOBJ_EX`, `OBJ`, `INST`) builds.
    pub(super) fn instance(&self, class: &Value) -> Value {
        match self.kind(class) {
            Kind::Wrapper => Value::Wrapper,
            _ => Value::Opaque,
        }
    }

    /// `BUILD` of `target` with `state`: a dtype takes its size and flags; a joblib wrapper
    /// is followed by its array, which is skipped (outside a nested pickle, whose plain
    /// unpickler does not know wrappers). The stack top then stands for the array.
    pub(super) fn build(&mut self, at: usize, target: &Value, state: &Value) -> Step<()> {
        match target {
            Value::Dtype(dtype) => {
                let mut built = dtype.get();
                built.build(state);
                dtype.set(built);
            }
            Value::Wrapper if !self.strict && !self.nested => {
                let fields = wrapper_state(state);
                let rest = &self.data[self.pos..];
                match array_after(&fields, rest) {
                    Ok(Array::Raw(n)) => self.pos += n,
                    Ok(Array::Pickle) => self.walk_nested()?,
                    Err(why) => {
                        return Err(Halt::Broken(format!(
                            "offset {at}: BUILD: the joblib array after NumpyArrayWrapper \
                             cannot be skipped: {why}"
                        )))
                    }
                }
                if let Some(top) = self.stack.last_mut() {
                    *top = Value::Opaque;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Walks the nested pickle of a joblib object array, with its own stack and memo, then
    /// goes back to the outer one.
    fn walk_nested(&mut self) -> Step<()> {
        let outer = self.save();
        self.nested = true;
        let result = loop {
            match self.step() {
                Ok(true) => break Ok(()),
                Ok(false) => {}
                Err(halt) => break Err(halt),
            }
        };
        self.nested = false;
        self.restore(outer);
        result
    }

    /// Gives `key` to the recorded string `i`, unless it has one already.
    pub(super) fn give_key(&mut self, key: &Rc<str>, i: usize) {
        if key.is_empty() || self.report.strings.get(i).is_none_or(|s| s.key.is_some()) {
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
        self.report.strings[i].key = Some(shared);
    }
}

/// The wrapper fields of a `BUILD` state: a dict, or a `(dict, slot_dict)` pair whose slot
/// state is applied after the dict.
fn wrapper_state(state: &Value) -> Dict {
    let dict = |v: &Value| match v {
        Value::Dict(d) => Some(Rc::clone(d)),
        _ => None,
    };
    match state {
        Value::Dict(d) => d.borrow().clone(),
        Value::Tuple(items, _) if items.len() == 2 => {
            let base = dict(&items[0]).map(|d| d.borrow().clone());
            let base = base.unwrap_or_default();
            match dict(&items[1]) {
                Some(slots) => base.merged(&slots.borrow()),
                None => base,
            }
        }
        _ => Dict::default(),
    }
}
