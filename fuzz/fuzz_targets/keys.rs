//! Key encoding round trips: chunk, object, bookkeeping and part keys built from arbitrary
//! (valid) parts parse back to the same parts and sort as required.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 13 {
        return;
    }
    let id = u64::from_le_bytes(data[..8].try_into().unwrap_or_default());
    let index = u32::from_le_bytes(data[8..12].try_into().unwrap_or_default());
    let split = usize::from(data[12]) % (data.len() - 12);
    let rest = String::from_utf8_lossy(&data[13..]);
    let (b, k) = rest.split_at(rest.floor_char_boundary(split));
    if keystone::fuzzing::bucket_name_ok(b) && keystone::fuzzing::object_key_ok(k) {
        assert!(keystone::fuzzing::keys_round_trip(b, k, id, index), "{b:?} {k:?} {id} {index}");
    }
});
