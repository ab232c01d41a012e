//! The Thrift compact protocol, as far as Parquet needs it before the `parquet` crate sees a
//! byte: a check of the footer (every list's count bounded by the bytes left, nesting bounded,
//! the schema tree's depth and fan-out, row group and column chunk counts) and page headers.
//!
//! Why our own walker: the crate sizes vectors from counts in the footer (row groups, a
//! schema element's children) before reading them, and builds the schema tree recursively,
//! so a 40-byte footer could ask it for gigabytes or overflow the stack; and it decompresses
//! a page into a buffer of the size its header declares (gzip and zstd even past it). Here
//! every count is checked against the bytes that hold it, and page sizes against the budget,
//! before the crate allocates anything.

/// A bound the footer broke, or a malformed structure: the message for the warning.
pub(super) type Problem = String;

/// Thrift compact type ids.
const T_TRUE: u8 = 1;
const T_FALSE: u8 = 2;
const T_I8: u8 = 3;
const T_I16: u8 = 4;
const T_I32: u8 = 5;
const T_I64: u8 = 6;
const T_DOUBLE: u8 = 7;
const T_BINARY: u8 = 8;
const T_LIST: u8 = 9;
const T_SET: u8 = 10;
const T_MAP: u8 = 11;
const T_STRUCT: u8 = 12;
const T_UUID: u8 = 13;

/// How deeply Thrift structures may nest (Parquet's own go about 6 levels deep).
const MAX_NESTING: usize = 32;

/// A cursor over Thrift compact data; `base` is the file offset of `data[0]`.
pub(super) struct Thrift<'a> {
    data: &'a [u8],
    base: usize,
    pos: usize,
}

impl<'a> Thrift<'a> {
    pub(super) fn new(data: &'a [u8], base: usize) -> Self {
        Thrift { data, base, pos: 0 }
    }

    /// Bytes read so far.
    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    fn left(&self) -> usize {
        self.data.len() - self.pos
    }

    fn bad(&self, what: &str) -> Problem {
        format!("{what} at byte {}", self.base + self.pos)
    }

    fn byte(&mut self) -> Result<u8, Problem> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or_else(|| self.bad("unexpected end of Thrift data"))?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, Problem> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.bad("Thrift varint longer than 10 bytes"))
    }

    fn zigzag(&mut self) -> Result<i64, Problem> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn i32(&mut self) -> Result<i32, Problem> {
        let v = self.zigzag()?;
        i32::try_from(v).map_err(|_| self.bad("Thrift i32 out of range"))
    }

    /// A binary or string: its file offset and bytes, borrowed.
    fn binary(&mut self) -> Result<(usize, &'a [u8]), Problem> {
        let len = self.varint()?;
        if len > self.left() as u64 {
            return Err(self.bad("Thrift string longer than the data left"));
        }
        let at = self.pos;
        self.pos += len as usize;
        Ok((self.base + at, &self.data[at..self.pos]))
    }

    /// The next field header of a struct: its id and type, `None` at the struct's end.
    fn field(&mut self, last: &mut i16) -> Result<Option<(i16, u8)>, Problem> {
        let b = self.byte()?;
        if b == 0 {
            return Ok(None);
        }
        let ty = b & 0x0f;
        let delta = b >> 4;
        let id = if delta == 0 {
            i16::try_from(self.zigzag()?).map_err(|_| self.bad("Thrift field id out of range"))?
        } else {
            last.saturating_add(i16::from(delta))
        };
        *last = id;
        Ok(Some((id, ty)))
    }

    /// A list or set header: element type and count, the count bounded by the bytes left
    /// (every element takes at least one byte).
    fn list(&mut self) -> Result<(u8, usize), Problem> {
        let b = self.byte()?;
        let short = usize::from(b >> 4);
        let count = if short == 15 {
            self.varint()?
        } else {
            short as u64
        };
        if count > self.left() as u64 {
            return Err(self.bad("Thrift list count larger than the data left"));
        }
        Ok((b & 0x0f, count as usize))
    }

    /// A field's boolean value (compact fields carry it in their type).
    fn field_bool(&mut self, ty: u8) -> Result<bool, Problem> {
        match ty {
            T_TRUE => Ok(true),
            T_FALSE => Ok(false),
            _ => Err(self.bad("Thrift field of the wrong type")),
        }
    }

    /// Skips a value of type `ty`; `bare` for list elements, where booleans take a byte.
    fn skip(&mut self, ty: u8, depth: usize, bare: bool) -> Result<(), Problem> {
        if depth > MAX_NESTING {
            return Err(self.bad("Thrift structures nested too deeply"));
        }
        match ty {
            T_TRUE | T_FALSE if bare => {
                self.byte()?;
            }
            T_TRUE | T_FALSE => {}
            T_I8 => {
                self.byte()?;
            }
            T_I16 | T_I32 | T_I64 => {
                self.varint()?;
            }
            T_DOUBLE => self.advance(8)?,
            T_UUID => self.advance(16)?,
            T_BINARY => {
                self.binary()?;
            }
            T_LIST | T_SET => {
                let (elem, count) = self.list()?;
                for _ in 0..count {
                    self.skip(elem, depth + 1, true)?;
                }
            }
            T_MAP => {
                let count = self.varint()?;
                if count > self.left() as u64 / 2 {
                    return Err(self.bad("Thrift map count larger than the data left"));
                }
                if count > 0 {
                    let kinds = self.byte()?;
                    for _ in 0..count {
                        self.skip(kinds >> 4, depth + 1, true)?;
                        self.skip(kinds & 0x0f, depth + 1, true)?;
                    }
                }
            }
            T_STRUCT => self.skip_struct(depth + 1)?,
            _ => return Err(self.bad("unknown Thrift type")),
        }
        Ok(())
    }

    fn skip_struct(&mut self, depth: usize) -> Result<(), Problem> {
        let mut last = 0;
        while let Some((_, ty)) = self.field(&mut last)? {
            self.skip(ty, depth, false)?;
        }
        Ok(())
    }

    fn advance(&mut self, n: usize) -> Result<(), Problem> {
        if n > self.left() {
            return Err(self.bad("unexpected end of Thrift data"));
        }
        self.pos += n;
        Ok(())
    }

    fn expect(&self, got: u8, want: u8) -> Result<(), Problem> {
        if got == want {
            Ok(())
        } else {
            Err(self.bad("Thrift field of the wrong type"))
        }
    }
}

/// Bounds on a footer, checked before the crate reads it.
#[derive(Clone, Copy, Debug)]
pub(super) struct FooterBounds {
    pub(super) max_schema_depth: usize,
    pub(super) max_columns: usize,
    pub(super) max_row_groups: usize,
    pub(super) max_column_chunks: usize,
}

/// A key/value pair of the footer's `key_value_metadata`, with file offsets.
pub(super) struct KeyValue<'a> {
    pub(super) key: &'a [u8],
    pub(super) key_offset: usize,
    pub(super) value: &'a [u8],
    pub(super) value_offset: usize,
}

/// What the footer check saw.
pub(super) struct FooterFacts<'a> {
    pub(super) row_groups: usize,
    pub(super) key_values: Vec<KeyValue<'a>>,
}

/// Walks a `FileMetaData` (the footer at `base` in the file): every structure must parse and
/// stay within `bounds`. Errors name the first problem; the caller then leaves the file.
pub(super) fn check_footer<'a>(
    data: &'a [u8],
    base: usize,
    bounds: &FooterBounds,
) -> Result<FooterFacts<'a>, Problem> {
    let mut t = Thrift::new(data, base);
    let mut facts = FooterFacts {
        row_groups: 0,
        key_values: Vec::new(),
    };
    let mut leaves = None;
    let mut last = 0;
    while let Some((id, ty)) = t.field(&mut last)? {
        match id {
            2 => {
                t.expect(ty, T_LIST)?;
                leaves = Some(check_schema(&mut t, bounds)?);
            }
            4 => {
                t.expect(ty, T_LIST)?;
                let leaves = leaves.ok_or_else(|| t.bad("row groups before the schema"))?;
                let (elem, count) = t.list()?;
                t.expect(elem, T_STRUCT)?;
                if count > bounds.max_row_groups {
                    return Err(format!(
                        "{count} row groups, more than the {} read",
                        bounds.max_row_groups
                    ));
                }
                if count.saturating_mul(leaves) > bounds.max_column_chunks {
                    return Err(format!(
                        "{count} row groups of {leaves} columns, more than the {} column chunks read",
                        bounds.max_column_chunks
                    ));
                }
                for _ in 0..count {
                    check_row_group(&mut t, leaves)?;
                }
                facts.row_groups = count;
            }
            5 => {
                t.expect(ty, T_LIST)?;
                let (elem, count) = t.list()?;
                t.expect(elem, T_STRUCT)?;
                for _ in 0..count {
                    if let Some(kv) = key_value(&mut t)? {
                        facts.key_values.push(kv);
                    }
                }
            }
            _ => t.skip(ty, 1, false)?,
        }
    }
    if leaves.is_none() {
        return Err("footer without a schema".to_owned());
    }
    Ok(facts)
}

/// The schema: a flattened tree where each group says how many children follow it. Checks
/// that the children exist, the depth and the leaf count; returns the leaf count.
fn check_schema(t: &mut Thrift<'_>, bounds: &FooterBounds) -> Result<usize, Problem> {
    let (elem, count) = t.list()?;
    t.expect(elem, T_STRUCT)?;
    // Children still expected at each open level.
    let mut open: Vec<usize> = Vec::new();
    let mut leaves = 0usize;
    for i in 0..count {
        let mut children = 0usize;
        let mut last = 0;
        while let Some((id, ty)) = t.field(&mut last)? {
            if id == 5 {
                t.expect(ty, T_I32)?;
                let n = t.i32()?;
                children = usize::try_from(n).map_err(|_| t.bad("negative child count"))?;
            } else {
                t.skip(ty, 2, false)?;
            }
        }
        if i > 0 {
            match open.last_mut() {
                Some(n) => *n -= 1,
                None => return Err(t.bad("schema element outside the root")),
            }
        }
        // The elements left must hold every child announced so far.
        let pending: usize = open.iter().sum::<usize>() + children;
        if pending > count - i - 1 {
            return Err(t.bad("schema announces more children than it holds"));
        }
        if children > 0 || i == 0 {
            open.push(children);
            if open.len() > bounds.max_schema_depth {
                return Err(format!(
                    "schema nested deeper than {} levels",
                    bounds.max_schema_depth
                ));
            }
        } else {
            leaves += 1;
            if leaves > bounds.max_columns {
                return Err(format!("more than {} columns", bounds.max_columns));
            }
        }
        while open.last() == Some(&0) {
            open.pop();
        }
    }
    if !open.is_empty() {
        return Err(t.bad("schema ends before its children"));
    }
    Ok(leaves)
}

/// A row group: its column chunk list must have one chunk per leaf column.
fn check_row_group(t: &mut Thrift<'_>, leaves: usize) -> Result<(), Problem> {
    let mut last = 0;
    while let Some((id, ty)) = t.field(&mut last)? {
        if id == 1 {
            t.expect(ty, T_LIST)?;
            let (elem, count) = t.list()?;
            t.expect(elem, T_STRUCT)?;
            if count != leaves {
                return Err(t.bad("row group column count differs from the schema"));
            }
            for _ in 0..count {
                t.skip_struct(2)?;
            }
        } else {
            t.skip(ty, 2, false)?;
        }
    }
    Ok(())
}

fn key_value<'a>(t: &mut Thrift<'a>) -> Result<Option<KeyValue<'a>>, Problem> {
    let (mut key, mut value) = (None, None);
    let mut last = 0;
    while let Some((id, ty)) = t.field(&mut last)? {
        match (id, ty) {
            (1, T_BINARY) => key = Some(t.binary()?),
            (2, T_BINARY) => value = Some(t.binary()?),
            _ => t.skip(ty, 2, false)?,
        }
    }
    Ok(match (key, value) {
        (Some((key_offset, key)), Some((value_offset, value))) => Some(KeyValue {
            key,
            key_offset,
            value,
            value_offset,
        }),
        _ => None,
    })
}

/// Page types.
pub(super) const DATA_PAGE: i32 = 0;
pub(super) const DICTIONARY_PAGE: i32 = 2;
pub(super) const DATA_PAGE_V2: i32 = 3;

/// What a page header says (the fields a reader needs; statistics are skipped).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct PageHeader {
    pub(super) kind: i32,
    pub(super) uncompressed: i32,
    pub(super) compressed: i32,
    pub(super) num_values: i32,
    pub(super) encoding: i32,
    pub(super) def_encoding: i32,
    pub(super) rep_encoding: i32,
    pub(super) is_sorted: bool,
    /// Data page v2 only.
    pub(super) num_nulls: i32,
    pub(super) num_rows: Option<i32>,
    pub(super) def_len: i32,
    pub(super) rep_len: i32,
    pub(super) is_compressed: bool,
}

/// Reads the page header at the start of `data` (at `base` in the file): the header and its
/// length in bytes.
pub(super) fn page_header(data: &[u8], base: usize) -> Result<(PageHeader, usize), Problem> {
    let mut t = Thrift::new(data, base);
    let mut h = PageHeader {
        kind: -1,
        is_compressed: true,
        ..PageHeader::default()
    };
    let mut last = 0;
    while let Some((id, ty)) = t.field(&mut last)? {
        match (id, ty) {
            (1, T_I32) => h.kind = t.i32()?,
            (2, T_I32) => h.uncompressed = t.i32()?,
            (3, T_I32) => h.compressed = t.i32()?,
            (5, T_STRUCT) => data_page_v1(&mut t, &mut h)?,
            (7, T_STRUCT) => dictionary_page(&mut t, &mut h)?,
            (8, T_STRUCT) => data_page_v2(&mut t, &mut h)?,
            _ => t.skip(ty, 1, false)?,
        }
    }
    Ok((h, t.pos()))
}

fn data_page_v1(t: &mut Thrift<'_>, h: &mut PageHeader) -> Result<(), Problem> {
    let mut last = 0;
    while let Some((id, ty)) = t.field(&mut last)? {
        match (id, ty) {
            (1, T_I32) => h.num_values = t.i32()?,
            (2, T_I32) => h.encoding = t.i32()?,
            (3, T_I32) => h.def_encoding = t.i32()?,
            (4, T_I32) => h.rep_encoding = t.i32()?,
            _ => t.skip(ty, 2, false)?,
        }
    }
    Ok(())
}

fn dictionary_page(t: &mut Thrift<'_>, h: &mut PageHeader) -> Result<(), Problem> {
    let mut last = 0;
    while let Some((id, ty)) = t.field(&mut last)? {
        match (id, ty) {
            (1, T_I32) => h.num_values = t.i32()?,
            (2, T_I32) => h.encoding = t.i32()?,
            (3, T_TRUE | T_FALSE) => h.is_sorted = t.field_bool(ty)?,
            _ => t.skip(ty, 2, false)?,
        }
    }
    Ok(())
}

fn data_page_v2(t: &mut Thrift<'_>, h: &mut PageHeader) -> Result<(), Problem> {
    let mut last = 0;
    let mut num_rows = 0;
    while let Some((id, ty)) = t.field(&mut last)? {
        match (id, ty) {
            (1, T_I32) => h.num_values = t.i32()?,
            (2, T_I32) => h.num_nulls = t.i32()?,
            (3, T_I32) => num_rows = t.i32()?,
            (4, T_I32) => h.encoding = t.i32()?,
            (5, T_I32) => h.def_len = t.i32()?,
            (6, T_I32) => h.rep_len = t.i32()?,
            (7, T_TRUE | T_FALSE) => h.is_compressed = t.field_bool(ty)?,
            _ => t.skip(ty, 2, false)?,
        }
    }
    h.num_rows = Some(num_rows);
    Ok(())
}

#[cfg(test)]
pub(super) mod write {
    //! A Thrift compact writer for the tests' handmade footers and pages.

    /// Field header for id `id` after `last`, type `ty`.
    pub(crate) fn field(out: &mut Vec<u8>, last: &mut i16, id: i16, ty: u8) {
        let delta = id - *last;
        if (1..=15).contains(&delta) {
            out.push(((delta as u8) << 4) | ty);
        } else {
            out.push(ty);
            varint(out, zigzag(i64::from(id)));
        }
        *last = id;
    }

    pub(crate) fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    pub(crate) fn zigzag(v: i64) -> u64 {
        ((v << 1) ^ (v >> 63)) as u64
    }

    pub(crate) fn i32_field(out: &mut Vec<u8>, last: &mut i16, id: i16, v: i32) {
        field(out, last, id, super::T_I32);
        varint(out, zigzag(i64::from(v)));
    }

    pub(crate) fn binary_field(out: &mut Vec<u8>, last: &mut i16, id: i16, v: &[u8]) {
        field(out, last, id, super::T_BINARY);
        varint(out, v.len() as u64);
        out.extend_from_slice(v);
    }

    pub(crate) fn list_header(out: &mut Vec<u8>, elem: u8, count: usize) {
        if count < 15 {
            out.push(((count as u8) << 4) | elem);
        } else {
            out.push(0xf0 | elem);
            varint(out, count as u64);
        }
    }
}
