//! A file in memory for the unit tests of the storage wrappers (`prefill`, `journal`,
//! `write_behind`).

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use redb::StorageBackend;

#[derive(Debug, Default)]
struct State {
    bytes: Vec<u8>,
    /// Every write: offset, length, whether all zeros.
    writes: Vec<(u64, usize, bool)>,
    fail_after: Option<usize>,
    /// Syncs made, and whether the next one fails or panics.
    syncs: usize,
    fail_sync: bool,
    panic_sync: bool,
}

/// A file in memory that logs its writes. Like a file, a write past the end extends it.
/// Clones share one file (a test keeps one while a wrapper owns the other).
#[derive(Debug, Default, Clone)]
pub(crate) struct Logged(Arc<Mutex<State>>);

impl Logged {
    pub(crate) fn with(content: Vec<u8>) -> Self {
        Logged(Arc::new(Mutex::new(State { bytes: content, ..State::default() })))
    }

    pub(crate) fn content(&self) -> Vec<u8> {
        self.0.lock().unwrap().bytes.clone()
    }

    /// The writes of nothing but zeros: (offset, length).
    pub(crate) fn zero_writes(&self) -> Vec<(u64, usize)> {
        self.0.lock().unwrap().writes.iter().filter(|w| w.2).map(|w| (w.0, w.1)).collect()
    }

    /// The next write stores only its first `n` bytes and fails.
    pub(crate) fn fail_next_write_after(&self, n: usize) {
        self.0.lock().unwrap().fail_after = Some(n);
    }

    /// The next sync fails (as a lost write-back is reported once).
    pub(crate) fn fail_next_sync(&self) {
        self.0.lock().unwrap().fail_sync = true;
    }

    /// The next sync panics.
    pub(crate) fn panic_next_sync(&self) {
        self.0.lock().unwrap().panic_sync = true;
    }

    /// Syncs made so far.
    pub(crate) fn syncs(&self) -> usize {
        self.0.lock().unwrap().syncs
    }

    /// Handles to this file alive (clones of it).
    pub(crate) fn handles(&self) -> usize {
        Arc::strong_count(&self.0)
    }

    /// Changes byte `at` (damage).
    pub(crate) fn flip(&self, at: usize) {
        self.0.lock().unwrap().bytes[at] ^= 0x40;
    }
}

impl StorageBackend for Logged {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.0.lock().unwrap().bytes.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let s = self.0.lock().unwrap();
        let start = offset as usize;
        let src = s.bytes.get(start..start + out.len()).ok_or_else(|| std::io::Error::other("read past the end"))?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.0.lock().unwrap().bytes.resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> std::io::Result<()> {
        let mut s = self.0.lock().unwrap();
        s.syncs += 1;
        if std::mem::take(&mut s.panic_sync) {
            drop(s);
            panic!("injected panic in a sync");
        }
        if std::mem::take(&mut s.fail_sync) {
            return Err(std::io::Error::other("injected sync failure"));
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut s = self.0.lock().unwrap();
        let fail = s.fail_after.take();
        let stored = &data[..fail.map_or(data.len(), |n| n.min(data.len()))];
        let (start, end) = (offset as usize, offset as usize + stored.len());
        if s.bytes.len() < end {
            s.bytes.resize(end, 0);
        }
        s.bytes[start..end].copy_from_slice(stored);
        s.writes.push((offset, data.len(), data.iter().all(|b| *b == 0)));
        match fail {
            Some(_) => Err(std::io::Error::other("injected write failure")),
            None => Ok(()),
        }
    }
}
