//! Helpers shared by the corruption tests: the store's table read and damaged through redb
//! directly (so redb's own checksums stay valid and only Keystone's can notice).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use keystone::Datastore;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

pub const TABLE: TableDefinition<'static, &'static [u8], &'static [u8]> = TableDefinition::new("keystone");

/// Every key of `table` that starts with `prefix`, in order.
pub fn keys_with(table: &impl ReadableTable<&'static [u8], &'static [u8]>, prefix: &[u8]) -> Vec<Vec<u8>> {
    table.iter().unwrap().map(|e| e.unwrap().0.value().to_vec()).filter(|k| k.starts_with(prefix)).collect()
}

/// Rewrites, through redb, every value whose key starts with `prefix`, flipping byte `at`.
pub fn flip(path: &Path, prefix: &[u8], at: usize) -> usize {
    flip_bits(path, prefix, at, 0x5A)
}

/// `flip` with the bits to flip.
pub fn flip_bits(path: &Path, prefix: &[u8], at: usize, mask: u8) -> usize {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    let mut n = 0;
    {
        let mut table = txn.open_table(TABLE).unwrap();
        for k in keys_with(&table, prefix) {
            let mut v = table.get(&k[..]).unwrap().unwrap().value().to_vec();
            let i = at.min(v.len() - 1);
            v[i] ^= mask;
            table.insert(&k[..], &v[..]).unwrap();
            n += 1;
        }
    }
    txn.commit().unwrap();
    n
}

pub fn store(path: &Path) -> Datastore {
    Datastore::builder().chunk_size(4096).inline_threshold(256).open(path).unwrap()
}

/// Every chunk key of bucket `docs`, read through redb (the store must be closed).
pub fn chunks_of_docs(path: &Path) -> usize {
    chunks_of(path, "docs")
}

pub fn chunks_of(path: &Path, bucket: &str) -> usize {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(TABLE).unwrap();
    keys_with(&table, format!("__data__\0{bucket}\0").as_bytes()).len()
}
