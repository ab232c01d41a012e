//! The GGUF key/value walker, with default and small limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl::content::model::{gguf_strings, is_gguf, GgufLimits};

fuzz_target!(|data: &[u8]| {
    let _ = is_gguf(data);
    let _ = gguf_strings(data, &GgufLimits::default());
    let small = GgufLimits {
        max_entries: 8,
        max_array_items: 4,
        max_strings: 16,
    };
    if let Ok((strings, _)) = gguf_strings(data, &small) {
        assert!(strings.len() <= small.max_strings);
        for s in strings {
            // Raw bytes: the value is where its offset says.
            assert_eq!(
                data.get(s.offset..s.offset + s.value.len()),
                Some(&s.value[..])
            );
        }
    }
});
