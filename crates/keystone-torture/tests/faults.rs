//! I/O errors: for each public write operation, the Nth `write`, `sync_data` or `set_len`
//! that operation makes fails — once, or for ever after — for every N the operation reaches.
//! The call must return an error (or, if it returns `Ok`, its write must be durable); the
//! handle must refuse writes after a failed sync; and the store reopened — from the disk as the
//! kernel left it and from a power loss right after — must equal the state before or after the
//! operation (after, if it was acknowledged) and verify clean.
//!
//! `FAULTS_MAX_N=N` (default 24) caps how many call positions are stepped per operation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use keystone::redb_backend::StorageBackend;
use keystone::{CompleteOptions, CompletedPart, Datastore, Error, ObjectMeta, PutOptions};
use keystone_torture::sim::{Call, Fault, SimDisk};
use keystone_torture::{Content, Dump, dump};

fn builder() -> keystone::Builder {
    Datastore::builder().chunk_size(4096).inline_threshold(512).upload_batch_size(16 * 1024)
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

type OpFn = fn(&Datastore) -> Result<(), Error>;

fn big(seed: u64, len: u64) -> impl Read {
    Content::new(seed, len)
}

/// Every public write operation, each as one call.
fn operations() -> Vec<(&'static str, OpFn)> {
    vec![
        ("put inline", |db| db.bucket("alpha")?.put_bytes("small", b"hello").map(drop)),
        ("put chunked", |db| db.bucket("alpha")?.put_bytes("mid", Content::bytes(1, 9000)).map(drop)),
        ("put_reader staged", |db| {
            db.bucket("alpha")?.put_reader("large", big(2, 70_000), PutOptions::default()).map(drop)
        }),
        ("overwrite large", |db| {
            db.bucket("alpha")?.put_reader("base-large", big(3, 40_000), PutOptions::default()).map(drop)
        }),
        ("delete", |db| db.bucket("alpha")?.delete("base-large")),
        ("copy", |db| db.bucket("alpha")?.copy("base-large", "copied").map(drop)),
        ("transaction", |db| {
            db.transaction(|tx| {
                tx.bucket("alpha")?.put_bytes("t1", Content::bytes(4, 5000))?;
                tx.bucket("beta")?.put_bytes("t2", b"two")?;
                tx.bucket("alpha")?.delete("base-small")?;
                Ok::<_, Error>(())
            })
        }),
        ("create bucket", |db| db.create_bucket("gamma").map(drop)),
        ("delete bucket", |db| db.delete_bucket("beta")),
        ("multipart", |db| {
            let b = db.bucket("alpha")?;
            let id = b.create_upload("mp", ObjectMeta::default())?;
            let p1 = b.upload_part(&id, 1, big(5, 20_000))?;
            let p2 = b.upload_part(&id, 2, big(6, 3000))?;
            let parts =
                [CompletedPart { part_number: 1, etag: p1.etag }, CompletedPart { part_number: 2, etag: p2.etag }];
            b.complete_upload(&id, &parts, &CompleteOptions::default()).map(drop)
        }),
        ("gc", |db| db.gc().map(drop)),
    ]
}

/// A store with two buckets and a few objects, cleanly closed.
fn base_image() -> Vec<u8> {
    let disk = SimDisk::new();
    let db = builder().open_backend(disk.clone()).unwrap();
    let a = db.create_bucket("alpha").unwrap();
    let b = db.create_bucket("beta").unwrap();
    a.put_bytes("base-small", b"base").unwrap();
    a.put_reader("base-large", big(7, 50_000), PutOptions::default()).unwrap();
    b.put_bytes("b1", Content::bytes(8, 2000)).unwrap();
    drop((a, b, db));
    disk.live_image()
}

fn state(image: Vec<u8>) -> Result<Dump, String> {
    let db = builder().open_backend(SimDisk::from_image(image)).map_err(|e| format!("reopen: {e}"))?;
    let d = dump(&db).map_err(|e| format!("dump: {e}"))?;
    keystone_torture::check_clean(&db)?;
    Ok(d)
}

#[derive(Debug, Default)]
struct Totals {
    cases: u64,
    injected: u64,
    errors_returned: u64,
    ok_despite_fault: u64,
    /// Writes the same handle accepted (and that then proved durable) after a failure.
    accepted_after_fault: u64,
}

fn one_case(
    base: &[u8],
    op: OpFn,
    fault: Fault,
    before: &Dump,
    after: &Dump,
    seed: u64,
    t: &mut Totals,
) -> Result<(), String> {
    let disk = SimDisk::from_image(base.to_vec());
    let db = builder().open_backend(disk.clone()).map_err(|e| format!("open: {e}"))?;
    disk.arm(fault);
    let res = op(&db);
    let fired = disk.injected() > 0;
    t.injected += disk.injected();
    if !fired {
        return Ok(()); // the operation made fewer calls this time
    }
    t.cases += 1;
    match &res {
        Err(_) => t.errors_returned += 1,
        Ok(()) => t.ok_despite_fault += 1,
    }
    // The disk works again. After a failed sync the handle must refuse writes (no silent
    // retry of fsync); after other failures a write it accepts must be durable.
    disk.disarm();
    let extra = db.bucket("alpha").and_then(|b| b.put_bytes("after-fault", b"x"));
    t.accepted_after_fault += u64::from(extra.is_ok());
    if res.is_err() && fault.call == Call::Sync && extra.is_ok() {
        return Err("a write was accepted after a failed sync on the same handle".into());
    }
    drop(db);
    disk.disarm();
    let allowed: &[&Dump] = if res.is_ok() { &[after] } else { &[before, after] };
    for (what, image) in [("as left", disk.live_image()), ("after power loss", disk.crash_image(seed).0)] {
        let mut seen = state(image).map_err(|e| format!("{what}: {e}"))?;
        let extra_seen = seen.get_mut("alpha").and_then(|a| a.remove("after-fault"));
        if extra.is_ok() && extra_seen.as_deref() != Some(&b"x"[..]) {
            return Err(format!("{what}: a write acknowledged after the fault was lost"));
        }
        if !allowed.contains(&&seen) {
            let which = if res.is_ok() { "the acknowledged state" } else { "the state before or after" };
            return Err(format!("{what}: store is not {which} (result {res:?})"));
        }
    }
    Ok(())
}

#[test]
fn every_operation_survives_io_errors_at_every_call() {
    let base = base_image();
    let max_n = env("FAULTS_MAX_N", 24);
    let before = state(base.clone()).unwrap();
    let mut totals = Totals::default();
    let mut failures = Vec::new();
    for (name, op) in operations() {
        // Probe: how many calls of each kind the operation makes, and the state after it.
        let disk = SimDisk::from_image(base.clone());
        let db = builder().open_backend(disk.clone()).unwrap();
        let start = [Call::Write, Call::Sync, Call::SetLen].map(|c| disk.calls(c));
        op(&db).unwrap_or_else(|e| panic!("{name} without faults: {e}"));
        let made = [Call::Write, Call::Sync, Call::SetLen].map(|c| disk.calls(c));
        drop(db);
        let after = state(disk.live_image()).unwrap();
        for (i, call) in [Call::Write, Call::Sync, Call::SetLen].into_iter().enumerate() {
            let n_calls = made[i] - start[i];
            // Step through every position up to max_n, then sample the rest.
            let positions: Vec<u64> = if n_calls <= max_n {
                (1..=n_calls).collect()
            } else {
                (1..=max_n).map(|k| 1 + (k - 1) * (n_calls - 1) / (max_n - 1)).collect()
            };
            for nth in positions {
                for forever in [false, true] {
                    let fault = Fault { call, nth, forever };
                    if let Err(e) = one_case(&base, op, fault, &before, &after, nth, &mut totals) {
                        failures.push(format!("{name}, {fault:?}: {e}"));
                    }
                }
            }
        }
    }
    println!("faults: {totals:?}, failures {}", failures.len());
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert!(totals.cases > 100, "too few faults fired: {totals:?}");
}

#[test]
fn handle_refuses_writes_after_a_failed_sync_until_reopened() {
    let disk = SimDisk::from_image(base_image());
    let db = builder().open_backend(disk.clone()).unwrap();
    let a = db.bucket("alpha").unwrap();
    disk.arm(Fault { call: Call::Sync, nth: 1, forever: false });
    assert!(a.put_bytes("k1", b"v1").is_err(), "a put whose fsync failed was acknowledged");
    // The disk works again, but the handle must not retry: fsync after a failure proves nothing.
    let again = a.put_bytes("k2", b"v2");
    assert!(matches!(again, Err(Error::Poisoned | Error::Storage { .. })), "got {again:?}");
    assert!(db.transaction(|tx| tx.bucket("alpha")?.put_bytes("k3", b"v3").map(drop)).is_err());
    drop((a, db));
    let db = builder().open_backend(SimDisk::from_image(disk.live_image())).unwrap();
    let a = db.bucket("alpha").unwrap();
    a.put_bytes("k2", b"v2").unwrap();
    assert_eq!(a.get_bytes("k2").unwrap(), b"v2");
    assert_eq!(a.get_bytes("base-small").unwrap(), b"base");
}

/// The simulated disk, with syncs that wait while held: writers then gather behind a commit
/// and go into the next one together.
#[derive(Debug, Clone, Default)]
struct Gated {
    disk: SimDisk,
    held: Arc<(Mutex<bool>, Condvar)>,
    waiting: Arc<AtomicUsize>,
}

impl Gated {
    fn hold(&self, on: bool) {
        *self.held.0.lock().unwrap() = on;
        self.held.1.notify_all();
    }
}

impl StorageBackend for Gated {
    fn len(&self) -> std::io::Result<u64> {
        self.disk.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.disk.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.disk.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let (lock, cv) = &*self.held;
        drop(cv.wait_while(lock.lock().unwrap(), |held| *held).unwrap());
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        self.disk.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.disk.write(offset, data)
    }
    fn close(&self) -> std::io::Result<()> {
        self.disk.close()
    }
}

/// An error and its sources, as one line.
fn chain(e: &Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Group commit: when the commit shared by several writers fails its fsync, every one of them
/// gets that error — none is acknowledged — and the writer of the commit before it, which did
/// reach the disk, gets `Ok`.
#[test]
fn a_failed_group_commit_fails_every_writer_in_it() {
    let gated = Gated { disk: SimDisk::from_image(base_image()), ..Gated::default() };
    let db = builder().open_backend(gated.clone()).unwrap();
    gated.hold(true);
    let put = |key: String| {
        let db = db.clone();
        std::thread::spawn(move || db.bucket("alpha")?.put_bytes(&key, b"value"))
    };
    let first = put("first".into());
    let deadline = Instant::now() + Duration::from_secs(30);
    while gated.waiting.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the first commit never reached its sync");
        std::thread::sleep(Duration::from_millis(1));
    }
    // The first commit waits in its sync (the disk's next one); the second sync fails. The
    // writers started now queue behind the first commit and share the second.
    gated.disk.arm(Fault { call: Call::Sync, nth: 2, forever: false });
    let rest: Vec<_> = (0..7).map(|i| put(format!("w{i}"))).collect();
    std::thread::sleep(Duration::from_millis(500));
    gated.hold(false);
    first.join().unwrap().unwrap();
    let errors: Vec<String> = rest.into_iter().map(|t| chain(&t.join().unwrap().unwrap_err())).collect();
    // A writer that came late finds the handle refusing writes after the failed sync; every
    // writer of the failed commit carries its error.
    let shared = errors.iter().filter(|e| e.contains("injected Sync failure")).count();
    assert!(shared >= 2, "the failed commit was not shared: {errors:?}");
    assert_eq!(gated.disk.injected(), 1);
}

#[test]
fn enospc_in_the_middle_of_a_100_mib_put_keeps_earlier_objects_and_reclaims_the_space() {
    let disk = SimDisk::new();
    let db = Datastore::builder().open_backend(disk.clone()).unwrap();
    let a = db.create_bucket("alpha").unwrap();
    a.put_bytes("small", b"earlier").unwrap();
    a.put_reader("ten", big(10, 10 << 20), PutOptions::default()).unwrap();
    let limit = disk.live_len() + (50 << 20);
    disk.limit_len(Some(limit));
    let err = a.put_reader("hundred", big(11, 100 << 20), PutOptions::default()).unwrap_err();
    // The cause is in the error's source chain (as `{:#}` with anyhow shows it).
    let mut msg = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    assert!(msg.contains("space") || msg.contains("os error 28"), "error does not say why: {msg}");
    drop((a, db));
    // Reopen on the same full disk: recovery frees the partial upload.
    let disk = SimDisk::from_image(disk.live_image());
    disk.limit_len(Some(limit));
    let db = Datastore::builder().open_backend(disk.clone()).unwrap();
    let a = db.bucket("alpha").unwrap();
    assert_eq!(a.get_bytes("small").unwrap(), b"earlier");
    assert!(keystone_torture::same_content(a.open("ten").unwrap(), 10, 10 << 20).unwrap());
    assert!(!a.exists("hundred").unwrap());
    let report = db.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    // The space is reusable: 30 MiB fit under the same limit (the file cannot grow).
    a.put_reader("thirty", big(12, 30 << 20), PutOptions::default()).unwrap();
    assert!(keystone_torture::same_content(a.open("thirty").unwrap(), 12, 30 << 20).unwrap());
    assert!(disk.live_len() <= limit);
}

/// `compact` rewrites the table in one transaction before shrinking the file: on a disk with no
/// room for the copy it fails with an error, and the store — reopened from what is on disk —
/// still has every object and compacts once there is room.
#[test]
fn compact_without_room_for_the_rewrite_fails_and_keeps_everything() {
    let disk = SimDisk::new();
    let db = Datastore::builder().open_backend(disk.clone()).unwrap();
    let a = db.create_bucket("alpha").unwrap();
    let value = |j: usize| vec![(j % 251) as u8; 1000];
    for i in 0..2000 {
        let j = (i * 7919) % 2000; // a permutation: random insertion order, half-empty leaves
        a.put_bytes(&format!("k{j:05}"), value(j)).unwrap();
    }
    a.put_reader("ten", big(10, 10 << 20), PutOptions::default()).unwrap();
    disk.limit_len(Some(disk.live_len() + (1 << 20)));
    assert!(db.compact().is_err());
    drop((a, db));
    let disk = SimDisk::from_image(disk.live_image());
    let db = Datastore::builder().open_backend(disk.clone()).unwrap();
    let a = db.bucket("alpha").unwrap();
    for j in 0..2000 {
        assert_eq!(a.get_bytes(&format!("k{j:05}")).unwrap(), value(j), "k{j:05}");
    }
    assert!(keystone_torture::same_content(a.open("ten").unwrap(), 10, 10 << 20).unwrap());
    assert!(db.verify().unwrap().is_clean());
    drop(a);
    let before = disk.live_len();
    db.compact().unwrap();
    assert!(disk.live_len() < before, "{} -> {}", before, disk.live_len());
    assert_eq!(db.bucket("alpha").unwrap().get_bytes("k01234").unwrap(), value(1234));
}
