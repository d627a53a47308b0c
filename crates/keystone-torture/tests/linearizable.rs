//! Concurrency: 8 threads of mixed operations on shared keys, bounded in count. Every write
//! carries a unique value and the key's next version number, taken atomically with the write
//! (a compare-and-swap put conditioned on the current ETag, or a read-modify-write
//! transaction), so versions give each key's commit order. Checked: every read returns a value
//! that some committed write produced (byte for byte), no thread ever sees a key go back to an
//! older version after seeing a newer one (or its own write), and the final state of each key is
//! its last committed write. A GC thread runs meanwhile, and some values are large enough to be
//! streamed in staged batches.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use keystone::{Datastore, Error, PutCondition, PutOptions};
use keystone_torture::Content;

const THREADS: u64 = 8;
const OPS: u64 = 120;
const KEYS: u64 = 6;

/// A value: header line with version, writer and sequence, then filler.
fn value(version: u64, writer: u64, seq: u64, len: usize) -> Vec<u8> {
    let mut v = format!("v{version} t{writer} s{seq}\n").into_bytes();
    v.extend(Content::bytes(writer << 32 | seq, len));
    v
}

fn header(v: &[u8]) -> (u64, u64, u64) {
    let line = v.split(|&b| b == b'\n').next().unwrap();
    let s = std::str::from_utf8(line).unwrap();
    let f: Vec<u64> = s.split(' ').map(|p| p[1..].parse().unwrap()).collect();
    (f[0], f[1], f[2])
}

#[derive(Debug, Default)]
struct Log {
    /// Committed writes: (key, version) -> value.
    writes: Vec<(u64, u64, Vec<u8>)>,
    /// Reads: key -> value (None: absent).
    reads: Vec<(u64, Option<Vec<u8>>)>,
}

fn current(b: &keystone::Bucket, key: &str) -> Option<(u64, String)> {
    match b.head(key) {
        Ok(info) => Some((header(&b.get_bytes(key).ok()?).0, info.etag)),
        Err(_) => None,
    }
}

#[allow(clippy::too_many_lines)]
fn worker(db: &Datastore, t: u64) -> Log {
    let b = db.bucket("lin").unwrap();
    let mut rng = fastrand::Rng::with_seed(t);
    let mut log = Log::default();
    // Highest version this thread has seen or written, per key.
    let mut seen: HashMap<u64, u64> = HashMap::new();
    for seq in 0..OPS {
        let k = rng.u64(..KEYS);
        let key = format!("k{k}");
        let len = if rng.u8(..10) == 0 { rng.usize(40_000..120_000) } else { rng.usize(0..3000) };
        match rng.u8(..10) {
            0..=3 => {
                // Compare-and-swap put: the version is the current one plus one.
                for _ in 0..1000 {
                    let cur = current(&b, &key);
                    let version = cur.as_ref().map_or(1, |c| c.0 + 1);
                    let condition = match cur {
                        Some((_, etag)) => PutCondition::IfMatch(etag),
                        None => PutCondition::IfAbsent,
                    };
                    let v = value(version, t, seq, len);
                    let opts = PutOptions { condition, ..PutOptions::default() };
                    let r =
                        if len > 20_000 { b.put_reader(&key, &v[..], opts) } else { b.put_bytes_with(&key, &v, opts) };
                    match r {
                        Ok(_) => {
                            seen.insert(k, version);
                            log.writes.push((k, version, v));
                            break;
                        }
                        Err(Error::PreconditionFailed { .. }) => {}
                        Err(e) => panic!("put: {e}"),
                    }
                }
            }
            4..=5 => {
                // Read-modify-write transaction, touching a second key too.
                let k2 = (k + 1) % KEYS;
                let mut written = Vec::new();
                db.transaction(|tx| {
                    let tb = tx.bucket("lin")?;
                    written.clear();
                    for kk in [k, k2] {
                        let name = format!("k{kk}");
                        let version = match tb.get_bytes(&name) {
                            Ok(v) => header(&v).0 + 1,
                            Err(Error::NoSuchKey { .. }) => 1,
                            Err(e) => return Err(e),
                        };
                        let v = value(version, t, seq * 2 + u64::from(kk == k2), len.min(3000));
                        tb.put_bytes(&name, &v)?;
                        written.push((kk, version, v));
                    }
                    Ok::<_, Error>(())
                })
                .unwrap();
                for (kk, version, v) in written {
                    seen.insert(kk, version);
                    log.writes.push((kk, version, v));
                }
            }
            6..=8 => {
                let got = match b.get_bytes(&key) {
                    Ok(v) => Some(v),
                    Err(Error::NoSuchKey { .. }) => None,
                    Err(e) => panic!("get: {e}"),
                };
                let version = got.as_ref().map_or(0, |v| header(v).0);
                let last = seen.get(&k).copied().unwrap_or(0);
                assert!(version >= last, "thread {t}: {key} went back from version {last} to {version}");
                seen.insert(k, version);
                log.reads.push((k, got));
            }
            _ => {
                db.gc().unwrap();
            }
        }
    }
    log
}

#[test]
fn eight_threads_see_a_linearizable_history() {
    let dir = tempfile::tempdir().unwrap();
    let db = Datastore::builder()
        .chunk_size(8 * 1024)
        .upload_batch_size(16 * 1024)
        .open(dir.path().join("lin.keystone"))
        .unwrap();
    db.create_bucket("lin").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let gc = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut runs = 0u64;
            while !stop.load(Ordering::Relaxed) {
                db.gc().unwrap();
                runs += 1;
                std::thread::yield_now();
            }
            runs
        })
    };
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || worker(&db, t))
        })
        .collect();
    let logs: Vec<Log> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    assert!(gc.join().unwrap() > 0);

    // Every committed write is unique per (key, version): versions give the commit order.
    let mut committed: BTreeMap<(u64, u64), Vec<u8>> = BTreeMap::new();
    for log in &logs {
        for (k, version, v) in &log.writes {
            let dup = committed.insert((*k, *version), v.clone());
            assert!(dup.is_none(), "two committed writes of k{k} got version {version}");
        }
    }
    // Every read returned a value some committed write produced.
    for log in &logs {
        for (k, got) in &log.reads {
            if let Some(v) = got {
                let (version, ..) = header(v);
                assert_eq!(committed.get(&(*k, version)), Some(v), "k{k} read a value no committed write produced");
            }
        }
    }
    // Final state: the last committed write of each key, and versions without gaps.
    let b = db.bucket("lin").unwrap();
    for k in 0..KEYS {
        let versions: Vec<u64> = committed.range((k, 0)..(k + 1, 0)).map(|((_, v), _)| *v).collect();
        if let Some(&last) = versions.last() {
            assert_eq!(versions, (1..=last).collect::<Vec<_>>(), "k{k}: a committed version is missing");
            assert_eq!(&b.get_bytes(&format!("k{k}")).unwrap(), &committed[&(k, last)], "k{k} final state");
        }
    }
    let report = db.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// GC running in a loop while streaming uploads (several staged batches each) complete: an
/// upload that finishes between GC's scan of the staging records and its decision to free one
/// must not lose its chunks.
#[test]
fn gc_alongside_streaming_uploads_never_frees_a_published_object() {
    let dir = tempfile::tempdir().unwrap();
    let db = Datastore::builder()
        .chunk_size(1024)
        .inline_threshold(256)
        .upload_batch_size(2048)
        .durability(keystone::Durability::Relaxed)
        .open(dir.path().join("gc.keystone"))
        .unwrap();
    db.create_bucket("ups").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let gcs: Vec<_> = (0..2)
        .map(|_| {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    db.gc().unwrap();
                }
            })
        })
        .collect();
    let uploaders: Vec<_> = (0..6u64)
        .map(|t| {
            let b = db.bucket("ups").unwrap();
            std::thread::spawn(move || {
                for i in 0..300u64 {
                    let key = format!("t{t}/{}", i % 5);
                    let v = Content::bytes(t << 32 | i, 6000);
                    b.put_reader(&key, &v[..], PutOptions::default()).unwrap();
                    match b.get_bytes(&key) {
                        Ok(got) => assert!(got == v, "{key}: other bytes"),
                        Err(e) => panic!("{key} just written: {e}"),
                    }
                }
            })
        })
        .collect();
    let results: Vec<_> = uploaders.into_iter().map(std::thread::JoinHandle::join).collect();
    stop.store(true, Ordering::Relaxed);
    for g in gcs {
        g.join().unwrap();
    }
    for r in results {
        r.unwrap();
    }
    let report = db.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}
