//! Flag groups shared by the scanning subcommands.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::report::{Format, DEFAULT_REDACT_KEEP};
use crate::rules::Severity;

/// When to colour text output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal only.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// What to scan with: rules, configuration, limits, threads. Every scanning command
/// (`scan`, `git`, `baseline create`) takes these.
#[derive(Debug, Args, Clone, Default)]
pub struct ScanOpts {
    /// Extra rule files (trawl or gitleaks format), added to the built-in rules.
    #[arg(long = "rules", value_name = "FILE")]
    pub rule_files: Vec<PathBuf>,
    /// Configuration file (default: `trawl.toml` at the scan root, if any).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Turn off a rule (repeatable).
    #[arg(long = "disable-rule", value_name = "ID")]
    pub disable_rules: Vec<String>,
    /// Run only these rules (repeatable).
    #[arg(long = "enable-rule", value_name = "ID")]
    pub enable_rules: Vec<String>,
    /// Leave out paths matching GLOB (repeatable; `*.min.js`, `vendor/`, `tests/fixtures`).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Skip larger files and blobs (bytes, or with a K, M or G suffix; default 256M).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_file_size: Option<u64>,
    /// How deep to open archives nested in archives (default 8).
    #[arg(long, value_name = "N")]
    pub archive_depth: Option<usize>,
    /// Worker threads (default: number of CPUs).
    #[arg(long, short = 'j', value_name = "N")]
    pub threads: Option<usize>,
    /// No warnings, progress or summary on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Do not show a progress line on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}

impl ScanOpts {
    /// The number of worker threads to use.
    pub fn threads(&self) -> usize {
        self.threads
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

/// How to report: format, destination, redaction, the failing severity, suppressions.
#[derive(Debug, Args, Clone)]
pub struct ReportOpts {
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write the report to FILE instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print secrets in clear (they are redacted by default).
    #[arg(long)]
    pub show_secrets: bool,
    /// Leading characters of a redacted secret to keep (at most a quarter of it).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_REDACT_KEEP)]
    pub redact: usize,
    /// Exit with 1 only for findings at or above this severity.
    #[arg(long, value_name = "SEVERITY", default_value = "info", value_parser = parse_severity)]
    pub fail_on: Severity,
    /// Colour the text report.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Suppress the findings of a baseline file (`trawl baseline create`).
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// List baseline entries that no longer match anything (on stderr).
    #[arg(long, requires = "baseline")]
    pub report_stale: bool,
    /// Verification: `--verify`, endpoints, `--fail-on-live`.
    #[command(flatten)]
    pub verify: super::verify::VerifyOpts,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse()
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

/// Flags of the file walk.
#[derive(Debug, Args, Clone, Default)]
pub struct FsOpts {
    /// Scan files that .gitignore, .ignore and .trawlignore exclude.
    #[arg(long)]
    pub no_ignore: bool,
    /// Follow symbolic links (loops are reported and skipped).
    #[arg(long, short = 'L')]
    pub follow_symlinks: bool,
}

/// Which part of history to read.
#[derive(Debug, Args, Clone, Default)]
pub struct GitOpts {
    /// Scan what `git commit` would record (index against HEAD), reporting only added lines.
    #[arg(long, conflicts_with_all = ["range", "since_commit", "branch", "all_objects", "since"])]
    pub staged: bool,
    /// Only blobs introduced by commits in `A..B`.
    #[arg(long, value_name = "A..B")]
    pub range: Option<String>,
    /// Only blobs introduced after REV (`REV..HEAD`, or `REV..BRANCH` with --branch).
    #[arg(long, value_name = "REV", conflicts_with = "range")]
    pub since_commit: Option<String>,
    /// Walk from this revision instead of every ref.
    #[arg(long, value_name = "REF")]
    pub branch: Option<String>,
    /// Only commits authored at or after this date (YYYY-MM-DD, UTC).
    #[arg(long, value_name = "DATE", value_parser = crate::dates::parse_date)]
    pub since: Option<i64>,
    /// Also scan blobs that no ref reaches (dangling after force-pushes and rewrites).
    #[arg(long)]
    pub all_objects: bool,
}

impl GitOpts {
    /// Whether any flag is set (for `baseline create`, where they need `--git`).
    #[cfg(feature = "git")]
    pub fn any(&self) -> bool {
        self.staged
            || self.range.is_some()
            || self.since_commit.is_some()
            || self.branch.is_some()
            || self.since.is_some()
            || self.all_objects
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
