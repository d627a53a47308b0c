//! A 256 MiB object streamed in and out with equal bytes and checksum, while a counting
//! global allocator shows that peak heap stays bounded by the chunk and batch sizes, not by
//! the object size (a deterministic check, not a timing).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, Read};

use keystone::{Datastore, PutOptions};
use peak_alloc::PeakAlloc;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

/// A deterministic pseudo-random stream of `len` bytes that never exists in memory at once.
/// Byte `p` depends only on `p` and the seed, whatever sizes the stream is read in.
struct Pattern {
    pos: u64,
    len: u64,
    seed: u64,
}

impl Pattern {
    fn new(len: u64, seed: u64) -> Self {
        Pattern { pos: 0, len, seed }
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min((self.len - self.pos) as usize);
        let mut i = 0;
        while i < n {
            let word = splitmix((self.pos / 8) ^ self.seed).to_le_bytes();
            let off = (self.pos % 8) as usize;
            let take = (8 - off).min(n - i);
            buf[i..i + take].copy_from_slice(&word[off..off + take]);
            i += take;
            self.pos += take as u64;
        }
        Ok(n)
    }
}

/// Peak heap above the level at the start of `f`.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = HEAP.current_usage();
    HEAP.reset_peak_usage();
    let out = f();
    (out, HEAP.peak_usage().saturating_sub(base))
}

const MIB: usize = 1024 * 1024;
const SIZE: u64 = 256 * MIB as u64;

#[test]
fn a_256_mib_object_streams_in_and_out_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    // MD5 ETags (what `keystone serve` uses): the heavier path, hashed on a second thread.
    let db = Datastore::builder().etag(keystone::EtagAlgorithm::Md5).open(dir.path().join("large.keystone")).unwrap();
    let b = db.create_bucket("large").unwrap();

    // The expected digests, computed from the same stream.
    let mut expect_crc = 0u32;
    let mut hasher = <md5::Md5 as md5::Digest>::new();
    let mut src = Pattern::new(SIZE, 42);
    let mut buf = vec![0u8; MIB];
    loop {
        let n = src.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        expect_crc = crc32c::crc32c_append(expect_crc, &buf[..n]);
        md5::Digest::update(&mut hasher, &buf[..n]);
    }
    drop(buf);
    let expect_md5 = md5::Digest::finalize(hasher).iter().fold(String::new(), |mut s, b| {
        use std::fmt::Write;
        let _ = write!(s, "{b:02x}");
        s
    });

    let (info, put_peak) = peak_during(|| b.put_reader("big", Pattern::new(SIZE, 42), PutOptions::default()).unwrap());
    assert_eq!(info.size, SIZE);
    assert_eq!(info.checksum, expect_crc);
    assert_eq!(info.etag, expect_md5);

    let ((len, crc, equal), get_peak) = peak_during(|| {
        let mut reader = b.open("big").unwrap();
        let mut expected = Pattern::new(SIZE, 42);
        let mut got = vec![0u8; 256 * 1024];
        let mut want = vec![0u8; 256 * 1024];
        let (mut len, mut crc, mut equal) = (0u64, 0u32, true);
        loop {
            let n = reader.read(&mut got).unwrap();
            if n == 0 {
                break;
            }
            expected.read_exact(&mut want[..n]).unwrap();
            equal &= got[..n] == want[..n];
            crc = crc32c::crc32c_append(crc, &got[..n]);
            len += n as u64;
        }
        (len, crc, equal)
    });
    assert_eq!(len, SIZE);
    assert!(equal, "bytes read back differ from bytes written");
    assert_eq!(crc, expect_crc);

    // A copy inside a transaction reads its source through the transaction, a chunk at a time.
    let (copy, copy_peak) = peak_during(|| db.transaction(|tx| tx.bucket("large")?.copy("big", "copy")).unwrap());
    assert_eq!((copy.size, copy.checksum, &copy.etag), (SIZE, expect_crc, &expect_md5));
    let mut reader = b.open("copy").unwrap();
    let (mut crc, mut buf) = (0u32, vec![0u8; MIB]);
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
    }
    assert_eq!(crc, expect_crc);
    b.delete("copy").unwrap();

    eprintln!(
        "peak heap: put {} MiB, get {} MiB, copy in a transaction {} MiB (object {} MiB)",
        put_peak / MIB,
        get_peak / MIB,
        copy_peak / MIB,
        SIZE / MIB as u64
    );
    // Bounded by the upload batch (8 MiB), a chunk, and the engine's page cache (32 MiB by
    // default) — not by the 256 MiB object.
    assert!(put_peak < 64 * MIB, "put peak heap {put_peak} bytes");
    assert!(get_peak < 64 * MIB, "get peak heap {get_peak} bytes");
    // A copy in a transaction has no upload batch: a chunk read and a chunk written, plus the
    // transaction's own pages (3 MiB measured; 385 MiB when it read its source whole).
    assert!(copy_peak < 16 * MIB, "copy peak heap {copy_peak} bytes");

    // Verify re-reads it and finds it whole; deleting frees it all.
    let report = db.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.bytes, SIZE);
    b.delete("big").unwrap();
    assert!(db.verify().unwrap().is_clean());
}

/// Large puts have their bytes synced by a helper thread while they are written (the store
/// file's write-behind, `storage/write_behind.rs`). The helper holds the store file: closing the
/// store must stop it and let the file go (no descriptor of it left open), and the store opens
/// again at once with every object whole.
#[test]
fn large_puts_written_behind_reopen_whole_right_after_close() {
    const LEN: u64 = 24 * MIB as u64;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("behind.keystone");
    let mut expected: Vec<(String, u64)> = Vec::new();
    for round in 0..3u64 {
        let db = Datastore::open(&path).unwrap();
        let b = if round == 0 { db.create_bucket("behind").unwrap() } else { db.bucket("behind").unwrap() };
        for (key, seed) in &expected {
            let mut reader = b.open(key.as_str()).unwrap();
            let (mut got, mut want) = (vec![0u8; MIB], vec![0u8; MIB]);
            let mut pattern = Pattern::new(LEN, *seed);
            let mut len = 0;
            loop {
                let n = reader.read(&mut got).unwrap();
                if n == 0 {
                    break;
                }
                pattern.read_exact(&mut want[..n]).unwrap();
                assert!(got[..n] == want[..n], "{key} differs at {len}");
                len += n as u64;
            }
            assert_eq!(len, LEN, "{key}");
        }
        for i in 0..2 {
            let key = format!("o{round}-{i}");
            let seed = round * 10 + i;
            assert_eq!(b.put_reader(&key, Pattern::new(LEN, seed), PutOptions::default()).unwrap().size, LEN);
            expected.push((key, seed));
        }
        drop(b);
        drop(db);
        assert_eq!(open_descriptors_of(&path), 0, "the store file is still open after its store closed");
    }
    let db = Datastore::open(&path).unwrap();
    let report = db.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.bytes, 6 * LEN);
}

/// How many of this process's file descriptors name `path` (Linux: `/proc/self/fd`; elsewhere
/// not counted).
fn open_descriptors_of(path: &std::path::Path) -> usize {
    let Ok(target) = std::fs::canonicalize(path) else { return 0 };
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else { return 0 };
    fds.filter_map(Result::ok).filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|p| p == target)).count()
}
