//! The files of one shard in the output directory: per-repository parts while it runs (so a
//! killed shard resumes where it stopped), then `shard-I.jsonl.gz` and the marker
//! `shard-I.done.json`, each by write-and-rename: a reader sees a whole file or none, and the
//! marker appears only after the output.
//!
//! Contract: the output is the parts' lines in plan order, gzip with no timestamp or name, so
//! the same findings give the same bytes. The marker names the plan's digest; merge refuses
//! markers of another plan.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Version of the marker format.
pub const MARKER_VERSION: u32 = 1;

/// How one repository went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoStatus {
    /// Clone URL.
    pub url: String,
    /// `scanned`, `unchanged` (same ref tips and rules as its last scan: its stored report),
    /// `incomplete` (scanned, but some objects could not be read) or `failed` (not scanned).
    pub status: String,
    /// Distinct findings.
    pub findings: u64,
    /// Blobs scanned (with every rule, or with new and changed rules only).
    pub blobs_scanned: u64,
    /// Of those, blobs scanned with new and changed rules only.
    pub blobs_rescanned: u64,
    /// Blobs the state store knew: not read.
    pub blobs_known: u64,
    /// Why it failed or is incomplete, in trawl's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Whether a status means the repository was read in full.
pub fn is_complete(status: &str) -> bool {
    matches!(status, "scanned" | "unchanged")
}

/// The marker of a finished shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// [`MARKER_VERSION`].
    pub version: u32,
    /// Digest of the plan the shard belongs to.
    pub plan: String,
    /// Shard index (0-based).
    pub shard: usize,
    /// Number of shards of the plan.
    pub shards: usize,
    /// Each repository of the shard, in plan order.
    pub repositories: Vec<RepoStatus>,
}

/// Paths of shard `index` in `out`.
pub struct Files {
    /// `shard-I.jsonl.gz`.
    pub output: PathBuf,
    /// `shard-I.done.json`.
    pub marker: PathBuf,
    /// `shard-I.parts/`.
    pub parts: PathBuf,
}

impl Files {
    /// The files of shard `index` in `out`.
    pub fn new(out: &Path, index: usize) -> Files {
        Files {
            output: out.join(format!("shard-{index}.jsonl.gz")),
            marker: out.join(format!("shard-{index}.done.json")),
            parts: out.join(format!("shard-{index}.parts")),
        }
    }

    fn part(&self, n: usize) -> (PathBuf, PathBuf) {
        (
            self.parts.join(format!("{n:06}.jsonl")),
            self.parts.join(format!("{n:06}.json")),
        )
    }

    /// The finished part `n` of an earlier, interrupted run, when it is for `url` of the
    /// same plan and complete or definitely failed.
    pub fn finished_part(&self, n: usize, url: &str, plan: &str) -> Option<(RepoStatus, Vec<u8>)> {
        let (lines, status) = self.part(n);
        let text = std::fs::read(status).ok()?;
        let part: Part = serde_json::from_slice(&text).ok()?;
        if part.plan != plan || part.status.url != url {
            return None;
        }
        let lines = std::fs::read(lines).ok()?;
        Some((part.status, lines))
    }

    /// Writes part `n`: its lines, then its status.
    pub fn write_part(
        &self,
        n: usize,
        plan: &str,
        status: &RepoStatus,
        lines: &[u8],
    ) -> Result<()> {
        std::fs::create_dir_all(&self.parts)
            .with_context(|| format!("cannot create {}", self.parts.display()))?;
        let (l, s) = self.part(n);
        write_atomic(&l, lines)?;
        let part = Part {
            plan: plan.to_string(),
            status: status.clone(),
        };
        write_atomic(&s, &serde_json::to_vec(&part)?)
    }

    /// The marker of an earlier run, when it finished this shard of this plan.
    pub fn finished(&self, plan: &str, index: usize) -> Option<Marker> {
        let m: Marker = serde_json::from_slice(&std::fs::read(&self.marker).ok()?).ok()?;
        (m.plan == plan && m.shard == index && self.output.is_file()).then_some(m)
    }

    /// Writes the output (`lines` gzipped), then the marker; then removes the parts.
    pub fn finish(&self, lines: &[u8], marker: &Marker) -> Result<()> {
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(Vec::new(), flate2::Compression::default());
        gz.write_all(lines)?;
        write_atomic(&self.output, &gz.finish()?)?;
        let mut json = serde_json::to_vec_pretty(marker)?;
        json.push(b'\n');
        write_atomic(&self.marker, &json)?;
        let _ = std::fs::remove_dir_all(&self.parts);
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct Part {
    plan: String,
    status: RepoStatus,
}

/// Writes `bytes` to `path` through a temporary file in the same directory, flushed to disk,
/// then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("cannot write {}", path.display()))
}

/// Reads a shard's output back: its lines, gunzipped, at most `limit` bytes.
pub fn read_output(path: &Path, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(file)
        .take(limit + 1)
        .read_to_end(&mut out)
        .with_context(|| format!("{}: not a gzip file", path.display()))?;
    if out.len() as u64 > limit {
        anyhow::bail!("{}: more than {limit} bytes of findings", path.display());
    }
    Ok(out)
}
