//! Keystone: an embedded object store on [redb](https://www.redb.org).
//!
//! Buckets of objects of any size in one file — typed values through serde and raw byte
//! streams — listed by prefix, with ACID transactions across buckets, consistent snapshots,
//! end-to-end checksums, and streaming I/O whose memory does not grow with object size.
//!
//! ```
//! use keystone::{Datastore, ListOptions};
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("data.keystone");
//!
//! let db = Datastore::open(&path)?;
//! let users = db.create_bucket("users")?;
//!
//! // Typed values, stored as JSON.
//! #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
//! struct User { name: String, age: u32 }
//! users.put("alice", &User { name: "Alice".into(), age: 30 })?;
//! assert_eq!(users.get::<User>("alice")?.age, 30);
//!
//! // Raw bytes and streams of any size.
//! users.put_reader("avatars/alice.png", &b"\x89PNG..."[..], Default::default())?;
//! let mut reader = users.open("avatars/alice.png")?;
//! let mut bytes = Vec::new();
//! std::io::Read::read_to_end(&mut reader, &mut bytes)?;
//!
//! // Listing by prefix, in byte order.
//! let page = users.list(&ListOptions::prefix("avatars/"))?;
//! assert_eq!(page.objects[0].key, "avatars/alice.png");
//!
//! // Several writes across buckets, atomically.
//! db.create_bucket("audit")?;
//! db.transaction(|tx| {
//!     tx.bucket("users")?.delete("alice")?;
//!     tx.bucket("audit")?.put_bytes("log/1", b"deleted alice")?;
//!     Ok::<_, keystone::Error>(())
//! })?;
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```
//!
//! The on-disk format, key scheme, commit protocol and invariants are described in
//! `docs/design.md` in the repository.

#![deny(missing_docs)]

mod bucket;
mod commit;
mod completed;
mod data;
mod datastore;
mod engine;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod list;
mod maintenance;
mod multipart;
mod objects;
mod packing;
mod reader;
mod reads;
mod salvage;
mod staged;
mod storage;
mod transaction;
mod types;
mod upload;
mod verify;

pub use bucket::Bucket;
pub use commit::GroupCommitStats;
pub use data::names::{MAX_KEY_LEN, MAX_USER_META, check_new_bucket as check_bucket_name};
pub use datastore::{
    Builder, DEFAULT_BATCH_BYTES, DEFAULT_CACHE_SIZE, DEFAULT_CHUNK_SIZE, DEFAULT_INLINE_MAX, Datastore, Durability,
    redb_backend,
};
pub use error::{Error, Result};
pub use list::ListIter;
pub use maintenance::{CompactReport, GcReport};
pub use reader::{Chunk, ObjectReader};
pub use salvage::{SalvageReport, UnreadableRange};
pub use transaction::{Snapshot, SnapshotBucket, Transaction, TxBucket};
pub use types::{
    BucketInfo, CompleteOptions, CompletedPart, CopyOptions, EtagAlgorithm, ListEntry, ListOptions, ListPage,
    ObjectInfo, ObjectMeta, PartInfo, PutCondition, PutOptions, UploadInfo,
};
pub use verify::{CorruptObject, RemoveReport, VerifyReport};

/// Whether a panic raised on the calling thread right now would be caught by Keystone and
/// returned as [`Error::Corrupted`]: true only while redb reads or writes a page for Keystone,
/// where a page damaged on disk can make redb's B-tree code panic. A process-wide panic hook
/// (which runs before any unwinding is caught) can stay quiet then; the operation reports the
/// damage as its error.
pub fn panic_is_caught() -> bool {
    storage::redb::guarding()
}

/// The README's examples, compiled as doc-tests so they cannot rot.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

impl Error {
    /// Recovers the Keystone error carried by an `io::Error` from an [`ObjectReader`]
    /// (a corruption, say); other I/O errors become [`Error::Io`].
    pub fn from_io(e: std::io::Error) -> Error {
        upload::from_io(e)
    }
}
