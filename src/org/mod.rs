//! Scans of a whole organisation: the repositories to scan ([`repos`]) and their assignment
//! to shards ([`plan`]), so that a batch engine can run one shard per job.

pub mod plan;
pub mod repos;
