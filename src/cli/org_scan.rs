//! `trawl org scan`: one shard of a plan. Each repository is fetched into the cache, its whole
//! history scanned by the engine of `trawl git` (through the state store when `--state`), and
//! its findings written as a part; the shard's output and marker come last.
//!
//! Exit codes (the contract with batch engines): 0 the shard is done, whether or not secrets
//! were found (a finding is not a failure: the gate is `org merge`); [`EXIT_RETRY`] a failure
//! worth retrying (no repository of the shard could be fetched, the output could not be
//! written); 2 fatal (bad flags, an unreadable or different plan, an index out of range).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;

use super::args::ScanOpts;
use super::job::{Engine, State};
use super::Ui;
use crate::org::fetch::{self, FetchError};
use crate::org::plan::{self, Plan};
use crate::org::record;
use crate::org::repos::Repo;
use crate::org::shard::{Files, Marker, RepoStatus, MARKER_VERSION};
use crate::report::plural;
use crate::source::git::{self, GitHistory, HistoryOptions};
use crate::state::RepoState;

/// Exit code of a shard worth retrying (`EX_TEMPFAIL`).
pub const EXIT_RETRY: u8 = 75;

/// Where the shard index may come from, in this order.
const SHARD_VARS: [&str; 3] = [
    "JOB_COMPLETION_INDEX",
    "AWS_BATCH_JOB_ARRAY_INDEX",
    "TRAWL_SHARD",
];

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The plan, as `trawl org plan` writes it.
    #[arg(long, value_name = "FILE")]
    plan: PathBuf,
    /// The shard to scan, `I/N` with I counted from 0 (N must be the plan's).
    #[arg(long, value_name = "I/N", required_unless_present = "shard_from_env")]
    shard: Option<String>,
    /// Take the shard index from the batch engine's environment: `JOB_COMPLETION_INDEX`
    /// (Kubernetes Indexed Job), `AWS_BATCH_JOB_ARRAY_INDEX`, or `TRAWL_SHARD`.
    #[arg(long, conflicts_with = "shard")]
    shard_from_env: bool,
    /// Where to write `shard-I.jsonl.gz` and `shard-I.done.json`.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Bare clones, kept between runs (default `DIR/cache`).
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// State stores, one file per fork network, kept between runs: unchanged repositories are
    /// not read again, known blobs not scanned again.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// Time limit of one `git clone` or `git fetch`, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    fetch_timeout: u64,
    #[command(flatten)]
    scan: ScanOpts,
}

/// Reads and checks a plan.
pub fn read_plan(path: &Path) -> Result<Plan> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let plan: Plan = serde_json::from_slice(&bytes)
        .map_err(|e| anyhow!("{}: not a plan ({})", path.display(), e.classify_name()))?;
    if plan.version != plan::PLAN_VERSION {
        bail!("{}: a plan of another version", path.display());
    }
    if plan.shards.iter().enumerate().any(|(i, s)| s.index != i) {
        bail!("{}: shards out of order", path.display());
    }
    Ok(plan)
}

trait Classify {
    fn classify_name(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "bad JSON",
            serde_json::error::Category::Data => "unexpected fields",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

/// The shard index from `--shard I/N` or the environment, checked against the plan.
fn shard_index(args: &ScanArgs, plan: &Plan) -> Result<usize> {
    let n = plan.shards.len();
    let index = match &args.shard {
        Some(spec) => {
            let (i, of) = spec
                .split_once('/')
                .ok_or_else(|| anyhow!("--shard takes I/N, e.g. 0/{n}"))?;
            let of: usize = of.parse().map_err(|_| anyhow!("--shard takes I/N"))?;
            if of != n {
                bail!("--shard {spec}: the plan has {n} shards");
            }
            i.parse::<usize>()
                .map_err(|_| anyhow!("--shard takes I/N"))?
        }
        None => {
            let (var, value) = SHARD_VARS
                .iter()
                .find_map(|v| std::env::var(v).ok().map(|x| (*v, x)))
                .ok_or_else(|| {
                    anyhow!("--shard-from-env: none of {} is set", SHARD_VARS.join(", "))
                })?;
            value
                .trim()
                .parse::<usize>()
                .map_err(|_| anyhow!("{var} is not a shard index"))?
        }
    };
    if index >= n {
        bail!(
            "shard {index} is out of range: the plan has {n} shards (0 to {})",
            n - 1
        );
    }
    Ok(index)
}

/// The state file of a repository's fork network in `dir`.
fn state_file(dir: &Path, repo: &Repo) -> PathBuf {
    use sha2::Digest;
    let h = sha2::Sha256::digest(plan::network(repo).as_bytes());
    let name: String = h[..12].iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{name}.sqlite"))
}

pub fn run(args: ScanArgs, ui: Arc<dyn Ui>) -> Result<ExitCode> {
    let plan = read_plan(&args.plan)?;
    let index = shard_index(&args, &plan)?;
    let files = Files::new(&args.out, index);
    if let Some(m) = files.finished(&plan.digest, index) {
        ui.summary(&format!(
            "trawl: shard {index} of this plan is already done ({}); nothing to do",
            plural(m.repositories.len(), "repository", "repositories")
        ));
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let cache = args.cache.clone().unwrap_or_else(|| args.out.join("cache"));
    if let Some(dir) = &args.state {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // The operator's configuration only (`--config`): a scanned repository's `trawl.toml`
    // does not decide what is reported about it.
    let engine = Engine::load(&args.scan, None, None, false, ui.as_ref())?;
    let generation = engine.generation().digest();
    let repos = &plan.shards[index].repos;
    let total = repos.len();
    let mut lines: Vec<u8> = Vec::new();
    let mut statuses = Vec::with_capacity(total);
    let mut fetch_failures = 0usize;
    let mut state: Option<(PathBuf, State)> = None;
    let pause = std::env::var("TRAWL_ORG_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    for (n, repo) in repos.iter().enumerate() {
        if let Some((status, part)) = files.finished_part(n, &repo.url, &plan.digest) {
            ui.summary(&format!(
                "trawl: [{}/{total}] done by an earlier run: {}",
                n + 1,
                status.status
            ));
            lines.extend_from_slice(&part);
            statuses.push(status);
            continue;
        }
        ui.notice(&format!("trawl: [{}/{total}] {}", n + 1, repo.url));
        // One store per fork network; the plan keeps a network's repositories together.
        if let Some(dir) = &args.state {
            let path = state_file(dir, repo);
            if state.as_ref().map(|(p, _)| p) != Some(&path) {
                // The last network's store is closed (committed) before the next opens.
                drop(state.take());
                state = Some((path.clone(), engine.open_state(&path)?));
            }
        }
        let store = state.as_ref().map(|(_, s)| s);
        let (status, part) = match scan_repo(&engine, repo, &cache, store, &generation, &args, &ui)
        {
            Ok(done) => done,
            Err(e) => {
                if matches!(e, FetchError::Git(_, _, true) | FetchError::Timeout(..)) {
                    fetch_failures += 1;
                }
                ui.notice(&format!("trawl: {}: {e}", repo.url));
                (
                    RepoStatus {
                        url: repo.url.clone(),
                        status: "failed".to_string(),
                        findings: 0,
                        blobs_scanned: 0,
                        blobs_rescanned: 0,
                        blobs_known: 0,
                        message: Some(e.to_string()),
                    },
                    Vec::new(),
                )
            }
        };
        if status.status != "failed" {
            files.write_part(n, &plan.digest, &status, &part)?;
        }
        lines.extend_from_slice(&part);
        statuses.push(status);
        if let Some(ms) = pause {
            std::thread::sleep(Duration::from_millis(ms));
        }
    }
    if total > 0 && fetch_failures == total {
        ui.notice(&format!(
            "trawl: no repository of shard {index} could be fetched: retry the shard (exit code {EXIT_RETRY})"
        ));
        return Ok(ExitCode::from(EXIT_RETRY));
    }
    let marker = Marker {
        version: MARKER_VERSION,
        plan: plan.digest.clone(),
        shard: index,
        shards: plan.shards.len(),
        repositories: statuses,
    };
    if let Err(e) = files.finish(&lines, &marker) {
        ui.notice(&format!("trawl: {e:#}"));
        return Ok(ExitCode::from(EXIT_RETRY));
    }
    let count = |s: &str| marker.repositories.iter().filter(|r| r.status == s).count();
    let sum = |f: fn(&RepoStatus) -> u64| marker.repositories.iter().map(f).sum::<u64>();
    ui.summary(&format!(
        "trawl: shard {index}/{}: {} scanned, {} unchanged, {} incomplete, {} failed; {} scanned ({} with new or changed rules only), {} known; {}",
        plan.shards.len(),
        count("scanned"),
        count("unchanged"),
        count("incomplete"),
        count("failed"),
        plural(sum(|r| r.blobs_scanned) as usize, "blob", "blobs"),
        sum(|r| r.blobs_rescanned),
        sum(|r| r.blobs_known),
        plural(sum(|r| r.findings) as usize, "finding", "findings"),
    ));
    Ok(ExitCode::SUCCESS)
}

/// Fetches and scans one repository: its status and report lines.
fn scan_repo(
    engine: &Engine,
    repo: &Repo,
    cache: &Path,
    state: Option<&State>,
    generation: &str,
    args: &ScanArgs,
    ui: &Arc<dyn Ui>,
) -> Result<(RepoStatus, Vec<u8>), FetchError> {
    let dir = fetch_with_retries(repo, cache, Duration::from_secs(args.fetch_timeout), ui)?;
    let local = |e: &dyn std::fmt::Display| FetchError::Local(e.to_string());
    let tips = git::ref_tips_digest(&dir).map_err(|e| local(&e))?;
    let mut status = RepoStatus {
        url: repo.url.clone(),
        status: "scanned".to_string(),
        findings: 0,
        blobs_scanned: 0,
        blobs_rescanned: 0,
        blobs_known: 0,
        message: None,
    };
    if let Some(state) = state {
        if let Some(last) = state.store().repo(&repo.url).map_err(|e| local(&e))? {
            if last.tips == tips && last.generation == generation {
                status.status = "unchanged".to_string();
                status.findings = last.report.iter().filter(|&&b| b == b'\n').count() as u64;
                return Ok((status, last.report));
            }
        }
    }
    let opened = git::discover(&dir).map_err(|e| local(&e))?;
    let mut source = GitHistory::new(
        vec![git::Repo {
            repo: opened,
            prefix: String::new(),
        }],
        HistoryOptions::default(),
    );
    let (findings, diag) = engine
        .run(&mut source, state, "blobs", ui)
        .map_err(|e| local(&format!("{e:#}")))?;
    let mut lines = Vec::new();
    for f in &findings {
        // Records serialize plain data: this cannot fail.
        let _ = serde_json::to_writer(&mut lines, &record::record(&repo.url, f));
        lines.push(b'\n');
    }
    use std::sync::atomic::Ordering;
    status.findings = findings.len() as u64;
    status.blobs_scanned = diag.blobs.load(Ordering::Relaxed);
    status.blobs_rescanned = diag.rescanned.load(Ordering::Relaxed);
    status.blobs_known = diag.known.load(Ordering::Relaxed);
    if diag.errors() > 0 {
        status.status = "incomplete".to_string();
        status.message = Some(format!(
            "{} could not be read",
            plural(diag.errors(), "object", "objects")
        ));
    } else if let Some(state) = state {
        let done = RepoState {
            tips,
            generation: generation.to_string(),
            report: lines.clone(),
        };
        state
            .store()
            .set_repo(&repo.url, &done)
            .map_err(|e| local(&e))?;
    }
    Ok((status, lines))
}

/// [`fetch::fetch`], tried three times with a pause between tries.
fn fetch_with_retries(
    repo: &Repo,
    cache: &Path,
    limit: Duration,
    ui: &Arc<dyn Ui>,
) -> Result<PathBuf, FetchError> {
    let mut wait = Duration::from_secs(2);
    let mut tries = 0;
    loop {
        tries += 1;
        match fetch::fetch(repo, cache, limit) {
            Ok(dir) => return Ok(dir),
            Err(e @ (FetchError::Local(_) | FetchError::Git(_, _, false))) => return Err(e),
            Err(e) if tries >= 3 => return Err(e),
            Err(e) => {
                ui.notice(&format!(
                    "trawl: {}: {e}; trying again in {} s",
                    repo.url,
                    wait.as_secs()
                ));
                std::thread::sleep(wait);
                wait *= 4;
            }
        }
    }
}
