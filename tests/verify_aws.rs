//! AWS keys checked with STS `GetCallerIdentity` against a mock STS on 127.0.0.1: verdicts
//! from each kind of answer, and the request as the server received it — signed over what
//! was sent, the secret itself nowhere in it.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use trawl::org::forge::http::Client;
use trawl::verify::aws::{self, verify_aws, verify_aws_at};
use trawl::verify::sigv4;
use trawl::verify::{Status, Verification};

use crate::fake_forge::{FakeForge, Request};
use crate::util::Fake;

const LIVE: &str = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:iam::210987654321:user/ci-deploy</Arn>
    <UserId>AIDATESTUSERIDVALUE01</UserId>
    <Account>210987654321</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata>
    <RequestId>c2b1f0e4-0000-4000-8000-000000000000</RequestId>
  </ResponseMetadata>
</GetCallerIdentityResponse>
"#;

fn error_xml(code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n    \
         <Type>Sender</Type>\n    <Code>{code}</Code>\n    <Message>{message}</Message>\n  \
         </Error>\n  <RequestId>c2b1f0e4-0000-4000-8000-000000000001</RequestId>\n</ErrorResponse>\n"
    )
}

/// A random key id and secret (fakes, never valid anywhere).
fn keypair(seed: u64) -> (String, String) {
    let mut f = Fake::new(seed);
    let id = format!("AKIA{}", f.string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16));
    let secret = f.string(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        40,
    );
    (id, secret)
}

fn quiet(_: &str) {}

/// Checks `key` against a mock STS answering `status` / `body`; the verdict and the one
/// request the mock saw.
fn against(
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
    seed: u64,
) -> (Verification, Request) {
    let sts = FakeForge::start();
    sts.page("/", status, headers, body);
    let client = Client::new(&sts.url(), None, &quiet)
        .unwrap()
        .with_timeout(Duration::from_secs(20));
    let (id, secret) = keypair(seed);
    let endpoint = format!("{}/", sts.url());
    let v = verify_aws(&client, &id, &secret, None, &endpoint);
    assert_eq!(v.endpoint.as_deref(), Some(endpoint.as_str()));
    let seen = sts.requests();
    assert_eq!(seen.len(), 1, "one request, no retry");
    assert_secret_absent(&seen[0], &secret);
    (v, seen[0].clone())
}

fn assert_secret_absent(r: &Request, secret: &str) {
    for (n, v) in &r.headers {
        assert!(!v.contains(secret), "the secret is in header {n}");
    }
    assert!(!String::from_utf8_lossy(&r.body).contains(secret));
    assert!(!r.path.contains(secret));
}

/// The parts of an `Authorization` value: credential, signed headers, signature.
fn authorization(r: &Request) -> (String, String, String) {
    let value = r.header("authorization").expect("an Authorization header");
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .expect("the SigV4 algorithm");
    let mut parts = rest.split(", ");
    let mut field = |name: &str| {
        parts
            .next()
            .and_then(|p| p.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in {value}"))
            .to_string()
    };
    (
        field("Credential="),
        field("SignedHeaders="),
        field("Signature="),
    )
}

/// Recomputes the signature of the request as received, from its signed headers, path and
/// body, with the key it claims.
fn recompute(r: &Request, key_id: &str, secret: &str) -> String {
    let (credential, signed, _) = authorization(r);
    let names: Vec<&str> = signed.split(';').collect();
    let headers: Vec<(&str, &str)> = names
        .iter()
        .map(|n| {
            (
                *n,
                r.header(n)
                    .unwrap_or_else(|| panic!("signed header {n} was sent")),
            )
        })
        .collect();
    let date = r.header("x-amz-date").unwrap();
    let scope: Vec<&str> = credential.split('/').collect();
    assert_eq!(scope[0], key_id);
    let (path, query) = r.path.split_once('?').unwrap_or((&r.path, ""));
    let req = sigv4::Request {
        method: &r.method,
        path,
        query,
        headers: &headers,
        payload: &r.body,
    };
    sigv4::sign(&req, key_id, secret, date, scope[2], scope[3]).signature
}

#[test]
fn live_keys_give_their_arn_and_account_and_the_signature_covers_what_was_sent() {
    let sts = FakeForge::start();
    sts.page("/", 200, &[("Content-Type", "text/xml")], LIVE);
    let client = Client::new(&sts.url(), None, &quiet).unwrap();
    let (id, secret) = keypair(1401);
    let endpoint = format!("{}/", sts.url());
    let before = std::time::SystemTime::now();
    let v = verify_aws(&client, &id, &secret, None, &endpoint);
    assert_eq!(v.status, Status::Live, "{v:?}");
    assert_eq!(
        v.owner.as_deref(),
        Some("arn:aws:iam::210987654321:user/ci-deploy (account 210987654321)")
    );
    assert_eq!(v.message, None);

    let seen = sts.requests();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/"));
    assert_eq!(r.body, aws::BODY.as_bytes());
    assert_eq!(r.header("content-type"), Some(aws::CONTENT_TYPE));
    assert_eq!(r.header("host"), Some(&sts.url()["http://".len()..]));
    assert_eq!(r.header("x-amz-security-token"), None);
    // Each signed header was sent once (AWS would join repeated values into what it signs).
    for name in ["content-type", "host", "x-amz-date", "authorization"] {
        let n = r
            .headers
            .iter()
            .filter(|(h, _)| h.eq_ignore_ascii_case(name))
            .count();
        assert_eq!(n, 1, "{name}");
    }
    // Signed with the system clock: today's date in the scope.
    let today = sigv4::amz_date(
        before
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    );
    let (credential, signed, signature) = authorization(r);
    assert_eq!(
        credential,
        format!("{id}/{}/us-east-1/sts/aws4_request", &today[..8])
    );
    assert_eq!(signed, "content-type;host;x-amz-date");
    assert_eq!(signature.len(), 64);
    assert_eq!(recompute(r, &id, &secret), signature);
    // Another secret gives another signature: the check above can fail.
    assert_ne!(recompute(r, &id, &keypair(1402).1), signature);
    assert_secret_absent(r, &secret);
}

#[test]
fn session_tokens_are_sent_and_signed_and_the_clock_is_injectable() {
    let sts = FakeForge::start();
    sts.page("/", 200, &[], LIVE);
    let client = Client::new(&sts.url(), None, &quiet).unwrap();
    let (_, secret) = keypair(1403);
    let id = format!(
        "ASIA{}",
        Fake::new(1404).string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
    );
    let token = Fake::new(1405).string(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        300,
    );
    let endpoint = format!("{}/", sts.url());
    let v = verify_aws_at(
        &client,
        &id,
        &secret,
        Some(&token),
        &endpoint,
        1_440_938_160,
    );
    assert_eq!(v.status, Status::Live);
    let r = &sts.requests()[0];
    assert_eq!(r.header("x-amz-date"), Some("20150830T123600Z"));
    assert_eq!(r.header("x-amz-security-token"), Some(token.as_str()));
    let (credential, signed, signature) = authorization(r);
    assert_eq!(
        credential,
        format!("{id}/20150830/us-east-1/sts/aws4_request")
    );
    assert_eq!(signed, "content-type;host;x-amz-date;x-amz-security-token");
    assert_eq!(recompute(r, &id, &secret), signature);
    assert_secret_absent(r, &secret);
}

#[test]
fn unknown_key_ids_and_wrong_secrets_are_invalid() {
    let body = error_xml(
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
    );
    let (v, _) = against(403, &[("Content-Type", "text/xml")], &body, 1410);
    assert_eq!(v.status, Status::Invalid);
    assert_eq!(v.owner, None);
    assert!(!v.message.unwrap().contains("security token included"));

    let body = error_xml(
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided.",
    );
    let (v, _) = against(403, &[("Content-Type", "text/xml")], &body, 1411);
    assert_eq!(v.status, Status::Invalid);
}

#[test]
fn expired_session_tokens_are_invalid_and_say_so() {
    let body = error_xml(
        "ExpiredToken",
        "The security token included in the request is expired",
    );
    let (v, _) = against(403, &[], &body, 1420);
    assert_eq!(v.status, Status::Invalid);
    assert_eq!(v.message.as_deref(), Some("expired"));
}

#[test]
fn throttling_is_an_error_answered_at_once() {
    let (v, _) = against(400, &[], &error_xml("Throttling", "Rate exceeded"), 1430);
    assert_eq!(v.status, Status::Error);
    assert_eq!(v.message.as_deref(), Some("rate limited"));

    let started = Instant::now();
    let (v, _) = against(429, &[("Retry-After", "30")], "", 1431);
    assert_eq!(v.status, Status::Error);
    assert_eq!(v.message.as_deref(), Some("rate limited"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no wait inside the verifier"
    );
}

#[test]
fn malformed_answers_are_errors_and_never_quoted() {
    let hostile = [
        (
            200,
            "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::1:user/x",
        ),
        (200, "{\"Arn\": \"arn:aws:iam::1:user/x\"}"),
        (
            200,
            "<GetCallerIdentityResult><Arn>arn:\u{1b}]0;pwned\u{7}</Arn></GetCallerIdentityResult>",
        ),
        (403, "<html>forbidden by a proxy</html>"),
        (
            500,
            "<ErrorResponse><Error><Code>InternalFailure</Code></Error></ErrorResponse>",
        ),
    ];
    for (i, (status, body)) in hostile.iter().enumerate() {
        let (v, _) = against(*status, &[], body, 1440 + i as u64);
        assert_eq!(v.status, Status::Error, "{body}");
        assert_eq!(v.owner, None);
        let m = v.message.unwrap();
        assert!(
            !m.contains("pwned") && !m.contains("proxy") && !m.contains("Arn"),
            "{m}"
        );
    }
}

#[test]
fn redirects_are_not_followed() {
    let elsewhere = FakeForge::start();
    elsewhere.page("/", 200, &[], LIVE);
    let location = format!("{}/", elsewhere.url());
    let (v, _) = against(307, &[("Location", &location)], "", 1450);
    assert_eq!(v.status, Status::Error);
    assert!(v.message.unwrap().contains("redirect"));
    assert!(
        elsewhere.requests().is_empty(),
        "the redirect target saw nothing"
    );
}

#[test]
fn a_server_that_never_answers_is_a_timeout_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept, read nothing, answer nothing; keep the connections open until the test ends.
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        if let Ok((s, _)) = listener.accept() {
            held.push(s);
            std::thread::sleep(Duration::from_secs(8));
        }
    });
    let base = format!("http://{addr}");
    let client = Client::new(&base, None, &quiet)
        .unwrap()
        .with_timeout(Duration::from_secs(2));
    let (id, secret) = keypair(1460);
    let started = Instant::now();
    let v = verify_aws(&client, &id, &secret, None, &format!("{base}/"));
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(v.status, Status::Error);
    let m = v.message.unwrap();
    assert!(m.contains("timed out"), "{m}");
    assert!(!m.contains(&secret));
    holder.join().unwrap();
}

#[test]
fn endpoints_off_the_clients_origin_are_refused_before_sending() {
    let sts = FakeForge::start();
    let other = FakeForge::start();
    let client = Client::new(&sts.url(), None, &quiet).unwrap();
    let (id, secret) = keypair(1470);
    let v = verify_aws(&client, &id, &secret, None, &format!("{}/", other.url()));
    assert_eq!(v.status, Status::Error);
    assert!(sts.requests().is_empty() && other.requests().is_empty());
    // A key id that cannot be a header is refused too, without a request.
    let v = verify_aws(
        &client,
        "AKIA\r\nX-Evil: 1",
        &secret,
        None,
        &format!("{}/", sts.url()),
    );
    assert_eq!(v.status, Status::Error);
    assert!(sts.requests().is_empty());
}
