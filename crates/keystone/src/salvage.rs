//! `Datastore::salvage`: copies what can still be read of a damaged store into a new one.
//!
//! A page of redb's B-tree damaged on disk fails every operation that meets it (see
//! `storage/redb.rs`, `guarded`): the objects on it cannot be read, and neither deleted nor
//! compacted away, since both must read the page. Salvage walks the source's whole key space
//! read-only, copies every record it can read into a new file, steps over what it cannot (see
//! [`Walk`]), then opens the copy as a store and clears what the damage left inconsistent
//! there with the store's own tools: objects whose chunks were lost are removed
//! (`remove_corrupt`), chunks whose manifest was lost are freed (a sweep of every bucket).
//!
//! Records are copied as they are — manifests, packs, chunks, bucket records — so objects
//! keep their ETags, times and metadata. Multipart uploads and uploads in flight are not
//! copied (their chunks are freed by the sweep): salvage keeps objects. Neither are the records
//! of completed uploads (`Book::Done`): in the copy, a retry of a completion made before the
//! salvage is `NoSuchUpload`.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::path::Path;

use crate::data::keys::{self, Book, DATA, META};
use crate::data::records::BucketRecord;
use crate::datastore::Builder;
use crate::error::{Error, Result};
use crate::storage::redb::RedbStore;
use crate::storage::{Commit, EntryFn, KeyRange, KeyValueStore, KvRead, Value, WriteTxn};
use crate::types::now_nanos;
use crate::verify::{CorruptObject, VerifyReport};

/// What [`Datastore::salvage`](crate::Datastore::salvage) copied and what it could not.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SalvageReport {
    /// Records copied: object manifests and packs of small objects, chunks, bucket records.
    pub records_copied: u64,
    /// Stretches of the source's key space that could not be read (a damaged page), in key
    /// order. Objects whose records lay there are not in the new store.
    pub unreadable: Vec<UnreadableRange>,
    /// Records skipped because they came out of key order (a damaged page that still reads).
    pub out_of_order: u64,
    /// Multipart uploads and uploads in flight that were not copied.
    pub uploads_dropped: u64,
    /// Buckets whose own record was lost and that were created again, because objects or
    /// chunks of theirs were found.
    pub buckets_recreated: Vec<String>,
    /// Objects copied whose content was damaged or incomplete (a chunk on a damaged page),
    /// removed from the new store.
    pub removed: Vec<CorruptObject>,
    /// The new store's [`verify`](crate::Datastore::verify), at the end.
    pub verified: VerifyReport,
}

impl SalvageReport {
    /// Whether everything the source held was copied: nothing unreadable, skipped or removed.
    pub fn is_complete(&self) -> bool {
        self.unreadable.is_empty() && self.out_of_order == 0 && self.removed.is_empty()
    }
}

/// A stretch of the key space that could not be read, between the records read on either side
/// of it, each described as text (`object "bucket/key"`, `chunk 3 of segment … of bucket …`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnreadableRange {
    /// The last record read before it; `None`: from the start of the store.
    pub after: Option<String>,
    /// The first record read after it; `None`: to the end of the store.
    pub before: Option<String>,
}

/// Records per write transaction of the copy, and bytes (a chunk is up to a few MiB).
const TXN_RECORDS: usize = 1000;
const TXN_BYTES: usize = 32 << 20;
/// Records per scan of the source while no damage is met (each may be a chunk of ~1 MiB).
const SCAN: usize = 16;
/// Bytes of a probe: more than the longest key (a bucket name, NUL and an object key).
const PROBE_WIDTH: usize = 64 + crate::data::names::MAX_KEY_LEN + 16;

pub(crate) fn salvage(builder: Builder, source: &Path, dest: &Path) -> Result<SalvageReport> {
    let redb = builder.redb();
    // Created here, not by redb: a file that is already there is never written into.
    std::fs::OpenOptions::new().write(true).create_new(true).open(dest).map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("cannot create {} for the salvaged store: {e} (salvage writes a new file)", dest.display()),
        ))
    })?;
    let src = RedbStore::open_read_only(source, &redb)?;
    let mut report = SalvageReport::default();
    {
        let out = RedbStore::open(dest, &redb)?;
        let snap = src.read()?;
        let mut copy = Copy::new(&out);
        Walk { src: snap.as_ref(), report: &mut report }.run(&mut |k, v| copy.record(k, v))?;
        copy.finish(&mut report)?;
    }
    drop(src);

    // The copy as a store: objects that lost chunks are removed, chunks that lost their
    // manifest are freed by the sweeps requested for every bucket.
    let db = builder.read_only(false).open(dest)?;
    let removed = db.remove_corrupt(None)?;
    report.removed = removed.removed;
    db.engine.drain_gc()?;
    report.verified = db.verify()?;
    Ok(report)
}

/// Writes the records worth keeping into the new store, in transactions of bounded size.
struct Copy<'a> {
    out: &'a RedbStore,
    /// The transaction being filled, and what it holds.
    txn: Option<Box<dyn WriteTxn>>,
    txn_records: usize,
    txn_bytes: usize,
    copied: u64,
    uploads_dropped: u64,
    /// Buckets with a record copied, and buckets something else of was copied.
    bucket_records: BTreeSet<String>,
    buckets_seen: BTreeSet<String>,
    /// The source's id counter, and the highest id found in a chunk key.
    idgen: u64,
    max_segment: u64,
}

impl<'a> Copy<'a> {
    fn new(out: &'a RedbStore) -> Self {
        Copy {
            out,
            txn: None,
            txn_records: 0,
            txn_bytes: 0,
            copied: 0,
            uploads_dropped: 0,
            bucket_records: BTreeSet::new(),
            buckets_seen: BTreeSet::new(),
            idgen: 0,
            max_segment: 0,
        }
    }

    fn record(&mut self, k: &[u8], v: &[u8]) -> Result<()> {
        if let Some(rest) = k.strip_prefix(META) {
            if let Some(name) = rest.strip_prefix(b"bucket\0") {
                let Ok(name) = std::str::from_utf8(name) else { return Ok(()) };
                self.bucket_records.insert(name.to_owned());
            } else if k == keys::idgen().as_slice() {
                if let Ok(b) = <[u8; 8]>::try_from(v) {
                    self.idgen = self.idgen.max(u64::from_be_bytes(b));
                }
                return Ok(());
            } else {
                // Uploads (their parts go with them) and queued frees or sweeps: the sweep at
                // the end frees whatever chunks they held. Records of completed uploads hold
                // no chunks; they only answer retried completions, and are left behind too.
                if Book::Mpu.parse(k).is_some() || Book::Stage.parse(k).is_some() {
                    self.uploads_dropped += 1;
                }
                return Ok(());
            }
        } else if k.starts_with(DATA) {
            let Some((bucket, seg, _)) = keys::parse_chunk(k) else { return Ok(()) };
            self.buckets_seen.insert(bucket.to_owned());
            self.max_segment = self.max_segment.max(seg);
        } else {
            let Some(name) = k.split(|&b| b == 0).next().and_then(|n| std::str::from_utf8(n).ok()) else {
                return Ok(());
            };
            if name.len() == k.len() {
                return Ok(());
            }
            self.buckets_seen.insert(name.to_owned());
        }
        let w = match &mut self.txn {
            Some(w) => w,
            None => self.txn.insert(self.out.write()?),
        };
        w.put(k, v)?;
        self.copied += 1;
        self.txn_records += 1;
        self.txn_bytes += k.len() + v.len();
        if self.txn_records >= TXN_RECORDS || self.txn_bytes >= TXN_BYTES {
            self.commit(Commit::Deferred, &mut |_| Ok(()))?;
        }
        Ok(())
    }

    /// Commits the transaction being filled (begun if there is none), with `last` written into it.
    fn commit(&mut self, mode: Commit, last: &mut dyn FnMut(&mut dyn WriteTxn) -> Result<()>) -> Result<()> {
        let mut w = match self.txn.take() {
            Some(w) => w,
            None => self.out.write()?,
        };
        last(w.as_mut())?;
        w.commit(mode)?;
        (self.txn_records, self.txn_bytes) = (0, 0);
        Ok(())
    }

    /// The last records, then what the damage may have taken: a bucket record for every
    /// bucket that has records but lost its own, an id counter past every id copied (the
    /// next open reserves ids above it), a sweep request for every bucket; all durable.
    fn finish(mut self, report: &mut SalvageReport) -> Result<()> {
        let recreate: Vec<String> = self.buckets_seen.difference(&self.bucket_records).cloned().collect();
        let buckets: Vec<String> = self.buckets_seen.union(&self.bucket_records).cloned().collect();
        let idgen = self.idgen.max(self.max_segment >> 32);
        self.commit(Commit::Durable, &mut |w| {
            for name in &recreate {
                w.put(&keys::bucket(name), &BucketRecord { created: now_nanos() }.encode())?;
            }
            w.put(&keys::idgen(), &idgen.to_be_bytes())?;
            for name in &buckets {
                crate::objects::request_sweep(w, name)?;
            }
            Ok(())
        })?;
        report.records_copied = self.copied;
        report.uploads_dropped = self.uploads_dropped;
        report.buckets_recreated = recreate;
        Ok(())
    }
}

/// A walk of the whole key space in order that steps over what cannot be read.
///
/// Scans run from the last key read. When one fails on damage, the walk reads one record at a
/// time up to the damage, then looks for the first place after it where a scan succeeds: it
/// probes keys `last + 2^i` (the key read as a big-endian number wider than any key) for
/// growing `i` until a probe reads, then bisects between the last probe that failed and
/// that one. A scan that starts anywhere inside the keys of a damaged leaf page fails, and one
/// that starts past its last key reads the next page, so the bisection ends just past the
/// damaged page. (Two damaged stretches with readable records between them could be taken for
/// one when the records between are fewer than the probes' step there: those records are then
/// reported as part of the unreadable stretch, never silently dropped.)
struct Walk<'a> {
    src: &'a dyn KvRead,
    report: &'a mut SalvageReport,
}

/// What a scan from one key met.
enum Probe {
    Read,
    End,
    Damaged,
}

impl Walk<'_> {
    fn run(&mut self, f: &mut EntryFn<'_>) -> Result<()> {
        let mut last: Option<Vec<u8>> = None;
        let mut from: Bound<Vec<u8>> = Bound::Unbounded;
        let mut limit = SCAN;
        loop {
            match self.scan(&from, limit) {
                Ok(batch) if batch.is_empty() => return Ok(()),
                Ok(batch) => {
                    for (k, v) in &batch {
                        if last.as_ref().is_some_and(|l| k <= l) {
                            self.report.out_of_order += 1;
                            continue;
                        }
                        f(k, v)?;
                        last = Some(k.clone());
                    }
                    from = last.clone().map_or(Bound::Unbounded, Bound::Excluded);
                    limit = SCAN;
                }
                Err(e) if !is_damage(&e) => return Err(e),
                // Read up to the damage one record at a time.
                Err(_) if limit > 1 => limit = 1,
                Err(_) => {
                    let resume = self.resume_after(last.as_deref())?;
                    let before = match &resume {
                        Some(at) => self.first_key(at),
                        None => None,
                    };
                    self.report.unreadable.push(UnreadableRange {
                        after: last.as_deref().map(describe),
                        before: before.as_deref().map(describe),
                    });
                    match resume {
                        Some(at) => from = Bound::Included(at),
                        None => return Ok(()),
                    }
                    limit = SCAN;
                }
            }
        }
    }

    fn scan(&self, from: &Bound<Vec<u8>>, limit: usize) -> Result<Vec<(Vec<u8>, Value)>> {
        let start = match from {
            Bound::Included(k) => Bound::Included(k.as_slice()),
            Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
            Bound::Unbounded => Bound::Unbounded,
        };
        self.src.scan(KeyRange::new(start, Bound::Unbounded), limit)
    }

    fn probe(&self, at: &[u8]) -> Result<Probe> {
        match self.src.scan(KeyRange::new(Bound::Included(trimmed(at)), Bound::Unbounded), 1) {
            Ok(rows) if rows.is_empty() => Ok(Probe::End),
            Ok(_) => Ok(Probe::Read),
            Err(e) if is_damage(&e) => Ok(Probe::Damaged),
            Err(e) => Err(e),
        }
    }

    /// The first key from `at`, as far as it reads.
    fn first_key(&self, at: &[u8]) -> Option<Vec<u8>> {
        let rows = self.src.scan(KeyRange::new(Bound::Included(trimmed(at)), Bound::Unbounded), 1).ok()?;
        rows.into_iter().next().map(|(k, _)| k)
    }

    /// The smallest probe after `last` (`None`: the start) from which a scan reads, as a
    /// fixed-width number; `None` when every probe to the end of the key space fails.
    fn resume_after(&self, last: Option<&[u8]>) -> Result<Option<Vec<u8>>> {
        let mut base = last.unwrap_or_default().to_vec();
        // Wide enough to tell any two keys apart (the longest is a manifest key: bucket,
        // NUL, object key), so the bisection can end between any two records.
        base.resize(base.len().max(PROBE_WIDTH - 16) + 16, 0);
        let bits = base.len() * 8;
        let mut failed = base.clone();
        let mut good = None;
        // A byte at a time (one probe per byte of the key), then bisect within the last step.
        for bit in (7..bits).step_by(8) {
            let Some(p) = add_pow2(&base, bit) else { break };
            match self.probe(&p)? {
                Probe::Damaged => failed = p,
                Probe::Read | Probe::End => {
                    good = Some(p);
                    break;
                }
            }
        }
        let Some(mut good) = good else { return Ok(None) };
        // Bisect: `failed` fails, `good` reads.
        while let Some(mid) = midpoint(&failed, &good) {
            match self.probe(&mid)? {
                Probe::Damaged => failed = mid,
                Probe::Read | Probe::End => good = mid,
            }
        }
        Ok(Some(trimmed(&good).to_vec()))
    }
}

fn is_damage(e: &Error) -> bool {
    matches!(e, Error::Corrupted { .. })
}

/// A fixed-width probe as a key: without its trailing zero bytes (the same place in key order
/// for every key that is not a prefix of it).
fn trimmed(p: &[u8]) -> &[u8] {
    let end = p.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &p[..end]
}

/// `x + 2^bit` (bit 0 is the last byte's lowest), or `None` past the largest value.
fn add_pow2(x: &[u8], bit: usize) -> Option<Vec<u8>> {
    let mut out = x.to_vec();
    let mut i = out.len().checked_sub(1 + bit / 8)?;
    let mut carry = 1u16 << (bit % 8);
    loop {
        let sum = u16::from(out[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
        if carry == 0 {
            return Some(out);
        }
        i = i.checked_sub(1)?;
    }
}

/// `(a + b) / 2` of two equal-width numbers, `a < b`, or `None` when `b = a + 1`.
fn midpoint(a: &[u8], b: &[u8]) -> Option<Vec<u8>> {
    // Sum with one more leading byte, then halve.
    let mut sum = vec![0u8; a.len() + 1];
    let mut carry = 0u16;
    for i in (0..a.len()).rev() {
        let s = u16::from(a[i]) + u16::from(b[i]) + carry;
        sum[i + 1] = s as u8;
        carry = s >> 8;
    }
    sum[0] = carry as u8;
    let mut half = vec![0u8; a.len()];
    let mut rem = u16::from(sum[0]);
    for i in 0..a.len() {
        let cur = (rem << 8) | u16::from(sum[i + 1]);
        half[i] = (cur >> 1) as u8;
        rem = cur & 1;
    }
    (half.as_slice() != a).then_some(half)
}

/// A record's key as text, for the report.
pub(crate) fn describe(k: &[u8]) -> String {
    if let Some((bucket, seg, index)) = keys::parse_chunk(k) {
        return format!("chunk {index} of segment {seg:016x} of bucket {bucket:?}");
    }
    if let Some(rest) = k.strip_prefix(META) {
        return format!("bookkeeping record {:?}", String::from_utf8_lossy(rest));
    }
    match k.iter().position(|&b| b == 0) {
        Some(nul) => format!(
            "object {:?} of bucket {:?}",
            String::from_utf8_lossy(&k[nul + 1..]),
            String::from_utf8_lossy(&k[..nul])
        ),
        None => format!("record {:?}", String::from_utf8_lossy(k)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn probes_are_ordered_like_keys() {
        let base = b"bkt\0k0005\0\0".to_vec();
        assert_eq!(add_pow2(&base, 0).unwrap(), b"bkt\0k0005\0\x01");
        assert_eq!(add_pow2(&base, 16).unwrap(), b"bkt\0k0006\0\0");
        assert_eq!(add_pow2(&[0xff, 0xff], 0), None);
        assert_eq!(add_pow2(&[0x00, 0xff], 0).unwrap(), [0x01, 0x00]);
        assert_eq!(midpoint(&[0, 0], &[0, 4]).unwrap(), [0, 2]);
        assert_eq!(midpoint(&[0, 0xff], &[1, 1]).unwrap(), [1, 0]);
        assert_eq!(midpoint(&[0xff, 0xfe], &[0xff, 0xff]), None);
        assert_eq!(trimmed(b"ab\0\0"), b"ab");
        assert!(trimmed(&add_pow2(&base, 0).unwrap()) > &b"bkt\0k0005"[..]);
    }
}
