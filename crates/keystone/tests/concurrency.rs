//! Writers and readers on many threads: small writes commit while a large upload streams,
//! readers only ever see whole versions, and `compact` running meanwhile changes neither.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, Read};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;

use keystone::{Datastore, Error, PutOptions};

fn store(dir: &tempfile::TempDir) -> Datastore {
    Datastore::builder()
        .chunk_size(64 * 1024)
        .upload_batch_size(256 * 1024)
        .open(dir.path().join("c.keystone"))
        .unwrap()
}

/// A reader of `total` bytes that, once `pause_at` bytes are out, tells the test (through
/// `reached`) and waits for permission (through `resume`) before going on.
struct Gated {
    total: usize,
    sent: usize,
    pause_at: usize,
    reached: mpsc::Sender<()>,
    resume: mpsc::Receiver<()>,
}

impl Read for Gated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.sent == self.pause_at {
            self.reached.send(()).map_err(io::Error::other)?;
            self.resume.recv().map_err(io::Error::other)?;
        }
        let limit = if self.sent < self.pause_at { self.pause_at } else { self.total };
        let n = buf.len().min(limit - self.sent);
        buf[..n].fill(7);
        self.sent += n;
        Ok(n)
    }
}

#[test]
fn small_writes_commit_while_a_large_upload_is_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(&dir);
    let b = db.create_bucket("busy").unwrap();
    let (reached_tx, reached_rx) = mpsc::channel();
    let (resume_tx, resume_rx) = mpsc::channel();
    let uploader = {
        let b = b.clone();
        thread::spawn(move || {
            // 4 MiB in all: with 256 KiB batches, several intermediate commits happen before the
            // pause at 2 MiB.
            let reader = Gated { total: 4 << 20, sent: 0, pause_at: 2 << 20, reached: reached_tx, resume: resume_rx };
            b.put_reader("large", reader, PutOptions::default())
        })
    };
    // The upload is halfway: its reader is blocked inside put_reader.
    reached_rx.recv().unwrap();
    // Other threads' small writes and deletes commit now, without waiting for the upload.
    let writer = {
        let b = b.clone();
        thread::spawn(move || {
            b.put_bytes("small", b"committed during the upload").unwrap();
            b.put_bytes("doomed", b"x").unwrap();
            b.delete("doomed").unwrap();
        })
    };
    writer.join().unwrap();
    assert_eq!(b.get_bytes("small").unwrap(), b"committed during the upload");
    // The half-written object is invisible.
    assert!(!b.exists("large").unwrap());
    resume_tx.send(()).unwrap();
    let info = uploader.join().unwrap().unwrap();
    assert_eq!(info.size, 64 * 64 * 1024);
    assert!(b.get_bytes("large").unwrap().iter().all(|&x| x == 7));
    assert!(db.verify().unwrap().is_clean());
}

#[test]
fn a_failing_upload_leaves_nothing_behind() {
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "client went away"));
            }
            self.0 -= 1;
            let n = buf.len().min(64 * 1024);
            buf[..n].fill(1);
            Ok(n)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let db = store(&dir);
    let b = db.create_bucket("fail").unwrap();
    b.put_bytes("large", b"previous version").unwrap();
    let err = b.put_reader("large", Failing(40), PutOptions::default()).unwrap_err();
    assert!(matches!(&err, Error::Io(e) if e.kind() == io::ErrorKind::ConnectionReset), "{err}");
    assert_eq!(b.get_bytes("large").unwrap(), b"previous version");
    let report = db.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// Each version of the object is `len` copies of one byte, so any mix of two versions shows.
fn version(n: u8, len: usize) -> Vec<u8> {
    vec![n; len]
}

#[test]
fn readers_during_overwrites_see_whole_old_or_whole_new_content() {
    const LEN: usize = 300 * 1024;
    const VERSIONS: u8 = 40;
    let dir = tempfile::tempdir().unwrap();
    let db = store(&dir);
    let b = db.create_bucket("flip").unwrap();
    b.put_bytes("obj", version(0, LEN)).unwrap();
    // The writer, three readers and this thread start together.
    let start = Arc::new(Barrier::new(5));
    let writer = {
        let (b, start) = (b.clone(), start.clone());
        thread::spawn(move || {
            start.wait();
            for n in 1..=VERSIONS {
                b.put_reader("obj", &version(n, LEN)[..], PutOptions::default()).unwrap();
            }
        })
    };
    let readers: Vec<_> = (0..3)
        .map(|i| {
            let (b, start) = (b.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                let mut last = 0u8;
                let mut reads = 0;
                while last < VERSIONS {
                    let bytes = if i == 0 {
                        b.get_bytes("obj").unwrap()
                    } else {
                        // Streaming readers, read in small pieces across many writes.
                        let mut r = b.open("obj").unwrap();
                        let mut v = Vec::new();
                        let mut piece = [0u8; 4096];
                        loop {
                            let n = r.read(&mut piece).unwrap();
                            if n == 0 {
                                break;
                            }
                            v.extend_from_slice(&piece[..n]);
                        }
                        v
                    };
                    assert_eq!(bytes.len(), LEN, "partial object");
                    let first = bytes[0];
                    assert!(bytes.iter().all(|&x| x == first), "a mix of two versions");
                    assert!(first >= last, "went back from version {last} to {first}");
                    last = first;
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    start.wait();
    writer.join().unwrap();
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert!(db.verify().unwrap().is_clean());
}

#[test]
fn many_threads_write_distinct_keys_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(&dir);
    let b = db.create_bucket("many").unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let b = b.clone();
            thread::spawn(move || {
                for i in 0..50 {
                    let key = format!("t{t}/k{i}");
                    b.put_bytes(&key, key.as_bytes()).unwrap();
                    if i % 5 == 0 {
                        b.delete(&key).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let keys: Vec<String> =
        b.list_iter(keystone::ListOptions::default()).unwrap().map(|e| format!("{:?}", e.unwrap())).collect();
    assert_eq!(keys.len(), 8 * 40);
    for t in 0..8 {
        for i in 0..50 {
            let key = format!("t{t}/k{i}");
            assert_eq!(b.exists(&key).unwrap(), i % 5 != 0, "{key}");
        }
    }
    // After batches of up to 8, a lone writer (whose leader waits, bounded, for writers that
    // do not come back), then writers that stop one after another: every write lands.
    for i in 0..20 {
        b.put_bytes(&format!("lone/{i}"), b"x").unwrap();
    }
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let b = b.clone();
            thread::spawn(move || {
                for i in 0..=(t * 10) {
                    b.put_bytes(&format!("wave{t}/{i}"), b"y").unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let count = |prefix: &str| {
        b.list_iter(keystone::ListOptions { prefix: prefix.into(), ..Default::default() }).unwrap().count()
    };
    assert_eq!(count("lone/"), 20);
    for t in 0..4 {
        assert_eq!(count(&format!("wave{t}/")), 1 + t * 10);
    }
}

/// Eight writers create the same key at once, small (inline) and chunked (one chunk, and
/// more than one intermediate commit): the losers, refused in a commit they may share with the
/// winner, fail alone with `PreconditionFailed` and leave no chunk behind.
#[test]
fn conditional_creates_race_and_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(&dir);
    let b = db.create_bucket("race").unwrap();
    for (round, size) in [10usize, 40_000, 600_000].into_iter().enumerate() {
        let key = format!("lock{round}");
        let start = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8u8)
            .map(|t| {
                let (b, start, key) = (b.clone(), start.clone(), key.clone());
                thread::spawn(move || {
                    start.wait();
                    let opts = PutOptions { condition: keystone::PutCondition::IfAbsent, ..Default::default() };
                    b.put_bytes_with(&key, &vec![t; size], opts)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "{size} bytes: {results:?}");
        let losers = results.iter().filter(|r| r.is_err());
        assert!(
            losers.clone().all(|r| matches!(r, Err(Error::PreconditionFailed { .. }))),
            "{size} bytes: {results:?}"
        );
        let got = b.get_bytes(&key).unwrap();
        assert_eq!(got.len(), size);
        assert!(got.iter().all(|&x| x == got[0]), "{size} bytes: the winner's content, whole");
    }
    let gc = db.gc().unwrap();
    assert_eq!((gc.uploads_reclaimed, gc.chunks_freed), (0, 0), "the refused puts' batches were freed");
    assert!(db.verify().unwrap().is_clean(), "no chunk of a refused put is left behind");
}

/// A write through a `Bucket` handle (small, streaming, a delete, an upload's start, end or
/// abort), a bucket's creation or deletion, a nested transaction, `compact`, `gc` or
/// `remove_corrupt` on the thread that runs a transaction would wait for that
/// transaction's own write lock for ever: each is refused with `InTransaction`, and the
/// transaction still commits what it wrote. Run on a second thread with a deadline, so that a
/// regression fails instead of hanging the suite.
#[test]
fn writes_through_bucket_handles_inside_a_transaction_are_refused_not_deadlocked() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(&dir);
    let b = db.create_bucket("bkt").unwrap();
    let upload = b.create_upload("mpu", keystone::ObjectMeta::default()).unwrap();
    let (tx_done, rx_done) = mpsc::channel();
    let (db2, b2) = (db.clone(), b.clone());
    thread::spawn(move || {
        let result = db2.transaction(|tx| {
            tx.bucket("bkt")?.put_bytes("in-tx", b"1")?;
            let refused = [
                ("putting an object", b2.put_bytes("small", b"2").err()),
                ("a streaming write", b2.put_reader("large", &vec![5u8; 300_000][..], PutOptions::default()).err()),
                ("deleting an object", b2.delete("in-tx").err()),
                ("starting a multipart upload", b2.create_upload("mpu", keystone::ObjectMeta::default()).err()),
                ("creating a bucket", db2.create_bucket("other").err()),
                ("a transaction inside a transaction", db2.transaction(|_| Ok::<_, Error>(())).err()),
                ("compact", db2.compact().err()),
                ("gc", db2.gc().err()),
                ("remove_corrupt", db2.remove_corrupt(None).err()),
                ("deleting a bucket", db2.delete_bucket("bkt").err()),
                ("deleting a bucket", db2.delete_empty_bucket("bkt").err()),
                ("aborting a multipart upload", b2.abort_upload(&upload).err()),
                (
                    "completing a multipart upload",
                    b2.complete_upload(&upload, &[], &keystone::CompleteOptions::default()).err(),
                ),
            ];
            Ok::<_, Error>(refused.map(|(op, e)| (op, e.map(|e| e.to_string()))))
        });
        let _ = tx_done.send(result.map_err(|e| e.to_string()));
    });
    let refused = rx_done
        .recv_timeout(std::time::Duration::from_mins(1))
        .expect("a write inside a transaction deadlocked")
        .unwrap();
    for (op, e) in refused {
        let e = e.unwrap_or_else(|| panic!("{op} inside the transaction was not refused"));
        assert!(e.contains("write through the transaction"), "{e}");
        assert!(e.starts_with(op), "the error names the refused operation, {op}: {e}");
    }
    assert_eq!(b.get_bytes("in-tx").unwrap(), b"1");
    for key in ["small", "large"] {
        assert!(matches!(b.get_bytes(key), Err(Error::NoSuchKey { .. })), "{key}");
    }
    // Outside the transaction the same handle writes as before.
    b.put_bytes("small", b"2").unwrap();
    assert!(db.verify().unwrap().is_clean());
}

/// `compact` on one thread while another runs transactions that read through a `Bucket`
/// handle: compact used to take the database's lock and wait for the transaction's write
/// lock, while the transaction's read waited for that lock — both for ever. Now each
/// compact finishes or says `InUse`, and every transaction commits. With a deadline.
#[test]
fn compact_and_transactions_that_read_through_handles_do_not_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(&dir);
    let b = db.create_bucket("bkt").unwrap();
    b.put_bytes("k", 0u64.to_le_bytes()).unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let (db1, b1) = (db.clone(), b.clone());
    let writer = thread::spawn(move || {
        for _ in 0..1000 {
            db1.transaction(|tx| {
                let n = u64::from_le_bytes(b1.get_bytes("k")?.try_into().unwrap_or_default());
                tx.bucket("bkt")?.put_bytes("k", (n + 1).to_le_bytes())?;
                Ok::<_, Error>(())
            })
            .unwrap();
        }
        let _ = done_tx.send(());
    });
    let db2 = db.clone();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let compactor = thread::spawn(move || {
        let mut done = 0;
        while stop_rx.try_recv().is_err() {
            match db2.compact() {
                Ok(_) => done += 1,
                Err(Error::InUse { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        done
    });
    done_rx.recv_timeout(std::time::Duration::from_mins(2)).expect("transactions and compact deadlocked");
    writer.join().unwrap();
    stop_tx.send(()).unwrap();
    compactor.join().unwrap();
    assert_eq!(b.get_bytes("k").unwrap(), 1000u64.to_le_bytes());
    db.compact().unwrap();
    assert!(db.verify().unwrap().is_clean());
}

/// Readers and a writer while `compact` packs the same keys again and again: every reader
/// sees every object it should, in order, at every page boundary.
#[test]
fn readers_and_writers_during_compact_see_whole_state() {
    use keystone::ListOptions;
    let dir = tempfile::tempdir().unwrap();
    let db = Datastore::builder().inline_threshold(100).chunk_size(1000).open(dir.path().join("s.ks")).unwrap();
    let b = db.create_bucket("bkt").unwrap();
    const N: usize = 600;
    for i in 0..N {
        b.put_bytes(&format!("k{i:04}"), format!("v{i}").as_bytes()).unwrap();
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..2)
            .map(|t| {
                let b = b.clone();
                let stop = &stop;
                s.spawn(move || {
                    let mut rounds = 0;
                    while !stop.load(std::sync::atomic::Ordering::Acquire) {
                        for i in (t..N).step_by(37) {
                            // Keys below 300 are never written by the writer.
                            if i < 300 {
                                assert_eq!(b.get_bytes(&format!("k{i:04}")).unwrap(), format!("v{i}").as_bytes());
                            }
                        }
                        let mut keys = Vec::new();
                        let mut opts = ListOptions { max_keys: 7, ..ListOptions::default() };
                        loop {
                            let page = b.list(&opts).unwrap();
                            keys.extend(page.objects.into_iter().map(|o| o.key));
                            match page.next_token {
                                Some(t) => opts.continuation = Some(t),
                                None => break,
                            }
                        }
                        assert!(keys.windows(2).all(|w| w[0] < w[1]), "out of order");
                        for i in 0..300 {
                            assert!(keys.binary_search(&format!("k{i:04}")).is_ok(), "k{i:04} missing from a listing");
                        }
                        rounds += 1;
                    }
                    rounds
                })
            })
            .collect();
        let writer = {
            let b = b.clone();
            let stop = &stop;
            s.spawn(move || {
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Acquire) {
                    let i = 300 + (n as usize * 7) % 300;
                    if n.is_multiple_of(3) {
                        b.delete(&format!("k{i:04}")).unwrap();
                    } else {
                        b.put_bytes(&format!("k{i:04}"), format!("w{n}").as_bytes()).unwrap();
                    }
                    b.put_bytes(&format!("k{i:04}x"), b"between").unwrap();
                    n += 1;
                }
            })
        };
        for _ in 0..20 {
            match db.compact() {
                Ok(_) | Err(Error::InUse { .. }) => {}
                Err(e) => panic!("compact: {e}"),
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        writer.join().unwrap();
        for r in readers {
            r.join().unwrap();
        }
    });
    assert!(db.verify().unwrap().is_clean());
}

/// Mixed writers on interleaved keys (so packs hold several threads' objects) while compact
/// and gc run: each thread's own model must hold throughout, and the store verify clean.
#[test]
#[allow(clippy::too_many_lines)]
fn mixed_concurrent_writers_with_compact_keep_every_thread_model() {
    use std::collections::BTreeMap;
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let db = Datastore::builder()
        .chunk_size(200)
        .inline_threshold(60)
        .upload_batch_size(400)
        .open(dir.path().join("s.ks"))
        .unwrap();
    db.create_bucket("bkt").unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    const T: usize = 4;
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..T)
            .map(|t| {
                let db = db.clone();
                s.spawn(move || {
                    let b = db.bucket("bkt").unwrap();
                    let mut m: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                    let mut x: u64 = 0x1234_5678 + t as u64;
                    let mut rnd = move || {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x
                    };
                    for step in 0..400u32 {
                        let k = format!("k{:02}-t{t}", rnd() % 40);
                        let len = [0usize, 5, 59, 60, 61, 199, 200, 450][(rnd() % 8) as usize];
                        let v: Vec<u8> = (0..len).map(|i| (i as u32 * 7 + step) as u8).collect();
                        match rnd() % 9 {
                            0 | 1 => {
                                b.put_bytes(&k, &v).unwrap();
                                m.insert(k, v);
                            }
                            2 => {
                                b.put_reader(&k, &v[..], keystone::PutOptions::default()).unwrap();
                                m.insert(k, v);
                            }
                            3 => {
                                b.delete(&k).unwrap();
                                m.remove(&k);
                            }
                            4 => {
                                let src = format!("k{:02}-t{t}", rnd() % 40);
                                match b.copy(&src, &k) {
                                    Ok(_) => {
                                        let sv = m[&src].clone();
                                        m.insert(k, sv);
                                    }
                                    Err(Error::NoSuchKey { .. }) => assert!(!m.contains_key(&src)),
                                    Err(e) => panic!("copy: {e}"),
                                }
                            }
                            5 => {
                                let k2 = format!("k{:02}-t{t}", rnd() % 40);
                                let commit = rnd() % 3 != 0;
                                let r = db.transaction(|tx| {
                                    let tb = tx.bucket("bkt")?;
                                    tb.put_bytes(&k, &v)?;
                                    tb.delete(&k2)?;
                                    if commit { Ok(()) } else { Err(Error::Poisoned) }
                                });
                                if commit {
                                    r.unwrap();
                                    m.insert(k.clone(), v);
                                    // The delete runs after the put: it wins when the keys match.
                                    m.remove(&k2);
                                }
                            }
                            6 => {
                                let id = b.create_upload(&k, keystone::ObjectMeta::default()).unwrap();
                                let p1 = b.upload_part(&id, 1, &v[..]).unwrap();
                                let p2 = b.upload_part(&id, 2, &b"tail"[..]).unwrap();
                                let parts = [
                                    keystone::CompletedPart { part_number: 1, etag: p1.etag },
                                    keystone::CompletedPart { part_number: 2, etag: p2.etag },
                                ];
                                b.complete_upload(&id, &parts, &keystone::CompleteOptions::default()).unwrap();
                                let mut all = v.clone();
                                all.extend_from_slice(b"tail");
                                m.insert(k, all);
                            }
                            _ => {
                                // Check a few keys and this thread's listing.
                                for (k, v) in m.iter().take(5) {
                                    assert_eq!(&b.get_bytes(k).unwrap(), v, "get {k}");
                                    let mut r = Vec::new();
                                    b.open(k).unwrap().read_to_end(&mut r).unwrap();
                                    assert_eq!(&r, v, "read {k}");
                                }
                                let listed: Vec<String> = b
                                    .list_iter(keystone::ListOptions::default())
                                    .unwrap()
                                    .map(|e| match e.unwrap() {
                                        keystone::ListEntry::Object(o) => o.key,
                                        keystone::ListEntry::Prefix(p) => p,
                                    })
                                    .filter(|k| k.ends_with(&format!("-t{t}")))
                                    .collect();
                                let want: Vec<String> = m.keys().cloned().collect();
                                assert_eq!(listed, want, "listing of thread {t}");
                            }
                        }
                    }
                    for (k, v) in &m {
                        assert_eq!(&b.get_bytes(k).unwrap(), v, "final get {k}");
                    }
                    m.len()
                })
            })
            .collect();
        let maint = s.spawn(|| {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                match db.compact() {
                    Ok(_) | Err(Error::InUse { .. }) => {}
                    Err(e) => panic!("compact: {e}"),
                }
                db.gc().unwrap();
                n += 1;
            }
            n
        });
        for w in workers {
            w.join().unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        maint.join().unwrap();
    });
    let report = db.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}
