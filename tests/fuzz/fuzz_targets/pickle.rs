//! The static pickle analyzer and its sniffer, with limits small enough to reach them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trawl::content::pickle::{analyze, looks_like_pickle, PickleLimits};

fuzz_target!(|data: &[u8]| {
    let _ = looks_like_pickle(data);
    let _ = analyze(data, &PickleLimits::default());
    let small = PickleLimits {
        max_ops: 10_000,
        max_stack: 64,
        max_memo: 16,
        max_string: 32,
    };
    let _ = analyze(data, &small);
});
