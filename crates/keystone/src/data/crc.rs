//! CRC32C (Castagnoli), the checksum of every chunk and object.
//!
//! Computed by crc-fast (the AWS SDK for Rust's checksum crate): AVX-512 VPCLMULQDQ where the
//! CPU has it — 67 GB/s here, twice the `crc32c` crate's 30 GB/s, which was 12% of a 10 KiB get
//! (W3 in BENCHMARKS.md) — and runtime dispatch to SSE/NEON or a table elsewhere. The tests
//! check it against the `crc32c` crate.

use crc_fast::CrcAlgorithm::Crc32Iscsi;

/// CRC32C of `data`.
pub(crate) fn crc(data: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(data)
}

/// The CRC32C of `a ++ b` from the CRCs of `a` and `b` and the length of `b`.
pub(crate) fn combine(crc_a: u32, crc_b: u32, len_b: usize) -> u32 {
    // A CRC32 result fits in 32 bits.
    crc_fast::checksum_combine(Crc32Iscsi, u64::from(crc_a), u64::from(crc_b), len_b as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_crc32c_crate() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in [0, 1, 7, 8, 15, 16, 63, 64, 255, 256, 4095, 4096, 10_240, 100_000] {
            assert_eq!(crc(&data[..len]), crc32c::crc32c(&data[..len]), "len {len}");
        }
        for split in [0, 1, 100, 4096, 50_000, 99_999, 100_000] {
            let (a, b) = data.split_at(split);
            assert_eq!(combine(crc(a), crc(b), b.len()), crc32c::crc32c(&data), "split {split}");
        }
        assert_eq!(combine(0, crc(b""), 0), 0);
    }
}
