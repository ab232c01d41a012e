//! The state store: what earlier runs learnt about blobs, so that a scheduled re-scan costs
//! only what changed — new blobs, or new and changed rules.
//!
//! Contract:
//! - Keyed by blob id. Each blob records the *generation* that scanned it: the set of
//!   (rule id → [`Rule::match_digest`]) plus an engine digest ([`ENGINE_EPOCH`], the limits,
//!   and the configuration's secret-content allowlists). A blob scanned by the current
//!   generation is not scanned again; one scanned by an older generation with the same engine
//!   digest is scanned with the new and changed rules only ([`Lookup::Partial`]); results of
//!   rules removed or changed since are dropped when read. A different engine digest means a
//!   full scan.
//! - Only blob-level results are kept ([`StoredMatch`]): fingerprints, positions, redacted
//!   snippets; never a secret. Paths, provenance, path allowlists, baselines and
//!   `.gitleaksignore` apply at report time, so changing them never forces a re-scan. The
//!   allowlists that judge a secret by its content (regexes, stopwords) cannot be applied to
//!   a secret that is not kept: they are applied before storing and are part of the engine
//!   digest.
//! - Per repository (`trawl org scan`), the ref tips and generation of its last complete scan,
//!   with that scan's report lines: an unchanged repository is reported without reading a blob.
//! - Verification answers (`--verify`), by secret fingerprint and endpoint, with when they
//!   were asked ([`VerifyCache`]).
//! - One SQLite file (rollback journal, fit for network file systems), written in
//!   transactions of [`BATCH`] blobs: a killed run loses at most the blobs of the transaction
//!   in progress, which the next run scans again.
//!
//! The store sits beside the pipeline, which asks it before scanning a blob; it needs rule
//! metadata (digests, ids) and the report's redaction, nothing of the scanner.

mod stored;
mod verified;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

pub use stored::{Place, StoredMatch};
pub use verified::VerifyCache;

use crate::rules::RuleSet;
use crate::source::BlobId;

/// Bumped when a decoder or a filter changes what any rule finds: every stored blob is then
/// scanned again in full.
pub const ENGINE_EPOCH: u32 = 1;

/// Layout of the database; a file of another layout is refused, not migrated.
const SCHEMA: &str = "trawl-state-1";

/// Writes per transaction: a killed run loses at most these.
const BATCH: usize = 4096;

/// The rules and engine a scan runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generation {
    /// Rule id → match digest.
    pub rules: BTreeMap<String, String>,
    /// Digest of the engine epoch, the limits and the secret-content allowlists.
    pub engine: String,
}

impl Generation {
    /// The generation of `rules` under an engine described by `engine_facts` (the limits and
    /// the configuration's secret filter, in any stable text form).
    pub fn of(rules: &RuleSet, engine_facts: &str) -> Generation {
        let rules = rules
            .rules()
            .iter()
            .map(|r| (r.id().to_string(), r.match_digest()))
            .collect();
        let engine = hex(&Sha256::digest(
            format!("epoch {ENGINE_EPOCH}\n{engine_facts}").as_bytes(),
        ));
        Generation { rules, engine }
    }

    /// One digest of the whole generation.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.engine.as_bytes());
        for (id, d) in &self.rules {
            h.update(b"\n");
            h.update(id.as_bytes());
            h.update(b" ");
            h.update(d.as_bytes());
        }
        hex(&h.finalize())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the store knows of a blob.
#[derive(Debug)]
pub enum Lookup {
    /// Nothing usable: scan it with every rule.
    Unknown,
    /// Scanned by the current generation: these are its results.
    Complete(Vec<StoredMatch>),
    /// Scanned by an older generation: `kept` are the results that still hold, and the rules
    /// of `delta` (an index into [`Store::deltas`]) must run on it.
    Partial {
        /// Results of rules unchanged since.
        kept: Vec<StoredMatch>,
        /// Which rule set to run.
        delta: usize,
    },
}

/// What an older generation lacks compared with the current one.
#[derive(Debug)]
struct Older {
    /// Same engine: a partial scan is possible.
    same_engine: bool,
    /// Index into `deltas`, when some rules must run.
    delta: Option<usize>,
    /// The delta holds a generic rule: its matches depend on every specific rule's, so the
    /// blob is scanned again in full.
    generic: bool,
}

/// An open state store for one run under one generation.
pub struct Store {
    conn: Mutex<Writer>,
    generation: Generation,
    current: i64,
    older: HashMap<i64, Older>,
    deltas: Vec<BTreeSet<String>>,
    generic: BTreeSet<String>,
}

struct Writer {
    conn: Connection,
    pending: usize,
}

impl Store {
    /// Opens (or creates) the store at `path` for a run of `generation`; `generic` are the ids
    /// of the generic rules.
    pub fn open(path: &Path, generation: Generation, generic: BTreeSet<String>) -> Result<Store> {
        let conn = connect(path)?;
        let digest = generation.digest();
        conn.execute(
            "INSERT OR IGNORE INTO generations (digest, engine, rules) VALUES (?1, ?2, ?3)",
            params![
                digest,
                generation.engine,
                serde_json::to_string(&generation.rules)?
            ],
        )?;
        let current: i64 = conn.query_row(
            "SELECT id FROM generations WHERE digest = ?1",
            params![digest],
            |r| r.get(0),
        )?;
        // What each older generation lacks.
        let mut older = HashMap::new();
        let mut deltas: Vec<BTreeSet<String>> = Vec::new();
        {
            let mut stmt =
                conn.prepare("SELECT id, engine, rules FROM generations WHERE id != ?1")?;
            let rows = stmt.query_map(params![current], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            for row in rows {
                let (id, engine, rules) = row?;
                let same_engine = engine == generation.engine;
                let rules: BTreeMap<String, String> =
                    serde_json::from_str(&rules).unwrap_or_default();
                let delta: BTreeSet<String> = generation
                    .rules
                    .iter()
                    .filter(|(rid, d)| rules.get(*rid) != Some(*d))
                    .map(|(rid, _)| rid.clone())
                    .collect();
                let is_generic = delta.iter().any(|r| generic.contains(r));
                let delta = (!delta.is_empty()).then(|| {
                    deltas.iter().position(|d| *d == delta).unwrap_or_else(|| {
                        deltas.push(delta);
                        deltas.len() - 1
                    })
                });
                older.insert(
                    id,
                    Older {
                        same_engine,
                        delta,
                        generic: is_generic,
                    },
                );
            }
        }
        conn.execute_batch("BEGIN")?;
        Ok(Store {
            conn: Mutex::new(Writer { conn, pending: 0 }),
            generation,
            current,
            older,
            deltas,
            generic,
        })
    }

    /// The rule sets that blobs of older generations must be scanned with, by index.
    pub fn deltas(&self) -> &[BTreeSet<String>] {
        &self.deltas
    }

    /// The generation this run scans with.
    pub fn generation(&self) -> &Generation {
        &self.generation
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the store knows of `id`. A read error is an unknown blob (scanned in full).
    pub fn lookup(&self, id: &BlobId) -> Lookup {
        let row: Option<(i64, Option<String>)> = {
            let w = self.writer();
            let Ok(mut stmt) = w
                .conn
                .prepare_cached("SELECT generation, results FROM blobs WHERE id = ?1")
            else {
                return Lookup::Unknown;
            };
            stmt.query_row(params![&id.0[..]], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .ok()
                .flatten()
        };
        let Some((generation, results)) = row else {
            return Lookup::Unknown;
        };
        let stored: Vec<StoredMatch> = match results {
            None => Vec::new(),
            Some(text) => match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(_) => return Lookup::Unknown,
            },
        };
        let kept: Vec<StoredMatch> = stored
            .into_iter()
            .filter(|m| self.generation.rules.get(&m.rule) == Some(&m.digest))
            .collect();
        if generation == self.current {
            return Lookup::Complete(kept);
        }
        let Some(older) = self.older.get(&generation) else {
            return Lookup::Unknown;
        };
        if !older.same_engine {
            return Lookup::Unknown;
        }
        match older.delta {
            None => Lookup::Complete(kept),
            // A generic rule's matches depend on the specific rules' (and the reverse): the
            // blob is scanned again in full when either side of that is in play.
            Some(_) if older.generic || kept.iter().any(|m| self.generic.contains(&m.rule)) => {
                Lookup::Unknown
            }
            Some(delta) => Lookup::Partial { kept, delta },
        }
    }

    /// Records the results of `id` under the current generation.
    pub fn record(&self, id: &BlobId, results: &[StoredMatch]) -> Result<()> {
        let text = if results.is_empty() {
            None
        } else {
            Some(serde_json::to_string(results)?)
        };
        let mut w = self.writer();
        w.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO blobs (id, generation, results) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![&id.0[..], self.current, text])?;
        w.pending += 1;
        if w.pending >= BATCH {
            w.conn.execute_batch("COMMIT; BEGIN")?;
            w.pending = 0;
        }
        Ok(())
    }

    /// Commits what was recorded.
    pub fn commit(&self) -> Result<()> {
        let mut w = self.writer();
        w.conn.execute_batch("COMMIT; BEGIN")?;
        w.pending = 0;
        Ok(())
    }

    /// The last complete scan of a repository: its ref tips, generation digest and report.
    pub fn repo(&self, url: &str) -> Result<Option<RepoState>> {
        query_repo(&self.writer().conn, url)
    }

    /// Records a complete scan of a repository, and commits.
    pub fn set_repo(&self, url: &str, state: &RepoState) -> Result<()> {
        let mut w = self.writer();
        w.conn.execute(
            "INSERT OR REPLACE INTO repos (url, tips, generation, report) VALUES (?1, ?2, ?3, ?4)",
            params![url, state.tips, state.generation, state.report],
        )?;
        w.conn.execute_batch("COMMIT; BEGIN")?;
        w.pending = 0;
        Ok(())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let w = self.conn.get_mut().unwrap_or_else(PoisonError::into_inner);
        let _ = w.conn.execute_batch("COMMIT");
    }
}

/// The last complete scan of `url` in the store at `path`, read without changing the store;
/// `None` when there is no store or no such scan.
pub fn read_repo(path: &Path, url: &str) -> Result<Option<RepoState>> {
    if !path.is_file() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open the state store {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    query_repo(&conn, url).with_context(|| format!("{}: not a trawl state store", path.display()))
}

fn query_repo(conn: &Connection, url: &str) -> Result<Option<RepoState>> {
    Ok(conn
        .query_row(
            "SELECT tips, generation, report FROM repos WHERE url = ?1",
            params![url],
            |r| {
                Ok(RepoState {
                    tips: r.get(0)?,
                    generation: r.get(1)?,
                    report: r.get(2)?,
                })
            },
        )
        .optional()?)
}

/// A repository's last complete scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoState {
    /// Digest of its refs and their tips.
    pub tips: String,
    /// Digest of the generation that scanned it, and of what shaped its report.
    pub generation: String,
    /// Its report lines, as the shard wrote them.
    pub report: Vec<u8>,
}

/// Opens (or creates) the store file at `path`: its tables, and a refusal of another layout.
fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)
        .with_context(|| format!("cannot open the state store {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.execute_batch(
        // A rollback journal, not WAL: state directories live on shared volumes (NFS,
        // a Kubernetes ReadWriteMany claim) where WAL's shared memory does not work; one
        // process writes a store at a time, in batches, so WAL would gain little.
        "PRAGMA journal_mode = TRUNCATE;
         PRAGMA synchronous = NORMAL;
         CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS generations (
             id INTEGER PRIMARY KEY, digest TEXT NOT NULL UNIQUE,
             engine TEXT NOT NULL, rules TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS blobs (
             id BLOB PRIMARY KEY, generation INTEGER NOT NULL, results TEXT) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS repos (
             url TEXT PRIMARY KEY, tips TEXT NOT NULL, generation TEXT NOT NULL,
             report BLOB NOT NULL);
         CREATE TABLE IF NOT EXISTS verifications (
             fingerprint TEXT NOT NULL, endpoint TEXT NOT NULL, checked INTEGER NOT NULL,
             result TEXT NOT NULL, PRIMARY KEY (fingerprint, endpoint)) WITHOUT ROWID;",
    )
    .with_context(|| format!("{}: not a trawl state store", path.display()))?;
    let schema: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
            r.get(0)
        })
        .optional()?;
    match schema.as_deref() {
        None => {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
                params![SCHEMA],
            )?;
        }
        Some(SCHEMA) => {}
        Some(_) => bail!(
            "{}: a state store of another trawl version (remove it to start afresh)",
            path.display()
        ),
    }
    Ok(conn)
}
