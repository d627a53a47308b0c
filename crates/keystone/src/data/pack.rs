//! Pack records: several small objects' manifests in one value, written by `compact`.
//!
//! With one B-tree entry per object, a 4 KiB page holds three 1 KiB objects and wastes a
//! quarter of itself. A pack holds the manifests of a run of consecutive objects of one bucket
//! and is sized to fill an 8 KiB page; it lives under the key of its *last* object, so a
//! forward scan from any key finds the pack covering it first.
//!
//! ```text
//! pack = PACK_V1 | count u32 | count × (key_len u32 | key | manifest_len u32 | manifest)
//! ```
//!
//! Integers are little-endian. Keys are object keys (without the bucket), strictly ascending;
//! the last is the key the record is stored under; a pack holds at least two entries. Each
//! manifest is an ordinary manifest record, decoded (and checked) by its reader.

use crate::error::{Error, Result};

/// First byte of a pack record; manifests start with their format version (1, 2 or 3), so one byte
/// tells the two kinds of record in an object's key apart.
pub(crate) const PACK_V1: u8 = 0x81;

/// The redb page a pack (with its key and the leaf's header) is sized to fit.
pub(crate) const PACK_PAGE: usize = 8192;
/// Bytes of a one-entry leaf that are not its key or value, with room to spare (redb: 4
/// header bytes and two 4-byte offsets).
const LEAF_OVERHEAD: usize = 32;

#[cold]
#[inline(never)]
fn corrupt(what: &str) -> Error {
    Error::Corrupted { bucket: None, key: None, reason: format!("pack record {what}") }
}

/// Whether a record in an object's key is a pack rather than a manifest.
pub(crate) fn is_pack(record: &[u8]) -> bool {
    record.first() == Some(&PACK_V1)
}

/// One object of a pack, borrowed from the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry<'a> {
    pub key: &'a str,
    pub manifest: &'a [u8],
}

#[inline]
fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if buf.len() < n {
        return Err(corrupt("is truncated"));
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

#[inline]
fn u32_at(buf: &mut &[u8]) -> Result<usize> {
    let b = take(buf, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// Decodes the pack stored under object key `last`, checking its framing: at least two
/// entries, keys UTF-8 and strictly ascending, the last one `last`, nothing left over.
pub(crate) fn decode<'a>(record: &'a [u8], last: &str) -> Result<Vec<Entry<'a>>> {
    let Some((&PACK_V1, mut buf)) = record.split_first() else {
        return Err(corrupt("has the wrong kind byte"));
    };
    let count = u32_at(&mut buf)?;
    // Each entry takes at least 8 bytes: a damaged count cannot reserve much.
    if count < 2 || count > buf.len() / 8 {
        return Err(corrupt(&format!("claims {count} entries")));
    }
    let mut out: Vec<Entry<'a>> = Vec::with_capacity(count);
    for _ in 0..count {
        let n = u32_at(&mut buf)?;
        let key = std::str::from_utf8(take(&mut buf, n)?).map_err(|_| corrupt("holds a key that is not UTF-8"))?;
        if out.last().is_some_and(|prev| prev.key.as_bytes() >= key.as_bytes()) {
            return Err(corrupt("holds keys out of order"));
        }
        let n = u32_at(&mut buf)?;
        let manifest = take(&mut buf, n)?;
        out.push(Entry { key, manifest });
    }
    if !buf.is_empty() {
        return Err(corrupt("has trailing bytes"));
    }
    if out.last().map(|e| e.key) != Some(last) {
        return Err(corrupt("is not stored under its last key"));
    }
    Ok(out)
}

/// Where [`find`] placed a key in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place<'a> {
    /// The pack begins after the key: it does not cover it.
    Before,
    /// The key's manifest.
    At(&'a [u8]),
    /// The pack covers the key, which is not in it.
    Absent,
}

/// Finds `key` in the pack stored under object key `last`: [`decode`]'s checks, in one pass
/// and without allocating (a get of a packed object decodes its pack on every read). Fails
/// exactly where `decode` fails.
pub(crate) fn find<'a>(record: &'a [u8], last: &str, key: &str) -> Result<Place<'a>> {
    let Some((&PACK_V1, mut buf)) = record.split_first() else {
        return Err(corrupt("has the wrong kind byte"));
    };
    let count = u32_at(&mut buf)?;
    if count < 2 || count > buf.len() / 8 {
        return Err(corrupt(&format!("claims {count} entries")));
    }
    let mut prev: Option<&[u8]> = None;
    let mut place = Place::Absent;
    for i in 0..count {
        let n = u32_at(&mut buf)?;
        let k = take(&mut buf, n)?;
        if std::str::from_utf8(k).is_err() {
            return Err(corrupt("holds a key that is not UTF-8"));
        }
        if prev.is_some_and(|p| p >= k) {
            return Err(corrupt("holds keys out of order"));
        }
        let n = u32_at(&mut buf)?;
        let manifest = take(&mut buf, n)?;
        match k.cmp(key.as_bytes()) {
            std::cmp::Ordering::Equal => place = Place::At(manifest),
            std::cmp::Ordering::Greater if i == 0 => place = Place::Before,
            _ => {}
        }
        prev = Some(k);
    }
    if !buf.is_empty() {
        return Err(corrupt("has trailing bytes"));
    }
    if prev != Some(last.as_bytes()) {
        return Err(corrupt("is not stored under its last key"));
    }
    Ok(place)
}

/// The first object key of a pack record, read without checking the rest: what a lookup needs
/// to know whether a damaged pack could cover its key at all.
pub(crate) fn first_key(record: &[u8]) -> Option<&str> {
    let mut buf = record.strip_prefix(&[PACK_V1])?;
    take(&mut buf, 4).ok()?;
    let n = u32_at(&mut buf).ok()?;
    std::str::from_utf8(take(&mut buf, n).ok()?).ok()
}

/// Builds one pack from consecutive objects.
#[derive(Debug)]
pub(crate) struct Builder {
    buf: Vec<u8>,
    count: u32,
    last: String,
    page: usize,
    max_entries: usize,
}

impl Builder {
    /// Packs sized for `page` bytes ([`PACK_PAGE`], or less where the backend's values must be
    /// smaller) and at most `max_entries` objects (a write into a pack rewrites every object
    /// of it: on a backend with transaction limits that must fit in one transaction).
    pub(crate) fn new(page: usize, max_entries: usize) -> Self {
        Builder { buf: Vec::new(), count: 0, last: String::new(), page, max_entries }
    }

    /// Whether a manifest of `len` bytes is worth packing: above a quarter of a page, a record
    /// of its own fills its page about as well.
    pub(crate) fn packable(&self, len: usize) -> bool {
        len <= self.page / 4
    }

    /// Whether an entry of `key` and `manifest` still fits the page, stored under a record
    /// key of `record_key_len` bytes once it is the last entry.
    pub(crate) fn fits(&self, key: &str, manifest: &[u8], record_key_len: usize) -> bool {
        if self.count as usize >= self.max_entries {
            return false;
        }
        let header = if self.count == 0 { 5 } else { self.buf.len() };
        header + 8 + key.len() + manifest.len() + record_key_len + LEAF_OVERHEAD <= self.page
    }

    /// Appends an entry; keys must come in ascending order.
    pub(crate) fn push(&mut self, key: &str, manifest: &[u8]) {
        if self.count == 0 {
            self.buf.clear();
            self.buf.push(PACK_V1);
            self.buf.extend_from_slice(&0u32.to_le_bytes());
        }
        self.buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.extend_from_slice(&(manifest.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(manifest);
        self.count += 1;
        self.last.clear();
        self.last.push_str(key);
    }

    /// The finished record and the key it goes under; the builder is empty again.
    pub(crate) fn finish(&mut self) -> (String, Vec<u8>) {
        if let Some(count) = self.buf.get_mut(1..5) {
            count.copy_from_slice(&self.count.to_le_bytes());
        }
        self.count = 0;
        (std::mem::take(&mut self.last), std::mem::take(&mut self.buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = Builder::new(PACK_PAGE, usize::MAX);
        b.push("a/1", b"\x01one");
        b.push("a/2", b"\x01two");
        b.push("b", b"\x01three");
        let (last, rec) = b.finish();
        assert_eq!(last, "b");
        rec
    }

    #[test]
    fn round_trip() {
        let rec = sample();
        assert!(is_pack(&rec));
        let e = decode(&rec, "b").expect("decodes");
        assert_eq!(e.iter().map(|e| e.key).collect::<Vec<_>>(), ["a/1", "a/2", "b"]);
        assert_eq!(e[2].manifest, b"\x01three");
        assert!(decode(&rec, "a/2").unwrap_err().to_string().contains("last key"));
    }

    #[test]
    fn entry_cap() {
        let mut b = Builder::new(PACK_PAGE, 2);
        assert!(b.fits("a", b"x", 8));
        b.push("a", b"x");
        b.push("b", b"x");
        assert!(!b.fits("c", b"x", 8));
    }

    #[test]
    fn first_key_of_a_damaged_pack() {
        let mut rec = sample();
        assert_eq!(first_key(&rec), Some("a/1"));
        rec.pop();
        assert!(decode(&rec, "b").is_err());
        assert_eq!(first_key(&rec), Some("a/1"));
        assert_eq!(first_key(&rec[..7]), None);
        assert_eq!(first_key(b"\x01manifest"), None);
    }

    #[test]
    fn every_damage_is_an_error() {
        let rec = sample();
        for cut in 0..rec.len() {
            assert!(decode(&rec[..cut], "b").is_err(), "cut at {cut}");
        }
        let mut longer = rec.clone();
        longer.push(0);
        assert!(decode(&longer, "b").is_err());
        for i in 0..rec.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = rec.clone();
                bad[i] ^= flip;
                // A flip inside a manifest is the manifest decoder's to find; the framing
                // must hold or fail, never panic.
                let _ = decode(&bad, "b");
            }
        }
        // Out of order, duplicate and single-entry packs are refused.
        let mut b = Builder::new(PACK_PAGE, usize::MAX);
        b.push("b", b"x");
        b.push("a", b"y");
        assert!(decode(&b.finish().1, "a").unwrap_err().to_string().contains("order"));
        b.push("a", b"x");
        b.push("a", b"y");
        assert!(decode(&b.finish().1, "a").is_err());
        b.push("a", b"x");
        assert!(decode(&b.finish().1, "a").unwrap_err().to_string().contains("entries"));
    }

    /// `find` agrees with `decode` on every key of a sound pack, before, between and after
    /// them, and fails exactly where `decode` fails.
    #[test]
    fn find_agrees_with_decode_and_never_takes_damage_for_absence() {
        let rec = sample();
        let entries = decode(&rec, "b").unwrap();
        for e in &entries {
            assert_eq!(find(&rec, "b", e.key).unwrap(), Place::At(e.manifest));
        }
        assert_eq!(find(&rec, "b", "a").unwrap(), Place::Before);
        assert_eq!(find(&rec, "b", "a/15").unwrap(), Place::Absent);
        assert_eq!(find(&rec, "b", "a/3").unwrap(), Place::Absent);
        assert_eq!(find(&rec, "b", "c").unwrap(), Place::Absent);
        let mut damaged = Vec::new();
        for cut in 0..rec.len() {
            damaged.push(rec[..cut].to_vec());
        }
        for i in 0..rec.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = rec.clone();
                bad[i] ^= flip;
                damaged.push(bad);
            }
        }
        for bad in &damaged {
            for key in ["a", "a/1", "a/15", "a/2", "a/3", "b", "c"] {
                let (found, decoded) = (find(bad, "b", key), decode(bad, "b"));
                assert_eq!(found.is_ok(), decoded.is_ok(), "{key} in {bad:?}");
                if let (Ok(place), Ok(entries)) = (found, decoded) {
                    let want = match entries.binary_search_by(|e| e.key.cmp(key)) {
                        Ok(i) => Place::At(entries[i].manifest),
                        Err(0) => Place::Before,
                        Err(_) => Place::Absent,
                    };
                    assert_eq!(place, want, "{key} in {bad:?}");
                }
            }
        }
    }

    #[test]
    fn seven_one_kib_objects_fill_a_page() {
        let manifest = vec![1u8; 1024 + 110];
        let mut b = Builder::new(PACK_PAGE, usize::MAX);
        let mut n = 0;
        while b.fits(&format!("p{n:04}/o{n:08}"), &manifest, 40) {
            b.push(&format!("p{n:04}/o{n:08}"), &manifest);
            n += 1;
        }
        assert_eq!(n, 7);
        assert!(b.finish().1.len() + 40 + LEAF_OVERHEAD <= PACK_PAGE);
    }
}
