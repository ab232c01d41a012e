//! `trawl git [REPO...]`: the whole history of repositories, a range of it, or the staged
//! changes (`--staged`, for pre-commit hooks).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Args;

use super::args::{GitOpts, ReportOpts, ScanOpts};
use super::{job, Ui};
use crate::source::git::{self, GitHistory, GitStaged, HistoryOptions, Repo};
use crate::source::{Sink, Source, SourceError, Warning, WarningKind};

#[derive(Debug, Args)]
pub struct GitArgs {
    /// Repositories (work trees, subdirectories of one, or bare); default `.`.
    #[arg(default_value = ".")]
    repos: Vec<PathBuf>,
    #[command(flatten)]
    git: GitOpts,
    /// Keep what each blob held in this state file (SQLite; created when missing): the next
    /// run skips blobs already scanned, and after a rule change scans them with the new and
    /// changed rules only. Never holds a secret.
    #[arg(long, value_name = "FILE", conflicts_with = "staged")]
    state: Option<PathBuf>,
    #[command(flatten)]
    scan: ScanOpts,
    #[command(flatten)]
    report: ReportOpts,
}

/// The history (or staged changes) of the repositories found at the given paths. Paths with
/// no repository are errors of the run (exit code 2), reported when the source is fed.
pub(crate) struct Repositories {
    repos: Vec<Repo>,
    missing: Vec<(PathBuf, SourceError)>,
    opts: GitOpts,
}

impl Repositories {
    /// Finds the repository at or above each path.
    pub(crate) fn discover(paths: &[PathBuf], opts: &GitOpts) -> Result<Repositories> {
        let many = paths.len() > 1;
        let mut repos = Vec::new();
        let mut missing = Vec::new();
        for path in paths {
            match git::discover(path) {
                Ok(repo) => repos.push(Repo {
                    repo,
                    prefix: if many {
                        format!("{}/", path.display())
                    } else {
                        String::new()
                    },
                }),
                Err(e) => missing.push((path.clone(), e)),
            }
        }
        if repos.is_empty() {
            match missing.into_iter().next() {
                Some((_, e)) => bail!(e),
                None => bail!("nothing to scan"),
            }
        }
        Ok(Repositories {
            repos,
            missing,
            opts: opts.clone(),
        })
    }

    /// Where the configuration is read from: the first repository's work tree.
    pub(crate) fn root(&self) -> Option<PathBuf> {
        self.repos.first().map(|r| git::root(&r.repo))
    }

    fn history_options(&self) -> Result<HistoryOptions> {
        let o = &self.opts;
        let mut opts = HistoryOptions {
            branch: o.branch.clone(),
            hide: Vec::new(),
            since: o.since,
            all_objects: o.all_objects,
        };
        if let Some(range) = &o.range {
            let Some((a, b)) = range.split_once("..") else {
                bail!("--range takes A..B, got `{range}`");
            };
            if a.is_empty() || b.is_empty() || b.starts_with('.') {
                bail!("--range takes A..B, got `{range}`");
            }
            opts.hide.push(a.to_string());
            opts.branch = Some(b.to_string());
        }
        if let Some(rev) = &o.since_commit {
            opts.hide.push(rev.clone());
            opts.branch.get_or_insert_with(|| "HEAD".to_string());
        }
        Ok(opts)
    }

    /// The source: staged changes or history.
    pub(crate) fn source(self) -> Result<GitSource> {
        let history = self.history_options()?;
        let inner: Box<dyn Source> = if self.opts.staged {
            Box::new(GitStaged::new(self.repos))
        } else {
            Box::new(GitHistory::new(self.repos, history))
        };
        Ok(GitSource {
            inner,
            missing: self.missing,
        })
    }
}

/// History or staged changes, with the paths that held no repository.
pub(crate) struct GitSource {
    inner: Box<dyn Source>,
    missing: Vec<(PathBuf, SourceError)>,
}

impl Source for GitSource {
    fn feed(&mut self, sink: &dyn Sink) -> Result<(), SourceError> {
        for (path, e) in self.missing.drain(..) {
            sink.diagnostics().warn(Warning::new(
                WarningKind::MissingInput,
                path.to_string_lossy(),
                e,
            ));
        }
        self.inner.feed(sink)
    }

    fn is_small(&self) -> bool {
        self.inner.is_small()
    }
}

pub fn run(args: GitArgs, ui: Arc<dyn Ui>) -> Result<ExitCode> {
    let repos = Repositories::discover(&args.repos, &args.git)?;
    let root = repos.root();
    let mut source = repos.source()?;
    let mut scanned = job::scan(
        &args.scan,
        args.report.baseline.as_deref(),
        args.report.report_stale,
        root.as_deref(),
        args.state.as_deref(),
        &mut source,
        "blobs",
        &ui,
    )?;
    super::verify::stage(
        &args.report.verify,
        args.scan.config.as_deref(),
        args.state.as_deref(),
        &mut scanned.findings,
        args.scan.quiet,
        ui.as_ref(),
    )?;
    // SARIF locations are relative to the (first) repository's work tree.
    let root_uri = (args.repos.len() == 1)
        .then(|| root.as_deref().and_then(|r| std::fs::canonicalize(r).ok()))
        .flatten()
        .map(|p| super::scan::file_uri(&p));
    let code = job::finish(
        &args.report,
        args.scan.quiet,
        &scanned,
        root_uri,
        "blobs",
        ui.as_ref(),
    )?;
    let n = scanned.findings.len();
    if args.git.staged && n > 0 && !args.scan.quiet {
        let secrets = super::super::report::plural(n, "secret", "secrets");
        // Our own words: no redactor is loaded for them.
        for line in [
            &format!("trawl: this commit would add {secrets}, listed above with file and line."),
            "trawl: remove them (and rotate any real credential), then stage the files again.",
            "trawl: a false positive? add `trawl:allow` in a comment on that line, or accept the",
            "trawl: finding by its fingerprint: `trawl baseline create` and `--baseline FILE`.",
        ] {
            ui.summary(line);
        }
    }
    Ok(code)
}
