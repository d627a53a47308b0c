//! `verify` and `remove_corrupt`: re-reading every object against its checksums, and
//! deleting what is damaged.

use std::io;
use std::sync::Arc;

use crate::data::chunking::hex;
use crate::data::keys::{self, Book};
use crate::data::records::{BucketRecord, Manifest, MpuRecord};
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
    let m = Manifest::decode(raw).map_err(|e| e.at(bucket, key))?;
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
                refs.add_manifest(v);
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
        let outcome = engine.write_alone(crate::storage::Commit::Durable, |w| {
            let (bucket, key) = (&f.object.bucket, &f.object.key);
            match &f.remedy {
                Remedy::BucketRecord => {
                    let record_key = keys::bucket(bucket);
                    if w.get(&record_key)?.as_deref() != Some(f.bytes.as_slice()) {
                        return Ok(Outcome::Changed);
                    }
                    w.put(&record_key, &BucketRecord { created: now_nanos() }.encode())?;
                    Ok(Outcome::Removed { queued: false })
                }
                Remedy::Upload(id) => {
                    if w.get(&Book::Mpu.key(bucket, *id))?.as_deref() != Some(f.bytes.as_slice()) {
                        return Ok(Outcome::Changed);
                    }
                    Ok(Outcome::Removed { queued: crate::multipart::drop_upload(w, engine, bucket, *id, &[])? })
                }
                Remedy::WholeRecord(record_key) => {
                    if w.get(record_key)?.as_deref() != Some(f.bytes.as_slice()) {
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
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::data::keys;
    use crate::storage::Commit;

    /// One bucket record that does not decode (here truncated) stopped `verify`, `compact`
    /// and `remove_corrupt` for every bucket, and `delete_bucket` of its name; `salvage`
    /// copied it as it was and then failed in its own `remove_corrupt`. Now `verify` reports
    /// it (empty key) and checks its objects all the same, `compact` and `delete_bucket` run,
    /// `remove_corrupt` replaces the record, and `salvage` creates the bucket again.
    /// `list_buckets` still fails, naming the bucket, rather than leave it out.
    #[test]
    fn a_damaged_bucket_record_is_reported_replaced_and_salvaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.keystone");
        let damage = |db: &crate::Datastore, name: &str| {
            db.engine.write_alone(Commit::Durable, |w| w.put(&keys::bucket(name), &[1, 0, 0])).unwrap();
        };
        {
            let db = crate::Datastore::open(&path).unwrap();
            db.create_bucket("good").unwrap().put_bytes("k", b"kept").unwrap();
            db.create_bucket("bad").unwrap().put_bytes("x", b"y").unwrap();
            db.create_bucket("gone").unwrap().put_bytes("x", b"y").unwrap();
            damage(&db, "bad");
            damage(&db, "gone");
            let e = db.list_buckets().unwrap_err();
            assert!(matches!(&e, crate::Error::Corrupted { bucket: Some(b), .. } if b == "bad"), "{e:?}");
            db.delete_bucket("gone").unwrap();
            let report = db.verify().unwrap();
            assert_eq!(report.objects, 2);
            assert_eq!(report.corrupt.len(), 1, "{report:?}");
            assert_eq!((report.corrupt[0].bucket.as_str(), report.corrupt[0].key.as_str()), ("bad", ""));
            assert_eq!(db.verify_bucket("bad").unwrap().corrupt.len(), 1);
            db.compact().unwrap();
        }
        let out = dir.path().join("out.keystone");
        let salvaged = crate::Datastore::salvage(&path, &out).unwrap();
        assert_eq!(salvaged.buckets_recreated, ["bad"]);
        assert!(salvaged.verified.is_clean(), "{salvaged:?}");
        let copy = crate::Datastore::open(&out).unwrap();
        assert_eq!(copy.bucket("bad").unwrap().get_bytes("x").unwrap(), b"y");

        let db = crate::Datastore::open(&path).unwrap();
        let removed = db.remove_corrupt(None).unwrap();
        assert_eq!(removed.removed.len(), 1, "{removed:?}");
        assert_eq!(db.list_buckets().unwrap().len(), 2);
        assert_eq!(db.bucket("bad").unwrap().get_bytes("x").unwrap(), b"y");
        assert!(db.verify().unwrap().is_clean());
    }

    /// A multipart upload record that does not decode used to leak its parts for ever,
    /// unreported: `list_uploads` failed (so its id could not be found), the age-based abort
    /// skipped it, `verify` did not look at upload records and `remove_corrupt` left it.
    /// Now the listing leaves it out, `verify` reports it, and `remove_corrupt`, the
    /// age-based abort (whatever the age: the upload can never complete) and an explicit
    /// abort each free its parts.
    #[test]
    fn a_damaged_upload_record_is_reported_and_aborted() {
        use crate::data::keys::Book;
        let db = crate::Datastore::builder().chunk_size(100).inline_threshold(50).in_memory().unwrap();
        let b = db.create_bucket("bkt").unwrap();
        let chunks = || {
            db.engine
                .read(|r| {
                    let p = keys::bucket_data_prefix("bkt");
                    let end = crate::storage::prefix_end(&p);
                    Ok(r.scan(crate::engine::range_from(&p, end.as_deref()), usize::MAX)?.len())
                })
                .unwrap()
        };
        let damaged_upload = || {
            let id = b.create_upload("k", crate::ObjectMeta::default()).unwrap();
            b.upload_part(&id, 1, &[7u8; 1000][..]).unwrap();
            let raw = u64::from_str_radix(&id, 16).unwrap();
            db.engine.write_alone(Commit::Durable, |w| w.put(&Book::Mpu.key("bkt", raw), &[1, 9])).unwrap();
            id
        };
        let healthy = b.create_upload("h", crate::ObjectMeta::default()).unwrap();

        damaged_upload();
        let listed = b.list_uploads("").unwrap();
        assert_eq!(listed.iter().map(|u| u.upload_id.as_str()).collect::<Vec<_>>(), [healthy.as_str()]);
        let report = db.verify().unwrap();
        assert_eq!(report.corrupt.len(), 1, "{report:?}");
        assert!(report.corrupt[0].reason.contains("multipart upload"), "{report:?}");
        let removed = db.remove_corrupt(None).unwrap();
        assert_eq!(removed.removed.len(), 1, "{removed:?}");
        assert_eq!(chunks(), 0);

        damaged_upload();
        assert_eq!(db.abort_uploads_older_than(std::time::Duration::from_secs(86_400)).unwrap(), 1);
        assert_eq!(chunks(), 0);

        let id = damaged_upload();
        b.abort_upload(&id).unwrap();
        assert_eq!(chunks(), 0);

        b.abort_upload(&healthy).unwrap();
        assert!(db.verify().unwrap().is_clean());
        db.delete_empty_bucket("bkt").unwrap();
    }

    /// An object written again between verification and removal is the new version: it is
    /// left alone, and reported as such.
    #[test]
    fn an_object_written_again_after_it_was_found_is_left_alone() {
        let db = crate::Datastore::in_memory().unwrap();
        let b = db.create_bucket("bkt").unwrap();
        b.put_bytes("k", b"old").unwrap();
        b.put_bytes("other", b"damaged too").unwrap();
        for key in ["k", "other"] {
            db.engine.write_alone(Commit::Durable, |w| w.put(&keys::object("bkt", key), &[0xEE, 1, 2])).unwrap();
        }
        let (found, findings) = super::scan(&db.engine, None).unwrap();
        assert_eq!(found.corrupt.len(), 2);
        b.put_bytes("k", b"new").unwrap();
        let report = super::remove(&db.engine, super::RemoveReport { found, ..Default::default() }, findings).unwrap();
        let names = |list: &[super::CorruptObject]| list.iter().map(|c| c.key.clone()).collect::<Vec<_>>();
        assert_eq!(names(&report.changed), ["k"]);
        assert_eq!(names(&report.removed), ["other"]);
        assert_eq!(b.get_bytes("k").unwrap(), b"new");
        assert!(matches!(b.get_bytes("other"), Err(crate::Error::NoSuchKey { .. })));
        assert!(db.verify().unwrap().is_clean());
    }

    /// A manifest damaged so that its segment id names another object's segment — ids are
    /// handed out in sequence, so a flipped low bit usually does. The record's CRC32C finds
    /// the damage at decode: a ranged read of the damaged object fails instead of returning
    /// the other object's bytes, and deleting it frees none of the other object's chunks.
    #[test]
    fn a_segment_id_damaged_into_another_objects_reads_and_frees_nothing_of_it() {
        use crate::data::records::{Body, Manifest};
        let db = crate::Datastore::builder().chunk_size(1000).inline_threshold(100).in_memory().unwrap();
        let b = db.create_bucket("bkt").unwrap();
        let body = |seed: u32| (0..5_000u32).map(|i| (i.wrapping_mul(seed) % 251) as u8).collect::<Vec<u8>>();
        b.put_bytes("damaged", body(3)).unwrap();
        b.put_bytes("healthy", body(7)).unwrap();
        let seg = |key: &str| {
            let raw = db.engine.read(|r| Ok(r.get(&keys::object("bkt", key))?.unwrap().to_vec())).unwrap();
            let Body::Segments(segs) = Manifest::decode(&raw).unwrap().body else { panic!("chunked") };
            (raw, segs[0].id)
        };
        let (mut raw, id) = seg("damaged");
        let (_, other) = seg("healthy");
        let at = raw.windows(8).position(|w| w == id.to_le_bytes()).unwrap();
        raw[at..at + 8].copy_from_slice(&other.to_le_bytes());
        db.engine.write_alone(Commit::Durable, |w| w.put(&keys::object("bkt", "damaged"), &raw)).unwrap();

        let e = b.get_range("damaged", 0..10).unwrap_err();
        assert!(
            matches!(&e, crate::Error::Corrupted { reason, .. } if reason.contains("manifest checksum mismatch")),
            "{e:?}"
        );
        assert!(matches!(b.get_bytes("damaged"), Err(crate::Error::Corrupted { .. })));
        b.delete("damaged").unwrap();
        assert_eq!(b.get_bytes("healthy").unwrap(), body(7));
        let report = db.verify().unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.objects, 1);
    }
}
