//! Round trips, old formats, and damage of every record kind.

use super::*;

const OWNER: Owner<'static> = Owner { bucket: "bkt", key: "k" };

fn meta() -> ObjectMeta {
    let mut m = ObjectMeta { content_type: Some("text/plain".into()), expires: Some("x".into()), ..Default::default() };
    m.user.insert("a".into(), "b".into());
    m
}

/// A small object's manifest, with metadata.
fn small() -> Manifest {
    Manifest {
        size: 3,
        etag: "abc".into(),
        crc: 7,
        created: 1,
        modified: 2,
        parts: 0,
        meta: meta(),
        body: Body::Inline(b"xyz".to_vec()),
    }
}

/// `small` stored in one segment instead of inline, and each one's inline body length.
fn inline_and_chunked() -> [(Manifest, usize); 2] {
    let chunked =
        Manifest { size: 10, body: Body::Segments(vec![Segment { id: 4, len: 10, chunk_size: 4 }]), ..small() };
    [(small(), 3), (chunked, 0)]
}

#[test]
fn manifests_round_trip() {
    let inline = small();
    assert_eq!(Manifest::decode(&inline.encode(OWNER), OWNER).expect("decodes"), inline);
    let head = Manifest::decode_head(&inline.encode(OWNER), OWNER).expect("decodes");
    assert_eq!(head.body, Body::Inline(Vec::new()));
    assert_eq!(head.meta, inline.meta);
    let rec = inline.encode(OWNER);
    let plan = ReadPlan::decode(&rec, OWNER).expect("decodes");
    assert_eq!((plan.size, plan.crc, plan.body), (3, 7, BodyRef::Inline(b"xyz")));
    // What a read does not copy is still checked: an ETag that is not UTF-8 is damage.
    let mut bad = rec.clone();
    let at = bad.windows(3).position(|w| w == b"abc").expect("etag in the record");
    bad[at] = 0xff;
    assert!(ReadPlan::decode(&bad, OWNER).unwrap_err().to_string().contains("UTF-8"));
    assert!(Manifest::decode_head(&bad, OWNER).unwrap_err().to_string().contains("UTF-8"));

    let chunked = Manifest {
        size: 30,
        body: Body::Segments(vec![
            Segment { id: 1, len: 10, chunk_size: 4 },
            Segment { id: 9, len: 20, chunk_size: 8 },
        ]),
        parts: 2,
        ..inline
    };
    assert_eq!(Manifest::decode(&chunked.encode(OWNER), OWNER).expect("decodes"), chunked);
    assert_eq!(Manifest::decode_head(&chunked.encode(OWNER), OWNER).expect("decodes"), chunked);
    let rec = chunked.encode(OWNER);
    let plan = ReadPlan::decode(&rec, OWNER).expect("decodes");
    assert_eq!((plan.size, plan.body), (30, BodyRef::Segments(chunked.segments().to_vec())));
}

#[test]
fn other_records_round_trip() {
    let b = BucketRecord { created: 42 };
    assert_eq!(BucketRecord::decode(&b.encode()).expect("decodes"), b);
    let s = StageRecord { purpose: StagePurpose::Part, key: "k".into(), started: 5, segs: vec![1, 2] };
    assert_eq!(StageRecord::decode(&s.encode()).expect("decodes"), s);
    let m = MpuRecord { key: "k".into(), initiated: 9, meta: meta() };
    assert_eq!(MpuRecord::decode(&m.encode()).expect("decodes"), m);
    let p = PartRecord { seg: Segment { id: 3, len: 5, chunk_size: 2 }, md5: [7; 16], crc: 1, modified: 2 };
    assert_eq!(PartRecord::decode(&p.encode()).expect("decodes"), p);
}

#[test]
fn damaged_records_are_errors_not_panics() {
    let m = Manifest {
        size: 0,
        etag: String::new(),
        crc: 0,
        created: 0,
        modified: 0,
        parts: 0,
        meta: meta(),
        body: Body::Inline(vec![]),
    }
    .encode(OWNER);
    for cut in 0..m.len() {
        assert!(Manifest::decode(&m[..cut], OWNER).is_err(), "cut at {cut}");
    }
    let mut wrong_version = m.clone();
    wrong_version[0] = 9;
    assert!(Manifest::decode(&wrong_version, OWNER).unwrap_err().to_string().contains("format version 9"));
    let mut trailing = m;
    trailing.push(0);
    assert!(Manifest::decode(&trailing, OWNER).is_err());
    assert!(Manifest::decode_head(&trailing, OWNER).is_err());
    assert!(ReadPlan::decode(&trailing, OWNER).is_err());
    assert!(BucketRecord::decode(&[]).is_err());
}

#[test]
fn v1_records_of_earlier_releases_still_decode() {
    for (m, body) in &inline_and_chunked() {
        let body = *body;
        let v3 = m.encode(OWNER);
        assert_eq!(v3[0], FORMAT_V3);
        let v1 = as_version(&v3, body, FORMAT_V1);
        assert_eq!(v1.len(), v3.len() - 4);
        assert_eq!(&Manifest::decode(&v1, OWNER).expect("a V1 manifest decodes"), m);
        assert!(ReadPlan::decode(&v1, OWNER).is_ok());
    }
    let s = StageRecord { purpose: StagePurpose::Put, key: "k".into(), started: 5, segs: vec![1, 2] };
    assert_eq!(StageRecord::decode(&as_version(&s.encode(), 0, FORMAT_V1)).expect("decodes"), s);
    let p = PartRecord { seg: Segment { id: 3, len: 5, chunk_size: 2 }, md5: [7; 16], crc: 1, modified: 2 };
    assert_eq!(PartRecord::decode(&as_version(&p.encode(), 0, FORMAT_V1)).expect("decodes"), p);
}

/// A manifest is sealed as its object's: handed to another key — a key damaged in a pack's
/// framing or in a redb page — it does not decode there. V2 manifests, written before, decode
/// under any key, as they always did.
#[test]
fn a_manifest_decodes_only_as_its_owners() {
    let others = [
        Owner { bucket: "bkt", key: "l" },
        Owner { bucket: "bkt", key: "k2" },
        Owner { bucket: "bkt2", key: "k" },
        // The NUL between bucket and key is covered: the parts cannot slide.
        Owner { bucket: "bk", key: "tk" },
    ];
    for (m, body) in &inline_and_chunked() {
        let body = *body;
        let rec = m.encode(OWNER);
        assert_eq!(&Manifest::decode(&rec, OWNER).expect("decodes as its owner's"), m);
        for other in others {
            let e = Manifest::decode(&rec, other).unwrap_err();
            assert!(e.to_string().contains("checksum mismatch"), "{other:?}: {e}");
            assert!(Manifest::decode_head(&rec, other).is_err(), "{other:?}");
            assert!(ReadPlan::decode(&rec, other).is_err(), "{other:?}");
        }
        let v2 = as_version(&rec, body, FORMAT_V2);
        for owner in others.into_iter().chain([OWNER]) {
            assert_eq!(&Manifest::decode(&v2, owner).expect("a V2 manifest decodes"), m);
        }
    }
    // Only a manifest is ever version 3.
    let mut stage = StageRecord { purpose: StagePurpose::Put, key: "k".into(), started: 5, segs: vec![1] }.encode();
    stage[0] = FORMAT_V3;
    assert!(StageRecord::decode(&stage).is_err());
}

/// Every single-bit flip in a record that names segments is found at decode — outside an
/// inline body, which the object's CRC32C covers when it is read.
#[test]
fn records_that_name_segments_detect_every_bit_flip() {
    let chunked = Manifest {
        size: 30,
        etag: "e-2".into(),
        crc: 7,
        created: 1,
        modified: 2,
        parts: 2,
        meta: meta(),
        body: Body::Segments(vec![
            Segment { id: 1, len: 10, chunk_size: 4 },
            Segment { id: 9, len: 20, chunk_size: 8 },
        ]),
    };
    let inline = Manifest { size: 4, parts: 0, body: Body::Inline(b"body".to_vec()), ..chunked.clone() };
    let stage = StageRecord { purpose: StagePurpose::Part, key: "k".into(), started: 5, segs: vec![1, 2] };
    let part = PartRecord { seg: Segment { id: 3, len: 5, chunk_size: 2 }, md5: [7; 16], crc: 1, modified: 2 };
    // (what, record, bytes of inline body at its end, whether a damaged copy fails to decode)
    type Case<'a> = (&'a str, Vec<u8>, usize, &'a dyn Fn(&[u8]) -> bool);
    let records: [Case<'_>; 4] = [
        ("chunked manifest", chunked.encode(OWNER), 0, &|r| {
            Manifest::decode(r, OWNER).is_err() && ReadPlan::decode(r, OWNER).is_err()
        }),
        ("inline manifest", inline.encode(OWNER), 4, &|r| {
            Manifest::decode_head(r, OWNER).is_err() && ReadPlan::decode(r, OWNER).is_err()
        }),
        ("staging record", stage.encode(), 0, &|r| StageRecord::decode(r).is_err()),
        ("part record", part.encode(), 0, &|r| PartRecord::decode(r).is_err()),
    ];
    for (what, rec, body, fails) in records {
        for i in 0..rec.len() - body {
            for bit in 0..8 {
                let mut bad = rec.clone();
                bad[i] ^= 1 << bit;
                assert!(fails(&bad), "{what}: flip of bit {bit} of byte {i} decoded");
            }
        }
    }
}

#[test]
fn the_id_counter_is_sealed_and_its_old_form_still_read() {
    let rec = encode_idgen(0x1234);
    assert_eq!(decode_idgen(&rec).unwrap(), 0x1234);
    assert_eq!(decode_idgen(&0x99u64.to_be_bytes()).unwrap(), 0x99);
    for i in 0..rec.len() {
        for bit in 0..8 {
            let mut bad = rec.clone();
            bad[i] ^= 1 << bit;
            assert!(decode_idgen(&bad).is_err(), "flip of bit {bit} of byte {i} decoded");
        }
    }
    assert!(decode_idgen(&rec[..11]).is_err());
    assert!(decode_idgen(&[]).is_err());
}

#[test]
fn a_segment_with_more_chunks_than_an_index_numbers_is_damage() {
    let m = |len: u64| Manifest {
        size: len,
        etag: String::new(),
        crc: 0,
        created: 0,
        modified: 0,
        parts: 0,
        meta: ObjectMeta::default(),
        body: Body::Segments(vec![Segment { id: 1, len, chunk_size: 1 }]),
    };
    let most = u64::from(u32::MAX) + 1;
    assert!(Manifest::decode(&m(most).encode(OWNER), OWNER).is_ok());
    let e = Manifest::decode(&m(most + 1).encode(OWNER), OWNER).unwrap_err();
    assert!(e.to_string().contains("more chunks than a chunk index"), "{e}");
}

#[test]
fn chunks_detect_bit_flips() {
    let mut rec = chunk_buffer(4);
    rec.extend_from_slice(b"data");
    let crc = seal_chunk(&mut rec);
    assert_eq!(crc, crc32c::crc32c(b"data"));
    assert_eq!(open_chunk(&rec).expect("valid"), b"data");
    for i in 0..rec.len() {
        let mut bad = rec.clone();
        bad[i] ^= 0x10;
        assert!(open_chunk(&bad).is_err(), "flip at {i}");
    }
    assert!(open_chunk(&rec[..3]).is_err());
}
