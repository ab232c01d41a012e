//! The `.npy` header parser (Python dict literal).
#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl::content::model::{is_npy, npy_header};

fuzz_target!(|data: &[u8]| {
    let _ = is_npy(data);
    if let Ok(h) = npy_header(data) {
        assert!(h.data_offset <= data.len());
    }
});
