//! Model-based random testing: random sequences of put / delete / copy / get / list /
//! transactions that commit and abort / multipart uploads / bucket create and delete /
//! snapshots taken and re-checked later / gc / compact / reopen, replayed against a real store and a
//! BTreeMap model. After every operation the whole store must equal the model; after every
//! reopen and at the end it must also verify clean (no corrupt object, no leaked chunk, redb
//! integrity check passing).
//!
//! The model and harness are `keystone_torture::model` (crates/keystone-torture/src/model/),
//! included here by path so that this test and the cargo-fuzz target `model` run one model.
//! `PROPTEST_CASES=N` runs more cases (see docs/reliability.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../keystone-torture/src/model/mod.rs"]
#[allow(dead_code, unused_imports)]
mod model;

/// Deterministic content and the cleanliness check the model uses.
#[path = "../../keystone-torture/src/support.rs"]
#[allow(dead_code)]
mod support;

use model::{Cond, Harness, Op, Target, TxOp};
use proptest::prelude::*;

fn small() -> impl Strategy<Value = u8> {
    0u8..8
}

fn tx_op() -> impl Strategy<Value = TxOp> {
    prop_oneof![
        3 => (0u8..3, small(), any::<u32>(), any::<u8>()).prop_map(|(b, k, len, seed)| TxOp::Put { b, k, len, seed }),
        1 => (0u8..3, small()).prop_map(|(b, k)| TxOp::Delete { b, k }),
        1 => (0u8..3, small(), 0u8..3, small()).prop_map(|(sb, sk, db, dk)| TxOp::Copy { sb, sk, db, dk }),
        1 => (0u8..3, small()).prop_map(|(b, k)| TxOp::Get { b, k }),
    ]
}

fn cond() -> impl Strategy<Value = Cond> {
    prop_oneof![4 => Just(Cond::None), 1 => Just(Cond::IfAbsent), 1 => Just(Cond::IfMatchCurrent), 1 => Just(Cond::IfMatchWrong)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..3, small(), any::<u32>(), any::<u8>(), any::<bool>(), cond())
            .prop_map(|(b, k, len, seed, stream, cond)| Op::Put { b, k, len, seed, stream, cond }),
        3 => (0u8..3, small()).prop_map(|(b, k)| Op::Delete { b, k }),
        2 => (0u8..3, small(), 0u8..3, small()).prop_map(|(sb, sk, db, dk)| Op::Copy { sb, sk, db, dk }),
        2 => (0u8..3, small(), proptest::option::of((any::<u32>(), any::<u32>())))
            .prop_map(|(b, k, range)| Op::Get { b, k, range }),
        2 => (0u8..3, 0u8..6, any::<bool>(), any::<u8>()).prop_map(|(b, prefix, delim, page)| Op::List { b, prefix, delim, page }),
        3 => (proptest::collection::vec(tx_op(), 0..6), prop::bool::weighted(0.7)).prop_map(|(ops, commit)| Op::Txn { ops, commit }),
        1 => (0u8..3, small(), proptest::collection::vec((any::<u32>(), any::<u8>()), 0..4), prop::bool::weighted(0.7))
            .prop_map(|(b, k, parts, complete)| Op::Multipart { b, k, parts, complete }),
        1 => (0u8..3).prop_map(|b| Op::CreateBucket { b }),
        1 => (0u8..3, any::<bool>()).prop_map(|(b, only_empty)| Op::DeleteBucket { b, only_empty }),
        1 => Just(Op::TakeSnapshot),
        1 => Just(Op::CheckSnapshot),
        1 => Just(Op::Reopen),
        1 => Just(Op::Gc),
        1 => Just(Op::Compact),
    ]
}

fn run(target: Target, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::new(target).map_err(TestCaseError::fail)?;
    for op in ops {
        h.apply(op).map_err(TestCaseError::fail)?;
    }
    h.check_clean().map_err(TestCaseError::fail)
}

/// 48 cases per target by default (CI); `PROPTEST_CASES=N` for long runs.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn store_on_redb_file_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(Target::File, &ops)?;
    }

    #[test]
    fn store_on_limited_reference_map_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(Target::RefMap, &ops)?;
    }

    /// Random operations on a store whose small objects were just packed by `compact`: every
    /// write, read and listing then meets packs (rare in the runs above, where few small
    /// objects sit next to each other when `compact` comes).
    #[test]
    fn store_with_packed_objects_matches_model(
        fill in proptest::collection::vec((0u8..3, small(), 0u32..4, any::<u8>()), 4..24),
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        // size_of(0..4): 0, 1, INLINE - 1 and INLINE bytes, all inline.
        let mut all: Vec<Op> = fill
            .into_iter()
            .map(|(b, k, len, seed)| Op::Put { b, k, len, seed, stream: false, cond: Cond::None })
            .collect();
        all.push(Op::Compact);
        all.extend(ops);
        run(Target::File, &all)?;
    }
}

/// Found by the model test: deleting a bucket whose chunks outnumber the backend's
/// per-transaction limit failed with `TooLarge` instead of queueing the chunks for GC.
#[test]
fn regression_delete_bucket_with_more_chunks_than_one_transaction_takes() {
    let parts = vec![(2_729_987_026, 0), (925_724_638, 0), (1_456_347_022, 0)];
    let ops = [Op::Multipart { b: 0, k: 0, parts, complete: true }, Op::DeleteBucket { b: 0, only_empty: false }];
    run(Target::RefMap, &ops).unwrap();
}

/// Found by the model test: a transaction bigger than the limited backend takes in one commit
/// is refused with `TooLarge` as a whole and leaves the store as it was (the model's
/// expectation was corrected; the store's behaviour was right).
#[test]
fn regression_transaction_beyond_backend_limits_rolls_back_whole() {
    let put = |len| TxOp::Put { b: 0, k: 0, len, seed: 0 };
    let ops = [
        Op::CreateBucket { b: 2 },
        Op::Txn { ops: vec![put(1_725_456_118), put(532_568_541), put(3_242_683_245)], commit: false },
    ];
    run(Target::RefMap, &ops).unwrap();
}

/// Listings against a model of S3's `ListObjectsV2`.
mod listing_model {
    use std::collections::BTreeMap;

    use keystone::{Bucket, Datastore, ListOptions};
    use proptest::prelude::*;

    /// S3's answer: (objects, common prefixes), after `start_after`, under `prefix`.
    fn model(
        m: &BTreeMap<String, usize>,
        prefix: &str,
        delim: Option<&str>,
        after: Option<&str>,
    ) -> (Vec<String>, Vec<String>) {
        let (mut objs, mut cps) = (Vec::new(), Vec::<String>::new());
        for k in m.keys() {
            if !k.starts_with(prefix) || after.is_some_and(|a| k.as_str() <= a) {
                continue;
            }
            match delim.filter(|d| !d.is_empty()).and_then(|d| k[prefix.len()..].find(d).map(|i| (i, d))) {
                Some((i, d)) => {
                    let cp = k[..prefix.len() + i + d.len()].to_owned();
                    if cps.last() != Some(&cp) {
                        cps.push(cp);
                    }
                }
                None => objs.push(k.clone()),
            }
        }
        (objs, cps)
    }

    fn store(
        b: &Bucket,
        prefix: &str,
        delim: Option<&str>,
        after: Option<&str>,
        max: usize,
    ) -> (Vec<String>, Vec<String>) {
        let mut opts = ListOptions {
            prefix: prefix.into(),
            delimiter: delim.map(Into::into),
            start_after: after.map(Into::into),
            max_keys: max,
            ..ListOptions::default()
        };
        let (mut objs, mut cps) = (Vec::new(), Vec::new());
        let mut pages = 0;
        loop {
            let p = b.list(&opts).unwrap();
            assert!(p.objects.len() + p.common_prefixes.len() <= max.max(1));
            objs.extend(p.objects.into_iter().map(|o| o.key));
            cps.extend(p.common_prefixes);
            pages += 1;
            assert!(pages < 10_000);
            match p.next_token {
                Some(t) => opts.continuation = Some(t),
                None => break,
            }
        }
        (objs, cps)
    }

    fn key() -> impl Strategy<Value = String> {
        proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("/"), Just("-"), Just("é"), Just("ab")], 1..5)
            .prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]
        /// Random keys (with multi-byte characters and delimiters inside keys), some packed by
        /// `compact` and some written after it: every listing, paged with any page size, under
        /// any prefix, delimiter and `start_after`, equals S3's answer from a model.
        #[test]
        fn listings_agree_with_an_s3_model_over_packs_and_pages(
            keys in proptest::collection::btree_map(key(), 0usize..3, 1..40),
            writes in proptest::collection::vec((key(), 0usize..4), 0..10),
            queries in proptest::collection::vec((0usize..4, 0usize..4, proptest::option::of(key()), 1usize..5), 1..8),
        ) {
            let db = Datastore::builder().chunk_size(100).inline_threshold(50).in_memory().unwrap();
            let b = db.create_bucket("bkt").unwrap();
            let size = |s: usize| [0, 10, 49, 120][s % 4];
            let mut m = BTreeMap::new();
            for (k, s) in &keys {
                b.put_bytes(k, vec![1u8; size(*s)]).unwrap();
                m.insert(k.clone(), *s);
            }
            db.compact().unwrap();
            for (k, s) in &writes {
                if *s == 3 { b.delete(k).unwrap(); m.remove(k); } else { b.put_bytes(k, vec![2u8; size(*s)]).unwrap(); m.insert(k.clone(), *s); }
            }
            let prefixes = ["", "a", "ab", "a/"];
            let delims = [None, Some("/"), Some("b"), Some("/a")];
            for (p, d, after, max) in &queries {
                let (prefix, delim) = (prefixes[*p], delims[*d]);
                let want = model(&m, prefix, delim, after.as_deref());
                let got = store(&b, prefix, delim, after.as_deref(), *max);
                prop_assert_eq!(&got, &want, "prefix {:?} delim {:?} after {:?} max {}", prefix, delim, after, max);
            }
            db.compact().unwrap();
            for (p, d, after, max) in &queries {
                let (prefix, delim) = (prefixes[*p], delims[*d]);
                let want = model(&m, prefix, delim, after.as_deref());
                let got = store(&b, prefix, delim, after.as_deref(), *max);
                prop_assert_eq!(&got, &want, "after 2nd compact: prefix {:?} delim {:?} after {:?} max {}", prefix, delim, after, max);
            }
        }
    }
}
