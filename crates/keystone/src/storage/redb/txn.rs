//! Reading and writing Keystone's table: a snapshot ([`RedbRead`]) and a write transaction
//! ([`RedbWrite`]), each with its redb calls under the guard.

use std::ops::Bound;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use redb::{Durability, ReadOnlyTable, ReadableTable, Table, WriteTransaction};

use super::guard::{Closing, broken_txn, caught, guarded};
use super::{Counted, Db, Latest, commit_guarded, storage};
use crate::error::{Error, Result};
use crate::storage::{Commit, EntryFn, KeyRange, KvRead, LookupHint, ReadTxn, ScanFn, Value, WriteTxn};

pub(super) struct RedbRead {
    pub(super) table: ReadOnlyTable<&'static [u8], &'static [u8]>,
    /// Counts this snapshot among the store's readers while it lives.
    pub(super) _counted: Counted,
    /// The store's, shared by its snapshots.
    pub(super) hint: Arc<LookupHint>,
    /// Keeps the database open while this snapshot lives (declared last: dropped after the
    /// table).
    pub(super) _db: Arc<RwLock<Db>>,
}

struct Guard(redb::OwnedAccessGuard<&'static [u8]>);

impl AsRef<[u8]> for Guard {
    fn as_ref(&self) -> &[u8] {
        self.0.value()
    }
}

fn to_bounds(range: KeyRange<'_>) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (range.start, range.end)
}

impl KvRead for RedbRead {
    fn lookup_hint(&self) -> Option<&LookupHint> {
        Some(&self.hint)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        let guard = guarded("reading", || {
            let g = self.table.get_owned(key).map_err(|e| storage("reading", e))?;
            if let Some(g) = &g {
                touch(g.value());
            }
            Ok(g)
        })?;
        Ok(guard.map(|g| Value::shared(Box::new(Guard(g)))))
    }

    fn read_with(&self, key: &[u8], f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<bool> {
        read_table_with(&self.table, key, f)
    }

    fn scan(&self, range: KeyRange<'_>, limit: usize) -> Result<Vec<(Vec<u8>, Value)>> {
        scan_table(&self.table, range, limit)
    }

    fn first_with(&self, range: KeyRange<'_>, f: &mut EntryFn<'_>) -> Result<bool> {
        first_table_with(&self.table, range, f)
    }

    fn scan_with(&self, range: KeyRange<'_>, limit: usize, f: &mut ScanFn<'_>) -> Result<usize> {
        scan_table_with(&self.table, range, limit, f)
    }
}

impl ReadTxn for RedbRead {}

/// Calls `f` with the value under `key` while the table lends it (a snapshot's table or a
/// transaction's); returns whether the key exists.
fn read_table_with(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
    f: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<bool> {
    let found = guarded("reading", || {
        let g = table.get(key).map_err(|e| storage("reading", e))?;
        if let Some(g) = &g {
            touch(g.value());
        }
        Ok(g)
    })?;
    match found {
        Some(g) => f(g.value()).map(|()| true),
        None => Ok(false),
    }
}

/// Reads a lent value once where a panic is caught: redb slices the page at offsets it read
/// from the page without checking them, so a damaged page can make `value()` panic. The same
/// slicing done again afterwards, outside the guard, then succeeds.
fn touch(bytes: &[u8]) {
    std::hint::black_box(bytes);
}

/// A key and a value lent by a range of the table.
type Entry<'a> = (redb::AccessGuard<'a, &'static [u8]>, redb::AccessGuard<'a, &'static [u8]>);

/// The next entry of a range, its key and value sliced once (see [`touch`]); call under the guard.
fn next_entry<'a>(iter: &mut redb::Range<'a, &'static [u8], &'static [u8]>) -> Result<Option<Entry<'a>>> {
    let item = iter.next().transpose().map_err(|e| storage("scanning", e))?;
    if let Some((k, v)) = &item {
        touch(k.value());
        touch(v.value());
    }
    Ok(item)
}

/// `first_with` on a snapshot's table or a transaction's.
fn first_table_with(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    range: KeyRange<'_>,
    f: &mut EntryFn<'_>,
) -> Result<bool> {
    let first = guarded("scanning", || {
        let mut iter = table.range::<&[u8]>(to_bounds(range)).map_err(|e| storage("scanning", e))?;
        next_entry(&mut iter)
    })?;
    match first {
        Some((k, v)) => f(k.value(), v.value()).map(|()| true),
        None => Ok(false),
    }
}

/// `scan_with` on a snapshot's table or a transaction's: only redb's own calls run under the
/// guard, `f` between them (a panic in Keystone's code is never reported as damage).
fn scan_table_with(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    range: KeyRange<'_>,
    limit: usize,
    f: &mut ScanFn<'_>,
) -> Result<usize> {
    if limit == 0 {
        return Ok(0);
    }
    let mut iter = guarded("scanning", || table.range::<&[u8]>(to_bounds(range)).map_err(|e| storage("scanning", e)))?;
    let mut lent = 0;
    while lent < limit {
        let Some((k, v)) = guarded("scanning", || next_entry(&mut iter))? else {
            break;
        };
        lent += 1;
        if !f(k.value(), v.value())? {
            break;
        }
    }
    Ok(lent)
}

/// Up to `limit` entries of `range`, in key order, from a snapshot's table or a transaction's.
fn scan_table(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    range: KeyRange<'_>,
    limit: usize,
) -> Result<Vec<(Vec<u8>, Value)>> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    guarded("scanning", || {
        let iter = table.range::<&[u8]>(to_bounds(range)).map_err(|e| storage("scanning", e))?;
        for item in iter {
            let (k, v) = item.map_err(|e| storage("scanning", e))?;
            out.push((k.value().to_vec(), Value::owned(v.value().to_vec())));
            if out.len() >= limit {
                break;
            }
        }
        Ok(())
    })?;
    Ok(out)
}

type KsTable<'txn> = Table<'txn, &'static [u8], &'static [u8]>;

self_cell::self_cell!(
    pub(super) struct TxnCell {
        owner: WriteTransaction,
        #[not_covariant]
        dependent: KsTable,
    }
);

pub(super) struct RedbWrite {
    pub(super) cell: Closing<TxnCell>,
    /// A redb call in this transaction panicked (see [`guarded`]): it must not commit.
    pub(super) broken: bool,
    pub(super) poisoned: Arc<AtomicBool>,
    pub(super) latest: Arc<Latest>,
    /// Counts this transaction among the store's writers until it ends (declared last:
    /// dropped after the transaction).
    pub(super) _counted: Counted,
}

impl KvRead for RedbWrite {
    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.cell.with_dependent(|_, table| {
            guarded("reading", || {
                let guard = table.get(key).map_err(|e| storage("reading", e))?;
                Ok(guard.map(|g| Value::owned(g.value().to_vec())))
            })
        })
    }

    fn read_with(&self, key: &[u8], f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<bool> {
        self.cell.with_dependent(|_, table| read_table_with(table, key, f))
    }

    fn scan(&self, range: KeyRange<'_>, limit: usize) -> Result<Vec<(Vec<u8>, Value)>> {
        self.cell.with_dependent(|_, table| scan_table(table, range, limit))
    }

    fn first_with(&self, range: KeyRange<'_>, f: &mut EntryFn<'_>) -> Result<bool> {
        self.cell.with_dependent(|_, table| first_table_with(table, range, f))
    }

    fn scan_with(&self, range: KeyRange<'_>, limit: usize, f: &mut ScanFn<'_>) -> Result<usize> {
        self.cell.with_dependent(|_, table| scan_table_with(table, range, limit, f))
    }
}

impl RedbWrite {
    /// One change to the table, under the guard; after a caught panic, nothing more.
    fn mutate<T>(&mut self, what: &str, f: impl FnOnce(&mut KsTable<'_>) -> Result<T>) -> Result<T> {
        if self.broken {
            return Err(broken_txn());
        }
        match self.cell.with_dependent_mut(|_, table| caught(what, || f(table))) {
            Ok(r) => r,
            Err(panic) => {
                self.broken = true;
                Err(panic)
            }
        }
    }
}

impl WriteTxn for RedbWrite {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.mutate("writing", |table| {
            table.insert(key, value).map_err(|e| storage("writing", e))?;
            Ok(())
        })
    }

    fn delete(&mut self, key: &[u8]) -> Result<bool> {
        self.mutate("deleting", |table| {
            let old = table.remove(key).map_err(|e| storage("deleting", e))?;
            Ok(old.is_some())
        })
    }

    fn delete_range(&mut self, range: KeyRange<'_>) -> Result<u64> {
        self.mutate("deleting a range", |table| {
            let mut n = 0u64;
            table
                .retain_in::<&[u8], _>(to_bounds(range), |_, _| {
                    n += 1;
                    false
                })
                .map_err(|e| storage("deleting a range", e))?;
            Ok(n)
        })
    }

    fn commit(self: Box<Self>, mode: Commit) -> Result<()> {
        // `_counted` lives to the end of the commit: the transaction is open until then.
        let RedbWrite { cell, broken, poisoned, latest, _counted: counted } = *self;
        if broken {
            drop(cell); // aborted, under the guard
            return Err(broken_txn());
        }
        let Some(cell) = cell.into_inner() else {
            return Err(broken_txn());
        };
        let mut txn = cell.into_owner();
        let durability = match mode {
            Commit::Durable => Durability::Immediate,
            Commit::Deferred => Durability::None,
        };
        txn.set_durability(durability)
            .map_err(|e| Error::Storage { context: "setting durability".into(), source: Box::new(e) })?;
        // No quick-repair: it forces redb's two-phase commit (two fsyncs per durable commit
        // instead of one) and writes the allocator state every time, which halved durable
        // small-write throughput (BENCHMARKS.md, W1). The one-phase commit with checksums is
        // redb's default and is crash-safe; recovery after a crash walks the file instead.
        let committed = commit_guarded(txn, "committing", &poisoned);
        latest.invalidate();
        drop(counted);
        committed
    }
}
