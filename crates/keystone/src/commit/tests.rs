//! Group commit's failure paths and its stats.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use super::*;
use crate::storage::memory::MemoryStore;
use crate::storage::{Commit, KeyRange, KeyValueStore, ReadTxn, SpaceInfo};

/// The reference map, with a commit (`armed`) or a begin of a write transaction
/// (`armed_write`) that panics once when armed: a leader failing outside the jobs it
/// applies (which run under `catch_unwind`); or a commit that fails once with an error
/// (`failing`).
struct PanicOnCommit {
    inner: MemoryStore,
    armed: Arc<AtomicBool>,
    armed_write: Arc<AtomicBool>,
    failing: Arc<AtomicBool>,
}

impl PanicOnCommit {
    fn new(limits: Limits) -> Self {
        PanicOnCommit {
            inner: MemoryStore::new(limits),
            armed: Arc::default(),
            armed_write: Arc::default(),
            failing: Arc::default(),
        }
    }
}

struct PanicTxn {
    inner: Box<dyn WriteTxn>,
    armed: Arc<AtomicBool>,
    failing: Arc<AtomicBool>,
}

impl KeyValueStore for PanicOnCommit {
    fn limits(&self) -> Limits {
        self.inner.limits()
    }
    fn read(&self) -> Result<Arc<dyn ReadTxn>> {
        self.inner.read()
    }
    fn write(&self) -> Result<Box<dyn WriteTxn>> {
        assert!(!self.armed_write.swap(false, Ordering::SeqCst), "begin failed inside the backend (test)");
        Ok(Box::new(PanicTxn { inner: self.inner.write()?, armed: self.armed.clone(), failing: self.failing.clone() }))
    }
    fn compact(&self) -> Result<()> {
        self.inner.compact()
    }
    fn check_integrity(&self) -> Result<bool> {
        self.inner.check_integrity()
    }
    fn space(&self) -> Result<SpaceInfo> {
        self.inner.space()
    }
}

crate::storage::forward_kv_read!(PanicTxn, inner);

impl WriteTxn for PanicTxn {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.inner.put(key, value)
    }
    fn delete(&mut self, key: &[u8]) -> Result<bool> {
        self.inner.delete(key)
    }
    fn delete_range(&mut self, range: KeyRange<'_>) -> Result<u64> {
        self.inner.delete_range(range)
    }
    fn commit(self: Box<Self>, mode: Commit) -> Result<()> {
        assert!(!self.armed.swap(false, Ordering::SeqCst), "commit failed inside the backend (test)");
        if self.failing.swap(false, Ordering::SeqCst) {
            return Err(Error::Storage { context: "committing".into(), source: "the disk said no (test)".into() });
        }
        self.inner.commit(mode)
    }
}

/// A writer whose job, once it runs, waits for a signal before it writes `key`: writers
/// started after it queue behind a leader that has not committed, and it takes them into its
/// batch. Returns once its job has begun, with the sender of the signal. The job may run
/// again (a batch too large, run job by job): drop the sender after signalling, and it does
/// not wait a second time.
fn held_leader(
    engine: &Arc<Engine>,
    key: &'static [u8],
    value: Vec<u8>,
) -> (std::thread::JoinHandle<Result<()>>, mpsc::Sender<()>) {
    let (entered_tx, entered_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let e = engine.clone();
    let leader = std::thread::spawn(move || {
        GroupCommit::run(&e, move |w| {
            let _ = entered_tx.send(());
            let _ = go_rx.recv();
            w.put(key, &value)
        })
    });
    entered_rx.recv().unwrap();
    (leader, go_tx)
}

/// Waits until `n` writers have queued their jobs (failing, not hanging, if they never do).
fn wait_queued(engine: &Engine, n: usize) {
    let deadline = Instant::now() + Duration::from_mins(2);
    while engine.commit.state.lock().unwrap().queue.len() < n {
        assert!(Instant::now() < deadline, "{n} writers never queued");
        std::thread::yield_now();
    }
}

/// A leader that panicked in the commit left the other writers of its batch without a
/// result: woken, each found no commit in progress and led empty batches for ever. Now
/// each is told its outcome is unknown, and the store takes writes again.
#[test]
fn the_writers_of_a_batch_whose_leader_panicked_get_an_answer() {
    let limits = Limits { max_value_size: 1 << 20, max_txn_ops: 1 << 20, max_txn_bytes: 1 << 30 };
    let armed = Arc::new(AtomicBool::new(false));
    let kv = PanicOnCommit { armed: armed.clone(), ..PanicOnCommit::new(limits) };
    let engine = Arc::new(Engine::open(Box::new(kv), crate::Datastore::builder().config(), None).unwrap());
    armed.store(true, Ordering::SeqCst);

    // The leader's job waits until a second writer has queued behind it, so that the
    // leader takes that writer's job into its batch before committing.
    let (leader, go_tx) = held_leader(&engine, b"a", b"1".to_vec());
    let (done_tx, done_rx) = mpsc::channel();
    let e = engine.clone();
    std::thread::spawn(move || {
        let _ = done_tx.send(GroupCommit::run(&e, |w| w.put(b"b", b"2")));
    });
    wait_queued(&engine, 1);
    go_tx.send(()).unwrap();

    assert!(leader.join().is_err(), "the leader's commit was to panic");
    // Not a timing assertion: without an answer the writer never returns at all.
    let answer = done_rx.recv_timeout(Duration::from_mins(2)).expect("the second writer got no answer");
    match answer {
        Err(Error::Storage { source, .. }) => assert!(source.to_string().contains("unknown"), "{source}"),
        other => panic!("expected an error saying the outcome is unknown, got {other:?}"),
    }
    assert_eq!(engine.commit.stats(), GroupCommitStats::default(), "the commit that panicked is not counted");
    GroupCommit::run(&engine, |w| w.put(b"c", b"3")).unwrap();
    assert!(engine.kv.read().unwrap().get(b"c").unwrap().is_some());
    assert_eq!(engine.commit.stats(), GroupCommitStats { commits: 1, writes: 1 });
}

/// A leader that panicked before applying any job (beginning the write transaction) left
/// the writers it had taken from the queue asleep: they were woken only once their job was
/// applied. Now every writer whose job is taken is woken with an answer.
#[test]
fn the_writers_taken_by_a_leader_that_panicked_before_applying_get_an_answer() {
    // A write of more than half a transaction's bytes fills a batch: the first leader
    // takes no queued job into its own.
    let limits = Limits { max_value_size: 1 << 20, max_txn_ops: 1 << 20, max_txn_bytes: 1000 };
    let armed_write = Arc::new(AtomicBool::new(false));
    let kv = PanicOnCommit { armed_write: armed_write.clone(), ..PanicOnCommit::new(limits) };
    let engine = Arc::new(Engine::open(Box::new(kv), crate::Datastore::builder().config(), None).unwrap());

    let (first, go_tx) = held_leader(&engine, b"first", vec![0u8; 600]);
    // Two writers queue behind it; the one woken first leads them both and panics
    // beginning its transaction.
    let (done_tx, done_rx) = mpsc::channel();
    let writers: Vec<_> = [b"a", b"b"]
        .into_iter()
        .map(|k| {
            let (e, done) = (engine.clone(), done_tx.clone());
            std::thread::spawn(move || {
                let _ = done.send(GroupCommit::run(&e, move |w| w.put(k, b"1")));
            })
        })
        .collect();
    wait_queued(&engine, 2);
    armed_write.store(true, Ordering::SeqCst);
    go_tx.send(()).unwrap();
    first.join().unwrap().unwrap();

    // Not a timing assertion: without an answer the other writer never returns at all.
    let answer = done_rx.recv_timeout(Duration::from_mins(2)).expect("the other writer got no answer");
    match answer {
        Err(Error::Storage { source, .. }) => assert!(source.to_string().contains("unknown"), "{source}"),
        other => panic!("expected an error saying the outcome is unknown, got {other:?}"),
    }
    let panicked = writers.into_iter().map(std::thread::JoinHandle::join).filter(Result::is_err).count();
    assert_eq!(panicked, 1, "the leader's begin was to panic");
    GroupCommit::run(&engine, |w| w.put(b"c", b"3")).unwrap();
}

/// Writes that arrive while a commit is being prepared share it, and the stats say so: two
/// writers in one commit, then one alone; a write refused before it wrote anything is in a
/// commit but not counted as a write.
#[test]
fn group_commit_stats_count_shared_commits_and_their_writes() {
    let limits = Limits { max_value_size: 1 << 20, max_txn_ops: 1 << 20, max_txn_bytes: 1 << 30 };
    let engine =
        Arc::new(Engine::open(Box::new(MemoryStore::new(limits)), crate::Datastore::builder().config(), None).unwrap());
    assert_eq!(engine.commit.stats(), GroupCommitStats::default());

    // The first writer's job waits until two more have queued behind it: one that writes,
    // one refused before writing. The leader takes both into its batch.
    let (leader, go_tx) = held_leader(&engine, b"a", b"1".to_vec());
    let e = engine.clone();
    let second = std::thread::spawn(move || GroupCommit::run(&e, |w| w.put(b"b", b"2")));
    let e = engine.clone();
    let refused = std::thread::spawn(move || {
        GroupCommit::run(&e, |_| -> Result<()> {
            Err(Error::PreconditionFailed { bucket: "x".into(), key: "y".into(), reason: "test".into() })
        })
    });
    wait_queued(&engine, 2);
    go_tx.send(()).unwrap();
    leader.join().unwrap().unwrap();
    second.join().unwrap().unwrap();
    assert!(refused.join().unwrap().is_err());
    assert_eq!(engine.commit.stats(), GroupCommitStats { commits: 1, writes: 2 });

    GroupCommit::run(&engine, |w| w.put(b"c", b"3")).unwrap();
    assert_eq!(engine.commit.stats(), GroupCommitStats { commits: 2, writes: 3 });
}

/// A commit that fails is not counted; a batch too large for one transaction, run again job
/// by job, counts the commit of each.
#[test]
fn group_commit_stats_leave_out_failed_commits_and_count_a_split_batch_per_commit() {
    let limits = Limits { max_value_size: 1 << 20, max_txn_ops: 1 << 20, max_txn_bytes: 1000 };
    let failing = Arc::new(AtomicBool::new(false));
    let kv = PanicOnCommit { failing: failing.clone(), ..PanicOnCommit::new(limits) };
    let engine = Arc::new(Engine::open(Box::new(kv), crate::Datastore::builder().config(), None).unwrap());
    failing.store(true, Ordering::SeqCst);
    assert!(GroupCommit::run(&engine, |w| w.put(b"a", b"1")).is_err());
    assert_eq!(engine.commit.stats(), GroupCommitStats::default(), "a failed commit is not counted");

    // 400 bytes, then 700 queued behind it: together past the 1,000 a transaction takes, each
    // alone within it.
    let (leader, go_tx) = held_leader(&engine, b"small", vec![1; 400]);
    let e = engine.clone();
    let second = std::thread::spawn(move || GroupCommit::run(&e, |w| w.put(b"large", &[2; 700])));
    wait_queued(&engine, 1);
    go_tx.send(()).unwrap();
    // The leader's job runs again, alone, after the shared transaction is refused: it must
    // not wait for a second signal.
    drop(go_tx);
    leader.join().unwrap().unwrap();
    second.join().unwrap().unwrap();
    assert_eq!(engine.commit.stats(), GroupCommitStats { commits: 2, writes: 2 }, "one commit per job run alone");
}

/// A store on the reference map (without limits) whose objects above 4 KiB are chunked, in
/// chunks of 4 KiB and intermediate commits of 16 KiB (also the most a shared batch writes).
fn chunking_store() -> (crate::Datastore, Arc<Engine>) {
    let limits = Limits { max_value_size: 1 << 20, max_txn_ops: usize::MAX, max_txn_bytes: usize::MAX };
    let cfg = crate::Datastore::builder().chunk_size(4096).inline_threshold(4096).upload_batch_size(16 * 1024).config();
    let engine = Arc::new(Engine::open(Box::new(MemoryStore::new(limits)), cfg, None).unwrap());
    (crate::Datastore { engine: engine.clone() }, engine)
}

/// The commits and writes group commit made since `before`.
fn stats_since(db: &crate::Datastore, before: GroupCommitStats) -> (u64, u64) {
    let now = db.group_commit_stats();
    (now.commits - before.commits, now.writes - before.writes)
}

/// No staging record is left for `gc` to reclaim (a refused upload freed what it flushed),
/// and `verify` finds every object whole and no chunk without an owner.
fn assert_nothing_left(db: &crate::Datastore, engine: &Engine) {
    assert_eq!(engine.reclaim_staged().unwrap(), (0, 0), "a staging record was left to reclaim");
    assert!(db.verify().unwrap().is_clean());
}

/// A reader of `data` that, at its end, says so on `at_end` and waits for a word on `resume`
/// before it reports the end (once: a reader may be read past its end). The writer streaming
/// it is held between its last read (and its intermediate commits) and its last commit.
struct HeldAtEnd {
    data: std::io::Cursor<Vec<u8>>,
    at_end: mpsc::Sender<()>,
    resume: mpsc::Receiver<()>,
    held: bool,
}

impl std::io::Read for HeldAtEnd {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.data.read(buf)?;
        if n == 0 && !self.held {
            self.held = true;
            let _ = self.at_end.send(());
            let _ = self.resume.recv();
        }
        Ok(n)
    }
}

/// Starts `write` on a thread with a `HeldAtEnd` reader of `data`; returns once the reader is
/// at its end, with the sender that lets it finish. A writer that flushes batches must be
/// started so before a held leader takes the write lock (its flushes need it).
fn stream_held<T: Send + 'static>(
    data: Vec<u8>,
    write: impl FnOnce(HeldAtEnd) -> T + Send + 'static,
) -> (std::thread::JoinHandle<T>, mpsc::Sender<()>) {
    let (at_end, at_end_rx) = mpsc::channel();
    let (resume_tx, resume) = mpsc::channel();
    let reader = HeldAtEnd { data: std::io::Cursor::new(data), at_end, resume, held: false };
    let handle = std::thread::spawn(move || write(reader));
    at_end_rx.recv().unwrap();
    (handle, resume_tx)
}

/// Chunked puts went through commits of their own: concurrent writers of objects above the
/// inline threshold paid an fsync each. Their last commit is group-committed now, and a put
/// refused there (its condition failed) fails alone: its checks come before its first write,
/// so it does not take its batch-mates down with it; the batches it had flushed are freed.
#[test]
fn chunked_puts_share_a_commit_and_a_refused_one_fails_alone() {
    let (db, engine) = chunking_store();
    let b = db.create_bucket("bkt").unwrap();
    b.put_bytes("taken", vec![1u8; 10_000]).unwrap();
    let before = db.group_commit_stats();

    // 40,000 bytes: two intermediate commits of 16 KiB before it is refused.
    let b3 = b.clone();
    let (refused, resume_refused) = stream_held(vec![3u8; 40_000], move |r| {
        let opts = crate::PutOptions { condition: crate::PutCondition::IfAbsent, ..Default::default() };
        b3.put_reader("taken", r, opts)
    });
    let (leader, go_tx) = held_leader(&engine, b"held", b"1".to_vec());
    resume_refused.send(()).unwrap();
    wait_queued(&engine, 1);
    let b2 = b.clone();
    let stored = std::thread::spawn(move || b2.put_bytes("new", vec![2u8; 10_000]));
    wait_queued(&engine, 2);
    go_tx.send(()).unwrap();
    leader.join().unwrap().unwrap();
    assert_eq!(stored.join().unwrap().unwrap().size, 10_000);
    let refusal = refused.join().unwrap();
    assert!(matches!(refusal, Err(Error::PreconditionFailed { .. })), "{refusal:?}");

    assert_eq!(stats_since(&db, before), (1, 2), "the leader's write and the chunked put, in one commit");
    assert_eq!(b.get_bytes("new").unwrap(), vec![2u8; 10_000]);
    assert_eq!(b.get_bytes("taken").unwrap(), vec![1u8; 10_000]);
    assert_nothing_left(&db, &engine);
}

/// The last commit of a part upload and of a put larger than one intermediate commit (its
/// staging record removed in that commit) share a commit too. A part whose upload was
/// aborted while it streamed fails alone with `NoSuchUpload`, and what it streamed is freed.
#[test]
fn part_uploads_and_staged_puts_share_a_commit_and_a_part_of_an_aborted_upload_fails_alone() {
    let (db, engine) = chunking_store();
    let b = db.create_bucket("bkt").unwrap();
    let live = b.create_upload("live", crate::ObjectMeta::default()).unwrap();
    let gone = b.create_upload("gone", crate::ObjectMeta::default()).unwrap();
    let before = db.group_commit_stats();

    // Both stream to their end before a leader holds the write lock: the put's 100,000 bytes
    // make six intermediate commits of 16 KiB; its last commit holds the rest and the
    // manifest. The part of `gone` (two intermediate commits) waits while its upload is
    // aborted.
    let b2 = b.clone();
    let (staged, resume_staged) =
        stream_held(vec![7u8; 100_000], move |r| b2.put_reader("big", r, crate::PutOptions::default()));
    let (b3, gone3) = (b.clone(), gone.clone());
    let (orphan, resume_orphan) = stream_held(vec![9u8; 40_000], move |r| b3.upload_part(&gone3, 1, r));
    b.abort_upload(&gone).unwrap();

    let (leader, go_tx) = held_leader(&engine, b"held", b"1".to_vec());
    resume_orphan.send(()).unwrap();
    wait_queued(&engine, 1);
    resume_staged.send(()).unwrap();
    wait_queued(&engine, 2);
    let (b4, live4) = (b.clone(), live.clone());
    let part = std::thread::spawn(move || b4.upload_part(&live4, 1, &[5u8; 10_000][..]));
    wait_queued(&engine, 3);
    go_tx.send(()).unwrap();
    leader.join().unwrap().unwrap();
    let orphaned = orphan.join().unwrap();
    assert!(matches!(orphaned, Err(Error::NoSuchUpload { .. })), "{orphaned:?}");
    let part = part.join().unwrap().unwrap();
    staged.join().unwrap().unwrap();

    assert_eq!(stats_since(&db, before), (1, 3), "the leader's write, the put and the part, in one commit");
    assert_eq!(b.get_bytes("big").unwrap(), vec![7u8; 100_000]);
    let parts = [crate::CompletedPart { part_number: 1, etag: part.etag }];
    b.complete_upload(&live, &parts, &crate::CompleteOptions::default()).unwrap();
    assert_eq!(b.get_bytes("live").unwrap(), vec![5u8; 10_000]);
    assert_nothing_left(&db, &engine);
}

/// A put whose bucket is deleted and created again while it streams fails `NoSuchBucket`,
/// whether it had flushed batches (its staging record went with the bucket) or not (the
/// bucket is another one: created after the put began), and stores nothing in the new bucket.
#[test]
fn a_put_into_a_bucket_deleted_and_created_again_while_it_streams_fails() {
    let (db, engine) = chunking_store();
    let b = db.create_bucket("bkt").unwrap();
    for (key, size) in [("small", 10_000usize), ("flushed", 40_000)] {
        let b2 = b.clone();
        let (put, resume) = stream_held(vec![4u8; size], move |r| b2.put_reader(key, r, crate::PutOptions::default()));
        db.delete_bucket("bkt").unwrap();
        db.create_bucket("bkt").unwrap();
        resume.send(()).unwrap();
        let r = put.join().unwrap();
        assert!(matches!(r, Err(Error::NoSuchBucket { .. })), "{size} bytes: {r:?}");
        assert!(!b.exists(key).unwrap(), "{size} bytes: stored in the new bucket");
    }
    assert_nothing_left(&db, &engine);
}

/// A shared batch stops taking writes once it has written `upload_batch_size` bytes: the
/// writes queued behind a leader whose own write filled it go into the next commit.
#[test]
fn a_batch_takes_no_more_writes_once_it_wrote_the_upload_batch_size() {
    let (db, engine) = chunking_store();
    let before = db.group_commit_stats();
    // 20,000 bytes, past the 16 KiB a batch takes; then two writes queue behind it.
    let (leader, go_tx) = held_leader(&engine, b"big", vec![1u8; 20_000]);
    let writers: Vec<_> = [b"a", b"b"]
        .into_iter()
        .map(|k| {
            let e = engine.clone();
            std::thread::spawn(move || GroupCommit::run(&e, move |w| w.put(k, b"1")))
        })
        .collect();
    wait_queued(&engine, 2);
    go_tx.send(()).unwrap();
    leader.join().unwrap().unwrap();
    for w in writers {
        w.join().unwrap().unwrap();
    }
    assert_eq!(stats_since(&db, before), (2, 3), "the full batch alone, then the two writes queued behind it");
}
