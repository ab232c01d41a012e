//! Archives, read in memory and never extracted: zip (PyTorch `.pt`/`.bin`, `.keras`, `.npz`,
//! `.whl`, `.jar`, `.mar` are zips), tar, and gzip. Members are decoded again by content.
//!
//! Zip CRCs are ignored, as PyTorch ignores them (a zeroed CRC must not hide a payload). Each
//! member is bounded by the budget: its share of the total, the single-member limit, and a
//! decoded/compressed ratio; what a limit cuts off is a warning, the rest is still scanned.

use std::io::{Cursor, Read};

use super::{join_member, Context};
use crate::source::looks_binary;

/// Bytes of a large member read to decide whether to read the rest.
const PEEK_BYTES: usize = 8192;

/// Whether `data` starts like a zip, gzip or tar archive.
pub fn is_archive(data: &[u8]) -> bool {
    is_zip(data) || is_gzip(data) || is_tar(data)
}

fn is_zip(data: &[u8]) -> bool {
    data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06")
}

fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(b"\x1f\x8b\x08")
}

fn is_tar(data: &[u8]) -> bool {
    data.len() >= 512 && &data[257..262] == b"ustar"
}

pub(crate) fn decode(
    ctx: &mut Context<'_, '_, '_>,
    data: &[u8],
    member: Option<&str>,
    depth: usize,
) {
    if is_zip(data) {
        zip(ctx, data, member, depth);
    } else if is_gzip(data) {
        gzip(ctx, data, member, depth);
    } else {
        tar(ctx, data, member, depth);
    }
}

/// Printable member names: control characters escaped, never used as file-system paths.
fn clean_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Reads at most `allowance` bytes; returns the bytes, whether more was there, and a read
/// error (the bytes read before it are kept: a bad CRC surfaces at the end of the data).
fn read_bounded(mut r: impl Read, allowance: u64) -> (Vec<u8>, bool, Option<std::io::Error>) {
    let mut buf = Vec::new();
    let err = (&mut r)
        .take(allowance.saturating_add(1))
        .read_to_end(&mut buf)
        .err();
    let over = buf.len() as u64 > allowance;
    if over {
        buf.truncate(allowance as usize);
    }
    (buf, over, err)
}

fn zip(ctx: &mut Context<'_, '_, '_>, data: &[u8], member: Option<&str>, depth: usize) {
    let mut archive = match zip::ZipArchive::new(Cursor::new(data)) {
        Ok(a) => a,
        Err(e) => {
            ctx.warn(member, format!("unreadable zip archive: {e}"));
            return;
        }
    };
    for i in 0..archive.len() {
        if ctx.budget.is_exhausted() {
            if ctx.budget.newly_exhausted() {
                let total = ctx.budget.total;
                ctx.limit(member, format!("decoded more than {total} bytes in all (possible zip bomb): the rest is skipped"));
            }
            return;
        }
        if !ctx.budget.take_entry() {
            ctx.limit(
                member,
                format!(
                    "more than {} archive entries: the rest is skipped",
                    ctx.budget.limits.max_entries
                ),
            );
            return;
        }
        let mut file = match archive.by_index(i) {
            Ok(f) => f,
            Err(e) => {
                ctx.warn(member, format!("zip entry {i} unreadable: {e}"));
                continue;
            }
        };
        let name = clean_name(file.name());
        let inner = join_member(member, &name);
        ctx.scan_member_name(&name, &inner);
        if file.is_dir() {
            continue;
        }
        let allowance = ctx.budget.member_allowance(file.compressed_size());
        let declared_over = file.size() > allowance;
        if declared_over && ctx.budget.note_bomb_member() {
            ctx.limit(
                Some(&inner),
                format!(
                    "declares {} bytes from {} compressed, past the limit (ratio or size, possible zip bomb): at most {allowance} bytes are read",
                    file.size(),
                    file.compressed_size()
                ),
            );
        }
        // Large members (tensor storage in checkpoints) are looked at first: binary content
        // that no decoder claims is not read any further.
        let mut head = Vec::new();
        if file.size() > PEEK_BYTES as u64 {
            let _ = (&mut file).take(PEEK_BYTES as u64).read_to_end(&mut head);
            if looks_binary(&head) && !super::claims(&head) {
                continue;
            }
        }
        let (buf, over, err) = read_bounded(Cursor::new(head).chain(&mut file), allowance);
        drop(file);
        if let Some(e) = err {
            if buf.is_empty() {
                ctx.warn(Some(&inner), format!("cannot decompress: {e}"));
                continue;
            }
            // A wrong CRC is reported and the data scanned anyway, as PyTorch loads it.
            ctx.warn(Some(&inner), format!("{e}; scanned anyway"));
        }
        if over && !declared_over {
            ctx.limit(
                Some(&inner),
                format!("decompresses past the limit (ratio or size, possible zip bomb): scanned the first {} bytes", buf.len()),
            );
        }
        ctx.budget.take_bytes(buf.len() as u64);
        ctx.decode(&buf, Some(&inner), depth);
    }
}

fn gzip(ctx: &mut Context<'_, '_, '_>, data: &[u8], member: Option<&str>, depth: usize) {
    let decoder = flate2::read::MultiGzDecoder::new(data);
    let name = decoder
        .header()
        .and_then(|h| h.filename())
        .map(|f| clean_name(&String::from_utf8_lossy(f)))
        .unwrap_or_else(|| "gunzip".to_string());
    let inner = join_member(member, &name);
    ctx.scan_member_name(&name, &inner);
    let allowance = ctx.budget.member_allowance(data.len() as u64);
    if !ctx.budget.take_entry() {
        return;
    }
    let (buf, over, err) = read_bounded(decoder, allowance);
    if let Some(e) = err {
        ctx.warn(Some(&inner), format!("gzip stream damaged: {e}"));
    }
    if over {
        ctx.limit(
            Some(&inner),
            format!(
                "decompresses past the limit: scanned the first {} bytes",
                buf.len()
            ),
        );
    }
    ctx.budget.take_bytes(buf.len() as u64);
    // A gzipped tar (`.tgz`, `.tar.gz`) lists its members directly: `x.tar.gz!dir/file`.
    if is_tar(&buf) {
        tar(ctx, &buf, member, depth);
    } else {
        ctx.decode(&buf, Some(&inner), depth);
    }
}

fn octal(field: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(field).ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c == ' ');
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn tar(ctx: &mut Context<'_, '_, '_>, data: &[u8], member: Option<&str>, depth: usize) {
    let mut pos = 0usize;
    let mut long_name: Option<String> = None;
    while pos + 512 <= data.len() {
        let header = &data[pos..pos + 512];
        if header.iter().all(|&b| b == 0) {
            break;
        }
        let Some(size) = octal(&header[124..136]) else {
            ctx.warn(member, format!("corrupt tar header at byte {pos}"));
            return;
        };
        let body_start = pos + 512;
        let body_end = body_start.saturating_add(size as usize).min(data.len());
        let body = &data[body_start..body_end];
        let kind = header[156];
        let mut name = cstr(&header[0..100]);
        if &header[257..262] == b"ustar" {
            let prefix = cstr(&header[345..500]);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        match kind {
            b'L' => long_name = Some(cstr(body)),
            b'x' => {
                // PAX extended header: a `path=` record renames the next entry.
                for rec in String::from_utf8_lossy(body).lines() {
                    if let Some(p) = rec.split_once(" path=").map(|(_, p)| p.to_string()) {
                        long_name = Some(p);
                    }
                }
            }
            b'0' | 0 | b'7' => {
                if !ctx.budget.take_entry() {
                    ctx.limit(member, "too many archive entries: the rest is skipped");
                    return;
                }
                let name = clean_name(&long_name.take().unwrap_or(name));
                let inner = join_member(member, &name);
                ctx.scan_member_name(&name, &inner);
                if body.len() < size as usize {
                    ctx.warn(Some(&inner), "truncated tar entry: scanned what is there");
                }
                ctx.budget.take_bytes(body.len() as u64);
                ctx.decode(body, Some(&inner), depth);
            }
            _ => long_name = None,
        }
        let padded = (size as usize).div_ceil(512) * 512;
        pos = body_start.saturating_add(padded);
    }
}
