//! The workloads W1–W6 of issue 5, and what they share: engines opened side by side, runs
//! alternated between engines, deterministic data.

pub mod large;
pub mod scale;
pub mod small;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;

use crate::engines::{self, BenchEngine};

/// Settings every workload sees.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Where stores are created (a fresh directory per workload and engine).
    pub dir: PathBuf,
    /// Repetitions of each timed run.
    pub reps: usize,
    /// Page cache of the redb-based engines, bytes.
    pub cache: usize,
}

impl Ctx {
    /// Opens each engine in its own fresh directory under `<dir>/<workload>/`.
    pub fn open_all(&self, workload: &str, names: &[String]) -> Result<Vec<Box<dyn BenchEngine>>> {
        names
            .iter()
            .map(|n| {
                let dir = self.dir.join(workload).join(n);
                if dir.exists() {
                    std::fs::remove_dir_all(&dir)?;
                }
                engines::open(n, &dir, self.cache)
            })
            .collect()
    }

    /// Removes the stores of one workload.
    pub fn clean(&self, workload: &str) -> Result<()> {
        let dir = self.dir.join(workload);
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        Ok(())
    }
}

/// Writes every dirty page of the machine back to disk (`sync`), so that a read workload does
/// not time the write-back of its own load phase, or of the workloads before it, on a core it
/// shares.
pub fn settle() {
    rustix::fs::sync();
}

/// Runs `run(rep, engine)` for every repetition, engines alternating within each repetition
/// (so drift in the machine's speed hits all of them alike). Returns each engine's samples.
pub fn alternate(
    reps: usize,
    engines: &[Box<dyn BenchEngine>],
    mut run: impl FnMut(usize, &dyn BenchEngine) -> Result<f64>,
) -> Result<Vec<(String, Vec<f64>)>> {
    let mut out: Vec<(String, Vec<f64>)> = engines.iter().map(|e| (e.name().to_owned(), Vec::new())).collect();
    for rep in 0..reps {
        // Rotate the starting engine so none always runs first.
        for i in 0..engines.len() {
            let idx = (i + rep) % engines.len();
            let v = run(rep, engines[idx].as_ref())?;
            progress(&format!("  rep {} {:<8} {}", rep + 1, engines[idx].name(), crate::report::num(v)));
            out[idx].1.push(v);
        }
    }
    Ok(out)
}

/// `alternate` over stores opened afresh for every run (outside the timing), so that no
/// repetition writes into what the ones before it left: engine `names[i]` is opened empty in
/// `<dir>/<workload>/<rep>/<name>`, run and closed. The stores are removed only when every run
/// is done: ext4 does not hand out the inodes of files deleted in the last minutes
/// (`recently_deleted`), so one-file-per-object runs right after 100,000 deletions searched
/// for inodes at a fifth of their speed.
pub fn alternate_fresh(
    ctx: &Ctx,
    workload: &str,
    names: &[String],
    mut run: impl FnMut(usize, &dyn BenchEngine) -> Result<f64>,
) -> Result<Vec<(String, Vec<f64>)>> {
    let mut out: Vec<(String, Vec<f64>)> = names.iter().map(|n| (n.clone(), Vec::new())).collect();
    for rep in 0..ctx.reps {
        for i in 0..names.len() {
            let idx = (i + rep) % names.len();
            let engine = ctx.open_all(&format!("{workload}/{rep}"), std::slice::from_ref(&names[idx]))?.remove(0);
            settle();
            let v = run(rep, engine.as_ref())?;
            progress(&format!("  rep {} {:<8} {}", rep + 1, engine.name(), crate::report::num(v)));
            out[idx].1.push(v);
        }
    }
    ctx.clean(workload)?;
    Ok(out)
}

/// Operations per second of `n` operations done by `f`.
pub fn rate(n: usize, f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let t = Instant::now();
    f()?;
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// Object `i`'s bytes: `base` with `i` in its first 8 bytes, so that no two objects are alike
/// and a read answered with a neighbour's bytes is found (W5, W6 and the S3 mode).
pub fn value_of(base: &[u8], i: usize) -> Vec<u8> {
    let mut v = base.to_vec();
    let n = v.len().min(8);
    v[..n].copy_from_slice(&(i as u64).to_le_bytes()[..n]);
    v
}

/// A line on stderr about what is running.
pub fn progress(msg: &str) {
    eprintln!("{msg}");
}

/// A small deterministic pseudo-random generator (xorshift64*), so every engine stores the
/// same bytes and reads keys in the same order.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}
