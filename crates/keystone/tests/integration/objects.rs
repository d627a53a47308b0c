//! Objects: writes, typed values, conditions, Content-MD5, ranges and readers.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};

use keystone::{
    CompleteOptions, CompletedPart, Datastore, Error, EtagAlgorithm, ObjectInfo, ObjectMeta, PutCondition, PutOptions,
};
use serde::{Deserialize, Serialize};

use crate::common::data;

pub(crate) fn objects(db: &Datastore) {
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
pub(crate) fn expected_etag(db: &Datastore, bytes: &[u8]) -> String {
    match db.etag_algorithm() {
        EtagAlgorithm::Md5 => md5_hex(bytes),
        _ => format!("{:032x}-0", xxhash_rust::xxh3::xxh3_128(bytes)),
    }
}

pub(crate) fn md5_hex(bytes: &[u8]) -> String {
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

pub(crate) fn typed(db: &Datastore) {
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

pub(crate) fn conditional(db: &Datastore) {
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
    // If-Match on a key with no object: NoSuchKey, naming it, as S3 answers (not 412).
    let err = b.put_bytes_with("cond-missing", b"x", on_missing).unwrap_err();
    assert!(matches!(&err, Error::NoSuchKey { key, .. } if key == "cond-missing"), "{err}");
    assert!(matches!(b.get_bytes("cond-missing"), Err(Error::NoSuchKey { .. })));
    assert!(db.verify().unwrap().is_clean());
}

/// `PutOptions::content_md5` and `upload_part_checked`: content with another MD5 is refused
/// with `BadDigest` naming both hashes, and nothing of it is stored — inline, chunked and
/// staged, alone and in a transaction that goes on to commit.
pub(crate) fn content_md5(db: &Datastore) {
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

pub(crate) fn ranges_and_readers(db: &Datastore) {
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
