//! Benchmarks of Keystone against raw redb, one file per object, and SQLite.
//!
//! `cargo run --release -p keystone-bench -- [W1 .. W6] [--quick]` runs the workloads of
//! issue 5 on every engine, alternating engines within each repetition, and prints a Markdown
//! table of medians (min–max), ratios Keystone/baseline and whether each target is met.
//! Timing never makes the command fail; only an error does.

mod engines;
mod report;
#[cfg(feature = "s3")]
mod s3;
mod stream;
mod workloads;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Parser;

use workloads::{Ctx, large, scale, small};

#[derive(Parser, Debug)]
#[command(about = "Keystone against raw redb, one file per object, and SQLite")]
struct Args {
    /// Workloads to run (W1 … W6); all when none is given.
    workloads: Vec<String>,
    /// Small sizes and counts (finishes in well under a minute); run by CI.
    #[arg(long)]
    quick: bool,
    /// Repetitions of each timed run (engines alternate within each).
    #[arg(long)]
    reps: Option<usize>,
    /// Engines to run, comma-separated (keystone,redb,files,sqlite; also keystone-md5: Keystone with
    /// the MD5 ETags of a store served over S3, and keystone-read: Keystone streaming gets through
    /// `Read`); default: keystone,redb,files,sqlite (W4: not sqlite).
    #[arg(long, value_delimiter = ',')]
    engines: Option<Vec<String>>,
    /// Directory for the stores (default: a temporary directory, removed at the end).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Page cache of Keystone, raw redb and SQLite (its cache and memory map), MiB (the same for each).
    #[arg(long, default_value_t = keystone::DEFAULT_CACHE_SIZE / (1024 * 1024))]
    cache_mib: usize,
    /// W1: durable puts per timed run.
    #[arg(long, default_value_t = 1000)]
    w1_puts: usize,
    /// W1: writer threads of the concurrent run.
    #[arg(long, default_value_t = 8)]
    w1_threads: usize,
    /// W1 and W2: object size, bytes.
    #[arg(long, default_value_t = 4096)]
    small_size: usize,
    /// W2: objects per timed run.
    #[arg(long, default_value_t = 100_000)]
    w2_count: usize,
    /// W2: objects per transaction.
    #[arg(long, default_value_t = 1000)]
    w2_batch: usize,
    /// W3: objects in the store.
    #[arg(long, default_value_t = 100_000)]
    w3_count: usize,
    /// W3: mean object size, bytes (each is this ± `w3_jitter`).
    #[arg(long, default_value_t = 10 * 1024)]
    w3_size: usize,
    /// W3: spread of object sizes, bytes.
    #[arg(long, default_value_t = 2 * 1024)]
    w3_jitter: usize,
    /// W3: page cache of Keystone, raw redb and SQLite, MiB; 0 = enough to hold the data set, so
    /// the cache is warm as the OS page cache is for files.
    #[arg(long, default_value_t = 0)]
    w3_cache_mib: usize,
    /// W3: reader threads of the concurrent run.
    #[arg(long, default_value_t = 2)]
    w3_threads: usize,
    /// W4: object sizes, MiB, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [100u64, 1024])]
    w4_mib: Vec<u64>,
    /// W5: objects in the store (the full run in BENCHMARKS.md uses 1,000,000; the default keeps
    /// the whole suite to a few minutes).
    #[arg(long, default_value_t = 100_000)]
    w5_count: usize,
    /// W5: prefixes the objects are spread over.
    #[arg(long, default_value_t = 1000)]
    w5_prefixes: usize,
    /// W5 and W6: object size, bytes.
    #[arg(long, default_value_t = 1024)]
    w5_size: usize,
    /// W5: objects deleted before compacting; 0 = a tenth of them.
    #[arg(long, default_value_t = 0)]
    w5_deletes: usize,
    /// W6: store sizes at which latency is measured, comma-separated (the full run in
    /// BENCHMARKS.md uses 10000,100000,1000000).
    #[arg(long, value_delimiter = ',', default_values_t = [1_000usize, 10_000, 100_000])]
    w6_points: Vec<usize>,
    /// W6: durable puts per probe.
    #[arg(long, default_value_t = 200)]
    w6_puts: usize,
    /// W6: random gets per probe.
    #[arg(long, default_value_t = 5000)]
    w6_gets: usize,
}

impl Args {
    /// `--quick`: small enough for CI, large enough to exercise every code path.
    fn apply_quick(&mut self) {
        self.reps.get_or_insert(2);
        self.w1_puts = 64;
        self.w2_count = 2000;
        self.w3_count = 2000;
        self.w4_mib = vec![16];
        self.w5_count = 10_000;
        self.w5_prefixes = 100;
        self.w5_deletes = 1000;
        self.w6_points = vec![1000, 10_000];
        self.w6_puts = 20;
        self.w6_gets = 500;
    }
}

fn progress_cache(mib: usize) {
    workloads::progress(&format!("W3 runs keystone, redb and sqlite with a {mib} MiB page cache"));
}

const WORKLOADS: [&str; 6] = ["W1", "W2", "W3", "W4", "W5", "W6"];

fn main() -> Result<()> {
    let raw: Vec<String> = std::env::args().collect();
    if raw.get(1).map(String::as_str) == Some(large::CHILD_FLAG) {
        return large::child(&raw[2..]);
    }
    if raw.get(1).map(String::as_str) == Some(s3_flag()) {
        #[cfg(feature = "s3")]
        return s3::run(&raw[1..]);
        #[cfg(not(feature = "s3"))]
        bail!("the S3 mode is built with `--features s3`");
    }
    let mut args = Args::parse();
    if args.quick {
        args.apply_quick();
    }
    let mut selected: Vec<String> = args.workloads.iter().map(|w| w.to_uppercase()).collect();
    if let Some(bad) = selected.iter().find(|w| !WORKLOADS.contains(&w.as_str())) {
        bail!("unknown workload {bad:?} (expected W1 … W6)");
    }
    if selected.is_empty() {
        selected = WORKLOADS.iter().map(|w| (*w).to_owned()).collect();
    }
    let all: Vec<String> = engines::ALL.iter().map(|e| (*e).to_owned()).collect();
    let chosen = args.engines.clone().unwrap_or_else(|| all.clone());
    if let Some(bad) = chosen.iter().find(|e| !all.contains(e) && !engines::VARIANTS.contains(&e.as_str())) {
        bail!("unknown engine {bad:?} (expected some of {all:?}, or {:?})", engines::VARIANTS);
    }
    let tmp = match &args.dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("keystone-bench").tempdir()?),
    };
    let dir = args.dir.clone().or_else(|| tmp.as_ref().map(|t| t.path().to_path_buf())).unwrap_or_default();
    let ctx = Ctx { dir, reps: args.reps.unwrap_or(3).max(1), cache: args.cache_mib * 1024 * 1024 };
    let started = Instant::now();
    let has = |w: &str| selected.iter().any(|s| s == w);
    let mut rows = Vec::new();
    if has("W1") {
        let p = small::W1 { puts: args.w1_puts, size: args.small_size, threads: args.w1_threads };
        rows.extend(small::w1(&ctx, &chosen, &p)?);
    }
    if has("W2") {
        let p = small::W2 { count: args.w2_count, batch: args.w2_batch, size: args.small_size };
        rows.extend(small::w2(&ctx, &chosen, &p)?);
    }
    if has("W3") {
        let p =
            small::W3 { count: args.w3_count, size: args.w3_size, jitter: args.w3_jitter, threads: args.w3_threads };
        if p.jitter > p.size {
            bail!("--w3-jitter must not exceed --w3-size");
        }
        let mib = 1024 * 1024;
        let data = p.count * (p.size + p.jitter);
        let cache =
            if args.w3_cache_mib == 0 { (2 * data).div_ceil(mib).max(args.cache_mib) } else { args.w3_cache_mib };
        progress_cache(cache);
        rows.extend(small::w3(&Ctx { cache: cache * mib, ..ctx.clone() }, &chosen, &p)?);
    }
    if has("W4") {
        let w4: Vec<String> = if args.engines.is_some() {
            chosen.clone()
        } else {
            chosen.iter().filter(|e| *e != "sqlite").cloned().collect()
        };
        rows.extend(large::w4(&ctx, &w4, &args.w4_mib)?);
    }
    if has("W5") || has("W6") {
        let p = scale::Scale {
            count: args.w5_count,
            prefixes: args.w5_prefixes.max(1),
            size: args.w5_size,
            deletes: if args.w5_deletes == 0 { args.w5_count / 10 } else { args.w5_deletes.min(args.w5_count) },
            points: args.w6_points.clone(),
            probe_puts: args.w6_puts,
            probe_gets: args.w6_gets,
        };
        rows.extend(scale::run(&ctx, &chosen, &p, has("W5"), has("W6"))?);
    }
    println!("{}", report::table(&rows, &chosen));
    println!(
        "{} repetitions, engines alternating; cache {} MiB for keystone, redb and sqlite; {:.0} s in all. Targets {}.",
        ctx.reps,
        args.cache_mib,
        started.elapsed().as_secs_f64(),
        report::summary(&rows)
    );
    Ok(())
}

/// The first argument that selects the S3 mode.
fn s3_flag() -> &'static str {
    #[cfg(feature = "s3")]
    return s3::FLAG;
    #[cfg(not(feature = "s3"))]
    "s3"
}
