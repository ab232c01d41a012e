//! Model metadata: safetensors headers, GGUF key/value strings, ONNX metadata, `.npy` headers,
//! TensorFlow SavedModel strings (`saved_model.pb`, `keras_metadata.pb`).
//!
//! Each format is recognised by its bytes (`is_*`) and walked without trusting a single length or
//! count in it: every count is bounded by the bytes that are left (and, for GGUF, by
//! [`GgufLimits`]), recursion has a fixed depth, tensor data is never read or copied, and no input
//! makes these functions panic. The walkers return the metadata strings as [`MetaString`]s with a
//! dotted key saying where the string sits and the byte offset of its value in the file, so a
//! finding maps back to the file. Empty strings are not reported.
//!
//! One file per format (`hdf5` a folder: Keras `.h5` models' attributes); `keras` finds `Lambda` layers in a Keras `config.json`. The shared
//! readers live beside this folder: `json` (positions kept), `protobuf` (wire format, for ONNX)
//! and `pylit` (Python literals, for `.npy` headers).

mod gguf;
mod hdf5;
mod keras;
mod npy;
mod onnx;
mod safetensors;
mod savedmodel;
#[cfg(test)]
mod tests;

pub use gguf::{gguf_strings, is_gguf, GgufLimits};
pub use hdf5::{hdf5_strings, is_hdf5, Hdf5Strings};
pub use keras::{keras_lambda_offsets, lambda_class_offsets, LAMBDA_TOKEN_LEN};
pub use npy::{is_npy, npy_header, NpyHeader};
pub use onnx::{is_onnx, onnx_strings};
pub use safetensors::{is_safetensors, safetensors_strings};
pub use savedmodel::{
    is_keras_metadata, is_saved_model, keras_metadata_strings, saved_model_strings,
    SavedModelStrings,
};

/// A metadata string found in a model file.
///
/// `key` is a dotted path such as `__metadata__.hf_token`, `general.name`,
/// `tokenizer.ggml.tokens[3]`, `metadata_props.api_key`, `graph.doc_string` or
/// `graph.node[2].doc_string`; `value` holds the string's bytes (JSON escapes decoded for
/// safetensors, raw bytes otherwise) and `offset` is the byte offset of the value in the file (for
/// a JSON string, the byte after its opening quote).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaString {
    /// Where the string sits in the file's metadata, as a dotted path.
    pub key: String,
    /// The string's bytes.
    pub value: Vec<u8>,
    /// Byte offset of the value in the file.
    pub offset: usize,
    /// The string is a key's own name (at `offset`), not a value: a secret in it is a
    /// secret in a name.
    pub is_key: bool,
    /// The record of a record log the string is in (TensorBoard events, W&B run log).
    pub record: Option<u64>,
    /// The table row the string is in (Parquet); the column is `key`.
    pub row: Option<u64>,
}

pub(super) fn le_u64(data: &[u8], at: usize) -> Option<u64> {
    let bytes = data.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

pub(super) fn le_u32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}
