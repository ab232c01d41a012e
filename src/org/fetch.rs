//! Bare clones of the repositories to scan, kept in a cache directory and brought up to date
//! with `git fetch`: the network is `git`'s business (its transports, proxies and
//! credentials); reading the history stays with gix.
//!
//! Contract: a repository's directory is named by a hash of its URL (nothing from the URL
//! reaches the file system); a clone is made in a temporary directory and renamed, so a
//! killed clone never leaves a half repository. Tokens come from the environment
//! (`GITHUB_TOKEN`, `GITLAB_TOKEN`, `HF_TOKEN`, by the repository's kind), reach git through
//! its environment as an HTTP header scoped to the URL's host, and never appear on a command
//! line or in a message. Only the `https`, `http`, `ssh`, `git` and `file` transports are
//! allowed (never `ext::`), git never prompts, and each git command has a time limit.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::repos::Repo;
use crate::source::git;

/// Why a repository could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// git ran and failed (network, authentication, a missing repository); the flag says
    /// whether trying again may help.
    #[error("git {0} failed ({1})")]
    Git(&'static str, String, bool),
    /// git ran over its time limit and was stopped.
    #[error("git {0} took longer than {1} s and was stopped")]
    Timeout(&'static str, u64),
    /// git could not be started, or the cache could not be written.
    #[error("{0}")]
    Local(String),
}

/// The cache directory of `url`.
pub fn cache_dir(cache: &Path, url: &str) -> PathBuf {
    let h = Sha256::digest(url.as_bytes());
    let name: String = h[..12].iter().map(|b| format!("{b:02x}")).collect();
    cache.join(format!("{name}.git"))
}

/// Brings the bare clone of `repo` in `cache` up to date (cloning it first when missing):
/// every branch and tag, pruned. Returns its directory.
pub fn fetch(repo: &Repo, cache: &Path, limit: Duration) -> Result<PathBuf, FetchError> {
    let dir = cache_dir(cache, &repo.url);
    std::fs::create_dir_all(cache)
        .map_err(|e| FetchError::Local(format!("cannot create the cache directory: {e}")))?;
    if dir.join("HEAD").is_file() {
        run(
            repo,
            "fetch",
            &[
                "-C".as_ref(),
                dir.as_os_str(),
                "fetch".as_ref(),
                "--quiet".as_ref(),
                "--prune".as_ref(),
                "--force".as_ref(),
                "--no-write-fetch-head".as_ref(),
                "--".as_ref(),
                repo.url.as_ref(),
                "+refs/heads/*:refs/heads/*".as_ref(),
                "+refs/tags/*:refs/tags/*".as_ref(),
            ],
            limit,
        )?;
        return Ok(dir);
    }
    // One name per repository: a clone killed half-way is removed by the next try (a URL is
    // in one shard only, so no two processes clone it at once).
    let tmp = dir.with_extension("git.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    let cloned = run(
        repo,
        "clone",
        &[
            "clone".as_ref(),
            "--quiet".as_ref(),
            "--bare".as_ref(),
            "--no-tags".as_ref(),
            "--".as_ref(),
            repo.url.as_ref(),
            tmp.as_os_str(),
        ],
        limit,
    )
    .and_then(|()| {
        // Tags too, and every branch as a branch (a bare clone maps them so already).
        run(
            repo,
            "fetch",
            &[
                "-C".as_ref(),
                tmp.as_os_str(),
                "fetch".as_ref(),
                "--quiet".as_ref(),
                "--force".as_ref(),
                "--no-write-fetch-head".as_ref(),
                "--".as_ref(),
                repo.url.as_ref(),
                "+refs/tags/*:refs/tags/*".as_ref(),
            ],
            limit,
        )
    });
    if let Err(e) = cloned {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &dir)
        .map_err(|e| FetchError::Local(format!("cannot move the clone into the cache: {e}")))?;
    Ok(dir)
}

/// The most standard output kept from git (`ls-remote` of a repository with very many refs).
const MAX_OUTPUT: u64 = 256 << 20;

/// The digest of the remote's branches and tags ([`git::tips_digest`]), from
/// `git ls-remote`: equal to the digest of an up-to-date clone.
pub fn remote_tips_digest(repo: &Repo, limit: Duration) -> Result<String, FetchError> {
    let out = run_output(
        repo,
        "ls-remote",
        &["ls-remote".as_ref(), "--".as_ref(), repo.url.as_ref()],
        limit,
    )?;
    let refs = out
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let tab = line.iter().position(|&b| b == b'\t')?;
            let id = std::str::from_utf8(&line[..tab]).ok()?;
            Some((line[tab + 1..].to_vec(), id.to_string()))
        })
        .collect();
    Ok(git::tips_digest(refs))
}

/// The token for `repo`, from the environment, by its kind.
fn token(repo: &Repo) -> Option<(String, &'static str)> {
    let (var, user) = match repo.kind.as_str() {
        "github" => ("GITHUB_TOKEN", "x-access-token"),
        "gitlab" => ("GITLAB_TOKEN", "oauth2"),
        k if k.starts_with("huggingface") => ("HF_TOKEN", "hf_user"),
        _ => return None,
    };
    std::env::var(var)
        .ok()
        .filter(|t| !t.is_empty())
        .map(|t| (t, user))
}

/// `scheme://host[:port]/` of an http(s) URL.
fn http_origin(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let host_end = rest.find('/').unwrap_or(rest.len());
    let scheme_len = url.len() - rest.len();
    Some(&url[..scheme_len + host_end])
}

fn run(
    repo: &Repo,
    what: &'static str,
    args: &[&std::ffi::OsStr],
    limit: Duration,
) -> Result<(), FetchError> {
    run_output(repo, what, args, limit).map(|_| ())
}

/// Runs git with the environment described in the module's contract; its standard output
/// (at most [`MAX_OUTPUT`] bytes).
fn run_output(
    repo: &Repo,
    what: &'static str,
    args: &[&std::ffi::OsStr],
    limit: Duration,
) -> Result<Vec<u8>, FetchError> {
    let mut cmd = Command::new("git");
    cmd.args([
        "-c",
        "core.hooksPath=/dev/null",
        "-c",
        "protocol.ext.allow=never",
    ])
    .args(args)
    .env("GIT_TERMINAL_PROMPT", "0")
    .env("GIT_ASKPASS", "true")
    .env("SSH_ASKPASS", "true")
    .env("GIT_ALLOW_PROTOCOL", "https:http:ssh:git:file")
    .env(
        "GIT_SSH_COMMAND",
        "ssh -o BatchMode=yes -o ConnectTimeout=30",
    )
    .env("GIT_HTTP_LOW_SPEED_LIMIT", "1000")
    .env("GIT_HTTP_LOW_SPEED_TIME", "120")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    // The token as a header scoped to the repository's host, through git's environment
    // configuration: never on the command line.
    if let (Some((token, user)), Some(origin)) = (token(repo), http_origin(&repo.url)) {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
        cmd.env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", format!("http.{origin}/.extraHeader"))
            .env(
                "GIT_CONFIG_VALUE_0",
                format!("Authorization: Basic {basic}"),
            );
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| FetchError::Local(format!("cannot run git: {e}")))?;
    // git's messages may quote what the server said: only their size is kept, drained on a
    // thread so that a chatty server cannot block git.
    let drain = |pipe: Option<Box<dyn Read + Send>>, keep: u64| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            if let Some(mut p) = pipe {
                let _ = (&mut p).take(keep).read_to_end(&mut kept);
                let _ = std::io::copy(&mut p, &mut std::io::sink());
            }
            kept
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        MAX_OUTPUT,
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        1 << 20,
    );
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = (out.join(), err.join());
                return Err(FetchError::Timeout(what, limit.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(FetchError::Local(format!("waiting for git: {e}"))),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let said = err.join().unwrap_or_default();
    if status.success() {
        return Ok(stdout);
    }
    let (message, retry) = describe(status.code(), &said);
    Err(FetchError::Git(what, message, retry))
}

/// What a failed git said, in our words: its exit code and the kind of problem, never its
/// text (a server's messages are the server's); and whether trying again may help.
fn describe(code: Option<i32>, said: &[u8]) -> (String, bool) {
    let text = String::from_utf8_lossy(said).to_ascii_lowercase();
    let (kind, retry) = [
        ("authentication failed", "authentication failed", false),
        ("could not read username", "authentication required", false),
        ("permission denied", "permission denied", false),
        ("not found", "repository not found", false),
        (
            "does not appear to be a git repository",
            "not a git repository",
            false,
        ),
        ("could not resolve host", "host not found", true),
        ("connection refused", "connection refused", true),
        ("timed out", "timed out", true),
        ("unable to access", "the server could not be reached", true),
    ]
    .iter()
    .find(|(needle, _, _)| text.contains(needle))
    .map_or(("see `git` for details", true), |(_, k, r)| (k, *r));
    let message = match code {
        Some(c) => format!("exit code {c}: {kind}"),
        None => format!("killed by a signal: {kind}"),
    };
    (message, retry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_cache_names_come_from_the_url_alone() {
        assert_eq!(
            http_origin("https://github.com/acme/api.git"),
            Some("https://github.com")
        );
        assert_eq!(
            http_origin("http://127.0.0.1:8080/x.git"),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(http_origin("git@github.com:acme/api.git"), None);
        let d = cache_dir(Path::new("/c"), "https://h/../../etc/passwd");
        assert_eq!(d.parent(), Some(Path::new("/c")));
        assert!(d.file_name().unwrap().to_str().unwrap().ends_with(".git"));
        assert_ne!(d, cache_dir(Path::new("/c"), "https://h/other"));
    }

    #[test]
    fn git_messages_become_our_words() {
        let (d, retry) = describe(
            Some(128),
            b"remote: \x1b[31mPWNED\x1b[0m\nfatal: repository 'x' not found\n",
        );
        assert_eq!(d, "exit code 128: repository not found");
        assert!(!d.contains("PWNED") && !retry);
        assert!(
            describe(
                Some(128),
                b"fatal: unable to access 'x': Could not resolve host"
            )
            .1
        );
    }
}
