//! Packing small objects (`compact`'s first step): runs of consecutive small inline objects of
//! a bucket become pack records (format in `data::pack`; reads, writes and listings of packs in
//! `objects` and `list`; docs/design.md, "Packs of small objects").

use std::borrow::Cow;

use crate::data::keys;
use crate::data::pack;
use crate::data::records::{self, BodyRef, Owner, ReadPlan};
use crate::engine::{Engine, next_key, range_from};
use crate::error::Result;
use crate::objects;
use crate::storage::{Commit, KeyRange, WriteTxn, prefix_end};

/// Records of one bucket packed per transaction (fewer where the backend's limits say so).
const PACK_BATCH: usize = 4096;

/// What packing one bucket did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Packed {
    /// Objects in the pack records written.
    pub objects: u64,
    /// Pack records written.
    pub records: u64,
    /// Manifests of earlier releases written back as this release's.
    pub resealed: u64,
}

impl Packed {
    pub(crate) fn add(&mut self, other: Packed) {
        self.objects += other.objects;
        self.records += other.records;
        self.resealed += other.resealed;
    }
}

/// Packs runs of small inline objects of `bucket` into pack records (see `data::pack`), one
/// batch of records per durable transaction; objects already packed are packed again, so
/// runs broken up by writes since the last `compact` are filled back up. Manifests of earlier
/// releases it walks are written back as this release's.
pub(crate) fn pack_bucket(engine: &Engine, bucket: &str) -> Result<Packed> {
    let limits = engine.kv.limits();
    // A batch, and unpacking one pack for a write, each take at most a quarter of a
    // transaction's operations.
    let batch = PACK_BATCH.min(limits.max_txn_ops / 4);
    let page = pack::PACK_PAGE.min(limits.max_value_size);
    let mut counts = Packed::default();
    if batch < 2 {
        return Ok(counts);
    }
    let base = keys::objects_prefix(bucket);
    let end = prefix_end(&base);
    let mut from = base.clone();
    loop {
        let (next, done) = engine.write_alone("compact", Commit::Durable, |w| {
            pack_batch(w, bucket, range_from(&from, end.as_deref()), batch, page, limits.max_txn_bytes / 4)
        })?;
        counts.add(done);
        match next {
            Some(n) => from = n,
            None => return Ok(counts),
        }
    }
}

/// Repacks the objects of up to `batch` records (and about `max_bytes`) of `range`; returns
/// where the next batch starts (`None` when the range is done) and what it did.
fn pack_batch(
    w: &mut dyn WriteTxn,
    bucket: &str,
    range: KeyRange<'_>,
    batch: usize,
    page: usize,
    max_bytes: usize,
) -> Result<(Option<Vec<u8>>, Packed)> {
    let mut recs = w.scan(range, batch)?;
    let scanned = recs.len();
    let mut bytes = 0;
    if let Some(fit) = recs.iter().position(|(k, v)| {
        bytes += k.len() + v.len();
        bytes > max_bytes
    }) {
        recs.truncate(fit.max(1));
    }
    let Some((last, _)) = recs.last() else { return Ok((None, Packed::default())) };
    let next = (scanned == batch || recs.len() < scanned).then(|| next_key(last));

    let mut plan = Plan {
        bucket,
        builder: pack::Builder::new(page, batch),
        members: Vec::new(),
        deletes: Vec::new(),
        puts: Vec::new(),
        done: Packed::default(),
    };
    for (k, v) in &recs {
        let Ok(objects) = objects::record_objects(bucket, k, v) else {
            // A damaged pack stays where it is, and no new pack reaches across it.
            plan.flush();
            continue;
        };
        let own = !pack::is_pack(v);
        if !own {
            plan.deletes.push(k.clone());
        }
        for (key, manifest) in objects {
            let owner = Owner { bucket, key };
            // A manifest of an earlier release is written back as this one's, sealed with its
            // key: `compact` is the upgrade of objects not written since.
            let (manifest, moved) = match records::reseal(manifest, owner) {
                Some(v3) => {
                    plan.done.resealed += 1;
                    (Cow::Owned(v3), true)
                }
                None => (Cow::Borrowed(manifest), !own),
            };
            let inline = matches!(ReadPlan::decode(&manifest, owner), Ok(ReadPlan { body: BodyRef::Inline(_), .. }));
            if !(inline && plan.builder.packable(manifest.len())) {
                plan.flush();
                if moved {
                    plan.puts.push((keys::object(bucket, key), manifest.into_owned()));
                }
                continue;
            }
            if !plan.builder.fits(key, &manifest, bucket.len() + 1 + key.len()) {
                plan.flush();
            }
            plan.builder.push(key, &manifest);
            plan.members.push((key, manifest, own, moved));
        }
    }
    plan.flush();
    for k in &plan.deletes {
        w.delete(k)?;
    }
    for (k, v) in &plan.puts {
        w.put(k, v)?;
    }
    Ok((next, plan.done))
}

/// The writes that repack one batch: records to delete first, then records to write.
struct Plan<'a> {
    bucket: &'a str,
    builder: pack::Builder,
    /// The objects in `builder`: key, manifest (lent by the scanned records unless resealed;
    /// the builder holds the only copy), whether it is stored on its own now, and whether
    /// its record is to be written (it is in a pack now, or was resealed).
    members: Vec<(&'a str, Cow<'a, [u8]>, bool, bool)>,
    deletes: Vec<Vec<u8>>,
    puts: Vec<(Vec<u8>, Vec<u8>)>,
    done: Packed,
}

impl Plan<'_> {
    /// Ends the pack being built: two or more objects become a pack record (their own records
    /// are deleted); a single one stays, or becomes again, a record of its own.
    fn flush(&mut self) {
        let (last, record) = self.builder.finish();
        let members = std::mem::take(&mut self.members);
        match members.as_slice() {
            [] => {}
            [(key, manifest, _, moved)] => {
                if *moved {
                    self.puts.push((keys::object(self.bucket, key), manifest.to_vec()));
                }
            }
            _ => {
                for (key, _, own, _) in &members {
                    if *own {
                        self.deletes.push(keys::object(self.bucket, key));
                    }
                }
                self.puts.push((keys::object(self.bucket, &last), record));
                self.done.objects += members.len() as u64;
                self.done.records += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::data::{keys, pack};
    use crate::engine::for_each_prefixed;
    use crate::error::Error;

    /// (pack records, objects in them, records of their own) of `bucket`; checks that no
    /// record lies inside a pack's key range (invariant 6).
    fn layout(db: &crate::Datastore, bucket: &str) -> (usize, usize, usize) {
        db.engine
            .read(|r| {
                let mut out = (0, 0, 0);
                let mut prev: Option<String> = None;
                for_each_prefixed(r, &keys::objects_prefix(bucket), 100, |k, v| {
                    let objects: Vec<(&str, &[u8])> = crate::objects::record_objects(bucket, k, v)?.collect();
                    if let (Some(p), Some((first, _))) = (&prev, objects.first()) {
                        assert!(p.as_str() < *first, "a record inside the range of the next pack");
                    }
                    prev = objects.last().map(|(k, _)| (*k).to_owned());
                    if pack::is_pack(v) {
                        out.0 += 1;
                        out.1 += objects.len();
                    } else {
                        out.2 += 1;
                    }
                    Ok(true)
                })?;
                Ok(out)
            })
            .unwrap()
    }

    /// The pack records of `bucket`, as (first key, last key).
    fn pack_ranges(db: &crate::Datastore, bucket: &str) -> Vec<(String, String)> {
        db.engine
            .read(|r| {
                let mut out = Vec::new();
                for_each_prefixed(r, &keys::objects_prefix(bucket), 100, |k, v| {
                    if pack::is_pack(v) {
                        let objects: Vec<(&str, &[u8])> = crate::objects::record_objects(bucket, k, v)?.collect();
                        if let (Some(first), Some(last)) = (objects.first(), objects.last()) {
                            out.push((first.0.to_owned(), last.0.to_owned()));
                        }
                    }
                    Ok(true)
                })?;
                Ok(out)
            })
            .unwrap()
    }

    /// Gets answer the same whichever lookup the store's hint tries first: the hint turns to
    /// seek-first once gets keep finding packs, and back once they keep finding objects stored
    /// on their own; hits, keys missing inside and outside packs, and a missing bucket, in
    /// both orders.
    #[test]
    fn gets_answer_the_same_in_either_lookup_order() {
        let db = crate::Datastore::builder().inline_threshold(100).in_memory().unwrap();
        let b = db.create_bucket("bkt").unwrap();
        for i in 0..200u32 {
            b.put_bytes(&format!("a{:03}", i * 2), i.to_le_bytes()).unwrap();
        }
        db.compact().unwrap();
        // Written after `compact`, past every pack: stored on their own.
        for i in 0..200u32 {
            b.put_bytes(&format!("b{:03}", i * 2), (i + 1000).to_le_bytes()).unwrap();
        }
        let (packs, packed, own) = layout(&db, "bkt");
        assert!(packs > 0 && packed == 200 && own == 200, "{packs} packs, {packed} packed, {own} on their own");
        let gone = db.create_bucket("gone").unwrap();
        db.delete_bucket("gone").unwrap();
        let seek_first = || db.engine.kv.read().unwrap().lookup_hint().unwrap().seek_first();
        let mut orders = Vec::new();
        for round in 0..4 {
            // Packed objects only, then objects on their own only: each run flips the order.
            let (prefix, add) = if round % 2 == 0 { ("a", 0) } else { ("b", 1000) };
            for i in 0..200u32 {
                assert_eq!(b.get_bytes(&format!("{prefix}{:03}", i * 2)).unwrap(), (i + add).to_le_bytes());
                assert!(matches!(b.get_bytes(&format!("{prefix}{:03}", i * 2 + 1)), Err(Error::NoSuchKey { .. })));
                orders.push(seek_first());
            }
            for key in ["a", "a0005", "b", "b0005", "z"] {
                assert!(matches!(b.get_bytes(key), Err(Error::NoSuchKey { .. })), "{key}");
            }
            assert!(matches!(gone.get_bytes("a000"), Err(Error::NoSuchBucket { .. })));
        }
        assert!(orders.contains(&true) && orders.contains(&false), "the order never changed");
        assert!(db.verify().unwrap().is_clean());
    }

    #[test]
    fn compact_packs_runs_of_small_objects_and_a_write_unpacks_one() {
        let db = crate::Datastore::builder().inline_threshold(100).in_memory().unwrap();
        let b = db.create_bucket("bkt").unwrap();
        for i in 0..100u8 {
            // k050 is chunked: no pack reaches across it.
            b.put_bytes(&format!("k{i:03}"), vec![i; if i == 50 { 500 } else { 10 }]).unwrap();
        }
        assert_eq!(layout(&db, "bkt"), (0, 0, 100));
        let report = db.compact().unwrap();
        let (packs, packed, own) = layout(&db, "bkt");
        assert_eq!((packed, own), (99, 1), "{packs} packs");
        assert!((2..10).contains(&packs), "{packs} packs");
        assert_eq!((report.packed_objects, report.pack_records), (99, packs as u64));
        assert!(
            pack_ranges(&db, "bkt").iter().all(|(first, last)| !(first.as_str()..=last.as_str()).contains(&"k050"))
        );
        assert_eq!(b.get_bytes("k049").unwrap(), vec![49u8; 10]);

        // A new key inside a pack's range unpacks that pack only.
        b.put_bytes("k010x", b"new").unwrap();
        let (packs2, packed2, own2) = layout(&db, "bkt");
        assert_eq!(packs2, packs - 1);
        assert_eq!(packed2 + own2, 101);
        assert_eq!(own2 - own, packed - packed2 + 1);
        // A second compact packs it all again, the new key included.
        db.compact().unwrap();
        assert_eq!(layout(&db, "bkt").2, 1);
        assert_eq!(db.verify().unwrap().objects, 101);
    }

    /// `compact` writes every manifest of an earlier release back as this one's (version 3,
    /// sealed with its key), whether it is packed, stays on its own (chunked), or was in a pack
    /// of that release; every field stays the same, and a damaged one is left as it is.
    #[test]
    fn compact_reseals_manifests_of_earlier_releases() {
        use crate::data::records::{FORMAT_V1, FORMAT_V2, FORMAT_V3, Manifest, Owner, as_version};
        let db = crate::Datastore::builder().inline_threshold(100).in_memory().unwrap();
        let b = db.create_bucket("bkt").unwrap();
        let opts = || crate::PutOptions::content_type("text/plain");
        for i in 0..40u8 {
            // k020 is chunked: it stays on its own.
            b.put_bytes_with(&format!("k{i:03}"), &vec![i; if i == 20 { 500 } else { 10 }], opts()).unwrap();
        }
        b.put_bytes("z", b"damaged").unwrap();
        let heads: Vec<_> = (0..40u8).map(|i| b.head(&format!("k{i:03}")).unwrap()).collect();
        // As earlier releases wrote them: k000–k019 as records of their own, V1 and V2 in
        // turn; k021–k039 (V2) in packs; z's V2 record damaged.
        let old = |key: &str, v3: &[u8], version: u8| {
            let m = Manifest::decode(v3, Owner { bucket: "bkt", key }).unwrap();
            let body = if matches!(m.body, crate::data::records::Body::Inline(_)) { m.size as usize } else { 0 };
            as_version(v3, body, version)
        };
        let record = |key: &str| db.engine.read(|r| Ok(r.get(&keys::object("bkt", key))?.unwrap().to_vec())).unwrap();
        let mut builder = pack::Builder::new(pack::PACK_PAGE, 64);
        let mut damaged = Vec::new();
        db.engine
            .test_write(|w| {
                for i in 0..40u8 {
                    let key = format!("k{i:03}");
                    let v3 = w.get(&keys::object("bkt", &key))?.unwrap().to_vec();
                    if i > 20 {
                        builder.push(&key, &old(&key, &v3, FORMAT_V2));
                        w.delete(&keys::object("bkt", &key))?;
                    } else {
                        w.put(&keys::object("bkt", &key), &old(&key, &v3, [FORMAT_V1, FORMAT_V2][usize::from(i % 2)]))?;
                    }
                }
                let (last, pack) = builder.finish();
                w.put(&keys::object("bkt", &last), &pack)?;
                damaged = old("z", &w.get(&keys::object("bkt", "z"))?.unwrap(), FORMAT_V2);
                *damaged.last_mut().unwrap() ^= 0x40; // inside the inline body: the object's CRC finds it
                damaged[3] ^= 0x01; // in the sealed header: the record does not decode
                w.put(&keys::object("bkt", "z"), &damaged)
            })
            .unwrap();
        assert_eq!(record("k000")[0], FORMAT_V1);
        assert_eq!(record("k001")[0], FORMAT_V2);
        assert_eq!(layout(&db, "bkt"), (1, 19, 22));

        let report = db.compact().unwrap();
        // k000–k039 (z does not decode): 20 records of their own, 19 in the pack.
        assert_eq!(report.resealed_manifests, 40, "{report:?}");
        let (packs, packed, own) = layout(&db, "bkt");
        assert_eq!((packed, own), (39, 2), "{packs} packs");
        let mut seen = 0;
        db.engine
            .read(|r| {
                for_each_prefixed(r, &keys::objects_prefix("bkt"), 100, |k, v| {
                    for (key, manifest) in crate::objects::record_objects("bkt", k, v)? {
                        if key != "z" {
                            assert_eq!(manifest[0], FORMAT_V3, "{key}");
                            seen += 1;
                        }
                    }
                    Ok(true)
                })
            })
            .unwrap();
        assert_eq!(seen, 40);
        assert_eq!(db.compact().unwrap().resealed_manifests, 0, "a second compact has nothing to upgrade");
        for (i, head) in heads.iter().enumerate() {
            let key = format!("k{i:03}");
            assert_eq!(&b.head(&key).unwrap(), head, "{key}");
            assert_eq!(b.get_bytes(&key).unwrap(), vec![i as u8; if i == 20 { 500 } else { 10 }]);
        }
        assert_eq!(record("z"), damaged);
        let report = db.verify().unwrap();
        assert_eq!(report.objects, 41);
        assert_eq!(report.corrupt.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["z"]);
    }

    /// A damaged pack reports its damage for the keys of its own range only: keys before it
    /// stay readable, writable and listable (found by review).
    #[test]
    fn a_damaged_pack_does_not_spill_onto_its_neighbours() {
        let db = crate::Datastore::builder().inline_threshold(100).in_memory().unwrap();
        let b = db.create_bucket("bkt").unwrap();
        b.put_bytes("a/1", vec![1u8; 500]).unwrap();
        for i in 0..10 {
            b.put_bytes(&format!("m{i}"), b"y").unwrap();
        }
        b.put_bytes("z", vec![0u8; 500]).unwrap();
        db.compact().unwrap();
        let ranges = pack_ranges(&db, "bkt");
        assert_eq!(ranges, [("m0".to_owned(), "m9".to_owned())]);
        // Cut the last byte off the pack record.
        db.engine
            .test_write(|w| {
                let k = keys::object("bkt", "m9");
                let v = w.get(&k)?.unwrap();
                w.put(&k, &v[..v.len() - 1])
            })
            .unwrap();
        assert!(matches!(b.get_bytes("m3"), Err(Error::Corrupted { .. })));
        assert!(matches!(b.get_bytes("m"), Err(Error::NoSuchKey { .. })));
        assert!(!b.exists("b").unwrap());
        b.put_bytes("b", b"new").unwrap();
        assert_eq!(b.get_bytes("b").unwrap(), b"new");
        let page = b.list(&crate::ListOptions::prefix("a/")).unwrap();
        assert_eq!(page.objects.len(), 1);
        assert!(b.list(&crate::ListOptions::prefix("m")).is_err());
        let report = db.verify().unwrap();
        assert_eq!(report.corrupt.len(), 1, "{report:?}");
    }

    /// A key damaged inside a pack's framing (one that keeps the keys in order) hands the
    /// object's manifest to another key. Its seal covers its key: the damaged key reads as
    /// corrupted, never as the other object's bytes.
    #[test]
    fn a_key_damaged_in_a_pack_does_not_read_another_objects_bytes() {
        let db = crate::Datastore::builder().inline_threshold(100).in_memory().unwrap();
        let b = db.create_bucket("bkt").unwrap();
        for i in [1, 3, 5, 7] {
            b.put_bytes(&format!("m{i}"), vec![i; 20]).unwrap();
        }
        db.compact().unwrap();
        assert_eq!(pack_ranges(&db, "bkt"), [("m1".to_owned(), "m7".to_owned())]);
        // "m3" becomes "m4" in the pack: still in order, the framing decodes.
        db.engine
            .test_write(|w| {
                let k = keys::object("bkt", "m7");
                let mut v = w.get(&k)?.unwrap().to_vec();
                let at = v.windows(2).position(|x| x == b"m3").unwrap();
                v[at + 1] = b'4';
                w.put(&k, &v)
            })
            .unwrap();
        assert!(matches!(b.get_bytes("m4"), Err(Error::Corrupted { .. })), "{:?}", b.get_bytes("m4"));
        assert!(matches!(b.head("m4"), Err(Error::Corrupted { .. })));
        assert!(matches!(b.get_bytes("m3"), Err(Error::NoSuchKey { .. })));
        assert_eq!(b.get_bytes("m5").unwrap(), vec![5u8; 20]);
        let report = db.verify().unwrap();
        assert_eq!(report.corrupt.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["m4"], "{report:?}");
    }

    /// On a backend with transaction limits a pack holds no more objects than a quarter of a
    /// transaction, so a write into it can always unpack it (found by review: 80 tiny objects
    /// per 8 KiB pack, 64 operations per transaction).
    #[test]
    fn packs_fit_the_backend_transaction_limit() {
        let db = crate::Datastore::builder().inline_threshold(100).open_reference_map(65_536, 64, 1 << 20).unwrap();
        let b = db.create_bucket("bkt").unwrap();
        for i in 0..300 {
            b.put_bytes(&format!("k{i:03}"), b"").unwrap();
        }
        db.compact().unwrap();
        db.compact().unwrap();
        assert!(pack_ranges(&db, "bkt").len() >= 300 / 16);
        for i in (0..300).step_by(7) {
            b.put_bytes(&format!("k{i:03}"), b"new").unwrap();
            b.delete(&format!("k{:03}", i + 1)).unwrap();
        }
        assert_eq!(db.verify().unwrap().objects, 300 - 43);
    }
}
