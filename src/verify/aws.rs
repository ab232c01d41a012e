//! AWS access keys checked with STS `GetCallerIdentity`, the one AWS call that needs no
//! permission and changes nothing.
//!
//! Contract: [`verify_aws`] signs one `POST` of `Action=GetCallerIdentity&Version=2011-06-15`
//! with Signature Version 4 ([`super::sigv4`]) for region `us-east-1` and service `sts`
//! (adding `X-Amz-Security-Token` for temporary keys) and sends it, through the given
//! [`Client`], to `endpoint` — [`STS_ENDPOINT`] in use, a loopback mock in tests; which
//! endpoints are allowed is the verification stage's policy, not this module's. The answer
//! maps to a [`Verification`]:
//! - 2xx with an `<Arn>` → `live`, owner = the ARN and its account;
//! - `InvalidClientTokenId` (no such key id) or `SignatureDoesNotMatch` (the secret is not the
//!   key id's) → `invalid`; `ExpiredToken` → `invalid`, message `expired`;
//! - `Throttling` (400) or 429 → `error`, message `rate limited`;
//! - a refused signing time, a redirect, a malformed answer, a timeout, anything else →
//!   `error`.
//!
//! The secret goes into the signature only: never into a header, the body, a message or a
//! `Debug`. The answer is hostile: it is read within the client's body bound, looked at by a
//! small extractor (first element of a name, text without markup, no entities expanded) over
//! at most [`MAX_XML`] bytes, and never quoted; the owner keeps printable ASCII only.
//!
//! Keys of other partitions (`aws-cn`, `aws-us-gov`) are unknown to the global endpoint and
//! come back `invalid` there.

use std::time::{SystemTime, UNIX_EPOCH};

use memchr::memmem;

use super::{sigv4, Status, Verification};
use crate::org::forge::http::{Client, Origin};

/// The global STS endpoint.
pub const STS_ENDPOINT: &str = "https://sts.amazonaws.com/";
/// The region the global endpoint signs for.
pub const REGION: &str = "us-east-1";
/// The signing name of STS.
pub const SERVICE: &str = "sts";
/// The request body.
pub const BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
/// The request's content type.
pub const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
/// Bytes of an answer looked at (STS answers are under 1 KiB).
pub const MAX_XML: usize = 64 << 10;
/// Longest value taken from an answer.
const MAX_VALUE: usize = 2048;

/// Who a live key belongs to, as STS says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerIdentity {
    /// `arn:aws:iam::123456789012:user/alice`, `arn:aws:sts::…:assumed-role/…`.
    pub arn: String,
    /// The 12-digit account id.
    pub account: Option<String>,
    /// The unique id (`AIDA…`, `AROA…:session`).
    pub user_id: Option<String>,
}

impl CallerIdentity {
    /// How reports name the owner: the ARN, then the account.
    pub fn owner(&self) -> String {
        match &self.account {
            Some(a) => format!("{} (account {a})", self.arn),
            None => self.arn.clone(),
        }
    }
}

/// Checks the key `key_id` / `secret` (with `session_token` for temporary keys) against
/// `endpoint`, signing with the system clock.
pub fn verify_aws(
    client: &Client<'_>,
    key_id: &str,
    secret: &str,
    session_token: Option<&str>,
    endpoint: &str,
) -> Verification {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    verify_aws_at(client, key_id, secret, session_token, endpoint, now)
}

/// [`verify_aws`] signing at `now` (seconds since the epoch).
pub fn verify_aws_at(
    client: &Client<'_>,
    key_id: &str,
    secret: &str,
    session_token: Option<&str>,
    endpoint: &str,
    now: i64,
) -> Verification {
    let error = |m: &str| Verification {
        status: Status::Error,
        endpoint: Some(endpoint.to_string()),
        message: Some(m.to_string()),
        ..Verification::default()
    };
    let headers = match signed_headers(key_id, secret, session_token, endpoint, now) {
        Ok(h) => h,
        Err(m) => return error(m),
    };
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    match client.post(endpoint, &pairs, BODY.as_bytes(), "AWS STS") {
        Ok(answer) => Verification {
            endpoint: Some(endpoint.to_string()),
            ..classify(answer.status, &answer.body)
        },
        Err(e) => error(&e.to_string()),
    }
}

/// The headers of a signed `GetCallerIdentity` to `endpoint` at `now`, `Authorization`
/// last; an error (in words without the secret) for a key id, token or endpoint that cannot
/// be sent.
pub fn signed_headers(
    key_id: &str,
    secret: &str,
    session_token: Option<&str>,
    endpoint: &str,
    now: i64,
) -> Result<Vec<(String, String)>, &'static str> {
    if key_id.is_empty() || key_id.len() > 128 || !key_id.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err("the access key id is not one (letters and digits expected)");
    }
    if secret.is_empty() {
        return Err("no secret access key");
    }
    if let Some(t) = session_token {
        if t.is_empty() || t.len() > 8192 || !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the session token cannot be sent (visible ASCII expected)");
        }
    }
    let origin = Origin::of(endpoint).ok_or("the STS endpoint is not an http(s) URL")?;
    let after_scheme = endpoint.split_once("://").map_or("", |(_, r)| r);
    let path = match after_scheme.find('/') {
        Some(i) => &after_scheme[i..],
        None if !after_scheme.contains(['?', '#']) => "/",
        None => return Err("the STS endpoint must not carry a query"),
    };
    if path.contains(['?', '#']) {
        return Err("the STS endpoint must not carry a query");
    }
    let default_port = if origin.scheme == "https" { 443 } else { 80 };
    let host = if origin.port == default_port {
        origin.host.clone()
    } else {
        format!("{}:{}", origin.host, origin.port)
    };
    let amz_date = sigv4::amz_date(now);
    let mut headers = vec![
        ("Content-Type".to_string(), CONTENT_TYPE.to_string()),
        ("Host".to_string(), host),
        ("X-Amz-Date".to_string(), amz_date.clone()),
    ];
    if let Some(t) = session_token {
        headers.push(("X-Amz-Security-Token".to_string(), t.to_string()));
    }
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let request = sigv4::Request {
        method: "POST",
        path,
        query: "",
        headers: &pairs,
        payload: BODY.as_bytes(),
    };
    let signed = sigv4::sign(&request, key_id, secret, &amz_date, REGION, SERVICE);
    headers.push(("Authorization".to_string(), signed.authorization));
    Ok(headers)
}

/// What an STS answer says (without the endpoint).
pub fn classify(status: u16, body: &[u8]) -> Verification {
    let verdict = |status: Status, message: &str| Verification {
        status,
        message: Some(message.to_string()),
        ..Verification::default()
    };
    let xml = &body[..body.len().min(MAX_XML)];
    match status {
        200..=299 => match parse_identity(xml) {
            Some(id) => Verification {
                status: Status::Live,
                owner: Some(id.owner()),
                ..Verification::default()
            },
            None => verdict(Status::Error, "malformed answer (no caller identity)"),
        },
        300..=399 => verdict(
            Status::Error,
            "a redirect (not followed: the signed request goes to STS only)",
        ),
        429 => verdict(Status::Error, "rate limited"),
        400..=499 => match error_code(xml) {
            Some("InvalidClientTokenId") => verdict(Status::Invalid, "no such access key id"),
            Some("SignatureDoesNotMatch") if clock_refused(xml) => verdict(
                Status::Error,
                "the signing time was refused (is the system clock right?)",
            ),
            Some("SignatureDoesNotMatch") => verdict(
                Status::Invalid,
                "the secret does not belong to the access key id",
            ),
            Some("ExpiredToken") | Some("ExpiredTokenException") => {
                verdict(Status::Invalid, "expired")
            }
            Some("Throttling") | Some("ThrottlingException") | Some("RequestLimitExceeded") => {
                verdict(Status::Error, "rate limited")
            }
            Some("RequestExpired") => verdict(
                Status::Error,
                "the signing time was refused (is the system clock right?)",
            ),
            Some(_) => verdict(
                Status::Error,
                &format!("HTTP {status}, an unexpected error"),
            ),
            None => verdict(
                Status::Error,
                &format!("HTTP {status} without an error code"),
            ),
        },
        _ => verdict(Status::Error, &format!("HTTP {status}")),
    }
}

/// The identity of a `GetCallerIdentityResponse`: its `Arn` (required, `arn:`…), `Account`
/// (12 digits) and `UserId`, each printable ASCII.
pub fn parse_identity(xml: &[u8]) -> Option<CallerIdentity> {
    let result = element(xml, "GetCallerIdentityResult")?;
    let arn = element(result, "Arn")
        .and_then(value)
        .filter(|a| a.starts_with("arn:"))?;
    let account = element(result, "Account")
        .and_then(value)
        .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()));
    let user_id = element(result, "UserId").and_then(value);
    Some(CallerIdentity {
        arn,
        account,
        user_id,
    })
}

/// The `<Code>` of an `ErrorResponse`, when it is a plain identifier.
pub fn error_code(xml: &[u8]) -> Option<&str> {
    let error = element(xml, "Error")?;
    let code = std::str::from_utf8(element(error, "Code")?).ok()?.trim();
    (!code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some(code)
}

/// Whether a `SignatureDoesNotMatch` is about the time (`Signature expired: …`) rather than
/// the key.
fn clock_refused(xml: &[u8]) -> bool {
    element(xml, "Error")
        .and_then(|e| element(e, "Message"))
        .is_some_and(|m| m.trim_ascii_start().starts_with(b"Signature expired"))
}

/// The content of the first `<name>…</name>` (or `<name attr…>…</name>`) in `xml`.
fn element<'x>(xml: &'x [u8], name: &str) -> Option<&'x [u8]> {
    let open = format!("<{name}");
    let close = format!("</{name}>");
    let mut from = 0;
    while let Some(at) = memmem::find(&xml[from..], open.as_bytes()) {
        let start = from + at + open.len();
        // `<Arn>` or `<Arn xmlns=…>`, not `<ArnFoo>`; `<Arn/>` has no content.
        match xml.get(start) {
            Some(b'>') | Some(b' ') | Some(b'\t') | Some(b'\r') | Some(b'\n') => {
                let gt = start + memchr::memchr(b'>', &xml[start..])?;
                if xml[gt - 1] == b'/' {
                    return None;
                }
                let body = &xml[gt + 1..];
                let end = memmem::find(body, close.as_bytes())?;
                return Some(&body[..end]);
            }
            _ => from = start,
        }
    }
    None
}

/// A leaf element's text: trimmed, printable ASCII, no markup or entity, bounded.
fn value(text: &[u8]) -> Option<String> {
    let t = text.trim_ascii();
    let ok = !t.is_empty()
        && t.len() <= MAX_VALUE
        && t.iter()
            .all(|&b| b.is_ascii_graphic() && b != b'<' && b != b'&');
    ok.then(|| String::from_utf8_lossy(t).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: &str = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:iam::123456789012:user/alice</Arn>
    <UserId>AIDAEXAMPLEUSERID0001</UserId>
    <Account>123456789012</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#;

    fn error_body(code: &str, message: &str) -> String {
        format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n    \
             <Type>Sender</Type>\n    <Code>{code}</Code>\n    <Message>{message}</Message>\n  \
             </Error>\n  <RequestId>x</RequestId>\n</ErrorResponse>"
        )
    }

    #[test]
    fn identity_answers_give_the_owner() {
        let id = parse_identity(LIVE.as_bytes()).unwrap();
        assert_eq!(id.arn, "arn:aws:iam::123456789012:user/alice");
        assert_eq!(id.account.as_deref(), Some("123456789012"));
        assert_eq!(id.user_id.as_deref(), Some("AIDAEXAMPLEUSERID0001"));
        let v = classify(200, LIVE.as_bytes());
        assert_eq!(v.status, Status::Live);
        assert_eq!(
            v.owner.as_deref(),
            Some("arn:aws:iam::123456789012:user/alice (account 123456789012)")
        );
    }

    #[test]
    fn error_codes_map_to_verdicts() {
        let cases = [
            (
                403,
                "InvalidClientTokenId",
                "The security token included in the request is invalid",
                Status::Invalid,
            ),
            (
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match",
                Status::Invalid,
            ),
            (
                403,
                "SignatureDoesNotMatch",
                "Signature expired: 20150830T123600Z is now earlier than",
                Status::Error,
            ),
            (
                403,
                "ExpiredToken",
                "The security token included in the request is expired",
                Status::Invalid,
            ),
            (400, "Throttling", "Rate exceeded", Status::Error),
            (
                403,
                "AccessDenied",
                "User is not authorized to perform",
                Status::Error,
            ),
        ];
        for (status, code, message, want) in cases {
            let v = classify(status, error_body(code, message).as_bytes());
            assert_eq!(v.status, want, "{code} {message}");
            let m = v.message.unwrap();
            assert!(!m.contains(message), "the body is never quoted: {m}");
        }
        assert_eq!(
            classify(403, error_body("ExpiredToken", "").as_bytes())
                .message
                .as_deref(),
            Some("expired")
        );
        assert_eq!(classify(429, b"").message.as_deref(), Some("rate limited"));
        assert_eq!(
            classify(400, error_body("Throttling", "").as_bytes())
                .message
                .as_deref(),
            Some("rate limited")
        );
        assert_eq!(classify(302, b"").status, Status::Error);
        assert_eq!(classify(500, LIVE.as_bytes()).status, Status::Error);
    }

    #[test]
    fn hostile_answers_are_errors_not_owners() {
        let bad = [
            "",
            "<GetCallerIdentityResult><Arn>arn:aws:iam::1:user/a",
            "<GetCallerIdentityResult><Arn/></GetCallerIdentityResult>",
            "<GetCallerIdentityResult><Arn>&xxe;</Arn></GetCallerIdentityResult>",
            "<GetCallerIdentityResult><Arn>arn:\u{1b}[31m</Arn></GetCallerIdentityResult>",
            "<GetCallerIdentityResult><Arn><![CDATA[arn:x]]></Arn></GetCallerIdentityResult>",
            "<GetCallerIdentityResult><Arn>not-an-arn</Arn></GetCallerIdentityResult>",
            "<Arn>arn:aws:iam::123456789012:root</Arn>",
        ];
        for b in bad {
            let v = classify(200, b.as_bytes());
            assert_eq!(v.status, Status::Error, "{b:?}");
            assert_eq!(v.owner, None);
        }
        // `<ArnX>` is not `<Arn>`; attributes are allowed; a bad account is left out.
        let odd = "<GetCallerIdentityResult><ArnX>arn:no</ArnX><Arn a=\"1\">arn:aws:iam::1:user/b\
                   </Arn><Account>12</Account></GetCallerIdentityResult>";
        let id = parse_identity(odd.as_bytes()).unwrap();
        assert_eq!(
            (id.arn.as_str(), id.account),
            ("arn:aws:iam::1:user/b", None)
        );
        // Past MAX_XML nothing is looked at.
        let mut far = vec![b' '; MAX_XML];
        far.extend_from_slice(LIVE.as_bytes());
        assert_eq!(classify(200, &far).status, Status::Error);
    }

    #[test]
    fn requests_sign_what_is_sent_and_refuse_what_cannot_be() {
        let h = signed_headers(
            "AKIAQWERTY",
            "s3cr3t",
            Some("tok"),
            "https://sts.amazonaws.com/",
            1_440_938_160,
        )
        .unwrap();
        let names: Vec<&str> = h.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "Content-Type",
                "Host",
                "X-Amz-Date",
                "X-Amz-Security-Token",
                "Authorization"
            ]
        );
        assert_eq!(h[1].1, "sts.amazonaws.com");
        assert_eq!(h[2].1, "20150830T123600Z");
        assert!(h[4].1.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIAQWERTY/20150830/us-east-1/sts/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="
        ));
        assert!(h.iter().all(|(_, v)| !v.contains("s3cr3t")));
        let local = signed_headers("AKIAQWERTY", "s", None, "http://127.0.0.1:8080", 0).unwrap();
        assert_eq!(local[1].1, "127.0.0.1:8080");
        for (key, token, endpoint) in [
            ("AKIA QWERTY", None, "https://sts.amazonaws.com/"),
            ("", None, "https://sts.amazonaws.com/"),
            ("AKIAQWERTY", Some("a\r\nb"), "https://sts.amazonaws.com/"),
            ("AKIAQWERTY", None, "https://sts.amazonaws.com/?Action=x"),
            ("AKIAQWERTY", None, "ftp://sts.amazonaws.com/"),
        ] {
            assert!(
                signed_headers(key, "s", token, endpoint, 0).is_err(),
                "{key} {endpoint}"
            );
        }
    }
}
