//! `gc` and `compact`, with the reports they return, and the sweep for segments nothing
//! refers to (shared with `verify`).

use std::collections::HashSet;

use crate::data::keys::{self, Book};
use crate::data::records::{Manifest, Owner, PartRecord, StageRecord, gc_record};
use crate::engine::{Engine, for_each_prefixed, range_from};
use crate::error::{Error, Result};
use crate::objects;
use crate::storage::{KvRead, prefix_end};

/// What [`Datastore::gc`](crate::Datastore::gc) reclaimed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Abandoned streaming uploads freed.
    pub uploads_reclaimed: u64,
    /// Chunks deleted.
    pub chunks_freed: u64,
}

/// What [`Datastore::compact`](crate::Datastore::compact) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// File size before, bytes.
    pub size_before: u64,
    /// File size after, bytes.
    pub size_after: u64,
    /// Small objects stored in pack records after the compact (see
    /// [`Datastore::compact`](crate::Datastore::compact)).
    pub packed_objects: u64,
    /// Pack records holding them.
    pub pack_records: u64,
    /// Manifests of earlier releases (format versions 1 and 2) written back as this release's
    /// (version 3, sealed with their key): the objects this `compact` upgraded (docs/design.md,
    /// "The store's format"). 0 once every object has been written or compacted by this release.
    pub resealed_manifests: u64,
}

/// The segments of one bucket that something refers to.
pub(crate) struct Refs {
    pub segs: HashSet<u64>,
    /// False once a record did not decode: what it refers to is unknown.
    pub complete: bool,
}

impl Refs {
    pub(crate) fn new() -> Refs {
        Refs { segs: HashSet::new(), complete: true }
    }

    /// Adds the segments of one manifest record.
    pub(crate) fn add_manifest(&mut self, v: &[u8], owner: Owner<'_>) {
        match Manifest::decode_head(v, owner) {
            Ok(m) => self.segs.extend(m.segments().iter().map(|s| s.id)),
            Err(_) => self.complete = false,
        }
    }

    /// Adds the segments of `bucket`'s manifests, on their own or packed.
    pub(crate) fn add_manifests(&mut self, r: &dyn KvRead, bucket: &str) -> Result<()> {
        for_each_prefixed(r, &keys::objects_prefix(bucket), 256, |k, v| {
            match objects::record_objects(bucket, k, v) {
                Ok(objects) => objects.for_each(|(key, m)| self.add_manifest(m, Owner { bucket, key })),
                Err(_) => self.complete = false,
            }
            Ok(self.complete)
        })
    }

    /// Adds the segments of parts, uploads in flight and queued frees.
    pub(crate) fn add_bookkeeping(&mut self, r: &dyn KvRead, bucket: &str) -> Result<()> {
        for_each_prefixed(r, &Book::Part.in_bucket(bucket), 1000, |_, v| {
            match PartRecord::decode(v) {
                Ok(p) => _ = self.segs.insert(p.seg.id),
                Err(_) => self.complete = false,
            }
            Ok(true)
        })?;
        for_each_prefixed(r, &Book::Stage.in_bucket(bucket), 1000, |k, v| {
            // Recovery frees the segment named by the key when the record does not decode.
            match (StageRecord::decode(v), Book::Stage.parse(k)) {
                (Ok(s), _) => self.segs.extend(s.segs),
                (Err(_), Some((_, id, _))) => _ = self.segs.insert(id),
                (Err(_), None) => self.complete = false,
            }
            Ok(true)
        })?;
        for_each_prefixed(r, &Book::Gc.in_bucket(bucket), 1000, |k, _| {
            if let Some((_, id, _)) = Book::Gc.parse(k) {
                self.segs.insert(id);
            }
            Ok(true)
        })
    }
}

/// Walks the segments of `bucket` (one seek per segment) and returns those that nothing in
/// `refs` and no upload in flight in this process refers to.
pub(crate) fn orphan_segments(r: &dyn KvRead, bucket: &str, refs: &HashSet<u64>, engine: &Engine) -> Result<Vec<u64>> {
    let data = keys::bucket_data_prefix(bucket);
    let end = prefix_end(&data);
    let mut from = data.clone();
    let mut orphans = Vec::new();
    loop {
        let page = r.scan(range_from(&from, end.as_deref()), 1)?;
        let Some((k, _)) = page.first() else { return Ok(orphans) };
        let Some((_, seg, _)) = keys::parse_chunk(k) else {
            return Err(Error::Corrupted {
                bucket: Some(bucket.into()),
                key: None,
                reason: "malformed chunk key".into(),
            });
        };
        let active = engine.active.lock().map_err(|_| crate::engine::lock_err())?.contains(&seg);
        if !active && !refs.contains(&seg) {
            orphans.push(seg);
        }
        match prefix_end(&keys::segment_prefix(bucket, seg)) {
            Some(next) => from = next,
            None => return Ok(orphans),
        }
    }
}

/// Runs the sweeps that deleting or overwriting a damaged record asked for (see
/// `objects::Current::Damaged`): queues a free for every segment of the bucket that nothing
/// refers to.
///
/// The walk reads a snapshot, so writers do not wait for it. That is sound because every
/// commit leaves each chunk referred to — by a manifest, part, staging record or queued free,
/// written in the same commit as the segment's first chunks and handed on in one commit (a
/// staging record to its manifest, parts to theirs) — except where a damaged record was removed:
/// a segment with chunks that nothing refers to in one snapshot is never referred to again.
/// The request is deleted only if it is still the one the walk served (requests count up), so a
/// request made during the walk is served by another.
///
/// A bucket with another record that does not decode (or a chunk key that does not parse) is
/// left as it is — what that record refers to cannot be known — and the request is dropped, so
/// further damage never stops frees or opening the store; deleting or overwriting a damaged
/// object asks for a sweep again. Returns the segments queued; `drain_gc` deletes their chunks.
pub(crate) fn sweep(engine: &Engine) -> Result<u64> {
    let mut queued = 0;
    while let Some(walk) = SweepWalk::next(engine)? {
        queued += walk.queue(engine)?;
    }
    Ok(queued)
}

/// One sweep request and what a walk of a snapshot found for it.
struct SweepWalk {
    marker: Vec<u8>,
    /// The request as the walk saw it.
    seen: Vec<u8>,
    bucket: String,
    orphans: Vec<u64>,
}

impl SweepWalk {
    /// Walks the bucket of the first request, if there is one.
    fn next(engine: &Engine) -> Result<Option<SweepWalk>> {
        let all = Book::Sweep.all();
        let end = prefix_end(&all);
        let snap = engine.snapshot()?;
        let Some((marker, seen)) = snap.scan(range_from(&all, end.as_deref()), 1)?.into_iter().next() else {
            return Ok(None);
        };
        let bucket = Book::Sweep.parse(&marker).map(|(bucket, _, _)| bucket).unwrap_or_default();
        let orphans = match unreferenced(snap.as_ref(), &bucket, engine) {
            Ok(Some(orphans)) => orphans,
            Ok(None) => Vec::new(),
            Err(e) if e.is_corruption() => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(Some(SweepWalk { marker, seen: seen.to_vec(), bucket, orphans }))
    }

    /// Queues the frees (as many as a transaction may hold: queued frees are references, so
    /// the next walk resumes there; redb has no limit) and deletes the request if it is still
    /// the one walked for. Returns the segments queued.
    fn queue(&self, engine: &Engine) -> Result<u64> {
        let budget = (engine.kv.limits().max_txn_ops / 4).max(1);
        engine.write_alone("sweeping a bucket", crate::storage::Commit::Durable, |w| {
            for seg in self.orphans.iter().take(budget) {
                w.put(&Book::Gc.key(&self.bucket, *seg), &gc_record())?;
            }
            let served = w.get(&self.marker)?.is_some_and(|now| *now == *self.seen);
            if served && self.orphans.len() <= budget {
                w.delete(&self.marker)?;
            }
            Ok(self.orphans.len().min(budget) as u64)
        })
    }
}

/// The segments of `bucket` nothing refers to, or `None` when a record of it does not decode
/// (or the bucket is gone: its chunks were freed with it).
fn unreferenced(r: &dyn KvRead, bucket: &str, engine: &Engine) -> Result<Option<Vec<u64>>> {
    if !objects::bucket_exists(r, bucket)? {
        return Ok(None);
    }
    let mut refs = Refs::new();
    refs.add_manifests(r, bucket)?;
    if refs.complete {
        refs.add_bookkeeping(r, bucket)?;
    }
    if !refs.complete {
        return Ok(None);
    }
    orphan_segments(r, bucket, &refs.segs, engine).map(Some)
}

pub(crate) fn gc(engine: &Engine) -> Result<GcReport> {
    let (uploads, chunks) = engine.reclaim_staged()?;
    // End with a durable commit even when there was nothing to free: with relaxed durability
    // `gc` is documented as the call that puts earlier acknowledged writes on disk.
    engine.write_alone("gc", crate::storage::Commit::Durable, |_| Ok(()))?;
    Ok(GcReport { uploads_reclaimed: uploads, chunks_freed: chunks })
}

pub(crate) fn compact(engine: &Engine) -> Result<CompactReport> {
    let size_before = engine.kv.space()?.file_size;
    // Names only: a damaged bucket record is `verify`'s to report, not a reason to stop.
    let buckets = engine.read(objects::bucket_records)?;
    let mut packed = crate::packing::Packed::default();
    for (name, _) in &buckets {
        packed.add(crate::packing::pack_bucket(engine, name)?);
    }
    engine.kv.compact()?;
    Ok(CompactReport {
        size_before,
        size_after: engine.kv.space()?.file_size,
        packed_objects: packed.objects,
        pack_records: packed.records,
        resealed_manifests: packed.resealed,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::data::keys::{self, Book};
    use crate::data::records::gc_record;
    use crate::engine::for_each_prefixed;

    /// On a backend whose transactions hold few operations, a sweep queues the frees over
    /// several transactions (each walk counts the frees queued before as references) and ends.
    #[test]
    fn a_sweep_larger_than_a_transaction_finishes_over_several() {
        let db = crate::Datastore::builder().open_reference_map(65_536, 8, 1 << 20).unwrap();
        let b = db.create_bucket("bkt").unwrap();
        b.put_bytes("live", vec![7u8; 20_000]).unwrap();
        // Twelve segments no record refers to, one chunk each, and a request to sweep.
        for seg in 0..12u64 {
            db.engine.test_write(|w| w.put(&keys::chunk("bkt", (1 << 60) + seg, 0), b"x")).unwrap();
        }
        db.engine.test_write(|w| w.put(&Book::Sweep.key("bkt", 0), &gc_record())).unwrap();
        assert_eq!(db.verify().unwrap().orphan_segments, 12);
        db.engine.drain_gc().unwrap();
        let report = db.verify().unwrap();
        assert!(report.is_clean(), "{report:?}");
        let left = db
            .engine
            .read(|r| {
                let mut n = 0;
                for_each_prefixed(r, &Book::Sweep.all(), 10, |_, _| {
                    n += 1;
                    Ok(true)
                })?;
                Ok(n)
            })
            .unwrap();
        assert_eq!(left, 0, "the request is done");
        assert_eq!(b.get_bytes("live").unwrap(), vec![7u8; 20_000]);
    }

    /// Bytes of object `i` (distinct per object, chunked at the sizes below).
    fn body(i: usize) -> Vec<u8> {
        (0..20_000 + i * 7).map(|n| (n * 31 + i) as u8).collect()
    }

    /// Invariant 7, on which a sweep over a snapshot rests: every commit leaves each chunk
    /// referred to. Sweeps run back to back while streaming puts, multipart uploads,
    /// transactions, copies and deletes write chunked objects; none may free a live chunk.
    #[test]
    fn sweeps_alongside_every_kind_of_chunked_write_free_nothing_live() {
        let db = crate::Datastore::builder()
            .chunk_size(4096)
            .inline_threshold(256)
            .upload_batch_size(8192)
            .in_memory()
            .unwrap();
        db.create_bucket("bkt").unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        let sweeps = std::thread::scope(|s| {
            let sweeper = s.spawn(|| {
                let mut n = 0;
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    db.engine.test_write(|w| crate::objects::request_sweep(w, "bkt")).unwrap();
                    db.engine.drain_gc().unwrap();
                    n += 1;
                }
                n
            });
            let writers: Vec<_> = (0..4)
                .map(|t| {
                    let db = db.clone();
                    s.spawn(move || {
                        let b = db.bucket("bkt").unwrap();
                        for round in 0..6 {
                            let i = t * 100 + round;
                            let key = |kind: &str| format!("{kind}-{i}");
                            b.put_reader(&key("stream"), &body(i)[..], crate::PutOptions::default()).unwrap();
                            let id = b.create_upload(&key("mpu"), crate::ObjectMeta::default()).unwrap();
                            let part = b.upload_part(&id, 1, &body(i + 1)[..]).unwrap();
                            let parts = [crate::CompletedPart { part_number: 1, etag: part.etag }];
                            b.complete_upload(&id, &parts, &crate::CompleteOptions::default()).unwrap();
                            db.transaction(|tx| tx.bucket("bkt")?.put_bytes(&key("txn"), body(i + 2)).map(|_| ()))
                                .unwrap();
                            b.copy(&key("stream"), &key("copy")).unwrap();
                            b.put_reader(&key("gone"), &body(i + 3)[..], crate::PutOptions::default()).unwrap();
                            b.delete(&key("gone")).unwrap();
                        }
                    })
                })
                .collect();
            // Every writer ends (a failed one too) before the sweeper is stopped.
            let results: Vec<_> = writers.into_iter().map(std::thread::ScopedJoinHandle::join).collect();
            done.store(true, std::sync::atomic::Ordering::Release);
            for r in results {
                if let Err(panic) = r {
                    std::panic::resume_unwind(panic);
                }
            }
            sweeper.join().unwrap()
        });
        assert!(sweeps > 0);
        let b = db.bucket("bkt").unwrap();
        for t in 0..4 {
            for round in 0..6 {
                let i = t * 100 + round;
                assert_eq!(b.get_bytes(&format!("stream-{i}")).unwrap(), body(i));
                assert_eq!(b.get_bytes(&format!("mpu-{i}")).unwrap(), body(i + 1));
                assert_eq!(b.get_bytes(&format!("txn-{i}")).unwrap(), body(i + 2));
                assert_eq!(b.get_bytes(&format!("copy-{i}")).unwrap(), body(i));
            }
        }
        assert!(db.verify().unwrap().is_clean());
    }

    /// A sweep request made while a walk for an earlier one is under way is not lost: the walk
    /// queues what it found but leaves the newer request, which the next walk serves.
    #[test]
    fn a_request_made_during_a_walk_gets_a_walk_of_its_own() {
        let db = crate::Datastore::in_memory().unwrap();
        db.create_bucket("bkt").unwrap();
        let orphan = |seg: u64| {
            db.engine.test_write(|w| w.put(&keys::chunk("bkt", (1 << 60) + seg, 0), b"x")).unwrap();
        };
        orphan(1);
        db.engine.test_write(|w| crate::objects::request_sweep(w, "bkt")).unwrap();
        let walk = super::SweepWalk::next(&db.engine).unwrap().unwrap();
        assert_eq!(walk.orphans.len(), 1);
        // Meanwhile another damaged record goes, leaving its segment and asking again.
        orphan(2);
        db.engine.test_write(|w| crate::objects::request_sweep(w, "bkt")).unwrap();
        assert_eq!(walk.queue(&db.engine).unwrap(), 1);
        assert_eq!(db.verify().unwrap().orphan_segments, 1, "the second segment waits for its walk");
        db.engine.drain_gc().unwrap();
        assert!(db.verify().unwrap().is_clean());
    }
}
