//! Bucket-name and object-key validation on arbitrary strings: never a panic, and no valid
//! bucket name can reach the internal `__meta__` / `__data__` prefixes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if keystone::fuzzing::bucket_name_ok(&s) {
        assert!(!s.starts_with("__") && !s.contains('\0') && (3..=63).contains(&s.len()));
    }
    if keystone::fuzzing::object_key_ok(&s) {
        assert!(!s.is_empty() && !s.contains('\0') && s.len() <= keystone::MAX_KEY_LEN);
    }
});
