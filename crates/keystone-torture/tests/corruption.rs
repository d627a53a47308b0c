//! Corruption: bytes flipped inside stored records (written through redb directly, so redb's
//! own checksums are valid and only Keystone's can notice) must make reads of that object fail
//! with `Corrupted` naming bucket and key, and `verify` must name exactly the damaged objects.
//! Truncated, garbage or randomly damaged files must give a clear error (or, where redb can
//! repair, a working store) — never a panic or a hang. (Clearing damage: `damage_cleared.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use common::{TABLE, flip, keys_with, store};
use keystone::{Datastore, Error, PutOptions};
use keystone_torture::Content;
use redb::{ReadableDatabase, ReadableTable};

#[test]
fn a_flipped_byte_in_a_chunk_or_manifest_is_reported_as_corruption_naming_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.keystone");
    {
        let db = store(&path);
        let b = db.create_bucket("docs").unwrap();
        b.put_reader("chunked", Content::new(1, 50_000), PutOptions::default()).unwrap();
        b.put_bytes("inline", b"small and inline").unwrap();
        b.put_reader("healthy", Content::new(2, 30_000), PutOptions::default()).unwrap();
        db.create_bucket("other").unwrap().put_reader("x", Content::new(3, 9000), PutOptions::default()).unwrap();
    }
    // Find the segment of "chunked" and damage the payload of its chunks.
    let seg_prefix = {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(TABLE).unwrap();
        let data = keys_with(&table, b"__data__\0docs\0");
        // Segments in id order: "chunked" was written first.
        data[0][..data[0].len() - 4].to_vec()
    };
    assert!(flip(&path, &seg_prefix, 100) > 1);
    // Damage the inline object's body (its last byte is content).
    assert_eq!(flip(&path, b"docs\0inline", usize::MAX), 1);

    let db = store(&path);
    let b = db.bucket("docs").unwrap();
    for key in ["chunked", "inline"] {
        match b.get_bytes(key) {
            Err(Error::Corrupted { bucket, key: k, .. }) => {
                assert_eq!((bucket.as_deref(), k.as_deref()), (Some("docs"), Some(key)));
            }
            other => panic!("{key}: expected Corrupted, got {other:?}"),
        }
    }
    // A streaming reader fails too, and the error converts back to Corrupted.
    let mut r = b.open("chunked").unwrap();
    let err = r.read_to_end(&mut Vec::new()).unwrap_err();
    assert!(matches!(Error::from_io(err), Error::Corrupted { .. }));
    // So do chunks handed out without a copy.
    let mut r = b.open("chunked").unwrap();
    let err = std::iter::from_fn(|| r.next_chunk().transpose()).find_map(Result::err).expect("a damaged chunk");
    assert!(matches!(Error::from_io(err), Error::Corrupted { .. }));
    // The damaged range read fails; an undamaged object reads fine.
    assert!(matches!(b.get_range("chunked", 0..10), Err(Error::Corrupted { .. })));
    // A range of an inline object that leaves out the damaged byte fails too: the whole body's
    // CRC is checked.
    assert!(matches!(b.get_range("inline", 0..3), Err(Error::Corrupted { .. })));
    assert!(keystone_torture::same_content(b.open("healthy").unwrap(), 2, 30_000).unwrap());

    let report = db.verify().unwrap();
    let mut named: Vec<(String, String)> = report.corrupt.iter().map(|c| (c.bucket.clone(), c.key.clone())).collect();
    named.sort();
    assert_eq!(named, [("docs".to_owned(), "chunked".to_owned()), ("docs".to_owned(), "inline".to_owned())]);
    assert_eq!(report.objects, 4);
    assert!(!report.is_clean());
}

/// Two chunks of one object swapped: each is intact (its own CRC32C holds), so only the
/// whole object's checksum can tell. Every way of reading it from the start must fail.
#[test]
fn swapped_chunks_fail_the_whole_object_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.keystone");
    store(&path)
        .create_bucket("docs")
        .unwrap()
        .put_reader("obj", Content::new(5, 20_000), PutOptions::default())
        .unwrap();
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(TABLE).unwrap();
            let keys = keys_with(&table, b"__data__\0docs\0");
            assert_eq!(keys.len(), 5, "20,000 bytes in 4,096-byte chunks");
            let (a, b) = (table.get(&keys[0][..]).unwrap().unwrap().value().to_vec(), {
                table.get(&keys[1][..]).unwrap().unwrap().value().to_vec()
            });
            table.insert(&keys[0][..], &b[..]).unwrap();
            table.insert(&keys[1][..], &a[..]).unwrap();
        }
        txn.commit().unwrap();
    }
    let db = store(&path);
    let b = db.bucket("docs").unwrap();
    assert!(matches!(b.get_bytes("obj"), Err(Error::Corrupted { .. })));
    let err = b.open("obj").unwrap().read_to_end(&mut Vec::new()).unwrap_err();
    assert!(Error::from_io(err).to_string().contains("object checksum mismatch"));
    // Chunk by chunk, the mismatch comes in place of the last chunk: a consumer that stops
    // once it has the object's length of bytes still sees it.
    let mut r = b.open("obj").unwrap();
    for _ in 0..4 {
        assert!(r.next_chunk().unwrap().is_some());
    }
    let err = r.next_chunk().unwrap_err();
    assert!(Error::from_io(err).to_string().contains("object checksum mismatch"));
    // A range inside one chunk cannot be checked against the whole object and reads.
    assert_eq!(b.get_range("obj", 10..20).unwrap().len(), 10);
    assert_eq!(db.verify().unwrap().corrupt.len(), 1);
}

#[test]
fn a_damaged_manifest_is_corruption_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.keystone");
    {
        let db = store(&path);
        let b = db.create_bucket("docs").unwrap();
        b.put_reader("obj", Content::new(1, 20_000), PutOptions::default()).unwrap();
    }
    // Every position of the manifest, one at a time: decoding must fail cleanly or (for bytes
    // such as timestamps) read something harmless — never panic.
    let len = {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(TABLE).unwrap();
        table.get(&b"docs\0obj"[..]).unwrap().unwrap().value().len()
    };
    for at in 0..len {
        flip(&path, b"docs\0obj", at);
        let db = store(&path);
        let b = db.bucket("docs").unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = b.head("obj");
            let _ = b.get_bytes("obj");
            let _ = b.list(&keystone::ListOptions::default());
            db.verify().map(|r| r.corrupt.len())
        }));
        let corrupt = outcome.unwrap_or_else(|_| panic!("panic with byte {at} of the manifest flipped"));
        assert!(corrupt.is_ok(), "verify failed with byte {at} flipped: {corrupt:?}");
        drop((b, db));
        flip(&path, b"docs\0obj", at); // restore
    }
}

/// The id counter (the high 32 bits of every segment and upload id, advanced at each open) at
/// the end of its range: the open is refused rather than wrapping around to ids in use.
#[test]
fn an_id_counter_at_the_end_of_its_range_is_refused_not_wrapped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ids.keystone");
    store(&path).create_bucket("docs").unwrap();
    let set_counter = |hi: u64| {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(TABLE).unwrap().insert(&b"__meta__\0idgen"[..], &hi.to_be_bytes()[..]).unwrap();
        txn.commit().unwrap();
    };
    set_counter(u64::from(u32::MAX) - 2);
    let db = store(&path);
    db.bucket("docs").unwrap().put_reader("last", Content::new(1, 10_000), PutOptions::default()).unwrap();
    drop(db);
    let err = Datastore::open(&path).unwrap_err();
    assert!(matches!(&err, Error::TooLarge(m) if m.contains("id space")), "{err}");
}

/// Opens `path` on another thread; the result, or `None` if it did not finish in a minute.
fn open_bounded(path: &Path) -> Option<Result<(), String>> {
    let (tx, rx) = mpsc::channel();
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(|| match Datastore::open(&p) {
            Ok(db) => {
                // If it opened, using it must not panic either.
                let _ = keystone_torture::dump(&db);
                let _ = db.verify();
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        });
        let _ = tx.send(r.unwrap_or_else(|_| Err("PANIC".to_owned())));
    });
    rx.recv_timeout(Duration::from_mins(1)).ok()
}

#[test]
fn truncated_and_garbage_files_give_an_error_not_a_panic_or_hang() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.keystone");
    {
        let db = store(&good);
        let b = db.create_bucket("docs").unwrap();
        for i in 0..20 {
            b.put_reader(&format!("k{i}"), Content::new(i, 10_000 * i), PutOptions::default()).unwrap();
        }
    }
    let bytes = std::fs::read(&good).unwrap();
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for cut in [1, 8, 100, 511, 4096, 4097, bytes.len() / 2, bytes.len() - 1] {
        cases.push((format!("truncated to {cut} bytes"), bytes[..cut].to_vec()));
    }
    let mut rng = fastrand::Rng::with_seed(7);
    cases.push(("1 MiB of random bytes".into(), (0..1 << 20).map(|_| rng.u8(..)).collect()));
    cases.push(("a text file".into(), b"this is not a keystone store\n".repeat(1000)));
    let mut zero_header = bytes.clone();
    zero_header[..4096].fill(0);
    cases.push(("header zeroed".into(), zero_header));
    for i in 0..40 {
        let mut damaged = bytes.clone();
        for _ in 0..=i % 8 {
            let at = rng.usize(..damaged.len());
            damaged[at] ^= rng.u8(1..);
        }
        cases.push((format!("random damage #{i}"), damaged));
    }
    let mut opened = 0;
    for (what, content) in cases {
        let path = dir.path().join("bad.keystone");
        std::fs::write(&path, &content).unwrap();
        match open_bounded(&path) {
            None => panic!("{what}: open hung"),
            Some(Err(msg)) if msg == "PANIC" => panic!("{what}: panicked"),
            Some(Err(msg)) => {
                assert!(msg.contains("bad.keystone") || msg.contains("corrupt"), "{what}: unclear: {msg}");
            }
            Some(Ok(())) => opened += 1,
        }
    }
    println!("{opened} damaged files still opened (redb repaired them or the damage hit free space)");
}
