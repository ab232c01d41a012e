//! One check of one secret by a data verifier: the request its [`VerifySpec`] describes, and
//! the [`Verification`] its answer means.
//!
//! Contract: the secret goes only where the spec says (one header, basic auth, one query
//! parameter or the path) and to the URL [`target`] resolved — the rule's own URL, or an
//! endpoint the user configured (the only place a rule whose hosts are each customer's own
//! is checked); never quoted in an error or in `endpoint`, and neither is the companion. A
//! spec's fixed `body` is sent as JSON. Everything read from the answer (owner, scopes,
//! expiry) is cleaned of control characters and bounded in length before it reaches a
//! report.

use base64::Engine as _;
use serde_json::Value;

use super::spec::{Method, Send, VerifySpec, COMPANION, SECRET};
use super::{Status, Verification};
use crate::org::forge::http::{self, Answer, Client, HttpError, Origin};

/// Longest owner, scope or expiry kept from an answer (characters).
const MAX_FIELD: usize = 200;
/// Most scopes kept.
const MAX_SCOPES: usize = 64;

/// Where a provider's checks go instead of the rule's URL.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Base URL (scheme, host, port, optional path prefix); the rule URL's path follows it.
    pub base: String,
    /// Given on the command line (`--verify-endpoint`): any https host, or http on loopback.
    /// Otherwise (from `--config`) its host must be one of the rule's or `[verify.hosts]`'s.
    pub from_flag: bool,
}

/// The URL (still holding `{secret}` where the spec puts it there) a check of `spec` goes to.
pub fn target(
    spec: &VerifySpec,
    endpoint: Option<&Endpoint>,
    extra_hosts: &[String],
) -> Result<String, String> {
    let url = spec
        .url
        .as_deref()
        .ok_or("the verifier names no URL")?
        .to_string();
    let Some(e) = endpoint else {
        if spec.needs_endpoint() {
            return Err(no_host(spec));
        }
        return Ok(url);
    };
    let origin = Origin::of(&e.base).ok_or("the verify endpoint is not an http(s) URL")?;
    let allowed = if e.from_flag {
        origin.scheme == "https" || origin.is_loopback()
    } else {
        origin.scheme == "https"
            && (spec.allows_host(&origin.host)
                || extra_hosts
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case(&origin.host)))
    };
    if !allowed {
        return Err(if e.from_flag {
            "the verify endpoint must be https:// (plain http only on a loopback address)".into()
        } else {
            format!(
                "the configured endpoint's host {} is not among the provider's hosts or [verify.hosts]",
                origin.host
            )
        });
    }
    let rest = if spec.needs_endpoint() {
        url.as_str()
    } else {
        url["https://".len()..]
            .find('/')
            .map_or("", |i| &url["https://".len() + i..])
    };
    Ok(format!("{}{rest}", e.base.trim_end_matches('/')))
}

/// Why a rule whose hosts are each customer's own is not checked without an endpoint.
pub fn no_host(spec: &VerifySpec) -> String {
    format!(
        "{p} has no default host: name the host to ask with --verify-endpoint {p}=https://HOST (or [verify.endpoints] and [verify.hosts] of --config)",
        p = spec.provider
    )
}

/// `url` as reports show it: without the secret or the companion.
pub fn shown(url: &str) -> String {
    url.replace(SECRET, "…").replace(COMPANION, "…")
}

fn percent_encode(s: &str) -> String {
    encode(s, b"-._~")
}

/// For a path segment: `:` is a path character too (Telegram's `bot<id>:<key>`).
fn percent_encode_path(s: &str) -> String {
    encode(s, b"-._~:")
}

fn encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The URL and headers of a check of `secret` (and its companion, where the spec puts one)
/// against `url`.
fn request(
    spec: &VerifySpec,
    url: &str,
    secret: &str,
    companion: Option<&str>,
) -> (String, Vec<(String, String)>) {
    let mut headers: Vec<(String, String)> = spec
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    if spec.body.is_some() {
        headers.push(("content-type".into(), "application/json".into()));
        headers.push(("accept".into(), "application/json".into()));
    }
    let companion = companion.unwrap_or("");
    // One pass over the template, so a secret that holds `{companion}` stays as it is.
    let fill = |t: &str| {
        t.split(SECRET)
            .map(|part| part.replace(COMPANION, companion))
            .collect::<Vec<_>>()
            .join(secret)
    };
    let mut url = url.replace(COMPANION, &percent_encode_path(companion));
    match spec.send {
        Some(Send::Bearer) | None => {
            headers.push(("Authorization".into(), format!("Bearer {secret}")));
        }
        Some(Send::Header) => headers.push((
            spec.header.clone().unwrap_or_default(),
            fill(spec.template.as_deref().unwrap_or(SECRET)),
        )),
        Some(Send::Basic) => {
            let pair = format!(
                "{}:{}",
                fill(spec.user.as_deref().unwrap_or("")),
                fill(spec.password.as_deref().unwrap_or(""))
            );
            let b64 = base64::engine::general_purpose::STANDARD.encode(pair);
            headers.push(("Authorization".into(), format!("Basic {b64}")));
        }
        Some(Send::Query) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            let param = spec.param.as_deref().unwrap_or("key");
            url = format!("{url}{sep}{param}={}", percent_encode(secret));
        }
        Some(Send::Path) => url = url.replace(SECRET, &percent_encode_path(secret)),
    }
    (url, headers)
}

/// Checks `secret` (with `companion`, the value of the spec's companion rule found near it)
/// with `spec` against `url` (from [`target`]), through `client` (bound to `url`'s origin).
pub fn run(
    client: &Client,
    spec: &VerifySpec,
    url: &str,
    secret: &str,
    companion: Option<&str>,
) -> Verification {
    let endpoint = Some(shown(url));
    let done = |status: Status, message: Option<String>| Verification {
        status,
        endpoint: endpoint.clone(),
        message,
        ..Verification::default()
    };
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return done(
            Status::Unknown,
            Some("the secret holds characters a request cannot carry".into()),
        );
    }
    let carried =
        companion.is_some_and(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_graphic()));
    if spec.sends_companion() && !carried {
        return done(
            Status::Unknown,
            Some("no value a request can carry was found near the secret: nothing sent".into()),
        );
    }
    let (full, headers) = request(spec, url, secret, companion);
    let method = match spec.method {
        Method::Get => http::Method::Get,
        Method::Post => http::Method::Post,
    };
    let what = format!("verify {}", spec.provider);
    let body = spec.body.as_deref().map(str::as_bytes);
    let answer = match client.request(method, &full, &headers, body, &what) {
        Ok(a) => a,
        Err(HttpError::Status(s)) => return done(Status::Error, Some(format!("HTTP {s}"))),
        Err(HttpError::Other(m)) => {
            // The client's messages start with `what`; keep trawl's words after it.
            let m = m.strip_prefix(&format!("{what}: ")).unwrap_or(&m);
            return done(Status::Error, Some(m.to_string()));
        }
    };
    classify(spec, &answer, endpoint)
}

/// What an answer means.
pub fn classify(spec: &VerifySpec, answer: &Answer, endpoint: Option<String>) -> Verification {
    let mut v = Verification {
        endpoint,
        ..Verification::default()
    };
    if spec.invalid_statuses().contains(&answer.status) {
        let refused = spec.invalid_when.as_ref().is_none_or(|cond| {
            serde_json::from_slice::<Value>(&answer.body).is_ok_and(|json| cond.holds(&json))
        });
        v.status = if refused {
            Status::Invalid
        } else {
            Status::Unknown
        };
        v.message = Some(match (&spec.invalid_when, refused) {
            (Some(cond), false) => format!("HTTP {}, but {}", answer.status, cond.describe()),
            _ => format!("HTTP {}", answer.status),
        });
        return v;
    }
    if !spec.live_statuses().contains(&answer.status) {
        v.status = Status::Unknown;
        v.message = Some(format!("HTTP {}: neither live nor invalid", answer.status));
        return v;
    }
    let needs_json = spec.live_when.is_some()
        || !spec.owner.is_empty()
        || !spec.scopes.is_empty()
        || spec.expires.is_some();
    let json: Value = match serde_json::from_slice(&answer.body) {
        Ok(j) => j,
        Err(_) if !needs_json => Value::Null,
        Err(_) => {
            v.status = Status::Error;
            v.message = Some("the answer is not the JSON expected".into());
            return v;
        }
    };
    if let Some(cond) = &spec.live_when {
        if !cond.holds(&json) {
            v.status = Status::Invalid;
            v.message = Some(format!("HTTP {}, but {}", answer.status, cond.describe()));
            return v;
        }
    }
    v.status = Status::Live;
    let owners: Vec<String> = spec
        .owner
        .iter()
        .flat_map(|p| strings_at(&json, p))
        .collect();
    if !owners.is_empty() {
        v.owner = Some(clean(&dedup(owners).join(", ")));
    }
    let mut scopes: Vec<String> = spec
        .scopes
        .iter()
        .flat_map(|p| strings_at(&json, p))
        .flat_map(|s| split_scopes(&s))
        .collect();
    if let Some(h) = &spec.scopes_header {
        scopes.extend(answer.header(h).map(split_scopes).unwrap_or_default());
    }
    v.scopes = dedup(scopes)
        .into_iter()
        .map(|s| clean(&s))
        .take(MAX_SCOPES)
        .collect();
    let expires = spec
        .expires
        .as_deref()
        .and_then(|p| strings_at(&json, p).into_iter().next())
        .or_else(|| {
            spec.expires_header
                .as_deref()
                .and_then(|h| answer.header(h))
                .map(str::to_string)
        });
    v.expires = expires.map(|e| clean(&rfc3339(&e)));
    v
}

/// The strings at a JSON pointer where a `*` segment stands for every element of an array
/// (or every value of an object); numbers and booleans as text; arrays flattened.
fn strings_at(json: &Value, pointer: &str) -> Vec<String> {
    let mut out = Vec::new();
    collect(json, pointer, &mut out, 0);
    out
}

fn collect(v: &Value, pointer: &str, out: &mut Vec<String>, depth: usize) {
    if depth > 8 || out.len() >= MAX_SCOPES {
        return;
    }
    let Some(star) = pointer.find("/*") else {
        match v.pointer(pointer) {
            Some(Value::String(s)) => out.push(s.clone()),
            Some(Value::Number(n)) => out.push(n.to_string()),
            Some(Value::Bool(b)) => out.push(b.to_string()),
            Some(Value::Array(a)) => {
                for x in a.iter().take(MAX_SCOPES) {
                    collect(x, "", out, depth + 1);
                }
            }
            _ => {}
        }
        return;
    };
    let (head, tail) = (&pointer[..star], &pointer[star + 2..]);
    match v.pointer(head) {
        Some(Value::Array(a)) => a
            .iter()
            .take(MAX_SCOPES)
            .for_each(|x| collect(x, tail, out, depth + 1)),
        Some(Value::Object(o)) => o
            .values()
            .take(MAX_SCOPES)
            .for_each(|x| collect(x, tail, out, depth + 1)),
        _ => {}
    }
}

fn split_scopes(s: &str) -> Vec<String> {
    s.split([',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.into_iter().filter(|s| seen.insert(s.clone())).collect()
}

/// Without control characters, at most [`MAX_FIELD`] characters.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(MAX_FIELD)
        .collect()
}

/// GitHub's `2026-12-31 23:59:59 UTC` (and `… +0000`) as RFC 3339; anything else unchanged.
fn rfc3339(s: &str) -> String {
    let t = s.trim();
    let b = t.as_bytes();
    let shape = b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':';
    let rest = t.get(19..).map(str::trim);
    match rest {
        Some("UTC" | "+0000" | "Z") if shape => format!("{}T{}Z", &t[..10], &t[11..19]),
        _ => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> VerifySpec {
        let s: VerifySpec = toml::from_str(text).unwrap();
        s.check().unwrap();
        s
    }

    fn answer(status: u16, body: &str, headers: &[(&str, &str)]) -> Answer {
        Answer {
            status,
            body: body.as_bytes().to_vec(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    const HF: &str = r#"
provider = "huggingface"
hosts = ["huggingface.co"]
url = "https://huggingface.co/api/whoami-v2"
send = "bearer"
owner = ["/name", "/orgs/*/name"]
scopes = ["/auth/accessToken/role", "/auth/accessToken/fineGrained/scoped/*/permissions"]
"#;

    #[test]
    fn owner_and_scopes_come_from_pointers_with_wildcards() {
        let body = r#"{"name":"alice","orgs":[{"name":"acme"},{"name":"labs\u001b[31m"}],
            "auth":{"accessToken":{"role":"fineGrained","fineGrained":{"scoped":[
            {"entity":{"name":"acme/m"},"permissions":["repo.content.read","repo.write"]}]}}}}"#;
        let v = classify(&spec(HF), &answer(200, body, &[]), None);
        assert_eq!(v.status, Status::Live);
        assert_eq!(v.owner.as_deref(), Some("alice, acme, labs[31m"));
        assert_eq!(v.scopes, ["fineGrained", "repo.content.read", "repo.write"]);
        assert_eq!(
            classify(&spec(HF), &answer(401, "", &[]), None).status,
            Status::Invalid
        );
        assert_eq!(
            classify(&spec(HF), &answer(200, "{", &[]), None).status,
            Status::Error
        );
        assert_eq!(
            classify(&spec(HF), &answer(418, "", &[]), None).status,
            Status::Unknown
        );
    }

    #[test]
    fn headers_give_scopes_and_expiry_and_conditions_decide() {
        let gh = spec(
            r#"provider = "github"
hosts = ["api.github.com"]
url = "https://api.github.com/user"
send = "bearer"
owner = ["/login"]
scopes_header = "x-oauth-scopes"
expires_header = "github-authentication-token-expiration""#,
        );
        let a = answer(
            200,
            r#"{"login":"octo"}"#,
            &[
                ("x-oauth-scopes", "repo, read:org"),
                (
                    "github-authentication-token-expiration",
                    "2027-01-31 10:00:00 UTC",
                ),
            ],
        );
        let v = classify(&gh, &a, None);
        assert_eq!(v.scopes, ["repo", "read:org"]);
        assert_eq!(v.expires.as_deref(), Some("2027-01-31T10:00:00Z"));
        let slack = spec(
            r#"provider = "slack"
hosts = ["slack.com"]
url = "https://slack.com/api/auth.test"
send = "bearer"
live_when = { pointer = "/ok", equals = true }"#,
        );
        let ok = classify(&slack, &answer(200, r#"{"ok":true}"#, &[]), None);
        assert_eq!(ok.status, Status::Live);
        let bad = classify(&slack, &answer(200, r#"{"ok":false}"#, &[]), None);
        assert_eq!(bad.status, Status::Invalid);
        // A 401 that is invalid only when the body says the key is unknown.
        let scoped = spec(
            r#"provider = "e"
hosts = ["api.e.example"]
url = "https://api.e.example/v1/user"
send = "header"
header = "xi-api-key"
invalid_when = { pointer = "/detail/status", equals = "invalid_api_key" }"#,
        );
        let wrong = r#"{"detail":{"status":"invalid_api_key"}}"#;
        let narrow = r#"{"detail":{"status":"missing_permissions"}}"#;
        assert_eq!(
            classify(&scoped, &answer(401, wrong, &[]), None).status,
            Status::Invalid
        );
        for body in [narrow, "not json"] {
            let v = classify(&scoped, &answer(401, body, &[]), None);
            assert_eq!(v.status, Status::Unknown, "{body}");
            assert!(v.message.unwrap().contains("/detail/status is not"));
        }
    }

    #[test]
    fn the_secret_goes_where_the_spec_says() {
        let s = spec(
            r#"provider = "s"
hosts = ["api.stripe.com"]
url = "https://api.stripe.com/v1/account"
send = "basic"
user = "{secret}"
password = """#,
        );
        let (url, h) = request(&s, "https://api.stripe.com/v1/account", "sk_x", None);
        assert_eq!(url, "https://api.stripe.com/v1/account");
        assert_eq!(
            h,
            [("Authorization".to_string(), "Basic c2tfeDo=".to_string())]
        );
        let q = spec(
            r#"provider = "g"
hosts = ["g.example"]
url = "https://g.example/v1/models?pageSize=1"
send = "query"
param = "key""#,
        );
        let (url, h) = request(&q, "https://g.example/v1/models?pageSize=1", "a b&", None);
        assert_eq!(url, "https://g.example/v1/models?pageSize=1&key=a%20b%26");
        assert!(h.is_empty());
        // A companion as the basic-auth user and in the path; a secret holding the
        // placeholder text is sent as it is.
        let t = spec(
            r#"provider = "t"
hosts = ["api.t.example"]
companion = "t.account-sid"
url = "https://api.t.example/Accounts/{companion}.json"
send = "basic"
user = "{companion}"
password = "{secret}""#,
        );
        let (url, h) = request(&t, t.url.as_deref().unwrap(), "x{companion}", Some("AC1/"));
        assert_eq!(url, "https://api.t.example/Accounts/AC1%2F.json");
        let basic = base64::engine::general_purpose::STANDARD.encode("AC1/:x{companion}");
        assert_eq!(h, [("Authorization".to_string(), format!("Basic {basic}"))]);
        assert_eq!(
            shown(t.url.as_deref().unwrap()),
            "https://api.t.example/Accounts/….json"
        );
        // A fixed body goes as JSON.
        let w = spec(
            r#"provider = "w"
hosts = ["api.w.example"]
method = "POST"
url = "https://api.w.example/graphql"
send = "basic"
user = "api"
password = "{secret}"
body = '{"query":"{ viewer { id } }"}'"#,
        );
        let (_, h) = request(&w, "https://api.w.example/graphql", "k", None);
        assert!(h.contains(&("content-type".to_string(), "application/json".to_string())));
    }

    #[test]
    fn endpoints_replace_the_origin_and_are_checked() {
        let s = spec(HF);
        let flag = |b: &str| Endpoint {
            base: b.into(),
            from_flag: true,
        };
        assert_eq!(
            target(&s, Some(&flag("http://127.0.0.1:9/")), &[]).unwrap(),
            "http://127.0.0.1:9/api/whoami-v2"
        );
        assert!(target(&s, Some(&flag("http://10.0.0.1/")), &[]).is_err());
        let cfg = Endpoint {
            base: "https://hf.corp.example".into(),
            from_flag: false,
        };
        assert!(target(&s, Some(&cfg), &[]).is_err());
        assert!(target(&s, Some(&cfg), &["hf.corp.example".into()]).is_ok());
        assert_eq!(shown("https://h/x/{secret}"), "https://h/x/…");
        // No default host: only a configured endpoint, and from --config only a listed host.
        let db = spec("provider = \"databricks\"\nurl = \"/api/2.0/me\"\nsend = \"bearer\"");
        assert!(target(&db, None, &[])
            .unwrap_err()
            .contains("no default host"));
        assert_eq!(
            target(&db, Some(&flag("https://adb-1.azuredatabricks.net/")), &[]).unwrap(),
            "https://adb-1.azuredatabricks.net/api/2.0/me"
        );
        let ws = Endpoint {
            base: "https://dbc-1.cloud.databricks.com".into(),
            from_flag: false,
        };
        assert!(target(&db, Some(&ws), &[]).is_err());
        assert!(target(&db, Some(&ws), &["dbc-1.cloud.databricks.com".into()]).is_ok());
    }
}
