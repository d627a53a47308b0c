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

pub(crate) use crate::stream::read_pieces;

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
