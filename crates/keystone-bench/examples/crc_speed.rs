//! CRC32C as the library computes it (crc-fast; AVX-512 where the CPU has it), and as the crc32c
//! crate computes it (SSE 4.2's CRC32 instruction), on the sizes a get
//! checks — a manifest's header (its seal), a 1 KiB and a 10 KiB body — and the cost of
//! combining two CRCs across a 1 MiB chunk: crc-fast's `checksum_combine`, which the library
//! used until 232af99, against the crc32c crate's (zlib's older matrix method). The library's
//! own combine (zlib's newer method, `data/crc.rs`) is measured by W4's gets.
//! BENCHMARKS.md (W3, W4) quotes these figures.
//!
//! `cargo run --release -p keystone-bench --example crc_speed [CALLS]` — CALLS per size,
//! 1,000,000 by default (the combines run a 500th and a 50th of it); CI runs a few thousand, on
//! a debug build, so that the example cannot rot.

use std::hint::black_box;
use std::time::Instant;

use crc_fast::CrcAlgorithm::Crc32Iscsi;

/// Nanoseconds per call of `f`, over `n` calls.
fn ns(n: u32, mut f: impl FnMut(u32) -> u64) -> f64 {
    let t = Instant::now();
    let mut acc = 0u64;
    for i in 0..n {
        acc ^= f(i);
    }
    black_box(acc);
    t.elapsed().as_nanos() as f64 / f64::from(n)
}

fn main() {
    let calls: u32 = match std::env::args().nth(1) {
        None => 1_000_000,
        Some(a) => match a.parse() {
            Ok(n) if n >= 500 => n,
            _ => {
                eprintln!("crc_speed: CALLS must be a whole number of at least 500, got {a:?}");
                std::process::exit(2);
            }
        },
    };
    let data: Vec<u8> = (0..16_384u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    for len in [80usize, 1024, 10_240] {
        let per = ns(calls, |i| u64::from(crc_fast::crc32_iscsi(black_box(&data[(i % 64) as usize..][..len]))));
        println!("CRC32C of {len:>6} bytes (crc-fast): {per:>8.1} ns");
        let per = ns(calls, |i| u64::from(crc32c::crc32c(black_box(&data[(i % 64) as usize..][..len]))));
        println!("CRC32C of {len:>6} bytes (crc32c):   {per:>8.1} ns");
    }
    let chunk = (1u64 << 20) - 4096 - 5;
    let fast =
        ns(calls / 500, |i| crc_fast::checksum_combine(Crc32Iscsi, u64::from(i), u64::from(i) << 3, black_box(chunk)));
    println!("combine across a 1 MiB chunk, crc-fast checksum_combine: {fast:>8.0} ns");
    let crate_ = ns(calls / 50, |i| u64::from(crc32c::crc32c_combine(i, i << 3, black_box(chunk as usize))));
    println!("combine across a 1 MiB chunk, crc32c crate:              {crate_:>8.0} ns");
}
