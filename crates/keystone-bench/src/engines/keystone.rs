//! Keystone through its public API, with its default settings (durable acknowledgements, XXH3
//! ETags) — or, as engine `keystone-md5`, with the MD5 ETags a store served over S3 uses, or,
//! as `keystone-read`, streaming gets through `Read` (a copy into a buffer) instead of
//! `next_chunk`.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use keystone::{Bucket, Datastore, EtagAlgorithm, ListOptions, PutOptions};

use super::BenchEngine;

pub struct Keystone {
    db: Datastore,
    bucket: Bucket,
    name: &'static str,
}

/// Bytes per `read` call of `keystone-read` (as the files adapter reads).
const READ_PIECE: usize = 1 << 20;

const BUCKET: &str = "bench";

impl Keystone {
    /// `name` is `keystone`, `keystone-md5`, `keystone-read` or `keystone-nojournal`.
    pub fn open(dir: &Path, cache: usize, name: &'static str) -> Result<Self> {
        let etag = if name == "keystone-md5" { EtagAlgorithm::Md5 } else { EtagAlgorithm::Xxh3 };
        let path = dir.join("store.keystone");
        let db = Datastore::builder()
            .cache_size(cache)
            .etag(etag)
            .journal(name != "keystone-nojournal")
            .open(&path)
            .with_context(|| format!("{}", path.display()))?;
        let bucket = match db.bucket(BUCKET) {
            Ok(b) => b,
            Err(keystone::Error::NoSuchBucket { .. }) => db.create_bucket(BUCKET)?,
            Err(e) => return Err(e.into()),
        };
        Ok(Keystone { db, bucket, name })
    }
}

impl BenchEngine for Keystone {
    fn name(&self) -> &'static str {
        self.name
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.bucket.put_bytes(key, value)?;
        Ok(())
    }

    fn group_commits(&self) -> Option<(u64, u64)> {
        let s = self.db.group_commit_stats();
        Some((s.commits, s.writes))
    }

    fn put_batch(&self, items: &[(String, Vec<u8>)], _durable: bool) -> Result<()> {
        self.db.transaction(|tx| {
            let b = tx.bucket(BUCKET)?;
            for (k, v) in items {
                b.put_bytes(k, v)?;
            }
            Ok::<_, keystone::Error>(())
        })?;
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        Ok(self.bucket.get_bytes(key)?)
    }

    fn delete_batch(&self, keys: &[String]) -> Result<()> {
        self.db.transaction(|tx| {
            let b = tx.bucket(BUCKET)?;
            for k in keys {
                b.delete(k)?;
            }
            Ok::<_, keystone::Error>(())
        })?;
        Ok(())
    }

    fn list(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let opts = ListOptions { start_after: after.map(str::to_owned), max_keys: limit, ..ListOptions::default() };
        Ok(self.bucket.list(&opts)?.objects.into_iter().map(|o| o.key).collect())
    }

    fn put_stream(&self, key: &str, src: &mut dyn Read) -> Result<u64> {
        Ok(self.bucket.put_reader(key, src, PutOptions::default())?.size)
    }

    /// Chunk by chunk as the store holds them (`ObjectReader::next_chunk`, no copy), as raw
    /// redb's adapter hands on the values it borrows; the files adapter reads into a buffer.
    fn get_stream(&self, key: &str, sink: &mut dyn FnMut(&[u8])) -> Result<u64> {
        let mut reader = self.bucket.open(key)?;
        if self.name == "keystone-read" {
            return super::read_pieces(&mut reader, READ_PIECE, |piece| {
                sink(piece);
                Ok(())
            });
        }
        let mut total = 0;
        while let Some(chunk) = reader.next_chunk()? {
            sink(&chunk);
            total += chunk.len() as u64;
        }
        Ok(total)
    }

    fn disk_bytes(&self) -> Result<u64> {
        let path = self.db.path().context("store has no file")?;
        // The redo journal beside it, while open, too (as the SQLite adapter counts its WAL).
        let journal = std::fs::metadata(Datastore::journal_path(path)).map_or(0, |m| m.len());
        Ok(std::fs::metadata(path)?.len() + journal)
    }

    fn compact(&self) -> Result<()> {
        self.db.compact()?;
        Ok(())
    }
}
