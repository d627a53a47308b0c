//! A cap on the chunks of an `aws-chunked` request body.
//!
//! s3s decodes `aws-chunked` bodies (`x-amz-content-sha256: STREAMING-…`) and holds each chunk
//! whole in memory before it checks the chunk's signature and hands its bytes on. A chunk's
//! size is whatever the body says, up to 4 GiB, whatever the declared lengths: one request
//! could make the server hold gigabytes. [`ChunkCap`] reads the chunk sizes as the body goes
//! by (holding none of it) and fails the body at the first chunk over [`MAX_CHUNK`], before
//! s3s has buffered it. Clients send chunks of 8 KiB to 1 MiB (the AWS SDKs 64 KiB, botocore
//! 1 MiB); MinIO refuses chunks over 16 MiB too.
//!
//! The framing, as s3s reads it: a line `<hex size>[;chunk-signature=<sig>]\r\n`, the chunk's
//! bytes, `\r\n`, and so on until a chunk of size 0, which trailers may follow (s3s caps
//! those at 16 KiB). The size is the value of the hex digits that begin the line, as s3s takes
//! it — so both skip the same bytes and meet at the same next line. s3s reads only the first
//! eight digits and drops the rest (`000000010` is 1 to it): a line with more than eight is
//! refused here, since following it either way would lose step with s3s (a review found a body
//! that did so and slipped a 20 MiB chunk through). Anything else wrong with a line is left for
//! s3s to refuse.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use s3s::StdError;

/// The largest chunk an `aws-chunked` body may have.
pub(crate) const MAX_CHUNK: u64 = 16 << 20;

/// Hex digits of the longest chunk size s3s reads whole (a u32).
const MAX_DIGITS: u8 = 8;

/// The error a body ends with at a chunk over [`MAX_CHUNK`], or at a size line s3s would read
/// otherwise than its digits say; `errors::body_error` answers it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ChunkError {
    TooLarge(u64),
    LongSize,
}

impl ChunkError {
    /// What [`ChunkError::TooLarge`]'s text starts with, for `errors::body_error` to recognise
    /// it through s3s's wrapping (which keeps only the text).
    pub(crate) const TOO_LARGE: &'static str = "aws-chunked chunk too large";
    /// The same for [`ChunkError::LongSize`].
    pub(crate) const LONG_SIZE: &'static str = "aws-chunked chunk size malformed";
}

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChunkError::TooLarge(size) => write!(
                f,
                "{}: a chunk of {size} bytes, over the server's limit of {MAX_CHUNK} bytes (16 MiB)",
                Self::TOO_LARGE
            ),
            ChunkError::LongSize => {
                write!(f, "{}: a chunk size of more than {MAX_DIGITS} hex digits", Self::LONG_SIZE)
            }
        }
    }
}

impl std::error::Error for ChunkError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a chunk's size line: the size so far, its digits so far, and whether more may come.
    Line { size: u64, digits: u8, more: bool },
    /// In a chunk's bytes and the CRLF after them: how many are left.
    Data { left: u64 },
    /// After the last chunk (trailers), on a body that is not `aws-chunked`, or after a
    /// failure: nothing more is looked at.
    Done,
}

const LINE: State = State::Line { size: 0, digits: 0, more: true };

/// A request body whose `aws-chunked` chunks may be at most [`MAX_CHUNK`] bytes.
pub(crate) struct ChunkCap<B> {
    inner: B,
    state: State,
}

impl<B> ChunkCap<B> {
    /// `chunked`: whether the body is `aws-chunked` (otherwise it passes as it is).
    pub(crate) fn new(inner: B, chunked: bool) -> Self {
        ChunkCap { inner, state: if chunked { LINE } else { State::Done } }
    }

    /// Follows the framing through `bytes`.
    fn scan(&mut self, mut bytes: &[u8]) -> Result<(), ChunkError> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Done => return Ok(()),
                State::Data { left } => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    bytes = &bytes[n as usize..];
                    if *left == 0 {
                        self.state = LINE;
                    }
                }
                State::Line { size, digits, more } => {
                    let b = bytes[0];
                    bytes = &bytes[1..];
                    if *more {
                        match (b as char).to_digit(16) {
                            Some(_) if *digits == MAX_DIGITS => {
                                self.state = State::Done;
                                return Err(ChunkError::LongSize);
                            }
                            Some(d) => {
                                *size = *size * 16 + u64::from(d);
                                *digits += 1;
                            }
                            None => *more = false,
                        }
                    }
                    if *size > MAX_CHUNK {
                        let size = *size;
                        self.state = State::Done;
                        return Err(ChunkError::TooLarge(size));
                    }
                    if b == b'\n' {
                        // The chunk's bytes and the CRLF that ends them; a size of 0 ends the
                        // chunks.
                        self.state = if *size == 0 { State::Done } else { State::Data { left: *size + 2 } };
                    }
                }
            }
        }
        Ok(())
    }
}

impl<B> Body for ChunkCap<B>
where
    B: Body<Data = Bytes, Error = StdError> + Unpin,
{
    type Data = Bytes;
    type Error = StdError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, StdError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
            && let Err(e) = this.scan(data)
        {
            return Poll::Ready(Some(Err(Box::new(e))));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(pieces: &[&[u8]]) -> Result<State, ChunkError> {
        let mut c = ChunkCap::new((), true);
        for p in pieces {
            c.scan(p)?;
        }
        Ok(c.state)
    }

    const SIG: &str = ";chunk-signature=0000000000000000000000000000000000000000000000000000000000000000\r\n";

    #[test]
    fn follows_the_framing_of_a_signed_body_split_anywhere() {
        let mut body = Vec::new();
        for size in [65_536usize, 1, 4096] {
            body.extend_from_slice(format!("{size:x}{SIG}").as_bytes());
            body.extend(std::iter::repeat_n(b'\n', size)); // data bytes that look like line ends
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("0{SIG}x-amz-checksum-crc32:AAAAAA==\r\n\r\n").as_bytes());
        for split in [1, 7, 100, 65_600, body.len()] {
            let pieces: Vec<&[u8]> = body.chunks(split).collect();
            assert_eq!(scan_all(&pieces), Ok(State::Done), "split {split}");
        }
    }

    #[test]
    fn refuses_a_chunk_over_the_limit_before_its_bytes() {
        let at_limit = format!("{MAX_CHUNK:x}\r\n");
        assert_eq!(scan_all(&[at_limit.as_bytes()]), Ok(State::Data { left: MAX_CHUNK + 2 }));
        let over = format!("{:x}{SIG}", MAX_CHUNK + 1);
        assert_eq!(scan_all(&[over.as_bytes()]), Err(ChunkError::TooLarge(MAX_CHUNK + 1)));
        // Refused as soon as the digits say so, even split, and however many digits follow.
        assert_eq!(scan_all(&[b"fffff", b"fffffffffffffffffffffff"]), Err(ChunkError::TooLarge(0x0fff_ffff)));
        // The second chunk's size counts as much as the first's.
        let second = format!("4\r\nabcd\r\n{:x}\r\n", 1u64 << 32);
        assert_eq!(scan_all(&[second.as_bytes()]), Err(ChunkError::TooLarge(0x1000_0000)));
        // Eight digits with leading zeros are a size as any other; a ninth is refused: s3s
        // would read `000000010` as 1 and this cap, had it read 16, would lose step with it
        // (the next line's bytes taken for data, a later 4 GiB chunk let through).
        assert_eq!(scan_all(&[b"0000000a\r\n"]), Ok(State::Data { left: 12 }));
        let desync = format!("000000010{SIG}a\r\nffffffff{SIG}");
        assert_eq!(scan_all(&[desync.as_bytes()]), Err(ChunkError::LongSize));
        assert_eq!(scan_all(&[b"0000", b"00000", b"\r\n"]), Err(ChunkError::LongSize));
    }

    #[test]
    fn a_body_that_is_not_aws_chunked_passes() {
        let mut c = ChunkCap::new((), false);
        assert!(c.scan(b"ffffffffff\r\n").is_ok());
    }

    #[test]
    fn the_error_is_recognised_through_s3s_wrapping() {
        let wrapped: StdError = format!("AwsChunkedStreamError: Underlying: {}", ChunkError::TooLarge(1 << 30)).into();
        let e = crate::errors::body_error(&wrapped);
        assert_eq!(e.code(), &s3s::S3ErrorCode::EntityTooLarge);
        assert!(e.message().is_some_and(|m| m.contains("1073741824") && m.contains("16 MiB")), "{e:?}");
        let wrapped: StdError = format!("AwsChunkedStreamError: Underlying: {}", ChunkError::LongSize).into();
        let e = crate::errors::body_error(&wrapped);
        assert_eq!(e.code(), &s3s::S3ErrorCode::InvalidRequest);
        assert!(e.message().is_some_and(|m| m.contains("more than 8 hex digits")), "{e:?}");
    }
}
