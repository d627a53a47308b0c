//! Record decoding of arbitrary bytes: manifests, staging, upload, part and bucket records,
//! chunk records and keys either decode (and then re-encode to an equal record) or fail with
//! an error — never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = keystone::fuzzing::decode_all(data);
});
