//! Experiment-tracker record logs: TensorBoard event files (`events.out.tfevents.*`, TFRecord
//! framing of `Event` protobufs) and the Weights & Biases binary run log (`run-*.wandb`,
//! LevelDB-log chunks of `wandb.Record` protobufs).
//!
//! Contract: each format is recognised by its bytes (a first TFRecord whose two checksums hold
//! and whose `Event` has a wall time; the `:W&B` header), never by its name. The readers check
//! every checksum, read at most [`RecordLimits`] records, bytes and strings, nest protobufs to a
//! fixed depth, never panic, and return the strings of each record as
//! [`MetaString`](crate::content::model::MetaString)s with the 0-based record index in `record`
//! and a key that names the value (a summary tag, an hparam name, a config key), so that rules
//! which need a key's name see `key = "value"`. Damage (a bad checksum, a truncated tail, a
//! length that lies) is a [`LogWarning`], one per kind and file, and the reading goes on where
//! the format allows it.

mod crc;
#[cfg(test)]
mod tests;
mod tfevents;
mod wandb;

pub use tfevents::{is_tfevents, starts_like_tfevents, tfevents_strings};
pub use wandb::{is_wandb_log, wandb_strings};

use crate::content::model::MetaString;
use crate::content::protobuf::StringWalk;

/// Bounds on reading one record log.
#[derive(Clone, Debug)]
pub struct RecordLimits {
    /// Records read; the rest of the file is left.
    pub max_records: u64,
    /// Largest single record decoded; a larger one is skipped.
    pub max_record_bytes: usize,
    /// Bytes of records read in all.
    pub max_total_bytes: u64,
    /// Strings kept in all.
    pub max_strings: usize,
}

impl Default for RecordLimits {
    fn default() -> Self {
        RecordLimits {
            max_records: 1_000_000,
            max_record_bytes: 64 << 20,
            max_total_bytes: 1 << 30,
            max_strings: 1_000_000,
        }
    }
}

/// A problem met while reading a record log; the reading went on past it, or stopped where
/// the message says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogWarning {
    /// Damage: a bad checksum, a truncated tail, a record that does not parse.
    Malformed(String),
    /// A [`RecordLimits`] bound was met.
    Limit(String),
}

/// What reading a record log gave.
#[derive(Debug, Default)]
pub struct LogStrings {
    /// The strings of every record read, offsets in the file.
    pub strings: Vec<MetaString>,
    /// Problems met, at most one of each kind.
    pub warnings: Vec<LogWarning>,
    /// Records read.
    pub records: u64,
}

impl LogStrings {
    /// What a walk over `records` records gave, with a warning if messages nested too deep.
    fn of(walk: StringWalk, mut warnings: Vec<LogWarning>, records: u64) -> LogStrings {
        if walk.too_deep {
            warnings.push(LogWarning::Malformed(format!(
                "protobuf messages nested deeper than {}: read as bytes",
                crate::content::protobuf::WALK_MAX_DEPTH
            )));
        }
        LogStrings {
            strings: walk.out,
            warnings,
            records,
        }
    }
}

/// Counts records that share one kind of damage, so that a file gets one warning for it
/// (with the first record it hit), however many records it hit.
#[derive(Default)]
struct Damage {
    count: u64,
    first: u64,
}

impl Damage {
    fn note(&mut self, record: u64) {
        if self.count == 0 {
            self.first = record;
        }
        self.count += 1;
    }

    /// One warning, if any record was hit: `what` says the damage and what was done.
    fn warn(&self, out: &mut Vec<LogWarning>, what: &str) {
        if self.count == 0 {
            return;
        }
        let more = match self.count - 1 {
            0 => String::new(),
            1 => " (and 1 more record)".to_owned(),
            n => format!(" (and {n} more records)"),
        };
        out.push(LogWarning::Malformed(format!(
            "record {}{more}: {what}",
            self.first
        )));
    }
}
