//! The safetensors header walker.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl::content::model::{is_safetensors, safetensors_strings};

fuzz_target!(|data: &[u8]| {
    let _ = is_safetensors(data);
    if let Ok(strings) = safetensors_strings(data, 100 << 20) {
        for s in strings {
            assert!(s.offset <= data.len());
        }
    }
});
