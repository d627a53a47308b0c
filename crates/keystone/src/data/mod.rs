//! The data layer: key encoding, name rules, record formats and chunk arithmetic.
//! It depends on the storage trait only, never on a concrete engine.

pub(crate) mod chunking;
pub(crate) mod crc;
pub(crate) mod format;
pub(crate) mod keys;
pub(crate) mod names;
pub(crate) mod pack;
pub(crate) mod records;
