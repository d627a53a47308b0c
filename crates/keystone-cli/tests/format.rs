//! A store raised to a newer format by a later release: every command refuses it, naming
//! the release to use, and leaves it as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Env, bytes};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

/// Keystone's one table (crates/keystone/src/storage/redb).
const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("keystone");
const FORMAT_KEY: &[u8] = b"__meta__\0format";

/// The format record as docs/design.md fixes it: format u32 LE, writer, CRC32C u32 LE.
fn record(format: u32, writer: &str) -> Vec<u8> {
    let mut v = format.to_le_bytes().to_vec();
    v.extend_from_slice(writer.as_bytes());
    let crc = crc32c::crc32c(&v);
    v.extend_from_slice(&crc.to_le_bytes());
    v
}

fn read_record(env: &Env) -> Option<Vec<u8>> {
    let db = redb::Database::open(&env.store).unwrap();
    let r = db.begin_read().unwrap();
    let t = r.open_table(TABLE).unwrap();
    t.get(FORMAT_KEY).unwrap().map(|v| v.value().to_vec())
}

/// Every record of the store (redb rewrites its own header at every writable open).
fn records(env: &Env) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = redb::Database::open(&env.store).unwrap();
    let r = db.begin_read().unwrap();
    let t = r.open_table(TABLE).unwrap();
    t.iter().unwrap().map(|e| e.unwrap()).map(|(k, v)| (k.value().to_vec(), v.value().to_vec())).collect()
}

#[test]
fn every_command_refuses_a_store_of_a_newer_format() {
    let env = Env::with_bucket();
    env.write("f", &bytes(100_000, 4));
    env.ok(&["put", "f", "bkt/a"]);
    // Written by this build, with its own format record.
    let own = read_record(&env).expect("a store has a format record");
    assert_eq!(&own[4..own.len() - 4], format!("keystone {}", env!("CARGO_PKG_VERSION")).as_bytes());
    let newer = record(u32::from_le_bytes(own[..4].try_into().unwrap()) + 1, "keystone 9.9.9");
    let dir = tempfile::tempdir().unwrap();
    let crashed = Env { store: dir.path().join("store.redb"), dir };
    {
        let db = redb::Database::open(&env.store).unwrap();
        let w = db.begin_write().unwrap();
        w.open_table(TABLE).unwrap().insert(FORMAT_KEY, newer.as_slice()).unwrap();
        w.commit().unwrap();
        // A copy taken while the store is open: not closed cleanly.
        std::fs::copy(&env.store, &crashed.store).unwrap();
    }
    // Recovered by redb (a reading command opens it for writing once), then refused as a
    // clean one is.
    let e = crashed.fails(&["ls", "bkt"], 1);
    assert!(e.contains("is in format") && e.contains("use keystone 9.9.9 or later"), "{e}");
    assert!(!e.contains("not closed cleanly"), "{e}");
    let before = records(&env);
    for args in [&["ls", "bkt"][..], &["get", "bkt/a", "out"], &["put", "f", "bkt/b"], &["verify"], &["rm", "bkt/a"]] {
        let e = env.fails(args, 1);
        assert!(e.contains("is in format") && e.contains("use keystone 9.9.9 or later"), "{args:?}: {e}");
    }
    let e = env.fails(&["salvage", "copy.keystone"], 1);
    assert!(e.contains("keystone 9.9.9 or later"), "{e}");
    assert!(!env.dir.path().join("copy.keystone").exists());
    // Not `assert_eq!`: the records are long.
    assert!(records(&env) == before, "a refused command changed the store's records");
    assert!(!env.dir.path().join("out").exists());
}
