//! The `trawl` binary: parse flags, run, map the outcome to an exit code (0 nothing found,
//! 1 findings at or above the failing severity, 2 error). It alone writes to stderr: every
//! line is escaped (no terminal control sequences from file names or contents), stripped of
//! anything the built-in rules recognise as a secret, and cut short; a closed stderr is
//! ignored, never a panic.

use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use clap::Parser;
use trawl::cli::Ui;
use trawl::report::redact;
use trawl::rules::RuleSet;
use trawl::scan::Scanner;
use trawl::warning::{Progress, Warning};

/// Longest line written to stderr; the rest is cut (a message must never carry a file).
const MAX_LINE: usize = 1_000;

fn main() -> ExitCode {
    let cli = match trawl::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // `--version` / `-V`: the long form, with the commit and the rule-catalogue digest.
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayVersion => return version(),
        Err(e) => e.exit(),
    };
    let ui = Arc::new(Terminal::new());
    let code = match trawl::cli::run(cli, ui.clone()) {
        Ok(code) => code,
        Err(err) => {
            if err
                .chain()
                .filter_map(|e| e.downcast_ref::<std::io::Error>())
                .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                ExitCode::SUCCESS
            } else {
                ui.line(&format!("trawl: error: {err:#}"));
                ExitCode::from(2)
            }
        }
    };
    // For memory tests and benchmarks: the peak resident set of this program image, which,
    // unlike a parent's rusage, does not count memory inherited through fork.
    if std::env::var_os("TRAWL_REPORT_PEAK_RSS").is_some() {
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
                ui.line(&format!(
                    "trawl: peak RSS {}",
                    line.trim_start_matches("VmHWM:").trim()
                ));
            }
        }
    }
    code
}

/// Prints [`trawl::cli::version_text`] (a closed stdout is not an error).
fn version() -> ExitCode {
    match trawl::cli::version_text() {
        Ok(text) => {
            let _ = std::io::stdout().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(err) => {
            Terminal::new().line(&format!("trawl: error: {err:#}"));
            ExitCode::from(2)
        }
    }
}

/// stderr, as a person sees it.
struct Terminal {
    started: Instant,
    is_terminal: bool,
    /// Serialises lines from several threads; true while a progress line is on screen.
    lock: Mutex<bool>,
    /// The built-in rules, to redact secrets in messages (built on first use).
    redactor: OnceLock<Option<Scanner>>,
}

impl Terminal {
    fn new() -> Terminal {
        Terminal {
            started: Instant::now(),
            is_terminal: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            lock: Mutex::new(false),
            redactor: OnceLock::new(),
        }
    }

    /// Writes one message (possibly several lines of our own text), made safe.
    fn line(&self, text: &str) {
        self.write_line(&self.safe(text));
    }

    /// Writes a line as it is, in place of the progress line if one is shown.
    fn write_line(&self, safe: &str) {
        let mut progress_shown = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut err = std::io::stderr().lock();
        // A warning replaces the progress line; the next redraw puts it back below.
        let clear = if *progress_shown { "\r\x1b[2K" } else { "" };
        *progress_shown = false;
        let _ = writeln!(err, "{clear}{safe}");
    }

    /// Redacts secrets, escapes control characters (newlines of our own multi-line notices
    /// excepted) and cuts the text short.
    fn safe(&self, text: &str) -> String {
        let redacted = self.redact(text);
        let escaped = trawl::report::escape_control(&redacted, &['\n']);
        match escaped.char_indices().nth(MAX_LINE) {
            Some((cut, _)) => format!("{} …", &escaped[..cut]),
            None => escaped.into_owned(),
        }
    }

    fn redact(&self, text: &str) -> String {
        let scanner = self
            .redactor
            .get_or_init(|| RuleSet::builtin().ok().and_then(|r| Scanner::new(r).ok()));
        let Some(scanner) = scanner else {
            return text.to_string();
        };
        let bytes = text.as_bytes();
        let found = scanner.worker().scan(bytes);
        if found.is_empty() {
            return text.to_string();
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut pos = 0;
        for m in found {
            let s = m.secret_span;
            if s.start < pos {
                continue;
            }
            out.extend_from_slice(&bytes[pos..s.start]);
            out.extend_from_slice(redact(&bytes[s.clone()]).as_bytes());
            pos = s.end;
        }
        out.extend_from_slice(&bytes[pos..]);
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Ui for Terminal {
    fn warning(&self, warning: &Warning) {
        // One line each: a warning's own text never spans lines.
        let text = format!("trawl: warning: {warning}").replace('\n', "\\n");
        self.line(&text);
    }

    fn notice(&self, text: &str) {
        self.line(text);
    }

    fn summary(&self, text: &str) {
        // Our own words and numbers: escaped all the same, never worth a redactor.
        self.write_line(&trawl::report::escape_control(text, &[]));
    }

    fn can_show_progress(&self) -> bool {
        self.is_terminal
    }

    fn progress(&self, progress: Option<Progress>, unit: &str) {
        let mut progress_shown = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut err = std::io::stderr().lock();
        let Some(p) = progress else {
            if *progress_shown {
                let _ = write!(err, "\r\x1b[2K");
            }
            *progress_shown = false;
            return;
        };
        *progress_shown = true;
        let secs = self.started.elapsed().as_secs_f64();
        let mb = p.bytes as f64 / 1e6;
        let count = if p.total > 0 {
            format!("{} / {} {unit}", p.blobs, p.total)
        } else {
            format!("{} {unit}", p.blobs)
        };
        let _ = write!(
            err,
            "\r\x1b[2Ktrawl: {count}, {mb:.1} MB, {:.1} MB/s, {secs:.1} s",
            mb / secs.max(0.001)
        );
        let _ = err.flush();
    }
}
