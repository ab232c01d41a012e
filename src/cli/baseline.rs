//! `trawl baseline create`: accept today's findings, keyed on their secret fingerprints, so
//! that only new secrets fail later scans (`--baseline FILE`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use super::args::GitOpts;
use super::args::{FsOpts, ScanOpts};
use super::scan::{root_of, Inputs};
use super::{job, Ui};
use crate::dates::parse_date;
use crate::findings::suppress::{Baseline, BaselineEntry};
use crate::findings::Finding;
use crate::report::plural;

#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Write a baseline of the current findings (of a scan of PATHs, or of a JSON report).
    Create(CreateArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Files or directories to scan (as `trawl scan` does), or repositories with `--git`.
    #[arg(default_value = ".")]
    paths: Vec<PathBuf>,
    /// Baseline the history of repositories (as `trawl git` does) instead of files.
    #[cfg(feature = "git")]
    #[arg(long)]
    git: bool,
    /// Build the baseline from a JSON report of `trawl scan` or `trawl git` instead.
    #[arg(long, value_name = "REPORT")]
    from: Option<PathBuf>,
    /// Where to write the baseline.
    #[arg(long, short = 'o', default_value = ".trawl-baseline.json")]
    output: PathBuf,
    /// Why these findings are accepted (kept with every entry).
    #[arg(long)]
    reason: Option<String>,
    /// Last day the entries suppress (YYYY-MM-DD); after it the findings are reported again.
    #[arg(long, value_name = "DATE")]
    expires: Option<String>,
    #[command(flatten)]
    fs: FsOpts,
    #[cfg(feature = "git")]
    #[command(flatten)]
    history: GitOpts,
    #[command(flatten)]
    scan: ScanOpts,
}

pub fn run(cmd: BaselineCommand, ui: Arc<dyn Ui>) -> Result<ExitCode> {
    let BaselineCommand::Create(args) = cmd;
    if let Some(d) = &args.expires {
        parse_date(d).map_err(anyhow::Error::msg)?;
    }
    let mut baseline = match &args.from {
        Some(report) => from_report(report, args.reason.as_deref())?,
        None => {
            let findings = scan(&args, &ui)?;
            Baseline::from_findings(&findings, args.reason.as_deref())
        }
    };
    for e in &mut baseline.entries {
        e.expires.clone_from(&args.expires);
    }
    let text = serde_json::to_string_pretty(&baseline)?;
    std::fs::write(&args.output, text + "\n")
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    if !args.scan.quiet {
        ui.notice(&format!(
            "trawl: wrote {} to {}",
            plural(baseline.entries.len(), "baseline entry", "baseline entries"),
            args.output.display()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// The findings of the scan the flags describe: files, or history with `--git`. An input that
/// could not be read makes the baseline incomplete: that is an error, not a smaller baseline.
fn scan(args: &CreateArgs, ui: &Arc<dyn Ui>) -> Result<Vec<Finding>> {
    #[cfg(feature = "git")]
    let history = Some((args.git, &args.history));
    #[cfg(not(feature = "git"))]
    let history = None;
    complete(scan_inputs(&args.paths, history, &args.fs, &args.scan, ui)?)
}

/// A scan of `paths` as `trawl scan` does it, or of their history as `trawl git` does when
/// `history` is `(true, flags)` (`--git`; the history flags need it), without a baseline: for
/// commands that turn findings into something else (`baseline create`, `inventory`).
pub(super) fn scan_inputs(
    paths: &[PathBuf],
    history: Option<(bool, &GitOpts)>,
    fs: &FsOpts,
    scan: &ScanOpts,
    ui: &Arc<dyn Ui>,
) -> Result<job::Scanned> {
    #[cfg(feature = "git")]
    match history {
        Some((true, flags)) => {
            let repos = super::git::Repositories::discover(paths, flags)?;
            let root = repos.root();
            let mut source = repos.source()?;
            return job::scan(
                scan,
                None,
                false,
                root.as_deref(),
                None,
                &mut source,
                "blobs",
                ui,
            );
        }
        Some((false, flags)) if flags.any() => {
            bail!("history flags (--range, --branch, --staged, …) need --git");
        }
        _ => {}
    }
    #[cfg(not(feature = "git"))]
    let _ = history;
    let root = root_of(paths);
    let mut inputs = Inputs::new(paths, fs);
    job::scan(
        scan,
        None,
        false,
        root.as_deref(),
        None,
        &mut inputs,
        "files",
        ui,
    )
}

fn complete(scanned: job::Scanned) -> Result<Vec<Finding>> {
    if scanned.diag.errors() > 0 {
        bail!("not every input could be read: no baseline written");
    }
    Ok(scanned.findings)
}

fn from_report(path: &PathBuf, reason: Option<&str>) -> Result<Baseline> {
    let v: serde_json::Value = serde_json::from_slice(
        &std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
    )
    .with_context(|| format!("{}: not a trawl JSON report", path.display()))?;
    let findings = v["findings"]
        .as_array()
        .with_context(|| format!("{}: no `findings` in the report", path.display()))?;
    let entries = findings
        .iter()
        .filter_map(|f| {
            Some(BaselineEntry {
                fingerprint: f["fingerprint"].as_str()?.to_string(),
                rule: f["rule"].as_str()?.to_string(),
                paths: f["locations"]
                    .as_array()
                    .map(|ls| {
                        ls.iter()
                            .filter_map(|l| l["path"].as_str().map(str::to_string))
                            .take(5)
                            .collect()
                    })
                    .unwrap_or_default(),
                reason: reason.map(str::to_string),
                expires: None,
            })
        })
        .collect();
    Ok(Baseline {
        version: 1,
        entries,
    })
}
