//! The idle limit of every request body: a client that stops sending in the middle of a body
//! is cut off after `Limits::idle_timeout`, whoever reads the body — an upload handler, or s3s
//! itself for the XML bodies it parses whole and for the bodies of STS-scoped requests it
//! hashes before it checks their signature (any client that knows an access key id, not its
//! secret, can send one). hyper limits only the wait for a request's head.
//!
//! The clock runs only while the reader waits on the client (from a poll that finds no data
//! to the next frame), never while the server is busy and not reading: a slow store does not
//! make a client look idle. The same limit applies to a client that stops reading a response
//! ([`WriteIdle`], on the connection).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use s3s::StdError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The error a body ends with when its client fell silent.
#[derive(Debug)]
pub(crate) struct BodyIdle(Duration);

impl std::fmt::Display for BodyIdle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the client sent no part of the request body for {} s", self.0.as_secs())
    }
}

impl std::error::Error for BodyIdle {}

/// Set once a request's body timed out, for the response to say so whatever the reader made of
/// the error.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stalled(Arc<AtomicBool>);

impl Stalled {
    pub(crate) fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A request body that fails with [`BodyIdle`] when its client sends nothing for `idle`.
pub(crate) struct IdleBody<B> {
    inner: B,
    idle: Duration,
    /// Armed while the reader waits for the client.
    sleep: Option<Pin<Box<Sleep>>>,
    stalled: Stalled,
}

impl<B> IdleBody<B> {
    pub(crate) fn new(inner: B, idle: Duration, stalled: Stalled) -> Self {
        IdleBody { inner, idle, sleep: None, stalled }
    }
}

impl<B> Body for IdleBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<StdError>,
{
    type Data = Bytes;
    type Error = StdError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, StdError>>> {
        let this = &mut *self;
        if let Poll::Ready(item) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.sleep = None;
            return Poll::Ready(item.map(|r| r.map_err(Into::into)));
        }
        let idle = this.idle;
        let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + idle)));
        match sleep.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                this.stalled.0.store(true, Ordering::Release);
                Poll::Ready(Some(Err(Box::new(BodyIdle(idle)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection whose writes fail with `TimedOut` once the client has taken nothing for
/// `idle`: a client that stops reading a response is cut off. hyper has no write timeout, and
/// while its write buffer is full it stops polling the response body, so without this a
/// download nobody reads would hold its connection — and its place among the requests in
/// flight (`Limits::max_requests`) — for as long as the client keeps the socket open.
pub(crate) struct WriteIdle<S> {
    inner: S,
    idle: Duration,
    /// Armed while a write waits for the client to take bytes.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteIdle<S> {
    pub(crate) fn new(inner: S, idle: Duration) -> Self {
        WriteIdle { inner, idle, sleep: None }
    }

    /// `polled` when the client took bytes (or failed); `Pending` until `idle` has passed
    /// since the first write it did not take, then `TimedOut`.
    fn timed<T>(&mut self, cx: &mut Context<'_>, polled: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        if polled.is_ready() {
            self.sleep = None;
            return polled;
        }
        let idle = self.idle;
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + idle)));
        match sleep.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the client read nothing of the response for {} s", idle.as_secs()),
            ))),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteIdle<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteIdle<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.timed(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.timed(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.timed(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use futures::StreamExt as _;
    use http_body_util::{BodyExt, StreamBody};

    /// Two frames, a pause of `pause`, then a third.
    fn slow(pause: Duration) -> impl Body<Data = Bytes, Error = std::io::Error> + Unpin {
        let frames = futures::stream::iter([b"a", b"b"]).map(|d| Ok(Frame::data(Bytes::from_static(d)))).chain(
            futures::stream::once(async move {
                tokio::time::sleep(pause).await;
                Ok(Frame::data(Bytes::from_static(b"c")))
            }),
        );
        StreamBody::new(Box::pin(frames))
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_shorter_than_the_limit_passes_and_a_longer_one_fails() {
        let stalled = Stalled::default();
        let body = IdleBody::new(slow(Duration::from_secs(59)), Duration::from_mins(1), stalled.clone());
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abc");
        assert!(!stalled.get());

        let stalled = Stalled::default();
        let body = IdleBody::new(slow(Duration::from_secs(61)), Duration::from_mins(1), stalled.clone());
        let e = body.collect().await.unwrap_err();
        assert!(e.is::<BodyIdle>(), "{e}");
        assert!(stalled.get());
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_reader_spends_elsewhere_does_not_count() {
        let stalled = Stalled::default();
        let mut body = IdleBody::new(slow(Duration::from_secs(30)), Duration::from_mins(1), stalled.clone());
        body.frame().await.unwrap().unwrap();
        // The server is busy for longer than the limit between two reads.
        tokio::time::sleep(Duration::from_mins(5)).await;
        assert_eq!(body.collect().await.unwrap().to_bytes(), "bc");
        assert!(!stalled.get());
    }
}
