//! `trawl git [REPO...]`: the whole history of repositories, a range of it, or the staged
//! changes (`--staged`, for pre-commit hooks).

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;

use super::scan::{exit_code, parse_size, summarize, write_report};
use super::{ReportArgs, Setup};
use crate::content::{self, Limits};
use crate::dates::parse_date;
use crate::findings::{FindingSet, Placed};
use crate::scan::{Scanner, Worker};
use crate::source::git::{self, HistoryOptions};
use crate::source::{looks_binary, Diagnostics, Provenance};

#[derive(Debug, Args)]
pub struct GitArgs {
    /// Repositories (work trees or bare); default `.`.
    #[arg(default_value = ".")]
    repos: Vec<PathBuf>,
    /// Scan what `git commit` would record (index against HEAD), reporting only added lines.
    #[arg(long, conflicts_with_all = ["range", "since_commit", "branch", "all_objects", "since"])]
    staged: bool,
    /// Only blobs introduced by commits in `A..B`.
    #[arg(long, value_name = "A..B")]
    range: Option<String>,
    /// Only blobs introduced after REV (`REV..HEAD`, or `REV..BRANCH` with --branch).
    #[arg(long, value_name = "REV", conflicts_with = "range")]
    since_commit: Option<String>,
    /// Walk from this revision instead of every ref.
    #[arg(long, value_name = "REF")]
    branch: Option<String>,
    /// Only commits authored at or after this date (YYYY-MM-DD, UTC).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    since: Option<i64>,
    /// Also scan blobs that no ref reaches (dangling after force-pushes and rewrites).
    #[arg(long)]
    all_objects: bool,
    /// Skip larger blobs with a warning (bytes, or with a K, M or G suffix; default 256M).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_file_size: Option<u64>,
    #[command(flatten)]
    report: ReportArgs,
}

impl GitArgs {
    fn history_options(&self) -> Result<HistoryOptions> {
        let mut opts = HistoryOptions {
            branch: self.branch.clone(),
            hide: Vec::new(),
            since: self.since,
            all_objects: self.all_objects,
            max_blob_size: self
                .max_file_size
                .unwrap_or(super::scan::DEFAULT_MAX_FILE_SIZE),
        };
        if let Some(range) = &self.range {
            let Some((a, b)) = range.split_once("..") else {
                bail!("--range takes A..B, got `{range}`");
            };
            if a.is_empty() || b.is_empty() || b.starts_with('.') {
                bail!("--range takes A..B, got `{range}`");
            }
            opts.hide.push(a.to_string());
            opts.branch = Some(b.to_string());
        }
        if let Some(rev) = &self.since_commit {
            opts.hide.push(rev.clone());
            opts.branch.get_or_insert_with(|| "HEAD".to_string());
        }
        Ok(opts)
    }
}

pub fn run(args: GitArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let root = args.repos.first().cloned();
    let setup = Setup::new(&args.report, root.as_deref())?;
    let scanner = &setup.scanner;
    let diag = Diagnostics::new(args.report.quiet);
    let findings = Mutex::new(FindingSet::default());
    let mut opts = args.history_options()?;
    let limits = super::scan::resolve_limits(args.max_file_size, None, &setup.config)?;
    opts.max_blob_size = limits.max_member_bytes;
    let mut scanned_any = false;
    let many = args.repos.len() > 1;
    for path in &args.repos {
        let repo = match git::open(path) {
            Ok(r) => r,
            Err(e) => {
                diag.warn(&path.display().to_string(), format!("{e:#}"));
                continue;
            }
        };
        let prefix = if many {
            format!("{}/", path.display())
        } else {
            String::new()
        };
        let result = if args.staged {
            scan_staged(
                &repo,
                scanner,
                &diag,
                &findings,
                &prefix,
                opts.max_blob_size,
            )
        } else {
            scan_history(
                repo,
                &opts,
                scanner,
                &diag,
                &findings,
                &prefix,
                args.report.threads(),
            )
        };
        match result {
            Ok(()) => scanned_any = true,
            Err(e) => diag.warn(&path.display().to_string(), format!("{e:#}")),
        }
    }
    if !scanned_any {
        bail!("nothing to scan: no repository could be read");
    }
    let findings = findings
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_sorted();
    let mut findings = findings;
    setup.suppress(&args.report, &mut findings);
    let root_uri = None;
    write_report(&args.report, scanner, &findings, root_uri)?;
    summarize(&args.report, scanner, &findings, &diag, started);
    if args.staged && !findings.is_empty() && !args.report.quiet {
        eprintln!(
            "trawl: this commit would add {} secret(s), listed above with file and line.\n\
             trawl: remove them (and rotate any real credential), then stage the files again.\n\
             trawl: a false positive? add `trawl:allow` in a comment on that line, or accept the\n\
             trawl: finding by its fingerprint: `trawl baseline create` and `--baseline FILE`.",
            findings.len()
        );
    }
    Ok(exit_code(&args.report, scanner, &findings))
}

fn scan_history(
    repo: gix::Repository,
    opts: &HistoryOptions,
    scanner: &Scanner,
    diag: &Diagnostics,
    findings: &Mutex<FindingSet>,
    prefix: &str,
    threads: usize,
) -> Result<()> {
    let history = git::walk_history(&repo, opts, diag)?;
    let limits = Limits {
        max_member_bytes: opts.max_blob_size,
        ..Limits::default()
    };
    let shared = repo.into_sync();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                let repo = shared.to_thread_local();
                let mut worker = scanner.worker();
                let mut buf = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&id) = history.blobs.get(i) else {
                        break;
                    };
                    let intros = &history.introductions[i];
                    let what = intros
                        .first()
                        .map_or_else(|| id.to_string(), |x| x.path.clone());
                    let Some(data) =
                        git::read_blob(&repo, id, opts.max_blob_size, &mut buf, &what, diag)
                    else {
                        continue;
                    };
                    let placed = scan_blob(&mut worker, data, &limits, diag, &what);
                    if placed.is_empty() {
                        continue;
                    }
                    let mut set = findings.lock().unwrap_or_else(|e| e.into_inner());
                    for intro in intros {
                        let provenance = Provenance::Git {
                            commit: intro.commit.clone(),
                            path: format!("{prefix}{}", intro.path),
                        };
                        set.add(scanner, &provenance, &placed);
                    }
                }
            });
        }
    });
    Ok(())
}

/// Decodes and scans one blob (counted in `diag`); nothing for binary content that no
/// decoder claims.
fn scan_blob(
    worker: &mut Worker<'_>,
    data: &[u8],
    limits: &Limits,
    diag: &Diagnostics,
    what: &str,
) -> Vec<Placed> {
    if looks_binary(data) && !content::claims(data) {
        diag.binary.fetch_add(1, Ordering::Relaxed);
        return Vec::new();
    }
    diag.scanned(data.len());
    let decoded = content::scan_content(worker, data, limits);
    for w in &decoded.warnings {
        diag.warn(what, w);
    }
    decoded.placed
}

/// Scans the staged blobs that differ from HEAD, keeping only findings on lines that HEAD's
/// version of the file does not have (moved lines are not additions).
fn scan_staged(
    repo: &gix::Repository,
    scanner: &Scanner,
    diag: &Diagnostics,
    findings: &Mutex<FindingSet>,
    prefix: &str,
    max: u64,
) -> Result<()> {
    let changes = git::staged_changes(repo, diag)?;
    let limits = Limits {
        max_member_bytes: max,
        ..Limits::default()
    };
    let mut worker = scanner.worker();
    let mut buf = Vec::new();
    let mut old_buf = Vec::new();
    for change in changes {
        let Some(data) = git::read_blob(repo, change.new, max, &mut buf, &change.path, diag) else {
            continue;
        };
        let placed = scan_blob(&mut worker, data, &limits, diag, &change.path);
        if placed.is_empty() {
            continue;
        }
        let old_lines: HashSet<&[u8]> = match change.old {
            Some(old) => git::read_blob(repo, old, max, &mut old_buf, &change.path, diag)
                .map(|d| d.split(|&b| b == b'\n').map(trim_cr).collect())
                .unwrap_or_default(),
            None => HashSet::new(),
        };
        // Findings inside members or decoded content have no line of this file to compare.
        let added: Vec<Placed> = placed
            .into_iter()
            .filter(|p| {
                p.member.is_some()
                    || p.position.is_none()
                    || !old_lines.contains(line_at(data, p.offset))
            })
            .collect();
        let provenance = Provenance::File {
            path: format!("{prefix}{}", change.path),
        };
        findings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(scanner, &provenance, &added);
    }
    Ok(())
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The line of `data` holding byte `offset`, without its line break.
fn line_at(data: &[u8], offset: usize) -> &[u8] {
    let start = memchr::memrchr(b'\n', &data[..offset]).map_or(0, |i| i + 1);
    let end = memchr::memchr(b'\n', &data[offset..]).map_or(data.len(), |i| offset + i);
    trim_cr(&data[start..end])
}
