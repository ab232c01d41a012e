//! Scans of a whole organisation: the repositories to scan ([`repos`], listed from a plain URL
//! list or a forge's API by [`forge`]) and their assignment to shards ([`plan`]), so that a
//! batch engine can run one shard per job.

pub mod forge;
pub mod plan;
pub mod repos;
