//! deploy/kubernetes/: the manifests' contract, their containers' commands run as written on
//! a temporary volume, and chain.sh against a fake kubectl.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use super::{
    executable, expected_findings, org_repos, root, sarif_findings, strings, yaml, yaml_docs,
};
use crate::util::{stderr, Fake, Tree, BIN};

/// The one document of `rel` whose `kind` is `kind`.
fn manifest(rel: &str, kind: &str) -> Value {
    let mut docs: Vec<Value> = yaml(rel)
        .into_iter()
        .filter(|d| d["kind"] == kind)
        .collect();
    assert_eq!(docs.len(), 1, "{rel}: one {kind}");
    docs.remove(0)
}

/// The command and arguments of a container, as the kubelet runs them.
fn argv(c: &Value) -> Vec<String> {
    let mut v = strings(&c["command"]);
    v.extend(strings(&c["args"]));
    v
}

/// The pod template of a Job.
fn pod(job: &Value) -> &Value {
    &job["spec"]["template"]["spec"]
}

/// The init containers, then the containers, of a Job's pod.
fn containers(job: &Value) -> Vec<Value> {
    let p = pod(job);
    let mut all = p["initContainers"].as_array().cloned().unwrap_or_default();
    all.extend(p["containers"].as_array().cloned().unwrap_or_default());
    all
}

/// The shared volume and the repository list, as a temporary directory.
struct Volumes {
    data: PathBuf,
    config: PathBuf,
}

impl Volumes {
    fn new(t: &Tree) -> Volumes {
        let v = Volumes {
            data: t.path().join("volume/data"),
            config: t.path().join("volume/config"),
        };
        std::fs::create_dir_all(&v.data).unwrap();
        std::fs::create_dir_all(&v.config).unwrap();
        v
    }

    fn mounts(&self) -> [(&'static str, &Path); 2] {
        [("/data", &self.data), ("/config", &self.config)]
    }
}

/// Runs a container as its pod would: its command and arguments with the mount paths mapped
/// to `vols` and `trawl` being the built binary, its environment (a secretKeyRef reads
/// `secrets`), plus what Kubernetes sets (`extra`, e.g. JOB_COMPLETION_INDEX).
fn run_container(
    c: &Value,
    vols: &Volumes,
    secrets: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> Output {
    let mounts = vols.mounts();
    for m in c["volumeMounts"].as_array().into_iter().flatten() {
        let at = m["mountPath"].as_str().unwrap();
        assert!(mounts.iter().any(|(p, _)| *p == at), "unmapped mount {at}");
    }
    let map = |a: &str| -> String {
        assert!(
            !a.contains("$("),
            "{a}: expansion would make this run differ from the pod's"
        );
        for (at, dir) in &mounts {
            if let Some(rest) = a.strip_prefix(at) {
                if rest.is_empty() || rest.starts_with('/') {
                    return format!("{}{rest}", dir.display());
                }
            }
        }
        a.to_string()
    };
    let args = argv(c);
    let prog = if args[0] == "trawl" {
        BIN.to_string()
    } else {
        args[0].clone()
    };
    let home = vols.data.parent().unwrap().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(prog);
    cmd.args(args[1..].iter().map(|a| map(a)))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    for e in c["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap();
        if let Some(v) = e["value"].as_str() {
            cmd.env(name, v);
        } else if let Some(key) = e["valueFrom"]["secretKeyRef"]["key"].as_str() {
            if let Some((_, v)) = secrets.iter().find(|(k, _)| *k == key) {
                cmd.env(name, v);
            }
        }
    }
    cmd.envs(extra.iter().copied());
    cmd.output().expect("the container's command runs")
}

#[test]
fn the_kubernetes_manifests_keep_the_shard_contract() {
    let shards = manifest("kubernetes/shards-job.yaml", "Job");
    let spec = &shards["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    let completions = spec["completions"].as_u64().expect("completions");
    assert!(completions >= 1 && spec["parallelism"].as_u64().expect("parallelism") >= 1);
    assert!(
        spec["backoffLimitPerIndex"]
            .as_u64()
            .expect("backoffLimitPerIndex")
            >= 1
    );
    assert!(spec["maxFailedIndexes"].as_u64().expect("maxFailedIndexes") <= completions);
    assert_eq!(
        pod(&shards)["restartPolicy"],
        "Never",
        "required by backoffLimitPerIndex"
    );

    let scan = &pod(&shards)["containers"][0];
    let args = argv(scan);
    assert_eq!(args[..3], ["trawl", "org", "scan"], "{args:?}");
    assert!(args.contains(&"--shard-from-env".to_string()), "{args:?}");
    // Exit 2 fails the index at once; 75 is left to the per-index retries.
    let rules = spec["podFailurePolicy"]["rules"].as_array().expect("rules");
    let on_exit: Vec<&Value> = rules
        .iter()
        .filter(|r| r["onExitCodes"].is_object())
        .collect();
    assert_eq!(on_exit.len(), 1, "{rules:?}");
    let fail_index = &on_exit[0];
    assert_eq!(fail_index["action"], "FailIndex");
    assert_eq!(fail_index["onExitCodes"]["operator"], "In");
    assert_eq!(fail_index["onExitCodes"]["values"], serde_json::json!([2]));
    assert_eq!(fail_index["onExitCodes"]["containerName"], scan["name"]);

    // The plan's shard count is the Indexed Job's completions.
    let plan = manifest("kubernetes/plan-job.yaml", "Job");
    let plan_args = argv(containers(&plan).last().unwrap());
    let at = plan_args.iter().position(|a| a == "--shards").unwrap();
    assert_eq!(plan_args[at + 1], completions.to_string());

    // Tokens only from the Secret, as environment variables; never in arguments.
    let merge = manifest("kubernetes/merge-job.yaml", "Job");
    let mut token_vars = 0;
    for job in [&plan, &shards, &merge] {
        for c in containers(job) {
            for a in argv(&c) {
                assert!(!a.to_lowercase().contains("token"), "{a}");
            }
            for e in c["env"].as_array().into_iter().flatten() {
                if e["name"].as_str().unwrap().contains("TOKEN") {
                    assert!(e["value"].is_null(), "{e}");
                    assert_eq!(e["valueFrom"]["secretKeyRef"]["name"], "trawl-tokens");
                    token_vars += 1;
                }
            }
        }
        let claim = pod(job)["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "data")
            .expect("the data volume");
        assert_eq!(claim["persistentVolumeClaim"]["claimName"], "trawl-data");
    }
    assert!(
        token_vars >= 2,
        "the list and scan containers read GITHUB_TOKEN"
    );
    assert!(scan["env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "GITHUB_TOKEN"
            && e["valueFrom"]["secretKeyRef"]["key"] == "GITHUB_TOKEN"));
    let pvc = manifest("kubernetes/storage.yaml", "PersistentVolumeClaim");
    assert_eq!(pvc["metadata"]["name"], "trawl-data");
    assert_eq!(
        pvc["spec"]["accessModes"],
        serde_json::json!(["ReadWriteMany"])
    );

    // The merge's exit code is the gate: not retried.
    assert_eq!(merge["spec"]["backoffLimit"], 0);
    let merge_args = argv(&containers(&merge)[0]);
    assert_eq!(merge_args[..3], ["trawl", "org", "merge"]);
    assert!(
        merge_args.windows(2).any(|w| w == ["--format", "sarif"]),
        "{merge_args:?}"
    );

    // The nightly chain: one at a time, running chain.sh from the ConfigMap, allowed to
    // create and delete Jobs and nothing cluster-wide.
    let cron = manifest("kubernetes/nightly.yaml", "CronJob");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    let chain_pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(
        argv(&chain_pod["containers"][0])[..2],
        ["sh", "/chain/chain.sh"]
    );
    assert_eq!(chain_pod["volumes"][0]["configMap"]["name"], "trawl-chain");
    let role = manifest("kubernetes/nightly.yaml", "Role");
    let verbs = strings(&role["rules"][0]["verbs"]);
    assert!(verbs.contains(&"create".into()) && verbs.contains(&"delete".into()));
    assert_eq!(role["rules"][0]["resources"], serde_json::json!(["jobs"]));
}

/// Runs the plan Job's containers in order, as written, on `vols`; returns the plan.
fn run_plan_job(vols: &Volumes, urls: &str) -> Value {
    std::fs::write(vols.config.join("urls.txt"), urls).unwrap();
    let plan = manifest("kubernetes/plan-job.yaml", "Job");
    for c in containers(&plan) {
        let o = run_container(&c, vols, &[], &[]);
        assert!(o.status.success(), "{}: {}", c["name"], stderr(&o));
    }
    serde_json::from_slice(&std::fs::read(vols.data.join("plan.json")).unwrap()).unwrap()
}

#[test]
fn the_kubernetes_plan_job_lists_and_plans_into_the_volume_as_written() {
    let t = Tree::new();
    let vols = Volumes::new(&t);
    // A previous run's outputs: a new plan starts a new run.
    let stale = t.write("volume/data/shards/shard-0.done.json", "{}");
    let repos = org_repos(&t);
    let urls: String = repos.iter().map(|r| format!("{}\n", r.display())).collect();
    let plan = run_plan_job(&vols, &format!("# the organisation\n{urls}"));
    assert!(
        !stale.exists(),
        "the previous run's shard outputs were kept"
    );
    let listed = std::fs::read_to_string(vols.data.join("repos.jsonl")).unwrap();
    assert_eq!(listed.lines().count(), 3, "{listed}");
    let completions = manifest("kubernetes/shards-job.yaml", "Job")["spec"]["completions"].clone();
    assert_eq!(
        plan["shards"].as_array().unwrap().len() as u64,
        completions.as_u64().unwrap()
    );
    let planned: usize = plan["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["repos"].as_array().unwrap().len())
        .sum();
    assert_eq!(planned, 3);
}

#[test]
fn the_kubernetes_chain_runs_as_its_containers_say() {
    let t = Tree::new();
    let vols = Volumes::new(&t);
    let repos = org_repos(&t);
    let urls: String = repos.iter().map(|r| format!("{}\n", r.display())).collect();
    let plan = run_plan_job(&vols, &urls);
    let n = plan["shards"].as_array().unwrap().len();
    let shards = manifest("kubernetes/shards-job.yaml", "Job");
    let scan = &pod(&shards)["containers"][0];
    let token = Fake::new(1314).github_token("ghp_");
    let secrets = [("GITHUB_TOKEN", token.as_str())];
    for i in 0..n {
        let index = i.to_string();
        let o = run_container(scan, &vols, &secrets, &[("JOB_COMPLETION_INDEX", &index)]);
        assert_eq!(o.status.code(), Some(0), "shard {i}: {}", stderr(&o));
        assert!(!stderr(&o).contains(&token), "the token reached stderr");
        assert!(vols
            .data
            .join(format!("shards/shard-{i}.done.json"))
            .exists());
        assert!(vols
            .data
            .join(format!("shards/shard-{i}.jsonl.gz"))
            .exists());
    }
    // A rerun of a finished shard changes nothing; an index beyond the plan is fatal (2),
    // which the FailIndex rule turns into a failed index without retries.
    let out0 = vols.data.join("shards/shard-0.jsonl.gz");
    let before = std::fs::read(&out0).unwrap();
    let o = run_container(scan, &vols, &secrets, &[("JOB_COMPLETION_INDEX", "0")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out0).unwrap(), before);
    let beyond = n.to_string();
    let o = run_container(scan, &vols, &secrets, &[("JOB_COMPLETION_INDEX", &beyond)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    let merge = manifest("kubernetes/merge-job.yaml", "Job");
    let o = run_container(&containers(&merge)[0], &vols, &[], &[]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "findings fail the gate: {}",
        stderr(&o)
    );
    let sarif: Value =
        serde_json::from_slice(&std::fs::read(vols.data.join("report.sarif")).unwrap()).unwrap();
    assert_eq!(sarif_findings(&sarif), expected_findings(&repos));

    // Without a shard's marker, merge refuses.
    std::fs::remove_file(vols.data.join("shards/shard-1.done.json")).unwrap();
    let o = run_container(&containers(&merge)[0], &vols, &[], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// A fake kubectl: records its arguments in `$FAKE_DIR/kubectl` and what `apply -f -` reads
/// in `$FAKE_DIR/applied-N`; a Job's conditions are `$FAKE_<job>` (`-` as `_`), complete by
/// default; the merge pod's exit code is `$FAKE_MERGE_CODE`; `apply` fails when
/// `$FAKE_APPLY_FAILS` is set.
fn fake_kubectl(t: &Tree) -> PathBuf {
    let p = t.write(
        "bin/kubectl",
        "#!/bin/sh\n\
         echo \"$*\" >> \"$FAKE_DIR/kubectl\"\n\
         if [ \"$1\" = --namespace ]; then shift 2; fi\n\
         case \"$*\" in\n\
           apply*) [ -z \"$FAKE_APPLY_FAILS\" ] || exit 1\n\
             n=$(ls \"$FAKE_DIR\" | grep -c '^applied-'); cat > \"$FAKE_DIR/applied-$n\" ;;\n\
           get*conditions*) eval \"echo \\${FAKE_$(echo \"$3\" | tr - _):-SuccessCriteriaMet Complete}\" ;;\n\
           get*exitCode*) echo \"$FAKE_MERGE_CODE\" ;;\n\
         esac\n",
    );
    executable(p)
}

#[test]
fn chain_sh_runs_plan_shards_and_merge_in_order_and_exits_with_the_gate() {
    let run = |env: &[(&str, &str)]| {
        let t = Tree::new();
        let kubectl = fake_kubectl(&t);
        let path = format!(
            "{}:{}",
            kubectl.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let o = Command::new(root().join("deploy/kubernetes/chain.sh"))
            .env("PATH", path)
            .env("FAKE_DIR", t.path())
            .env("POLL", "0")
            .env("NAMESPACE", "scans")
            .env("TRAWL_IMAGE", "registry.example/trawl:1.2")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let log = std::fs::read_to_string(t.path().join("kubectl")).unwrap_or_default();
        let applied: Vec<Value> = (0..3)
            .map_while(|n| std::fs::read_to_string(t.path().join(format!("applied-{n}"))).ok())
            .map(|text| yaml_docs(&t.write("manifest.yaml", text)).remove(0))
            .collect();
        (o.status.code(), log, applied, stderr(&o))
    };
    let names = |applied: &[Value]| -> Vec<String> {
        applied
            .iter()
            .map(|m| m["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };

    let (code, log, applied, err) = run(&[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        names(&applied),
        ["trawl-plan", "trawl-shards", "trawl-merge"]
    );
    for m in &applied {
        for c in containers(m) {
            assert_eq!(c["image"], "registry.example/trawl:1.2");
        }
    }
    assert!(
        log.lines().all(|l| l.starts_with("--namespace scans ")),
        "{log}"
    );
    let deletes = log.lines().filter(|l| l.contains(" delete job ")).count();
    assert_eq!(deletes, 3, "each Job is made afresh: {log}");

    // Failed shards: no merge, exit 2.
    let (code, _, applied, err) = run(&[("FAKE_trawl_shards", "FailureTarget Failed")]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(names(&applied), ["trawl-plan", "trawl-shards"]);
    // The merge's gate: findings (1) is the chain's 1; merge refusing (2) is 2.
    let failed = [("FAKE_trawl_merge", "Failed"), ("FAKE_MERGE_CODE", "1")];
    let (code, _, applied, err) = run(&failed);
    assert_eq!((code, applied.len()), (Some(1), 3), "{err}");
    let refused = [("FAKE_trawl_merge", "Failed"), ("FAKE_MERGE_CODE", "2")];
    assert_eq!(run(&refused).0, Some(2));
    // kubectl itself failing is 3, not a verdict on the scan.
    let (code, _, applied, err) = run(&[("FAKE_APPLY_FAILS", "1")]);
    assert_eq!((code, applied.len()), (Some(3), 0), "{err}");

    // A plan of another shard count than the Indexed Job's completions is refused up front.
    let t = Tree::new();
    let kubectl = fake_kubectl(&t);
    for f in ["plan-job.yaml", "shards-job.yaml", "merge-job.yaml"] {
        let text = std::fs::read_to_string(root().join("deploy/kubernetes").join(f)).unwrap();
        t.write(
            &format!("k8s/{f}"),
            text.replace("\"--shards\", \"8\"", "\"--shards\", \"9\""),
        );
    }
    let o = Command::new(root().join("deploy/kubernetes/chain.sh"))
        .arg(t.path().join("k8s"))
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", kubectl.parent().unwrap().display()),
        )
        .env("FAKE_DIR", t.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("plans '9' shards but shards-job.yaml has completions '8'"));
    assert!(!t.path().join("kubectl").exists(), "kubectl ran");
}
