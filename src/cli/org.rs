//! `trawl org`: scans of many repositories. `list` writes the repositories to scan
//! (`repos.jsonl`), `plan` assigns them to shards (`plan.json`), `scan` runs one shard
//! (`org_scan.rs`), `merge` makes one report of them all (`org_merge.rs`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use super::{job, Ui};
use crate::org::{plan, repos};
use crate::report::plural;

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Write the repositories to scan, one JSON object a line (`repos.jsonl`).
    List(ListArgs),
    /// Assign the repositories of a `repos.jsonl` to shards, deterministically (`plan.json`).
    Plan(PlanArgs),
    /// Scan one shard of a plan: fetch each repository, scan its whole history, write
    /// `shard-I.jsonl.gz` and the marker `shard-I.done.json`. Exit 0 when done (findings or
    /// not), 75 to retry, 2 on a fatal error.
    #[cfg(feature = "git")]
    Scan(super::org_scan::ScanArgs),
    /// Merge the shards of a plan into one report; refuses while a shard is not done. Exit 1
    /// for findings at or above `--fail-on`, 2 when a repository could not be read.
    #[cfg(feature = "git")]
    Merge(super::org_merge::MergeArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// A plain list of clone URLs, one a line (`https://`, `ssh://`, `git@host:path`,
    /// `file://`, or a local path); `#` starts a comment.
    #[arg(long, value_name = "FILE", required = true)]
    from_file: PathBuf,
    /// Where to write `repos.jsonl` (standard output by default).
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The repositories, as `trawl org list` writes them.
    repos: PathBuf,
    /// Number of shards (jobs that will scan in parallel).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=10_000))]
    shards: u16,
    /// Where to write the plan (standard output by default).
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
}

pub fn run(cmd: OrgCommand, ui: std::sync::Arc<dyn Ui>) -> Result<ExitCode> {
    match cmd {
        OrgCommand::List(args) => list(args, ui.as_ref()),
        OrgCommand::Plan(args) => plan_cmd(args, ui.as_ref()),
        #[cfg(feature = "git")]
        OrgCommand::Scan(args) => super::org_scan::run(args, ui),
        #[cfg(feature = "git")]
        OrgCommand::Merge(args) => super::org_merge::run(args, ui),
    }
}

fn list(args: ListArgs, ui: &dyn Ui) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&args.from_file)
        .with_context(|| format!("cannot read {}", args.from_file.display()))?;
    // Relative paths in the list are relative to the list itself.
    let base = std::path::absolute(&args.from_file)?
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let (repos, problems) = repos::read_url_list(&text, &base);
    for p in &problems {
        ui.notice(&format!(
            "{} line {}: {}",
            args.from_file.display(),
            p.line,
            p.message
        ));
    }
    write(args.output.as_ref(), &repos::to_jsonl(&repos))?;
    ui.summary(&format!(
        "trawl: {} listed",
        plural(repos.len(), "repository", "repositories")
    ));
    Ok(ExitCode::SUCCESS)
}

fn plan_cmd(args: PlanArgs, ui: &dyn Ui) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&args.repos)
        .with_context(|| format!("cannot read {}", args.repos.display()))?;
    let repos =
        repos::from_jsonl(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.repos.display()))?;
    if repos.is_empty() {
        bail!("{}: no repositories to plan", args.repos.display());
    }
    let p = plan::plan(&repos, usize::from(args.shards));
    write(args.output.as_ref(), &plan::to_json(&p))?;
    let largest = p.shards.iter().map(|s| s.weight).max().unwrap_or(0);
    ui.summary(&format!(
        "trawl: {} in {}; the largest shard weighs {:.1} MB",
        plural(
            p.shards.iter().map(|s| s.repos.len()).sum(),
            "repository",
            "repositories"
        ),
        plural(p.shards.len(), "shard", "shards"),
        largest as f64 / 1e6
    ));
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` to `path` by write-and-rename (a reader never sees half a file), or to
/// standard output.
fn write(path: Option<&PathBuf>, bytes: &[u8]) -> Result<()> {
    let Some(path) = path else {
        return Ok(job::write_stdout(bytes)?);
    };
    let mut tmp = path.clone().into_os_string();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
