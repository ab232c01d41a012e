//! trawl finds leaked credentials in files, in git history and inside AI artifacts.
//!
//! Data flows one way: [`source`] yields bytes with their provenance, [`scan`] finds
//! confirmed secrets in them with the rules of [`rules`], [`findings`] places and deduplicates
//! them, and [`report`] writes them out. [`cli`] sits on top.
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
pub mod report;
pub mod rules;
pub mod scan;
pub mod source;
