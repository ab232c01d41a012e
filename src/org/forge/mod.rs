//! Repositories listed from a forge's API: GitHub (organisation or user), GitLab (group with
//! subgroups), Hugging Face (an author's models, datasets and Spaces).
//!
//! Contract: everything a forge sends is hostile. Pages are followed by their `Link` header,
//! only to the API base's origin; at most [`MAX_PAGES`] pages and [`MAX_REPOS`] repositories.
//! A repository whose URL, name or fields are not plain (control characters, spaces, a clone
//! URL that is not `https://`) is skipped and counted by reason, never printed. A page that is
//! not the JSON expected is an error naming the forge and the page, never quoting it. The
//! result is sorted by URL and deduplicated, so the same answers give the same `repos.jsonl`.

pub mod github;
pub mod gitlab;
pub mod http;
pub mod huggingface;

use std::collections::BTreeMap;

use serde_json::Value;

use super::repos::Repo;
use http::{link_next, Client, Origin};

/// Most pages followed in one listing.
pub const MAX_PAGES: usize = 10_000;
/// Most repositories in one listing.
pub const MAX_REPOS: usize = 100_000;
/// Longest string field accepted from a forge.
const MAX_FIELD: usize = 2048;

/// What to keep.
#[derive(Clone, Copy, Debug, Default)]
pub struct Filter {
    /// Keep forks.
    pub include_forks: bool,
    /// Keep archived repositories.
    pub include_archived: bool,
}

/// The repositories listed, and those skipped, counted by reason.
#[derive(Debug, Default)]
pub struct Listing {
    /// Kept, sorted by URL.
    pub repos: Vec<Repo>,
    /// Skipped as hostile or unusable: reason → count.
    pub skipped: BTreeMap<&'static str, usize>,
    /// Forks and archived repositories left out by the filter.
    pub excluded: usize,
}

impl Listing {
    fn skip(&mut self, reason: &'static str) {
        *self.skipped.entry(reason).or_default() += 1;
    }

    fn push(&mut self, forge: &str, repo: Repo) -> Result<(), String> {
        if self.repos.len() >= MAX_REPOS {
            return Err(format!(
                "{forge}: more than {MAX_REPOS} repositories; list a smaller group"
            ));
        }
        self.repos.push(repo);
        Ok(())
    }

    /// Sorted by URL, each URL once.
    fn finish(mut self) -> Listing {
        self.repos.sort_by(|a, b| a.url.cmp(&b.url));
        self.repos.dedup_by(|a, b| a.url == b.url);
        self
    }
}

/// Calls `each` with the JSON array of every page from `first` on, following `Link:
/// rel="next"` within the API's origin. `forge` and the 1-based page number name errors.
fn for_each_page(
    client: &Client,
    forge: &str,
    first: String,
    mut each: impl FnMut(&[Value], usize) -> Result<(), String>,
) -> Result<(), String> {
    let mut seen = std::collections::HashSet::from([first.clone()]);
    let mut url = first;
    for page in 1..=MAX_PAGES {
        let what = format!("{forge}: page {page}");
        let answer = client.get(&url, &what).map_err(|e| e.to_string())?;
        let value = parse(&answer.body, &what)?;
        let Value::Array(items) = value else {
            return Err(format!("{what}: not a JSON array of repositories"));
        };
        each(&items, page)?;
        let Some(next) = answer.header("link").and_then(link_next) else {
            return Ok(());
        };
        url = next_url(client, next).ok_or_else(|| {
            format!("{what}: the next-page link leads to another host than the API's; refused")
        })?;
        // A forge that links back to a page it sent would keep us asking until the page limit.
        if !seen.insert(url.clone()) {
            return Err(format!(
                "{what}: the next-page link repeats a page; stopped"
            ));
        }
    }
    Err(format!("{forge}: more than {MAX_PAGES} pages; stopped"))
}

/// A JSON answer; an error names `what` and the position, never the text.
fn parse(body: &[u8], what: &str) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| {
        format!(
            "{what}: not JSON (line {}, column {})",
            e.line(),
            e.column()
        )
    })
}

/// The fields GitHub and GitLab both give, each under its own name: a repository with its
/// clone URL, default branch and last push, or `None` when it was skipped (and counted).
/// Size and fork parent are left to the caller.
fn common_fields(
    listing: &mut Listing,
    api: &Origin,
    (item, forge, page, index): (&Value, &str, usize, usize),
    url_key: &str,
    pushed_key: &str,
) -> Result<Option<Repo>, String> {
    let Some(url) = item.get(url_key).and_then(Value::as_str) else {
        return Err(missing(forge, page, index, url_key));
    };
    if !clone_url_ok(url, api) {
        listing.skip("a clone URL that is not a plain https:// URL");
        return Ok(None);
    }
    let (Ok(default_branch), Ok(pushed_at)) =
        (opt_str(item, "default_branch"), opt_str(item, pushed_key))
    else {
        listing.skip("a branch name or date with control characters");
        return Ok(None);
    };
    Ok(Some(Repo {
        url: url.to_string(),
        kind: forge.to_string(),
        default_branch,
        size: None,
        pushed_at,
        fork_parent: None,
    }))
}

/// A boolean field; absent or `null` is `false`, anything else an error.
fn flag(
    item: &Value,
    key: &str,
    (forge, page, index): (&str, usize, usize),
) -> Result<bool, String> {
    match item.get(key) {
        Some(Value::Bool(b)) => Ok(*b),
        None | Some(Value::Null) => Ok(false),
        Some(_) => Err(missing(forge, page, index, key)),
    }
}

/// An absolute next-page URL on the API's origin, or `None`.
fn next_url(client: &Client, link: &str) -> Option<String> {
    let absolute = if link.starts_with('/') && !link.starts_with("//") {
        let o = client.origin();
        format!("{}://{}:{}{link}", o.scheme, o.host, o.port)
    } else {
        link.to_string()
    };
    client.same_origin(&absolute).then_some(absolute)
}

/// A string field that is plain: no control characters, not absurdly long.
fn plain(s: &str) -> bool {
    s.len() <= MAX_FIELD && !s.chars().any(char::is_control)
}

/// An optional string field: absent or `null` is `Ok(None)`; a non-string or a string that is
/// not plain is `Err(())` (the repository is skipped).
fn opt_str(v: &Value, key: &str) -> Result<Option<String>, ()> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if plain(s) => Ok(Some(s.clone())),
        Some(_) => Err(()),
    }
}

/// A required field missing or of the wrong type: an error naming the forge, page and item.
fn missing(forge: &str, page: usize, index: usize, key: &str) -> String {
    format!(
        "{forge}: page {page}: repository {} has no usable `{key}`",
        index + 1
    )
}

/// Whether a clone URL from the forge may be listed: `https://` with a host and a path and no
/// credentials; and, only when the API itself is plain http on a loopback address (a test
/// forge), `file://` and loopback `http://` URLs.
fn clone_url_ok(url: &str, api: &Origin) -> bool {
    if !plain(url) || url.chars().any(char::is_whitespace) {
        return false;
    }
    let test_forge = api.scheme == "http" && api.is_loopback();
    if let Some(path) = url.strip_prefix("file://") {
        return test_forge && path.starts_with('/') && path.len() > 1;
    }
    let Some(origin) = Origin::of(url) else {
        return false;
    };
    let has_path = url
        .splitn(4, '/')
        .nth(3)
        .is_some_and(|p| !p.is_empty() && !p.starts_with('?'));
    has_path && (origin.scheme == "https" || (test_forge && origin.is_loopback()))
}

/// A path segment made safe for a URL: everything but unreserved characters percent-encoded.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A forge name (`owner/name`, a Hugging Face id): ASCII letters, digits, `-`, `_`, `.`,
/// separated by `/` into `parts` non-empty segments, none of them `.` or `..`.
fn plain_name(name: &str, parts: usize) -> bool {
    let segments: Vec<&str> = name.split('/').collect();
    segments.len() == parts
        && segments.iter().all(|s| {
            !s.is_empty()
                && *s != "."
                && *s != ".."
                && s.len() <= 256
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_urls_are_https_unless_the_forge_is_a_local_test() {
        let real = Origin::of("https://api.github.com").unwrap();
        let local = Origin::of("http://127.0.0.1:8080").unwrap();
        assert!(clone_url_ok("https://github.com/acme/api.git", &real));
        assert!(!clone_url_ok("http://github.com/acme/api.git", &real));
        assert!(!clone_url_ok("file:///etc/passwd", &real));
        assert!(!clone_url_ok("ext::sh -c touch% /tmp/pwned", &real));
        assert!(!clone_url_ok("https://github.com/acme/a\x1b[2J.git", &real));
        assert!(!clone_url_ok("https://tok@github.com/acme/api.git", &real));
        assert!(!clone_url_ok("https://github.com", &real));
        assert!(!clone_url_ok("git@github.com:acme/api.git", &real));
        assert!(clone_url_ok("file:///srv/git/api.git", &local));
        assert!(clone_url_ok("http://127.0.0.1:8080/acme/api.git", &local));
        assert!(!clone_url_ok("http://10.1.1.1/acme/api.git", &local));
    }

    #[test]
    fn names_and_segments() {
        assert!(plain_name("acme/api.v2", 2));
        assert!(!plain_name("acme/../x", 3));
        assert!(!plain_name("acme/a b", 2));
        assert!(!plain_name("acme/api/x", 2));
        assert!(!plain_name("acme/\u{202e}gpj", 2));
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }
}
