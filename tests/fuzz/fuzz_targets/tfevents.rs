//! The TensorBoard event file reader (TFRecord framing, Event protobufs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl::content::tracker::{is_tfevents, starts_like_tfevents, tfevents_strings, RecordLimits};

fuzz_target!(|data: &[u8]| {
    let _ = (is_tfevents(data), starts_like_tfevents(data));
    let log = tfevents_strings(data, &RecordLimits::default());
    for s in log.strings {
        // Records are contiguous: every value is where its offset says.
        assert_eq!(
            data.get(s.offset..s.offset + s.value.len()),
            Some(&s.value[..])
        );
    }
});
