//! The request log: one line per request when its response body has been sent (or dropped),
//! with the request id, S3 operation, status, bytes sent and total duration.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::Method;
use tokio::sync::OwnedSemaphorePermit;

use crate::auth::OpSlot;

/// What the log line says about a request.
pub(crate) struct Entry {
    pub request_id: String,
    pub method: Method,
    pub path: String,
    pub op: OpSlot,
    pub status: u16,
    pub started: Instant,
}

/// A response body that logs its request when it is finished, and holds the request's place
/// among the requests in flight until then.
pub(crate) struct LoggedBody {
    inner: s3s::Body,
    entry: Option<Entry>,
    _place: Option<OwnedSemaphorePermit>,
    sent: u64,
    failed: bool,
    done: bool,
}

impl LoggedBody {
    pub(crate) fn new(inner: s3s::Body, entry: Entry, place: Option<OwnedSemaphorePermit>) -> Self {
        LoggedBody { inner, entry: Some(entry), _place: place, sent: 0, failed: false, done: false }
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = s3s::StdError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => this.sent += frame.data_ref().map_or(0, |d| d.len() as u64),
            Poll::Ready(Some(Err(_))) => this.failed = true,
            Poll::Ready(None) => this.done = true,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        let Some(e) = self.entry.take() else { return };
        // A response that has no body in HTTP (to HEAD, or 204/304) is dropped by hyper unread.
        let bodiless = e.method == Method::HEAD || e.status == 204 || e.status == 304;
        let complete = !self.failed && (self.done || bodiless || self.inner.is_end_stream());
        let op = e.op.get().unwrap_or_else(|| "-".to_owned());
        let ms = e.started.elapsed().as_millis() as u64;
        let (rid, method, path, status, sent) = (e.request_id, e.method, e.path, e.status, self.sent);
        if !complete {
            tracing::warn!(request_id = %rid, %method, %path, %op, status, sent, ms, "request (response body not completed)");
        } else if status >= 500 {
            tracing::warn!(request_id = %rid, %method, %path, %op, status, sent, ms, "request");
        } else {
            tracing::info!(request_id = %rid, %method, %path, %op, status, sent, ms, "request");
        }
    }
}
