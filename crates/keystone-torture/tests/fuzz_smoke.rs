//! The cargo-fuzz targets' entry points (fuzz/fuzz_targets/*) run on random inputs in CI, so
//! they stay working between fuzzing sessions, plus regressions the fuzzers found.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use keystone::fuzzing;
use keystone_torture::model::{Harness, Target, ops_from_bytes};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn names_never_panic(name in ".{0,80}", key in proptest::collection::vec(any::<char>(), 0..40)) {
        let key: String = key.into_iter().collect();
        let ok = fuzzing::bucket_name_ok(&name);
        // A valid bucket name can never collide with the internal prefixes.
        prop_assert!(!ok || !(name.starts_with("__") || name.contains('\0')));
        let _ = fuzzing::object_key_ok(&key);
    }

    #[test]
    fn keys_round_trip(b in "[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]", key in "[^\u{0}]{1,50}", id in any::<u64>(), index in any::<u32>()) {
        if fuzzing::bucket_name_ok(&b) && fuzzing::object_key_ok(&key) {
            prop_assert!(fuzzing::keys_round_trip(&b, &key, id, index));
        }
    }

    #[test]
    fn records_decode_arbitrary_bytes_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = fuzzing::decode_all(&bytes);
        let mut v1 = bytes.clone();
        v1.insert(0, 1); // format version 1, so decoding gets past the first byte
        let _ = fuzzing::decode_all(&v1);
    }
}

/// A manifest whose segment lengths overflow u64 when added up.
#[test]
fn manifest_with_overflowing_segment_lengths_is_an_error_not_a_panic() {
    let mut m = vec![1u8];
    m.extend(5u64.to_le_bytes()); // size
    m.extend(0u32.to_le_bytes()); // etag ""
    m.extend(0u32.to_le_bytes()); // crc
    m.extend(0u64.to_le_bytes()); // created
    m.extend(0u64.to_le_bytes()); // modified
    m.extend(0u32.to_le_bytes()); // parts
    m.extend([0u8; 6]); // no optional metadata
    m.extend(0u32.to_le_bytes()); // no user metadata
    m.push(1); // segments
    m.extend(2u32.to_le_bytes());
    for _ in 0..2 {
        m.extend(7u64.to_le_bytes());
        m.extend(u64::MAX.to_le_bytes());
        m.extend(1u32.to_le_bytes());
    }
    assert_eq!(fuzzing::decode_all(&m), 0);
}

/// Every one-byte change, cut and extension of a valid inline manifest: the full, head and
/// read decodes (checked against each other inside `decode_all`) agree on each.
#[test]
fn damaged_valid_manifests_decode_the_same_in_every_view() {
    let mut m = vec![1u8];
    m.extend(3u64.to_le_bytes()); // size
    m.extend(2u32.to_le_bytes());
    m.extend(b"e1"); // etag
    m.extend(7u32.to_le_bytes()); // crc
    m.extend([0u8; 16]); // created, modified
    m.extend(0u32.to_le_bytes()); // parts
    m.push(1); // content type
    m.extend(4u32.to_le_bytes());
    m.extend(b"text");
    m.extend([0u8; 5]); // no other optional metadata
    m.extend(1u32.to_le_bytes()); // one user entry
    for s in [&b"k"[..], b"v"] {
        m.extend((s.len() as u32).to_le_bytes());
        m.extend(s);
    }
    m.push(0); // inline
    m.extend(3u32.to_le_bytes());
    m.extend(b"xyz");
    assert_eq!(fuzzing::decode_all(&m), 2, "the full and head decodes accept it");
    damage_everywhere(&m);
}

/// Every one-byte change (three flips per byte) and every cut of `record` goes through
/// `decode_all` (which asserts its views agree); one byte more decodes as nothing.
fn damage_everywhere(record: &[u8]) {
    for i in 0..record.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut bad = record.to_vec();
            bad[i] ^= flip;
            let _ = fuzzing::decode_all(&bad);
        }
        let _ = fuzzing::decode_all(&record[..i]);
    }
    let mut longer = record.to_vec();
    longer.push(0);
    assert_eq!(fuzzing::decode_all(&longer), 0);
}

/// A pack record stored under `b` (as `decode_all` reads one: key, NUL, record), then every
/// one-byte change and cut of it: each decodes and re-encodes to itself, or is an error.
#[test]
fn damaged_pack_records_are_errors_not_panics() {
    let mut p = b"b\0".to_vec();
    p.push(0x81);
    p.extend(2u32.to_le_bytes());
    for (key, manifest) in [(&b"a"[..], &b"\x01xyz"[..]), (b"b", b"\x01q")] {
        p.extend((key.len() as u32).to_le_bytes());
        p.extend(key);
        p.extend((manifest.len() as u32).to_le_bytes());
        p.extend(manifest);
    }
    assert_eq!(fuzzing::decode_all(&p), 1, "the pack decodes");
    damage_everywhere(&p);
}

#[test]
fn model_runs_fuzzer_style_inputs() {
    let mut rng = fastrand::Rng::with_seed(3);
    for _ in 0..6 {
        let bytes: Vec<u8> = (0..rng.usize(0..300)).map(|_| rng.u8(..)).collect();
        let mut h = Harness::new(Target::File).unwrap();
        for op in ops_from_bytes(&bytes) {
            h.apply(&op).unwrap();
        }
        h.check_clean().unwrap();
    }
}
