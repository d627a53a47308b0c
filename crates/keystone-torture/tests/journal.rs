//! The redo journal alone, byte by byte: random writes, resizes and syncs go through the
//! journal to a simulated store file, power is lost on both disks at a random call (each write
//! since a disk's last sync applied, dropped or torn), sometimes again during the replay; after
//! the replay every byte of the store, and its length, must hold its value at the last sync
//! that returned `Ok`, unless a write or resize made after that sync touched it — what a plain
//! file gives after a power loss, which is all redb's recovery assumes.
//!
//! `JOURNAL_SEEDS=N` (default 100) and `JOURNAL_FIRST_SEED=S` choose the seeds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use keystone::redb_backend::{StorageBackend, journaled};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use keystone_torture::sim::{Call, Fault, SimDisk};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// What the store must hold after a power loss.
struct Expected {
    /// The store at the last sync that returned `Ok`.
    synced: Vec<u8>,
    /// Bytes written since (or made to exist or vanish by a resize since).
    touched: Vec<bool>,
    /// The lengths the file may have after a power loss: ranges. A resize since the sync may
    /// be lost while a write after it lands, and a write torn at a sector boundary leaves the
    /// file as long as its last sector that landed: a write past the shortest length the file
    /// may have (`floor`) may end it anywhere up to its own end.
    lengths: Vec<(usize, usize)>,
    /// The shortest length the file may have: at the sync, or set since.
    floor: usize,
}

impl Expected {
    fn touch(&mut self, from: usize, to: usize) {
        if self.touched.len() < to {
            self.touched.resize(to, false);
        }
        self.touched[from..to].fill(true);
    }

    fn at_sync(synced: Vec<u8>) -> Expected {
        let n = synced.len();
        Expected { synced, touched: Vec::new(), lengths: vec![(n, n)], floor: n }
    }

    fn check(&self, got: &[u8]) -> Result<(), String> {
        if !self.lengths.iter().any(|&(lo, hi)| (lo..=hi).contains(&got.len())) {
            return Err(format!(
                "length {} after replay, none the file was given since ({:?})",
                got.len(),
                self.lengths
            ));
        }
        let n = got.len().max(self.synced.len());
        for i in 0..n {
            if self.touched.get(i).copied().unwrap_or(false) {
                continue;
            }
            if got.get(i) != self.synced.get(i) {
                return Err(format!(
                    "byte {i} is {:?} after replay, {:?} at the last sync, and nothing wrote it since",
                    got.get(i),
                    self.synced.get(i)
                ));
            }
        }
        Ok(())
    }
}

/// Runs random operations until power is lost (or `ops` run out); returns what the store must
/// hold.
fn run(rng: &mut fastrand::Rng, store: &SimDisk, journal: &SimDisk, ops: usize) -> Result<Expected, String> {
    let mut expected = Expected::at_sync(store.live_image());
    let j = match journaled(store.clone(), journal.clone()) {
        Ok(j) => j,
        // Power lost while the journal was being set up: the store is as it was.
        Err(_) if store.crashed() => return Ok(expected),
        Err(e) => return Err(format!("open: {e}")),
    };
    let mut failed = false;
    for _ in 0..ops {
        let len = store.live_len();
        match rng.u8(0..10) {
            0..=5 => {
                // Mostly small writes; now and then one past the end or larger than a record.
                let n = match rng.u8(0..20) {
                    0 => rng.usize(1_000_000..1_200_000),
                    1..=3 => rng.usize(20_000..300_000),
                    _ => rng.usize(1..9_000),
                };
                let at = rng.usize(0..=len + len / 8 + 1);
                let byte = rng.u8(1..);
                let r = j.write(at as u64, &vec![byte; n]);
                // A failed write may have written some of it.
                expected.touch(at, at + n);
                if at + n > len {
                    expected.touch(len, at + n);
                }
                if at + n > expected.floor {
                    expected.lengths.push((expected.floor, at + n));
                }
                if r.is_err() {
                    failed = true;
                    break;
                }
            }
            6 => {
                let new = rng.usize(0..=len + 200_000);
                let r = j.set_len(new as u64);
                expected.lengths.push((new, new));
                expected.floor = expected.floor.min(new);
                expected.touch(new.min(len), new.max(len));
                if r.is_err() {
                    failed = true;
                    break;
                }
            }
            _ => match j.sync_data() {
                Ok(()) => expected = Expected::at_sync(store.live_image()),
                Err(_) => {
                    failed = true;
                    if !store.crashed() {
                        // An injected failure: every later sync must fail too.
                        if j.sync_data().is_ok() {
                            return Err("a sync succeeded after a failed one".into());
                        }
                    }
                    break;
                }
            },
        }
    }
    // redb closes the backend after a failure too; a clean close checkpoints.
    let closed = j.close();
    if !failed && !store.crashed() && closed.is_ok() {
        expected = Expected::at_sync(store.live_image());
    }
    Ok(expected)
}

fn one_seed(seed: u64) -> Result<&'static str, String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let base: Vec<u8> = (0..rng.usize(0..300_000)).map(|i| (i % 251) as u8).collect();
    let (store, journal) = SimDisk::pair((base, Vec::new()));
    let what = match rng.u8(0..8) {
        0 => {
            // A failure of a sync or write of either file, then power lost a little later.
            let call = if rng.bool() { Call::Sync } else { Call::Write };
            let disk = if rng.bool() { &journal } else { &store };
            disk.arm(Fault { call, nth: rng.u64(2..40), forever: false });
            store.crash_after(rng.u64(1..400));
            "fault"
        }
        _ => {
            store.crash_after(rng.u64(1..600));
            "crash"
        }
    };
    let expected = run(&mut rng, &store, &journal, 300)?;
    store.crash_now();
    let mut images = (store.crash_image(rng.u64(..)).0, journal.crash_image(rng.u64(..)).0);
    if rng.u8(0..3) == 0 {
        // Power lost again during the replay.
        let (s2, j2) = SimDisk::pair(images.clone());
        s2.crash_after(rng.u64(1..30));
        let _ = journaled(s2.clone(), j2.clone());
        s2.crash_now();
        images = (s2.crash_image(rng.u64(..)).0, j2.crash_image(rng.u64(..)).0);
    }
    let (s3, j3) = SimDisk::pair(images);
    let replayed = journaled(s3.clone(), j3).map_err(|e| format!("replay: {e}"))?;
    drop(replayed);
    expected.check(&s3.live_image())?;
    Ok(what)
}

#[test]
fn after_a_replay_the_store_holds_every_synced_byte() {
    let first = env("JOURNAL_FIRST_SEED", 0);
    let n = env("JOURNAL_SEEDS", 100);
    let mut failures = Vec::new();
    let (mut faults, mut crashes) = (0, 0);
    for seed in first..first + n {
        match one_seed(seed) {
            Ok("fault") => faults += 1,
            Ok(_) => crashes += 1,
            Err(e) => failures.push(format!("seed {seed}: {e}")),
        }
    }
    println!("journal: {crashes} crashes, {faults} with a fault first, {} failures", failures.len());
    assert!(failures.is_empty(), "{} of {n} seeds failed:\n{}", failures.len(), failures.join("\n"));
}

/// Writes made by another thread while syncs run (as redb's readers write pages back): every
/// write that returned before a sync began is in the store after a power loss, if that sync
/// returned `Ok`. Each write goes to its own 4 KiB slot, never written again.
fn one_concurrent_seed(seed: u64) -> Result<(), String> {
    const SLOT: usize = 4096;
    const SLOTS: usize = 400;
    let mut rng = fastrand::Rng::with_seed(seed ^ 0xC0);
    let (store, journal) = SimDisk::pair((vec![0; SLOT * SLOTS], Vec::new()));
    let j = Arc::new(journaled(store.clone(), journal.clone()).map_err(|e| format!("open: {e}"))?);
    store.crash_after(rng.u64(20..1500));
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (j, done, stop) = (j.clone(), done.clone(), stop.clone());
        std::thread::spawn(move || {
            for slot in 0..SLOTS {
                if stop.load(Ordering::Acquire) || j.write((slot * SLOT) as u64, &[slot as u8 | 1; SLOT]).is_err() {
                    return;
                }
                done.store(slot + 1, Ordering::Release);
                // Now and then a write too large for a record, past the slots: the next sync
                // checkpoints while this thread goes on writing.
                if slot % 40 == 39 && j.write((SLOT * SLOTS) as u64, &vec![7; 1_100_000]).is_err() {
                    return;
                }
            }
        })
    };
    // Slots `..durable` were written before a sync that returned Ok began.
    let mut durable = 0;
    loop {
        let before = done.load(Ordering::Acquire);
        match j.sync_data() {
            Ok(()) => durable = before,
            Err(_) => break,
        }
        if before == SLOTS {
            break;
        }
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Release);
    writer.join().map_err(|_| "the writer panicked".to_string())?;
    store.crash_now();
    let images = (store.crash_image(rng.u64(..)).0, journal.crash_image(rng.u64(..)).0);
    let (s2, j2) = SimDisk::pair(images);
    drop(journaled(s2.clone(), j2).map_err(|e| format!("replay: {e}"))?);
    let got = s2.live_image();
    for slot in 0..durable {
        if got[slot * SLOT..(slot + 1) * SLOT].iter().any(|b| *b != slot as u8 | 1) {
            return Err(format!("slot {slot} lost ({durable} written before the last successful sync)"));
        }
    }
    Ok(())
}

#[test]
fn writes_made_while_a_sync_runs_are_in_exactly_one_record() {
    let n = env("JOURNAL_SEEDS", 100) / 2;
    let failures: Vec<String> =
        (0..n).filter_map(|seed| one_concurrent_seed(seed).err().map(|e| format!("seed {seed}: {e}"))).collect();
    assert!(failures.is_empty(), "{} of {n} seeds failed:\n{}", failures.len(), failures.join("\n"));
}
