//! Deterministic content and the post-recovery cleanliness check, shared by the library and
//! (included by path) by the model test in crates/keystone.

use std::io::{self, Read};

use keystone::Datastore;

/// Deterministic content: `len` bytes derived from `seed`, as a reader (so objects of any
/// size can be written and checked without holding them in memory).
#[derive(Debug, Clone)]
pub struct Content {
    state: u64,
    left: u64,
    word: [u8; 8],
    used: usize,
}

impl Content {
    /// `len` bytes of the stream for `seed`.
    pub fn new(seed: u64, len: u64) -> Self {
        Content { state: seed ^ 0x9E37_79B9_7F4A_7C15, left: len, word: [0; 8], used: 8 }
    }

    /// The whole content in memory (for small objects).
    pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let _ = Content::new(seed, len as u64).read_to_end(&mut out);
        out
    }

    fn next_word(&mut self) {
        // splitmix64
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        self.word = (z ^ (z >> 31)).to_le_bytes();
        self.used = 0;
    }
}

impl Read for Content {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for b in &mut buf[..n] {
            if self.used == 8 {
                self.next_word();
            }
            *b = self.word[self.used];
            self.used += 1;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Whether `reader` yields exactly the content of (`seed`, `len`). Reads in 64 KiB pieces.
pub fn same_content(mut reader: impl Read, seed: u64, len: u64) -> io::Result<bool> {
    let mut want = Content::new(seed, len);
    let mut a = vec![0u8; 64 * 1024];
    let mut b = vec![0u8; 64 * 1024];
    loop {
        let n = read_full(&mut reader, &mut a)?;
        let m = read_full(&mut want, &mut b)?;
        if n != m || a[..n] != b[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the stream ends; returns how much was read.
pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Checks the store's own consistency after recovery and GC: no corrupt object, no leaked
/// segment, redb's integrity check passing. Returns a description of what is wrong.
pub fn check_clean(db: &Datastore) -> Result<(), String> {
    db.gc().map_err(|e| format!("gc failed: {e}"))?;
    let report = db.verify().map_err(|e| format!("verify failed: {e}"))?;
    if !report.corrupt.is_empty() {
        return Err(format!("corrupt objects: {:?}", report.corrupt));
    }
    if report.orphan_segments != 0 {
        return Err(format!("{} leaked segments after gc", report.orphan_segments));
    }
    // verify() only reads; redb's own check (which may repair) is asked for separately.
    match db.check_engine_integrity() {
        Ok(true) => {}
        other => return Err(format!("redb integrity check: {other:?}")),
    }
    Ok(())
}
