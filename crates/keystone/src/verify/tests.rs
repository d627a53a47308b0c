//! `verify` and `remove_corrupt` on damaged records, and random damage run through every call.

#![allow(clippy::unwrap_used)]

use crate::data::keys;

/// One bucket record that does not decode (here truncated) stopped `verify`, `compact`
/// and `remove_corrupt` for every bucket, and `delete_bucket` of its name; `salvage`
/// copied it as it was and then failed in its own `remove_corrupt`. Now `verify` reports
/// it (empty key) and checks its objects all the same, `compact` and `delete_bucket` run,
/// `remove_corrupt` replaces the record, and `salvage` creates the bucket again.
/// `list_buckets` still fails, naming the bucket, rather than leave it out.
#[test]
fn a_damaged_bucket_record_is_reported_replaced_and_salvaged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.keystone");
    let damage = |db: &crate::Datastore, name: &str| {
        db.engine.test_write(|w| w.put(&keys::bucket(name), &[1, 0, 0])).unwrap();
    };
    {
        let db = crate::Datastore::open(&path).unwrap();
        db.create_bucket("good").unwrap().put_bytes("k", b"kept").unwrap();
        db.create_bucket("bad").unwrap().put_bytes("x", b"y").unwrap();
        db.create_bucket("gone").unwrap().put_bytes("x", b"y").unwrap();
        damage(&db, "bad");
        damage(&db, "gone");
        let e = db.list_buckets().unwrap_err();
        assert!(matches!(&e, crate::Error::Corrupted { bucket: Some(b), .. } if b == "bad"), "{e:?}");
        db.delete_bucket("gone").unwrap();
        let report = db.verify().unwrap();
        assert_eq!(report.objects, 2);
        assert_eq!(report.corrupt.len(), 1, "{report:?}");
        assert_eq!((report.corrupt[0].bucket.as_str(), report.corrupt[0].key.as_str()), ("bad", ""));
        assert_eq!(db.verify_bucket("bad").unwrap().corrupt.len(), 1);
        db.compact().unwrap();
    }
    let out = dir.path().join("out.keystone");
    let salvaged = crate::Datastore::salvage(&path, &out).unwrap();
    assert_eq!(salvaged.buckets_recreated, ["bad"]);
    assert!(salvaged.verified.is_clean(), "{salvaged:?}");
    let copy = crate::Datastore::open(&out).unwrap();
    assert_eq!(copy.bucket("bad").unwrap().get_bytes("x").unwrap(), b"y");

    let db = crate::Datastore::open(&path).unwrap();
    let removed = db.remove_corrupt(None).unwrap();
    assert_eq!(removed.removed.len(), 1, "{removed:?}");
    assert_eq!(db.list_buckets().unwrap().len(), 2);
    assert_eq!(db.bucket("bad").unwrap().get_bytes("x").unwrap(), b"y");
    assert!(db.verify().unwrap().is_clean());
}

/// A multipart upload record that does not decode used to leak its parts for ever,
/// unreported: `list_uploads` failed (so its id could not be found), the age-based abort
/// skipped it, `verify` did not look at upload records and `remove_corrupt` left it.
/// Now the listing leaves it out, `verify` reports it, and `remove_corrupt`, the
/// age-based abort (whatever the age: the upload can never complete) and an explicit
/// abort each free its parts.
#[test]
fn a_damaged_upload_record_is_reported_and_aborted() {
    use crate::data::keys::Book;
    let db = crate::Datastore::builder().chunk_size(100).inline_threshold(50).in_memory().unwrap();
    let b = db.create_bucket("bkt").unwrap();
    let chunks = || {
        db.engine
            .read(|r| {
                let p = keys::bucket_data_prefix("bkt");
                let end = crate::storage::prefix_end(&p);
                Ok(r.scan(crate::engine::range_from(&p, end.as_deref()), usize::MAX)?.len())
            })
            .unwrap()
    };
    let damaged_upload = || {
        let id = b.create_upload("k", crate::ObjectMeta::default()).unwrap();
        b.upload_part(&id, 1, &[7u8; 1000][..]).unwrap();
        let raw = u64::from_str_radix(&id, 16).unwrap();
        db.engine.test_write(|w| w.put(&Book::Mpu.key("bkt", raw), &[1, 9])).unwrap();
        id
    };
    let healthy = b.create_upload("h", crate::ObjectMeta::default()).unwrap();

    damaged_upload();
    let listed = b.list_uploads("").unwrap();
    assert_eq!(listed.iter().map(|u| u.upload_id.as_str()).collect::<Vec<_>>(), [healthy.as_str()]);
    let report = db.verify().unwrap();
    assert_eq!(report.corrupt.len(), 1, "{report:?}");
    assert!(report.corrupt[0].reason.contains("multipart upload"), "{report:?}");
    let removed = db.remove_corrupt(None).unwrap();
    assert_eq!(removed.removed.len(), 1, "{removed:?}");
    assert_eq!(chunks(), 0);

    damaged_upload();
    assert_eq!(db.abort_uploads_older_than(std::time::Duration::from_hours(24)).unwrap(), 1);
    assert_eq!(chunks(), 0);

    let id = damaged_upload();
    b.abort_upload(&id).unwrap();
    assert_eq!(chunks(), 0);

    b.abort_upload(&healthy).unwrap();
    assert!(db.verify().unwrap().is_clean());
    db.delete_empty_bucket("bkt").unwrap();
}

/// An object written again between verification and removal is the new version: it is
/// left alone, and reported as such.
#[test]
fn an_object_written_again_after_it_was_found_is_left_alone() {
    let db = crate::Datastore::in_memory().unwrap();
    let b = db.create_bucket("bkt").unwrap();
    b.put_bytes("k", b"old").unwrap();
    b.put_bytes("other", b"damaged too").unwrap();
    for key in ["k", "other"] {
        db.engine.test_write(|w| w.put(&keys::object("bkt", key), &[0xEE, 1, 2])).unwrap();
    }
    let (found, findings) = super::scan(&db.engine, None).unwrap();
    assert_eq!(found.corrupt.len(), 2);
    b.put_bytes("k", b"new").unwrap();
    let report = super::remove(&db.engine, super::RemoveReport { found, ..Default::default() }, findings).unwrap();
    let names = |list: &[super::CorruptObject]| list.iter().map(|c| c.key.clone()).collect::<Vec<_>>();
    assert_eq!(names(&report.changed), ["k"]);
    assert_eq!(names(&report.removed), ["other"]);
    assert_eq!(b.get_bytes("k").unwrap(), b"new");
    assert!(matches!(b.get_bytes("other"), Err(crate::Error::NoSuchKey { .. })));
    assert!(db.verify().unwrap().is_clean());
}

/// A manifest damaged so that its segment id names another object's segment — ids are
/// handed out in sequence, so a flipped low bit usually does. The record's CRC32C finds
/// the damage at decode: a ranged read of the damaged object fails instead of returning
/// the other object's bytes, and deleting it frees none of the other object's chunks.
#[test]
fn a_segment_id_damaged_into_another_objects_reads_and_frees_nothing_of_it() {
    use crate::data::records::{Body, Manifest};
    let db = crate::Datastore::builder().chunk_size(1000).inline_threshold(100).in_memory().unwrap();
    let b = db.create_bucket("bkt").unwrap();
    let body = |seed: u32| (0..5_000u32).map(|i| (i.wrapping_mul(seed) % 251) as u8).collect::<Vec<u8>>();
    b.put_bytes("damaged", body(3)).unwrap();
    b.put_bytes("healthy", body(7)).unwrap();
    let seg = |key: &str| {
        let raw = db.engine.read(|r| Ok(r.get(&keys::object("bkt", key))?.unwrap().to_vec())).unwrap();
        let owner = crate::data::records::Owner { bucket: "bkt", key };
        let Body::Segments(segs) = Manifest::decode(&raw, owner).unwrap().body else { panic!("chunked") };
        (raw, segs[0].id)
    };
    let (mut raw, id) = seg("damaged");
    let (_, other) = seg("healthy");
    let at = raw.windows(8).position(|w| w == id.to_le_bytes()).unwrap();
    raw[at..at + 8].copy_from_slice(&other.to_le_bytes());
    db.engine.test_write(|w| w.put(&keys::object("bkt", "damaged"), &raw)).unwrap();

    let e = b.get_range("damaged", 0..10).unwrap_err();
    assert!(
        matches!(&e, crate::Error::Corrupted { reason, .. } if reason.contains("manifest checksum mismatch")),
        "{e:?}"
    );
    assert!(matches!(b.get_bytes("damaged"), Err(crate::Error::Corrupted { .. })));
    b.delete("damaged").unwrap();
    assert_eq!(b.get_bytes("healthy").unwrap(), body(7));
    let report = db.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.objects, 1);
}

/// A small xorshift generator: the damage of one seed is the same on every run.
fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// A small store of inline, chunked and packed objects, a pending and a completed multipart
/// upload, with one record (value or key) damaged as `rnd` says; and what was damaged.
fn randomly_damaged(rnd: &mut impl FnMut() -> u64) -> (crate::Datastore, String) {
    let db = crate::Datastore::builder().chunk_size(100).inline_threshold(50).in_memory().unwrap();
    let b = db.create_bucket("bkt").unwrap();
    for i in 0..30u8 {
        b.put_bytes(&format!("k{i:02}"), vec![i; usize::from(i)]).unwrap();
    }
    for i in 0..3u8 {
        b.put_bytes(&format!("c{i}"), vec![i; 300]).unwrap();
    }
    db.create_bucket("oth").unwrap().put_bytes("x", b"y").unwrap();
    db.compact().unwrap();
    b.put_bytes("k05x", b"new").unwrap();
    let up = b.create_upload("m", crate::ObjectMeta::default()).unwrap();
    b.upload_part(&up, 1, &[1u8; 200][..]).unwrap();
    b.upload_part(&up, 2, &[2u8; 20][..]).unwrap();
    let done = b.create_upload("d", crate::ObjectMeta::default()).unwrap();
    let d1 = b.upload_part(&done, 1, &[3u8; 120][..]).unwrap();
    let parts = [crate::CompletedPart { part_number: 1, etag: d1.etag }];
    b.complete_upload(&done, &parts, &crate::CompleteOptions::default()).unwrap();

    let all: Vec<(Vec<u8>, Vec<u8>)> = db
        .engine
        .read(|r| {
            Ok(r.scan(crate::engine::range_from(b"", None), usize::MAX)?
                .into_iter()
                .map(|(k, v)| (k, v.to_vec()))
                .collect())
        })
        .unwrap();
    let (k, v) = all[(rnd() % all.len() as u64) as usize].clone();
    let mode = rnd() % 6;
    let (nk, nv) = match mode {
        0 if !v.is_empty() => {
            let mut v = v.clone();
            let bit = (rnd() % (v.len() as u64 * 8)) as usize;
            v[bit / 8] ^= 1 << (bit % 8);
            (k.clone(), v)
        }
        1 => (k.clone(), v[..(rnd() % (v.len() as u64 + 1)) as usize].to_vec()),
        2 => (k.clone(), (0..rnd() % 24).map(|_| rnd() as u8).collect()),
        3 if !v.is_empty() => {
            let mut v = v.clone();
            v[0] = [0x81, 0x01, 0x02, 0x00][(rnd() % 4) as usize];
            (k.clone(), v)
        }
        4 if !k.is_empty() => {
            let mut k = k.clone();
            let bit = (rnd() % (k.len() as u64 * 8)) as usize;
            k[bit / 8] ^= 1 << (bit % 8);
            (k, v.clone())
        }
        _ => (k.clone(), Vec::new()),
    };
    db.engine
        .test_write(|w| {
            w.delete(&k)?;
            w.put(&nk, &nv)
        })
        .unwrap();
    let what = format!("{:?} -> {:?} (mode {mode})", String::from_utf8_lossy(&k), String::from_utf8_lossy(&nk));
    (db, what)
}

/// Runs every read of the store (each call's result ignored: an error is fine); returns the
/// names of the calls that panicked.
#[allow(clippy::too_many_lines)]
fn every_call(db: &crate::Datastore) -> Vec<String> {
    use std::io::Read;
    use std::panic::{AssertUnwindSafe, catch_unwind};

    let mut panics = Vec::new();
    let mut step = |name: &str, f: &mut dyn FnMut()| {
        if catch_unwind(AssertUnwindSafe(f)).is_err() {
            panics.push(name.to_owned());
        }
    };
    let keys: Vec<String> = (0..30)
        .map(|i| format!("k{i:02}"))
        .chain(["k05x", "c0", "c1", "c2", "m", "d", "a", "zz", "k05y", "k"].iter().map(|s| (*s).to_owned()))
        .collect();
    let uploads = || crate::Bucket::new(db.clone(), "bkt").list_uploads("").unwrap_or_default();
    step("list_buckets", &mut || _ = db.list_buckets());
    for bn in ["bkt", "oth"] {
        let b = crate::Bucket::new(db.clone(), bn);
        step("bucket", &mut || _ = db.bucket(bn));
        for (p, d) in [("", None), ("k", None), ("k0", Some("/")), ("", Some("0")), ("c", None)] {
            step("list", &mut || {
                let mut opts = crate::ListOptions {
                    prefix: p.into(),
                    delimiter: d.map(Into::into),
                    max_keys: 3,
                    ..Default::default()
                };
                for _ in 0..50 {
                    match b.list(&opts) {
                        Ok(page) if page.next_token.is_some() => opts.continuation = page.next_token,
                        _ => break,
                    }
                }
            });
            step("list_iter", &mut || {
                if let Ok(it) = b.list_iter(crate::ListOptions::prefix(p)) {
                    it.take(100).for_each(|_| {});
                }
            });
        }
        for key in &keys {
            step("get", &mut || _ = b.get_bytes(key));
            step("head", &mut || _ = b.head(key));
            step("exists", &mut || _ = b.exists(key));
            step("range", &mut || _ = b.get_range(key, 1..3));
            step("open", &mut || {
                if let Ok(mut r) = b.open(key) {
                    let _ = r.read_to_end(&mut Vec::new());
                    let _ = r.part_range(1);
                }
            });
        }
        for u in uploads() {
            step("list_parts", &mut || _ = b.list_parts(&u.upload_id));
            step("upload_info", &mut || _ = b.upload_info(&u.upload_id));
        }
        step("verify_bucket", &mut || _ = db.verify_bucket(bn));
    }
    let b = crate::Bucket::new(db.clone(), "bkt");
    step("verify", &mut || _ = db.verify());
    step("copy", &mut || _ = b.copy("k03", "copy1"));
    step("copy chunked", &mut || _ = b.copy("c1", "copy2"));
    for (i, key) in keys.iter().enumerate() {
        match i % 3 {
            0 => step("put", &mut || _ = b.put_bytes(key, b"zz")),
            1 => step("delete", &mut || _ = b.delete(key)),
            _ => step("put chunked", &mut || _ = b.put_bytes(key, vec![9u8; 250])),
        }
    }
    step("txn", &mut || {
        let _ = db.transaction(|tx| {
            let t = tx.bucket("bkt")?;
            t.put_bytes("k10", b"t")?;
            t.delete("k11")?;
            let _ = t.copy("c0", "k12");
            let _ = t.list(&crate::ListOptions::default());
            Ok::<_, crate::Error>(())
        });
    });
    for u in uploads() {
        step("complete", &mut || {
            if let Ok(parts) = b.list_parts(&u.upload_id) {
                let parts: Vec<_> = parts
                    .into_iter()
                    .map(|p| crate::CompletedPart { part_number: p.part_number, etag: p.etag })
                    .collect();
                let _ = b.complete_upload(&u.upload_id, &parts, &crate::CompleteOptions::default());
            }
        });
        step("abort", &mut || _ = b.abort_upload(&u.upload_id));
    }
    step("abort_old", &mut || _ = db.abort_uploads_older_than(std::time::Duration::ZERO));
    step("gc", &mut || _ = db.gc());
    step("remove_corrupt", &mut || _ = db.remove_corrupt(None));
    step("compact", &mut || _ = db.compact());
    step("verify again", &mut || _ = db.verify());
    step("delete_bucket", &mut || _ = db.delete_bucket("oth"));
    step("delete_bucket bkt", &mut || _ = db.delete_bucket("bkt"));
    step("create_bucket", &mut || _ = db.create_bucket("bkt"));
    step("gc again", &mut || _ = db.gc());
    panics
}

/// Damages one record (value or key) of a small store at random, then runs every call: each
/// must return (an error is fine), never panic or hang. `DAMAGE_SEEDS=N` runs more seeds.
#[test]
fn random_record_damage_never_panics_or_hangs() {
    let seeds: u64 = std::env::var("DAMAGE_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let mut failures = Vec::new();
    for seed in 0..seeds {
        let (db, what) = randomly_damaged(&mut xorshift(seed));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(every_call(&db));
        });
        match rx.recv_timeout(std::time::Duration::from_secs(30)) {
            Ok(p) if p.is_empty() => {}
            Ok(p) => failures.push(format!("seed {seed}: {what}: panicked in {p:?}")),
            Err(_) => failures.push(format!("seed {seed}: {what}: hung")),
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}
