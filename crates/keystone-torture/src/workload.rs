//! The seeded workload of the crash loop. A worker process runs it and reports each
//! acknowledged operation; the parent regenerates the same operations from the seed, so the
//! only thing that crosses the pipe is how far each thread got.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use keystone::{CompleteOptions, CompletedPart, CopyOptions, Datastore, Error, ListOptions, ObjectMeta, PutOptions};

use crate::Content;

/// Buckets the workload writes to (created by the parent).
pub const BUCKETS: [&str; 3] = ["alpha", "beta", "gamma"];
/// Distinct keys per thread and run.
const KEYS_PER_THREAD: u32 = 24;

/// An object's content: generated pieces, concatenated (one for a put, one per multipart part).
pub type Val = Vec<(u64, u64)>;

/// A stored object's location.
pub type Loc = (String, String);

/// One workload operation.
#[derive(Debug, Clone)]
pub enum WOp {
    /// Put (from memory, or streamed through `put_reader`).
    Put { loc: Loc, val: Val, stream: bool },
    /// Delete.
    Delete { loc: Loc },
    /// Copy.
    Copy { src: Loc, dst: Loc },
    /// Multi-bucket transaction of puts and deletes.
    Txn { puts: Vec<(Loc, Val)>, deletes: Vec<Loc> },
    /// Multipart upload, completed.
    Multipart { loc: Loc, val: Val },
}

impl WOp {
    /// Keys this operation may change.
    pub fn touches(&self) -> Vec<Loc> {
        match self {
            WOp::Put { loc, .. } | WOp::Delete { loc } | WOp::Multipart { loc, .. } => vec![loc.clone()],
            WOp::Copy { dst, .. } => vec![dst.clone()],
            WOp::Txn { puts, deletes } => puts.iter().map(|(l, _)| l.clone()).chain(deletes.iter().cloned()).collect(),
        }
    }

    /// Applies the operation to `state` (as if it succeeded).
    pub fn apply(&self, state: &mut BTreeMap<Loc, Val>) {
        match self {
            WOp::Put { loc, val, .. } | WOp::Multipart { loc, val } => {
                state.insert(loc.clone(), val.clone());
            }
            WOp::Delete { loc } => {
                state.remove(loc);
            }
            WOp::Copy { src, dst } => {
                if let Some(v) = state.get(src).cloned() {
                    state.insert(dst.clone(), v);
                }
            }
            WOp::Txn { puts, deletes } => {
                for (l, v) in puts {
                    state.insert(l.clone(), v.clone());
                }
                for l in deletes {
                    state.remove(l);
                }
            }
        }
    }
}

/// The operation generator of one thread of one run.
#[derive(Debug)]
pub struct Generator {
    rng: fastrand::Rng,
    prefix: String,
    /// What the store holds for this thread's keys if every operation so far succeeded.
    pub state: BTreeMap<Loc, Val>,
    /// Largest object size.
    max_size: u64,
}

impl Generator {
    /// The generator for `thread` of run `run` seeded with `seed`.
    pub fn new(seed: u64, run: u32, thread: u32, max_size: u64) -> Self {
        let rng = fastrand::Rng::with_seed(seed ^ (u64::from(run) << 32) ^ u64::from(thread).wrapping_mul(0x9E37));
        Generator { rng, prefix: format!("r{run}/t{thread}/"), state: BTreeMap::new(), max_size }
    }

    fn size(&mut self) -> u64 {
        let max = self.max_size;
        let s = match self.rng.u32(0..100) {
            0..=4 => 0,
            5..=59 => self.rng.u64(1..=16 * 1024),
            60..=84 => self.rng.u64(16 * 1024..=1024 * 1024),
            85..=96 => self.rng.u64(1024 * 1024..=8 * 1024 * 1024),
            _ => self.rng.u64(8 * 1024 * 1024..=64 * 1024 * 1024),
        };
        s.min(max)
    }

    fn val(&mut self) -> Val {
        let (seed, len) = (self.rng.u64(..), self.size());
        vec![(seed, len)]
    }

    fn loc(&mut self) -> Loc {
        let b = BUCKETS[self.rng.usize(..BUCKETS.len())];
        let k = self.rng.u32(..KEYS_PER_THREAD);
        (b.to_owned(), format!("{}k{k}", self.prefix))
    }

    fn existing(&mut self) -> Option<Loc> {
        let n = self.state.len();
        if n == 0 {
            return None;
        }
        self.state.keys().nth(self.rng.usize(..n)).cloned()
    }

    /// The next operation; it is also applied to `self.state`.
    pub fn next_op(&mut self) -> WOp {
        let op = match self.rng.u32(0..100) {
            0..=44 => WOp::Put { loc: self.loc(), val: self.val(), stream: self.rng.bool() },
            45..=59 => WOp::Delete { loc: self.existing().unwrap_or_else(|| self.loc()) },
            60..=71 => match self.existing() {
                Some(src) => WOp::Copy { src, dst: self.loc() },
                None => WOp::Put { loc: self.loc(), val: self.val(), stream: false },
            },
            72..=91 => {
                let n = self.rng.usize(1..=4);
                let puts = (0..n).map(|_| (self.loc(), self.small_val())).collect::<Vec<_>>();
                let deletes = (0..self.rng.usize(0..=2)).filter_map(|_| self.existing()).collect::<Vec<_>>();
                // A key both put and deleted in one transaction would depend on order; keep them apart.
                let deletes = deletes.into_iter().filter(|d| !puts.iter().any(|(l, _)| l == d)).collect();
                WOp::Txn { puts, deletes }
            }
            _ => {
                let n = self.rng.usize(1..=3);
                let val = (0..n).map(|_| (self.rng.u64(..), self.size())).collect();
                WOp::Multipart { loc: self.loc(), val }
            }
        };
        op.apply(&mut self.state);
        op
    }

    fn small_val(&mut self) -> Val {
        let (seed, len) = (self.rng.u64(..), self.rng.u64(0..=256 * 1024).min(self.max_size));
        vec![(seed, len)]
    }
}

/// A reader over the expected content of `val`.
pub fn reader(val: &Val) -> impl Read + use<> {
    let pieces: Vec<Content> = val.iter().map(|&(s, l)| Content::new(s, l)).collect();
    Chain { pieces, at: 0 }
}

struct Chain {
    pieces: Vec<Content>,
    at: usize,
}

impl Read for Chain {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at < self.pieces.len() {
            let n = self.pieces[self.at].read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            self.at += 1;
        }
        Ok(0)
    }
}

/// Total length of `val`.
pub fn len_of(val: &Val) -> u64 {
    val.iter().map(|p| p.1).sum()
}

/// Runs `op` against the store.
pub fn run(db: &Datastore, op: &WOp) -> Result<(), Error> {
    match op {
        WOp::Put { loc, val, stream } => {
            let b = db.bucket(&loc.0)?;
            if *stream || len_of(val) > 1024 * 1024 {
                b.put_reader(&loc.1, reader(val), PutOptions::default())?;
            } else {
                let mut data = Vec::new();
                reader(val).read_to_end(&mut data).map_err(Error::Io)?;
                b.put_bytes(&loc.1, &data)?;
            }
        }
        WOp::Delete { loc } => db.bucket(&loc.0)?.delete(&loc.1)?,
        WOp::Copy { src, dst } => {
            db.copy_object(&src.0, &src.1, &dst.0, &dst.1, &CopyOptions::default())?;
        }
        WOp::Txn { puts, deletes } => db.transaction(|tx| {
            for (loc, val) in puts {
                tx.bucket(&loc.0)?.put_reader(&loc.1, reader(val), PutOptions::default())?;
            }
            for loc in deletes {
                tx.bucket(&loc.0)?.delete(&loc.1)?;
            }
            Ok::<_, Error>(())
        })?,
        WOp::Multipart { loc, val } => {
            let b = db.bucket(&loc.0)?;
            let id = b.create_upload(&loc.1, ObjectMeta::default())?;
            let mut parts = Vec::new();
            for (i, &(s, l)) in val.iter().enumerate() {
                let n = i as u32 + 1;
                let info = b.upload_part(&id, n, Content::new(s, l))?;
                parts.push(CompletedPart { part_number: n, etag: info.etag });
            }
            b.complete_upload(&id, &parts, &CompleteOptions::default())?;
        }
    }
    Ok(())
}

/// Whether the store holds exactly `val` at `loc` (`None`: no object). Reads the object to
/// its end, which also checks its whole-object checksum.
pub fn holds(db: &Datastore, loc: &Loc, val: Option<&Val>) -> Result<bool, Error> {
    let b = db.bucket(&loc.0)?;
    match (b.open(&loc.1), val) {
        (Err(Error::NoSuchKey { .. }), None) => Ok(true),
        (Err(Error::NoSuchKey { .. }), Some(_)) | (Ok(_), None) => Ok(false),
        (Err(e), _) => Err(e),
        (Ok(r), Some(v)) => {
            if r.len() != len_of(v) {
                return Ok(false);
            }
            let mut got = r;
            let mut want = reader(v);
            let (mut a, mut bb) = (vec![0u8; 256 * 1024], vec![0u8; 256 * 1024]);
            loop {
                let n = crate::support::read_full(&mut got, &mut a).map_err(Error::from_io)?;
                let m = crate::support::read_full(&mut want, &mut bb).map_err(Error::Io)?;
                if n != m || a[..n] != bb[..m] {
                    return Ok(false);
                }
                if n == 0 {
                    return Ok(true);
                }
            }
        }
    }
}

/// What [`check_recovered`] saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct Checked {
    /// Operations in flight at the crash that turned out applied.
    pub in_flight_applied: u64,
    /// Operations in flight at the crash that turned out not applied.
    pub in_flight_not_applied: u64,
    /// Objects compared byte for byte.
    pub objects_checked: u64,
}

/// Checks a store reopened after a crash against `model` (every acknowledged operation
/// applied): every acknowledged write readable with the right bytes (and checksum), every
/// acknowledged delete gone, each operation of `in_flight` applied wholly or not at all (the
/// model is updated to whichever it was), and no object in `buckets` that the model lacks.
pub fn check_recovered(
    db: &Datastore,
    model: &mut BTreeMap<Loc, Val>,
    in_flight: &[WOp],
    buckets: &[&str],
) -> Result<Checked, String> {
    let mut c = Checked::default();
    let mut touched = BTreeSet::new();
    for op in in_flight {
        let locs = op.touches();
        let before: Vec<Option<Val>> = locs.iter().map(|l| model.get(l).cloned()).collect();
        let mut after_model = model.clone();
        op.apply(&mut after_model);
        let after: Vec<Option<Val>> = locs.iter().map(|l| after_model.get(l).cloned()).collect();
        let held = |vals: &[Option<Val>]| -> Result<bool, String> {
            for (l, v) in locs.iter().zip(vals) {
                if !holds(db, l, v.as_ref()).map_err(|e| format!("reading {l:?}: {e}"))? {
                    return Ok(false);
                }
            }
            Ok(true)
        };
        if held(&after)? {
            if before != after {
                c.in_flight_applied += 1;
            }
            *model = after_model;
        } else if held(&before)? {
            c.in_flight_not_applied += 1;
        } else {
            return Err(format!("operation in flight was partly applied or damaged: {op:?}"));
        }
        touched.extend(locs);
    }
    for (loc, val) in model.iter() {
        c.objects_checked += 1;
        if !touched.contains(loc) && !holds(db, loc, Some(val)).map_err(|e| format!("{loc:?}: {e}"))? {
            return Err(format!("acknowledged write lost or damaged: {loc:?} should hold {val:?}"));
        }
    }
    for b in buckets {
        let bucket = db.bucket(b).map_err(|e| format!("bucket {b}: {e}"))?;
        for entry in bucket.list_iter(ListOptions::default()).map_err(|e| format!("list: {e}"))? {
            if let keystone::ListEntry::Object(info) = entry.map_err(|e| format!("list: {e}"))?
                && !model.contains_key(&((*b).to_owned(), info.key.clone()))
            {
                return Err(format!("object that no acknowledged write left: {b}/{}", info.key));
            }
        }
    }
    Ok(c)
}
