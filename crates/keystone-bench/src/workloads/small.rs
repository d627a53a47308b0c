//! W1 small durable puts, W2 batched puts, W3 random gets.

use anyhow::{Result, bail};

use super::{Ctx, Rng, alternate, progress, rate};
use crate::engines::BenchEngine;
use crate::report::{Row, Target};

#[derive(Debug, Clone)]
pub struct W1 {
    /// Puts per timed run (all threads together).
    pub puts: usize,
    pub size: usize,
    pub threads: usize,
}

/// W1: 4 KiB objects, each acknowledged only when durable; 1 thread and `threads` threads.
pub fn w1(ctx: &Ctx, engines: &[String], p: &W1) -> Result<Vec<Row>> {
    progress("W1 small durable puts");
    let stores = ctx.open_all("w1", engines)?;
    let value = Rng::new(1).bytes(p.size);
    let mut rows = Vec::new();
    for threads in [1, p.threads] {
        progress(&format!(" {threads} thread(s)"));
        for e in &stores {
            e.prepare(threads)?;
        }
        // Writes per commit of each run, for engines with group commit (read outside the timing).
        let mut grouped: Vec<(String, Vec<f64>)> = Vec::new();
        let samples = alternate(ctx.reps, &stores, |rep, e| {
            let per = p.puts.div_ceil(threads);
            let before = e.group_commits();
            let r = rate(per * threads, || {
                std::thread::scope(|s| {
                    let handles: Vec<_> = (0..threads)
                        .map(|t| {
                            let value = &value;
                            s.spawn(move || {
                                for i in 0..per {
                                    e.put(&format!("w1-{threads}-{rep}-{t}-{i:07}"), value)?;
                                }
                                Ok::<_, anyhow::Error>(())
                            })
                        })
                        .collect();
                    for h in handles {
                        h.join().map_err(|_| anyhow::anyhow!("a writer thread panicked"))??;
                    }
                    Ok(())
                })
            })?;
            if let (Some((c0, w0)), Some((c1, w1))) = (before, e.group_commits())
                && c1 > c0
            {
                let per_commit = (w1 - w0) as f64 / (c1 - c0) as f64;
                match grouped.iter_mut().find(|(n, _)| n == e.name()) {
                    Some((_, v)) => v.push(per_commit),
                    None => grouped.push((e.name().to_owned(), vec![per_commit])),
                }
            }
            Ok(r)
        })?;
        let min = if threads == 1 { 0.9 } else { 4.0 };
        rows.push(
            Row::new(format!("W1 {threads} thr"), format!("durable {} KiB puts/s", p.size / 1024), samples)
                .target(Target::Ratio { baseline: "redb", min }),
        );
        if !grouped.is_empty() {
            rows.push(Row::new(format!("W1 {threads} thr"), "puts per durable commit (group commit)", grouped));
        }
    }
    drop(stores);
    ctx.clean("w1")?;
    Ok(rows)
}

#[derive(Debug, Clone)]
pub struct W2 {
    pub count: usize,
    pub batch: usize,
    pub size: usize,
}

/// W2: `count` objects of `size` bytes in durable transactions of `batch`.
pub fn w2(ctx: &Ctx, engines: &[String], p: &W2) -> Result<Vec<Row>> {
    progress("W2 batched puts");
    let mut rng = Rng::new(2);
    let values: Vec<Vec<u8>> = (0..p.batch.max(1)).map(|_| rng.bytes(p.size)).collect();
    // The batches are built before the clock starts; each run writes into an empty store.
    let batches: Vec<Vec<(String, Vec<u8>)>> = (0..p.count)
        .step_by(p.batch.max(1))
        .map(|done| {
            let n = p.batch.max(1).min(p.count - done);
            (0..n).map(|i| (format!("w2-{:08}", done + i), values[i].clone())).collect()
        })
        .collect();
    let samples = super::alternate_fresh(ctx, "w2", engines, |_, e| {
        rate(p.count, || {
            for items in &batches {
                e.put_batch(items, true)?;
            }
            Ok(())
        })
    })?;
    Ok(vec![
        Row::new("W2", format!("{} × {} KiB in txns of {}, puts/s", p.count, p.size / 1024, p.batch), samples)
            .target(Target::Ratio { baseline: "redb", min: 0.9 }),
    ])
}

#[derive(Debug, Clone)]
pub struct W3 {
    pub count: usize,
    pub size: usize,
    pub jitter: usize,
    pub threads: usize,
}

/// W3: `count` objects of `size ± jitter` bytes, read in random order from a warm cache.
pub fn w3(ctx: &Ctx, engines: &[String], p: &W3) -> Result<Vec<Row>> {
    progress("W3 random gets (loading)");
    let stores = ctx.open_all("w3", engines)?;
    let mut rng = Rng::new(3);
    let lens: Vec<usize> =
        (0..p.count).map(|_| p.size - p.jitter + rng.below(2 * p.jitter as u64 + 1) as usize).collect();
    let pool = rng.bytes(p.size + p.jitter + 4096);
    let key = |i: usize| format!("w3-{i:08}");
    for e in &stores {
        for start in (0..p.count).step_by(1000) {
            let items: Vec<(String, Vec<u8>)> = (start..(start + 1000).min(p.count))
                .map(|i| (key(i), pool[i % 4096..i % 4096 + lens[i]].to_vec()))
                .collect();
            // The load ends durable for every engine (raw redb's non-durable commits would
            // otherwise be flushed by the first durable one, inside a timed run).
            e.put_batch(&items, start + 1000 >= p.count)?;
        }
    }
    let mut order: Vec<usize> = (0..p.count).collect();
    rng.shuffle(&mut order);
    let read_all = |e: &dyn BenchEngine, threads: usize| -> Result<f64> {
        rate(order.len(), || {
            std::thread::scope(|s| {
                let per = order.len().div_ceil(threads.max(1));
                let handles: Vec<_> = order
                    .chunks(per.max(1))
                    .map(|part| {
                        let (lens, key) = (&lens, &key);
                        s.spawn(move || {
                            for &i in part {
                                let v = e.get(&key(i))?;
                                if v.len() != lens[i] {
                                    bail!("{}: {} read {} bytes, stored {}", e.name(), key(i), v.len(), lens[i]);
                                }
                            }
                            Ok(())
                        })
                    })
                    .collect();
                for h in handles {
                    h.join().map_err(|_| anyhow::anyhow!("a reader thread panicked"))??;
                }
                Ok(())
            })
        })
    };
    progress(" syncing, warming caches");
    super::settle();
    // The warming pass, untimed, also checks every object's bytes (the timed ones check
    // lengths only, so that a comparison adds nothing to what is measured).
    for e in &stores {
        for &i in &order {
            let v = e.get(&key(i))?;
            if v != pool[i % 4096..i % 4096 + lens[i]] {
                bail!(
                    "{}: {} read other bytes than were stored ({} bytes, stored {})",
                    e.name(),
                    key(i),
                    v.len(),
                    lens[i]
                );
            }
        }
    }
    let mut rows = Vec::new();
    for threads in [1, p.threads] {
        progress(&format!(" {threads} thread(s)"));
        for e in &stores {
            e.prepare(threads)?;
        }
        let samples = alternate(ctx.reps, &stores, |_, e| read_all(e, threads))?;
        rows.push(
            Row::new(
                format!("W3 {threads} thr"),
                format!("gets/s, {} × {}±{} KiB", p.count, p.size / 1024, p.jitter / 1024),
                samples,
            )
            .target(Target::Ratio { baseline: "files", min: 1.3 })
            .target(Target::Ratio { baseline: "sqlite", min: 1.0 })
            .target(Target::Ratio { baseline: "redb", min: 0.9 }),
        );
    }
    drop(stores);
    ctx.clean("w3")?;
    Ok(rows)
}
