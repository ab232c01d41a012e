//! Parquet files through the dispatcher, with small limits so that compression bombs and
//! lying counts hit them quickly. Inputs without the opening `PAR1` are skipped: the other
//! targets cover them.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use trawl::content::parquet::{is_damaged_parquet, is_parquet};
use trawl::content::{scan_content, Limits};
use trawl::rules::RuleSet;
use trawl::scan::Scanner;

fn scanner() -> &'static Scanner {
    static SCANNER: OnceLock<Scanner> = OnceLock::new();
    SCANNER.get_or_init(|| Scanner::new(RuleSet::builtin().unwrap()).unwrap())
}

fuzz_target!(|data: &[u8]| {
    if !is_parquet(data) && !is_damaged_parquet(data) {
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
