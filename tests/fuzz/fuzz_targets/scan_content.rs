//! The whole dispatcher with the built-in rules and default limits.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use trawl::content::{scan_content, Limits};
use trawl::rules::RuleSet;
use trawl::scan::Scanner;

fn scanner() -> &'static Scanner {
    static SCANNER: OnceLock<Scanner> = OnceLock::new();
    SCANNER.get_or_init(|| Scanner::new(RuleSet::builtin().unwrap()).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let mut w = scanner().worker();
    scan_content(&mut w, data, &Limits::default());
});
