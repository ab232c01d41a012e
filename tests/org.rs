//! `trawl org list --from-file` and `trawl org plan`: the repositories of a plain URL list,
//! planned over shards deterministically.

use serde_json::Value;

use crate::util::{stderr, trawl, Tree};

#[test]
fn a_url_list_is_listed_and_planned_the_same_way_twice() {
    let t = Tree::new();
    let list = t.write(
        "org/repos.txt",
        "# the organisation\n\
         https://github.com/acme/api.git\n\
         git@github.com:acme/web.git\n\
         https://ci-bot:ghp_AAAAbbbbCCCCddddEEEEffffGGGGhhhhIIII@github.com/acme/private.git\n\
         mirrors/tools.git\n\
         ftp://nowhere/x\n",
    );
    let repos = t.path().join("repos.jsonl");
    let o = trawl([
        "org",
        "list",
        "--from-file",
        list.to_str().unwrap(),
        "-o",
        repos.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("4 repositories listed"), "{err}");
    assert!(err.contains("line 4: credentials removed"), "{err}");
    assert!(err.contains("line 6: an unsupported URL scheme"), "{err}");
    assert!(!err.contains("ghp_"), "a token reached stderr: {err}");
    let text = std::fs::read_to_string(&repos).unwrap();
    assert!(!text.contains("ghp_") && !text.contains("ci-bot"), "{text}");
    let local = format!(
        "file://{}",
        t.path().join("org/mirrors/tools.git").display()
    );
    assert!(text.contains(&local), "{text}");

    let plan = |out: &str| {
        let path = t.path().join(out);
        let o = trawl([
            "org",
            "plan",
            repos.to_str().unwrap(),
            "--shards",
            "3",
            "-o",
            path.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read(path).unwrap()
    };
    let (a, b) = (plan("a.json"), plan("b.json"));
    assert_eq!(a, b, "a plan is not byte-identical from the same input");
    let v: Value = serde_json::from_slice(&a).unwrap();
    let shards = v["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 3);
    let planned: usize = shards
        .iter()
        .map(|s| s["repos"].as_array().unwrap().len())
        .sum();
    assert_eq!(planned, 4);
    assert_eq!(v["digest"].as_str().unwrap().len(), 64);

    // Bad input is an error that names the line, not a panic or an empty plan.
    let bad = t.write("bad.jsonl", "{\"url\": 3}\n");
    let o = trawl(["org", "plan", bad.to_str().unwrap(), "--shards", "2"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("line 1"), "{}", stderr(&o));
    let o = trawl(["org", "plan", repos.to_str().unwrap(), "--shards", "0"]);
    assert_eq!(o.status.code(), Some(2));
}
