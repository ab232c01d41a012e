//! The HDF5 attribute walker (Keras `.h5` models).
#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl::content::model::{hdf5_strings, is_hdf5, LAMBDA_TOKEN_LEN};

fuzz_target!(|data: &[u8]| {
    let _ = is_hdf5(data);
    if let Ok(found) = hdf5_strings(data) {
        let mut given = 0;
        for s in &found.strings {
            // JSON escapes only shrink a value: it never runs past the end of the file.
            assert!(s.offset + s.value.len() <= data.len());
            given += s.value.len();
        }
        // Heap objects given many times are bounded by the file's size.
        assert!(given <= 2 * (data.len() + (1 << 20)));
        for &at in &found.lambdas {
            assert_eq!(data.get(at..at + LAMBDA_TOKEN_LEN), Some(&b"\"Lambda\""[..]));
        }
    }
});
