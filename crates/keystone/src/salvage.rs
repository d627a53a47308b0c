//! `Datastore::salvage`: copies what can still be read of a damaged store into a new one.
//!
//! A page of redb's B-tree damaged on disk fails every operation that meets it (see
//! `storage/redb/guard.rs`, `guarded`): the objects on it cannot be read, and neither deleted nor
//! compacted away, since both must read the page. Salvage walks the source's whole key space
//! read-only, copies every record it can read into a new file, steps over what it cannot (see
//! [`Walk`]), then opens the copy as a store and clears what the damage left inconsistent
//! there with the store's own tools: objects whose chunks were lost are removed
//! (`remove_corrupt`), chunks whose manifest was lost are freed (a sweep of every bucket).
//!
//! A source cut short (a file closed cleanly, then truncated: redb refuses it) is read as long
//! as its header says, zeros past the cut (`storage/redb/cut.rs`): pages there read as damaged
//! pages do.
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
use crate::storage::{Commit, EntryFn, KeyRange, KeyValueStore, KvRead, WriteTxn};
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
    /// Records that came out of key order (a damaged page that still reads: a key with a byte
    /// changed), copied all the same: an object may then be under a changed name.
    pub out_of_order: u64,
    /// Multipart uploads and uploads in flight that were not copied.
    pub uploads_dropped: u64,
    /// Buckets whose own record was lost or damaged and that were created again (a lost one
    /// because objects or chunks of theirs were found).
    pub buckets_recreated: Vec<String>,
    /// Objects copied whose content was damaged or incomplete (a chunk on a damaged page),
    /// removed from the new store.
    pub removed: Vec<CorruptObject>,
    /// The new store's [`verify`](crate::Datastore::verify), at the end.
    pub verified: VerifyReport,
    /// The source was cut short (a file closed cleanly, then truncated): its length, and the
    /// length its header records. What lay past the cut was read as zeros, and is among the
    /// unreadable stretches and removed objects, or was free space.
    pub cut_short: Option<(u64, u64)>,
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
/// Probes spread over an unreadable stretch to find readable pages between damaged ones, and
/// how many times a stretch is searched so (each time it shrinks).
const HIDDEN_PROBES: u32 = 257;
const HIDDEN_ROUNDS: usize = 64;
/// Bytes of a probe: more than the longest key (a bucket name, NUL and an object key).
const PROBE_WIDTH: usize = 64 + crate::data::names::MAX_KEY_LEN + 16;

pub(crate) fn salvage(builder: Builder, source: &Path, dest: &Path) -> Result<SalvageReport> {
    let redb = builder.redb();
    let exists = |path: &Path| {
        Error::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} already exists (salvage writes a new file)", path.display()),
        ))
    };
    if dest.exists() {
        return Err(exists(dest));
    }
    // The source first: nothing is created when it cannot be read at all. A source cut short,
    // which redb refuses, is read as long as it should be, zeros past the cut.
    let cut = crate::storage::redb::cut::measure(source);
    let src = match cut {
        Some(cut) => RedbStore::open_cut_short(source, &redb, cut)?,
        None => RedbStore::open_read_only(source, &redb)?,
    };
    // A store of a newer format is refused before anything is created: its records would read
    // as damage here, and `remove_corrupt` on the copy delete them. A format record that
    // cannot be read says nothing.
    let format = src.read()?.get(&keys::format()).ok().flatten();
    crate::data::format::check_if_readable(format.as_deref(), source)?;
    // Written beside `dest` under a temporary name and renamed at the end, so that `dest` is
    // only ever a finished, verified store; one left by a salvage that was stopped is named
    // for what it is.
    let partial = crate::storage::redb::temporary_name(dest, "salvage-in-progress");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .map_err(|e| Error::io_while(format_args!("cannot create {} for the salvaged store", partial.display()), &e))?;
    let result = fill(builder, &src, &redb, &partial)
        .map(|report| SalvageReport { cut_short: cut.map(|c| (c.len, c.layout)), ..report });
    drop(src);
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    // Never over a file that appeared at `dest` meanwhile.
    crate::storage::redb::move_no_replace(&partial, dest).map_err(|e| match e {
        Error::Io(io) if io.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(&partial);
            exists(dest)
        }
        e => Error::Io(std::io::Error::other(format!(
            "the salvaged store is complete in {} but could not be given its name: {e}",
            partial.display()
        ))),
    })?;
    Ok(report)
}

/// Copies what reads of `src` into the new file `out_path`, then makes it a consistent store.
fn fill(
    builder: Builder,
    src: &RedbStore,
    redb: &crate::storage::redb::RedbConfig,
    out_path: &Path,
) -> Result<SalvageReport> {
    let mut report = SalvageReport::default();
    {
        let out = RedbStore::open(out_path, redb)?;
        let snap = src.read()?;
        let mut copy = Copy::new(&out);
        Walk { src: snap.as_ref(), report: &mut report }.run(&mut |k, v| copy.record(k, v))?;
        copy.finish(&mut report)?;
    }
    // The copy as a store: objects that lost chunks are removed, chunks that lost their
    // manifest are freed by the sweeps requested for every bucket.
    let db = builder.read_only(false).open(out_path)?;
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
                if BucketRecord::decode(v).is_err() {
                    // Damaged: not copied, the bucket is created again (`finish`).
                    self.buckets_seen.insert(name.to_owned());
                    return Ok(());
                }
                self.bucket_records.insert(name.to_owned());
            } else if k == keys::idgen().as_slice() {
                // A damaged counter near the end of the id space would leave the copy unable
                // to open; the segment ids copied bound it from below anyway.
                if let Ok(hi) = crate::data::records::decode_idgen(v)
                    && hi < u64::from(u32::MAX) / 2
                {
                    self.idgen = self.idgen.max(hi);
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
            w.put(&keys::idgen(), &crate::data::records::encode_idgen(idgen))?;
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
/// One scan runs over the whole key space, record after record, until it meets damage. Then
/// the walk looks for the first place after the last key read from which a scan reads: it
/// probes keys `last + 2^i` (the key read as a big-endian number wider than any key) for
/// growing `i` — a byte at a time past the key's own length, a bit at a time within it —
/// until a probe reads, then bisects between the last probe that failed and that one, and
/// scans on from there. A scan that starts inside the keys of a damaged leaf page fails, and
/// one that starts past its last key reads the next page, so the bisection ends just past the
/// damaged page. (Two damaged pages with readable records between them are taken for one
/// stretch when the records between lie within the last step of the probes: those records are
/// then reported as part of the unreadable stretch, never silently dropped.)
///
/// A record whose key comes out of order (a damaged page that still reads: a key with a byte
/// changed) is copied all the same and counted; the walk goes on from where the scan is, not
/// from that key, so a key changed to a larger one does not skip the records after it.
struct Walk<'a> {
    src: &'a dyn KvRead,
    report: &'a mut SalvageReport,
}

/// A readable place found inside an unreadable stretch: the probe before it (which failed),
/// the probe that read, and the first key it read.
struct Hidden {
    below: Vec<u8>,
    at: Vec<u8>,
    first: Vec<u8>,
}

/// What a scan from one key met: the first key there, the end, or damage.
enum Probe {
    Read(Vec<u8>),
    End,
    Damaged,
}

impl Walk<'_> {
    fn run(&mut self, f: &mut EntryFn<'_>) -> Result<()> {
        // The last key read, and the furthest point a resumed scan started from (resumes only
        // move forward, whatever order damaged keys come out in).
        let mut last: Option<Vec<u8>> = None;
        let mut floor: Option<Vec<u8>> = None;
        let mut from: Bound<Vec<u8>> = Bound::Unbounded;
        loop {
            let mut failed_copy = None;
            let start = from.as_ref().map(Vec::as_slice);
            let out_of_order = &mut self.report.out_of_order;
            let scanned = self.src.scan_with(KeyRange::new(start, Bound::Unbounded), usize::MAX, &mut |k, v| {
                if last.as_deref().is_some_and(|l| k <= l) {
                    *out_of_order += 1;
                }
                if let Err(e) = f(k, v) {
                    failed_copy = Some(e);
                    return Ok(false);
                }
                last = Some(k.to_vec());
                Ok(true)
            });
            if let Some(e) = failed_copy {
                return Err(e);
            }
            match scanned {
                Ok(_) => return Ok(()),
                Err(e) if !is_damage(&e) => return Err(e),
                Err(_) => {}
            }
            let base = last.as_ref().max(floor.as_ref()).cloned();
            let resume = self.resume_after(base.as_deref())?;
            self.report.unreadable.push(UnreadableRange {
                after: base.as_deref().map(describe),
                before: resume.as_ref().map(|(_, first)| describe(first)),
            });
            let Some((at, _)) = resume else { return Ok(()) };
            floor = Some(at.clone());
            from = Bound::Included(at);
        }
    }

    /// A scan of one record from `at`, lent, not copied (a chunk may be a MiB).
    fn probe(&self, at: &[u8]) -> Result<Probe> {
        let mut first = None;
        let found = self.src.first_with(KeyRange::new(Bound::Included(trimmed(at)), Bound::Unbounded), &mut |k, _| {
            first = Some(k.to_vec());
            Ok(())
        });
        match (found, first) {
            (Ok(true), Some(k)) => Ok(Probe::Read(k)),
            (Ok(_), _) => Ok(Probe::End),
            (Err(e), _) if is_damage(&e) => Ok(Probe::Damaged),
            (Err(e), _) => Err(e),
        }
    }

    /// The smallest probe after `last` (`None`: the start) from which a scan reads, as a key,
    /// with the first key read there; `None` when every probe to the end of the key space
    /// fails or finds nothing.
    fn resume_after(&self, last: Option<&[u8]>) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let own = last.map_or(0, <[u8]>::len);
        let mut base = last.unwrap_or_default().to_vec();
        // Wide enough to tell any two keys apart (the longest is a manifest key: bucket,
        // NUL, object key), so the bisection can end between any two records.
        base.resize(own.max(PROBE_WIDTH - 16) + 16, 0);
        let width = base.len();
        // Past the key's own bytes a byte at a time (the top bit of each), within them a bit
        // at a time: the last step, where readable records between two damaged pages could
        // be stepped over, stays within one bit of the key.
        let steps = (0..width - own).map(|byte| byte * 8 + 7).chain((width - own) * 8..width * 8);
        let mut failed = base.clone();
        let mut good = None;
        for bit in steps {
            let Some(p) = add_pow2(&base, bit) else { break };
            match self.probe(&p)? {
                Probe::Damaged => failed = p,
                Probe::Read(k) => {
                    good = Some((p, Some(k)));
                    break;
                }
                Probe::End => {
                    good = Some((p, None));
                    break;
                }
            }
        }
        let Some((mut good, mut first)) = good else { return Ok(None) };
        // A probe just past `last` meets the damage that stopped the scan.
        let start = add_pow2(&base, 0).unwrap_or_else(|| base.clone());
        for _ in 0..HIDDEN_ROUNDS {
            // Bisect: `failed` fails, `good` reads.
            while let Some(mid) = midpoint(&failed, &good) {
                match self.probe(&mid)? {
                    Probe::Damaged => failed = mid,
                    Probe::Read(k) => (good, first) = (mid, Some(k)),
                    Probe::End => (good, first) = (mid, None),
                }
            }
            // The bisection found *a* place where reading resumes; readable pages between two
            // damaged ones below it are found by probes spread over the stretch.
            let Some(Hidden { below, at, first: k }) = self.hidden_readable(&start, &good)? else { break };
            (failed, good, first) = (below, at, Some(k));
        }
        Ok(first.map(|k| (trimmed(&good).to_vec(), k)))
    }

    /// The first of `HIDDEN_PROBES` points spread evenly over (`lo`, `hi`) from which a scan
    /// reads, with the point before it (where it failed, or `lo`) and the key read.
    fn hidden_readable(&self, lo: &[u8], hi: &[u8]) -> Result<Option<Hidden>> {
        let mut below = lo.to_vec();
        for j in 1..HIDDEN_PROBES {
            let p = fraction(lo, hi, j, HIDDEN_PROBES);
            if p <= below || p.as_slice() >= hi {
                continue;
            }
            match self.probe(&p)? {
                Probe::Damaged => below = p,
                Probe::Read(first) => return Ok(Some(Hidden { below, at: p, first })),
                Probe::End => return Ok(None),
            }
        }
        Ok(None)
    }
}

/// Whether a read of the source failed on damage: a page that does not decode, or one that
/// points where the file cannot be read (past its end). Either way that stretch is skipped.
fn is_damage(e: &Error) -> bool {
    matches!(e, Error::Corrupted { .. } | Error::Storage { .. } | Error::Io(_))
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

/// `a + (b - a) / n * j` of two equal-width numbers, `a <= b` (a point `j`/`n` of the way).
fn fraction(a: &[u8], b: &[u8], j: u32, n: u32) -> Vec<u8> {
    // b - a
    let mut diff = vec![0u8; a.len()];
    let mut borrow = false;
    for i in (0..a.len()).rev() {
        let (d, under) = b[i].overflowing_sub(a[i]);
        let (d, under_again) = d.overflowing_sub(u8::from(borrow));
        (diff[i], borrow) = (d, under || under_again);
    }
    // / n
    let mut rem = 0u64;
    for byte in &mut diff {
        let cur = (rem << 8) | u64::from(*byte);
        *byte = (cur / u64::from(n)) as u8;
        rem = cur % u64::from(n);
    }
    // * j, then + a (no overflow: the result is at most b)
    let mut carry = 0u64;
    let mut out = a.to_vec();
    for i in (0..a.len()).rev() {
        let cur = u64::from(diff[i]) * u64::from(j) + u64::from(a[i]) + carry;
        out[i] = cur as u8;
        carry = cur >> 8;
    }
    out
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
fn describe(k: &[u8]) -> String {
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

    /// A damaged id counter near the end of the id space is not carried over (the copy could
    /// not be opened); the segment ids copied set it instead.
    #[test]
    fn a_damaged_id_counter_is_not_trusted() {
        let out = RedbStore::in_memory(&crate::storage::redb::RedbConfig { cache_size: None, journal: true }).unwrap();
        let mut copy = Copy::new(&out);
        copy.record(&keys::idgen(), &[0xff; 8]).unwrap();
        copy.record(&keys::chunk("bkt", 7 << 32 | 3, 0), b"chunk").unwrap();
        let mut report = SalvageReport::default();
        copy.finish(&mut report).unwrap();
        let r = out.read().unwrap();
        assert_eq!(crate::data::records::decode_idgen(&r.get(&keys::idgen()).unwrap().unwrap()).unwrap(), 7);
        assert_eq!(report.buckets_recreated, ["bkt"]);
    }

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
        assert_eq!(fraction(&[0, 0], &[1, 0], 1, 2), [0, 128]);
        assert_eq!(fraction(&[0, 10], &[0, 30], 3, 4), [0, 25]);
        assert_eq!(fraction(&[1, 250], &[2, 6], 1, 2), [2, 0]);
        assert_eq!(trimmed(b"ab\0\0"), b"ab");
        assert!(trimmed(&add_pow2(&base, 0).unwrap()) > &b"bkt\0k0005"[..]);
    }
}
