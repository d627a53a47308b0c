//! The BTreeMap model of crates/keystone/tests/model.rs, driven by the fuzzer: the input
//! bytes decode into an operation sequence (see `keystone_torture::model::ops_from_bytes`);
//! any difference between store and model, or any panic, is a finding.
#![no_main]

use keystone_torture::model::{Harness, Target, ops_from_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (target, ops) = match data.split_first() {
        Some((t, rest)) if t % 4 == 0 => (Target::RefMap, rest),
        Some((_, rest)) => (Target::File, rest),
        None => return,
    };
    let mut h = Harness::new(target).expect("harness");
    for op in ops_from_bytes(ops) {
        if let Err(e) = h.apply(&op) {
            panic!("{e}");
        }
    }
    if let Err(e) = h.check_clean() {
        panic!("{e}");
    }
});
