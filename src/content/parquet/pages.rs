//! The pages of one column chunk, handed to the crate's column reader already decompressed:
//! headers read by [`super::thrift`], every declared size checked against what the chunk and
//! the budget allow before a buffer is made, and every decompressor bounded by the size the
//! header declares (a page that inflates past it is an error, not an allocation).

use std::io::Read as _;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use parquet::basic::{Compression, Encoding};
use parquet::column::page::{Page, PageMetadata, PageReader};
use parquet::errors::ParquetError;

use super::thrift::{self, PageHeader};

/// What the pages of one chunk may still decode, shared with the caller (the column reader
/// owns the page reader).
#[derive(Debug, Default)]
pub(super) struct Meter {
    /// Decoded bytes still allowed for the chunk.
    pub(super) left: u64,
    /// Decoded bytes so far.
    pub(super) used: u64,
    /// Set when a limit (not a malformed page) stopped the chunk: the warning's text.
    pub(super) limit: Option<String>,
    /// Set when a page was malformed, with its file offset: the warning's text.
    pub(super) malformed: Option<String>,
}

/// The codecs read; others leave the column unread with a warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Codec {
    None,
    Snappy,
    Gzip,
    Zstd,
    Lz4Raw,
    /// The deprecated `LZ4` codec, as Hadoop-framed blocks (what parquet-mr and Arrow wrote).
    Lz4Hadoop,
}

impl Codec {
    /// The codec of a column chunk, or the name of one that is not read.
    pub(super) fn of(c: Compression) -> Result<Codec, &'static str> {
        Ok(match c {
            Compression::UNCOMPRESSED => Codec::None,
            Compression::SNAPPY => Codec::Snappy,
            Compression::GZIP(_) => Codec::Gzip,
            Compression::ZSTD(_) => Codec::Zstd,
            Compression::LZ4_RAW => Codec::Lz4Raw,
            Compression::LZ4 => Codec::Lz4Hadoop,
            Compression::BROTLI(_) => return Err("Brotli"),
            Compression::LZO => return Err("LZO"),
        })
    }
}

/// The pages of one column chunk (`chunk`, a copy of its bytes, at `base` in the file).
pub(super) struct ChunkPages {
    chunk: Bytes,
    base: usize,
    pos: usize,
    codec: Codec,
    max_page_values: usize,
    /// The largest decoded/compressed ratio accepted for a page, past 1 MiB.
    max_ratio: u64,
    meter: Arc<Mutex<Meter>>,
}

impl ChunkPages {
    pub(super) fn new(
        chunk: Bytes,
        base: usize,
        codec: Codec,
        max_page_values: usize,
        max_ratio: u64,
        meter: Arc<Mutex<Meter>>,
    ) -> ChunkPages {
        ChunkPages {
            chunk,
            base,
            pos: 0,
            codec,
            max_page_values,
            max_ratio,
            meter,
        }
    }

    /// The next page header and where its body lies in the chunk; `None` at the end.
    fn header(&self) -> Result<Option<(PageHeader, usize, usize)>, String> {
        if self.pos >= self.chunk.len() {
            return Ok(None);
        }
        let at = self.base + self.pos;
        let (h, len) = thrift::page_header(&self.chunk[self.pos..], at)?;
        let start = self.pos + len;
        let size = usize::try_from(h.compressed)
            .map_err(|_| format!("negative page size at byte {at}"))?;
        if h.uncompressed < 0 || size > self.chunk.len() - start {
            return Err(format!("page at byte {at} runs past its column chunk"));
        }
        Ok(Some((h, start, start + size)))
    }

    fn next_page(&mut self) -> Result<Option<Page>, String> {
        loop {
            let Some((h, start, end)) = self.header()? else {
                return Ok(None);
            };
            let at = self.base + self.pos;
            self.pos = end;
            if !matches!(
                h.kind,
                thrift::DATA_PAGE | thrift::DATA_PAGE_V2 | thrift::DICTIONARY_PAGE
            ) {
                continue; // index pages and unknown kinds carry no values
            }
            let num_values = usize::try_from(h.num_values)
                .map_err(|_| format!("negative value count at byte {at}"))?;
            if num_values > self.max_page_values {
                return Err(limit(format!(
                    "a page declares {num_values} values, more than the {} read per page",
                    self.max_page_values
                )));
            }
            let body = self.chunk.slice(start..end);
            let size = h.uncompressed as usize;
            self.charge(size as u64, body.len() as u64)?;
            return page(&h, body, self.codec, at).map(Some);
        }
    }

    /// Takes `size` decoded bytes from the meter, refusing a page past the chunk's allowance
    /// or whose ratio to its `compressed` bytes makes it a bomb.
    fn charge(&mut self, size: u64, compressed: u64) -> Result<(), String> {
        let by_ratio = compressed.saturating_mul(self.max_ratio).max(1 << 20);
        let mut meter = self.meter.lock().unwrap_or_else(|e| e.into_inner());
        if size > by_ratio {
            return Err(limit(format!(
                "a page of {compressed} bytes declares {size} decoded bytes (possible compression bomb)"
            )));
        }
        if size > meter.left {
            return Err(limit(format!(
                "the column chunk decodes to more than the {} bytes allowed",
                meter.used + meter.left
            )));
        }
        meter.left -= size;
        meter.used += size;
        Ok(())
    }

    fn fail(&self, message: String) -> ParquetError {
        let mut meter = self.meter.lock().unwrap_or_else(|e| e.into_inner());
        match message.strip_prefix(LIMIT) {
            Some(m) => meter.limit = Some(m.to_owned()),
            None => meter.malformed = Some(message),
        }
        // The column reader passes this on; the caller reads the meter instead.
        ParquetError::General("page reader stopped".to_owned())
    }
}

/// Marks a message as a limit reached rather than a malformed page.
const LIMIT: &str = "\u{0}limit:";

fn limit(message: String) -> String {
    format!("{LIMIT}{message}")
}

/// Decodes one page body (`at` is the header's file offset, for messages).
fn page(h: &PageHeader, body: Bytes, codec: Codec, at: usize) -> Result<Page, String> {
    let size = h.uncompressed as usize;
    let encoding = |v: i32| {
        Encoding::VARIANTS
            .iter()
            .copied()
            .find(|e| *e as i32 == v)
            .ok_or_else(|| format!("unknown encoding {v} at byte {at}"))
    };
    let num_values = h.num_values as u32;
    match h.kind {
        thrift::DICTIONARY_PAGE => {
            // Every PLAIN byte array takes its 4-byte length at least: the reader makes one
            // entry per declared value.
            if (num_values as u64) * 4 > size as u64 {
                return Err(format!(
                    "dictionary page at byte {at} declares more values than it holds"
                ));
            }
            Ok(Page::DictionaryPage {
                buf: decompress(codec, &body, size, at)?,
                num_values,
                encoding: encoding(h.encoding)?,
                is_sorted: h.is_sorted,
            })
        }
        thrift::DATA_PAGE => Ok(Page::DataPage {
            buf: decompress(codec, &body, size, at)?,
            num_values,
            encoding: encoding(h.encoding)?,
            def_level_encoding: encoding(h.def_encoding)?,
            rep_level_encoding: encoding(h.rep_encoding)?,
            statistics: None,
        }),
        _ => {
            // Version 2: the levels come first, never compressed.
            let levels = usize::try_from(i64::from(h.def_len) + i64::from(h.rep_len))
                .ok()
                .filter(|&n| n <= size && n <= body.len() && h.def_len >= 0 && h.rep_len >= 0)
                .ok_or_else(|| format!("data page at byte {at} has implausible level lengths"))?;
            let buf = if h.is_compressed && codec != Codec::None {
                let rest = decompress(codec, &body[levels..], size - levels, at)?;
                let mut buf = Vec::with_capacity(size);
                buf.extend_from_slice(&body[..levels]);
                buf.extend_from_slice(&rest);
                Bytes::from(buf)
            } else if body.len() == size {
                body
            } else {
                return Err(format!("page at byte {at} differs from its declared size"));
            };
            Ok(Page::DataPageV2 {
                buf,
                num_values,
                encoding: encoding(h.encoding)?,
                num_nulls: u32::try_from(h.num_nulls).unwrap_or(0),
                num_rows: u32::try_from(h.num_rows.unwrap_or(0)).unwrap_or(0),
                def_levels_byte_len: h.def_len as u32,
                rep_levels_byte_len: h.rep_len as u32,
                is_compressed: false,
                statistics: None,
            })
        }
    }
}

/// Decompresses `input` into exactly `size` bytes; more or fewer is an error, and no codec
/// writes past `size` (each is given a bounded output).
pub(super) fn decompress(
    codec: Codec,
    input: &[u8],
    size: usize,
    at: usize,
) -> Result<Bytes, String> {
    let bad = |what: &str| format!("page at byte {at}: {what}");
    let out = match codec {
        Codec::None => {
            if input.len() != size {
                return Err(bad("size differs from its header"));
            }
            return Ok(Bytes::copy_from_slice(input));
        }
        Codec::Snappy => {
            let declared = snap::raw::decompress_len(input).map_err(|_| bad("bad Snappy data"))?;
            if declared != size {
                return Err(bad("Snappy size differs from the page header"));
            }
            let mut out = vec![0; size];
            snap::raw::Decoder::new()
                .decompress(input, &mut out)
                .map_err(|_| bad("bad Snappy data"))?;
            out
        }
        Codec::Gzip => {
            let mut out = Vec::with_capacity(size);
            flate2::read::MultiGzDecoder::new(input)
                .take(size as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|_| bad("bad gzip data"))?;
            out
        }
        // Fails when the output would pass `size`.
        Codec::Zstd => zstd::bulk::decompress(input, size).map_err(|_| bad("bad zstd data"))?,
        Codec::Lz4Raw => {
            let mut out = vec![0; size];
            let n = lz4_flex::block::decompress_into(input, &mut out)
                .map_err(|_| bad("bad LZ4 data"))?;
            out.truncate(n);
            out
        }
        Codec::Lz4Hadoop => lz4_hadoop(input, size).ok_or_else(|| bad("bad LZ4 data"))?,
    };
    if out.len() != size {
        return Err(bad("decompressed size differs from its header"));
    }
    Ok(Bytes::from(out))
}

/// Hadoop's LZ4 framing: blocks of (decoded length, encoded length, LZ4 block), big-endian.
fn lz4_hadoop(mut input: &[u8], size: usize) -> Option<Vec<u8>> {
    let mut out = vec![0; size];
    let mut filled = 0usize;
    while !input.is_empty() {
        let decoded = u32::from_be_bytes(input.get(..4)?.try_into().ok()?) as usize;
        let encoded = u32::from_be_bytes(input.get(4..8)?.try_into().ok()?) as usize;
        let block = input.get(8..8usize.checked_add(encoded)?)?;
        let end = filled.checked_add(decoded).filter(|&e| e <= size)?;
        let n = lz4_flex::block::decompress_into(block, &mut out[filled..end]).ok()?;
        if n != decoded {
            return None;
        }
        filled = end;
        input = &input[8 + encoded..];
    }
    out.truncate(filled);
    Some(out)
}

impl Iterator for ChunkPages {
    type Item = parquet::errors::Result<Page>;

    fn next(&mut self) -> Option<Self::Item> {
        self.get_next_page().transpose()
    }
}

impl PageReader for ChunkPages {
    fn get_next_page(&mut self) -> parquet::errors::Result<Option<Page>> {
        self.next_page().map_err(|m| self.fail(m))
    }

    fn peek_next_page(&mut self) -> parquet::errors::Result<Option<PageMetadata>> {
        // Skips the pages that carry no values, as `get_next_page` does.
        loop {
            let header = self.header().map_err(|m| self.fail(m))?;
            let Some((h, _, end)) = header else {
                return Ok(None);
            };
            let num_levels = usize::try_from(h.num_values).ok();
            return Ok(Some(match h.kind {
                thrift::DICTIONARY_PAGE => PageMetadata {
                    num_rows: None,
                    num_levels: None,
                    is_dict: true,
                },
                thrift::DATA_PAGE => PageMetadata {
                    num_rows: None,
                    num_levels,
                    is_dict: false,
                },
                thrift::DATA_PAGE_V2 => PageMetadata {
                    num_rows: h.num_rows.and_then(|n| usize::try_from(n).ok()),
                    num_levels,
                    is_dict: false,
                },
                _ => {
                    self.pos = end;
                    continue;
                }
            }));
        }
    }

    fn skip_next_page(&mut self) -> parquet::errors::Result<()> {
        let header = self.header().map_err(|m| self.fail(m))?;
        if let Some((_, _, end)) = header {
            self.pos = end;
        }
        Ok(())
    }
}
