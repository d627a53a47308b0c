//! The engines under test, each one adapter behind [`BenchEngine`] (the way redb's own bench
//! crate puts every database behind one small trait). Every adapter does the same logical work
//! with the same durability: a write that returns `Ok` from a durable call is on stable storage.

mod files;
mod keystone;
mod redb;
mod sqlite;

use std::io::Read;
use std::path::Path;

use anyhow::{Result, bail};

/// Payload bytes per chunk when a baseline streams a large object in pieces (raw redb): the
/// same as Keystone's, so both fill redb's page allocation the same way.
pub const CHUNK: usize = ::keystone::DEFAULT_CHUNK_SIZE;
/// Bytes a baseline writes per intermediate (non-durable) commit of a streamed object.
pub const STREAM_BATCH: usize = ::keystone::DEFAULT_BATCH_BYTES;

/// One store under test. Keys are ASCII; `/` separates a prefix from a name.
pub trait BenchEngine: Send + Sync {
    /// Short name used in the table.
    fn name(&self) -> &'static str;
    /// Stores one object and returns only once it is durable.
    fn put(&self, key: &str, value: &[u8]) -> Result<()>;
    /// Stores several objects in one transaction (durable at return when `durable`).
    fn put_batch(&self, items: &[(String, Vec<u8>)], durable: bool) -> Result<()>;
    /// Reads one whole object into memory.
    fn get(&self, key: &str) -> Result<Vec<u8>>;
    /// Deletes several objects in one durable transaction.
    fn delete_batch(&self, keys: &[String]) -> Result<()>;
    /// Up to `limit` keys after `after` (or from the start), in byte order.
    fn list(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>>;
    /// Streams an object of any size from `src`; durable at return. Returns its length.
    fn put_stream(&self, key: &str, src: &mut dyn Read) -> Result<u64>;
    /// Streams an object to `sink` piece by piece. Returns its length.
    fn get_stream(&self, key: &str, sink: &mut dyn FnMut(&[u8])) -> Result<u64>;
    /// Bytes the store occupies on disk.
    fn disk_bytes(&self) -> Result<u64>;
    /// Gives free space back to the file system where the engine can.
    fn compact(&self) -> Result<()>;
    /// Gets ready, untimed, for `threads` threads calling at once (SQLite opens a connection
    /// for each, which the first timed run would otherwise pay for).
    fn prepare(&self, _threads: usize) -> Result<()> {
        Ok(())
    }
    /// Commits made by group commit so far and the writes they stored (Keystone's
    /// `Datastore::group_commit_stats`); `None` for engines without group commit.
    fn group_commits(&self) -> Option<(u64, u64)> {
        None
    }
}

/// Every engine, in the order they are run.
pub const ALL: [&str; 4] = ["keystone", "redb", "files", "sqlite"];

/// Variants that run only when named: Keystone with MD5 ETags (a store served over S3), Keystone
/// with streamed gets through `Read` instead of `next_chunk`, Keystone without its redo journal
/// (`Builder::journal(false)`: every durable commit syncs the store file), and raw redb
/// beginning a read transaction for every get.
pub const VARIANTS: [&str; 4] = ["keystone-md5", "keystone-read", "keystone-nojournal", "redb-txn"];

/// Opens engine `name` in the (empty or existing) directory `dir`. `cache` is the page cache of
/// the redb-based engines and SQLite, the same for each.
pub fn open(name: &str, dir: &Path, cache: usize) -> Result<Box<dyn BenchEngine>> {
    std::fs::create_dir_all(dir)?;
    Ok(match name {
        "keystone" => Box::new(keystone::Keystone::open(dir, cache, "keystone")?),
        "keystone-md5" => Box::new(keystone::Keystone::open(dir, cache, "keystone-md5")?),
        "keystone-read" => Box::new(keystone::Keystone::open(dir, cache, "keystone-read")?),
        "keystone-nojournal" => Box::new(keystone::Keystone::open(dir, cache, "keystone-nojournal")?),
        "redb" => Box::new(redb::RawRedb::open(dir, cache, true)?),
        "redb-txn" => Box::new(redb::RawRedb::open(dir, cache, false)?),
        "files" => Box::new(files::Files::open(dir)?),
        "sqlite" => Box::new(sqlite::Sqlite::open(dir, cache)?),
        other => bail!("unknown engine {other:?} (expected one of {ALL:?})"),
    })
}

/// Reads `src` to its end in pieces of up to `piece` bytes, handing each piece to `f`.
pub(crate) fn read_pieces(src: &mut dyn Read, piece: usize, mut f: impl FnMut(&[u8]) -> Result<()>) -> Result<u64> {
    let mut storage = vec![0u8; piece + PAGE];
    let buf = page_aligned(&mut storage, piece);
    let mut total = 0u64;
    loop {
        let mut filled = 0;
        while filled < piece {
            let n = src.read(&mut buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            return Ok(total);
        }
        f(&buf[..filled])?;
        total += filled as u64;
        if filled < piece {
            return Ok(total);
        }
    }
}

/// A page.
const PAGE: usize = 4096;

/// The `len` bytes of `storage` (at least `len + PAGE` long) that start on a page: a read from
/// the page cache into them copies between addresses a whole number of pages apart. A buffer
/// from `vec!` starts 16 bytes past a page when the allocator maps it (1 MiB does), and a copy
/// whose destination sits 1–31 bytes past its source modulo 4 KiB (here: 16) ran at ~1.5
/// GB/s instead of ~8 on the bench machine's AMD EPYC — 4K aliasing: each load waits on a
/// store whose address matches it in the low 12 bits. W4's plain-file reads measured that
/// penalty, not the file (BENCHMARKS.md, W4).
pub(crate) fn page_aligned(storage: &mut [u8], len: usize) -> &mut [u8] {
    let whole = storage.len();
    let at = storage.as_ptr().align_offset(PAGE).min(whole);
    &mut storage[at..(at + len).min(whole)]
}

/// Size of every file under `dir`, recursively, in allocated blocks.
pub(crate) fn du(dir: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            total += du(&entry.path())?;
        } else {
            total += meta.blocks() * 512;
        }
    }
    Ok(total)
}
