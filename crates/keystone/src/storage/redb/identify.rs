//! Telling a store from other files: redb's open errors, the file's header when redb calls it
//! foreign, and the list of tables.

use std::path::Path;

use redb::{DatabaseError, MultimapTableHandle, StorageError, TableHandle};

use super::{TABLE, storage};
use crate::error::{Error, Result};

/// The names of a database's tables (as a read or a write transaction lists them).
pub(super) fn table_names(
    tables: std::result::Result<impl Iterator<Item = redb::UntypedTableHandle>, StorageError>,
    multimap: std::result::Result<impl Iterator<Item = redb::UntypedMultimapTableHandle>, StorageError>,
) -> Result<Vec<String>> {
    let names = tables
        .map_err(|e| storage("listing tables", e))?
        .map(|t| t.name().to_owned())
        .chain(multimap.map_err(|e| storage("listing tables", e))?.map(|t| t.name().to_owned()))
        .collect();
    Ok(names)
}

/// A store has Keystone's table. A new file has no table at all, which an open for writing
/// (`creating`) gives it; another program's redb database is refused untouched (creating our
/// table in it would change that program's file).
pub(super) fn check_tables(label: &str, tables: &[String], creating: bool) -> Result<()> {
    if tables.iter().any(|t| t == TABLE.name()) || (creating && tables.is_empty()) {
        return Ok(());
    }
    if tables.is_empty() {
        // Which it is cannot be told: not called "not a store", which might get it deleted.
        let reason = format!(
            "{label} is a redb database with no tables, not a Keystone store (or a store whose list of \
             tables is damaged; a store whose creation was cut short holds no objects and may be deleted)"
        );
        return Err(Error::Corrupted { bucket: None, key: None, reason });
    }
    // A table name a byte or two away from ours is our table with its name damaged on disk
    // (a review found a flipped bit turning `keystone` into `keystond`, called "not a store").
    if let Some(near) = tables.iter().find(|t| edit_distance(t.as_bytes(), TABLE.name().as_bytes()) <= 2) {
        let reason = format!(
            "{label} is a redb database whose table {near:?} is not Keystone's {:?} but close to it: a store \
             whose list of tables is damaged",
            TABLE.name()
        );
        return Err(Error::Corrupted { bucket: None, key: None, reason });
    }
    Err(Error::NotAStore {
        path: label.to_owned(),
        reason: format!("a redb database without Keystone's table; its tables: {}", tables.join(", ")),
    })
}

/// Levenshtein distance of two short byte strings.
fn edit_distance(a: &[u8], b: &[u8]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &x) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(x != y));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Refuses a path that exists and is no regular file (a symbolic link is followed): a
/// directory, or a FIFO, a socket or a device, which cannot hold a store — and opening a FIFO
/// waits for a writer for ever. A path that does not exist is left to the open.
pub(super) fn regular_file(path: &Path, label: &str) -> Result<()> {
    let Ok(meta) = std::fs::metadata(path) else { return Ok(()) };
    let t = meta.file_type();
    if t.is_file() {
        return Ok(());
    }
    #[cfg(unix)]
    let special = {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            "a FIFO"
        } else if t.is_socket() {
            "a socket"
        } else if t.is_block_device() || t.is_char_device() {
            "a device"
        } else {
            "not a regular file"
        }
    };
    #[cfg(not(unix))]
    let special = "not a regular file";
    let what = if t.is_dir() { "a directory" } else { special };
    Err(Error::NotAStore { path: label.to_owned(), reason: format!("{what}, not a file") })
}

pub(super) fn open_error(label: &str, e: DatabaseError) -> Error {
    match e {
        DatabaseError::DatabaseAlreadyOpen => Error::AlreadyOpen { path: label.to_owned() },
        // A read-only open of a file that was not closed cleanly (redb's repair would write), or
        // whose length is not its header's (see `unless_damaged`).
        DatabaseError::RepairAborted => Error::NeedsRecovery { path: label.to_owned() },
        // A read past the end of the file: one that begins with redb's magic number (redb checks
        // that first) and ends inside its header, or a page the open reads that lies past the end.
        DatabaseError::Storage(StorageError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::Corrupted {
                bucket: None,
                key: None,
                reason: format!(
                    "{label}: a read went past the end of the file (the file was cut short, or a page pointer is \
                     damaged: {e})"
                ),
            }
        }
        DatabaseError::Storage(StorageError::Corrupted(reason)) => {
            Error::Corrupted { bucket: None, key: None, reason: format!("{label} is not a valid store: {reason}") }
        }
        // redb's "not a redb database": the file does not begin with redb's magic number (or,
        // opened read-only, is empty). See `unless_damaged`.
        DatabaseError::Storage(StorageError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            Error::NotAStore { path: label.to_owned(), reason: "not a redb database".into() }
        }
        other => Error::Storage { context: format!("opening {label}"), source: Box::new(other) },
    }
}

/// `e`, unless it calls the file at `path` not a redb database while the file's header is a
/// redb database's but for its first bytes: then the store was damaged there (redb checks
/// only its 9-byte magic number), or its creation cut short before redb wrote them, and that
/// is `Corrupted`, not `NotAStore`. redb's header
/// holds, after the magic number, a flags byte and two bytes of padding, the page size as a
/// little-endian u32: a power of two from 512 on. Text never has one there (it has no zero
/// bytes); random bytes have one of the 16 taken here once in 2^28.
pub(super) fn unless_damaged(path: &Path, e: Error) -> Error {
    if let Error::NeedsRecovery { path: label } = &e {
        return super::cut::cut_short(path, label).unwrap_or(e);
    }
    let Error::NotAStore { path: label, .. } = &e else { return e };
    let mut head = [0u8; 16];
    let len = std::fs::metadata(path).map(|m| m.len());
    let read = std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head));
    if read.is_err() {
        // Shorter than a header: nothing of redb's in it. Only an empty file is named as such.
        let empty = len.as_ref().is_ok_and(|&n| n == 0);
        return if empty { Error::NotAStore { path: label.clone(), reason: "an empty file".into() } } else { e };
    }
    // A first page of zeros in a file of whole pages: a store whose header page was lost (a
    // common way disks fail), as likely as a file that never was one.
    if head.iter().all(|&b| b == 0) && len.is_ok_and(|n| n % 4096 == 0) {
        return Error::Corrupted {
            bucket: None,
            key: None,
            reason: format!(
                "{label} begins with zeros where redb's header would be: a store whose first page is \
                 damaged, or a file that is not a store"
            ),
        };
    }
    let page_size = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
    if page_size.is_power_of_two() && (512..=1 << 24).contains(&page_size) {
        return Error::Corrupted {
            bucket: None,
            key: None,
            reason: format!(
                "{label} does not begin with redb's magic number, but the rest of its header is a redb \
                 database's: a store whose first bytes are damaged, or whose creation was cut short (redb \
                 writes them last; such a store holds nothing)"
            ),
        };
    }
    e
}

#[cfg(test)]
mod tests {
    #[test]
    fn edit_distance_counts_changed_bytes() {
        assert_eq!(super::edit_distance(b"keystone", b"keystone"), 0);
        assert_eq!(super::edit_distance(b"keystond", b"keystone"), 1);
        assert_eq!(super::edit_distance(b"keystne", b"keystone"), 1);
        assert_eq!(super::edit_distance(b"theirs", b"keystone"), 8);
        assert_eq!(super::edit_distance(b"kitten", b"sitting"), 3);
        assert_eq!(super::edit_distance(b"", b"abc"), 3);
    }
}
