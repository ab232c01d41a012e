//! `trawl org merge`: the shards of a plan become one report. Refuses while a shard is not
//! done; unions findings across repositories by secret fingerprint (one secret in five
//! repositories is one finding with every location, each with its repository); applies the
//! baseline and path allowlists, then the gate (`--fail-on`); prints coverage.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use clap::Args;

use super::args::ReportOpts;
use super::job::{self, Scanned};
use super::org_scan::read_plan;
use super::Ui;
use crate::findings::suppress::{Baseline, Config, GitleaksIgnore, Suppressions};
use crate::findings::{self, Finding};
use crate::org::record::{self, Record};
use crate::org::shard::{is_complete, read_output, Files};
use crate::report::plural;
use crate::rules::RuleInfo;
use crate::source::Diagnostics;
use crate::warning::{Warning, WarningKind};

/// The most bytes of findings read from one shard.
const MAX_SHARD_OUTPUT: u64 = 4 << 30;

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The plan the shards ran.
    #[arg(long, value_name = "FILE")]
    plan: PathBuf,
    /// The shards' output directory.
    dir: PathBuf,
    /// Configuration whose path allowlists apply (the scanned repositories' own `trawl.toml`
    /// never does).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Rule files the shards ran with, for their names and severities.
    #[arg(long = "rules", value_name = "FILE")]
    rule_files: Vec<PathBuf>,
    /// Print no summary or warnings.
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    report: ReportOpts,
}

pub fn run(args: MergeArgs, ui: Arc<dyn Ui>) -> Result<ExitCode> {
    let started = Instant::now();
    let plan = read_plan(&args.plan)?;
    let mut markers = Vec::with_capacity(plan.shards.len());
    let mut missing = Vec::new();
    for shard in &plan.shards {
        let files = Files::new(&args.dir, shard.index);
        match files.finished(&plan.digest, shard.index) {
            Some(m) => markers.push((files, m)),
            None => missing.push(shard.index.to_string()),
        }
    }
    if !missing.is_empty() {
        bail!(
            "{} of {} not done (no marker of this plan in {}): {}",
            plural(missing.len(), "shard", "shards"),
            plan.shards.len(),
            args.dir.display(),
            missing.join(", ")
        );
    }
    let rules = rule_infos(&args)?;
    let mut merged: BTreeMap<String, Finding> = BTreeMap::new();
    let diag = Diagnostics::new(Box::new({
        let ui = ui.clone();
        let quiet = args.quiet;
        move |w| {
            if !quiet {
                ui.warning(w);
            }
        }
    }));
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (files, marker) in &markers {
        for r in &marker.repositories {
            *counts.entry(r.status.as_str()).or_default() += 1;
            diag.blobs.fetch_add(r.blobs_scanned, Ordering::Relaxed);
            diag.rescanned
                .fetch_add(r.blobs_rescanned, Ordering::Relaxed);
            diag.known.fetch_add(r.blobs_known, Ordering::Relaxed);
            if !is_complete(&r.status) {
                // Not read, or not in full: never reported as clean.
                diag.warn(Warning::new(
                    WarningKind::Unreadable,
                    r.url.clone(),
                    format!(
                        "{}: {}",
                        r.status,
                        r.message.as_deref().unwrap_or("no reason given")
                    ),
                ));
            }
        }
        let text = read_output(&files.output, MAX_SHARD_OUTPUT)?;
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let rec: Record = serde_json::from_slice(line).map_err(|_| {
                anyhow!(
                    "{}: line {} is not a finding",
                    files.output.display(),
                    i + 1
                )
            })?;
            let f = record::finding(&rec, rules.get(rec.rule.as_str()).cloned());
            match merged.get_mut(&f.fingerprint) {
                Some(m) => m.locations.extend(f.locations),
                None => {
                    merged.insert(f.fingerprint.clone(), f);
                }
            }
        }
    }
    let mut findings = findings::sorted(merged.into_values().collect());
    let config = Config::load(args.config.as_deref(), None)?;
    let baseline = args
        .report
        .baseline
        .as_deref()
        .map(Baseline::load)
        .transpose()?;
    let suppressions = Suppressions::new(&config, baseline, GitleaksIgnore::default())?;
    let report = suppressions.apply(&mut findings);
    let repos: usize = counts.values().sum();
    if !args.quiet {
        if report.baselined > 0 || report.allowlisted > 0 {
            ui.notice(&format!(
                "trawl: suppressed {} by baseline and {} by allowlists",
                plural(report.baselined, "finding", "findings"),
                plural(report.allowlisted, "location", "locations")
            ));
        }
        ui.summary(&format!(
            "trawl: coverage: {} in {}: {} scanned, {} unchanged since their last scan, {} incomplete, {} failed",
            plural(repos, "repository", "repositories"),
            plural(markers.len(), "shard", "shards"),
            counts.get("scanned").unwrap_or(&0),
            counts.get("unchanged").unwrap_or(&0),
            counts.get("incomplete").unwrap_or(&0),
            counts.get("failed").unwrap_or(&0),
        ));
    }
    super::verify::stage(
        &args.report.verify,
        args.config.as_deref(),
        None,
        &mut findings,
        args.quiet,
        ui.as_ref(),
    )?;
    let scanned = Scanned {
        findings,
        diag,
        started,
    };
    job::finish(
        &args.report,
        args.quiet,
        &scanned,
        None,
        "blobs",
        ui.as_ref(),
    )
}

/// Rule metadata by id: built-in rules and `--rules` files.
fn rule_infos(args: &MergeArgs) -> Result<HashMap<String, Arc<RuleInfo>>> {
    let rules = super::job::rules_with_files(&args.rule_files)?;
    Ok(rules
        .rules()
        .iter()
        .map(|r| (r.id().to_string(), r.info().clone()))
        .collect())
}
