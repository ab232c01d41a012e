//! Release hygiene and the Python wheel: `trawl --version` (version, commit, and the digest of
//! the built-in rule catalogue that the state store records), one version across the crate,
//! the wheel's pyproject, the pre-commit shim and the action, and the test wheel — built by
//! `scripts/build-wheel --dev` (Cargo's dev profile, the test build's artifacts), which
//! scripts/test runs before `cargo test` — installed into a clean virtualenv.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::{git_ok, stderr, stdout, trawl, Fake, Tree};

/// The build script, whose `commit` is tested here (`main` is not called).
#[allow(dead_code)]
#[path = "../build.rs"]
mod build_script;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The folder holding the one test wheel.
pub fn wheel_dir() -> PathBuf {
    let dir = root().join("target/wheels-dev");
    let wheels: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("trawl_scanner-") && n.ends_with(".whl"))
        })
        .collect();
    assert_eq!(
        wheels.len(),
        1,
        "no test wheel in {}: run scripts/build-wheel --dev (scripts/test does)",
        dir.display()
    );
    dir
}

/// `pip --find-links` for offline installs: the test wheel and the pinned build backend of
/// the pre-commit shim (.tools/wheels, from scripts/install-test-tools.sh).
pub fn find_links() -> String {
    let tools = root().join(".tools/wheels");
    assert!(
        tools.is_dir(),
        "{} is missing: run scripts/install-test-tools.sh (scripts/test does)",
        tools.display()
    );
    format!("{} {}", wheel_dir().display(), tools.display())
}

fn ok(o: Output, what: &str) -> String {
    assert!(o.status.success(), "{what}: {}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

/// The three lines of `trawl --version`: version, commit, rule-catalogue digest.
fn version_lines(text: &str) -> (String, String, String) {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let field = |i: usize, name: &str| {
        lines[i]
            .strip_prefix(name)
            .unwrap_or_else(|| panic!("line {i} is not `{name}...`: {text}"))
            .to_string()
    };
    (
        field(0, "trawl "),
        field(1, "commit "),
        field(2, "rules ")
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_string(),
    )
}

#[test]
fn version_names_the_crate_version_the_commit_and_the_digest_the_state_store_records() {
    let long = ok(trawl(["--version"]), "trawl --version");
    assert_eq!(ok(trawl(["-V"]), "trawl -V"), long);
    let (version, commit, digest) = version_lines(&long);
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    // Built from this checkout: its HEAD (the build script reruns when HEAD moves).
    assert_eq!(commit, git_ok(root(), &["rev-parse", "HEAD"]), "{long}");
    assert!(long.contains("built-in rules, default limits)"), "{long}");

    // The digest is the generation a default `trawl git --state` run records.
    let t = Tree::new();
    let repo = t.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git_ok(&repo, &["init", "-q", "-b", "main"]);
    t.write("repo/a.env", format!("HF={}\n", Fake::new(1501).hf_token()));
    git_ok(&repo, &["add", "-A"]);
    git_ok(&repo, &["commit", "-qm", "one"]);
    let state = t.path().join("state.db");
    let scan_with_state = |extra: &[&str]| {
        let mut args = vec![
            "git",
            repo.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            "--no-progress",
        ];
        args.extend_from_slice(extra);
        let o = trawl(&args);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    };
    scan_with_state(&[]);
    let db = rusqlite::Connection::open(&state).unwrap();
    let recorded: Vec<String> = db
        .prepare("SELECT digest FROM generations")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(recorded, std::slice::from_ref(&digest));
    assert_eq!(digest.len(), 64, "{digest}");

    // Another rule catalogue is another generation: the digest tells catalogues apart.
    let rules = t.write(
        "extra.toml",
        "[[rules]]\nid = \"acme.key\"\nname = \"ACME key\"\ncategory = \"cloud\"\n\
         severity = \"high\"\nregex = '''(?P<secret>ACME-[A-Za-z0-9]{32})'''\nkeywords = [\"acme-\"]\n",
    );
    scan_with_state(&["--rules", rules.to_str().unwrap()]);
    let count: i64 = db
        .query_row(
            "SELECT count(*) FROM generations WHERE digest != ?1",
            [&digest],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(count, 1);
}

#[test]
fn the_build_script_takes_the_commit_of_its_own_checkout_only() {
    let t = Tree::new();
    let repo = t.path().join("repo");
    let inner = repo.join("packaging");
    std::fs::create_dir_all(&inner).unwrap();
    // Not a repository (an unpacked source distribution): "unknown" is printed instead.
    assert_eq!(build_script::commit(&repo), None);
    git_ok(&repo, &["init", "-q", "-b", "main"]);
    // A repository without a commit.
    assert_eq!(build_script::commit(&repo), None);
    t.write("repo/packaging/a.txt", "a\n");
    git_ok(&repo, &["add", "-A"]);
    git_ok(&repo, &["commit", "-qm", "one"]);
    let head = git_ok(&repo, &["rev-parse", "HEAD"]);
    assert_eq!(build_script::commit(&repo), Some(head));
    // A folder inside someone else's repository is not a checkout of trawl.
    assert_eq!(build_script::commit(&inner), None);
}

fn toml_file(rel: &str) -> toml::Value {
    toml::from_str(&std::fs::read_to_string(root().join(rel)).unwrap()).unwrap()
}

/// `NAME=VALUE` of a shell script.
fn shell_assignment(rel: &str, name: &str) -> String {
    let text = std::fs::read_to_string(root().join(rel)).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {rel}"))
        .to_string()
}

#[test]
fn crate_wheel_shim_and_action_carry_one_version_and_the_pins_agree() {
    let version = env!("CARGO_PKG_VERSION");
    // The wheel takes its version from Cargo.toml.
    let wheel = toml_file("packaging/python/pyproject.toml");
    assert_eq!(wheel["project"]["name"].as_str(), Some("trawl-scanner"));
    assert!(wheel["project"].get("version").is_none());
    let dynamic = wheel["project"]["dynamic"].as_array().unwrap();
    assert!(dynamic.iter().any(|d| d.as_str() == Some("version")));
    assert_eq!(wheel["tool"]["maturin"]["bindings"].as_str(), Some("bin"));
    let maturin = shell_assignment("scripts/install-test-tools.sh", "MATURIN_VERSION");
    assert_eq!(
        wheel["build-system"]["requires"][0].as_str(),
        Some(format!("maturin=={maturin}").as_str())
    );
    // The pre-commit shim pins the wheel of this very version.
    let shim = toml_file("pyproject.toml");
    assert_eq!(shim["project"]["version"].as_str(), Some(version));
    let deps = shim["project"]["dependencies"].as_array().unwrap();
    assert_eq!(deps.len(), 1);
    assert_eq!(
        deps[0].as_str(),
        Some(format!("trawl-scanner=={version}").as_str())
    );
    let setuptools = shell_assignment("scripts/install-test-tools.sh", "SETUPTOOLS_VERSION");
    assert_eq!(
        shim["build-system"]["requires"][0].as_str(),
        Some(format!("setuptools=={setuptools}").as_str())
    );
    // The action installs it by default.
    let action = crate::deploy::yaml_docs(&root().join("action.yml")).remove(0);
    assert_eq!(action["inputs"]["version"]["default"], version);
    // The test wheel is named for it.
    let name = std::fs::read_dir(wheel_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".whl"))
        .unwrap();
    assert!(
        name.starts_with(&format!("trawl_scanner-{version}-py3-none-")),
        "{name}"
    );
}

/// A new virtualenv in `dir` with pip's installs limited to `find_links()`; returns its bin
/// folder.
pub fn venv(dir: &Path) -> PathBuf {
    ok(
        Command::new("python3")
            .args(["-m", "venv"])
            .arg(dir)
            .output()
            .expect("python3 runs"),
        "python3 -m venv",
    );
    dir.join("bin")
}

#[test]
fn a_clean_virtualenv_pip_installs_the_wheel_and_its_trawl_finds_a_planted_secret() {
    let t = Tree::new();
    let bin = venv(&t.path().join("venv"));
    assert!(!bin.join("trawl").exists());
    // The README's install lines, as written, offline from the test wheel.
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new("sh")
        .args(["-e", "-c", &crate::readme::example("pip-install")])
        .current_dir(t.path())
        .env("PATH", &path)
        .env("PIP_NO_INDEX", "1")
        .env("PIP_FIND_LINKS", find_links())
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .output()
        .unwrap();
    let printed = ok(o, "the README's pip install");
    let installed = bin.join("trawl");
    assert!(
        installed.is_file(),
        "pip did not put trawl in {}",
        bin.display()
    );
    // The wheel carries this build: same version, commit and rule catalogue as the test binary.
    let version = ok(trawl(["--version"]), "trawl --version");
    assert!(
        printed.contains(&version),
        "a stale test wheel (run scripts/build-wheel --dev): it says\n{printed}\nthe build says\n{version}"
    );

    // Named and described as the crate, with the README as its long description.
    let o = Command::new(bin.join("python"))
        .args([
            "-c",
            "import importlib.metadata as m, json; d = m.metadata('trawl-scanner'); \
             print(json.dumps([d['Name'], d['Version'], d['Summary'], d.get_payload()]))",
        ])
        .output()
        .unwrap();
    let meta: Vec<String> = serde_json::from_str(&ok(o, "the wheel's metadata")).unwrap();
    assert_eq!(
        meta[..3],
        [
            "trawl-scanner",
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_DESCRIPTION")
        ]
    );
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        meta[3].trim_end() == readme.trim_end(),
        "the long description is not the README (a stale test wheel? run scripts/build-wheel --dev)"
    );

    let tok = Fake::new(1502).hf_token();
    t.write("fixture/app/settings.py", format!("HF_TOKEN = \"{tok}\"\n"));
    t.write("fixture/README.md", "# nothing here\n");
    let o = Command::new(&installed)
        .args(["scan", "fixture", "--format", "json", "--no-progress"])
        .current_dir(t.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{v}");
    assert_eq!(findings[0]["rule"], "huggingface.user-token");
    assert!(
        !stdout(&o).contains(&tok),
        "the secret is redacted in the report"
    );
}
