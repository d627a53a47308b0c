//! `verify` and `remove_corrupt`: re-reading every object against its checksums, and
//! deleting what is damaged.

use std::io;
use std::sync::Arc;

use crate::data::chunking::hex;
use crate::data::keys::{self, Book};
use crate::data::records::{BucketRecord, Manifest, MpuRecord, Owner};
use crate::engine::{Engine, for_each_prefixed};
use crate::error::Result;
use crate::maintenance::{Refs, orphan_segments};
use crate::objects::{self, Lookup};
use crate::reader::ObjectReader;
use crate::storage::ReadTxn;
use crate::types::now_nanos;
use crate::upload::from_io;

/// An object that failed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptObject {
    /// Bucket name.
    pub bucket: String,
    /// Object key; empty for a damaged record of the bucket itself or of a multipart upload
    /// (`reason` says which).
    pub key: String,
    /// What was wrong.
    pub reason: String,
}

/// What [`Datastore::verify`](crate::Datastore::verify) found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Objects read.
    pub objects: u64,
    /// Bytes read and checked.
    pub bytes: u64,
    /// Objects whose bytes or records are damaged.
    pub corrupt: Vec<CorruptObject>,
    /// Segments of chunks that no object, part or pending upload refers to (leaked space).
    pub orphan_segments: u64,
    /// The storage engine's own integrity check, when it was asked for (see
    /// [`Datastore::check_engine_integrity`](crate::Datastore::check_engine_integrity));
    /// `verify` itself never runs it, because it may rewrite the file.
    pub engine_ok: Option<bool>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.orphan_segments == 0 && self.engine_ok != Some(false)
    }
}

fn check_object(snap: &Arc<dyn ReadTxn>, bucket: &str, key: &str, raw: &[u8]) -> Result<u64> {
    let m = Manifest::decode(raw, Owner { bucket, key }).map_err(|e| e.at(bucket, key))?;
    let info = objects::info(bucket, key, &m);
    let mut reader = ObjectReader::new(snap.clone(), info, m)?;
    io::copy(&mut reader, &mut io::sink()).map_err(from_io)
}

/// A corrupt object as `scan` found it, with the bytes that identify that version.
struct Finding {
    object: CorruptObject,
    remedy: Remedy,
    /// The damaged record (pack, bucket record), or the object's manifest record as found.
    bytes: Vec<u8>,
}

/// What `remove_corrupt` does about a finding.
enum Remedy {
    /// Deletes the object as `delete` does.
    Object,
    /// A damaged pack: the record under this key is removed whole (its objects cannot be told
    /// apart).
    WholeRecord(Vec<u8>),
    /// A damaged bucket record: replaced by a new one (the bucket's objects are kept; its
    /// creation time is lost).
    BucketRecord,
    /// A damaged multipart upload record: the upload (this id) is aborted, its parts freed.
    Upload(u64),
}

/// Re-reads every object of `only` (or of all buckets) and checks it.
pub(crate) fn verify(engine: &Engine, only: Option<&str>) -> Result<VerifyReport> {
    scan(engine, only).map(|(report, _)| report)
}

fn scan(engine: &Engine, only: Option<&str>) -> Result<(VerifyReport, Vec<Finding>)> {
    let snap = engine.snapshot()?;
    let mut report = VerifyReport::default();
    let mut findings = Vec::new();
    let records: Vec<(String, Vec<u8>)> = match only {
        Some(b) => match snap.get(&keys::bucket(b))? {
            Some(v) => vec![(b.to_owned(), v.to_vec())],
            None => return Err(crate::Error::no_such_bucket(b)),
        },
        None => objects::bucket_records(snap.as_ref())?,
    };
    let mut buckets = Vec::with_capacity(records.len());
    for (bucket, raw) in records {
        // A damaged bucket record is reported (with an empty key) and its objects verified
        // all the same.
        if let Err(e) = BucketRecord::decode(&raw) {
            let reason = format!("bucket record: {e}");
            let object = CorruptObject { bucket: bucket.clone(), key: String::new(), reason };
            report.corrupt.push(object.clone());
            findings.push(Finding { object, remedy: Remedy::BucketRecord, bytes: raw });
        }
        buckets.push(bucket);
    }
    for bucket in &buckets {
        let mut refs = Refs::new();
        let prefix = keys::objects_prefix(bucket);
        for_each_prefixed(snap.as_ref(), &prefix, 256, |k, v| {
            let objects = match objects::record_objects(bucket, k, v) {
                Ok(objects) => objects,
                Err(e) => {
                    // A damaged pack: its objects cannot be told apart, it counts as one.
                    refs.complete = false;
                    let key = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                    report.objects += 1;
                    let object = CorruptObject { bucket: bucket.clone(), key, reason: e.to_string() };
                    report.corrupt.push(object.clone());
                    findings.push(Finding { object, remedy: Remedy::WholeRecord(k.to_vec()), bytes: v.to_vec() });
                    return Ok(true);
                }
            };
            for (key, v) in objects {
                report.objects += 1;
                refs.add_manifest(v, Owner { bucket, key });
                match check_object(&snap, bucket, key, v) {
                    Ok(n) => report.bytes += n,
                    Err(e) => {
                        let object =
                            CorruptObject { bucket: bucket.clone(), key: key.to_owned(), reason: e.to_string() };
                        report.corrupt.push(object.clone());
                        // Only damage is removed; a failed read (I/O) is reported, not acted on.
                        if e.is_corruption() {
                            findings.push(Finding { object, remedy: Remedy::Object, bytes: v.to_vec() });
                        }
                    }
                }
            }
            Ok(true)
        })?;
        // Upload records that do not decode: the upload can never complete, and nothing but
        // an abort would free its parts.
        for_each_prefixed(snap.as_ref(), &Book::Mpu.in_bucket(bucket), 256, |k, v| {
            if let (Some((_, id, _)), Err(e)) = (Book::Mpu.parse(k), MpuRecord::decode(v)) {
                let reason = format!("record of multipart upload {}: {e}", hex(&id.to_be_bytes()));
                let object = CorruptObject { bucket: bucket.clone(), key: String::new(), reason };
                report.corrupt.push(object.clone());
                findings.push(Finding { object, remedy: Remedy::Upload(id), bytes: v.to_vec() });
            }
            Ok(true)
        })?;
        // With a manifest that does not decode, its segments would count as leaked: the damage
        // is reported once, as the corrupt object. (A damaged part or staging record is
        // reported through the segments it leaves unreferenced.)
        if refs.complete {
            let orphans = refs
                .add_bookkeeping(snap.as_ref(), bucket)
                .and_then(|()| orphan_segments(snap.as_ref(), bucket, &refs.segs, engine));
            match orphans {
                Ok(orphans) => report.orphan_segments += orphans.len() as u64,
                // A damaged index page under an object already reported corrupt (its chunks
                // sit there): the damage is reported once, through the object.
                Err(e) if e.is_corruption() && report.corrupt.iter().any(|c| &c.bucket == bucket) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok((report, findings))
}

/// What [`Datastore::remove_corrupt`](crate::Datastore::remove_corrupt) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoveReport {
    /// What verification found before anything was removed.
    pub found: VerifyReport,
    /// Corrupt objects deleted (a damaged pack counts as one, named by its last key), and
    /// damaged bucket records replaced by new ones (with an empty key; the bucket's objects
    /// are kept, its creation time is lost), and multipart uploads with a damaged record
    /// aborted (with an empty key; their parts freed).
    pub removed: Vec<CorruptObject>,
    /// Corrupt objects that changed after they were found (written again or deleted), and so
    /// were left alone.
    pub changed: Vec<CorruptObject>,
    /// Corrupt objects whose removal failed; `reason` says why.
    pub failed: Vec<CorruptObject>,
}

/// Verifies `only` (or every bucket), then deletes each corrupt object found — in a durable
/// transaction of its own, and only if it is still the version found. A damaged pack is
/// removed whole; a damaged bucket record is replaced by a new one; an upload whose record is
/// damaged is aborted.
pub(crate) fn remove_corrupt(engine: &Engine, only: Option<&str>) -> Result<RemoveReport> {
    let (found, findings) = scan(engine, only)?;
    remove(engine, RemoveReport { found, ..RemoveReport::default() }, findings)
}

/// Whether a finding was removed, and whether that left work for `drain_gc`.
enum Outcome {
    Removed { queued: bool },
    Changed,
}

fn remove(engine: &Engine, mut report: RemoveReport, findings: Vec<Finding>) -> Result<RemoveReport> {
    let limits = engine.kv.limits();
    let mut queued = false;
    for f in findings {
        let outcome = engine.write_alone("removing a damaged object", crate::storage::Commit::Durable, |w| {
            let (bucket, key) = (&f.object.bucket, &f.object.key);
            // Acts only on the record as it was found: one written again since is left alone.
            let found_as_is = |w: &mut dyn crate::storage::WriteTxn, k: &[u8]| {
                Ok::<_, crate::Error>(w.get(k)?.as_deref() == Some(f.bytes.as_slice()))
            };
            match &f.remedy {
                Remedy::BucketRecord => {
                    let record_key = keys::bucket(bucket);
                    if !found_as_is(w, &record_key)? {
                        return Ok(Outcome::Changed);
                    }
                    w.put(&record_key, &BucketRecord { created: now_nanos() }.encode())?;
                    Ok(Outcome::Removed { queued: false })
                }
                Remedy::Upload(id) => {
                    if !found_as_is(w, &Book::Mpu.key(bucket, *id))? {
                        return Ok(Outcome::Changed);
                    }
                    Ok(Outcome::Removed { queued: crate::multipart::drop_upload(w, engine, bucket, *id, &[])? })
                }
                Remedy::WholeRecord(record_key) => {
                    if !found_as_is(w, record_key)? {
                        return Ok(Outcome::Changed);
                    }
                    // Most likely a pack (inline objects only), but a record that only looks
                    // like one may have been a chunked object's manifest: sweep.
                    w.delete(record_key)?;
                    Ok(Outcome::Removed { queued: objects::request_sweep(w, bucket)? })
                }
                Remedy::Object => {
                    let found = objects::lookup(w, bucket, key, |m| Ok(m == f.bytes.as_slice()))?;
                    if !matches!(found, Lookup::Hit { value: true, .. }) {
                        return Ok(Outcome::Changed);
                    }
                    Ok(Outcome::Removed { queued: objects::delete_object(w, limits, bucket, key)? })
                }
            }
        });
        match outcome {
            Ok(Outcome::Removed { queued: q }) => {
                queued |= q;
                report.removed.push(f.object);
            }
            Ok(Outcome::Changed) => report.changed.push(f.object),
            Err(e) => report.failed.push(CorruptObject { reason: format!("could not remove it: {e}"), ..f.object }),
        }
    }
    if queued {
        engine.drain_gc()?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
