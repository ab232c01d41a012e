//! Files known by their layout rather than by a magic number:
//!
//! - Git LFS pointers (a Hugging Face repository's weights and datasets): recognised by their
//!   first line and never scanned, since their content is stored elsewhere; the run counts them.
//! - MLflow run files: a parameter or tag is a file named after its key
//!   (`mlruns/<experiment>/<run id>/params/<key>`), holding the value alone, so the key is taken
//!   from the path.
//! - Weights & Biases run configs (`wandb/run-*/files/config.yaml`, first line
//!   `wandb_version: 1`): each key's value sits one level down, under `value:`, out of reach of
//!   a rule that needs the key on the value's line.
//!
//! Values found this way are scanned as `key = "value"` (see [`Context::scan_strings`]) and
//! placed at their lines in the file.

use super::{Context, StringItem};
use crate::findings::Position;

/// The largest file read as an LFS pointer: the specification keeps pointers under 1024 bytes.
const MAX_LFS_POINTER: usize = 1024;

/// Whether `data` is a Git LFS pointer file (specification v1): lines of `key value` in
/// UTF-8, the first `version https://git-lfs.github.com/spec/v1` (or the pre-release
/// `hawser` address), with an `oid sha256:<64 hex>` and a decimal `size`.
pub fn is_lfs_pointer(data: &[u8]) -> bool {
    if data.len() >= MAX_LFS_POINTER || !data.ends_with(b"\n") {
        return false;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let mut lines = text.lines();
    if !matches!(
        lines.next(),
        Some(
            "version https://git-lfs.github.com/spec/v1"
                | "version https://hawser.github.com/spec/v1"
        )
    ) {
        return false;
    }
    let (mut oid, mut size) = (false, false);
    for line in lines {
        let Some((key, value)) = line.split_once(' ') else {
            return false;
        };
        let key_ok = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !key_ok || value.is_empty() {
            return false;
        }
        match key {
            "oid" => {
                let hex = value.strip_prefix("sha256:").unwrap_or("");
                oid = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
            }
            "size" => size = value.bytes().all(|b| b.is_ascii_digit()),
            _ => {}
        }
    }
    oid && size
}

/// The key a file's path gives its content: `<key>` for `<run id>/params/<key>` and
/// `<run id>/tags/<key>` in an MLflow run directory (the run id is 32 hexadecimal digits).
/// Metrics files hold numbers and are left to the text scan.
pub fn path_key(path: &str) -> Option<&str> {
    let mut parts = path.rsplit(['/', '\\']);
    let key = parts.next()?;
    let kind = parts.next()?;
    let run = parts.next()?;
    let run_id = run.len() == 32 && run.bytes().all(|b| b.is_ascii_hexdigit());
    (run_id && matches!(kind, "params" | "tags") && !key.is_empty()).then_some(key)
}

/// The largest file read as one keyed value (MLflow keeps values under 8,000 characters).
const MAX_KEYED_FILE: usize = 1 << 20;

/// Whether `data` is a W&B run config: its first line is `wandb_version: 1`.
pub(super) fn is_wandb_config(data: &[u8]) -> bool {
    let first = data.split(|&b| b == b'\n').next().unwrap_or_default();
    first.strip_suffix(b"\r").unwrap_or(first) == b"wandb_version: 1"
}

/// The values of a W&B run config, each under its top-level key: a line `key:` at the left
/// margin opens a key, and its `  value: <scalar>` line (two spaces in) holds the value. Nested
/// values (a `value:` with a block under it) keep their own keys and are left to the text scan.
fn wandb_config_values(data: &[u8]) -> Vec<(&str, usize, &[u8])> {
    let mut out = Vec::new();
    let mut key: Option<&str> = None;
    let mut at = 0;
    for line in data.split_inclusive(|&b| b == b'\n') {
        let start = at;
        at += line.len();
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        if body.first().is_some_and(|&b| b != b' ' && b != b'#') {
            key = body
                .strip_suffix(b":")
                .and_then(|k| std::str::from_utf8(k).ok())
                .filter(|k| !k.contains(": "));
            continue;
        }
        let (Some(k), Some(rest)) = (key, body.strip_prefix(b"  value: ")) else {
            continue;
        };
        let (value, skip) = unquote(rest);
        if !value.is_empty() {
            out.push((k, start + b"  value: ".len() + skip, value));
        }
    }
    out
}

/// A YAML scalar without its quotes, and how many bytes the opening quote took.
fn unquote(s: &[u8]) -> (&[u8], usize) {
    match s {
        [q @ (b'\'' | b'"'), inner @ .., last] if last == q => (inner, 1),
        _ => (s, 0),
    }
}

impl Context<'_, '_, '_> {
    /// A file whose path gives its content a key (an MLflow parameter or tag): the content is
    /// scanned as the key's value. Binary or oversized content is decoded as any other.
    pub(crate) fn scan_keyed_file(&mut self, data: &[u8], key: &str) {
        if data.len() > MAX_KEYED_FILE || crate::source::looks_binary(data) {
            self.decode(data, None, 0);
            return;
        }
        let value = data.strip_suffix(b"\n").unwrap_or(data);
        let items = [StringItem {
            offset: 0,
            exact: true,
            key: Some(key),
            value,
            record: None,
            row: None,
        }];
        self.scan_text_items(data, &items, None);
    }

    /// A W&B run config: the values under their keys, then the whole file as text (findings
    /// at the same place and of the same rule are one location).
    pub(super) fn scan_wandb_config(&mut self, data: &[u8], member: Option<&str>) {
        let values = wandb_config_values(data);
        let items: Vec<StringItem<'_>> = values
            .iter()
            .map(|&(key, offset, value)| StringItem {
                offset,
                exact: true,
                key: Some(key),
                value,
                record: None,
                row: None,
            })
            .collect();
        self.scan_text_items(data, &items, member);
    }

    /// Scans values that sit in the text file `raw` at their exact offsets, giving each
    /// finding its line and column.
    fn scan_text_items(&mut self, raw: &[u8], items: &[StringItem<'_>], member: Option<&str>) {
        let from = self.out.placed.len();
        self.scan_strings(items, member, None);
        for p in &mut self.out.placed[from..] {
            let end = p.offset + p.secret.len();
            p.position = Some(Position::of(raw, p.offset, end));
            self.worker.work_mut().place += (end as u64).min(raw.len() as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POINTER: &[u8] = b"version https://git-lfs.github.com/spec/v1\n\
oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n\
size 12345\n";

    #[test]
    fn lfs_pointers_are_told_from_text_about_them() {
        assert!(is_lfs_pointer(POINTER));
        let with_ext = b"version https://git-lfs.github.com/spec/v1\n\
ext-0-foo sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n\
oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n\
size 0\n";
        assert!(is_lfs_pointer(with_ext));
        // A README quoting a pointer, a pointer with a secret added, a short oid, no size.
        let mut readme = b"# Weights\n".to_vec();
        readme.extend_from_slice(POINTER);
        assert!(!is_lfs_pointer(&readme));
        let mut extra = POINTER.to_vec();
        extra.extend_from_slice(b"OPENAI_API_KEY=sk-abc\n");
        assert!(!is_lfs_pointer(&extra));
        assert!(!is_lfs_pointer(
            b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 1\n"
        ));
        assert!(!is_lfs_pointer(&POINTER[..POINTER.len() - 11]));
        assert!(!is_lfs_pointer(&[b'v'; 2000]));
    }

    #[test]
    fn mlflow_parameter_and_tag_files_take_their_name_as_key() {
        let run = "mlruns/0/0123456789abcdef0123456789abcdef";
        assert_eq!(
            path_key(&format!("{run}/params/wandb_api_key")),
            Some("wandb_api_key")
        );
        assert_eq!(
            path_key(&format!("{run}/tags/mlflow.user")),
            Some("mlflow.user")
        );
        assert_eq!(path_key(&format!("{run}/metrics/loss")), None);
        assert_eq!(path_key("src/params/api_key"), None);
        assert_eq!(path_key("params/api_key"), None);
        assert_eq!(path_key(&format!("{run}/params/")), None);
    }

    #[test]
    fn wandb_config_values_come_with_their_top_level_key() {
        let cfg = b"wandb_version: 1\n\n_wandb:\n  desc: null\n  value:\n    cli_version: 0.19.0\n\
lr:\n  desc: null\n  value: 0.001\nwandb_api_key:\n  desc: null\n  value: 'abc'\nbad key: 1\n  value: x\n";
        assert!(is_wandb_config(cfg));
        assert!(!is_wandb_config(b"version: 1\nwandb_version: 1\n"));
        let values = wandb_config_values(cfg);
        let got: Vec<(&str, &[u8])> = values.iter().map(|&(k, _, v)| (k, v)).collect();
        assert_eq!(got, [("lr", &b"0.001"[..]), ("wandb_api_key", &b"abc"[..])]);
        let (_, at, v) = values[1];
        assert_eq!(&cfg[at..at + v.len()], b"abc");
    }
}
