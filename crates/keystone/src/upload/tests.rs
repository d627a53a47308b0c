//! Unit tests of `upload`: errors carried by readers, the segments a write makes, copies.

use super::*;
use std::io::{Error as IoError, ErrorKind};

/// Records what `write_chunks` hands it; ids from 100 on.
#[derive(Default)]
struct VecSink {
    next: u64,
    chunks: Vec<(Vec<u8>, usize)>,
}

impl ChunkSink for VecSink {
    fn new_segments(&mut self, n: usize) -> Result<std::ops::Range<u64>> {
        let first = 100 + self.next;
        self.next += n as u64;
        Ok(first..first + n as u64)
    }
    fn put(&mut self, key: Vec<u8>, record: Vec<u8>) -> Result<()> {
        self.chunks.push((key, record.len() - CHUNK_HEADER));
        Ok(())
    }
}

/// The segments of one write: a tail that is not cut is the last chunk of the write's
/// segment (one segment, as before tails were cut); a cut one is pieces under ids that
/// follow on, after the full chunks' segment if there are full chunks.
#[test]
fn a_write_is_one_segment_unless_its_tail_is_cut() {
    let c = crate::DEFAULT_CHUNK_SIZE;
    let write = |len: usize, split: bool| {
        let data = vec![7u8; len];
        let mut ch = Chunker::new(&data[..], c, None);
        let mut sink = VecSink::default();
        let segs = write_chunks(&mut ch, Vec::new(), "b", 7, split, &mut sink).unwrap();
        assert_eq!(segs.iter().map(|s| s.len).sum::<u64>(), len as u64);
        assert_eq!(sink.chunks.iter().map(|(_, n)| n).sum::<usize>(), len);
        segs
    };
    let whole = |len| vec![Segment { id: 7, len, chunk_size: c as u32 }];
    // 16 MiB + 100: a sixteenth of the object is more than the tail wastes.
    assert_eq!(write((16 << 20) + 100, true), whole((16 << 20) + 100));
    assert_eq!(write(20_000, false), whole(20_000));
    assert_eq!(write(7_000, true), whole(7_000), "two pages or less");
    let cut = |id, len| Segment { id, len, chunk_size: len as u32 };
    assert_eq!(write(20_000, true), [cut(100, 16_256), cut(101, 3_744)]);
    let tail = 1_572_864 - c as u64;
    assert_eq!(
        write(1_572_864, true),
        [Segment { id: 7, len: c as u64, chunk_size: c as u32 }, cut(100, 524_160), cut(101, tail - 524_160)]
    );
}

#[test]
fn from_io_recovers_the_error_a_reader_carried_and_keeps_the_others() {
    let carried = IoError::other(Error::no_such_key("b", "k"));
    assert!(matches!(from_io(carried), Error::NoSuchKey { .. }));
    let eof = IoError::new(ErrorKind::UnexpectedEof, "short read");
    assert!(
        matches!(from_io(eof), Error::Io(e) if e.kind() == ErrorKind::UnexpectedEof && e.to_string() == "short read")
    );
    assert!(matches!(from_io(ErrorKind::BrokenPipe.into()), Error::Io(e) if e.kind() == ErrorKind::BrokenPipe));
}

/// The library's `copy_object` checks the source bucket's name as every other call does:
/// a reserved name is refused as a name, not read as a bucket whose records are damage.
#[test]
#[allow(clippy::unwrap_used)]
fn copy_object_refuses_an_invalid_source_bucket_name() {
    let db = crate::Datastore::in_memory().unwrap();
    db.create_bucket("bkt").unwrap();
    let opts = crate::CopyOptions::default();
    for bad in ["__meta__", "UPPER", ""] {
        let e = db.copy_object(bad, "x", "bkt", "y", &opts).unwrap_err();
        assert!(matches!(e, Error::InvalidBucketName { .. }), "{bad}: {e:?}");
    }
}

/// A copy in a transaction meets damage in its source part way, after it wrote chunks of
/// its own: it fails with `Corrupted`, takes its chunks back out, and the transaction's
/// other writes commit (nothing leaked, nothing half made).
#[test]
#[allow(clippy::unwrap_used)]
fn a_copy_that_meets_a_damaged_chunk_part_way_leaves_the_transaction_clean() {
    use crate::data::records::Body;
    let db = crate::Datastore::builder().chunk_size(1000).inline_threshold(100).in_memory().unwrap();
    let b = db.create_bucket("bkt").unwrap();
    let body: Vec<u8> = (0..5_500u32).map(|i| (i % 251) as u8).collect();
    b.put_bytes("src", &body).unwrap();
    let m = db.engine.read(|r| objects::existing(r, "bkt", "src", true)).unwrap();
    let Body::Segments(segs) = m.body else { panic!("a 5,500-byte object is chunked here") };
    // Chunk 3 of 6: the copy has written three chunks when it reads it.
    let key = keys::chunk("bkt", segs[0].id, 3);
    let mut record = db.engine.read(|r| Ok(r.get(&key)?.unwrap().to_vec())).unwrap();
    record[CHUNK_HEADER + 10] ^= 0xFF;
    db.engine.test_write(|w| w.put(&key, &record)).unwrap();

    let copied = db
        .transaction(|tx| {
            let t = tx.bucket("bkt")?;
            t.put_bytes("other", b"kept")?;
            Ok::<_, Error>(t.copy("src", "dst"))
        })
        .unwrap();
    assert!(matches!(copied, Err(Error::Corrupted { .. })), "{copied:?}");
    assert_eq!(b.get_bytes("other").unwrap(), b"kept");
    assert!(matches!(b.head("dst"), Err(Error::NoSuchKey { .. })));
    let report = db.verify().unwrap();
    assert_eq!(report.orphan_segments, 0, "{report:?}");
    assert_eq!(report.corrupt.len(), 1, "only the source: {report:?}");
}
