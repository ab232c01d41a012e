//! Command line: flags become a configured pipeline and a reporter; one file per subcommand,
//! no scanning logic. Nothing here writes to stderr: what a person should see goes through
//! [`Ui`], which the binary implements (escaped, redacted, never panicking on a closed pipe).

mod args;
mod baseline;
#[cfg(feature = "git")]
mod git;
mod inventory;
mod job;
mod org;
#[cfg(feature = "git")]
mod org_merge;
#[cfg(feature = "git")]
mod org_scan;
mod rules;
mod scan;
mod verify;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};

pub use args::{parse_size, ColorChoice, ReportOpts, ScanOpts};

use crate::warning::{Progress, Warning};

/// What the command line shows a person, on stderr: the binary decides how.
pub trait Ui: Send + Sync {
    /// A problem with one input (or the run); the scan went on.
    fn warning(&self, warning: &Warning);
    /// A line of information: guidance after a refused commit, where a report went.
    fn notice(&self, text: &str);
    /// A line of trawl's own words and numbers only (the summary, the advice after a refused
    /// commit), nothing from the scanned input: it needs no redaction, so a pre-commit run
    /// never loads a redactor.
    fn summary(&self, text: &str) {
        self.notice(text);
    }
    /// Whether a progress line may be drawn (stderr is a terminal).
    fn can_show_progress(&self) -> bool;
    /// Draws the progress line (`unit`: "files", "blobs"), or clears it with `None`.
    fn progress(&self, progress: Option<Progress>, unit: &str);
}

/// A [`Ui`] that shows nothing (for library callers and tests).
#[derive(Debug, Default)]
pub struct Silent;

impl Ui for Silent {
    fn warning(&self, _: &Warning) {}
    fn notice(&self, _: &str) {}
    fn can_show_progress(&self) -> bool {
        false
    }
    fn progress(&self, _: Option<Progress>, _: &str) {}
}

/// trawl: find leaked credentials in files, git history and AI artifacts.
#[derive(Debug, Parser)]
#[command(name = "trawl", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scan files and directories (`-` reads standard input).
    Scan(scan::ScanArgs),
    /// Scan git history: every blob of every ref once, or a range, or the staged changes.
    #[cfg(feature = "git")]
    Git(git::GitArgs),
    /// List or check rules.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// The register of credentials: one row per distinct secret, with owner, first and last
    /// seen, every place and the revocation page (CSV or JSON).
    Inventory(inventory::InventoryArgs),
    /// Accept current findings so that only new ones fail (`--baseline FILE`).
    #[command(subcommand)]
    Baseline(baseline::BaselineCommand),
    /// Scans of many repositories: list them, plan shards, scan a shard, merge the shards.
    #[command(subcommand)]
    Org(org::OrgCommand),
    /// Check one secret (read from standard input) with its rule's verifier (network).
    Verify(verify::VerifyArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `trawl man > trawl.1`.
    Man,
}

/// What `trawl --version` prints: the version, the git commit trawl was built from
/// ("unknown" when built outside a git checkout, as from a source distribution) and the
/// digest of the built-in rule catalogue — the generation digest that a run with the default
/// rules, limits and no configuration records in its state store (`--state`).
pub fn version_text() -> Result<String> {
    let generation = job::builtin_generation()?;
    Ok(format!(
        "trawl {}\ncommit {}\nrules {} ({} built-in rules, default limits)\n",
        env!("CARGO_PKG_VERSION"),
        env!("TRAWL_GIT_COMMIT"),
        generation.digest(),
        generation.rules.len(),
    ))
}

/// Runs the command line; errors become exit code 2 in `main`.
pub fn run(cli: Cli, ui: Arc<dyn Ui>) -> Result<ExitCode> {
    match cli.command {
        Command::Scan(args) => scan::run(args, ui),
        #[cfg(feature = "git")]
        Command::Git(args) => git::run(args, ui),
        Command::Rules(cmd) => rules::run(cmd, ui.as_ref()),
        Command::Inventory(args) => inventory::run(args, ui),
        Command::Baseline(cmd) => baseline::run(cmd, ui),
        Command::Org(cmd) => org::run(cmd, ui),
        Command::Verify(args) => verify::run(args, ui),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "trawl", &mut out);
            job::write_stdout(&out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            job::write_stdout(&out)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
