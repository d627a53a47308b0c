//! Plain data types of the public API: object descriptions, options and listing pages.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Descriptive metadata stored with an object and returned with it (HTTP-style headers and
/// user metadata, as S3 keeps them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    /// MIME type; `None` reads back as `binary/octet-stream` through S3 (as in S3).
    pub content_type: Option<String>,
    /// `Cache-Control`.
    pub cache_control: Option<String>,
    /// `Content-Disposition`.
    pub content_disposition: Option<String>,
    /// `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// `Content-Language`.
    pub content_language: Option<String>,
    /// `Expires`, as the caller sent it.
    pub expires: Option<String>,
    /// User metadata (S3's `x-amz-meta-*`).
    pub user: BTreeMap<String, String>,
}

/// When a write may take place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PutCondition {
    /// Always (create or overwrite).
    #[default]
    None,
    /// Only if no object has the key (S3 `If-None-Match: *`).
    IfAbsent,
    /// Only if the current object has this ETag (S3 `If-Match`). A key with no object fails
    /// with [`Error::NoSuchKey`](crate::Error::NoSuchKey), as S3 answers it; an object with
    /// another ETag, with [`Error::PreconditionFailed`](crate::Error::PreconditionFailed).
    IfMatch(String),
}

/// Options of a write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Metadata stored with the object.
    pub meta: ObjectMeta,
    /// Condition checked atomically with the write.
    pub condition: PutCondition,
    /// The MD5 the content must have (S3's `Content-MD5`). When the content differs the put
    /// fails with [`Error::BadDigest`](crate::Error::BadDigest) and stores nothing. A store
    /// with MD5 ETags checks it against the hash it computes anyway; others hash once more.
    pub content_md5: Option<[u8; 16]>,
}

impl PutOptions {
    /// Options with only a content type.
    pub fn content_type(content_type: impl Into<String>) -> Self {
        PutOptions {
            meta: ObjectMeta { content_type: Some(content_type.into()), ..ObjectMeta::default() },
            ..PutOptions::default()
        }
    }
}

/// How the ETag of a single write (`put`, `put_bytes`, `put_reader`, ...) is computed. Multipart uploads
/// always use MD5, as S3 does (`<md5 of the part md5s>-<parts>`); copies keep their source's.
///
/// Every ETag changes when the content changes and is the same for the same content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EtagAlgorithm {
    /// `<hex XXH3-128 of the content>-0`. Costs next to nothing (tens of GB/s). The `-0`
    /// suffix tells S3 clients that it is not an MD5, so none of them checks it as one.
    #[default]
    Xxh3,
    /// The hex MD5 of the content, as AWS S3 computes it, which some S3 clients check
    /// (`keystone serve` needs it). MD5 runs at about 600 MB/s: a quarter of the CPU time of a
    /// small put, and for large streams a second thread (BENCHMARKS.md, W2 and W4).
    Md5,
}

impl EtagAlgorithm {
    /// The ETag for a finished digest of this algorithm.
    pub(crate) fn etag(self, digest: &[u8; 16]) -> String {
        let hex = crate::data::chunking::hex(digest);
        match self {
            EtagAlgorithm::Xxh3 => format!("{hex}-0"),
            EtagAlgorithm::Md5 => hex,
        }
    }
}

/// What `head`, `list` and writes report about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Length in bytes.
    pub size: u64,
    /// For a single write, set by the store's [`EtagAlgorithm`] (hex MD5 with
    /// [`EtagAlgorithm::Md5`], as S3 computes it); `<md5 of part md5s>-<parts>` for a multipart
    /// upload. Without quotes.
    pub etag: String,
    /// CRC32C of the whole content, verified on every full read.
    pub checksum: u32,
    /// Stored metadata.
    pub meta: ObjectMeta,
    /// When an object was first written under this key (kept across overwrites).
    pub created: SystemTime,
    /// When this version was written.
    pub modified: SystemTime,
    /// Number of parts for a multipart object (and for a copy of one, which keeps the
    /// source's ETag), 0 otherwise.
    pub parts: u32,
}

/// A bucket in [`Datastore::list_buckets`](crate::Datastore::list_buckets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    /// Bucket name.
    pub name: String,
    /// Creation time.
    pub created: SystemTime,
}

/// What to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOptions {
    /// Only keys starting with this.
    pub prefix: String,
    /// Only keys after this one (byte order), as S3's `start-after`.
    pub start_after: Option<String>,
    /// Resume where a previous page ended ([`ListPage::next_token`]).
    pub continuation: Option<String>,
    /// Roll keys that contain this after the prefix up into common prefixes.
    pub delimiter: Option<String>,
    /// Most entries (objects plus common prefixes) per page; at least 1.
    pub max_keys: usize,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions { prefix: String::new(), start_after: None, continuation: None, delimiter: None, max_keys: 1000 }
    }
}

impl ListOptions {
    /// Everything under `prefix`.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        ListOptions { prefix: prefix.into(), ..ListOptions::default() }
    }

    /// Sets the delimiter.
    #[must_use]
    pub fn delimiter(mut self, delimiter: impl Into<String>) -> Self {
        self.delimiter = Some(delimiter.into());
        self
    }

    /// Sets the page size.
    #[must_use]
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }
}

/// One page of a listing, in byte order of keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects on this page.
    pub objects: Vec<ObjectInfo>,
    /// Common prefixes (with a delimiter), each ending with the delimiter.
    pub common_prefixes: Vec<String>,
    /// Opaque token for the next page; `None` when this is the last.
    pub next_token: Option<String>,
}

/// One entry of a lazy listing.
#[expect(
    clippy::large_enum_variant,
    reason = "entries are transient iterator items; boxing would cost an allocation each"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListEntry {
    /// An object.
    Object(ObjectInfo),
    /// A common prefix (with a delimiter).
    Prefix(String),
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    /// Key the upload will create.
    pub key: String,
    /// Upload id.
    pub upload_id: String,
    /// When it was created.
    pub initiated: SystemTime,
    /// Metadata the object will get.
    pub meta: ObjectMeta,
}

/// An uploaded part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    /// Part number (1 to 10,000 in S3; any u32 here).
    pub part_number: u32,
    /// Hex MD5 of the part.
    pub etag: String,
    /// Length in bytes.
    pub size: u64,
    /// When it was uploaded.
    pub modified: SystemTime,
}

/// A part named in a multipart completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    /// Part number.
    pub part_number: u32,
    /// The ETag the caller got for it (quotes are ignored).
    pub etag: String,
}

/// Options of a multipart completion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompleteOptions {
    /// Smallest size of every part but the last ([`Error::EntityTooSmall`](crate::Error::EntityTooSmall)); S3 uses 5 MiB.
    pub min_part_size: u64,
    /// Condition on the object being replaced (not checked again by a retried completion: see
    /// [`Bucket::complete_upload`](crate::Bucket::complete_upload)).
    pub condition: PutCondition,
    /// The key the caller names the upload by (S3 names both): when set, an upload created for
    /// another key — or, for a retried completion, completed as another key — is
    /// [`Error::NoSuchUpload`](crate::Error::NoSuchUpload), as in S3.
    pub key: Option<String>,
}

/// Options of a copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyOptions {
    /// New metadata; `None` keeps the source's (S3's `COPY` directive).
    pub meta: Option<ObjectMeta>,
    /// Condition on the destination.
    pub condition: PutCondition,
    /// Copy only if the source has this ETag.
    pub source_etag: Option<String>,
}

pub(crate) fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

pub(crate) fn time_of(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

/// ETags compare without their quotes, as HTTP clients send them either way.
pub(crate) fn etag_eq(a: &str, b: &str) -> bool {
    a.trim_matches('"') == b.trim_matches('"')
}
