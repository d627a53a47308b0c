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
use super::{Commit, EntryFn, KeyRange, KeyValueStore, KvRead, Limits, ReadTxn, ScanFn, SpaceInfo, Value, WriteTxn};
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
    Writable(Closing<Database>),
    ReadOnly(Closing<ReadOnlyDatabase>),
}

/// A database (or a write transaction) dropped under the same guard as every other redb call:
/// closing commits redb's allocator state, which reads its own tree, and a damaged page there
/// makes redb panic in its `Drop`; aborting a transaction takes locks a caught panic may have
/// poisoned. The close is then left undone (the file is recovered at the next open, as after a
/// crash) instead of ending the process; there is no caller left to give an error to.
struct Closing<T>(Option<T>);

impl<T> Closing<T> {
    fn new(db: T) -> Self {
        Closing(Some(db))
    }

    /// The value, no longer dropped under the guard.
    fn into_inner(mut self) -> Option<T> {
        self.0.take()
    }
}

impl<T> std::ops::Deref for Closing<T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.0 {
            Some(db) => db,
            None => unreachable!("a database is taken only by its drop"),
        }
    }
}

impl<T> std::ops::DerefMut for Closing<T> {
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.0 {
            Some(db) => db,
            None => unreachable!("a database is taken only by its drop"),
        }
    }
}

impl<T> Drop for Closing<T> {
    fn drop(&mut self) {
        if let Some(db) = self.0.take() {
            let _ = guarded("closing", move || {
                drop(db);
                Ok(())
            });
        }
    }
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

thread_local! {
    /// Set while this thread runs a redb call under [`guarded`].
    static GUARDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether a panic raised on this thread now would be caught by Keystone and returned as
/// [`Error::Corrupted`] (see [`crate::panic_is_caught`]).
pub(crate) fn guarding() -> bool {
    GUARDING.with(std::cell::Cell::get)
}

/// Runs one redb call, turning a panic inside it into [`Error::Corrupted`].
///
/// redb checks its pages' checksums only when it recovers a file or checks its integrity, and
/// a page damaged on disk (by the disk, or by a program writing into the file) can make its
/// B-tree code panic when it reads it. Caught here, the panic fails this operation only. A
/// write transaction it happened in must then never commit (a mutation cut short may already
/// have marked pages of the committed tree as freed: `RedbWrite` refuses everything after
/// one) and is aborted when dropped — normally, under this guard too, not while unwinding,
/// which would leave redb's allocator for a repair at the next open, and that repair refuses
/// a file with a damaged page reachable: the whole store would be lost.
/// Only redb's own code runs inside: a panic in Keystone's is never reported as damage.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    caught(what, f).unwrap_or_else(Err)
}

/// [`guarded`], telling a caught panic (the outer `Err`) from an error `f` returned.
fn caught<T>(what: &str, f: impl FnOnce() -> Result<T>) -> std::result::Result<Result<T>, Error> {
    let was = GUARDING.with(|g| g.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    GUARDING.with(|g| g.set(was));
    result.map_err(|panic| {
        let detail = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Error::Corrupted {
            bucket: None,
            key: None,
            reason: format!(
                "a page of the store's index is damaged (redb failed while {what}: {detail}); \
                 `keystone verify --engine` checks a copy of the file"
            ),
        }
    })
}

/// What a write transaction answers once a redb call in it panicked.
fn broken_txn() -> Error {
    Error::Corrupted {
        bucket: None,
        key: None,
        reason: "a write in this transaction met a damaged page of the store's index; the transaction \
                 was rolled back"
            .into(),
    }
}

fn poisoned_lock() -> Error {
    Error::Storage { context: "store lock".into(), source: "a thread panicked while compacting the store".into() }
}

impl RedbStore {
    /// Opens (or creates) the file.
    pub(crate) fn open(path: &Path, config: &RedbConfig) -> Result<Self> {
        let label = path.display().to_string();
        let (builder, repaired) = builder_noting_repair(config);
        // What `Builder::create` does, with the file behind `Prefilled`.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| open_error(&label, e.into()))?;
        // Only an empty file becomes a new store. A redb file that lists no table is not
        // given one: its list of tables may be a damaged page that reads as empty, and
        // creating the table then would leave every object unreachable and its pages free.
        let creating = file.metadata().map_err(|e| open_error(&label, e.into()))?.len() == 0;
        let backend = redb::backends::FileBackend::new(file).map(Prefilled::new).map_err(|e| open_error(&label, e))?;
        let db = guarded("opening", || Ok(builder.create_with_backend(backend)))?
            .map_err(|e| unless_damaged(path, open_error(&label, e)))?;
        Self::init(db, label, creating, repaired.load(Ordering::Acquire))
    }

    /// Opens an existing store read-only: writes are refused with `ReadOnly`, the file is
    /// opened without write access (a store the process may not write can be read), and any
    /// number of read-only handles may share it, in this process or others, while none has it
    /// open for writing.
    pub(crate) fn open_read_only(path: &Path, config: &RedbConfig) -> Result<Self> {
        let label = path.display().to_string();
        let builder = builder(config);
        let db = Closing::new(
            guarded("opening", || Ok(builder.open_read_only(path)))?
                .map_err(|e| unless_damaged(path, open_error(&label, e)))?,
        );
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
    if tables.is_empty() {
        // Which it is cannot be told: not called "not a store", which might get it deleted.
        let reason = format!(
            "{label} is a redb database with no tables, not a Keystone store (or a store whose list of \
             tables is damaged; a store whose creation was cut short holds no objects and may be deleted)"
        );
        return Err(Error::Corrupted { bucket: None, key: None, reason });
    }
    // A table name a byte or two away from ours is our table with its name damaged on disk
    // (a review found a flipped bit turning `keystone` into `keystond`, called "not a store").
    if let Some(near) = tables.iter().find(|t| edit_distance(t.as_bytes(), TABLE.name().as_bytes()) <= 2) {
        let reason = format!(
            "{label} is a redb database whose table {near:?} is not Keystone's {:?} but close to it: a store \
             whose list of tables is damaged",
            TABLE.name()
        );
        return Err(Error::Corrupted { bucket: None, key: None, reason });
    }
    Err(Error::NotAStore {
        path: label.to_owned(),
        reason: format!("a redb database without Keystone's table; its tables: {}", tables.join(", ")),
    })
}

/// Levenshtein distance of two short byte strings.
fn edit_distance(a: &[u8], b: &[u8]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &x) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(x != y));
            diagonal = above;
        }
    }
    row[b.len()]
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

fn open_error(label: &str, e: DatabaseError) -> Error {
    match e {
        DatabaseError::DatabaseAlreadyOpen => Error::AlreadyOpen { path: label.to_owned() },
        // A read-only open of a file that was not closed cleanly (redb's repair would write).
        DatabaseError::RepairAborted => Error::NeedsRecovery { path: label.to_owned() },
        DatabaseError::Storage(StorageError::Corrupted(reason)) => {
            Error::Corrupted { bucket: None, key: None, reason: format!("{label} is not a valid store: {reason}") }
        }
        // redb's "not a redb database": the file does not begin with redb's magic number (or,
        // opened read-only, is empty). See `unless_damaged`.
        DatabaseError::Storage(StorageError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            Error::NotAStore { path: label.to_owned(), reason: "not a redb database".into() }
        }
        other => Error::Storage { context: format!("opening {label}"), source: Box::new(other) },
    }
}

/// `e`, unless it calls the file at `path` not a redb database while the file's header is a
/// redb database's but for its first bytes: then the store was damaged there (redb checks
/// only its 9-byte magic number), or its creation cut short before redb wrote them, and that
/// is `Corrupted`, not `NotAStore`. redb's header
/// holds, after the magic number, a flags byte and two bytes of padding, the page size as a
/// little-endian u32: a power of two from 512 on. Text never has one there (it has no zero
/// bytes); random bytes have one of the 16 taken here once in 2^28.
fn unless_damaged(path: &Path, e: Error) -> Error {
    let Error::NotAStore { path: label, .. } = &e else { return e };
    let mut head = [0u8; 16];
    let len = std::fs::metadata(path).map(|m| m.len());
    let read = std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head));
    if read.is_err() {
        // Shorter than a header: nothing of redb's in it. Only an empty file is named as such.
        let empty = len.as_ref().is_ok_and(|&n| n == 0);
        return if empty { Error::NotAStore { path: label.clone(), reason: "an empty file".into() } } else { e };
    }
    // A first page of zeros in a file of whole pages: a store whose header page was lost (a
    // common way disks fail), as likely as a file that never was one.
    if head.iter().all(|&b| b == 0) && len.is_ok_and(|n| n % 4096 == 0) {
        return Error::Corrupted {
            bucket: None,
            key: None,
            reason: format!(
                "{label} begins with zeros where redb's header would be: a store whose first page is \
                 damaged, or a file that is not a store"
            ),
        };
    }
    let page_size = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
    if page_size.is_power_of_two() && (512..=1 << 24).contains(&page_size) {
        return Error::Corrupted {
            bucket: None,
            key: None,
            reason: format!(
                "{label} does not begin with redb's magic number, but the rest of its header is a redb \
                 database's: a store whose first bytes are damaged, or whose creation was cut short (redb \
                 writes them last; such a store holds nothing)"
            ),
        };
    }
    e
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
    struct TxnCell {
        owner: WriteTransaction,
        #[not_covariant]
        dependent: KsTable,
    }
);

struct RedbWrite {
    cell: Closing<TxnCell>,
    /// A redb call in this transaction panicked (see [`guarded`]): it must not commit.
    broken: bool,
    poisoned: Arc<AtomicBool>,
    latest: Arc<Latest>,
    /// Counts this transaction among the store's writers until it ends (declared last:
    /// dropped after the transaction).
    _counted: Counted,
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

#[cfg(test)]
mod tests {
    #[test]
    fn edit_distance_counts_changed_bytes() {
        assert_eq!(super::edit_distance(b"keystone", b"keystone"), 0);
        assert_eq!(super::edit_distance(b"keystond", b"keystone"), 1);
        assert_eq!(super::edit_distance(b"keystne", b"keystone"), 1);
        assert_eq!(super::edit_distance(b"theirs", b"keystone"), 8);
        assert_eq!(super::edit_distance(b"kitten", b"sitting"), 3);
        assert_eq!(super::edit_distance(b"", b"abc"), 3);
    }
}
