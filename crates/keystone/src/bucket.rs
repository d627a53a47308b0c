//! `Bucket`: a handle for the objects of one bucket, each call its own atomic operation.

use std::io::Read;
use std::ops::RangeBounds;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::datastore::Datastore;
use crate::error::Result;
use crate::list::{ListIter, list_page};
use crate::multipart;
use crate::objects;
use crate::reader::{self, ObjectReader};
use crate::reads;
use crate::types::{
    CompleteOptions, CompletedPart, CopyOptions, ListOptions, ListPage, ObjectInfo, ObjectMeta, PartInfo, PutOptions,
    UploadInfo,
};

/// A bucket of a [`Datastore`]. Cheap to clone; every call is atomic on its own, and every
/// write is acknowledged only once it is durable (unless the store was opened with relaxed
/// durability). For several writes that must commit together, use
/// [`Datastore::transaction`].
///
/// ```
/// # let db = keystone::Datastore::in_memory()?;
/// let photos = db.create_bucket("photos")?;
/// photos.put_bytes("2024/cat.jpg", b"...")?;
/// assert_eq!(photos.get_bytes("2024/cat.jpg")?, b"...");
/// assert_eq!(photos.head("2024/cat.jpg")?.size, 3);
/// photos.delete("2024/cat.jpg")?;
/// # Ok::<_, keystone::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Bucket {
    db: Datastore,
    name: Arc<str>,
}

impl Bucket {
    pub(crate) fn new(db: Datastore, name: &str) -> Self {
        Bucket { db, name: Arc::from(name) }
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stores `value` as JSON (content type `application/json`), so it is readable as a plain
    /// object through S3 too.
    ///
    /// # Errors
    /// [`Error::Serialization`](crate::Error::Serialization) if `value` cannot be serialized;
    /// [`Error::InvalidKey`](crate::Error::InvalidKey); [`Error::NoSuchBucket`](crate::Error::NoSuchBucket).
    pub fn put<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<ObjectInfo> {
        let json = reads::to_json(&self.name, key, value)?;
        self.put_bytes_with(key, &json, PutOptions::content_type("application/json"))
    }

    /// Reads an object stored by [`put`](Self::put) (or any JSON object).
    ///
    /// # Errors
    /// [`Error::NoSuchKey`](crate::Error::NoSuchKey); [`Error::Serialization`](crate::Error::Serialization)
    /// if the bytes are not a `T`; [`Error::Corrupted`](crate::Error::Corrupted).
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        self.db.engine.read(|r| reads::get_typed(r, &self.name, key))
    }

    /// Stores bytes (content type unset).
    ///
    /// # Errors
    /// [`Error::InvalidKey`](crate::Error::InvalidKey); [`Error::NoSuchBucket`](crate::Error::NoSuchBucket).
    pub fn put_bytes(&self, key: &str, data: impl AsRef<[u8]>) -> Result<ObjectInfo> {
        self.put_bytes_with(key, data.as_ref(), PutOptions::default())
    }

    /// Stores bytes with metadata and a condition.
    ///
    /// ```
    /// use keystone::{PutCondition, PutOptions};
    /// # let db = keystone::Datastore::in_memory()?;
    /// # let b = db.create_bucket("locks")?;
    /// let create_only = PutOptions { condition: PutCondition::IfAbsent, ..Default::default() };
    /// let first = b.put_bytes_with("leader", b"node-1", create_only.clone())?;
    /// assert!(b.put_bytes_with("leader", b"node-2", create_only).is_err());
    /// // Replace only what we wrote (compare-and-swap on the ETag).
    /// let swap = PutOptions { condition: PutCondition::IfMatch(first.etag), ..Default::default() };
    /// b.put_bytes_with("leader", b"node-3", swap)?;
    /// # Ok::<_, keystone::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`put_bytes`](Self::put_bytes); [`Error::PreconditionFailed`](crate::Error::PreconditionFailed)
    /// when the condition does not hold, and [`Error::NoSuchKey`](crate::Error::NoSuchKey) for
    /// [`PutCondition::IfMatch`](crate::PutCondition::IfMatch) on a key with no object.
    pub fn put_bytes_with(&self, key: &str, data: &[u8], opts: PutOptions) -> Result<ObjectInfo> {
        crate::upload::put_slice(&self.db.engine, &self.name, key, data, opts)
    }

    /// Streams an object of any size from `reader`. Memory use is bounded by the chunk and
    /// batch sizes, not the object size, and other writers are not blocked while it streams:
    /// the object appears atomically, whole, when the last byte is written.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let db = keystone::Datastore::open(dir.path().join("db"))?;
    /// # let b = db.create_bucket("backups")?;
    /// # let path = dir.path().join("dump.sql");
    /// # std::fs::write(&path, b"-- dump")?;
    /// let file = std::fs::File::open(&path)?;
    /// let info = b.put_reader("2024-06-01.sql", file, keystone::PutOptions::content_type("application/sql"))?;
    /// assert_eq!(info.size, 7);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`put_bytes_with`](Self::put_bytes_with), and [`Error::Io`](crate::Error::Io) when
    /// `reader` fails (nothing is stored then). [`Error::NoSuchBucket`](crate::Error::NoSuchBucket)
    /// also when the bucket is deleted while the write streams, even if a bucket of that name
    /// is created again before it ends: the write went with the deleted bucket.
    pub fn put_reader(&self, key: &str, reader: impl Read, opts: PutOptions) -> Result<ObjectInfo> {
        self.db.put_stream(&self.name, key, reader, opts)
    }

    /// The whole object.
    ///
    /// # Errors
    /// [`Error::NoSuchKey`](crate::Error::NoSuchKey), [`Error::Corrupted`](crate::Error::Corrupted).
    pub fn get_bytes(&self, key: &str) -> Result<Vec<u8>> {
        self.db.engine.read(|r| reads::get_bytes(r, &self.name, key))
    }

    /// A byte range of the object (`10..20`, `..100`, `5..`).
    ///
    /// ```
    /// # let db = keystone::Datastore::in_memory()?;
    /// # let b = db.create_bucket("logs")?;
    /// b.put_bytes("app.log", b"0123456789")?;
    /// assert_eq!(b.get_range("app.log", 2..5)?, b"234");
    /// assert_eq!(b.get_range("app.log", 7..)?, b"789");
    /// assert!(b.get_range("app.log", 5..11).is_err());
    /// # Ok::<_, keystone::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidRange`](crate::Error::InvalidRange) when the range is not within the object.
    pub fn get_range(&self, key: &str, range: impl RangeBounds<u64>) -> Result<Vec<u8>> {
        self.db.engine.read(|r| reads::get_range(r, &self.name, key, range))
    }

    /// A streaming reader (`Read + Seek + Send + 'static`) over the current version.
    ///
    /// ```
    /// use std::io::{Read, Seek, SeekFrom};
    /// # let db = keystone::Datastore::in_memory()?;
    /// # let b = db.create_bucket("media")?;
    /// b.put_bytes("clip", vec![7u8; 100_000])?;
    /// let mut reader = b.open("clip")?;
    /// reader.seek(SeekFrom::Start(99_990))?;
    /// let mut tail = Vec::new();
    /// // The reader owns its snapshot: it can move to another thread.
    /// std::thread::spawn(move || reader.read_to_end(&mut tail).map(|_| tail)).join().unwrap()?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::NoSuchKey`](crate::Error::NoSuchKey).
    pub fn open(&self, key: &str) -> Result<ObjectReader> {
        reader::open(self.db.engine.snapshot()?, &self.name, key)
    }

    /// The object's description, without its bytes.
    ///
    /// # Errors
    /// [`Error::NoSuchKey`](crate::Error::NoSuchKey).
    pub fn head(&self, key: &str) -> Result<ObjectInfo> {
        self.db.engine.read(|r| reads::head(r, &self.name, key))
    }

    /// Whether an object exists under `key`.
    pub fn exists(&self, key: &str) -> Result<bool> {
        self.db.engine.read(|r| reads::exists(r, &self.name, key))
    }

    /// Deletes the object. Deleting a key that does not exist succeeds, as in S3.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`](crate::Error::NoSuchBucket), [`Error::InvalidKey`](crate::Error::InvalidKey).
    pub fn delete(&self, key: &str) -> Result<()> {
        let (b, k) = (self.name.to_string(), key.to_owned());
        let limits = self.db.engine.kv.limits();
        let queued = self.db.engine.write("deleting an object", move |w| objects::delete_object(w, limits, &b, &k))?;
        self.db.engine.free_after_commit(queued);
        Ok(())
    }

    /// Copies `src` to `dst` within this bucket (see [`Datastore::copy_object`]).
    pub fn copy(&self, src: &str, dst: &str) -> Result<ObjectInfo> {
        self.db.copy_object(&self.name, src, &self.name, dst, &CopyOptions::default())
    }

    /// One page of keys in byte order (see [`ListOptions`]).
    ///
    /// ```
    /// # let db = keystone::Datastore::in_memory()?;
    /// # let b = db.create_bucket("docs")?;
    /// # for k in ["a/1", "a/2", "b", "c/x/y"] { b.put_bytes(k, b"")?; }
    /// let page = b.list(&keystone::ListOptions::prefix("").delimiter("/"))?;
    /// assert_eq!(page.common_prefixes, ["a/", "c/"]);
    /// assert_eq!(page.objects.len(), 1); // "b"
    /// # Ok::<_, keystone::Error>(())
    /// ```
    pub fn list(&self, opts: &ListOptions) -> Result<ListPage> {
        self.db.engine.read(|r| list_page(r, &self.name, opts))
    }

    /// Every entry, lazily, page by page, from one snapshot.
    pub fn list_iter(&self, opts: ListOptions) -> Result<ListIter> {
        ListIter::new(self.db.engine.snapshot()?, &self.name, opts)
    }

    /// Starts a multipart upload of `key`; returns its id.
    pub fn create_upload(&self, key: &str, meta: ObjectMeta) -> Result<String> {
        multipart::create(&self.db.engine, &self.name, key, meta)
    }

    /// ```
    /// use keystone::{CompleteOptions, CompletedPart, ObjectMeta};
    /// # let db = keystone::Datastore::in_memory()?;
    /// # let b = db.create_bucket("videos")?;
    /// let id = b.create_upload("movie.mp4", ObjectMeta::default())?;
    /// let p1 = b.upload_part(&id, 1, &vec![1u8; 1000][..])?;
    /// let p2 = b.upload_part(&id, 2, &b"end"[..])?;
    /// let parts = [
    ///     CompletedPart { part_number: 1, etag: p1.etag },
    ///     CompletedPart { part_number: 2, etag: p2.etag },
    /// ];
    /// let info = b.complete_upload(&id, &parts, &CompleteOptions::default())?;
    /// assert_eq!(info.size, 1003);
    /// assert!(info.etag.ends_with("-2"));
    /// # Ok::<_, keystone::Error>(())
    /// ```
    ///
    /// Streams one part of a multipart upload (replacing an earlier part with the number).
    ///
    /// # Errors
    /// [`Error::NoSuchUpload`](crate::Error::NoSuchUpload), also when the upload is aborted or
    /// its bucket deleted while the part streams.
    pub fn upload_part(&self, upload_id: &str, part_number: u32, reader: impl Read) -> Result<PartInfo> {
        multipart::upload_part(&self.db.engine, &self.name, upload_id, part_number, reader, None)
    }

    /// [`upload_part`](Self::upload_part) of content that must have the MD5 `content_md5`
    /// (S3's `Content-MD5`): checked against the part's MD5 (its ETag) before it is stored.
    ///
    /// # Errors
    /// As `upload_part`, and [`Error::BadDigest`](crate::Error::BadDigest) (the part is not
    /// stored; an earlier part with its number stays).
    pub fn upload_part_checked(
        &self,
        upload_id: &str,
        part_number: u32,
        reader: impl Read,
        content_md5: [u8; 16],
    ) -> Result<PartInfo> {
        multipart::upload_part(&self.db.engine, &self.name, upload_id, part_number, reader, Some(content_md5))
    }

    /// Publishes the object from the named parts, atomically; parts not named are freed.
    ///
    /// A completion retried after it succeeded (a client whose answer was lost) returns the
    /// object again, as S3 does: the completion leaves a small record of the upload, kept for
    /// at least 24 hours, and a completion of an upload that is gone returns the object under
    /// its key when that record names the ETag the named parts make, the object still has it,
    /// and `opts.key` (when set) is the key it was completed as. `opts.condition` is not
    /// checked again (the first completion checked it). An upload that was aborted has no such
    /// record: completing it stays `NoSuchUpload`.
    ///
    /// # Errors
    /// [`Error::NoSuchUpload`](crate::Error::NoSuchUpload), [`Error::InvalidPart`](crate::Error::InvalidPart),
    /// [`Error::InvalidPartOrder`](crate::Error::InvalidPartOrder), [`Error::EntityTooSmall`](crate::Error::EntityTooSmall),
    /// [`Error::PreconditionFailed`](crate::Error::PreconditionFailed), and [`Error::NoSuchKey`](crate::Error::NoSuchKey)
    /// for [`PutCondition::IfMatch`](crate::PutCondition::IfMatch) on a key with no object.
    pub fn complete_upload(
        &self,
        upload_id: &str,
        parts: &[CompletedPart],
        opts: &CompleteOptions,
    ) -> Result<ObjectInfo> {
        multipart::complete(&self.db.engine, &self.name, upload_id, parts, opts)
    }

    /// Abandons a multipart upload and frees its parts.
    pub fn abort_upload(&self, upload_id: &str) -> Result<()> {
        multipart::abort(&self.db.engine, &self.name, upload_id)
    }

    /// One multipart upload in progress, by id (one lookup).
    ///
    /// # Errors
    /// [`Error::NoSuchUpload`](crate::Error::NoSuchUpload).
    pub fn upload_info(&self, upload_id: &str) -> Result<UploadInfo> {
        self.db.engine.read(|r| multipart::upload_info(r, &self.name, upload_id))
    }

    /// Multipart uploads in progress whose key starts with `prefix`.
    pub fn list_uploads(&self, prefix: &str) -> Result<Vec<UploadInfo>> {
        self.db.engine.read(|r| multipart::list_uploads(r, &self.name, prefix))
    }

    /// Parts uploaded so far, by part number.
    pub fn list_parts(&self, upload_id: &str) -> Result<Vec<PartInfo>> {
        self.db.engine.read(|r| multipart::list_parts(r, &self.name, upload_id))
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync + Clone + 'static>() {}
    is::<Bucket>();
    is::<Datastore>();
    fn is_reader<T: Send + 'static + Read + std::io::Seek>() {}
    is_reader::<ObjectReader>();
}
