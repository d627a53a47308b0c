//! Creating a store file so that a crash never leaves a half-made store under its name, and the
//! name itself survives a power loss.
//!
//! redb writes a new database's header, then Keystone commits its table: a crash in between
//! left a file that opens as a redb database without Keystone's table — which the next open
//! must refuse, since a store whose list of tables is damaged looks the same (see
//! `check_tables`). So a new store is built under a temporary name beside the path, complete
//! with its table and durably committed, and only then linked under its name (a hard link fails
//! if the name exists: two processes creating one store cannot replace each other's file). The
//! directory is then synced: the name of a new file is the directory's data, which an fsync of
//! the file does not make durable — without it, a power loss after the first acknowledged write
//! could lose the whole store.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Makes the directory holding `path` durable (the names created, renamed or removed in it).
/// A no-op where directories cannot be opened (Windows).
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::File::open(parent).and_then(|d| d.sync_all()).map_err(|e| {
            Error::Io(std::io::Error::new(e.kind(), format!("syncing directory {}: {e}", parent.display())))
        })?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// A name beside `path` for a store being created: hidden, and unique to this process and call.
pub(super) fn temporary_name(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map_or_else(|| "store".into(), |n| n.to_string_lossy().into_owned());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.creating-{}-{n}", std::process::id()))
}

/// Removes what creations of the store at `path` cut short by a crash left beside it: a
/// temporary file whose process is gone (an empty store, or a second name of the store if the
/// crash came between the link and the removal of the temporary name). Only where a process
/// can be looked up (`/proc`); elsewhere they stay, to be deleted by hand. A file whose
/// process still runs, or whose process id was taken again, is kept.
pub(super) fn remove_stale(path: &Path) {
    #[cfg(target_os = "linux")]
    {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return };
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        let prefix = format!(".{}.creating-", name.to_string_lossy());
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(pid) = file.to_str().and_then(|f| f.strip_prefix(&prefix)).and_then(|rest| rest.split_once('-'))
            else {
                continue;
            };
            let alive = Path::new("/proc").join(pid.0).exists();
            if !alive && pid.0.bytes().all(|b| b.is_ascii_digit()) && pid.0 != std::process::id().to_string() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = path;
}

/// What linking a finished store under its name came to.
pub(super) enum Linked {
    /// The store is under its name (and, until the caller removes it, its temporary one).
    Done,
    /// Another process (or handle) created the name first: open that store instead.
    Exists,
    /// The file system has no hard links (FAT, some network file systems): create in place.
    Unsupported,
}

/// Gives the finished store at `temp` the name `path` as well, never replacing a file there.
pub(super) fn link(temp: &Path, path: &Path) -> Linked {
    match std::fs::hard_link(temp, path) {
        Ok(()) => Linked::Done,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists || path.exists() => Linked::Exists,
        // Creating in place then reports whatever stands in the way (permissions, space).
        Err(_) => Linked::Unsupported,
    }
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

    const CONFIG: RedbConfig = RedbConfig { cache_size: None };

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
        assert_eq!(names(dir.path()), ["new.keystone"]);
        let mut w = store.write().unwrap();
        w.put(b"k", b"v").unwrap();
        w.commit(Commit::Durable).unwrap();
        drop(store);
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

    /// Creating a store removes what creations cut short left beside it, and nothing else.
    #[cfg(target_os = "linux")]
    #[test]
    fn creating_a_store_removes_what_crashed_creations_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.keystone");
        let own = format!(".s.keystone.creating-{}-999", std::process::id());
        // 4194304 is above Linux's largest process id: that process is gone.
        for name in
            [".s.keystone.creating-4194305-0", ".s.keystone.creating-1-0", &own, ".t.keystone.creating-4194305-0"]
        {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        drop(RedbStore::open(&path, &CONFIG).unwrap());
        // Process 1 still runs; this process's own file may be a creation under way.
        assert_eq!(
            names(dir.path()),
            [".s.keystone.creating-1-0", own.as_str(), ".t.keystone.creating-4194305-0", "s.keystone"]
        );
    }
}
