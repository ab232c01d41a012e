//! Command line: flags become built objects; one file per subcommand.

mod baseline;
#[cfg(feature = "git")]
mod git;
mod rules;
mod scan;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::findings::suppress::{check_rule_ids, Baseline, Config, Suppressions};
use crate::findings::Finding;
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
    /// Accept current findings so that only new ones fail (`--baseline FILE`).
    #[command(subcommand)]
    Baseline(baseline::BaselineCommand),
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
    /// Configuration file (default: `trawl.toml` at the scan root, if any).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Suppress the findings of a baseline file (`trawl baseline create`).
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// List baseline entries that no longer match anything (on stderr).
    #[arg(long, requires = "baseline")]
    pub report_stale: bool,
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

/// Built-in rules plus the given rule files, less the disabled ones, compiled into a scanner.
pub fn build_scanner(rule_files: &[PathBuf], config: &Config) -> Result<Scanner> {
    let mut rules = RuleSet::builtin()?;
    for path in rule_files {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read rule file {}", path.display()))?;
        for w in rules.add_file(&text, &path.display().to_string())? {
            eprintln!("trawl: warning: {}: {w}", path.display());
        }
    }
    check_rule_ids(config, &rules.ids())?;
    let disabled: HashSet<&str> = config
        .file
        .rules
        .disable
        .iter()
        .map(String::as_str)
        .collect();
    rules.retain(|r| !disabled.contains(r.id()));
    Scanner::new(rules)
}

/// What every scanning command sets up from its flags and configuration.
pub struct Setup {
    /// The configuration (empty when there is none).
    pub config: Config,
    /// Rules and keyword automaton.
    pub scanner: Scanner,
    /// Allowlists and baseline.
    pub suppressions: Suppressions,
}

impl Setup {
    /// Loads the configuration (explicit, or `trawl.toml` in `root`), rules and baseline.
    pub fn new(args: &ReportArgs, root: Option<&Path>) -> Result<Setup> {
        let config = Config::load(args.config.as_deref(), root)?;
        let mut files = args.rule_files.clone();
        files.extend(config.rule_files());
        let scanner = build_scanner(&files, &config)?;
        let baseline = args.baseline.as_deref().map(Baseline::load).transpose()?;
        let suppressions = Suppressions::new(&config, baseline)?;
        Ok(Setup {
            config,
            scanner,
            suppressions,
        })
    }

    /// Applies allowlists and baseline to the sorted findings, and reports what they did.
    pub fn suppress(&self, args: &ReportArgs, findings: &mut Vec<Finding>) {
        let report = self.suppressions.apply(&self.scanner, findings);
        if args.quiet {
            return;
        }
        for (rule, day) in &report.expired {
            eprintln!("trawl: warning: baseline entry for a {rule} finding expired on {day}: reported again");
        }
        if args.report_stale {
            for e in &report.stale {
                eprintln!(
                    "trawl: stale baseline entry: {} {}{}",
                    e.rule,
                    e.fingerprint,
                    e.reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
            }
            eprintln!("trawl: {} stale baseline entries", report.stale.len());
        }
        if report.baselined > 0 || report.allowlisted > 0 {
            eprintln!(
                "trawl: suppressed {} findings by baseline and {} locations by allowlists",
                report.baselined, report.allowlisted
            );
        }
    }
}

/// Runs the command line; errors become exit code 2 in `main`.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Scan(args) => scan::run(args),
        #[cfg(feature = "git")]
        Command::Git(args) => git::run(args),
        Command::Rules(cmd) => rules::run(cmd),
        Command::Baseline(cmd) => baseline::run(cmd),
    }
}
