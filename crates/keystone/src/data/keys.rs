//! Where each record lives in the flat, ordered key space.
//!
//! ```text
//! __meta__\0bucket\0<bucket>                         bucket record
//! __meta__\0format                                   the store's format (data/format.rs)
//! __meta__\0idgen                                    id generation counter (u64 BE, CRC32C)
//! __meta__\0stage\0<bucket>\0<seg u64 BE>            an upload or copy in flight
//! __meta__\0mpu\0<bucket>\0<upload u64 BE>           a multipart upload
//! __meta__\0part\0<bucket>\0<upload u64 BE><n u32 BE> one uploaded part
//! __meta__\0gc\0<bucket>\0<seg u64 BE>               a segment whose chunks are to be freed
//! __meta__\0sweep\0<bucket>\0<0 u64 BE>             a damaged record was replaced: sweep orphans
//! __meta__\0done\0<bucket>\0<upload u64 BE>          a completed multipart upload, for retries
//! __data__\0<bucket>\0<seg u64 BE><chunk u32 BE>     one chunk of a segment
//! <bucket>\0<object key>                             object manifest
//! ```
//!
//! Bucket names never contain `_` or NUL, so no bucket prefix can collide with `__meta__` or
//! `__data__`; object keys never contain NUL, so `<bucket>\0` bounds exactly one bucket.
//! Numbers are fixed-width big-endian so that byte order is numeric order.

pub(crate) const META: &[u8] = b"__meta__\0";
pub(crate) const DATA: &[u8] = b"__data__\0";

fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

pub(crate) fn buckets_prefix() -> Vec<u8> {
    join(&[META, b"bucket\0"])
}

pub(crate) fn bucket(name: &str) -> Vec<u8> {
    join(&[META, b"bucket\0", name.as_bytes()])
}

pub(crate) fn format() -> Vec<u8> {
    join(&[META, b"format"])
}

pub(crate) fn idgen() -> Vec<u8> {
    join(&[META, b"idgen"])
}

/// The prefix of every manifest of `bucket`.
pub(crate) fn objects_prefix(bucket: &str) -> Vec<u8> {
    join(&[bucket.as_bytes(), b"\0"])
}

/// The first key past every manifest of `bucket` (`prefix_end` of `objects_prefix`).
pub(crate) fn objects_end(bucket: &str) -> Vec<u8> {
    join(&[bucket.as_bytes(), b"\x01"])
}

pub(crate) fn object(bucket: &str, key: &str) -> Vec<u8> {
    join(&[bucket.as_bytes(), b"\0", key.as_bytes()])
}

/// Every chunk of `bucket`.
pub(crate) fn bucket_data_prefix(bucket: &str) -> Vec<u8> {
    join(&[DATA, bucket.as_bytes(), b"\0"])
}

/// Every chunk of one segment.
pub(crate) fn segment_prefix(bucket: &str, seg: u64) -> Vec<u8> {
    join(&[DATA, bucket.as_bytes(), b"\0", &seg.to_be_bytes()])
}

pub(crate) fn chunk(bucket: &str, seg: u64, index: u32) -> Vec<u8> {
    join(&[DATA, bucket.as_bytes(), b"\0", &seg.to_be_bytes(), &index.to_be_bytes()])
}

/// The kinds of bookkeeping records kept per bucket under `__meta__`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Book {
    Stage,
    Mpu,
    Part,
    Gc,
    /// A damaged record of the bucket was deleted or overwritten, so the segments it referred
    /// to are unknown: the bucket's unreferenced segments are to be found and freed (one record
    /// per bucket, id 0).
    Sweep,
    /// A multipart upload that was completed: what it published, so that a retried completion
    /// gets the same answer (kept for at least 24 hours; see `completed`).
    Done,
}

impl Book {
    /// Every kind, for what goes over all of a bucket's records (deleting it, fuzzing).
    pub(crate) const ALL: [Book; 6] = [Book::Stage, Book::Mpu, Book::Part, Book::Gc, Book::Sweep, Book::Done];

    fn tag(self) -> &'static [u8] {
        match self {
            Book::Stage => b"stage\0",
            Book::Mpu => b"mpu\0",
            Book::Part => b"part\0",
            Book::Gc => b"gc\0",
            Book::Sweep => b"sweep\0",
            Book::Done => b"done\0",
        }
    }

    /// Every record of this kind, all buckets.
    pub(crate) fn all(self) -> Vec<u8> {
        join(&[META, self.tag()])
    }

    /// Every record of this kind in `bucket`.
    pub(crate) fn in_bucket(self, bucket: &str) -> Vec<u8> {
        join(&[META, self.tag(), bucket.as_bytes(), b"\0"])
    }

    /// The record for id `id` in `bucket`.
    pub(crate) fn key(self, bucket: &str, id: u64) -> Vec<u8> {
        join(&[META, self.tag(), bucket.as_bytes(), b"\0", &id.to_be_bytes()])
    }

    /// Splits a key of this kind into bucket, id and whatever follows the id.
    pub(crate) fn parse(self, key: &[u8]) -> Option<(String, u64, &[u8])> {
        let rest = key.strip_prefix(META)?.strip_prefix(self.tag())?;
        let nul = rest.iter().position(|&b| b == 0)?;
        let bucket = std::str::from_utf8(&rest[..nul]).ok()?.to_owned();
        let after = &rest[nul + 1..];
        let id = u64::from_be_bytes(after.get(..8)?.try_into().ok()?);
        Some((bucket, id, &after[8..]))
    }
}

pub(crate) fn part(bucket: &str, upload: u64, number: u32) -> Vec<u8> {
    let mut k = Book::Part.key(bucket, upload);
    k.extend_from_slice(&number.to_be_bytes());
    k
}

pub(crate) fn parts_prefix(bucket: &str, upload: u64) -> Vec<u8> {
    Book::Part.key(bucket, upload)
}

/// The object key of a manifest key of `bucket`.
pub(crate) fn object_name<'a>(bucket: &str, key: &'a [u8]) -> Option<&'a str> {
    let rest = key.strip_prefix(bucket.as_bytes())?.strip_prefix(b"\0")?;
    std::str::from_utf8(rest).ok()
}

/// Splits a chunk key into its bucket, segment and chunk index.
pub(crate) fn parse_chunk(key: &[u8]) -> Option<(&str, u64, u32)> {
    let rest = key.strip_prefix(DATA)?;
    let nul = rest.iter().position(|&b| b == 0)?;
    let bucket = std::str::from_utf8(&rest[..nul]).ok()?;
    let tail: &[u8; 12] = rest.get(nul + 1..)?.try_into().ok()?;
    let seg = u64::from_be_bytes(tail[..8].try_into().ok()?);
    let index = u32::from_be_bytes(tail[8..].try_into().ok()?);
    Some((bucket, seg, index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_keys_sort_numerically() {
        let keys: Vec<Vec<u8>> =
            [0u32, 1, 9, 10, 255, 256, 65_536, u32::MAX].iter().map(|&i| chunk("b1", 7, i)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert!(chunk("b1", 7, 9) < chunk("b1", 7, 10));
    }

    #[test]
    fn chunk_keys_round_trip() {
        let k = chunk("my-bucket", 0x0102_0304_0506_0708, 42);
        assert_eq!(parse_chunk(&k), Some(("my-bucket", 0x0102_0304_0506_0708, 42)));
        assert!(k.starts_with(&segment_prefix("my-bucket", 0x0102_0304_0506_0708)));
        assert!(k.starts_with(&bucket_data_prefix("my-bucket")));
        assert_eq!(parse_chunk(b"__data__\0b\0short"), None);
        assert_eq!(parse_chunk(b"junk"), None);
    }

    #[test]
    fn book_keys_round_trip() {
        for book in Book::ALL.into_iter().filter(|&b| b != Book::Part) {
            let k = book.key("bkt", 99);
            assert!(k.starts_with(&book.in_bucket("bkt")));
            assert!(k.starts_with(&book.all()));
            let (b, id, rest) = book.parse(&k).expect("parses");
            assert_eq!((b.as_str(), id, rest), ("bkt", 99, &[][..]));
        }
        let p = part("bkt", 5, 3);
        let (b, id, rest) = Book::Part.parse(&p).expect("parses");
        assert_eq!((b.as_str(), id, rest), ("bkt", 5, &3u32.to_be_bytes()[..]));
        assert!(Book::Stage.parse(&p).is_none());
    }

    #[test]
    fn object_keys_are_bucket_scoped_and_byte_exact() {
        let k = object("abc", "a//b/../c");
        assert_eq!(object_name("abc", &k), Some("a//b/../c"));
        assert_eq!(object_name("ab", &k), None);
        // A bucket that extends another's name never falls inside its prefix.
        assert!(!object("abc.d", "x").starts_with(&objects_prefix("abc")));
        assert_eq!(crate::storage::prefix_end(&objects_prefix("abc")), Some(objects_end("abc")));
        assert_ne!(object("abc", "a/c"), object("abc", "a//b/../c"));
    }

    #[test]
    fn internal_prefixes_never_collide_with_buckets() {
        for name in ["aaa", "zzz", "0ab", "a.b-c"] {
            assert!(!objects_prefix(name).starts_with(META));
            assert!(!objects_prefix(name).starts_with(DATA));
        }
    }
}
