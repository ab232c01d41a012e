//! The encoded runs of a text and their decoding: one pass over the bytes with a class table
//! for base64 and hex runs, one `memchr` pass for percent-encoded and string-escape runs; a
//! decoding is kept only when it is text.

use std::ops::Range;

use crate::scan::filters;

/// Shortest base64 run tried (padding included): 12 decoded bytes.
const MIN_BASE64: usize = 16;
/// Shortest hex run tried: 16 decoded bytes.
const MIN_HEX: usize = 32;

/// The encodings, as findings name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Base64,
    Hex,
    Percent,
    Escape,
}

impl Kind {
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Base64 => "base64",
            Kind::Hex => "hex",
            Kind::Percent => "percent",
            Kind::Escape => "escape",
        }
    }
}

const ALNUM: u8 = 1;
const STD: u8 = 2; // `+` `/`
const URL_SAFE: u8 = 4; // `-` `_`
const HEX: u8 = 8;
const URL: u8 = 16; // what a percent-encoded run holds
const ESC: u8 = 32; // what a string-escape run holds besides escapes
const WORD: u8 = ALNUM | STD | URL_SAFE;

/// One class byte per input byte: the alphabets the runs are made of.
static CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let mut k = 0;
        if c.is_ascii_alphanumeric() {
            k |= ALNUM;
        }
        if c == b'+' || c == b'/' {
            k |= STD;
        }
        if c == b'-' || c == b'_' {
            k |= URL_SAFE;
        }
        if c.is_ascii_hexdigit() {
            k |= HEX;
        }
        let quote = matches!(c, b'"' | b'\'' | b'`' | b'\\');
        if c > b' ' && c < 0x7f && !quote && c != b'<' && c != b'>' {
            k |= URL;
        }
        if (c > b' ' && c < 0x7f && !quote) || c >= 0x80 {
            k |= ESC;
        }
        t[b] = k;
        b += 1;
    }
    t
}

fn class(b: u8) -> u8 {
    CLASS[b as usize]
}

/// An encoded run of a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Candidate {
    pub(super) range: Range<usize>,
    pub(super) kind: Kind,
}

/// Word bytes that start a run long enough to be base64 (padding aside) or hex.
const MIN_RUN: usize = MIN_BASE64 - 2;

/// Bit `j` set when `block[j]` is a word byte (base64 of either alphabet, or hex): sixteen
/// bytes at a time with SSE2, which every x86-64 processor has.
#[cfg(target_arch = "x86_64")]
fn word_mask(block: &[u8; 64]) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_loadu_si128, _mm_movemask_epi8,
        _mm_or_si128, _mm_set1_epi8,
    };
    let mut m = 0u64;
    for (k, chunk) in block.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of the x86-64 baseline, so its intrinsics run on every x86-64
        // processor; the load reads the 16 bytes of `chunk`, with no alignment requirement.
        let word = unsafe {
            let x = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            let set = |c: u8| _mm_set1_epi8(c as i8);
            // Signed compares: bytes of 0x80 and above are negative and fall outside every range.
            let within = |v: __m128i, lo: u8, hi: u8| {
                _mm_and_si128(
                    _mm_cmpgt_epi8(v, set(lo - 1)),
                    _mm_cmpgt_epi8(set(hi + 1), v),
                )
            };
            let digit = within(x, b'0', b'9');
            let letter = within(_mm_or_si128(x, set(0x20)), b'a', b'z');
            let marks = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(x, set(b'+')), _mm_cmpeq_epi8(x, set(b'/'))),
                _mm_or_si128(_mm_cmpeq_epi8(x, set(b'-')), _mm_cmpeq_epi8(x, set(b'_'))),
            );
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(digit, letter), marks))
        };
        m |= u64::from(word as u16) << (16 * k);
    }
    m
}

/// Bit `j` set when `block[j]` is a word byte (base64 of either alphabet, or hex).
#[cfg(not(target_arch = "x86_64"))]
fn word_mask(block: &[u8; 64]) -> u64 {
    block
        .iter()
        .enumerate()
        .fold(0, |m, (j, &b)| m | u64::from(class(b) & WORD != 0) << j)
}

/// Bit `j` set when bits `j..j + MIN_RUN` of `m` are all set.
fn run_starts(m: u64) -> u64 {
    let (mut d, mut have) = (m, 1);
    while have < MIN_RUN {
        let step = (MIN_RUN - have).min(have);
        d &= d >> step;
        have += step;
    }
    d
}

/// The first `p >= i` where `MIN_RUN` word bytes start, or `end` when there is none. Text is
/// mostly short words: a block of 64 bytes without such a run costs a few instructions, and
/// no branch depends on a byte.
fn next_run(hay: &[u8], mut i: usize, end: usize) -> usize {
    // Word bytes just before `i`, counted from where the search started.
    let mut run = 0;
    while let Some(block) = hay.get(i..end).and_then(|r| r.first_chunk::<64>()) {
        let m = word_mask(block);
        if run + m.trailing_ones() as usize >= MIN_RUN {
            return i - run;
        }
        let starts = run_starts(m);
        if starts != 0 {
            return i + starts.trailing_zeros() as usize;
        }
        run = m.leading_ones() as usize;
        i += 64;
    }
    while i < end {
        if class(hay[i]) & WORD != 0 {
            run += 1;
            if run >= MIN_RUN {
                return i + 1 - MIN_RUN;
            }
        } else {
            run = 0;
        }
        i += 1;
    }
    end
}

/// Finds the encoded runs of `hay[region]`, in order of start (runs of different kinds may
/// overlap: a base64 run inside a percent-encoded one).
pub(super) fn candidates(hay: &[u8], region: Range<usize>, out: &mut Vec<Candidate>) {
    let from = out.len();
    let end = region.end.min(hay.len());
    // Base64 and hex: runs of word bytes, with `=` padding after. A run long enough to be
    // either starts with `MIN_RUN` word bytes, found 64 bytes at a time ([`next_run`]).
    let mut i = region.start;
    while i + MIN_RUN <= end {
        i = next_run(hay, i, end);
        if i + MIN_RUN > end {
            break;
        }
        let s = i;
        let mut all = 0xff;
        let mut any = 0;
        while i < end && class(hay[i]) & WORD != 0 {
            all &= class(hay[i]);
            any |= class(hay[i]);
            i += 1;
        }
        let run_end = i;
        while i < end && i - run_end < 2 && hay[i] == b'=' {
            i += 1;
        }
        let len = run_end - s;
        if all & HEX != 0 {
            if len >= MIN_HEX && len % 2 == 0 {
                out.push(Candidate {
                    range: s..run_end,
                    kind: Kind::Hex,
                });
            }
            continue;
        }
        let mixed = any & STD != 0 && any & URL_SAFE != 0;
        // The padding belongs to the run (decoding skips it): the context after the decoding
        // starts past it.
        if i - s >= MIN_BASE64 && !mixed && !filters::data_uri_marker(hay, s, &mut 0) {
            out.push(Candidate {
                range: s..i,
                kind: Kind::Base64,
            });
        }
    }
    // Percent-encoding and string escapes: runs around a `%XX` or a `\u`/`\x` escape. Each
    // run starts at or after the end of the one before, so no byte is walked twice.
    let mut floor = region.start;
    let mut at = region.start;
    while let Some(p) = memchr::memchr2(b'%', b'\\', &hay[at..end]) {
        let p = at + p;
        at = p + 1;
        if p < floor {
            continue;
        }
        let run = if hay[p] == b'%' {
            percent_at(hay, p, end).map(|e| (run_start(hay, p, floor, URL), e, Kind::Percent))
        } else {
            escape_len(&hay[p..end]).filter(|&(_, hex)| hex).map(|_| {
                (
                    run_start(hay, p, floor, ESC),
                    escape_end(hay, p, end),
                    Kind::Escape,
                )
            })
        };
        if let Some((s, e, kind)) = run {
            out.push(Candidate { range: s..e, kind });
            floor = e;
            at = e.max(at);
        }
    }
    out[from..].sort_by_key(|c| c.range.start);
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn hex_pair(s: &[u8]) -> Option<u8> {
    Some(hex_value(*s.first()?)? << 4 | hex_value(*s.get(1)?)?)
}

/// Where a percent-encoded run holding the `%XX` at `p` ends; `None` when `p` is no `%XX`.
fn percent_at(hay: &[u8], p: usize, end: usize) -> Option<usize> {
    hex_pair(&hay[p + 1..end])?;
    let mut e = p;
    while e < end && class(hay[e]) & URL != 0 {
        e += 1;
    }
    Some(e)
}

/// The start of a run of `kind` bytes ending at `p`, not before `floor`.
fn run_start(hay: &[u8], p: usize, floor: usize, kind: u8) -> usize {
    let mut s = p;
    while s > floor && (class(hay[s - 1]) & kind != 0 || (kind == ESC && hay[s - 1] == b'\\')) {
        s -= 1;
    }
    s
}

/// The length of the backslash escape `s` starts with, and whether it is a `\u` or `\x` one.
fn escape_len(s: &[u8]) -> Option<(usize, bool)> {
    match s.get(1)? {
        b'u' if s.len() >= 6 && s[2..6].iter().all(u8::is_ascii_hexdigit) => Some((6, true)),
        b'x' if s.len() >= 4 && s[2..4].iter().all(u8::is_ascii_hexdigit) => Some((4, true)),
        _ => Some((2, false)),
    }
}

/// The end of a string-escape run holding the escape at `p`.
fn escape_end(hay: &[u8], p: usize, end: usize) -> usize {
    let mut e = p;
    while e < end {
        if hay[e] == b'\\' {
            match escape_len(&hay[e..end]) {
                Some((n, _)) => e += n,
                None => break,
            }
        } else if class(hay[e]) & ESC != 0 {
            e += 1;
        } else {
            break;
        }
    }
    e.min(end)
}

/// The 6-bit value of a base64 byte of either alphabet.
fn base64_value(b: u8) -> Option<u32> {
    Some(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    } as u32)
}

/// Whether a decoded byte can be part of text (control characters other than white space
/// cannot).
fn text_byte(b: u8) -> bool {
    b >= 0x20 && b != 0x7f || matches!(b, b'\t' | b'\n' | b'\r')
}

/// Whether a decoding is text: UTF-8 without control characters, mostly ASCII.
fn is_text(d: &[u8]) -> bool {
    let high = d.iter().filter(|&&b| b >= 0x80).count();
    d.iter().all(|&b| text_byte(b)) && high * 4 <= d.len() && std::str::from_utf8(d).is_ok()
}

/// Decodes `src` into `out` (cleared first); for percent and escape runs, `table` gets the
/// offset in `src` of the unit each decoded byte comes from, then `src.len()`. False when the
/// decoding is not text (decoding base64 or hex stops at the first byte that cannot be).
pub(super) fn decode(kind: Kind, src: &[u8], out: &mut Vec<u8>, table: &mut Vec<u32>) -> bool {
    out.clear();
    table.clear();
    match kind {
        Kind::Base64 => {
            let src = src
                .strip_suffix(b"==")
                .or(src.strip_suffix(b"="))
                .unwrap_or(src);
            let n = src.len() - usize::from(src.len() % 4 == 1);
            for group in src[..n].chunks(4) {
                let mut acc = 0u32;
                for &b in group {
                    let Some(v) = base64_value(b) else {
                        return false;
                    };
                    acc = acc << 6 | v;
                }
                acc <<= 6 * (4 - group.len() as u32);
                for k in 0..group.len() - 1 {
                    let byte = (acc >> (16 - 8 * k)) as u8;
                    if !text_byte(byte) {
                        return false;
                    }
                    out.push(byte);
                }
            }
        }
        Kind::Hex => {
            for pair in src.chunks_exact(2) {
                match hex_pair(pair) {
                    Some(byte) if text_byte(byte) => out.push(byte),
                    _ => return false,
                }
            }
        }
        Kind::Percent | Kind::Escape => {
            let mut i = 0;
            while i < src.len() {
                let before = out.len();
                let n = if kind == Kind::Percent {
                    percent_unit(&src[i..], out)
                } else {
                    escape_unit(&src[i..], out)
                };
                table.extend(std::iter::repeat_n(i as u32, out.len() - before));
                i += n;
            }
            table.push(src.len() as u32);
        }
    }
    is_text(out)
}

/// Decodes one unit of a percent-encoded run (`%XX` or one byte); returns its length.
fn percent_unit(s: &[u8], out: &mut Vec<u8>) -> usize {
    if s[0] == b'%' {
        if let Some(b) = hex_pair(&s[1..]) {
            out.push(b);
            return 3;
        }
    }
    out.push(s[0]);
    1
}

/// Decodes one unit of a string-escape run; returns its length. A `\u` escape becomes UTF-8
/// (a surrogate pair as one character), `\xXX` the byte, `\n` `\t` `\r` `\\` `\"` `\'` `\/`
/// what they stand for; other escapes stay as they are.
fn escape_unit(s: &[u8], out: &mut Vec<u8>) -> usize {
    if s[0] != b'\\' || s.len() < 2 {
        out.push(s[0]);
        return 1;
    }
    match s[1] {
        // JSON's `\u` escape, surrogate pairs joined; a lone surrogate is U+FFFD.
        b'u' => match crate::content::json::unicode_escape(s, 0) {
            Some((c, used)) => {
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                used
            }
            None => {
                out.extend_from_slice(&s[..2]);
                2
            }
        },
        b'x' => match hex_pair(&s[2..]) {
            Some(b) => {
                out.push(b);
                4
            }
            None => {
                out.extend_from_slice(&s[..2]);
                2
            }
        },
        c => {
            match c {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'\\' | b'"' | b'\'' | b'/' => out.push(c),
                _ => out.extend_from_slice(&s[..2]),
            }
            2
        }
    }
}

#[cfg(test)]
mod run_tests {
    use super::*;

    #[test]
    fn the_word_mask_is_the_class_table() {
        for b in 0..=255u8 {
            let mut block = [b' '; 64];
            block[7] = b;
            assert_eq!(
                word_mask(&block) == 1 << 7,
                class(b) & WORD != 0,
                "byte {b:#x}"
            );
        }
    }

    /// The first start of `MIN_RUN` word bytes at or after `i`, byte by byte.
    fn naive(hay: &[u8], i: usize, end: usize) -> usize {
        (i..end)
            .find(|&p| {
                p + MIN_RUN <= end && hay[p..p + MIN_RUN].iter().all(|&b| class(b) & WORD != 0)
            })
            .unwrap_or(end)
    }

    #[test]
    fn next_run_finds_what_a_byte_by_byte_search_finds() {
        // Word runs of every length around the threshold, at every offset across block
        // boundaries, separated by one or more non-word bytes.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..300 {
            let mut hay = Vec::new();
            while hay.len() < 400 {
                let n = (rand() % 20) as usize;
                hay.extend((0..n).map(|k| b"aZ9+/_-x"[k % 8]));
                let gap = 1 + (rand() % 3) as usize;
                hay.extend(std::iter::repeat_n(
                    b" .=\n\xc3"[(rand() % 5) as usize],
                    gap,
                ));
            }
            let end = hay.len() - (rand() % 5) as usize;
            for i in [0, 1, 13, 63, 64, 65, 127, 200] {
                assert_eq!(next_run(&hay, i, end), naive(&hay, i, end), "from {i}");
            }
        }
        let all = [b'A'; 300];
        assert_eq!(next_run(&all, 5, 300), 5);
        assert_eq!(next_run(&all, 290, 300), 300);
        assert_eq!(next_run(&all, 0, 13), 13);
    }
}
