//! Engine throughput (bytes per second) on clean real source and on secret-dense input.
//!
//! Clean source: Rust files from the local cargo registry (the sources of this crate's own
//! dependencies, present wherever it was built), up to 32 MiB, else this crate's `src/`.
//! Secret-dense: every rule's examples interleaved with that source, so most windows confirm.

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use trawl::findings::place;
use trawl::rules::RuleSet;
use trawl::scan::Scanner;

const CLEAN_BYTES: usize = 32 << 20;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>, budget: &mut usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if *budget == 0 {
            return;
        }
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => rust_files(&p, out, budget),
            Ok(t) if t.is_file() && p.extension().is_some_and(|x| x == "rs") => {
                let len = e.metadata().map_or(0, |m| m.len() as usize);
                *budget = budget.saturating_sub(len);
                out.push(p);
            }
            _ => {}
        }
    }
}

fn clean_corpus() -> Vec<Vec<u8>> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    let mut files = Vec::new();
    let mut budget = CLEAN_BYTES;
    if let Some(h) = home {
        rust_files(&h.join("registry/src"), &mut files, &mut budget);
    }
    if files.is_empty() {
        rust_files(
            Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")),
            &mut files,
            &mut budget,
        );
    }
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn dense_corpus(rules: &RuleSet, clean: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let examples: Vec<&str> = rules
        .rules()
        .iter()
        .flat_map(|r| r.spec.examples.iter().map(String::as_str))
        .collect();
    clean
        .iter()
        .take(400)
        .enumerate()
        .map(|(i, src)| {
            let mut out = Vec::new();
            for (j, line) in src.split(|&b| b == b'\n').enumerate() {
                out.extend_from_slice(line);
                out.push(b'\n');
                if j % 20 == 0 {
                    out.extend_from_slice(examples[(i * 31 + j) % examples.len()].as_bytes());
                    out.push(b'\n');
                }
            }
            out
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let scanner = Scanner::new(RuleSet::builtin().expect("rules")).expect("scanner");
    let clean = clean_corpus();
    let dense = dense_corpus(scanner.rules(), &clean);
    let mut worker = scanner.worker();
    // Benchmarks are data with expected results: the dense corpus must yield findings.
    let dense_found: usize = dense.iter().map(|f| worker.scan(f).len()).sum();
    assert!(
        dense_found > dense.len(),
        "dense corpus found only {dense_found}"
    );

    let mut g = c.benchmark_group("scan");
    g.sample_size(10);
    for (name, files) in [("clean-source", &clean), ("secret-dense", &dense)] {
        let bytes: usize = files.iter().map(Vec::len).sum();
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut n = 0;
                for f in files.iter() {
                    let m = worker.scan(f);
                    n += place(f, &m, &mut 0).len();
                }
                n
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
