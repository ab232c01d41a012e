//! Issue 13's whole chain without network: a fake forge on 127.0.0.1 answers GitHub-,
//! GitLab- and Hugging Face-shaped listings (paginated, one 403 with rate-limit headers);
//! `org list` from each, `org plan`, `org scan` of every shard (one as a Kubernetes Indexed
//! Job runs it), `org merge`: the merged findings are those of `trawl git` on each repository.

use std::path::PathBuf;
use std::process::Command;

use crate::fake_forge::FakeForge;
use crate::org_scan::{git_places_named, merge, org_repos, places, shard};
use crate::util::{git_ok, stderr, trawl, Fake, Tree};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn forge_listings_planned_scanned_and_merged_equal_trawl_git_on_each_repository() {
    let t = Tree::new();
    let mut fake = Fake::new(1399);
    let bares = org_repos(&t, &mut fake); // api, web, ml, docs
    let file = |b: &PathBuf| format!("file://{}", b.display());
    let forge = FakeForge::start();
    let base = forge.url();

    // GitHub: two pages, the second refused once for the rate limit; a fork left out.
    let gh = |name: &str, url: &str, fork: bool| {
        format!(
            r#"{{"full_name":"acme/{name}","clone_url":"{url}","fork":{fork},"archived":false,"default_branch":"main","size":40,"pushed_at":"2026-12-01T00:00:00Z"}}"#
        )
    };
    let first = "/orgs/acme/repos?per_page=100&type=all";
    let second = "/organizations/1/repos?per_page=100&type=all&page=2";
    forge.json_with_next(
        first,
        &format!(
            "[{},{}]",
            gh("api", &file(&bares[0]), false),
            gh("api-fork", &file(&bares[0]), true)
        ),
        &format!("{base}{second}"),
    );
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
    forge.json(second, &format!("[{}]", gh("web", &file(&bares[1]), false)));

    // GitLab: a group over two pages, an archived project left out.
    let gl = |path: &str, url: &str, archived: bool| {
        format!(
            r#"{{"path_with_namespace":"acme/{path}","http_url_to_repo":"{url}","default_branch":"main","archived":{archived},"last_activity_at":"2026-12-01T00:00:00.000Z"}}"#
        )
    };
    let gl1 =
        "/api/v4/groups/acme%2Fdata/projects?include_subgroups=true&per_page=100&statistics=true";
    let gl2 =
        "/api/v4/groups/9/projects?include_subgroups=true&page=2&per_page=100&statistics=true";
    forge.json_with_next(
        gl1,
        &format!("[{}]", gl("ml", &file(&bares[2]), false)),
        &format!("{base}{gl2}"),
    );
    forge.json(gl2, &format!("[{}]", gl("old", &file(&bares[3]), true)));

    // Hugging Face: one model, cloned from the forge over git's dumb HTTP protocol.
    forge.json(
        "/api/models?author=acme&limit=100",
        r#"[{"id":"acme/docs"}]"#,
    );
    forge.json("/api/datasets?author=acme&limit=100", "[]");
    forge.json("/api/spaces?author=acme&limit=100", "[]");
    let served = t.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let docs = served.join("docs");
    git_ok(
        t.path(),
        &[
            "clone",
            "-q",
            "--bare",
            bares[3].to_str().unwrap(),
            docs.to_str().unwrap(),
        ],
    );
    git_ok(&docs, &["update-server-info"]);
    forge.serve_dir("/acme", &served);

    let tokens = [
        ("GITHUB_TOKEN", fake.github_token("ghp_")),
        ("GITLAB_TOKEN", format!("glpat-{}", fake.alnum(20))),
        ("HF_TOKEN", fake.hf_token()),
    ];
    let run = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trawl"));
        cmd.args(args).env("NO_COLOR", "1");
        for (k, v) in &tokens {
            cmd.env(k, v);
        }
        let o = cmd.output().unwrap();
        let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
        for (_, v) in &tokens {
            assert!(!all.contains(v.as_str()), "a token was printed: {all}");
        }
        o
    };
    let mut lists = Vec::new();
    for (name, source) in [
        ("gh", "--github"),
        ("gl", "--gitlab"),
        ("hf", "--huggingface"),
    ] {
        let out = t.path().join(format!("{name}.jsonl"));
        let target = if name == "gl" { "acme/data" } else { "acme" };
        let o = run(&[
            "org",
            "list",
            source,
            target,
            "--api-url",
            &base,
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        if name == "gh" {
            assert!(stderr(&o).contains("rate limit"), "{}", stderr(&o));
        }
        lists.push(out);
    }
    let plan = t.path().join("plan.json");
    let mut args = vec!["org", "plan"];
    args.extend(lists.iter().map(|p| p.to_str().unwrap()));
    args.extend(["--shards", "2", "-o", plan.to_str().unwrap()]);
    let o = trawl(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("4 repositories in 2 shards"),
        "{}",
        stderr(&o)
    );

    let out = t.path().join("out");
    let o = shard(&plan, 0, 2, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trawl"));
    cmd.args([
        "org",
        "scan",
        "--plan",
        plan.to_str().unwrap(),
        "--shard-from-env",
        "--out",
        out.to_str().unwrap(),
    ])
    .env("JOB_COMPLETION_INDEX", "1");
    for (k, v) in &tokens {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let (o, merged) = merge(&plan, &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let hf_url = format!("{base}/acme/docs");
    let expected = git_places_named(
        &[
            (file(&bares[0]), bares[0].clone()),
            (file(&bares[1]), bares[1].clone()),
            (file(&bares[2]), bares[2].clone()),
            (hf_url.clone(), bares[3].clone()),
        ],
        &[],
    );
    assert!(!expected.is_empty());
    assert_eq!(places(&merged, None), expected);
    // The Hugging Face clone went through the forge, with its token, in git's environment.
    let git_reqs: Vec<_> = forge
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/acme/docs/"))
        .collect();
    assert!(!git_reqs.is_empty());
    assert!(git_reqs.iter().all(|r| r
        .header("Authorization")
        .is_some_and(|a| a.starts_with("Basic "))));
}
