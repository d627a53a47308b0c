//! Raw redb: the same bytes in one plain `&[u8] -> &[u8]` table, each write its own transaction,
//! durable commits (`Durability::Immediate`) for acknowledged writes.
//!
//! Gets read the latest commit through one table opened on a read transaction and shared until
//! the next commit — what Keystone does with its snapshots, and what a raw redb user who reads a
//! lot would write (beginning a read transaction and opening the table was a fifth of a small
//! get). As engine `redb-txn`, each get begins its own read transaction instead.

use std::io::Read;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use anyhow::{Result, anyhow};
use redb::{Database, Durability, ReadableDatabase, TableDefinition};

use super::{BenchEngine, CHUNK, STREAM_BATCH};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("objects");

type Snapshot = Arc<redb::ReadOnlyTable<&'static [u8], &'static [u8]>>;

pub struct RawRedb {
    // `compact` needs `&mut Database`.
    db: RwLock<Database>,
    path: PathBuf,
    /// The table as of the latest commit, shared by gets (`None` for `redb-txn`, or until the
    /// first get after a commit opens it again).
    shared: Option<RwLock<Option<Snapshot>>>,
    /// Commits so far: a get installs the table it opened only if no commit came in between.
    commits: AtomicU64,
}

fn lock() -> anyhow::Error {
    anyhow!("redb lock poisoned")
}

/// Key of chunk `i` of a streamed object: after the object's own key, before any other.
fn chunk_key(key: &str, i: u32) -> Vec<u8> {
    let mut k = key.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&i.to_be_bytes());
    k
}

impl RawRedb {
    /// `shared`: gets share a snapshot until the next commit (`redb`), or each begins its own
    /// read transaction (`redb-txn`).
    pub fn open(dir: &Path, cache: usize, shared: bool) -> Result<Self> {
        let path = dir.join("raw.redb");
        let db = Database::builder().set_cache_size(cache).create(&path)?;
        let w = db.begin_write()?;
        w.open_table(TABLE)?;
        w.commit()?;
        Ok(RawRedb { db: RwLock::new(db), path, shared: shared.then(|| RwLock::new(None)), commits: AtomicU64::new(0) })
    }

    /// The shared table, opened on the latest commit if no get has opened it since.
    fn snapshot(&self, shared: &RwLock<Option<Snapshot>>) -> Result<Snapshot> {
        if let Some(t) = shared.read().map_err(|_| lock())?.as_ref() {
            return Ok(t.clone());
        }
        let seen = self.commits.load(Ordering::Acquire);
        let t: Snapshot = Arc::new(self.db.read().map_err(|_| lock())?.begin_read()?.open_table(TABLE)?);
        let mut slot = shared.write().map_err(|_| lock())?;
        if self.commits.load(Ordering::Acquire) == seen {
            *slot = Some(t.clone());
        }
        Ok(t)
    }

    fn write(&self, durable: bool, f: impl FnOnce(&mut redb::Table<&[u8], &[u8]>) -> Result<()>) -> Result<()> {
        let db = self.db.read().map_err(|_| lock())?;
        let mut w = db.begin_write()?;
        w.set_durability(if durable { Durability::Immediate } else { Durability::None })?;
        {
            let mut t = w.open_table(TABLE)?;
            f(&mut t)?;
        }
        w.commit()?;
        if let Some(shared) = &self.shared {
            let mut slot = shared.write().map_err(|_| lock())?;
            self.commits.fetch_add(1, Ordering::AcqRel);
            *slot = None;
        }
        Ok(())
    }
}

impl BenchEngine for RawRedb {
    fn name(&self) -> &'static str {
        if self.shared.is_some() { "redb" } else { "redb-txn" }
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.write(true, |t| {
            t.insert(key.as_bytes(), value)?;
            Ok(())
        })
    }

    fn put_batch(&self, items: &[(String, Vec<u8>)], durable: bool) -> Result<()> {
        self.write(durable, |t| {
            for (k, v) in items {
                t.insert(k.as_bytes(), v.as_slice())?;
            }
            Ok(())
        })
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        if let Some(shared) = &self.shared {
            let t = self.snapshot(shared)?;
            let v = t.get(key.as_bytes())?.ok_or_else(|| anyhow!("{key} missing"))?;
            return Ok(v.value().to_vec());
        }
        let db = self.db.read().map_err(|_| lock())?;
        let r = db.begin_read()?;
        let t = r.open_table(TABLE)?;
        let v = t.get(key.as_bytes())?.ok_or_else(|| anyhow!("{key} missing"))?;
        Ok(v.value().to_vec())
    }

    fn delete_batch(&self, keys: &[String]) -> Result<()> {
        self.write(true, |t| {
            for k in keys {
                t.remove(k.as_bytes())?;
            }
            Ok(())
        })
    }

    fn list(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let db = self.db.read().map_err(|_| lock())?;
        let r = db.begin_read()?;
        let t = r.open_table(TABLE)?;
        let start = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.as_bytes()));
        let mut out = Vec::with_capacity(limit);
        for item in t.range::<&[u8]>((start, Bound::Unbounded))?.take(limit) {
            let (k, _) = item?;
            out.push(String::from_utf8_lossy(k.value()).into_owned());
        }
        Ok(out)
    }

    fn put_stream(&self, key: &str, src: &mut dyn Read) -> Result<u64> {
        // Chunks of Keystone's chunk size, committed non-durably every STREAM_BATCH bytes,
        // and a durable last commit: the same write pattern as Keystone's streaming upload.
        let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut batch_bytes = 0;
        let mut index = 0u32;
        let flush = |batch: &mut Vec<(Vec<u8>, Vec<u8>)>, durable: bool| {
            self.write(durable, |t| {
                for (k, v) in batch.iter() {
                    t.insert(k.as_slice(), v.as_slice())?;
                }
                Ok(())
            })?;
            batch.clear();
            Ok::<_, anyhow::Error>(())
        };
        let total = super::read_pieces(src, CHUNK, |piece| {
            batch.push((chunk_key(key, index), piece.to_vec()));
            index += 1;
            batch_bytes += piece.len();
            if batch_bytes >= STREAM_BATCH {
                flush(&mut batch, false)?;
                batch_bytes = 0;
            }
            Ok(())
        })?;
        flush(&mut batch, true)?;
        Ok(total)
    }

    fn get_stream(&self, key: &str, sink: &mut dyn FnMut(&[u8])) -> Result<u64> {
        let db = self.db.read().map_err(|_| lock())?;
        let r = db.begin_read()?;
        let t = r.open_table(TABLE)?;
        let (start, end) = (chunk_key(key, 0), chunk_key(key, u32::MAX));
        let mut total = 0;
        for item in t.range::<&[u8]>(start.as_slice()..=end.as_slice())? {
            let (_, v) = item?;
            sink(v.value());
            total += v.value().len() as u64;
        }
        Ok(total)
    }

    fn disk_bytes(&self) -> Result<u64> {
        Ok(std::fs::metadata(&self.path)?.len())
    }

    fn compact(&self) -> Result<()> {
        // redb compacts only with no read transaction alive.
        if let Some(shared) = &self.shared {
            self.commits.fetch_add(1, Ordering::AcqRel);
            *shared.write().map_err(|_| lock())? = None;
        }
        let mut db = self.db.write().map_err(|_| lock())?;
        while db.compact()? {}
        Ok(())
    }
}
