//! The ONNX (protobuf) metadata walker.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl::content::model::{is_onnx, onnx_strings};

fuzz_target!(|data: &[u8]| {
    let _ = is_onnx(data);
    if let Ok(strings) = onnx_strings(data) {
        for s in strings {
            // Raw bytes: the value is where its offset says.
            assert_eq!(
                data.get(s.offset..s.offset + s.value.len()),
                Some(&s.value[..])
            );
        }
    }
});
