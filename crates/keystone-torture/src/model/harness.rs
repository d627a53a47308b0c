//! The harness: replays operations against a store and the model, and reports the first
//! difference.

use std::collections::BTreeMap;

use keystone::{
    CompleteOptions, CompletedPart, Datastore, Error, ListOptions, ObjectMeta, PutCondition, PutOptions, Snapshot,
};

use super::{
    BUCKETS, CHUNK, Cond, INLINE, Model, Obj, Op, PREFIXES, Target, TxOp, bname, content, diff, dump_snapshot,
    err_kind, kind, kname, lookup, md5_hex, md5_raw, model_copy, model_delete, model_list, model_put,
};

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
