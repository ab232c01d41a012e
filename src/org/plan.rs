//! `trawl org plan`: a deterministic assignment of repositories to shards.
//!
//! Repositories of one fork network (a repository and its forks) go to one shard, since they
//! share most of their objects. Networks are placed largest first, each on the least loaded
//! shard (ties to the lowest index); a network larger than an even share of the whole gets a
//! shard of its own while there are shards enough. The same repositories, in any order, give
//! the same plan, byte for byte.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::repos::{to_jsonl, Repo};

/// The weight of a repository whose size the forge did not give: a mid-sized repository.
pub const UNKNOWN_SIZE: u64 = 10 << 20;

/// Version of the plan format.
pub const PLAN_VERSION: u32 = 1;

/// Repositories assigned to shards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// [`PLAN_VERSION`].
    pub version: u32,
    /// SHA-256 of the planned repositories (sorted `repos.jsonl`): shard markers name it, so
    /// that outputs of another plan are never merged with these.
    pub digest: String,
    /// The shards, index 0 first.
    pub shards: Vec<Shard>,
}

/// One shard of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// 0-based, as `JOB_COMPLETION_INDEX` counts.
    pub index: usize,
    /// Sum of its repositories' size hints ([`UNKNOWN_SIZE`] for each without one).
    pub weight: u64,
    /// Its repositories, largest network first, a network's root before its forks.
    pub repos: Vec<Repo>,
}

/// A repository's weight in the plan.
fn weight(r: &Repo) -> u64 {
    r.size.unwrap_or(UNKNOWN_SIZE).max(1)
}

/// The fork network of a repository, named by its root's URL.
pub fn network(r: &Repo) -> &str {
    r.fork_parent.as_deref().unwrap_or(&r.url)
}

/// Plans `repos` over `shards` shards (at least 1). Repeated URLs are planned once (the
/// first, in URL order, wins).
pub fn plan(repos: &[Repo], shards: usize) -> Plan {
    let shards = shards.max(1);
    let mut sorted: Vec<Repo> = repos.to_vec();
    sorted.sort_by(|a, b| a.url.cmp(&b.url));
    sorted.dedup_by(|a, b| a.url == b.url);
    let digest = hex(&Sha256::digest(to_jsonl(&sorted)));

    // Fork networks, keyed by their root's URL.
    let mut networks: BTreeMap<&str, Vec<&Repo>> = BTreeMap::new();
    for r in &sorted {
        networks.entry(network(r)).or_default().push(r);
    }
    let mut order: Vec<(u64, &str, Vec<&Repo>)> = networks
        .into_iter()
        .map(|(root, mut members)| {
            // The root first, then its forks in URL order (already sorted).
            members.sort_by_key(|r| r.url != root);
            let w = members
                .iter()
                .map(|r| weight(r))
                .fold(0u64, u64::saturating_add);
            (w, root, members)
        })
        .collect();
    // Largest first; equal weights in root order.
    order.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));

    let total = order.iter().map(|n| n.0).fold(0u64, u64::saturating_add);
    let share = total / shards as u64;
    let giants = order.iter().filter(|n| n.0 > share).count();
    let mut out: Vec<Shard> = (0..shards)
        .map(|index| Shard {
            index,
            weight: 0,
            repos: Vec::new(),
        })
        .collect();
    // Shards holding a giant take nothing else (while giants leave other shards open).
    let mut closed = vec![false; shards];
    for (w, _, members) in order {
        let alone = giants < shards && w > share;
        let target = out
            .iter()
            .filter(|s| !closed[s.index])
            .filter(|s| !alone || s.repos.is_empty())
            .min_by_key(|s| (s.weight, s.index))
            .or_else(|| out.iter().min_by_key(|s| (s.weight, s.index)))
            .map_or(0, |s| s.index);
        let shard = &mut out[target];
        shard.weight = shard.weight.saturating_add(w);
        shard.repos.extend(members.into_iter().cloned());
        if alone {
            closed[target] = true;
        }
    }
    Plan {
        version: PLAN_VERSION,
        digest,
        shards: out,
    }
}

/// The plan as it is written: pretty JSON and a final newline.
pub fn to_json(plan: &Plan) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(plan).unwrap_or_default();
    out.push(b'\n');
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(url: &str, size: Option<u64>, parent: Option<&str>) -> Repo {
        Repo {
            url: url.to_string(),
            kind: "github".to_string(),
            default_branch: Some("main".to_string()),
            size,
            pushed_at: None,
            fork_parent: parent.map(str::to_string),
        }
    }

    fn urls(s: &Shard) -> Vec<&str> {
        s.repos.iter().map(|r| r.url.as_str()).collect()
    }

    #[test]
    fn the_same_repositories_in_any_order_give_the_same_bytes() {
        let mut repos: Vec<Repo> = (0..50)
            .map(|i| {
                repo(
                    &format!("https://h/r{i:02}.git"),
                    Some((i * 7919 % 97) << 20),
                    None,
                )
            })
            .collect();
        let a = to_json(&plan(&repos, 4));
        repos.reverse();
        repos.push(repos[3].clone());
        let b = to_json(&plan(&repos, 4));
        assert_eq!(a, b);
        let p = plan(&repos, 4);
        assert_eq!(p.shards.iter().map(|s| s.repos.len()).sum::<usize>(), 50);
        // Balanced: no shard above the mean by more than the largest repository.
        let max = p.shards.iter().map(|s| s.weight).max().unwrap();
        let min = p.shards.iter().map(|s| s.weight).min().unwrap();
        assert!(max - min <= 96 << 20, "{max} {min}");
    }

    #[test]
    fn forks_travel_with_their_network_and_giants_are_alone() {
        let repos = vec![
            repo("https://h/small-a.git", Some(1 << 20), None),
            repo("https://h/linux.git", Some(4 << 30), None),
            repo(
                "https://h/me/linux.git",
                Some(4 << 30),
                Some("https://h/linux.git"),
            ),
            repo("https://h/lib.git", Some(100 << 20), None),
            repo(
                "https://h/you/lib.git",
                Some(90 << 20),
                Some("https://h/lib.git"),
            ),
            repo("https://h/small-b.git", None, None),
        ];
        let p = plan(&repos, 3);
        // The giant network (8 GiB, more than a third of the whole) is alone in shard 0.
        assert_eq!(
            urls(&p.shards[0]),
            ["https://h/linux.git", "https://h/me/linux.git"]
        );
        // The fork network of lib is together, root first, and the rest balance after it.
        assert_eq!(
            urls(&p.shards[1]),
            ["https://h/lib.git", "https://h/you/lib.git"]
        );
        assert_eq!(
            urls(&p.shards[2]),
            ["https://h/small-b.git", "https://h/small-a.git"]
        );
    }

    #[test]
    fn more_shards_than_repositories_leaves_shards_empty_and_many_giants_share() {
        let repos = vec![repo("https://h/a.git", Some(5), None)];
        let p = plan(&repos, 3);
        assert_eq!(p.shards.len(), 3);
        assert_eq!(urls(&p.shards[0]), ["https://h/a.git"]);
        assert!(p.shards[1].repos.is_empty() && p.shards[2].repos.is_empty());
        // Three equal giants on two shards: every repository is still planned.
        let repos: Vec<Repo> = ["a", "b", "c"]
            .iter()
            .map(|n| repo(&format!("https://h/{n}.git"), Some(1 << 30), None))
            .collect();
        let p = plan(&repos, 2);
        assert_eq!(p.shards.iter().map(|s| s.repos.len()).sum::<usize>(), 3);
        assert_eq!(plan(&[], 0).shards.len(), 1);
    }
}
