//! Scans of a whole organisation: the repositories to scan ([`repos`]) and their assignment
//! to shards ([`plan`]), so that a batch engine can run one shard per job.

#[cfg(feature = "git")]
pub mod fetch;
pub mod plan;
#[cfg(feature = "git")]
pub mod record;
pub mod repos;
#[cfg(feature = "git")]
pub mod shard;
