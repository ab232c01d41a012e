//! The `trawl` binary: parse flags, run, map the outcome to an exit code (0 nothing found,
//! 1 findings at or above the failing severity, 2 error). A broken pipe exits quietly.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = trawl::cli::Cli::parse();
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
