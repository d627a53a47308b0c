//! A storage backend wrapper that starts writing a large write's bytes to the disk while redb
//! is still producing them, instead of all at the sync that ends it.
//!
//! A streamed put of 100 MiB writes its chunks in deferred (non-durable) batches and syncs once
//! at the end — and at every growth of the file in between (redb makes each new length durable
//! before its header can name it). Each of those syncs blocks the writer while the disk writes
//! everything written since the last one, and between them the disk idles while the writer
//! copies and checksums the next batch: the CPU's work and the disk's add up (BENCHMARKS.md,
//! W4: ~190 ms of each for a 100 MiB put on the slower host).
//!
//! So once more than [`KICK_BYTES`] have been written since the last sync in large writes
//! (each at least [`LARGE_WRITE`]: the regions of chunks, not the pages of small commits), the
//! wrapper wakes a helper thread that syncs the file (`sync_data`) while the writer goes on;
//! writes made during that sync are picked up by the next one. The sync the caller asks for
//! then finds most bytes already on the disk. As RocksDB's `bytes_per_sync` does, with a sync
//! instead of Linux's `sync_file_range` (not in `rustix`; a sync also works on every
//! platform).
//!
//! Durability is unchanged: an extra sync only makes bytes durable earlier, which the kernel's
//! own write-back may do at any moment anyway, so redb's recovery and the redo journal (which
//! assume a plain file's behaviour) see nothing new. Errors are not lost: a failed write-back
//! may be reported to one sync only (Linux reports it once per open file, and the helper
//! shares the caller's), so a failure the helper meets is kept and returned by every later
//! [`StorageBackend::sync_data`] of the wrapper — and a caller's sync waits for any helper sync
//! that started before its own returned, so an error the helper took from under it is still
//! its to report.
//!
//! The helper is started at the first kick, at most one per wrapper, and stopped and joined at
//! `close` (and on drop): it holds the file open, and a closed store must leave no descriptor
//! of its file behind (`tests/large_objects.rs` checks).

use std::io;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use redb::{BackendError, StorageBackend};

use super::prefill::forward_locks;

/// Bytes written in large writes since the last sync that wake the helper. 1, 2, 4, 8 and
/// 16 MiB gave 100 MiB puts of 351/330, 342/314, 339/323, 316/308 and 306/314 MiB/s
/// (`keystone-bench W4 --w4-mib 100 --reps 3 --engines keystone`, two rounds, with a build that
/// read the threshold from the environment, not kept); 1 GiB puts did not tell 1, 2 and 8 MiB
/// apart.
pub(crate) const KICK_BYTES: u64 = 2 << 20;

/// The smallest write counted towards [`KICK_BYTES`]. Small durable commits write pages of a
/// few KiB to the store file and leave them unsynced until the redo journal's next checkpoint;
/// a helper sync among them competes with the journal's syncs for the disk, and with eight
/// writers that cost W1 ~10% (`scripts/ab-bench.sh 3 HEAD . -- W1 --reps 3 --engines
/// keystone,redb` when every write counted: 3.47–3.90× raw redb against 4.02–4.27×).
pub(crate) const LARGE_WRITE: usize = 256 << 10;

#[derive(Debug, Default)]
struct State {
    /// A sync has been asked for and not started.
    kicked: bool,
    /// The wrapper is closing: the helper exits.
    stop: bool,
    /// Helper syncs started and finished (a caller waits until `finished` reaches `started`).
    started: u64,
    finished: u64,
    /// The first failure of a helper sync: every later sync of the wrapper fails with it.
    failed: Option<(io::ErrorKind, String)>,
    /// No helper thread could be started: kicks do nothing.
    no_helper: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled on a kick, a stop and each finished helper sync.
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is counters and flags set whole; a panic elsewhere cannot tear them.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `inner`, synced by a helper thread while large writes go on. See the module docs.
#[derive(Debug)]
pub(crate) struct WriteBehind<B> {
    inner: Arc<B>,
    shared: Arc<Shared>,
    /// Bytes written in large writes since the last sync or kick (approximate: concurrent
    /// writers may merge or delay a kick, never miss a sync the caller asks for).
    unsynced: AtomicU64,
    helper: Mutex<Option<JoinHandle<()>>>,
}

impl<B: StorageBackend> WriteBehind<B> {
    pub(crate) fn new(inner: B) -> Self {
        WriteBehind {
            inner: Arc::new(inner),
            shared: Arc::default(),
            unsynced: AtomicU64::new(0),
            helper: Mutex::new(None),
        }
    }

    /// Asks the helper for a sync, starting it if it is not running.
    fn kick(&self) {
        let mut helper = self.helper.lock().unwrap_or_else(PoisonError::into_inner);
        {
            let mut state = self.shared.lock();
            if state.stop || state.failed.is_some() || state.no_helper {
                return;
            }
            state.kicked = true;
        }
        self.shared.changed.notify_all();
        if helper.is_none() {
            let (inner, shared) = (Arc::clone(&self.inner), Arc::clone(&self.shared));
            let spawned =
                std::thread::Builder::new().name("keystone-writeback".into()).spawn(move || run(&*inner, &shared));
            match spawned {
                Ok(handle) => *helper = Some(handle),
                // Without a thread (none can be made) the writes are synced by the caller's
                // syncs alone, as without the wrapper; no later kick tries again.
                Err(_) => self.shared.lock().no_helper = true,
            }
        }
    }
}

impl<B> WriteBehind<B> {
    /// Stops the helper and waits for it (idempotent).
    fn stop(&self) {
        // `stop` is set under the `helper` lock, so a concurrent `kick` either ran before (its
        // helper is the one joined here) or sees `stop` and starts none.
        let helper = {
            let mut helper = self.helper.lock().unwrap_or_else(PoisonError::into_inner);
            self.shared.lock().stop = true;
            helper.take()
        };
        self.shared.changed.notify_all();
        if let Some(helper) = helper {
            // `run` catches a panic of the sync it makes, so it returns.
            let _ = helper.join();
        }
    }
}

/// The helper: a sync per kick (kicks during a sync ask for one more), until stopped or a sync
/// fails.
fn run(inner: &dyn StorageBackend, shared: &Shared) {
    loop {
        {
            let mut state = shared.lock();
            while !state.kicked && !state.stop {
                state = shared.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            if state.stop {
                return;
            }
            state.kicked = false;
            state.started += 1;
        }
        // A panic is a failure too (a caller's sync waits for `finished`, so it must move).
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.sync_data()))
            .unwrap_or_else(|_| Err(io::Error::other("the sync panicked")));
        let mut state = shared.lock();
        state.finished += 1;
        let failed = result.err().map(|e| (e.kind(), e.to_string()));
        let stop = failed.is_some();
        if let Some(failed) = failed {
            state.failed.get_or_insert(failed);
        }
        drop(state);
        shared.changed.notify_all();
        if stop {
            return;
        }
    }
}

impl<B: StorageBackend> StorageBackend for WriteBehind<B> {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.unsynced.store(0, Ordering::Relaxed);
        let result = self.inner.sync_data();
        // A helper sync that started before ours returned may have taken a failure that ours
        // would have reported: wait for it, then report any the helper met.
        let mut state = self.shared.lock();
        let started = state.started;
        // No escape on `stop`: a helper sync that was counted always finishes (`stop` joins
        // the helper after it), and leaving early could miss its failure.
        while state.finished < started {
            state = self.shared.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        if let Some((kind, message)) = &state.failed {
            return Err(io::Error::new(
                *kind,
                format!("a sync of the store file made while large writes went on failed: {message}"),
            ));
        }
        result
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.inner.write(offset, data)?;
        if data.len() < LARGE_WRITE {
            return Ok(());
        }
        let unsynced = self.unsynced.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
        if unsynced >= KICK_BYTES {
            self.unsynced.store(0, Ordering::Relaxed);
            self.kick();
        }
        Ok(())
    }

    fn close(&self) -> Result<(), io::Error> {
        self.stop();
        self.inner.close()
    }

    forward_locks!(inner);
}

impl<B> Drop for WriteBehind<B> {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::test_disk::Logged;

    const MIB: usize = 1 << 20;

    /// Waits (up to ten seconds) until the helper has finished a sync.
    fn helper_synced(disk: &WriteBehind<Logged>) -> bool {
        for _ in 0..10_000 {
            if disk.shared.lock().finished > 0 {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        false
    }

    #[test]
    fn large_writes_are_synced_by_the_helper_and_small_ones_are_not() {
        let disk = WriteBehind::new(Logged::default());
        disk.set_len(64 * MIB as u64).unwrap();
        for i in 0..4096 {
            disk.write(i * 4096, &[1; 4096]).unwrap();
        }
        assert!(disk.helper.lock().unwrap().is_none(), "16 MiB of small writes started the helper");
        for i in 0..16 {
            disk.write(i * MIB as u64, &vec![2; MIB]).unwrap();
        }
        // Past `KICK_BYTES`: the helper syncs.
        assert!(helper_synced(&disk));
        disk.sync_data().unwrap();
        let state = disk.shared.lock();
        assert!(state.finished == state.started, "the caller's sync waited for the helper's: {state:?}");
        drop(state);
        let mut out = vec![0; MIB];
        disk.read(15 * MIB as u64, &mut out).unwrap();
        assert!(out.iter().all(|&b| b == 2));
        disk.close().unwrap();
        assert!(disk.helper.lock().unwrap().is_none());
    }

    /// A file behind the wrapper, `prepare`d, then written past `KICK_BYTES` in one large
    /// write, once the helper's sync of it has finished.
    fn written_behind(prepare: impl FnOnce(&Logged)) -> (Logged, WriteBehind<Logged>) {
        let file = Logged::default();
        let disk = WriteBehind::new(file.clone());
        prepare(&file);
        disk.write(0, &vec![1; 8 * MIB]).unwrap();
        assert!(helper_synced(&disk));
        (file, disk)
    }

    #[test]
    fn a_failure_the_helper_met_fails_every_later_sync() {
        // The helper's sync is the one that fails; the caller's own then succeed.
        let (file, disk) = written_behind(Logged::fail_next_sync);
        assert_eq!(file.syncs(), 1);
        for _ in 0..2 {
            let err = disk.sync_data().unwrap_err();
            assert!(err.to_string().contains("injected sync failure"), "{err}");
        }
        assert_eq!(file.syncs(), 3, "the caller's syncs still ran");
        // No helper sync after a failure.
        disk.write(0, &vec![1; 8 * MIB]).unwrap();
        assert!(disk.sync_data().is_err());
        assert_eq!(file.syncs(), 4);
    }

    #[test]
    fn dropping_without_close_joins_the_helper() {
        let (file, disk) = written_behind(|_| ());
        assert_eq!(file.handles(), 2);
        drop(disk);
        // The helper held a clone of the wrapper's `Arc` of the file: joined, it let it go.
        assert_eq!(file.handles(), 1);
    }

    #[test]
    fn a_helper_sync_that_panics_fails_later_syncs_instead_of_hanging_them() {
        let (_file, disk) = written_behind(Logged::panic_next_sync);
        let err = disk.sync_data().unwrap_err();
        assert!(err.to_string().contains("the sync panicked"), "{err}");
        disk.close().unwrap();
    }
}
