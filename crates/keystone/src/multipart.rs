//! Multipart uploads (S3's staging mechanism): parts are written as their own segments and
//! recorded under the upload; completing publishes the object atomically from the parts'
//! segments, aborting frees them.

use std::io::Read;

use md5::{Digest, Md5};

use crate::completed;
use crate::data::chunking::{Chunker, hex, unhex};
use crate::data::keys::{self, Book};
use crate::data::names;
use crate::data::records::{MpuRecord, PartRecord, StagePurpose};
use crate::engine::{Engine, for_each_prefixed};
use crate::error::{Error, Result};
use crate::objects::{self, NewBody, NewVersion};
use crate::storage::{KvRead, WriteTxn};
use crate::types::{
    CompleteOptions, CompletedPart, EtagAlgorithm, ObjectInfo, ObjectMeta, PartInfo, UploadInfo, now_nanos, time_of,
};
use crate::upload::{Target, from_io, stream_segment};

fn parse_id(bucket: &str, upload_id: &str) -> Result<u64> {
    let no_such = || Error::NoSuchUpload { bucket: bucket.to_owned(), upload_id: upload_id.to_owned() };
    if upload_id.len() != 16 {
        return Err(no_such());
    }
    let bytes = unhex(upload_id).ok_or_else(no_such)?;
    let arr: [u8; 8] = bytes.try_into().map_err(|_| no_such())?;
    Ok(u64::from_be_bytes(arr))
}

fn upload_record(r: &dyn KvRead, bucket: &str, upload_id: &str, id: u64) -> Result<MpuRecord> {
    match r.get(&Book::Mpu.key(bucket, id))? {
        Some(v) => MpuRecord::decode(&v).map_err(|e| e.at(bucket, "")),
        None => {
            objects::require_bucket(r, bucket)?;
            Err(Error::NoSuchUpload { bucket: bucket.to_owned(), upload_id: upload_id.to_owned() })
        }
    }
}

pub(crate) fn create(engine: &Engine, bucket: &str, key: &str, meta: ObjectMeta) -> Result<String> {
    names::check_key(key)?;
    names::check_meta(&meta)?;
    let id = engine.next_id()?;
    let rec = MpuRecord { key: key.to_owned(), initiated: now_nanos(), meta };
    let b = bucket.to_owned();
    engine.write("starting a multipart upload", move |w| {
        objects::require_bucket(w, &b)?;
        w.put(&Book::Mpu.key(&b, id), &rec.encode())
    })?;
    Ok(hex(&id.to_be_bytes()))
}

pub(crate) fn upload_part<R: Read>(
    engine: &Engine,
    bucket: &str,
    upload_id: &str,
    part_number: u32,
    reader: R,
    content_md5: Option<[u8; 16]>,
) -> Result<PartInfo> {
    // Refused before the source is read.
    engine.writable("writing")?;
    let id = parse_id(bucket, upload_id)?;
    let rec = upload_record(engine.snapshot()?.as_ref(), bucket, upload_id, id)?;
    let chunker = Chunker::new(reader, engine.cfg.chunk_size, Some(EtagAlgorithm::Md5));
    let limits = engine.kv.limits();
    let to = Target { bucket, key: &rec.key, content_md5 };
    let (b, u, object_key) = (bucket.to_owned(), upload_id.to_owned(), rec.key.clone());
    // A part stays one segment (its record names one): no tail pieces.
    let (info, queued) = stream_segment(engine, to, StagePurpose::Part, chunker, Vec::new(), false, |written| {
        let (seg, md5, crc) = (written.segs.first().copied(), written.digest, written.crc);
        // Every check before the first write (`Staged::finish`).
        move |w: &mut dyn WriteTxn| {
            let seg = seg.ok_or_else(|| Error::Storage {
                context: "uploading a part".into(),
                source: "the part's content made no segment".into(),
            })?;
            upload_record(w, &b, &u, id)?;
            let key = keys::part(&b, id, part_number);
            let old = match w.get(&key)? {
                Some(v) => Some(PartRecord::decode(&v).map_err(|e| e.at(&b, &object_key))?),
                None => None,
            };
            let part = PartRecord { seg, md5, crc, modified: now_nanos() };
            let queued = match old {
                Some(o) => objects::free_segments(w, limits, &b, &[o.seg])?,
                None => false,
            };
            w.put(&key, &part.encode())?;
            Ok((part_info(part_number, &part), queued))
        }
    })
    .map_err(|e| match e {
        Error::Io(io) => from_io(io),
        // The bucket was deleted while the part streamed (and maybe created again): the
        // upload went with it.
        Error::NoSuchBucket { .. } => {
            Error::NoSuchUpload { bucket: bucket.to_owned(), upload_id: upload_id.to_owned() }
        }
        other => other,
    })?;
    engine.free_after_commit(queued);
    Ok(info)
}

fn part_info(part_number: u32, p: &PartRecord) -> PartInfo {
    PartInfo { part_number, etag: hex(&p.md5), size: p.seg.len, modified: time_of(p.modified) }
}

/// A part record as stored: its key, its part number (if the key holds one) and the record as
/// decoded.
type StoredPart = (Vec<u8>, Option<u32>, Result<PartRecord>);

/// Every part record of upload `id`, damaged ones included.
fn part_records(r: &dyn KvRead, bucket: &str, id: u64) -> Result<Vec<StoredPart>> {
    let prefix = keys::parts_prefix(bucket, id);
    let mut out = Vec::new();
    for_each_prefixed(r, &prefix, 1000, |k, v| {
        let number = k[prefix.len()..].try_into().ok().map(u32::from_be_bytes);
        out.push((k.to_vec(), number, PartRecord::decode(v).map_err(|e| e.at(bucket, ""))));
        Ok(true)
    })?;
    Ok(out)
}

/// The parts of upload `id`; a damaged part record is an error.
fn parts_of(r: &dyn KvRead, bucket: &str, id: u64) -> Result<Vec<(u32, PartRecord)>> {
    part_records(r, bucket, id)?
        .into_iter()
        .map(|(_, number, part)| {
            let n = number.ok_or_else(|| Error::Corrupted {
                bucket: Some(bucket.into()),
                key: None,
                reason: "part record key".into(),
            })?;
            Ok((n, part?))
        })
        .collect()
}

pub(crate) fn list_parts(r: &dyn KvRead, bucket: &str, upload_id: &str) -> Result<Vec<PartInfo>> {
    let id = parse_id(bucket, upload_id)?;
    upload_record(r, bucket, upload_id, id)?;
    Ok(parts_of(r, bucket, id)?.iter().map(|(n, p)| part_info(*n, p)).collect())
}

pub(crate) fn upload_info(r: &dyn KvRead, bucket: &str, upload_id: &str) -> Result<UploadInfo> {
    let id = parse_id(bucket, upload_id)?;
    let rec = upload_record(r, bucket, upload_id, id)?;
    Ok(UploadInfo { key: rec.key, upload_id: upload_id.to_owned(), initiated: time_of(rec.initiated), meta: rec.meta })
}

/// The uploads of `bucket` whose key starts with `prefix`. An upload whose record does not
/// decode is left out: its key is unknown and it can never complete; `verify` reports it,
/// and `remove_corrupt` and `abort_uploads_older_than` abort it (failing the listing instead
/// would keep a caller from finding, and aborting, every other upload of the bucket).
pub(crate) fn list_uploads(r: &dyn KvRead, bucket: &str, prefix: &str) -> Result<Vec<UploadInfo>> {
    objects::require_bucket(r, bucket)?;
    let mut out = Vec::new();
    for_each_prefixed(r, &Book::Mpu.in_bucket(bucket), 1000, |k, v| {
        let Some((_, id, _)) = Book::Mpu.parse(k) else { return Ok(true) };
        let Ok(rec) = MpuRecord::decode(v) else { return Ok(true) };
        if rec.key.starts_with(prefix) {
            out.push(UploadInfo {
                key: rec.key,
                upload_id: hex(&id.to_be_bytes()),
                initiated: time_of(rec.initiated),
                meta: rec.meta,
            });
        }
        Ok(true)
    })?;
    out.sort_by(|a, b| a.key.cmp(&b.key).then(a.initiated.cmp(&b.initiated)));
    Ok(out)
}

/// Frees every part and the upload record.
pub(crate) fn drop_upload(w: &mut dyn WriteTxn, engine: &Engine, bucket: &str, id: u64, keep: &[u32]) -> Result<bool> {
    let limits = engine.kv.limits();
    let mut queued = false;
    // Damaged part records too: an abort clears them.
    for (key, number, part) in part_records(w, bucket, id)? {
        match (number, part) {
            (Some(n), _) if keep.contains(&n) => {}
            (_, Ok(p)) => queued |= objects::free_segments(w, limits, bucket, &[p.seg])?,
            // Which segment a damaged record held is unknown: sweep the bucket.
            (_, Err(_)) => queued |= objects::request_sweep(w, bucket)?,
        }
        w.delete(&key)?;
    }
    w.delete(&Book::Mpu.key(bucket, id))?;
    Ok(queued)
}

/// Aborts an upload, also one whose records are damaged (its upload record need only exist).
pub(crate) fn abort(engine: &Engine, bucket: &str, upload_id: &str) -> Result<()> {
    let id = parse_id(bucket, upload_id)?;
    let queued = engine.write_alone("aborting a multipart upload", engine.ack_mode(), |w| {
        if !w.read_with(&Book::Mpu.key(bucket, id), &mut |_| Ok(()))? {
            objects::require_bucket(w, bucket)?;
            return Err(Error::NoSuchUpload { bucket: bucket.to_owned(), upload_id: upload_id.to_owned() });
        }
        drop_upload(w, engine, bucket, id, &[])
    })?;
    engine.free_after_commit(queued);
    Ok(())
}

/// The ETag of a multipart object (S3's rule): the hex MD5 of its parts' MD5s (16 bytes each,
/// in order), `-`, their count. A completion names its object with it, and a retried
/// completion is recognised by it (`completed::retried`).
pub(crate) fn multipart_etag(md5s: &[[u8; 16]]) -> String {
    let mut all = Md5::new();
    for m in md5s {
        all.update(m);
    }
    format!("{}-{}", hex(&all.finalize()), md5s.len())
}

pub(crate) fn complete(
    engine: &Engine,
    bucket: &str,
    upload_id: &str,
    parts: &[CompletedPart],
    opts: &CompleteOptions,
) -> Result<ObjectInfo> {
    let id = parse_id(bucket, upload_id)?;
    let limits = engine.kv.limits();
    let no_such = || Error::NoSuchUpload { bucket: bucket.to_owned(), upload_id: upload_id.to_owned() };
    let written = engine.write_alone("completing a multipart upload", engine.ack_mode(), |w| {
        let rec = upload_record(w, bucket, upload_id, id)?;
        // An upload id is valid only with the key it was created for (as in S3).
        if opts.key.as_deref().is_some_and(|k| k != rec.key) {
            return Err(no_such());
        }
        if parts.is_empty() {
            return Err(Error::InvalidPart {
                upload_id: upload_id.into(),
                part_number: 0,
                reason: "no parts were named".into(),
            });
        }
        if parts.windows(2).any(|p| p[0].part_number >= p[1].part_number) {
            return Err(Error::InvalidPartOrder { upload_id: upload_id.into() });
        }
        let mut segs = Vec::with_capacity(parts.len());
        let mut md5s = Vec::with_capacity(parts.len());
        let mut crc = 0u32;
        let mut size = 0u64;
        for (i, want) in parts.iter().enumerate() {
            let invalid = |reason: &str| Error::InvalidPart {
                upload_id: upload_id.into(),
                part_number: want.part_number,
                reason: reason.into(),
            };
            let Some(v) = w.get(&keys::part(bucket, id, want.part_number))? else {
                return Err(invalid("it was not uploaded"));
            };
            let p = PartRecord::decode(&v).map_err(|e| e.at(bucket, &rec.key))?;
            if !crate::types::etag_eq(&want.etag, &hex(&p.md5)) {
                return Err(invalid("its ETag does not match"));
            }
            if i + 1 < parts.len() && p.seg.len < opts.min_part_size {
                return Err(Error::EntityTooSmall {
                    upload_id: upload_id.into(),
                    part_number: want.part_number,
                    size: p.seg.len,
                    min: opts.min_part_size,
                });
            }
            md5s.push(p.md5);
            crc = crate::data::crc::combine(crc, p.crc, p.seg.len as usize);
            size = size
                .checked_add(p.seg.len)
                .ok_or_else(|| Error::TooLarge("the parts add up to more than 2^64 bytes".into()))?;
            segs.push(p.seg);
        }
        let current = objects::current(w, bucket, &rec.key)?;
        objects::check_condition(bucket, &rec.key, &current, &opts.condition)?;
        // Checks are done; from here on every step writes.
        let used: Vec<u32> = parts.iter().map(|p| p.part_number).collect();
        let mut queued = drop_upload(w, engine, bucket, id, &used)?;
        let new = NewVersion {
            size,
            etag: multipart_etag(&md5s),
            crc,
            parts: parts.len() as u32,
            meta: rec.meta,
            body: NewBody::Segments(segs),
        };
        let (info, q) = objects::publish(w, limits, bucket, &rec.key, new, &opts.condition, false)?;
        completed::record(w, bucket, id, &rec.key, &info.etag, now_nanos())?;
        queued |= q;
        Ok((info, queued))
    });
    let (info, queued) = match written {
        Ok(done) => done,
        // Gone: answered as before if this is a retry of the completion that ended it (a read:
        // no write transaction, no commit).
        Err(gone @ Error::NoSuchUpload { .. }) => {
            return engine.read(|r| completed::retried(r, bucket, id, opts.key.as_deref(), parts))?.ok_or(gone);
        }
        Err(e) => return Err(e),
    };
    engine.free_after_commit(queued);
    Ok(info)
}

/// Frees multipart uploads initiated before `cutoff_nanos`, and those whose record does not
/// decode (their age is unknown, and they can never complete); returns how many.
pub(crate) fn abort_older_than(engine: &Engine, cutoff_nanos: u64) -> Result<u64> {
    let snap = engine.snapshot()?;
    let mut stale = Vec::new();
    for_each_prefixed(snap.as_ref(), &Book::Mpu.all(), 1000, |k, v| {
        if let Some((bucket, id, _)) = Book::Mpu.parse(k)
            && MpuRecord::decode(v).map_or(true, |rec| rec.initiated < cutoff_nanos)
        {
            stale.push((bucket, id));
        }
        Ok(true)
    })?;
    drop(snap);
    let n = stale.len() as u64;
    for (bucket, id) in stale {
        abort(engine, &bucket, &hex(&id.to_be_bytes())).or_else(|e| match e {
            Error::NoSuchUpload { .. } | Error::NoSuchBucket { .. } => Ok(()),
            other => Err(other),
        })?;
    }
    Ok(n)
}
