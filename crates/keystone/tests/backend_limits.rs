//! Backends that limit a transaction's operations and bytes (the reference map): concurrent
//! writes, streamed uploads and their cleanup stay within the limits whatever the caller's
//! chunk size and however many writers share a commit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use keystone::{Datastore, Error, PutOptions};

/// Group commit used to batch up to 512 jobs into one write transaction whatever the
/// backend's limits: deletes that each fit a transaction (17 operations of 64) failed
/// together with `TooLarge` once their batch did not. A batch now stops at half the limits.
#[test]
fn concurrent_deletes_that_each_fit_a_transaction_never_fail_together() {
    // 64 operations per transaction; a delete of a 16-chunk object takes 17 (16 chunk deletes,
    // within the quarter of a transaction `free_segments` allows in line, and the manifest).
    let db = Datastore::builder()
        .chunk_size(100)
        .inline_threshold(50)
        .upload_batch_size(100_000)
        .open_reference_map(65_536, 64, 1 << 20)
        .unwrap();
    let b = db.create_bucket("bkt").unwrap();
    const THREADS: usize = 16;
    const PER: usize = 8;
    for i in 0..THREADS * PER {
        b.put_bytes(&format!("k{i:04}"), vec![i as u8; 1600]).unwrap();
    }
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let b = b.clone();
                s.spawn(move || {
                    (0..PER)
                        .filter_map(|j| b.delete(&format!("k{:04}", t * PER + j)).err().map(|e| e.to_string()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(failures.is_empty(), "{} of {} deletes failed, e.g. {:?}", failures.len(), THREADS * PER, failures.first());
    assert!(db.verify().unwrap().is_clean());
}

/// Writes that fit a transaction alone but not together with a batch-mate (more than the
/// half a batch leaves as headroom) run again each on its own and succeed; a write too large
/// for any transaction fails alone, `TooLarge`, and takes no batch-mate with it.
#[test]
fn a_write_too_large_for_a_transaction_fails_alone_in_a_shared_commit() {
    // 4096 bytes per transaction; small objects are written inline, in their manifest.
    let db = Datastore::builder().inline_threshold(8000).open_reference_map(65_536, 64, 4096).unwrap();
    let b = db.create_bucket("bkt").unwrap();
    const THREADS: usize = 8;
    const PER: usize = 20;
    let sizes = [1500usize, 3000, 5000];
    let outcomes: Vec<(usize, Result<(), Error>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let b = b.clone();
                s.spawn(move || {
                    (0..PER)
                        .map(|j| {
                            let size = sizes[(t + j) % sizes.len()];
                            (size, b.put_bytes(&format!("k{t}-{j}"), vec![t as u8; size]).map(|_| ()))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    for (size, r) in &outcomes {
        match (size, r) {
            (5000, Err(Error::TooLarge(_))) | (1500 | 3000, Ok(())) => {}
            (size, r) => panic!("a put of {size} bytes: {r:?}"),
        }
    }
    assert!(db.verify().unwrap().is_clean());
}

/// A streamed upload's intermediate commits were bounded by bytes only: with a small chunk
/// size one object of 100 chunks was more operations than a transaction takes, and was
/// refused. They are bounded by the backend's operations too.
#[test]
fn a_streamed_upload_of_more_chunks_than_a_transaction_takes_is_stored() {
    let db =
        Datastore::builder().chunk_size(1000).inline_threshold(100).open_reference_map(65_536, 64, 1 << 20).unwrap();
    let b = db.create_bucket("bkt").unwrap();
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    b.put_reader("big", &body[..], PutOptions::default()).unwrap();
    assert_eq!(b.get_bytes("big").unwrap(), body);
    assert!(db.verify().unwrap().is_clean());
}

/// A reader that fails after that many bytes.
struct FailAfter(usize);

impl std::io::Read for FailAfter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0 == 0 {
            return Err(std::io::Error::other("reader failed"));
        }
        let n = buf.len().min(self.0);
        buf[..n].fill(7);
        self.0 -= n;
        Ok(n)
    }
}

/// A streamed upload that failed after more chunks than one transaction may delete was
/// cleaned up in one transaction, which the backend refused, and so was every later `gc`
/// (`reclaim_staged` freed a staged upload in one transaction too): the chunks stayed and
/// `gc` failed for ever. Both now queue the segments, freed in bounded transactions.
#[test]
fn a_failed_upload_larger_than_a_transaction_is_reclaimed() {
    // The integration suites' limited backend: 64 operations per transaction.
    let db = Datastore::builder()
        .chunk_size(1000)
        .inline_threshold(100)
        .upload_batch_size(4000)
        .open_reference_map(1100, 64, 1 << 20)
        .unwrap();
    let b = db.create_bucket("bkt").unwrap();
    assert!(b.put_reader("big", FailAfter(80_000), PutOptions::default()).is_err());
    db.gc().unwrap();
    let report = db.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}
