//! The one public error type of the library.

use std::fmt;

/// A specialized `Result` for Keystone operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a Keystone call.
///
/// Variants are named after what the caller can do about them; messages name the bucket and
/// key involved. The enum is `#[non_exhaustive]`: match the variants you act on and keep a
/// catch-all arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bucket does not exist.
    #[error("no such bucket: {bucket:?}")]
    NoSuchBucket {
        /// Bucket name.
        bucket: String,
    },
    /// `create_bucket` on a name that is already taken.
    #[error("bucket already exists: {bucket:?}")]
    BucketAlreadyExists {
        /// Bucket name.
        bucket: String,
    },
    /// `delete_empty_bucket` on a bucket that still holds objects or uploads.
    #[error("bucket {bucket:?} is not empty")]
    BucketNotEmpty {
        /// Bucket name.
        bucket: String,
    },
    /// The object does not exist.
    #[error("no such key: {key:?} in bucket {bucket:?}")]
    NoSuchKey {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
    },
    /// The multipart upload does not exist (never created, completed, or aborted).
    #[error("no such upload {upload_id:?} in bucket {bucket:?}")]
    NoSuchUpload {
        /// Bucket name.
        bucket: String,
        /// Upload id as returned by `create_upload`.
        upload_id: String,
    },
    /// The bucket name breaks one of the naming rules (S3's rules).
    #[error("invalid bucket name {name:?}: {reason}")]
    InvalidBucketName {
        /// The rejected name.
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// The object key breaks one of the key rules.
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey {
        /// The rejected key (lossily shown).
        key: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A listing's continuation token ([`ListOptions::continuation`](crate::ListOptions)) that
    /// no listing handed out.
    #[error("invalid continuation token {token:?}: not one a listing returned")]
    InvalidContinuationToken {
        /// The token given (lossily shown, at most 64 characters).
        token: String,
    },
    /// Object metadata that could not be carried in HTTP headers, as S3 must (a user metadata
    /// name that is not an HTTP token or differs from another only in case, a control
    /// character in a value, more than [`MAX_USER_META`](crate::MAX_USER_META) bytes of user
    /// metadata).
    #[error("invalid metadata {field:?}: {reason}")]
    InvalidMetadata {
        /// The field or user metadata name at fault (`user` for the total size).
        field: String,
        /// The rule it breaks.
        reason: String,
    },
    /// A conditional write or read found a different state than required.
    #[error("precondition failed for {key:?} in bucket {bucket:?}: {reason}")]
    PreconditionFailed {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// What did not hold.
        reason: String,
    },
    /// A byte range outside the object.
    #[error("invalid range {start}..{end} for {key:?} of {size} bytes in bucket {bucket:?}")]
    InvalidRange {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// Requested start (inclusive).
        start: u64,
        /// Requested end (exclusive).
        end: u64,
        /// Object size.
        size: u64,
    },
    /// A multipart completion named a part that is missing or whose ETag differs.
    #[error("invalid part {part_number} for upload {upload_id:?}: {reason}")]
    InvalidPart {
        /// Upload id.
        upload_id: String,
        /// Part number.
        part_number: u32,
        /// What was wrong.
        reason: String,
    },
    /// A multipart completion listed parts out of ascending order.
    #[error("parts of upload {upload_id:?} are not in ascending order")]
    InvalidPartOrder {
        /// Upload id.
        upload_id: String,
    },
    /// A part other than the last is smaller than the minimum part size.
    #[error("part {part_number} of upload {upload_id:?} is {size} bytes, below the minimum of {min}")]
    EntityTooSmall {
        /// Upload id.
        upload_id: String,
        /// Part number.
        part_number: u32,
        /// Its size.
        size: u64,
        /// The minimum.
        min: u64,
    },
    /// The content of a write does not have the MD5 the caller gave
    /// ([`PutOptions::content_md5`](crate::PutOptions::content_md5)); nothing was stored.
    #[error("content of {key:?} in bucket {bucket:?} has MD5 {computed}, not the expected {expected}")]
    BadDigest {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The MD5 given, hex.
        expected: String,
        /// The MD5 of the content received, hex.
        computed: String,
    },
    /// Stored bytes do not match their checksum, or a record cannot be decoded.
    #[error("corrupted data in {}: {reason}", location(bucket.as_ref(), key.as_ref()))]
    Corrupted {
        /// Bucket, when known.
        bucket: Option<String>,
        /// Key, when known.
        key: Option<String>,
        /// What was found.
        reason: String,
    },
    /// The file opened is not a Keystone store: not a redb database (another kind of file, or
    /// an empty one opened read-only), or another program's redb database. A store that is
    /// damaged is [`Error::Corrupted`] instead, also when too little of it is left to tell.
    #[error("{path} is not a Keystone store ({reason})")]
    NotAStore {
        /// The file.
        path: String,
        /// What it is instead.
        reason: String,
    },
    /// The store is of a newer format than this build reads: a later release wrote records
    /// this one would take for damage. No record was read or written (redb itself may have
    /// recovered a store that was not closed cleanly first); open it with that release or a
    /// later one.
    #[error(
        "store {path} is in format {format} (raised by {writer}); this build of Keystone reads formats up to {supported}: open it with {writer} or later"
    )]
    NewerFormat {
        /// The file.
        path: String,
        /// The store's format.
        format: u32,
        /// The release that raised the store to it.
        writer: String,
        /// The newest format this build reads.
        supported: u32,
    },
    /// A typed `get` of bytes that do not deserialize as the requested type, or a typed `put`
    /// of a value that cannot be serialized.
    #[error("serialization of {key:?} in bucket {bucket:?}: {source}")]
    Serialization {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The store file is open in another process (or another handle in this process): one
    /// handle may have it open for writing, or any number read-only
    /// ([`Builder::read_only`](crate::Builder::read_only)), not both.
    #[error(
        "store {path} is already open in another process (one process may open it for writing, or any number read-only)"
    )]
    AlreadyOpen {
        /// The file.
        path: String,
    },
    /// A write (or `compact`, `gc`, an engine check) through a store opened read-only
    /// ([`Builder::read_only`](crate::Builder::read_only)).
    #[error("store {path} is open read-only: {operation} is refused")]
    ReadOnly {
        /// The file.
        path: String,
        /// What was refused.
        operation: &'static str,
    },
    /// A read-only open of a store that was not closed cleanly — its process crashed or lost
    /// power, its last handle closed after a failed write or while its thread panicked, or the
    /// file is a copy taken while the store was open: recovering it writes to the file, which a
    /// read-only handle must not. Opening it once for writing recovers it; nothing acknowledged
    /// is lost.
    #[error("store {path} was not closed cleanly and must be opened for writing once to recover it")]
    NeedsRecovery {
        /// The file.
        path: String,
    },
    /// An object or transaction is larger than the storage backend accepts.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The operation needs the store to itself ([`Datastore::compact`](crate::Datastore::compact))
    /// and found readers, snapshots, transactions or uploads still open; nothing was lost,
    /// retry once they have ended.
    #[error(
        "{operation} needs every reader, snapshot, transaction and upload of the store to have ended; close them and retry"
    )]
    InUse {
        /// The operation refused.
        operation: &'static str,
    },
    /// A write, a nested transaction or a maintenance call on the thread that is running
    /// [`Datastore::transaction`](crate::Datastore::transaction) of the same store: it would
    /// wait for that transaction's own write lock for ever. Write through the transaction's
    /// buckets (`tx.bucket(..)`) instead.
    #[error(
        "{operation} on the thread that runs a transaction of this store would wait for that transaction for ever; write through the transaction (tx.bucket(..)) instead"
    )]
    InTransaction {
        /// The operation refused.
        operation: &'static str,
    },
    /// An earlier durable commit failed; the handle refuses writes until reopened.
    #[error("the store had a failed write to disk and refuses further writes until it is reopened")]
    Poisoned,
    /// The storage engine failed.
    #[error("storage error: {context}")]
    Storage {
        /// What Keystone was doing.
        context: String,
        /// The engine's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// Reading a caller's stream or a file failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

fn location(bucket: Option<&String>, key: Option<&String>) -> impl fmt::Display {
    match (bucket, key) {
        (Some(b), Some(k)) => format!("object {k:?} in bucket {b:?}"),
        (Some(b), None) => format!("bucket {b:?}"),
        _ => "the store".to_string(),
    }
}

impl Error {
    pub(crate) fn no_such_key(bucket: &str, key: &str) -> Self {
        Error::NoSuchKey { bucket: bucket.to_owned(), key: key.to_owned() }
    }

    pub(crate) fn no_such_bucket(bucket: &str) -> Self {
        Error::NoSuchBucket { bucket: bucket.to_owned() }
    }

    /// An I/O error with what was being done, keeping its kind: "`doing`: `e`".
    pub(crate) fn io_while(doing: impl fmt::Display, e: &std::io::Error) -> Self {
        Error::Io(std::io::Error::new(e.kind(), format!("{doing}: {e}")))
    }

    pub(crate) fn precondition(bucket: &str, key: &str, reason: impl Into<String>) -> Self {
        Error::PreconditionFailed { bucket: bucket.to_owned(), key: key.to_owned(), reason: reason.into() }
    }

    pub(crate) fn corrupted(bucket: &str, key: &str, reason: impl Into<String>) -> Self {
        Error::Corrupted { bucket: Some(bucket.to_owned()), key: Some(key.to_owned()), reason: reason.into() }
    }

    /// Attaches bucket and key to a `Corrupted` error raised without them.
    pub(crate) fn at(self, bucket: &str, key: &str) -> Self {
        match self {
            Error::Corrupted { bucket: None, key: None, reason } => Error::corrupted(bucket, key, reason),
            other => other,
        }
    }

    /// True for errors that say the data on disk is damaged.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corrupted { .. })
    }
}
