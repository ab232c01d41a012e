//! CRC-32C (Castagnoli; TFRecord framing, masked as TensorFlow masks it) and CRC-32 (IEEE;
//! the W&B run log's chunks), table-driven, one byte at a time: the logs are read once, and
//! a 1 KiB table per polynomial keeps this free of a dependency.

/// Reflected polynomials.
const CASTAGNOLI: u32 = 0x82F6_3B78;
const IEEE: u32 = 0xEDB8_8320;

const fn table(poly: u32) -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ poly } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CASTAGNOLI_TABLE: [u32; 256] = table(CASTAGNOLI);
static IEEE_TABLE: [u32; 256] = table(IEEE);

fn update(table: &[u32; 256], crc: u32, bytes: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in bytes {
        c = table[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// CRC-32C of `bytes`.
pub(super) fn crc32c(bytes: &[u8]) -> u32 {
    update(&CASTAGNOLI_TABLE, 0, bytes)
}

/// TensorFlow's masked CRC-32C (tensorflow/core/lib/hash/crc32c.h: rotate right by 15, add a
/// constant), as TFRecord stores it.
pub(super) fn masked_crc32c(bytes: &[u8]) -> u32 {
    let c = crc32c(bytes);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// CRC-32 (IEEE, as zlib) of `first` followed by `rest`.
pub(super) fn crc32(first: &[u8], rest: &[u8]) -> u32 {
    update(&IEEE_TABLE, update(&IEEE_TABLE, 0, first), rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_values() {
        // The standard check value of each polynomial: the CRC of "123456789".
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32(b"1234", b"56789"), 0xCBF4_3926);
        assert_eq!(crc32(b"", b""), 0);
        // TensorFlow's mask of the CRC of the empty string.
        assert_eq!(masked_crc32c(b""), 0xa282_ead8);
    }
}
