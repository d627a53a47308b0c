//! Success and error paths of every public call, on real redb files (and, through the same
//! suite, on the in-memory store and on the reference map with tight backend limits).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};

use keystone::{
    CompleteOptions, CompletedPart, CopyOptions, Datastore, Error, EtagAlgorithm, ListEntry, ListOptions, ObjectInfo,
    ObjectMeta, PutCondition, PutOptions,
};
use serde::{Deserialize, Serialize};

mod common;
use common::{backends, data, file_store};

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

fn objects(db: &Datastore) {
    let b = db.bucket("alpha").unwrap();
    for (i, len) in [0usize, 1, 99, 100, 101, 999, 1000, 1001, 3001, 20_000].into_iter().enumerate() {
        let key = format!("obj/{len}");
        let bytes = data(len, i as u8);
        let info = b.put_bytes(&key, &bytes).unwrap();
        assert_eq!(info.size, len as u64);
        assert_eq!(info.etag, expected_etag(db, &bytes));
        assert_eq!(info.checksum, crc32c::crc32c(&bytes));
        assert_eq!(b.get_bytes(&key).unwrap(), bytes, "len {len}");
        let head = b.head(&key).unwrap();
        assert_eq!((head.size, head.etag.clone(), head.key.clone()), (info.size, info.etag, key.clone()));
        // A stream gives the same object.
        let streamed = b.put_reader(&key, &bytes[..], PutOptions::default()).unwrap();
        assert_eq!(streamed.checksum, info.checksum);
        assert_eq!(b.get_bytes(&key).unwrap(), bytes);
    }
    // Keys are byte-exact.
    b.put_bytes("a//b/../c", b"dots").unwrap();
    b.put_bytes("a/c", b"plain").unwrap();
    assert_eq!(b.get_bytes("a//b/../c").unwrap(), b"dots");
    assert_eq!(b.get_bytes("a/c").unwrap(), b"plain");
    b.put_bytes(&"k".repeat(1024), b"long").unwrap();

    for (bad, why) in [("", "empty"), ("a\0b", "NUL")] {
        let err = b.put_bytes(bad, b"x").unwrap_err();
        assert!(matches!(&err, Error::InvalidKey { reason, .. } if reason.contains(why)), "{err}");
    }
    assert!(matches!(b.put_bytes(&"k".repeat(1025), b"x"), Err(Error::InvalidKey { .. })));
    assert!(matches!(b.get_bytes(""), Err(Error::InvalidKey { .. })));

    let err = b.get_bytes("missing").unwrap_err();
    assert!(matches!(&err, Error::NoSuchKey { bucket, key } if bucket == "alpha" && key == "missing"));
    assert!(err.to_string().contains("missing") && err.to_string().contains("alpha"));
    assert!(matches!(b.head("missing"), Err(Error::NoSuchKey { .. })));
    assert!(matches!(b.open("missing"), Err(Error::NoSuchKey { .. })));
    assert!(!b.exists("missing").unwrap());
    assert!(b.exists("a/c").unwrap());

    // Delete: present and missing keys both succeed; overwrite frees the old chunks.
    b.delete("a/c").unwrap();
    b.delete("a/c").unwrap();
    assert!(matches!(b.get_bytes("a/c"), Err(Error::NoSuchKey { .. })));

    // Metadata is stored and returned; created survives an overwrite, modified does not.
    let mut meta = ObjectMeta { content_type: Some("text/plain".into()), ..Default::default() };
    meta.cache_control = Some("no-cache".into());
    meta.user.insert("owner".into(), "me".into());
    let first = b.put_bytes_with("meta", b"v1", PutOptions { meta: meta.clone(), ..Default::default() }).unwrap();
    assert_eq!(b.head("meta").unwrap().meta, meta);
    std::thread::sleep(std::time::Duration::from_millis(2));
    let second = b.put_bytes("meta", b"v2").unwrap();
    assert_eq!(second.created, first.created);
    assert!(second.modified > first.modified);
    assert_eq!(b.head("meta").unwrap().meta, ObjectMeta::default());
}

/// What a single write's ETag must be under the store's algorithm.
fn expected_etag(db: &Datastore, bytes: &[u8]) -> String {
    match db.etag_algorithm() {
        EtagAlgorithm::Md5 => md5_hex(bytes),
        _ => format!("{:032x}-0", xxhash_rust::xxh3::xxh3_128(bytes)),
    }
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    use std::fmt::Write;
    md5::Md5::digest(bytes).iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Doc {
    title: String,
    tags: Vec<String>,
    n: u64,
}

fn typed(db: &Datastore) {
    let b = db.bucket("alpha").unwrap();
    let doc = Doc { title: "hi".into(), tags: vec!["a".into()], n: 7 };
    let info = b.put("doc", &doc).unwrap();
    assert_eq!(info.meta.content_type.as_deref(), Some("application/json"));
    assert_eq!(b.get::<Doc>("doc").unwrap(), doc);
    // Stored as plain JSON, readable as bytes.
    let json: serde_json::Value = serde_json::from_slice(&b.get_bytes("doc").unwrap()).unwrap();
    assert_eq!(json["title"], "hi");
    // The wrong shape is a Serialization error naming bucket and key.
    let err = b.get::<Vec<u32>>("doc").unwrap_err();
    assert!(matches!(&err, Error::Serialization { bucket, key, .. } if bucket == "alpha" && key == "doc"));
    b.put_bytes("not-json", b"\xff\x00").unwrap();
    assert!(matches!(b.get::<Doc>("not-json"), Err(Error::Serialization { .. })));
    // Values that cannot be serialized as JSON.
    let mut bad = BTreeMap::new();
    bad.insert(vec![1u8], 1);
    assert!(matches!(b.put("bad", &bad), Err(Error::Serialization { .. })));
    assert!(matches!(b.get::<Doc>("bad"), Err(Error::NoSuchKey { .. })));
}

fn conditional(db: &Datastore) {
    let b = db.bucket("alpha").unwrap();
    let absent = PutOptions { condition: PutCondition::IfAbsent, ..Default::default() };
    let v1 = b.put_bytes_with("cond", b"one", absent.clone()).unwrap();
    let err = b.put_bytes_with("cond", b"two", absent.clone()).unwrap_err();
    assert!(matches!(err, Error::PreconditionFailed { .. }), "{err}");
    assert_eq!(b.get_bytes("cond").unwrap(), b"one");
    // Large (chunked, staged) writes honour conditions too, and leave nothing behind.
    let big = data(9000, 3);
    assert!(matches!(b.put_reader("cond", &big[..], absent.clone()), Err(Error::PreconditionFailed { .. })));
    let wrong = PutOptions { condition: PutCondition::IfMatch("0000".into()), ..Default::default() };
    assert!(matches!(b.put_bytes_with("cond", b"two", wrong), Err(Error::PreconditionFailed { .. })));
    let right = PutOptions { condition: PutCondition::IfMatch(format!("\"{}\"", v1.etag)), ..Default::default() };
    b.put_reader("cond", &big[..], right).unwrap();
    assert_eq!(b.get_bytes("cond").unwrap(), big);
    let on_missing = PutOptions { condition: PutCondition::IfMatch(v1.etag), ..Default::default() };
    assert!(matches!(b.put_bytes_with("cond-missing", b"x", on_missing), Err(Error::PreconditionFailed { .. })));
    assert!(db.verify().unwrap().is_clean());
}

/// `PutOptions::content_md5` and `upload_part_checked`: content with another MD5 is refused
/// with `BadDigest` naming both hashes, and nothing of it is stored — inline, chunked and
/// staged, alone and in a transaction that goes on to commit.
fn content_md5(db: &Datastore) {
    use md5::Digest;
    let b = db.bucket("alpha").unwrap();
    let md5 = |bytes: &[u8]| -> [u8; 16] { md5::Md5::digest(bytes).into() };
    let with = |bytes: &[u8]| PutOptions { content_md5: Some(md5(bytes)), ..Default::default() };
    let refused = |r: keystone::Result<ObjectInfo>, good: &[u8], sent: &[u8]| {
        let err = r.unwrap_err();
        assert!(
            matches!(&err, Error::BadDigest { bucket, key, expected, computed }
                if bucket == "alpha" && key == "md5" && *expected == md5_hex(good) && *computed == md5_hex(sent)),
            "{err}"
        );
    };
    // Inline, chunked in one commit, and staged over several (the batch is 4,000 bytes).
    for len in [10, 2500, 9000] {
        let (good, other) = (data(len, 5), data(len, 6));
        let stored = b.put_reader("md5", &good[..], with(&good)).unwrap();
        refused(b.put_reader("md5", &other[..], with(&good)), &good, &other);
        refused(b.put_bytes_with("md5", &other, with(&good)), &good, &other);
        db.transaction(|tx| {
            let t = tx.bucket("alpha")?;
            refused(t.put_reader("md5", &other[..], with(&good)), &good, &other);
            refused(t.put_bytes_with("md5", &other, with(&good)), &good, &other);
            t.put_bytes_with("md5-tx", &good, with(&good))?;
            Ok::<_, Error>(())
        })
        .unwrap();
        assert_eq!(b.get_bytes("md5").unwrap(), good);
        assert_eq!(b.head("md5").unwrap().etag, stored.etag);
        assert_eq!(b.get_bytes("md5-tx").unwrap(), good);
    }
    // Forty chunks: more than the limited backend lets one transaction write and take back
    // out again. Its transaction then refuses to commit; the others commit without them.
    let (good, other) = (data(40_000, 9), data(40_000, 10));
    let r = db.transaction(|tx| {
        refused(tx.bucket("alpha")?.put_reader("md5", &other[..], with(&good)), &good, &other);
        Ok::<_, Error>(())
    });
    match r {
        Ok(()) => {}
        Err(Error::Storage { context, source }) => {
            assert!(context.contains("committing") && source.to_string().contains("could not be removed"));
        }
        Err(e) => panic!("{e}"),
    }
    assert!(db.verify().unwrap().is_clean(), "{:?}", db.verify().unwrap());
    let id = b.create_upload("md5", ObjectMeta::default()).unwrap();
    let (part, other) = (data(3000, 7), data(3000, 8));
    let p1 = b.upload_part_checked(&id, 1, &part[..], md5(&part)).unwrap();
    assert_eq!(p1.etag, md5_hex(&part));
    let err = b.upload_part_checked(&id, 1, &other[..], md5(&part)).unwrap_err();
    assert!(matches!(err, Error::BadDigest { .. }), "{err}");
    // The refused part did not replace the first.
    let done = b
        .complete_upload(&id, &[CompletedPart { part_number: 1, etag: p1.etag }], &CompleteOptions::default())
        .unwrap();
    assert_eq!(done.size, 3000);
    assert_eq!(b.get_bytes("md5").unwrap(), part);
    // Nothing of the refused writes was left behind.
    assert!(db.verify().unwrap().is_clean());
    b.delete("md5").unwrap();
    b.delete("md5-tx").unwrap();
}

fn ranges_and_readers(db: &Datastore) {
    let b = db.bucket("alpha").unwrap();
    let bytes = data(4321, 9);
    b.put_bytes("ranged", &bytes).unwrap();
    assert_eq!(b.get_range("ranged", 0..10).unwrap(), &bytes[0..10]);
    assert_eq!(b.get_range("ranged", 995..2005).unwrap(), &bytes[995..2005]);
    assert_eq!(b.get_range("ranged", 4000..).unwrap(), &bytes[4000..]);
    assert_eq!(b.get_range("ranged", ..=5).unwrap(), &bytes[..=5]);
    assert_eq!(b.get_range("ranged", 4321..).unwrap(), b"");
    for (s, e) in [(0u64, 4322u64), (10, 5), (5000, 5001)] {
        let err = b.get_range("ranged", s..e).unwrap_err();
        assert!(matches!(err, Error::InvalidRange { size: 4321, .. }), "{s}..{e}: {err}");
    }
    let mut r = b.open("ranged").unwrap();
    assert_eq!(r.len(), 4321);
    let mut all = Vec::new();
    r.read_to_end(&mut all).unwrap();
    assert_eq!(all, bytes);
    r.seek(SeekFrom::Start(2500)).unwrap();
    let mut part = [0u8; 100];
    r.read_exact(&mut part).unwrap();
    assert_eq!(&part[..], &bytes[2500..2600]);
    r.seek(SeekFrom::End(-3)).unwrap();
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, &bytes[4318..]);
    assert!(r.seek(SeekFrom::Current(-10_000)).is_err());
    r.seek(SeekFrom::Start(10_000)).unwrap();
    assert_eq!(r.read(&mut part).unwrap(), 0);
    // The reader moves to another thread.
    let mut r = b.open("ranged").unwrap();
    let t = std::thread::spawn(move || {
        let mut v = Vec::new();
        r.read_to_end(&mut v).unwrap();
        v
    });
    assert_eq!(t.join().unwrap(), bytes);
    // Chunks handed out without a copy: whole chunks from the start (1,000 bytes here), the
    // rest of one after a seek, and reads and chunks mixed; a small object is one chunk.
    let mut r = b.open("ranged").unwrap();
    let mut sizes = Vec::new();
    let mut joined = Vec::new();
    while let Some(c) = r.next_chunk().unwrap() {
        sizes.push(c.len());
        joined.extend_from_slice(&c);
    }
    assert_eq!((sizes, joined.as_slice()), (vec![1000, 1000, 1000, 1000, 321], &bytes[..]));
    assert!(r.next_chunk().unwrap().is_none());
    r.seek(SeekFrom::Start(2500)).unwrap();
    let c = r.next_chunk().unwrap().unwrap();
    assert_eq!(&c[..], &bytes[2500..3000]);
    r.read_exact(&mut part).unwrap();
    assert_eq!(&part[..], &bytes[3000..3100]);
    assert_eq!(&r.next_chunk().unwrap().unwrap()[..], &bytes[3100..4000]);
    b.put_bytes("small", b"tiny").unwrap();
    let mut r = b.open("small").unwrap();
    r.seek(SeekFrom::Start(1)).unwrap();
    assert_eq!(&r.next_chunk().unwrap().unwrap()[..], b"iny");
    assert!(r.next_chunk().unwrap().is_none());
    // A chunk outlives its reader and moves to another thread.
    let chunk = b.open("ranged").unwrap().next_chunk().unwrap().unwrap();
    assert_eq!(std::thread::spawn(move || chunk.to_vec()).join().unwrap(), &bytes[..1000]);
    b.delete("small").unwrap();
}

fn listing(db: &Datastore) {
    let b = db.create_bucket("listing").unwrap();
    let keys = ["a", "a/1", "a/2", "a/b/1", "b", "b/", "c/x/y", "d\u{e9}", "z"];
    for k in keys {
        b.put_bytes(k, k.as_bytes()).unwrap();
    }
    let all = b.list(&ListOptions::default()).unwrap();
    let got: Vec<&str> = all.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(got, keys);
    assert!(all.next_token.is_none());

    let d = b.list(&ListOptions::prefix("").delimiter("/")).unwrap();
    assert_eq!(d.common_prefixes, ["a/", "b/", "c/"]);
    assert_eq!(d.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["a", "b", "d\u{e9}", "z"]);
    let d = b.list(&ListOptions::prefix("a/").delimiter("/")).unwrap();
    assert_eq!(d.common_prefixes, ["a/b/"]);
    assert_eq!(d.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["a/1", "a/2"]);
    let after = b.list(&ListOptions { start_after: Some("a/2".into()), ..Default::default() }).unwrap();
    assert_eq!(after.objects[0].key, "a/b/1");

    // Pages of 2 with and without a delimiter add up to the whole listing, in order.
    for delim in [None, Some("/")] {
        let mut opts = ListOptions { max_keys: 2, delimiter: delim.map(String::from), ..Default::default() };
        let mut seen = Vec::new();
        loop {
            let page = b.list(&opts).unwrap();
            assert!(page.objects.len() + page.common_prefixes.len() <= 2);
            seen.extend(page.objects.iter().map(|o| o.key.clone()));
            seen.extend(page.common_prefixes.iter().cloned());
            match page.next_token {
                Some(t) => opts.continuation = Some(t),
                None => break,
            }
        }
        seen.sort();
        let whole = b.list(&ListOptions { delimiter: delim.map(String::from), ..Default::default() }).unwrap();
        let mut expect: Vec<String> = whole.objects.iter().map(|o| o.key.clone()).collect();
        expect.extend(whole.common_prefixes);
        expect.sort();
        assert_eq!(seen, expect, "delimiter {delim:?}");
    }
    // The lazy iterator yields entries in key order.
    let entries: Vec<String> = b
        .list_iter(ListOptions { max_keys: 3, ..ListOptions::prefix("").delimiter("/") })
        .unwrap()
        .map(|e| match e.unwrap() {
            ListEntry::Object(o) => o.key,
            ListEntry::Prefix(p) => p,
        })
        .collect();
    assert_eq!(entries, ["a", "a/", "b", "b/", "c/", "d\u{e9}", "z"]);
    assert!(matches!(
        b.list(&ListOptions { continuation: Some("garbage".into()), ..Default::default() }),
        Err(Error::InvalidKey { .. })
    ));
    db.delete_bucket("listing").unwrap();
    assert!(matches!(b.list(&ListOptions::default()), Err(Error::NoSuchBucket { .. })));
}

fn copies(db: &Datastore) {
    let b = db.bucket("alpha").unwrap();
    let other = db.create_bucket("other").unwrap();
    for (key, len) in [("small", 50usize), ("large", 7777)] {
        let bytes = data(len, 4);
        let meta = ObjectMeta { content_type: Some("x/y".into()), ..Default::default() };
        let src = b.put_bytes_with(key, &bytes, PutOptions { meta: meta.clone(), ..Default::default() }).unwrap();
        let c = b.copy(key, &format!("{key}-copy")).unwrap();
        assert_eq!((c.etag.clone(), c.checksum, c.meta.clone()), (src.etag.clone(), src.checksum, meta.clone()));
        let c2 = db.copy_object("alpha", key, "other", key, &CopyOptions::default()).unwrap();
        assert_eq!(c2.size, len as u64);
        // The copy is independent of its source.
        b.delete(key).unwrap();
        assert_eq!(other.get_bytes(key).unwrap(), bytes);
        assert_eq!(b.get_bytes(&format!("{key}-copy")).unwrap(), bytes);
        let replaced = db
            .copy_object(
                "other",
                key,
                "other",
                "replaced",
                &CopyOptions { meta: Some(ObjectMeta::default()), ..Default::default() },
            )
            .unwrap();
        assert_eq!(replaced.meta, ObjectMeta::default());
    }
    assert!(matches!(b.copy("nope", "x"), Err(Error::NoSuchKey { .. })));
    assert!(matches!(
        db.copy_object("alpha", "small-copy", "nope", "x", &CopyOptions::default()),
        Err(Error::NoSuchBucket { .. })
    ));
    let wrong = CopyOptions { source_etag: Some("bad".into()), ..Default::default() };
    assert!(matches!(
        db.copy_object("alpha", "small-copy", "other", "y", &wrong),
        Err(Error::PreconditionFailed { .. })
    ));
    db.delete_bucket("other").unwrap();
}

fn transactions(db: &Datastore) {
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

fn snapshots(db: &Datastore) {
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

fn multipart(db: &Datastore) {
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
