//! Verification answers kept in the state store file, so that a scheduled run does not ask a
//! provider again about a secret it answered for within `--verify-max-age`.
//!
//! Contract: keyed by (secret fingerprint, endpoint), the endpoint being the URL template a
//! verifier asks (never one holding the secret); only definite answers (live, invalid) are
//! kept, with when they were given; an error or an inconclusive answer is asked again next
//! time. A read or write failure is a miss (the provider is asked), never an error of the
//! scan. Nothing of the secret is stored.

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension};

use crate::verify::{Cache, Status, Verification};

/// Verification answers of earlier runs, in a state store file.
pub struct VerifyCache {
    conn: Mutex<Writer>,
    /// Seconds an answer stands.
    max_age: u64,
    /// This run's time, seconds since the epoch.
    now: i64,
}

impl VerifyCache {
    /// Opens (or creates) the store at `path`; answers older than `max_age` seconds are asked
    /// again (0: every answer).
    pub fn open(path: &Path, max_age: u64) -> Result<VerifyCache> {
        let conn = super::connect(path)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Ok(VerifyCache {
            conn: Mutex::new(Writer {
                conn,
                writing: false,
            }),
            max_age,
            now,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The connection, and whether this run's writes are in an open transaction (committed when
/// the cache is dropped: one disk sync for a run's answers, not one each).
struct Writer {
    conn: Connection,
    writing: bool,
}

impl Drop for VerifyCache {
    fn drop(&mut self) {
        let w = self.conn.get_mut().unwrap_or_else(PoisonError::into_inner);
        if w.writing {
            let _ = w.conn.execute_batch("COMMIT");
        }
    }
}

impl Cache for VerifyCache {
    fn get(&self, fingerprint: &str, endpoint: &str) -> Option<Verification> {
        let w = self.conn();
        let (checked, result): (i64, String) = w
            .conn
            .prepare_cached(
                "SELECT checked, result FROM verifications WHERE fingerprint = ?1 AND endpoint = ?2",
            )
            .ok()?
            .query_row(params![fingerprint, endpoint], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .ok()??;
        // An answer from the future (a clock set back) is as old as can be.
        let age = u64::try_from(self.now - checked).ok()?;
        if age >= self.max_age {
            return None;
        }
        let mut v: Verification = serde_json::from_str(&result).ok()?;
        if !matches!(v.status, Status::Live | Status::Invalid) {
            return None;
        }
        v.cached = true;
        v.checked = Some(crate::dates::format_date(checked));
        Some(v)
    }

    fn put(&self, fingerprint: &str, endpoint: &str, v: &Verification) {
        if !matches!(v.status, Status::Live | Status::Invalid) {
            return;
        }
        let Ok(result) = serde_json::to_string(&Verification {
            cached: false,
            checked: None,
            ..v.clone()
        }) else {
            return;
        };
        let mut w = self.conn();
        if !w.writing {
            if w.conn.execute_batch("BEGIN IMMEDIATE").is_err() {
                return;
            }
            w.writing = true;
        }
        let _ = w
            .conn
            .prepare_cached(
                "INSERT OR REPLACE INTO verifications (fingerprint, endpoint, checked, result)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![fingerprint, endpoint, self.now, result]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> Verification {
        Verification {
            status: Status::Live,
            owner: Some("alice".into()),
            scopes: vec!["repo".into()],
            endpoint: Some("https://api.example/user".into()),
            ..Verification::default()
        }
    }

    #[test]
    fn a_definite_answer_stands_until_it_is_too_old() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let cache = VerifyCache::open(&path, 3600).unwrap();
        assert_eq!(cache.get("fp", "https://api.example/user"), None);
        cache.put("fp", "https://api.example/user", &live());
        let got = cache.get("fp", "https://api.example/user").unwrap();
        assert!(got.cached);
        assert_eq!(got.owner.as_deref(), Some("alice"));
        assert!(got.checked.is_some());
        // Another endpoint (GitHub Enterprise, a mock) is another question.
        assert_eq!(cache.get("fp", "https://ghe.example/api/v3/user"), None);
        drop(cache);
        // A later run within the age reads it back; one with age 0 asks again.
        let again = VerifyCache::open(&path, 3600).unwrap();
        assert_eq!(
            again.get("fp", "https://api.example/user").unwrap().status,
            Status::Live
        );
        let none = VerifyCache::open(&path, 0).unwrap();
        assert_eq!(none.get("fp", "https://api.example/user"), None);
        // An answer from the future (clock set back) does not stand.
        let mut past = VerifyCache::open(&path, 3600).unwrap();
        past.now -= 10;
        assert_eq!(past.get("fp", "https://api.example/user"), None);
    }

    #[test]
    fn errors_and_unknowns_are_asked_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = VerifyCache::open(&dir.path().join("s.db"), 3600).unwrap();
        for status in [Status::Error, Status::Unknown] {
            cache.put(
                "fp",
                "u",
                &Verification {
                    status,
                    ..Verification::default()
                },
            );
            assert_eq!(cache.get("fp", "u"), None);
        }
    }
}
