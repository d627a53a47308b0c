//! Listings and copies.

use keystone::{CopyOptions, Datastore, Error, ListEntry, ListOptions, ObjectMeta, PutOptions};

use crate::common::data;

pub(crate) fn listing(db: &Datastore) {
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

    // A token no listing handed out is named as one, not as a bad key.
    for token in ["", "tz", "t0", "x00", "garbage"] {
        let e = b.list(&ListOptions { continuation: Some(token.into()), ..Default::default() }).unwrap_err();
        assert!(matches!(&e, Error::InvalidContinuationToken { token: t } if t == token), "{token:?}: {e:?}");
        assert!(e.to_string().contains("continuation token"), "{e}");
    }

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
    db.delete_bucket("listing").unwrap();
    assert!(matches!(b.list(&ListOptions::default()), Err(Error::NoSuchBucket { .. })));
}

pub(crate) fn copies(db: &Datastore) {
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
