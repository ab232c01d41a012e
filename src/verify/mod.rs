//! Verification (issue 14): whether a found secret is a live credential, whose it is and what
//! it can do — asked of the provider that issued it, only when the user asks (`--verify`).
//!
//! Contract: a [`Verification`] is attached to a finding after deduplication (each distinct
//! secret checked once); reports show it as a `verification` object (`status`, `owner`,
//! `scopes`, `expires`, `endpoint`). A secret is sent only to its provider's hosts, over
//! HTTPS (plain HTTP only to a loopback address given with `--verify-endpoint`), never to a
//! redirect target on another host, and only to read-only identity endpoints.

pub mod aws;
pub mod check;
pub mod companion;
pub mod sigv4;
pub mod spec;
pub mod stage;

use serde::{Deserialize, Serialize};

use crate::org::forge::http::Bounds;

/// What a verifier written in code receives.
pub struct CodeInput<'a> {
    /// The secret.
    pub secret: &'a str,
    /// A value another rule found near it (the rule's `companion`), when the lookup found one.
    pub companion: Option<&'a [u8]>,
    /// The endpoint: the rule's `url`, or the one configured for its provider.
    pub url: &'a str,
    /// Timeouts and retries.
    pub bounds: Bounds,
    /// Where waits are told.
    pub notice: &'a dyn Fn(&str),
}

/// A verifier written in code (a protocol data cannot describe, such as AWS SigV4).
pub type CodeVerifier = fn(&CodeInput<'_>) -> Verification;

/// Verifiers written in code, by the name rules give them (`code = "aws-sts"`). A rule naming
/// one that is not here is verified `unknown`, "no verifier built in".
const CODE_VERIFIERS: &[(&str, CodeVerifier)] = &[("aws-sts", aws_sts)];

/// `aws-sts`: the secret access key, with the access key id found near it, through STS
/// `GetCallerIdentity` (SigV4). Without a key id nearby, nothing is sent.
fn aws_sts(input: &CodeInput<'_>) -> Verification {
    let Some(key_id) = input.companion.and_then(|k| std::str::from_utf8(k).ok()) else {
        return Verification::unknown("no access key id found near the secret key");
    };
    let Some(origin) = crate::org::forge::http::Origin::of(input.url) else {
        return Verification::error("the verifier's URL is not usable");
    };
    let base = format!("{}://{}:{}", origin.scheme, origin.host, origin.port);
    match crate::org::forge::http::Client::with_bounds(&base, None, input.notice, input.bounds) {
        Ok(client) => aws::verify_aws(
            &client.with_timeout(input.bounds.connect + input.bounds.response),
            key_id,
            input.secret,
            None,
            input.url,
        ),
        Err(m) => Verification::error(m),
    }
}

/// The code verifier named `name`.
pub fn code_verifier(name: &str) -> Option<CodeVerifier> {
    CODE_VERIFIERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
}

/// What the provider said of a secret.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The provider accepted it: a working credential.
    Live,
    /// Revoked, expired or never valid.
    Invalid,
    /// No verifier for its rule, or an answer that says neither.
    #[default]
    Unknown,
    /// The check failed: network, timeout, rate limit, a malformed answer.
    Error,
}

impl Status {
    /// How reports name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Live => "live",
            Status::Invalid => "invalid",
            Status::Unknown => "unknown",
            Status::Error => "error",
        }
    }
}

/// The result of checking one secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Live, invalid, unknown or error.
    pub status: Status,
    /// Who the credential belongs to (user, organisation, account id), as the provider says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Scopes, permissions or role, as the provider names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// When it expires (RFC 3339), when the provider says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// The endpoint asked (without the secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Why it is unknown or an error, in trawl's words (never the provider's text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the provider was asked (RFC 3339, UTC); absent when nobody was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked: Option<String>,
    /// The answer was kept from an earlier run (`--verify-cache`, `--verify-max-age`), not
    /// asked again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
}

impl Verification {
    /// `unknown`, and why.
    pub fn unknown(message: impl Into<String>) -> Verification {
        Verification {
            status: Status::Unknown,
            message: Some(message.into()),
            ..Verification::default()
        }
    }

    /// `error`, and why.
    pub fn error(message: impl Into<String>) -> Verification {
        Verification {
            status: Status::Error,
            message: Some(message.into()),
            ..Verification::default()
        }
    }
}

/// Where verification results of earlier runs are kept (the state store implements it).
///
/// Contract: keyed by the secret fingerprint and the endpoint asked (the URL template, never
/// one that holds the secret); `get` returns only results young enough to stand, `put` keeps
/// only definite answers (live, invalid). Failures are misses, never errors.
pub trait Cache: Sync {
    /// A kept result for (`fingerprint`, `endpoint`), marked `cached`.
    fn get(&self, fingerprint: &str, endpoint: &str) -> Option<Verification>;
    /// Keeps `v`, the provider's answer for (`fingerprint`, `endpoint`).
    fn put(&self, fingerprint: &str, endpoint: &str, v: &Verification);
}
