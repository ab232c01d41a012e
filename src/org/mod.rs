//! Scans of a whole organisation: the repositories to scan ([`repos`], listed from a plain URL
//! list or a forge's API by [`forge`]), their assignment to shards ([`plan`]), the bare clones
//! a shard reads ([`fetch`]), a shard's files ([`shard`], lines of [`record`]) — so that a
//! batch engine can run one shard per job and `trawl org merge` make one report of them.

#[cfg(feature = "git")]
pub mod fetch;
pub mod forge;
pub mod plan;
#[cfg(feature = "git")]
pub mod record;
pub mod repos;
#[cfg(feature = "git")]
pub mod shard;
