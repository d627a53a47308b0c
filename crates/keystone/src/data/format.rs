//! The store's format record (`__meta__\0format`): the newest record versions the store may
//! hold, so that a build which cannot read them refuses the store at open instead of reading
//! its records as damage — which `verify` would report and `remove_corrupt` or `salvage`
//! would delete.
//!
//! The record's layout is frozen, so that every later build can read it:
//!
//! ```text
//! format  u32 LE   the store's format (see STORE_FORMAT)
//! writer  bytes    UTF-8, the release that last raised it ("keystone 0.1.0")
//! crc     u32 LE   CRC32C of the bytes before it
//! ```
//!
//! A build opening a store for writing raises the record to its own format when it is lower
//! (or absent: stores of releases before the record existed), since it writes records of that
//! format from then on; it never lowers it.

use crate::error::{Error, Result};

/// The format of the stores this build writes, and the newest it reads: format 3 has version 3
/// manifests (their seal covers their bucket and key); format 4 may have a redo journal beside
/// the store file (`<store>-journal`, `storage/journal`) whose records must be replayed before
/// the file is read — a build of format 3 would open the file without them. Raise it with every
/// record version a build older than the change would misread; a build reads every format up
/// to its own.
pub(crate) const STORE_FORMAT: u32 = 4;

/// This build, as the format record names it.
const WRITER: &str = concat!("keystone ", env!("CARGO_PKG_VERSION"));

/// The record of this build's format.
pub(crate) fn encode() -> Vec<u8> {
    encode_as(STORE_FORMAT, WRITER)
}

/// The record of `format`, raised by `writer`.
fn encode_as(format: u32, writer: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + writer.len());
    v.extend_from_slice(&format.to_le_bytes());
    v.extend_from_slice(writer.as_bytes());
    let crc = crate::data::crc::crc(&v);
    v.extend_from_slice(&crc.to_le_bytes());
    v
}

/// The format a record gives, and the release it names.
fn decode(v: &[u8]) -> Result<(u32, String)> {
    let damaged = |reason: String| Error::Corrupted {
        bucket: None,
        key: None,
        reason: format!(
            "the store's format record {reason}: which Keystone releases can read the store is unknown (`keystone salvage` copies the store into a new one)"
        ),
    };
    if v.len() < 8 {
        return Err(damaged(format!("is {} bytes long", v.len())));
    }
    let (body, seal) = v.split_at(v.len() - 4);
    let stored = u32::from_le_bytes([seal[0], seal[1], seal[2], seal[3]]);
    if stored != crate::data::crc::crc(body) {
        return Err(damaged("fails its checksum".into()));
    }
    let format = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
    Ok((format, String::from_utf8_lossy(&body[4..]).into_owned()))
}

/// Checks that this build reads a store whose format record is `record` (`None`: a store of a
/// release before the record, which this build reads). Returns whether the record is to be
/// raised to this build's format, which only a handle that writes does.
///
/// # Errors
/// [`Error::NewerFormat`] for a store of a newer format, [`Error::Corrupted`] for a damaged
/// record.
pub(crate) fn check(record: Option<&[u8]>, path: Option<&std::path::Path>) -> Result<bool> {
    let Some(record) = record else { return Ok(true) };
    let (format, writer) = decode(record)?;
    refuse_newer(format, writer, path)?;
    Ok(format < STORE_FORMAT)
}

/// Whether `record` says the store is of a format newer than this build reads, for salvage,
/// which reads damaged stores: a record it cannot decode says nothing (`Ok`).
pub(crate) fn check_if_readable(record: Option<&[u8]>, path: &std::path::Path) -> Result<()> {
    match record.map(decode) {
        Some(Ok((format, writer))) => refuse_newer(format, writer, Some(path)),
        _ => Ok(()),
    }
}

/// [`Error::NewerFormat`] when `format` is newer than this build's.
fn refuse_newer(format: u32, writer: String, path: Option<&std::path::Path>) -> Result<()> {
    if format <= STORE_FORMAT {
        return Ok(());
    }
    Err(Error::NewerFormat {
        path: path.map_or_else(|| "(in memory)".to_owned(), |p| p.display().to_string()),
        format,
        writer,
        supported: STORE_FORMAT,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::data::keys;

    #[test]
    fn the_record_reads_back_and_names_its_writer() {
        assert_eq!(decode(&encode()).unwrap(), (STORE_FORMAT, WRITER.to_owned()));
        assert!(!check(Some(&encode()), None).unwrap());
        assert!(check(None, None).unwrap());
        assert!(check(Some(&encode_as(STORE_FORMAT - 1, "keystone 0.0.1")), None).unwrap());
    }

    #[test]
    fn a_newer_format_is_refused_naming_both_formats_and_the_writer() {
        let e =
            check(Some(&encode_as(STORE_FORMAT + 1, "keystone 9.0.0")), Some("/x/s.keystone".as_ref())).unwrap_err();
        assert!(matches!(e, Error::NewerFormat { format, supported: STORE_FORMAT, .. } if format == STORE_FORMAT + 1));
        let text = e.to_string();
        for part in ["/x/s.keystone", "keystone 9.0.0", &format!("format {}", STORE_FORMAT + 1)] {
            assert!(text.contains(part), "{text}");
        }
        assert!(check_if_readable(Some(&encode_as(STORE_FORMAT + 1, "k")), "/x".as_ref()).is_err());
        assert!(check_if_readable(Some(&encode()), "/x".as_ref()).is_ok());
    }

    #[test]
    fn every_damaged_record_is_corruption_not_a_format() {
        let good = encode();
        for i in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[i / 8] ^= 1 << (i % 8);
            let e = check(Some(&bad), None).unwrap_err();
            assert!(matches!(&e, Error::Corrupted { reason, .. } if reason.contains("format record")), "{e}");
            // Salvage goes on: a damaged record says nothing about the format.
            assert!(check_if_readable(Some(&bad), "/x".as_ref()).is_ok());
        }
        for n in 0..8 {
            assert!(check(Some(&good[..n]), None).is_err());
        }
    }

    /// The format record of the store at `path` and its id counter, read with redb alone.
    fn raw(path: &std::path::Path) -> (Option<Vec<u8>>, Vec<u8>) {
        let kv = crate::storage::redb::RedbStore::open_read_only(path, &crate::Datastore::builder().redb()).unwrap();
        let snap = crate::storage::KeyValueStore::read(&kv).unwrap();
        let format = snap.get(&keys::format()).unwrap().map(|v| v.to_vec());
        (format, snap.get(&keys::idgen()).unwrap().unwrap().to_vec())
    }

    /// A store in a temporary directory holding object `k` of bucket `bkt`.
    fn store_with(value: &[u8]) -> (tempfile::TempDir, std::path::PathBuf, crate::Datastore) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.keystone");
        let db = crate::Datastore::open(&path).unwrap();
        db.create_bucket("bkt").unwrap().put_bytes("k", value).unwrap();
        (dir, path, db)
    }

    fn put_record(db: &crate::Datastore, record: Option<&[u8]>) {
        db.engine
            .test_write(|w| match record {
                Some(r) => w.put(&keys::format(), r),
                None => w.delete(&keys::format()).map(drop),
            })
            .unwrap();
    }

    /// A store raised to a newer format by a later release is refused by every way in —
    /// opened for writing, read-only, salvaged — and left as it was: no ids reserved (the
    /// counter is as it was), no salvaged copy.
    #[test]
    fn a_store_of_a_newer_format_is_refused_and_left_as_it_was() {
        let (dir, path, db) = store_with(&vec![1u8; 50_000]);
        let newer = encode_as(STORE_FORMAT + 1, "keystone 9.1.0");
        put_record(&db, Some(&newer));
        drop(db);
        let before = raw(&path);
        let refused = |e: Error| {
            assert!(matches!(&e, Error::NewerFormat { format, .. } if *format == STORE_FORMAT + 1), "{e:?}");
            assert!(e.to_string().contains("keystone 9.1.0 or later"), "{e}");
        };
        refused(crate::Datastore::open(&path).unwrap_err());
        refused(crate::Datastore::builder().read_only(true).open(&path).unwrap_err());
        let dest = dir.path().join("copy.keystone");
        refused(crate::Datastore::salvage(&path, &dest).unwrap_err());
        assert!(!dest.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "salvage left a file behind");
        assert_eq!(raw(&path), before);
        assert_eq!(before.0, Some(newer));
    }

    /// A store of a release before the record (none) or of an older format is read as it is,
    /// read-only without writing, and raised to this build's format by a handle that writes.
    #[test]
    fn an_older_store_is_raised_when_opened_for_writing() {
        let (_dir, path, db) = store_with(b"v");
        drop(db);
        assert_eq!(raw(&path).0, Some(encode()));
        for older in [None, Some(encode_as(2, "keystone 0.0.9"))] {
            let db = crate::Datastore::open(&path).unwrap();
            put_record(&db, older.as_deref());
            drop(db);
            let db = crate::Datastore::builder().read_only(true).open(&path).unwrap();
            assert_eq!(db.bucket("bkt").unwrap().get_bytes("k").unwrap(), b"v");
            drop(db);
            assert_eq!(raw(&path).0, older);
            drop(crate::Datastore::open(&path).unwrap());
            assert_eq!(raw(&path).0, Some(encode()));
        }
    }

    /// A damaged record stops the open (which releases can read the store is unknown) and
    /// names salvage, whose copy is of this build's format.
    #[test]
    fn a_damaged_record_stops_the_open_and_salvage_copies_the_store() {
        let (dir, path, db) = store_with(&vec![3u8; 40_000]);
        let mut bad = encode();
        bad[0] ^= 0x04;
        put_record(&db, Some(&bad));
        drop(db);
        for e in [
            crate::Datastore::open(&path).unwrap_err(),
            crate::Datastore::builder().read_only(true).open(&path).unwrap_err(),
        ] {
            assert!(matches!(&e, Error::Corrupted { reason, .. } if reason.contains("salvage")), "{e}");
        }
        let dest = dir.path().join("copy.keystone");
        crate::Datastore::salvage(&path, &dest).unwrap();
        assert_eq!(raw(&dest).0, Some(encode()));
        let db = crate::Datastore::open(&dest).unwrap();
        assert_eq!(db.bucket("bkt").unwrap().get_bytes("k").unwrap(), vec![3u8; 40_000]);
        assert!(db.verify().unwrap().is_clean());
    }
}
