//! `trawl scan [PATH...]`: files and directories on disk, or standard input (`-`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;

use super::args::{FsOpts, ReportOpts, ScanOpts};
use super::{job, Ui};
use crate::report;
use crate::source::fs::{Files, WalkOptions};
use crate::source::stdin::Stdin;
use crate::source::{Sink, Source, SourceError};

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories to scan; `-` reads standard input.
    #[arg(default_value = ".")]
    pub(crate) paths: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) fs: FsOpts,
    #[command(flatten)]
    pub(crate) scan: ScanOpts,
    #[command(flatten)]
    pub(crate) report: ReportOpts,
}

/// The files and directories given, and standard input where `-` is given.
pub(crate) struct Inputs {
    files: Files,
    stdin: bool,
}

impl Inputs {
    pub(crate) fn new(paths: &[PathBuf], fs: &FsOpts) -> Inputs {
        let (stdin, paths): (Vec<&PathBuf>, Vec<&PathBuf>) =
            paths.iter().partition(|p| p.as_os_str() == "-");
        let opts = WalkOptions {
            respect_ignore: !fs.no_ignore,
            follow_symlinks: fs.follow_symlinks,
        };
        Inputs {
            files: Files::new(paths.into_iter().cloned().collect(), opts),
            stdin: !stdin.is_empty(),
        }
    }
}

impl Source for Inputs {
    fn feed(&mut self, sink: &dyn Sink) -> Result<(), SourceError> {
        if self.stdin {
            Stdin.feed(sink)?;
        }
        self.files.feed(sink)
    }
}

/// The directory configuration is read from: the one directory given, else the current one.
pub(crate) fn root_of(paths: &[PathBuf]) -> Option<PathBuf> {
    match paths {
        [only] if only.is_dir() => Some(only.clone()),
        _ => std::env::current_dir().ok(),
    }
}

pub fn run(args: ScanArgs, ui: Arc<dyn Ui>) -> Result<ExitCode> {
    let root = root_of(&args.paths);
    let mut inputs = Inputs::new(&args.paths, &args.fs);
    let mut scanned = job::scan(
        &args.scan,
        args.report.baseline.as_deref(),
        args.report.report_stale,
        root.as_deref(),
        None,
        &mut inputs,
        "files",
        &ui,
    )?;
    super::verify::stage(
        &args.report.verify,
        args.scan.config.as_deref(),
        None,
        &mut scanned.findings,
        args.scan.quiet,
        ui.as_ref(),
    )?;
    let root_uri = root
        .as_deref()
        .and_then(|r| std::fs::canonicalize(r).ok())
        .map(|p| file_uri(&p));
    job::finish(
        &args.report,
        args.scan.quiet,
        &scanned,
        root_uri,
        "files",
        ui.as_ref(),
    )
}

pub(crate) fn file_uri(path: &Path) -> String {
    let s = report::uri_encode(&path.to_string_lossy());
    format!("file://{}{}", s, if s.ends_with('/') { "" } else { "/" })
}
