//! What a store file's lifetime looks like from outside: readers and snapshots keep working
//! after the last `Datastore` handle is dropped and keep the file open (a second open is
//! refused until they end); `open` refuses files that are not stores.
#![allow(clippy::unwrap_used)]

use std::io::Read;

use keystone::{Datastore, Error};

mod common;
use common::{data, file_store};

#[test]
fn a_reader_and_a_snapshot_outlive_the_last_handle_and_keep_the_store_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("life.keystone");
    let (big, small) = (data(50_000, 3), b"small".to_vec());
    let db = file_store(&dir, "life.keystone");
    let b = db.create_bucket("bkt").unwrap();
    b.put_bytes("big", &big).unwrap();
    b.put_bytes("small", &small).unwrap();
    let mut reader = b.open("big").unwrap();
    let snap = db.snapshot().unwrap();
    drop(b);
    drop(db);
    let mut got = Vec::new();
    reader.read_to_end(&mut got).unwrap();
    assert_eq!(got, big, "the reader reads its version after the store's handles are gone");
    assert_eq!(snap.bucket("bkt").unwrap().get_bytes("small").unwrap(), small);
    assert!(matches!(Datastore::open(&path), Err(Error::AlreadyOpen { .. })), "still open through the reader");
    drop(reader);
    drop(snap);
    let db = Datastore::open(&path).unwrap();
    assert_eq!(db.bucket("bkt").unwrap().get_bytes("big").unwrap(), big);
}

/// `open` refuses, untouched, a file that is not a store: another program's redb database
/// (it would gain a table of ours) and a file that is not a redb database at all.
#[test]
fn open_refuses_files_that_are_not_stores_and_leaves_them_alone() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&foreign).unwrap();
        let w = db.begin_write().unwrap();
        w.open_table(redb::TableDefinition::<&str, u64>::new("theirs")).unwrap().insert("a", &1).unwrap();
        w.commit().unwrap();
    }
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, b"not a database at all, but long enough to be read as a header?").unwrap();
    let text_before = std::fs::read(&text).unwrap();
    for path in [&foreign, &text] {
        match Datastore::open(path) {
            Err(e @ Error::NotAStore { .. }) => assert!(e.to_string().contains("not a Keystone store"), "{e}"),
            other => panic!("{}: {other:?}", path.display()),
        }
    }
    assert!(std::fs::read(&text).unwrap() == text_before, "the text file was changed");
    // redb rewrites its header when a database is opened, but no table of ours was added.
    let db = redb::Database::open(&foreign).unwrap();
    let r = redb::ReadableDatabase::begin_read(&db).unwrap();
    let tables: Vec<String> = r.list_tables().unwrap().map(|t| redb::TableHandle::name(&t).to_owned()).collect();
    assert_eq!(tables, ["theirs"]);
    // An empty file becomes a store, as SQLite treats one.
    let empty = dir.path().join("empty.keystone");
    std::fs::write(&empty, b"").unwrap();
    Datastore::open(&empty).unwrap().create_bucket("bkt").unwrap();
}
