//! A rule's verifier as written in its rule file (`[rules.verify]`), checked when the rule is
//! loaded.
//!
//! Contract: a [`VerifySpec`] that passed [`VerifySpec::check`] sends the secret only over
//! HTTPS, only to a URL whose host is in `hosts` (or, for a provider whose hosts are each
//! customer's own, such as a Databricks workspace, a `url` that is only a path and no `hosts`:
//! then only to an endpoint the user configured), with GET, a body-less POST, or a POST of a
//! fixed JSON `body` written in the rule (a read-only query, never holding the secret), in
//! exactly one place (a bearer header, a named header, basic auth, a query parameter, or the
//! path where a provider requires it). A `companion` (the value of another rule found near
//! the secret, such as a Twilio account SID) may fill `{companion}` in the basic-auth user or
//! password, the header template or the URL's path. It says which statuses (and, optionally,
//! which JSON field) mean live or invalid, and where owner, scopes and expiry are read. A
//! rule whose check needs code names it (`code`) instead of a request.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::org::forge::http::Origin;

/// Where the secret goes in the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Send {
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// The header named `header`, its value `template` with `{secret}` replaced.
    Header,
    /// HTTP basic auth, `user` and `password` templates.
    Basic,
    /// The query parameter named `param`.
    Query,
    /// `{secret}` in the URL's path (only where the provider requires it).
    Path,
}

/// The HTTP method: read-only identity endpoints only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
pub enum Method {
    /// `GET`.
    #[default]
    #[serde(rename = "GET")]
    Get,
    /// `POST` without a body, or with the rule's fixed JSON `body`.
    #[serde(rename = "POST")]
    Post,
}

/// A condition on the JSON answer: the value at `pointer` equals `equals`, or (with
/// `present = true`) is there and not null.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// RFC 6901 JSON pointer.
    pub pointer: String,
    /// The value it must have.
    pub equals: Option<serde_json::Value>,
    /// `true`: any value but null will do.
    pub present: Option<bool>,
}

impl Condition {
    /// Whether `json` meets the condition.
    pub fn holds(&self, json: &serde_json::Value) -> bool {
        let found = json.pointer(&self.pointer);
        match (&self.equals, self.present) {
            (Some(v), _) => found == Some(v),
            (None, Some(true)) => found.is_some_and(|v| !v.is_null()),
            _ => false,
        }
    }

    /// What the condition asks, for messages.
    pub fn describe(&self) -> String {
        match &self.equals {
            Some(v) => format!("{} is not {v}", self.pointer),
            None => format!("{} is missing", self.pointer),
        }
    }
}

/// `[rules.verify]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySpec {
    /// Provider name: `--verify-endpoint PROVIDER=URL`, `[verify.hosts]`, concurrency.
    pub provider: String,
    /// Hosts the secret may be sent to; none when each customer has its own host (then `url`
    /// is only a path, and checks go only to an endpoint the user configured).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// A verifier written in code (`aws-sts`) instead of a request.
    pub code: Option<String>,
    /// The id of a rule whose secret, found near this one, the check also needs
    /// (`{companion}` in a data verifier's templates or path).
    pub companion: Option<String>,
    /// GET (default) or POST (without a body, or with `body`).
    #[serde(default)]
    pub method: Method,
    /// The endpoint (https), or only its path when each customer has its own host.
    pub url: Option<String>,
    /// A fixed JSON body for POST (a read-only query such as GraphQL's `viewer`); never the
    /// secret. Sent as `application/json`.
    pub body: Option<String>,
    /// Where the secret goes.
    pub send: Option<Send>,
    /// Header name for `send = "header"`.
    pub header: Option<String>,
    /// Header value for `send = "header"` (default `{secret}`).
    pub template: Option<String>,
    /// Basic-auth user template.
    pub user: Option<String>,
    /// Basic-auth password template.
    pub password: Option<String>,
    /// Query parameter for `send = "query"`.
    pub param: Option<String>,
    /// Fixed headers the provider requires (`anthropic-version`), never holding the secret.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Statuses that mean live (default 200).
    #[serde(default)]
    pub live: Vec<u16>,
    /// Statuses that mean invalid (default 401).
    #[serde(default)]
    pub invalid: Vec<u16>,
    /// With a live status: live only when this holds, invalid otherwise.
    pub live_when: Option<Condition>,
    /// With an invalid status: invalid only when this holds, unknown otherwise (a provider
    /// that answers 401 both for a wrong key and for a key without some permission).
    pub invalid_when: Option<Condition>,
    /// The provider keeps keys per region (or per self-hosted instance) that look alike: a key
    /// refused at the rule's own URL may be live elsewhere, so that answer is `unknown`; it is
    /// `invalid` only from an endpoint the user named (`--verify-endpoint`, `[verify]`).
    #[serde(default)]
    pub regional: bool,
    /// JSON pointers of the owner (`*` for every element of an array); values joined.
    #[serde(default)]
    pub owner: Vec<String>,
    /// JSON pointers of scopes (a string, a comma- or space-separated string, or an array).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// A response header holding scopes (comma-separated).
    pub scopes_header: Option<String>,
    /// JSON pointer of the expiry.
    pub expires: Option<String>,
    /// A response header holding the expiry.
    pub expires_header: Option<String>,
}

/// The secret's place in templates.
pub const SECRET: &str = "{secret}";

/// The companion's place in templates and the URL's path.
pub const COMPANION: &str = "{companion}";

/// Longest `body`.
pub const MAX_BODY: usize = 4096;

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_header_value(s: &str) -> bool {
    s.len() <= 256 && s.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

impl VerifySpec {
    /// The statuses that mean live.
    pub fn live_statuses(&self) -> &[u16] {
        if self.live.is_empty() {
            &[200]
        } else {
            &self.live
        }
    }

    /// The statuses that mean invalid.
    pub fn invalid_statuses(&self) -> &[u16] {
        if self.invalid.is_empty() {
            &[401]
        } else {
            &self.invalid
        }
    }

    /// Whether `host` (lower-case, as [`Origin`] gives it) is one of the rule's hosts.
    pub fn allows_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// Whether the provider has no host of its own (each customer has one): checks run only
    /// against an endpoint the user configured.
    pub fn needs_endpoint(&self) -> bool {
        self.url.as_deref().is_some_and(|u| u.starts_with('/'))
    }

    /// Whether a request (not a code verifier) puts a companion in it.
    pub fn sends_companion(&self) -> bool {
        self.code.is_none() && self.companion.is_some()
    }

    /// Checks the spec; the error says what is wrong, in a sentence.
    pub fn check(&self) -> Result<(), String> {
        if !is_name(&self.provider) {
            return Err("verify: `provider` must be letters, digits, `-` or `_`".into());
        }
        let path_only = self.needs_endpoint();
        if self.hosts.is_empty() && !path_only {
            return Err("verify: `hosts` must name the provider's hosts".into());
        }
        if path_only && !self.hosts.is_empty() {
            return Err(
                "verify: a `url` that is only a path (each customer's own host) takes no `hosts`"
                    .into(),
            );
        }
        for h in &self.hosts {
            let ok = Origin::of(&format!("https://{h}/")).is_some_and(|o| o.host == *h);
            if !ok || h.contains(':') {
                return Err(format!(
                    "verify: host `{h}` is not a lower-case host name without port"
                ));
            }
        }
        for (n, v) in &self.headers {
            if !is_name(n) || !is_header_value(v) || v.contains(SECRET) || v.contains(COMPANION) {
                return Err(format!(
                    "verify: header `{n}` must be a plain name and a fixed value (the secret goes by `send`)"
                ));
            }
        }
        let Some(url) = &self.url else {
            return match &self.code {
                Some(c) if is_name(c) => Ok(()),
                Some(_) => Err("verify: `code` must name a built-in verifier".into()),
                None => Err("verify: give a `url` (or the `code` of a built-in verifier)".into()),
            };
        };
        if path_only {
            // Checked as if on a host of its own: the user's endpoint replaces the origin.
            if url.starts_with("//") || Origin::of(&format!("https://h.invalid{url}")).is_none() {
                return Err("verify: a `url` that is only a path must start with one `/`".into());
            }
            if self.code.is_some() {
                return Err("verify: a built-in verifier (`code`) takes a full `url`".into());
            }
        } else {
            let origin = Origin::of(url)
                .ok_or_else(|| "verify: `url` must be an absolute https:// URL".to_string())?;
            if origin.scheme != "https" {
                return Err("verify: `url` must be https://".into());
            }
            if !self.allows_host(&origin.host) {
                return Err(format!(
                    "verify: the host of `url` ({}) is not in `hosts`",
                    origin.host
                ));
            }
        }
        if self.code.is_some() {
            return Ok(());
        }
        if let Some(c) = &self.companion {
            if !is_rule_id(c) {
                return Err("verify: `companion` must be a rule id".into());
            }
        }
        self.check_body()?;
        let send = self.send.ok_or(
            "verify: say where the secret goes: `send` = bearer, header, basic, query or path",
        )?;
        let in_url = url.matches(SECRET).count();
        if (send == Send::Path) != (in_url == 1) || in_url > 1 {
            return Err(
                "verify: `{secret}` appears in `url` once with `send = \"path\"`, never otherwise"
                    .into(),
            );
        }
        let authority_end = if path_only {
            0
        } else {
            url["https://".len()..]
                .find('/')
                .map_or(url.len(), |i| i + "https://".len())
        };
        if url[..authority_end].contains(SECRET) || url[..authority_end].contains(COMPANION) {
            return Err("verify: `{secret}` and `{companion}` may not be in the URL's host".into());
        }
        let query_start = url.find('?').unwrap_or(url.len());
        if url.matches(COMPANION).count() > 1 || url[query_start..].contains(COMPANION) {
            return Err(
                "verify: `{companion}` appears at most once in the URL, in its path".into(),
            );
        }
        let need = |field: &Option<String>, name: &str| -> Result<(), String> {
            match field {
                Some(v) if is_header_value(v) => Ok(()),
                Some(_) => Err(format!("verify: `{name}` must be visible ASCII")),
                None => Err(format!("verify: `send = \"{send:?}\"` needs `{name}`")),
            }
        };
        match send {
            Send::Header => {
                need(&self.header, "header")?;
                if !self.header.as_deref().is_some_and(is_name) {
                    return Err("verify: `header` must be a header name".into());
                }
                if let Some(t) = &self.template {
                    if !t.contains(SECRET) || !is_header_value(t) {
                        return Err("verify: `template` must hold `{secret}`".into());
                    }
                }
            }
            Send::Basic => {
                need(&self.user, "user")?;
                let pw = self.password.as_deref().unwrap_or("");
                let user = self.user.as_deref().unwrap_or("");
                if !(user.contains(SECRET) || pw.contains(SECRET)) || !is_header_value(pw) {
                    return Err("verify: `user` or `password` must hold `{secret}`".into());
                }
            }
            Send::Query => {
                need(&self.param, "param")?;
                if !self.param.as_deref().is_some_and(is_name) {
                    return Err("verify: `param` must be a parameter name".into());
                }
            }
            Send::Bearer | Send::Path => {}
        }
        let holds_companion = url.contains(COMPANION)
            || [&self.user, &self.password, &self.template]
                .iter()
                .any(|t| t.as_deref().is_some_and(|t| t.contains(COMPANION)));
        if holds_companion != self.companion.is_some() {
            return Err(
                "verify: `companion` names the rule whose value fills `{companion}` (in `user`, `password`, `template` or the URL's path): give both or neither"
                    .into(),
            );
        }
        for c in self.live_when.iter().chain(&self.invalid_when) {
            if !matches!((&c.equals, c.present), (Some(_), None) | (None, Some(true))) {
                return Err(
                    "verify: `live_when` and `invalid_when` take `equals = VALUE` or `present = true`"
                        .into(),
                );
            }
        }
        for p in self
            .owner
            .iter()
            .chain(&self.scopes)
            .chain(&self.expires)
            .chain(self.live_when.as_ref().map(|c| &c.pointer))
            .chain(self.invalid_when.as_ref().map(|c| &c.pointer))
        {
            if !(p.is_empty() || p.starts_with('/')) {
                return Err(format!("verify: `{p}` is not a JSON pointer"));
            }
        }
        for h in self.scopes_header.iter().chain(&self.expires_header) {
            if !is_name(h) {
                return Err(format!("verify: `{h}` is not a header name"));
            }
        }
        Ok(())
    }

    /// A `body` is a fixed JSON document of POST, without the secret or the companion.
    fn check_body(&self) -> Result<(), String> {
        let Some(body) = &self.body else {
            return Ok(());
        };
        if self.method != Method::Post {
            return Err("verify: a `body` goes only with `method = \"POST\"`".into());
        }
        if body.len() > MAX_BODY || body.contains(SECRET) || body.contains(COMPANION) {
            return Err(format!(
                "verify: `body` is a fixed JSON document of at most {MAX_BODY} bytes, never holding `{{secret}}` or `{{companion}}`"
            ));
        }
        match serde_json::from_str::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(_)) => Ok(()),
            _ => Err("verify: `body` must be a JSON object".into()),
        }
    }
}

fn is_rule_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> Result<VerifySpec, String> {
        let text = format!("provider = \"p\"\nhosts = [\"api.example.com\"]\n{extra}");
        let s: VerifySpec = toml::from_str(&text).map_err(|e| e.to_string())?;
        s.check().map(|()| s)
    }

    #[test]
    fn good_specs_pass() {
        assert!(spec("url = \"https://api.example.com/me\"\nsend = \"bearer\"").is_ok());
        assert!(spec(
            "url = \"https://api.example.com/me\"\nsend = \"header\"\nheader = \"x-api-key\""
        )
        .is_ok());
        assert!(spec(
            "url = \"https://api.example.com/me\"\nsend = \"basic\"\nuser = \"{secret}\"\npassword = \"\""
        )
        .is_ok());
        assert!(spec("url = \"https://api.example.com/v/{secret}\"\nsend = \"path\"").is_ok());
        assert!(
            spec("url = \"https://api.example.com/me\"\nsend = \"query\"\nparam = \"key\"").is_ok()
        );
        assert!(spec("code = \"aws-sts\"").is_ok());
        let s = spec(
            "method = \"POST\"\nurl = \"https://api.example.com/auth.test\"\nsend = \"bearer\"\nlive_when = { pointer = \"/ok\", equals = true }",
        )
        .unwrap();
        assert_eq!(s.method, Method::Post);
        assert_eq!(s.live_statuses(), &[200]);
        assert_eq!(s.invalid_statuses(), &[401]);
        // A fixed JSON body of a POST (a GraphQL query), a presence condition.
        let s = spec(
            "method = \"POST\"\nurl = \"https://api.example.com/graphql\"\nsend = \"basic\"\nuser = \"api\"\npassword = \"{secret}\"\nbody = '{\"query\":\"{ viewer { id } }\"}'\nlive_when = { pointer = \"/data/viewer\", present = true }",
        )
        .unwrap();
        assert!(s
            .live_when
            .unwrap()
            .holds(&serde_json::json!({"data": {"viewer": {"id": 1}}})));
        // A companion in basic auth and the path.
        assert!(spec(
            "companion = \"p.account-id\"\nurl = \"https://api.example.com/a/{companion}.json\"\nsend = \"basic\"\nuser = \"{companion}\"\npassword = \"{secret}\""
        )
        .is_ok());
        // Each customer's own host: a path and no hosts.
        let text = "provider = \"p\"\nurl = \"/api/me\"\nsend = \"bearer\"";
        let s: VerifySpec = toml::from_str(text).unwrap();
        assert!(s.check().is_ok() && s.needs_endpoint());
    }

    #[test]
    fn conditions_hold_on_values_or_presence() {
        let c = |t: &str| toml::from_str::<Condition>(t).unwrap();
        let json = serde_json::json!({"ok": true, "auth": null, "user": {"id": "1"}});
        assert!(c("pointer = \"/ok\"\nequals = true").holds(&json));
        assert!(!c("pointer = \"/ok\"\nequals = false").holds(&json));
        assert!(c("pointer = \"/user/id\"\npresent = true").holds(&json));
        assert!(!c("pointer = \"/auth\"\npresent = true").holds(&json));
        assert!(!c("pointer = \"/nope\"\npresent = true").holds(&json));
    }

    #[test]
    fn unsafe_specs_are_refused() {
        let bad = [
            "url = \"http://api.example.com/me\"\nsend = \"bearer\"",
            "url = \"https://evil.example/me\"\nsend = \"bearer\"",
            "url = \"https://api.example.com.evil.example/me\"\nsend = \"bearer\"",
            "url = \"https://user@api.example.com/me\"\nsend = \"bearer\"",
            "method = \"DELETE\"\nurl = \"https://api.example.com/me\"\nsend = \"bearer\"",
            "url = \"https://api.example.com/me\"",
            "url = \"https://api.example.com/{secret}\"\nsend = \"bearer\"",
            "url = \"https://api.example.com/me\"\nsend = \"path\"",
            "url = \"https://api.example.com/me\"\nsend = \"header\"",
            "url = \"https://api.example.com/me\"\nsend = \"bearer\"\nheaders = { x = \"{secret}\" }",
            "url = \"https://api.example.com/me\"\nsend = \"bearer\"\nbody = \"x\"",
            "url = \"https://api.example.com/me\"\nsend = \"basic\"\nuser = \"me\"",
            "url = \"https://api.example.com/me\"\nsend = \"bearer\"\nowner = [\"name\"]",
            // Bodies: only with POST, JSON objects, never the secret or the companion.
            "method = \"POST\"\nurl = \"https://api.example.com/q\"\nsend = \"bearer\"\nbody = \"not json\"",
            "method = \"POST\"\nurl = \"https://api.example.com/q\"\nsend = \"bearer\"\nbody = '[1]'",
            "method = \"POST\"\nurl = \"https://api.example.com/q\"\nsend = \"bearer\"\nbody = '{\"k\":\"{secret}\"}'",
            "url = \"https://api.example.com/q\"\nsend = \"bearer\"\nbody = '{}'",
            // Companions: declared and used, never in the host or the query, not in fixed headers.
            "url = \"https://api.example.com/a/{companion}\"\nsend = \"bearer\"",
            "companion = \"p.id\"\nurl = \"https://api.example.com/me\"\nsend = \"bearer\"",
            "companion = \"p.id\"\nurl = \"https://{companion}.example.com/me\"\nsend = \"bearer\"",
            "companion = \"p.id\"\nurl = \"https://api.example.com/me?id={companion}\"\nsend = \"bearer\"",
            "companion = \"p.id\"\nurl = \"https://api.example.com/me\"\nsend = \"bearer\"\nheaders = { x = \"{companion}\" }",
            // Conditions: one of equals or present = true.
            "url = \"https://api.example.com/me\"\nsend = \"bearer\"\nlive_when = { pointer = \"/a\" }",
            "url = \"https://api.example.com/me\"\nsend = \"bearer\"\nlive_when = { pointer = \"/a\", present = false }",
            "url = \"https://api.example.com/me\"\nsend = \"bearer\"\ninvalid_when = { pointer = \"a\", equals = 1 }",
            // A path-only URL with hosts.
            "url = \"/me\"\nsend = \"bearer\"",
            "url = \"//evil.example/me\"\nsend = \"bearer\"",
        ];
        for b in bad {
            assert!(spec(b).is_err(), "accepted: {b}");
        }
        let no_hosts: VerifySpec =
            toml::from_str("provider = \"p\"\nurl = \"https://a.example/\"\nsend = \"bearer\"")
                .unwrap();
        assert!(no_hosts.check().is_err());
        let path_code: VerifySpec =
            toml::from_str("provider = \"p\"\nurl = \"/me\"\ncode = \"aws-sts\"").unwrap();
        assert!(path_code.check().is_err());
        let protocol_relative: VerifySpec =
            toml::from_str("provider = \"p\"\nurl = \"//evil.example/me\"\nsend = \"bearer\"")
                .unwrap();
        assert!(protocol_relative.check().is_err());
    }
}
