//! The storage abstraction: an ordered, transactional key-value store.
//!
//! Everything above this module talks to [`KeyValueStore`] only. The trait is shaped so that a
//! networked transactional engine (etcd, TiKV, FoundationDB) could implement it: reads happen
//! in snapshots, writes in transactions that commit atomically or not at all, scans are paged
//! with a limit, and a backend states its [`Limits`] so the data layer keeps every value and
//! every transaction within them.

pub(crate) mod journal;
pub(crate) mod memory;
pub(crate) mod prefill;
pub(crate) mod redb;
#[cfg(test)]
pub(crate) mod test_disk;
pub(crate) mod write_behind;

use std::ops::{Bound, Deref};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};

/// What a backend can take in one value and one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Largest value, in bytes.
    pub max_value_size: usize,
    /// Most writes (puts and deletes) in one transaction.
    pub max_txn_ops: usize,
    /// Most bytes written (keys plus values) in one transaction.
    pub max_txn_bytes: usize,
}

impl Limits {
    /// No limits: what redb offers.
    pub(crate) const UNLIMITED: Limits =
        Limits { max_value_size: usize::MAX, max_txn_ops: usize::MAX, max_txn_bytes: usize::MAX };
}

/// Whether a commit must be on stable storage when `commit` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Commit {
    /// Durable (fsync) before returning.
    Durable,
    /// Atomic and visible, but made durable only by a later durable commit; a crash before
    /// that loses it entirely (never partially).
    Deferred,
}

/// A stored value. Backends may hand out a zero-copy guard or an owned buffer.
pub(crate) struct Value(ValueInner);

enum ValueInner {
    Owned(Vec<u8>),
    Shared(Box<dyn AsRef<[u8]> + Send + Sync>),
}

impl Value {
    pub(crate) fn owned(bytes: Vec<u8>) -> Self {
        Value(ValueInner::Owned(bytes))
    }

    pub(crate) fn shared(guard: Box<dyn AsRef<[u8]> + Send + Sync>) -> Self {
        Value(ValueInner::Shared(guard))
    }
}

impl Deref for Value {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            ValueInner::Owned(v) => v,
            ValueInner::Shared(g) => (**g).as_ref(),
        }
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Value({} bytes)", self.len())
    }
}

/// A range of keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyRange<'a> {
    pub start: Bound<&'a [u8]>,
    pub end: Bound<&'a [u8]>,
}

impl<'a> KeyRange<'a> {
    /// Keys from `start` (inclusive or exclusive) up to `end` (exclusive), or to the end.
    pub(crate) fn new(start: Bound<&'a [u8]>, end: Bound<&'a [u8]>) -> Self {
        KeyRange { start, end }
    }
}

/// The smallest key greater than every key that starts with `prefix`, or `None` when no
/// such key exists (the prefix is all `0xFF`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A callback lent one entry (key, value) for the duration of the call.
pub(crate) type EntryFn<'a> = dyn FnMut(&[u8], &[u8]) -> Result<()> + 'a;

/// A callback lent one entry after another by `scan_with`; returns whether to go on.
pub(crate) type ScanFn<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'a;

/// Which lookup a store's gets try first (`objects::lookup`): a point lookup of the key, or a
/// seek that also finds the pack covering it. A count of *surprises* — gets that found the
/// other kind of record than the one they looked for first — and every [`LookupHint::SWITCH`]
/// surprises the order flips. A hint only: it decides how much a get costs, never what it
/// returns. Only gets that disagree with it write to it, so gets that agree share it without
/// contention.
#[derive(Debug, Default)]
pub(crate) struct LookupHint(AtomicU32);

impl LookupHint {
    /// Surprises that flip the order. In the right order, a store whose gets are mixed pays
    /// for this many gets in the wrong one after every this many gets that were surprises
    /// anyway.
    pub(crate) const SWITCH: u32 = 32;

    /// Whether gets seek first.
    pub(crate) fn seek_first(&self) -> bool {
        (self.0.load(Ordering::Relaxed) / Self::SWITCH) & 1 == 1
    }

    /// A get found the other kind of record than the one it looked for first. (The count wraps
    /// at 2^32, a multiple of twice `SWITCH`: the order still flips every `SWITCH`.)
    pub(crate) fn surprised(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads, shared by snapshots and write transactions (which see their own writes).
pub(crate) trait KvRead {
    /// The store's [`LookupHint`], if it keeps one for this view (snapshots of redb do).
    fn lookup_hint(&self) -> Option<&LookupHint> {
        None
    }
    /// The value under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Value>>;
    /// Calls `f` with the value under `key`, borrowed for the call (a backend can skip the
    /// guard or copy `get` hands out); returns whether the key exists.
    fn read_with(&self, key: &[u8], f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<bool> {
        match self.get(key)? {
            Some(v) => f(&v).map(|()| true),
            None => Ok(false),
        }
    }
    /// Up to `limit` entries of `range`, in ascending key order.
    fn scan(&self, range: KeyRange<'_>, limit: usize) -> Result<Vec<(Vec<u8>, Value)>>;
    /// Calls `f` with the first entry of `range` (key and value borrowed for the call, as in
    /// `read_with`); returns whether there was one. A point lookup that also finds what
    /// follows a missing key, in one descent.
    fn first_with(&self, range: KeyRange<'_>, f: &mut EntryFn<'_>) -> Result<bool> {
        match self.scan(range, 1)?.first() {
            Some((k, v)) => f(k, v).map(|()| true),
            None => Ok(false),
        }
    }
    /// Calls `f` with the entries of `range` in ascending key order, each borrowed for the
    /// call (a backend can skip copying them, as in `read_with`), until `f` returns `false`
    /// or `limit` entries were lent; returns how many were lent.
    ///
    /// The default pages through `scan`, so that a scan to the end of a large range (`limit`
    /// `usize::MAX`, as a listing does) never holds more than a page.
    fn scan_with(&self, range: KeyRange<'_>, limit: usize, f: &mut ScanFn<'_>) -> Result<usize> {
        const PAGE: usize = 256;
        let mut lent = 0;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let want = (limit - lent).min(PAGE);
            if want == 0 {
                return Ok(lent);
            }
            let start = after.as_deref().map_or(range.start, Bound::Excluded);
            let rows = self.scan(KeyRange::new(start, range.end), want)?;
            for (k, v) in &rows {
                lent += 1;
                if !f(k, v)? {
                    return Ok(lent);
                }
            }
            match rows.last() {
                Some((k, _)) if rows.len() == want => after = Some(k.clone()),
                _ => return Ok(lent),
            }
        }
    }
}

/// A consistent read-only view of the store, owned so it can move between threads.
pub(crate) trait ReadTxn: KvRead + Send + Sync {}

/// A write transaction. Dropping it without `commit` aborts it.
pub(crate) trait WriteTxn: KvRead {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
    /// Removes `key`; says whether it was there.
    fn delete(&mut self, key: &[u8]) -> Result<bool>;
    /// Removes every key of `range`; returns how many there were.
    fn delete_range(&mut self, range: KeyRange<'_>) -> Result<u64>;
    /// Makes every write of the transaction visible at once.
    fn commit(self: Box<Self>, mode: Commit) -> Result<()>;
}

/// Space figures of a backend.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SpaceInfo {
    /// Size of the file (or of the backend's storage), bytes.
    pub file_size: u64,
}

/// An ordered transactional key-value store.
pub(crate) trait KeyValueStore: Send + Sync + 'static {
    fn limits(&self) -> Limits;
    /// A snapshot of the latest committed state.
    fn read(&self) -> Result<Arc<dyn ReadTxn>>;
    /// Runs `f` on a snapshot of the latest committed state, for a read that does not outlive
    /// the call (a backend can lend a shared snapshot instead of handing out a counted one).
    fn with_read(&self, f: &mut dyn FnMut(&dyn KvRead) -> Result<()>) -> Result<()> {
        let snap = self.read()?;
        f(snap.as_ref())
    }
    /// Begins the (single) write transaction, waiting for the current one to end.
    fn write(&self) -> Result<Box<dyn WriteTxn>>;
    /// Shrinks the storage; needs every snapshot and transaction to have ended.
    fn compact(&self) -> Result<()>;
    /// Checks the engine's own integrity (page checksums, tree structure).
    fn check_integrity(&self) -> Result<bool>;
    fn space(&self) -> Result<SpaceInfo>;
    /// Lets the backend's redo journal, if it has one, take durable commits from now on: called
    /// once the session's first commit is durable (see `storage/journal`).
    fn arm_journal(&self) {}
    /// Records the open replayed from a redo journal that a stopped writer left (0 for a
    /// backend without one).
    fn replayed_records(&self) -> u64 {
        0
    }
}

#[cfg(test)]
pub(crate) mod conformance;

/// A view of a write transaction that counts the writes made through it: an operation that
/// fails before its first write left the transaction as it found it, whatever the error (an
/// attempted write counts even if it failed: a backend may refuse to commit after it). Group
/// commit runs each job through one, and a put in a caller's transaction its publishing.
pub(crate) struct Counting<'a> {
    inner: &'a mut dyn WriteTxn,
    /// Write calls made (whatever their outcome).
    pub writes: usize,
    /// Keys written or deleted, as a backend counts them against `Limits::max_txn_ops` (a
    /// range deletion counts the keys it removed).
    pub ops: usize,
    /// Bytes written (keys plus values), as counted against `Limits::max_txn_bytes` (a range
    /// deletion's keys are not seen here and count nothing).
    pub bytes: usize,
}

impl<'a> Counting<'a> {
    pub(crate) fn new(inner: &'a mut dyn WriteTxn) -> Self {
        Counting { inner, writes: 0, ops: 0, bytes: 0 }
    }
}

/// Implements [`KvRead`] for a view over the transaction or snapshot in its field `$inner`,
/// forwarding every read to it (a view that only changes what writes do).
macro_rules! forward_kv_read {
    ($ty:ty, $inner:ident) => {
        impl $crate::storage::KvRead for $ty {
            fn get(&self, key: &[u8]) -> $crate::error::Result<Option<$crate::storage::Value>> {
                self.$inner.get(key)
            }
            fn read_with(
                &self,
                key: &[u8],
                f: &mut dyn FnMut(&[u8]) -> $crate::error::Result<()>,
            ) -> $crate::error::Result<bool> {
                self.$inner.read_with(key, f)
            }
            fn scan(
                &self,
                range: $crate::storage::KeyRange<'_>,
                limit: usize,
            ) -> $crate::error::Result<Vec<(Vec<u8>, $crate::storage::Value)>> {
                self.$inner.scan(range, limit)
            }
            fn first_with(
                &self,
                range: $crate::storage::KeyRange<'_>,
                f: &mut $crate::storage::EntryFn<'_>,
            ) -> $crate::error::Result<bool> {
                self.$inner.first_with(range, f)
            }
            fn scan_with(
                &self,
                range: $crate::storage::KeyRange<'_>,
                limit: usize,
                f: &mut $crate::storage::ScanFn<'_>,
            ) -> $crate::error::Result<usize> {
                self.$inner.scan_with(range, limit, f)
            }
        }
    };
}
#[cfg(test)]
pub(crate) use forward_kv_read;

forward_kv_read!(Counting<'_>, inner);

impl WriteTxn for Counting<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.writes += 1;
        self.ops += 1;
        self.bytes = self.bytes.saturating_add(key.len()).saturating_add(value.len());
        self.inner.put(key, value)
    }
    fn delete(&mut self, key: &[u8]) -> Result<bool> {
        self.writes += 1;
        self.ops += 1;
        self.bytes = self.bytes.saturating_add(key.len());
        self.inner.delete(key)
    }
    fn delete_range(&mut self, range: KeyRange<'_>) -> Result<u64> {
        self.writes += 1;
        let n = self.inner.delete_range(range)?;
        self.ops = self.ops.saturating_add(usize::try_from(n).unwrap_or(usize::MAX).max(1));
        Ok(n)
    }
    fn commit(self: Box<Self>, _mode: Commit) -> Result<()> {
        Err(Error::Storage {
            context: "committing".into(),
            source: "a view counting writes cannot commit the transaction it counts".into(),
        })
    }
}

/// A write transaction lent to two users that take turns: a copy inside a transaction reads
/// its source through one (`reader::TxnReader`) and writes the copy through the other, chunk
/// by chunk, so that the source is never held in memory whole. Each call borrows the
/// transaction for its own duration; a call made while another one holds it (which the
/// sequential read-then-write of a copy never does) fails instead of panicking.
pub(crate) struct Shared<'a> {
    inner: std::cell::RefCell<&'a mut dyn WriteTxn>,
}

impl<'a> Shared<'a> {
    pub(crate) fn new(inner: &'a mut dyn WriteTxn) -> Self {
        Shared { inner: std::cell::RefCell::new(inner) }
    }

    fn busy() -> Error {
        Error::Storage { context: "transaction".into(), source: "the transaction is in use by another call".into() }
    }

    fn with<T>(&self, f: impl FnOnce(&dyn WriteTxn) -> Result<T>) -> Result<T> {
        let w = self.inner.try_borrow().map_err(|_| Self::busy())?;
        f(&**w)
    }

    fn with_mut<T>(&self, f: impl FnOnce(&mut dyn WriteTxn) -> Result<T>) -> Result<T> {
        let mut w = self.inner.try_borrow_mut().map_err(|_| Self::busy())?;
        f(&mut **w)
    }
}

impl KvRead for &Shared<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.with(|w| w.get(key))
    }
    fn read_with(&self, key: &[u8], f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<bool> {
        self.with(|w| w.read_with(key, f))
    }
    fn scan(&self, range: KeyRange<'_>, limit: usize) -> Result<Vec<(Vec<u8>, Value)>> {
        self.with(|w| w.scan(range, limit))
    }
    fn first_with(&self, range: KeyRange<'_>, f: &mut EntryFn<'_>) -> Result<bool> {
        self.with(|w| w.first_with(range, f))
    }
    fn scan_with(&self, range: KeyRange<'_>, limit: usize, f: &mut ScanFn<'_>) -> Result<usize> {
        self.with(|w| w.scan_with(range, limit, f))
    }
}

impl WriteTxn for &Shared<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.with_mut(|w| w.put(key, value))
    }
    fn delete(&mut self, key: &[u8]) -> Result<bool> {
        self.with_mut(|w| w.delete(key))
    }
    fn delete_range(&mut self, range: KeyRange<'_>) -> Result<u64> {
        self.with_mut(|w| w.delete_range(range))
    }
    fn commit(self: Box<Self>, _mode: Commit) -> Result<()> {
        Err(Error::Storage {
            context: "committing".into(),
            source: "a transaction lent to a copy is committed by its owner".into(),
        })
    }
}

#[cfg(test)]
mod shared_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_shared_transaction_serves_turns_and_refuses_overlap_without_panicking() {
        let kv = memory::MemoryStore::new(Limits::UNLIMITED);
        let mut w = kv.write().unwrap();
        let shared = Shared::new(w.as_mut());
        let (r, mut wr) = (&shared, &shared);
        wr.put(b"a", b"1").unwrap();
        assert_eq!(r.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
        // A write while a read holds the transaction is an error, not a panic.
        let mut inner = None;
        r.read_with(b"a", &mut |_| {
            inner = Some((&shared).put(b"b", b"2"));
            Ok(())
        })
        .unwrap();
        assert!(matches!(inner, Some(Err(Error::Storage { .. }))));
        assert!(Box::new(wr).commit(Commit::Durable).is_err());
        assert!(w.get(b"b").unwrap().is_none());
        w.commit(Commit::Durable).unwrap();
    }
}
