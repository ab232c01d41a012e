//! joblib's arrays inside the pickle stream.
//!
//! `joblib.dump` pickles each numpy array as a `joblib.numpy_pickle.NumpyArrayWrapper` whose
//! state (`BUILD`) gives its shape, order and dtype, and writes the array itself into the stream
//! right after that `BUILD`: with joblib 1.2 and later (state field
//! `numpy_array_alignment_bytes` not `None`) one byte giving a padding length and that many
//! padding bytes, then `count × itemsize` raw bytes (C or Fortran order, the same count
//! either way). An array of Python objects is instead a whole nested pickle (protocol 5, read
//! by a plain unpickler). `joblib.load` reads the array as soon as that `BUILD` runs, so the
//! walk skips exactly those bytes and goes on with the next opcode.

use super::values::Dict;

/// What follows a wrapper's `BUILD`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Array {
    /// Raw bytes, padding included: skip this many.
    Raw(usize),
    /// A nested pickle (an object array).
    Pickle,
}

/// Where the array after a wrapper with `state` ends, given the bytes `rest` after the
/// `BUILD`; an error (numbers only, never content) when it cannot be sized or runs past the
/// end of the data.
pub(super) fn array_after(state: &Dict, rest: &[u8]) -> Result<Array, String> {
    let dtype = match &state.dtype {
        Some(Some(dtype)) => dtype.get(),
        Some(None) => return Err("the wrapper's dtype is not a numpy.dtype".into()),
        None => return Err("the wrapper has no dtype".into()),
    };
    if dtype.object {
        return Ok(Array::Pickle);
    }
    let count = match state.shape {
        Some(Ok(count)) => count,
        Some(Err(why)) => return Err(why.into()),
        None => return Err("the wrapper has no shape".into()),
    };
    let Some(itemsize) = dtype.itemsize else {
        return Err("the size of the wrapper's dtype is unknown".into());
    };
    let Some(bytes) = count.checked_mul(itemsize) else {
        return Err(format!(
            "{count} elements of {itemsize} bytes overflow 64 bits"
        ));
    };
    let padding = if state.padded == Some(true) {
        match rest.first() {
            Some(&n) => 1 + u64::from(n),
            None => return Err("the data ends before the array's padding byte".into()),
        }
    } else {
        0
    };
    let total = bytes.saturating_add(padding);
    match usize::try_from(total) {
        Ok(total) if total <= rest.len() => Ok(Array::Raw(total)),
        _ => Err(format!(
            "the array takes {total} bytes, {} are left",
            rest.len()
        )),
    }
}
