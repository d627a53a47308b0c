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
