//! The one pipeline: every [`Source`] pushes blobs with their provenance into it, and it owns
//! the rest — sniffing (binary content no decoder claims is skipped), dedup by blob id,
//! decoding under limits, typed warnings and the finding set.
//!
//! Contract: a blob's content is decoded and scanned once per run, whatever the number of
//! places it was seen (files with the same bytes, or one blob in many commits); every place is
//! a location of its findings. Content without an id (files) is hashed only when its length
//! was seen before, so the first file of each length is scanned unhashed and a copy of it
//! once more: content is scanned at most twice, and a tree whose files are nearly all unique
//! (most bytes are in files of a length of their own) is not hashed byte by byte. Work other than the file walk runs on the pipeline's rayon
//! pool ([`Sink::install`]); each thread owns a [`Worker`] (regex caches) through its lane.
//! Nothing here prints: warnings go to [`Diagnostics`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::content::{self, Limits};
use crate::findings::{place_name, Finding, FindingSet, NameKind, Placed};
use crate::scan::{Scanner, Worker};
use crate::source::{
    looks_binary, Blob, BlobId, Diagnostics, Found, Lane, Provenance, Sink, Source, SourceError,
    Warning, WarningKind,
};
use crate::state::{Lookup, Store, StoredMatch};

/// Larger inputs are not hashed for dedup (model weights: decoders read only their headers).
const DEDUP_MAX_BYTES: usize = 64 << 20;

/// How the pipeline runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Decoding limits; `max_member_bytes` is also the largest blob read.
    pub limits: Limits,
    /// Threads for parallel work (and the file walk).
    pub threads: usize,
    /// Paths to leave out (globs as `--exclude` takes them).
    pub exclude: Vec<String>,
}

/// Paths left out of a scan. A glob without `/` matches a name at any depth (as in
/// `.gitignore`); one with `/` matches from the root; both also exclude what is below a match.
#[derive(Debug, Default)]
pub struct Exclude {
    set: Option<GlobSet>,
}

impl Exclude {
    /// Compiles the globs; a bad one is an error naming it.
    pub fn new(globs: &[String]) -> Result<Exclude, globset::Error> {
        if globs.is_empty() {
            return Ok(Exclude::default());
        }
        let mut b = GlobSetBuilder::new();
        for g in globs {
            let g = g.trim_start_matches("./").trim_end_matches('/');
            let base = if g.contains('/') {
                g.trim_start_matches('/').to_string()
            } else {
                format!("**/{g}")
            };
            for pattern in [base.clone(), format!("{base}/**")] {
                b.add(GlobBuilder::new(&pattern).literal_separator(true).build()?);
            }
        }
        Ok(Exclude {
            set: Some(b.build()?),
        })
    }

    /// Whether `path` (as reports show it, `/`-separated) is excluded.
    pub fn matches(&self, path: &str) -> bool {
        self.set.as_ref().is_some_and(|s| s.is_match(path))
    }
}

/// The pipeline of one run.
pub struct Pipeline<'s> {
    scanner: &'s Scanner,
    limits: Limits,
    threads: usize,
    exclude: Exclude,
    /// Built on first use: pre-commit runs (staged changes, files) never need it.
    pool: OnceLock<Option<rayon::ThreadPool>>,
    diag: &'s Diagnostics,
    /// Results of content already scanned, by blob id (`None`: nothing found).
    seen: Mutex<HashMap<BlobId, Option<Arc<Vec<Placed>>>>>,
    /// Lengths of the content without an id scanned so far.
    lengths: Mutex<HashSet<usize>>,
    findings: Mutex<FindingSet>,
    state: Option<State<'s>>,
}

/// The state store as the pipeline uses it: asked before a blob is scanned, told after.
pub struct StateHook<'s> {
    /// The store.
    pub store: &'s Store,
    /// A scanner for each of the store's deltas ([`Store::deltas`]), in order.
    pub deltas: &'s [Scanner],
    /// Whether the configuration drops a secret by its content (rule id, secret): such
    /// matches are not stored.
    pub drops: &'s (dyn Fn(&str, &[u8]) -> bool + Sync),
}

struct State<'s> {
    hook: StateHook<'s>,
    /// Rule id → index in the scanner.
    index: HashMap<String, usize>,
    /// For each delta scanner, its rule indices in the scanner.
    delta_rules: Vec<Vec<usize>>,
}

impl<'s> Pipeline<'s> {
    /// A pipeline scanning with `scanner`, reporting to `diag`.
    pub fn new(
        scanner: &'s Scanner,
        options: Options,
        diag: &'s Diagnostics,
    ) -> Result<Pipeline<'s>, PipelineError> {
        let threads = options.threads.max(1);
        let exclude =
            Exclude::new(&options.exclude).map_err(|e| PipelineError::Exclude(e.to_string()))?;
        Ok(Pipeline {
            scanner,
            limits: options.limits,
            threads,
            exclude,
            pool: OnceLock::new(),
            diag,
            seen: Mutex::new(HashMap::new()),
            lengths: Mutex::new(HashSet::new()),
            findings: Mutex::new(FindingSet::default()),
            state: None,
        })
    }

    /// Asks `hook`'s store before scanning each blob with an id, and records the results.
    pub fn with_state(mut self, hook: StateHook<'s>) -> Pipeline<'s> {
        let index: HashMap<String, usize> = self
            .scanner
            .rules()
            .rules()
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id().to_string(), i))
            .collect();
        let delta_rules = hook
            .deltas
            .iter()
            .map(|d| {
                d.rules()
                    .rules()
                    .iter()
                    .map(|r| index.get(r.id()).copied().unwrap_or(usize::MAX))
                    .collect()
            })
            .collect();
        self.state = Some(State {
            hook,
            index,
            delta_rules,
        });
        self
    }

    /// Feeds one source through the pipeline.
    pub fn run(&self, source: &mut dyn Source) -> Result<(), SourceError> {
        source.feed(self)
    }

    /// The findings so far, in report order. Rules whose regex failed to build when first
    /// needed are reported as warnings here.
    pub fn finish(self) -> Vec<Finding> {
        for rule in self.scanner.rules().rules() {
            if let Some(e) = rule.compile_error() {
                self.diag.warn(Warning::new(
                    WarningKind::Rule,
                    "",
                    format!(
                        "rule `{}` ({}): regex does not compile: {e}",
                        rule.id(),
                        rule.origin
                    ),
                ));
            }
        }
        self.findings
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .into_sorted()
    }

    /// Decodes and scans a blob once; the placed findings of every blob with the same id
    /// (when `dedup`: a source that scans each id once says so by passing `false`).
    fn placed(
        &self,
        workers: &mut Workers<'s>,
        blob: Blob<'_>,
        what: &str,
        dedup: bool,
    ) -> Option<Arc<Vec<Placed>>> {
        let data = blob.data;
        if content::is_lfs_pointer(data) {
            self.diag.lfs_pointer();
            return None;
        }
        if looks_binary(data) && !content::claims(data) {
            self.diag.skipped_binary();
            return None;
        }
        let key = content::path_key(what);
        let id = (dedup && key.is_none())
            .then(|| blob.id.or_else(|| self.content_id(data)))
            .flatten();
        let seen = || self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(id) = id {
            if let Some(cached) = seen().get(&id) {
                return cached.clone();
            }
        }
        // The store knows blobs by id whether or not the source deduplicates them itself
        // (history does); never content read under its path's name.
        let known_as = if key.is_none() { id.or(blob.id) } else { None };
        let placed = match (&self.state, known_as) {
            (Some(state), Some(id)) => self.placed_with_state(state, workers, &id, data, what, key),
            _ => self.scan(&mut workers.main, data, what, key),
        };
        let placed = (!placed.is_empty()).then(|| Arc::new(placed));
        if let Some(id) = id {
            seen().insert(id, placed.clone());
        }
        placed
    }

    /// The id that deduplicates `data`, which came without one: its git blob id when content
    /// of its length was seen before, else none (see the module's contract).
    fn content_id(&self, data: &[u8]) -> Option<BlobId> {
        if data.len() > DEDUP_MAX_BYTES {
            return None;
        }
        let first = self
            .lengths
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(data.len());
        (!first).then(|| BlobId::of(data))
    }

    /// Scans `data` with `worker`'s rules, reporting the decoders' warnings.
    fn scan(
        &self,
        worker: &mut Worker<'_>,
        data: &[u8],
        what: &str,
        key: Option<&str>,
    ) -> Vec<Placed> {
        self.diag.scanned(data.len());
        let decoded = content::scan_content_keyed(worker, data, &self.limits, key);
        for w in decoded.warnings {
            self.diag.warn(Warning {
                kind: w.kind,
                path: what.to_string(),
                member: w.member,
                message: w.message,
            });
        }
        decoded.placed
    }

    /// What the store knows of blob `id`, completed by scanning it with the rules it was not
    /// scanned with (all of them for an unknown blob); the results are stored.
    fn placed_with_state(
        &self,
        state: &State<'s>,
        workers: &mut Workers<'s>,
        id: &BlobId,
        data: &[u8],
        what: &str,
        key: Option<&str>,
    ) -> Vec<Placed> {
        let store = state.hook.store;
        let from_store = |kept: &[StoredMatch]| -> Vec<Placed> {
            kept.iter()
                .filter_map(|m| state.index.get(&m.rule).map(|&i| m.placed(i)))
                .collect()
        };
        let (kept, fresh) = match store.lookup(id) {
            Lookup::Complete(kept) => {
                self.diag.known.fetch_add(1, Ordering::Relaxed);
                return from_store(&kept);
            }
            Lookup::Partial { kept, delta } => {
                let scanner = &state.hook.deltas[delta];
                let worker = workers.deltas[delta].get_or_insert_with(|| scanner.worker());
                let map = &state.delta_rules[delta];
                let fresh: Vec<Placed> = self
                    .scan(worker, data, what, key)
                    .into_iter()
                    .filter_map(|mut p| {
                        p.rule = *map.get(p.rule).filter(|&&i| i != usize::MAX)?;
                        Some(p)
                    })
                    .collect();
                self.diag.rescanned.fetch_add(1, Ordering::Relaxed);
                if fresh.iter().any(|p| kept.iter().any(|k| k.overlaps(p))) {
                    // Rules that found the same bytes: which one reports them is decided by
                    // a scan with all of them.
                    (Vec::new(), self.scan(&mut workers.main, data, what, key))
                } else {
                    (kept, fresh)
                }
            }
            Lookup::Unknown => (Vec::new(), self.scan(&mut workers.main, data, what, key)),
        };
        let mut placed = from_store(&kept);
        // Digests as the store's generation has them, computed once per run.
        let digests = &store.generation().rules;
        let mut to_store = kept;
        to_store.extend(
            fresh
                .iter()
                .filter(|p| {
                    let rule = self.scanner.rule(p.rule);
                    rule.is_synthetic() || !(state.hook.drops)(rule.id(), &p.secret)
                })
                .filter_map(|p| {
                    let rule = self.scanner.rule(p.rule);
                    let digest = digests.get(rule.id())?;
                    Some(StoredMatch::of(rule, digest, p))
                }),
        );
        if let Err(e) = store.record(id, &to_store) {
            self.diag.warn(Warning::new(
                WarningKind::State,
                what,
                format!("the state store could not record a blob: {e}"),
            ));
        }
        placed.extend(fresh);
        placed
    }

    fn record(&self, provenance: &[Provenance], placed: &[Placed]) {
        let mut set = self.findings.lock().unwrap_or_else(PoisonError::into_inner);
        for p in provenance {
            set.add(self.scanner, p, placed);
        }
    }
}

/// Why a pipeline could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// An `--exclude` glob does not parse.
    #[error("bad --exclude glob: {0}")]
    Exclude(String),
}

/// One thread's way into the pipeline.
struct PipelineLane<'p, 's> {
    pipeline: &'p Pipeline<'s>,
    workers: Workers<'s>,
}

/// A lane's workers: the scanner's, and one per delta of the state store, made on first use.
struct Workers<'s> {
    main: Worker<'s>,
    deltas: Vec<Option<Worker<'s>>>,
}

impl Lane for PipelineLane<'_, '_> {
    fn blob(&mut self, blob: Blob<'_>, what: &str, provenance: &dyn Fn() -> Vec<Provenance>) {
        if let Some(placed) = self.pipeline.placed(&mut self.workers, blob, what, true) {
            self.pipeline.record(&provenance(), &placed);
        }
    }

    fn scan(&mut self, blob: Blob<'_>, what: &str) -> Option<Found> {
        self.pipeline
            .placed(&mut self.workers, blob, what, false)
            .map(Found)
    }

    fn blob_lines(
        &mut self,
        blob: Blob<'_>,
        what: &str,
        provenance: &dyn Fn() -> Vec<Provenance>,
        keep_line: &dyn Fn(&[u8]) -> bool,
    ) {
        let Some(placed) = self.pipeline.placed(&mut self.workers, blob, what, true) else {
            return;
        };
        let kept: Vec<Placed> = placed
            .iter()
            .filter(|p| {
                p.member.is_some()
                    || p.position.is_none()
                    || keep_line(line_at(blob.data, p.offset))
            })
            .cloned()
            .collect();
        if !kept.is_empty() {
            self.pipeline.record(&provenance(), &kept);
        }
    }

    fn name(&mut self, provenance: Provenance) {
        let name = provenance.path_bytes();
        let matches = self.workers.main.scan(name);
        if matches.is_empty() {
            return;
        }
        let work = &mut self.workers.main.work_mut().place;
        let placed = place_name(name, &matches, NameKind::Path, work);
        if !placed.is_empty() {
            self.pipeline.record(&[provenance], &placed);
        }
    }
}

/// The line of `data` holding byte `offset`, without its line break.
fn line_at(data: &[u8], offset: usize) -> &[u8] {
    let offset = offset.min(data.len());
    let start = memchr::memrchr(b'\n', &data[..offset]).map_or(0, |i| i + 1);
    let end = memchr::memchr(b'\n', &data[offset..]).map_or(data.len(), |i| offset + i);
    &data[start..end]
}

impl Sink for Pipeline<'_> {
    fn lane(&self) -> Box<dyn Lane + '_> {
        Box::new(PipelineLane {
            pipeline: self,
            workers: Workers {
                main: self.scanner.worker(),
                deltas: (0..self.state.as_ref().map_or(0, |s| s.hook.deltas.len()))
                    .map(|_| None)
                    .collect(),
            },
        })
    }

    fn diagnostics(&self) -> &Diagnostics {
        self.diag
    }

    fn attribute(&self, found: &Found, provenance: &[Provenance]) {
        self.record(provenance, &found.0);
    }

    fn excluded(&self, path: &str) -> bool {
        self.exclude.matches(path)
    }

    fn max_blob_size(&self) -> u64 {
        self.limits.max_member_bytes
    }

    fn reads_large(&self, head: &[u8]) -> bool {
        content::decodes_large(head)
    }

    fn threads(&self) -> usize {
        self.threads
    }

    fn install(&self, job: &mut (dyn FnMut() + Send)) {
        let pool = self.pool.get_or_init(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(self.threads)
                .thread_name(|i| format!("trawl-{i}"))
                .build()
                .ok()
        });
        match pool {
            Some(pool) => pool.install(job),
            // No threads could be started: the job runs on this one (its own parallel
            // iterators then use rayon's global pool, or run inline).
            None => job(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclude_globs() {
        let e =
            Exclude::new(&["*.min.js".into(), "tests/fixtures".into(), "vendor/".into()]).unwrap();
        assert!(e.matches("a/b/app.min.js"));
        assert!(e.matches("app.min.js"));
        assert!(e.matches("tests/fixtures/x.py"));
        assert!(!e.matches("src/tests/fixtures/x.py"));
        assert!(e.matches("vendor/x/y.rs"));
        assert!(e.matches("a/vendor/y.rs"));
        assert!(!e.matches("src/app.js"));
    }

    /// A source of fixed blobs, each seen at the given paths.
    struct Fixed(Vec<(&'static str, Vec<u8>)>);

    impl Source for Fixed {
        fn feed(&mut self, sink: &dyn Sink) -> Result<(), SourceError> {
            let mut lane = sink.lane();
            for (path, data) in &self.0 {
                lane.blob(Blob { data, id: None }, path, &|| {
                    vec![Provenance::File {
                        path: (*path).into(),
                    }]
                });
            }
            Ok(())
        }
    }

    fn run(blobs: Vec<(&'static str, Vec<u8>)>) -> (Vec<Finding>, u64, usize) {
        let scanner = Scanner::new(crate::rules::RuleSet::builtin().unwrap()).unwrap();
        let diag = Diagnostics::default();
        let options = Options {
            limits: Limits::default(),
            threads: 1,
            exclude: Vec::new(),
        };
        let pipeline = Pipeline::new(&scanner, options, &diag).unwrap();
        pipeline.run(&mut Fixed(blobs)).unwrap();
        let findings = pipeline.finish();
        let scanned = diag.blobs.load(std::sync::atomic::Ordering::Relaxed);
        (findings, scanned, diag.warnings())
    }

    #[test]
    fn identical_content_is_scanned_at_most_twice_and_found_at_every_place() {
        let token = ["hf_", "qSJhvEUUXWVjoguVwaSlIgiRMISfqglXvQ"].concat();
        let text = format!("HF_TOKEN={token}\n").into_bytes();
        let (findings, scanned, warnings) = run(vec![
            ("a.env", text.clone()),
            ("b.env", text.clone()),
            ("c.txt", b"clean\n".to_vec()),
            ("d.env", text),
        ]);
        // a.env, the first of its length, is not hashed; b.env is, and d.env is known by it.
        assert_eq!(scanned, 3, "d.env shares b.env's scan");
        assert_eq!(warnings, 0);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].rule.id, "huggingface.user-token");
        let paths: Vec<&str> = findings[0]
            .locations
            .iter()
            .map(|l| l.provenance.path())
            .collect();
        assert_eq!(paths, ["a.env", "b.env", "d.env"]);
    }

    #[test]
    fn binary_content_no_decoder_claims_is_skipped() {
        let token = ["hf_", "qSJhvEUUXWVjoguVwaSlIgiRMISfqglXvQ"].concat();
        let mut data = vec![0u8, 1, 2];
        data.extend_from_slice(format!("HF_TOKEN={token}\n").as_bytes());
        let (findings, scanned, _) = run(vec![("blob.bin", data)]);
        assert!(findings.is_empty());
        assert_eq!(scanned, 0);
    }

    #[test]
    fn lines_of_offsets() {
        assert_eq!(line_at(b"ab\ncd\nef", 4), b"cd");
        assert_eq!(line_at(b"ab", 0), b"ab");
        assert_eq!(line_at(b"ab\n", 3), b"");
    }
}
