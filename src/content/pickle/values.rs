//! What the emulated stack holds: the few kinds of value the walk needs to follow (strings
//! that may be names or dict keys, imports, small integers and tuples, the state of dicts and
//! lists as far as keys and joblib arrays need it), and everything else as one opaque value.
//!
//! Memory stays linear in the input: a tuple keeps at most [`MAX_TUPLE`] items and nests at
//! most [`MAX_DEPTH`] deep (a deeper chain would also make dropping it recurse), and the state
//! of a dict or list holds no [`Value`], so no value can reach itself through the memo and
//! every `Rc` is freed with the walk.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Items kept of a tuple; longer tuples are opaque. numpy arrays have at most 64 dimensions.
pub(super) const MAX_TUPLE: usize = 64;
/// Tuples nested deeper than this are opaque.
pub(super) const MAX_DEPTH: u8 = 8;

/// A value on the emulated stack or in the memo.
#[derive(Debug, Clone)]
pub(super) enum Value {
    /// A short string or bytes constant, a possible `STACK_GLOBAL` operand or dict key, with
    /// its index in the report's strings (when recorded).
    Str(Rc<str>, Option<usize>),
    /// A string constant too long to be a name: its index in the report's strings.
    Long(usize),
    /// An imported callable: its index in the report's imports.
    Global(usize),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// `None`.
    None,
    /// A tuple of at most [`MAX_TUPLE`] items, with its nesting depth (1 for a flat tuple).
    Tuple(Rc<[Value]>, u8),
    /// A list, as far as (key, value) pairs need it.
    List(Rc<RefCell<List>>),
    /// A plain dict, as far as a joblib array wrapper's state needs it.
    Dict(Rc<RefCell<Dict>>),
    /// A `numpy.dtype`; its `BUILD` may still refine it, seen through every copy.
    Dtype(Rc<Cell<Dtype>>),
    /// A `joblib.numpy_pickle.NumpyArrayWrapper`: joblib writes the array right after the
    /// `BUILD` that sets its state.
    Wrapper,
    /// Anything else.
    Opaque,
}

impl Value {
    /// A tuple of `items`, or opaque when too long or too deep.
    pub(super) fn tuple(items: Vec<Value>) -> Value {
        if items.len() > MAX_TUPLE {
            return Value::Opaque;
        }
        let below = items
            .iter()
            .map(|v| match v {
                Value::Tuple(_, depth) => *depth,
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        if below >= MAX_DEPTH {
            return Value::Opaque;
        }
        Value::Tuple(items.into(), below + 1)
    }

    /// A (key, value) pair: a 2-tuple or 2-list whose first item is a short string and whose
    /// second is a recorded string; gives the key and the value's index in the report.
    pub(super) fn as_pair(&self) -> Option<(Rc<str>, usize)> {
        match self {
            Value::Tuple(items, _) => match &items[..] {
                [Value::Str(key, _), Value::Str(_, Some(i)) | Value::Long(i)] => {
                    Some((Rc::clone(key), *i))
                }
                _ => None,
            },
            Value::List(list) => {
                let list = list.borrow();
                match (list.len, &list.first_key, list.second_string) {
                    (2, Some(key), Some(i)) => Some((Rc::clone(key), i)),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// What is kept of a list: enough to tell whether it is itself a (key, value) pair, and the
/// pairs appended to it (for `dict(list_of_pairs)` and Python 2's `OrderedDict`).
#[derive(Debug, Default)]
pub(super) struct List {
    /// Items appended.
    len: usize,
    /// The first item, when a short string.
    first_key: Option<Rc<str>>,
    /// The second item, when a recorded string.
    second_string: Option<usize>,
    /// (key, value) pairs appended, in order; taken by the first call that builds a dict.
    pub(super) pairs: Vec<(Rc<str>, usize)>,
}

impl List {
    /// Appends one item; `pair` is what [`Value::as_pair`] said of it, asked before this
    /// list is borrowed (the item may be the list itself).
    pub(super) fn append(&mut self, item: &Value, pair: Option<(Rc<str>, usize)>) {
        match (self.len, item) {
            (0, Value::Str(key, _)) => self.first_key = Some(Rc::clone(key)),
            (1, Value::Str(_, Some(i)) | Value::Long(i)) => self.second_string = Some(*i),
            _ => {}
        }
        self.len = self.len.saturating_add(1);
        self.pairs.extend(pair);
    }
}

/// What is kept of a dict: the fields of a joblib `NumpyArrayWrapper` state, when set.
#[derive(Debug, Default, Clone)]
pub(super) struct Dict {
    /// `shape`: the element count, or why it cannot be had.
    pub(super) shape: Option<Result<u64, &'static str>>,
    /// `dtype`: the dtype, or `None` when the value is not a `numpy.dtype`.
    pub(super) dtype: Option<Option<Rc<Cell<Dtype>>>>,
    /// `numpy_array_alignment_bytes`, when set: true unless it is `None` (joblib 1.2+ writes
    /// a padding length byte and that many bytes before the array).
    pub(super) padded: Option<bool>,
}

impl Dict {
    /// Records `value` under `key` when it is a wrapper field.
    pub(super) fn set(&mut self, key: &str, value: &Value) {
        match key {
            "shape" => self.shape = Some(element_count(value)),
            "dtype" => {
                self.dtype = Some(match value {
                    Value::Dtype(dtype) => Some(Rc::clone(dtype)),
                    _ => None,
                });
            }
            "numpy_array_alignment_bytes" => self.padded = Some(!matches!(value, Value::None)),
            _ => {}
        }
    }

    /// This state with `other` applied over it, as `BUILD` applies a slot state after the
    /// instance dict.
    pub(super) fn merged(&self, other: &Dict) -> Dict {
        Dict {
            shape: other.shape.or(self.shape),
            dtype: other.dtype.clone().or_else(|| self.dtype.clone()),
            padded: other.padded.or(self.padded),
        }
    }
}

/// The element count of an array shape: the product of a tuple of non-negative integers
/// (1 for the empty tuple), as joblib computes it in 64 bits.
fn element_count(shape: &Value) -> Result<u64, &'static str> {
    let Value::Tuple(dims, _) = shape else {
        return Err("the shape is not a tuple");
    };
    dims.iter().try_fold(1u64, |count, dim| match dim {
        Value::Int(n) => {
            let n = u64::try_from(*n).map_err(|_| "the shape has a negative dimension")?;
            count
                .checked_mul(n)
                .filter(|&c| c <= i64::MAX as u64)
                .ok_or("the element count overflows 64 bits")
        }
        _ => Err("a dimension is not an integer"),
    })
}

/// A numpy dtype as far as the size of an array needs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Dtype {
    /// Bytes per element, when known.
    pub(super) itemsize: Option<u64>,
    /// The dtype holds Python objects: joblib pickles such an array instead of writing bytes.
    pub(super) object: bool,
}

impl Dtype {
    /// The dtype `numpy.dtype(typestr, ...)` makes, as numpy's `__reduce__` names it: a kind
    /// letter and a size (`f4`, `i8`, `b1`, `c16`, `S3`, `V12`, `M8`, `O8`), the size of `U` in
    /// characters of 4 bytes.
    pub(super) fn from_typestr(typestr: &str) -> Dtype {
        let digits = typestr.find(|c: char| c.is_ascii_digit());
        let (kind, size) = typestr.split_at(digits.unwrap_or(typestr.len()));
        let size = size.parse::<u64>().ok();
        let itemsize = match kind {
            "U" => size.and_then(|n| n.checked_mul(4)),
            "b" | "i" | "u" | "f" | "c" | "S" | "a" | "V" | "M" | "m" | "O" => size,
            _ => None,
        };
        Dtype {
            itemsize,
            object: kind == "O",
        }
    }

    /// Applies the state `BUILD` gives a dtype: `(version, byteorder, subarray, names, fields,
    /// elsize, alignment, flags[, metadata])`. `elsize` is set (not -1) for flexible and
    /// structured dtypes; bit 0 of `flags` says the dtype holds objects (a structured dtype
    /// with an object field).
    pub(super) fn build(&mut self, state: &Value) {
        let Value::Tuple(items, _) = state else {
            return;
        };
        if !(7..=9).contains(&items.len()) {
            return;
        }
        if let Value::Int(elsize) = items[5] {
            if let Ok(elsize @ 1..) = u64::try_from(elsize) {
                self.itemsize = Some(elsize);
            }
        }
        if let Some(Value::Int(flags)) = items.get(7) {
            self.object |= flags & 1 != 0;
        }
    }
}
