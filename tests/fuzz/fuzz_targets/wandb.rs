//! The W&B run log reader (LevelDB log chunks, wandb Record protobufs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl::content::tracker::{is_wandb_log, wandb_strings, RecordLimits};

fuzz_target!(|data: &[u8]| {
    let _ = is_wandb_log(data);
    let log = wandb_strings(data, &RecordLimits::default());
    for s in log.strings {
        // Values of records split across chunks skip chunk headers: they still end in the file.
        assert!(s.offset + s.value.len() <= data.len());
    }
});
