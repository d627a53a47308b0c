//! The journal as a file beside the store: `<store>-journal`, as SQLite's `-wal`.
//!
//! It exists while a handle has the store open for writing, and is removed when it closes
//! cleanly; one found at open is replayed (if it names the store file) before redb reads the
//! store. The journal file's own lock (`flock`) is what keeps two handles apart here: redb locks
//! the store file only inside `create_with_backend`, after the replay. A handle takes the
//! journal's lock before it reads the journal and holds it until it closes, and removes the
//! journal only while holding it, so another handle's live journal is never read, replayed,
//! emptied or removed (the second open fails with `AlreadyOpen`). Every writable open takes it,
//! with or without `Builder::journal`: a journal a crash left must be replayed either way.

use std::fs::{File, Metadata};
use std::io;
use std::path::{Path, PathBuf};

use redb::StorageBackend;
use redb::backends::FileBackend;

use super::format::{Identity, holds_records};
use super::{Arm, Journaled};
use crate::error::{Error, Result};
use crate::storage::prefill::Prefilled;
use crate::storage::write_behind::WriteBehind;

/// The store file behind its wrappers, as the journal wraps it.
pub(crate) type StoreFile = Prefilled<WriteBehind<FileBackend>>;
/// The journal's file behind its wrapper.
type JournalBackend = Prefilled<FileBackend>;

/// Longest file name most file systems take, in bytes.
const NAME_MAX: usize = 255;
/// The journal's suffix.
const SUFFIX: &str = "-journal";

/// The journal of the store at `store` (the file a symbolic link names, so that every path to
/// one store finds one journal): `<name>-journal`, or for a name too long to take the suffix,
/// its first 200 bytes, a hash of the whole name and the suffix.
pub(crate) fn journal_path(store: &Path) -> PathBuf {
    let target = std::fs::canonicalize(store).unwrap_or_else(|_| store.to_path_buf());
    let mut name = target.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    if name.len() + SUFFIX.len() > NAME_MAX {
        let bytes = name.as_encoded_bytes();
        let hash = twox_hash::XxHash3_128::oneshot(bytes) as u64;
        let mut end = 200;
        let lossy = name.to_string_lossy().into_owned();
        while !lossy.is_char_boundary(end) {
            end -= 1;
        }
        name = format!("{}.{hash:016x}", &lossy[..end.min(lossy.len())]).into();
    }
    name.push(SUFFIX);
    target.with_file_name(name)
}

/// What names the store file `meta` describes: its inode number and its creation time where
/// the file system keeps one. Both survive a reboot and a rename; a copy, a file created again
/// under the name (even with the same inode number, which file systems reuse) and, where
/// creation times are kept, a restore by rename get another. (The device number is left out:
/// the journal lies beside the file, and device numbers change across reboots.) A restore that
/// writes over the same file in place keeps it: docs/design.md, "The redo journal".
fn identity(meta: &Metadata) -> Identity {
    let mut id = [0u8; 16];
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        id[..8].copy_from_slice(&meta.ino().to_le_bytes());
    }
    let born = meta.created().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    let nanos = born.map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    id[8..].copy_from_slice(&nanos.to_le_bytes());
    id
}

fn journal_error(path: &Path, what: &str, e: &io::Error) -> Error {
    Error::io_while(format_args!("{what} the store's journal {}", path.display()), e)
}

/// The journal's file beside the store at `path` (named `label` in errors), opened and locked:
/// created if missing when `create`; `None` when it is missing and not to be created, or
/// cannot be created because the directory may not be written (a read-only directory holding a
/// writable store file): the store then does without one, as with `Builder::journal(false)`.
/// A journal that exists but cannot be opened is an error — it may hold acknowledged writes —
/// and one another handle holds is [`Error::AlreadyOpen`].
pub(crate) fn open_file(path: &Path, label: &str, create: bool) -> Result<Option<JournalFile>> {
    let path = journal_path(path);
    for _ in 0..5 {
        // Made here, or found: a journal made here has its name synced before it is used.
        let made = if create {
            match File::options().read(true).write(true).create_new(true).open(&path) {
                Ok(file) => Some(file),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => None,
                // The directory may not be written: without a journal, unless one is there.
                Err(e)
                    if e.kind() == io::ErrorKind::PermissionDenied || e.kind() == io::ErrorKind::ReadOnlyFilesystem =>
                {
                    if std::fs::symlink_metadata(&path).is_err() {
                        return Ok(None);
                    }
                    None
                }
                Err(e) => return Err(journal_error(&path, "creating", &e)),
            }
        } else {
            None
        };
        let existed = made.is_none();
        let file = match made {
            Some(file) => file,
            None => match File::options().read(true).write(true).open(&path) {
                Ok(file) => file,
                // Removed by a handle closing since `create_new` found it: try again.
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(journal_error(&path, "opening", &e)),
            },
        };
        locked(file.try_lock(), &path, label)?;
        // A handle that closes removes its journal while it holds the lock: unless the name
        // still names the file locked here, this one was removed meanwhile.
        if names(&path, &file) {
            return Ok(Some(JournalFile { file, path, existed }));
        }
    }
    Err(journal_error(
        &path,
        "locking",
        &io::Error::other("it was removed and made again five times while this open locked it"),
    ))
}

/// The answer of a try at the journal `path`'s lock: held by another handle of the store named
/// `label`, that store is open.
fn locked(tried: std::result::Result<(), std::fs::TryLockError>, path: &Path, label: &str) -> Result<()> {
    match tried {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::AlreadyOpen { path: label.to_owned() }),
        Err(std::fs::TryLockError::Error(e)) => Err(journal_error(path, "locking", &e)),
    }
}

/// Whether `path` names `file`.
fn names(path: &Path, file: &File) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(path), file.metadata()) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (path, file);
        true
    }
}

/// A journal file, opened.
pub(crate) struct JournalFile {
    file: File,
    path: PathBuf,
    /// It was there before this open (else its name is synced before it is used).
    existed: bool,
}

/// Puts `store` (the store file, which `meta` describes) behind its journal `journal` (opened
/// and locked by [`open_file`]): replays it into the store and empties it. Also returns how
/// many records it replayed.
pub(crate) fn open_beside(
    store: StoreFile,
    journal: JournalFile,
    meta: &Metadata,
) -> Result<(Journaled<StoreFile, JournalBackend>, Arm, u64)> {
    let JournalFile { file, path, existed } = journal;
    // It takes no lock (`open_file` took it).
    let backend = FileBackend::new(file).map(Prefilled::new).map_err(|e| Error::Storage {
        context: format!("opening the store's journal {}", path.display()),
        source: Box::new(e),
    })?;
    let (journaled, found, arm) = Journaled::open(store, backend, identity(meta), Some(path.clone()))
        .map_err(|e| journal_error(&path, "replaying", &e))?;
    if !existed {
        // Its name must be durable before it holds the only copy of an acknowledged write.
        crate::storage::redb::sync_parent(&path)?;
    }
    Ok((journaled, arm, found.records))
}

/// Whether the file system holding `file` keeps a file's inode number for the file's life,
/// which the journal's identity rests on. FAT and exFAT number a file by where its directory
/// entry lies and may number it anew at every mount; FUSE and SMB/CIFS mounts may make numbers
/// up. A store there does without a journal (one a crash left is still replayed if it names
/// the file), rather than refuse its own journal after a remount.
#[cfg(target_os = "linux")]
pub(crate) fn stable_inodes(file: &File) -> bool {
    // Magic numbers of linux/magic.h.
    const UNSTABLE: [u32; 6] = [
        0x4d44,      // MSDOS_SUPER_MAGIC (FAT)
        0x2011_bab0, // EXFAT_SUPER_MAGIC
        0x6573_5546, // FUSE_SUPER_MAGIC
        0x517b,      // SMB_SUPER_MAGIC
        0xff53_4d42, // CIFS_SUPER_MAGIC
        0xfe53_4d42, // SMB2_SUPER_MAGIC
    ];
    match rustix::fs::fstatfs(file) {
        // `f_type` is 32 or 64 bits wide by platform; the magic numbers are 32-bit.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::unnecessary_cast)]
        Ok(st) => !UNSTABLE.contains(&(st.f_type as u32)),
        Err(_) => true,
    }
}

/// Elsewhere every file system is taken to keep inode numbers.
#[cfg(not(target_os = "linux"))]
pub(crate) fn stable_inodes(_file: &File) -> bool {
    true
}

/// Reads a file, refusing writes: the journal as a read-only open sees it.
struct ReadAt(File);

fn read_only() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, "the journal is read, not written, by a read-only open")
}

impl std::fmt::Debug for ReadAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadAt")
    }
}

impl StorageBackend for ReadAt {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::read_exact_at(&self.0, out, offset)
        }
        #[cfg(not(unix))]
        {
            use std::io::{Read, Seek};
            let mut f = &self.0;
            f.seek(io::SeekFrom::Start(offset))?;
            f.read_exact(out)
        }
    }

    fn set_len(&self, _len: u64) -> io::Result<()> {
        Err(read_only())
    }

    fn sync_data(&self) -> io::Result<()> {
        Err(read_only())
    }

    fn write(&self, _offset: u64, _data: &[u8]) -> io::Result<()> {
        Err(read_only())
    }
}

/// Whether a journal beside the store at `path` (whose file `meta` describes) holds records
/// that a writable open would replay: the store was not closed cleanly, and its file alone is
/// not the store. Called with the store's file locked shared by redb, so no writer is live.
pub(crate) fn unreplayed_records(path: &Path, label: &str, meta: &Metadata) -> Result<bool> {
    let jpath = journal_path(path);
    let file = match File::open(&jpath) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(journal_error(&jpath, "reading", &e)),
    };
    // Shared: a writable open replaying it (before redb's lock on the store) holds it.
    locked(file.try_lock_shared(), &jpath, label)?;
    match holds_records(&ReadAt(file), &identity(meta)) {
        Ok(held) => Ok(held),
        // Records of another file, or not a journal: a writable open refuses the store, and
        // this one, which cannot tell either, says the store needs that open.
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(true),
        Err(e) => Err(journal_error(&jpath, "reading", &e)),
    }
}
