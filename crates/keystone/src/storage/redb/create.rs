//! Creating a store file so that a crash never leaves a half-made store under its name, and the
//! name itself survives a power loss.
//!
//! redb writes a new database's header, then Keystone commits its table: a crash in between
//! left a file that opens as a redb database without Keystone's table, or without redb's
//! magic number — which the next open must refuse, since a store damaged there looks the same
//! (see `check_tables` and `unless_damaged`). So a new store is built under a temporary name
//! beside the path, complete with its table and durably committed, and only then linked under
//! its name (a hard link fails if the name exists: two processes creating one store cannot
//! replace each other's file). The directory is then synced: the name of a new file is the
//! directory's data, which an fsync of the file does not make durable — without it, a power
//! loss after the first acknowledged write could lose the whole store.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use super::{RedbConfig, RedbStore};
use crate::error::{Error, Result};

/// A temporary file no process holds that is older than this was left by a creation cut
/// short (a creation takes milliseconds; the age covers the moment between creating the file
/// and redb locking it).
const STALE_AFTER: Duration = Duration::from_mins(1);

/// What a temporary name of a store being created says it is.
const CREATING: &str = "creating";

/// Longest part of the store's file name kept in a temporary name (file names are at most 255
/// bytes on most file systems, and the temporary name adds about 50).
const NAME_KEPT: usize = 190;

/// Makes the directory holding `path` (the file it names, if it is a symbolic link) durable:
/// the names created, renamed or removed in it. As SQLite does, a directory that cannot be
/// opened (Windows; a directory the process may write but not read) or synced (`EINVAL`,
/// `ENOTSUP`: some network and FUSE file systems) is left as it is; another failure of the
/// sync is an error.
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let Ok(dir) = File::open(parent) else { return Ok(()) };
        match dir.sync_all() {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported) => {}
            Err(e) => return Err(Error::io_while(format_args!("syncing directory {}", parent.display()), &e)),
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The part of a temporary name before its numbers: `.NAME.WHAT-`.
fn prefix(path: &Path, what: &str) -> String {
    let name = path.file_name().map_or_else(|| "store".into(), |n| n.to_string_lossy().into_owned());
    let mut end = name.len().min(NAME_KEPT);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!(".{}.{what}-", &name[..end])
}

/// A name beside `path` for a file being made to take its place (`what`: `creating`, or
/// salvage's `salvage-in-progress`): hidden, and unique (process id, clock, counter: a process
/// id alone repeats, in containers on every run, and a crash leaves its name behind).
pub(crate) fn temporary_name(path: &Path, what: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    path.with_file_name(format!("{}{}-{nanos}-{n}", prefix(path, what), std::process::id()))
}

/// Whether `name` is one of [`temporary_name`]'s for a store whose names begin `prefix`.
fn is_temporary(name: &str, prefix: &str) -> bool {
    let Some(numbers) = name.strip_prefix(prefix) else { return false };
    let parts: Vec<&str> = numbers.split('-').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Creates the store at `path`, which did not exist, under a temporary name, and links it
/// there. `None`: open `path` as usual — another handle created it first, or the file system
/// has no hard links (then the store is created in place). `before_link` runs when the store
/// is complete under its temporary name (tests look at the directory then).
pub(super) fn create(
    path: &Path,
    label: &str,
    config: &RedbConfig,
    before_link: &mut dyn FnMut(&Path),
) -> Result<Option<RedbStore>> {
    // A temporary file is removed by another process only when it looks stale (see
    // `remove_stale`), which a live creation's never does for long; three tries are plenty.
    for _ in 0..3 {
        let temp = temporary_name(path, CREATING);
        let file =
            File::options().read(true).write(true).create_new(true).open(&temp).map_err(|e| {
                Error::io_while(format_args!("creating {} for the new store {label}", temp.display()), &e)
            })?;
        // Without a journal: two processes creating one store would share `<path>-journal`.
        // A store that is to have one is closed and opened again once it has its name.
        let store = match RedbStore::open_file(file, path, label.to_owned(), config, None) {
            Ok((store, _)) => store,
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                return Err(e);
            }
        };
        before_link(&temp);
        if let Err(e) = std::fs::hard_link(&temp, path) {
            drop(store);
            let _ = std::fs::remove_file(&temp);
            if e.kind() == std::io::ErrorKind::AlreadyExists || path.exists() || no_hard_links(&e) {
                return Ok(None);
            }
            if e.kind() == std::io::ErrorKind::NotFound && !temp.exists() {
                continue;
            }
            return Err(Error::io_while(format_args!("linking the new store {} as {label}", temp.display()), &e));
        }
        // Left behind if this fails: a second name of the same, complete file (removed by a
        // later creation or writable open once no process holds it).
        let _ = std::fs::remove_file(&temp);
        remove_stale(path);
        sync_parent(path)?;
        if config.journal {
            drop(store);
            return Ok(None);
        }
        return Ok(Some(store));
    }
    Err(Error::Io(std::io::Error::other(format!(
        "creating {label}: its temporary file was removed by another process three times"
    ))))
}

/// Gives the finished file `temp` the name `dest` without ever replacing a file there (a hard
/// link, then the temporary name removed; a rename where there are no hard links, after a
/// check), then syncs the directory. `AlreadyExists` if `dest` exists.
pub(crate) fn move_no_replace(temp: &Path, dest: &Path) -> Result<()> {
    let moved = match std::fs::hard_link(temp, dest) {
        // Left behind if this fails: a second name of the same file.
        Ok(()) => {
            let _ = std::fs::remove_file(temp);
            Ok(())
        }
        Err(e) if no_hard_links(&e) && !dest.exists() => std::fs::rename(temp, dest),
        Err(e) => Err(e),
    };
    moved.map_err(|e| Error::io_while(format_args!("moving {} to {}", temp.display(), dest.display()), &e))?;
    sync_parent(dest)
}

/// A file system without hard links: `EPERM` from `link` on Unix (FAT, some network file
/// systems), `ERROR_INVALID_FUNCTION` on Windows — both raw code 1 — or `ENOTSUP`.
fn no_hard_links(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Unsupported || e.raw_os_error() == Some(1)
}

/// Removes what creations of the store at `path` cut short by a crash left beside it: a
/// temporary file older than [`STALE_AFTER`] that no process holds locked. It is an empty
/// store, or a second name of the store if the crash came between the link and the removal of
/// the temporary name. The probe takes an `flock`, which redb also holds on Linux (as a lock
/// older redb versions understand); where it does not, the age alone decides, and a creation
/// whose temporary file was removed starts over (see [`create`]); removing a second name of
/// an open store removes a name, not the file. Run when a store is created and at every
/// writable open. Unix only; elsewhere such files stay, to be deleted by hand.
pub(super) fn remove_stale(path: &Path) {
    #[cfg(unix)]
    {
        let (Some(dir), prefix) = (path.parent(), prefix(path, CREATING)) else { return };
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            if !entry.file_name().to_str().is_some_and(|n| is_temporary(n, &prefix)) {
                continue;
            }
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_AFTER);
            if !old {
                continue;
            }
            let Ok(file) = File::open(entry.path()) else { continue };
            if file.try_lock().is_ok() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use crate::storage::redb::{RedbConfig, RedbStore};
    use crate::storage::{Commit, KeyValueStore};

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    const CONFIG: RedbConfig = RedbConfig { cache_size: None, journal: true };

    /// Until a new store is complete — its table committed, durably — nothing is under its
    /// name; then it is, and nothing else is left in the directory.
    #[test]
    fn a_new_store_gets_its_name_only_when_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.keystone");
        let mut seen = None;
        let store = RedbStore::open_or_create(&path, &CONFIG, &mut |temp| {
            seen = Some((path.exists(), names(dir.path()), std::fs::metadata(temp).unwrap().len()));
        })
        .unwrap();
        let (named, during, len) = seen.unwrap();
        assert!(!named, "the name existed before the store was complete");
        assert_eq!(during.len(), 1, "{during:?}");
        assert!(during[0].starts_with(".new.keystone.creating-"), "{during:?}");
        assert!(len > 0);
        // Open, the store has its journal beside it; closed, only the store is left.
        assert_eq!(names(dir.path()), ["new.keystone", "new.keystone-journal"]);
        let mut w = store.write().unwrap();
        w.put(b"k", b"v").unwrap();
        w.commit(Commit::Durable).unwrap();
        drop(store);
        assert_eq!(names(dir.path()), ["new.keystone"]);
        let store = RedbStore::open(&path, &CONFIG).unwrap();
        assert_eq!(store.read().unwrap().get(b"k").unwrap().unwrap().as_ref(), b"v");
    }

    /// A crash before the link (here a panic, which leaves the temporary file as a crash
    /// would) leaves no file under the name: the next open creates the store. The old way —
    /// redb's header written under the name, then the table — left a file every later open
    /// refused ("a redb database with no tables").
    #[test]
    fn a_crash_while_creating_leaves_nothing_under_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crashed.keystone");
        let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            RedbStore::open_or_create(&path, &CONFIG, &mut |_| panic!("crash")).map(drop)
        }));
        assert!(crashed.is_err());
        assert!(!path.exists());
        let store = RedbStore::open(&path, &CONFIG).unwrap();
        let mut w = store.write().unwrap();
        w.put(b"k", b"v").unwrap();
        w.commit(Commit::Durable).unwrap();
    }

    /// Handles racing to create one store: one creates it, the others find it open; none
    /// replaces the file another is using, and no temporary file is left.
    #[test]
    fn racing_creators_share_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raced.keystone");
        let barrier = std::sync::Barrier::new(6);
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        RedbStore::open(&path, &CONFIG)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut opened = Vec::new();
        for r in results {
            match r {
                Ok(store) => opened.push(store),
                Err(crate::Error::AlreadyOpen { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(opened.len(), 1);
        let mut w = opened[0].write().unwrap();
        w.put(b"k", b"v").unwrap();
        w.commit(Commit::Durable).unwrap();
        drop(opened);
        assert_eq!(names(dir.path()), ["raced.keystone"]);
        let store = RedbStore::open(&path, &CONFIG).unwrap();
        assert_eq!(store.read().unwrap().get(b"k").unwrap().unwrap().as_ref(), b"v");
    }

    /// Sets a file's modification time `secs` seconds back.
    #[cfg(unix)]
    fn age(path: &Path, secs: u64) {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(secs)).unwrap();
    }

    /// Creating a store removes what creations cut short left beside it — old temporary files
    /// no process holds — and nothing else: not a recent one (its creator may be about to lock
    /// it), not one a live handle holds (whatever its process id), not a name that merely
    /// resembles the pattern, not another store's.
    #[cfg(unix)]
    #[test]
    fn creating_a_store_removes_what_crashed_creations_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.keystone");
        let stale = ".s.keystone.creating-7-1700000000000000000-0";
        let recent = ".s.keystone.creating-8-1700000000000000000-0";
        let held = ".s.keystone.creating-9-1700000000000000000-0";
        let lookalikes = [".s.keystone.creating-7-0", ".s.keystone.creating-x-1-2", ".t.keystone.creating-7-1-0"];
        for name in [stale, recent, held].iter().chain(&lookalikes) {
            std::fs::write(dir.path().join(name), b"").unwrap();
            if *name != recent {
                age(&dir.path().join(name), 120);
            }
        }
        // A live creation (or a second name of an open store): redb holds the file's lock.
        let live = RedbStore::open(&dir.path().join(held), &CONFIG).unwrap();
        age(&dir.path().join(held), 120);
        drop(RedbStore::open(&path, &CONFIG).unwrap());
        let held_journal = format!("{held}-journal");
        let mut expected = vec![recent, held, &held_journal, "s.keystone"];
        expected.extend(lookalikes);
        expected.sort_unstable();
        assert_eq!(names(dir.path()), expected);
        drop(live);
        // A writable open of the store removes them as well (a crash between the link and the
        // removal of the temporary name leaves the store there, so no creation follows).
        std::fs::write(dir.path().join(stale), b"").unwrap();
        age(&dir.path().join(stale), 120);
        drop(RedbStore::open(&path, &CONFIG).unwrap());
        assert!(!dir.path().join(stale).exists());
    }

    /// A store name near the file system's limit still works: the temporary name keeps only
    /// the beginning of it.
    #[test]
    fn a_long_store_name_can_be_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{}.keystone", "n".repeat(240)));
        let store = RedbStore::open(&path, &CONFIG).unwrap();
        drop(store);
        assert!(path.exists());
        assert_eq!(names(dir.path()).len(), 1);
    }
}
