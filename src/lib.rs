//! trawl finds leaked credentials in files, in git history and inside AI artifacts.
//!
//! Data flows one way: a [`source`] pushes bytes with their provenance into the one
//! [`pipeline`], which sniffs, deduplicates and decodes them ([`content`]); [`scan`] finds
//! confirmed secrets with the rules of [`rules`], [`findings`] places and deduplicates them,
//! and [`report`] writes them out. Problems are typed [`warning`]s; the library never prints.
//! [`cli`] sits on top. `ARCHITECTURE.md` draws the flow.
//!
//! ```
//! use trawl::{rules::RuleSet, scan::Scanner};
//!
//! let scanner = Scanner::new(RuleSet::builtin().unwrap()).unwrap();
//! let mut worker = scanner.worker();
//! let token = ["hf_", "qSJhvEUUXWVjoguVwaSlIgiRMISfqglXvQ"].concat();
//! let found = worker.scan(format!("HF_TOKEN={token}\n").as_bytes());
//! assert_eq!(scanner.rule(found[0].rule).id(), "huggingface.user-token");
//! ```
#![deny(missing_docs)]

pub mod cli;
pub mod content;
pub mod dates;
pub mod findings;
pub mod inventory;
pub mod org;
pub mod pipeline;
pub mod report;
pub mod rules;
pub mod scan;
pub mod source;
pub mod state;
pub mod verify;
pub mod warning;
