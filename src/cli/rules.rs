//! `trawl rules list` and `trawl rules check FILE`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;

use super::Ui;
use crate::report::plural;
use crate::rules::{check_rules, RuleSet};
use crate::scan::Scanner;
use crate::warning::{Warning, WarningKind};

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Print the rule catalogue.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check rule files: they compile, and their examples are (and negative examples are
    /// not) reported by the full scanner, built-in rules included. Without files, checks the
    /// built-in rules.
    Check {
        /// Rule files in trawl's format.
        files: Vec<PathBuf>,
    },
}

pub fn run(cmd: RulesCommand, ui: &dyn Ui) -> Result<ExitCode> {
    match cmd {
        RulesCommand::List { json } => list(json),
        RulesCommand::Check { files } => check(&files, ui),
    }
}

fn list(as_json: bool) -> Result<ExitCode> {
    let rules = RuleSet::builtin()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if as_json {
        let v: Vec<_> = rules
            .rules()
            .iter()
            .map(|r| {
                json!({
                    "id": r.spec.id, "name": r.spec.name, "category": r.spec.category,
                    "severity": r.spec.severity.as_str(), "keywords": r.spec.keywords,
                    "references": r.spec.references,
                })
            })
            .collect();
        // Serialised first: a closed pipe is then an `io::Error` the caller ignores.
        let text = serde_json::to_vec_pretty(&v)?;
        out.write_all(&text)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{:<44} {:<22} {:<9} NAME",
            "ID", "CATEGORY", "SEVERITY"
        )?;
        for r in rules.rules() {
            writeln!(
                out,
                "{:<44} {:<22} {:<9} {}",
                r.spec.id,
                r.spec.category,
                r.spec.severity.as_str(),
                r.spec.name
            )?;
        }
        writeln!(out, "{} rules", rules.len())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn check(files: &[PathBuf], ui: &dyn Ui) -> Result<ExitCode> {
    let mut rules = RuleSet::builtin()?;
    let mut origins = Vec::new();
    let mut skipped = 0;
    for path in files {
        let origin = path.display().to_string();
        let text =
            crate::findings::suppress::BoundedFile::trusted(path.clone()).read("rule file")?;
        for w in rules.add_file(&text, &origin)? {
            ui.warning(&Warning::new(WarningKind::Rule, origin.clone(), &w));
            // A gitleaks rule that could not be converted is a problem of the file.
            skipped += usize::from(w.kind.is_problem());
        }
        origins.push(origin);
    }
    let scanner = Scanner::new(rules)?;
    let checked = scanner
        .rules()
        .rules()
        .iter()
        .filter(|r| origins.contains(&r.origin))
        .count();
    let selected = |r: &crate::rules::Rule| files.is_empty() || origins.contains(&r.origin);
    let checked = if files.is_empty() {
        scanner.rules().len()
    } else {
        checked
    };
    let failures = check_rules(&scanner, selected);
    for f in &failures {
        ui.notice(&format!("{}: {}", f.rule, f.message));
    }
    let problems = failures.len() + skipped;
    super::job::write_stdout(
        format!(
            "{} checked, {}\n",
            plural(checked, "rule", "rules"),
            plural(problems, "problem", "problems")
        )
        .as_bytes(),
    )?;
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
