//! Metadata an S3 client could not read back (not an HTTP header) is refused on every write
//! path, before anything is stored.
#![allow(clippy::unwrap_used)]

use keystone::{CopyOptions, Error, ListOptions, ObjectMeta, PutOptions};

mod common;
use common::{data, file_store};

fn bad_metas() -> Vec<(ObjectMeta, &'static str)> {
    let user = |k: &str, v: &str| ObjectMeta { user: [(k.to_owned(), v.to_owned())].into(), ..ObjectMeta::default() };
    let mut twice = user("K", "upper");
    twice.user.insert("k".into(), "lower".into());
    vec![
        (user("bad key", "v"), "bad key"),
        (user("k", "a\r\nx-injected: 1"), "k"),
        (twice, "k"),
        (user("big", &"v".repeat(keystone::MAX_USER_META)), "user"),
        (ObjectMeta { content_type: Some("text/plain\nX: y".into()), ..ObjectMeta::default() }, "content_type"),
    ]
}

#[test]
fn every_write_path_refuses_metadata_that_cannot_be_a_header() {
    let dir = tempfile::tempdir().unwrap();
    let db = file_store(&dir, "meta.keystone");
    let b = db.create_bucket("bkt").unwrap();
    b.put_bytes("src", b"source").unwrap();
    let big = data(5000, 1); // chunked with this store's 100-byte inline threshold
    for (meta, field) in bad_metas() {
        let opts = || PutOptions { meta: meta.clone(), ..PutOptions::default() };
        let check = |r: Result<_, Error>, path: &str| match r {
            Err(Error::InvalidMetadata { field: f, .. }) => assert_eq!(f, field, "{path}"),
            other => panic!("{path}: {other:?}"),
        };
        check(b.put_bytes_with("small", b"x", opts()).map(drop), "put_bytes_with");
        check(b.put_reader("large", &big[..], opts()).map(drop), "put_reader");
        check(b.create_upload("mpu", meta.clone()).map(drop), "create_upload");
        let copy = CopyOptions { meta: Some(meta.clone()), ..CopyOptions::default() };
        check(db.copy_object("bkt", "src", "bkt", "copy", &copy).map(drop), "copy_object");
        let r = db.transaction(|tx| {
            let t = tx.bucket("bkt")?;
            t.put_bytes_with("tx-small", b"x", opts())?;
            Ok::<_, Error>(())
        });
        check(r, "transaction put_bytes_with");
        let r = db.transaction(|tx| {
            tx.bucket("bkt")?.put_reader("tx-large", &big[..], opts())?;
            Ok::<_, Error>(())
        });
        check(r, "transaction put_reader");
    }
    let keys: Vec<String> = b.list(&ListOptions::default()).unwrap().objects.into_iter().map(|o| o.key).collect();
    assert_eq!(keys, ["src"], "nothing refused was stored");
    assert!(b.list_uploads("").unwrap().is_empty());
    let report = db.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}
