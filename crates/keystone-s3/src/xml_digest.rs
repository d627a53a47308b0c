//! Integrity of the request bodies s3s reads whole and parses (the XML of DeleteObjects,
//! CompleteMultipartUpload, CreateBucket): s3s does not check them against their Content-MD5
//! or `x-amz-checksum-*` headers, and a body damaged in transit could delete or publish the
//! wrong things.
//!
//! The body is wrapped in [`Hashing`], which hashes what s3s reads — after the signature and
//! access checks, within s3s's size limit, so an unauthenticated client cannot make the server
//! read anything — and records the verdict in a request extension; every handler checks it
//! first ([`check`]).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, Incoming};
use s3s::StdError;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::Checksum;
use s3s::{S3Result, s3_error};

use crate::body::{ALGOS, bad_checksum, decode_md5, field, hasher_for, mismatch};
use crate::chunked::ChunkCap;
use crate::idle::IdleBody;

/// Why such a body was refused.
#[derive(Clone, Copy, Debug)]
enum Fault {
    InvalidMd5,
    Mismatch(&'static str),
}

#[derive(Clone, Copy, Debug)]
enum Verdict {
    /// The body has not been read to its end: s3s did not parse it, so nothing rests on it.
    Pending,
    Done(Option<Fault>),
}

/// The verdict on the request's body, in its extensions.
#[derive(Clone, Debug)]
pub(crate) struct XmlDigest(Arc<Mutex<Verdict>>);

/// What the headers ask the body to hash to.
struct Wanted {
    md5: Option<[u8; 16]>,
    sums: Checksum,
}

/// The request's body, under the idle limit (`idle.rs`) and the cap on aws-chunked chunks
/// (`chunked.rs`).
type Limited = ChunkCap<IdleBody<Incoming>>;

/// Wraps the body of `req` when it is one s3s parses whole (`xml`) and carries integrity
/// headers, and records an [`XmlDigest`] for the handler. On CompleteMultipartUpload the
/// `x-amz-checksum-*` headers are the whole object's checksum, not the body's: only
/// Content-MD5 applies there. An `aws-chunked` body is left to s3s, which decodes it.
pub(crate) fn watch(req: hyper::Request<Limited>, xml: bool) -> hyper::Request<s3s::Body> {
    let h = req.headers();
    if !xml || crate::body::is_aws_chunked(h) {
        return req.map(s3s::Body::http_body_unsync);
    }
    let complete = crate::auth::query_pairs(req.uri().query().unwrap_or("")).iter().any(|(k, _)| k == "uploadId");
    let mut sums = Checksum::default();
    if !complete {
        for (i, (_, header)) in ALGOS.iter().enumerate() {
            if let Some(v) = h.get(*header) {
                *field(&mut sums, i) = Some(String::from_utf8_lossy(v.as_bytes()).trim().to_owned());
            }
        }
    }
    let md5 = match h.get("content-md5").map(|v| decode_md5(v.as_bytes())) {
        None => None,
        Some(Some(md5)) => Some(md5),
        Some(None) => {
            let mut req = req.map(s3s::Body::http_body_unsync);
            req.extensions_mut().insert(XmlDigest(Arc::new(Mutex::new(Verdict::Done(Some(Fault::InvalidMd5))))));
            return req;
        }
    };
    if md5.is_none() && sums == Checksum::default() {
        return req.map(s3s::Body::http_body_unsync);
    }
    let verdict = Arc::new(Mutex::new(Verdict::Pending));
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(XmlDigest(verdict.clone()));
    let hasher = hasher_for(&sums, &[]);
    let md5_hasher = md5.map(|_| Md5::new());
    let hashing = Hashing { inner: body, wanted: Wanted { md5, sums }, md5: md5_hasher, hasher: Some(hasher), verdict };
    hyper::Request::from_parts(parts, s3s::Body::http_body_unsync(hashing))
}

/// Refuses the request if its body did not match its integrity headers. Requests without an
/// [`XmlDigest`] pass.
pub(crate) fn check(extensions: &hyper::http::Extensions) -> S3Result<()> {
    let Some(XmlDigest(verdict)) = extensions.get::<XmlDigest>() else { return Ok(()) };
    let verdict = verdict.lock().map_or(Verdict::Pending, |v| *v);
    match verdict {
        Verdict::Done(None) | Verdict::Pending => Ok(()),
        Verdict::Done(Some(Fault::InvalidMd5)) => {
            Err(s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid."))
        }
        Verdict::Done(Some(Fault::Mismatch("Content-MD5"))) => {
            Err(s3_error!(BadDigest, "The Content-MD5 you specified did not match what we received."))
        }
        Verdict::Done(Some(Fault::Mismatch(algo))) => Err(bad_checksum(algo)),
    }
}

/// A request body that hashes its bytes as they are read and records the verdict at its end.
struct Hashing {
    inner: Limited,
    wanted: Wanted,
    md5: Option<Md5>,
    hasher: Option<ChecksumHasher>,
    verdict: Arc<Mutex<Verdict>>,
}

impl Hashing {
    fn finish(&mut self) {
        let Some(hasher) = self.hasher.take() else { return };
        let md5_ok = match (self.md5.take(), self.wanted.md5) {
            (Some(h), Some(want)) => h.finalize().as_ref() == want.as_slice(),
            _ => true,
        };
        let fault = if md5_ok {
            mismatch(&self.wanted.sums, &hasher.finalize()).map(Fault::Mismatch)
        } else {
            Some(Fault::Mismatch("Content-MD5"))
        };
        if let Ok(mut v) = self.verdict.lock() {
            *v = Verdict::Done(fault);
        }
    }
}

impl http_body::Body for Hashing {
    type Data = Bytes;
    type Error = StdError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, StdError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Some(h) = &mut this.md5 {
                        h.update(data);
                    }
                    if let Some(h) = &mut this.hasher {
                        h.update(data);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
