//! GitLab (gitlab.com or self-hosted): the projects of a group and all its subgroups
//! (`GET /api/v4/groups/{group}/projects?include_subgroups=true&statistics=true`), 100 a page.
//! A fork names its parent in `forked_from_project`; sizes come from `statistics` when the
//! token may see them.

use serde_json::Value;

use super::http::Client;
use super::{clone_url_ok, common_fields, encode, flag, for_each_page, missing, Filter, Listing};

/// gitlab.com.
pub const DEFAULT_BASE: &str = "https://gitlab.com";
const FORGE: &str = "gitlab";

/// Lists group `group` (a path such as `acme/platform`).
pub fn list(client: &Client, group: &str, filter: Filter) -> Result<Listing, String> {
    let first = format!(
        "{}/api/v4/groups/{}/projects?include_subgroups=true&per_page=100&statistics=true",
        client.base(),
        encode(group.trim_matches('/'))
    );
    let mut listing = Listing::default();
    for_each_page(client, FORGE, first, |items, page| {
        for (i, item) in items.iter().enumerate() {
            let parent = item.get("forked_from_project").filter(|p| !p.is_null());
            let archived = flag(item, "archived", (FORGE, page, i))?;
            if (parent.is_some() && !filter.include_forks) || (archived && !filter.include_archived)
            {
                listing.excluded += 1;
                continue;
            }
            let at = (item, FORGE, page, i);
            let Some(mut repo) = common_fields(
                &mut listing,
                client.origin(),
                at,
                "http_url_to_repo",
                "last_activity_at",
            )?
            else {
                continue;
            };
            repo.size = match item
                .get("statistics")
                .and_then(|s| s.get("repository_size"))
            {
                None | Some(Value::Null) => None,
                // GitLab has sent sizes as floats on some versions.
                Some(v) => Some(
                    v.as_u64()
                        .or_else(|| v.as_f64().map(|f| f as u64))
                        .ok_or_else(|| missing(FORGE, page, i, "statistics.repository_size"))?,
                ),
            };
            repo.fork_parent =
                match parent.map(|p| p.get("http_url_to_repo").and_then(Value::as_str)) {
                    None => None,
                    Some(Some(u)) if clone_url_ok(u, client.origin()) => Some(u.to_string()),
                    Some(_) => {
                        listing.skip("a fork parent that could not be read (not kept)");
                        None
                    }
                };
            listing.push(FORGE, repo)?;
        }
        Ok(())
    })?;
    Ok(listing.finish())
}
