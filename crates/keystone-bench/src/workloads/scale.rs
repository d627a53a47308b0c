//! W5 listing and space, W6 growth: one store per engine filled to a million small objects
//! over a thousand prefixes, probed for latency at each size on the way (W6), then listed,
//! thinned by deletes and compacted (W5).

use std::time::Instant;

use anyhow::{Result, bail};

use super::{Ctx, Rng, alternate, progress, rate, value_of};
use crate::engines::BenchEngine;
use crate::report::{Row, Target, percentile};

#[derive(Debug, Clone)]
pub struct Scale {
    /// Objects in the store at the end of the load.
    pub count: usize,
    pub prefixes: usize,
    pub size: usize,
    /// Objects deleted in W5.
    pub deletes: usize,
    /// Store sizes at which W6 measures latency.
    pub points: Vec<usize>,
    /// Durable single puts per W6 probe.
    pub probe_puts: usize,
    /// Random gets per W6 probe.
    pub probe_gets: usize,
}

fn key(i: usize, prefixes: usize) -> String {
    format!("p{:04}/o{:08}", i % prefixes, i / prefixes)
}

/// Per-operation latencies of `n` calls of `op`, microseconds: (p50, p99).
fn latencies(n: usize, mut op: impl FnMut(usize) -> Result<()>) -> Result<(f64, f64)> {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        op(i)?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok((percentile(&mut lat, 50.0), percentile(&mut lat, 99.0)))
}

/// Runs W6 (when `w6`) and W5 (when `w5`) over the same growing stores.
pub fn run(ctx: &Ctx, engines: &[String], p: &Scale, w5: bool, w6: bool) -> Result<Vec<Row>> {
    progress("W5/W6 scale");
    let stores = ctx.open_all("scale", engines)?;
    let value = Rng::new(5).bytes(p.size);
    let mut targets: Vec<usize> = if w6 { p.points.clone() } else { Vec::new() };
    if w5 {
        targets.push(p.count);
    }
    targets.sort_unstable();
    targets.dedup();
    let mut loaded = 0;
    // Bytes the user has stored (keys and values), the same for every engine.
    let mut user_bytes: u64 = 0;
    let mut extra = 0; // objects written by W6 probes
    let mut rows = Vec::new();
    let mut growth: Vec<(usize, Row, Row)> = Vec::new();
    for &target in &targets {
        progress(&format!(" loading to {target} objects"));
        for e in &stores {
            for start in (loaded..target).step_by(1000) {
                let items: Vec<(String, Vec<u8>)> =
                    (start..(start + 1000).min(target)).map(|i| (key(i, p.prefixes), value_of(&value, i))).collect();
                // Each load ends durable for every engine, and its write-back is done before
                // anything is timed.
                e.put_batch(&items, start + 1000 >= target)?;
            }
        }
        super::settle();
        user_bytes += (loaded..target).map(|i| (key(i, p.prefixes).len() + p.size) as u64).sum::<u64>();
        loaded = target;
        if w6 && p.points.contains(&target) {
            progress(&format!(" W6 probes at {target}"));
            let samples = alternate(ctx.reps, &stores, |rep, e| {
                let (p50, _) = latencies(p.probe_puts, |i| {
                    e.put(&format!("p{:04}/z{target:08}-{rep}-{i:05}", i % p.prefixes), &value)
                })?;
                Ok(p50)
            })?;
            for rep in 0..ctx.reps {
                for i in 0..p.probe_puts {
                    user_bytes +=
                        format!("p{:04}/z{target:08}-{rep}-{i:05}", i % p.prefixes).len() as u64 + p.size as u64;
                }
            }
            extra += ctx.reps * p.probe_puts;
            let put_row = Row::new(format!("W6 at {target}"), "durable put latency p50, µs", samples);
            // Other keys in each repetition (the same for every engine), so that a repetition
            // does not read what the one before brought into the cache.
            let probes: Vec<Vec<usize>> = (0..ctx.reps)
                .map(|rep| {
                    let mut rng = Rng::new(6 + target as u64 + 1_000_003 * rep as u64);
                    (0..p.probe_gets).map(|_| rng.below(target as u64) as usize).collect()
                })
                .collect();
            let samples = alternate(ctx.reps, &stores, |rep, e| {
                let probes = &probes[rep];
                let (p50, _) = latencies(probes.len(), |i| {
                    let v = e.get(&key(probes[i], p.prefixes))?;
                    if v.len() != p.size {
                        bail!("{} returned {} bytes", e.name(), v.len());
                    }
                    Ok(())
                })?;
                Ok(p50)
            })?;
            let get_row = Row::new(format!("W6 at {target}"), "get latency p50, µs", samples);
            growth.push((target, put_row, get_row));
        }
    }
    for (_, put, get) in &growth {
        rows.push(put.clone());
        rows.push(get.clone());
    }
    if let (Some(first), Some(last)) = (growth.first(), growth.last())
        && first.0 < last.0
    {
        {
            // Logarithmic growth: latency grows at most like log(n).
            let bound = (last.0 as f64).ln() / (first.0 as f64).ln();
            for (name, small, big) in [("put", &first.1, &last.1), ("get", &first.2, &last.2)] {
                let ratios: Vec<(String, Vec<f64>)> =
                    engines.iter().filter_map(|e| Some((e.clone(), vec![big.median(e)? / small.median(e)?]))).collect();
                rows.push(
                    Row::new(
                        format!("W6 growth {}→{}", first.0, last.0),
                        format!("{name} p50 at {} / at {} (log bound {bound:.2})", last.0, first.0),
                        ratios,
                    )
                    .target(Target::AtMost(bound)),
                );
            }
        }
    }
    if w5 {
        rows.extend(w5_rows(ctx, &stores, p, &value, loaded + extra, user_bytes)?);
    }
    drop(stores);
    ctx.clean("scale")?;
    Ok(rows)
}

/// Random gets timed after W5's compact.
const GETS_AFTER_COMPACT: usize = 20_000;

/// Pages of 1,000 keys per second listing every key (there must be `total`).
fn list_rate(ctx: &Ctx, stores: &[Box<dyn BenchEngine>], total: usize) -> Result<Vec<(String, Vec<f64>)>> {
    alternate(ctx.reps, stores, |_, e| {
        let t = Instant::now();
        let (mut pages, mut seen) = (0usize, 0usize);
        let mut after: Option<String> = None;
        loop {
            let page = e.list(after.as_deref(), 1000)?;
            let Some(last) = page.last() else { break };
            seen += page.len();
            pages += 1;
            after = Some(last.clone());
        }
        if seen != total {
            bail!("{} listed {seen} keys, expected {total}", e.name());
        }
        Ok(pages as f64 / t.elapsed().as_secs_f64())
    })
}

fn w5_rows(
    ctx: &Ctx,
    stores: &[Box<dyn BenchEngine>],
    p: &Scale,
    value: &[u8],
    total: usize,
    user_bytes: u64,
) -> Result<Vec<Row>> {
    progress(" W5 listing");
    let label = format!("W5 {} objs", p.count);
    let list = list_rate(ctx, stores, total)?;
    let mut rows = vec![Row::new(label.clone(), format!("list pages of 1,000 keys/s ({} prefixes)", p.prefixes), list)];
    let space = |e: &dyn BenchEngine, bytes: u64| -> Result<f64> { Ok(e.disk_bytes()? as f64 / bytes as f64) };
    let one = |f: &dyn Fn(&dyn BenchEngine) -> Result<f64>| -> Result<Vec<(String, Vec<f64>)>> {
        stores.iter().map(|e| Ok((e.name().to_owned(), vec![f(e.as_ref())?]))).collect()
    };
    rows.push(Row::new(label.clone(), "file size / bytes stored, after load", one(&|e| space(e, user_bytes))?));
    progress(" W5 deletes");
    let step = (p.count / p.deletes.max(1)).max(1);
    let victims: Vec<String> = (0..p.count).step_by(step).take(p.deletes).map(|i| key(i, p.prefixes)).collect();
    let removed: u64 = victims.iter().map(|k| (k.len() + p.size) as u64).sum();
    let deletes = one(&|e| {
        rate(victims.len(), || {
            for batch in victims.chunks(1000) {
                e.delete_batch(batch)?;
            }
            Ok(())
        })
    })?;
    rows.push(Row::new(label.clone(), format!("delete {} in txns of 1,000, deletes/s", victims.len()), deletes));
    let left = user_bytes - removed;
    rows.push(Row::new(label.clone(), "file size / bytes stored, after deletes", one(&|e| space(e, left))?));
    progress(" W5 compact");
    let compacted = one(&|e| {
        e.compact()?;
        space(e, left)
    })?;
    rows.push(
        Row::new(label.clone(), "file size / bytes stored, after deletes + compact", compacted)
            .target(Target::AtMost(1.3)),
    );
    // What compacting (in Keystone: packing small objects) does to reads.
    progress(" W5 reads after compact");
    let list = list_rate(ctx, stores, total - victims.len())?;
    rows.push(Row::new(label.clone(), "list pages of 1,000 keys/s, after compact", list));
    let mut rng = Rng::new(7);
    let probes: Vec<usize> = (0..GETS_AFTER_COMPACT)
        .map(|_| rng.below(p.count as u64) as usize)
        .filter(|i| i % step != 0 || i / step >= p.deletes)
        .collect();
    let keys: Vec<String> = probes.iter().map(|&i| key(i, p.prefixes)).collect();
    let gets = alternate(ctx.reps, stores, |_, e| {
        rate(keys.len(), || {
            for k in &keys {
                e.get(k)?;
            }
            Ok(())
        })
    })?;
    // Checked once, after the timed gets (before them, it would warm the first repetition's
    // cache): packed by `compact`, the objects are read through another path.
    for e in stores {
        for (&i, k) in probes.iter().zip(&keys) {
            if e.get(k)? != value_of(value, i) {
                bail!("{}: {k} read other bytes than were stored, after compact", e.name());
            }
        }
    }
    rows.push(Row::new(label, "random gets/s, after compact", gets));
    Ok(rows)
}
