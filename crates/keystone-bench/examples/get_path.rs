//! W3's gets alone, for profiling: loads COUNT objects of 10 KiB ± 2 KiB (W3's data) into
//! Keystone and into raw redb (one table read through a shared snapshot, as the bench's `redb`
//! engine does), each with a cache that holds them, then times GETS random gets on each,
//! alternating ROUNDS times, and prints ns per get and the mean of each engine.
//!
//! A third engine, `redb-on-keystone`, is raw redb reading a Keystone store's own file (loaded
//! by Keystone, closed, opened with redb): the same B-tree, keys and records as Keystone's gets
//! read, without Keystone's per-get work (decoding the manifest, checking the CRC32C, its
//! layers). Keystone against it is that work; it against raw redb is the cost of the layout.
//! A fourth, `redb-crc`, is `redb-on-keystone` computing the CRC32C of each value it copied:
//! the lookup, the copy and the end-to-end check (computed by the implementation the library
//! picks for this CPU), with nothing else of Keystone's — the least a get that checks every
//! read can cost on this layout.
//! With a small COUNT (200) the data stays in the CPU's caches and the gaps are work alone.
//! With `ENGINE` given, loads and reads only that engine — run it under `perf record` to see a
//! get's parts without the load's.
//!
//! `cargo run --release -p keystone-bench --example get_path [-- COUNT GETS ROUNDS [ENGINE]]`
//! (defaults 100000, 1000000, 3)

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

#[path = "shared/library_crc.rs"]
mod shared;
use shared::library_crc;

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("objects");
/// Keystone's one table (crates/keystone/src/storage/redb).
const KEYSTONE_TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("keystone");

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

/// A Keystone store at `path` holding the objects, in bucket `bench`.
fn load_keystone(
    path: &Path,
    cache: usize,
    keys: &[String],
    body: impl Fn(usize) -> &'static [u8],
) -> anyhow::Result<keystone::Datastore> {
    let db = keystone::Datastore::builder().cache_size(cache).open(path)?;
    db.transaction(|tx| {
        let b = tx.create_bucket("bench")?;
        for (i, k) in keys.iter().enumerate() {
            b.put_bytes(k, body(i))?;
        }
        Ok::<_, keystone::Error>(())
    })?;
    Ok(db)
}

/// Times the gets of `order` through `get`, in ns per get.
fn time(order: &[usize], mut get: impl FnMut(usize) -> anyhow::Result<Vec<u8>>) -> anyhow::Result<f64> {
    let t = Instant::now();
    for &i in order {
        black_box(get(i)?);
    }
    Ok(t.elapsed().as_nanos() as f64 / order.len() as f64)
}

/// A raw redb get, the value copied out as Keystone's get returns it.
fn raw_get(t: &impl ReadableTable<&'static [u8], &'static [u8]>, k: &[u8]) -> anyhow::Result<Vec<u8>> {
    let v = t.get(k)?.ok_or_else(|| anyhow::anyhow!("missing"))?;
    Ok(v.value().to_vec())
}

fn main() -> anyhow::Result<()> {
    let (count, gets, rounds) = (arg(1, 100_000), arg(2, 1_000_000), arg(3, 3));
    let only = std::env::args().nth(4);
    let want = |e: &str| only.as_deref().is_none_or(|o| o == e);
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let lens: Vec<usize> = (0..count).map(|_| 8192 + (rng(&mut s) % 4097) as usize).collect();
    let pool: &'static [u8] = Vec::leak((0..16_384 + 4096).map(|_| rng(&mut s) as u8).collect());
    let order: Vec<usize> = (0..gets).map(|_| (rng(&mut s) % count as u64) as usize).collect();
    let keys: Vec<String> = (0..count).map(key).collect();
    let body = |i: usize| &pool[i % 4096..i % 4096 + lens[i]];
    let cache = 2 * count * 12_288 + (64 << 20);
    let dir = tempfile::tempdir()?;

    let ks = if want("keystone") {
        Some(load_keystone(&dir.path().join("s.keystone"), cache, &keys, body)?.bucket("bench")?)
    } else {
        None
    };
    let on_keystone = if want("redb-on-keystone") || want("redb-crc") {
        let path = dir.path().join("other.keystone");
        drop(load_keystone(&path, cache, &keys, body)?);
        Some(redb::Database::builder().set_cache_size(cache).create(&path)?)
    } else {
        None
    };
    // Keystone's record keys: the bucket's name, NUL, the object's key (data/keys.rs).
    let record_keys: Vec<Vec<u8>> = keys.iter().map(|k| [b"bench\0".as_slice(), k.as_bytes()].concat()).collect();
    let rdb = if want("redb") {
        let db = redb::Database::builder().set_cache_size(cache).create(dir.path().join("raw.redb"))?;
        let w = db.begin_write()?;
        {
            let mut t = w.open_table(TABLE)?;
            for (i, k) in keys.iter().enumerate() {
                t.insert(k.as_bytes(), body(i))?;
            }
        }
        w.commit()?;
        Some(db)
    } else {
        None
    };
    let open = |db: &redb::Database, t| -> anyhow::Result<redb::ReadOnlyTable<&'static [u8], &'static [u8]>> {
        Ok(db.begin_read()?.open_table(t)?)
    };
    let kt = on_keystone.as_ref().map(|db| open(db, KEYSTONE_TABLE)).transpose()?;
    let rd = rdb.as_ref().map(|db| open(db, TABLE)).transpose()?;
    rustix::fs::sync();
    let mut all: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for round in 0..=rounds {
        // Round 0 warms the caches and is not counted.
        let mut runs: Vec<(&str, f64)> = Vec::new();
        if let Some(b) = &ks {
            runs.push(("keystone", time(&order, |i| Ok(b.get_bytes(&keys[i])?))?));
        }
        if let Some(t) = kt.as_ref().filter(|_| want("redb-on-keystone")) {
            runs.push(("redb-on-keystone", time(&order, |i| raw_get(t, &record_keys[i]))?));
        }
        if let Some(t) = kt.as_ref().filter(|_| want("redb-crc")) {
            runs.push((
                "redb-crc",
                time(&order, |i| {
                    let v = raw_get(t, &record_keys[i])?;
                    black_box(library_crc(&v));
                    Ok(v)
                })?,
            ));
        }
        if let Some(t) = &rd {
            runs.push(("redb", time(&order, |i| raw_get(t, keys[i].as_bytes()))?));
        }
        for (name, ns) in runs.into_iter().filter(|_| round > 0) {
            println!("{name:<16} {ns:>6.0} ns/get");
            all.entry(name).or_default().push(ns);
        }
    }
    for (name, v) in &all {
        println!("mean {name:<16} {:>6.0} ns/get over {} rounds", v.iter().sum::<f64>() / v.len() as f64, v.len());
    }
    Ok(())
}
