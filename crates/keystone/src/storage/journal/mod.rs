//! A redo journal under redb: each durable commit becomes one sequential write and one sync of
//! a second file, instead of a sync of the pages redb scattered across the store file.
//!
//! A durable commit costs what its `fdatasync` costs, and on the disks measured that is ~100 µs
//! for each separate place written and little per byte (docs/design.md, "The redo journal").
//! [`Journaled`] sits between redb and the store file. It passes every write and resize to the
//! store file at once (so reads see them, through the OS cache), and keeps a copy of them; at
//! `sync_data` it appends the copies since the last sync to the journal as one record and syncs
//! the journal only. Now and then (a large commit, a full journal, closing) it **checkpoints**
//! instead: it syncs the store file, and then empties the journal. Opening replays the
//! journal's records into the store file before redb reads it.
//!
//! The invariant: after a replay, every byte of the store file, and its length, hold their
//! value at the last `sync_data` that returned `Ok`, or a value redb wrote after it — what a
//! plain file gives after a power loss, which is all redb's recovery assumes. What keeps it:
//!
//! - A record holds every write and resize since the previous sync, in the order they were
//!   made, and the file's length at the sync; a write is copied under the same lock as the one
//!   `sync_data` takes the copies under, so one made while a sync runs is in exactly one record.
//!   A sync whose copies are incomplete (too large to keep, or begun before the journal was
//!   armed) checkpoints.
//! - Records are applied in order; each has a sequence number one past the previous one and a
//!   CRC, and replay stops at the first that does not fit: a record whose sync did not finish.
//! - A checkpoint syncs the store file *before* it empties the journal (a new header whose base
//!   sequence is past every record written), so no acknowledged write is ever only in a
//!   journal that was emptied, and a journal replayed after a checkpoint that did not finish
//!   only rewrites what the store already holds, in order.
//! - After any failed write, resize or sync of either file nothing more is appended and the
//!   journal is never emptied (Linux may report a lost write-back once and let a later sync
//!   succeed): redb refuses further commits, and the next open replays what was acknowledged.
//! - The journal starts disarmed: every sync checkpoints until the engine arms it, after its
//!   first commit of the session. Until then redb's own header (marking the file as open, so an
//!   open that skips the replay sees a store to recover, not a clean one) and Keystone's format
//!   record (which tells older builds, which know nothing of journals, to keep off) are on the
//!   store file itself.
//! - The journal's header names its store file ([`Identity`]): a journal holding records of
//!   another file (the store file was copied, or recreated, under the name) is refused, not
//!   replayed or dropped. A backup written over the same file in place is not told apart
//!   (docs/design.md, "The redo journal").

mod file;
mod format;
#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use std::ops::Bound;

use redb::{BackendError, StorageBackend};

use super::prefill::forward_locks;

pub(crate) use self::file::journal_path;
pub(crate) use self::file::{open_beside, open_file as open_journal_file, stable_inodes, unreplayed_records};
pub(crate) use self::format::{Identity, Replayed, holds_records, replay};
use self::format::{START, encode_header, push_set_len, push_write, seal, sealed_len, write_cost};

/// A sync whose writes add up to more than this checkpoints instead of journaling them.
const RECORD_MAX: usize = 1 << 20;
/// Bytes of records the journal holds before a checkpoint empties it.
const JOURNAL_MAX: u64 = 16 << 20;
/// The journal file grows by this much at a time.
const GROWTH: u64 = 1 << 20;

/// Turns journaling on (see the module docs: the journal starts disarmed).
#[derive(Debug, Clone, Default)]
pub(crate) struct Arm(Arc<AtomicBool>);

/// The copies of writes since the last sync.
#[derive(Debug, Default)]
struct Pending {
    /// The record being built: its head's place, then the operations (`format::seal`).
    body: Vec<u8>,
    /// Some write or resize since the last sync is not in `body`: the next sync checkpoints.
    incomplete: bool,
    /// Latched by any failure (see the module docs).
    failed: bool,
    /// Anything was written, resized or synced through this handle: a handle whose open failed
    /// before redb wrote (another handle had the store) leaves the store file alone at close.
    touched: bool,
}

/// Where the journal stands; its lock also keeps syncs one at a time.
#[derive(Debug)]
struct Position {
    next_seq: u64,
    /// Where the next record goes.
    end: u64,
    /// The journal file's length.
    cap: u64,
    /// Records since the header was written.
    records: u64,
}

/// `store` with a redo journal in `journal`. See the module docs.
#[derive(Debug)]
pub(crate) struct Journaled<S, J> {
    store: S,
    journal: J,
    identity: Identity,
    armed: Arc<AtomicBool>,
    pending: Mutex<Pending>,
    position: Mutex<Position>,
    /// The journal's file, removed at a clean close.
    path: Option<PathBuf>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic cannot leave these half-updated in a way that loses data: `failed` and
    // `incomplete` only ever make the next sync more careful.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn latched() -> io::Error {
    io::Error::other("an earlier write or sync of the store failed; reopen the store to recover")
}

impl<S: StorageBackend, J: StorageBackend> Journaled<S, J> {
    /// Replays `journal` into `store` (unless the store is empty: a new store), then empties
    /// the journal. The result is disarmed: see [`Arm`].
    pub(crate) fn open(
        store: S,
        journal: J,
        identity: Identity,
        path: Option<PathBuf>,
    ) -> io::Result<(Self, Replayed, Arm)> {
        let found = if store.len()? > 0 {
            replay(&store, &journal, &identity)?
        } else if holds_records(&journal, &identity)? {
            // Records cannot be replayed into nothing: the file was emptied after a crash.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "it holds commits of this store file, which is empty: the file was emptied after a crash. Move the \
                 journal away to start a new store in the file",
            ));
        } else {
            // Nothing to replay, into a new store: the journal is taken over.
            Replayed { records: 0, next_seq: 1, foreign: journal.len()? > 0 }
        };
        if found.foreign {
            journal.set_len(0)?;
        }
        journal.write(0, &encode_header(&identity, found.next_seq))?;
        journal.sync_data()?;
        let cap = journal.len()?;
        let position = Position { next_seq: found.next_seq, end: START, cap, records: 0 };
        let arm = Arm::default();
        let journaled = Journaled {
            store,
            journal,
            identity,
            armed: arm.0.clone(),
            pending: Mutex::new(Pending::default()),
            position: Mutex::new(position),
            path,
        };
        Ok((journaled, found, arm))
    }

    /// Appends the record built in `body` and syncs the journal.
    fn append(&self, pos: &mut Position, body: Vec<u8>, store_len: u64) -> io::Result<()> {
        let rec = seal(pos.next_seq, body, store_len)?;
        let end = pos.end + rec.len() as u64;
        if end > pos.cap {
            let cap = end.div_ceil(GROWTH) * GROWTH;
            self.journal.set_len(cap)?;
            pos.cap = cap;
        }
        self.journal.write(pos.end, &rec)?;
        self.journal.sync_data()?;
        pos.end = end;
        pos.next_seq += 1;
        pos.records += 1;
        Ok(())
    }

    /// Syncs the store file, then empties the journal if it holds records.
    fn checkpoint(&self, pos: &mut Position) -> io::Result<()> {
        self.store.sync_data()?;
        if pos.records > 0 {
            self.journal.write(0, &encode_header(&self.identity, pos.next_seq))?;
            self.journal.sync_data()?;
            pos.end = START;
            pos.records = 0;
        }
        Ok(())
    }

    fn fail<T>(&self, r: io::Result<T>) -> io::Result<T> {
        if r.is_err() {
            lock(&self.pending).failed = true;
        }
        r
    }
}

impl Arm {
    /// Arms the journal: syncs append records from now on (the first may still checkpoint).
    pub(crate) fn arm(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Disarms it: every sync checkpoints from now on (before redb closes the database).
    pub(crate) fn disarm(&self) {
        self.0.store(false, Ordering::Release);
    }
}

impl<S: StorageBackend, J: StorageBackend> StorageBackend for Journaled<S, J> {
    fn len(&self) -> io::Result<u64> {
        self.store.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.store.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut p = lock(&self.pending);
        p.touched = true;
        if self.armed.load(Ordering::Acquire) {
            if p.body.len() + 9 > RECORD_MAX {
                p.incomplete = true;
                p.body = Vec::new();
            } else if !p.incomplete {
                push_set_len(&mut p.body, len);
            }
        } else {
            p.incomplete = true;
        }
        let r = self.store.set_len(len);
        p.failed |= r.is_err();
        r
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut p = lock(&self.pending);
        p.touched = true;
        if !self.armed.load(Ordering::Acquire) || p.incomplete || p.body.len() + write_cost(data.len()) > RECORD_MAX {
            if !p.incomplete {
                p.incomplete = true;
                p.body = Vec::new();
            }
        } else {
            push_write(&mut p.body, offset, data)?;
        }
        let r = self.store.write(offset, data);
        p.failed |= r.is_err();
        r
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut pos = lock(&self.position);
        let (body, incomplete, len) = {
            let mut p = lock(&self.pending);
            if p.failed {
                return Err(latched());
            }
            p.touched = true;
            let body = std::mem::take(&mut p.body);
            let incomplete = std::mem::replace(&mut p.incomplete, false);
            // The length that goes with these writes: taken under the same lock.
            let len = self.store.len();
            (body, incomplete, len)
        };
        let len = self.fail(len)?;
        let fits = pos.end + sealed_len(&body) as u64 <= START + JOURNAL_MAX;
        let r = if incomplete || !fits || !self.armed.load(Ordering::Acquire) {
            self.checkpoint(&mut pos)
        } else {
            self.append(&mut pos, body, len)
        };
        self.fail(r)
    }

    fn close(&self) -> io::Result<()> {
        let clean = (|| {
            let mut pos = lock(&self.position);
            let (failed, touched) = {
                let p = lock(&self.pending);
                (p.failed, p.touched)
            };
            if failed {
                return Ok(());
            }
            if touched {
                let r = self.checkpoint(&mut pos);
                self.fail(r)?;
            }
            // Empty now: removing it needs no sync of the directory (if the removal is lost,
            // an empty journal is found and emptied again).
            if let Some(path) = &self.path {
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })();
        let journal = self.journal.close();
        let store = self.store.close();
        clean.and(journal).and(store)
    }

    forward_locks!(store);
}
