//! The notebook pull parser, and its map back to the raw bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl::content::notebook;

fuzz_target!(|data: &[u8]| {
    let _ = notebook::looks_like_notebook(data);
    if let Some(nb) = notebook::decode(data) {
        for at in 0..nb.text.len() {
            if let Some(raw) = nb.raw_offset(at) {
                assert!(raw < data.len(), "text byte {at} maps past the input");
            }
        }
    }
});
