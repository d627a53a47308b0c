//! CRC32C (Castagnoli), the checksum of every chunk and object.
//!
//! Two implementations, chosen once per process by what the CPU has:
//!
//! - crc-fast (the AWS SDK for Rust's checksum crate) on x86-64 CPUs with AVX-512 and
//!   VPCLMULQDQ: 67 GB/s on the bench machine's first host, twice the `crc32c` crate's 30 GB/s
//!   there, which was 12% of a 10 KiB get (W3 in BENCHMARKS.md); and on every other
//!   architecture (NEON on aarch64), where it was not measured against the crate.
//! - The `crc32c` crate (SSE 4.2's CRC32 instruction, three streams at once) on x86-64 CPUs
//!   without them, where crc-fast falls back to 128-bit carry-less multiplication and is the
//!   slower of the two: on an AMD EPYC with AVX2 only, 10 KiB in 782 ns against 936, 1 KiB in
//!   109 against 174 (`cargo run --release -p keystone-bench --example crc_speed`).
//!
//! The tests check both against each other and against the crate.

/// Which implementation this CPU runs faster (see the module docs).
fn use_crate() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::atomic::{AtomicU8, Ordering};
        // 0: not yet decided, 1: crc-fast, 2: the crate.
        static CHOICE: AtomicU8 = AtomicU8::new(0);
        match CHOICE.load(Ordering::Relaxed) {
            1 => false,
            2 => true,
            _ => {
                let wide = std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("vpclmulqdq");
                CHOICE.store(if wide { 1 } else { 2 }, Ordering::Relaxed);
                !wide
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// CRC32C of `data`.
pub(crate) fn crc(data: &[u8]) -> u32 {
    if use_crate() { crc32c::crc32c(data) } else { crc_fast::crc32_iscsi(data) }
}

/// CRC32C of the concatenation of `parts`, without building it.
pub(crate) fn crc_of(parts: &[&[u8]]) -> u32 {
    if use_crate() {
        return parts.iter().fold(0, |crc, p| crc32c::crc32c_append(crc, p));
    }
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
    fn both_implementations_agree_at_every_length_and_alignment() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8).collect();
        for start in 0..16 {
            for len in (0..1100).chain([4095, 4096, 4097, 10_240, 19_000]) {
                let d = &data[start..start + len];
                assert_eq!(crc_fast::crc32_iscsi(d), crc32c::crc32c(d), "start {start} len {len}");
            }
        }
        let (a, b) = data.split_at(7777);
        let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
        digest.update(a);
        digest.update(b);
        assert_eq!(digest.finalize() as u32, crc32c::crc32c_append(crc32c::crc32c(a), b));
    }

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
