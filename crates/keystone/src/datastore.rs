//! `Datastore`: the handle to a store, its builder, and the operations that span buckets.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::bucket::Bucket;
use crate::data::names;
use crate::data::records::CHUNK_HEADER;
use crate::engine::{Config, Engine};
use crate::error::{Error, Result};
use crate::maintenance::{self, CompactReport, GcReport};
use crate::objects;
use crate::reader;
use crate::salvage::SalvageReport;
use crate::storage::KeyValueStore;
use crate::storage::memory::MemoryStore;
use crate::storage::redb::{RedbConfig, RedbStore};
use crate::transaction::{Snapshot, Transaction};
use crate::types::{BucketInfo, CopyOptions, EtagAlgorithm, ObjectInfo, PutOptions};
use crate::upload;
use crate::verify::{self, RemoveReport, VerifyReport};

/// Default payload bytes per chunk. redb stores a value larger than a page in a region whose
/// size is a power of two; a chunk record (payload, 5-byte header) plus its key and redb's
/// leaf overhead must stay just under 1 MiB so it does not take a 2 MiB region. See
/// docs/design.md for the measurement behind this figure.
pub const DEFAULT_CHUNK_SIZE: usize = 1024 * 1024 - 4096 - CHUNK_HEADER;
/// Default largest object stored inline in its manifest.
pub const DEFAULT_INLINE_MAX: usize = 16 * 1024;
/// Default bytes of chunks per intermediate commit of a streaming upload.
pub const DEFAULT_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Default size of the storage engine's page cache.
pub const DEFAULT_CACHE_SIZE: usize = 32 * 1024 * 1024;

/// When an acknowledged write is on stable storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Every acknowledged write has been fsynced (concurrent writers share fsyncs).
    #[default]
    Immediate,
    /// Writes are atomic and crash-consistent but reach the disk only with a later durable
    /// commit (the next `Immediate` write, `gc`, or closing the store): a crash may lose the
    /// most recent acknowledged writes, never part of one.
    Relaxed,
}

/// Options for opening a store.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let db = keystone::Datastore::builder()
///     .chunk_size(256 * 1024)
///     .cache_size(64 * 1024 * 1024)
///     .open(dir.path().join("data.keystone"))?;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    chunk_size: usize,
    inline_max: usize,
    batch_bytes: usize,
    cache_size: usize,
    durability: Durability,
    etag: EtagAlgorithm,
    read_only: bool,
    journal: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            chunk_size: DEFAULT_CHUNK_SIZE,
            inline_max: DEFAULT_INLINE_MAX,
            batch_bytes: DEFAULT_BATCH_BYTES,
            cache_size: DEFAULT_CACHE_SIZE,
            durability: Durability::Immediate,
            etag: EtagAlgorithm::default(),
            read_only: false,
            journal: true,
        }
    }
}

impl Builder {
    /// Payload bytes per chunk of large objects (memory per reader and writer is about one
    /// chunk). Existing objects keep the chunk size they were written with. A size the store
    /// cannot hold in one value (or above 4 GiB − 1, the most a segment records) is lowered
    /// to that at open.
    #[must_use]
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes.max(1);
        self
    }

    /// Objects up to this many bytes are stored inside their manifest (one lookup per read).
    #[must_use]
    pub fn inline_threshold(mut self, bytes: usize) -> Self {
        self.inline_max = bytes;
        self
    }

    /// Bytes of chunks a streaming upload writes per intermediate commit (the write lock is
    /// held only for one batch at a time); also the most a commit shared by concurrent writes
    /// writes before the next writes wait for a commit of their own (a setting of a few KiB
    /// keeps writes of that size from sharing commits).
    #[must_use]
    pub fn upload_batch_size(mut self, bytes: usize) -> Self {
        self.batch_bytes = bytes;
        self
    }

    /// Size of the storage engine's page cache; it bounds the memory the store keeps. Pages
    /// are cached as they are read or written, so a large cache costs memory only as it
    /// fills. The default (32 MiB) keeps a process that streams large objects small; a store
    /// of millions of small objects read at random is faster with its B-tree in the cache
    /// (BENCHMARKS.md, W6: a million 1 KiB objects, ~6 µs per get with 32 MiB, ~3 µs with
    /// 4 GiB).
    #[must_use]
    pub fn cache_size(mut self, bytes: usize) -> Self {
        self.cache_size = bytes;
        self
    }

    /// Whether a store file opened for writing keeps a redo journal beside it
    /// (`<file>-journal`, [`Datastore::journal_path`]; default `true`). Each durable commit is
    /// then one sequential write and sync of the journal instead of a sync of the pages it
    /// changed across the store file, which makes small durable writes faster (BENCHMARKS.md,
    /// W1); the store file is synced and the journal emptied now and then (a large commit,
    /// 16 MiB of journal), and the journal is removed when the store closes cleanly. After a
    /// crash the next writable open replays it — with `false` too, which only stops a new
    /// journal from being made and used (every durable commit then syncs the store file).
    ///
    /// The store file and its journal are one store while the journal holds records: copy or
    /// move a store that is closed (or that was opened once after a crash). The journal names
    /// its file (inode number and creation time): an open that finds beside the file a journal
    /// holding records of another file refuses with an error rather than replay or drop them.
    /// Writing a backup over the store file in place (`cp` onto it) keeps the file's identity;
    /// after a crash, open the store once before doing that, or remove the journal with it.
    #[must_use]
    pub fn journal(mut self, journal: bool) -> Self {
        self.journal = journal;
        self
    }

    /// When acknowledged writes are on disk.
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How single writes compute their ETag: [`EtagAlgorithm::Xxh3`] (the default) costs next
    /// to nothing; [`EtagAlgorithm::Md5`] is what AWS S3 returns and what `keystone serve`
    /// needs. Objects keep the ETag they were written with.
    #[must_use]
    pub fn etag(mut self, algorithm: EtagAlgorithm) -> Self {
        self.etag = algorithm;
        self
    }

    /// Opens the store read-only, as SQLite's `SQLITE_OPEN_READONLY` and redb's
    /// `ReadOnlyDatabase` do: the file must exist and is opened without write access, so a
    /// store the process may not write (a read-only mount, a file of another user) can be read;
    /// any number of read-only handles, in any processes, may share it while none has it open
    /// for writing. Every write, `gc`, `compact`, the engine check and
    /// [`Datastore::transaction`] (reads included: read through [`Datastore::snapshot`]) fail
    /// with [`Error::ReadOnly`]; reads, listings, snapshots and `verify` work as usual. Nothing is
    /// written at open: streaming uploads a crashed process left unfinished are not reclaimed,
    /// and a store that was not closed cleanly is refused with [`Error::NeedsRecovery`] (open it
    /// for writing once to recover it). Applies to [`open`](Self::open) (a store in memory
    /// starts empty, so it is always writable).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("data.keystone");
    /// # keystone::Datastore::open(&path)?.create_bucket("photos")?;
    /// let db = keystone::Datastore::builder().read_only(true).open(&path)?;
    /// assert_eq!(db.list_buckets()?.len(), 1);
    /// assert!(matches!(db.create_bucket("more"), Err(keystone::Error::ReadOnly { .. })));
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    pub(crate) fn config(&self) -> Config {
        Config {
            chunk_size: self.chunk_size,
            inline_max: self.inline_max,
            batch_bytes: self.batch_bytes,
            // Set from the backend's limits at open.
            batch_chunks: usize::MAX,
            durable: self.durability == Durability::Immediate,
            etag: self.etag,
            // Only `open` opens read-only: a store in memory or on a backend starts writable.
            read_only: false,
        }
    }

    pub(crate) fn redb(&self) -> RedbConfig {
        RedbConfig { cache_size: Some(self.cache_size), journal: self.journal }
    }

    /// Opens the store at `path`, creating the file if it does not exist (unless
    /// [`read_only`](Self::read_only)).
    ///
    /// # Errors
    /// [`Error::AlreadyOpen`] when another process or handle has the file open (a reader or
    /// snapshot keeps it open after its store's last handle is dropped) — for writing, or
    /// read-only when this open is for writing;
    /// [`Error::NotAStore`] when the file is not a store — not a redb database, or another
    /// program's redb database (refused without adding anything to it); an empty file becomes
    /// a new store (read-only: refused as `NotAStore`);
    /// [`Error::Corrupted`] when it is a damaged store (one cut short included), or a redb
    /// database whose list of tables is empty (a damaged store's may read so);
    /// [`Error::NeedsRecovery`] (read-only) when the store was not closed cleanly;
    /// [`Error::NewerFormat`] when a later release raised the store to a format this build does
    /// not read (no record is written);
    /// [`Error::Storage`] for I/O, such as a missing file opened read-only.
    pub fn open(self, path: impl AsRef<Path>) -> Result<Datastore> {
        let path = path.as_ref();
        let kv = if self.read_only {
            RedbStore::open_read_only(path, &self.redb())?
        } else {
            RedbStore::open(path, &self.redb())?
        };
        Datastore::from_kv(
            Box::new(kv),
            Config { read_only: self.read_only, ..self.config() },
            Some(path.to_path_buf()),
        )
    }

    /// [`Datastore::salvage`] with this builder's options for the new store.
    ///
    /// # Errors
    /// See [`Datastore::salvage`].
    pub fn salvage(self, source: impl AsRef<Path>, dest: impl AsRef<Path>) -> Result<SalvageReport> {
        crate::salvage::salvage(self, source.as_ref(), dest.as_ref())
    }

    /// A store in memory, gone when the last handle is dropped.
    pub fn in_memory(self) -> Result<Datastore> {
        let kv = RedbStore::in_memory(&self.redb())?;
        Datastore::from_kv(Box::new(kv), self.config(), None)
    }

    /// A store on caller-supplied redb storage backends for the store and its redo journal
    /// (for power-loss tests): the journal is replayed first, as a file's is.
    #[doc(hidden)]
    pub fn open_backends(
        self,
        store: impl redb_backend::StorageBackend,
        journal: impl redb_backend::StorageBackend,
    ) -> Result<Datastore> {
        let kv = RedbStore::with_backends(store, journal, &self.redb())?;
        Datastore::from_kv(Box::new(kv), self.config(), None)
    }

    /// A store on a caller-supplied redb storage backend (for fault-injection tests).
    #[doc(hidden)]
    pub fn open_backend(self, backend: impl redb_backend::StorageBackend) -> Result<Datastore> {
        let kv = RedbStore::with_backend(backend, &self.redb())?;
        Datastore::from_kv(Box::new(kv), self.config(), None)
    }

    /// A store on the in-memory reference map with the given backend limits (for tests of
    /// how the data layer stays within a backend's limits).
    #[doc(hidden)]
    pub fn open_reference_map(self, max_value: usize, max_txn_ops: usize, max_txn_bytes: usize) -> Result<Datastore> {
        let kv = MemoryStore::new(crate::storage::Limits { max_value_size: max_value, max_txn_ops, max_txn_bytes });
        Datastore::from_kv(Box::new(kv), self.config(), None)
    }
}

/// Re-export of redb's backend trait for fault-injection tests.
#[doc(hidden)]
pub mod redb_backend {
    pub use redb::{StorageBackend, backends};

    /// `store` behind Keystone's redo journal in `journal`: the journal is replayed into the
    /// store first, and the result journals from its first sync (for tests of the journal
    /// alone; a store's journal waits for its first commit, see `Builder::journal`).
    ///
    /// # Errors
    /// I/O errors of either backend while replaying.
    pub fn journaled(store: impl StorageBackend, journal: impl StorageBackend) -> std::io::Result<impl StorageBackend> {
        let (journaled, _, arm) = crate::storage::journal::Journaled::open(store, journal, [0x5a; 16], None)?;
        arm.arm();
        Ok(journaled)
    }
}

/// A Keystone store: buckets of objects in one file.
///
/// `Datastore` is a cheap handle (`Clone`, `Send`, `Sync`); clones share one store and may be
/// used from many threads at once. The file is closed when the last handle, reader and
/// snapshot are dropped.
#[derive(Clone, Debug)]
pub struct Datastore {
    pub(crate) engine: Arc<Engine>,
}

impl Datastore {
    /// Opens the store at `path` with default options, creating it if needed.
    ///
    /// # Errors
    /// See [`Builder::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Datastore> {
        Builder::default().open(path)
    }

    /// A builder for options (chunk size, cache size, durability).
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Copies everything that can still be read of the store at `source` into a new store at
    /// `dest`, for a store with damaged pages: objects on a damaged page can be neither read
    /// nor deleted (both must read the page), and `compact` refuses such a store.
    ///
    /// `source` is opened read-only and never written. Every record that reads is copied as it
    /// is (objects keep their ETags, times and metadata); a stretch of records that cannot be
    /// read is stepped over and reported in [`SalvageReport::unreadable`], by the records read
    /// on either side of it. The new store is then made consistent with the store's own
    /// tools: objects whose chunks were lost are removed ([`SalvageReport::removed`]), chunks
    /// whose object was lost are freed, a bucket that lost its own record but still has
    /// objects is created again. Multipart uploads in progress are not copied. The new store
    /// is verified at the end ([`SalvageReport::verified`]).
    ///
    /// # Errors
    /// [`Error::Io`] when `dest` exists (salvage never writes into an existing file) or cannot
    /// be created; the errors of a read-only [`open`](Builder::open) of `source` — a store
    /// redb cannot open at all (one left needing recovery with a damaged page, see
    /// docs/reliability.md) cannot be salvaged this way; [`Error::NewerFormat`] when `source`
    /// says it is of a format this build does not read (checked before anything is copied);
    /// [`Error::Storage`] for I/O. A partial copy is removed on error; a complete one that
    /// could not be given its name is left under the temporary name the error gives.
    pub fn salvage(source: impl AsRef<Path>, dest: impl AsRef<Path>) -> Result<SalvageReport> {
        Builder::default().salvage(source, dest)
    }

    /// A store in memory.
    pub fn in_memory() -> Result<Datastore> {
        Builder::default().in_memory()
    }

    fn from_kv(kv: Box<dyn KeyValueStore>, cfg: Config, path: Option<PathBuf>) -> Result<Datastore> {
        Ok(Datastore { engine: Arc::new(Engine::open(kv, cfg, path)?) })
    }

    /// The redo journal of the store file at `store` ([`Builder::journal`]): `<file>-journal`
    /// beside the file a symbolic link names (a name too long for the suffix is shortened and
    /// given a hash). It exists while the store is open for writing, and after a crash until
    /// the next writable open replays it; tools that copy or upload files beside a store should
    /// leave it alone.
    pub fn journal_path(store: impl AsRef<Path>) -> PathBuf {
        crate::storage::journal::journal_path(store.as_ref())
    }

    /// The file behind the store, if any.
    pub fn path(&self) -> Option<&Path> {
        self.engine.path.as_deref()
    }

    /// Whether this handle was opened read-only ([`Builder::read_only`]).
    pub fn is_read_only(&self) -> bool {
        self.engine.cfg.read_only
    }

    /// How this handle computes the ETag of single writes ([`Builder::etag`]).
    pub fn etag_algorithm(&self) -> EtagAlgorithm {
        self.engine.cfg.etag
    }

    /// Creates a bucket.
    ///
    /// # Errors
    /// [`Error::InvalidBucketName`] (S3's naming rules), [`Error::BucketAlreadyExists`].
    pub fn create_bucket(&self, name: &str) -> Result<Bucket> {
        names::check_new_bucket(name)?;
        let n = name.to_owned();
        self.engine.write("creating a bucket", move |w| objects::create_bucket(w, &n))?;
        Ok(Bucket::new(self.clone(), name))
    }

    /// Deletes a bucket and everything in it (objects, uploads), atomically.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub fn delete_bucket(&self, name: &str) -> Result<()> {
        names::check_bucket(name)?;
        let n = name.to_owned();
        let limits = self.engine.kv.limits();
        let queued = self.engine.write_alone("deleting a bucket", self.engine.ack_mode(), move |w| {
            objects::delete_bucket(w, limits, &n, false)
        })?;
        self.engine.free_after_commit(queued);
        Ok(())
    }

    /// Deletes a bucket only if it holds no objects and no multipart uploads.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::BucketNotEmpty`].
    pub fn delete_empty_bucket(&self, name: &str) -> Result<()> {
        names::check_bucket(name)?;
        let n = name.to_owned();
        let limits = self.engine.kv.limits();
        let queued = self.engine.write_alone("deleting a bucket", self.engine.ack_mode(), move |w| {
            objects::delete_bucket(w, limits, &n, true)
        })?;
        self.engine.free_after_commit(queued);
        Ok(())
    }

    /// A handle to an existing bucket.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub fn bucket(&self, name: &str) -> Result<Bucket> {
        names::check_bucket(name)?;
        self.engine.read(|r| objects::require_bucket(r, name))?;
        Ok(Bucket::new(self.clone(), name))
    }

    /// Every bucket, by name.
    pub fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        self.engine.read(objects::list_buckets)
    }

    /// Runs `f` in one transaction over every bucket: everything it writes commits atomically
    /// when it returns `Ok`, and nothing does when it returns `Err` or panics. Reads inside see
    /// the transaction's own writes. Other writers wait while it runs; keep it short.
    ///
    /// ```
    /// # let db = keystone::Datastore::in_memory()?;
    /// db.create_bucket("accounts")?;
    /// db.create_bucket("audit")?;
    /// db.transaction(|tx| {
    ///     tx.bucket("accounts")?.put("alice", &100)?;
    ///     tx.bucket("audit")?.put_bytes("1", b"opened alice")?;
    ///     Ok::<_, keystone::Error>(())
    /// })?;
    /// assert_eq!(db.bucket("accounts")?.get::<i32>("alice")?, 100);
    /// # Ok::<_, keystone::Error>(())
    /// ```
    ///
    /// Inside `f`, write through the transaction's buckets (`tx.bucket(..)`): a write through a
    /// [`Bucket`] handle, a nested transaction or [`compact`](Self::compact) on the same
    /// thread would wait for this transaction's write lock for ever, and is refused with
    /// [`Error::InTransaction`] instead. Reads through any handle see the last commit.
    ///
    /// # Errors
    /// Whatever `f` returns, or a storage error from the commit.
    pub fn transaction<T, E: From<Error>>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T, E>) -> Result<T, E> {
        self.engine.writable("a transaction")?;
        let mark = self.engine.enter_transaction()?;
        let w = self.engine.kv.write()?;
        let tx = Transaction::new(&self.engine, w);
        // A panic in `f` must roll back like an error: abort the transaction before the panic
        // continues (a transaction dropped while unwinding cannot abort cleanly).
        let value = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&tx))) {
            Ok(Ok(value)) => value,
            Ok(Err(e)) => return Err(e),
            Err(panic) => {
                drop(tx);
                std::panic::resume_unwind(panic);
            }
        };
        let queued = tx.commit()?;
        drop(mark);
        self.engine.free_after_commit(queued);
        Ok(value)
    }

    /// A read-only view of one consistent state of every bucket.
    ///
    /// ```
    /// # let db = keystone::Datastore::in_memory()?;
    /// let b = db.create_bucket("config")?;
    /// b.put_bytes("version", b"1")?;
    /// let snap = db.snapshot()?;
    /// b.put_bytes("version", b"2")?;
    /// assert_eq!(snap.bucket("config")?.get_bytes("version")?, b"1");
    /// assert_eq!(b.get_bytes("version")?, b"2");
    /// # Ok::<_, keystone::Error>(())
    /// ```
    pub fn snapshot(&self) -> Result<Snapshot> {
        Ok(Snapshot::new(self.engine.snapshot()?))
    }

    /// Copies an object, possibly between buckets. The copy keeps the source's ETag and
    /// checksum; its chunks are its own.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::NoSuchKey`] (no source, or no destination object for
    /// an `IfMatch` condition: its `bucket` and `key` say which), [`Error::PreconditionFailed`]
    /// (on the destination condition or the source ETag), [`Error::Corrupted`] when the source
    /// is damaged.
    pub fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        opts: &CopyOptions,
    ) -> Result<ObjectInfo> {
        crate::data::names::check_bucket(src_bucket)?;
        let snap = self.engine.snapshot()?;
        let src = reader::open(snap, src_bucket, src_key)?;
        if let Some(want) = &opts.source_etag
            && !crate::types::etag_eq(want, &src.info().etag)
        {
            return Err(Error::precondition(src_bucket, src_key, "source ETag does not match"));
        }
        let put = PutOptions {
            meta: opts.meta.clone().unwrap_or_else(|| src.info().meta.clone()),
            condition: opts.condition.clone(),
            content_md5: None,
        };
        let copied = upload::Copied { etag: src.info().etag.clone(), parts: src.info().parts };
        upload::put_stream(&self.engine, dst_bucket, dst_key, src, put, Some(copied))
    }

    /// Re-reads every object and checks it against its checksums, and looks for leaked chunks
    /// (segments no object, part or upload refers to). It only reads: corrupt objects are
    /// reported, not changed.
    pub fn verify(&self) -> Result<VerifyReport> {
        verify::verify(&self.engine, None)
    }

    /// [`verify`](Self::verify) for one bucket.
    pub fn verify_bucket(&self, bucket: &str) -> Result<VerifyReport> {
        verify::verify(&self.engine, Some(bucket))
    }

    /// Runs [`verify`](Self::verify) on `bucket` (or on every bucket), then deletes every
    /// object it found damaged, so that its key can be written again. Each object is deleted
    /// in a durable transaction of its own, and only if it is still the version that was found
    /// (one written again or deleted meanwhile is left alone and listed in
    /// [`RemoveReport::changed`]); the chunks of deleted objects are freed (a sweep finds them
    /// when the damaged record cannot name them). A failed removal is listed in
    /// [`RemoveReport::failed`] and the others go on. Objects that failed verification for
    /// another reason than damage (a read error) are reported in `found`, not removed. Run
    /// `verify` afterwards for the state of the store: leaked segments, for one, are not
    /// counted in a bucket while it holds a record that does not decode.
    ///
    /// Most damage can also be cleared by deleting or overwriting the object. This is for the
    /// rest: a damaged *pack record* (see [`compact`](Self::compact)) holds several small
    /// objects that cannot be told apart, so writes into its key range fail with
    /// [`Error::Corrupted`](crate::Error::Corrupted); it is removed whole, with the objects in
    /// it (which could not be read anyway), and counts as one removed object named by its last
    /// key.
    pub fn remove_corrupt(&self, bucket: Option<&str>) -> Result<RemoveReport> {
        self.engine.writable("remove_corrupt")?;
        self.engine.not_in_transaction("remove_corrupt")?;
        verify::remove_corrupt(&self.engine, bucket)
    }

    /// Runs the storage engine's own integrity check (redb: page checksums and tree
    /// structure) and says whether it passed. Needs every reader, snapshot and transaction of
    /// this store to have ended.
    ///
    /// Unlike [`verify`](Self::verify), this may write: redb repairs what it can, and a file
    /// damaged beyond repair can be left unopenable. Run it on a copy of a store you suspect.
    pub fn check_engine_integrity(&self) -> Result<bool> {
        self.engine.writable("check_engine_integrity (redb checks through a handle open for writing)")?;
        self.engine.not_in_transaction("check_engine_integrity")?;
        self.engine.kv.check_integrity()
    }

    /// How many commits the single writes made outside a transaction have shared since the
    /// store was opened: concurrent writers' writes go into one commit (one fsync when
    /// durable), each writer acknowledged after the commit that holds its write. See
    /// [`GroupCommitStats`](crate::GroupCommitStats) for which writes count.
    ///
    /// ```
    /// # let db = keystone::Datastore::in_memory()?;
    /// let b = db.create_bucket("logs")?;
    /// b.put_bytes("a", b"1")?;
    /// b.put_bytes("b", b"2")?;
    /// let stats = db.group_commit_stats();
    /// // One writer: one write per commit (creating the bucket was the first).
    /// assert_eq!((stats.commits, stats.writes), (3, 3));
    /// # Ok::<_, keystone::Error>(())
    /// ```
    pub fn group_commit_stats(&self) -> crate::GroupCommitStats {
        self.engine.commit.stats()
    }

    /// How many records of the store's redo journal (see [`Builder::journal`]) this open
    /// replayed: the durable commits a process acknowledged before it stopped — a crash, a kill,
    /// a power loss — without having written them to the store file for good, which the open
    /// wrote there. A record is one sync redb asked for: one per durable commit, and one more
    /// for each time a commit grew the file (redb syncs a longer file before using it). 0 after
    /// a clean close, on a read-only open (which refuses a store whose journal holds records:
    /// [`Error::NeedsRecovery`]), and for a store without a journal (in memory, on a custom
    /// backend). A tool can tell its user that the store was recovered; nothing more needs
    /// doing.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("data.keystone");
    /// keystone::Datastore::open(&path)?.create_bucket("logs")?;
    /// // Closed cleanly: nothing to replay.
    /// assert_eq!(keystone::Datastore::open(&path)?.journal_records_replayed(), 0);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    pub fn journal_records_replayed(&self) -> u64 {
        self.engine.kv.replayed_records()
    }

    /// What the last open reclaimed: uploads a previous process left unfinished.
    pub fn recovery_report(&self) -> GcReport {
        self.engine.recovered.clone()
    }

    /// Frees the chunks of uploads that never completed (not those in flight in this process)
    /// and of frees that were queued. Also run on every open.
    pub fn gc(&self) -> Result<GcReport> {
        self.engine.writable("gc")?;
        self.engine.not_in_transaction("gc")?;
        maintenance::gc(&self.engine)
    }

    /// Aborts multipart uploads started more than `age` ago; returns how many.
    pub fn abort_uploads_older_than(&self, age: Duration) -> Result<u64> {
        self.engine.writable("abort_uploads_older_than")?;
        let cutoff = SystemTime::now().checked_sub(age).unwrap_or(UNIX_EPOCH);
        let nanos = cutoff.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        crate::multipart::abort_older_than(&self.engine, nanos)
    }

    /// Shrinks the file to what is in use: packs runs of small objects into shared records
    /// (about 8 KiB each; a later write to one of them unpacks its record), rewrites the
    /// records in key order (which fills the B-tree's pages) and returns the freed space to
    /// the file system. Like SQLite's `VACUUM`, it needs free disk space up to the store's size
    /// while it runs. Needs every reader, snapshot and transaction of this store to have
    /// ended; packing runs first, in transactions of its own, and stays done if the rest
    /// reports the store in use.
    ///
    /// A packed object costs one more B-tree lookup to read (see docs/design.md, "Packs of
    /// small objects"); objects stored on their own are read as before.
    ///
    /// # Errors
    /// [`Error::InUse`] while readers, snapshots, transactions or uploads are open (retry once
    /// they have ended); it waits up to 30 s for write transactions in progress to end.
    pub fn compact(&self) -> Result<CompactReport> {
        self.engine.writable("compact")?;
        self.engine.not_in_transaction("compact")?;
        maintenance::compact(&self.engine)
    }

    /// Streams `reader` into `bucket/key` (shared by [`Bucket::put_reader`]).
    pub(crate) fn put_stream(
        &self,
        bucket: &str,
        key: &str,
        reader: impl Read,
        opts: PutOptions,
    ) -> Result<ObjectInfo> {
        upload::put_stream(&self.engine, bucket, key, reader, opts, None)
    }
}
