//! A BTreeMap model of a Keystone store and a harness that replays operations against both
//! and reports the first difference. Used by the proptest model test
//! (crates/keystone/tests/model.rs) and by the cargo-fuzz target `model` (fuzz/), which
//! build their operation sequences differently but run them through this one model.

use std::collections::BTreeMap;

use keystone::{Error, ListEntry, ListOptions, Snapshot};

use crate::support::Content;

mod bytes;
mod harness;

pub use bytes::ops_from_bytes;
pub use harness::Harness;

/// Bucket names used by the operations (the first two exist at the start).
pub const BUCKETS: [&str; 3] = ["b-0", "b-1", "b-2"];
/// Object keys: some share prefixes, one is byte-exact with dots and slashes, one is not ASCII.
pub const KEYS: [&str; 8] = ["k", "k0", "dir/a", "dir/b", "dir/sub/c", "a//b/../c", "ключ", "z"];
/// Listing prefixes.
pub const PREFIXES: [&str; 6] = ["", "d", "dir/", "dir/sub/", "k", "a/"];
/// Chunk size of the store under test (small, so a few KiB span many chunks).
pub const CHUNK: usize = 256;
/// Inline threshold of the store under test.
pub const INLINE: usize = 64;

/// Object sizes around every boundary of the store under test.
pub fn size_of(raw: u32) -> usize {
    match raw % 12 {
        0 => 0,
        1 => 1,
        2 => INLINE - 1,
        3 => INLINE,
        4 => INLINE + 1,
        5 => CHUNK - 1,
        6 => CHUNK,
        7 => CHUNK + 1,
        8 => 3 * CHUNK + 1,
        9 => 16 * CHUNK + 7,
        _ => (raw as usize / 12) % (24 * CHUNK),
    }
}

/// A condition on a put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    /// None.
    None,
    /// Only if absent.
    IfAbsent,
    /// If the ETag matches the current object's.
    IfMatchCurrent,
    /// If the ETag matches something that is not the current ETag.
    IfMatchWrong,
}

/// One operation inside a transaction.
#[derive(Debug, Clone)]
pub enum TxOp {
    /// Put bytes.
    Put { b: u8, k: u8, len: u32, seed: u8 },
    /// Delete.
    Delete { b: u8, k: u8 },
    /// Copy between buckets.
    Copy { sb: u8, sk: u8, db: u8, dk: u8 },
    /// Read (must see the transaction's own writes).
    Get { b: u8, k: u8 },
}

/// One operation of a sequence.
#[derive(Debug, Clone)]
pub enum Op {
    /// Put, from memory or streamed through `put_reader`.
    Put { b: u8, k: u8, len: u32, seed: u8, stream: bool, cond: Cond },
    /// Delete.
    Delete { b: u8, k: u8 },
    /// Copy, possibly between buckets.
    Copy { sb: u8, sk: u8, db: u8, dk: u8 },
    /// Read the whole object or a range.
    Get { b: u8, k: u8, range: Option<(u32, u32)> },
    /// List a prefix, page by page.
    List { b: u8, prefix: u8, delim: bool, page: u8 },
    /// A transaction that commits or aborts.
    Txn { ops: Vec<TxOp>, commit: bool },
    /// A multipart upload that completes or aborts.
    Multipart { b: u8, k: u8, parts: Vec<(u32, u8)>, complete: bool },
    /// Create a bucket.
    CreateBucket { b: u8 },
    /// Delete a bucket (only if empty, or with everything in it).
    DeleteBucket { b: u8, only_empty: bool },
    /// Take a snapshot to be checked later.
    TakeSnapshot,
    /// Check the snapshot still shows the state it was taken in.
    CheckSnapshot,
    /// Close and reopen the store.
    Reopen,
    /// Collect garbage.
    Gc,
    /// Compact: rewrite the table in key order and shrink the file (refused while a snapshot
    /// is held on a redb file).
    Compact,
}

/// A stored object in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obj {
    /// Content.
    pub data: Vec<u8>,
    /// ETag.
    pub etag: String,
}

/// The model: bucket -> key -> object.
pub type Model = BTreeMap<String, BTreeMap<String, Obj>>;

/// Which store the harness runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A redb file in a temporary directory (reopen is a real reopen).
    File,
    /// The in-memory reference map with small backend limits (reopen is skipped).
    RefMap,
}

/// The ETag of a single write under the default algorithm (`EtagAlgorithm::Xxh3`).
fn single_etag(data: &[u8]) -> String {
    format!("{:032x}-0", xxhash_rust::xxh3::xxh3_128(data))
}

fn md5_hex(data: &[u8]) -> String {
    hex(&md5_raw(data))
}

fn md5_raw(data: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(data).into()
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter().fold(String::with_capacity(b.len() * 2), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// The kind of an outcome, for comparing the store's answer with the model's.
fn kind<T>(r: &Result<T, Error>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => err_kind(e),
    }
}

fn err_kind(e: &Error) -> &'static str {
    match e {
        Error::NoSuchBucket { .. } => "NoSuchBucket",
        Error::NoSuchKey { .. } => "NoSuchKey",
        Error::PreconditionFailed { .. } => "PreconditionFailed",
        Error::BucketAlreadyExists { .. } => "BucketAlreadyExists",
        Error::BucketNotEmpty { .. } => "BucketNotEmpty",
        Error::InvalidRange { .. } => "InvalidRange",
        Error::InvalidPart { .. } => "InvalidPart",
        _ => "other error",
    }
}

fn bname(b: u8) -> &'static str {
    BUCKETS[b as usize % BUCKETS.len()]
}

fn kname(k: u8) -> &'static str {
    KEYS[k as usize % KEYS.len()]
}

fn content(seed: u8, len: u32) -> Vec<u8> {
    Content::bytes(u64::from(seed) << 32 | u64::from(len), size_of(len))
}

/// What the model says a read gives.
fn lookup<'m>(m: &'m Model, b: &str, k: &str) -> Result<&'m Obj, &'static str> {
    let bucket = m.get(b).ok_or("NoSuchBucket")?;
    bucket.get(k).ok_or("NoSuchKey")
}

/// Applies a copy to the model; returns the expected outcome kind.
fn model_copy(m: &mut Model, sb: &str, sk: &str, db: &str, dk: &str) -> &'static str {
    let src = match lookup(m, sb, sk) {
        Ok(o) => o.clone(),
        Err(e) => return e,
    };
    match m.get_mut(db) {
        Some(dst) => {
            dst.insert(dk.to_owned(), src);
            "ok"
        }
        None => "NoSuchBucket",
    }
}

fn model_put(m: &mut Model, b: &str, k: &str, data: Vec<u8>, cond: Cond) -> &'static str {
    let Some(bucket) = m.get_mut(b) else { return "NoSuchBucket" };
    let exists = bucket.contains_key(k);
    // If-Match names an object: with none under the key, the answer is NoSuchKey (as S3's).
    if matches!(cond, Cond::IfMatchCurrent | Cond::IfMatchWrong) && !exists {
        return "NoSuchKey";
    }
    let ok = match cond {
        Cond::None => true,
        Cond::IfAbsent => !exists,
        Cond::IfMatchCurrent => exists,
        Cond::IfMatchWrong => false,
    };
    if !ok {
        return "PreconditionFailed";
    }
    let etag = single_etag(&data);
    bucket.insert(k.to_owned(), Obj { data, etag });
    "ok"
}

fn model_delete(m: &mut Model, b: &str, k: &str) -> &'static str {
    match m.get_mut(b) {
        Some(bucket) => {
            bucket.remove(k);
            "ok"
        }
        None => "NoSuchBucket",
    }
}

/// Keys and common prefixes the model lists.
fn model_list(m: &Model, b: &str, prefix: &str, delim: bool) -> Option<(Vec<String>, Vec<String>)> {
    let bucket = m.get(b)?;
    let mut keys = Vec::new();
    let mut cps: Vec<String> = Vec::new();
    for k in bucket.keys().filter(|k| k.starts_with(prefix)) {
        let rest = &k[prefix.len()..];
        match rest.find('/').filter(|_| delim) {
            Some(pos) => {
                let cp = format!("{prefix}{}", &rest[..=pos]);
                if cps.last() != Some(&cp) {
                    cps.push(cp);
                }
            }
            None => keys.push(k.clone()),
        }
    }
    Some((keys, cps))
}

/// Everything a snapshot shows.
pub fn dump_snapshot(snap: &Snapshot) -> Result<Model, Error> {
    let mut out = Model::new();
    for b in snap.list_buckets()? {
        let bucket = snap.bucket(&b.name)?;
        let mut objects = BTreeMap::new();
        for entry in bucket.list_iter(ListOptions::default().max_keys(3))? {
            if let ListEntry::Object(info) = entry? {
                let data = bucket.get_bytes(&info.key)?;
                objects.insert(info.key, Obj { data, etag: info.etag });
            }
        }
        out.insert(b.name, objects);
    }
    Ok(out)
}

fn diff(model: &Model, seen: &Model) -> Vec<String> {
    let mut out = Vec::new();
    for b in model.keys().chain(seen.keys()).collect::<std::collections::BTreeSet<_>>() {
        let (m, s) = (model.get(b), seen.get(b));
        if m.is_none() || s.is_none() {
            out.push(format!("bucket {b}: model {}, store {}", m.is_some(), s.is_some()));
            continue;
        }
        let (m, s) = (m.map(BTreeMap::len), s.map(BTreeMap::len));
        out.push(format!("bucket {b}: model {m:?} objects, store {s:?}"));
    }
    out
}
