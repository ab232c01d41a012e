//! `trawl baseline create`: accept today's findings, keyed on their secret fingerprints, so
//! that only new secrets fail later scans (`--baseline FILE`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use super::scan::{collect, ScanArgs, Scanned};
use crate::dates::parse_date;
use crate::findings::suppress::{Baseline, BaselineEntry};

#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Write a baseline of the current findings (of a scan of PATHs, or of a JSON report).
    Create(CreateArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Files or directories to scan (as `trawl scan` does).
    #[arg(default_value = ".")]
    paths: Vec<PathBuf>,
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
    /// Configuration file for the scan.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// `trawl scan` arguments for the baseline's own scan.
#[derive(Parser)]
struct ScanOnly {
    #[command(flatten)]
    scan: ScanArgs,
}

pub fn run(cmd: BaselineCommand) -> Result<ExitCode> {
    let BaselineCommand::Create(args) = cmd;
    if let Some(d) = &args.expires {
        parse_date(d).map_err(anyhow::Error::msg)?;
    }
    let mut baseline = match &args.from {
        Some(report) => from_report(report, args.reason.as_deref())?,
        None => {
            let mut argv = vec!["scan".into(), "--quiet".into()];
            if let Some(c) = &args.config {
                argv.push("--config".into());
                argv.push(c.clone().into_os_string());
            }
            argv.extend(args.paths.iter().map(|p| p.clone().into_os_string()));
            let scan = ScanOnly::try_parse_from(argv)?.scan;
            let Scanned {
                setup, findings, ..
            } = collect(&scan)?;
            Baseline::from_findings(&setup.scanner, &findings, args.reason.as_deref())
        }
    };
    for e in &mut baseline.entries {
        e.expires.clone_from(&args.expires);
    }
    let text = serde_json::to_string_pretty(&baseline)?;
    std::fs::write(&args.output, text + "\n")
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    eprintln!(
        "trawl: wrote {} baseline entries to {}",
        baseline.entries.len(),
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
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
