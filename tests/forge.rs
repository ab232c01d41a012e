//! `trawl org list --github|--github-user|--gitlab|--huggingface` against a fake forge on
//! 127.0.0.1: pages followed, forks and archived filtered, rate limits waited out, tokens sent
//! only as their header and never written, hostile answers kept out of the output.

use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::fake_forge::FakeForge;
use crate::util::{git_ok, stderr, stdout, Fake, Tree, BIN};

const TOKEN_VARS: [&str; 3] = ["GITHUB_TOKEN", "GITLAB_TOKEN", "HF_TOKEN"];

/// Runs `trawl org list ARGS -o OUT` with only the token variables given.
fn list(args: &[&str], env: &[(&str, &str)], out: &std::path::Path) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["org", "list"]).args(args).arg("-o").arg(out);
    for v in TOKEN_VARS {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied()).output().expect("trawl runs")
}

/// Runs a listing that must succeed; checks that `token` and control characters reach none
/// of stdout, stderr, `repos.jsonl`, and returns (stderr, `repos.jsonl`).
fn list_ok(
    args: &[&str],
    env: &[(&str, &str)],
    out: &std::path::Path,
    token: &str,
) -> (String, String) {
    let o = list(args, env, out);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let text = std::fs::read_to_string(out).unwrap();
    for (what, s) in [
        ("stderr", &err),
        ("stdout", &stdout(&o)),
        ("repos.jsonl", &text),
    ] {
        assert!(!s.contains(token), "the token reached {what}");
        assert_plain(what, s);
    }
    (err, text)
}

fn urls(jsonl: &str) -> Vec<String> {
    jsonl
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["url"].as_str().unwrap().to_string()
        })
        .collect()
}

fn record(jsonl: &str, url: &str) -> Value {
    jsonl
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["url"] == url)
        .unwrap_or_else(|| panic!("{url} not in {jsonl}"))
}

/// No control character (the ESC of a terminal sequence, BEL) in any output.
fn assert_plain(what: &str, text: &str) {
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "{what} holds a control character: {text:?}"
    );
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn gh_repo(name: &str, fork: bool, archived: bool) -> String {
    format!(
        r#"{{"full_name":"acme/{name}","clone_url":"https://github.com/acme/{name}.git","fork":{fork},"archived":{archived},"default_branch":"main","size":3,"pushed_at":"2026-11-0{}T10:00:00Z"}}"#,
        name.len() % 9
    )
}

#[test]
fn github_org_pages_filters_forks_waits_out_a_rate_limit_and_keeps_the_token_out() {
    let forge = FakeForge::start();
    let base = forge.url();
    let token = Fake::new(1301).github_token("ghp_");
    let first = "/orgs/acme/repos?per_page=100&type=all";
    let second = "/organizations/7/repos?per_page=100&type=all&page=2";
    forge.json_with_next(
        first,
        &format!(
            "[{},{},{}]",
            gh_repo("api", false, false),
            gh_repo("old", false, true),
            gh_repo("fork1", true, false)
        ),
        &format!("{base}{second}"),
    );
    // The second page is first refused for a second: the primary rate limit is spent.
    let reset = (now() + 1).to_string();
    forge.page(
        second,
        403,
        &[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &reset),
        ],
        r#"{"message":"API rate limit exceeded"}"#,
    );
    let hostile = [
        r#"{"full_name":"acme/evil","clone_url":"https://github.com/acme/evil\u001b]8;;\u0007.git","fork":false,"archived":false}"#,
        r#"{"full_name":"acme/ext","clone_url":"ext::sh -c id","fork":false,"archived":false}"#,
        r#"{"full_name":"acme/plain","clone_url":"http://github.com/acme/plain.git","fork":false,"archived":false}"#,
        r#"{"full_name":"acme/br","clone_url":"https://github.com/acme/br.git","fork":false,"archived":false,"default_branch":"ma\u001b[2Jin"}"#,
    ];
    forge.json(
        second,
        &format!("[{},{}]", gh_repo("web", false, false), hostile.join(",")),
    );
    forge.json(
        "/repos/acme/fork1",
        r#"{"full_name":"acme/fork1","fork":true,"parent":{"clone_url":"https://github.com/upstream/fork1.git"}}"#,
    );

    let t = Tree::new();
    let out = t.path().join("repos.jsonl");
    let env = [("GITHUB_TOKEN", token.as_str())];
    let (err, text) = list_ok(
        &["--github", "acme", "--api-url", &base],
        &env,
        &out,
        &token,
    );
    assert_eq!(
        urls(&text),
        [
            "https://github.com/acme/api.git",
            "https://github.com/acme/web.git"
        ]
    );
    let api = record(&text, "https://github.com/acme/api.git");
    assert_eq!(api["kind"], "github");
    assert_eq!(api["size"], 3 * 1024);
    assert_eq!(api["default_branch"], "main");
    assert_eq!(api["pushed_at"], "2026-11-03T10:00:00Z");
    assert!(err.contains("rate limit reached; waiting"), "{err}");
    assert!(err.contains("3 repositories skipped: a clone URL"), "{err}");
    assert!(err.contains("1 repository skipped: a branch name"), "{err}");
    assert!(err.contains("2 repositories left out"), "{err}");
    // Forks left out: their parents are not asked for.
    let seen = forge.requests();
    assert_eq!(
        seen.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        [first, second, second]
    );
    for r in &seen {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {token}").as_str())
        );
        assert!(!r.path.contains(&token), "the token went into a URL");
    }

    // With the flags: the archived repository and the fork, whose parent is looked up.
    let out2 = t.path().join("all.jsonl");
    let flags = [
        "--github",
        "acme",
        "--api-url",
        &base,
        "--include-forks",
        "--include-archived",
    ];
    let (_, all) = list_ok(&flags, &env, &out2, &token);
    assert_eq!(urls(&all).len(), 4, "{all}");
    let fork = record(&all, "https://github.com/acme/fork1.git");
    assert_eq!(fork["fork_parent"], "https://github.com/upstream/fork1.git");
    assert!(record(&all, "https://github.com/acme/old.git")["fork_parent"].is_null());
    // The same answers give the same bytes.
    let out3 = t.path().join("again.jsonl");
    assert!(list(&flags, &env, &out3).status.success());
    assert_eq!(all.as_bytes(), std::fs::read(&out3).unwrap());
}

#[test]
fn a_github_user_is_listed_without_a_token_when_none_is_set() {
    let forge = FakeForge::start();
    // A server error first: retried after a short backoff.
    forge.page(
        "/users/dev/repos?per_page=100&type=owner",
        502,
        &[],
        "bad gateway",
    );
    forge.json(
        "/users/dev/repos?per_page=100&type=owner",
        &format!("[{}]", gh_repo("dots", false, false)),
    );
    let t = Tree::new();
    let out = t.path().join("r.jsonl");
    let o = list(
        &["--github-user", "dev", "--api-url", &forge.url()],
        &[],
        &out,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("HTTP 502; waiting 1 s"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        urls(&std::fs::read_to_string(&out).unwrap()),
        ["https://github.com/acme/dots.git"]
    );
    assert_eq!(forge.requests().len(), 2);
    assert!(forge
        .requests()
        .iter()
        .all(|r| r.header("authorization").is_none()));
}

#[test]
fn a_next_link_to_another_host_is_refused_and_never_sees_the_token() {
    let forge = FakeForge::start();
    let elsewhere = FakeForge::start();
    let token = Fake::new(1302).github_token("ghp_");
    // Same address, another port: another origin all the same.
    forge.json_with_next(
        "/orgs/acme/repos?per_page=100&type=all",
        &format!("[{}]", gh_repo("api", false, false)),
        &format!("{}/orgs/acme/repos?page=2", elsewhere.url()),
    );
    elsewhere.json("/orgs/acme/repos?page=2", "[]");
    let t = Tree::new();
    let out = t.path().join("r.jsonl");
    let env = [("GITHUB_TOKEN", token.as_str())];
    let o = list(&["--github", "acme", "--api-url", &forge.url()], &env, &out);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("github: page 1: the next-page link leads to another host"),
        "{err}"
    );
    assert!(!err.contains(&token));
    assert!(elsewhere.requests().is_empty(), "the other host was asked");
    assert!(!out.exists(), "a partial listing was written");

    // A redirect is not followed, wherever it leads.
    let location = format!("{}/orgs/moved/repos", elsewhere.url());
    forge.page(
        "/orgs/moved/repos?per_page=100&type=all",
        302,
        &[("Location", &location)],
        "",
    );
    let o = list(
        &["--github", "moved", "--api-url", &forge.url()],
        &env,
        &out,
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("HTTP 302, a redirect (not followed"), "{err}");
    assert!(elsewhere.requests().is_empty(), "the redirect was followed");

    // A next link back to a page already read stops the listing.
    let looped = "/orgs/loop/repos?per_page=100&type=all";
    forge.json_with_next(looped, "[]", &format!("{}{looped}", forge.url()));
    let o = list(&["--github", "loop", "--api-url", &forge.url()], &env, &out);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("repeats a page"), "{}", stderr(&o));

    // A plain-http API base that is not loopback is refused before any request.
    let o = list(
        &["--github", "acme", "--api-url", "http://ghe.example/api/v3"],
        &env,
        &out,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("must be https://"), "{}", stderr(&o));
}

#[test]
fn malformed_answers_are_errors_that_name_the_page_without_quoting_it() {
    let forge = FakeForge::start();
    let base = forge.url();
    let leaked = Fake::new(1303).github_token("ghp_");
    forge.json_with_next(
        "/orgs/acme/repos?per_page=100&type=all",
        &format!("[{}]", gh_repo("api", false, false)),
        &format!("{base}/p2"),
    );
    forge.json(
        "/p2",
        &format!(r#"[{{"clone_url": "{leaked}", "fork": fal"#),
    );
    forge.json(
        "/orgs/nofield/repos?per_page=100&type=all",
        r#"[{"fork": false, "note": "ZZ-body-ZZ"}]"#,
    );
    forge.json(
        "/orgs/object/repos?per_page=100&type=all",
        r#"{"message": "ZZ-body-ZZ"}"#,
    );
    let t = Tree::new();
    let out = t.path().join("r.jsonl");
    let run = |org: &str| list(&["--github", org, "--api-url", &base], &[], &out);

    let o = run("acme");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("github: page 2: not JSON (line 1"), "{err}");
    assert!(!err.contains(&leaked) && !err.contains("fal"), "{err}");
    let o = run("nofield");
    let err = stderr(&o);
    assert!(
        err.contains("github: page 1: repository 1 has no usable `clone_url`"),
        "{err}"
    );
    assert!(!err.contains("ZZ-body-ZZ"), "{err}");
    let o = run("object");
    let err = stderr(&o);
    assert!(err.contains("github: page 1: not a JSON array"), "{err}");
    assert!(!err.contains("ZZ-body-ZZ"), "{err}");
    // A 403 without rate-limit headers is a permission problem, not a wait.
    forge.page(
        "/orgs/private/repos?per_page=100&type=all",
        403,
        &[],
        "ZZ-body-ZZ",
    );
    let o = run("private");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("HTTP 403 without rate-limit headers"), "{err}");
    assert!(
        !err.contains("waiting") && !err.contains("ZZ-body-ZZ"),
        "{err}"
    );
}

#[test]
fn gitlab_group_pages_with_subgroups_forks_archived_and_a_429() {
    let forge = FakeForge::start();
    let base = forge.url();
    let token = format!("glpat-{}", Fake::new(1304).alnum(20));
    let first = "/api/v4/groups/acme%2Fplatform/projects?include_subgroups=true&per_page=100&statistics=true";
    let second =
        "/api/v4/groups/42/projects?include_subgroups=true&page=2&per_page=100&statistics=true";
    let project = |path: &str, extra: &str| {
        format!(
            r#"{{"path_with_namespace":"acme/platform/{path}","http_url_to_repo":"https://gitlab.example/acme/platform/{path}.git","default_branch":"main","archived":false,"last_activity_at":"2026-10-01T00:00:00.000Z","statistics":{{"repository_size":5000}}{extra}}}"#
        )
    };
    forge.page(first, 429, &[("Retry-After", "1")], "");
    forge.page(
        first,
        200,
        &[
            ("Content-Type", "application/json"),
            ("Link", &format!("<{base}{second}>; rel=\"next\", <{base}{first}>; rel=\"first\"")),
            ("X-Next-Page", "2"),
        ],
        format!(
            "[{},{}]",
            project("core", ""),
            project(
                "core-fork",
                r#","forked_from_project":{"http_url_to_repo":"https://gitlab.example/up/core.git"}"#
            )
        ),
    );
    forge.json(
        second,
        &format!(
            "[{},{}]",
            project("tools/cli", r#","statistics":null"#)
                .replace(r#","statistics":{"repository_size":5000}"#, ""),
            project("legacy", "").replace(r#""archived":false"#, r#""archived":true"#)
        ),
    );
    let t = Tree::new();
    let out = t.path().join("r.jsonl");
    let env = [("GITLAB_TOKEN", token.as_str())];
    let args = ["--gitlab", "acme/platform", "--api-url", &base];
    let (err, text) = list_ok(&args, &env, &out, &token);
    assert!(err.contains("rate limit reached; waiting 1 s"), "{err}");
    assert_eq!(
        urls(&text),
        [
            "https://gitlab.example/acme/platform/core.git",
            "https://gitlab.example/acme/platform/tools/cli.git"
        ]
    );
    let core = record(&text, "https://gitlab.example/acme/platform/core.git");
    assert_eq!(
        (core["kind"].as_str(), core["size"].as_u64()),
        (Some("gitlab"), Some(5000))
    );
    assert!(record(&text, "https://gitlab.example/acme/platform/tools/cli.git")["size"].is_null());
    for r in forge.requests() {
        assert_eq!(r.header("private-token"), Some(token.as_str()));
        assert!(r.header("authorization").is_none());
    }

    let out2 = t.path().join("all.jsonl");
    let all_args = [&args[..], &["--include-forks", "--include-archived"]].concat();
    let (_, all) = list_ok(&all_args, &env, &out2, &token);
    assert_eq!(urls(&all).len(), 4);
    let fork = record(&all, "https://gitlab.example/acme/platform/core-fork.git");
    assert_eq!(fork["fork_parent"], "https://gitlab.example/up/core.git");
    let out3 = t.path().join("again.jsonl");
    assert!(list(&all_args, &env, &out3).status.success());
    assert_eq!(all.as_bytes(), std::fs::read(&out3).unwrap());
}

#[test]
fn huggingface_models_datasets_and_spaces_are_listed_and_a_model_clones_over_http() {
    let forge = FakeForge::start();
    let base = forge.url();
    let token = Fake::new(1305).hf_token();
    let models = "/api/models?author=acme&limit=100";
    let models2 = "/api/models?author=acme&limit=100&cursor=abc";
    forge.json_with_next(
        models,
        r#"[{"id":"acme/m1","lastModified":"2026-09-01T00:00:00.000Z"},{"id":"acme/x\u0007\u001b[31m"}]"#,
        &format!("{base}{models2}"),
    );
    forge.json(models2, r#"[{"id":"acme/m2"},{"id":"../../etc/passwd"}]"#);
    forge.json(
        "/api/datasets?author=acme&limit=100",
        r#"[{"id":"acme/d1"}]"#,
    );
    forge.page(
        "/api/spaces?author=acme&limit=100",
        429,
        &[("Retry-After", "1")],
        "",
    );
    forge.json("/api/spaces?author=acme&limit=100", r#"[{"id":"acme/s1"}]"#);

    // m1 is a real repository, served as files for git's dumb HTTP protocol.
    let t = Tree::new();
    let work = t.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    git_ok(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("README.md"), "model card\n").unwrap();
    git_ok(&work, &["add", "README.md"]);
    git_ok(&work, &["commit", "-q", "-m", "card"]);
    let served = t.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    git_ok(
        t.path(),
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            served.join("m1").to_str().unwrap(),
        ],
    );
    git_ok(&served.join("m1"), &["update-server-info"]);
    forge.serve_dir("/acme", &served);

    let out = t.path().join("r.jsonl");
    let env = [("HF_TOKEN", token.as_str())];
    let (err, text) = list_ok(
        &["--huggingface", "acme", "--api-url", &base],
        &env,
        &out,
        &token,
    );
    let m1 = format!("{base}/acme/m1");
    assert_eq!(
        urls(&text),
        [
            m1.clone(),
            format!("{base}/acme/m2"),
            format!("{base}/datasets/acme/d1"),
            format!("{base}/spaces/acme/s1"),
        ]
    );
    let rec = record(&text, &m1);
    assert_eq!(rec["kind"], "huggingface-model");
    assert_eq!(rec["pushed_at"], "2026-09-01T00:00:00.000Z");
    assert_eq!(
        record(&text, &format!("{base}/datasets/acme/d1"))["kind"],
        "huggingface-dataset"
    );
    assert_eq!(
        record(&text, &format!("{base}/spaces/acme/s1"))["kind"],
        "huggingface-space"
    );
    assert!(
        err.contains("2 repositories skipped: a repository id"),
        "{err}"
    );
    for r in forge.requests() {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {token}").as_str())
        );
    }

    // The listed URL clones.
    let clone = t.path().join("clone");
    git_ok(t.path(), &["clone", "-q", &m1, clone.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(clone.join("README.md")).unwrap(),
        "model card\n"
    );
}

#[test]
fn https_proxy_is_honoured_and_the_token_stays_inside_the_tunnel() {
    // The fake forge plays the proxy: it sees the CONNECT and answers 404, so nothing else
    // follows. The token would travel only inside the TLS tunnel.
    let proxy = FakeForge::start();
    let token = Fake::new(1306).github_token("ghp_");
    let t = Tree::new();
    let out = t.path().join("r.jsonl");
    let mut cmd = Command::new(BIN);
    cmd.args(["org", "list", "--github", "acme", "--api-url"])
        .arg("https://ghe.example.invalid/api/v3")
        .arg("-o")
        .arg(&out);
    for v in [
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
        "HTTP_PROXY",
        "http_proxy",
    ] {
        cmd.env_remove(v);
    }
    let o = cmd
        .env("HTTPS_PROXY", proxy.url())
        .env("GITHUB_TOKEN", &token)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains(&token));
    let seen = proxy.requests();
    assert!(!seen.is_empty(), "the proxy was not used: {err}");
    for r in &seen {
        assert_eq!(r.method, "CONNECT", "{r:?}");
        assert_eq!(r.path, "ghe.example.invalid:443");
        assert!(
            r.header("authorization").is_none(),
            "the token went to the proxy"
        );
    }
}
