//! The redb adapter: with its file backend (`prefill.rs`), the only code that knows about redb
//! (besides the re-export of redb's backend trait for fault-injection tests).
//!
//! This file opens the database and keeps its handle and snapshot cache; `txn.rs` reads and
//! writes the table; `guard.rs` catches redb's panics on damaged pages; `identify.rs` tells a
//! store from other files.

mod create;
pub(crate) mod cut;
mod guard;
mod identify;
mod txn;

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redb::{
    Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableError,
    TableHandle, TransactionError, WriteTransaction,
};

pub(crate) use self::create::{move_no_replace, sync_parent, temporary_name};
pub(crate) use self::guard::guarding;
use self::guard::{Closing, broken_txn, caught, guarded};
use self::identify::{check_tables, open_error, table_names, unless_damaged};
use self::txn::{RedbRead, RedbWrite, TxnCell};
use super::journal::{Arm, open_beside, open_journal_file, stable_inodes, unreplayed_records};
use super::prefill::Prefilled;
use super::write_behind::WriteBehind;
use super::{KeyValueStore, KvRead, Limits, LookupHint, ReadTxn, SpaceInfo, WriteTxn};
use crate::error::{Error, Result};

const TABLE: TableDefinition<'static, &'static [u8], &'static [u8]> = TableDefinition::new("keystone");
/// Where `compact` rebuilds the table before renaming it over the old one (inside one transaction,
/// so the name never survives a commit).
const REPACK: TableDefinition<'static, &'static [u8], &'static [u8]> = TableDefinition::new("keystone.repack");

/// redb-specific settings.
#[derive(Debug, Clone)]
pub(crate) struct RedbConfig {
    pub cache_size: Option<usize>,
    /// A store file gets a redo journal beside it (`storage/journal`).
    pub journal: bool,
}

/// The latest snapshot, shared by readers until a commit makes it stale: beginning a redb
/// read transaction and opening the table costs more than a small get itself (W3 in
/// BENCHMARKS.md). `generation` counts commits; a snapshot is reused only while it is current,
/// and a commit drops the cached one so that it does not hold back the freeing of pages.
///
/// Readers may hold `snap`'s read lock for a whole read (`with_read`), large ones included, so
/// nothing but `clear` (compaction, with the database locked) ever waits for its write lock:
/// a commit, or a reader caching a fresh snapshot, only tries it. A stale snapshot left behind
/// is never used (its generation is old) and is replaced by the next read or dropped by the
/// next commit.
#[derive(Default)]
struct Latest {
    generation: AtomicU64,
    snap: RwLock<Option<(u64, Arc<RedbRead>)>>,
}

impl Latest {
    /// After a commit: later reads must see it.
    fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let stale = match self.snap.try_write() {
            Ok(mut g) => g.take(),
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().take(),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        drop(stale);
    }

    fn clear(&self) {
        let stale = match self.snap.write() {
            Ok(mut g) => g.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        drop(stale);
    }
}

/// The database, open for writing or read-only (redb's two handle types).
enum Db {
    Writable(Closing<Database>),
    ReadOnly(Closing<ReadOnlyDatabase>),
}

impl Db {
    fn begin_read(&self) -> std::result::Result<ReadTransaction, TransactionError> {
        match self {
            Db::Writable(db) => db.begin_read(),
            Db::ReadOnly(db) => db.begin_read(),
        }
    }

    /// The database for `operation`, which writes (or needs the database to itself).
    fn writable(&self, label: &str, operation: &'static str) -> Result<&Database> {
        match self {
            Db::Writable(db) => Ok(db),
            Db::ReadOnly(_) => Err(Error::ReadOnly { path: label.to_owned(), operation }),
        }
    }

    fn writable_mut(&mut self, label: &str, operation: &'static str) -> Result<&mut Database> {
        match self {
            Db::Writable(db) => Ok(db),
            Db::ReadOnly(_) => Err(Error::ReadOnly { path: label.to_owned(), operation }),
        }
    }
}

/// A redb database holding Keystone's single table.
pub(crate) struct RedbStore {
    /// Declared before `db` so that the cached snapshot ends before the database closes.
    latest: Arc<Latest>,
    // `compact` and `check_integrity` need `&mut Database`; everything else shares it. Every
    // snapshot holds it too: a reader or snapshot that outlives the store's last handle keeps
    // the file open and readable (redb fails its reads with `DatabaseClosed` otherwise), as
    // SQLite keeps a connection open until its last statement is finalized.
    db: Arc<RwLock<Db>>,
    /// Set when a commit failed: redb's state after a failed fsync is not trusted until reopen.
    poisoned: Arc<AtomicBool>,
    /// Snapshots alive (held by callers or by the cache): `compact` needs none.
    readers: Arc<AtomicUsize>,
    /// Write transactions begun or beginning (counted under the database's read lock, so none
    /// is added while `exclusive` holds the write lock).
    writers: Arc<AtomicUsize>,
    /// Which lookup gets try first, shared by the snapshots.
    hint: Arc<LookupHint>,
    /// Arms the redo journal under the database, if it has one.
    journal: Option<Arm>,
    /// Records the open replayed from the journal a stopped writer left.
    replayed: u64,
    label: String,
}

/// A redb error as Keystone's. A read past the end of the file is damage, not a failing
/// disk: redb reads only pages its own records point at, and the file holds every page it
/// allocated (it grows the file before it writes), so a page past the end means the file was
/// cut short or a page pointer is wrong. It is `Corrupted`, which points at `salvage`.
fn storage(context: &str, e: impl Into<redb::Error>) -> Error {
    let e: redb::Error = e.into();
    match e {
        redb::Error::Corrupted(reason) => Error::Corrupted { bucket: None, key: None, reason },
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => Error::Corrupted {
            bucket: None,
            key: None,
            reason: format!(
                "{context}: a page lies past the end of the file (the file was cut short or a page pointer is damaged: {io})"
            ),
        },
        redb::Error::DatabaseAlreadyOpen => Error::AlreadyOpen { path: context.to_owned() },
        other => Error::Storage { context: context.to_owned(), source: Box::new(other) },
    }
}

fn poisoned_lock() -> Error {
    Error::Storage { context: "store lock".into(), source: "a thread panicked while compacting the store".into() }
}

impl RedbStore {
    /// Opens (or creates) the file.
    pub(crate) fn open(path: &Path, config: &RedbConfig) -> Result<Self> {
        Self::open_or_create(path, config, &mut |_| {})
    }

    /// [`open`](Self::open); `before_link` runs when a new store is complete under its
    /// temporary name, before it gets its own (tests look at the directory then).
    fn open_or_create(path: &Path, config: &RedbConfig, before_link: &mut dyn FnMut(&Path)) -> Result<Self> {
        let label = path.display().to_string();
        identify::regular_file(path, &label)?;
        if std::fs::symlink_metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
            && let Some(store) = create::create(path, &label, config, before_link)?
        {
            return Ok(store);
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| open_error(&label, e.into()))?;
        let (store, created) = Self::open_file(file, path, label, config, Some(config.journal))?;
        // A store made here must be durable under its name. One that existed may have a
        // creator that was stopped between giving it its name and syncing the directory: a
        // writer makes sure before it writes (a no-op once durable), and removes what such a
        // stop left beside the store.
        let synced = create::sync_parent(path);
        if created {
            synced?;
        }
        create::remove_stale(path);
        Ok(store)
    }

    /// Opens the store in `file` (found at `path`, named `label` in errors), making it a new
    /// store if it is empty; `true` if it did. `journal`: `Some(true)` behind the redo journal
    /// beside it (replayed first); `Some(false)` without one, but a journal a crash left is
    /// replayed first; `None` (a new store under a temporary name) the journal beside `path`
    /// is not this file's and is left alone.
    fn open_file(
        file: std::fs::File,
        path: &Path,
        label: String,
        config: &RedbConfig,
        journal: Option<bool>,
    ) -> Result<(Self, bool)> {
        let (builder, repaired) = builder_noting_repair(config);
        // Only an empty file becomes a new store. A redb file that lists no table is not
        // given one: its list of tables may be a damaged page that reads as empty, and
        // creating the table then would leave every object unreachable and its pages free.
        let meta = file.metadata().map_err(|e| open_error(&label, e.into()))?;
        let creating = meta.len() == 0;
        // A file system that may renumber the file (FAT, exFAT, FUSE, SMB): no new journal.
        let journal = journal.map(|on| on && stable_inodes(&file));
        // What `Builder::create` does, with the file behind `WriteBehind` and `Prefilled` (redb
        // locks it as it opens the backend, after the journal is replayed).
        let backend = redb::backends::FileBackend::new(file)
            .map(|file| Prefilled::new(WriteBehind::new(file)))
            .map_err(|e| open_error(&label, e))?;
        // Locked before it is read (redb locks the store file only once the backend is built,
        // `journal/file.rs`). Without `journal`, a journal a crash left is still replayed (and
        // removed at close), but no new one is made and none is used.
        let found = match journal {
            Some(journal) => open_journal_file(path, &label, journal)?,
            None => None,
        };
        let (db, arm, replayed) = if let Some(file) = found {
            let (backend, arm, replayed) = open_beside(backend, file, &meta)?;
            let db = guarded("opening", || Ok(builder.create_with_backend(backend)))?;
            (db, (journal == Some(true)).then_some(arm), replayed)
        } else {
            (guarded("opening", || Ok(builder.create_with_backend(backend)))?, None, 0)
        };
        let db = db.map_err(|e| unless_damaged(path, open_error(&label, e)))?;
        let mut store = Self::init(db, label, creating, repaired.load(Ordering::Acquire))?;
        store.journal = arm;
        store.replayed = replayed;
        Ok((store, creating))
    }

    /// Opens an existing store read-only: writes are refused with `ReadOnly`, the file is
    /// opened without write access (a store the process may not write can be read), and any
    /// number of read-only handles may share it, in this process or others, while none has it
    /// open for writing.
    pub(crate) fn open_read_only(path: &Path, config: &RedbConfig) -> Result<Self> {
        let label = path.display().to_string();
        identify::regular_file(path, &label)?;
        let builder = builder(config);
        let db = guarded("opening", || Ok(builder.open_read_only(path)))?
            .map_err(|e| unless_damaged(path, open_error(&label, e)))?;
        // With the file locked shared, no writer is live: a journal holding records is a
        // crashed writer's, and the file alone is not the store until they are replayed.
        let meta = std::fs::metadata(path).map_err(|e| open_error(&label, e.into()))?;
        if unreplayed_records(path, &label, &meta)? {
            return Err(Error::NeedsRecovery { path: label });
        }
        Self::read_only_store(db, label)
    }

    /// Opens a store cut short (`cut::measure`) read-only, as long as its layout with zeros past
    /// the cut: for `salvage`, which copies what lies before it.
    pub(crate) fn open_cut_short(path: &Path, config: &RedbConfig, cut: cut::CutShort) -> Result<Self> {
        let label = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| open_error(&label, e.into()))?;
        let backend = cut::ZeroPadded::new(file, cut).map_err(|e| open_error(&label, e))?;
        let db = guarded("opening", || Ok(builder(config).open_read_only_with_backend(backend)))?
            .map_err(|e| unless_damaged(path, open_error(&label, e)))?;
        // As `open_read_only`: the file alone is not the store while its journal holds records.
        let meta = std::fs::metadata(path).map_err(|e| open_error(&label, e.into()))?;
        if unreplayed_records(path, &label, &meta)? {
            return Err(Error::NeedsRecovery { path: label });
        }
        Self::read_only_store(db, label)
    }

    /// A store over a database opened read-only, once it has Keystone's table.
    fn read_only_store(db: redb::ReadOnlyDatabase, label: String) -> Result<Self> {
        let db = Closing::new(db);
        let txn = db.begin_read().map_err(|e| storage("listing tables", e))?;
        let tables = guarded("listing tables", || table_names(txn.list_tables(), txn.list_multimap_tables()))?;
        drop(txn);
        check_tables(&label, &tables, false)?;
        Ok(Self::new(Db::ReadOnly(db), label))
    }

    /// An anonymous store on redb's in-memory backend.
    pub(crate) fn in_memory(config: &RedbConfig) -> Result<Self> {
        let builder = builder(config);
        let db = builder
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| storage("creating in-memory store", e))?;
        Self::init(db, "(memory)".into(), true, false)
    }

    /// A store on a caller-supplied redb storage backend (used by fault-injection tests).
    pub(crate) fn with_backend(backend: impl redb::StorageBackend, config: &RedbConfig) -> Result<Self> {
        let (builder, repaired) = builder_noting_repair(config);
        // Behind `Prefilled`, as a file is, so that fault-injection and power-loss tests cover it.
        let db = builder.create_with_backend(Prefilled::new(backend)).map_err(|e| open_error("(custom backend)", e))?;
        Self::init(db, "(custom backend)".into(), true, repaired.load(Ordering::Acquire))
    }

    /// A store on caller-supplied backends for the store and its journal, wrapped as a store
    /// file and its journal are (used by power-loss tests).
    pub(crate) fn with_backends(
        store: impl redb::StorageBackend,
        journal: impl redb::StorageBackend,
        config: &RedbConfig,
    ) -> Result<Self> {
        let (builder, repaired) = builder_noting_repair(config);
        let (backend, found, arm) = super::journal::Journaled::open(Prefilled::new(store), journal, [0x5a; 16], None)
            .map_err(|e| Error::io_while(format_args!("replaying the journal"), &e))?;
        let db = builder.create_with_backend(backend).map_err(|e| open_error("(custom backend)", e))?;
        let mut store = Self::init(db, "(custom backend)".into(), true, repaired.load(Ordering::Acquire))?;
        store.journal = Some(arm);
        store.replayed = found.records;
        Ok(store)
    }

    /// `creating`: the database may be new, and is then given Keystone's table. `repaired`:
    /// redb recovered the file as it opened it.
    fn init(db: Database, label: String, creating: bool, repaired: bool) -> Result<Self> {
        let db = Closing::new(db);
        // Listed in a read transaction: a damaged page met here leaves no write transaction
        // behind that would have to be aborted (redb's abort would find its own lock poisoned).
        let tables = {
            let txn = db.begin_read().map_err(|e| storage("listing tables", e))?;
            guarded("listing tables", || table_names(txn.list_tables(), txn.list_multimap_tables()))?
        };
        // A new file has no table; a store has ours. Another program's redb database is
        // refused untouched (creating our table in it would change that program's file).
        check_tables(&label, &tables, creating)?;
        // Opening a clean store writes nothing. A new one gets its table; a recovered one one
        // commit, which returns the pages of what the crash cut short to the free space (on a
        // full disk, the next write may need them).
        if repaired || !tables.iter().any(|t| t == TABLE.name()) {
            let txn = db.begin_write().map_err(|e| storage("creating table", e))?;
            txn.open_table(TABLE).map_err(|e| storage("creating table", e))?;
            guarded("committing", || Ok(txn.commit()))?.map_err(|e| storage("creating table", e))?;
        }
        Ok(Self::new(Db::Writable(db), label))
    }

    fn new(db: Db, label: String) -> Self {
        RedbStore {
            latest: Arc::default(),
            db: Arc::new(RwLock::new(db)),
            poisoned: Arc::new(AtomicBool::new(false)),
            readers: Arc::default(),
            writers: Arc::default(),
            hint: Arc::default(),
            journal: None,
            replayed: 0,
            label,
        }
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // Before redb closes the database (now, or when the last snapshot ends): its closing
        // commit and clean-shutdown header then go to the store file itself, synced, instead of
        // into a record (a clean header must never be on the file while pages it names are
        // only in the journal).
        if let Some(arm) = &self.journal {
            arm.disarm();
        }
    }
}

/// redb's builder with the configured cache.
fn builder(config: &RedbConfig) -> redb::Builder {
    let mut builder = Database::builder();
    if let Some(size) = config.cache_size {
        builder.set_cache_size(size);
    }
    builder
}

/// [`builder`], and a flag set if redb recovers the file as it opens it.
fn builder_noting_repair(config: &RedbConfig) -> (redb::Builder, Arc<AtomicBool>) {
    let mut builder = builder(config);
    let repaired = Arc::new(AtomicBool::new(false));
    let flag = repaired.clone();
    builder.set_repair_callback(move |_| flag.store(true, Ordering::Release));
    (builder, repaired)
}

/// Commits under the guard. Any failure leaves the handle refusing writes until reopened: a
/// failed commit may mean a failed fsync (the page cache state is unknown, so no silent retry),
/// and a panic in it leaves redb's allocator to the next open's repair.
fn commit_guarded(txn: WriteTransaction, context: &str, poisoned: &AtomicBool) -> Result<()> {
    guarded(context, || Ok(txn.commit()))
        .and_then(|r| r.map_err(|e| storage(context, e)))
        .inspect_err(|_| poisoned.store(true, Ordering::Release))
}

/// A count held up while its guard lives (the store's readers and writers).
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(count: &Arc<AtomicUsize>) -> Counted {
        count.fetch_add(1, Ordering::AcqRel);
        Counted(count.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How long `exclusive` waits for write transactions to end, in all.
const EXCLUSIVE_WAIT: Duration = Duration::from_secs(30);
/// How long it holds the lock waiting for them before it lets go for a while.
const EXCLUSIVE_HOLD: Duration = Duration::from_millis(50);

impl RedbStore {
    /// The database to itself (`compact`, `check_integrity`), once no write transaction is
    /// open. It never blocks on the lock: holding or queueing for it while redb waits for an
    /// open transaction's write lock would deadlock with that transaction's own reads, which
    /// need the lock shared. So it takes the lock only when free, waits briefly for open
    /// transactions to end (new ones cannot begin meanwhile), and lets go and retries if they
    /// do not — a transaction reading through the store goes on in between. `InUse` after
    /// `EXCLUSIVE_WAIT`.
    fn exclusive(&self) -> Result<std::sync::RwLockWriteGuard<'_, Db>> {
        let deadline = Instant::now() + EXCLUSIVE_WAIT;
        loop {
            match self.db.try_write() {
                Ok(guard) => {
                    let hold = Instant::now() + EXCLUSIVE_HOLD;
                    while self.writers.load(Ordering::Acquire) > 0 && Instant::now() < hold {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    if self.writers.load(Ordering::Acquire) == 0 {
                        return Ok(guard);
                    }
                }
                Err(std::sync::TryLockError::WouldBlock) => {}
                Err(std::sync::TryLockError::Poisoned(_)) => return Err(poisoned_lock()),
            }
            if Instant::now() >= deadline {
                return Err(in_use());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn in_use() -> Error {
    Error::InUse { operation: "compact" }
}

/// Rewrites the table in key order into a fresh one, in one durable transaction.
///
/// redb splits a full leaf into two half-full ones and its `compact` only moves pages, so a
/// table filled by random or repeated inserts stays about half empty (2.0x the bytes stored
/// for 1 KiB objects, BENCHMARKS.md W5). Appending every entry in order through a cursor
/// packs each leaf full. The copy needs free space up to the table's size until the commit
/// frees the old pages, which `compact` then returns to the file system.
fn repack(db: &Database, poisoned: &AtomicBool) -> Result<()> {
    let ctx = "compacting (rewriting the table)";
    // The list of tables, which the rename below rewrites, read first in a read transaction:
    // a damaged page in it then fails here rather than inside the write transaction's
    // `delete_table`, whose panic would poison a lock the transaction's abort needs.
    {
        let txn = db.begin_read().map_err(|e| storage(ctx, e))?;
        guarded(ctx, || table_names(txn.list_tables(), txn.list_multimap_tables()))?;
    }
    // Aborted, if it does not commit, under the guard.
    let txn = Closing::new(db.begin_write().map_err(|e| storage(ctx, e))?);
    // Reads every entry: a damaged page fails the compaction here, before redb moves pages, and
    // the transaction is then aborted (by its drop).
    guarded(ctx, || {
        let old = txn.open_table(TABLE).map_err(|e| storage(ctx, e))?;
        let mut new = txn.open_table(REPACK).map_err(|e| storage(ctx, e))?;
        let mut cursor = new.upper_bound_mut(Bound::<&[u8]>::Unbounded).map_err(|e| storage(ctx, e))?;
        for item in old.range::<&[u8]>(..).map_err(|e| storage(ctx, e))? {
            let (k, v) = item.map_err(|e| storage(ctx, e))?;
            cursor.insert_before(k.value(), v.value()).map_err(|e| storage(ctx, e))?;
        }
        cursor.close().map_err(|e| storage(ctx, e))
    })?;
    guarded(ctx, || {
        txn.delete_table(TABLE).map_err(|e| storage(ctx, e))?;
        txn.rename_table(REPACK, TABLE).map_err(|e| storage(ctx, e))
    })?;
    let Some(txn) = txn.into_inner() else {
        return Err(broken_txn());
    };
    commit_guarded(txn, ctx, poisoned)
}

impl KeyValueStore for RedbStore {
    fn limits(&self) -> Limits {
        Limits::UNLIMITED
    }

    fn read(&self) -> Result<Arc<dyn ReadTxn>> {
        // Read the generation before beginning the transaction: a commit that lands in
        // between makes the new snapshot look stale (it is then used once, not cached).
        let generation = self.latest.generation.load(Ordering::Acquire);
        if let Some((g, snap)) = &*self.latest.snap.read().map_err(|_| poisoned_lock())?
            && *g == generation
        {
            return Ok(snap.clone());
        }
        let fresh = {
            let db = self.db.read().map_err(|_| poisoned_lock())?;
            let table = guarded("opening a snapshot", || {
                let txn = db.begin_read().map_err(|e| storage("beginning a read", e))?;
                txn.open_table(TABLE).map_err(|e| storage("opening table", e))
            })?;
            Arc::new(RedbRead {
                table,
                _counted: Counted::new(&self.readers),
                hint: self.hint.clone(),
                _db: self.db.clone(),
            })
        };
        // Cached only if no reader holds the cache right now (see `Latest`).
        let replaced = match self.latest.snap.try_write() {
            Ok(mut cached) if self.latest.generation.load(Ordering::Acquire) == generation => {
                cached.replace((generation, fresh.clone()))
            }
            _ => None,
        };
        drop(replaced);
        Ok(fresh)
    }

    fn with_read(&self, f: &mut dyn FnMut(&dyn KvRead) -> Result<()>) -> Result<()> {
        // The current shared snapshot, used under the cache's read lock: no reference count
        // is touched, which concurrent readers of small objects otherwise all contend on.
        let generation = self.latest.generation.load(Ordering::Acquire);
        {
            let cached = self.latest.snap.read().map_err(|_| poisoned_lock())?;
            if let Some((g, snap)) = &*cached
                && *g == generation
            {
                return f(snap.as_ref());
            }
        }
        let snap = self.read()?;
        f(snap.as_ref())
    }

    fn write(&self) -> Result<Box<dyn WriteTxn>> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        let (txn, counted) = {
            let db = self.db.read().map_err(|_| poisoned_lock())?;
            let db = db.writable(&self.label, "writing")?;
            // The table as the last commit has it, opened first in a read transaction (not
            // kept: a snapshot held through the write would hold back the freeing of pages): a
            // damaged page on the way to it then fails here, not inside the write
            // transaction's `open_table`, which holds one of redb's locks (poisoned by the
            // panic, it would make the abort panic in turn).
            {
                let txn = db.begin_read().map_err(|e| storage("beginning a read", e))?;
                guarded("opening table", || txn.open_table(TABLE).map(drop).map_err(|e| storage("opening table", e)))?;
            }
            let counted = Counted::new(&self.writers);
            (db.begin_write().map_err(|e| storage("beginning a write", e))?, counted)
        };
        let cell =
            TxnCell::try_new(txn, |txn| txn.open_table(TABLE)).map_err(|e: TableError| storage("opening table", e))?;
        Ok(Box::new(RedbWrite {
            cell: Closing::new(cell),
            broken: false,
            poisoned: self.poisoned.clone(),
            latest: self.latest.clone(),
            _counted: counted,
        }))
    }

    fn compact(&self) -> Result<()> {
        // Cleared once the database is locked: no read can begin and refill the cache meanwhile.
        let mut guard = self.exclusive()?;
        let db = guard.writable_mut(&self.label, "compact")?;
        self.latest.clear();
        if self.readers.load(Ordering::Acquire) > 0 {
            return Err(in_use());
        }
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        repack(db, &self.poisoned)?;
        loop {
            // A panic inside redb's compaction dropped its own transaction while unwinding:
            // redb's state is not trusted (the file is repaired at the next open), so this
            // handle writes nothing more, as after a failed commit.
            let step = caught("compacting", || Ok(db.compact()))
                .inspect_err(|_| self.poisoned.store(true, Ordering::Release))?;
            match step? {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(redb::CompactionError::TransactionInProgress) => return Err(in_use()),
                Err(e) => return Err(storage("compacting", e)),
            }
        }
    }

    fn check_integrity(&self) -> Result<bool> {
        // redb checks (and may repair) only through a handle open for writing.
        let mut guard = self.exclusive()?;
        let db = guard.writable_mut(&self.label, "an engine integrity check")?;
        self.latest.clear();
        db.check_integrity().map_err(|e| storage("checking integrity", e))
    }

    fn arm_journal(&self) {
        if let Some(arm) = &self.journal {
            arm.arm();
        }
    }

    fn replayed_records(&self) -> u64 {
        self.replayed
    }

    fn space(&self) -> Result<SpaceInfo> {
        let file_size =
            if self.label.starts_with('(') { 0 } else { std::fs::metadata(&self.label).map_or(0, |m| m.len()) };
        Ok(SpaceInfo { file_size })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_read_past_the_end_is_damage_and_other_io_errors_are_not() {
        let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "failed to fill whole buffer");
        let e = storage("reading", redb::Error::Io(eof));
        assert!(matches!(&e, Error::Corrupted { reason, .. } if reason.contains("past the end")), "{e}");
        let eio = std::io::Error::from_raw_os_error(5);
        assert!(matches!(storage("reading", redb::Error::Io(eio)), Error::Storage { .. }));
    }
}
