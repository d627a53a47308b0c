//! Measures the file space objects take: `COUNT` objects of sizes spread evenly on a log scale
//! between `MIN` and `MAX` bytes, written one by one to a new store, which is then compacted;
//! prints the file's size over the bytes stored (docs/design.md, "Chunk size and redb's
//! allocator").
//!
//! `cargo run --release -p keystone --example object_space -- MIN MAX COUNT`

use std::io::Read;

use keystone::{Datastore, PutOptions};

/// `len` bytes of a cheap pseudo-random stream (incompressible, never all in memory).
struct Noise(u64, u64);

impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(usize::try_from(self.0).unwrap_or(usize::MAX));
        for b in &mut buf[..n] {
            self.1 = self.1.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            *b = (self.1 >> 33) as u8;
        }
        self.0 -= n as u64;
        Ok(n)
    }
}

fn arg(n: usize, name: &str) -> Result<u64, String> {
    let usage = "usage: object_space MIN MAX COUNT (sizes in bytes, MIN <= MAX, COUNT > 0)";
    let s = std::env::args().nth(n).ok_or(format!("{usage}: {name} is missing"))?;
    s.parse().map_err(|e| format!("{usage}: {name} {s:?}: {e}"))
}

#[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)] // a size from a positive f64
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (min, max, count) = (arg(1, "MIN")?, arg(2, "MAX")?, arg(3, "COUNT")?);
    if min == 0 || min > max || count == 0 {
        return Err("usage: object_space MIN MAX COUNT (sizes in bytes, 0 < MIN <= MAX, COUNT > 0)".into());
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("space.keystone");
    let db = Datastore::open(&path)?;
    let b = db.create_bucket("space")?;
    let (lo, hi) = ((min as f64).ln(), (max as f64).ln());
    let mut state = 12_345u64;
    let mut stored = 0u64;
    for i in 0..count {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let u = (state >> 11) as f64 / (1u64 << 53) as f64;
        let size = ((lo + u * (hi - lo)).exp() as u64).clamp(min, max);
        stored += size;
        b.put_reader(&format!("obj{i}"), Noise(size, i), PutOptions::default())?;
    }
    drop(b);
    db.compact()?;
    drop(db);
    let file = std::fs::metadata(&path)?.len();
    println!(
        "{count} objects of {min}..{max} bytes: stored {stored}, file {file}, file / stored {:.3}",
        file as f64 / stored as f64
    );
    Ok(())
}
