//! Test helpers: running the binary, temporary trees, fake secrets.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use trawl::rules::RuleSet;
use trawl::scan::Scanner;

pub const BIN: &str = env!("CARGO_BIN_EXE_trawl");

/// The built-in scanner.
pub fn scanner() -> Scanner {
    Scanner::new(RuleSet::builtin().expect("built-in rules compile")).expect("scanner builds")
}

/// Runs trawl with `args` and returns its output.
pub fn trawl<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(BIN).args(args).output().expect("trawl runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A temporary directory holding files written by the test.
pub struct Tree {
    pub dir: tempfile::TempDir,
}

impl Tree {
    pub fn new() -> Tree {
        Tree {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.dir.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, content).expect("write");
        p
    }
}

/// A small deterministic PRNG (xorshift64*) for fake secrets.
pub struct Fake(u64);

impl Fake {
    pub fn new(seed: u64) -> Fake {
        Fake(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `n` characters drawn from `alphabet`.
    pub fn string(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize] as char)
            .collect()
    }

    pub fn alnum(&mut self, n: usize) -> String {
        self.string(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            n,
        )
    }

    /// A GitHub-style token `<prefix>` + 30 random + 6 checksum characters.
    pub fn github_token(&mut self, prefix: &str) -> String {
        let body = self.alnum(30);
        format!("{prefix}{body}{}", base62_crc(&body))
    }

    /// A Hugging Face user token.
    pub fn hf_token(&mut self) -> String {
        format!(
            "hf_{}",
            self.string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", 34)
        )
    }
}

/// Base62 (`0-9A-Za-z`) of the CRC32 of `body`, zero-padded to 6 characters.
pub fn base62_crc(body: &str) -> String {
    const A: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut n = u64::from(crc32fast::hash(body.as_bytes()));
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = A[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out.to_vec()).expect("ascii")
}

/// Writes every built-in rule's examples into files of `tree` (one file per rule) and returns
/// the relative paths.
pub fn write_rule_examples(tree: &Tree) -> Vec<String> {
    let rules = RuleSet::builtin().expect("rules");
    let mut paths = Vec::new();
    for rule in rules.rules() {
        let rel = format!("examples/{}.txt", rule.spec.id);
        let mut text = String::new();
        for ex in &rule.spec.examples {
            text.push_str(ex);
            text.push_str("\n\n");
        }
        tree.write(&rel, text);
        paths.push(rel);
    }
    paths
}

/// Whether the current user is root (who can read any file).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs trawl with stdout and stderr in files and returns (exit code, stdout, stderr, peak RSS
/// in KiB). The peak is the program's own (`VmHWM`, reported by trawl when
/// `TRAWL_REPORT_PEAK_RSS` is set): a parent's rusage would also count the test process's memory
/// that the child inherits through fork.
pub fn trawl_measured(args: &[&str], dir: &Path) -> (i32, String, String, i64) {
    let out = dir.join("measured.out");
    let err = dir.join("measured.err");
    let status = Command::new(BIN)
        .args(args)
        .env("TRAWL_REPORT_PEAK_RSS", "1")
        .stdout(std::fs::File::create(&out).expect("out"))
        .stderr(std::fs::File::create(&err).expect("err"))
        .status()
        .expect("trawl runs");
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    let peak = stderr
        .lines()
        .find_map(|l| l.strip_prefix("trawl: peak RSS "))
        .and_then(|v| v.trim_end_matches(" kB").trim().parse().ok())
        .expect("peak RSS reported");
    (
        status.code().unwrap_or(-1),
        std::fs::read_to_string(&out).unwrap_or_default(),
        stderr,
        peak,
    )
}

/// Runs git in `dir` with a fixed identity and no user or system configuration.
pub fn git_cmd(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Dev",
            "-c",
            "user.email=dev@example.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .envs(env.iter().copied())
        .output()
        .expect("git runs")
}

/// Runs git in `dir`; fails the test when git fails. Returns trimmed stdout.
pub fn git_ok(dir: &Path, args: &[&str]) -> String {
    let o = git_cmd(dir, args, &[]);
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}
