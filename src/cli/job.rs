//! One run of the pipeline, as every scanning subcommand configures it: configuration and
//! rules, the pipeline over one source, suppressions, then the report, the summary and the
//! exit code.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::args::{ColorChoice, ReportOpts, ScanOpts};
use super::Ui;
use crate::content::{Limits, MAX_ARCHIVE_DEPTH};
use crate::findings::suppress::{
    check_rule_ids, Baseline, BoundedFile, Config, GitleaksIgnore, Suppressions,
};
use crate::findings::Finding;
use crate::pipeline::{self, Pipeline, StateHook};
use crate::report::{self, plural, Format, ReportContext};
use crate::rules::RuleSet;
use crate::scan::Scanner;
use crate::source::{Diagnostics, Source};
use crate::state::{Generation, Store};

/// The file-size limit when neither a flag nor the configuration sets one.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 256 << 20;

/// What a finished run hands to the reporter.
pub struct Scanned {
    /// Findings, suppressions applied, in report order.
    pub findings: Vec<Finding>,
    /// Warnings and counters.
    pub diag: Diagnostics,
    /// Wall time of the scan.
    pub started: Instant,
}

/// Built-in rules plus rule files, less the disabled ones (or only the enabled ones).
pub fn build_scanner(
    opts: &ScanOpts,
    rule_files: &[BoundedFile],
    config: &Config,
    ui: &dyn Ui,
    small: bool,
) -> Result<Scanner> {
    let rules = load_rules(opts, rule_files, config, &mut |w| ui.warning(&w))?;
    if small {
        Scanner::for_small_inputs(rules)
    } else {
        Scanner::new(rules)
    }
}

/// The built-in rules and the `--rules` files the user named (trusted: their verifiers and
/// revocation pages stand), for the commands that need rule metadata, not a scanner.
pub fn rules_with_files(paths: &[PathBuf]) -> Result<RuleSet> {
    let mut rules = RuleSet::builtin()?;
    for path in paths {
        let text = BoundedFile::trusted(path.clone()).read("rule file")?;
        rules.add_file(&text, &path.display().to_string())?;
    }
    Ok(rules)
}

/// The rules [`build_scanner`] compiles; rule-file warnings go to `warn`.
fn load_rules(
    opts: &ScanOpts,
    rule_files: &[BoundedFile],
    config: &Config,
    warn: &mut dyn FnMut(crate::warning::Warning),
) -> Result<RuleSet> {
    let mut rules = RuleSet::builtin()?;
    for file in rule_files {
        let text = file.read("rule file")?;
        let origin = file.path.display().to_string();
        let before: HashSet<String> = rules.ids().into_iter().map(str::to_string).collect();
        for w in rules.add_file(&text, &origin)? {
            warn(crate::warning::Warning::new(
                crate::warning::WarningKind::Rule,
                origin.clone(),
                w,
            ));
        }
        if file.within.is_some() {
            // A rule file the scanned tree named must not choose where secrets are sent.
            let dropped = rules.drop_verifiers(|r| !before.contains(r.id()));
            if !dropped.is_empty() {
                warn(crate::warning::Warning::new(
                    crate::warning::WarningKind::Rule,
                    origin.clone(),
                    format!(
                        "verifiers of rule files in the scanned tree are not used ({})",
                        dropped.join(", ")
                    ),
                ));
            }
        }
    }
    check_rule_ids(config, &rules.ids())?;
    let ids = rules.ids();
    for id in opts.disable_rules.iter().chain(&opts.enable_rules) {
        if !ids.contains(id.as_str()) {
            bail!("unknown rule id `{id}` (see `trawl rules list`)");
        }
    }
    let disabled: HashSet<&str> = config
        .file
        .rules
        .disable
        .iter()
        .chain(&opts.disable_rules)
        .map(String::as_str)
        .collect();
    let enabled: HashSet<&str> = opts.enable_rules.iter().map(String::as_str).collect();
    rules
        .retain(|r| !disabled.contains(r.id()) && (enabled.is_empty() || enabled.contains(r.id())));
    Ok(rules)
}

/// The largest file-size limit a flag or a configuration can set (a file under it may be
/// read into memory whole).
pub const MAX_FILE_SIZE_CAP: u64 = 4 << 30;

/// Limits from flags, else from `[limits]` of the configuration, else the defaults; higher
/// values are clamped to [`MAX_ARCHIVE_DEPTH`] and [`MAX_FILE_SIZE_CAP`].
pub fn resolve_limits(opts: &ScanOpts, config: &Config) -> Result<Limits> {
    let from_config = config
        .file
        .limits
        .max_file_size
        .as_deref()
        .map(super::parse_size)
        .transpose()
        .map_err(|_| {
            anyhow::anyhow!(
                "{}: [limits] max_file_size: not a size (digits with an optional K, M or G)",
                config
                    .path
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string())
            )
        })?;
    Ok(Limits {
        max_depth: opts
            .archive_depth
            .or(config.file.limits.archive_depth)
            .unwrap_or(Limits::default().max_depth)
            .min(MAX_ARCHIVE_DEPTH),
        max_member_bytes: opts
            .max_file_size
            .or(from_config)
            .unwrap_or(DEFAULT_MAX_FILE_SIZE)
            .min(MAX_FILE_SIZE_CAP),
        ..Limits::default()
    })
}

/// The generation the state store keys results on: the rules, under these limits and the
/// configuration's secret-content allowlists.
fn generation(rules: &RuleSet, limits: &Limits, config: &Config) -> Generation {
    Generation::of(
        rules,
        &format!(
            "limits {limits:?}\nsecret filter {}",
            config.secret_filter_digest()
        ),
    )
}

/// The generation of the built-in rule catalogue under the default limits and no
/// configuration: what a run without rule, limit or configuration flags and without a
/// `trawl.toml` records in its state store (`trawl --version` shows its digest).
pub fn builtin_generation() -> Result<Generation> {
    let (opts, config) = (ScanOpts::default(), Config::default());
    let rules = load_rules(&opts, &[], &config, &mut |_| {})?;
    Ok(generation(
        &rules,
        &resolve_limits(&opts, &config)?,
        &config,
    ))
}

/// Configuration, rules, limits and suppressions, loaded once for one or many runs of the
/// pipeline.
pub struct Engine {
    opts: ScanOpts,
    rule_files: Vec<BoundedFile>,
    config: Config,
    scanner: Scanner,
    limits: Limits,
    suppressions: Suppressions,
}

/// An open state store with the scanners of its deltas.
pub struct State {
    store: Store,
    deltas: Vec<Scanner>,
}

impl State {
    /// The store.
    #[cfg(feature = "git")]
    pub fn store(&self) -> &Store {
        &self.store
    }
}

impl Engine {
    /// Loads configuration (from `root` unless `--config`), rules, the baseline and
    /// `.gitleaksignore`.
    pub fn load(
        opts: &ScanOpts,
        baseline: Option<&Path>,
        root: Option<&Path>,
        small: bool,
        ui: &dyn Ui,
    ) -> Result<Engine> {
        let config = Config::load(opts.config.as_deref(), root)?;
        let mut rule_files: Vec<BoundedFile> = opts
            .rule_files
            .iter()
            .cloned()
            .map(BoundedFile::trusted)
            .collect();
        rule_files.extend(config.rule_files());
        let scanner = build_scanner(opts, &rule_files, &config, ui, small)?;
        let baseline = baseline.map(Baseline::load).transpose()?;
        let suppressions = Suppressions::new(&config, baseline, GitleaksIgnore::load(root))?;
        let limits = resolve_limits(opts, &config)?;
        Ok(Engine {
            opts: opts.clone(),
            rule_files,
            config,
            scanner,
            limits,
            suppressions,
        })
    }

    /// The rule generation of this engine, as the state store keys results on it.
    pub fn generation(&self) -> Generation {
        generation(self.scanner.rules(), &self.limits, &self.config)
    }

    /// Opens the state store at `path`, with a scanner for each set of rules that blobs
    /// scanned by earlier generations still lack.
    pub fn open_state(&self, path: &Path) -> Result<State> {
        let generic = self
            .scanner
            .rules()
            .rules()
            .iter()
            .filter(|r| r.is_generic())
            .map(|r| r.id().to_string())
            .collect();
        let store = Store::open(path, self.generation(), generic)?;
        let mut deltas = Vec::new();
        for delta in store.deltas() {
            let mut rules = load_rules(&self.opts, &self.rule_files, &self.config, &mut |_| {})?;
            rules.retain(|r| delta.contains(r.id()));
            deltas.push(Scanner::new(rules)?);
        }
        Ok(State { store, deltas })
    }

    /// Runs `source` through the pipeline (with the state store, when given), with a progress
    /// line; no suppression applied.
    pub fn run(
        &self,
        source: &mut dyn Source,
        state: Option<&State>,
        unit: &str,
        ui: &Arc<dyn Ui>,
    ) -> Result<(Vec<Finding>, Diagnostics)> {
        let quiet = self.opts.quiet;
        let sink_ui = ui.clone();
        let diag = Diagnostics::new(Box::new(move |w| {
            if !quiet {
                sink_ui.warning(w);
            }
        }));
        let options = pipeline::Options {
            limits: self.limits.clone(),
            threads: self.opts.threads(),
            exclude: self.opts.exclude.clone(),
        };
        let drops = |id: &str, secret: &[u8]| self.suppressions.allows_secret(id, secret);
        let mut pipeline = Pipeline::new(&self.scanner, options, &diag)?;
        if let Some(state) = state {
            pipeline = pipeline.with_state(StateHook {
                store: &state.store,
                deltas: &state.deltas,
                drops: &drops,
            });
        }
        let show_progress = !quiet && !self.opts.no_progress && ui.can_show_progress();
        let done = AtomicBool::new(false);
        let result = std::thread::scope(|s| {
            if show_progress {
                s.spawn(|| progress_loop(&done, &diag, ui.as_ref(), unit));
            }
            let r = pipeline.run(source);
            done.store(true, Ordering::Relaxed);
            r
        });
        result?;
        let findings = pipeline.finish();
        if let Some(state) = state {
            state.store.commit()?;
        }
        Ok((findings, diag))
    }

    /// Applies allowlists, `.gitleaksignore` and the baseline, and tells about expired and
    /// (with `report_stale`) stale baseline entries.
    pub fn suppress(&self, findings: &mut Vec<Finding>, report_stale: bool, ui: &dyn Ui) {
        let report = self.suppressions.apply(findings);
        if self.opts.quiet {
            return;
        }
        for (rule, day) in &report.expired {
            ui.notice(&format!(
                "trawl: warning: baseline entry for a {rule} finding expired on {day}: reported again"
            ));
        }
        if report_stale {
            for e in &report.stale {
                ui.notice(&format!(
                    "trawl: stale baseline entry: {} {}{}",
                    e.rule,
                    e.fingerprint,
                    e.reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ));
            }
            ui.notice(&format!(
                "trawl: {}",
                plural(
                    report.stale.len(),
                    "stale baseline entry",
                    "stale baseline entries"
                )
            ));
        }
        if report.baselined > 0 || report.allowlisted > 0 {
            ui.notice(&format!(
                "trawl: suppressed {} by baseline and {} by allowlists",
                plural(report.baselined, "finding", "findings"),
                plural(report.allowlisted, "location", "locations")
            ));
        }
    }
}

/// Loads configuration and rules (from `root` unless `--config`), runs `source` through the
/// pipeline with a progress line (and the state store at `state`, when given), and applies
/// allowlists, `.gitleaksignore` and the baseline.
#[allow(clippy::too_many_arguments)]
pub fn scan(
    opts: &ScanOpts,
    baseline: Option<&Path>,
    report_stale: bool,
    root: Option<&Path>,
    state: Option<&Path>,
    source: &mut dyn Source,
    unit: &str,
    ui: &Arc<dyn Ui>,
) -> Result<Scanned> {
    let started = Instant::now();
    let engine = Engine::load(opts, baseline, root, source.is_small(), ui.as_ref())?;
    let state = state.map(|p| engine.open_state(p)).transpose()?;
    let (mut findings, diag) = engine.run(source, state.as_ref(), unit, ui)?;
    engine.suppress(&mut findings, report_stale, ui.as_ref());
    Ok(Scanned {
        findings,
        diag,
        started,
    })
}

/// Redraws the progress line every 200 ms, from the first second on, until `done`.
fn progress_loop(done: &AtomicBool, diag: &Diagnostics, ui: &dyn Ui, unit: &str) {
    let start = Instant::now();
    let mut drawn = false;
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if start.elapsed() < Duration::from_secs(1) {
            continue;
        }
        ui.progress(Some(diag.progress()), unit);
        drawn = true;
    }
    if drawn {
        ui.progress(None, unit);
    }
}

/// Writes the report, prints the summary, and returns the exit code: 1 for findings at or
/// above `--fail-on`, 2 when an input given on the command line could not be read (after the
/// report is written: findings of the other inputs are never lost). A closed standard output
/// (`| head`) ends the report quietly and keeps that code.
pub fn finish(
    report: &ReportOpts,
    quiet: bool,
    scanned: &Scanned,
    root_uri: Option<String>,
    unit: &str,
    ui: &dyn Ui,
) -> Result<ExitCode> {
    let live_only = report.verify.fail_on_live;
    let code = if scanned.diag.errors() > 0 {
        ExitCode::from(2)
    } else if scanned.findings.iter().any(|f| {
        f.rule.severity >= report.fail_on
            && (!live_only
                || f.verification
                    .as_ref()
                    .is_some_and(|v| v.status == crate::verify::Status::Live))
    }) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    };
    write_report(report, &scanned.findings, root_uri, quiet, ui)?;
    if !quiet {
        ui.summary(&summary(scanned, unit));
    }
    Ok(code)
}

fn write_report(
    args: &ReportOpts,
    findings: &[Finding],
    root_uri: Option<String>,
    quiet: bool,
    ui: &dyn Ui,
) -> Result<()> {
    let to_terminal = args.output.is_none() && std::io::stdout().is_terminal();
    let ctx = ReportContext {
        show_secrets: args.show_secrets,
        redact_keep: args.redact,
        color: match args.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => to_terminal && std::env::var_os("NO_COLOR").is_none(),
        },
        root_uri,
        ..ReportContext::default()
    };
    match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot write report to {}", path.display()))?;
            let mut w = std::io::BufWriter::new(file);
            report::write(args.format, &ctx, findings, &mut w)
                .and_then(|()| w.flush())
                .with_context(|| format!("cannot write report to {}", path.display()))?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            let written =
                report::write(args.format, &ctx, findings, &mut w).and_then(|()| w.flush());
            ignore_broken_pipe(written)?;
        }
    }
    if args.format == Format::Sarif && !quiet {
        let results: usize = findings.iter().map(|f| f.locations.len()).sum();
        if results > report::SARIF_MAX_RESULTS {
            ui.notice(&format!(
                "trawl: warning: SARIF holds the first {} of {results} results (GitHub's limit)",
                report::SARIF_MAX_RESULTS
            ));
        }
    }
    Ok(())
}

/// A reader that went away (`| head`) is not an error.
pub fn ignore_broken_pipe(r: std::io::Result<()>) -> std::io::Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Writes bytes to standard output; a closed pipe is not an error.
pub fn write_stdout(bytes: &[u8]) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    ignore_broken_pipe(out.write_all(bytes).and_then(|()| out.flush()))
}

fn summary(scanned: &Scanned, unit: &str) -> String {
    let findings = &scanned.findings;
    let diag = &scanned.diag;
    let mut by_sev = [0usize; 5];
    for f in findings {
        by_sev[f.rule.severity as usize] += 1;
    }
    let names = ["info", "low", "medium", "high", "critical"];
    let parts: Vec<String> = (0..5)
        .rev()
        .filter(|&i| by_sev[i] > 0)
        .map(|i| format!("{} {}", by_sev[i], names[i]))
        .collect();
    let locations: usize = findings.iter().map(|f| f.locations.len()).sum();
    let (one, many) = match unit {
        "blobs" => ("blob", "blobs"),
        _ => ("file", "files"),
    };
    let p = diag.progress();
    format!(
        "trawl: {}{} at {}; scanned {} ({:.1} MB) in {:.2} s{}{}{}{}{}{}",
        plural(findings.len(), "finding", "findings"),
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        },
        plural(locations, "location", "locations"),
        plural(diag.blobs.load(Ordering::Relaxed) as usize, one, many),
        p.bytes as f64 / 1e6,
        scanned.started.elapsed().as_secs_f64(),
        match diag.rescanned.load(Ordering::Relaxed) as usize {
            0 => String::new(),
            n => format!(" ({n} with new or changed rules only)"),
        },
        match diag.binary.load(Ordering::Relaxed) as usize {
            0 => String::new(),
            n => format!(
                ", {} skipped",
                plural(n, &format!("binary {one}"), &format!("binary {many}"))
            ),
        },
        // Not scanned, and not clean either: the content is in LFS storage.
        match diag.lfs.load(Ordering::Relaxed) as usize {
            0 => String::new(),
            n => format!(
                ", {} not scanned (content stored elsewhere)",
                plural(n, "Git LFS pointer", "Git LFS pointers")
            ),
        },
        match diag.known.load(Ordering::Relaxed) as usize {
            0 => String::new(),
            n => format!("; {} known from the state store", plural(n, one, many)),
        },
        match diag.warnings() {
            0 => String::new(),
            n => format!(", {}", plural(n, "warning", "warnings")),
        },
        // What was not read was not found clean: never a bare "0 findings".
        match diag.unreadable() {
            0 => String::new(),
            n => format!(
                "; {} could not be read: the scan is incomplete",
                plural(n, "input", "inputs")
            ),
        },
    )
}
