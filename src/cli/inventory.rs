//! `trawl inventory`: the register of credentials (one row per distinct secret), from a JSON
//! or JSON lines report (`--from`) or from a fresh scan of files or (`--git`) history run
//! through [`job::scan`]; with `--report-leaked`, the GitHub tokens of a fresh scan go to
//! GitHub's credential-revocation API.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};

#[cfg(feature = "git")]
use super::args::GitOpts;
use super::args::{FsOpts, ScanOpts};
use super::{job, Ui};
use crate::findings::suppress::BoundedFile;
use crate::findings::{Finding, What};
use crate::inventory::{self, github, Credential, MAX_REPORT_BYTES};
use crate::report::{self, plural, Format, ReportContext};

/// Formats of the register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RegisterFormat {
    /// Comma-separated values (RFC 4180), formula-safe.
    Csv,
    /// One JSON document.
    Json,
}

#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// Files or directories to scan (as `trawl scan` does), or repositories with `--git`.
    #[arg(default_value = ".")]
    paths: Vec<PathBuf>,
    /// Build the register from a JSON or JSON lines report of `trawl scan`, `trawl git` or
    /// `trawl org merge` instead of scanning.
    #[arg(long, value_name = "REPORT")]
    from: Option<PathBuf>,
    /// Scan the history of repositories (as `trawl git` does) instead of files.
    #[cfg(feature = "git")]
    #[arg(long, conflicts_with = "from")]
    git: bool,
    /// Register format.
    #[arg(long, short = 'f', value_enum, default_value_t = RegisterFormat::Csv)]
    format: RegisterFormat,
    /// Write the register to FILE instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Send the GitHub tokens found (personal access, fine-grained, OAuth, App user and refresh
    /// tokens) to GitHub's credential-revocation API, which revokes them and tells their
    /// owners. Needs a fresh scan (a report holds no secret in clear).
    #[arg(long, conflicts_with = "from")]
    report_leaked: bool,
    /// The GitHub API `--report-leaked` uses (https; plain http only on a loopback address).
    #[arg(long, value_name = "URL", default_value = github::GITHUB_API, requires = "report_leaked")]
    github_api: String,
    #[command(flatten)]
    verify: super::verify::VerifyOpts,
    #[command(flatten)]
    fs: FsOpts,
    #[cfg(feature = "git")]
    #[command(flatten)]
    history: GitOpts,
    #[command(flatten)]
    scan: ScanOpts,
}

/// What the scan or the report gives the register.
struct Input {
    findings: Vec<inventory::ReportFinding>,
    /// Rule id → revocation page.
    revoke: HashMap<String, String>,
    /// The GitHub tokens the revocation API takes (fresh scans only).
    tokens: Vec<String>,
    /// Inputs of the scan that could not be read.
    incomplete: bool,
}

pub fn run(args: InventoryArgs, ui: Arc<dyn Ui>) -> Result<ExitCode> {
    if args.report_leaked {
        github::check_api(&args.github_api).map_err(|e| anyhow!(e))?;
    }
    if args.verify.verify && args.from.is_some() {
        bail!("--verify needs a fresh scan: a report holds no secret in clear");
    }
    if args.verify.fail_on_live {
        bail!("--fail-on-live gates `scan`, `git` and `org merge`; the register does not gate");
    }
    let input = match &args.from {
        Some(path) => from_report(path, &args.scan)?,
        None => from_scan(&args, &ui)?,
    };
    let rows = inventory::register(input.findings, &|id| input.revoke.get(id).cloned());
    write_register(&args, &rows)?;
    if !args.scan.quiet {
        ui.notice(&format!(
            "trawl: register of {}{}",
            plural(rows.len(), "credential", "credentials"),
            args.output
                .as_ref()
                .map(|p| format!(" written to {}", p.display()))
                .unwrap_or_default()
        ));
    }
    if args.report_leaked {
        let notice = |m: &str| ui.notice(&format!("trawl: {m}"));
        let sent = github::report_leaked(&args.github_api, &input.tokens, &notice)
            .map_err(|e| anyhow!(e))?;
        if !args.scan.quiet {
            ui.notice(&format!(
                "trawl: reported {} to GitHub's credential-revocation API",
                plural(sent, "GitHub token", "GitHub tokens")
            ));
        }
    }
    Ok(if input.incomplete {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn write_register(args: &InventoryArgs, rows: &[Credential]) -> Result<()> {
    let write = |w: &mut dyn Write| match args.format {
        RegisterFormat::Csv => inventory::write_csv(rows, w),
        RegisterFormat::Json => inventory::write_json(rows, w),
    };
    match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot write the register to {}", path.display()))?;
            let mut w = std::io::BufWriter::new(file);
            write(&mut w)
                .and_then(|()| w.flush())
                .with_context(|| format!("cannot write the register to {}", path.display()))
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            Ok(job::ignore_broken_pipe(
                write(&mut w).and_then(|()| w.flush()),
            )?)
        }
    }
}

/// A report read within [`MAX_REPORT_BYTES`], and the revocation pages of the built-in rules
/// and of `--rules` files.
fn from_report(path: &Path, opts: &ScanOpts) -> Result<Input> {
    let shown = path.display();
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read report {shown}"))?
        .len();
    if len > MAX_REPORT_BYTES {
        bail!("report {shown}: larger than {MAX_REPORT_BYTES} bytes; not read");
    }
    let text = BoundedFile {
        path: path.to_path_buf(),
        max_bytes: MAX_REPORT_BYTES,
        within: None,
    }
    .read("report")?;
    let findings = inventory::parse_report(&text).map_err(|e| anyhow!("report {shown}: {e}"))?;
    let rules = super::job::rules_with_files(&opts.rule_files)?;
    let revoke = rules
        .rules()
        .iter()
        .filter_map(|r| Some((r.id().to_string(), r.info().revoke.clone()?)))
        .collect();
    Ok(Input {
        findings,
        revoke,
        tokens: Vec::new(),
        incomplete: false,
    })
}

/// A fresh scan, written as a redacted JSON report and read back as `--from` reads one.
fn from_scan(args: &InventoryArgs, ui: &Arc<dyn Ui>) -> Result<Input> {
    #[cfg(feature = "git")]
    let history = Some((args.git, &args.history));
    #[cfg(not(feature = "git"))]
    let history = None;
    let mut scanned = super::baseline::scan_inputs(&args.paths, history, &args.fs, &args.scan, ui)?;
    super::verify::stage(
        &args.verify,
        args.scan.config.as_deref(),
        None,
        &mut scanned.findings,
        args.scan.quiet,
        ui.as_ref(),
    )?;
    let mut json = Vec::new();
    report::write(
        Format::Json,
        &ReportContext::default(),
        &scanned.findings,
        &mut json,
    )?;
    let text = String::from_utf8(json).context("the scan's report is not UTF-8")?;
    let findings = inventory::parse_report(&text)?;
    let revoke = scanned
        .findings
        .iter()
        .filter_map(|f| Some((f.rule.id.clone(), f.rule.revoke.clone()?)))
        .collect();
    let tokens = if args.report_leaked {
        github_tokens(&scanned.findings)
    } else {
        Vec::new()
    };
    Ok(Input {
        findings,
        revoke,
        tokens,
        incomplete: scanned.diag.errors() > 0,
    })
}

/// The distinct secrets the revocation API takes.
fn github_tokens(findings: &[Finding]) -> Vec<String> {
    let tokens: BTreeSet<String> = findings
        .iter()
        .filter_map(|f| match &f.what {
            What::Secret(s) if github::revocable(&f.rule.id, s) => {
                String::from_utf8(s.clone()).ok()
            }
            _ => None,
        })
        .collect();
    tokens.into_iter().collect()
}
