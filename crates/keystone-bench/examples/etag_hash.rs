//! XXH3-128 as the library hashes ETags (`twox-hash`, which picks AVX2 at run time) against
//! `xxhash-rust` (SSE2 unless the build targets more), one-shot and streamed, on the object
//! sizes of W2, W3 and W4. Both must give the same hash; the speeds are in BENCHMARKS.md (W2).
//!
//! `cargo run --release -p keystone-bench --example etag_hash`

use std::hint::black_box;
use std::time::Instant;

/// GB/s of `f` over `data`, repeated until about `total` bytes went through.
fn speed(data: &[u8], total: usize, mut f: impl FnMut(&[u8]) -> u128) -> f64 {
    let n = (total / data.len()).max(10);
    let t = Instant::now();
    let mut acc = 0u128;
    for _ in 0..n {
        acc ^= f(black_box(data));
    }
    black_box(acc);
    (n * data.len()) as f64 / t.elapsed().as_secs_f64() / 1e9
}

fn main() {
    println!("| size | twox-hash one-shot | xxhash-rust one-shot | twox-hash streamed | xxhash-rust streamed |");
    println!("|---|---|---|---|---|");
    for size in [4096usize, 10_240, 1 << 20] {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        assert_eq!(
            twox_hash::XxHash3_128::oneshot(&data),
            xxhash_rust::xxh3::xxh3_128(&data),
            "the two implementations disagree at {size} bytes"
        );
        let total = 2_000_000_000;
        let twox = speed(&data, total, twox_hash::XxHash3_128::oneshot);
        let xxr = speed(&data, total, xxhash_rust::xxh3::xxh3_128);
        let twox_s = speed(&data, total, |d| {
            let mut h = twox_hash::XxHash3_128::new();
            h.write(d);
            h.finish_128()
        });
        let xxr_s = speed(&data, total, |d| {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            h.update(d);
            h.digest128()
        });
        println!("| {size} B | {twox:.1} GB/s | {xxr:.1} GB/s | {twox_s:.1} GB/s | {xxr_s:.1} GB/s |");
    }
}
