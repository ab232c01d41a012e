//! A rule's verifier as written in its rule file (`[rules.verify]`), checked when the rule is
//! loaded.
//!
//! Contract: a [`VerifySpec`] that passed [`VerifySpec::check`] sends the secret only over
//! HTTPS, only to a URL whose host is in `hosts`, with GET or a body-less POST, in exactly
//! one place (a bearer header, a named header, basic auth, a query parameter, or the path
//! where a provider requires it). It says which statuses (and, optionally, which JSON field)
//! mean live or invalid, and where owner, scopes and expiry are read. A rule whose check
//! needs code names it (`code`) instead of a request.

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
    /// `POST` without a body.
    #[serde(rename = "POST")]
    Post,
}

/// A condition on the JSON answer: the value at `pointer` equals `equals`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// RFC 6901 JSON pointer.
    pub pointer: String,
    /// The value it must have.
    pub equals: serde_json::Value,
}

/// `[rules.verify]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySpec {
    /// Provider name: `--verify-endpoint PROVIDER=URL`, `[verify.hosts]`, concurrency.
    pub provider: String,
    /// Hosts the secret may be sent to.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// A verifier written in code (`aws-sts`) instead of a request.
    pub code: Option<String>,
    /// The id of a rule whose secret, found near this one, the check also needs.
    pub companion: Option<String>,
    /// GET (default) or POST (without a body).
    #[serde(default)]
    pub method: Method,
    /// The endpoint (https).
    pub url: Option<String>,
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

    /// Checks the spec; the error says what is wrong, in a sentence.
    pub fn check(&self) -> Result<(), String> {
        if !is_name(&self.provider) {
            return Err("verify: `provider` must be letters, digits, `-` or `_`".into());
        }
        if self.hosts.is_empty() {
            return Err("verify: `hosts` must name the provider's hosts".into());
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
            if !is_name(n) || !is_header_value(v) || v.contains(SECRET) {
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
        if self.code.is_some() {
            return Ok(());
        }
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
        if send == Send::Path {
            let authority_end = url["https://".len()..]
                .find('/')
                .map_or(url.len(), |i| i + "https://".len());
            if url[..authority_end].contains(SECRET) {
                return Err("verify: `{secret}` may not be in the URL's host".into());
            }
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
        for p in self
            .owner
            .iter()
            .chain(&self.scopes)
            .chain(&self.expires)
            .chain(self.live_when.as_ref().map(|c| &c.pointer))
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
        ];
        for b in bad {
            assert!(spec(b).is_err(), "accepted: {b}");
        }
        let no_hosts: VerifySpec =
            toml::from_str("provider = \"p\"\nurl = \"https://a.example/\"\nsend = \"bearer\"")
                .unwrap();
        assert!(no_hosts.check().is_err());
    }
}
