//! The HDF5 structures the walker reads: superblock (versions 0 to 3), object headers (versions 1
//! and 2, continuation chunks included), and the messages that matter for attributes and groups.
//! Every read is checked against the file: a structure that runs past the end is `None`.

/// The HDF5 format signature.
pub const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// Reads little-endian integers of the file's address and length sizes.
#[derive(Clone, Copy)]
pub(super) struct File<'a> {
    pub(super) data: &'a [u8],
    /// Absolute offset of the superblock: addresses are relative to it.
    pub(super) base: usize,
    /// Size of offsets (addresses) and of lengths, in bytes: 2, 4 or 8.
    pub(super) so: usize,
    pub(super) sl: usize,
}

/// Little-endian unsigned integer of `n` bytes (1 to 8) at `at`.
pub(super) fn uint(data: &[u8], at: usize, n: usize) -> Option<u64> {
    let bytes = data.get(at..at.checked_add(n)?)?;
    if n > 8 {
        return None;
    }
    Some(
        bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
    )
}

impl<'a> File<'a> {
    /// An address field at `at`: the absolute file offset it points to, `None` when undefined
    /// (all bits set) or outside the file.
    pub(super) fn addr(&self, at: usize) -> Option<usize> {
        let raw = uint(self.data, at, self.so)?;
        let undefined = if self.so == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * self.so)) - 1
        };
        if raw == undefined {
            return None;
        }
        let abs = usize::try_from(raw).ok()?.checked_add(self.base)?;
        (abs < self.data.len()).then_some(abs)
    }

    /// Whether the address field at `at` is defined (not all bits set), in the file or not.
    pub(super) fn defined(&self, at: usize) -> bool {
        self.data
            .get(at..at.saturating_add(self.so))
            .is_some_and(|b| b.len() == self.so && b.iter().any(|&x| x != 0xff))
    }

    /// A length field at `at`.
    pub(super) fn len(&self, at: usize) -> Option<u64> {
        uint(self.data, at, self.sl)
    }
}

/// Where the superblock is: the signature at 0, 512, 1024, 2048, … (a user block before it
/// has one of these sizes).
pub fn superblock_offset(data: &[u8]) -> Option<usize> {
    let mut at = 0usize;
    loop {
        if data.get(at..at.checked_add(8)?)? == SIGNATURE {
            return Some(at);
        }
        at = if at == 0 { 512 } else { at.checked_mul(2)? };
    }
}

/// The superblock: the file's integer sizes and the root group's object header.
pub(super) fn superblock(data: &[u8]) -> Result<(File<'_>, usize), String> {
    let base = superblock_offset(data).ok_or("no HDF5 signature")?;
    let short = || format!("superblock at byte {base} is truncated");
    let version = *data.get(base + 8).ok_or_else(short)?;
    let so_at = match version {
        0 | 1 => base + 13,
        2 | 3 => base + 9,
        v => return Err(format!("superblock version {v} is not known")),
    };
    let so = usize::from(*data.get(so_at).ok_or_else(short)?);
    let sl = usize::from(*data.get(so_at + 1).ok_or_else(short)?);
    if ![2, 4, 8].contains(&so) || ![2, 4, 8].contains(&sl) {
        return Err(format!(
            "superblock at byte {base} gives sizes of offsets {so} and lengths {sl} (2, 4 or 8 expected)"
        ));
    }
    let file = File { data, base, so, sl };
    // The root group's object header address.
    let root_at = match version {
        // 8 signature, 8 version bytes and sizes, 4 group K values, 4 flags, (v1) 4 more; then
        // base, free-space, end-of-file and driver addresses, then the root symbol table
        // entry: link name offset, object header address.
        0 | 1 => base + 24 + if version == 1 { 4 } else { 0 } + 5 * so,
        // Signature, version, two sizes, flags; base, extension and end-of-file addresses.
        _ => base + 12 + 3 * so,
    };
    if data.len() < root_at + so {
        return Err(short());
    }
    let root = file.addr(root_at).ok_or_else(|| {
        format!("superblock at byte {base}: the root group's address is outside the file")
    })?;
    Ok((file, root))
}

/// One message of an object header: its type, flags, and where its data is.
#[derive(Clone, Copy, Debug)]
pub(super) struct Message {
    pub(super) kind: u16,
    pub(super) flags: u8,
    pub(super) at: usize,
    pub(super) len: usize,
}

pub(super) const MSG_LINK_INFO: u16 = 0x02;
pub(super) const MSG_LINK: u16 = 0x06;
pub(super) const MSG_ATTRIBUTE: u16 = 0x0c;
pub(super) const MSG_CONTINUATION: u16 = 0x10;
pub(super) const MSG_SYMBOL_TABLE: u16 = 0x11;
pub(super) const MSG_ATTRIBUTE_INFO: u16 = 0x15;

/// Most chunks one object header may have (its first and its continuations).
const MAX_CHUNKS: usize = 1024;

/// An object header's messages, continuation chunks followed (each chunk once: a cycle of
/// continuations stops). `work` counts the header bytes read; `Err` names what is broken, with
/// the messages read before it.
pub(super) fn object_messages(
    f: &File<'_>,
    at: usize,
    max_messages: usize,
    work: &mut u64,
) -> (Vec<Message>, Option<String>) {
    let mut out = Vec::new();
    let d = f.data;
    let broken = |what: &str| Some(format!("object header at byte {at}: {what}"));
    // The first chunk: its bounds and the header version.
    let (v2, creation_order, first) = if d.get(at..at + 4) == Some(b"OHDR") {
        let Some(&flags) = d.get(at + 5) else {
            return (out, broken("truncated"));
        };
        if d.get(at + 4) != Some(&2) {
            return (out, broken("version is not 2"));
        }
        let mut p = at + 6;
        if flags & 0x20 != 0 {
            p += 16; // access, modification, change and birth times
        }
        if flags & 0x10 != 0 {
            p += 4; // attribute storage phase change values
        }
        let n = 1usize << (flags & 3);
        let Some(size) = uint(d, p, n).and_then(|s| usize::try_from(s).ok()) else {
            return (out, broken("truncated"));
        };
        let start = p + n;
        // The first chunk's size counts its messages, not the checksum after them.
        (true, flags & 0x04 != 0, (start, start.saturating_add(size)))
    } else if d.get(at) == Some(&1) {
        let Some(size) = uint(d, at + 8, 4) else {
            return (out, broken("truncated"));
        };
        let start = at + 16;
        (false, false, (start, start.saturating_add(size as usize)))
    } else {
        return (out, broken("neither version 1 nor 2"));
    };
    let mut chunks = vec![first];
    let mut seen = vec![first.0];
    let mut next = 0;
    while let Some(&(start, end)) = chunks.get(next) {
        next += 1;
        if end > d.len() {
            return (out, broken("a chunk runs past the end of the file"));
        }
        *work += (end.saturating_sub(start)) as u64;
        let head = if v2 {
            4 + 2 * usize::from(creation_order)
        } else {
            8
        };
        let mut p = start;
        while p + head <= end {
            if out.len() >= max_messages {
                return (out, broken("too many messages"));
            }
            let (kind, len, flags) = if v2 {
                (u16::from(d[p]), uint(d, p + 1, 2), d[p + 3])
            } else {
                (
                    uint(d, p, 2).unwrap_or(0) as u16,
                    uint(d, p + 2, 2),
                    d[p + 4],
                )
            };
            let len = len.unwrap_or(0) as usize;
            let data_at = p + head;
            if data_at + len > end {
                return (out, broken("a message runs past its chunk"));
            }
            let m = Message {
                kind,
                flags,
                at: data_at,
                len,
            };
            if kind == MSG_CONTINUATION {
                let (Some(c), Some(n)) = (f.addr(data_at), f.len(data_at + f.so)) else {
                    return (out, broken("a continuation points outside the file"));
                };
                let (c_start, c_end) = if v2 {
                    if d.get(c..c + 4) != Some(b"OCHK") {
                        return (out, broken("a continuation chunk lacks its signature"));
                    }
                    // Signature and checksum are counted in the chunk's length.
                    (c + 4, c.saturating_add(n as usize).saturating_sub(4))
                } else {
                    (c, c.saturating_add(n as usize))
                };
                if seen.contains(&c_start) || chunks.len() >= MAX_CHUNKS {
                    return (out, broken("continuation chunks repeat or are too many"));
                }
                seen.push(c_start);
                chunks.push((c_start, c_end));
            }
            out.push(m);
            p = data_at + len;
        }
    }
    (out, None)
}

/// A string datatype: fixed length (with its padding) or variable length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StringType {
    /// Fixed-length string of `size` bytes; `pad` 0 null-terminated, 1 null-padded, 2
    /// space-padded.
    Fixed { size: usize, pad: u8 },
    /// Variable-length string: a length and a global heap ID per element.
    Variable,
}

/// The string type of a datatype message, `None` for other classes.
pub(super) fn string_type(d: &[u8], at: usize) -> Option<StringType> {
    let class = d.get(at)? & 0x0f;
    let bits = *d.get(at + 1)?;
    let size = usize::try_from(uint(d, at + 4, 4)?).ok()?;
    match class {
        3 => Some(StringType::Fixed {
            size,
            pad: bits & 0x0f,
        }),
        9 if bits & 0x0f == 1 => Some(StringType::Variable),
        _ => None,
    }
}

/// Elements of a dataspace message, `None` when it cannot be read; bounded by `max`.
pub(super) fn dataspace_elements(f: &File<'_>, at: usize, end: usize, max: u64) -> Option<u64> {
    let d = f.data.get(..end)?;
    let version = *d.get(at)?;
    let rank = usize::from(*d.get(at + 1)?);
    let dims_at = match version {
        1 => at + 8,
        2 => match d.get(at + 3)? {
            0 => return Some(1),
            2 => return Some(0),
            _ => at + 4,
        },
        _ => return None,
    };
    let mut n = 1u64;
    for i in 0..rank {
        let dim = uint(d, dims_at + i * f.sl, f.sl)?;
        n = n.saturating_mul(dim).min(max.saturating_add(1));
    }
    Some(n)
}

/// The parts of an attribute message: name, datatype, dataspace and data, as file ranges.
#[derive(Debug)]
pub(super) struct Attribute {
    pub(super) name: (usize, usize),
    pub(super) datatype: usize,
    pub(super) dataspace: usize,
    pub(super) data: (usize, usize),
}

/// Splits an attribute message; `None` when malformed, `Some(None)` when its datatype or
/// dataspace is shared (kept elsewhere; not read).
pub(super) fn attribute(d: &[u8], m: &Message) -> Option<Option<Attribute>> {
    let end = m.at.checked_add(m.len)?;
    let at = m.at;
    let version = *d.get(at)?;
    let flags = *d.get(at + 1)?;
    let name_len = uint(d, at + 2, 2)? as usize;
    let dt_len = uint(d, at + 4, 2)? as usize;
    let ds_len = uint(d, at + 6, 2)? as usize;
    let pad = |n: usize| if version == 1 { n.div_ceil(8) * 8 } else { n };
    let name_at = match version {
        1 | 2 => at + 8,
        3 => at + 9,
        _ => return None,
    };
    let dt_at = name_at + pad(name_len);
    let ds_at = dt_at + pad(dt_len);
    let data_at = ds_at + pad(ds_len);
    if data_at > end || end > d.len() {
        return None;
    }
    if version > 1 && flags & 0x03 != 0 {
        return Some(None);
    }
    Some(Some(Attribute {
        name: (name_at, name_at + name_len),
        datatype: dt_at,
        dataspace: ds_at,
        data: (data_at, end),
    }))
}

/// A hard link of a link message: its name range and target object header.
pub(super) fn hard_link(f: &File<'_>, m: &Message) -> Option<((usize, usize), usize)> {
    let d = f.data.get(..m.at.checked_add(m.len)?)?;
    if *d.get(m.at)? != 1 {
        return None;
    }
    let flags = *d.get(m.at + 1)?;
    let mut p = m.at + 2;
    let mut kind = 0;
    if flags & 0x08 != 0 {
        kind = *d.get(p)?;
        p += 1;
    }
    if flags & 0x04 != 0 {
        p += 8;
    }
    if flags & 0x10 != 0 {
        p += 1;
    }
    let n = 1usize << (flags & 3);
    let name_len = usize::try_from(uint(d, p, n)?).ok()?;
    let name = (p + n, (p + n).checked_add(name_len)?);
    if kind != 0 || name.1 + f.so > d.len() {
        return None;
    }
    Some((name, f.addr(name.1)?))
}

/// Whether a link info or attribute info message points to dense storage (a fractal heap).
pub(super) fn dense_storage(f: &File<'_>, m: &Message) -> bool {
    let Some(&flags) = f.data.get(m.at + 1) else {
        return false;
    };
    let index = match m.kind {
        MSG_LINK_INFO => 8,
        _ => 2,
    };
    let heap_at = m.at + 2 + if flags & 1 != 0 { index } else { 0 };
    heap_at + f.so <= m.at + m.len && f.defined(heap_at)
}
