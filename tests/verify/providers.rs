//! Every data verifier, live and invalid, against a fake provider on 127.0.0.1: owner, scopes
//! and expiry parsed, the secret sent only where the rule says.

use std::process::Output;

use base64::Engine as _;
use serde_json::Value;

use super::{bearer, letters, sent_only_in, token, verification, verify_stdin, HF_LIVE};
use crate::fake_forge::{FakeForge, Request};
use crate::util::{stderr, stdout, Fake, Tree};

/// One provider: the answers its fake gives and what the report must say.
struct Case {
    rule: &'static str,
    provider: &'static str,
    /// Path and query the verifier asks.
    path: &'static str,
    method: &'static str,
    secret: String,
    live_status: u16,
    live_headers: &'static [(&'static str, &'static str)],
    live_body: &'static str,
    owner: Option<&'static str>,
    scopes: &'static [&'static str],
    expires: Option<&'static str>,
    invalid_status: u16,
    invalid_body: &'static str,
    /// The header that must carry the secret, and its value (for basic auth, `Basic user:pass`
    /// before base64, see [`basic`]).
    auth: (&'static str, String),
}

/// `("Authorization", "Basic user:password")`: compared with the request's header decoded.
fn basic(user: &str, password: &str) -> (&'static str, String) {
    ("Authorization", format!("Basic {user}:{password}"))
}

/// A header value with a basic-auth credential decoded (`Basic user:password`).
fn decoded(value: &str) -> String {
    value
        .strip_prefix("Basic ")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .map_or_else(|| value.to_string(), |d| format!("Basic {d}"))
}

/// The requests the fake provider saw, live then invalid, for checks a case adds.
fn check(case: Case) -> Vec<Request> {
    let fake = FakeForge::start();
    fake.page(
        case.path,
        case.live_status,
        case.live_headers,
        case.live_body,
    );
    fake.page(case.path, case.invalid_status, &[], case.invalid_body);
    let endpoint = format!("{}={}", case.provider, fake.url());
    let live = verify_stdin(case.rule, &case.secret, &endpoint, &[]);
    let v = verification(&live);
    assert_eq!(v["status"], "live", "{}: {v}", case.rule);
    assert_eq!(v["owner"].as_str(), case.owner, "{}", case.rule);
    let scopes: Vec<&str> = v["scopes"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(scopes, case.scopes, "{}", case.rule);
    assert_eq!(v["expires"].as_str(), case.expires, "{}", case.rule);
    assert!(v["endpoint"].as_str().unwrap().ends_with(case.path), "{v}");
    let mut other = Fake::new(case.secret.len() as u64 * 7919);
    let revoked = format!(
        "{}{}",
        &case.secret[..4],
        other.alnum(case.secret.len() - 4)
    );
    let invalid = verify_stdin(case.rule, &revoked, &endpoint, &[]);
    assert_eq!(verification(&invalid)["status"], "invalid", "{}", case.rule);
    let seen = fake.requests();
    assert_eq!(seen.len(), 2, "{}", case.rule);
    for (r, secret) in seen.iter().zip([&case.secret, &revoked]) {
        assert_eq!(r.method, case.method, "{}", case.rule);
        assert_eq!(
            r.path, case.path,
            "{}: the secret goes in a header",
            case.rule
        );
        let expected = case.auth.1.replace(&case.secret, secret);
        assert_eq!(
            r.header(case.auth.0).map(decoded).as_deref(),
            Some(expected.as_str()),
            "{}",
            case.rule
        );
        sent_only_in(r, case.auth.0, secret);
        assert!(
            !String::from_utf8_lossy(&r.body).contains(secret.as_str()),
            "{}: the secret in the body",
            case.rule
        );
    }
    for o in [&live, &invalid] {
        assert!(!stderr(o).contains(&case.secret) && !stderr(o).contains(&revoked));
        assert!(!stdout(o).contains(&case.secret) && !stdout(o).contains(&revoked));
    }
    failures(&case);
    seen
}

/// The ways a provider's answer goes wrong, for every verifier: a rate limit waited out, a
/// redirect to another host not followed, a malformed body, no answer in time.
fn failures(case: &Case) {
    failures_with(case, &|endpoint, extra| {
        let o = verify_stdin(case.rule, &case.secret, endpoint, extra);
        assert!(!stdout(&o).contains(&case.secret) && !stderr(&o).contains(&case.secret));
        verification(&o)
    });
}

/// [`failures`], each check made by `check(PROVIDER=URL, extra flags)`.
fn failures_with(case: &Case, check: &dyn Fn(&str, &[&str]) -> Value) {
    let run = |fake: &FakeForge, extra: &[&str]| {
        check(&format!("{}={}", case.provider, fake.url()), extra)
    };
    // 429 with Retry-After, then the live answer.
    let fake = FakeForge::start();
    fake.page(case.path, 429, &[("Retry-After", "1")], "");
    fake.page(
        case.path,
        case.live_status,
        case.live_headers,
        case.live_body,
    );
    let v = run(&fake, &[]);
    assert_eq!(v["status"], "live", "{}: after a 429: {v}", case.rule);
    assert_eq!(fake.requests().len(), 2, "{}", case.rule);
    // A redirect elsewhere: an error, and the other host sees nothing.
    let elsewhere = FakeForge::start();
    let fake = FakeForge::start();
    let location = format!("{}{}", elsewhere.url(), case.path);
    fake.page(case.path, 302, &[("Location", &location)], "");
    let v = run(&fake, &[]);
    assert_eq!(v["status"], "error", "{}: a redirect: {v}", case.rule);
    assert!(elsewhere.requests().is_empty(), "{}", case.rule);
    // A malformed body: never a live verdict with an owner read from it.
    let fake = FakeForge::start();
    fake.page(
        case.path,
        case.live_status,
        case.live_headers,
        r#"{"name": "x", "orgs": [{"#,
    );
    let v = run(&fake, &[]);
    if case.owner.is_some() {
        assert_eq!(v["status"], "error", "{}: a malformed body: {v}", case.rule);
    } else {
        assert!(
            v["status"] == "error" || (v["status"] == "live" && v.get("owner").is_none()),
            "{}: a malformed body: {v}",
            case.rule
        );
    }
    // No answer in time.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let v = check(
        &format!("{}=http://{addr}", case.provider),
        &["--verify-timeout", "1"],
    );
    assert_eq!(v["status"], "error", "{}: no answer: {v}", case.rule);
}

#[test]
fn provider_huggingface() {
    let secret = letters("hf_", 34, 11);
    check(Case {
        rule: "huggingface.user-token",
        provider: "huggingface",
        path: "/api/whoami-v2",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: HF_LIVE,
        owner: Some("alice, acme-ml"),
        scopes: &[
            "fineGrained",
            "discussion.write",
            "repo.content.read",
            "repo.write",
        ],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"error":"Invalid credentials in Authorization header"}"#,
    });
}

#[test]
fn provider_github() {
    let secret = token("ghp_", 36, 12);
    check(Case {
        rule: "github.personal-access-token",
        provider: "github",
        path: "/user",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[
            ("X-OAuth-Scopes", "repo, read:org, workflow"),
            (
                "github-authentication-token-expiration",
                "2027-03-01 12:00:00 UTC",
            ),
        ],
        live_body: r#"{"login":"octocat","id":1}"#,
        owner: Some("octocat"),
        scopes: &["repo", "read:org", "workflow"],
        expires: Some("2027-03-01T12:00:00Z"),
        invalid_status: 401,
        invalid_body: r#"{"message":"Bad credentials"}"#,
    });
}

#[test]
fn provider_gitlab() {
    let secret = token("glpat-", 20, 13);
    check(Case {
        rule: "gitlab.personal-access-token",
        provider: "gitlab",
        path: "/api/v4/personal_access_tokens/self",
        method: "GET",
        auth: ("PRIVATE-TOKEN", secret.clone()),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"id":4,"name":"ci","revoked":false,"scopes":["api","read_repository"],
            "user_id":3041,"active":true,"expires_at":"2027-01-31"}"#,
        owner: Some("3041"),
        scopes: &["api", "read_repository"],
        expires: Some("2027-01-31"),
        invalid_status: 401,
        invalid_body: r#"{"message":"401 Unauthorized"}"#,
    });
}

#[test]
fn provider_openai() {
    let secret = format!("sk-proj-{}T3BlbkFJ{}", token("", 40, 14), token("", 40, 15));
    check(Case {
        rule: "openai.project-key",
        provider: "openai",
        path: "/v1/me",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"object":"user","id":"user-1","email":"ml@acme.example",
            "orgs":{"object":"list","data":[{"object":"organization","id":"org-1","title":"Acme"}]}}"#,
        owner: Some("ml@acme.example, Acme"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"error":{"code":"invalid_api_key"}}"#,
    });
}

#[test]
fn provider_anthropic() {
    let secret = format!("sk-ant-api03-{}AA", token("", 93, 16));
    check(Case {
        rule: "anthropic.api-key",
        provider: "anthropic",
        path: "/v1/models?limit=1",
        method: "GET",
        auth: ("x-api-key", secret.clone()),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"data":[{"id":"claude-x","type":"model"}],"has_more":true}"#,
        owner: None,
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"type":"error","error":{"type":"authentication_error"}}"#,
    });
    // The version header the API requires goes along.
    let fake = FakeForge::start();
    fake.json("/v1/models?limit=1", "{}");
    let key = format!("sk-ant-api03-{}AA", token("", 93, 17));
    let o = verify_stdin(
        "anthropic.api-key",
        &key,
        &format!("anthropic={}", fake.url()),
        &[],
    );
    assert_eq!(verification(&o)["status"], "live");
    assert_eq!(
        fake.requests()[0].header("anthropic-version"),
        Some("2023-06-01")
    );
}

#[test]
fn provider_anthropic_admin() {
    let secret = format!("sk-ant-admin01-{}AA", token("", 93, 18));
    check(Case {
        rule: "anthropic.admin-key",
        provider: "anthropic",
        path: "/v1/organizations/me",
        method: "GET",
        auth: ("x-api-key", secret.clone()),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"id":"1234-5678","name":"Acme Labs","type":"organization"}"#,
        owner: Some("Acme Labs, 1234-5678"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: "{}",
    });
}

#[test]
fn provider_slack_answers_200_for_invalid_tokens() {
    let secret = format!("xoxb-1234567890-1234567890-{}", token("", 24, 19));
    check(Case {
        rule: "slack.bot-token",
        provider: "slack",
        path: "/api/auth.test",
        method: "POST",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[("x-oauth-scopes", "chat:write,channels:read")],
        live_body: r#"{"ok":true,"url":"https://acme.slack.com/","team":"Acme","user":"deploybot","team_id":"T1","user_id":"U1"}"#,
        owner: Some("deploybot, Acme"),
        scopes: &["chat:write", "channels:read"],
        expires: None,
        invalid_status: 200,
        invalid_body: r#"{"ok":false,"error":"invalid_auth"}"#,
    });
}

#[test]
fn provider_stripe_basic_auth() {
    use base64::Engine as _;
    let secret = token("sk_live_", 40, 20);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{secret}:"));
    let fake = FakeForge::start();
    fake.json(
        "/v1/account",
        r#"{"id":"acct_1","business_profile":{"name":"Acme Shop"}}"#,
    );
    let o = verify_stdin(
        "stripe.secret-key",
        &secret,
        &format!("stripe={}", fake.url()),
        &[],
    );
    let v = verification(&o);
    assert_eq!(
        (v["status"].as_str(), v["owner"].as_str()),
        (Some("live"), Some("acct_1, Acme Shop"))
    );
    let r = &fake.requests()[0];
    assert_eq!(
        r.header("Authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    assert!(!r.path.contains(&secret));
    // 401 is invalid; for a restricted key a 403 (no permission on the account) is live.
    let fake = FakeForge::start();
    fake.page("/v1/account", 401, &[], "{}");
    let o = verify_stdin(
        "stripe.secret-key",
        &secret,
        &format!("stripe={}", fake.url()),
        &[],
    );
    assert_eq!(verification(&o)["status"], "invalid");
    let fake = FakeForge::start();
    fake.page(
        "/v1/account",
        403,
        &[],
        r#"{"error":{"type":"invalid_request_error"}}"#,
    );
    let rk = token("rk_live_", 40, 21);
    let o = verify_stdin(
        "stripe.restricted-key",
        &rk,
        &format!("stripe={}", fake.url()),
        &[],
    );
    assert_eq!(verification(&o)["status"], "live");
}

#[test]
fn provider_npm() {
    let secret = token("npm_", 36, 22);
    check(Case {
        rule: "npm.access-token",
        provider: "npm",
        path: "/-/whoami",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"username":"acme-publisher"}"#,
        owner: Some("acme-publisher"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: "{}",
    });
}

#[test]
fn provider_sendgrid() {
    let secret = format!("SG.{}.{}", token("", 22, 23), token("", 43, 24));
    check(Case {
        rule: "sendgrid.api-key",
        provider: "sendgrid",
        path: "/v3/scopes",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"scopes":["mail.send","alerts.read"]}"#,
        owner: None,
        scopes: &["mail.send", "alerts.read"],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"errors":[{"message":"authorization required"}]}"#,
    });
}

#[test]
fn provider_cohere() {
    let secret = token("", 40, 25);
    check(Case {
        rule: "cohere.api-key",
        provider: "cohere",
        path: "/v1/check-api-key",
        method: "POST",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"valid":true,"organization_id":"org-9","owner_id":"user-3"}"#,
        owner: Some("org-9, user-3"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"message":"invalid api token"}"#,
    });
}

/// Providers whose check is a listing that answers 200 or 401, with nothing about the owner.
fn listing(
    rule: &'static str,
    provider: &'static str,
    path: &'static str,
    secret: String,
    auth_header: &'static str,
) {
    let auth = if auth_header == "Authorization" {
        bearer(&secret)
    } else {
        (auth_header, secret.clone())
    };
    check(Case {
        rule,
        provider,
        path,
        method: "GET",
        auth,
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"data":[]}"#,
        owner: None,
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: "{}",
    });
}

#[test]
fn provider_mistral() {
    listing(
        "mistral.api-key",
        "mistral",
        "/v1/models",
        token("", 32, 26),
        "Authorization",
    );
}

#[test]
fn provider_groq() {
    listing(
        "groq.api-key",
        "groq",
        "/openai/v1/models",
        token("gsk_", 52, 27),
        "Authorization",
    );
}

#[test]
fn provider_together() {
    listing(
        "together.api-key",
        "together",
        "/v1/models",
        token("tgp_v1_", 43, 28),
        "Authorization",
    );
}

#[test]
fn provider_pinecone() {
    listing(
        "pinecone.api-key",
        "pinecone",
        "/indexes",
        token("pcsk_", 60, 29),
        "Api-Key",
    );
}

#[test]
fn provider_langsmith() {
    listing(
        "langsmith.api-key",
        "langsmith",
        "/api/v1/sessions?limit=1",
        token("lsv2_pt_", 32, 30),
        "x-api-key",
    );
}

#[test]
fn provider_replicate() {
    let secret = token("r8_", 37, 31);
    check(Case {
        rule: "replicate.api-token",
        provider: "replicate",
        path: "/v1/account",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"type":"organization","username":"acme","name":"Acme"}"#,
        owner: Some("acme"),
        scopes: &["organization"],
        expires: None,
        invalid_status: 401,
        invalid_body: "{}",
    });
}

#[test]
fn provider_datadog_answers_valid_false() {
    let secret = token("", 32, 32).to_ascii_lowercase();
    check(Case {
        rule: "datadog.api-key",
        provider: "datadog",
        path: "/api/v1/validate",
        method: "GET",
        auth: ("DD-API-KEY", secret.clone()),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"valid":true}"#,
        owner: None,
        scopes: &[],
        expires: None,
        invalid_status: 403,
        invalid_body: r#"{"errors":["Forbidden"]}"#,
    });
}

#[test]
fn provider_google_gemini() {
    let secret = token("AIza", 35, 33);
    check(Case {
        rule: "google.gemini-api-key",
        provider: "google",
        path: "/v1beta/models?pageSize=1",
        method: "GET",
        auth: ("x-goog-api-key", secret.clone()),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"models":[]}"#,
        owner: None,
        scopes: &[],
        expires: None,
        invalid_status: 400,
        invalid_body: r#"{"error":{"status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}"#,
    });
}

#[test]
fn aws_secret_keys_are_checked_with_the_key_id_found_near_them() {
    // Alone (from standard input), a secret key has no key id: nothing is sent.
    let fake = FakeForge::start();
    let o = verify_stdin(
        "aws.secret-access-key",
        &token("", 40, 34),
        &format!("aws={}", fake.url()),
        &[],
    );
    let v = verification(&o);
    assert_eq!(v["status"], "unknown", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("no access key id"),
        "{v}"
    );
    assert!(fake.requests().is_empty());

    // In a file with its key id two lines above: STS GetCallerIdentity, signed with both.
    let mut f = Fake::new(3501);
    let id = format!("AKIA{}", f.string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16));
    let secret = f.string(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        40,
    );
    let tree = crate::util::Tree::new();
    tree.write(
        "credentials",
        format!("[default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
    );
    let sts = FakeForge::start();
    sts.page(
        "/",
        200,
        &[("Content-Type", "text/xml")],
        "<GetCallerIdentityResponse><GetCallerIdentityResult>\
         <Arn>arn:aws:iam::210987654321:user/ci-deploy</Arn><UserId>AIDAEXAMPLEUSERID01</UserId>\
         <Account>210987654321</Account></GetCallerIdentityResult></GetCallerIdentityResponse>",
    );
    let o = crate::util::trawl([
        "scan",
        tree.path().to_str().unwrap(),
        "-f",
        "json",
        "--verify",
        "--verify-endpoint",
        &format!("aws={}/", sts.url()),
    ]);
    let report: Value = serde_json::from_str(&stdout(&o)).expect("JSON report");
    let aws = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "aws.secret-access-key")
        .expect("the secret key is found")
        .clone();
    assert_eq!(aws["verification"]["status"], "live", "{aws}");
    assert!(aws["verification"]["owner"]
        .as_str()
        .unwrap()
        .contains("arn:aws:iam::210987654321:user/ci-deploy"));
    let seen = sts.requests();
    assert_eq!(seen.len(), 1, "one STS call for the pair");
    let auth = seen[0].header("Authorization").unwrap();
    assert!(
        auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={id}/")),
        "{auth}"
    );
    assert!(!String::from_utf8_lossy(&seen[0].body).contains(&secret));
    assert!(seen[0].headers.iter().all(|(_, v)| !v.contains(&secret)));
    assert!(!stdout(&o).contains(&secret) && !stderr(&o).contains(&secret));
}

/// `n` lowercase hex characters.
fn hex(n: usize, seed: u64) -> String {
    Fake::new(seed).string(b"0123456789abcdef", n)
}

#[test]
fn provider_wandb_posts_a_fixed_graphql_query() {
    let secret = format!("wandb_v1_{}_{}", token("", 27, 60), token("", 49, 61));
    let seen = check(Case {
        rule: "wandb.api-key-v1",
        provider: "wandb",
        path: "/graphql",
        method: "POST",
        auth: basic("api", &secret),
        secret: secret.clone(),
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"data":{"viewer":{"id":"VXNlcjox","entity":"alice","username":"alice",
            "teams":{"edges":[{"node":{"name":"acme-ml"}}]}}}}"#,
        owner: Some("alice, acme-ml"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"errors":[{"message":"user is not logged in"}]}"#,
    });
    // The query is the rule's, as JSON, and only reads.
    let body: Value = serde_json::from_slice(&seen[0].body).expect("a JSON body");
    let query = body["query"].as_str().unwrap();
    assert!(query.starts_with("query Viewer { viewer {"), "{query}");
    assert!(!query.contains("mutation"));
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    // An answer without a viewer is anonymous: invalid. The 40-hex key is checked the same way.
    let fake = FakeForge::start();
    fake.json("/graphql", r#"{"data":{"viewer":null}}"#);
    let o = verify_stdin(
        "wandb.api-key",
        &hex(40, 62),
        &format!("wandb={}", fake.url()),
        &[],
    );
    assert_eq!(verification(&o)["status"], "invalid");
    assert_eq!(fake.requests()[0].method, "POST");
}

#[test]
fn provider_databricks_asks_only_the_workspace_named() {
    let secret = format!("dapi{}", hex(32, 63));
    check(Case {
        rule: "databricks.personal-access-token",
        provider: "databricks",
        path: "/api/2.0/preview/scim/v2/Me",
        method: "GET",
        auth: bearer(&secret),
        secret: secret.clone(),
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"userName":"ml@acme.example","displayName":"ML Bot",
            "entitlements":[{"value":"workspace-access"},{"value":"databricks-sql-access"}]}"#,
        owner: Some("ml@acme.example, ML Bot"),
        scopes: &["workspace-access", "databricks-sql-access"],
        expires: None,
        invalid_status: 403,
        invalid_body: r#"{"error_code":403,"message":"Invalid access token."}"#,
    });
    // No workspace named: unknown, and nothing sent anywhere.
    let other = FakeForge::start();
    let o = verify_stdin(
        "databricks.personal-access-token",
        &secret,
        &format!("huggingface={}", other.url()),
        &[],
    );
    let v = verification(&o);
    assert_eq!(v["status"], "unknown", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("databricks has no default host"),
        "{v}"
    );
    assert!(other.requests().is_empty());
    // A workspace a scanned file names is not asked: the host beside the token is ignored.
    let tree = Tree::new();
    tree.write(
        ".databrickscfg",
        format!(
            "[DEFAULT]\nhost = https://{}\ntoken = {secret}\n",
            other.url().trim_start_matches("http://")
        ),
    );
    let o = crate::util::trawl([
        "scan",
        tree.path().to_str().unwrap(),
        "-f",
        "json",
        "--verify",
    ]);
    let v = &finding(&o, "databricks.personal-access-token")["verification"];
    assert_eq!(v["status"], "unknown", "{v}");
    assert!(other.requests().is_empty());
}

/// The finding of `rule` in a JSON scan report.
fn finding(o: &Output, rule: &str) -> Value {
    let report: Value = serde_json::from_str(&stdout(o)).expect("JSON report");
    report
        .as_array()
        .or(report["findings"].as_array())
        .expect("findings")
        .iter()
        .find(|f| f["rule"] == rule)
        .unwrap_or_else(|| panic!("no {rule} finding: {report}"))
        .clone()
}

/// `trawl scan DIR -f json --verify --verify-endpoint ENDPOINT [extra]`: the report.
fn scan_verify(tree: &Tree, endpoint: &str, extra: &[&str]) -> Output {
    let dir = tree.path().to_str().unwrap();
    let mut args = vec![
        "scan",
        dir,
        "-f",
        "json",
        "--verify",
        "--verify-endpoint",
        endpoint,
    ];
    args.extend_from_slice(extra);
    crate::util::trawl(args)
}

#[test]
fn provider_twilio_pairs_the_auth_token_with_its_account_sid() {
    let sid = format!("AC{}", hex(32, 64));
    let secret = hex(32, 65);
    let path: &'static str = Box::leak(format!("/2010-04-01/Accounts/{sid}.json").into_boxed_str());
    let env = |token: &str| format!("TWILIO_ACCOUNT_SID={sid}\nTWILIO_AUTH_TOKEN={token}\n");
    let run = |token: &str, endpoint: &str, extra: &[&str]| {
        let tree = Tree::new();
        tree.write(".env", env(token));
        let o = scan_verify(&tree, endpoint, extra);
        assert!(!stdout(&o).contains(token) && !stderr(&o).contains(token));
        finding(&o, "twilio.auth-token")["verification"].clone()
    };
    // Live: basic auth SID:token, the SID in the path, the token nowhere else.
    let fake = FakeForge::start();
    fake.json(
        path,
        r#"{"sid":"ACx","friendly_name":"Acme Prod","status":"active","type":"Full"}"#,
    );
    let endpoint = format!("twilio={}", fake.url());
    let v = run(&secret, &endpoint, &[]);
    assert_eq!(v["status"], "live", "{v}");
    assert_eq!(v["owner"], "Acme Prod, ACx");
    assert_eq!(
        v["endpoint"].as_str().unwrap(),
        format!("{}/2010-04-01/Accounts/….json", fake.url()),
        "the report shows neither the SID nor the token"
    );
    let r = &fake.requests()[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, path);
    assert_eq!(
        r.header("Authorization").map(decoded).as_deref(),
        Some(format!("Basic {sid}:{secret}").as_str())
    );
    sent_only_in(r, "Authorization", &secret);
    // Invalid: a token Twilio refuses.
    let fake = FakeForge::start();
    fake.page(path, 401, &[], r#"{"code":20003,"message":"Authenticate"}"#);
    let revoked = hex(32, 66);
    let v = run(&revoked, &format!("twilio={}", fake.url()), &[]);
    assert_eq!(v["status"], "invalid", "{v}");
    // No SID nearby (the token alone on standard input, or alone in a file): nothing sent.
    let fake = FakeForge::start();
    let endpoint = format!("twilio={}", fake.url());
    let o = verify_stdin("twilio.auth-token", &secret, &endpoint, &[]);
    let v = verification(&o);
    assert_eq!(v["status"], "unknown", "{v}");
    assert_eq!(
        v["message"],
        "no twilio.account-sid found near the secret: nothing sent"
    );
    let tree = Tree::new();
    tree.write(".env", format!("TWILIO_AUTH_TOKEN={secret}\n"));
    let o = scan_verify(&tree, &endpoint, &[]);
    assert_eq!(
        finding(&o, "twilio.auth-token")["verification"]["status"],
        "unknown"
    );
    assert!(fake.requests().is_empty(), "a request without the SID");
    // An API key secret beside the SID is its own rule, which no auth-token check judges: a
    // live key is never called invalid.
    let tree = Tree::new();
    tree.write(
        ".env",
        format!("TWILIO_ACCOUNT_SID={sid}\nTWILIO_API_SECRET={secret}\n"),
    );
    let o = scan_verify(&tree, &endpoint, &[]);
    let v = finding(&o, "twilio.api-key-secret")["verification"].clone();
    assert_eq!(v["status"], "unknown", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("no verifier"),
        "{v}"
    );
    assert!(
        fake.requests().is_empty(),
        "an API key secret checked as an auth token"
    );
    // The shared failure cases, through a scan that finds both.
    let case = Case {
        rule: "twilio.auth-token",
        provider: "twilio",
        path,
        method: "GET",
        auth: basic(&sid, &secret),
        secret: secret.clone(),
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"sid":"ACx","friendly_name":"Acme Prod"}"#,
        owner: Some("Acme Prod, ACx"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: "{}",
    };
    failures_with(&case, &|endpoint, extra| run(&secret, endpoint, extra));
}

#[test]
fn provider_sentry_needs_the_token_accepted() {
    let secret = format!("sntryu_{}", hex(64, 67));
    check(Case {
        rule: "sentry.user-auth-token",
        provider: "sentry",
        path: "/api/0/",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"version":"0","auth":{"scopes":["org:read","project:read"]},
            "user":{"id":"1","username":"jane@example.com"}}"#,
        owner: Some("jane@example.com"),
        scopes: &["org:read", "project:read"],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"detail":"Invalid token"}"#,
    });
    // `GET /api/0/` answers anonymous requests too: without `auth` the token was not taken.
    let fake = FakeForge::start();
    fake.json("/api/0/", r#"{"version":"0","auth":null,"user":null}"#);
    let o = verify_stdin(
        "sentry.legacy-auth-token",
        &hex(64, 68),
        &format!("sentry={}", fake.url()),
        &[],
    );
    assert_eq!(verification(&o)["status"], "invalid");
}

#[test]
fn provider_openrouter() {
    let secret = format!("sk-or-v1-{}", hex(64, 69));
    check(Case {
        rule: "openrouter.api-key",
        provider: "openrouter",
        path: "/api/v1/key",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"data":{"label":"sk-or-v1-au7...890","creator_user_id":"user_2dHFtVWx2n56w6",
            "limit":100,"usage":25.5,"expires_at":"2027-12-31T23:59:59Z"}}"#,
        owner: Some("user_2dHFtVWx2n56w6"),
        scopes: &[],
        expires: Some("2027-12-31T23:59:59Z"),
        invalid_status: 401,
        invalid_body: r#"{"error":{"code":401,"message":"No auth credentials found"}}"#,
    });
}

#[test]
fn provider_deepseek() {
    listing(
        "deepseek.api-key",
        "deepseek",
        "/user/balance",
        format!("sk-{}", hex(32, 70)),
        "Authorization",
    );
}

#[test]
fn provider_xai_answers_400_for_a_bad_key() {
    let secret = token("xai-", 80, 71);
    check(Case {
        rule: "xai.api-key",
        provider: "xai",
        path: "/v1/api-key",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"redacted_api_key":"xai-...b14o","name":"ci key","team_id":"5ea6f6bd",
            "acls":["api-key:model:*","api-key:endpoint:*"],"api_key_blocked":false}"#,
        owner: Some("ci key, 5ea6f6bd"),
        scopes: &["api-key:model:*", "api-key:endpoint:*"],
        expires: None,
        invalid_status: 400,
        invalid_body: r#"{"code":"Client specified an invalid argument","error":"Incorrect API key provided"}"#,
    });
}

#[test]
fn provider_cloudflare_token_must_be_active() {
    let secret = token("cfut_", 44, 72);
    check(Case {
        rule: "cloudflare.user-api-token",
        provider: "cloudflare",
        path: "/client/v4/user/tokens/verify",
        method: "GET",
        auth: bearer(&secret),
        secret: secret.clone(),
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"success":true,"errors":[],"messages":[],"result":{"id":"f267e341",
            "status":"active","expires_on":"2027-01-01T00:00:00Z"}}"#,
        owner: None,
        scopes: &[],
        expires: Some("2027-01-01T00:00:00Z"),
        invalid_status: 401,
        invalid_body: r#"{"success":false,"errors":[{"code":1000,"message":"Invalid API Token"}]}"#,
    });
    let fake = FakeForge::start();
    fake.json(
        "/client/v4/user/tokens/verify",
        r#"{"success":true,"result":{"id":"f267e341","status":"disabled"}}"#,
    );
    let o = verify_stdin(
        "cloudflare.user-api-token",
        &secret,
        &format!("cloudflare={}", fake.url()),
        &[],
    );
    assert_eq!(verification(&o)["status"], "invalid");
}

#[test]
fn provider_digitalocean() {
    let secret = format!("dop_v1_{}", hex(64, 73));
    check(Case {
        rule: "digitalocean.personal-access-token",
        provider: "digitalocean",
        path: "/v2/account",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"account":{"droplet_limit":25,"email":"sammy@example.com","uuid":"b6fr89db",
            "status":"active","team":{"uuid":"5df3e300","name":"My Team"}}}"#,
        owner: Some("sammy@example.com, My Team"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"id":"Unauthorized","message":"Unable to authenticate you"}"#,
    });
}

#[test]
fn provider_notion() {
    let secret = format!(
        "ntn_{}{}",
        Fake::new(74).string(b"0123456789", 11),
        token("", 35, 75)
    );
    let seen = check(Case {
        rule: "notion.integration-token",
        provider: "notion",
        path: "/v1/users/me",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"object":"user","id":"16d84278","name":"pied piper","type":"bot",
            "bot":{"owner":{"type":"workspace","workspace":true},"workspace_name":"Acme"}}"#,
        owner: Some("pied piper, Acme"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"object":"error","status":401,"code":"unauthorized"}"#,
    });
    assert_eq!(seen[0].header("Notion-Version"), Some("2022-06-28"));
}

#[test]
fn provider_discord_bot_token() {
    let secret = format!(
        "M{}.{}.{}",
        token("", 25, 76),
        token("", 6, 77),
        token("", 38, 78)
    );
    check(Case {
        rule: "discord.bot-token",
        provider: "discord",
        path: "/api/v10/users/@me",
        method: "GET",
        auth: ("Authorization", format!("Bot {secret}")),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"id":"80351110224678912","username":"deploybot","bot":true}"#,
        owner: Some("deploybot, 80351110224678912"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"message":"401: Unauthorized","code":0}"#,
    });
}

#[test]
fn provider_linear_posts_a_fixed_graphql_query() {
    let secret = token("lin_api_", 40, 79);
    let seen = check(Case {
        rule: "linear.api-key",
        provider: "linear",
        path: "/graphql",
        method: "POST",
        auth: ("Authorization", secret.clone()),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"data":{"viewer":{"id":"u1","name":"Ada","email":"ada@acme.example",
            "organization":{"name":"Acme"}}}}"#,
        owner: Some("ada@acme.example, Acme"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"errors":[{"message":"Authentication required, not authenticated"}]}"#,
    });
    let body: Value = serde_json::from_slice(&seen[0].body).expect("a JSON body");
    assert!(body["query"].as_str().unwrap().starts_with("query Viewer"));
}

#[test]
fn provider_heroku() {
    let secret = token("HRKU-AA", 58, 80);
    let seen = check(Case {
        rule: "heroku.api-key-v2",
        provider: "heroku",
        path: "/account",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"email":"ops@acme.example","id":"01234567-89ab"}"#,
        owner: Some("ops@acme.example"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"id":"unauthorized","message":"Invalid credentials provided."}"#,
    });
    assert_eq!(
        seen[0].header("Accept"),
        Some("application/vnd.heroku+json; version=3")
    );
}

#[test]
fn provider_buildkite() {
    let secret = format!("bkua_{}", hex(40, 81));
    check(Case {
        rule: "buildkite.api-access-token",
        provider: "buildkite",
        path: "/v2/access-token",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"uuid":"b63254c0","scopes":["read_builds","read_pipelines"],
            "description":"CI token","user":{"email":"algernon@acme.example","name":"A"}}"#,
        owner: Some("algernon@acme.example, CI token"),
        scopes: &["read_builds", "read_pipelines"],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"message":"Authentication required."}"#,
    });
}

#[test]
fn provider_circleci() {
    let secret = format!("CCIPAT_{}_{}", token("", 22, 82), hex(40, 83));
    check(Case {
        rule: "circleci.personal-api-token",
        provider: "circleci",
        path: "/api/v2/me",
        method: "GET",
        auth: ("Circle-Token", secret.clone()),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"id":"5e0f","login":"octo","name":"Octo Cat"}"#,
        owner: Some("octo"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"message":"You must log in first."}"#,
    });
}

#[test]
fn provider_netlify() {
    let secret = token("nfp_", 36, 84);
    check(Case {
        rule: "netlify.personal-access-token",
        provider: "netlify",
        path: "/api/v1/user",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"id":"1","email":"web@acme.example","full_name":"Web Team"}"#,
        owner: Some("web@acme.example, Web Team"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"code":401,"message":"Access Denied"}"#,
    });
}

#[test]
fn provider_telegram_token_in_the_path() {
    let secret = format!(
        "{}:AA{}",
        Fake::new(85).string(b"0123456789", 10),
        token("", 33, 86)
    );
    let path: &'static str = Box::leak(format!("/bot{secret}/getMe").into_boxed_str());
    let fake = FakeForge::start();
    fake.json(
        path,
        r#"{"ok":true,"result":{"id":1,"is_bot":true,"username":"acme_deploy_bot"}}"#,
    );
    let endpoint = format!("telegram={}", fake.url());
    let o = verify_stdin("telegram.bot-token", &secret, &endpoint, &[]);
    let v = verification(&o);
    assert_eq!(v["status"], "live", "{v}");
    assert_eq!(v["owner"], "acme_deploy_bot");
    // The report's endpoint hides the token; the request's path holds it, `:` unescaped.
    assert_eq!(
        v["endpoint"].as_str().unwrap(),
        format!("{}/bot…/getMe", fake.url())
    );
    assert!(!stdout(&o).contains(&secret) && !stderr(&o).contains(&secret));
    let r = &fake.requests()[0];
    assert_eq!(r.path, path);
    assert!(r.headers.iter().all(|(_, v)| !v.contains(&secret)));
    // A revoked token: 401, `ok: false`.
    let revoked = format!(
        "{}:AA{}",
        Fake::new(87).string(b"0123456789", 10),
        token("", 33, 88)
    );
    let gone: &'static str = Box::leak(format!("/bot{revoked}/getMe").into_boxed_str());
    fake.page(
        gone,
        401,
        &[],
        r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#,
    );
    let o = verify_stdin("telegram.bot-token", &revoked, &endpoint, &[]);
    assert_eq!(verification(&o)["status"], "invalid");
    failures(&Case {
        rule: "telegram.bot-token",
        provider: "telegram",
        path,
        method: "GET",
        auth: ("", String::new()),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"ok":true,"result":{"username":"acme_deploy_bot"}}"#,
        owner: Some("acme_deploy_bot"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: "{}",
    });
}

#[test]
fn provider_airtable() {
    let secret = format!("pat{}.{}", token("", 14, 89), hex(64, 90));
    check(Case {
        rule: "airtable.personal-access-token",
        provider: "airtable",
        path: "/v0/meta/whoami",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"id":"usrL2PNC5o3H4lBEi","email":"data@acme.example",
            "scopes":["data.records:read","schema.bases:read"]}"#,
        owner: Some("data@acme.example, usrL2PNC5o3H4lBEi"),
        scopes: &["data.records:read", "schema.bases:read"],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"error":{"type":"AUTHENTICATION_REQUIRED"}}"#,
    });
}

#[test]
fn provider_postman() {
    let secret = format!("PMAK-{}-{}", hex(24, 91), hex(34, 92));
    check(Case {
        rule: "postman.api-key",
        provider: "postman",
        path: "/me",
        method: "GET",
        auth: ("X-Api-Key", secret.clone()),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"user":{"id":12345678,"username":"taylor-lee","email":"taylor@acme.example"}}"#,
        owner: Some("taylor-lee, taylor@acme.example"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"error":{"name":"AuthenticationError","message":"Invalid API Key."}}"#,
    });
}

#[test]
fn provider_terraform() {
    let secret = format!("{}.atlasv1.{}", token("", 14, 93), token("", 67, 94));
    check(Case {
        rule: "terraform.api-token",
        provider: "terraform",
        path: "/api/v2/account/details",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"data":{"id":"user-V3R563qtJNcExAkN","type":"users",
            "attributes":{"username":"admin","email":"admin@acme.example"}}}"#,
        owner: Some("admin, admin@acme.example"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"errors":[{"status":"401","title":"unauthorized"}]}"#,
    });
}

#[test]
fn provider_pulumi() {
    let secret = format!("pul-{}", hex(40, 95));
    let seen = check(Case {
        rule: "pulumi.access-token",
        provider: "pulumi",
        path: "/api/user",
        method: "GET",
        auth: ("Authorization", format!("token {secret}")),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"githubLogin":"acme-ci","name":"Acme CI","organizations":[]}"#,
        owner: Some("acme-ci, Acme CI"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"code":401,"message":"Unauthorized: No credentials provided or are invalid."}"#,
    });
    assert_eq!(seen[0].header("Accept"), Some("application/vnd.pulumi+8"));
}

#[test]
fn provider_honeycomb() {
    let secret = format!(
        "hcaik_{}",
        Fake::new(96).string(b"abcdefghijklmnopqrstuvwxyz0123456789", 58)
    );
    check(Case {
        rule: "honeycomb.api-key",
        provider: "honeycomb",
        path: "/1/auth",
        method: "GET",
        auth: ("X-Honeycomb-Team", secret.clone()),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"id":"FL_xMM5LapLC","type":"ingest","api_key_access":{"events":true},
            "environment":{"name":"Production","slug":"production"},
            "team":{"name":"Acme","slug":"acme"}}"#,
        owner: Some("Acme, Production"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"error":"unknown API key - check your credentials"}"#,
    });
}

#[test]
fn provider_doppler() {
    let secret = format!("dp.pt.{}", token("", 43, 97));
    check(Case {
        rule: "doppler.token",
        provider: "doppler",
        path: "/v3/me",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"slug":"e8f1","name":"laptop","type":"personal",
            "token_preview":"dp.pt.abc...","workplace":{"slug":"acme","name":"Acme"}}"#,
        owner: Some("Acme, laptop"),
        scopes: &["personal"],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"messages":["Invalid Auth token"],"success":false}"#,
    });
}

#[test]
fn provider_azure_openai_asks_only_the_resource_named() {
    let secret = hex(32, 98);
    check(Case {
        rule: "azure-openai.api-key",
        provider: "azure-openai",
        path: "/openai/models?api-version=2024-10-21",
        method: "GET",
        auth: ("api-key", secret.clone()),
        secret: secret.clone(),
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"data":[{"id":"gpt-4o","object":"model","status":"succeeded"}]}"#,
        owner: None,
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint."}}"#,
    });
    let o = verify_stdin(
        "azure-openai.api-key",
        &secret,
        "openai=http://127.0.0.1:9",
        &[],
    );
    let v = verification(&o);
    assert_eq!(v["status"], "unknown", "{v}");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("azure-openai has no default host"));
}

#[test]
fn provider_asana() {
    let secret = format!(
        "2/{}/{}:{}",
        Fake::new(99).string(b"0123456789", 16),
        Fake::new(100).string(b"0123456789", 16),
        hex(32, 101)
    );
    check(Case {
        rule: "asana.personal-access-token",
        provider: "asana",
        path: "/api/1.0/users/me",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"data":{"gid":"12345","email":"gsanchez@example.com","name":"Greg Sanchez",
            "workspaces":[{"gid":"1","name":"Acme Workspace"}]}}"#,
        owner: Some("gsanchez@example.com, Acme Workspace"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"errors":[{"message":"Not Authorized"}]}"#,
    });
}

#[test]
fn provider_stability() {
    let secret = token("sk-", 48, 102);
    check(Case {
        rule: "stability.api-key",
        provider: "stability",
        path: "/v1/user/account",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"email":"art@acme.example","id":"user-1234",
            "organizations":[{"id":"org-1","name":"Acme Studio","role":"OWNER","is_default":true}]}"#,
        owner: Some("art@acme.example, Acme Studio"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"name":"unauthorized","message":"missing authorization header"}"#,
    });
}

#[test]
fn provider_apify() {
    let secret = token("apify_api_", 36, 103);
    check(Case {
        rule: "apify.api-token",
        provider: "apify",
        path: "/v2/users/me",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"data":{"id":"YiKoxjkaS9gjGTqhF","username":"acme-scraper","email":"scrape@acme.example"}}"#,
        owner: Some("acme-scraper, scrape@acme.example"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"error":{"type":"token-not-valid","message":"Authentication token is not valid."}}"#,
    });
}

#[test]
fn provider_leonardo() {
    let secret = format!(
        "{}-{}-{}-{}-{}",
        hex(8, 104),
        hex(4, 105),
        hex(4, 106),
        hex(4, 107),
        hex(12, 108)
    );
    check(Case {
        rule: "leonardo.api-key",
        provider: "leonardo",
        path: "/api/rest/v1/me",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"user_details":[{"user":{"id":"11111111-2222","username":"example-user"},
            "apiPaidTokens":12.4567}]}"#,
        owner: Some("example-user"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"error":"Invalid token","path":"$","code":"invalid-jwt"}"#,
    });
}

#[test]
fn every_companion_names_a_built_in_rule() {
    let rules = trawl::rules::RuleSet::builtin().expect("built-in rules");
    let mut paired = 0;
    for r in rules.rules() {
        let info = r.info();
        if let Some(c) = info.verify.as_ref().and_then(|v| v.companion.as_deref()) {
            assert!(
                rules.index_of(c).is_some(),
                "{}: companion {c} is not a rule",
                info.id
            );
            paired += 1;
        }
    }
    assert!(paired >= 2, "aws and twilio pair their secrets");
}

/// A UUID of lowercase hex, as some providers shape their tokens.
fn uuid(seed: u64) -> String {
    let h = hex(32, seed);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[test]
fn provider_snyk() {
    let secret = uuid(109);
    check(Case {
        rule: "snyk.api-token",
        provider: "snyk",
        path: "/rest/self?version=2024-06-10",
        method: "GET",
        auth: ("Authorization", format!("token {secret}")),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"data":{"type":"user","id":"55a348e2","attributes":{"name":"Sec Bot",
            "username":"secbot","email":"sec@acme.example"}}}"#,
        owner: Some("secbot, Sec Bot"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"status":"401","code":"Unauthorized"}"#,
    });
}

#[test]
fn provider_deepgram() {
    let secret = hex(40, 110);
    check(Case {
        rule: "deepgram.api-key",
        provider: "deepgram",
        path: "/v1/projects",
        method: "GET",
        auth: ("Authorization", format!("Token {secret}")),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"projects":[{"project_id":"3f0e","name":"Acme Voice"}]}"#,
        owner: Some("Acme Voice"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials."}"#,
    });
}

#[test]
fn provider_typeform() {
    let secret = format!("tfp_{}_{}", token("", 44, 111), token("", 14, 112));
    check(Case {
        rule: "typeform.personal-access-token",
        provider: "typeform",
        path: "/me",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"alias":"forms-team","email":"forms@acme.example","language":"en"}"#,
        owner: Some("forms-team, forms@acme.example"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"code":"AUTHENTICATION_FAILED","description":"Authentication credentials not found on the Request Headers"}"#,
    });
}

#[test]
fn provider_render() {
    let secret = token("rnd_", 32, 113);
    check(Case {
        rule: "render.api-key",
        provider: "render",
        path: "/v1/owners?limit=20",
        method: "GET",
        auth: bearer(&secret),
        secret,
        live_status: 200,
        live_headers: &[],
        live_body: r#"[{"owner":{"id":"own-1","name":"Acme","email":"ops@acme.example","type":"team"},
            "cursor":"abc"}]"#,
        owner: Some("ops@acme.example, Acme"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"id":"unauthorized","message":"unauthorized"}"#,
    });
}

#[test]
fn provider_elevenlabs_tells_a_wrong_key_from_a_narrow_one() {
    let secret = format!("sk_{}", hex(48, 114));
    check(Case {
        rule: "elevenlabs.api-key",
        provider: "elevenlabs",
        path: "/v1/user",
        method: "GET",
        auth: ("xi-api-key", secret.clone()),
        secret: secret.clone(),
        live_status: 200,
        live_headers: &[],
        live_body: r#"{"user_id":"kq2ZPn1x","subscription":{"tier":"creator"},"first_name":"Ada"}"#,
        owner: Some("kq2ZPn1x"),
        scopes: &[],
        expires: None,
        invalid_status: 401,
        invalid_body: r#"{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}"#,
    });
    // A working key without `user_read` is refused with 401 too: not invalid.
    let fake = FakeForge::start();
    fake.page(
        "/v1/user",
        401,
        &[],
        r#"{"detail":{"status":"missing_permissions","message":"The API key you used is missing the permission user_read to execute this operation."}}"#,
    );
    let o = verify_stdin(
        "elevenlabs.api-key",
        &secret,
        &format!("elevenlabs={}", fake.url()),
        &[],
    );
    let v = verification(&o);
    assert_eq!(v["status"], "unknown", "{v}");
    assert!(
        !stdout(&o).contains("missing the permission"),
        "the provider's words stay out"
    );
}
