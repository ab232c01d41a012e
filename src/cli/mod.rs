//! Command line: flags become built objects; one file per subcommand.

#[cfg(feature = "git")]
mod git;
mod rules;
mod scan;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::report::Format;
use crate::rules::{RuleSet, Severity};
use crate::scan::Scanner;

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
}

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

/// Flags shared by every scanning subcommand.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write the report to FILE instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print secrets in clear (they are redacted by default).
    #[arg(long)]
    pub show_secrets: bool,
    /// Exit with 1 only for findings at or above this severity.
    #[arg(long, value_name = "SEVERITY", default_value = "info", value_parser = parse_severity)]
    pub fail_on: Severity,
    /// Extra rule files (trawl format), added to the built-in rules.
    #[arg(long = "rules", value_name = "FILE")]
    pub rule_files: Vec<PathBuf>,
    /// Worker threads (default: number of CPUs).
    #[arg(long, short = 'j', value_name = "N")]
    pub threads: Option<usize>,
    /// Colour the text report.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// No warnings, progress or summary on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse()
}

impl ReportArgs {
    /// The number of worker threads to use.
    pub fn threads(&self) -> usize {
        self.threads
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

/// Built-in rules plus the given rule files, compiled into a scanner.
pub fn build_scanner(rule_files: &[PathBuf]) -> Result<Scanner> {
    let mut rules = RuleSet::builtin()?;
    for path in rule_files {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read rule file {}", path.display()))?;
        rules.add_toml(&text, &path.display().to_string())?;
    }
    Scanner::new(rules)
}

/// Runs the command line; errors become exit code 2 in `main`.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Scan(args) => scan::run(args),
        #[cfg(feature = "git")]
        Command::Git(args) => git::run(args),
        Command::Rules(cmd) => rules::run(cmd),
    }
}
