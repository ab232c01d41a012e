//! Zip, tar and gzip through the dispatcher, with small limits so that bombs and deep nesting
//! hit them quickly. Inputs that are not archives are skipped: the other targets cover them.
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

fn is_archive(data: &[u8]) -> bool {
    data.starts_with(b"PK\x03\x04")
        || data.starts_with(b"PK\x05\x06")
        || data.starts_with(b"\x1f\x8b\x08")
        || (data.len() >= 512 && &data[257..262] == b"ustar")
}

fuzz_target!(|data: &[u8]| {
    if !is_archive(data) {
        return;
    }
    let limits = Limits {
        max_depth: 4,
        max_total_bytes: 4 << 20,
        max_entries: 256,
        max_ratio: 100,
        max_member_bytes: 1 << 20,
    };
    let mut w = scanner().worker();
    scan_content(&mut w, data, &limits);
});
