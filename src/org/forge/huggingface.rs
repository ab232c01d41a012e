//! Hugging Face Hub: an author's (user's or organisation's) models, datasets and Spaces
//! (`GET /api/{models,datasets,spaces}?author=…&limit=100`), each a git repository cloned at
//! `{base}/{id}`, `{base}/datasets/{id}`, `{base}/spaces/{id}`. The Hub has no forks or
//! archived repositories, and its lists give no size.

use serde_json::Value;

use super::http::Client;
use super::{encode, for_each_page, missing, opt_str, plain_name, Listing};
use crate::org::repos::Repo;

/// The Hub.
pub const DEFAULT_BASE: &str = "https://huggingface.co";

/// (API path, clone URL prefix under the base, kind).
const KINDS: [(&str, &str, &str); 3] = [
    ("models", "", "huggingface-model"),
    ("datasets", "datasets/", "huggingface-dataset"),
    ("spaces", "spaces/", "huggingface-space"),
];

/// Lists the models, datasets and Spaces of `author`.
pub fn list(client: &Client, author: &str) -> Result<Listing, String> {
    let mut listing = Listing::default();
    for (api, prefix, kind) in KINDS {
        let forge = format!("huggingface {api}");
        let first = format!(
            "{}/api/{api}?author={}&limit=100",
            client.base(),
            encode(author)
        );
        for_each_page(client, &forge, first, |items, page| {
            for (i, item) in items.iter().enumerate() {
                let Some(id) = item.get("id").and_then(Value::as_str) else {
                    return Err(missing(&forge, page, i, "id"));
                };
                if !plain_name(id, 2) {
                    listing.skip("a repository id that is not a plain author/name");
                    continue;
                }
                let Ok(pushed_at) = opt_str(item, "lastModified") else {
                    listing.skip("a branch name or date with control characters");
                    continue;
                };
                listing.push(
                    &forge,
                    Repo {
                        url: format!("{}/{prefix}{id}", client.base()),
                        kind: kind.to_string(),
                        default_branch: None,
                        size: None,
                        pushed_at,
                        fork_parent: None,
                    },
                )?;
            }
            Ok(())
        })?;
    }
    Ok(listing.finish())
}
