//! The TensorFlow SavedModel readers (saved_model.pb, keras_metadata.pb).
#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl::content::model::{
    is_keras_metadata, is_saved_model, keras_metadata_strings, saved_model_strings,
};

fuzz_target!(|data: &[u8]| {
    let _ = (is_saved_model(data), is_keras_metadata(data));
    for found in [saved_model_strings(data), keras_metadata_strings(data)] {
        for s in found.strings {
            assert!(s.offset + s.value.len() <= data.len());
        }
        for at in found.lambdas {
            assert_eq!(data.get(at..at + 8), Some(&b"\"Lambda\""[..]));
        }
    }
});
