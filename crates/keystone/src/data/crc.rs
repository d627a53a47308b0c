//! CRC32C (Castagnoli), the checksum of every chunk and object.
//!
//! Computed by crc-fast (the AWS SDK for Rust's checksum crate): AVX-512 VPCLMULQDQ where the
//! CPU has it — 67 GB/s here, twice the `crc32c` crate's 30 GB/s, which was 12% of a 10 KiB get
//! (W3 in BENCHMARKS.md) — and runtime dispatch to SSE/NEON or a table elsewhere. The tests
//! check it against the `crc32c` crate.

/// CRC32C of `data`.
pub(crate) fn crc(data: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(data)
}

/// CRC32C of the concatenation of `parts`, without building it.
pub(crate) fn crc_of(parts: &[&[u8]]) -> u32 {
    let mut d = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    for p in parts {
        d.update(p);
    }
    d.finalize() as u32
}

/// The CRC32C polynomial, bit-reflected (the top bit is the coefficient of x^0).
const POLY: u32 = 0x82F6_3B78;

/// `a(x) · b(x) mod P` in the reflected representation; `a` must not be zero (it never is
/// here: a power of x is not divisible by P).
const fn mul_mod(a: u32, mut b: u32) -> u32 {
    let mut m = 1u32 << 31;
    let mut p = 0u32;
    while m != 0 {
        if a & m != 0 {
            p ^= b;
            if a & (m - 1) == 0 {
                break;
            }
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    p
}

/// `X2N[k]` is x^(2^k) mod P, for every k a byte length of up to 2^64 needs (k < 3 + 64).
const X2N: [u32; 67] = {
    let mut t = [0u32; 67];
    t[0] = 1 << 30; // x^1
    let mut k = 1;
    while k < t.len() {
        t[k] = mul_mod(t[k - 1], t[k - 1]);
        k += 1;
    }
    t
};

/// The CRC32C of `a ++ b` from the CRCs of `a` and `b` and the length of `b`: `crc_a` shifted
/// past `len_b` zero bytes (times x^(8·len_b) mod P, a product of the powers x^(2^k) the bits
/// of `8·len_b` name), plus `crc_b` — zlib's method. About 20 multiplications of 32-bit
/// polynomials for a 1 MiB chunk (~0.4–0.6 µs), where crc-fast's `checksum_combine` took
/// ~16 µs per call: a tenth of a streamed get, which combines once per chunk.
pub(crate) fn combine(crc_a: u32, crc_b: u32, len_b: usize) -> u32 {
    let mut n = len_b as u64;
    let mut k = 3; // 8 bits per byte: start at x^(2^3)
    let mut shift = 1u32 << 31; // x^0
    while n != 0 {
        if n & 1 != 0 {
            shift = mul_mod(X2N[k], shift);
        }
        n >>= 1;
        k += 1;
    }
    mul_mod(shift, crc_a) ^ crc_b
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
            assert_eq!(crc_of(&[a, &[], b]), crc32c::crc32c(&data), "split {split}");
        }
        assert_eq!(combine(0, crc(b""), 0), 0);
        // Every length up to a few pages, odd splits, and lengths no buffer here could hold
        // (against the crc32c crate's combine, a different method).
        for len in (0..5000).chain([65_535, 65_536, 1 << 20, (1 << 20) - 4101, 100_000]) {
            let (a, b) = data.split_at(data.len() - len.min(data.len()));
            if len <= data.len() {
                assert_eq!(combine(crc(a), crc(b), b.len()), crc32c::crc32c(&data), "len {len}");
            }
            // (The crate answers `x` for an empty `b` whatever `y` is; the CRC of nothing is 0.)
            for (x, y) in [(0, 0), (0xFFFF_FFFF, 1), (0x1234_5678, 0x9ABC_DEF0)].into_iter().filter(|_| len > 0) {
                assert_eq!(combine(x, y, len), crc32c::crc32c_combine(x, y, len), "len {len}");
            }
        }
        for len in [1usize << 32, (1 << 40) + 12_345, usize::MAX] {
            assert_eq!(combine(0xDEAD_BEEF, 7, len), crc32c::crc32c_combine(0xDEAD_BEEF, 7, len), "len {len}");
        }
    }
}
