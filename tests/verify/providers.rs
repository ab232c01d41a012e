//! Every data verifier, live and invalid, against a fake provider on 127.0.0.1: owner, scopes
//! and expiry parsed, the secret sent only where the rule says.

use serde_json::Value;

use super::{bearer, letters, sent_only_in, token, verification, verify_stdin, HF_LIVE};
use crate::fake_forge::FakeForge;
use crate::util::{stderr, stdout, Fake};

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
    /// The header that must carry the secret, and its value.
    auth: (&'static str, String),
}

fn check(case: Case) {
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
            r.header(case.auth.0),
            Some(expected.as_str()),
            "{}",
            case.rule
        );
        sent_only_in(r, case.auth.0, secret);
    }
    for o in [&live, &invalid] {
        assert!(!stderr(o).contains(&case.secret) && !stderr(o).contains(&revoked));
        assert!(!stdout(o).contains(&case.secret) && !stdout(o).contains(&revoked));
    }
    failures(&case);
}

/// The ways a provider's answer goes wrong, for every verifier: a rate limit waited out, a
/// redirect to another host not followed, a malformed body, no answer in time.
fn failures(case: &Case) {
    let run = |fake: &FakeForge, extra: &[&str]| {
        let o = verify_stdin(
            case.rule,
            &case.secret,
            &format!("{}={}", case.provider, fake.url()),
            extra,
        );
        assert!(!stdout(&o).contains(&case.secret) && !stderr(&o).contains(&case.secret));
        verification(&o)
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
    let o = verify_stdin(
        case.rule,
        &case.secret,
        &format!("{}=http://{addr}", case.provider),
        &["--verify-timeout", "1"],
    );
    let v = verification(&o);
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
