//! W3's gets alone, for profiling: loads COUNT objects of 10 KiB ± 2 KiB (W3's data) into
//! Keystone and into raw redb (one table read through a shared snapshot, as the bench's `redb`
//! engine does), each with a cache that holds them, then times GETS random gets on each,
//! alternating ROUNDS times, and prints ns per get. With `ENGINE` given, loads and reads only
//! that engine — run it under `perf record` to see a get's parts without the load's.
//!
//! `cargo run --release -p keystone-bench --example get_path [-- COUNT GETS ROUNDS [ENGINE]]`
//! (defaults 100000, 1000000, 3)

use std::hint::black_box;
use std::time::Instant;

use redb::{ReadableDatabase, TableDefinition};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("objects");

fn rng(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn key(i: usize) -> String {
    format!("w3-{i:08}")
}

fn arg(n: usize, default: usize) -> usize {
    std::env::args().nth(n).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let (count, gets, rounds) = (arg(1, 100_000), arg(2, 1_000_000), arg(3, 3));
    let only = std::env::args().nth(4);
    let want = |e: &str| only.as_deref().is_none_or(|o| o == e);
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let lens: Vec<usize> = (0..count).map(|_| 8192 + (rng(&mut s) % 4097) as usize).collect();
    let pool: Vec<u8> = (0..16_384 + 4096).map(|_| rng(&mut s) as u8).collect();
    let order: Vec<usize> = (0..gets).map(|_| (rng(&mut s) % count as u64) as usize).collect();
    let keys: Vec<String> = (0..count).map(key).collect();
    let cache = 2 * count * 12_288 + (64 << 20);
    let dir = tempfile::tempdir()?;

    let ks = if want("keystone") {
        let db = keystone::Datastore::builder().cache_size(cache).open(dir.path().join("s.keystone"))?;
        db.transaction(|tx| {
            let b = tx.create_bucket("bench")?;
            for (i, k) in keys.iter().enumerate() {
                b.put_bytes(k, &pool[i % 4096..i % 4096 + lens[i]])?;
            }
            Ok::<_, keystone::Error>(())
        })?;
        Some(db.bucket("bench")?)
    } else {
        None
    };
    let rdb = if want("redb") {
        let db = redb::Database::builder().set_cache_size(cache).create(dir.path().join("raw.redb"))?;
        let w = db.begin_write()?;
        {
            let mut t = w.open_table(TABLE)?;
            for (i, k) in keys.iter().enumerate() {
                t.insert(k.as_bytes(), &pool[i % 4096..i % 4096 + lens[i]])?;
            }
        }
        w.commit()?;
        Some(db)
    } else {
        None
    };
    let rd = match &rdb {
        Some(db) => Some(db.begin_read()?.open_table(TABLE)?),
        None => None,
    };
    rustix::fs::sync();
    for round in 0..=rounds {
        // Round 0 warms the caches and is not printed.
        if let Some(b) = &ks {
            let t = Instant::now();
            for &i in &order {
                black_box(b.get_bytes(&keys[i])?);
            }
            if round > 0 {
                println!("keystone {:.0} ns/get", t.elapsed().as_nanos() as f64 / gets as f64);
            }
        }
        if let Some(t) = &rd {
            let start = Instant::now();
            for &i in &order {
                let v = t.get(keys[i].as_bytes())?.ok_or_else(|| anyhow::anyhow!("missing"))?;
                black_box(v.value().to_vec());
            }
            if round > 0 {
                println!("redb     {:.0} ns/get", start.elapsed().as_nanos() as f64 / gets as f64);
            }
        }
    }
    Ok(())
}
