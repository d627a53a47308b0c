//! Group commit: concurrent small writes share one durable commit.
//!
//! Each writer queues a job. When no commit is in progress, the writer becomes the leader: it
//! drains the queue, applies every job in one write transaction, commits once (one fsync for
//! all), and hands each writer its own result. Writers that arrive while a commit is in
//! progress wait, each on a condition variable of its own (not on a lock the leader holds, which
//! would wake them one at a time and let each become the leader of a batch of one). When the
//! commit ends, the leader wakes exactly the writers of its batch, which return, and the first
//! writer still queued, which leads the next batch with everything queued meanwhile; the others
//! sleep on (one shared `notify_all` woke every writer per batch, and with 8 writers on 2 cores
//! the context switches cost more than the commit's CPU). A writer is
//! acknowledged only after the commit that holds its write is durable. A job that is rejected for a reason of its own (a failed
//! precondition, a missing bucket) writes nothing and does not disturb the others; an error of
//! the shared transaction or commit is returned to every writer in it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::engine::{Engine, lock_err};
use crate::error::{Error, Result};
use crate::storage::WriteTxn;

/// Most jobs in one shared transaction.
const MAX_BATCH: usize = 512;

type Apply = Box<dyn FnOnce(&mut dyn WriteTxn) -> Result<()> + Send>;
type Finish = Box<dyn FnOnce(Option<Error>) + Send>;

struct Job {
    apply: Apply,
    finish: Finish,
    /// The writer waiting for this job.
    wake: Arc<Condvar>,
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
}

#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    /// Signalled to a gathering leader when a job is queued.
    gather: Condvar,
}

/// When the leader is done (even if it panicked): clears `committing`, wakes the writers of
/// its batch and the writer that leads the next one. Notifying under the state lock, after the
/// results are set, means no wake-up is lost: a writer checks its result and goes to sleep
/// under that lock.
struct Leading<'a> {
    commit: &'a GroupCommit,
    batch: Vec<Arc<Condvar>>,
    started: Instant,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let mut st = match self.commit.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        st.committing = false;
        st.last_batch = self.batch.len();
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

/// Errors that reject one job without touching the transaction.
fn rejects_only_this_job(e: &Error) -> bool {
    matches!(
        e,
        Error::NoSuchBucket { .. }
            | Error::BucketAlreadyExists { .. }
            | Error::BucketNotEmpty { .. }
            | Error::NoSuchKey { .. }
            | Error::NoSuchUpload { .. }
            | Error::InvalidBucketName { .. }
            | Error::InvalidKey { .. }
            | Error::PreconditionFailed { .. }
            | Error::InvalidRange { .. }
            | Error::InvalidPart { .. }
            | Error::InvalidPartOrder { .. }
            | Error::EntityTooSmall { .. }
            | Error::Serialization { .. }
    )
}

/// A copy of a shared failure for each writer of the batch.
fn share(e: &Error) -> Error {
    match e {
        Error::Poisoned => Error::Poisoned,
        Error::TooLarge(m) => Error::TooLarge(m.clone()),
        Error::AlreadyOpen { path } => Error::AlreadyOpen { path: path.clone() },
        Error::Corrupted { bucket, key, reason } => {
            Error::Corrupted { bucket: bucket.clone(), key: key.clone(), reason: reason.clone() }
        }
        Error::Io(io) => Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        other => Error::Storage {
            context: "a commit shared with other writes failed".into(),
            source: other.to_string().into(),
        },
    }
}

impl GroupCommit {
    pub(crate) fn run<R: Send + 'static>(
        engine: &Engine,
        f: impl FnOnce(&mut dyn WriteTxn) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let this = &engine.commit;
        let slot = Arc::new(Slot { pending: Mutex::new(None), done: Mutex::new(None) });
        let (s1, s2) = (slot.clone(), slot.clone());
        let wake = Arc::new(Condvar::new());
        let job = Job {
            wake: wake.clone(),
            apply: Box::new(move |w| match f(w) {
                Ok(v) => {
                    *s1.pending.lock().map_err(|_| lock_err())? = Some(Ok(v));
                    Ok(())
                }
                Err(e) if rejects_only_this_job(&e) => {
                    *s1.pending.lock().map_err(|_| lock_err())? = Some(Err(e));
                    Ok(())
                }
                Err(e) => Err(e),
            }),
            finish: Box::new(move |failure| {
                let outcome = match failure {
                    Some(e) => Err(e),
                    None => s2.pending.lock().ok().and_then(|mut p| p.take()).unwrap_or_else(|| {
                        Err(Error::Storage { context: "group commit".into(), source: "job result missing".into() })
                    }),
                };
                if let Ok(mut d) = s2.done.lock() {
                    *d = Some(outcome);
                }
            }),
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
            st = Self::gather(this, st)?;
            let n = st.queue.len().min(MAX_BATCH);
            let jobs: Vec<Job> = st.queue.drain(..n).collect();
            drop(st);
            let leading =
                Leading { commit: this, batch: jobs.iter().map(|j| j.wake.clone()).collect(), started: Instant::now() };
            Self::commit_batch(engine, jobs);
            drop(leading);
            st = this.state.lock().map_err(|_| lock_err())?;
        }
    }

    /// Before a batch starts: while fewer jobs are queued than the last batch held, waits for
    /// them — for at most half the last commit's duration (and `MAX_GATHER`). The writers of
    /// the last batch were just acknowledged; writers that write again come back within
    /// microseconds, and without the wait the first of them would start a batch of one or two
    /// while the rest queue behind it for a whole commit, so that 8 writers settled into two
    /// alternating batches of ~4 (W1 in BENCHMARKS.md). A lone writer (last batch 1) never
    /// waits; a writer that stops writing costs at most one bounded wait.
    fn gather<'a>(this: &'a GroupCommit, mut st: MutexGuard<'a, State>) -> Result<MutexGuard<'a, State>> {
        let target = st.last_batch.min(MAX_BATCH);
        if st.queue.len() >= target {
            return Ok(st);
        }
        let deadline = Instant::now() + (st.last_commit / 2).min(MAX_GATHER);
        while st.queue.len() < target {
            let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else { break };
            st.gathering = true;
            let (guard, _) = this.gather.wait_timeout(st, left).map_err(|_| lock_err())?;
            st = guard;
            st.gathering = false;
        }
        Ok(st)
    }

    fn commit_batch(engine: &Engine, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        let (applies, finishes): (Vec<Apply>, Vec<Finish>) = jobs.into_iter().map(|j| (j.apply, j.finish)).unzip();
        let failure = match engine.kv.write() {
            Err(e) => Some(e),
            Ok(mut w) => {
                let mut failure = None;
                for apply in applies {
                    let applied = catch_unwind(AssertUnwindSafe(|| apply(w.as_mut())));
                    match applied {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            failure = Some(e);
                            break;
                        }
                        Err(_) => {
                            failure = Some(Error::Storage {
                                context: "group commit".into(),
                                source: "a write panicked; its batch was rolled back".into(),
                            });
                            break;
                        }
                    }
                }
                match failure {
                    Some(e) => Some(e),
                    None => w.commit(engine.ack_mode()).err(),
                }
            }
        };
        for finish in finishes {
            finish(failure.as_ref().map(share));
        }
    }
}
