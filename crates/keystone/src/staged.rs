//! A streamed upload's chunks in flight: buffered, flushed in bounded batches under a staging
//! record, and freed if the upload never finishes.

use std::sync::Arc;

use crate::data::keys::Book;
use crate::data::records::{StagePurpose, StageRecord};
use crate::engine::{Engine, lock_err};
use crate::error::{Error, Result};
use crate::objects;
use crate::storage::{Commit, WriteTxn};
use crate::types::now_nanos;

/// Chunks written under one staging record, flushed in batches of bounded size, each its own
/// (non-durable) commit, so the write lock is never held while the caller's reader is read.
pub(crate) struct Staged<'e> {
    engine: &'e Engine,
    bucket: String,
    /// When the bucket the upload goes to was created: a bucket of its name created after
    /// this one was deleted is another bucket.
    created: u64,
    id: u64,
    record: StageRecord,
    batch: Vec<(Vec<u8>, Arc<Vec<u8>>)>,
    batch_bytes: usize,
    flushed: bool,
    /// The record gained a segment since it was last written.
    record_stale: bool,
    done: bool,
}

impl<'e> Staged<'e> {
    /// An upload into `bucket`, refused (`NoSuchBucket`) before the rest of its stream is read
    /// if there is no such bucket.
    pub(crate) fn new(engine: &'e Engine, bucket: &str, key: &str, purpose: StagePurpose, id: u64) -> Result<Self> {
        let created =
            engine.read(|r| objects::bucket_record(r, bucket))?.ok_or_else(|| Error::no_such_bucket(bucket))?.created;
        engine.active.lock().map_err(|_| lock_err())?.insert(id);
        Ok(Staged {
            engine,
            bucket: bucket.to_owned(),
            created,
            id,
            record: StageRecord { purpose, key: key.to_owned(), started: now_nanos(), segs: vec![id] },
            batch: Vec::new(),
            batch_bytes: 0,
            flushed: false,
            record_stale: false,
            done: false,
        })
    }

    pub(crate) fn engine(&self) -> &'e Engine {
        self.engine
    }

    /// Adds segment `id` to the upload (a piece of its tail): registered as in flight at
    /// once, so no sweep frees its chunks, and named by the staging record from the next
    /// batch on, so recovery frees them if the upload never finishes.
    pub(crate) fn add_segment(&mut self, id: u64) -> Result<()> {
        self.engine.active.lock().map_err(|_| lock_err())?.insert(id);
        self.record.segs.push(id);
        self.record_stale = true;
        Ok(())
    }

    pub(crate) fn push(&mut self, key: Vec<u8>, record: Arc<Vec<u8>>) -> Result<()> {
        self.batch_bytes += record.len();
        self.batch.push((key, record));
        if self.batch_bytes >= self.engine.cfg.batch_bytes || self.batch.len() >= self.engine.cfg.batch_chunks {
            self.flush()?;
        }
        Ok(())
    }

    fn stage_key(&self) -> Vec<u8> {
        Book::Stage.key(&self.bucket, self.id)
    }

    fn flush(&mut self) -> Result<()> {
        let mut w = self.engine.begin_write("a streaming write through a Bucket handle")?;
        let stage = self.stage_key();
        check_place(w.as_mut(), &self.bucket, self.created, self.flushed.then_some(&stage))?;
        if !self.flushed || self.record_stale {
            w.put(&stage, &self.record.encode())?;
        }
        for (k, v) in &self.batch {
            w.put(k, v)?;
        }
        w.commit(Commit::Deferred)?;
        self.flushed = true;
        self.record_stale = false;
        self.batch.clear();
        self.batch_bytes = 0;
        Ok(())
    }

    /// Runs `publish`, writes the rest of the chunks and removes the staging record, all in
    /// one acknowledged commit — group-committed (`Engine::write`), so that concurrent writers
    /// of chunked objects share an fsync as small writes do.
    ///
    /// In a shared commit, a write that fails after its first change fails every writer in
    /// it; one refused before it changes anything fails alone. So the checks come first: the
    /// bucket (or, once batches were flushed, the staging record, gone with a deleted
    /// bucket), then `publish`, which must check everything it refuses for (the key, the
    /// condition, the upload) before its first write; the chunks follow. `publish` may run
    /// again after a rollback (a shared transaction too large for the backend).
    pub(crate) fn finish<R: Send + 'static>(
        mut self,
        mut publish: impl FnMut(&mut dyn WriteTxn) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let batch = std::mem::take(&mut self.batch);
        let stage = self.flushed.then(|| self.stage_key());
        let (bucket, created) = (self.bucket.clone(), self.created);
        let r = self.engine.write("a streaming write through a Bucket handle", move |w| {
            // Nothing flushed: everything fits in one commit, no staging record is needed.
            check_place(w, &bucket, created, stage.as_deref())?;
            let r = publish(w)?;
            for (k, v) in &batch {
                w.put(k, v)?;
            }
            if let Some(k) = &stage {
                w.delete(k)?;
            }
            Ok(r)
        })?;
        self.done = true;
        Ok(r)
    }
}

/// Checks, before a batch is written, that the upload still has somewhere to go: once batches
/// were flushed, its staging record `stage` (deleted with the bucket); before, the bucket it
/// started in, created at `created` (not one of the same name created after it was deleted).
fn check_place(w: &mut dyn WriteTxn, bucket: &str, created: u64, stage: Option<&[u8]>) -> Result<()> {
    let there = match stage {
        Some(k) => w.get(k)?.is_some(),
        None => objects::bucket_record(w, bucket)?.is_some_and(|b| b.created == created),
    };
    if there { Ok(()) } else { Err(Error::no_such_bucket(bucket)) }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        if !self.done && self.flushed {
            // Best effort: if this fails, recovery at the next open (or `gc`) frees it.
            let segs = self.record.segs.clone();
            let key = self.stage_key();
            let bucket = self.bucket.clone();
            let limits = self.engine.kv.limits();
            let queued = self.engine.write_alone("freeing an unfinished upload", Commit::Deferred, |w| {
                // Gone with its bucket (and its chunks with it), or never committed.
                if w.get(&key)?.is_none() {
                    return Ok(false);
                }
                let queued = objects::free_staged_segments(w, limits, &bucket, &segs)?.is_none();
                w.delete(&key)?;
                Ok(queued)
            });
            self.engine.free_after_commit(matches!(queued, Ok(true)));
        }
        if let Ok(mut active) = self.engine.active.lock() {
            for id in &self.record.segs {
                active.remove(id);
            }
        }
    }
}
