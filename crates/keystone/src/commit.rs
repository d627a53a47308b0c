//! Group commit: concurrent single writes (small objects, the last commit of large ones) share
//! one durable commit.
//!
//! Each writer queues a job. When no commit is in progress, the writer becomes the leader: it
//! takes the queued jobs, applies them in one write transaction — taking the jobs that arrive
//! meanwhile, and waiting a little for the writers of the last batch to come back (see
//! `GroupCommit::lead`) — commits once (one fsync for all), and hands each writer its own
//! result. Writers that arrive while a commit is in progress wait, each on a condition variable
//! of its own (not on a lock the leader holds, which would wake them one at a time and let each
//! become the leader of a batch of one). When the commit ends, the leader wakes the writers
//! whose jobs it took — those of its batch, which return, and any it gave back to the queue
//! unapplied — and the first writer still queued, which leads the next batch; the others sleep
//! on (one shared `notify_all` woke every writer per batch, and with 8
//! writers on 2 cores the context switches cost more than the commit's CPU). A writer is
//! acknowledged only after the commit that holds its write is durable. A job that fails before
//! its first write (a failed precondition, a missing bucket, a damaged record in its way) left
//! the transaction as it found it and fails alone — the leader counts each job's writes; an
//! error after a job's first write, or of the shared transaction or commit, is returned to
//! every writer in the batch.
//!
//! A batch stays within the backend's `Limits`: the leader counts the operations and bytes
//! each job wrote and takes no more jobs once the batch has used half of either, or written
//! the bytes a streaming write buffers before it commits (`Builder::upload_batch_size`, 8 MiB by
//! default): jobs it had taken from the queue but not applied go back to its front. Jobs that each fit a
//! transaction could still overflow one together (a job larger than the headroom); when a
//! shared transaction of several jobs fails `TooLarge`, it is dropped and each of its jobs
//! runs again in a transaction of its own (a job is a closure that only writes through the
//! transaction it is given, so running it again after a rollback is running it once), so
//! only a job too large alone fails, alone.
//!
//! Every writer whose job a leader took gets an answer even if the leader panics outside a job
//! (in the backend's commit, say): a job's result is set when it is dropped unanswered —
//! "outcome unknown", since the commit may or may not have happened — and the leader's
//! `Leading` guard wakes the writers of its batch while unwinding. Without it they woke to no
//! result, found no commit in progress and led empty batches for ever.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::engine::{Engine, lock_err};
use crate::error::{Error, Result};
use crate::storage::{Counting, Limits, WriteTxn};

/// What group commit has done since the store was opened
/// ([`Datastore::group_commit_stats`](crate::Datastore::group_commit_stats)).
///
/// Group commit carries the single writes made outside a transaction: putting or copying an
/// object (for one larger than a batch of
/// [`Builder::upload_batch_size`](crate::Builder::upload_batch_size) or than half the
/// backend's transaction limits, its last batch of chunks and its manifest: the batches
/// before it are written in commits of their own), deleting an object,
/// creating a bucket, starting a multipart upload and uploading a part. Writes that arrive
/// together share one commit. Completing or aborting a multipart upload, deleting a bucket,
/// transactions ([`Datastore::transaction`](crate::Datastore::transaction)) and maintenance
/// are not counted.
///
/// `writes / commits` is the average number of writes per commit: 1 for a single writer, up
/// to the number of concurrent writers. A write refused before it wrote anything (a failed
/// precondition, a missing bucket) still takes part in a commit — an empty one if it was
/// alone — so refusals lower the average.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupCommitStats {
    /// Commits group commit made that succeeded (each one fsync when durable), empty ones
    /// included.
    pub commits: u64,
    /// Writes those commits acknowledged as done, each after its commit: a delete of a key
    /// that was not there is one; a write refused before it wrote anything is not.
    pub writes: u64,
}

/// Most jobs in one shared transaction.
const MAX_BATCH: usize = 512;

/// Applies a job to a transaction; returns what it wrote. May run again after a rollback.
type Apply = Box<dyn FnMut(&mut dyn WriteTxn) -> Result<Used> + Send>;

/// Hands a writer the outcome of its job (`Some` is the failure of the shared transaction).
/// Dropped without being called (a leader unwinding from a panic), it hands the writer an
/// error saying the outcome is unknown.
struct Finish(Option<Box<dyn FnOnce(Option<Error>) + Send>>);

impl Finish {
    fn call(mut self, failure: Option<Error>) {
        if let Some(f) = self.0.take() {
            f(failure);
        }
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(Some(Error::Storage {
                context: "group commit".into(),
                source: "the commit holding this write panicked; whether the write was stored is unknown".into(),
            }));
        }
    }
}

struct Job {
    apply: Apply,
    finish: Finish,
    /// The writer waiting for this job.
    wake: Arc<Condvar>,
}

/// What a job wrote: the operations and bytes a backend counts against its `Limits`, and
/// whether it succeeded (a job refused before its first write has nothing to store).
#[derive(Debug, Clone, Copy, Default)]
struct Used {
    ops: usize,
    bytes: usize,
    ok: bool,
}

impl Used {
    fn add(&mut self, other: Used) {
        self.ops = self.ops.saturating_add(other.ops);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }

    /// Whether a batch that wrote this much takes no more jobs: half the backend's limits,
    /// leaving the other half as headroom for the jobs already taken, or `max_bytes` (the
    /// bytes a streaming write buffers before it commits: past a few MiB, a shared fsync
    /// saves little beside the writing, and the batch's pages wait in memory for the commit).
    fn full(&self, limits: &Limits, max_bytes: usize) -> bool {
        self.ops.saturating_mul(2) >= limits.max_txn_ops
            || self.bytes.saturating_mul(2) >= limits.max_txn_bytes
            || self.bytes >= max_bytes
    }
}

/// The longest a leader waits for the writers of the previous batch to come back.
const MAX_GATHER: Duration = Duration::from_millis(2);

#[derive(Default)]
struct State {
    queue: Vec<Job>,
    /// A leader is gathering, applying or committing a batch.
    committing: bool,
    /// The leader is waiting on `gather` for more jobs.
    gathering: bool,
    /// Jobs in the last batch, and how long its commit took.
    last_batch: usize,
    last_commit: Duration,
    /// Counted under the lock, so that a reader sees both fields of one moment.
    stats: GroupCommitStats,
}

#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    /// Signalled to a gathering leader when a job is queued.
    gather: Condvar,
}

/// How long a leader gathers jobs for its batch.
struct Gather {
    /// Jobs in the last batch: the writers expected back.
    target: usize,
    deadline: Instant,
}

/// When the leader is done (even if it panicked): clears `committing`, wakes the writers of
/// its batch and the writer that leads the next one. Notifying under the state lock, after the
/// results are set, means no wake-up is lost: a writer checks its result and goes to sleep
/// under that lock.
struct Leading<'a> {
    commit: &'a GroupCommit,
    batch: Vec<Arc<Condvar>>,
    /// Jobs applied: the size of the batch, which the next leader gathers for.
    applied: usize,
    started: Instant,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let mut st = match self.commit.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        st.committing = false;
        st.last_batch = self.applied;
        st.last_commit = self.started.elapsed();
        for w in &self.batch {
            w.notify_one();
        }
        if let Some(next) = st.queue.first() {
            next.wake.notify_one();
        }
    }
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupCommit")
    }
}

struct Slot<R> {
    /// The job's own outcome, set while applying it.
    pending: Mutex<Option<Result<R>>>,
    /// The final outcome, set after the shared commit.
    done: Mutex<Option<Result<R>>>,
}

/// The failure of a shared commit, for each writer of the batch: the kinds a caller acts on
/// keep their variant; the rest become `Storage` with the one original error, whole source
/// chain included (the I/O error under a failed fsync), as their source.
fn share(e: &Arc<Error>) -> Error {
    match &**e {
        Error::Poisoned => Error::Poisoned,
        Error::TooLarge(m) => Error::TooLarge(m.clone()),
        Error::AlreadyOpen { path } => Error::AlreadyOpen { path: path.clone() },
        Error::Corrupted { bucket, key, reason } => {
            Error::Corrupted { bucket: bucket.clone(), key: key.clone(), reason: reason.clone() }
        }
        Error::Io(io) => Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        _ => Error::Storage { context: "a commit shared with other writes failed".into(), source: Box::new(e.clone()) },
    }
}

impl GroupCommit {
    pub(crate) fn run<R: Send + 'static>(
        engine: &Engine,
        mut f: impl FnMut(&mut dyn WriteTxn) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let this = &engine.commit;
        let slot = Arc::new(Slot { pending: Mutex::new(None), done: Mutex::new(None) });
        let (s1, s2) = (slot.clone(), slot.clone());
        let wake = Arc::new(Condvar::new());
        let job = Job {
            wake: wake.clone(),
            apply: Box::new(move |w| {
                let mut txn = Counting::new(w);
                let r = f(&mut txn);
                let used = Used { ops: txn.ops, bytes: txn.bytes, ok: r.is_ok() };
                match r {
                    Ok(v) => {
                        *s1.pending.lock().map_err(|_| lock_err())? = Some(Ok(v));
                        Ok(used)
                    }
                    // Failed before its first write: the transaction is as it found it.
                    Err(e) if txn.writes == 0 => {
                        *s1.pending.lock().map_err(|_| lock_err())? = Some(Err(e));
                        Ok(used)
                    }
                    Err(e) => Err(e),
                }
            }),
            finish: Finish(Some(Box::new(move |failure| {
                let outcome = match failure {
                    Some(e) => Err(e),
                    None => s2.pending.lock().ok().and_then(|mut p| p.take()).unwrap_or_else(|| {
                        Err(Error::Storage { context: "group commit".into(), source: "job result missing".into() })
                    }),
                };
                if let Ok(mut d) = s2.done.lock() {
                    *d = Some(outcome);
                }
            }))),
        };
        let mut st = this.state.lock().map_err(|_| lock_err())?;
        st.queue.push(job);
        if st.gathering {
            this.gather.notify_one();
        }
        loop {
            // The leader sets `done` before it takes `state` to signal, so a result set after
            // this check is always followed by a wake-up.
            if let Some(r) = slot.done.lock().map_err(|_| lock_err())?.take() {
                return r;
            }
            if st.committing {
                st = wake.wait(st).map_err(|_| lock_err())?;
                continue;
            }
            st.committing = true;
            let plan = Gather {
                target: st.last_batch.clamp(1, MAX_BATCH),
                deadline: Instant::now() + (st.last_commit / 2).min(MAX_GATHER),
            };
            let n = st.queue.len().min(MAX_BATCH);
            let first: Vec<Job> = st.queue.drain(..n).collect();
            drop(st);
            // Every writer whose job is taken is woken when the leader is done, before a job
            // is applied (also those given back to the queue: a spurious wake-up is harmless).
            let batch = first.iter().map(|j| j.wake.clone()).collect();
            let mut leading = Leading { commit: this, batch, applied: 0, started: Instant::now() };
            Self::lead(engine, &mut leading, first, &plan);
            drop(leading);
            st = this.state.lock().map_err(|_| lock_err())?;
        }
    }

    /// Applies `first` and the jobs that arrive meanwhile in one transaction, then commits.
    ///
    /// While fewer jobs than the last batch held have been applied, the leader takes the jobs
    /// that arrive and waits for more — until the deadline, at most half the last commit's
    /// duration (and `MAX_GATHER`). The writers of the last batch were just acknowledged;
    /// writers that write again come back within microseconds, and without the wait the first
    /// of them would start a batch of one or two while the rest queue behind it for a whole
    /// commit, so that 8 writers settled into two alternating batches of ~4 (W1 in
    /// BENCHMARKS.md). Jobs are applied as they arrive, so the wait overlaps the work. A lone
    /// writer (last batch 1) never waits; a writer that stops writing costs at most one
    /// bounded wait.
    fn lead(engine: &Engine, leading: &mut Leading<'_>, first: Vec<Job>, plan: &Gather) {
        let this = leading.commit;
        let (limits, max_bytes) = (engine.kv.limits(), engine.cfg.batch_bytes);
        let mut w = match engine.kv.write() {
            Ok(w) => w,
            Err(e) => {
                let e = Arc::new(e);
                for job in first {
                    job.finish.call(Some(share(&e)));
                }
                return;
            }
        };
        let mut taken: Vec<(Apply, Finish)> = Vec::new();
        let mut used = Used::default();
        let mut stored = 0u64;
        let mut failure = None;
        let mut jobs = first.into_iter();
        loop {
            for mut job in jobs.by_ref() {
                let applied = Self::apply(&mut job.apply, w.as_mut());
                taken.push((job.apply, job.finish));
                leading.applied += 1;
                match applied {
                    Ok(u) => {
                        used.add(u);
                        stored += u64::from(u.ok);
                    }
                    Err(e) => failure = Some(e),
                }
                if failure.is_some() || used.full(&limits, max_bytes) {
                    break;
                }
            }
            let rest: Vec<Job> = jobs.collect();
            if failure.is_some() || taken.len() >= MAX_BATCH || used.full(&limits, max_bytes) {
                if !rest.is_empty() {
                    // Taken from the queue but not applied: they lead the queue again (also
                    // past a poisoned lock, as `Leading` does: dropped, their writers would
                    // wait for ever).
                    let mut st = this.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    st.queue.splice(0..0, rest);
                }
                break;
            }
            jobs = match this.state.lock() {
                Ok(st) => Self::more(this, st, plan, taken.len()),
                Err(_) => Vec::new(),
            }
            .into_iter();
            leading.batch.extend(jobs.as_slice().iter().map(|j| j.wake.clone()));
            if jobs.len() == 0 {
                break;
            }
        }
        let failure = match failure {
            Some(e) => {
                // Rolled back, and the write lock released for the jobs to run again alone.
                drop(w);
                Some(e)
            }
            None => w.commit(engine.ack_mode()).err(),
        };
        if taken.len() > 1 && matches!(failure, Some(Error::TooLarge(_))) {
            // Together too large for one transaction (rolled back here): each on its own.
            for (mut apply, finish) in taken {
                let outcome = Self::alone(engine, &mut apply);
                if let Ok(ok) = outcome {
                    this.count(u64::from(ok));
                }
                finish.call(outcome.err());
            }
            return;
        }
        if failure.is_none() {
            this.count(stored);
        }
        let failure = failure.map(Arc::new);
        for (_, finish) in taken {
            finish.call(failure.as_ref().map(share));
        }
    }

    /// Applies one job in a transaction of its own and commits it: whether the job stored its
    /// write (it may have been refused before writing), or the failure.
    fn alone(engine: &Engine, apply: &mut Apply) -> std::result::Result<bool, Error> {
        let mut w = engine.kv.write()?;
        let used = Self::apply(apply, w.as_mut())?;
        w.commit(engine.ack_mode())?;
        Ok(used.ok)
    }

    /// Counts a commit that succeeded and the writes it stored — before any of its writers is
    /// handed its result, so that a writer that returns finds its commit in the stats.
    fn count(&self, writes: u64) {
        let mut st = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        st.stats.commits += 1;
        st.stats.writes += writes;
    }

    /// The commits made and writes stored so far.
    pub(crate) fn stats(&self) -> GroupCommitStats {
        match self.state.lock() {
            Ok(st) => st.stats,
            Err(poisoned) => poisoned.into_inner().stats,
        }
    }

    /// The jobs queued since the leader last looked, waiting for some while fewer than the
    /// target have been taken and the deadline has not passed. Empty: commit now.
    fn more(this: &GroupCommit, mut st: MutexGuard<'_, State>, plan: &Gather, taken: usize) -> Vec<Job> {
        loop {
            if !st.queue.is_empty() {
                let n = st.queue.len().min(MAX_BATCH - taken);
                return st.queue.drain(..n).collect();
            }
            if taken >= plan.target {
                return Vec::new();
            }
            let Some(left) = plan.deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                return Vec::new();
            };
            st.gathering = true;
            st = match this.gather.wait_timeout(st, left) {
                Ok((guard, _)) => guard,
                Err(_) => return Vec::new(),
            };
            st.gathering = false;
        }
    }

    /// Applies one job: what it wrote, or an error that fails the whole transaction.
    fn apply(apply: &mut Apply, w: &mut dyn WriteTxn) -> Result<Used> {
        match catch_unwind(AssertUnwindSafe(|| apply(w))) {
            Ok(r) => r,
            Err(_) => Err(Error::Storage {
                context: "group commit".into(),
                source: "a write panicked; its batch was rolled back".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
