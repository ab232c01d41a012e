//! `trawl scan [PATH...]`: files and directories on disk, or standard input (`-`).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::{ColorChoice, ReportArgs, Setup};
use crate::content::{scan_content, Limits};
use crate::findings::suppress::Config;
use crate::findings::{Finding, FindingSet, Placed};
use crate::report::{self, Format, ReportContext};
use crate::scan::{Scanner, Worker};
use crate::source::fs::{walk, FileVisitor, WalkOptions};
use crate::source::{read_stdin, BlobId, Diagnostics, Provenance};

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories to scan; `-` reads standard input.
    #[arg(default_value = ".")]
    pub(crate) paths: Vec<PathBuf>,
    /// Scan files that .gitignore, .ignore and .trawlignore exclude.
    #[arg(long)]
    no_ignore: bool,
    /// Follow symbolic links (loops are reported and skipped).
    #[arg(long, short = 'L')]
    follow_symlinks: bool,
    /// Skip files larger than this (bytes, or with a K, M or G suffix; default 256M).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_file_size: Option<u64>,
    /// Do not show a progress line on a terminal.
    #[arg(long)]
    no_progress: bool,
    /// How deep to open archives nested in archives (default 8).
    #[arg(long, value_name = "N")]
    archive_depth: Option<usize>,
    #[command(flatten)]
    pub(crate) report: ReportArgs,
}

/// Parses `123`, `10K`, `64M`, `1G` (binary multiples; `KB`, `KiB`, `MB`, `MiB` also accepted).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| format!("invalid size `{s}`"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("invalid size unit in `{s}` (use K, M or G)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size `{s}` is too large"))
}

/// Larger inputs are not deduplicated by blob id.
const DEDUP_MAX_BYTES: usize = 64 << 20;

/// Results of already-scanned content, by blob id: identical files are scanned once.
#[derive(Default)]
struct Shared {
    seen: Mutex<HashMap<BlobId, Option<Arc<Vec<Placed>>>>>,
    findings: Mutex<FindingSet>,
}

struct Visitor<'a> {
    worker: Worker<'a>,
    shared: &'a Shared,
    diag: &'a Diagnostics,
    limits: &'a Limits,
}

impl Visitor<'_> {
    fn scan(&mut self, provenance: Provenance, data: &[u8]) {
        // Huge files (model weights) are not hashed: decoders read only their headers, and
        // hashing would read every byte.
        let id = (data.len() <= DEDUP_MAX_BYTES).then(|| BlobId::of(data));
        let shared = self.shared;
        let seen = || shared.seen.lock().unwrap_or_else(|e| e.into_inner());
        let cached = id.and_then(|id| seen().get(&id).cloned());
        let placed = match cached {
            Some(p) => p,
            None => {
                let decoded = scan_content(&mut self.worker, data, self.limits);
                for w in &decoded.warnings {
                    self.diag.warn(provenance.path(), w);
                }
                let placed = (!decoded.placed.is_empty()).then(|| Arc::new(decoded.placed));
                if let Some(id) = id {
                    seen().insert(id, placed.clone());
                }
                placed
            }
        };
        if let Some(placed) = placed {
            self.shared
                .findings
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .add(self.worker.scanner(), &provenance, &placed);
        }
    }
}

impl FileVisitor for Visitor<'_> {
    fn visit(&mut self, path: &str, data: &[u8]) {
        self.scan(
            Provenance::File {
                path: path.to_string(),
            },
            data,
        );
    }
}

/// A progress line on stderr, redrawn until dropped.
struct Progress {
    done: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(diag: Arc<Diagnostics>) -> Progress {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let handle = std::thread::spawn(move || {
            let start = Instant::now();
            let mut drawn = false;
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if start.elapsed() < Duration::from_secs(1) {
                    continue;
                }
                let files = diag.blobs.load(Ordering::Relaxed);
                let mb = diag.bytes.load(Ordering::Relaxed) as f64 / 1e6;
                eprint!("\r\x1b[2Ktrawl: scanned {files} files, {mb:.1} MB");
                drawn = true;
            }
            if drawn {
                eprint!("\r\x1b[2K");
            }
        });
        Progress {
            done,
            handle: Some(handle),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The file-size limit when neither a flag nor the configuration sets one.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 256 << 20;

/// Limits from flags, else from `[limits]` of the configuration, else the defaults.
pub(crate) fn resolve_limits(
    size_flag: Option<u64>,
    depth_flag: Option<usize>,
    config: &Config,
) -> Result<Limits> {
    let from_config = config
        .file
        .limits
        .max_file_size
        .as_deref()
        .map(parse_size)
        .transpose()
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: [limits] max_file_size: {e}",
                config
                    .path
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string())
            )
        })?;
    Ok(Limits {
        max_depth: depth_flag
            .or(config.file.limits.archive_depth)
            .unwrap_or(Limits::default().max_depth),
        max_member_bytes: size_flag.or(from_config).unwrap_or(DEFAULT_MAX_FILE_SIZE),
        ..Limits::default()
    })
}

/// A finished scan: its setup, findings (suppressions applied) and diagnostics.
pub(crate) struct Scanned {
    pub(crate) setup: Setup,
    pub(crate) findings: Vec<Finding>,
    pub(crate) diag: Arc<Diagnostics>,
    pub(crate) root_uri: Option<String>,
}

pub fn run(args: ScanArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let Scanned {
        setup,
        findings,
        diag,
        root_uri,
    } = collect(&args)?;
    let scanner = &setup.scanner;
    write_report(&args.report, scanner, &findings, root_uri)?;
    summarize(&args.report, scanner, &findings, &diag, started);
    Ok(exit_code(&args.report, scanner, &findings))
}

/// Runs the scan and returns its findings, suppressions applied.
pub(crate) fn collect(args: &ScanArgs) -> Result<Scanned> {
    let root = match args.paths.as_slice() {
        [only] if only.is_dir() => Some(only.clone()),
        _ => std::env::current_dir().ok(),
    };
    let setup = Setup::new(&args.report, root.as_deref())?;
    let diag = Arc::new(Diagnostics::new(args.report.quiet));
    let shared = Shared::default();
    let threads = args.report.threads();
    let limits = resolve_limits(args.max_file_size, args.archive_depth, &setup.config)?;
    let max_file_size = limits.max_member_bytes;

    let scanner = &setup.scanner;
    let (stdin, paths): (Vec<&PathBuf>, Vec<&PathBuf>) =
        args.paths.iter().partition(|p| p.as_os_str() == "-");
    let mut roots = Vec::new();
    for p in paths {
        match std::fs::symlink_metadata(p) {
            Ok(_) => roots.push(p.clone()),
            Err(e) => diag.warn(&p.display().to_string(), format!("cannot scan: {e}")),
        }
    }
    if roots.is_empty() && stdin.is_empty() {
        bail!("nothing to scan: none of the given paths could be read");
    }

    let progress = (!args.report.quiet && !args.no_progress && std::io::stderr().is_terminal())
        .then(|| Progress::start(diag.clone()));
    if !stdin.is_empty() {
        let data = read_stdin(max_file_size).context("reading standard input")?;
        diag.scanned(data.len());
        let mut v = Visitor {
            worker: scanner.worker(),
            shared: &shared,
            diag: &diag,
            limits: &limits,
        };
        v.scan(Provenance::Stdin, &data);
    }
    let opts = WalkOptions {
        respect_ignore: !args.no_ignore,
        follow_symlinks: args.follow_symlinks,
        max_file_size,
        threads,
    };
    walk(&roots, &opts, &diag, || Visitor {
        worker: scanner.worker(),
        shared: &shared,
        diag: &diag,
        limits: &limits,
    });
    drop(progress);

    let findings = shared
        .findings
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_sorted();
    let mut findings = findings;
    setup.suppress(&args.report, &mut findings);
    let root_uri = match roots.as_slice() {
        [only] if only.is_dir() => std::fs::canonicalize(only).ok().map(|p| file_uri(&p)),
        _ => std::env::current_dir().ok().map(|p| file_uri(&p)),
    };
    drop(shared.seen);
    Ok(Scanned {
        setup,
        findings,
        diag,
        root_uri,
    })
}

fn file_uri(path: &std::path::Path) -> String {
    let s = report::uri_encode(&path.to_string_lossy());
    format!("file://{}{}", s, if s.ends_with('/') { "" } else { "/" })
}

pub(crate) fn write_report(
    args: &ReportArgs,
    scanner: &Scanner,
    findings: &[Finding],
    root_uri: Option<String>,
) -> Result<()> {
    let to_terminal = args.output.is_none() && std::io::stdout().is_terminal();
    let ctx = ReportContext {
        scanner,
        show_secrets: args.show_secrets,
        color: match args.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => to_terminal && std::env::var_os("NO_COLOR").is_none(),
        },
        root_uri,
    };
    match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot write report to {}", path.display()))?;
            let mut w = std::io::BufWriter::new(file);
            report::write(args.format, &ctx, findings, &mut w)?;
            w.flush()?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            report::write(args.format, &ctx, findings, &mut w)?;
            w.flush()?;
        }
    }
    if args.format == Format::Sarif {
        let results: usize = findings.iter().map(|f| f.locations.len()).sum();
        if results > report::SARIF_MAX_RESULTS && !args.quiet {
            eprintln!(
                "trawl: warning: SARIF holds the first {} of {results} results (GitHub's limit)",
                report::SARIF_MAX_RESULTS
            );
        }
    }
    Ok(())
}

pub(crate) fn summarize(
    args: &ReportArgs,
    scanner: &Scanner,
    findings: &[Finding],
    diag: &Diagnostics,
    started: Instant,
) {
    if args.quiet {
        return;
    }
    let mut by_sev = [0usize; 5];
    for f in findings {
        by_sev[scanner.rule(f.rule).spec.severity as usize] += 1;
    }
    let names = ["info", "low", "medium", "high", "critical"];
    let parts: Vec<String> = (0..5)
        .rev()
        .filter(|&i| by_sev[i] > 0)
        .map(|i| format!("{} {}", by_sev[i], names[i]))
        .collect();
    let locations: usize = findings.iter().map(|f| f.locations.len()).sum();
    eprintln!(
        "trawl: {} findings{} at {} locations; scanned {} files ({:.1} MB) in {:.2} s{}{}",
        findings.len(),
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        },
        locations,
        diag.blobs.load(Ordering::Relaxed),
        diag.bytes.load(Ordering::Relaxed) as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        match diag.binary.load(Ordering::Relaxed) {
            0 => String::new(),
            n => format!(", {n} binary files skipped"),
        },
        match diag.warnings() {
            0 => String::new(),
            n => format!(", {n} warnings"),
        },
    );
}

pub(crate) fn exit_code(args: &ReportArgs, scanner: &Scanner, findings: &[Finding]) -> ExitCode {
    if findings
        .iter()
        .any(|f| scanner.rule(f.rule).spec.severity >= args.fail_on)
    {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10"), Ok(10));
        assert_eq!(parse_size("10K"), Ok(10 << 10));
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("ten").is_err());
    }
}
