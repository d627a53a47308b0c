//! Streaming helpers shared by the bench and its examples (`examples/extent_model.rs` includes
//! this file): W4's source of bytes, and reading a stream in pieces into a page-aligned buffer.

use std::io::Read;

use anyhow::Result;

/// The bytes of a large object: a 1 MiB random pattern repeated, produced on demand.
pub struct Pattern {
    bytes: Vec<u8>,
    pos: usize,
    remaining: u64,
}

impl Pattern {
    /// `remaining` bytes of `bytes` repeated.
    pub fn new(bytes: Vec<u8>, remaining: u64) -> Self {
        Pattern { bytes, pos: 0, remaining }
    }
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.remaining).min((self.bytes.len() - self.pos) as u64) as usize;
        buf[..n].copy_from_slice(&self.bytes[self.pos..self.pos + n]);
        self.pos = (self.pos + n) % self.bytes.len();
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Reads `src` to its end in pieces of up to `piece` bytes, handing each piece to `f`.
pub fn read_pieces(src: &mut dyn Read, piece: usize, mut f: impl FnMut(&[u8]) -> Result<()>) -> Result<u64> {
    let mut storage = vec![0u8; piece + PAGE];
    let buf = page_aligned(&mut storage, piece);
    let mut total = 0u64;
    loop {
        let mut filled = 0;
        while filled < piece {
            let n = src.read(&mut buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            return Ok(total);
        }
        f(&buf[..filled])?;
        total += filled as u64;
        if filled < piece {
            return Ok(total);
        }
    }
}

/// A page.
pub const PAGE: usize = 4096;

/// The `len` bytes of `storage` (at least `len + PAGE` long) that start on a page: a read from
/// the page cache into them copies between addresses a whole number of pages apart. A buffer
/// from `vec!` starts 16 bytes past a page when the allocator maps it (1 MiB does), and a copy
/// whose destination sits 1–31 bytes past its source modulo 4 KiB (here: 16) ran at ~1.5
/// GB/s instead of ~8 on the bench machine's AMD EPYC — 4K aliasing: each load waits on a
/// store whose address matches it in the low 12 bits. W4's plain-file reads measured that
/// penalty, not the file (BENCHMARKS.md, W4; `scripts/copy-aliasing.py` measures it).
pub fn page_aligned(storage: &mut [u8], len: usize) -> &mut [u8] {
    let whole = storage.len();
    let at = storage.as_ptr().align_offset(PAGE).min(whole);
    &mut storage[at..(at + len).min(whole)]
}
