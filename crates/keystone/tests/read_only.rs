//! A store opened read-only (`Builder::read_only`): every read works, every write is refused
//! with `ReadOnly` before anything is written, the file is left byte for byte as it was, any
//! number of read-only handles share the file while none writes, and a store that was not
//! closed cleanly is refused with `NeedsRecovery` until an open for writing recovers it.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::path::Path;

use keystone::{CopyOptions, Datastore, Error, ListOptions, ObjectMeta, PutOptions};

mod common;
use common::data;

fn read_only(path: &Path) -> keystone::Result<Datastore> {
    Datastore::builder().read_only(true).open(path)
}

/// A store with an inline object, a chunked one, a typed one and a multipart upload in
/// progress; returns the upload's id.
fn fill(path: &Path, big: &[u8]) -> String {
    let db = Datastore::builder().chunk_size(1000).inline_threshold(100).open(path).unwrap();
    let b = db.create_bucket("bkt").unwrap();
    b.put_bytes("dir/small", b"small").unwrap();
    b.put_bytes("dir/big", big).unwrap();
    b.put("typed", &vec![1u32, 2, 3]).unwrap();
    b.create_upload("pending", ObjectMeta::default()).unwrap()
}

/// A source that notes whether it was read.
struct Watched<'a>(&'a std::cell::Cell<bool>);

impl Read for Watched<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.set(true);
        buf.fill(1);
        Ok(buf.len())
    }
}

#[test]
fn reads_work_and_every_write_is_refused_leaving_the_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.keystone");
    let big = data(25_000, 7);
    let upload = fill(&path, &big);
    let before = std::fs::read(&path).unwrap();

    let db = read_only(&path).unwrap();
    assert!(db.is_read_only());
    let names: Vec<String> = db.list_buckets().unwrap().into_iter().map(|b| b.name).collect();
    assert_eq!(names, ["bkt"]);
    let b = db.bucket("bkt").unwrap();
    assert_eq!(b.get_bytes("dir/small").unwrap(), b"small");
    assert_eq!(b.get_bytes("dir/big").unwrap(), big);
    assert_eq!(b.get_range("dir/big", 24_000..).unwrap(), &big[24_000..]);
    assert_eq!(b.get::<Vec<u32>>("typed").unwrap(), [1, 2, 3]);
    assert_eq!(b.head("dir/big").unwrap().size, big.len() as u64);
    let mut streamed = Vec::new();
    b.open("dir/big").unwrap().read_to_end(&mut streamed).unwrap();
    assert_eq!(streamed, big);
    let listed: Vec<String> = b
        .list(&ListOptions { prefix: "dir/".into(), ..ListOptions::default() })
        .unwrap()
        .objects
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(listed, ["dir/big", "dir/small"]);
    assert_eq!(b.list_uploads("").unwrap().len(), 1);
    assert_eq!(db.snapshot().unwrap().bucket("bkt").unwrap().get_bytes("dir/small").unwrap(), b"small");
    let report = db.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");

    // Each refused with `ReadOnly`; a streaming put reads nothing from its source.
    let source_read = std::cell::Cell::new(false);
    let source = Watched(&source_read).take(10_000);
    let refusals: Vec<(&str, keystone::Result<()>)> = vec![
        ("create_bucket", db.create_bucket("new").map(drop)),
        ("delete_bucket", db.delete_bucket("bkt")),
        ("delete_empty_bucket", db.delete_empty_bucket("bkt")),
        ("put_bytes", b.put_bytes("dir/small", b"changed").map(drop)),
        ("put", b.put("typed", &0u8).map(drop)),
        ("put_reader", b.put_reader("streamed", source, PutOptions::default()).map(drop)),
        ("delete", b.delete("dir/small")),
        ("copy", b.copy("dir/big", "copy").map(drop)),
        ("copy_object", db.copy_object("bkt", "dir/big", "bkt", "copy", &CopyOptions::default()).map(drop)),
        ("create_upload", b.create_upload("k", ObjectMeta::default()).map(drop)),
        ("upload_part", b.upload_part(&upload, 1, &b"part"[..]).map(drop)),
        ("abort_upload", b.abort_upload(&upload)),
        ("transaction", db.transaction(|tx| tx.bucket("bkt")?.put_bytes("t", b"t").map(drop))),
        ("gc", db.gc().map(drop)),
        ("compact", db.compact().map(drop)),
        ("abort_uploads_older_than", db.abort_uploads_older_than(std::time::Duration::ZERO).map(drop)),
        ("remove_corrupt", db.remove_corrupt(None).map(drop)),
        ("check_engine_integrity", db.check_engine_integrity().map(drop)),
    ];
    for (what, result) in refusals {
        match result {
            Err(Error::ReadOnly { path: p, .. }) => assert_eq!(p, path.display().to_string(), "{what}"),
            other => panic!("{what} on a read-only store: {other:?}"),
        }
    }
    assert!(!source_read.get(), "a refused streaming put read its source");
    let msg = db.create_bucket("new").unwrap_err().to_string();
    assert!(msg.contains("read-only") && msg.contains("ro.keystone"), "{msg}");
    drop((b, db));
    assert!(std::fs::read(&path).unwrap() == before, "a read-only session changed the file");

    // Opened for writing again, it is the store it was: nothing was added or lost.
    let db = Datastore::open(&path).unwrap();
    let b = db.bucket("bkt").unwrap();
    assert_eq!(b.get_bytes("dir/small").unwrap(), b"small");
    assert!(!b.exists("copy").unwrap());
    assert_eq!(db.list_buckets().unwrap().len(), 1);
    b.put_bytes("dir/small", b"written").unwrap();
}

#[test]
fn read_only_handles_share_the_file_and_exclude_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.keystone");
    fill(&path, &data(3_000, 1));
    let first = read_only(&path).unwrap();
    let second = read_only(&path).unwrap();
    assert_eq!(first.bucket("bkt").unwrap().get_bytes("dir/small").unwrap(), b"small");
    assert_eq!(second.bucket("bkt").unwrap().get_bytes("dir/small").unwrap(), b"small");
    let refused = Datastore::open(&path).unwrap_err();
    assert!(matches!(refused, Error::AlreadyOpen { .. }), "{refused:?}");
    drop((first, second));

    let writer = Datastore::open(&path).unwrap();
    assert!(matches!(read_only(&path), Err(Error::AlreadyOpen { .. })), "a writer holds the file");
    drop(writer);
    assert!(read_only(&path).is_ok());
}

#[test]
fn a_read_only_open_creates_nothing_and_refuses_what_is_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.keystone");
    let e = read_only(&missing).unwrap_err();
    assert!(e.to_string().contains("missing.keystone"), "{e}");
    assert!(!missing.exists(), "a read-only open created the file");

    // An empty file becomes a store when opened for writing, never when opened read-only.
    let empty = dir.path().join("empty.keystone");
    std::fs::write(&empty, b"").unwrap();
    let e = read_only(&empty).unwrap_err();
    assert!(matches!(e, Error::NotAStore { .. }) && e.to_string().contains("an empty file"), "{e}");
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, b"not a store at all, just some text").unwrap();
    let e = read_only(&text).unwrap_err();
    assert!(matches!(e, Error::NotAStore { .. }) && e.to_string().contains("not a redb database"), "{e}");

    // Another program's redb database, and one with no table at all.
    let foreign = dir.path().join("foreign.redb");
    {
        let db = redb::Database::create(&foreign).unwrap();
        let t = db.begin_write().unwrap();
        t.open_table(redb::TableDefinition::<&str, u64>::new("theirs")).unwrap().insert("k", 1).unwrap();
        t.commit().unwrap();
    }
    let bare = dir.path().join("bare.redb");
    drop(redb::Database::create(&bare).unwrap());
    for file in [&foreign, &bare] {
        let before = std::fs::read(file).unwrap();
        let e = read_only(file).unwrap_err();
        assert!(e.to_string().contains("not a Keystone store"), "{e}");
        // A store whose list of tables is damaged may read as one with no tables: not called
        // "not a store".
        if file == &bare {
            assert!(matches!(e, Error::Corrupted { .. }), "{e:?}");
        } else {
            assert!(matches!(e, Error::NotAStore { .. }) && e.to_string().contains("its tables: theirs"), "{e:?}");
        }
        assert!(std::fs::read(file).unwrap() == before);
    }
}

/// Damage that makes a real store look like another kind of file is reported as damage, not
/// as "not a store", which would invite deleting it: its first bytes (redb's magic number, which
/// redb alone reads as "not a redb database"), its header page zeroed (a common way disks fail)
/// and its table's name with a byte changed (the last two found by review).
#[test]
fn a_store_damaged_to_look_foreign_is_corrupted_not_foreign() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.keystone");
    fill(&path, &data(3_000, 2));
    let healthy = std::fs::read(&path).unwrap();
    let rename_table = |file: &mut Vec<u8>| {
        let at: Vec<usize> = (0..file.len() - 8).filter(|&at| &file[at..at + 8] == b"keystone").collect();
        assert!(!at.is_empty());
        for at in at {
            file[at + 7] = b'd';
        }
    };
    type Damage<'a> = &'a dyn Fn(&mut Vec<u8>);
    let damage: [(&str, Damage<'_>); 3] = [
        ("first bytes are damaged", &|f| f[..9].copy_from_slice(b"overwrite")),
        ("first page is damaged", &|f| f[..4096].fill(0)),
        ("list of tables is damaged", &rename_table),
    ];
    for (said, damage) in damage {
        let mut file = healthy.clone();
        damage(&mut file);
        std::fs::write(&path, &file).unwrap();
        for e in [read_only(&path).unwrap_err(), Datastore::open(&path).unwrap_err()] {
            assert!(matches!(e, Error::Corrupted { .. }) && e.to_string().contains(said), "{said}: {e:?}");
        }
    }
}

/// A copy of a store taken while it is open for writing is the file a crash leaves behind.
#[test]
fn a_store_not_closed_cleanly_needs_one_open_for_writing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.keystone");
    let crashed = dir.path().join("crashed.keystone");
    let big = data(5_000, 9);
    let db = Datastore::open(&path).unwrap();
    let b = db.create_bucket("bkt").unwrap();
    b.put_bytes("big", &big).unwrap();
    std::fs::copy(&path, &crashed).unwrap();
    drop((b, db));

    let e = read_only(&crashed).unwrap_err();
    assert!(matches!(e, Error::NeedsRecovery { .. }), "{e:?}");
    assert!(e.to_string().contains("opened for writing once"), "{e}");
    drop(Datastore::open(&crashed).unwrap());
    let db = read_only(&crashed).unwrap();
    assert_eq!(db.bucket("bkt").unwrap().get_bytes("big").unwrap(), big, "acknowledged before the crash");
}

/// A store closed cleanly and then cut short has lost data: a read-only open says so
/// (`Corrupted`, both lengths), as an open for writing does, instead of calling it not closed
/// cleanly and sending the user to an open for writing that cannot recover it. Cut inside
/// redb's header, it is `Corrupted` too, not a bare I/O error. A file longer than its header
/// records is repaired by one open for writing, as `NeedsRecovery` says.
#[test]
fn a_store_cut_short_is_corrupted_not_unclean() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("whole.keystone");
    let big = data(300_000, 3);
    let db = Datastore::open(&path).unwrap();
    db.create_bucket("bkt").unwrap().put_bytes("big", &big).unwrap();
    drop(db);
    let whole = std::fs::read(&path).unwrap();
    for cut in [9, 100, 4096, whole.len() / 2, whole.len() - 4096] {
        let short = dir.path().join(format!("cut-{cut}.keystone"));
        std::fs::write(&short, &whole[..cut]).unwrap();
        let e = read_only(&short).unwrap_err();
        assert!(matches!(e, Error::Corrupted { .. }), "cut at {cut}, read-only: {e:?}");
        assert!(e.to_string().contains("cut short"), "cut at {cut}: {e}");
        if cut > 100 {
            assert!(e.to_string().contains(&format!("{cut} bytes of the {}", whole.len())), "{e}");
        }
        let e = Datastore::open(&short).err().unwrap();
        assert!(e.is_corruption(), "cut at {cut}, for writing: {e:?}");
    }
    let long = dir.path().join("long.keystone");
    let mut longer = whole.clone();
    longer.extend_from_slice(&[0u8; 8192]);
    std::fs::write(&long, &longer).unwrap();
    let e = read_only(&long).unwrap_err();
    assert!(matches!(e, Error::NeedsRecovery { .. }), "{e:?}");
    drop(Datastore::open(&long).unwrap());
    assert_eq!(read_only(&long).unwrap().bucket("bkt").unwrap().get_bytes("big").unwrap(), big);
}
