//! A storage backend wrapper that writes zeros ahead of a growing file, so that small durable
//! commits overwrite blocks the file system has already allocated.
//!
//! redb grows its file with `set_len`, which leaves a hole. The first write into a hole makes the
//! file system allocate blocks, and the `fdatasync` that follows must then write that
//! allocation's metadata as well as the data: on ext4 here a small commit that lands in a hole
//! syncs in ~140 µs, one that overwrites written blocks in ~85 µs (`scripts/fsync-holes.py`,
//! BENCHMARKS.md, W1). A store that grows by small commits (every durable put of a new object)
//! lands in holes every time.
//!
//! So when a sync follows writes that went past the written part of the file, and they were
//! small, the wrapper first writes zeros over the next [`AHEAD`] bytes of the hole (never past
//! the length redb set) and lets the same sync commit them: one slow sync per [`AHEAD`] bytes
//! of growth instead of one per commit. A commit that already grew the file by [`AHEAD`] or more
//! pays for the allocation once for many megabytes and gets nothing ahead. (On a copy-on-write
//! file system the zeros gain nothing and only add writes; Keystone's figures are for ext4.)
//!
//! Invariant: every byte at or past `filled` (up to the length) was never written since redb
//! locked the file, so it reads as zero and writing zeros there changes nothing a reader, a
//! crash or redb's recovery can observe. `filled` starts as the file's length measured at the
//! first mutating call — redb makes none before it holds the file's lock, so the length then
//! includes whatever an earlier handle wrote, even one that closed while this one was opening.
//! Writes move `filled` past their end under the same lock as the zero-filling, so a zero
//! never lands on data. This needs this process to be the file's only writer: Keystone opens
//! redb in its default `ExclusiveWriter` mode, which locks the whole file (a multi-process
//! writable mode would break the invariant, since another process's writes past `filled` would
//! not be seen here).

use std::ops::Bound;
use std::sync::Mutex;

use redb::{BackendError, StorageBackend};

/// redb's backend I/O error (without its experimental API).
type BackendIoError = std::io::Error;

/// Bytes zero-filled ahead of a small commit's growth.
pub(crate) const AHEAD: u64 = 1 << 20;

/// Zeros to write from; `AHEAD` is written in pieces of this size.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

#[derive(Debug)]
struct Extent {
    /// The length redb set.
    len: u64,
    /// Everything at or past this offset (up to `len`) has never been written: a hole.
    filled: u64,
    /// `filled` at the last sync: how far this sync's writes went past it.
    filled_at_sync: u64,
}

/// `inner`, with zeros written ahead of small growth. See the module docs.
#[derive(Debug)]
pub(crate) struct Prefilled<B> {
    inner: B,
    /// Measured at the first mutating call (see the module docs).
    extent: Mutex<Option<Extent>>,
}

impl<B: StorageBackend> Prefilled<B> {
    pub(crate) fn new(inner: B) -> Self {
        Prefilled { inner, extent: Mutex::new(None) }
    }

    /// Runs `f` on the extent, under its lock, measuring it first if this is the first call.
    fn with_extent<T>(&self, f: impl FnOnce(&mut Extent) -> Result<T, BackendIoError>) -> Result<T, BackendIoError> {
        // The state is three integers updated together; a panic elsewhere cannot tear them.
        let mut guard = self.extent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let extent = match &mut *guard {
            Some(extent) => extent,
            empty => {
                let len = self.inner.len()?;
                empty.insert(Extent { len, filled: len, filled_at_sync: len })
            }
        };
        f(extent)
    }

    /// Zeros over up to [`AHEAD`] bytes of the hole past `extent.filled`, if the writes since
    /// the last sync went past it by less than that. Returns `filled` afterwards.
    fn fill_ahead(&self, extent: &mut Extent) -> u64 {
        let grown = extent.filled.saturating_sub(extent.filled_at_sync);
        if grown > 0 && grown < AHEAD {
            let end = extent.len.min(extent.filled.saturating_add(AHEAD));
            let mut at = extent.filled;
            while at < end {
                let n = usize::try_from(end - at).map_or(ZEROS.len(), |left| left.min(ZEROS.len()));
                // Filling is only an optimisation: if it fails (a full disk), the commit goes on
                // and its writes allocate their own blocks, as without the wrapper.
                if self.inner.write(at, &ZEROS[..n]).is_err() {
                    break;
                }
                at += n as u64;
            }
            extent.filled = at;
        }
        extent.filled
    }
}

/// The byte-range lock methods of a `StorageBackend` that wraps another (field `$inner`),
/// forwarded to it: a wrapper must keep the locks that keep two writers off one file.
macro_rules! forward_locks {
    ($inner:ident) => {
        fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
            self.$inner.try_lock_range(start, end)
        }

        fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
            self.$inner.try_lock_shared_range(start, end)
        }

        fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
            self.$inner.lock_range(start, end)
        }

        fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
            self.$inner.lock_shared_range(start, end)
        }

        fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
            self.$inner.unlock_range(start, end)
        }

        fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
            self.$inner.query_lock_range(start, end)
        }
    };
}
pub(crate) use forward_locks;

impl<B: StorageBackend> StorageBackend for Prefilled<B> {
    fn len(&self) -> Result<u64, BackendIoError> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendIoError> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), BackendIoError> {
        self.with_extent(|extent| {
            self.inner.set_len(len)?;
            extent.len = len;
            extent.filled = extent.filled.min(len);
            extent.filled_at_sync = extent.filled_at_sync.min(len);
            Ok(())
        })
    }

    fn sync_data(&self) -> Result<(), BackendIoError> {
        let filled = self.with_extent(|extent| Ok(self.fill_ahead(extent)))?;
        // The sync itself runs without the lock: writes from other threads (a reader writing
        // back pages of a non-durable commit) need not wait for it.
        self.inner.sync_data()?;
        self.with_extent(|extent| {
            extent.filled_at_sync = extent.filled_at_sync.max(filled).min(extent.filled);
            Ok(())
        })
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendIoError> {
        self.with_extent(|extent| {
            // Move `filled` first: a failed write may still have written part of `data`.
            let end = offset.saturating_add(data.len() as u64);
            extent.filled = extent.filled.max(end);
            self.inner.write(offset, data)
        })
    }

    fn close(&self) -> Result<(), BackendIoError> {
        self.inner.close()
    }

    forward_locks!(inner);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::storage::test_disk::Logged;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_small_commit_fills_ahead_and_the_next_lands_on_filled_ground() {
        let disk = Prefilled::new(Logged::default());
        disk.set_len(8 * MIB).unwrap();
        disk.write(0, &[7; 8192]).unwrap();
        disk.sync_data().unwrap();
        let filled: u64 = disk.inner.zero_writes().iter().map(|w| w.1 as u64).sum();
        assert_eq!(disk.inner.zero_writes()[0].0, 8192, "filling starts where the commit's writes ended");
        assert_eq!(filled, AHEAD);
        // The next commits stay inside what was filled: no more zeros.
        for i in 1..100u64 {
            disk.write(i * 8192, &[9; 8192]).unwrap();
            disk.sync_data().unwrap();
        }
        assert_eq!(disk.inner.zero_writes().len() as u64, AHEAD / ZEROS.len() as u64);
        let content = disk.inner.content();
        assert!(content[..100 * 8192].iter().enumerate().all(|(i, b)| *b == if i < 8192 { 7 } else { 9 }));
    }

    #[test]
    fn large_commits_and_syncs_without_growth_fill_nothing() {
        let disk = Prefilled::new(Logged::default());
        disk.set_len(8 * MIB).unwrap();
        disk.sync_data().unwrap(); // redb syncs after growing the file: no write went past `filled`
        disk.write(0, &vec![1; AHEAD as usize]).unwrap();
        disk.sync_data().unwrap();
        assert!(disk.inner.zero_writes().is_empty());
    }

    #[test]
    fn filling_stops_at_the_length_redb_set() {
        let disk = Prefilled::new(Logged::default());
        disk.set_len(100_000).unwrap();
        disk.write(0, &[1; 4096]).unwrap();
        disk.sync_data().unwrap();
        assert_eq!(disk.len().unwrap(), 100_000);
        let end = disk.inner.zero_writes().iter().map(|w| w.0 + w.1 as u64).max();
        assert_eq!(end, Some(100_000));
    }

    #[test]
    fn bytes_present_at_open_are_never_zeroed() {
        // A reopened store: the file holds data everywhere, including past anything this process writes.
        let disk = Prefilled::new(Logged::with(vec![5; 3 * MIB as usize]));
        disk.write(0, &[6; 4096]).unwrap();
        disk.sync_data().unwrap();
        assert!(disk.inner.zero_writes().is_empty());
        assert!(disk.inner.content()[4096..].iter().all(|b| *b == 5));
    }

    #[test]
    fn what_another_handle_wrote_before_the_first_write_is_never_zeroed() {
        // The wrapper is built, then an earlier handle of the same file finishes closing (its
        // last commit grows the file and writes pages) before redb's open gets the lock.
        let disk = Prefilled::new(Logged::with(vec![5; 4096]));
        disk.inner.set_len(MIB).unwrap();
        disk.inner.write(600_000, &[8; 8192]).unwrap();
        // Then this handle grows the file and makes a small commit past the old end.
        disk.set_len(4 * MIB).unwrap();
        disk.write(MIB, &[1; 4096]).unwrap();
        disk.sync_data().unwrap();
        let content = disk.inner.content();
        assert!(content[600_000..608_192].iter().all(|b| *b == 8), "zeros landed on the other handle's data");
        assert!(!disk.inner.zero_writes().is_empty(), "the fill ran, past the data");
    }

    #[derive(Debug, Clone)]
    enum Op {
        SetLen(u64),
        /// A write somewhere in the file (`at` is taken modulo its length).
        Write(u64, usize, u8),
        /// A write that may start past the end and extend the file.
        WritePast(u64, usize, u8),
        /// A write that stores its first `n` bytes and fails.
        FailingWrite(u64, usize, u8, usize),
        Sync,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..4 * MIB).prop_map(Op::SetLen),
            (0..4 * MIB, 1..70_000usize, 1..=255u8).prop_map(|(at, n, b)| Op::Write(at, n, b)),
            (0..5 * MIB, 1..70_000usize, 1..=255u8).prop_map(|(at, n, b)| Op::WritePast(at, n, b)),
            (0..4 * MIB, 1..70_000usize, 1..=255u8, 0..70_000usize)
                .prop_map(|(at, n, b, k)| Op::FailingWrite(at, n, b, k)),
            Just(Op::Sync),
        ]
    }

    proptest! {
        /// Whatever redb does, and whatever an earlier handle wrote before this one's first
        /// write, the file reads exactly as it would without the wrapper.
        #[test]
        fn content_is_what_was_written(
            initial in 0..2 * MIB,
            earlier in proptest::collection::vec((0..3 * MIB, 1..20_000usize, 1..=255u8), 0..4),
            ops in proptest::collection::vec(op(), 1..60),
        ) {
            let plain = Logged::with(vec![3; initial as usize]);
            let disk = Prefilled::new(Logged::with(vec![3; initial as usize]));
            for (at, n, b) in earlier {
                plain.write(at, &vec![b; n]).unwrap();
                disk.inner.write(at, &vec![b; n]).unwrap();
            }
            for op in ops {
                match op {
                    Op::SetLen(len) => {
                        plain.set_len(len).unwrap();
                        disk.set_len(len).unwrap();
                    }
                    Op::Write(at, n, b) => {
                        let len = plain.len().unwrap();
                        if len == 0 { continue; }
                        let at = at % len;
                        let n = n.min((len - at) as usize);
                        plain.write(at, &vec![b; n]).unwrap();
                        disk.write(at, &vec![b; n]).unwrap();
                    }
                    Op::WritePast(at, n, b) => {
                        plain.write(at, &vec![b; n]).unwrap();
                        disk.write(at, &vec![b; n]).unwrap();
                    }
                    Op::FailingWrite(at, n, b, k) => {
                        plain.fail_next_write_after(k);
                        disk.inner.fail_next_write_after(k);
                        prop_assert!(plain.write(at, &vec![b; n]).is_err());
                        prop_assert!(disk.write(at, &vec![b; n]).is_err());
                    }
                    Op::Sync => disk.sync_data().unwrap(),
                }
                prop_assert_eq!(disk.len().unwrap(), plain.len().unwrap());
                prop_assert!(disk.inner.content() == plain.content(), "contents differ");
            }
        }
    }
}
