//! Object and bucket operations inside one write transaction or snapshot. Every operation
//! checks everything it can reject *before* its first write, so that a rejected operation
//! leaves the transaction untouched (group commit relies on it).

use crate::data::keys::{self, Book};
use crate::data::records::{Body, BodySlice, BucketRecord, Manifest, Owner, Segment, gc_record};
use crate::data::{names, pack};
use crate::engine::{delete_prefix, for_each_prefixed};
use crate::error::{Error, Result};
use crate::storage::{KvRead, Limits, LookupHint, WriteTxn};
use crate::types::{BucketInfo, ObjectInfo, ObjectMeta, PutCondition, etag_eq, now_nanos, time_of};

pub(crate) fn bucket_record(r: &dyn KvRead, bucket: &str) -> Result<Option<BucketRecord>> {
    let mut out = None;
    r.read_with(&keys::bucket(bucket), &mut |v| {
        out = Some(BucketRecord::decode(v).map_err(|e| e.at(bucket, ""))?);
        Ok(())
    })?;
    Ok(out)
}

/// Whether `bucket` has a record, damaged or not (a damaged one is for `verify` to report and
/// `remove_corrupt` to replace, and does not keep the bucket from being deleted).
pub(crate) fn bucket_exists(r: &dyn KvRead, bucket: &str) -> Result<bool> {
    r.read_with(&keys::bucket(bucket), &mut |_| Ok(()))
}

pub(crate) fn require_bucket(r: &dyn KvRead, bucket: &str) -> Result<()> {
    match bucket_record(r, bucket)? {
        Some(_) => Ok(()),
        None => Err(Error::no_such_bucket(bucket)),
    }
}

pub(crate) fn create_bucket(w: &mut dyn WriteTxn, name: &str) -> Result<()> {
    names::check_new_bucket(name)?;
    if bucket_record(w, name)?.is_some() {
        return Err(Error::BucketAlreadyExists { bucket: name.to_owned() });
    }
    w.put(&keys::bucket(name), &BucketRecord { created: now_nanos() }.encode())
}

/// Whether the bucket holds any object or multipart upload.
pub(crate) fn bucket_is_empty(r: &dyn KvRead, name: &str) -> Result<bool> {
    for prefix in [keys::objects_prefix(name), Book::Mpu.in_bucket(name)] {
        let mut any = false;
        for_each_prefixed(r, &prefix, 1, |_, _| {
            any = true;
            Ok(false)
        })?;
        if any {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Deletes the bucket and everything in it. Returns whether freeing chunks was queued (when
/// there are more than the backend's transaction limits allow deleting at once).
pub(crate) fn delete_bucket(w: &mut dyn WriteTxn, limits: Limits, name: &str, only_if_empty: bool) -> Result<bool> {
    names::check_bucket(name)?;
    if !bucket_exists(w, name)? {
        return Err(Error::no_such_bucket(name));
    }
    if only_if_empty && !bucket_is_empty(w, name)? {
        return Err(Error::BucketNotEmpty { bucket: name.to_owned() });
    }
    delete_prefix(w, &keys::objects_prefix(name))?;
    for book in Book::ALL {
        delete_prefix(w, &book.in_bucket(name))?;
    }
    let queued = free_bucket_data(w, limits, name)?;
    w.delete(&keys::bucket(name))?;
    Ok(queued)
}

/// Deletes every chunk of `bucket` in this transaction when that fits the backend's limits;
/// otherwise queues each of its segments for `drain_gc` (one record per segment; segment ids
/// are never reused, so a bucket created again under the name is not touched).
fn free_bucket_data(w: &mut dyn WriteTxn, limits: Limits, bucket: &str) -> Result<bool> {
    let data = keys::bucket_data_prefix(bucket);
    if limits.max_txn_ops == usize::MAX {
        // No transaction limit (redb): no need to count the chunks first, which would read
        // every one of them.
        delete_prefix(w, &data)?;
        return Ok(false);
    }
    let end = crate::storage::prefix_end(&data);
    let budget = limits.max_txn_ops / 4;
    let found = w.scan(crate::engine::range_from(&data, end.as_deref()), budget.saturating_add(1))?.len();
    if found <= budget {
        delete_prefix(w, &data)?;
        return Ok(false);
    }
    let mut from = data.clone();
    loop {
        let page = w.scan(crate::engine::range_from(&from, end.as_deref()), 1)?;
        let Some((k, _)) = page.first() else { return Ok(true) };
        let Some((_, seg, _)) = keys::parse_chunk(k) else {
            return Err(Error::Corrupted {
                bucket: Some(bucket.into()),
                key: None,
                reason: "malformed chunk key".into(),
            });
        };
        w.put(&Book::Gc.key(bucket, seg), &gc_record())?;
        match crate::storage::prefix_end(&keys::segment_prefix(bucket, seg)) {
            Some(next) => from = next,
            None => return Ok(true),
        }
    }
}

/// Every bucket's name and record as stored, without decoding it: what `verify` and `compact`
/// walk, so that one damaged record stops neither for the other buckets.
pub(crate) fn bucket_records(r: &dyn KvRead) -> Result<Vec<(String, Vec<u8>)>> {
    let prefix = keys::buckets_prefix();
    let mut out = Vec::new();
    for_each_prefixed(r, &prefix, 1000, |k, v| {
        out.push((String::from_utf8_lossy(&k[prefix.len()..]).into_owned(), v.to_vec()));
        Ok(true)
    })?;
    Ok(out)
}

/// Every bucket, or `Corrupted` naming the first whose record does not decode (`verify`
/// reports it, `remove_corrupt` replaces it): a listing that left it out would tell the
/// caller the bucket and its objects are gone.
pub(crate) fn list_buckets(r: &dyn KvRead) -> Result<Vec<BucketInfo>> {
    let prefix = keys::buckets_prefix();
    let mut out = Vec::new();
    for_each_prefixed(r, &prefix, 1000, |k, v| {
        let name = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
        let rec = BucketRecord::decode(v).map_err(|e| e.at(&name, ""))?;
        out.push(BucketInfo { name, created: time_of(rec.created) });
        Ok(true)
    })?;
    Ok(out)
}

/// Where a lookup found an object's manifest, or why it did not.
pub(crate) enum Lookup<T> {
    /// Found; `pack` names the pack record holding it (by its last key), for a write's lookup.
    Hit {
        value: T,
        pack: Option<String>,
    },
    /// No such key; `pack` names a pack whose key range covers it (a write must unpack it).
    Miss {
        pack: Option<String>,
    },
    NoBucket,
}

/// Finds the manifest record of `key`, on its own or in a pack, and calls `f` with it while
/// the store lends it.
///
/// An object stored on its own costs one point lookup, as before packs existed; a packed one
/// costs a point lookup that misses and then a [`seek`], which finds the pack covering the
/// key (~2,000 instructions more per get than seeking at once). A seek first costs an object
/// stored on its own ~1,700 more than the point lookup. So the order follows the store's
/// [`LookupHint`]: point lookup first until gets keep finding packs (after `compact` packed
/// the bucket), seek first until they keep finding objects on their own (written since).
/// Both orders return the same answer.
pub(crate) fn lookup<T>(
    r: &dyn KvRead,
    bucket: &str,
    key: &str,
    mut f: impl FnMut(&[u8]) -> Result<T>,
) -> Result<Lookup<T>> {
    let okey = keys::object(bucket, key);
    let hint = r.lookup_hint();
    if hint.is_some_and(LookupHint::seek_first) {
        let (found, in_pack) = seek(r, bucket, key, &okey, false, false, f)?;
        if let Some(h) = hint.filter(|_| !in_pack && matches!(found, Lookup::Hit { .. })) {
            h.surprised();
        }
        return Ok(found);
    }
    let mut out = None;
    r.read_with(&okey, &mut |v| {
        if !pack::is_pack(v) {
            out = Some(Lookup::Hit { value: f(v)?, pack: None });
        }
        Ok(())
    })?;
    if let Some(hit) = out {
        return Ok(hit);
    }
    let (found, in_pack) = seek(r, bucket, key, &okey, false, false, f)?;
    if let Some(h) = hint.filter(|_| in_pack) {
        h.surprised();
    }
    Ok(found)
}

/// [`lookup`] for a write, which needs to know about a covering pack even for a new key: one
/// seek, no point lookup first (most writes in bulk loads are of new keys). `bucket_known`:
/// the caller knows the bucket exists, a miss need not look it up.
fn lookup_for_write<T>(
    r: &dyn KvRead,
    bucket: &str,
    key: &str,
    bucket_known: bool,
    f: impl FnMut(&[u8]) -> Result<T>,
) -> Result<Lookup<T>> {
    Ok(seek(r, bucket, key, &keys::object(bucket, key), bucket_known, true, f)?.0)
}

/// The first record at or after `okey` decides: the key's own record, a pack covering the key
/// (packs live under their last key; invariant 6 of docs/design.md), or neither. An object's
/// record exists only while its bucket does, so only when no object of the bucket follows
/// (and the caller does not know already) is the bucket record read, to tell a missing key
/// from a missing bucket. Also says whether a pack covering the key answered; `name_pack`:
/// name it in the answer (a write needs to unpack it, a read does not).
fn seek<T>(
    r: &dyn KvRead,
    bucket: &str,
    key: &str,
    okey: &[u8],
    bucket_known: bool,
    name_pack: bool,
    mut f: impl FnMut(&[u8]) -> Result<T>,
) -> Result<(Lookup<T>, bool)> {
    let end = keys::objects_end(bucket);
    let mut out = None;
    let mut in_pack = false;
    let follows = r.first_with(crate::engine::range_from(okey, Some(&end)), &mut |k, v| {
        if !pack::is_pack(v) {
            if k == okey {
                out = Some(Lookup::Hit { value: f(v)?, pack: None });
            }
            return Ok(());
        }
        let last =
            keys::object_name(bucket, k).ok_or_else(|| Error::corrupted(bucket, key, "pack key is not UTF-8"))?;
        let place = match pack::find(v, last, key) {
            Ok(place) => place,
            // A damaged pack that begins after the key does not cover it: only the keys of its
            // own range report the damage.
            Err(_) if pack::first_key(v).is_some_and(|first| key < first) => return Ok(()),
            Err(e) => return Err(e.at(bucket, last)),
        };
        let pack = || name_pack.then(|| last.to_owned());
        in_pack = place != pack::Place::Before;
        out = match place {
            pack::Place::Before => None,
            pack::Place::At(manifest) => Some(Lookup::Hit { value: f(manifest)?, pack: pack() }),
            pack::Place::Absent => Some(Lookup::Miss { pack: pack() }),
        };
        Ok(())
    })?;
    match out {
        Some(found) => Ok((found, in_pack)),
        // An object of the bucket follows the key: the bucket exists.
        None if follows || bucket_known => Ok((Lookup::Miss { pack: None }, false)),
        None if bucket_record(r, bucket)?.is_none() => Ok((Lookup::NoBucket, false)),
        None => Ok((Lookup::Miss { pack: None }, false)),
    }
}

/// The objects of one record of `bucket`'s key space: the object itself, or a pack's.
pub(crate) fn record_objects<'a>(bucket: &str, k: &'a [u8], v: &'a [u8]) -> Result<RecordObjects<'a>> {
    let Some(name) = keys::object_name(bucket, k) else {
        return Err(Error::Corrupted {
            bucket: Some(bucket.into()),
            key: None,
            reason: "manifest key is not UTF-8".into(),
        });
    };
    if pack::is_pack(v) {
        Ok(RecordObjects::Pack(pack::decode(v, name).map_err(|e| e.at(bucket, name))?.into_iter()))
    } else {
        Ok(RecordObjects::One(Some((name, v))))
    }
}

/// Iterator of [`record_objects`]: (key, manifest record) pairs in key order.
pub(crate) enum RecordObjects<'a> {
    One(Option<(&'a str, &'a [u8])>),
    Pack(std::vec::IntoIter<pack::Entry<'a>>),
}

impl<'a> Iterator for RecordObjects<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            RecordObjects::One(one) => one.take(),
            RecordObjects::Pack(entries) => entries.next().map(|e| (e.key, e.manifest)),
        }
    }
}

fn decoder(bucket: &str, key: &str, full: bool) -> impl Fn(&[u8]) -> Result<Manifest> {
    move |v| {
        let owner = Owner { bucket, key };
        let m = if full { Manifest::decode(v, owner) } else { Manifest::decode_head(v, owner) };
        m.map_err(|e| e.at(bucket, key))
    }
}

/// The manifest of `key`; `full` also decodes an inline body.
pub(crate) fn manifest(r: &dyn KvRead, bucket: &str, key: &str, full: bool) -> Result<Option<Manifest>> {
    match lookup(r, bucket, key, decoder(bucket, key, full))? {
        Lookup::Hit { value, .. } => Ok(Some(value)),
        Lookup::Miss { .. } | Lookup::NoBucket => Ok(None),
    }
}

/// The manifest of an existing object, or `NoSuchKey` / `NoSuchBucket`.
pub(crate) fn existing(r: &dyn KvRead, bucket: &str, key: &str, full: bool) -> Result<Manifest> {
    names::check_key(key)?;
    match lookup(r, bucket, key, decoder(bucket, key, full))? {
        Lookup::Hit { value, .. } => Ok(value),
        Lookup::Miss { .. } => Err(Error::no_such_key(bucket, key)),
        Lookup::NoBucket => Err(Error::no_such_bucket(bucket)),
    }
}

/// Writes every object of the pack stored under `last` back under its own key (the last
/// one's manifest replaces the pack record), so the key range it covered can be written.
fn unpack(w: &mut dyn WriteTxn, bucket: &str, last: &str) -> Result<()> {
    let Some(v) = w.get(&keys::object(bucket, last))? else {
        return Err(Error::corrupted(bucket, last, "pack record vanished"));
    };
    let entries = pack::decode(&v, last).map_err(|e| e.at(bucket, last))?;
    for e in entries {
        w.put(&keys::object(bucket, e.key), e.manifest)?;
    }
    Ok(())
}

/// [`info`] from a manifest that is not needed afterwards: its ETag and metadata are moved,
/// not copied (a listing builds one per object).
pub(crate) fn into_info(bucket: &str, key: &str, mut m: Manifest) -> ObjectInfo {
    let (etag, meta) = (std::mem::take(&mut m.etag), std::mem::take(&mut m.meta));
    info_with(bucket, key, &m, etag, meta)
}

pub(crate) fn info(bucket: &str, key: &str, m: &Manifest) -> ObjectInfo {
    info_with(bucket, key, m, m.etag.clone(), m.meta.clone())
}

fn info_with(bucket: &str, key: &str, m: &Manifest, etag: String, meta: crate::types::ObjectMeta) -> ObjectInfo {
    ObjectInfo {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size: m.size,
        etag,
        checksum: m.crc,
        meta,
        created: time_of(m.created),
        modified: time_of(m.modified),
        parts: m.parts,
    }
}

/// What a write finds under its key.
// As large as the `Option<Manifest>` it replaced, and lives on the stack for one write.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Current {
    Absent,
    Found(Manifest),
    /// A record that does not decode. A write replaces it all the same (a damaged object can
    /// be deleted or overwritten, as in S3), and asks for a sweep of the bucket, since the
    /// segments it referred to cannot be read from it.
    Damaged(String),
}

impl From<Result<Manifest>> for Current {
    fn from(decoded: Result<Manifest>) -> Current {
        match decoded {
            Ok(m) => Current::Found(m),
            Err(Error::Corrupted { reason, .. }) => Current::Damaged(reason),
            Err(other) => Current::Damaged(other.to_string()),
        }
    }
}

/// A decoder for writes: a record that does not decode is a value, not a failed lookup.
fn tolerant(bucket: &str, key: &str) -> impl Fn(&[u8]) -> Result<Result<Manifest>> {
    let decode = decoder(bucket, key, false);
    move |v| Ok(decode(v))
}

/// What `key` holds, for a write about to replace it (the bucket must exist).
pub(crate) fn current(r: &dyn KvRead, bucket: &str, key: &str) -> Result<Current> {
    match lookup(r, bucket, key, tolerant(bucket, key))? {
        Lookup::Hit { value, .. } => Ok(Current::from(value)),
        Lookup::Miss { .. } => Ok(Current::Absent),
        Lookup::NoBucket => Err(Error::no_such_bucket(bucket)),
    }
}

pub(crate) fn check_condition(bucket: &str, key: &str, current: &Current, cond: &PutCondition) -> Result<()> {
    match (cond, current) {
        (PutCondition::None, _) | (PutCondition::IfAbsent, Current::Absent) => Ok(()),
        (PutCondition::IfAbsent, Current::Found(_) | Current::Damaged(_)) => {
            Err(Error::precondition(bucket, key, "an object with this key exists"))
        }
        // As S3 answers it: the object the condition names is not there. (Decided here, in
        // the write's own transaction, so a concurrent creation cannot change the answer.)
        (PutCondition::IfMatch(_), Current::Absent) => {
            Err(Error::NoSuchKey { bucket: bucket.to_owned(), key: key.to_owned() })
        }
        (PutCondition::IfMatch(want), Current::Found(m)) if etag_eq(want, &m.etag) => Ok(()),
        (PutCondition::IfMatch(want), Current::Found(m)) => {
            Err(Error::precondition(bucket, key, format!("ETag is {:?}, not {want:?}", m.etag)))
        }
        // The ETag to compare is in the damaged record: the condition cannot hold. (A refusal
        // of this write alone, which group commit keeps from the other writes of its batch.)
        (PutCondition::IfMatch(_), Current::Damaged(reason)) => {
            Err(Error::precondition(bucket, key, format!("its record is damaged ({reason}), so its ETag is unknown")))
        }
    }
}

/// Frees what the version being replaced holds: its segments' chunks (or queues them), or,
/// for a damaged record, asks for a sweep of the bucket. Returns whether `drain_gc` has work.
fn release(w: &mut dyn WriteTxn, limits: Limits, bucket: &str, old: &Current) -> Result<bool> {
    match old {
        Current::Absent => Ok(false),
        Current::Found(m) => free_segments(w, limits, bucket, m.segments()),
        Current::Damaged(_) => request_sweep(w, bucket),
    }
}

/// Asks `drain_gc` to sweep `bucket` for segments nothing refers to (`maintenance::sweep`),
/// after a damaged record that may have referred to some was removed. The request counts up
/// (and carries its time, should the bucket be deleted and its count start again), so a sweep
/// that started before it can tell it apart from the request it serves. Returns `true`: there
/// is work for `drain_gc`.
pub(crate) fn request_sweep(w: &mut dyn WriteTxn, bucket: &str) -> Result<bool> {
    let key = Book::Sweep.key(bucket, 0);
    let n = w.get(&key)?.and_then(|v| v.get(..8).and_then(|b| b.try_into().ok())).map_or(0, u64::from_le_bytes);
    let mut request = n.wrapping_add(1).to_le_bytes().to_vec();
    request.extend_from_slice(&now_nanos().to_le_bytes());
    w.put(&key, &request)?;
    Ok(true)
}

/// The content of a new version, as far as it is known before publishing.
pub(crate) struct NewVersion<'a> {
    pub size: u64,
    pub etag: String,
    pub crc: u32,
    pub parts: u32,
    pub meta: ObjectMeta,
    pub body: NewBody<'a>,
}

impl NewVersion<'_> {
    /// The same version with its body borrowed from this one: for a write that may run again
    /// (group commit reruns a job after a rollback), without copying the bytes each time.
    pub(crate) fn borrowed(&self) -> NewVersion<'_> {
        NewVersion {
            size: self.size,
            etag: self.etag.clone(),
            crc: self.crc,
            parts: self.parts,
            meta: self.meta.clone(),
            body: match &self.body {
                NewBody::Inline(data) => NewBody::Inline(std::borrow::Cow::Borrowed(data)),
                NewBody::Segments(segs) => NewBody::Segments(segs.clone()),
            },
        }
    }
}

/// A new version's body: a small object's bytes, borrowed from the caller where the write
/// runs in the caller's own transaction (owned where it is handed to group commit), or the
/// segments holding a larger one.
pub(crate) enum NewBody<'a> {
    Inline(std::borrow::Cow<'a, [u8]>),
    Segments(Vec<Segment>),
}

/// Makes `new` the current version of `key`: checks the bucket and the condition, frees the
/// old version's chunks (or queues them, past the backend's transaction limits), and writes
/// the manifest (unpacking a pack that covers the key first). Returns the object's info and
/// whether freeing was queued.
///
/// `bucket_known`: the caller has seen the bucket in this same transaction, after its last
/// bucket deletion (a transaction's bucket handle), so it is not looked up again.
pub(crate) fn publish(
    w: &mut dyn WriteTxn,
    limits: Limits,
    bucket: &str,
    key: &str,
    new: NewVersion<'_>,
    cond: &PutCondition,
    bucket_known: bool,
) -> Result<(ObjectInfo, bool)> {
    names::check_key(key)?;
    names::check_meta(&new.meta)?;
    let (old, pack) = match lookup_for_write(w, bucket, key, bucket_known, tolerant(bucket, key))? {
        Lookup::Hit { value, pack } => (Current::from(value), pack),
        Lookup::Miss { pack } => (Current::Absent, pack),
        Lookup::NoBucket => return Err(Error::no_such_bucket(bucket)),
    };
    check_condition(bucket, key, &old, cond)?;
    if let Some(last) = pack {
        unpack(w, bucket, &last)?;
    }
    let now = now_nanos();
    let m = Manifest {
        size: new.size,
        etag: new.etag,
        crc: new.crc,
        created: if let Current::Found(o) = &old { o.created } else { now },
        modified: now,
        parts: new.parts,
        meta: new.meta,
        // Encoded from `new.body` below; the returned info has no body.
        body: Body::Segments(Vec::new()),
    };
    let record = m.encode_with(
        match &new.body {
            NewBody::Inline(data) => BodySlice::Inline(data),
            NewBody::Segments(segs) => BodySlice::Segments(segs),
        },
        Owner { bucket, key },
    );
    let queued = release(w, limits, bucket, &old)?;
    w.put(&keys::object(bucket, key), &record)?;
    Ok((info(bucket, key, &m), queued))
}

/// Deletes `key` (a missing key is fine). Returns whether freeing was queued.
pub(crate) fn delete_object(w: &mut dyn WriteTxn, limits: Limits, bucket: &str, key: &str) -> Result<bool> {
    names::check_key(key)?;
    let old = match lookup_for_write(w, bucket, key, false, tolerant(bucket, key))? {
        Lookup::Hit { value, pack } => {
            if let Some(last) = pack {
                unpack(w, bucket, &last)?;
            }
            Current::from(value)
        }
        Lookup::Miss { .. } => return Ok(false),
        Lookup::NoBucket => return Err(Error::no_such_bucket(bucket)),
    };
    let queued = release(w, limits, bucket, &old)?;
    w.delete(&keys::object(bucket, key))?;
    Ok(queued)
}

/// Frees the segments of a staged upload, whose chunks were never counted: in this
/// transaction on a backend without transaction limits (`Some`: the chunks deleted), else
/// queued for `drain_gc` (`None`), which frees them in transactions within the limits (one
/// transaction could not take an upload of more chunks than its operations).
pub(crate) fn free_staged_segments(
    w: &mut dyn WriteTxn,
    limits: Limits,
    bucket: &str,
    segs: &[u64],
) -> Result<Option<u64>> {
    if limits.max_txn_ops == usize::MAX {
        let mut n = 0;
        for seg in segs {
            n += delete_prefix(w, &keys::segment_prefix(bucket, *seg))?;
        }
        return Ok(Some(n));
    }
    for seg in segs {
        w.put(&Book::Gc.key(bucket, *seg), &gc_record())?;
    }
    Ok(None)
}

/// Frees the chunks of `segs` in this transaction when that fits the backend's limits, or
/// queues them for `drain_gc` (returns `true`) when it does not.
pub(crate) fn free_segments(w: &mut dyn WriteTxn, limits: Limits, bucket: &str, segs: &[Segment]) -> Result<bool> {
    let chunks: u64 = segs.iter().map(Segment::chunks).sum();
    if chunks <= (limits.max_txn_ops / 4) as u64 {
        for s in segs {
            delete_prefix(w, &keys::segment_prefix(bucket, s.id))?;
        }
        Ok(false)
    } else {
        for s in segs {
            w.put(&Book::Gc.key(bucket, s.id), &gc_record())?;
        }
        Ok(true)
    }
}
