//! `--report-leaked`: GitHub's credential-revocation API (`POST /credentials/revoke`), which
//! revokes the GitHub tokens it is sent and tells their owners.
//!
//! Contract: only secrets of the GitHub token rules the API accepts (classic and fine-grained
//! personal access tokens, OAuth app tokens, GitHub App user-to-server and refresh tokens),
//! each with its token prefix, go out; only to the API base given (https, or plain http on a
//! loopback address, as [`Client`] enforces); unauthenticated, as the API requires; at most
//! [`BATCH`] a request, as the API allows. Nothing is sent unless the user asks.

use crate::org::forge::http::{Client, HttpError};

/// Tokens per request (the API's limit).
pub const BATCH: usize = 1000;

/// The default API base.
pub const GITHUB_API: &str = "https://api.github.com";

/// Rule ids whose secrets the API revokes, with the prefix each secret must have.
const REVOCABLE: [(&str, &str); 5] = [
    ("github.personal-access-token", "ghp_"),
    ("github.fine-grained-pat", "github_pat_"),
    ("github.oauth-token", "gho_"),
    ("github.user-to-server-token", "ghu_"),
    ("github.refresh-token", "ghr_"),
];

/// Whether the API revokes the secret of rule `rule`.
pub fn revocable(rule: &str, secret: &[u8]) -> bool {
    REVOCABLE
        .iter()
        .any(|(id, prefix)| *id == rule && secret.starts_with(prefix.as_bytes()))
}

/// Checks the API base (https, or plain http on a loopback address) before anything is
/// scanned or sent.
pub fn check_api(api: &str) -> Result<(), String> {
    let quiet = |_: &str| {};
    Client::new(api, None, &quiet)
        .map(drop)
        .map_err(|e| format!("--github-api: {e}"))
}

/// Sends `tokens` (each revocable, distinct) to `{api}/credentials/revoke` in batches;
/// returns how many the API accepted (HTTP 202). A bad `api` is an error even with no
/// tokens to send. `notice` hears about rate-limit waits.
pub fn report_leaked(api: &str, tokens: &[String], notice: &dyn Fn(&str)) -> Result<usize, String> {
    let client = Client::new(api, None, notice).map_err(|e| format!("--github-api: {e}"))?;
    let url = format!("{}/credentials/revoke", client.base());
    let mut sent = 0;
    for batch in tokens.chunks(BATCH) {
        let body = serde_json::to_vec(&serde_json::json!({ "credentials": batch }))
            .map_err(|e| format!("GitHub credential revocation: {e}"))?;
        match client.post_json(&url, &body, "GitHub credential revocation") {
            Ok(_) => sent += batch.len(),
            Err(HttpError::Status(422)) => {
                return Err(format!(
                    "GitHub credential revocation: HTTP 422 (the list was refused, or the \
                     endpoint's abuse limit was reached); {sent} of {} tokens reported",
                    tokens.len()
                ))
            }
            Err(e) => {
                return Err(format!(
                    "GitHub credential revocation: {e}; {sent} of {} tokens reported",
                    tokens.len()
                ))
            }
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_api_token_types_are_revocable() {
        assert!(revocable("github.personal-access-token", b"ghp_abc"));
        assert!(revocable("github.fine-grained-pat", b"github_pat_abc"));
        assert!(!revocable("github.app-installation-token", b"ghs_abc"));
        assert!(!revocable("github.personal-access-token", b"hf_abc"));
        assert!(!revocable("huggingface.user-token", b"ghp_abc"));
    }

    #[test]
    fn plain_http_is_refused_off_loopback() {
        let quiet = |_: &str| {};
        let e = report_leaked("http://api.example", &["ghp_x".into()], &quiet).unwrap_err();
        assert!(e.contains("https"), "{e}");
        assert!(report_leaked("http://api.example", &[], &quiet).is_err());
        assert_eq!(report_leaked("http://127.0.0.1:9", &[], &quiet), Ok(0));
    }
}
