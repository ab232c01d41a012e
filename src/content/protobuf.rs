//! A reader of the protobuf wire format: fields of one message at a time, length-delimited
//! payloads borrowed (never copied), every length checked against the bytes of its message.

/// A protobuf field value; length-delimited payloads are borrowed, never copied.
pub(crate) enum ProtoValue<'a> {
    Varint(u64),
    Fixed,
    Bytes { offset: usize, bytes: &'a [u8] },
}

/// The fields of one protobuf message: `data` is the whole file, `pos..end` the message.
pub(crate) struct ProtoMessage<'a> {
    data: &'a [u8],
    pub(crate) pos: usize,
    end: usize,
}

impl<'a> ProtoMessage<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        ProtoMessage {
            data,
            pos: 0,
            end: data.len(),
        }
    }

    pub(crate) fn nested(&self, offset: usize, bytes: &[u8]) -> Self {
        ProtoMessage {
            data: self.data,
            pos: offset,
            end: offset + bytes.len(),
        }
    }

    pub(crate) fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = *self.data[..self.end].get(self.pos)?;
            self.pos += 1;
            if i == 9 && byte > 1 {
                return None; // more than 64 bits
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// The next field, `None` at the end of the message.
    pub(crate) fn next_field(&mut self) -> Result<Option<(u64, ProtoValue<'a>)>, String> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let at = self.pos;
        let bad = |what: &str| format!("{what} at byte {at}");
        let tag = self.varint().ok_or_else(|| bad("malformed field tag"))?;
        let number = tag >> 3;
        if number == 0 || number > 0x1FFF_FFFF {
            return Err(bad("invalid field number"));
        }
        let value = match tag & 7 {
            0 => ProtoValue::Varint(self.varint().ok_or_else(|| bad("malformed varint"))?),
            1 | 5 => {
                let size = if tag & 7 == 1 { 8 } else { 4 };
                if self.end - self.pos < size {
                    return Err(bad("fixed-size field runs past the end of its message"));
                }
                self.pos += size;
                ProtoValue::Fixed
            }
            2 => {
                let len = self.varint().ok_or_else(|| bad("malformed length"))?;
                let fits = usize::try_from(len)
                    .ok()
                    .filter(|&len| len <= self.end - self.pos);
                let Some(len) = fits else {
                    return Err(bad(&format!(
                        "length {len} runs past the end of its message"
                    )));
                };
                let offset = self.pos;
                self.pos += len;
                ProtoValue::Bytes {
                    offset,
                    bytes: &self.data[offset..offset + len],
                }
            }
            wire => return Err(bad(&format!("unsupported wire type {wire}"))),
        };
        Ok(Some((number, value)))
    }
}
