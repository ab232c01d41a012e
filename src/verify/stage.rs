//! The verification stage: after deduplication and suppressions, every distinct secret is
//! checked once with its rule's verifier.
//!
//! Contract: [`verify`] sets `verification` on every secret finding (unsafe-code findings
//! have none): `unknown` with a reason, and nothing sent, for rules without a verifier,
//! secrets not kept (shard files), verifiers not built in, providers without a default host
//! and no endpoint configured, and verifiers needing a companion none was found for;
//! otherwise what the provider answered. At most
//! [`Options::per_provider`] requests are in flight per provider and [`Options::total`] in
//! all, on std threads. Nothing here runs unless the user asked for `--verify`.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::check::{self, Endpoint};
use super::spec::VerifySpec;
use super::{code_verifier, Cache, CodeInput, CodeVerifier, Status, Verification};
use crate::findings::{Finding, What};
use crate::org::forge::http::{Bounds, Client, Origin};

/// Most bytes read of a verification answer.
pub const MAX_ANSWER: u64 = 1 << 20;

/// How the stage runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Endpoints by provider (`--verify-endpoint`, `[verify.endpoints]` of `--config`).
    pub endpoints: HashMap<String, Endpoint>,
    /// Extra hosts by provider (`[verify.hosts]` of `--config`).
    pub extra_hosts: HashMap<String, Vec<String>>,
    /// Requests in flight per provider.
    pub per_provider: usize,
    /// Requests in flight in all.
    pub total: usize,
    /// Connect timeout.
    pub connect: Duration,
    /// Time to the answer, and again to its body.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            endpoints: HashMap::new(),
            extra_hosts: HashMap::new(),
            per_provider: 4,
            total: 16,
            connect: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        }
    }
}

impl Options {
    fn bounds(&self) -> Bounds {
        Bounds {
            connect: self.connect,
            response: self.timeout,
            body: self.timeout,
            max_wait: Duration::from_secs(60),
            rate_retries: 3,
            server_retries: 2,
            retry_timeouts: false,
        }
    }
}

fn boxed_unknown(message: &str) -> Box<Verification> {
    Box::new(unknown(message))
}

fn unknown(message: &str) -> Verification {
    Verification::unknown(message)
}

/// One request to make.
struct Job {
    finding: usize,
    spec: Arc<VerifySpec>,
    url: String,
    secret: String,
    /// Set for a verifier written in code.
    code: Option<CodeVerifier>,
    /// The value another rule found near the secret (the rule's `companion`).
    companion: Option<Vec<u8>>,
    /// Whether the endpoint is one the user named, not the rule's own URL.
    configured: bool,
}

/// What becomes of one finding.
enum Plan {
    /// Not a secret: no verification.
    Skip,
    /// Known without asking anyone.
    Done(Box<Verification>),
    /// A request (or a code verifier) to run.
    Ask(Job),
    /// A secret known only by its fingerprint (shard files, the state store): only a kept
    /// result for this endpoint can tell.
    NotKept {
        /// The endpoint it would be asked at.
        url: String,
    },
}

/// What a finding's verification is without asking anyone, or the job that asks.
fn plan(i: usize, f: &Finding, opts: &Options) -> Plan {
    match plan_inner(i, f, opts) {
        Ok(Some(plan)) => plan,
        Ok(None) => Plan::Skip,
        Err(v) => Plan::Done(v),
    }
}

fn plan_inner(i: usize, f: &Finding, opts: &Options) -> Result<Option<Plan>, Box<Verification>> {
    let secret = match &f.what {
        What::UnsafeCode(_) => return Ok(None),
        What::Redacted(_) => None,
        What::Secret(s) => Some(s),
    };
    let Some(spec) = &f.rule.verify else {
        return Err(boxed_unknown("no verifier for this rule"));
    };
    let code = match &spec.code {
        Some(name) => match code_verifier(name) {
            Some(c) => Some(c),
            None => return Err(boxed_unknown(&format!("no verifier built in ({name})"))),
        },
        None => None,
    };
    let extra = opts
        .extra_hosts
        .get(&spec.provider)
        .map_or(&[][..], Vec::as_slice);
    let endpoint = opts.endpoints.get(&spec.provider);
    if spec.needs_endpoint() && endpoint.is_none() {
        return Err(boxed_unknown(&check::no_host(spec)));
    }
    let url = check::target(spec, endpoint, extra).map_err(|m| Box::new(Verification::error(m)))?;
    let Some(secret) = secret else {
        return Ok(Some(Plan::NotKept { url }));
    };
    let Ok(secret) = String::from_utf8(secret.clone()) else {
        return Err(boxed_unknown("the secret is not text a request can carry"));
    };
    Ok(Some(Plan::Ask(Job {
        finding: i,
        spec: spec.clone(),
        url,
        secret,
        code,
        companion: None,
        configured: endpoint.is_some(),
    })))
}

/// `v` as the stage reports it: a refusal at a regional provider's own URL says nothing of a
/// key of another region ([`VerifySpec::regional`]).
fn regional(mut v: Verification, spec: &VerifySpec, configured: bool) -> Verification {
    if spec.regional && !configured && v.status == Status::Invalid {
        v.status = Status::Unknown;
        v.message = Some(format!(
            "refused at {}'s default host; a key of another region or instance is checked with --verify-endpoint {}=URL",
            spec.provider, spec.provider
        ));
    }
    v
}

/// The answer `cache` keeps for finding `f` at `url`, if any.
fn kept(cache: Option<&dyn Cache>, f: &Finding, url: &str) -> Option<Verification> {
    let cache = cache?;
    (!f.fingerprint.is_empty())
        .then(|| cache.get(&f.fingerprint, url))
        .flatten()
}

#[derive(Default)]
struct Queue {
    pending: HashMap<String, VecDeque<usize>>,
    in_flight: HashMap<String, usize>,
    left: usize,
}

impl Queue {
    /// The next job whose provider has room, if any.
    fn take(&mut self, per_provider: usize) -> Option<usize> {
        let provider = self
            .pending
            .iter()
            .find(|(p, q)| {
                !q.is_empty() && self.in_flight.get(*p).copied().unwrap_or(0) < per_provider
            })
            .map(|(p, _)| p.clone())?;
        let job = self.pending.get_mut(&provider)?.pop_front()?;
        *self.in_flight.entry(provider).or_default() += 1;
        self.left -= 1;
        Some(job)
    }
}

/// Verifies every secret of `findings`; `notice` receives waits on rate limits (trawl's
/// words, no secret, no URL).
pub fn verify(findings: &mut [Finding], opts: &Options, notice: &(dyn Fn(&str) + Sync)) {
    verify_cached(findings, opts, None, notice);
}

/// [`verify`], reusing the answers `cache` keeps and keeping the new ones. A secret known only
/// by its fingerprint is verified from the cache alone.
pub fn verify_cached(
    findings: &mut [Finding],
    opts: &Options,
    cache: Option<&dyn Cache>,
    notice: &(dyn Fn(&str) + Sync),
) {
    let mut jobs = Vec::new();
    // One check per secret fingerprint, whatever the findings list holds.
    let mut first: HashMap<String, usize> = HashMap::new();
    let mut copies: Vec<(usize, usize)> = Vec::new();
    // Companion values (an AWS key id near a secret key), once per (rule, companion rule).
    let mut near: HashMap<(String, String), HashMap<String, Vec<u8>>> = HashMap::new();
    for f in findings.iter() {
        if let Some(c) = f.rule.verify.as_ref().and_then(|v| v.companion.clone()) {
            let key = (f.rule.id.clone(), c);
            if let Entry::Vacant(e) = near.entry(key) {
                let (rule, companion) = e.key();
                let found = super::companion::companions(findings, rule, companion);
                e.insert(found);
            }
        }
    }
    for (i, f) in findings.iter_mut().enumerate() {
        if let Some(&j) = first.get(&f.fingerprint) {
            copies.push((i, j));
            continue;
        }
        first.insert(f.fingerprint.clone(), i);
        match plan(i, f, opts) {
            Plan::NotKept { url } => {
                f.verification = Some(kept(cache, f, &url).unwrap_or_else(|| {
                    unknown("secret not kept (shard files and the state store hold it redacted): verify where it is found")
                }));
            }
            Plan::Ask(mut job) => match kept(cache, f, &job.url) {
                Some(v) => f.verification = Some(v),
                None => {
                    job.companion = job.spec.companion.as_ref().and_then(|c| {
                        near.get(&(f.rule.id.clone(), c.clone()))
                            .and_then(|m| m.get(&f.fingerprint))
                            .cloned()
                    });
                    // A request that needs the companion is not sent without it.
                    if job.spec.sends_companion() && job.companion.is_none() {
                        let rule = job.spec.companion.as_deref().unwrap_or_default();
                        f.verification = Some(Verification {
                            endpoint: Some(check::shown(&job.url)),
                            ..unknown(&format!("no {rule} found near the secret: nothing sent"))
                        });
                    } else {
                        jobs.push(job);
                    }
                }
            },
            Plan::Skip => {}
            Plan::Done(v) => f.verification = Some(*v),
        }
    }
    let results = run(&jobs, opts, notice);
    let checked = crate::dates::format_date(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    );
    for (job, v) in jobs.iter().zip(results) {
        let mut v = regional(v, &job.spec, job.configured);
        v.checked = Some(checked.clone());
        let f = &mut findings[job.finding];
        if let Some(cache) = cache.filter(|_| !f.fingerprint.is_empty()) {
            cache.put(&f.fingerprint, &job.url, &v);
        }
        f.verification = Some(v);
    }
    for (i, j) in copies {
        findings[i].verification = findings[j].verification.clone();
    }
}

fn run(jobs: &[Job], opts: &Options, notice: &(dyn Fn(&str) + Sync)) -> Vec<Verification> {
    let mut queue = Queue {
        left: jobs.len(),
        ..Queue::default()
    };
    for (i, j) in jobs.iter().enumerate() {
        queue
            .pending
            .entry(j.spec.provider.clone())
            .or_default()
            .push_back(i);
    }
    let state = Mutex::new(queue);
    let wake = Condvar::new();
    let results: Vec<Mutex<Option<Verification>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    let per_provider = opts.per_provider.max(1);
    let workers = opts.total.max(1).min(jobs.len());
    let bounds = opts.bounds();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let note = |m: &str| notice(m);
                let mut clients: HashMap<String, Client<'_>> = HashMap::new();
                loop {
                    let next = {
                        let mut q = state.lock().unwrap_or_else(|e| e.into_inner());
                        loop {
                            if let Some(j) = q.take(per_provider) {
                                break Some(j);
                            }
                            if q.left == 0 {
                                break None;
                            }
                            q = wake.wait(q).unwrap_or_else(|e| e.into_inner());
                        }
                    };
                    let Some(i) = next else { break };
                    let job = &jobs[i];
                    let v = one(job, &mut clients, &note, bounds);
                    *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
                    let mut q = state.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(n) = q.in_flight.get_mut(&job.spec.provider) {
                        *n -= 1;
                    }
                    wake.notify_all();
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| unknown("not checked"))
        })
        .collect()
}

fn one<'n>(
    job: &Job,
    clients: &mut HashMap<String, Client<'n>>,
    notice: &'n dyn Fn(&str),
    bounds: Bounds,
) -> Verification {
    if let Some(code) = job.code {
        return code(&CodeInput {
            secret: &job.secret,
            companion: job.companion.as_deref(),
            url: &job.url,
            bounds,
            notice,
        });
    }
    let Some(origin) = Origin::of(&job.url) else {
        return Verification::error("the verifier's URL is not usable");
    };
    let base = format!("{}://{}:{}", origin.scheme, origin.host, origin.port);
    let client = match clients.entry(base) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => match Client::with_bounds(e.key(), None, notice, bounds) {
            Ok(c) => e.insert(c.with_max_body(MAX_ANSWER)),
            Err(m) => {
                return Verification {
                    endpoint: Some(check::shown(&job.url)),
                    ..Verification::error(m)
                }
            }
        },
    };
    check::run(
        client,
        &job.spec,
        &job.url,
        &job.secret,
        job.companion
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Category, RuleInfo, Severity};

    fn finding(what: What, fp: &str, verify: Option<VerifySpec>) -> Finding {
        Finding {
            rule: Arc::new(RuleInfo {
                id: "x.token".into(),
                name: "x".into(),
                category: Category::Generic,
                severity: Severity::High,
                references: Vec::new(),
                revoke: None,
                verify: verify.map(Arc::new),
            }),
            what,
            fingerprint: fp.into(),
            locations: Vec::new(),
            verification: None,
        }
    }

    #[test]
    fn a_refusal_at_a_regional_providers_own_host_is_unknown() {
        let spec: VerifySpec = toml::from_str(
            "provider = \"honeycomb\"\nhosts = [\"api.honeycomb.io\"]\nurl = \"https://api.honeycomb.io/1/auth\"\nsend = \"bearer\"\nregional = true",
        )
        .unwrap();
        let refused = || Verification {
            status: Status::Invalid,
            ..Verification::default()
        };
        let v = regional(refused(), &spec, false);
        assert_eq!(v.status, Status::Unknown);
        assert!(v
            .message
            .unwrap()
            .contains("--verify-endpoint honeycomb=URL"));
        // From an endpoint the user named, or for a provider of one region, it stands.
        assert_eq!(regional(refused(), &spec, true).status, Status::Invalid);
        let one = VerifySpec {
            regional: false,
            ..spec.clone()
        };
        assert_eq!(regional(refused(), &one, false).status, Status::Invalid);
        let live = Verification {
            status: Status::Live,
            ..Verification::default()
        };
        assert_eq!(regional(live, &spec, false).status, Status::Live);
    }

    #[test]
    fn findings_without_a_secret_or_a_verifier_are_unknown_without_a_request() {
        let aws: VerifySpec = toml::from_str(
            "provider = \"aws\"\nhosts = [\"sts.amazonaws.com\"]\nurl = \"https://sts.amazonaws.com/\"\ncode = \"aws-sts\"",
        )
        .unwrap();
        let mut other = aws.clone();
        other.code = Some("no-such-code".into());
        let mut f = vec![
            finding(What::Redacted("hf_ab*****".into()), "a", Some(aws.clone())),
            finding(What::Secret(b"s1".to_vec()), "b", None),
            finding(What::UnsafeCode("os.system".into()), "c", None),
            finding(What::Secret(b"s2".to_vec()), "d", Some(aws)),
            finding(What::Secret(b"s3".to_vec()), "e", Some(other)),
        ];
        verify(&mut f, &Options::default(), &|_| {});
        let msg = |i: usize| f[i].verification.as_ref().and_then(|v| v.message.clone());
        assert!(msg(0).unwrap().contains("secret not kept"));
        assert_eq!(msg(1).as_deref(), Some("no verifier for this rule"));
        assert!(f[2].verification.is_none());
        // AWS needs the key id found near the secret key: none here, nothing sent.
        assert_eq!(
            msg(3).as_deref(),
            Some("no access key id found near the secret key")
        );
        assert_eq!(
            msg(4).as_deref(),
            Some("no verifier built in (no-such-code)")
        );
        assert!(f
            .iter()
            .flat_map(|f| &f.verification)
            .all(|v| v.status == Status::Unknown));
    }

    #[test]
    fn no_host_or_no_companion_means_unknown_without_a_request() {
        let workspace: VerifySpec = toml::from_str(
            "provider = \"databricks\"\nurl = \"/api/2.0/preview/scim/v2/Me\"\nsend = \"bearer\"",
        )
        .unwrap();
        let paired: VerifySpec = toml::from_str(
            "provider = \"twilio\"\nhosts = [\"api.twilio.com\"]\ncompanion = \"twilio.account-sid\"\nurl = \"https://api.twilio.com/2010-04-01/Accounts/{companion}.json\"\nsend = \"basic\"\nuser = \"{companion}\"\npassword = \"{secret}\"",
        )
        .unwrap();
        workspace.check().unwrap();
        paired.check().unwrap();
        let mut f = vec![
            finding(What::Secret(b"dapi0".to_vec()), "a", Some(workspace)),
            finding(What::Secret(b"0f0f".to_vec()), "b", Some(paired)),
        ];
        verify(&mut f, &Options::default(), &|_| {});
        let v = |i: usize| f[i].verification.clone().unwrap();
        assert_eq!(v(0).status, Status::Unknown);
        assert!(v(0)
            .message
            .unwrap()
            .contains("databricks has no default host"));
        assert_eq!(v(1).status, Status::Unknown);
        assert_eq!(
            v(1).message.as_deref(),
            Some("no twilio.account-sid found near the secret: nothing sent")
        );
        assert_eq!(
            v(1).endpoint.as_deref(),
            Some("https://api.twilio.com/2010-04-01/Accounts/….json")
        );
    }

    #[test]
    fn the_queue_keeps_each_provider_under_its_limit() {
        let mut q = Queue {
            left: 5,
            ..Queue::default()
        };
        q.pending.insert("a".into(), (0..4).collect());
        q.pending.insert("b".into(), VecDeque::from([4]));
        let mut taken = Vec::new();
        while let Some(j) = q.take(2) {
            taken.push(j);
        }
        taken.sort();
        assert_eq!(taken, [0, 1, 4], "two of a, one of b, then a is full");
        assert_eq!(q.in_flight["a"], 2);
        *q.in_flight.get_mut("a").unwrap() -= 1;
        assert_eq!(q.take(2), Some(2));
        assert_eq!(q.left, 1);
    }
}
