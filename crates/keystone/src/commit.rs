//! Group commit: concurrent small writes share one durable commit.
//!
//! Each writer queues a job. When no commit is in progress, the writer becomes the leader: it
//! drains the queue, applies every job in one write transaction, commits once (one fsync for
//! all), and hands each writer its own result. Writers that arrive while a commit is in
//! progress wait on a condition variable (not on a lock the leader holds, which would wake them
//! one at a time and let each become the leader of a batch of one); when the commit ends, the
//! first of them to wake leads the next batch with everything queued meanwhile. A writer is
//! acknowledged only after the commit that holds its write is durable. A job that is rejected for a reason of its own (a failed
//! precondition, a missing bucket) writes nothing and does not disturb the others; an error of
//! the shared transaction or commit is returned to every writer in it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex};

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
}

#[derive(Default)]
struct State {
    queue: Vec<Job>,
    /// A leader is applying and committing a batch.
    committing: bool,
}

#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    /// Signalled when a batch has been committed (and its writers have their results).
    batch_done: Condvar,
}

/// Clears `committing` and wakes the waiting writers when the leader is done, even if it
/// panicked.
struct Leading<'a>(&'a GroupCommit);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let mut st = match self.0.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        st.committing = false;
        drop(st);
        self.0.batch_done.notify_all();
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
        let job = Job {
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
        loop {
            // The leader sets `done` before it takes `state` to signal, so a result set after
            // this check is always followed by a wake-up.
            if let Some(r) = slot.done.lock().map_err(|_| lock_err())?.take() {
                return r;
            }
            if st.committing {
                st = this.batch_done.wait(st).map_err(|_| lock_err())?;
                continue;
            }
            st.committing = true;
            let n = st.queue.len().min(MAX_BATCH);
            let jobs: Vec<Job> = st.queue.drain(..n).collect();
            drop(st);
            let leading = Leading(this);
            Self::commit_batch(engine, jobs);
            drop(leading);
            st = this.state.lock().map_err(|_| lock_err())?;
        }
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
