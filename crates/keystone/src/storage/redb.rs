//! The redb adapter: with its file backend (`prefill.rs`), the only code that knows about redb
//! (besides the re-export of redb's backend trait for fault-injection tests).

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redb::{
    Database, DatabaseError, Durability, MultimapTableHandle, ReadOnlyDatabase, ReadOnlyTable, ReadTransaction,
    ReadableDatabase, ReadableTable, StorageError, Table, TableDefinition, TableError, TableHandle, TransactionError,
    WriteTransaction,
};

use super::prefill::Prefilled;
use super::{Commit, EntryFn, KeyRange, KeyValueStore, KvRead, Limits, ReadTxn, SpaceInfo, Value, WriteTxn};
use crate::error::{Error, Result};

const TABLE: TableDefinition<'static, &'static [u8], &'static [u8]> = TableDefinition::new("keystone");
/// Where `compact` rebuilds the table before renaming it over the old one (inside one transaction,
/// so the name never survives a commit).
const REPACK: TableDefinition<'static, &'static [u8], &'static [u8]> = TableDefinition::new("keystone.repack");

/// redb-specific settings.
#[derive(Debug, Clone)]
pub(crate) struct RedbConfig {
    pub cache_size: Option<usize>,
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
    Writable(Database),
    ReadOnly(ReadOnlyDatabase),
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
    label: String,
}

fn storage(context: &str, e: impl Into<redb::Error>) -> Error {
    let e: redb::Error = e.into();
    match e {
        redb::Error::Corrupted(reason) => Error::Corrupted { bucket: None, key: None, reason },
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
        let label = path.display().to_string();
        let builder = builder(config);
        // What `Builder::create` does, with the file behind `Prefilled`.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| open_error(&label, e.into()))?;
        let backend = redb::backends::FileBackend::new(file).map(Prefilled::new).map_err(|e| open_error(&label, e))?;
        let db = builder.create_with_backend(backend).map_err(|e| open_error(&label, e))?;
        Self::init(db, label)
    }

    /// Opens an existing store read-only: writes are refused with `ReadOnly`, the file is
    /// opened without write access (a store the process may not write can be read), and any
    /// number of read-only handles may share it, in this process or others, while none has it
    /// open for writing.
    pub(crate) fn open_read_only(path: &Path, config: &RedbConfig) -> Result<Self> {
        let label = path.display().to_string();
        let builder = builder(config);
        let db = builder.open_read_only(path).map_err(|e| open_error(&label, e))?;
        let txn = db.begin_read().map_err(|e| storage("listing tables", e))?;
        let tables = table_names(txn.list_tables(), txn.list_multimap_tables())?;
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
        Self::init(db, "(memory)".into())
    }

    /// A store on a caller-supplied redb storage backend (used by fault-injection tests).
    pub(crate) fn with_backend(backend: impl redb::StorageBackend, config: &RedbConfig) -> Result<Self> {
        let builder = builder(config);
        // Behind `Prefilled`, as a file is, so that fault-injection and power-loss tests cover it.
        let db = builder.create_with_backend(Prefilled::new(backend)).map_err(|e| open_error("(custom backend)", e))?;
        Self::init(db, "(custom backend)".into())
    }

    fn init(db: Database, label: String) -> Result<Self> {
        let txn = db.begin_write().map_err(|e| storage("creating table", e))?;
        // A new file has no table; a store has ours. Another program's redb database is
        // refused untouched (creating our table in it would change that program's file).
        let tables = table_names(txn.list_tables(), txn.list_multimap_tables())?;
        if let Err(e) = check_tables(&label, &tables, true) {
            let _ = txn.abort();
            return Err(e);
        }
        txn.open_table(TABLE).map_err(|e| storage("creating table", e))?;
        txn.commit().map_err(|e| storage("creating table", e))?;
        Ok(Self::new(Db::Writable(db), label))
    }

    fn new(db: Db, label: String) -> Self {
        RedbStore {
            latest: Arc::default(),
            db: Arc::new(RwLock::new(db)),
            poisoned: Arc::new(AtomicBool::new(false)),
            readers: Arc::default(),
            writers: Arc::default(),
            label,
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

/// The names of a database's tables (as a read or a write transaction lists them).
fn table_names(
    tables: std::result::Result<impl Iterator<Item = redb::UntypedTableHandle>, StorageError>,
    multimap: std::result::Result<impl Iterator<Item = redb::UntypedMultimapTableHandle>, StorageError>,
) -> Result<Vec<String>> {
    let names = tables
        .map_err(|e| storage("listing tables", e))?
        .map(|t| t.name().to_owned())
        .chain(multimap.map_err(|e| storage("listing tables", e))?.map(|t| t.name().to_owned()))
        .collect();
    Ok(names)
}

/// A store has Keystone's table. A new file has no table at all, which an open for writing
/// (`creating`) gives it; another program's redb database is refused untouched (creating our
/// table in it would change that program's file).
fn check_tables(label: &str, tables: &[String], creating: bool) -> Result<()> {
    if tables.iter().any(|t| t == TABLE.name()) || (creating && tables.is_empty()) {
        return Ok(());
    }
    let reason = if tables.is_empty() {
        format!("{label} is an empty redb database, not a Keystone store")
    } else {
        format!("{label} is a redb database but not a Keystone store (its tables: {})", tables.join(", "))
    };
    Err(Error::Corrupted { bucket: None, key: None, reason })
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
    let txn = db.begin_write().map_err(|e| storage(ctx, e))?;
    {
        let old = txn.open_table(TABLE).map_err(|e| storage(ctx, e))?;
        let mut new = txn.open_table(REPACK).map_err(|e| storage(ctx, e))?;
        let mut cursor = new.upper_bound_mut(Bound::<&[u8]>::Unbounded).map_err(|e| storage(ctx, e))?;
        for item in old.range::<&[u8]>(..).map_err(|e| storage(ctx, e))? {
            let (k, v) = item.map_err(|e| storage(ctx, e))?;
            cursor.insert_before(k.value(), v.value()).map_err(|e| storage(ctx, e))?;
        }
        cursor.close().map_err(|e| storage(ctx, e))?;
    }
    txn.delete_table(TABLE).map_err(|e| storage(ctx, e))?;
    txn.rename_table(REPACK, TABLE).map_err(|e| storage(ctx, e))?;
    txn.commit().map_err(|e| {
        poisoned.store(true, Ordering::Release);
        storage(ctx, e)
    })
}

fn open_error(label: &str, e: DatabaseError) -> Error {
    match e {
        DatabaseError::DatabaseAlreadyOpen => Error::AlreadyOpen { path: label.to_owned() },
        // A read-only open of a file that was not closed cleanly (redb's repair would write).
        DatabaseError::RepairAborted => Error::NeedsRecovery { path: label.to_owned() },
        DatabaseError::Storage(StorageError::Corrupted(reason)) => {
            Error::Corrupted { bucket: None, key: None, reason: format!("{label} is not a valid store: {reason}") }
        }
        // redb's "not a redb database" (wrong magic number).
        DatabaseError::Storage(StorageError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            Error::Corrupted { bucket: None, key: None, reason: format!("{label} is not a Keystone store: {e}") }
        }
        other => Error::Storage { context: format!("opening {label}"), source: Box::new(other) },
    }
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
            let txn = db.begin_read().map_err(|e| storage("beginning a read", e))?;
            let table = match txn.open_table(TABLE) {
                Ok(t) => t,
                Err(e) => return Err(storage("opening table", e)),
            };
            Arc::new(RedbRead { table, _counted: Counted::new(&self.readers), _db: self.db.clone() })
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
            let counted = Counted::new(&self.writers);
            (db.begin_write().map_err(|e| storage("beginning a write", e))?, counted)
        };
        let cell =
            TxnCell::try_new(txn, |txn| txn.open_table(TABLE)).map_err(|e: TableError| storage("opening table", e))?;
        Ok(Box::new(RedbWrite {
            cell,
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
            match db.compact() {
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

    fn space(&self) -> Result<SpaceInfo> {
        let file_size =
            if self.label.starts_with('(') { 0 } else { std::fs::metadata(&self.label).map_or(0, |m| m.len()) };
        Ok(SpaceInfo { file_size })
    }
}

struct RedbRead {
    table: ReadOnlyTable<&'static [u8], &'static [u8]>,
    /// Counts this snapshot among the store's readers while it lives.
    _counted: Counted,
    /// Keeps the database open while this snapshot lives (declared last: dropped after the
    /// table).
    _db: Arc<RwLock<Db>>,
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
    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        let guard = self.table.get_owned(key).map_err(|e| storage("reading", e))?;
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
}

impl ReadTxn for RedbRead {}

/// Calls `f` with the value under `key` while the table lends it (a snapshot's table or a
/// transaction's); returns whether the key exists.
fn read_table_with(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
    f: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<bool> {
    match table.get(key).map_err(|e| storage("reading", e))? {
        Some(g) => f(g.value()).map(|()| true),
        None => Ok(false),
    }
}

/// `first_with` on a snapshot's table or a transaction's.
fn first_table_with(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    range: KeyRange<'_>,
    f: &mut EntryFn<'_>,
) -> Result<bool> {
    let mut iter = table.range::<&[u8]>(to_bounds(range)).map_err(|e| storage("scanning", e))?;
    match iter.next() {
        Some(item) => {
            let (k, v) = item.map_err(|e| storage("scanning", e))?;
            f(k.value(), v.value()).map(|()| true)
        }
        None => Ok(false),
    }
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
    let iter = table.range::<&[u8]>(to_bounds(range)).map_err(|e| storage("scanning", e))?;
    for item in iter {
        let (k, v) = item.map_err(|e| storage("scanning", e))?;
        out.push((k.value().to_vec(), Value::owned(v.value().to_vec())));
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

type KsTable<'txn> = Table<'txn, &'static [u8], &'static [u8]>;

self_cell::self_cell!(
    struct TxnCell {
        owner: WriteTransaction,
        #[not_covariant]
        dependent: KsTable,
    }
);

struct RedbWrite {
    cell: TxnCell,
    poisoned: Arc<AtomicBool>,
    latest: Arc<Latest>,
    /// Counts this transaction among the store's writers until it ends (declared last:
    /// dropped after the transaction).
    _counted: Counted,
}

impl KvRead for RedbWrite {
    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.cell.with_dependent(|_, table| {
            let guard = table.get(key).map_err(|e| storage("reading", e))?;
            Ok(guard.map(|g| Value::owned(g.value().to_vec())))
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
}

impl WriteTxn for RedbWrite {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.cell.with_dependent_mut(|_, table| {
            table.insert(key, value).map_err(|e| storage("writing", e))?;
            Ok(())
        })
    }

    fn delete(&mut self, key: &[u8]) -> Result<bool> {
        self.cell.with_dependent_mut(|_, table| {
            let old = table.remove(key).map_err(|e| storage("deleting", e))?;
            Ok(old.is_some())
        })
    }

    fn delete_range(&mut self, range: KeyRange<'_>) -> Result<u64> {
        self.cell.with_dependent_mut(|_, table| {
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
        let RedbWrite { cell, poisoned, latest, _counted: counted } = *self;
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
        let committed = txn.commit().map_err(|e| {
            // A failed commit may mean a failed fsync: the page cache state is unknown, so no
            // silent retry. The handle refuses writes until reopened.
            poisoned.store(true, Ordering::Release);
            storage("committing", e)
        });
        latest.invalidate();
        drop(counted);
        committed
    }
}
