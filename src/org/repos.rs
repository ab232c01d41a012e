//! The repositories of an organisation, one JSON object a line (`repos.jsonl`), and the plain
//! list of clone URLs they can be read from.

use serde::{Deserialize, Serialize};

/// One repository to scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repo {
    /// Clone URL (`https://`, `ssh://`, `git@host:path`, `file://`), without credentials.
    pub url: String,
    /// Where it was listed from: `github`, `gitlab`, `huggingface-model`, `-dataset`,
    /// `-space`, or `url` for a line of a plain list.
    pub kind: String,
    /// Default branch, when the forge says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_branch: Option<String>,
    /// Size hint in bytes, when the forge says (used to balance shards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Last push, as the forge says (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_at: Option<String>,
    /// Clone URL of the repository this one is a fork of: forks of one network share most of
    /// their objects and are planned together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork_parent: Option<String>,
}

/// A line of a plain URL list that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListProblem {
    /// 1-based line.
    pub line: usize,
    /// What is wrong, without quoting the line (it may hold a credential).
    pub message: String,
}

/// Reads a plain list of clone URLs, one a line; blank lines and `#` comments are skipped.
/// Accepted: `https://`, `http://`, `ssh://`, `git://`, `file://` URLs, scp-like
/// `user@host:path`, and local paths (made absolute against `base`). Credentials in a URL
/// (`https://user:token@host/…`) are removed and reported: tokens come from the environment.
/// Repeated URLs are listed once.
pub fn read_url_list(text: &str, base: &std::path::Path) -> (Vec<Repo>, Vec<ListProblem>) {
    let mut repos = Vec::new();
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let problem = |message: &str| ListProblem {
            line: i + 1,
            message: message.to_string(),
        };
        if line.chars().any(|c| c.is_control() || c.is_whitespace()) {
            problems.push(problem("not a URL (spaces or control characters)"));
            continue;
        }
        let url = match url_of(line, base) {
            Ok((url, had_credentials)) => {
                if had_credentials {
                    problems.push(problem(
                        "credentials removed from the URL: give tokens in the environment",
                    ));
                }
                url
            }
            Err(message) => {
                problems.push(problem(message));
                continue;
            }
        };
        if seen.insert(url.clone()) {
            repos.push(Repo {
                url,
                kind: "url".to_string(),
                default_branch: None,
                size: None,
                pushed_at: None,
                fork_parent: None,
            });
        }
    }
    (repos, problems)
}

/// The clone URL a list line names, and whether credentials were removed from it.
fn url_of(line: &str, base: &std::path::Path) -> Result<(String, bool), &'static str> {
    const SCHEMES: [&str; 5] = ["https://", "http://", "ssh://", "git://", "file://"];
    if let Some(scheme) = SCHEMES.iter().find(|s| line.starts_with(**s)) {
        let rest = &line[scheme.len()..];
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if *scheme != "file://" && (authority.is_empty() || path.len() < 2) {
            return Err("a URL without a host or a path");
        }
        // `user:password@` or `token@` before the host: kept for ssh (a user name), removed
        // elsewhere.
        return Ok(match authority.rsplit_once('@') {
            Some((userinfo, host)) if *scheme != "ssh://" || userinfo.contains(':') => {
                (format!("{scheme}{host}{path}"), true)
            }
            _ => (line.to_string(), false),
        });
    }
    if line.contains("://") {
        return Err("an unsupported URL scheme");
    }
    // scp-like `user@host:path` (a colon before any slash).
    if let Some(colon) = line.find(':') {
        if !line[..colon].contains('/') && colon > 0 && line.len() > colon + 1 {
            return Ok((line.to_string(), false));
        }
    }
    let path = std::path::Path::new(line);
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    Ok((format!("file://{}", abs.display()), false))
}

/// Writes repositories as `repos.jsonl`, one object a line, in the order given.
pub fn to_jsonl(repos: &[Repo]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in repos {
        // Serializing plain strings and numbers cannot fail.
        if let Ok(line) = serde_json::to_vec(r) {
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
    }
    out
}

/// Reads `repos.jsonl`; a line that does not parse is an error naming its number.
pub fn from_jsonl(text: &str) -> Result<Vec<Repo>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("line {}: not a repository: {e}", i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn url_lists_accept_forges_scp_and_local_paths_and_drop_credentials() {
        let text = "# org repos\n\
            https://github.com/acme/api.git\n\
            \n\
            git@github.com:acme/web.git\n\
            ssh://git@gitlab.example/acme/infra.git\n\
            https://ci-bot:ghp_notreallyatoken@github.com/acme/private.git\n\
            file:///srv/git/tools.git\n\
            mirrors/old.git\n\
            https://github.com/acme/api.git\n\
            ftp://host/x\n\
            https://\n\
            with space\n";
        let (repos, problems) = read_url_list(text, Path::new("/base"));
        let urls: Vec<&str> = repos.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://github.com/acme/api.git",
                "git@github.com:acme/web.git",
                "ssh://git@gitlab.example/acme/infra.git",
                "https://github.com/acme/private.git",
                "file:///srv/git/tools.git",
                "file:///base/mirrors/old.git",
            ]
        );
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [6, 10, 11, 12]);
        // No message quotes its line.
        assert!(problems.iter().all(|p| !p.message.contains("ghp_")));
    }

    #[test]
    fn jsonl_round_trips() {
        let (repos, _) = read_url_list("https://h/a.git\nhttps://h/b.git\n", Path::new("/"));
        let text = String::from_utf8(to_jsonl(&repos)).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert_eq!(from_jsonl(&text).unwrap(), repos);
        assert!(from_jsonl("{\"url\": 1}\n")
            .unwrap_err()
            .starts_with("line 1:"));
    }
}
