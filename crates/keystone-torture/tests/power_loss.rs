//! Simulated power loss through redb's `StorageBackend`: a seeded workload runs on a
//! [`SimDisk`] (and its journal on a second one, losing power with it); power is lost after a random number of backend calls (so in the middle of an
//! operation, possibly in the middle of a commit or an fsync); every write made since the last
//! completed sync is then applied, dropped or torn at a sector boundary, chosen by the seed.
//! Half the seeds lose power a second time while the store recovers on reopen. The store must
//! then open, hold every acknowledged operation, hold the operation in flight wholly or not at
//! all, and verify clean (no leaked chunk, redb's integrity check passing).
//!
//! `POWER_LOSS_SEEDS=N` (default 150) and `POWER_LOSS_FIRST_SEED=S` (default 0) choose the
//! seeds; `scripts/reliability-long` runs thousands.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use keystone::Datastore;
use keystone_torture::sim::Disks;
use keystone_torture::workload::{self, Generator, Loc, Val, WOp};

const BUCKETS: [&str; 3] = workload::BUCKETS;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn builder() -> keystone::Builder {
    builder_with(keystone::Durability::Immediate)
}

fn builder_with(durability: keystone::Durability) -> keystone::Builder {
    // Small chunks and batches: a 96 KiB object spans many chunks and several staged batches.
    Datastore::builder().chunk_size(4096).inline_threshold(512).upload_batch_size(16 * 1024).durability(durability)
}

#[derive(Debug, Default)]
struct Totals {
    seeds: u64,
    acked: u64,
    in_flight_applied: u64,
    in_flight_not_applied: u64,
    pending_writes: u64,
    second_crashes: u64,
}

fn one_seed(seed: u64, journaled: bool, t: &mut Totals) -> Result<(), String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let disk = Disks::new(journaled);
    let db = disk.open(builder()).map_err(|e| format!("create: {e}"))?;
    for b in BUCKETS {
        db.create_bucket(b).map_err(|e| format!("create bucket: {e}"))?;
    }
    let mut model: BTreeMap<Loc, Val> = BTreeMap::new();
    let mut g = Generator::new(seed, 0, 0, 96 * 1024);
    disk.crash_after(rng.u64(1..=900));
    let mut in_flight: Vec<WOp> = Vec::new();
    for _ in 0..40 {
        let op = g.next_op();
        match workload::run(&db, &op) {
            Ok(()) => {
                if disk.crashed() {
                    // The call that lost power failed, yet the operation was acknowledged:
                    // fine only if it no longer needed the disk; it must then survive.
                }
                op.apply(&mut model);
                t.acked += 1;
            }
            Err(e) => {
                if !disk.crashed() {
                    return Err(format!("{op:?} failed without a fault: {e}"));
                }
                in_flight.push(op);
                break;
            }
        }
    }
    disk.crash_now();
    drop(db);
    let (mut image, pending) = disk.crash_images(&mut rng);
    t.pending_writes += pending as u64;
    if rng.bool() {
        // Lose power again while the store recovers (the journal's replay included).
        let d2 = image.disks();
        d2.crash_after(rng.u64(1..=40));
        if let Ok(db) = d2.open(builder()) {
            // Recovery finished before the crash point: keep writing until power goes.
            let _ = db.gc();
        }
        d2.crash_now();
        image = d2.crash_images(&mut rng).0;
        t.second_crashes += 1;
    }
    let db = image.disks().open(builder()).map_err(|e| format!("reopen after power loss: {e}"))?;
    let c = workload::check_recovered(&db, &mut model, &in_flight, &BUCKETS)?;
    t.in_flight_applied += c.in_flight_applied;
    t.in_flight_not_applied += c.in_flight_not_applied;
    keystone_torture::check_clean(&db)?;
    t.seeds += 1;
    Ok(())
}

#[test]
fn acknowledged_writes_survive_power_loss_at_any_point() {
    let first = env("POWER_LOSS_FIRST_SEED", 0);
    let n = env("POWER_LOSS_SEEDS", 150);
    for journaled in [true, false] {
        let mut t = Totals::default();
        let mut failures = Vec::new();
        for seed in first..first + n {
            if let Err(e) = one_seed(seed, journaled, &mut t) {
                failures.push(format!("seed {seed}: {e}"));
            }
        }
        println!("power loss (journal: {journaled}): {t:?}, failures {}", failures.len());
        assert!(failures.is_empty(), "{} of {n} seeds failed:\n{}", failures.len(), failures.join("\n"));
        assert!(t.in_flight_applied + t.in_flight_not_applied > 0, "no crash ever hit an operation");
    }
}

/// With `Durability::Relaxed` a crash may lose the latest acknowledged writes, but what
/// survives must be a prefix of them: the state after some acknowledged operation (or the
/// operation in flight, whole), never a mix, never a torn object.
fn one_relaxed_seed(seed: u64, journaled: bool) -> Result<usize, String> {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0xA5A5);
    let disk = Disks::new(journaled);
    let relaxed = || builder_with(keystone::Durability::Relaxed);
    let db = disk.open(relaxed()).map_err(|e| format!("create: {e}"))?;
    for b in BUCKETS {
        db.create_bucket(b).map_err(|e| format!("create bucket: {e}"))?;
    }
    db.gc().map_err(|e| format!("gc: {e}"))?; // a durable commit: the buckets are on disk
    let mut states: Vec<BTreeMap<Loc, Val>> = vec![BTreeMap::new()];
    let mut g = Generator::new(seed, 1, 0, 96 * 1024);
    disk.crash_after(rng.u64(1..=900));
    let mut in_flight = Vec::new();
    // Every state up to this index was made durable by a `gc` that returned Ok.
    let mut durable = 0;
    for i in 0..40 {
        let op = g.next_op();
        match workload::run(&db, &op) {
            Ok(()) => {
                let mut next = states.last().cloned().unwrap_or_default();
                op.apply(&mut next);
                states.push(next);
                if i % 8 == 7 && db.gc().is_ok() {
                    durable = states.len() - 1;
                }
            }
            Err(_) if disk.crashed() => {
                in_flight.push(op);
                break;
            }
            Err(e) => return Err(format!("{op:?} failed without a fault: {e}")),
        }
    }
    disk.crash_now();
    drop(db);
    let image = disk.crash_images(&mut rng).0;
    let db = image.disks().open(relaxed()).map_err(|e| format!("reopen: {e}"))?;
    // Longest surviving prefix first; the in-flight operation only counts after all of them.
    for (i, state) in states.iter().enumerate().rev().take(states.len() - durable) {
        let mut model = state.clone();
        let flight: &[WOp] = if i + 1 == states.len() { &in_flight } else { &[] };
        if workload::check_recovered(&db, &mut model, flight, &BUCKETS).is_ok() {
            keystone_torture::check_clean(&db)?;
            return Ok(states.len() - 1 - i);
        }
    }
    Err(format!(
        "the recovered store is not the state after any prefix of the acknowledged operations from {durable} (made durable by gc) on"
    ))
}

#[test]
fn relaxed_durability_loses_only_a_suffix_of_acknowledged_writes() {
    let n = env("POWER_LOSS_RELAXED_SEEDS", 60);
    let mut lost = 0;
    let mut failures = Vec::new();
    for seed in 0..n {
        match one_relaxed_seed(seed, seed % 2 == 0) {
            Ok(l) => lost += l,
            Err(e) => failures.push(format!("seed {seed}: {e}")),
        }
    }
    println!("relaxed power loss: {n} seeds, {lost} acknowledged operations lost (allowed: a suffix)");
    assert!(failures.is_empty(), "{} of {n} seeds failed:\n{}", failures.len(), failures.join("\n"));
}

/// A store of small objects (with a few chunked ones among them), loaded in random order and
/// thinned by deletes: what `compact` packs.
fn compact_fixture(disk: &Disks) -> Result<(Datastore, BTreeMap<String, Vec<u8>>), String> {
    let db = disk.open(builder()).map_err(|e| format!("create: {e}"))?;
    db.create_bucket("alpha").map_err(|e| format!("create bucket: {e}"))?;
    let mut model = BTreeMap::new();
    for batch in 0..10u32 {
        db.transaction(|tx| {
            let a = tx.bucket("alpha")?;
            for i in 0..40u32 {
                let j = (batch * 40 + i) * 157 % 400; // a permutation of 0..400
                let len = if j % 37 == 0 { 20_000 } else { (j as usize * 13) % 400 };
                let value: Vec<u8> = (0..len).map(|n| (n as u32 ^ j) as u8).collect();
                a.put_bytes(&format!("p{}/k{j:04}", j % 3), &value)?;
                model.insert(format!("p{}/k{j:04}", j % 3), value);
            }
            Ok::<_, keystone::Error>(())
        })
        .map_err(|e| format!("load: {e}"))?;
    }
    let a = db.bucket("alpha").map_err(|e| e.to_string())?;
    for j in (0..400).step_by(9) {
        let k = format!("p{}/k{j:04}", j % 3);
        a.delete(&k).map_err(|e| format!("delete {k}: {e}"))?;
        model.remove(&k);
    }
    Ok((db, model))
}

fn holds_exactly(db: &Datastore, model: &BTreeMap<String, Vec<u8>>) -> Result<(), String> {
    let a = db.bucket("alpha").map_err(|e| e.to_string())?;
    for (k, v) in model {
        match a.get_bytes(k) {
            Ok(got) if &got == v => {}
            Ok(_) => return Err(format!("{k} holds other bytes")),
            Err(e) => return Err(format!("{k}: {e}")),
        }
    }
    let listed: Vec<String> = a
        .list_iter(keystone::ListOptions::default())
        .map_err(|e| e.to_string())?
        .map(|e| match e {
            Ok(keystone::ListEntry::Object(o)) => Ok(o.key),
            Ok(keystone::ListEntry::Prefix(p)) => Ok(p),
            Err(e) => Err(e.to_string()),
        })
        .collect::<Result<_, _>>()?;
    if listed != model.keys().cloned().collect::<Vec<_>>() {
        return Err(format!("lists {} keys, holds {}", listed.len(), model.len()));
    }
    Ok(())
}

/// Power lost at any point of a `compact` — in its packing transactions, the table rewrite or
/// redb's compaction: after reopen every object is there, whole, every listing complete, and
/// the store verifies clean and compacts again. `POWER_LOSS_COMPACT_SEEDS=N` (default 30).
#[test]
fn power_loss_during_compact_loses_nothing() {
    // How many backend calls a whole compact takes, measured on an identical store.
    let disk = Disks::new(true);
    let (db, _) = compact_fixture(&disk).unwrap();
    let before = disk.mutating_calls();
    let report = db.compact().unwrap();
    assert!(report.packed_objects > 100, "{report:?}");
    let calls = disk.mutating_calls() - before;
    drop(db);

    let n = env("POWER_LOSS_COMPACT_SEEDS", 30);
    let mut failures = Vec::new();
    let (mut compacts_cut, mut compacts_done) = (0, 0);
    for seed in 0..n {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0xC0C0);
        let result = (|| -> Result<(), String> {
            let disk = Disks::new(seed % 2 == 0);
            let (db, model) = compact_fixture(&disk)?;
            disk.crash_after(rng.u64(1..=calls + 1));
            match db.compact() {
                Ok(_) => compacts_done += 1,
                Err(_) if disk.crashed() => compacts_cut += 1,
                Err(e) => return Err(format!("compact failed without a fault: {e}")),
            }
            disk.crash_now();
            drop(db);
            let image = disk.crash_images(&mut rng).0;
            let db = image.disks().open(builder()).map_err(|e| format!("reopen: {e}"))?;
            holds_exactly(&db, &model)?;
            keystone_torture::check_clean(&db)?;
            db.compact().map_err(|e| format!("compact after recovery: {e}"))?;
            holds_exactly(&db, &model)
        })();
        if let Err(e) = result {
            failures.push(format!("seed {seed}: {e}"));
        }
    }
    println!(
        "power loss during compact: {n} seeds over {calls} backend calls, {compacts_cut} cut, {compacts_done} done"
    );
    assert!(failures.is_empty(), "{} of {n} seeds failed:\n{}", failures.len(), failures.join("\n"));
    assert!(compacts_cut > 0, "no crash ever hit a compact");
}
