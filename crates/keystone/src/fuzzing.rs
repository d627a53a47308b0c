//! Thin wrappers over crate internals for the cargo-fuzz targets in `fuzz/` and their smoke
//! tests. Not a stable API.

use crate::data::{keys, names, pack, records};

/// Whether `name` is a valid bucket name.
pub fn bucket_name_ok(name: &str) -> bool {
    names::check_bucket(name).is_ok()
}

/// Whether `key` is a valid object key.
pub fn object_key_ok(key: &str) -> bool {
    names::check_key(key).is_ok()
}

/// Encodes every key kind from the parts and parses it back; `false` when a round trip or the
/// ordering of chunk keys is wrong. Only meaningful for valid bucket names and keys.
pub fn keys_round_trip(bucket: &str, key: &str, id: u64, index: u32) -> bool {
    let chunk = keys::chunk(bucket, id, index);
    let chunk_ok = keys::parse_chunk(&chunk) == Some((bucket, id, index))
        && chunk.starts_with(&keys::segment_prefix(bucket, id))
        && chunk.starts_with(&keys::bucket_data_prefix(bucket))
        && (index == u32::MAX || chunk < keys::chunk(bucket, id, index + 1));
    let object = keys::object(bucket, key);
    let object_ok = keys::object_name(bucket, &object) == Some(key)
        && object.starts_with(&keys::objects_prefix(bucket))
        && !object.starts_with(keys::META)
        && !object.starts_with(keys::DATA);
    // Part keys carry a part number after the id.
    let books_ok = keys::Book::ALL.into_iter().filter(|&b| b != keys::Book::Part).all(|b| {
        let k = b.key(bucket, id);
        b.parse(&k) == Some((bucket.to_owned(), id, &[][..])) && k.starts_with(&b.in_bucket(bucket))
    });
    let part = keys::part(bucket, id, index);
    let part_ok = keys::Book::Part.parse(&part) == Some((bucket.to_owned(), id, &index.to_be_bytes()[..]));
    chunk_ok && object_ok && books_ok && part_ok
}

/// Decodes `bytes` as every record kind and as keys; each must succeed or fail with an error,
/// never panic. A record that decodes must re-encode to something that decodes equal.
/// Returns how many kinds decoded.
pub fn decode_all(bytes: &[u8]) -> usize {
    let mut n = 0;
    // The three views of a manifest share one decoder: each accepts exactly what the full
    // decode accepts, and finds the same size, checksum and body.
    // A version 3 manifest decodes only as its owner's: the fuzzer's records belong to this one.
    let owner = records::Owner { bucket: "fuzz", key: "k" };
    let full = records::Manifest::decode(bytes, owner);
    match (&full, records::Manifest::decode_head(bytes, owner), records::ReadPlan::decode(bytes, owner)) {
        (Ok(full), Ok(head), Ok(plan)) => {
            // Also what `compact`'s upgrade of an older manifest (`records::reseal`) does.
            let again = records::Manifest::decode(&full.encode(owner), owner);
            assert_eq!(again.ok().as_ref(), Some(full), "manifest round trip");
            n += 2;
            assert_eq!((full.size, full.crc), (plan.size, plan.crc), "read decode disagrees");
            assert_eq!((&full.etag, &full.meta, full.segments()), (&head.etag, &head.meta, head.segments()));
            match (&full.body, &plan.body) {
                (records::Body::Inline(a), records::BodyRef::Inline(b)) => assert_eq!(&a[..], *b, "inline body"),
                (records::Body::Segments(a), records::BodyRef::Segments(b)) => assert_eq!(a, b, "segments"),
                _ => panic!("read decode found another kind of body"),
            }
        }
        (Err(_), Err(_), Err(_)) => {}
        (full, head, plan) => {
            panic!("decode {:?}, head decode {:?}, read decode {:?}", full.is_ok(), head.is_ok(), plan.is_ok())
        }
    }
    if let Ok(r) = records::StageRecord::decode(bytes) {
        assert_eq!(records::StageRecord::decode(&r.encode()).ok(), Some(r), "staging record round trip");
        n += 1;
    }
    if let Ok(r) = records::MpuRecord::decode(bytes) {
        assert_eq!(records::MpuRecord::decode(&r.encode()).ok(), Some(r), "upload record round trip");
        n += 1;
    }
    if let Ok(r) = records::PartRecord::decode(bytes) {
        assert_eq!(records::PartRecord::decode(&r.encode()).ok(), Some(r), "part record round trip");
        n += 1;
    }
    if let Ok(r) = records::DoneRecord::decode(bytes) {
        assert_eq!(records::DoneRecord::decode(&r.encode()).ok(), Some(r), "completed upload record round trip");
        n += 1;
    }
    // A pack record, read as stored under the key before the first NUL: a pack that decodes
    // is built again, byte for byte, from its entries.
    if let Some(nul) = bytes.iter().position(|&b| b == 0)
        && let Ok(last) = std::str::from_utf8(&bytes[..nul])
        && let Ok(entries) = pack::decode(&bytes[nul + 1..], last)
    {
        let mut b = pack::Builder::new(pack::PACK_PAGE, usize::MAX);
        for e in &entries {
            b.push(e.key, e.manifest);
        }
        assert_eq!(b.finish(), (last.to_owned(), bytes[nul + 1..].to_vec()), "pack round trip");
        assert_eq!(pack::first_key(&bytes[nul + 1..]), entries.first().map(|e| e.key), "first key");
        for e in &entries {
            assert_eq!(pack::find(&bytes[nul + 1..], last, e.key).ok(), Some(pack::Place::At(e.manifest)), "find");
        }
        n += 1;
    }
    // The lookup's decoder fails exactly where the whole decoder does.
    if let Some(nul) = bytes.iter().position(|&b| b == 0)
        && let Ok(last) = std::str::from_utf8(&bytes[..nul])
    {
        let rec = &bytes[nul + 1..];
        for key in ["", "k", last] {
            match (pack::find(rec, last, key), pack::decode(rec, last)) {
                (Ok(place), Ok(entries)) => {
                    let want = match entries.binary_search_by(|e| e.key.cmp(key)) {
                        Ok(i) => pack::Place::At(entries[i].manifest),
                        Err(0) => pack::Place::Before,
                        Err(_) => pack::Place::Absent,
                    };
                    assert_eq!(place, want, "find places {key:?} as decode does");
                }
                (found, decoded) => assert_eq!(found.is_ok(), decoded.is_ok(), "find fails as decode does"),
            }
        }
    }
    let _ = pack::first_key(bytes);
    // The store's format record: refused, accepted or damaged, never a panic.
    let _ = crate::data::format::check(Some(bytes), None);
    n += usize::from(records::BucketRecord::decode(bytes).is_ok());
    n += usize::from(records::open_chunk(bytes).is_ok());
    n += usize::from(keys::parse_chunk(bytes).is_some());
    for b in keys::Book::ALL {
        n += usize::from(b.parse(bytes).is_some());
    }
    n
}
