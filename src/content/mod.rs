//! Content decoders: formats chosen by their bytes (magic numbers and structure), never by
//! file name alone, each yielding text to scan with a map back to where it came from.

pub mod model_meta;
pub mod pickle;
