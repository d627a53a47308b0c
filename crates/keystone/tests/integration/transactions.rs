//! Transactions, snapshots and multipart uploads.

use std::io::Read;

use keystone::{CompleteOptions, CompletedPart, Datastore, Error, ListOptions, ObjectMeta, PutOptions};

use crate::common::data;
use crate::objects::md5_hex;

pub(crate) fn transactions(db: &Datastore) {
    db.create_bucket("tx-a").unwrap();
    db.create_bucket("tx-b").unwrap();
    // A bucket handle outlives its bucket's deletion inside the transaction: puts through it
    // fail until the bucket exists again.
    db.create_bucket("tx-gone").unwrap();
    db.transaction(|tx| {
        let g = tx.bucket("tx-gone")?;
        g.put_bytes("before", b"1")?;
        tx.delete_bucket("tx-gone")?;
        assert!(matches!(g.put_bytes("small", b"1"), Err(Error::NoSuchBucket { .. })));
        assert!(matches!(g.put_bytes("large", data(5000, 1)), Err(Error::NoSuchBucket { .. })));
        tx.create_bucket("tx-gone")?;
        g.put_bytes("after", b"2")?;
        Ok::<_, Error>(())
    })
    .unwrap();
    let keys: Vec<String> = db
        .bucket("tx-gone")
        .unwrap()
        .list(&ListOptions::default())
        .unwrap()
        .objects
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys, ["after"]);
    db.delete_bucket("tx-gone").unwrap();
    let big = data(6000, 5);
    // Commit: writes in two buckets appear together; reads inside see them.
    db.transaction(|tx| {
        let a = tx.bucket("tx-a")?;
        let b = tx.bucket("tx-b")?;
        a.put_bytes("k", b"a")?;
        b.put_reader("big", &big[..], PutOptions::default())?;
        assert_eq!(a.get_bytes("k")?, b"a");
        assert_eq!(b.get_bytes("big")?, big);
        assert_eq!(a.list(&ListOptions::default())?.objects.len(), 1);
        b.copy("big", "big2")?;
        a.delete("k")?;
        a.put("typed", &5u32)?;
        assert_eq!(a.get::<u32>("typed")?, 5);
        Ok::<_, Error>(())
    })
    .unwrap();
    assert_eq!(db.bucket("tx-b").unwrap().get_bytes("big2").unwrap(), big);
    assert!(!db.bucket("tx-a").unwrap().exists("k").unwrap());

    // Err rolls back everything, including bucket creation.
    let r: Result<(), Error> = db.transaction(|tx| {
        tx.bucket("tx-a")?.put_bytes("gone", b"x")?;
        tx.create_bucket("tx-c")?;
        tx.bucket("tx-b")?.delete("big")?;
        Err(Error::NoSuchKey { bucket: "user".into(), key: "abort".into() })
    });
    assert!(r.is_err());
    assert!(!db.bucket("tx-a").unwrap().exists("gone").unwrap());
    assert!(db.bucket("tx-c").is_err());
    assert_eq!(db.bucket("tx-b").unwrap().get_bytes("big").unwrap(), big);

    // A user error type works too.
    #[derive(Debug)]
    enum MyErr {
        Store,
        Mine,
    }
    impl From<Error> for MyErr {
        fn from(_: Error) -> Self {
            MyErr::Store
        }
    }
    let r: Result<(), MyErr> = db.transaction(|tx| {
        tx.bucket("tx-a")?.put_bytes("mine", b"x")?;
        Err(MyErr::Mine)
    });
    assert!(matches!(r, Err(MyErr::Mine)));
    assert!(matches!(db.transaction(|tx| tx.bucket("nope").map(|_| ())), Err(Error::NoSuchBucket { .. })));

    // A panic rolls back, and the store stays usable.
    let db2 = db.clone();
    let joined = std::thread::spawn(move || {
        let _ = db2.transaction(|tx| {
            tx.bucket("tx-a")?.put_bytes("panicked", b"x")?;
            panic!("boom");
            #[allow(unreachable_code)]
            Ok::<_, Error>(())
        });
    })
    .join();
    assert!(joined.is_err());
    assert!(!db.bucket("tx-a").unwrap().exists("panicked").unwrap());
    db.bucket("tx-a").unwrap().put_bytes("after", b"ok").unwrap();

    // Bucket deletion inside a transaction.
    db.transaction(|tx| {
        tx.delete_bucket("tx-a")?;
        assert!(tx.list_buckets()?.iter().all(|b| b.name != "tx-a"));
        Ok::<_, Error>(())
    })
    .unwrap();
    assert!(db.bucket("tx-a").is_err());
    db.delete_bucket("tx-b").unwrap();
}

pub(crate) fn snapshots(db: &Datastore) {
    let b = db.create_bucket("snap").unwrap();
    b.put_bytes("k", b"old").unwrap();
    b.put_bytes("big", data(5000, 1)).unwrap();
    let snap = db.snapshot().unwrap();
    let mut reader = b.open("big").unwrap();
    b.put_bytes("k", b"new").unwrap();
    b.put_bytes("big", data(5000, 2)).unwrap();
    b.put_bytes("added", b"x").unwrap();
    let sb = snap.bucket("snap").unwrap();
    assert_eq!(sb.get_bytes("k").unwrap(), b"old");
    assert!(!sb.exists("added").unwrap());
    assert_eq!(sb.list(&ListOptions::default()).unwrap().objects.len(), 2);
    let mut v = Vec::new();
    sb.open("big").unwrap().read_to_end(&mut v).unwrap();
    assert_eq!(v, data(5000, 1));
    // A reader opened before an overwrite reads the old version to its end.
    let mut old = Vec::new();
    reader.read_to_end(&mut old).unwrap();
    assert_eq!(old, data(5000, 1));
    assert_eq!(b.get_bytes("big").unwrap(), data(5000, 2));
    db.delete_bucket("snap").unwrap();
    assert_eq!(sb.get_bytes("k").unwrap(), b"old");
    assert!(snap.list_buckets().unwrap().iter().any(|b| b.name == "snap"));
}

pub(crate) fn multipart(db: &Datastore) {
    let b = db.create_bucket("mpu").unwrap();
    let meta = ObjectMeta { content_type: Some("video/mp4".into()), ..Default::default() };
    let id = b.create_upload("movie", meta.clone()).unwrap();
    let p1 = data(2500, 1);
    let p2 = data(2500, 2);
    let p3 = data(10, 3);
    let i1 = b.upload_part(&id, 1, &p1[..]).unwrap();
    let _stale = b.upload_part(&id, 2, &b"replaced later"[..]).unwrap();
    let i2 = b.upload_part(&id, 2, &p2[..]).unwrap();
    let i3 = b.upload_part(&id, 3, &p3[..]).unwrap();
    b.upload_part(&id, 4, &b"never used"[..]).unwrap();
    assert_eq!(b.list_parts(&id).unwrap().iter().map(|p| p.part_number).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(b.list_uploads("mo").unwrap()[0].upload_id, id);
    assert_eq!(b.upload_info(&id).unwrap().key, "movie");
    assert!(matches!(b.upload_info("0000000000000000"), Err(Error::NoSuchUpload { .. })));
    assert!(matches!(b.upload_info("zz"), Err(Error::NoSuchUpload { .. })));
    assert!(b.list_uploads("x").unwrap().is_empty());
    // Not visible until completed.
    assert!(!b.exists("movie").unwrap());

    let part = |n: u32, e: &str| CompletedPart { part_number: n, etag: e.to_owned() };
    let opts = CompleteOptions { min_part_size: 2000, ..Default::default() };
    let bad = [
        (vec![], "no parts"),
        (vec![part(2, &i2.etag), part(1, &i1.etag)], "order"),
        (vec![part(1, &i1.etag), part(9, "x")], "not uploaded"),
        (vec![part(1, &i2.etag)], "ETag"),
        (vec![part(1, &i1.etag), part(4, "whatever")], "ETag"),
    ];
    for (parts, why) in bad {
        let err = b.complete_upload(&id, &parts, &opts).unwrap_err();
        assert!(err.to_string().contains(why) || matches!(err, Error::InvalidPartOrder { .. }), "{why}: {err}");
    }
    let too_small = b.complete_upload(&id, &[part(3, &i3.etag), part(1, &i1.etag)], &opts);
    assert!(too_small.is_err());
    let err = b.complete_upload(&id, &[part(1, &i1.etag), part(2, &i2.etag), part(4, "x")], &opts).unwrap_err();
    assert!(matches!(err, Error::InvalidPart { .. }));
    let small_first = CompleteOptions { min_part_size: 5000, ..Default::default() };
    assert!(matches!(
        b.complete_upload(&id, &[part(1, &i1.etag), part(2, &i2.etag)], &small_first),
        Err(Error::EntityTooSmall { part_number: 1, .. })
    ));

    let parts = [part(1, &format!("\"{}\"", i1.etag)), part(2, &i2.etag), part(3, &i3.etag)];
    let info = b.complete_upload(&id, &parts, &opts).unwrap();
    let whole = [p1.clone(), p2.clone(), p3.clone()].concat();
    assert_eq!(b.get_bytes("movie").unwrap(), whole);
    assert_eq!(info.size, whole.len() as u64);
    assert_eq!(info.checksum, crc32c::crc32c(&whole));
    assert_eq!(info.parts, 3);
    assert_eq!(info.meta, meta);
    let md5s: Vec<u8> = [&p1, &p2, &p3].iter().flat_map(<md5::Md5 as md5::Digest>::digest).collect();
    assert_eq!(info.etag, format!("{}-3", md5_hex(&md5s)));
    assert_eq!(b.get_range("movie", 2490..2510).unwrap(), &whole[2490..2510]);
    // Each part's bytes, by its place in the completed list (S3's `partNumber`).
    let r = b.open("movie").unwrap();
    let ranges: Vec<_> = (0..=4).map(|n| r.part_range(n)).collect();
    assert_eq!((r.part_count(), ranges), (3, vec![None, Some(0..2500), Some(2500..5000), Some(5000..5010), None]));
    // A copy keeps the part count and ETag but stores one piece: it is one part to read. Both
    // ways to copy store the count, not only answer it (a copy's record said 0 parts under a
    // `-3` ETag).
    let copy = b.copy("movie", "movie-copy").unwrap();
    assert_eq!((copy.parts, &copy.etag), (3, &info.etag));
    db.transaction(|tx| tx.bucket("mpu")?.copy("movie", "movie-tx-copy")).unwrap();
    for key in ["movie-copy", "movie-tx-copy"] {
        assert_eq!((b.head(key).unwrap().parts, &b.head(key).unwrap().etag), (3, &info.etag), "{key}");
        let r = b.open(key).unwrap();
        assert_eq!((r.part_count(), r.part_range(1), r.part_range(2)), (1, Some(0..5010), None), "{key}");
        b.delete(key).unwrap();
    }
    // Any other object is its own part 1.
    b.put_bytes("plain", data(3000, 9)).unwrap();
    let plain = b.open("plain").unwrap();
    assert_eq!((plain.part_count(), plain.part_range(1), plain.part_range(2)), (1, Some(0..3000), None));
    b.delete("plain").unwrap();
    // The upload is gone; part 4 and the replaced part 2 were freed.
    assert!(matches!(b.list_parts(&id), Err(Error::NoSuchUpload { .. })));
    assert!(matches!(b.upload_part(&id, 5, &b"x"[..]), Err(Error::NoSuchUpload { .. })));
    // A retry of the completion gets the object again (tests/multipart_retry.rs); other parts do not.
    assert_eq!(b.complete_upload(&id, &parts, &opts).unwrap().etag, info.etag);
    assert!(matches!(b.complete_upload(&id, &parts[..2], &opts), Err(Error::NoSuchUpload { .. })));
    assert!(matches!(b.abort_upload("not-an-id"), Err(Error::NoSuchUpload { .. })));

    let id2 = b.create_upload("aborted", ObjectMeta::default()).unwrap();
    b.upload_part(&id2, 1, &data(3000, 7)[..]).unwrap();
    assert!(matches!(db.delete_empty_bucket("mpu"), Err(Error::BucketNotEmpty { .. })));
    b.abort_upload(&id2).unwrap();
    assert!(matches!(b.abort_upload(&id2), Err(Error::NoSuchUpload { .. })));
    assert!(!b.exists("aborted").unwrap());
    assert!(matches!(b.create_upload("", ObjectMeta::default()), Err(Error::InvalidKey { .. })));
    let report = db.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    // Uploads older than now are aborted by age.
    let id3 = b.create_upload("old", ObjectMeta::default()).unwrap();
    b.upload_part(&id3, 1, &b"x"[..]).unwrap();
    assert_eq!(db.abort_uploads_older_than(std::time::Duration::ZERO).unwrap(), 1);
    assert!(b.list_uploads("").unwrap().is_empty());
    db.delete_bucket("mpu").unwrap();
}
