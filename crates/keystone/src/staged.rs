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
    id: u64,
    record: StageRecord,
    record_dirty: bool,
    batch: Vec<(Vec<u8>, Arc<Vec<u8>>)>,
    batch_bytes: usize,
    flushed: bool,
    done: bool,
}

impl<'e> Staged<'e> {
    pub(crate) fn new(engine: &'e Engine, bucket: &str, key: &str, purpose: StagePurpose, id: u64) -> Result<Self> {
        engine.active.lock().map_err(|_| lock_err())?.insert(id);
        Ok(Staged {
            engine,
            bucket: bucket.to_owned(),
            id,
            record: StageRecord { purpose, key: key.to_owned(), started: now_nanos(), segs: vec![id] },
            record_dirty: true,
            batch: Vec::new(),
            batch_bytes: 0,
            flushed: false,
            done: false,
        })
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

    /// Writes what is buffered (and the staging record) into `w`.
    fn write_into(&mut self, w: &mut dyn WriteTxn) -> Result<()> {
        if self.flushed {
            // The bucket (and with it this record) may have been deleted meanwhile.
            if w.get(&self.stage_key())?.is_none() {
                return Err(Error::no_such_bucket(&self.bucket));
            }
        } else {
            objects::require_bucket(w, &self.bucket)?;
        }
        if self.record_dirty {
            w.put(&self.stage_key(), &self.record.encode())?;
        }
        for (k, v) in &self.batch {
            w.put(k, v)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let mut w = self.engine.begin_write("a streaming write through a Bucket handle")?;
        self.write_into(w.as_mut())?;
        w.commit(Commit::Deferred)?;
        self.flushed = true;
        self.record_dirty = false;
        self.batch.clear();
        self.batch_bytes = 0;
        Ok(())
    }

    /// Writes the rest, removes the staging record and runs `publish`, all in one
    /// acknowledged commit.
    pub(crate) fn finish<R>(mut self, publish: impl FnOnce(&mut dyn WriteTxn) -> Result<R>) -> Result<R> {
        let mut w = self.engine.begin_write("a streaming write through a Bucket handle")?;
        let first_commit = !self.flushed;
        if first_commit {
            // Everything fits in one commit: no staging record is needed at all.
            objects::require_bucket(w.as_mut(), &self.bucket)?;
            for (k, v) in &self.batch {
                w.put(k, v)?;
            }
        } else {
            self.record_dirty = false;
            self.write_into(w.as_mut())?;
            w.delete(&self.stage_key())?;
        }
        let r = publish(w.as_mut())?;
        w.commit(self.engine.ack_mode())?;
        self.done = true;
        Ok(r)
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        if !self.done && self.flushed {
            // Best effort: if this fails, recovery at the next open (or `gc`) frees it.
            let segs = self.record.segs.clone();
            let key = self.stage_key();
            let bucket = self.bucket.clone();
            let limits = self.engine.kv.limits();
            let queued = self.engine.write_alone(Commit::Deferred, |w| {
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
            active.remove(&self.id);
        }
    }
}
