//! Transactions across buckets, and read-only snapshots.

use std::cell::{Cell, RefCell, RefMut};
use std::io::Read;
use std::ops::RangeBounds;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::data::names;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::list::{ListIter, list_page};
use crate::objects;
use crate::reader::{self, ObjectReader};
use crate::reads;
use crate::storage::{ReadTxn, WriteTxn};
use crate::types::{BucketInfo, ListOptions, ListPage, ObjectInfo, PutOptions};
use crate::upload;

/// A write transaction over every bucket, given to the closure of
/// [`Datastore::transaction`](crate::Datastore::transaction). Reads see its own writes.
pub struct Transaction<'a> {
    engine: &'a Engine,
    w: RefCell<Box<dyn WriteTxn>>,
    /// Some write queued chunk frees that must be drained after commit.
    queued: Cell<bool>,
    /// Bucket deletions so far: a bucket handle taken after the last one need not look its
    /// bucket up again for every put.
    deletions: Cell<u64>,
    /// A failed put could not take its chunks back out (a backend's transaction limits): the
    /// transaction must not commit, or it would publish chunks nothing refers to.
    unclean: Cell<bool>,
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction").finish_non_exhaustive()
    }
}

impl<'a> Transaction<'a> {
    pub(crate) fn new(engine: &'a Engine, w: Box<dyn WriteTxn>) -> Self {
        Transaction {
            engine,
            w: RefCell::new(w),
            queued: Cell::new(false),
            deletions: Cell::new(0),
            unclean: Cell::new(false),
        }
    }

    pub(crate) fn commit(self) -> Result<bool> {
        if self.unclean.get() {
            // Dropping the write transaction aborts it.
            return Err(Error::Storage {
                context: "committing a transaction".into(),
                source: "a put in it failed part way, or its chunks could not be removed again; nothing was committed"
                    .into(),
            });
        }
        let queued = self.queued.get();
        self.w.into_inner().commit(self.engine.ack_mode())?;
        Ok(queued)
    }

    /// Passes a put's error on, remembering when the put left the transaction unfit to commit.
    fn note(&self, e: upload::TxnPutError) -> Error {
        if e.unclean {
            self.unclean.set(true);
        }
        e.error
    }

    fn txn(&self) -> Result<RefMut<'_, Box<dyn WriteTxn>>> {
        self.w.try_borrow_mut().map_err(|_| Error::Storage {
            context: "transaction".into(),
            source: "the transaction is already in use by an enclosing call".into(),
        })
    }

    /// A handle to an existing bucket inside this transaction.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub fn bucket(&self, name: &str) -> Result<TxBucket<'_>> {
        names::check_bucket(name)?;
        objects::require_bucket(self.txn()?.as_ref(), name)?;
        Ok(TxBucket { tx: self, name: name.to_owned(), seen_at: self.deletions.get() })
    }

    /// Creates a bucket inside this transaction.
    ///
    /// # Errors
    /// [`Error::InvalidBucketName`], [`Error::BucketAlreadyExists`].
    pub fn create_bucket(&self, name: &str) -> Result<TxBucket<'_>> {
        objects::create_bucket(self.txn()?.as_mut(), name)?;
        Ok(TxBucket { tx: self, name: name.to_owned(), seen_at: self.deletions.get() })
    }

    /// Deletes a bucket and everything in it inside this transaction.
    pub fn delete_bucket(&self, name: &str) -> Result<()> {
        names::check_bucket(name)?;
        let limits = self.engine.kv.limits();
        let queued = objects::delete_bucket(self.txn()?.as_mut(), limits, name, false)?;
        self.deletions.set(self.deletions.get() + 1);
        self.queued.set(self.queued.get() | queued);
        Ok(())
    }

    /// Every bucket, as this transaction sees them.
    pub fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        objects::list_buckets(self.txn()?.as_ref())
    }
}

/// A bucket inside a [`Transaction`]: the same operations as [`Bucket`](crate::Bucket),
/// committed together with the rest of the transaction.
pub struct TxBucket<'t> {
    tx: &'t Transaction<'t>,
    name: String,
    /// `tx.deletions` when the bucket was seen to exist.
    seen_at: u64,
}

impl std::fmt::Debug for TxBucket<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxBucket").field("name", &self.name).finish()
    }
}

impl TxBucket<'_> {
    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stores `value` as JSON.
    pub fn put<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<ObjectInfo> {
        let json = reads::to_json(&self.name, key, value)?;
        self.put_bytes_with(key, &json, PutOptions::content_type("application/json"))
    }

    /// Reads a JSON object as `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        reads::get_typed(self.tx.txn()?.as_ref(), &self.name, key)
    }

    /// Stores bytes.
    pub fn put_bytes(&self, key: &str, data: impl AsRef<[u8]>) -> Result<ObjectInfo> {
        self.put_bytes_with(key, data.as_ref(), PutOptions::default())
    }

    /// Stores bytes with metadata and a condition.
    pub fn put_bytes_with(&self, key: &str, data: &[u8], opts: PutOptions) -> Result<ObjectInfo> {
        let known = self.seen_at == self.tx.deletions.get();
        let (info, queued) =
            upload::put_slice_in_txn(self.tx.engine, self.tx.txn()?.as_mut(), &self.name, key, data, opts, known)
                .map_err(|e| self.tx.note(e))?;
        self.tx.queued.set(self.tx.queued.get() | queued);
        Ok(info)
    }

    /// Streams an object into the transaction (its chunks are part of the transaction).
    pub fn put_reader(&self, key: &str, reader: impl Read, opts: PutOptions) -> Result<ObjectInfo> {
        let (info, queued) =
            upload::put_in_txn(self.tx.engine, self.tx.txn()?.as_mut(), &self.name, key, reader, opts, None)
                .map_err(|e| self.tx.note(e))?;
        self.tx.queued.set(self.tx.queued.get() | queued);
        Ok(info)
    }

    /// The whole object.
    pub fn get_bytes(&self, key: &str) -> Result<Vec<u8>> {
        reads::get_bytes(self.tx.txn()?.as_ref(), &self.name, key)
    }

    /// A byte range of the object.
    pub fn get_range(&self, key: &str, range: impl RangeBounds<u64>) -> Result<Vec<u8>> {
        reads::get_range(self.tx.txn()?.as_ref(), &self.name, key, range)
    }

    /// The object's description.
    pub fn head(&self, key: &str) -> Result<ObjectInfo> {
        reads::head(self.tx.txn()?.as_ref(), &self.name, key)
    }

    /// Whether an object exists under `key`.
    pub fn exists(&self, key: &str) -> Result<bool> {
        reads::exists(self.tx.txn()?.as_ref(), &self.name, key)
    }

    /// Deletes the object (a missing key is not an error).
    pub fn delete(&self, key: &str) -> Result<()> {
        let limits = self.tx.engine.kv.limits();
        let queued = objects::delete_object(self.tx.txn()?.as_mut(), limits, &self.name, key)?;
        self.tx.queued.set(self.tx.queued.get() | queued);
        Ok(())
    }

    /// Copies `src` to `dst_bucket/dst_key` inside the transaction, as the transaction sees
    /// `src` (its own writes included). The copy keeps the source's metadata, ETag and part
    /// count, as [`Datastore::copy_object`](crate::Datastore::copy_object) does, and streams:
    /// the source is read a chunk at a time while the copy is written, so memory use does not
    /// grow with the object's size.
    ///
    /// # Errors
    /// [`Error::NoSuchKey`] for a missing source, [`Error::NoSuchBucket`] for either bucket,
    /// [`Error::InvalidKey`](crate::Error::InvalidKey) for either key;
    /// [`Error::Corrupted`](crate::Error::Corrupted) when the source is damaged.
    /// The copy is checked as it is read, so damage may be found after some of the copy's
    /// chunks were written: they are taken back out, and the transaction can go on and commit
    /// its other writes.
    pub fn copy_to(&self, src: &str, dst_bucket: &str, dst_key: &str) -> Result<ObjectInfo> {
        let mut w = self.tx.txn()?;
        let (out, queued) = upload::copy_in_txn(self.tx.engine, w.as_mut(), &self.name, src, dst_bucket, dst_key)
            .map_err(|e| self.tx.note(e))?;
        self.tx.queued.set(self.tx.queued.get() | queued);
        Ok(out)
    }

    /// Copies `src` to `dst` within this bucket.
    pub fn copy(&self, src: &str, dst: &str) -> Result<ObjectInfo> {
        let name = self.name.clone();
        self.copy_to(src, &name, dst)
    }

    /// One page of keys, as this transaction sees them.
    pub fn list(&self, opts: &ListOptions) -> Result<ListPage> {
        list_page(self.tx.txn()?.as_ref(), &self.name, opts)
    }
}

/// A read-only view of one consistent state of the whole store. Cheap to clone; readers
/// opened from it keep it alive.
#[derive(Clone)]
pub struct Snapshot {
    snap: Arc<dyn ReadTxn>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").finish_non_exhaustive()
    }
}

impl Snapshot {
    pub(crate) fn new(snap: Arc<dyn ReadTxn>) -> Self {
        Snapshot { snap }
    }

    /// A bucket as of this snapshot.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub fn bucket(&self, name: &str) -> Result<SnapshotBucket> {
        names::check_bucket(name)?;
        objects::require_bucket(self.snap.as_ref(), name)?;
        Ok(SnapshotBucket { snap: self.snap.clone(), name: name.to_owned() })
    }

    /// Every bucket as of this snapshot.
    pub fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        objects::list_buckets(self.snap.as_ref())
    }
}

/// A bucket in a [`Snapshot`]: read operations only.
#[derive(Clone)]
pub struct SnapshotBucket {
    snap: Arc<dyn ReadTxn>,
    name: String,
}

impl std::fmt::Debug for SnapshotBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotBucket").field("name", &self.name).finish_non_exhaustive()
    }
}

impl SnapshotBucket {
    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads a JSON object as `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        reads::get_typed(self.snap.as_ref(), &self.name, key)
    }

    /// The whole object.
    pub fn get_bytes(&self, key: &str) -> Result<Vec<u8>> {
        reads::get_bytes(self.snap.as_ref(), &self.name, key)
    }

    /// A byte range of the object.
    pub fn get_range(&self, key: &str, range: impl RangeBounds<u64>) -> Result<Vec<u8>> {
        reads::get_range(self.snap.as_ref(), &self.name, key, range)
    }

    /// A streaming reader over the object as of this snapshot.
    pub fn open(&self, key: &str) -> Result<ObjectReader> {
        reader::open(self.snap.clone(), &self.name, key)
    }

    /// The object's description.
    pub fn head(&self, key: &str) -> Result<ObjectInfo> {
        reads::head(self.snap.as_ref(), &self.name, key)
    }

    /// Whether an object exists under `key`.
    pub fn exists(&self, key: &str) -> Result<bool> {
        reads::exists(self.snap.as_ref(), &self.name, key)
    }

    /// One page of keys.
    pub fn list(&self, opts: &ListOptions) -> Result<ListPage> {
        list_page(self.snap.as_ref(), &self.name, opts)
    }

    /// Every entry, lazily.
    pub fn list_iter(&self, opts: ListOptions) -> Result<ListIter> {
        ListIter::new(self.snap.clone(), &self.name, opts)
    }
}
