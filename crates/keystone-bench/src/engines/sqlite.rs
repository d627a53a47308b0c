//! SQLite (bundled, through rusqlite) with one blob table, WAL journal and
//! `synchronous=FULL`, so a committed write is durable. One connection per thread.
//!
//! Set up as a user who cares about speed would: an ordinary rowid table (a `WITHOUT ROWID`
//! table keeps at most ~1 KB of a row in its 4 KiB page, so every object spilled into overflow
//! pages: 4.5× the bytes stored on disk), a page cache and a memory map as large as the redb
//! engines' cache, and writers taking turns on a mutex of the adapter's (SQLite's own busy
//! handler sleeps a millisecond or more per retry: 8 writers did a sixth of what one did).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Result, anyhow};
use rusqlite::{Connection, OptionalExtension, params};

use super::{BenchEngine, CHUNK, STREAM_BATCH};

pub struct Sqlite {
    path: PathBuf,
    /// Page cache and memory map, bytes.
    cache: usize,
    /// Held by every write transaction.
    writer: Mutex<()>,
    /// Idle connections; a thread takes one (or opens a new one) for each call.
    pool: Mutex<Vec<Connection>>,
}

fn connect(path: &Path, cache: usize) -> Result<Connection> {
    let c = Connection::open(path)?;
    c.busy_timeout(Duration::from_mins(1))?;
    c.pragma_update(None, "cache_size", -i64::try_from(cache / 1024)?)?;
    c.pragma_update(None, "mmap_size", i64::try_from(cache)?)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    Ok(c)
}

fn chunk_key(key: &str, i: u32) -> String {
    format!("{key}\u{1}{i:08}")
}

impl Sqlite {
    /// `cache`: bytes of page cache and of memory map (the redb engines' cache size).
    pub fn open(dir: &Path, cache: usize) -> Result<Self> {
        let path = dir.join("objects.sqlite");
        let c = connect(&path, cache)?;
        c.execute_batch("CREATE TABLE IF NOT EXISTS objects (k TEXT PRIMARY KEY, v BLOB NOT NULL)")?;
        Ok(Sqlite { path, cache, writer: Mutex::new(()), pool: Mutex::new(vec![c]) })
    }

    /// Runs `f` as the only writer.
    fn write<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let _turn = self.writer.lock().map_err(|_| anyhow!("writer lock poisoned"))?;
        self.with(f)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let taken = self.pool.lock().map_err(|_| anyhow!("pool lock poisoned"))?.pop();
        let mut c = match taken {
            Some(c) => c,
            None => connect(&self.path, self.cache)?,
        };
        let r = f(&mut c);
        self.pool.lock().map_err(|_| anyhow!("pool lock poisoned"))?.push(c);
        r
    }

    fn insert_all(&self, items: &[(String, Vec<u8>)]) -> Result<()> {
        self.write(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut st = tx.prepare_cached("INSERT OR REPLACE INTO objects (k, v) VALUES (?1, ?2)")?;
                for (k, v) in items {
                    st.execute(params![k, v])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }
}

impl BenchEngine for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn prepare(&self, threads: usize) -> Result<()> {
        let have = self.pool.lock().map_err(|_| anyhow!("pool lock poisoned"))?.len();
        let fresh = (have..threads).map(|_| connect(&self.path, self.cache)).collect::<Result<Vec<_>>>()?;
        self.pool.lock().map_err(|_| anyhow!("pool lock poisoned"))?.extend(fresh);
        Ok(())
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.write(|c| {
            c.prepare_cached("INSERT OR REPLACE INTO objects (k, v) VALUES (?1, ?2)")?.execute(params![key, value])?;
            Ok(())
        })
    }

    fn put_batch(&self, items: &[(String, Vec<u8>)], _durable: bool) -> Result<()> {
        self.insert_all(items)
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.with(|c| {
            let v: Option<Vec<u8>> = c
                .prepare_cached("SELECT v FROM objects WHERE k = ?1")?
                .query_row(params![key], |r| r.get(0))
                .optional()?;
            v.ok_or_else(|| anyhow!("{key} missing"))
        })
    }

    fn delete_batch(&self, keys: &[String]) -> Result<()> {
        self.write(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut st = tx.prepare_cached("DELETE FROM objects WHERE k = ?1")?;
                for k in keys {
                    st.execute(params![k])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn list(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        self.with(|c| {
            let mut st = c.prepare_cached("SELECT k FROM objects WHERE k > ?1 ORDER BY k LIMIT ?2")?;
            let rows = st.query_map(params![after.unwrap_or(""), i64::try_from(limit)?], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn put_stream(&self, key: &str, src: &mut dyn Read) -> Result<u64> {
        // Rows of Keystone's chunk size, a commit every STREAM_BATCH bytes.
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        let mut index = 0u32;
        let total = super::read_pieces(src, CHUNK, |piece| {
            batch.push((chunk_key(key, index), piece.to_vec()));
            index += 1;
            batch_bytes += piece.len();
            if batch_bytes >= STREAM_BATCH {
                self.insert_all(&batch)?;
                batch.clear();
                batch_bytes = 0;
            }
            Ok(())
        })?;
        self.insert_all(&batch)?;
        Ok(total)
    }

    fn get_stream(&self, key: &str, sink: &mut dyn FnMut(&[u8])) -> Result<u64> {
        self.with(|c| {
            let mut st = c.prepare_cached("SELECT v FROM objects WHERE k >= ?1 AND k <= ?2 ORDER BY k")?;
            let mut rows = st.query(params![chunk_key(key, 0), chunk_key(key, u32::MAX)])?;
            let mut total = 0;
            while let Some(row) = rows.next()? {
                let v = row.get_ref(0)?.as_blob()?;
                sink(v);
                total += v.len() as u64;
            }
            Ok(total)
        })
    }

    fn disk_bytes(&self) -> Result<u64> {
        self.with(|c| {
            c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
            Ok(())
        })?;
        let wal = std::fs::metadata(self.path.with_extension("sqlite-wal")).map_or(0, |m| m.len());
        Ok(std::fs::metadata(&self.path)?.len() + wal)
    }

    fn compact(&self) -> Result<()> {
        self.write(|c| {
            c.execute_batch("VACUUM")?;
            Ok(())
        })
    }
}
