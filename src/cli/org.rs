//! `trawl org`: scans of many repositories. `list` writes the repositories to scan
//! (`repos.jsonl`), `plan` assigns them to shards (`plan.json`), `scan` runs one shard
//! (`org_scan.rs`), `merge` makes one report of them all (`org_merge.rs`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use super::{job, Ui};
use crate::org::{forge, plan, repos};
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
#[command(group(clap::ArgGroup::new("source").required(true).args(
    ["from_file", "github", "github_user", "gitlab", "huggingface"]
)))]
pub struct ListArgs {
    /// A plain list of clone URLs, one a line (`https://`, `ssh://`, `git@host:path`,
    /// `file://`, or a local path); `#` starts a comment.
    #[arg(long, value_name = "FILE")]
    from_file: Option<PathBuf>,
    /// The repositories of a GitHub organisation (token: `GITHUB_TOKEN`).
    #[arg(long, value_name = "ORG")]
    github: Option<String>,
    /// The repositories of a GitHub user (token: `GITHUB_TOKEN`).
    #[arg(long, value_name = "USER")]
    github_user: Option<String>,
    /// The projects of a GitLab group and its subgroups, e.g. `acme/platform` (token:
    /// `GITLAB_TOKEN`).
    #[arg(long, value_name = "GROUP")]
    gitlab: Option<String>,
    /// The models, datasets and Spaces of a Hugging Face user or organisation (token:
    /// `HF_TOKEN`).
    #[arg(long, value_name = "AUTHOR")]
    huggingface: Option<String>,
    /// The forge's API base (GitHub Enterprise: `https://HOST/api/v3`; GitLab and Hugging
    /// Face: the site, e.g. `https://gitlab.example`).
    #[arg(long, value_name = "URL", conflicts_with = "from_file")]
    api_url: Option<String>,
    /// Include forks (left out by default).
    #[arg(long, conflicts_with = "from_file")]
    include_forks: bool,
    /// Include archived repositories (left out by default).
    #[arg(long, conflicts_with = "from_file")]
    include_archived: bool,
    /// Where to write `repos.jsonl` (standard output by default).
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The repositories, as `trawl org list` writes them (several lists are planned as one).
    #[arg(required = true)]
    repos: Vec<PathBuf>,
    /// Number of shards (jobs that will scan in parallel).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=10_000))]
    shards: u16,
    /// Where to write the plan (standard output by default).
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// The shards' state directory: repositories whose branches and tags (`git ls-remote`)
    /// and rules are those of their last scan are marked unchanged, and cost the shards no
    /// fetch and no scan. Give the rule options the shards will run with.
    #[cfg(feature = "git")]
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    #[cfg(feature = "git")]
    #[command(flatten)]
    scan: super::args::ScanOpts,
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
    let repos = match &args.from_file {
        Some(file) => list_file(file, ui)?,
        None => list_forge(&args, ui)?,
    };
    write(args.output.as_ref(), &repos::to_jsonl(&repos))?;
    ui.summary(&format!(
        "trawl: {} listed",
        plural(repos.len(), "repository", "repositories")
    ));
    Ok(ExitCode::SUCCESS)
}

fn list_file(file: &PathBuf, ui: &dyn Ui) -> Result<Vec<repos::Repo>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    // Relative paths in the list are relative to the list itself.
    let base = std::path::absolute(file)?
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let (repos, problems) = repos::read_url_list(&text, &base);
    for p in &problems {
        ui.notice(&format!(
            "{} line {}: {}",
            file.display(),
            p.line,
            p.message
        ));
    }
    Ok(repos)
}

/// Lists from a forge's API; the token comes from the forge's environment variable only.
fn list_forge(args: &ListArgs, ui: &dyn Ui) -> Result<Vec<repos::Repo>> {
    use forge::http::{Client, Token};
    let filter = forge::Filter {
        include_forks: args.include_forks,
        include_archived: args.include_archived,
    };
    let notice = |m: &str| ui.summary(&format!("trawl: {m}"));
    let client = |default: &str, var: &str, header: &'static str, prefix: &str| {
        let token = Token::from_env(var, header, prefix).map_err(anyhow::Error::msg)?;
        let base = args.api_url.as_deref().unwrap_or(default);
        Client::new(base, token, &notice).map_err(anyhow::Error::msg)
    };
    let github = |owner| {
        let c = client(
            forge::github::DEFAULT_API,
            "GITHUB_TOKEN",
            "Authorization",
            "Bearer ",
        )?;
        forge::github::list(&c, &owner, filter).map_err(anyhow::Error::msg)
    };
    let listing = if let Some(org) = &args.github {
        github(forge::github::Owner::Org(org.clone()))?
    } else if let Some(user) = &args.github_user {
        github(forge::github::Owner::User(user.clone()))?
    } else if let Some(group) = &args.gitlab {
        let c = client(
            forge::gitlab::DEFAULT_BASE,
            "GITLAB_TOKEN",
            "PRIVATE-TOKEN",
            "",
        )?;
        forge::gitlab::list(&c, group, filter).map_err(anyhow::Error::msg)?
    } else if let Some(author) = &args.huggingface {
        let c = client(
            forge::huggingface::DEFAULT_BASE,
            "HF_TOKEN",
            "Authorization",
            "Bearer ",
        )?;
        forge::huggingface::list(&c, author).map_err(anyhow::Error::msg)?
    } else {
        bail!("no source to list from");
    };
    for (reason, n) in &listing.skipped {
        ui.summary(&format!(
            "trawl: warning: {} skipped: {reason}",
            plural(*n, "repository", "repositories")
        ));
    }
    if listing.excluded > 0 {
        ui.summary(&format!(
            "trawl: {} left out (forks or archived; see --include-forks, --include-archived)",
            plural(listing.excluded, "repository", "repositories")
        ));
    }
    Ok(listing.repos)
}

fn plan_cmd(args: PlanArgs, ui: &dyn Ui) -> Result<ExitCode> {
    let mut repos = Vec::new();
    for path in &args.repos {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        repos.extend(
            repos::from_jsonl(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        );
    }
    if repos.is_empty() {
        bail!("no repositories to plan");
    }
    #[cfg(feature = "git")]
    let unchanged = match &args.state {
        Some(dir) => super::org_scan::unchanged(&repos, dir, &args.scan, ui)?,
        None => Default::default(),
    };
    #[cfg(not(feature = "git"))]
    let unchanged = Default::default();
    let p = plan::plan_with(&repos, usize::from(args.shards), &unchanged);
    write(args.output.as_ref(), &plan::to_json(&p))?;
    let largest = p.shards.iter().map(|s| s.weight).max().unwrap_or(0);
    ui.summary(&format!(
        "trawl: {} in {} ({} unchanged since their last scan); the largest shard weighs {:.1} MB",
        plural(
            p.shards.iter().map(|s| s.repos.len()).sum(),
            "repository",
            "repositories"
        ),
        plural(p.shards.len(), "shard", "shards"),
        unchanged.len(),
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
