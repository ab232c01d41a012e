//! GitHub and GitHub Enterprise: the repositories of an organisation
//! (`GET /orgs/{org}/repos`) or of a user (`GET /users/{user}/repos`), 100 a page. The list
//! does not name a fork's parent, so each fork kept costs one `GET /repos/{owner}/{name}`.

use serde_json::Value;

use super::http::{Client, HttpError};
use super::{
    clone_url_ok, common_fields, encode, flag, for_each_page, missing, parse, plain_name, Filter,
    Listing,
};

/// Whose repositories.
#[derive(Clone, Debug)]
pub enum Owner {
    /// An organisation.
    Org(String),
    /// A user.
    User(String),
}

/// The API of github.com.
pub const DEFAULT_API: &str = "https://api.github.com";
const FORGE: &str = "github";

/// Lists the repositories of `owner`.
pub fn list(client: &Client, owner: &Owner, filter: Filter) -> Result<Listing, String> {
    let first = match owner {
        Owner::Org(o) => format!(
            "{}/orgs/{}/repos?per_page=100&type=all",
            client.base(),
            encode(o)
        ),
        Owner::User(u) => format!(
            "{}/users/{}/repos?per_page=100&type=owner",
            client.base(),
            encode(u)
        ),
    };
    let mut listing = Listing::default();
    // Forks kept, by index in `listing.repos`, with their `owner/name`.
    let mut forks: Vec<(usize, String)> = Vec::new();
    for_each_page(client, FORGE, first, |items, page| {
        for (i, item) in items.iter().enumerate() {
            let at = (FORGE, page, i);
            let (fork, archived) = (flag(item, "fork", at)?, flag(item, "archived", at)?);
            if (fork && !filter.include_forks) || (archived && !filter.include_archived) {
                listing.excluded += 1;
                continue;
            }
            let at = (item, FORGE, page, i);
            let Some(mut repo) =
                common_fields(&mut listing, client.origin(), at, "clone_url", "pushed_at")?
            else {
                continue;
            };
            repo.size = match item.get("size") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_u64()
                        .ok_or_else(|| missing(FORGE, page, i, "size"))?
                        .saturating_mul(1024),
                ),
            };
            if fork {
                match item.get("full_name").and_then(Value::as_str) {
                    Some(n) if plain_name(n, 2) => forks.push((listing.repos.len(), n.to_string())),
                    Some(_) => {
                        listing.skip("a fork whose name is not plain");
                        continue;
                    }
                    None => return Err(missing(FORGE, page, i, "full_name")),
                }
            }
            listing.push(FORGE, repo)?;
        }
        Ok(())
    })?;
    for (index, full_name) in forks {
        match parent_of(client, &full_name) {
            Ok(Some(parent)) => listing.repos[index].fork_parent = Some(parent),
            Ok(None) => listing.skip("a fork parent that could not be read (not kept)"),
            Err(e) => return Err(e),
        }
    }
    Ok(listing.finish())
}

/// `parent.clone_url` of a fork; `Ok(None)` when the fork is gone (404) or its parent's URL is
/// not plain.
fn parent_of(client: &Client, full_name: &str) -> Result<Option<String>, String> {
    let (owner, name) = full_name.split_once('/').unwrap_or((full_name, ""));
    let url = format!("{}/repos/{}/{}", client.base(), encode(owner), encode(name));
    let what = format!("{FORGE}: a fork's details");
    let answer = match client.get(&url, &what) {
        Ok(a) => a,
        Err(HttpError::Status(404)) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    Ok(parse(&answer.body, &what)?
        .get("parent")
        .and_then(|p| p.get("clone_url"))
        .and_then(Value::as_str)
        .filter(|u| clone_url_ok(u, client.origin()))
        .map(str::to_string))
}
