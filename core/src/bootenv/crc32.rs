//! CRC-32/IEEE as zlib's `crc32()` computes it (reflected polynomial `0xEDB88320`, initial value
//! and final XOR `0xFFFFFFFF`; check value for `"123456789"` is `0xCBF43926`). U-Boot and
//! libubootenv protect each environment copy with it (ota-agent.md §3.2).

/// The reflected CRC-32/IEEE polynomial.
const POLY: u32 = 0xEDB8_8320;

/// One entry per byte value: the CRC register after shifting that byte through it.
const TABLE: [u32; 256] = make_table();

const fn make_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { POLY ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// The CRC-32 of `data` (zlib's `crc32(0, data, len)`).
pub fn crc32(data: &[u8]) -> u32 {
    update(0, data)
}

/// Continues the CRC-32 `crc` of earlier bytes over `data` (zlib's `crc32(crc, data, len)`).
pub fn update(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c = TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        // zlib.crc32(b"The quick brown fox jumps over the lazy dog")
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    #[test]
    fn update_continues() {
        let data = b"123456789";
        for split in 0..=data.len() {
            let (a, b) = data.split_at(split);
            assert_eq!(update(update(0, a), b), 0xCBF4_3926, "split at {split}");
        }
    }
}
