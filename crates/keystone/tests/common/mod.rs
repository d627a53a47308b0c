//! What the integration suites share: deterministic data and the backends every suite runs on.

#![allow(dead_code, clippy::unwrap_used)]

use keystone::{Datastore, EtagAlgorithm};

pub fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// A store with a small chunk size so that chunked paths run on small data.
pub fn file_store(dir: &tempfile::TempDir, name: &str) -> Datastore {
    Datastore::builder()
        .chunk_size(1000)
        .inline_threshold(100)
        .upload_batch_size(4000)
        .open(dir.path().join(name))
        .unwrap()
}

/// Every backend the suite runs on.
pub fn backends(dir: &tempfile::TempDir) -> Vec<(&'static str, Datastore)> {
    let small = || Datastore::builder().chunk_size(1000).inline_threshold(100).upload_batch_size(4000);
    vec![
        ("redb file", file_store(dir, "suite.keystone")),
        ("redb in memory, MD5 ETags", small().etag(EtagAlgorithm::Md5).in_memory().unwrap()),
        // Backend limits below what the operations need in one transaction: the data layer
        // must split its work (queued frees) and still behave the same.
        ("reference map, tight limits", small().open_reference_map(1100, 64, 1 << 20).unwrap()),
    ]
}
