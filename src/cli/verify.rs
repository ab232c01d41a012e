//! `--verify` on `scan`, `git` and `org merge`, and `trawl verify --rule ID` (one secret from
//! standard input, never from argv). Flags and the trusted `[verify]` of `--config` become the
//! stage's options; the stage itself is `crate::verify::stage`.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use clap::{Args, ValueEnum};

use super::Ui;
use crate::findings::suppress::Config;
use crate::findings::{Finding, What};
use crate::state::VerifyCache;
use crate::verify::check::Endpoint;
use crate::verify::stage::{self, Options};
use crate::verify::Verification;

/// Verification flags (`scan`, `git`, `org merge`).
#[derive(Debug, Args, Clone, Default)]
pub struct VerifyOpts {
    /// Ask each secret's provider whether it is live, whose it is and what it can do (network;
    /// off by default). Each distinct secret is sent once, only to its provider's hosts.
    #[arg(long)]
    pub verify: bool,
    /// Send PROVIDER's checks to URL instead (GitHub Enterprise, a local mock); repeatable.
    /// Plain http:// only on a loopback address.
    #[arg(long = "verify-endpoint", value_name = "PROVIDER=URL")]
    pub endpoints: Vec<String>,
    /// Seconds to wait for each answer (default 10; connecting: 5).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub verify_timeout: u64,
    /// Requests in flight per provider (16 in all).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub verify_concurrency: usize,
    /// Exit with 1 only for live findings (at or above --fail-on); needs --verify.
    #[arg(long, requires = "verify")]
    pub fail_on_live: bool,
    /// Keep the answers in this state store file and reuse those younger than
    /// --verify-max-age instead of asking again (`trawl git --state` uses its store).
    #[arg(long, value_name = "FILE", requires = "verify")]
    pub verify_cache: Option<PathBuf>,
    /// How long a kept answer stands: seconds, or a number with m, h or d (0: ask again).
    #[arg(long, value_name = "AGE", default_value = "24h", value_parser = parse_age)]
    pub verify_max_age: u64,
}

/// `90`, `30m`, `12h`, `7d` to seconds.
fn parse_age(s: &str) -> Result<u64, String> {
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{s}`: give seconds, or a number with m, h or d")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("`{s}`: give seconds, or a number with m, h or d"))
}

impl VerifyOpts {
    /// The stage's options: flags, then `[verify]` of the configuration the user named
    /// (`config`; a scanned tree's own `trawl.toml` is never read for this).
    pub fn options(&self, config: Option<&Path>) -> Result<Options> {
        let trusted = Config::load(config, None)?;
        let mut endpoints = HashMap::new();
        for (provider, url) in &trusted.file.verify.endpoints {
            endpoints.insert(
                provider.clone(),
                Endpoint {
                    base: url.clone(),
                    from_flag: false,
                },
            );
        }
        for e in &self.endpoints {
            let (provider, url) = e
                .split_once('=')
                .filter(|(p, u)| !p.is_empty() && !u.is_empty())
                .ok_or_else(|| anyhow!("--verify-endpoint takes PROVIDER=URL"))?;
            let origin = crate::org::forge::http::Origin::of(url).ok_or_else(|| {
                anyhow!(
                    "--verify-endpoint {provider}: not an absolute http(s) URL without credentials"
                )
            })?;
            if origin.scheme != "https" && !origin.is_loopback() {
                bail!("--verify-endpoint {provider}: plain http:// only on a loopback address");
            }
            endpoints.insert(
                provider.to_string(),
                Endpoint {
                    base: url.to_string(),
                    from_flag: true,
                },
            );
        }
        Ok(Options {
            endpoints,
            extra_hosts: trusted.file.verify.hosts.clone(),
            per_provider: self.verify_concurrency.max(1),
            timeout: Duration::from_secs(self.verify_timeout.clamp(1, 300)),
            ..Options::default()
        })
    }
}

/// Runs the stage on `findings` when `--verify` was given, with the answers kept in
/// `--verify-cache`, else in `state` (the scan's `--state` store).
pub fn stage(
    opts: &VerifyOpts,
    config: Option<&Path>,
    state: Option<&Path>,
    findings: &mut [Finding],
    quiet: bool,
    ui: &dyn Ui,
) -> Result<()> {
    if !opts.verify {
        return Ok(());
    }
    let options = opts.options(config)?;
    let notice = |m: &str| {
        if !quiet {
            ui.notice(&format!("trawl: {m}"));
        }
    };
    let cache = opts
        .verify_cache
        .as_deref()
        .or(state)
        .map(|path| VerifyCache::open(path, opts.verify_max_age))
        .transpose()?;
    stage::verify_cached(
        findings,
        &options,
        cache.as_ref().map(|c| c as &dyn crate::verify::Cache),
        &notice,
    );
    if !quiet {
        let kept = findings
            .iter()
            .filter(|f| f.verification.as_ref().is_some_and(|v| v.cached))
            .count();
        if kept > 0 {
            ui.notice(&format!(
                "trawl: {} kept from an earlier run (younger than --verify-max-age)",
                crate::report::plural(kept, "verification", "verifications")
            ));
        }
    }
    Ok(())
}

/// How `trawl verify` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VerifyFormat {
    /// The status, then owner, scopes, expiry, endpoint and note, one a line.
    Text,
    /// `{"rule": …, "verification": {…}}`.
    Json,
}

/// `trawl verify --rule ID < secret`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The rule the secret belongs to (`trawl rules list`).
    #[arg(long, value_name = "ID")]
    rule: String,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = VerifyFormat::Text)]
    format: VerifyFormat,
    /// Extra rule files (their verifiers are used).
    #[arg(long = "rules", value_name = "FILE")]
    rule_files: Vec<PathBuf>,
    /// Configuration whose `[verify]` applies.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Send PROVIDER's checks to URL instead; repeatable (plain http:// only on loopback).
    #[arg(long = "verify-endpoint", value_name = "PROVIDER=URL")]
    endpoints: Vec<String>,
    /// Seconds to wait for the answer.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    verify_timeout: u64,
}

/// Most bytes read from standard input.
const MAX_SECRET: u64 = 64 << 10;

pub fn run(args: VerifyArgs, ui: Arc<dyn Ui>) -> Result<ExitCode> {
    let rules = super::job::rules_with_files(&args.rule_files)?;
    let rule = rules
        .index_of(&args.rule)
        .map(|i| rules.rules()[i].info().clone())
        .ok_or_else(|| anyhow!("unknown rule id `{}` (see `trawl rules list`)", args.rule))?;
    let mut input = Vec::new();
    std::io::stdin()
        .take(MAX_SECRET + 1)
        .read_to_end(&mut input)?;
    if input.len() as u64 > MAX_SECRET {
        bail!("standard input holds more than {MAX_SECRET} bytes: give one secret");
    }
    let secret = input.trim_ascii().to_vec();
    if secret.is_empty() {
        bail!("give the secret on standard input (never as an argument)");
    }
    let opts = VerifyOpts {
        verify: true,
        endpoints: args.endpoints.clone(),
        verify_timeout: args.verify_timeout,
        verify_concurrency: 1,
        fail_on_live: false,
        verify_cache: None,
        verify_max_age: 0,
    };
    let options = opts.options(args.config.as_deref())?;
    let mut findings = vec![Finding {
        rule: rule.clone(),
        what: What::Secret(secret),
        fingerprint: String::new(),
        locations: Vec::new(),
        verification: None,
    }];
    let notice = |m: &str| ui.notice(&format!("trawl: {m}"));
    stage::verify(&mut findings, &options, &notice);
    let v = findings
        .pop()
        .and_then(|f| f.verification)
        .unwrap_or_default();
    let out = match args.format {
        VerifyFormat::Json => {
            let mut s = serde_json::to_string(&serde_json::json!({
                "rule": rule.id,
                "verification": v,
            }))?;
            s.push('\n');
            s
        }
        VerifyFormat::Text => text(&rule.id, &v),
    };
    super::job::write_stdout(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn text(rule: &str, v: &Verification) -> String {
    let esc = |s: &str| crate::report::escape_control(s, &[]).into_owned();
    let mut line = format!("{rule}: {}", v.status.as_str());
    if let Some(o) = &v.owner {
        line.push_str(&format!("\n  owner: {}", esc(o)));
    }
    if !v.scopes.is_empty() {
        line.push_str(&format!("\n  scopes: {}", esc(&v.scopes.join(", "))));
    }
    if let Some(e) = &v.expires {
        line.push_str(&format!("\n  expires: {}", esc(e)));
    }
    if let Some(e) = &v.endpoint {
        line.push_str(&format!("\n  endpoint: {}", esc(e)));
    }
    if let Some(m) = &v.message {
        line.push_str(&format!("\n  note: {}", esc(m)));
    }
    line.push('\n');
    line
}
