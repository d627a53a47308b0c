//! Streaming bodies between hyper and the blocking store calls.
//!
//! Uploads: the request body is pumped on the async side into a bounded channel and read on a
//! blocking thread as `std::io::Read`, which also counts, hashes and checks the bytes; the
//! reader reports end-of-stream only once every check passed, so the store never commits
//! an object that failed one. Content-MD5 is the exception: the store checks it before it
//! commits (`PutOptions::content_md5`), against the MD5 it computes for the ETag anyway, so
//! the body is not hashed twice. Downloads: an `ObjectReader` hands its chunks on a blocking
//! thread, without a copy, in bounded pieces into a bounded channel that feeds the response body.

use std::io::{self, Read};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use hyper::StatusCode;
use s3s::checksum::ChecksumHasher;
use s3s::dto::{Checksum, ChecksumAlgorithm, StreamingBlob};
use s3s::stream::{ByteStream, RemainingLength};
use s3s::{S3Error, S3ErrorCode, S3Result, StdError, TrailingHeaders, s3_error};

use crate::errors::{body_error, custom, to_s3};

/// Pieces in flight between the connection and the store, per request.
const CHANNEL_DEPTH: usize = 4;
/// Bytes per piece of a download.
const READ_PIECE: usize = 256 * 1024;

/// What the body must match: declared length, Content-MD5 (checked by the store: pass it on)
/// and `x-amz-checksum-*` values from headers or trailers.
#[derive(Debug, Default)]
pub(crate) struct Expect {
    pub length: Option<u64>,
    pub md5: Option<[u8; 16]>,
    /// Header values (base64): crc32, crc32c, crc64nvme, sha1, sha256.
    pub checksums: Checksum,
    /// Algorithm to compute even without a value (to report it back).
    pub algorithm: Option<String>,
    /// Trailer named by `x-amz-trailer` that must arrive.
    pub trailer: Option<String>,
    pub trailers: Option<TrailingHeaders>,
}

pub(crate) const ALGOS: [(&str, &str); 5] = [
    (ChecksumAlgorithm::CRC32, "x-amz-checksum-crc32"),
    (ChecksumAlgorithm::CRC32C, "x-amz-checksum-crc32c"),
    (ChecksumAlgorithm::CRC64NVME, "x-amz-checksum-crc64nvme"),
    (ChecksumAlgorithm::SHA1, "x-amz-checksum-sha1"),
    (ChecksumAlgorithm::SHA256, "x-amz-checksum-sha256"),
];

pub(crate) fn field(c: &mut Checksum, i: usize) -> &mut Option<String> {
    match i {
        0 => &mut c.checksum_crc32,
        1 => &mut c.checksum_crc32c,
        2 => &mut c.checksum_crc64nvme,
        3 => &mut c.checksum_sha1,
        _ => &mut c.checksum_sha256,
    }
}

fn value(c: &Checksum, i: usize) -> Option<&str> {
    match i {
        0 => c.checksum_crc32.as_deref(),
        1 => c.checksum_crc32c.as_deref(),
        2 => c.checksum_crc64nvme.as_deref(),
        3 => c.checksum_sha1.as_deref(),
        _ => c.checksum_sha256.as_deref(),
    }
}

/// A Content-MD5 header's digest; `None` when it is not base64 of 16 bytes.
pub(crate) fn decode_md5(b64: &[u8]) -> Option<[u8; 16]> {
    let raw = base64_simd::STANDARD.decode_to_vec(b64.trim_ascii()).ok()?;
    <[u8; 16]>::try_from(raw.as_slice()).ok()
}

/// The first algorithm whose wanted value `got` does not match.
pub(crate) fn mismatch(want: &Checksum, got: &Checksum) -> Option<&'static str> {
    ALGOS.iter().enumerate().find_map(|(i, (algo, _))| {
        let w = value(want, i)?;
        (value(got, i) != Some(w.trim())).then_some(*algo)
    })
}

/// A hasher for every algorithm `want` has a value for, and for `also` (an algorithm name
/// or a trailer's header name).
pub(crate) fn hasher_for(want: &Checksum, also: &[Option<&str>]) -> ChecksumHasher {
    let mut h = ChecksumHasher::default();
    for (i, (algo, header)) in ALGOS.iter().enumerate() {
        if value(want, i).is_some() || also.iter().flatten().any(|a| a == algo || a == header) {
            match i {
                0 => h.crc32 = Some(s3s::crypto::Crc32::default()),
                1 => h.crc32c = Some(s3s::crypto::Crc32c::default()),
                2 => h.crc64nvme = Some(s3s::crypto::Crc64Nvme::default()),
                3 => h.sha1 = Some(s3s::crypto::Sha1::default()),
                _ => h.sha256 = Some(s3s::crypto::Sha256::default()),
            }
        }
    }
    h
}

/// Whether the body is `aws-chunked` (`x-amz-content-sha256: STREAMING-…`), which s3s
/// decodes before the store sees it.
pub(crate) fn is_aws_chunked(headers: &hyper::HeaderMap) -> bool {
    headers.get("x-amz-content-sha256").is_some_and(|v| v.as_bytes().starts_with(b"STREAMING-"))
}

/// The length an `aws-chunked` body declares for its decoded bytes. Only such a body has one:
/// on any other request the header means nothing to s3s, and is not trusted here either.
pub(crate) fn decoded_length(headers: &hyper::HeaderMap) -> Option<u64> {
    if !is_aws_chunked(headers) {
        return None;
    }
    headers.get("x-amz-decoded-content-length")?.to_str().ok()?.parse().ok()
}

pub(crate) fn bad_checksum(algo: &str) -> S3Error {
    custom(
        "BadDigest",
        StatusCode::BAD_REQUEST,
        format!("The {algo} you specified did not match the calculated checksum."),
    )
}

impl Expect {
    /// Builds the expectations of a PUT/UploadPart.
    pub(crate) fn new(
        headers: &hyper::HeaderMap,
        trailers: Option<TrailingHeaders>,
        content_length: Option<i64>,
        content_md5: Option<&str>,
        checksums: Checksum,
        algorithm: Option<&ChecksumAlgorithm>,
    ) -> S3Result<Self> {
        let md5 = content_md5
            .map(|b64| {
                decode_md5(b64.as_bytes())
                    .ok_or_else(|| s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid."))
            })
            .transpose()?;
        let trailer = match headers.get("x-amz-trailer") {
            None => None,
            Some(v) => {
                let name = v.to_str().unwrap_or_default().trim().to_ascii_lowercase();
                if !ALGOS.iter().any(|(_, h)| *h == name) {
                    return Err(s3_error!(InvalidRequest, "Unsupported x-amz-trailer value."));
                }
                Some(name)
            }
        };
        // An aws-chunked body's length is its decoded length (s3s rewrites Content-Length to
        // it only when the request had one); a body with no length at all is refused, as S3
        // refuses a PUT without Content-Length.
        let length = Some(match (decoded_length(headers), content_length) {
            (Some(n), _) => n,
            (None, Some(n)) if n < 0 => return Err(s3_error!(InvalidArgument, "Content-Length must not be negative.")),
            (None, Some(n)) => n.unsigned_abs(),
            (None, None) => {
                return Err(s3_error!(MissingContentLength, "You must provide the Content-Length HTTP header."));
            }
        });
        Ok(Expect {
            length,
            md5,
            checksums,
            algorithm: algorithm.map(|a| a.as_str().to_ascii_uppercase()),
            trailer,
            trailers,
        })
    }

    fn hasher(&self) -> ChecksumHasher {
        hasher_for(&self.checksums, &[self.algorithm.as_deref(), self.trailer.as_deref()])
    }
}

/// Reads the request body on a blocking thread and checks it at the end.
pub(crate) struct BodyReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
    count: u64,
    hasher: Option<ChecksumHasher>,
    expect: Expect,
    /// The computed checksums, once verified.
    computed: Arc<Mutex<Option<Checksum>>>,
    /// Why the reader failed, for the response.
    failure: Arc<Mutex<Option<S3Error>>>,
    done: bool,
}

impl BodyReader {
    fn fail(&self, e: S3Error) -> io::Error {
        if let Ok(mut slot) = self.failure.lock()
            && slot.is_none()
        {
            *slot = Some(e);
        }
        io::Error::other("request body rejected")
    }

    /// The end-of-body checks.
    fn finish(&mut self) -> Result<(), S3Error> {
        if let Some(n) = self.expect.length {
            if self.count < n {
                return Err(S3Error::with_message(
                    S3ErrorCode::IncompleteBody,
                    "You did not provide the number of bytes specified by the Content-Length HTTP header.",
                ));
            }
            if self.count > n {
                return Err(s3_error!(InvalidRequest, "The body is longer than the declared content length."));
            }
        }
        let mut want = self.expect.checksums.clone();
        if let Some(name) = &self.expect.trailer {
            let got = self
                .expect
                .trailers
                .as_ref()
                .and_then(|t| t.read(|h| h.get(name.as_str()).and_then(|v| v.to_str().ok()).map(str::to_owned)));
            let Some(value) = got.flatten() else {
                return Err(s3_error!(InvalidRequest, "The trailer named by x-amz-trailer was not sent."));
            };
            if let Some(i) = ALGOS.iter().position(|(_, h)| h == name) {
                *field(&mut want, i) = Some(value);
            }
        }
        let got = self.hasher.take().map(ChecksumHasher::finalize).unwrap_or_default();
        if let Some(algo) = mismatch(&want, &got) {
            return Err(bad_checksum(algo));
        }
        if let Ok(mut c) = self.computed.lock() {
            *c = Some(got);
        }
        Ok(())
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if !self.cur.is_empty() {
                let n = buf.len().min(self.cur.len());
                buf[..n].copy_from_slice(&self.cur[..n]);
                let _ = self.cur.split_to(n);
                return Ok(n);
            }
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Ok(b)) => {
                    self.count += b.len() as u64;
                    if let Some(n) = self.expect.length
                        && self.count > n
                    {
                        return Err(self
                            .fail(s3_error!(InvalidRequest, "The body is longer than the declared content length.")));
                    }
                    if let Some(h) = &mut self.hasher {
                        h.update(&b);
                    }
                    self.cur = b;
                }
                Some(Err(e)) => return Err(e),
                None => {
                    self.finish().map_err(|e| self.fail(e))?;
                    self.done = true;
                    return Ok(0);
                }
            }
        }
    }
}

/// Streams `body` into `f` (run on the blocking pool) through a [`BodyReader`]. Returns what
/// `f` returned and the checksums computed, or the S3 error for whatever failed first: the
/// body stream, a check, or `f`. A client that falls silent ends the body with an error
/// (`idle.rs`; the server then answers `RequestTimeout`).
pub(crate) async fn consume<T, F>(body: Option<StreamingBlob>, expect: Expect, f: F) -> S3Result<(T, Checksum)>
where
    F: FnOnce(&mut BodyReader) -> keystone::Result<T> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(CHANNEL_DEPTH);
    let failure = Arc::new(Mutex::new(None));
    let computed = Arc::new(Mutex::new(None));
    let hasher = Some(expect.hasher());
    let mut reader = BodyReader {
        rx,
        cur: Bytes::new(),
        count: 0,
        hasher,
        expect,
        computed: computed.clone(),
        failure: failure.clone(),
        done: false,
    };
    let worker = tokio::task::spawn_blocking(move || f(&mut reader));
    let mut body_err: Option<S3Error> = None;
    if let Some(mut body) = body {
        while let Some(item) = body.next().await {
            match item {
                Ok(b) => {
                    if tx.send(Ok(b)).await.is_err() {
                        break; // the store call ended early (an error); it is reported below
                    }
                }
                Err(e) => {
                    body_err = Some(body_error(&e));
                    let _ = tx.send(Err(io::Error::other("request body failed"))).await;
                    break;
                }
            }
        }
    }
    drop(tx);
    let result = worker.await.map_err(crate::errors::internal)?;
    if let Some(e) = body_err {
        return Err(e);
    }
    if let Some(e) = failure.lock().ok().and_then(|mut g| g.take()) {
        return Err(e);
    }
    let value = result.map_err(to_s3)?;
    let sums = computed.lock().ok().and_then(|mut g| g.take()).unwrap_or_default();
    Ok((value, sums))
}

/// A response body read from a blocking reader.
struct ReadStream {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    remaining: usize,
}

impl futures::Stream for ReadStream {
    type Item = Result<Bytes, StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => {
                self.remaining = self.remaining.saturating_sub(b.len());
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl ByteStream for ReadStream {
    fn remaining_length(&self) -> RemainingLength {
        RemainingLength::new_exact(self.remaining)
    }
}

/// The response body of `len` bytes of `reader` from its position: the store's chunks are
/// handed on without a copy (`ObjectReader::next_chunk`), in pieces of at most `READ_PIECE`
/// bytes that share their chunk, so at most about two chunks per download are in memory. A
/// piece the client does not take within `idle` ends the download (and frees the store
/// snapshot).
pub(crate) fn stream_reader(mut reader: keystone::ObjectReader, len: u64, idle: Duration) -> StreamingBlob {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(CHANNEL_DEPTH);
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        pump(&mut reader, len, idle, &tx, &handle);
        // The reader (and its snapshot of the store) goes before the body ends, so a finished
        // response never outlives a handle on the store.
        drop(reader);
        drop(tx);
    });
    StreamingBlob::new(ReadStream { rx, remaining: usize::try_from(len).unwrap_or(usize::MAX) })
}

fn pump(
    reader: &mut keystone::ObjectReader,
    len: u64,
    idle: Duration,
    tx: &tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    handle: &tokio::runtime::Handle,
) {
    let mut left = len;
    while left > 0 {
        let pieces = match reader.next_chunk() {
            Ok(Some(chunk)) => {
                let take = left.min(chunk.len() as u64) as usize;
                left -= take as u64;
                let chunk = Bytes::from_owner(chunk).slice(..take);
                (0..take).step_by(READ_PIECE).map(|at| Ok(chunk.slice(at..take.min(at + READ_PIECE)))).collect()
            }
            Ok(None) => vec![Err(io::Error::from(io::ErrorKind::UnexpectedEof))],
            Err(e) => {
                tracing::error!(error = %keystone::Error::from_io(e), "download failed");
                vec![Err(io::Error::other("object read failed"))]
            }
        };
        for item in pieces {
            let failed = item.is_err();
            let sent = handle.block_on(async { tokio::time::timeout(idle, tx.send(item)).await });
            if failed || !matches!(sent, Ok(Ok(()))) {
                return; // client gone, too slow, or a read error
            }
        }
    }
}
