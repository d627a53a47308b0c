//! Chunk arithmetic and the cutting of a byte stream into chunk records.

use std::io::Read;

use md5::{Digest, Md5};
use twox_hash::XxHash3_128;

use crate::types::EtagAlgorithm;

use super::records::{CHUNK_HEADER, Segment, chunk_buffer, seal_chunk};

/// Number of chunks of `chunk_size` needed for `len` bytes (0 for an empty segment).
pub(crate) fn chunk_count(len: u64, chunk_size: u32) -> u64 {
    if len == 0 || chunk_size == 0 { 0 } else { len.div_ceil(u64::from(chunk_size)) }
}

/// Payload length of chunk `index` of a segment.
pub(crate) fn chunk_len(seg: &Segment, index: u64) -> u64 {
    let start = index * u64::from(seg.chunk_size);
    seg.len.saturating_sub(start).min(u64::from(seg.chunk_size))
}

/// Where byte `offset` of an object made of `segs` lives: segment index, chunk index within
/// the segment, offset within the chunk, and the object offset at which that chunk starts.
/// `None` when `offset` is at or past the end.
pub(crate) fn locate(segs: &[Segment], offset: u64) -> Option<(usize, u32, u64, u64)> {
    let mut seg_start = 0u64;
    for (i, s) in segs.iter().enumerate() {
        if offset < seg_start + s.len {
            let within = offset - seg_start;
            let chunk = within / u64::from(s.chunk_size);
            let chunk_start = seg_start + chunk * u64::from(s.chunk_size);
            return Some((i, chunk as u32, offset - chunk_start, chunk_start));
        }
        seg_start += s.len;
    }
    None
}

/// The smallest region redb gives a page: a leaf holding one value takes a region of this
/// size times a power of two (the orders of its buddy allocator).
const REGION_UNIT: usize = 4096;

/// What a chunk record's region holds besides its payload: the 5-byte header, the chunk key
/// (at most 85 bytes) and redb's leaf header and offsets (12 bytes), with room to spare.
const REGION_MARGIN: usize = 128;

/// The region a chunk of `payload` bytes takes in redb: the smallest power-of-two multiple
/// of a page that holds it.
pub(crate) fn region_of(payload: usize) -> usize {
    (payload + REGION_MARGIN).next_power_of_two().max(REGION_UNIT)
}

/// How a write's last, short chunk of `tail` bytes is cut so that it does not waste most of a
/// region: a 17 KiB object in one chunk takes a 32 KiB region, in pieces of 16 KiB − 128 and
/// the rest, 20 KiB. Each piece but the last fills its region; cutting stops once the rest's
/// region wastes at most a sixteenth of the object (`total` bytes), or is two pages or less
/// (cutting it again would take as many pages). So a large object's tail stays whole (a
/// sixteenth of it is more than any tail wastes), and a piece is never smaller than a page's
/// worth unless it is the last one. docs/design.md has the figures.
pub(crate) fn tail_pieces(total: u64, tail: usize) -> Vec<usize> {
    let slack = usize::try_from(total / 16).unwrap_or(usize::MAX);
    let mut pieces = Vec::new();
    let mut rest = tail;
    loop {
        let region = region_of(rest);
        if region <= 2 * REGION_UNIT || region - rest - REGION_MARGIN <= slack {
            pieces.push(rest);
            return pieces;
        }
        // The largest payload that fills a region of half the size: less than `rest`, since
        // `region` is the smallest that holds it.
        let piece = region / 2 - REGION_MARGIN;
        pieces.push(piece);
        rest -= piece;
    }
}

/// A write's last chunk record, cut by [`tail_pieces`] into sealed records of their own
/// (one piece: the record itself).
pub(crate) fn split_tail(total: u64, record: Vec<u8>) -> Vec<Vec<u8>> {
    let payload = &record[CHUNK_HEADER..];
    let pieces = tail_pieces(total, payload.len());
    if pieces.len() == 1 {
        return vec![record];
    }
    let mut out = Vec::with_capacity(pieces.len());
    let mut at = 0;
    for len in pieces {
        let mut rec = chunk_buffer(len);
        rec.extend_from_slice(&payload[at..at + len]);
        seal_chunk(&mut rec);
        out.push(rec);
        at += len;
    }
    out
}

/// The running hash behind an ETag.
#[derive(Clone)]
enum EtagHash {
    Md5(Md5),
    Xxh3(Box<XxHash3_128>),
}

/// Running digests of a stream: the ETag's hash, CRC32C and length.
#[derive(Clone)]
pub(crate) struct Digests {
    hash: Option<EtagHash>,
    pub crc: u32,
    pub len: u64,
}

impl Digests {
    /// `None` skips the ETag hash when the ETag is already known (copies).
    pub(crate) fn new(etag: Option<EtagAlgorithm>) -> Self {
        let hash = etag.map(|a| match a {
            EtagAlgorithm::Md5 => EtagHash::Md5(Md5::new()),
            EtagAlgorithm::Xxh3 => EtagHash::Xxh3(Box::new(XxHash3_128::new())),
        });
        Digests { hash, crc: 0, len: 0 }
    }

    /// The ETag algorithm these digests compute, if any.
    pub(crate) fn algorithm(&self) -> Option<EtagAlgorithm> {
        self.hash.as_ref().map(|h| match h {
            EtagHash::Md5(_) => EtagAlgorithm::Md5,
            EtagHash::Xxh3(_) => EtagAlgorithm::Xxh3,
        })
    }

    /// `update` for bytes whose CRC32C is already known (a sealed chunk's).
    pub(crate) fn update_with_crc(&mut self, data: &[u8], crc: u32) {
        match &mut self.hash {
            Some(EtagHash::Md5(m)) => m.update(data),
            Some(EtagHash::Xxh3(x)) => x.write(data),
            None => {}
        }
        self.crc = crate::data::crc::combine(self.crc, crc, data.len());
        self.len += data.len() as u64;
    }

    /// The finished ETag hash (zeros when none was computed).
    pub(crate) fn digest(self) -> [u8; 16] {
        match self.hash {
            Some(EtagHash::Md5(m)) => m.finalize().into(),
            Some(EtagHash::Xxh3(x)) => x.finish_128().to_be_bytes(),
            None => [0; 16],
        }
    }
}

/// The ETag hash of bytes in memory, in one call (what `Digests` computes for a stream).
pub(crate) fn digest_of(alg: EtagAlgorithm, data: &[u8]) -> [u8; 16] {
    match alg {
        EtagAlgorithm::Md5 => Md5::digest(data).into(),
        EtagAlgorithm::Xxh3 => XxHash3_128::oneshot(data).to_be_bytes(),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    // Hex digits only: `from_str_radix` also takes a sign, which made `+a+b…` an alias of the
    // upload id `0a0b…`.
    if !s.len().is_multiple_of(2) || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Cuts a reader into sealed chunk records of `chunk_size` payload bytes.
pub(crate) struct Chunker<R> {
    reader: R,
    chunk_size: usize,
    pub digests: Digests,
    eof: bool,
}

impl<R: Read> Chunker<R> {
    pub(crate) fn new(reader: R, chunk_size: usize, etag: Option<EtagAlgorithm>) -> Self {
        Chunker { reader, chunk_size, digests: Digests::new(etag), eof: false }
    }

    /// Payload bytes per full chunk.
    pub(crate) fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Reads up to `max` bytes into a plain buffer (used to decide whether an object is small
    /// enough to be stored inline).
    pub(crate) fn read_prefix(&mut self, max: usize) -> std::io::Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(max.min(1 << 20));
        (&mut self.reader).take(max as u64).read_to_end(&mut buf)?;
        if buf.len() < max {
            self.eof = true;
        }
        Ok(buf)
    }

    /// The next full (or final, shorter) chunk record, or `None` at the end of the stream.
    /// `carry` holds bytes already read that come first.
    pub(crate) fn next_chunk(&mut self, carry: &mut Vec<u8>) -> std::io::Result<Option<Vec<u8>>> {
        let mut rec = chunk_buffer(self.chunk_size);
        let take = carry.len().min(self.chunk_size);
        rec.extend_from_slice(&carry[..take]);
        carry.drain(..take);
        while rec.len() - CHUNK_HEADER < self.chunk_size && !self.eof {
            let want = self.chunk_size - (rec.len() - CHUNK_HEADER);
            let before = rec.len();
            let n = (&mut self.reader).take(want as u64).read_to_end(&mut rec)?;
            debug_assert_eq!(rec.len(), before + n);
            if n == 0 {
                self.eof = true;
            }
        }
        if rec.len() == CHUNK_HEADER {
            return Ok(None);
        }
        let crc = seal_chunk(&mut rec);
        self.digests.update_with_crc(&rec[CHUNK_HEADER..], crc);
        Ok(Some(rec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: u32 = 16;

    #[test]
    fn counts() {
        let c = u64::from(C);
        for (len, chunks) in [(0, 0), (1, 1), (c - 1, 1), (c, 1), (c + 1, 2), (3 * c + 1, 4)] {
            assert_eq!(chunk_count(len, C), chunks, "len {len}");
        }
        let seg = Segment { id: 1, len: 3 * c + 1, chunk_size: C };
        assert_eq!(chunk_len(&seg, 0), c);
        assert_eq!(chunk_len(&seg, 3), 1);
        assert_eq!(chunk_len(&seg, 4), 0);
    }

    #[test]
    fn locate_across_segments() {
        let segs = [Segment { id: 1, len: 20, chunk_size: 8 }, Segment { id: 2, len: 5, chunk_size: 4 }];
        assert_eq!(locate(&segs, 0), Some((0, 0, 0, 0)));
        assert_eq!(locate(&segs, 7), Some((0, 0, 7, 0)));
        assert_eq!(locate(&segs, 8), Some((0, 1, 0, 8)));
        assert_eq!(locate(&segs, 19), Some((0, 2, 3, 16)));
        assert_eq!(locate(&segs, 20), Some((1, 0, 0, 20)));
        assert_eq!(locate(&segs, 24), Some((1, 1, 0, 24)));
        assert_eq!(locate(&segs, 25), None);
        assert_eq!(locate(&[], 0), None);
    }

    /// What the cut promises: the pieces add up to the tail, every piece but the last fills
    /// its region, and the regions waste at most a sixteenth of the object, or two pages.
    fn check_pieces(total: u64, tail: usize) -> Vec<usize> {
        let pieces = tail_pieces(total, tail);
        assert_eq!(pieces.iter().sum::<usize>(), tail, "total {total} tail {tail}: {pieces:?}");
        for &p in &pieces[..pieces.len() - 1] {
            assert!(p > 0 && region_of(p) == p + REGION_MARGIN, "total {total} tail {tail}: {pieces:?}");
        }
        assert!(pieces.windows(2).all(|w| w[0] > w[1] || w[1] <= 2 * REGION_UNIT), "{pieces:?}");
        let regions: usize = pieces.iter().map(|&p| region_of(p)).sum();
        let waste = regions - tail - pieces.len() * REGION_MARGIN;
        let allowed = (total / 16).max(2 * REGION_UNIT as u64) as usize;
        assert!(waste <= allowed, "total {total} tail {tail}: {pieces:?} waste {waste}");
        pieces
    }

    #[test]
    fn tail_pieces_fill_their_regions() {
        let kib = 1024;
        // 17 KiB in one chunk takes a 32 KiB region; cut, 16 KiB and 4 KiB.
        assert_eq!(tail_pieces(17 * kib, 17 * 1024), [16 * 1024 - 128, 1024 + 128]);
        // Two pages or less stay whole: cutting them would take as many pages.
        assert_eq!(tail_pieces(100 * kib, 7000), [7000]);
        // A tail that nearly fills its region stays whole.
        assert_eq!(tail_pieces(64 * kib, 63 * 1024), [63 * 1024]);
        // A large object's tail stays whole: it wastes less than a sixteenth of the object.
        assert_eq!(tail_pieces(100 << 20, 410_100), [410_100]);
        assert_eq!(check_pieces(1_572_864, 1_572_864 - 1_044_475).len(), 2);
        for total in [16_385, 20_000, 65_537, 100_000, 300_001, 1_044_474, 5_000_000, 1 << 30] {
            let tail = usize::try_from(total % 1_044_475).unwrap_or(0).max(1);
            check_pieces(total, tail);
        }
    }

    proptest::proptest! {
        #[test]
        fn tail_pieces_hold_their_promises(tail in 1usize..1_044_475, extra in 0u64..(64 << 20)) {
            check_pieces(tail as u64 + extra, tail);
        }
    }

    fn cut(len: usize, prefix: usize) -> Vec<Vec<u8>> {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut ch = Chunker::new(&data[..], C as usize, Some(EtagAlgorithm::Md5));
        let mut carry = ch.read_prefix(prefix).expect("reads");
        let mut out = Vec::new();
        while let Some(rec) = ch.next_chunk(&mut carry).expect("reads") {
            out.push(rec[CHUNK_HEADER..].to_vec());
        }
        assert_eq!(out.concat(), data);
        assert_eq!(ch.digests.len, len as u64);
        out
    }

    #[test]
    fn chunker_boundaries() {
        let c = C as usize;
        for len in [0, 1, c - 1, c, c + 1, 3 * c + 1] {
            for prefix in [0, 1, c, 2 * c + 3] {
                let chunks = cut(len, prefix);
                assert_eq!(chunks.len() as u64, chunk_count(len as u64, C), "len {len} prefix {prefix}");
                assert!(chunks.iter().rev().skip(1).all(|ch| ch.len() == c));
            }
        }
    }

    #[test]
    fn one_shot_digest_matches_the_stream() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for alg in [EtagAlgorithm::Md5, EtagAlgorithm::Xxh3] {
            let mut d = Digests::new(Some(alg));
            for part in data.chunks(777) {
                d.update_with_crc(part, crate::data::crc::crc(part));
            }
            assert_eq!(d.digest(), digest_of(alg, &data), "{alg:?}");
        }
        assert_eq!(hex(&digest_of(EtagAlgorithm::Md5, b"")), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(unhex("00ab10"), Some(vec![0, 0xab, 0x10]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("+a+b"), None, "no sign: an alias of 0a0b");
    }
}
