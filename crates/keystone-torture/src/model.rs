//! A BTreeMap model of a Keystone store and a harness that replays operations against both
//! and reports the first difference. Used by the proptest model test
//! (crates/keystone/tests/model.rs) and by the cargo-fuzz target `model` (fuzz/), which
//! build their operation sequences differently but run them through this one model.

use std::collections::BTreeMap;

use keystone::{
    CompleteOptions, CompletedPart, Datastore, Error, ListEntry, ListOptions, ObjectMeta, PutCondition, PutOptions,
    Snapshot,
};

use crate::support::Content;

/// Bucket names used by the operations (the first two exist at the start).
pub const BUCKETS: [&str; 3] = ["b-0", "b-1", "b-2"];
/// Object keys: some share prefixes, one is byte-exact with dots and slashes, one is not ASCII.
pub const KEYS: [&str; 8] = ["k", "k0", "dir/a", "dir/b", "dir/sub/c", "a//b/../c", "ключ", "z"];
/// Listing prefixes.
pub const PREFIXES: [&str; 6] = ["", "d", "dir/", "dir/sub/", "k", "a/"];
/// Chunk size of the store under test (small, so a few KiB span many chunks).
pub const CHUNK: usize = 256;
/// Inline threshold of the store under test.
pub const INLINE: usize = 64;

/// Object sizes around every boundary of the store under test.
pub fn size_of(raw: u32) -> usize {
    match raw % 12 {
        0 => 0,
        1 => 1,
        2 => INLINE - 1,
        3 => INLINE,
        4 => INLINE + 1,
        5 => CHUNK - 1,
        6 => CHUNK,
        7 => CHUNK + 1,
        8 => 3 * CHUNK + 1,
        9 => 16 * CHUNK + 7,
        _ => (raw as usize / 12) % (24 * CHUNK),
    }
}

/// A condition on a put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    /// None.
    None,
    /// Only if absent.
    IfAbsent,
    /// If the ETag matches the current object's.
    IfMatchCurrent,
    /// If the ETag matches something that is not the current ETag.
    IfMatchWrong,
}

/// One operation inside a transaction.
#[derive(Debug, Clone)]
pub enum TxOp {
    /// Put bytes.
    Put { b: u8, k: u8, len: u32, seed: u8 },
    /// Delete.
    Delete { b: u8, k: u8 },
    /// Copy between buckets.
    Copy { sb: u8, sk: u8, db: u8, dk: u8 },
    /// Read (must see the transaction's own writes).
    Get { b: u8, k: u8 },
}

/// One operation of a sequence.
#[derive(Debug, Clone)]
pub enum Op {
    /// Put, from memory or streamed through `put_reader`.
    Put { b: u8, k: u8, len: u32, seed: u8, stream: bool, cond: Cond },
    /// Delete.
    Delete { b: u8, k: u8 },
    /// Copy, possibly between buckets.
    Copy { sb: u8, sk: u8, db: u8, dk: u8 },
    /// Read the whole object or a range.
    Get { b: u8, k: u8, range: Option<(u32, u32)> },
    /// List a prefix, page by page.
    List { b: u8, prefix: u8, delim: bool, page: u8 },
    /// A transaction that commits or aborts.
    Txn { ops: Vec<TxOp>, commit: bool },
    /// A multipart upload that completes or aborts.
    Multipart { b: u8, k: u8, parts: Vec<(u32, u8)>, complete: bool },
    /// Create a bucket.
    CreateBucket { b: u8 },
    /// Delete a bucket (only if empty, or with everything in it).
    DeleteBucket { b: u8, only_empty: bool },
    /// Take a snapshot to be checked later.
    TakeSnapshot,
    /// Check the snapshot still shows the state it was taken in.
    CheckSnapshot,
    /// Close and reopen the store.
    Reopen,
    /// Collect garbage.
    Gc,
    /// Compact: rewrite the table in key order and shrink the file (refused while a snapshot
    /// is held on a redb file).
    Compact,
}

/// A stored object in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obj {
    /// Content.
    pub data: Vec<u8>,
    /// ETag.
    pub etag: String,
}

/// The model: bucket -> key -> object.
pub type Model = BTreeMap<String, BTreeMap<String, Obj>>;

/// Which store the harness runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A redb file in a temporary directory (reopen is a real reopen).
    File,
    /// The in-memory reference map with small backend limits (reopen is skipped).
    RefMap,
}

/// Replays operations against a store and the model.
#[derive(Debug)]
pub struct Harness {
    dir: tempfile::TempDir,
    target: Target,
    db: Option<Datastore>,
    model: Model,
    snap: Option<(Snapshot, Model)>,
    /// Operations applied.
    pub ops: u64,
}

/// The ETag of a single write under the default algorithm (`EtagAlgorithm::Xxh3`).
fn single_etag(data: &[u8]) -> String {
    format!("{:032x}-0", xxhash_rust::xxh3::xxh3_128(data))
}

fn md5_hex(data: &[u8]) -> String {
    hex(&md5_raw(data))
}

fn md5_raw(data: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(data).into()
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter().fold(String::with_capacity(b.len() * 2), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// The kind of an outcome, for comparing the store's answer with the model's.
fn kind<T>(r: &Result<T, Error>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => err_kind(e),
    }
}

fn err_kind(e: &Error) -> &'static str {
    match e {
        Error::NoSuchBucket { .. } => "NoSuchBucket",
        Error::NoSuchKey { .. } => "NoSuchKey",
        Error::PreconditionFailed { .. } => "PreconditionFailed",
        Error::BucketAlreadyExists { .. } => "BucketAlreadyExists",
        Error::BucketNotEmpty { .. } => "BucketNotEmpty",
        Error::InvalidRange { .. } => "InvalidRange",
        Error::InvalidPart { .. } => "InvalidPart",
        _ => "other error",
    }
}

fn bname(b: u8) -> &'static str {
    BUCKETS[b as usize % BUCKETS.len()]
}

fn kname(k: u8) -> &'static str {
    KEYS[k as usize % KEYS.len()]
}

fn content(seed: u8, len: u32) -> Vec<u8> {
    Content::bytes(u64::from(seed) << 32 | u64::from(len), size_of(len))
}

/// What the model says a read gives.
fn lookup<'m>(m: &'m Model, b: &str, k: &str) -> Result<&'m Obj, &'static str> {
    let bucket = m.get(b).ok_or("NoSuchBucket")?;
    bucket.get(k).ok_or("NoSuchKey")
}

/// Applies a copy to the model; returns the expected outcome kind.
fn model_copy(m: &mut Model, sb: &str, sk: &str, db: &str, dk: &str) -> &'static str {
    let src = match lookup(m, sb, sk) {
        Ok(o) => o.clone(),
        Err(e) => return e,
    };
    match m.get_mut(db) {
        Some(dst) => {
            dst.insert(dk.to_owned(), src);
            "ok"
        }
        None => "NoSuchBucket",
    }
}

fn model_put(m: &mut Model, b: &str, k: &str, data: Vec<u8>, cond: Cond) -> &'static str {
    let Some(bucket) = m.get_mut(b) else { return "NoSuchBucket" };
    let exists = bucket.contains_key(k);
    let ok = match cond {
        Cond::None => true,
        Cond::IfAbsent => !exists,
        Cond::IfMatchCurrent => exists,
        Cond::IfMatchWrong => false,
    };
    if !ok {
        return "PreconditionFailed";
    }
    let etag = single_etag(&data);
    bucket.insert(k.to_owned(), Obj { data, etag });
    "ok"
}

fn model_delete(m: &mut Model, b: &str, k: &str) -> &'static str {
    match m.get_mut(b) {
        Some(bucket) => {
            bucket.remove(k);
            "ok"
        }
        None => "NoSuchBucket",
    }
}

/// Keys and common prefixes the model lists.
fn model_list(m: &Model, b: &str, prefix: &str, delim: bool) -> Option<(Vec<String>, Vec<String>)> {
    let bucket = m.get(b)?;
    let mut keys = Vec::new();
    let mut cps: Vec<String> = Vec::new();
    for k in bucket.keys().filter(|k| k.starts_with(prefix)) {
        let rest = &k[prefix.len()..];
        match rest.find('/').filter(|_| delim) {
            Some(pos) => {
                let cp = format!("{prefix}{}", &rest[..=pos]);
                if cps.last() != Some(&cp) {
                    cps.push(cp);
                }
            }
            None => keys.push(k.clone()),
        }
    }
    Some((keys, cps))
}

/// Everything a snapshot shows.
pub fn dump_snapshot(snap: &Snapshot) -> Result<Model, Error> {
    let mut out = Model::new();
    for b in snap.list_buckets()? {
        let bucket = snap.bucket(&b.name)?;
        let mut objects = BTreeMap::new();
        for entry in bucket.list_iter(ListOptions::default().max_keys(3))? {
            if let ListEntry::Object(info) = entry? {
                let data = bucket.get_bytes(&info.key)?;
                objects.insert(info.key, Obj { data, etag: info.etag });
            }
        }
        out.insert(b.name, objects);
    }
    Ok(out)
}

/// How a transaction closure ended.
enum TxEnd {
    Store(Error),
    Abort,
    TooLarge,
}

impl From<Error> for TxEnd {
    fn from(e: Error) -> Self {
        TxEnd::Store(e)
    }
}

impl Harness {
    /// A fresh store with buckets `b-0` and `b-1`.
    pub fn new(target: Target) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let mut h = Harness { dir, target, db: None, model: Model::new(), snap: None, ops: 0 };
        h.open()?;
        for b in &BUCKETS[..2] {
            h.db()?.create_bucket(b).map_err(|e| format!("create {b}: {e}"))?;
            h.model.insert((*b).to_owned(), BTreeMap::new());
        }
        Ok(h)
    }

    fn open(&mut self) -> Result<(), String> {
        let builder = Datastore::builder().chunk_size(CHUNK).inline_threshold(INLINE).upload_batch_size(4 * CHUNK);
        let db = match self.target {
            Target::File => builder.open(self.dir.path().join("model.keystone")),
            // Small limits: values of one chunk, few operations and bytes per transaction.
            Target::RefMap => builder.open_reference_map(CHUNK + 64, 64, 64 * CHUNK),
        };
        self.db = Some(db.map_err(|e| format!("open: {e}"))?);
        Ok(())
    }

    fn db(&self) -> Result<&Datastore, String> {
        self.db.as_ref().ok_or_else(|| "store is closed".to_owned())
    }

    /// Applies `op` to the store and the model; `Err` describes the first difference.
    pub fn apply(&mut self, op: &Op) -> Result<(), String> {
        self.ops += 1;
        let r = self.apply_inner(op);
        r.map_err(|e| format!("after {op:?}: {e}"))?;
        self.compare()
    }

    fn expect<T>(what: &str, want: &str, got: &Result<T, Error>) -> Result<(), String> {
        let k = kind(got);
        if k == want {
            return Ok(());
        }
        match got {
            Err(e) => Err(format!("{what}: model says {want}, store says {e}")),
            Ok(_) => Err(format!("{what}: model says {want}, store says ok")),
        }
    }

    #[allow(clippy::too_many_lines)]
    fn apply_inner(&mut self, op: &Op) -> Result<(), String> {
        if let Op::Reopen = op {
            return self.reopen();
        }
        let db = self.db()?.clone();
        match *op {
            Op::Put { b, k, len, seed, stream, cond } => {
                let (b, k) = (bname(b), kname(k));
                let data = content(seed, len);
                let current = lookup(&self.model, b, k).map(|o| o.etag.clone()).ok();
                let condition = match cond {
                    Cond::None => PutCondition::None,
                    Cond::IfAbsent => PutCondition::IfAbsent,
                    Cond::IfMatchCurrent => PutCondition::IfMatch(current.unwrap_or_else(|| "0".repeat(32))),
                    Cond::IfMatchWrong => PutCondition::IfMatch(format!("\"{}\"", "f".repeat(32))),
                };
                let opts = PutOptions { condition, ..PutOptions::default() };
                let got = match db.bucket(b) {
                    Err(e) => Err(e),
                    Ok(bk) if stream => bk.put_reader(k, &data[..], opts),
                    Ok(bk) => bk.put_bytes_with(k, &data, opts),
                };
                let want = model_put(&mut self.model, b, k, data, cond);
                Self::expect("put", want, &got)?;
                if let Ok(info) = got {
                    let obj = lookup(&self.model, b, k).map_err(str::to_owned)?;
                    if info.etag != obj.etag || info.size != obj.data.len() as u64 {
                        return Err(format!("put returned {info:?}"));
                    }
                }
            }
            Op::Delete { b, k } => {
                let got = db.bucket(bname(b)).and_then(|bk| bk.delete(kname(k)));
                Self::expect("delete", model_delete(&mut self.model, bname(b), kname(k)), &got)?;
            }
            Op::Copy { sb, sk, db: d, dk } => {
                let opts = keystone::CopyOptions::default();
                let got = db.copy_object(bname(sb), kname(sk), bname(d), kname(dk), &opts);
                let want = model_copy(&mut self.model, bname(sb), kname(sk), bname(d), kname(dk));
                Self::expect("copy", want, &got)?;
            }
            Op::Get { b, k, range } => {
                let (b, k) = (bname(b), kname(k));
                let bk = db.bucket(b);
                let want = lookup(&self.model, b, k);
                match range {
                    None => {
                        let got = bk.and_then(|bk| bk.get_bytes(k));
                        Self::expect("get", want.as_ref().map_or_else(|e| *e, |_| "ok"), &got)?;
                        if let (Ok(g), Ok(w)) = (&got, want)
                            && *g != w.data
                        {
                            return Err("get returned other bytes".into());
                        }
                    }
                    Some((s, e)) => {
                        let size = want.as_ref().map_or(0, |o| o.data.len());
                        let (s, e) = (s as usize % (size + 2), e as usize % (size + 2));
                        let got = bk.and_then(|bk| bk.get_range(k, s as u64..e as u64));
                        let w = match want {
                            Ok(_) if s > e || e > size => Err("InvalidRange"),
                            Ok(o) => Ok(&o.data[s..e]),
                            Err(x) => Err(x),
                        };
                        Self::expect("get_range", w.map_or_else(|x| x, |_| "ok"), &got)?;
                        if let (Ok(g), Ok(w)) = (&got, w)
                            && g[..] != *w
                        {
                            return Err("get_range returned other bytes".into());
                        }
                    }
                }
            }
            Op::List { b, prefix, delim, page } => {
                self.list(&db, bname(b), PREFIXES[prefix as usize % 6], delim, page)?;
            }
            Op::Txn { ref ops, commit } => self.txn(&db, ops, commit)?,
            Op::Multipart { b, k, ref parts, complete } => self.multipart(&db, bname(b), kname(k), parts, complete)?,
            Op::CreateBucket { b } => {
                let got = db.create_bucket(bname(b));
                let want = if self.model.contains_key(bname(b)) { "BucketAlreadyExists" } else { "ok" };
                Self::expect("create_bucket", want, &got)?;
                self.model.entry(bname(b).to_owned()).or_default();
            }
            Op::DeleteBucket { b, only_empty } => {
                let name = bname(b);
                let got = if only_empty { db.delete_empty_bucket(name) } else { db.delete_bucket(name) };
                let want = match self.model.get(name) {
                    None => "NoSuchBucket",
                    Some(objs) if only_empty && !objs.is_empty() => "BucketNotEmpty",
                    Some(_) => "ok",
                };
                Self::expect("delete_bucket", want, &got)?;
                if want == "ok" {
                    self.model.remove(name);
                }
            }
            Op::TakeSnapshot => {
                let snap = db.snapshot().map_err(|e| format!("snapshot: {e}"))?;
                self.snap = Some((snap, self.model.clone()));
            }
            Op::CheckSnapshot => {
                if let Some((snap, model)) = &self.snap {
                    let seen = dump_snapshot(snap).map_err(|e| format!("reading snapshot: {e}"))?;
                    if seen != *model {
                        return Err(format!("snapshot changed: shows {seen:?}, was {model:?}"));
                    }
                }
            }
            Op::Reopen => {}
            Op::Gc => {
                db.gc().map_err(|e| format!("gc: {e}"))?;
            }
            Op::Compact => {
                let refused = self.snap.is_some() && matches!(self.target, Target::File);
                match db.compact() {
                    Ok(_) if !refused => {}
                    Err(Error::InUse { .. }) if refused => {}
                    other => return Err(format!("compact (snapshot held: {}): {other:?}", self.snap.is_some())),
                }
            }
        }
        Ok(())
    }

    fn list(&self, db: &Datastore, b: &str, prefix: &str, delim: bool, page: u8) -> Result<(), String> {
        let want = model_list(&self.model, b, prefix, delim);
        let bucket = match (db.bucket(b), &want) {
            (Ok(bk), Some(_)) => bk,
            (Err(Error::NoSuchBucket { .. }), None) => return Ok(()),
            (got, _) => return Err(format!("list bucket {b}: store says {got:?}, model has it: {}", want.is_some())),
        };
        let mut opts = ListOptions::prefix(prefix).max_keys(usize::from(page % 5) + 1);
        if delim {
            opts = opts.delimiter("/");
        }
        let (mut keys, mut cps) = (Vec::new(), Vec::new());
        for _ in 0..1000 {
            let p = bucket.list(&opts).map_err(|e| format!("list: {e}"))?;
            if p.objects.len() + p.common_prefixes.len() > opts.max_keys {
                return Err(format!("page of {} entries, asked for {}", p.objects.len(), opts.max_keys));
            }
            keys.extend(p.objects.into_iter().map(|o| o.key));
            cps.extend(p.common_prefixes);
            match p.next_token {
                Some(t) => opts.continuation = Some(t),
                None => break,
            }
        }
        if Some((keys.clone(), cps.clone())) != want {
            return Err(format!("list {prefix:?} delim {delim}: store {keys:?} {cps:?}, model {want:?}"));
        }
        Ok(())
    }

    fn txn(&mut self, db: &Datastore, ops: &[TxOp], commit: bool) -> Result<(), String> {
        let mut working = self.model.clone();
        let mut mismatch = None;
        let target = self.target;
        let r: Result<(), TxEnd> = db.transaction(|tx| {
            for op in ops {
                let (want, got): (&str, Result<(), Error>) = match *op {
                    TxOp::Put { b, k, len, seed } => {
                        let data = content(seed, len);
                        let got = tx.bucket(bname(b)).and_then(|bk| bk.put_bytes(kname(k), &data).map(|_| ()));
                        (model_put(&mut working, bname(b), kname(k), data, Cond::None), got)
                    }
                    TxOp::Delete { b, k } => {
                        let got = tx.bucket(bname(b)).and_then(|bk| bk.delete(kname(k)));
                        (model_delete(&mut working, bname(b), kname(k)), got)
                    }
                    TxOp::Copy { sb, sk, db: d, dk } => {
                        let got = tx.bucket(bname(sb)).and_then(|bk| bk.copy_to(kname(sk), bname(d), kname(dk)));
                        (model_copy(&mut working, bname(sb), kname(sk), bname(d), kname(dk)), got.map(|_| ()))
                    }
                    TxOp::Get { b, k } => {
                        let got = tx.bucket(bname(b)).and_then(|bk| bk.get_bytes(kname(k)));
                        let want = lookup(&working, bname(b), kname(k));
                        if let (Ok(g), Ok(w)) = (&got, &want)
                            && *g != w.data
                        {
                            mismatch = Some("a read inside the transaction missed its own write".to_owned());
                            return Err(TxEnd::Abort);
                        }
                        (want.map_or_else(|e| e, |_| "ok"), got.map(|_| ()))
                    }
                };
                // A transaction bigger than a limited backend takes in one commit is refused
                // as a whole (the caller asked for it atomically); the model rolls it back too.
                if target == Target::RefMap && matches!(got, Err(Error::TooLarge(_))) {
                    return Err(TxEnd::TooLarge);
                }
                if let Err(e) = Self::expect("in transaction", want, &got) {
                    mismatch = Some(format!("{op:?}: {e}"));
                    return Err(TxEnd::Abort);
                }
                if let Err(e) = got {
                    return Err(TxEnd::Store(e));
                }
            }
            if commit { Ok(()) } else { Err(TxEnd::Abort) }
        });
        if let Some(m) = mismatch {
            return Err(m);
        }
        match r {
            Ok(()) => self.model = working,
            Err(TxEnd::Abort | TxEnd::TooLarge) => {}
            // An operation the model also rejected: the whole transaction rolled back.
            Err(TxEnd::Store(e)) if err_kind(&e) != "other error" => {}
            Err(TxEnd::Store(e)) => return Err(format!("transaction failed: {e}")),
        }
        Ok(())
    }

    fn multipart(
        &mut self,
        db: &Datastore,
        b: &str,
        k: &str,
        parts: &[(u32, u8)],
        complete: bool,
    ) -> Result<(), String> {
        let bucket = match (db.bucket(b), self.model.contains_key(b)) {
            (Ok(bk), true) => bk,
            (Err(Error::NoSuchBucket { .. }), false) => return Ok(()),
            (got, has) => return Err(format!("multipart bucket {b}: store {got:?}, model has it: {has}")),
        };
        let id = bucket.create_upload(k, ObjectMeta::default()).map_err(|e| format!("create_upload: {e}"))?;
        let mut done = Vec::new();
        let mut data = Vec::new();
        let mut md5s = Vec::new();
        for (i, &(len, seed)) in parts.iter().enumerate() {
            let part = content(seed, len);
            let n = i as u32 + 1;
            let info = bucket.upload_part(&id, n, &part[..]).map_err(|e| format!("upload_part: {e}"))?;
            if info.etag != md5_hex(&part) || info.size != part.len() as u64 {
                return Err(format!("part {n}: {info:?}"));
            }
            md5s.extend_from_slice(&md5_raw(&part));
            data.extend_from_slice(&part);
            done.push(CompletedPart { part_number: n, etag: info.etag });
        }
        if complete {
            let got = bucket.complete_upload(&id, &done, &CompleteOptions::default());
            let want = if parts.is_empty() { "InvalidPart" } else { "ok" };
            Self::expect("complete_upload", want, &got)?;
            if got.is_ok() {
                let etag = format!("{}-{}", md5_hex(&md5s), parts.len());
                self.model.entry(b.to_owned()).or_default().insert(k.to_owned(), Obj { data, etag });
                return Ok(());
            }
        }
        bucket.abort_upload(&id).map_err(|e| format!("abort_upload: {e}"))?;
        Ok(())
    }

    fn reopen(&mut self) -> Result<(), String> {
        if self.target == Target::RefMap {
            return Ok(());
        }
        self.snap = None;
        self.db = None;
        self.open()?;
        self.check_clean()
    }

    /// Compares the whole store with the model.
    pub fn compare(&self) -> Result<(), String> {
        let snap = self.db()?.snapshot().map_err(|e| format!("snapshot: {e}"))?;
        let seen = dump_snapshot(&snap).map_err(|e| format!("dump: {e}"))?;
        if seen != self.model {
            let diff: Vec<String> = diff(&self.model, &seen);
            return Err(format!("store differs from the model: {diff:?}"));
        }
        Ok(())
    }

    /// Compares with the model, then checks the store is clean (no leaked chunks, nothing
    /// corrupt, redb's integrity check passes). Drops any held snapshot first.
    pub fn check_clean(&mut self) -> Result<(), String> {
        self.snap = None;
        self.compare()?;
        crate::support::check_clean(self.db()?)
    }
}

fn diff(model: &Model, seen: &Model) -> Vec<String> {
    let mut out = Vec::new();
    for b in model.keys().chain(seen.keys()).collect::<std::collections::BTreeSet<_>>() {
        let (m, s) = (model.get(b), seen.get(b));
        if m.is_none() || s.is_none() {
            out.push(format!("bucket {b}: model {}, store {}", m.is_some(), s.is_some()));
            continue;
        }
        let (m, s) = (m.map(BTreeMap::len), s.map(BTreeMap::len));
        out.push(format!("bucket {b}: model {m:?} objects, store {s:?}"));
    }
    out
}

/// Decodes arbitrary bytes (a fuzzer's input) into operations: every input is a valid
/// sequence, so the fuzzer explores operation orders rather than parse errors.
pub fn ops_from_bytes(data: &[u8]) -> Vec<Op> {
    let mut c = Cursor(data);
    let mut ops = Vec::new();
    while !c.0.is_empty() && ops.len() < 64 {
        ops.push(c.op());
    }
    ops
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), 0, 0])
    }
    fn tx_op(&mut self) -> TxOp {
        match self.u8() % 4 {
            0 => TxOp::Put { b: self.u8(), k: self.u8(), len: self.u32(), seed: self.u8() },
            1 => TxOp::Delete { b: self.u8(), k: self.u8() },
            2 => TxOp::Copy { sb: self.u8(), sk: self.u8(), db: self.u8(), dk: self.u8() },
            _ => TxOp::Get { b: self.u8(), k: self.u8() },
        }
    }
    fn op(&mut self) -> Op {
        match self.u8() % 17 {
            0..=2 => {
                let (b, k, len, seed, flags) = (self.u8(), self.u8(), self.u32(), self.u8(), self.u8());
                let cond = [Cond::None, Cond::None, Cond::IfAbsent, Cond::IfMatchCurrent, Cond::IfMatchWrong]
                    [usize::from(flags >> 1) % 5];
                Op::Put { b, k, len, seed, stream: flags & 1 == 1, cond }
            }
            3 => Op::Delete { b: self.u8(), k: self.u8() },
            4 => Op::Copy { sb: self.u8(), sk: self.u8(), db: self.u8(), dk: self.u8() },
            5 => {
                let (b, k, r) = (self.u8(), self.u8(), self.u8());
                Op::Get { b, k, range: (r & 1 == 1).then(|| (self.u32(), self.u32())) }
            }
            6 => Op::List { b: self.u8(), prefix: self.u8(), delim: self.u8() & 1 == 1, page: self.u8() },
            7 | 8 => {
                let n = self.u8() % 6;
                let ops = (0..n).map(|_| self.tx_op()).collect();
                Op::Txn { ops, commit: !self.u8().is_multiple_of(4) }
            }
            9 => {
                let (b, k, n) = (self.u8(), self.u8(), self.u8() % 4);
                let parts = (0..n).map(|_| (self.u32(), self.u8())).collect();
                Op::Multipart { b, k, parts, complete: !self.u8().is_multiple_of(3) }
            }
            10 => Op::CreateBucket { b: self.u8() },
            11 => Op::DeleteBucket { b: self.u8(), only_empty: self.u8() & 1 == 1 },
            12 => Op::TakeSnapshot,
            13 => Op::CheckSnapshot,
            14 => Op::Reopen,
            15 => Op::Gc,
            _ => Op::Compact,
        }
    }
}
