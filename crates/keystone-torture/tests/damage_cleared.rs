//! Clearing damage: an object whose record is damaged can be deleted or overwritten, as in S3,
//! and the chunks it referred to (which it cannot name) are found by a sweep of the bucket;
//! `remove_corrupt` deletes what a write cannot clear (a damaged pack); an upload with damaged
//! parts can be aborted; a write that fails on damage fails alone. Nothing may leak, and nothing
//! live may be freed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::sync::mpsc;

use common::{TABLE, chunks_of, chunks_of_docs, flip, flip_bits, keys_with, store};
use keystone::{Datastore, Error, PutCondition, PutOptions};
use keystone_torture::Content;
use redb::ReadableDatabase;

fn with_condition(condition: PutCondition) -> PutOptions {
    PutOptions { condition, ..PutOptions::default() }
}

/// As in S3, an object whose record is damaged can still be deleted or overwritten; the
/// chunks the damaged record referred to (which it cannot say) are found by a sweep of the
/// bucket and freed, so nothing leaks.
#[test]
fn a_damaged_object_can_be_deleted_or_overwritten_and_nothing_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.keystone");
    {
        let db = store(&path);
        let b = db.create_bucket("docs").unwrap();
        b.put_reader("deleted", Content::new(1, 50_000), PutOptions::default()).unwrap();
        b.put_reader("overwritten", Content::new(2, 30_000), PutOptions::default()).unwrap();
        b.put_bytes("inline", b"small and inline").unwrap();
        b.put_reader("healthy", Content::new(3, 20_000), PutOptions::default()).unwrap();
    }
    assert_eq!(chunks_of_docs(&path), 13 + 8 + 5, "4,096-byte chunks");
    for key in ["deleted", "overwritten", "inline"] {
        // The format byte: the record no longer decodes at all.
        assert_eq!(flip(&path, format!("docs\0{key}").as_bytes(), 0), 1);
    }
    {
        let db = store(&path);
        let b = db.bucket("docs").unwrap();
        assert!(matches!(b.get_bytes("deleted"), Err(Error::Corrupted { .. })));
        // The damage is reported once per object, not a second time as leaked segments.
        let report = db.verify().unwrap();
        assert_eq!(report.corrupt.len(), 3, "{report:?}");
        assert_eq!(report.orphan_segments, 0, "{report:?}");
        // A condition on the damaged object: its ETag is unknown, so If-Match fails; If-None-
        // Match sees an object.
        let err = b.put_bytes_with("overwritten", b"x", with_condition(PutCondition::IfMatch("\"e\"".into())));
        assert!(matches!(&err, Err(Error::PreconditionFailed { reason, .. }) if reason.contains("damaged")), "{err:?}");
        let err = b.put_bytes_with("overwritten", b"x", with_condition(PutCondition::IfAbsent));
        assert!(matches!(err, Err(Error::PreconditionFailed { .. })), "{err:?}");

        b.delete("deleted").unwrap();
        b.put_reader("overwritten", Content::new(4, 10_000), PutOptions::default()).unwrap();
        b.delete("inline").unwrap();
        assert!(matches!(b.get_bytes("deleted"), Err(Error::NoSuchKey { .. })));
        assert!(keystone_torture::same_content(b.open("overwritten").unwrap(), 4, 10_000).unwrap());
        assert!(keystone_torture::same_content(b.open("healthy").unwrap(), 3, 20_000).unwrap());
        let report = db.verify().unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.objects, 2);
    }
    assert_eq!(chunks_of_docs(&path), 3 + 5, "only the live objects' chunks are left");
}

/// While another record of the bucket does not decode, what it refers to is unknown: the
/// sweep waits, and runs when that one is deleted too.
#[test]
fn the_sweep_waits_while_another_damaged_record_remains() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.keystone");
    {
        let db = store(&path);
        let b = db.create_bucket("docs").unwrap();
        b.put_reader("a", Content::new(1, 10_000), PutOptions::default()).unwrap();
        b.put_reader("b", Content::new(2, 10_000), PutOptions::default()).unwrap();
        b.put_reader("c", Content::new(3, 10_000), PutOptions::default()).unwrap();
    }
    flip(&path, b"docs\0a", 0);
    flip(&path, b"docs\0b", 0);
    {
        let db = store(&path);
        db.bucket("docs").unwrap().delete("a").unwrap();
        let report = db.verify().unwrap();
        assert_eq!(report.corrupt.len(), 1, "{report:?}");
    }
    assert_eq!(chunks_of_docs(&path), 9, "a's chunks wait: b might be the one referring to them");
    {
        let db = store(&path);
        db.bucket("docs").unwrap().delete("b").unwrap();
        assert!(db.verify().unwrap().is_clean());
    }
    assert_eq!(chunks_of_docs(&path), 3);
}

/// A crash after the delete of a damaged record committed, before its sweep ran: the request
/// for a sweep committed with the delete, and opening the store runs it.
#[test]
fn a_sweep_cut_short_by_a_crash_runs_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.keystone");
    {
        let db = store(&path);
        let b = db.create_bucket("docs").unwrap();
        b.put_reader("gone", Content::new(1, 10_000), PutOptions::default()).unwrap();
        b.put_reader("kept", Content::new(2, 10_000), PutOptions::default()).unwrap();
    }
    // What the delete's commit leaves: no manifest, a sweep request (bucket `docs`, id 0).
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(TABLE).unwrap();
            table.remove(&b"docs\0gone"[..]).unwrap();
            let mut marker = b"__meta__\0sweep\0docs\0".to_vec();
            marker.extend_from_slice(&0u64.to_be_bytes());
            table.insert(&marker[..], &[1u8][..]).unwrap();
        }
        txn.commit().unwrap();
    }
    {
        let db = store(&path);
        assert!(db.verify().unwrap().is_clean());
        assert!(keystone_torture::same_content(db.bucket("docs").unwrap().open("kept").unwrap(), 2, 10_000).unwrap());
    }
    assert_eq!(chunks_of_docs(&path), 3);
}

/// Damage the sweep trips over (a chunk key that does not parse) drops the sweep rather than
/// failing the delete, every later free, and the next open.
#[test]
fn damage_met_by_a_sweep_does_not_block_frees_or_opening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("y.keystone");
    {
        let db = store(&path);
        let b = db.create_bucket("docs").unwrap();
        b.put_reader("damaged", Content::new(1, 10_000), PutOptions::default()).unwrap();
        b.put_reader("other", Content::new(2, 10_000), PutOptions::default()).unwrap();
    }
    flip(&path, b"docs\0damaged", 0);
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(TABLE).unwrap().insert(&b"__data__\0docs\0short"[..], &[0u8][..]).unwrap();
        txn.commit().unwrap();
    }
    {
        let db = store(&path);
        let b = db.bucket("docs").unwrap();
        b.delete("damaged").unwrap();
        b.delete("other").unwrap();
        assert!(matches!(db.verify(), Err(Error::Corrupted { .. })), "the malformed chunk key is reported");
    }
    let db = store(&path);
    assert!(matches!(db.bucket("docs").unwrap().get_bytes("other"), Err(Error::NoSuchKey { .. })));
}

/// A write that fails on damage before writing anything (here: into the key range of a
/// damaged pack) fails alone: group commit does not fail the other writes of its batch.
#[test]
fn a_write_into_damage_does_not_fail_the_writes_committed_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.keystone");
    {
        let db = store(&path);
        let b = db.create_bucket("docs").unwrap();
        for i in 0..40u8 {
            b.put_bytes(&format!("small-{i:02}"), [i; 100]).unwrap();
        }
        assert!(db.compact().unwrap().pack_records > 0);
    }
    // Damage the count of the first pack: its framing no longer decodes, its first key does.
    let (pack_key, first) = {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(TABLE).unwrap();
        let key = keys_with(&table, b"docs\0")
            .into_iter()
            .find(|k| table.get(&k[..]).unwrap().unwrap().value()[0] == 0x81)
            .unwrap();
        (key, "small-00")
    };
    flip(&path, &pack_key, 1);
    let db = store(&path);
    db.create_bucket("healthy").unwrap();
    let failed_alone = std::thread::scope(|s| {
        let bad = s.spawn(|| {
            let b = db.bucket("docs").unwrap();
            (0..300).filter(|_| matches!(b.put_bytes(first, b"x"), Err(Error::Corrupted { .. }))).count()
        });
        let writers: Vec<_> = (0..4u8)
            .map(|t| {
                let b = db.bucket("healthy").unwrap();
                s.spawn(move || (0..100).map(|i| b.put_bytes(&format!("t{t}-{i}"), [t; 64]).map(|_| ())).collect())
            })
            .collect();
        for w in writers {
            let results: Vec<Result<(), Error>> = w.join().unwrap();
            for r in results {
                r.unwrap();
            }
        }
        bad.join().unwrap()
    });
    assert_eq!(failed_alone, 300, "every write into the damaged pack fails");
    assert_eq!(db.bucket("healthy").unwrap().list(&keystone::ListOptions::default()).unwrap().objects.len(), 400);
}

/// A damaged pack cannot be unpacked, so writes into its key range fail; `remove_corrupt`
/// removes it whole (with the objects in it, which could not be read anyway), together with
/// every other corrupt object, and the store verifies clean and takes writes again.
#[test]
fn remove_corrupt_clears_a_damaged_pack_and_every_other_corrupt_object() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.keystone");
    {
        let db = store(&path);
        let b = db.create_bucket("docs").unwrap();
        for i in 0..200u8 {
            b.put_bytes(&format!("small-{i:03}"), [i; 100]).unwrap();
        }
        assert!(db.compact().unwrap().pack_records > 1);
        b.put_reader("chunked", Content::new(1, 30_000), PutOptions::default()).unwrap();
        b.put_reader("manifest", Content::new(2, 30_000), PutOptions::default()).unwrap();
        b.put_reader("healthy", Content::new(3, 30_000), PutOptions::default()).unwrap();
        let other = db.create_bucket("other").unwrap();
        other.put_reader("pack-like", Content::new(4, 30_000), PutOptions::default()).unwrap();
    }
    let first_pack = {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(TABLE).unwrap();
        keys_with(&table, b"docs\0small-")
            .into_iter()
            .find(|k| table.get(&k[..]).unwrap().unwrap().value()[0] == 0x81)
            .unwrap()
    };
    flip(&path, &first_pack, 1); // the pack's count
    flip(&path, b"docs\0manifest", 0); // a manifest's format byte
    // A chunked object's manifest whose format byte now reads as a pack's (0x03, a manifest's
    // as written since format version 3, becomes 0x81): removed whole, its chunks found by the
    // sweep.
    flip_bits(&path, b"other\0pack-like", 0, 0x82);
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(TABLE).unwrap();
        let first = table.get(&b"other\0pack-like"[..]).unwrap().unwrap().value()[0];
        assert_eq!(first, 0x81, "the flipped manifest must read as a pack");
    }
    let seg_prefix = {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(TABLE).unwrap();
        let data = keys_with(&table, b"__data__\0docs\0");
        data[0][..data[0].len() - 4].to_vec() // "chunked", written first
    };
    flip(&path, &seg_prefix, 100);

    let db = store(&path);
    let b = db.bucket("docs").unwrap();
    assert!(matches!(b.put_bytes("small-000", b"x"), Err(Error::Corrupted { .. })), "a write into the damaged pack");
    assert!(matches!(b.delete("small-000"), Err(Error::Corrupted { .. })));
    let report = db.remove_corrupt(None).unwrap();
    assert_eq!(report.found.corrupt.len(), 4, "{:?}", report.found);
    let mut removed: Vec<String> = report.removed.iter().map(|c| c.key.clone()).collect();
    removed.sort();
    let pack_name = String::from_utf8(first_pack[b"docs\0".len()..].to_vec()).unwrap();
    assert_eq!(removed, ["chunked".to_owned(), "manifest".to_owned(), "pack-like".to_owned(), pack_name]);
    assert!(report.changed.is_empty() && report.failed.is_empty(), "{report:?}");
    let verified = db.verify().unwrap();
    assert!(verified.is_clean(), "{verified:?}");

    // The damaged pack's objects are gone, a run from the first; every other one reads.
    let left: Vec<String> = b
        .list(&keystone::ListOptions { prefix: "small-".into(), ..Default::default() })
        .unwrap()
        .objects
        .into_iter()
        .map(|o| o.key)
        .collect();
    let lost = 200 - left.len();
    assert!((2..200).contains(&lost), "{lost} objects were in the damaged pack");
    for (n, key) in left.iter().enumerate() {
        let i = u8::try_from(lost + n).unwrap();
        assert_eq!(key, &format!("small-{i:03}"));
        assert_eq!(b.get_bytes(key).unwrap(), [i; 100]);
    }
    b.put_bytes("small-000", b"written again").unwrap();
    assert!(keystone_torture::same_content(b.open("healthy").unwrap(), 3, 30_000).unwrap());
    drop((b, db));
    assert_eq!(chunks_of_docs(&path), 8, "only the healthy object's chunks are left");
    assert_eq!(chunks_of(&path, "other"), 0, "a manifest removed as a damaged pack: chunks swept");
}

/// A multipart upload whose part records are damaged cannot be completed (its parts cannot be
/// read), but it can be aborted: the records go, and a sweep frees the parts' chunks.
#[test]
fn an_upload_with_damaged_parts_can_be_aborted_and_nothing_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.keystone");
    let upload = {
        let db = store(&path);
        let b = db.create_bucket("docs").unwrap();
        b.put_reader("kept", Content::new(1, 10_000), PutOptions::default()).unwrap();
        let id = b.create_upload("big", keystone::ObjectMeta::default()).unwrap();
        b.upload_part(&id, 1, Content::new(2, 20_000)).unwrap();
        b.upload_part(&id, 2, Content::new(3, 20_000)).unwrap();
        id
    };
    assert_eq!(chunks_of_docs(&path), 3 + 5 + 5);
    assert_eq!(flip(&path, b"__meta__\0part\0docs\0", 0), 2);
    {
        let db = store(&path);
        let b = db.bucket("docs").unwrap();
        assert!(matches!(b.list_parts(&upload), Err(Error::Corrupted { .. })));
        let parts = [1, 2].map(|n| keystone::CompletedPart { part_number: n, etag: String::new() });
        assert!(b.complete_upload(&upload, &parts, &keystone::CompleteOptions::default()).is_err());
        b.abort_upload(&upload).unwrap();
        assert!(matches!(b.list_parts(&upload), Err(Error::NoSuchUpload { .. })));
        assert!(db.verify().unwrap().is_clean());
        assert!(keystone_torture::same_content(b.open("kept").unwrap(), 1, 10_000).unwrap());
    }
    assert_eq!(chunks_of_docs(&path), 3, "the parts' chunks are freed");
}

/// A reader that hands out `Content` and, once `pause_at` bytes are out, tells the test and
/// waits for it before going on.
struct Pausing {
    content: Content,
    given: usize,
    pause_at: usize,
    paused: mpsc::Sender<()>,
    resume: mpsc::Receiver<()>,
}

impl Read for Pausing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.given == self.pause_at {
            self.paused.send(()).unwrap();
            self.resume.recv().unwrap();
        }
        let room = if self.given < self.pause_at { self.pause_at - self.given } else { buf.len() };
        let len = buf.len().min(room);
        let n = self.content.read(&mut buf[..len])?;
        self.given += n;
        Ok(n)
    }
}

/// The sweep runs while a streaming upload has committed some of its chunks but not its
/// manifest: those chunks are referred to by nothing but the upload's staging record (and the
/// upload being in flight), and must survive.
#[test]
fn a_sweep_leaves_the_chunks_of_an_upload_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.keystone");
    {
        let db = store(&path);
        db.create_bucket("docs")
            .unwrap()
            .put_reader("damaged", Content::new(1, 10_000), PutOptions::default())
            .unwrap();
    }
    flip(&path, b"docs\0damaged", 0);
    let db = Datastore::builder().chunk_size(4096).inline_threshold(256).upload_batch_size(8192).open(&path).unwrap();
    let (paused_tx, paused) = mpsc::channel();
    let (resume, resume_rx) = mpsc::channel();
    let reader =
        Pausing { content: Content::new(2, 100_000), given: 0, pause_at: 40_000, paused: paused_tx, resume: resume_rx };
    let uploader = {
        let b = db.bucket("docs").unwrap();
        std::thread::spawn(move || b.put_reader("in-flight", reader, PutOptions::default()).map(|_| ()))
    };
    paused.recv().unwrap();
    // Some of the upload's chunks are committed by now, under its staging record.
    db.bucket("docs").unwrap().delete("damaged").unwrap();
    resume.send(()).unwrap();
    uploader.join().unwrap().unwrap();
    assert!(keystone_torture::same_content(db.bucket("docs").unwrap().open("in-flight").unwrap(), 2, 100_000).unwrap());
    assert!(db.verify().unwrap().is_clean());
    drop(db);
    assert_eq!(chunks_of_docs(&path), 25, "the upload's chunks, and none of the damaged object's");
}
