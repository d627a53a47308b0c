//! A simulated disk for redb: it keeps the writes made since the last sync apart so that a
//! simulated power loss can apply, drop or tear each of them (as SQLite's crash VFS and redb's
//! own `CrashBackend` do), and it can fail the Nth write, sync or `set_len` — once or for ever —
//! or run out of space.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use keystone::redb_backend::StorageBackend;

/// Sector size at which a torn write is cut.
pub const SECTOR: usize = 512;

/// A backend call that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `write`
    Write,
    /// `sync_data`
    Sync,
    /// `set_len`
    SetLen,
}

/// A fault armed on one kind of call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Which call.
    pub call: Call,
    /// Fails the `nth` call of that kind counted from now (1 = the next one).
    pub nth: u64,
    /// Every later call of that kind fails too.
    pub forever: bool,
}

#[derive(Debug, Clone)]
enum Pending {
    Write { offset: usize, data: Vec<u8> },
    SetLen(usize),
}

/// The power supply: disks made by [`SimDisk::pair`] share one, and lose power together.
#[derive(Debug, Default)]
struct Power {
    /// Mutating calls (write, sync, set_len) made on every disk it feeds.
    calls: u64,
    /// Power is lost once `calls` reaches this.
    crash_at: Option<u64>,
    lost: bool,
}

#[derive(Debug, Default)]
struct State {
    /// Shared with the disk's twin, if it has one.
    power: Arc<Mutex<Power>>,
    /// What reads see.
    live: Vec<u8>,
    /// What a completed sync made durable.
    durable: Vec<u8>,
    /// Writes and resizes since the last completed sync, in order.
    pending: Vec<Pending>,
    /// Calls so far: write, sync, set_len.
    counts: [u64; 3],
    /// Armed fault: call kind, absolute count at which it fires, forever.
    fault: Option<(Call, u64, bool)>,
    /// Faults that fired.
    injected: u64,
    /// The file may not grow past this many bytes (ENOSPC).
    max_len: Option<usize>,
    /// Power was lost: every call fails; `frozen` holds the disk as it was then.
    frozen: Option<(Vec<u8>, Vec<Pending>)>,
}

impl State {
    fn mutating_calls(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn power(&self) -> MutexGuard<'_, Power> {
        self.power.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether power was lost (on this disk or its twin), freezing this disk as it is if it
    /// was lost on the twin: nothing has changed on this one since.
    fn crashed(&mut self) -> bool {
        let lost = self.power().lost;
        if lost && self.frozen.is_none() {
            self.frozen = Some((self.durable.clone(), self.pending.clone()));
        }
        lost
    }
}

fn idx(c: Call) -> usize {
    match c {
        Call::Write => 0,
        Call::Sync => 1,
        Call::SetLen => 2,
    }
}

/// The simulated disk. Clones share one disk.
#[derive(Debug, Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

fn crashed_err() -> io::Error {
    io::Error::other("simulated power loss: the disk is gone")
}

fn to_usize(v: u64) -> io::Result<usize> {
    usize::try_from(v).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> Self {
        SimDisk::default()
    }

    /// A disk holding `image`, all of it durable.
    pub fn from_image(image: Vec<u8>) -> Self {
        let state = State { live: image.clone(), durable: image, ..State::default() };
        SimDisk { state: Arc::new(Mutex::new(state)) }
    }

    /// Two disks holding `images` on one power supply (a store file and its journal): power
    /// lost on one is lost on both, at the same moment, and [`crash_after`](Self::crash_after)
    /// counts the calls made on both.
    pub fn pair(images: (Vec<u8>, Vec<u8>)) -> (SimDisk, SimDisk) {
        let a = SimDisk::from_image(images.0);
        let b = SimDisk::from_image(images.1);
        let power = a.lock().power.clone();
        b.lock().power = power;
        (a, b)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock is a test failure anyway; keep going with the data.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Arms `fault`, counted from the calls made so far.
    pub fn arm(&self, fault: Fault) {
        let mut s = self.lock();
        let at = s.counts[idx(fault.call)] + fault.nth.max(1);
        s.fault = Some((fault.call, at, fault.forever));
    }

    /// Disarms any fault.
    pub fn disarm(&self) {
        self.lock().fault = None;
    }

    /// How many faults fired.
    pub fn injected(&self) -> u64 {
        self.lock().injected
    }

    /// Calls made so far of each kind.
    pub fn calls(&self, call: Call) -> u64 {
        self.lock().counts[idx(call)]
    }

    /// Total mutating calls (write, sync, set_len) so far, on this disk only.
    pub fn mutating_calls(&self) -> u64 {
        self.lock().mutating_calls()
    }

    /// The file may not grow beyond `bytes` (writes and resizes past it fail with ENOSPC).
    pub fn limit_len(&self, bytes: Option<usize>) {
        self.lock().max_len = bytes;
    }

    /// Power is lost when `n` more mutating calls have been made (on this disk and its twin;
    /// that call and every later one fail).
    pub fn crash_after(&self, n: u64) {
        let s = self.lock();
        let mut power = s.power();
        power.crash_at = Some(power.calls + n);
    }

    /// Loses power now (on the twin too).
    pub fn crash_now(&self) {
        let mut s = self.lock();
        s.power().lost = true;
        s.crashed();
    }

    /// Whether power was lost.
    pub fn crashed(&self) -> bool {
        self.lock().crashed()
    }

    /// Current length of the file (as reads see it).
    pub fn live_len(&self) -> usize {
        self.lock().live.len()
    }

    /// The disk as reads see it now (as if every write reached the disk).
    pub fn live_image(&self) -> Vec<u8> {
        self.lock().live.clone()
    }

    /// The bytes on disk after a power loss now (or at the crash, if one happened): the
    /// durable image with each write made since the last sync applied, dropped, or torn at a
    /// sector boundary, chosen by `seed`. Returns the image and how many pending writes there
    /// were.
    pub fn crash_image(&self, seed: u64) -> (Vec<u8>, usize) {
        let mut s = self.lock();
        s.crashed();
        let (durable, pending) = match &s.frozen {
            Some((d, p)) => (d.clone(), p.clone()),
            None => (s.durable.clone(), s.pending.clone()),
        };
        drop(s);
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut image = durable;
        let n = pending.len();
        for op in pending {
            match op {
                Pending::SetLen(len) => {
                    if rng.bool() {
                        image.resize(len, 0);
                    }
                }
                Pending::Write { offset, data } => match rng.u8(0..3) {
                    0 => {}
                    1 => apply(&mut image, offset, &data),
                    _ => {
                        // Torn: an arbitrary subset of its sectors reached the disk.
                        for (i, sector) in data.chunks(SECTOR).enumerate() {
                            if rng.bool() {
                                apply(&mut image, offset + i * SECTOR, sector);
                            }
                        }
                    }
                },
            }
        }
        (image, n)
    }

    fn check(s: &mut State, call: Call) -> io::Result<()> {
        if s.crashed() {
            return Err(crashed_err());
        }
        s.counts[idx(call)] += 1;
        let lost = {
            let mut power = s.power();
            power.calls += 1;
            if power.crash_at.is_some_and(|at| power.calls >= at) {
                power.lost = true;
            }
            power.lost
        };
        if lost {
            s.crashed();
            return Err(crashed_err());
        }
        if let Some((kind, at, forever)) = s.fault {
            let n = s.counts[idx(call)];
            if kind == call && (n == at || (forever && n > at)) {
                s.injected += 1;
                if !forever {
                    s.fault = None;
                }
                return Err(io::Error::other(format!("injected {call:?} failure")));
            }
        }
        Ok(())
    }

    fn check_space(s: &mut State, new_len: usize) -> io::Result<()> {
        match s.max_len {
            Some(max) if new_len > max && new_len > s.live.len() => {
                s.injected += 1;
                Err(io::Error::from_raw_os_error(28)) // ENOSPC
            }
            _ => Ok(()),
        }
    }
}

fn apply(image: &mut Vec<u8>, offset: usize, data: &[u8]) {
    let end = offset + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[offset..end].copy_from_slice(data);
}

impl StorageBackend for SimDisk {
    fn len(&self) -> io::Result<u64> {
        let mut s = self.lock();
        if s.crashed() {
            return Err(crashed_err());
        }
        Ok(s.live.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let mut s = self.lock();
        if s.crashed() {
            return Err(crashed_err());
        }
        let offset = to_usize(offset)?;
        let end = offset.checked_add(out.len()).filter(|&e| e <= s.live.len());
        let Some(end) = end else { return Err(io::Error::from(io::ErrorKind::UnexpectedEof)) };
        out.copy_from_slice(&s.live[offset..end]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.lock();
        Self::check(&mut s, Call::SetLen)?;
        let len = to_usize(len)?;
        Self::check_space(&mut s, len)?;
        s.live.resize(len, 0);
        s.pending.push(Pending::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.lock();
        Self::check(&mut s, Call::Sync)?;
        let pending = std::mem::take(&mut s.pending);
        for op in pending {
            match op {
                Pending::SetLen(len) => s.durable.resize(len, 0),
                Pending::Write { offset, data } => apply(&mut s.durable, offset, &data),
            }
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut s = self.lock();
        Self::check(&mut s, Call::Write)?;
        let offset = to_usize(offset)?;
        Self::check_space(&mut s, offset + data.len())?;
        apply(&mut s.live, offset, data);
        s.pending.push(Pending::Write { offset, data: data.to_vec() });
        Ok(())
    }
}

/// A store's disks: its file, and its redo journal's file on the same power supply — or no
/// journal, as a store on a single backend has.
#[derive(Debug, Clone)]
pub struct Disks {
    /// The store file.
    pub store: SimDisk,
    /// The journal, if the store has one.
    pub journal: Option<SimDisk>,
}

/// What a power loss left on a store's disks.
#[derive(Debug, Clone)]
pub struct Images {
    /// The store file.
    pub store: Vec<u8>,
    /// The journal (empty without one).
    pub journal: Vec<u8>,
    journaled: bool,
}

impl Disks {
    /// Empty disks, with a journal disk if `journaled`.
    pub fn new(journaled: bool) -> Disks {
        Images { store: Vec::new(), journal: Vec::new(), journaled }.disks()
    }

    /// Opens the store on these disks.
    pub fn open(&self, builder: keystone::Builder) -> keystone::Result<keystone::Datastore> {
        match &self.journal {
            Some(journal) => builder.open_backends(self.store.clone(), journal.clone()),
            None => builder.open_backend(self.store.clone()),
        }
    }

    /// Power is lost after `n` more mutating calls on either disk.
    pub fn crash_after(&self, n: u64) {
        self.store.crash_after(n);
    }

    /// Loses power now.
    pub fn crash_now(&self) {
        self.store.crash_now();
    }

    /// Whether power was lost.
    pub fn crashed(&self) -> bool {
        self.store.crashed()
    }

    /// Mutating calls made so far on both disks.
    pub fn mutating_calls(&self) -> u64 {
        self.store.mutating_calls() + self.journal.as_ref().map_or(0, SimDisk::mutating_calls)
    }

    /// The disks after a power loss now (or at the crash), each chosen by `rng` as
    /// [`SimDisk::crash_image`] does, and how many writes were pending on them.
    pub fn crash_images(&self, rng: &mut fastrand::Rng) -> (Images, usize) {
        let (store, a) = self.store.crash_image(rng.u64(..));
        let (journal, b) = self.journal.as_ref().map_or((Vec::new(), 0), |j| j.crash_image(rng.u64(..)));
        (Images { store, journal, journaled: self.journal.is_some() }, a + b)
    }
}

impl Images {
    /// Disks holding these images, all of it durable.
    pub fn disks(&self) -> Disks {
        if self.journaled {
            let (store, journal) = SimDisk::pair((self.store.clone(), self.journal.clone()));
            Disks { store, journal: Some(journal) }
        } else {
            Disks { store: SimDisk::from_image(self.store.clone()), journal: None }
        }
    }
}
