//! The `trawl` binary: parse flags, run, map the outcome to an exit code (0 nothing found,
//! 1 findings at or above the failing severity, 2 error). A broken pipe exits quietly.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = trawl::cli::Cli::parse();
    let code = run(cli);
    // For memory tests and benchmarks: the peak resident set of this program image, which,
    // unlike a parent's rusage, does not count memory inherited through fork.
    if std::env::var_os("TRAWL_REPORT_PEAK_RSS").is_some() {
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
                eprintln!(
                    "trawl: peak RSS {}",
                    line.trim_start_matches("VmHWM:").trim()
                );
            }
        }
    }
    code
}

fn run(cli: trawl::cli::Cli) -> ExitCode {
    match trawl::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            if err
                .chain()
                .filter_map(|e| e.downcast_ref::<std::io::Error>())
                .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("trawl: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
