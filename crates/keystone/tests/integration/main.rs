//! Success and error paths of every public call, on real redb files (and, through the same
//! suite, on the in-memory store and on the reference map with tight backend limits).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod listing;
mod objects;
mod transactions;

#[path = "../common/mod.rs"]
mod common;

use std::io::{Read, Seek};

use keystone::{Datastore, Error, ListOptions, ObjectMeta, PutOptions};

use common::{backends, data, file_store};
use listing::{copies, listing};
use objects::{conditional, content_md5, objects, ranges_and_readers, typed};
use transactions::{multipart, snapshots, transactions};

#[test]
fn conformance_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    for (name, db) in backends(&dir) {
        eprintln!("backend: {name}");
        buckets(&db);
        objects(&db);
        typed(&db);
        conditional(&db);
        content_md5(&db);
        ranges_and_readers(&db);
        listing(&db);
        copies(&db);
        transactions(&db);
        snapshots(&db);
        multipart(&db);
        maintenance(&db);
    }
}

fn buckets(db: &Datastore) {
    assert!(db.list_buckets().unwrap().is_empty());
    db.create_bucket("alpha").unwrap();
    db.create_bucket("beta.1").unwrap();
    assert!(matches!(db.create_bucket("alpha"), Err(Error::BucketAlreadyExists { bucket }) if bucket == "alpha"));
    for bad in ["ab", "UPPER", "a_b", "__meta__", "-ab", "a..b", "192.168.0.1", "xn--ab"] {
        let err = db.create_bucket(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidBucketName { .. }), "{bad}: {err}");
        assert!(err.to_string().contains(bad));
    }
    let names: Vec<String> = db.list_buckets().unwrap().into_iter().map(|b| b.name).collect();
    assert_eq!(names, ["alpha", "beta.1"]);
    assert!(matches!(db.bucket("nope"), Err(Error::NoSuchBucket { .. })));
    assert!(matches!(db.bucket("NOPE"), Err(Error::InvalidBucketName { .. })));
    assert!(matches!(db.delete_bucket("nope"), Err(Error::NoSuchBucket { .. })));

    let b = db.bucket("beta.1").unwrap();
    b.put_bytes("x", b"1").unwrap();
    b.put_bytes("big", data(5000, 1)).unwrap();
    assert!(matches!(db.delete_empty_bucket("beta.1"), Err(Error::BucketNotEmpty { .. })));
    db.delete_bucket("beta.1").unwrap();
    assert!(matches!(b.get_bytes("x"), Err(Error::NoSuchBucket { .. })));
    assert!(matches!(b.put_bytes("x", b"1"), Err(Error::NoSuchBucket { .. })));
    // Recreated, the bucket is empty: nothing of the old one survives.
    let b = db.create_bucket("beta.1").unwrap();
    assert!(b.list(&ListOptions::default()).unwrap().objects.is_empty());
    db.delete_empty_bucket("beta.1").unwrap();
    assert_eq!(db.list_buckets().unwrap().len(), 1);
}

fn maintenance(db: &Datastore) {
    let b = db.bucket("alpha").unwrap();
    b.put_bytes("m1", data(12_345, 1)).unwrap();
    let report = db.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(report.objects > 10);
    assert!(report.bytes > 12_345);
    assert_eq!(db.verify_bucket("alpha").unwrap().corrupt.len(), 0);
    assert!(matches!(db.verify_bucket("nope"), Err(Error::NoSuchBucket { .. })));
    let gc = db.gc().unwrap();
    assert_eq!(gc.uploads_reclaimed, 0);
    db.compact().unwrap();
    assert_eq!(b.get_bytes("m1").unwrap(), data(12_345, 1));
}

#[test]
fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let big = data(50_000, 8);
    {
        let db = file_store(&dir, "reopen.keystone");
        let b = db.create_bucket("keep").unwrap();
        b.put_bytes("small", b"s").unwrap();
        b.put_reader("big", &big[..], PutOptions::content_type("a/b")).unwrap();
        b.put("typed", &vec![1, 2, 3]).unwrap();
        let id = b.create_upload("pending", ObjectMeta::default()).unwrap();
        b.upload_part(&id, 1, &b"part"[..]).unwrap();
    }
    let db = file_store(&dir, "reopen.keystone");
    let b = db.bucket("keep").unwrap();
    assert_eq!(b.get_bytes("small").unwrap(), b"s");
    assert_eq!(b.get_bytes("big").unwrap(), big);
    assert_eq!(b.head("big").unwrap().meta.content_type.as_deref(), Some("a/b"));
    assert_eq!(b.get::<Vec<i32>>("typed").unwrap(), [1, 2, 3]);
    // Multipart uploads survive a reopen, as in S3.
    let uploads = b.list_uploads("").unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!(b.list_parts(&uploads[0].upload_id).unwrap()[0].size, 4);
    assert!(db.verify().unwrap().is_clean());
}

#[test]
fn a_second_open_of_the_same_file_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.keystone");
    let db = Datastore::open(&path).unwrap();
    let err = Datastore::open(&path).unwrap_err();
    assert!(matches!(err, Error::AlreadyOpen { .. }), "{err}");
    assert!(err.to_string().contains("already open"), "{err}");
    // The first handle keeps working, and the file opens again once it is closed.
    db.create_bucket("still").unwrap();
    drop(db);
    assert!(Datastore::open(&path).unwrap().bucket("still").is_ok());
}

#[test]
fn garbage_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.keystone");
    std::fs::write(&path, vec![0x5a; 100_000]).unwrap();
    let err = Datastore::open(&path).unwrap_err();
    assert!(!err.to_string().is_empty());
    let dir_path = dir.path().to_path_buf();
    assert!(Datastore::open(&dir_path).is_err(), "a directory is not a store");
}

#[test]
fn handles_are_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Datastore>();
    check::<keystone::Bucket>();
    check::<keystone::Snapshot>();
    fn reader<T: Send + 'static + Read + Seek>() {}
    reader::<keystone::ObjectReader>();
}
