//! Reliability testing for Keystone: a simulated disk for power-loss and I/O-fault injection,
//! a BTreeMap model shared by the proptest model test and the cargo-fuzz targets, and the
//! seeded workload run by the crash-loop helper process.

pub mod model;
pub mod sim;
mod support;
pub mod workload;

pub use support::{Content, check_clean, same_content};

use std::collections::BTreeMap;

use keystone::{Datastore, Error, ListOptions};

/// Every object of every bucket, with its bytes: the observable state of a store.
pub type Dump = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// Reads the whole store (every bucket, every key, every byte) through the public API,
/// paging through listings.
pub fn dump(db: &Datastore) -> Result<Dump, Error> {
    let snap = db.snapshot()?;
    let mut out = Dump::new();
    for b in snap.list_buckets()? {
        let bucket = snap.bucket(&b.name)?;
        let mut objects = BTreeMap::new();
        for entry in bucket.list_iter(ListOptions::default().max_keys(7))? {
            if let keystone::ListEntry::Object(info) = entry? {
                let data = bucket.get_bytes(&info.key)?;
                if data.len() as u64 != info.size {
                    return Err(Error::Corrupted {
                        bucket: Some(b.name.clone()),
                        key: Some(info.key.clone()),
                        reason: format!("head says {} bytes, read {}", info.size, data.len()),
                    });
                }
                objects.insert(info.key, data);
            }
        }
        out.insert(b.name, objects);
    }
    Ok(out)
}
