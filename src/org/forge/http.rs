//! The one HTTP client that talks to forges and to verification endpoints: blocking `ureq`
//! over rustls, no async runtime, `HTTPS_PROXY` honoured.
//!
//! Contract: every request goes to the origin (scheme, host, port) of the API base given at
//! construction, and nowhere else; the token (from the environment, never printed, never in a
//! `Debug`) is attached only to such requests. `https://` bases only, or plain `http://` on a
//! loopback address (tests). Redirects are not followed (a 3xx is an error). Everything the
//! server sends is bounded: timeouts on connect and read, each body at most [`MAX_BODY`], rate
//! limits waited out at most [`MAX_RATE_RETRIES`] times per request and at most [`MAX_WAIT`]
//! each, 5xx and transport errors retried [`MAX_SERVER_RETRIES`] times with backoff. Errors
//! never quote a body or a header. [`Client::post`] (verifiers) is one attempt that hands
//! every status, 3xx and 429 included, back to its caller with the bounded body.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest response body read.
pub const MAX_BODY: u64 = 64 << 20;
/// Rate-limit waits per request.
pub const MAX_RATE_RETRIES: u32 = 5;
/// Longest single rate-limit wait.
pub const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// Retries of a 5xx answer or a failed connection.
pub const MAX_SERVER_RETRIES: u32 = 3;
/// Wait on a 429 that says nothing about when to come back.
const DEFAULT_RATE_WAIT: Duration = Duration::from_secs(60);

/// Scheme, host and port of a URL: where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// `https` or `http`.
    pub scheme: &'static str,
    /// Lower-cased; IPv6 addresses keep their brackets.
    pub host: String,
    /// Explicit or the scheme's default.
    pub port: u16,
}

impl Origin {
    /// The origin of an absolute `http://` or `https://` URL without credentials; `None` for
    /// anything else (other schemes, `user@`, control characters, spaces, bad ports).
    pub fn of(url: &str) -> Option<Origin> {
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return None;
        }
        let (scheme, rest, default_port) = if let Some(r) = url.strip_prefix("https://") {
            ("https", r, 443)
        } else if let Some(r) = url.strip_prefix("http://") {
            ("http", r, 80)
        } else {
            return None;
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.is_empty() || authority.contains(['@', '\\']) {
            return None;
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let close = v6.find(']')?;
            let host = &authority[..close + 2];
            match &v6[close + 1..] {
                "" => (host, None),
                p => (host, Some(p.strip_prefix(':')?)),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            None => default_port,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
            Some(_) => return None,
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.[]:_".contains(&b));
        host_ok.then(|| Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// A loopback address (`127.0.0.0/8`, `::1`) or `localhost`.
    pub fn is_loopback(&self) -> bool {
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// A token and the header that carries it. Its `Debug` shows the header name only.
#[derive(Clone)]
pub struct Token {
    header: &'static str,
    value: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({}: <redacted>)", self.header)
    }
}

impl Token {
    /// The token in environment variable `var`, sent as `header` with `prefix` before it
    /// (`"Bearer "` or `""`). Unset or empty: `None`. A value that cannot be a header is an
    /// error that names the variable, not the value.
    pub fn from_env(
        var: &str,
        header: &'static str,
        prefix: &str,
    ) -> Result<Option<Token>, String> {
        let Ok(raw) = std::env::var(var) else {
            return Ok(None);
        };
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "{var} holds characters a token cannot have (spaces, control or non-ASCII)"
            ));
        }
        Ok(Some(Token {
            header,
            value: format!("{prefix}{raw}"),
        }))
    }
}

/// An answer: always a 2xx one from [`Client::get`]; of any status from [`Client::post`].
pub struct Answer {
    /// The status (2xx from [`Client::get`]).
    pub status: u16,
    /// At most [`MAX_BODY`] bytes.
    pub body: Vec<u8>,
    /// Header names lower-cased; values that are not visible ASCII are dropped.
    pub headers: Vec<(String, String)>,
}

impl Answer {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Why a request failed, without a body, a header value or the token.
#[derive(Debug)]
pub enum HttpError {
    /// A status the caller may handle (404 on a deleted fork, say).
    Status(u16),
    /// Anything else: a sentence to print.
    Other(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Status(403) => write!(
                f,
                "HTTP 403 without rate-limit headers: the token lacks permission, or none was given"
            ),
            HttpError::Status(s) => write!(f, "HTTP {s}"),
            HttpError::Other(m) => f.write_str(m),
        }
    }
}

/// Timeouts and retry bounds of a client. [`Bounds::default`] is the forge listings'.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Connect timeout.
    pub connect: Duration,
    /// Time to the response head.
    pub response: Duration,
    /// Time to read the body.
    pub body: Duration,
    /// Longest single rate-limit wait (a longer `Retry-After` is cut to this).
    pub max_wait: Duration,
    /// Rate-limit waits per request.
    pub rate_retries: u32,
    /// Retries of a 5xx answer or a failed connection.
    pub server_retries: u32,
    /// Whether a timed-out request is tried again.
    pub retry_timeouts: bool,
}

impl Default for Bounds {
    fn default() -> Bounds {
        Bounds {
            connect: Duration::from_secs(30),
            response: Duration::from_secs(120),
            body: Duration::from_secs(300),
            max_wait: MAX_WAIT,
            rate_retries: MAX_RATE_RETRIES,
            server_retries: MAX_SERVER_RETRIES,
            retry_timeouts: true,
        }
    }
}

/// The HTTP methods the client sends: read-only listings and identity checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST` without a body (endpoints such as Slack's `auth.test` that take either), or
    /// with a fixed JSON document (a read-only GraphQL query).
    Post,
}

/// A client bound to one API base.
pub struct Client<'n> {
    agent: ureq::Agent,
    base: String,
    origin: Origin,
    token: Option<Token>,
    notice: &'n dyn Fn(&str),
    max_body: u64,
    bounds: Bounds,
    timeout: Option<Duration>,
}

impl<'n> Client<'n> {
    /// A client for `base` (`https://api.github.com`, `https://ghe.example/api/v3`); `notice`
    /// receives the messages about waits (they hold neither token nor URL).
    pub fn new(
        base: &str,
        token: Option<Token>,
        notice: &'n dyn Fn(&str),
    ) -> Result<Client<'n>, String> {
        Client::with_bounds(base, token, notice, Bounds::default())
    }

    /// [`Client::new`] with other timeouts and retry bounds.
    pub fn with_bounds(
        base: &str,
        token: Option<Token>,
        notice: &'n dyn Fn(&str),
        bounds: Bounds,
    ) -> Result<Client<'n>, String> {
        let base = base.trim_end_matches('/').to_string();
        let origin = Origin::of(&base).ok_or_else(|| {
            "the API URL must be an absolute https:// URL without credentials".to_string()
        })?;
        if origin.scheme == "http" && !origin.is_loopback() {
            return Err(
                "the API URL must be https:// (plain http only on a loopback address)".into(),
            );
        }
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .https_only(origin.scheme == "https")
            .timeout_connect(Some(bounds.connect))
            .timeout_recv_response(Some(bounds.response))
            .timeout_recv_body(Some(bounds.body))
            .user_agent(concat!("trawl/", env!("CARGO_PKG_VERSION")));
        // `HTTPS_PROXY` (and `ALL_PROXY`, `NO_PROXY`) are read by ureq's default; a loopback
        // test server is never reached through a proxy.
        if origin.is_loopback() {
            config = config.proxy(None);
        }
        Ok(Client {
            agent: config.build().into(),
            base,
            origin,
            token,
            notice,
            max_body: MAX_BODY,
            bounds,
            timeout: None,
        })
    }

    /// Reads bodies of at most `bytes` (below [`MAX_BODY`]; larger values are capped).
    pub fn with_max_body(mut self, bytes: u64) -> Self {
        self.max_body = bytes.min(MAX_BODY);
        self
    }

    /// Bounds each [`Client::post`] as a whole (connecting, sending, the answer and its body);
    /// [`Client::get`] keeps the agent's per-phase timeouts.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The API base, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Where every request goes.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Whether `url` goes to the API base's origin (the only place requests go).
    pub fn same_origin(&self, url: &str) -> bool {
        Origin::of(url).as_ref() == Some(&self.origin)
    }

    /// GET `url` (which must be on the API base's origin), waiting out rate limits and retrying
    /// server errors within the bounds of this module.
    pub fn get(&self, url: &str, what: &str) -> Result<Answer, HttpError> {
        self.send(Method::Get, url, &[], None, false, what)
    }

    /// POST the JSON `body` to `url` (which must be on the API base's origin), under the same
    /// rules as [`Client::get`]. Only for requests that may be repeated (a retry after a
    /// failed connection or a 5xx sends the body again).
    pub fn post_json(&self, url: &str, body: &[u8], what: &str) -> Result<Answer, HttpError> {
        let json = [
            ("content-type".to_string(), "application/json".to_string()),
            ("accept".to_string(), "application/json".to_string()),
        ];
        self.send(Method::Post, url, &json, Some(body), false, what)
    }

    /// Sends `method` to `url` (on the API base's origin) with `headers` besides the token
    /// (and, for POST, `body`: only one that may be sent again, as a retry repeats it), and
    /// returns the answer whatever its status, once rate limits are waited out and server
    /// errors retried; a redirect is an error (never followed), and so is a 5xx or a rate
    /// limit that outlasts the retries. Header values (which may hold a secret) are never
    /// quoted in errors.
    pub fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
        what: &str,
    ) -> Result<Answer, HttpError> {
        self.send(method, url, headers, body, true, what)
    }

    fn send(
        &self,
        method: Method,
        url: &str,
        extra: &[(String, String)],
        body: Option<&[u8]>,
        any_status: bool,
        what: &str,
    ) -> Result<Answer, HttpError> {
        if !self.same_origin(url) {
            return Err(HttpError::Other(format!(
                "{what}: refused a request to another host than the API's"
            )));
        }
        let (mut rate_retries, mut server_retries) = (0, 0);
        loop {
            let extra = extra.iter().map(|(n, v)| (n.as_str(), v.as_str()));
            let sent = match method {
                Method::Get => self.headed(self.agent.get(url), extra).call(),
                Method::Post => {
                    let request = self.headed(self.agent.post(url), extra);
                    match body {
                        Some(b) => request.send(b),
                        None => request.send_empty(),
                    }
                }
            };
            let max_server = self.bounds.server_retries;
            let mut response = match sent {
                Ok(r) => r,
                Err(e)
                    if server_retries < max_server
                        && transient(&e)
                        && (self.bounds.retry_timeouts
                            || !matches!(e, ureq::Error::Timeout(_))) =>
                {
                    server_retries += 1;
                    self.wait(
                        backoff(server_retries),
                        what,
                        "the connection failed",
                        server_retries,
                        max_server,
                    );
                    continue;
                }
                Err(e) => return Err(HttpError::Other(format!("{what}: {}", describe(&e)))),
            };
            let status = response.status().as_u16();
            let headers = printable_headers(&response);
            let retry_status = status == 429 || status >= 500 || (status == 403 && !any_status);
            let final_answer = (200..300).contains(&status)
                || (any_status && !(300..400).contains(&status) && !retry_status);
            if final_answer {
                let body = read_bounded(&mut response, self.max_body, what)?;
                return Ok(Answer {
                    status,
                    body,
                    headers,
                });
            }
            if status == 403 || status == 429 {
                let wait = rate_limit_wait(status, &headers, now_epoch());
                let max_rate = self.bounds.rate_retries;
                match wait {
                    Some(w) if rate_retries < max_rate => {
                        rate_retries += 1;
                        self.wait(
                            w.min(self.bounds.max_wait),
                            what,
                            "rate limit reached",
                            rate_retries,
                            max_rate,
                        );
                        continue;
                    }
                    Some(_) => {
                        return Err(HttpError::Other(format!(
                            "{what}: still rate-limited after {max_rate} waits"
                        )))
                    }
                    None if any_status => {
                        let body = read_bounded(&mut response, self.max_body, what)?;
                        return Ok(Answer {
                            status,
                            body,
                            headers,
                        });
                    }
                    None => return Err(HttpError::Status(status)),
                }
            }
            if status >= 500 && server_retries < self.bounds.server_retries {
                server_retries += 1;
                let reason = format!("HTTP {status}");
                self.wait(
                    backoff(server_retries),
                    what,
                    &reason,
                    server_retries,
                    self.bounds.server_retries,
                );
                continue;
            }
            if (300..400).contains(&status) {
                let elsewhere = header(&headers, "location")
                    .and_then(Origin::of)
                    .is_some_and(|o| o != self.origin);
                if elsewhere {
                    return Err(HttpError::Other(format!(
                        "{what}: HTTP {status}, a redirect (not followed): redirected to another host"
                    )));
                }
                return Err(HttpError::Other(format!(
                    "{what}: HTTP {status}, a redirect (not followed: the token goes to the API host only)"
                )));
            }
            return Err(HttpError::Status(status));
        }
    }

    /// POST `body` with `headers` to `url` (which must be on the API base's origin), once: no
    /// retries, no rate-limit waits, redirects not followed — the caller reads the status (a
    /// verifier maps 403, 429 or a 3xx to its own verdict). Every status comes back as an
    /// [`Answer`] with its body (at most the client's body limit); only a transport failure
    /// or an oversized body is an error. The client's token, if any, is attached as by
    /// [`Client::get`]; `headers` are sent as given (a `Host` among them replaces the one
    /// derived from `url`: the connection still goes to `url`'s origin).
    pub fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        what: &str,
    ) -> Result<Answer, HttpError> {
        if !self.same_origin(url) {
            return Err(HttpError::Other(format!(
                "{what}: refused a request to another host than the API's"
            )));
        }
        let mut request = self.headed(self.agent.post(url), headers.iter().copied());
        if let Some(t) = self.timeout {
            request = request.config().timeout_global(Some(t)).build();
        }
        let mut response = request
            .send(body)
            .map_err(|e| HttpError::Other(format!("{what}: {}", describe(&e))))?;
        let status = response.status().as_u16();
        let headers = printable_headers(&response);
        let body = read_bounded(&mut response, self.max_body, what)?;
        Ok(Answer {
            status,
            body,
            headers,
        })
    }

    /// `request` with the client's token, if any, then `headers`.
    fn headed<'h, B>(
        &self,
        mut request: ureq::RequestBuilder<B>,
        headers: impl Iterator<Item = (&'h str, &'h str)>,
    ) -> ureq::RequestBuilder<B> {
        if let Some(t) = &self.token {
            request = request.header(t.header, &t.value);
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request
    }

    fn wait(&self, d: Duration, what: &str, reason: &str, n: u32, max: u32) {
        (self.notice)(&format!(
            "{what}: {reason}; waiting {} s before retrying ({n} of {max})",
            d.as_secs()
        ));
        std::thread::sleep(d);
    }
}

impl std::fmt::Debug for Client<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// The answer's headers whose values are printable ASCII, names lowercased (others are
/// dropped: nothing a server sends reaches a message unchecked).
fn printable_headers(response: &ureq::http::Response<ureq::Body>) -> Vec<(String, String)> {
    response
        .headers()
        .iter()
        .filter_map(|(n, v)| {
            let v = v.to_str().ok()?;
            v.bytes()
                .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
                .then(|| (n.as_str().to_ascii_lowercase(), v.to_string()))
        })
        .collect()
}

/// The body of `response`, at most `limit` bytes (more is an error).
fn read_bounded(
    response: &mut ureq::http::Response<ureq::Body>,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>, HttpError> {
    response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(n) => HttpError::Other(format!(
                "{what}: the answer is larger than {n} bytes; not read"
            )),
            e => HttpError::Other(format!("{what}: {}", describe(&e))),
        })
}

/// 1 s, 2 s, 4 s …
fn backoff(n: u32) -> Duration {
    Duration::from_secs(1 << (n.saturating_sub(1)).min(6))
}

fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Errors worth another try: the connection, not the answer.
fn transient(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::Timeout(_)
    )
}

/// An error in words, without URL or body.
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::Io(io) => format!("connection error ({})", io.kind()),
        ureq::Error::ConnectionFailed => "the connection failed".into(),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => "TLS error".into(),
        _ => "the request failed".into(),
    }
}

/// How long to wait before retrying a 403 or 429, from its headers: `Retry-After` in seconds,
/// or `x-ratelimit-remaining: 0` / `ratelimit-remaining: 0` with a `…-reset` epoch. A 429
/// without either waits [`DEFAULT_RATE_WAIT`]; a 403 without either is not a rate limit
/// (`None`). Waits are at least 1 s and at most [`MAX_WAIT`].
pub fn rate_limit_wait(status: u16, headers: &[(String, String)], now: u64) -> Option<Duration> {
    let clamp = |s: u64| Duration::from_secs(s.clamp(1, MAX_WAIT.as_secs()));
    if let Some(secs) = header(headers, "retry-after").and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(clamp(secs));
    }
    for prefix in ["x-ratelimit", "ratelimit"] {
        let remaining = header(headers, &format!("{prefix}-remaining")).map(str::trim);
        let reset =
            header(headers, &format!("{prefix}-reset")).and_then(|v| v.trim().parse::<u64>().ok());
        if let (Some("0"), Some(reset)) = (remaining, reset) {
            // One second past the reset: the forge's clock and ours differ by rounding.
            return Some(clamp(reset.saturating_sub(now).saturating_add(1)));
        }
    }
    (status == 429).then_some(DEFAULT_RATE_WAIT)
}

/// The `rel="next"` target of a `Link` header (`<url>; rel="next", <url>; rel="last"`).
pub fn link_next(value: &str) -> Option<&str> {
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        let after = &rest[close + 1..];
        let params_end = after.find('<').unwrap_or(after.len());
        let params = &after[..params_end];
        let is_next = params.split(';').any(|p| {
            let p = p.trim().trim_end_matches(',').trim();
            p.strip_prefix("rel=")
                .map(|r| r.trim_matches('"'))
                .is_some_and(|r| {
                    r.split_ascii_whitespace()
                        .any(|t| t.eq_ignore_ascii_case("next"))
                })
        });
        if is_next {
            return Some(target);
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn link_headers_give_the_next_page() {
        let gh = r#"<https://api.github.com/organizations/1/repos?page=2>; rel="next", <https://api.github.com/organizations/1/repos?page=5>; rel="last""#;
        assert_eq!(
            link_next(gh),
            Some("https://api.github.com/organizations/1/repos?page=2")
        );
        let last_first =
            r#"<https://h/x?page=1>; rel="first", <https://h/x?page=3&a=b,c>; rel="next""#;
        assert_eq!(link_next(last_first), Some("https://h/x?page=3&a=b,c"));
        assert_eq!(
            link_next(r#"<https://h/x?p=2>; rel=next"#),
            Some("https://h/x?p=2")
        );
        assert_eq!(
            link_next(r#"<https://h/x?p=2>; rel="prev next""#),
            Some("https://h/x?p=2")
        );
        assert_eq!(link_next(r#"<https://h/x?p=1>; rel="prev""#), None);
        assert_eq!(link_next(r#"<https://h/nextpage>; rel="last""#), None);
        assert_eq!(link_next("<unterminated; rel=\"next\""), None);
        assert_eq!(link_next(""), None);
    }

    #[test]
    fn rate_limit_headers_give_a_bounded_wait() {
        let now = 1_700_000_000;
        assert_eq!(
            rate_limit_wait(429, &h(&[("Retry-After", "7")]), now),
            Some(Duration::from_secs(7))
        );
        let gh = h(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1700000030"),
        ]);
        assert_eq!(
            rate_limit_wait(403, &gh, now),
            Some(Duration::from_secs(31))
        );
        let gl = h(&[
            ("RateLimit-Remaining", "0"),
            ("RateLimit-Reset", "1700000002"),
        ]);
        assert_eq!(rate_limit_wait(429, &gl, now), Some(Duration::from_secs(3)));
        // A reset in the past still waits a little; one far ahead is capped.
        let past = h(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "5")]);
        assert_eq!(
            rate_limit_wait(403, &past, now),
            Some(Duration::from_secs(1))
        );
        let far = h(&[("Retry-After", "99999999")]);
        assert_eq!(rate_limit_wait(429, &far, now), Some(MAX_WAIT));
        // Remaining budget left: a 403 is a permission problem, not a rate limit.
        let left = h(&[
            ("x-ratelimit-remaining", "12"),
            ("x-ratelimit-reset", "1700000030"),
        ]);
        assert_eq!(rate_limit_wait(403, &left, now), None);
        assert_eq!(rate_limit_wait(403, &[], now), None);
        assert_eq!(rate_limit_wait(429, &[], now), Some(DEFAULT_RATE_WAIT));
        // An HTTP-date or garbage Retry-After is not trusted as seconds.
        let junk = h(&[("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(rate_limit_wait(403, &junk, now), None);
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let o = Origin::of("https://API.github.com/orgs/x?page=2").unwrap();
        assert_eq!(
            (o.scheme, o.host.as_str(), o.port),
            ("https", "api.github.com", 443)
        );
        assert_eq!(Origin::of("https://api.github.com:443/x"), Some(o.clone()));
        assert_ne!(Origin::of("https://api.github.com:8443/x"), Some(o.clone()));
        assert_ne!(Origin::of("http://api.github.com/x"), Some(o.clone()));
        assert_eq!(Origin::of("https://evil.example@api.github.com/x"), None);
        assert_eq!(Origin::of("https://api.github.com\n/x"), None);
        assert_eq!(Origin::of("ftp://api.github.com/x"), None);
        assert_eq!(Origin::of("https://h:99999/x"), None);
        assert!(Origin::of("http://127.0.0.1:8080/").unwrap().is_loopback());
        assert!(Origin::of("http://[::1]:8080/").unwrap().is_loopback());
        assert!(!Origin::of("http://10.0.0.1/").unwrap().is_loopback());
        assert!(!Origin::of("http://127.0.0.1.evil.example/")
            .unwrap()
            .is_loopback());
    }

    #[test]
    fn bases_are_https_or_loopback_and_tokens_stay_out_of_debug() {
        let quiet = |_: &str| {};
        assert!(Client::new("http://ghe.example/api/v3", None, &quiet).is_err());
        assert!(Client::new("https://user:pw@ghe.example/api/v3", None, &quiet).is_err());
        let token = Token {
            header: "Authorization",
            value: "Bearer ghp_secretvalue".into(),
        };
        let c = Client::new("http://127.0.0.1:9/api/", Some(token), &quiet).unwrap();
        assert_eq!(c.base(), "http://127.0.0.1:9/api");
        assert!(!format!("{c:?}").contains("secretvalue"));
        assert!(c.same_origin("http://127.0.0.1:9/other?page=2"));
        assert!(!c.same_origin("http://127.0.0.1:10/api"));
        assert!(matches!(
            c.get("http://evil.example/api", "github"),
            Err(HttpError::Other(_))
        ));
    }

    #[test]
    fn bodies_past_the_limit_are_not_read() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for body_len in [1024, 4096] {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {body_len}\r\nConnection: close\r\n\r\n"
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&vec![b'['; body_len]);
            }
        });
        let quiet = |_: &str| {};
        let base = format!("http://{addr}");
        let c = Client::new(&base, None, &quiet)
            .unwrap()
            .with_max_body(2048);
        assert_eq!(c.get(&base, "test").map(|a| a.body.len()).ok(), Some(1024));
        match c.get(&base, "test") {
            Err(HttpError::Other(m)) => assert!(m.contains("larger than 2048 bytes"), "{m}"),
            other => panic!("{:?}", other.map(|a| a.body.len())),
        }
        server.join().unwrap();
    }
}
