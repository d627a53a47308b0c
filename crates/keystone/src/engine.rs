//! The engine behind every handle: the key-value store, configuration, id allocation, the
//! write path and recovery.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::data::keys::{self, Book};
use crate::data::records::StageRecord;
use crate::error::{Error, Result};
use crate::storage::{Commit, KeyRange, KeyValueStore, KvRead, ReadTxn, WriteTxn};

/// Settings fixed when a store is opened.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Payload bytes per chunk.
    pub chunk_size: usize,
    /// Objects up to this size are stored inside their manifest.
    pub inline_max: usize,
    /// Bytes of chunks written per intermediate commit of a streaming upload.
    pub batch_bytes: usize,
    /// Chunks written per intermediate commit of a streaming upload, at most: half the
    /// backend's operations per transaction (set at open).
    pub batch_chunks: usize,
    /// Whether acknowledged writes are on disk.
    pub durable: bool,
    /// How single writes compute their ETag.
    pub etag: crate::types::EtagAlgorithm,
    /// Opened read-only: the engine reserves no ids and recovers nothing at open.
    pub read_only: bool,
}

/// Ids for segments and uploads: the high 32 bits are reserved durably at open, the low 32
/// count within this open, so ids never repeat across crashes.
struct IdRange {
    next: u64,
    end: u64,
}

pub(crate) struct Engine {
    pub kv: Box<dyn KeyValueStore>,
    pub cfg: Config,
    ids: Mutex<IdRange>,
    /// Staging ids of uploads in flight in this process; `gc` leaves them alone.
    pub active: Mutex<HashSet<u64>>,
    pub path: Option<PathBuf>,
    /// Shared commits of small writes.
    pub(crate) commit: crate::commit::GroupCommit,
    /// What recovery reclaimed when the store was opened.
    pub(crate) recovered: crate::maintenance::GcReport,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("path", &self.path).field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

thread_local! {
    /// The engines (by address) whose write transaction this thread holds inside
    /// `Datastore::transaction`.
    static IN_TRANSACTION: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Marks the running thread as inside a transaction of one engine until dropped (also while
/// unwinding).
pub(crate) struct TransactionMark(usize);

impl Drop for TransactionMark {
    fn drop(&mut self) {
        IN_TRANSACTION.with(|t| t.borrow_mut().retain(|&e| e != self.0));
    }
}

pub(crate) fn lock_err() -> Error {
    Error::Storage { context: "internal lock".into(), source: "a thread panicked while holding it".into() }
}

impl Engine {
    /// Opens the engine over `kv`: reserves an id range and reclaims uploads that a previous
    /// process left unfinished.
    pub(crate) fn open(kv: Box<dyn KeyValueStore>, mut cfg: Config, path: Option<PathBuf>) -> Result<Engine> {
        let limits = kv.limits();
        let max_payload = limits.max_value_size.saturating_sub(crate::data::records::CHUNK_HEADER);
        // A segment records its chunk size as a u32: larger chunks would be stored under a
        // size that does not describe them.
        let max_chunk = max_payload.min(u32::MAX as usize).max(1);
        cfg.chunk_size = cfg.chunk_size.clamp(1, max_chunk);
        cfg.inline_max = cfg.inline_max.min(max_payload / 2);
        // At least one chunk, else at most half a transaction's bytes (`min` then `max`: a
        // chunk larger than half a transaction is not a reason to panic at open).
        cfg.batch_bytes = cfg.batch_bytes.min(limits.max_txn_bytes / 2).max(cfg.chunk_size);
        // Likewise in operations: with a small chunk size a batch of bytes can be more chunks
        // than a transaction takes. Half leaves room for the staging record and, in the last
        // commit, for publishing (whose in-line frees take at most a quarter).
        cfg.batch_chunks = (limits.max_txn_ops / 2).max(1);
        if cfg.read_only {
            // Checked, not raised: a read-only handle writes nothing.
            kv.with_read(&mut |r| {
                crate::data::format::check(r.get(&keys::format())?.as_deref(), path.as_deref()).map(drop)
            })?;
            // No ids (`next_id` refuses) and no recovery: both write.
            return Ok(Engine {
                kv,
                cfg,
                ids: Mutex::new(IdRange { next: 0, end: 0 }),
                active: Mutex::new(HashSet::new()),
                path,
                commit: crate::commit::GroupCommit::default(),
                recovered: crate::maintenance::GcReport::default(),
            });
        }

        let mut w = kv.write()?;
        // The format first: a store of a newer one is left as it is (the transaction is dropped
        // unwritten), and its staged uploads are not reclaimed by a build that misreads them.
        if crate::data::format::check(w.get(&keys::format())?.as_deref(), path.as_deref())? {
            w.put(&keys::format(), &crate::data::format::encode())?;
        }
        let hi = match w.get(&keys::idgen())? {
            Some(v) => crate::data::records::decode_idgen(&v).map_err(|e| match e {
                Error::Corrupted { reason, .. } => Error::Corrupted {
                    bucket: None,
                    key: None,
                    reason: format!(
                        "{reason}: new ids could reuse those of stored objects (`keystone salvage` copies the store with a counter past every id)"
                    ),
                },
                other => other,
            })?,
            None => 0,
        };
        // The high 32 bits of every id (the range ends where the next begins, so the last one
        // that fits is u32::MAX - 1): past them ids would wrap around and repeat.
        let next_hi = hi
            .checked_add(1)
            .filter(|&h| h < u64::from(u32::MAX))
            .ok_or_else(|| Error::TooLarge("id space exhausted".into()))?;
        w.put(&keys::idgen(), &crate::data::records::encode_idgen(next_hi))?;
        w.commit(Commit::Durable)?;
        // The format record of this build is on the store file itself now: a build that knows
        // no journal refuses the store rather than open it without replaying one.
        kv.arm_journal();
        let mut engine = Engine {
            kv,
            cfg,
            ids: Mutex::new(IdRange { next: next_hi << 32, end: (next_hi + 1) << 32 }),
            active: Mutex::new(HashSet::new()),
            path,
            commit: crate::commit::GroupCommit::default(),
            recovered: crate::maintenance::GcReport::default(),
        };
        let (uploads_reclaimed, chunks_freed) = engine.reclaim_staged()?;
        engine.recovered = crate::maintenance::GcReport { uploads_reclaimed, chunks_freed };
        Ok(engine)
    }

    /// Refuses `operation` on a thread inside a transaction of this engine: the write lock it
    /// needs is held by that transaction, on this very thread, so it would wait for ever.
    pub(crate) fn not_in_transaction(&self, operation: &'static str) -> Result<()> {
        let me = std::ptr::from_ref(self) as usize;
        if IN_TRANSACTION.with(|t| t.borrow().contains(&me)) {
            return Err(Error::InTransaction { operation });
        }
        Ok(())
    }

    /// Marks this thread as inside a transaction of this engine (refusing a nested one).
    pub(crate) fn enter_transaction(&self) -> Result<TransactionMark> {
        self.not_in_transaction("a transaction inside a transaction")?;
        let me = std::ptr::from_ref(self) as usize;
        IN_TRANSACTION.with(|t| t.borrow_mut().push(me));
        Ok(TransactionMark(me))
    }

    /// A write transaction of its own, unless this thread is inside a transaction of this
    /// engine (see [`not_in_transaction`](Self::not_in_transaction)).
    pub(crate) fn begin_write(&self, operation: &'static str) -> Result<Box<dyn WriteTxn>> {
        self.writable("writing")?;
        self.not_in_transaction(operation)?;
        self.kv.write()
    }

    pub(crate) fn next_id(&self) -> Result<u64> {
        Ok(self.next_ids(1)?.start)
    }

    /// `n` ids that follow on from each other (a write's tail pieces: their chunks then sit
    /// together in the key space).
    pub(crate) fn next_ids(&self, n: u64) -> Result<std::ops::Range<u64>> {
        if self.cfg.read_only {
            return Err(self.read_only("writing"));
        }
        let mut ids = self.ids.lock().map_err(|_| lock_err())?;
        if ids.end - ids.next < n {
            return Err(Error::TooLarge("this handle used 2^32 ids; reopen the store".into()));
        }
        let first = ids.next;
        ids.next += n;
        Ok(first..ids.next)
    }

    /// Refuses `operation`, which writes, on a store opened read-only.
    pub(crate) fn writable(&self, operation: &'static str) -> Result<()> {
        if self.cfg.read_only { Err(self.read_only(operation)) } else { Ok(()) }
    }

    /// `operation` refused by a store opened read-only.
    pub(crate) fn read_only(&self, operation: &'static str) -> Error {
        let path = self.path.as_ref().map_or_else(|| "(memory)".to_owned(), |p| p.display().to_string());
        Error::ReadOnly { path, operation }
    }

    /// The commit mode for an acknowledged write.
    pub(crate) fn ack_mode(&self) -> Commit {
        if self.cfg.durable { Commit::Durable } else { Commit::Deferred }
    }

    pub(crate) fn snapshot(&self) -> Result<Arc<dyn ReadTxn>> {
        self.kv.read()
    }

    /// Runs `f` on the latest committed state, for a read that ends with the call.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&dyn crate::storage::KvRead) -> Result<T>) -> Result<T> {
        let mut f = Some(f);
        let mut out = None;
        self.kv.with_read(&mut |r| {
            if let Some(f) = f.take() {
                out = Some(f(r)?);
            }
            Ok(())
        })?;
        out.ok_or_else(|| Error::Storage { context: "reading".into(), source: "the read did not run".into() })
    }

    /// Runs `f` in a write transaction that commits acknowledged (durably, unless the store
    /// was opened with relaxed durability). Concurrent callers share commits (group commit).
    /// `f` must write only through the transaction: it runs again, in a transaction of its
    /// own, when a shared one turns out too large for the backend. `operation` names the
    /// write in the error that refuses it on a thread inside a transaction of this store.
    pub(crate) fn write<R: Send + 'static>(
        &self,
        operation: &'static str,
        f: impl FnMut(&mut dyn WriteTxn) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        self.writable("writing")?;
        self.not_in_transaction(operation)?;
        crate::commit::GroupCommit::run(self, f)
    }

    /// Runs `f` in a durable write transaction of its own: a test's write of raw records.
    #[cfg(test)]
    pub(crate) fn test_write<R>(&self, f: impl FnOnce(&mut dyn WriteTxn) -> Result<R>) -> Result<R> {
        self.write_alone("a test write", Commit::Durable, f)
    }

    /// Runs `f`, the write that `operation` names (refused by name inside a transaction), in
    /// its own write transaction, committed with `mode`.
    pub(crate) fn write_alone<R>(
        &self,
        operation: &'static str,
        mode: Commit,
        f: impl FnOnce(&mut dyn WriteTxn) -> Result<R>,
    ) -> Result<R> {
        let mut w = self.begin_write(operation)?;
        let r = f(w.as_mut())?;
        w.commit(mode)?;
        Ok(r)
    }

    /// Frees every staged (never completed) upload that is not in flight in this process.
    /// Returns how many uploads and chunks were reclaimed.
    pub(crate) fn reclaim_staged(&self) -> Result<(u64, u64)> {
        let mut uploads = 0;
        let mut chunks = 0;
        let limits = self.kv.limits();
        let prefix = Book::Stage.all();
        let end = crate::storage::prefix_end(&prefix);
        let mut from = prefix.clone();
        loop {
            let snap = self.kv.read()?;
            let page = snap.scan(range_from(&from, end.as_deref()), 256)?;
            drop(snap);
            let Some((last, _)) = page.last() else { break };
            from = next_key(last);
            for (k, _) in page {
                let Some((bucket, id, _)) = Book::Stage.parse(&k) else { continue };
                if self.active.lock().map_err(|_| lock_err())?.contains(&id) {
                    continue;
                }
                // Decide again under the write lock: the upload may have completed since the
                // scan (its record is then gone and its chunks belong to a published object).
                // An upload registers as active before it writes its record, so a record that
                // still exists here with no active upload is abandoned.
                let freed = self.write_alone("reclaiming an unfinished upload", Commit::Durable, |w| {
                    let Some(v) = w.get(&k)? else { return Ok(None) };
                    if self.active.lock().map_err(|_| lock_err())?.contains(&id) {
                        return Ok(None);
                    }
                    let segs = StageRecord::decode(&v).map_or_else(|_| vec![id], |r| r.segs);
                    // Queued past the backend's limits: `drain_gc` below frees and counts them.
                    let n = crate::objects::free_staged_segments(w, limits, &bucket, &segs)?.unwrap_or(0);
                    w.delete(&k)?;
                    Ok(Some(n))
                })?;
                if let Some(n) = freed {
                    chunks += n;
                    uploads += 1;
                }
            }
        }
        chunks += self.drain_gc()?;
        Ok((uploads, chunks))
    }

    /// After a write that committed and queued frees (`queued`): frees them now. The write is
    /// done whatever happens here, so a failure is not its error: the frees stay queued,
    /// durably, for the next write that queues some, `gc`, or the next open (a write that
    /// committed was reported failed when freeing its old chunks failed afterwards).
    pub(crate) fn free_after_commit(&self, queued: bool) {
        if queued {
            let _ = self.drain_gc();
        }
    }

    /// Runs the sweeps asked for (`maintenance::sweep`), then deletes the chunks of segments
    /// queued for freeing, in transactions that stay within the backend's limits. Returns the
    /// number of chunks deleted.
    pub(crate) fn drain_gc(&self) -> Result<u64> {
        crate::maintenance::sweep(self)?;
        let prefix = Book::Gc.all();
        let end = crate::storage::prefix_end(&prefix);
        let per_txn = self.kv.limits().max_txn_ops.saturating_sub(2).clamp(1, 4096);
        let mut freed = 0;
        loop {
            let snap = self.kv.read()?;
            let page = snap.scan(range_from(&prefix, end.as_deref()), 64)?;
            drop(snap);
            if page.is_empty() {
                return Ok(freed);
            }
            for (k, _) in page {
                let Some((bucket, seg, _)) = Book::Gc.parse(&k) else {
                    self.write_alone("freeing queued chunks", Commit::Durable, |w| w.delete(&k))?;
                    continue;
                };
                let seg_prefix = keys::segment_prefix(&bucket, seg);
                loop {
                    let snap = self.kv.read()?;
                    let seg_end = crate::storage::prefix_end(&seg_prefix);
                    let batch = snap.scan(range_from(&seg_prefix, seg_end.as_deref()), per_txn)?;
                    drop(snap);
                    let done = batch.len() < per_txn;
                    self.write_alone("freeing queued chunks", Commit::Durable, |w| {
                        for (ck, _) in &batch {
                            w.delete(ck)?;
                        }
                        if done {
                            w.delete(&k)?;
                        }
                        Ok(())
                    })?;
                    freed += batch.len() as u64;
                    if done {
                        break;
                    }
                }
            }
        }
    }
}

/// Keys from `start` (inclusive) to `end` (exclusive, or to the end of the key space).
pub(crate) fn range_from<'a>(start: &'a [u8], end: Option<&'a [u8]>) -> KeyRange<'a> {
    use std::ops::Bound;
    KeyRange::new(Bound::Included(start), end.map_or(Bound::Unbounded, Bound::Excluded))
}

/// The smallest key after `key`.
pub(crate) fn next_key(key: &[u8]) -> Vec<u8> {
    let mut k = key.to_vec();
    k.push(0);
    k
}

/// Deletes every key starting with `prefix`.
pub(crate) fn delete_prefix(w: &mut dyn WriteTxn, prefix: &[u8]) -> Result<u64> {
    let end = crate::storage::prefix_end(prefix);
    w.delete_range(range_from(prefix, end.as_deref()))
}

/// Scans every key starting with `prefix` in pages of `page`, calling `f` on each entry;
/// stops early when `f` returns `false`.
pub(crate) fn for_each_prefixed(
    r: &dyn KvRead,
    prefix: &[u8],
    page: usize,
    mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
) -> Result<()> {
    let end = crate::storage::prefix_end(prefix);
    let mut from = prefix.to_vec();
    loop {
        let batch = r.scan(range_from(&from, end.as_deref()), page)?;
        let full = batch.len() == page;
        for (k, v) in &batch {
            if !f(k, v)? {
                return Ok(());
            }
        }
        match batch.last() {
            Some((k, _)) if full => from = next_key(k),
            _ => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::data::keys;

    /// A damaged id counter stops the open, which would otherwise hand out the ids of stored
    /// segments again (new chunks written over old ones); the counter of earlier releases (8
    /// bytes, no seal) is read and written back sealed.
    #[test]
    #[allow(clippy::unwrap_used)]
    fn a_damaged_id_counter_stops_the_open_and_an_old_one_is_sealed() {
        use crate::data::records::{decode_idgen, encode_idgen};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.keystone");
        let counter = |db: &crate::Datastore| db.engine.read(|r| Ok(r.get(&keys::idgen())?.unwrap().to_vec())).unwrap();
        let db = crate::Datastore::open(&path).unwrap();
        db.create_bucket("bkt").unwrap().put_bytes("k", vec![1u8; 50_000]).unwrap();
        let hi = decode_idgen(&counter(&db)).unwrap();
        assert_eq!(counter(&db).len(), 12);
        // The form earlier releases wrote: read, and sealed at the next open.
        db.engine.test_write(|w| w.put(&keys::idgen(), &hi.to_be_bytes())).unwrap();
        drop(db);
        let db = crate::Datastore::open(&path).unwrap();
        assert_eq!(counter(&db), encode_idgen(hi + 1));
        // Damaged lower by one bit: refused, naming what was wrong and what to do.
        let mut bad = encode_idgen(hi + 1);
        bad[7] ^= 1;
        db.engine.test_write(|w| w.put(&keys::idgen(), &bad)).unwrap();
        drop(db);
        let e = crate::Datastore::open(&path).unwrap_err();
        assert!(matches!(&e, crate::Error::Corrupted { reason, .. } if reason.contains("salvage")), "{e:?}");
    }

    /// A chunk size no segment can record (it holds a u32) is lowered at open, not a panic at
    /// open nor objects stored under a chunk size that does not describe them.
    #[test]
    #[allow(clippy::unwrap_used)]
    fn a_chunk_size_larger_than_a_segment_records_is_lowered_at_open() {
        for size in [usize::MAX, u32::MAX as usize + 1_001] {
            let db = crate::Datastore::builder().chunk_size(size).inline_threshold(100).in_memory().unwrap();
            assert!(u32::try_from(db.engine.cfg.chunk_size).is_ok());
            let b = db.create_bucket("bkt").unwrap();
            let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
            b.put_bytes("k", &body).unwrap();
            assert_eq!(b.get_bytes("k").unwrap(), body);
            assert_eq!(b.get_range("k", 9_000..9_010).unwrap(), &body[9_000..9_010]);
        }
    }
}

#[cfg(test)]
mod reclaim_tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use crate::data::keys;
    use crate::data::records::StagePurpose;
    use crate::staged::Staged;

    /// An upload left staged (a process that stopped mid-upload) with more chunks than a
    /// transaction may delete: `reclaim_staged` freed it in one transaction, which a limited
    /// backend refused, so `gc` failed for ever. Now its segments are queued and freed in
    /// bounded transactions.
    /// A store with 1,000-byte chunks and uploads flushed every 4,000 bytes, on a backend
    /// that takes 64 operations per transaction, and its bucket `bkt`.
    fn small_store() -> crate::Datastore {
        let db = crate::Datastore::builder()
            .chunk_size(1000)
            .inline_threshold(100)
            .upload_batch_size(4000)
            .open_reference_map(1100, 64, 1 << 20)
            .unwrap();
        db.create_bucket("bkt").unwrap();
        db
    }

    #[test]
    fn a_staged_upload_larger_than_a_transaction_is_reclaimed() {
        let db = small_store();
        let id = db.engine.next_id().unwrap();
        let mut staged = Staged::new(&db.engine, "bkt", "k", StagePurpose::Put, id).unwrap();
        for i in 0..200 {
            staged.push(keys::chunk("bkt", id, i), Arc::new(vec![7u8; 100])).unwrap();
        }
        // The process stops: no cleanup, and the upload is no longer in flight.
        std::mem::forget(staged);
        db.engine.active.lock().unwrap().remove(&id);
        let report = db.gc().unwrap();
        // Those flushed (in batches of half a transaction): more than one transaction takes.
        assert_eq!(report.uploads_reclaimed, 1);
        assert!(report.chunks_freed > 64, "{report:?}");
        assert!(db.verify().unwrap().is_clean());
    }

    /// A segment added after the upload's first batch (a piece of its tail) is named by the
    /// staging record from the next batch on: a process that stops after that batch leaves
    /// its chunks to recovery, not leaked.
    #[test]
    fn a_segment_added_after_the_first_batch_is_freed_by_recovery() {
        let db = small_store();
        let id = db.engine.next_id().unwrap();
        let mut staged = Staged::new(&db.engine, "bkt", "k", StagePurpose::Put, id).unwrap();
        // Two batches of 4,000 bytes: the staging record is written with the first.
        for i in 0..8 {
            staged.push(keys::chunk("bkt", id, i), Arc::new(vec![7u8; 1000])).unwrap();
        }
        let piece = db.engine.next_id().unwrap();
        staged.add_segment(piece).unwrap();
        for i in 0..4 {
            staged.push(keys::chunk("bkt", piece, i), Arc::new(vec![8u8; 1000])).unwrap();
        }
        // The process stops: no cleanup, and the upload is no longer in flight.
        std::mem::forget(staged);
        db.engine.active.lock().unwrap().retain(|s| ![id, piece].contains(s));
        let report = db.gc().unwrap();
        assert_eq!((report.uploads_reclaimed, report.chunks_freed), (1, 12), "{report:?}");
        assert!(db.verify().unwrap().is_clean());
    }
}
