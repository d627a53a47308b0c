//! Reading objects: a `Read + Seek` reader that owns its snapshot and loads one chunk at a
//! time, checking each chunk's CRC and, on a full sequential read, the whole-object CRC. The
//! same walk over the chunks (`Cursor`) also reads through a view lent for each call
//! (`TxnReader`: a copy's source, read through the write transaction the copy writes into).

use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Bound;
use std::sync::Arc;

use crate::data::chunking::{chunk_len, locate};
use crate::data::keys;
use crate::data::records::{Body, BodyRef, CHUNK_HEADER, Manifest, Owner, ReadPlan, Segment, open_chunk};
use crate::error::{Error, Result};
use crate::storage::{KvRead, ReadTxn, Value};
use crate::types::ObjectInfo;

/// A reader over one version of an object.
///
/// It owns the snapshot it was opened in, so it is `Send + 'static`: it can move to another
/// thread or into an HTTP response body, and it keeps reading the version it opened even if
/// the object is overwritten or deleted meanwhile. Memory use is one chunk.
///
/// Every chunk is checked against its CRC32C as it is loaded; a read from start to end also
/// checks the whole object's CRC32C. A mismatch is an `io::Error` wrapping
/// [`Error::Corrupted`] (use [`Error::from_io`] to get it back).
pub struct ObjectReader {
    snap: Arc<dyn ReadTxn>,
    c: Cursor,
}

/// Where a read of one object version stands, and what it has checked: the state of an
/// [`ObjectReader`] apart from its snapshot, so that the same walk over the chunks also reads
/// from a view lent for each call (a write transaction, for a copy inside it; see
/// [`TxnReader`]).
pub(crate) struct Cursor {
    info: ObjectInfo,
    body: ReaderBody,
    pos: u64,
    /// Object offset of the loaded chunk, and its record.
    cur: Option<(u64, Value)>,
    /// Whole-object CRC of the chunks loaded in order from the start, and where they end;
    /// `None` once the reader jumped around.
    whole: Option<(u32, u64)>,
}

enum ReaderBody {
    Inline(Vec<u8>),
    Segments(Vec<Segment>),
}

/// A piece of an object from [`ObjectReader::next_chunk`]: derefs to its bytes, and owns
/// them (`Send + 'static`), so it can be handed on, e.g. into an HTTP body without a copy.
pub struct Chunk {
    bytes: ChunkBytes,
    range: std::ops::Range<usize>,
}

enum ChunkBytes {
    /// The stored chunk record, shared with the storage engine.
    Stored(Value),
    /// A small object's body, copied out of its manifest.
    Inline(Vec<u8>),
}

impl std::ops::Deref for Chunk {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let all: &[u8] = match &self.bytes {
            ChunkBytes::Stored(v) => v,
            ChunkBytes::Inline(v) => v,
        };
        // In bounds: `next_chunk` builds the range from this very buffer.
        all.get(self.range.clone()).unwrap_or_default()
    }
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chunk({} bytes)", self.len())
    }
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader").field("info", &self.c.info).field("pos", &self.c.pos).finish_non_exhaustive()
    }
}

impl ObjectReader {
    pub(crate) fn new(snap: Arc<dyn ReadTxn>, info: ObjectInfo, m: Manifest) -> Result<Self> {
        Ok(ObjectReader { snap, c: Cursor::new(info, m)? })
    }

    /// The object this reader reads.
    pub fn info(&self) -> &ObjectInfo {
        &self.c.info
    }

    /// The object's length.
    pub fn len(&self) -> u64 {
        self.c.info.size
    }

    /// Whether the object is empty.
    pub fn is_empty(&self) -> bool {
        self.c.info.size == 0
    }

    /// Current position.
    pub fn position(&self) -> u64 {
        self.c.pos
    }

    /// How many parts [`part_range`](Self::part_range) gives: the part count of an object
    /// completed from a multipart upload (each part is kept as its own segment), and 1 for any
    /// other object. A copy of a multipart object is one part here: it keeps the source's ETag
    /// and part count ([`ObjectInfo::parts`]) but stores the bytes as one piece.
    pub fn part_count(&self) -> u32 {
        self.c.part_count()
    }

    /// The bytes of part `part_number` (from 1 to [`part_count`](Self::part_count)) of this
    /// version, as S3's `partNumber` names them: for an object completed from a multipart
    /// upload, the part at that place in the completed list; for any other object, part 1 is
    /// the whole object. `None` when there is no such part.
    pub fn part_range(&self, part_number: u32) -> Option<std::ops::Range<u64>> {
        self.c.part_range(part_number)
    }

    /// The bytes from the current position to the end of the chunk that holds it, handed out
    /// without a copy (a `Chunk` shares the stored chunk with the page cache until dropped),
    /// and the position moves past them; `None` at the end. The checks are those of `read`:
    /// each chunk's CRC32C when it is loaded, and the whole object's when a read from the start
    /// reaches the end (before the last chunk is handed out).
    ///
    /// `read` copies every byte into the caller's buffer; a consumer that only looks at the
    /// bytes or writes them on (a hash, a socket, another file) saves that copy with this.
    ///
    /// ```
    /// # let db = keystone::Datastore::builder().chunk_size(1000).inline_threshold(100).in_memory()?;
    /// # let b = db.create_bucket("media")?;
    /// b.put_bytes("clip", vec![7u8; 2500])?;
    /// let mut r = b.open("clip")?;
    /// let mut sizes = Vec::new();
    /// while let Some(chunk) = r.next_chunk()? {
    ///     sizes.push(chunk.len());
    /// }
    /// assert_eq!(sizes, [1000, 1000, 500]);
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As `read`: an `io::Error` wrapping [`Error::Corrupted`] or the store's error.
    pub fn next_chunk(&mut self) -> io::Result<Option<Chunk>> {
        self.c.next_chunk(self.snap.as_ref())
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.c.read(self.snap.as_ref(), buf)
    }
}

impl Seek for ObjectReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.c.seek(to)
    }
}

/// A reader over an object in a view lent to it for each read, not owned: what a copy inside
/// a write transaction reads its source through, taking turns with the writes of the copy
/// (see `storage::Shared`). Memory use is one chunk, as for [`ObjectReader`].
pub(crate) struct TxnReader<'r> {
    r: &'r dyn KvRead,
    c: Cursor,
}

impl<'r> TxnReader<'r> {
    /// Opens `key` as `r` sees it.
    pub(crate) fn open(r: &'r dyn KvRead, bucket: &str, key: &str) -> Result<Self> {
        Ok(TxnReader { r, c: Cursor::open(r, bucket, key)? })
    }

    pub(crate) fn info(&self) -> &ObjectInfo {
        &self.c.info
    }
}

impl Read for TxnReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.c.read(self.r, buf)
    }
}

impl Cursor {
    /// At the start of `key` as `r` sees it.
    fn open(r: &dyn KvRead, bucket: &str, key: &str) -> Result<Self> {
        let m = crate::objects::existing(r, bucket, key, true).map_err(|e| e.at(bucket, key))?;
        Self::new(crate::objects::info(bucket, key, &m), m)
    }

    fn new(info: ObjectInfo, m: Manifest) -> Result<Self> {
        let body = match m.body {
            Body::Inline(data) => {
                let crc = crate::data::crc::crc(&data);
                if crc != m.crc {
                    return Err(Error::corrupted(
                        &info.bucket,
                        &info.key,
                        format!("checksum mismatch (stored {:08x}, computed {crc:08x})", m.crc),
                    ));
                }
                ReaderBody::Inline(data)
            }
            Body::Segments(s) => ReaderBody::Segments(s),
        };
        Ok(Cursor { info, body, pos: 0, cur: None, whole: Some((0, 0)) })
    }

    fn part_count(&self) -> u32 {
        match &self.body {
            ReaderBody::Segments(segs) if self.info.parts > 1 && segs.len() == self.info.parts as usize => {
                self.info.parts
            }
            _ => 1,
        }
    }

    fn part_range(&self, part_number: u32) -> Option<std::ops::Range<u64>> {
        let index = usize::try_from(part_number.checked_sub(1)?).ok()?;
        if self.part_count() == 1 {
            return (index == 0).then_some(0..self.info.size);
        }
        let ReaderBody::Segments(segs) = &self.body else { return None };
        let start: u64 = segs.get(..index)?.iter().map(|s| s.len).sum();
        Some(start..start + segs.get(index)?.len)
    }

    fn corrupt(&self, reason: impl Into<String>) -> io::Error {
        io::Error::other(Error::corrupted(&self.info.bucket, &self.info.key, reason))
    }

    /// Loads the chunk holding `self.pos` from `r`.
    fn load(&mut self, r: &dyn KvRead, segs: &[Segment]) -> io::Result<()> {
        let Some((si, ci, _, start)) = locate(segs, self.pos) else {
            return Err(self.corrupt("position past the last segment"));
        };
        let seg = segs[si];
        let key = keys::chunk(&self.info.bucket, seg.id, ci);
        let value = match r.get(&key) {
            Ok(Some(v)) => v,
            Ok(None) => return Err(self.corrupt(format!("chunk {ci} of segment {si} is missing"))),
            Err(e) => return Err(io::Error::other(e.at(&self.info.bucket, &self.info.key))),
        };
        let payload = open_chunk(&value).map_err(|e| io::Error::other(e.at(&self.info.bucket, &self.info.key)))?;
        let expected = chunk_len(&seg, u64::from(ci));
        if payload.len() as u64 != expected {
            return Err(self.corrupt(format!("chunk {ci} holds {} bytes, expected {expected}", payload.len())));
        }
        let crc = u32::from_le_bytes([value[1], value[2], value[3], value[4]]);
        self.whole = match self.whole {
            Some((acc, end)) if end == start => {
                Some((crate::data::crc::combine(acc, crc, payload.len()), end + expected))
            }
            _ => None,
        };
        self.cur = Some((start, value));
        Ok(())
    }

    /// Loads the chunk holding `self.pos` unless it is the loaded one.
    fn ensure_loaded(&mut self, r: &dyn KvRead) -> io::Result<()> {
        let loaded = matches!(&self.cur, Some((start, v)) if self.pos >= *start && self.pos < *start + (v.len() - CHUNK_HEADER) as u64);
        if loaded {
            return Ok(());
        }
        // Lent out of `self` for the call, not cloned: an object of 10,000 parts has 240 KB of
        // segments, which a clone per loaded chunk would copy every megabyte.
        let ReaderBody::Segments(segs) = &mut self.body else { return Ok(()) };
        let segs = std::mem::take(segs);
        let loaded = self.load(r, &segs);
        self.body = ReaderBody::Segments(segs);
        loaded
    }

    /// See [`ObjectReader::next_chunk`].
    fn next_chunk(&mut self, r: &dyn KvRead) -> io::Result<Option<Chunk>> {
        if self.pos >= self.info.size {
            if matches!(self.body, ReaderBody::Segments(_)) {
                self.check_whole()?;
            }
            return Ok(None);
        }
        if let ReaderBody::Inline(data) = &self.body {
            // At most the inline threshold (16 KiB by default): a copy, not a shared chunk.
            let chunk = Chunk { bytes: ChunkBytes::Inline(data.clone()), range: self.pos as usize..data.len() };
            self.pos = self.info.size;
            return Ok(Some(chunk));
        }
        self.ensure_loaded(r)?;
        let Some((start, value)) = self.cur.take() else { return Err(self.corrupt("no chunk loaded")) };
        let from = CHUNK_HEADER + (self.pos - start) as usize;
        self.pos = start + (value.len() - CHUNK_HEADER) as u64;
        if self.pos >= self.info.size {
            self.check_whole()?;
        }
        Ok(Some(Chunk { range: from..value.len(), bytes: ChunkBytes::Stored(value) }))
    }

    fn check_whole(&mut self) -> io::Result<()> {
        if let Some((crc, end)) = self.whole
            && end == self.info.size
        {
            self.whole = None; // checked once
            if crc != self.info.checksum {
                return Err(self.corrupt(format!(
                    "object checksum mismatch (stored {:08x}, computed {crc:08x})",
                    self.info.checksum
                )));
            }
        }
        Ok(())
    }

    fn read(&mut self, r: &dyn KvRead, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.pos >= self.info.size {
            if matches!(self.body, ReaderBody::Segments(_)) && self.pos >= self.info.size {
                self.check_whole()?;
            }
            return Ok(0);
        }
        if let ReaderBody::Inline(data) = &self.body {
            let start = self.pos as usize;
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
            self.pos += n as u64;
            return Ok(n);
        }
        self.ensure_loaded(r)?;
        let Some((start, value)) = &self.cur else { return Err(self.corrupt("no chunk loaded")) };
        let payload = &value[CHUNK_HEADER..];
        let off = (self.pos - start) as usize;
        let n = buf.len().min(payload.len() - off);
        buf[..n].copy_from_slice(&payload[off..off + n]);
        self.pos += n as u64;
        if self.pos >= self.info.size {
            self.check_whole()?;
        }
        Ok(n)
    }

    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.info.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(t) => {
                self.pos = t;
                Ok(t)
            }
            None => Err(io::Error::new(io::ErrorKind::InvalidInput, "seek to a negative or overflowing position")),
        }
    }
}

/// Opens `key` in `snap`.
pub(crate) fn open(snap: Arc<dyn ReadTxn>, bucket: &str, key: &str) -> Result<ObjectReader> {
    let c = Cursor::open(snap.as_ref(), bucket, key)?;
    Ok(ObjectReader { snap, c })
}

/// Reads the whole object or a range of it from any view (snapshot or transaction).
pub(crate) fn read_range(
    r: &dyn KvRead,
    bucket: &str,
    key: &str,
    range: (Bound<&u64>, Bound<&u64>),
) -> Result<Vec<u8>> {
    crate::data::names::check_key(key)?;
    let checked_range = |size: u64| {
        resolve_range(range, size).ok_or_else(|| Error::InvalidRange {
            bucket: bucket.into(),
            key: key.into(),
            start: bound_start(range.0),
            end: bound_end(range.1, size),
            size,
        })
    };
    // An inline object is decoded, checked and copied (only the bytes asked for) while the
    // store lends its record: no guard, no copy of the whole record.
    enum Found {
        Inline(Vec<u8>),
        Chunked(Vec<crate::data::records::Segment>, u32, u64, u64, u64),
    }
    let found = crate::objects::lookup(r, bucket, key, |buf| {
        let plan = ReadPlan::decode(buf, Owner { bucket, key }).map_err(|e| e.at(bucket, key))?;
        let (start, end) = checked_range(plan.size)?;
        Ok(match plan.body {
            BodyRef::Segments(segs) => Found::Chunked(segs, plan.crc, plan.size, start, end),
            BodyRef::Inline(data) => {
                // The decode checked that the body is `size` bytes long, so the range lies in it.
                let wanted = data.get(start as usize..end as usize);
                let out = wanted.ok_or_else(|| Error::corrupted(bucket, key, "range past the body"))?.to_vec();
                // Copy first, then check the copy when it is the whole body: the copy pulls the
                // record out of memory at streaming speed, and the CRC then runs on cached bytes
                // (checked first, the CRC's interleaved loads paid the memory latency instead:
                // 0.8 µs of a 10 KiB get).
                let checked = if out.len() == data.len() { &out[..] } else { data };
                if crate::data::crc::crc(checked) != plan.crc {
                    return Err(Error::corrupted(bucket, key, "checksum mismatch"));
                }
                Found::Inline(out)
            }
        })
    })?;
    let found = match found {
        crate::objects::Lookup::Hit { value, .. } => value,
        crate::objects::Lookup::Miss { .. } => return Err(Error::no_such_key(bucket, key)),
        crate::objects::Lookup::NoBucket => return Err(Error::no_such_bucket(bucket)),
    };
    match found {
        Found::Inline(out) => Ok(out),
        Found::Chunked(segs, crc, size, start, end) => {
            let full = start == 0 && end == size;
            // Reserved up to 64 MiB: the size comes from a record that may be damaged.
            let mut out = Vec::with_capacity((end - start).min(64 << 20) as usize);
            let mut pos = start;
            let mut whole = 0u32;
            while pos < end {
                let Some((si, ci, off, _)) = locate(&segs, pos) else {
                    return Err(Error::corrupted(bucket, key, "position past the last segment"));
                };
                let seg = segs[si];
                let Some(value) = r.get(&keys::chunk(bucket, seg.id, ci))? else {
                    return Err(Error::corrupted(bucket, key, format!("chunk {ci} of segment {si} is missing")));
                };
                let payload = open_chunk(&value).map_err(|e| e.at(bucket, key))?;
                if payload.len() as u64 != chunk_len(&seg, u64::from(ci)) {
                    return Err(Error::corrupted(bucket, key, format!("chunk {ci} has the wrong length")));
                }
                if full {
                    let chunk_crc = u32::from_le_bytes([value[1], value[2], value[3], value[4]]);
                    whole = crate::data::crc::combine(whole, chunk_crc, payload.len());
                }
                let take = (payload.len() as u64 - off).min(end - pos) as usize;
                out.extend_from_slice(&payload[off as usize..off as usize + take]);
                pos += take as u64;
            }
            if full && whole != crc {
                return Err(Error::corrupted(bucket, key, "object checksum mismatch"));
            }
            Ok(out)
        }
    }
}

fn bound_start(b: Bound<&u64>) -> u64 {
    match b {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    }
}

fn bound_end(b: Bound<&u64>, size: u64) -> u64 {
    match b {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => size,
    }
}

/// A byte range resolved against an object of `size` bytes: `start..end`, or `None` when it
/// does not lie within the object.
pub(crate) fn resolve_range(range: (Bound<&u64>, Bound<&u64>), size: u64) -> Option<(u64, u64)> {
    let (start, end) = (bound_start(range.0), bound_end(range.1, size));
    (start <= end && end <= size).then_some((start, end))
}
