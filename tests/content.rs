//! Decoders through the command line: archives (zip, tar, gzip, nesting, limits), notebooks,
//! model cards. Archives are built here with the zip and flate2 crates.

use std::io::Write;

use serde_json::Value;

use crate::util::{stderr, trawl, Fake, Tree};

pub fn zip_bytes(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn tar_bytes(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    let size = format!("{:011o}\0", data.len());
    h[124..136].copy_from_slice(size.as_bytes());
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}

fn locations(dir: &std::path::Path, extra: &[&str]) -> (Option<i32>, Vec<Value>, String) {
    let mut args = vec!["scan", dir.to_str().unwrap(), "-f", "json"];
    args.extend_from_slice(extra);
    let o = trawl(&args);
    let v: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    let locs = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["locations"].as_array().unwrap().clone())
        .collect();
    (o.status.code(), locs, stderr(&o))
}

fn paths(locs: &[Value]) -> Vec<String> {
    let mut p: Vec<String> = locs
        .iter()
        .map(|l| l["path"].as_str().unwrap().to_string())
        .collect();
    p.sort();
    p
}

#[test]
fn archives_are_opened_by_content_at_any_depth() {
    let mut f = Fake::new(200);
    let t = Tree::new();
    let inner = zip_bytes(&[(
        "cfg/settings.py",
        format!("X = 1\nHF_TOKEN = \"{}\"\n", f.hf_token()).as_bytes(),
    )]);
    // A zip inside a zip, saved under a name that says nothing (PyTorch-style `.bin`).
    t.write(
        "model.bin",
        zip_bytes(&[("archive/version", b"3\n"), ("nested/inner.zip", &inner)]),
    );
    t.write(
        "logs.tar",
        tar_bytes(
            "run/env.txt",
            format!("token: {}\n", f.hf_token()).as_bytes(),
        ),
    );
    t.write(
        "bundle.tgz",
        gzip_bytes(&tar_bytes(
            "a/b.yaml",
            format!("hf: {}\n", f.hf_token()).as_bytes(),
        )),
    );
    t.write(
        "notes.txt.gz",
        gzip_bytes(format!("\n\nHF={}\n", f.hf_token()).as_bytes()),
    );
    let (code, locs, err) = locations(t.path(), &[]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        paths(&locs),
        [
            "bundle.tgz!a/b.yaml",
            "logs.tar!run/env.txt",
            "model.bin!nested/inner.zip!cfg/settings.py",
            "notes.txt.gz!gunzip",
        ]
    );
    let l = locs
        .iter()
        .find(|l| l["path"].as_str().unwrap().starts_with("model.bin"))
        .unwrap();
    assert_eq!(
        (l["line"].as_u64(), l["column"].as_u64()),
        (Some(2), Some(13))
    );
    assert_eq!(l["member"], "nested/inner.zip!cfg/settings.py");
}

#[test]
fn a_corrupt_crc_is_a_warning_and_the_member_is_still_scanned() {
    let t = Tree::new();
    let tok = Fake::new(201).hf_token();
    let mut z = zip_bytes(&[("data.txt", format!("HF_TOKEN={tok}\n").as_bytes())]);
    // Zero the CRC in the local header (offset 14) and the central directory entry.
    z[14..18].copy_from_slice(&[0, 0, 0, 0]);
    let cd = z.windows(4).rposition(|w| w == b"PK\x01\x02").unwrap();
    z[cd + 16..cd + 20].copy_from_slice(&[0, 0, 0, 0]);
    t.write("weights.pt", z);
    let (code, locs, err) = locations(t.path(), &[]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(paths(&locs), ["weights.pt!data.txt"]);
    assert!(
        err.contains("warning") && err.contains("weights.pt"),
        "{err}"
    );
}

#[test]
fn deep_nesting_and_bombs_stop_at_the_limits_with_warnings() {
    let t = Tree::new();
    let tok = Fake::new(202).hf_token();
    // 100 levels of zips.
    let mut z = zip_bytes(&[("deep.txt", format!("HF={tok}\n").as_bytes())]);
    for i in 0..100 {
        z = zip_bytes(&[(&format!("level{i}.zip"), &z)]);
    }
    t.write("deep.zip", z);
    // A member whose decompressed size is far past the ratio limit.
    let zeros = vec![0u8; 64 << 20];
    t.write(
        "bomb.zip",
        zip_bytes(&[
            ("zeros.bin", &zeros),
            ("after.txt", format!("hf={tok}\n").as_bytes()),
        ]),
    );
    let (code, locs, err) = locations(t.path(), &[]);
    assert!(
        err.contains("deep.zip") && err.contains("nested deeper"),
        "{err}"
    );
    assert!(err.contains("bomb.zip") && err.contains("limit"), "{err}");
    // The bomb's other member is still scanned; the deep secret is past the depth limit.
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(paths(&locs), ["bomb.zip!after.txt"]);
    // A larger depth reaches it.
    let (_, locs, _) = locations(t.path(), &["--archive-depth", "128"]);
    assert!(
        paths(&locs).iter().any(|p| p.ends_with("!deep.txt")),
        "{locs:?}"
    );
}

#[test]
fn notebooks_report_ipynb_lines_with_cell_and_output() {
    let mut f = Fake::new(203);
    let (a, b, c) = (f.hf_token(), f.hf_token(), f.hf_token());
    let nb = format!(
        r##"{{
 "cells": [
  {{
   "cell_type": "markdown",
   "metadata": {{}},
   "source": ["# Training\n"]
  }},
  {{
   "cell_type": "code",
   "execution_count": 1,
   "metadata": {{}},
   "outputs": [
    {{
     "name": "stdout",
     "output_type": "stream",
     "text": ["logged in\n", "token={b}\n"]
    }},
    {{
     "data": {{
      "image/png": "iVBORw0KGgo{c}AAAA",
      "text/plain": ["<Figure size 640x480>"]
     }},
     "metadata": {{}},
     "output_type": "display_data"
    }}
   ],
   "source": ["import os\n", "HF_TOKEN = \"{a}\"\n"]
  }}
 ],
 "metadata": {{"kernelspec": {{"name": "python3"}}}},
 "nbformat": 4,
 "nbformat_minor": 5
}}
"##
    );
    let t = Tree::new();
    t.write("train.ipynb", &nb);
    let (code, locs, err) = locations(t.path(), &["--show-secrets"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        locs.len(),
        2,
        "only the source and the stream output, not the PNG: {locs:?}"
    );
    let line_of = |s: &str| 1 + nb[..nb.find(s).unwrap()].matches('\n').count() as u64;
    let src = locs.iter().find(|l| l["output"].is_null()).unwrap();
    assert_eq!(
        (src["cell"].as_u64(), src["line"].as_u64()),
        (Some(1), Some(line_of(&a)))
    );
    let out = locs.iter().find(|l| !l["output"].is_null()).unwrap();
    assert_eq!(
        (
            out["cell"].as_u64(),
            out["output"].as_u64(),
            out["line"].as_u64()
        ),
        (Some(1), Some(0), Some(line_of(&b)))
    );
    // A notebook that is not valid JSON is scanned as text.
    let t2 = Tree::new();
    t2.write("broken.ipynb", &nb[..nb.find("\"nbformat\":").unwrap()]);
    let (code, locs, _) = locations(t2.path(), &[]);
    assert_eq!(code, Some(1));
    assert!(!locs.is_empty());
}

#[test]
fn model_card_front_matter_names_the_key() {
    let tok = Fake::new(204).hf_token();
    let t = Tree::new();
    t.write(
        "README.md",
        format!("---\nlicense: apache-2.0\ntags:\n  - text-classification\nwidget:\n  - text: I love it\n    api_token: {tok}\n---\n# Model card\n"),
    );
    let (code, locs, _) = locations(t.path(), &[]);
    assert_eq!(code, Some(1));
    assert_eq!(locs[0]["key"], "widget.api_token");
    assert_eq!(locs[0]["line"], 7);
}

#[test]
fn a_pickle_of_ten_million_opcodes_finishes_in_bounded_memory() {
    let t = Tree::new();
    let mut p = b"\x80\x04".to_vec();
    for _ in 0..5_000_000 {
        p.extend_from_slice(b"]0"); // EMPTY_LIST, POP
    }
    p.extend_from_slice(b"cposix\nsystem\n(S'id'\ntR.");
    t.write("opcodes.pkl", &p);
    let (code, out, err, maxrss_kib) = crate::util::trawl_measured(
        &["scan", t.path().to_str().unwrap(), "-f", "json"],
        t.path(),
    );
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("posix.system"), "{out}");
    assert!(maxrss_kib < 200 * 1024, "peak RSS {maxrss_kib} KiB");
}

/// A safetensors file whose `__metadata__` holds `pairs` (keys and values written as given).
fn safetensors_with_metadata(pairs: &[(&str, &str)]) -> Vec<u8> {
    let meta: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!(r#""{k}": "{v}""#))
        .collect();
    let header = format!(
        r#"{{"__metadata__": {{{}}}, "w": {{"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}}}"#,
        meta.join(", ")
    );
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&[0; 4]);
    out
}

#[test]
fn model_metadata_values_are_read_with_their_key() {
    // A W&B API key is 40 hex digits: only its key's name tells it from a digest (issue 12,
    // point 1). Under `training.wandb_api_key` it is found, at the value's offset, with the
    // key; the same value under `commit` is nothing.
    let key = Fake::new(1201).string(b"0123456789abcdef", 40);
    let t = Tree::new();
    let planted = safetensors_with_metadata(&[("format", "pt"), ("training.wandb_api_key", &key)]);
    let at = planted
        .windows(key.len())
        .position(|w| w == key.as_bytes())
        .unwrap();
    t.write("model.safetensors", &planted);
    t.write(
        "clean.safetensors",
        safetensors_with_metadata(&[("format", "pt"), ("commit", &key)]),
    );
    let (code, locs, err) = locations(t.path(), &[]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(locs.len(), 1, "{locs:?}");
    assert_eq!(locs[0]["path"], "model.safetensors");
    assert_eq!(locs[0]["key"], "__metadata__.training.wandb_api_key");
    assert_eq!(locs[0]["offset"], at);
    let v = serde_json::to_string(&locs).unwrap();
    assert!(!v.contains(&key), "the secret is redacted: {v}");
}

/// A protocol-2 pickle of a dict of strings, as `pickle.dumps(d, 2)` writes it.
fn pickled_dict(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = b"\x80\x02}q\x00(".to_vec();
    for s in pairs.iter().flat_map(|(k, v)| [k, v]) {
        out.push(b'X');
        out.extend((s.len() as u32).to_le_bytes());
        out.extend(s.as_bytes());
    }
    out.extend(b"u.");
    out
}

#[test]
fn pickled_dict_values_are_read_with_their_key() {
    // Issue 12, point 1: a pickled dict `{"aws_secret_access_key": "…"}` and a protocol-0
    // pickle holding `WANDB_API_KEY` are found, with the key; the same values under keys that
    // name nothing secret are not.
    let mut f = Fake::new(1202);
    let aws = f.alnum(40);
    let wandb = f.string(b"0123456789abcdef", 40);
    let t = Tree::new();
    t.write(
        "state.pkl",
        pickled_dict(&[("region", "eu-west-1"), ("aws_secret_access_key", &aws)]),
    );
    t.write(
        "env.pkl",
        format!("(dp0\nVWANDB_API_KEY\np1\nV{wandb}\np2\ns."),
    );
    t.write(
        "clean.pkl",
        pickled_dict(&[("checksum", &aws), ("commit", &wandb)]),
    );
    let (code, locs, err) = locations(t.path(), &[]);
    assert_eq!(code, Some(1), "{err}");
    let mut found: Vec<(String, String)> = locs
        .iter()
        .map(|l| {
            (
                l["path"].as_str().unwrap().to_string(),
                l["key"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("env.pkl".to_string(), "WANDB_API_KEY".to_string()),
            ("state.pkl".to_string(), "aws_secret_access_key".to_string()),
        ]
    );
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn pickled_object_state_and_protocol_0_dicts_give_key_and_offset() {
    // Issue 12, point 1: an object's `__dict__` (NEWOBJ, SETITEMS, BUILD), a protocol-0 dict
    // as `pickle.dumps(d, 0)` writes it (SETITEM) and one written as MARK ... DICT are found
    // with the key, at the offset of the opcode that holds the value.
    let mut f = Fake::new(1203);
    let aws = f.alnum(40);
    let (w1, w2) = (
        f.string(b"0123456789abcdef", 40),
        f.string(b"0123456789abcdef", 40),
    );
    let mut obj =
        b"\x80\x02cm\nCreds\nq\x00)\x81q\x01}q\x02(X\x15\x00\x00\x00aws_secret_access_keyq\x03"
            .to_vec();
    let obj_at = obj.len();
    obj.extend(b"X\x28\x00\x00\x00");
    obj.extend(aws.as_bytes());
    obj.extend(b"q\x04ub.");
    let setitem = format!("(dp0\nVWANDB_API_KEY\np1\nV{w1}\np2\ns.");
    let dict = format!("(Vmode\np0\nVonline\np1\nVWANDB_API_KEY\np2\nV{w2}\np3\nd.");
    let t = Tree::new();
    t.write("state.pkl", &obj);
    t.write("setitem.pkl", &setitem);
    t.write("dict.pkl", &dict);
    let (code, locs, err) = locations(t.path(), &[]);
    assert_eq!(code, Some(1), "{err}");
    let mut found: Vec<(String, String, u64)> = locs
        .iter()
        .filter(|l| !l["key"].is_null())
        .map(|l| {
            let path = l["path"].as_str().unwrap().to_string();
            (
                path,
                l["key"].as_str().unwrap().to_string(),
                l["offset"].as_u64().unwrap(),
            )
        })
        .collect();
    found.sort();
    let at = |text: &str, value: &str| text.find(&format!("V{value}")).unwrap() as u64;
    let want = [
        ("dict.pkl", "WANDB_API_KEY", at(&dict, &w2)),
        ("setitem.pkl", "WANDB_API_KEY", at(&setitem, &w1)),
        ("state.pkl", "aws_secret_access_key", obj_at as u64),
    ];
    let want: Vec<(String, String, u64)> = want
        .iter()
        .map(|(p, k, o)| (p.to_string(), k.to_string(), *o))
        .collect();
    assert_eq!(found, want);
}

#[test]
fn one_long_key_under_a_million_values_does_not_multiply_memory() {
    // Two 1,000-byte keys memoized once and given in turn to 1,000,000 one-byte values
    // (`SETITEM` each, 10 MB of pickle): copied for every value they would take 1 GB, and
    // written before every value, 200 MB of text to scan. Keys are shared, and the keys
    // written are bounded by the values' own bytes.
    let mut p = b"\x80\x02}".to_vec();
    for (i, k) in [b'k', b'j'].into_iter().enumerate() {
        p.extend(b"X\xe8\x03\x00\x00");
        p.extend(std::iter::repeat_n(k, 1000));
        p.extend([b'q', i as u8]);
        p.extend(b"X\x01\x00\x00\x00vs");
    }
    for n in 0..1_000_000u32 {
        p.extend([b'h', (n % 2) as u8]);
        p.extend(b"X\x01\x00\x00\x00vs");
    }
    p.push(b'.');
    let t = Tree::new();
    t.write("many.pkl", &p);
    let (code, _, err, maxrss_kib) = crate::util::trawl_measured(
        &["scan", t.path().to_str().unwrap(), "-f", "json"],
        t.path(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "{err}");
    // A million strings of their own take about 160 MB; a copy of the key for each, 1 GB.
    assert!(maxrss_kib < 400 * 1024, "peak RSS {maxrss_kib} KiB");
}
