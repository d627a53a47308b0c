//! Measures how much file space chunked objects take for a range of chunk sizes: the figure
//! behind `DEFAULT_CHUNK_SIZE` (see docs/design.md).
//!
//! `cargo run --release -p keystone --example chunk_space [TOTAL_MIB]`

use std::io::Read;

use keystone::{DEFAULT_CHUNK_SIZE, Datastore, PutOptions};

/// `len` bytes of a cheap pseudo-random stream (incompressible, never all in memory).
struct Noise(u64, u64);

impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.0 as usize);
        for b in &mut buf[..n] {
            self.1 = self.1.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            *b = (self.1 >> 33) as u8;
        }
        self.0 -= n as u64;
        Ok(n)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total_mib: u64 = std::env::args().nth(1).map_or(Ok(64), |s| s.parse())?;
    let kib = 1024;
    let mib = 1024 * 1024;
    let sizes = [
        ("256 KiB - 1 KiB", 256 * kib - kib),
        ("1 MiB", mib),
        ("1 MiB - 1 KiB", mib - kib),
        ("1 MiB - 4 KiB", mib - 4 * kib),
        ("default", DEFAULT_CHUNK_SIZE),
        ("4 MiB - 4 KiB", 4 * mib - 4 * kib),
    ];
    println!("{:<18} {:>12} {:>14} {:>14} {:>8}", "chunk size", "bytes", "stored", "file", "ratio");
    for (label, chunk) in sizes {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("space.keystone");
        let db = Datastore::builder().chunk_size(chunk).open(&path)?;
        let b = db.create_bucket("space")?;
        let object = 16 * mib as u64;
        let count = (total_mib * mib as u64) / object;
        for i in 0..count {
            b.put_reader(&format!("obj{i}"), Noise(object, i), PutOptions::default())?;
        }
        drop(b);
        drop(db);
        let stored = count * object;
        let file = std::fs::metadata(&path)?.len();
        println!("{label:<18} {chunk:>12} {stored:>14} {file:>14} {:>8.3}", file as f64 / stored as f64);
    }
    Ok(())
}
