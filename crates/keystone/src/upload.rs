//! Writing object content: inline or in chunks, streamed in bounded batches outside
//! transactions, with a staging record that lets recovery free an upload that never finished.

use std::borrow::Cow;
use std::io::Read;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use md5::{Digest, Md5};

use crate::data::chunking::{Chunker, Digests, digest_of, hex, split_tail};
use crate::data::keys;
use crate::data::names;
use crate::data::records::{CHUNK_HEADER, Segment, StagePurpose};
use crate::engine::{Engine, delete_prefix};
use crate::error::{Error, Result};
use crate::objects::{self, NewBody, NewVersion};
use crate::storage::{Counting, Limits, WriteTxn};
use crate::types::{EtagAlgorithm, ObjectInfo, PutCondition, PutOptions};

pub(crate) use crate::staged::Staged;

/// Turns an I/O error from a caller's reader back into the Keystone error it may carry (an
/// object reader's corruption, say).
pub(crate) fn from_io(e: std::io::Error) -> Error {
    e.downcast::<Error>().unwrap_or_else(Error::Io)
}

/// What a finished stream of chunks amounts to.
pub(crate) struct Written {
    /// Where the bytes went: one segment, or (a write's tail cut to fit redb's regions,
    /// `chunking::tail_pieces`) the full chunks' segment, if any, then one per piece.
    pub segs: Vec<Segment>,
    /// The finished ETag hash (MD5 for multipart parts).
    pub digest: [u8; 16],
    pub crc: u32,
    /// The content's MD5, when it was computed (for the ETag or for `content_md5`).
    pub md5: Option<[u8; 16]>,
}

/// The object a write goes to, and the MD5 its content must have (`PutOptions::content_md5`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub content_md5: Option<[u8; 16]>,
}

impl Target<'_> {
    /// Checks the content's MD5; `got` is called only when one is asked for.
    pub(crate) fn check_md5(&self, got: impl FnOnce() -> Option<[u8; 16]>) -> Result<()> {
        let Some(want) = self.content_md5 else { return Ok(()) };
        match got() {
            Some(got) if got == want => Ok(()),
            Some(got) => Err(Error::BadDigest {
                bucket: self.bucket.to_owned(),
                key: self.key.to_owned(),
                expected: hex(&want),
                computed: hex(&got),
            }),
            None => Err(Error::Storage {
                context: "checking the content's MD5".into(),
                source: "the MD5 was not computed".into(),
            }),
        }
    }
}

/// Where the chunks of a write go: a staged upload, or a caller's transaction.
trait ChunkSink {
    /// `n` new segment ids that follow on from each other, for the pieces of the write's
    /// tail, registered wherever the write's segments must be known (freed if it fails).
    fn new_segments(&mut self, n: usize) -> Result<std::ops::Range<u64>>;
    fn put(&mut self, key: Vec<u8>, record: Vec<u8>) -> Result<()>;
}

/// Reads `chunker` to its end into chunks of segment `seg`, handing each chunk to `sink`, and
/// returns the segments written. With `split`, a short last chunk is cut by
/// `chunking::split_tail` into pieces, each a segment of its own, their ids following on
/// (`seg` stays empty if there was no full chunk); without, it is the last chunk of `seg`.
fn write_chunks<R: Read>(
    chunker: &mut Chunker<R>,
    mut carry: Vec<u8>,
    bucket: &str,
    seg: u64,
    split: bool,
    sink: &mut dyn ChunkSink,
) -> Result<Vec<Segment>> {
    let chunk_size = chunker.chunk_size();
    let mut index: u32 = 0;
    let mut len = 0u64;
    let mut pieces = Vec::new();
    while let Some(mut rec) = chunker.next_chunk(&mut carry).map_err(from_io)? {
        let payload = rec.len() - CHUNK_HEADER;
        if split && payload < chunk_size {
            // Short, so the last: the stream's length is known.
            let mut cut = split_tail(chunker.digests.len, rec);
            if cut.len() > 1 {
                pieces = cut;
                break;
            }
            // Not cut: the last chunk of `seg`, as without `split`.
            let Some(whole) = cut.pop() else { break };
            rec = whole;
        }
        sink.put(keys::chunk(bucket, seg, index), rec)?;
        len += payload as u64;
        index = index.checked_add(1).ok_or_else(|| Error::TooLarge("object has more than 2^32 chunks".into()))?;
    }
    let size = u32::try_from(chunk_size).unwrap_or(u32::MAX);
    let mut segs = Vec::with_capacity(1 + pieces.len());
    if index > 0 || pieces.is_empty() {
        segs.push(Segment { id: seg, len, chunk_size: size });
    }
    let ids = if pieces.is_empty() { 0..0 } else { sink.new_segments(pieces.len())? };
    for (rec, id) in pieces.into_iter().zip(ids) {
        let payload = (rec.len() - CHUNK_HEADER) as u32;
        sink.put(keys::chunk(bucket, id, 0), rec)?;
        segs.push(Segment { id, len: u64::from(payload), chunk_size: payload });
    }
    Ok(segs)
}

fn finish_digests<R>(chunker: Chunker<R>, segs: Vec<Segment>) -> Written {
    let d = chunker.digests;
    let (crc, is_md5) = (d.crc, d.algorithm() == Some(EtagAlgorithm::Md5));
    let digest = d.digest();
    Written { segs, digest, crc, md5: is_md5.then_some(digest) }
}

/// A staged upload as a `ChunkSink`, with the thread hashing its MD5, if any.
struct StagedSink<'s, 'e> {
    staged: &'s mut Staged<'e>,
    md5: Option<Md5Thread>,
}

impl ChunkSink for StagedSink<'_, '_> {
    fn new_segments(&mut self, n: usize) -> Result<std::ops::Range<u64>> {
        let ids = self.staged.engine().next_ids(n as u64)?;
        for id in ids.clone() {
            self.staged.add_segment(id)?;
        }
        Ok(ids)
    }

    fn put(&mut self, key: Vec<u8>, record: Vec<u8>) -> Result<()> {
        let record = Arc::new(record);
        if let Some(m) = &self.md5 {
            m.send(&record)?;
        }
        self.staged.push(key, record)
    }
}

/// Streams `reader` into staged chunks of a new segment of `to`, then, once the content passed
/// `to`'s MD5 check, runs the write `publish` makes of the result in the acknowledged commit
/// (group-committed: see `Staged::finish`, which says what that write may do).
pub(crate) fn stream_segment<R: Read, T, P>(
    engine: &Engine,
    to: Target<'_>,
    purpose: StagePurpose,
    mut ch: Chunker<R>,
    carry: Vec<u8>,
    split: bool,
    publish: impl FnOnce(&Written) -> P,
) -> Result<T>
where
    T: Send + 'static,
    P: FnMut(&mut dyn WriteTxn) -> Result<T> + Send + 'static,
{
    let (bucket, seg) = (to.bucket, engine.next_id()?);
    let mut staged = Staged::new(engine, bucket, to.key, purpose, seg)?;
    // XXH3 keeps up with the writes in line; MD5 does not and gets a thread of its own.
    let etag_md5 = ch.digests.algorithm() == Some(EtagAlgorithm::Md5);
    let md5 = if etag_md5 || to.content_md5.is_some() {
        if etag_md5 {
            ch.digests = Digests::new(None);
        }
        Some(Md5Thread::spawn()?)
    } else {
        None
    };
    let mut sink = StagedSink { staged: &mut staged, md5 };
    let segs = write_chunks(&mut ch, carry, bucket, seg, split, &mut sink)?;
    let md5 = sink.md5.take();
    let mut written = finish_digests(ch, segs);
    if let Some(m) = md5 {
        let md5 = m.finish()?;
        written.md5 = Some(md5);
        if etag_md5 {
            written.digest = md5;
        }
    }
    to.check_md5(|| written.md5)?;
    staged.finish(publish(&written))
}

fn md5_failed() -> Error {
    Error::Storage { context: "computing the ETag".into(), source: "the MD5 thread stopped".into() }
}

/// The MD5 of a stream's chunk payloads, computed on a second thread while the first one reads
/// and writes: MD5 runs at about 500 MB/s here, slower than the rest of the write path, so in
/// line it bounded large uploads (BENCHMARKS.md, W4). The channel holds at most four chunks,
/// so memory stays bounded when the hashing falls behind (the writer then waits).
struct Md5Thread {
    tx: Option<SyncSender<Arc<Vec<u8>>>>,
    handle: Option<JoinHandle<[u8; 16]>>,
}

impl Md5Thread {
    fn spawn() -> Result<Self> {
        let (tx, rx) = sync_channel::<Arc<Vec<u8>>>(4);
        let handle = std::thread::Builder::new()
            .name("keystone-md5".into())
            .spawn(move || {
                let mut h = Md5::new();
                for rec in rx {
                    h.update(rec.get(CHUNK_HEADER..).unwrap_or_default());
                }
                h.finalize().into()
            })
            .map_err(Error::Io)?;
        Ok(Md5Thread { tx: Some(tx), handle: Some(handle) })
    }

    fn send(&self, rec: &Arc<Vec<u8>>) -> Result<()> {
        self.tx.as_ref().ok_or_else(md5_failed)?.send(rec.clone()).map_err(|_| md5_failed())
    }

    fn finish(mut self) -> Result<[u8; 16]> {
        drop(self.tx.take());
        self.handle.take().ok_or_else(md5_failed)?.join().map_err(|_| md5_failed())
    }
}

impl Drop for Md5Thread {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// What a copy keeps of its source: its ETag (so the content is not hashed again) and the part
/// count that ETag goes with.
pub(crate) struct Copied {
    pub etag: String,
    pub parts: u32,
}

/// A single-object write outside a transaction: inline and group-committed when small,
/// staged in batches when large. `copied`: the content is a copy of an object.
pub(crate) fn put_stream<R: Read>(
    engine: &Engine,
    bucket: &str,
    key: &str,
    reader: R,
    opts: PutOptions,
    copied: Option<Copied>,
) -> Result<ObjectInfo> {
    // Refused before the source is read.
    engine.writable("writing")?;
    names::check_bucket(bucket)?;
    names::check_key(key)?;
    names::check_meta(&opts.meta)?;
    let mut chunker = Chunker::new(reader, engine.cfg.chunk_size, copied.is_none().then_some(engine.cfg.etag));
    let prefix = chunker.read_prefix(engine.cfg.inline_max + 1).map_err(from_io)?;
    if prefix.len() <= engine.cfg.inline_max {
        return put_inline(engine, bucket, key, prefix, opts, copied);
    }
    let limits = engine.kv.limits();
    let to = Target { bucket, key, content_md5: opts.content_md5 };
    let (b, k, cond, etag) = (bucket.to_owned(), key.to_owned(), opts.condition, engine.cfg.etag);
    // A copy of a multipart object keeps its part count, and its segments would read as its
    // parts if they were as many: its bytes stay one segment.
    let split = copied.as_ref().is_none_or(|c| c.parts <= 1);
    let (info, queued) = stream_segment(engine, to, StagePurpose::Put, chunker, prefix, split, |written| {
        let new = chunked_version(written, opts.meta, copied, etag);
        move |w: &mut dyn WriteTxn| objects::publish(w, limits, &b, &k, new.borrowed(), &cond, false)
    })?;
    engine.free_after_commit(queued);
    Ok(info)
}

/// `put_stream` for bytes already in memory: a small object needs neither a reader nor the
/// prefix buffer sized for the largest inline object.
pub(crate) fn put_slice(engine: &Engine, bucket: &str, key: &str, data: &[u8], opts: PutOptions) -> Result<ObjectInfo> {
    if data.len() > engine.cfg.inline_max {
        return put_stream(engine, bucket, key, data, opts, None);
    }
    names::check_bucket(bucket)?;
    names::check_key(key)?;
    put_inline(engine, bucket, key, data.to_vec(), opts, None)
}

/// A small object: one group-committed write of its manifest.
fn put_inline(
    engine: &Engine,
    bucket: &str,
    key: &str,
    data: Vec<u8>,
    opts: PutOptions,
    copied: Option<Copied>,
) -> Result<ObjectInfo> {
    let limits = engine.kv.limits();
    let to = Target { bucket, key, content_md5: opts.content_md5 };
    let new = inline_version(data, opts.meta, copied, engine.cfg.etag, to)?;
    let (b, k, cond) = (bucket.to_owned(), key.to_owned(), opts.condition);
    let (info, queued) = engine
        .write("putting an object", move |w| objects::publish(w, limits, &b, &k, new.borrowed(), &cond, false))?;
    engine.free_after_commit(queued);
    Ok(info)
}

/// Why a put inside a transaction failed, and whether it left the transaction in a state that
/// must not commit (chunks it could not remove, or a write that failed part way).
#[derive(Debug)]
pub(crate) struct TxnPutError {
    pub error: Error,
    pub unclean: bool,
}

impl From<Error> for TxnPutError {
    fn from(error: Error) -> Self {
        TxnPutError { error, unclean: false }
    }
}

/// `publish` for a put in a caller's transaction. If it fails before its first write, the
/// put's chunks, if any, are taken back out and the transaction can go on; if it fails part
/// way, the transaction must not commit.
#[allow(clippy::too_many_arguments)]
fn publish_in_txn(
    w: &mut dyn WriteTxn,
    limits: Limits,
    bucket: &str,
    key: &str,
    new: NewVersion<'_>,
    cond: &PutCondition,
    bucket_known: bool,
    segs: &[u64],
) -> Result<(ObjectInfo, bool), TxnPutError> {
    let mut counted = Counting::new(w);
    match objects::publish(&mut counted, limits, bucket, key, new, cond, bucket_known) {
        Ok(published) => Ok(published),
        Err(error) => {
            let clean = counted.writes == 0 && take_back(w, bucket, segs);
            Err(TxnPutError { error, unclean: !clean })
        }
    }
}

/// Deletes the chunks of `segs` from a transaction a put wrote them into; `false` if it could
/// not (the transaction must then not commit).
fn take_back(w: &mut dyn WriteTxn, bucket: &str, segs: &[u64]) -> bool {
    segs.iter().all(|seg| delete_prefix(w, &keys::segment_prefix(bucket, *seg)).is_ok())
}

/// The same write inside a caller's transaction: every chunk goes into that transaction.
pub(crate) fn put_in_txn<R: Read>(
    engine: &Engine,
    w: &mut dyn WriteTxn,
    bucket: &str,
    key: &str,
    reader: R,
    opts: PutOptions,
    copied: Option<Copied>,
) -> Result<(ObjectInfo, bool), TxnPutError> {
    let mut chunker = Chunker::new(reader, engine.cfg.chunk_size, copied.is_none().then_some(engine.cfg.etag));
    let prefix = chunker.read_prefix(engine.cfg.inline_max + 1).map_err(from_io)?;
    let limits = engine.kv.limits();
    let to = Target { bucket, key, content_md5: opts.content_md5 };
    // `publish` checks the key, the bucket and the condition before it writes; a chunked
    // object checks them first as well, so that no chunk is written for a refused put.
    let mut segs = Vec::new();
    let new = if prefix.len() <= engine.cfg.inline_max {
        inline_version(prefix, opts.meta, copied, engine.cfg.etag, to)?
    } else {
        names::check_key(key)?;
        names::check_meta(&opts.meta)?;
        objects::require_bucket(w, bucket)?;
        let old = objects::current(w, bucket, key)?;
        objects::check_condition(bucket, key, &old, &opts.condition)?;
        segs.push(engine.next_id()?);
        // As in `put_stream`: a copy of a multipart object stays one segment.
        let split = copied.as_ref().is_none_or(|c| c.parts <= 1);
        match write_chunks_in_txn(engine, w, to, &mut segs, split, chunker, prefix) {
            Ok(written) => chunked_version(&written, opts.meta, copied, engine.cfg.etag),
            Err(error) => {
                // The caller may go on and commit: a failed put takes its chunks back out, or
                // (a backend's limits refusing the deletes) says the transaction cannot commit.
                let unclean = !take_back(w, bucket, &segs);
                return Err(TxnPutError { error, unclean });
            }
        }
    };
    publish_in_txn(w, limits, bucket, key, new, &opts.condition, false, &segs)
}

/// A copy of `bucket/key` to `dst_bucket/dst_key` inside the caller's transaction, which sees
/// the source as the transaction left it. The source is read one chunk at a time through the
/// transaction while the copy's chunks are written into it (`Shared` lends it to both in
/// turn), so memory stays at a chunk or two whatever the object's size. Like
/// `Datastore::copy_object`, the copy keeps the source's metadata, ETag and part count, and
/// stores its bytes as one piece.
pub(crate) fn copy_in_txn(
    engine: &Engine,
    w: &mut dyn WriteTxn,
    bucket: &str,
    key: &str,
    dst_bucket: &str,
    dst_key: &str,
) -> Result<(ObjectInfo, bool), TxnPutError> {
    let shared = crate::storage::Shared::new(w);
    let r = &shared;
    let src = crate::reader::TxnReader::open(&r, bucket, key)?;
    let opts = PutOptions { meta: src.info().meta.clone(), ..PutOptions::default() };
    let copied = Copied { etag: src.info().etag.clone(), parts: src.info().parts };
    let mut w = &shared;
    put_in_txn(engine, &mut w, dst_bucket, dst_key, src, opts, Some(copied))
}

/// The chunks of `to` into the caller's transaction, under the segment `ids` holds and any
/// more it adds there (the tail's pieces), then `to`'s MD5 check.
fn write_chunks_in_txn<R: Read>(
    engine: &Engine,
    w: &mut dyn WriteTxn,
    to: Target<'_>,
    ids: &mut Vec<u64>,
    split: bool,
    mut chunker: Chunker<R>,
    prefix: Vec<u8>,
) -> Result<Written> {
    /// The caller's transaction as a `ChunkSink`, hashing the MD5 `content_md5` asks for
    /// where the ETag hash is not one (in line: no staging thread here).
    struct TxnSink<'a> {
        engine: &'a Engine,
        w: &'a mut dyn WriteTxn,
        ids: &'a mut Vec<u64>,
        md5: Option<Md5>,
    }
    impl ChunkSink for TxnSink<'_> {
        fn new_segments(&mut self, n: usize) -> Result<std::ops::Range<u64>> {
            let ids = self.engine.next_ids(n as u64)?;
            self.ids.extend(ids.clone());
            Ok(ids)
        }
        fn put(&mut self, key: Vec<u8>, record: Vec<u8>) -> Result<()> {
            if let Some(h) = &mut self.md5 {
                h.update(record.get(CHUNK_HEADER..).unwrap_or_default());
            }
            self.w.put(&key, &record)
        }
    }
    let etag_md5 = chunker.digests.algorithm() == Some(EtagAlgorithm::Md5);
    let seg = *ids.first().ok_or_else(|| Error::Storage {
        context: "writing an object's chunks".into(),
        source: "no segment id was allocated".into(),
    })?;
    let mut sink = TxnSink { engine, w, ids, md5: (to.content_md5.is_some() && !etag_md5).then(Md5::new) };
    let segs = write_chunks(&mut chunker, prefix, to.bucket, seg, split, &mut sink)?;
    let extra = sink.md5.take();
    let mut written = finish_digests(chunker, segs);
    if let Some(h) = extra {
        written.md5 = Some(h.finalize().into());
    }
    to.check_md5(|| written.md5)?;
    Ok(written)
}

/// `put_in_txn` for bytes already in memory (see `put_slice`). `bucket_known` as for
/// `objects::publish`.
pub(crate) fn put_slice_in_txn(
    engine: &Engine,
    w: &mut dyn WriteTxn,
    bucket: &str,
    key: &str,
    data: &[u8],
    opts: PutOptions,
    bucket_known: bool,
) -> Result<(ObjectInfo, bool), TxnPutError> {
    if data.len() > engine.cfg.inline_max {
        return put_in_txn(engine, w, bucket, key, data, opts, None);
    }
    let to = Target { bucket, key, content_md5: opts.content_md5 };
    let new = inline_version(data, opts.meta, None, engine.cfg.etag, to)?;
    publish_in_txn(w, engine.kv.limits(), bucket, key, new, &opts.condition, bucket_known, &[])
}

/// A small object's new version, once its content passed `to`'s MD5 check.
fn inline_version<'a>(
    data: impl Into<Cow<'a, [u8]>>,
    meta: crate::types::ObjectMeta,
    copied: Option<Copied>,
    alg: EtagAlgorithm,
    to: Target<'_>,
) -> Result<NewVersion<'a>> {
    let data = data.into();
    let parts = copied.as_ref().map_or(0, |c| c.parts);
    let (etag, md5) = match copied {
        Some(c) => (c.etag, None),
        None => {
            let digest = digest_of(alg, &data);
            (alg.etag(&digest), (alg == EtagAlgorithm::Md5).then_some(digest))
        }
    };
    to.check_md5(|| Some(md5.unwrap_or_else(|| digest_of(EtagAlgorithm::Md5, &data))))?;
    Ok(NewVersion {
        size: data.len() as u64,
        etag,
        crc: crate::data::crc::crc(&data),
        parts,
        meta,
        body: NewBody::Inline(data),
    })
}

fn chunked_version(
    w: &Written,
    meta: crate::types::ObjectMeta,
    copied: Option<Copied>,
    alg: EtagAlgorithm,
) -> NewVersion<'static> {
    let (etag, parts) = match copied {
        Some(c) => (c.etag, c.parts),
        None => (alg.etag(&w.digest), 0),
    };
    let size = w.segs.iter().map(|s| s.len).sum();
    NewVersion { size, etag, crc: w.crc, parts, meta, body: NewBody::Segments(w.segs.clone()) }
}

#[cfg(test)]
mod tests;
