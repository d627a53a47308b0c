//! Panics inside redb, caught: the guard every redb call runs under, and values (databases,
//! transactions) dropped under it.

use crate::error::{Error, Result};

thread_local! {
    /// Set while this thread runs a redb call under [`guarded`].
    static GUARDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether a panic raised on this thread now would be caught by Keystone and returned as
/// [`Error::Corrupted`] (see [`crate::panic_is_caught`]).
pub(crate) fn guarding() -> bool {
    GUARDING.with(std::cell::Cell::get)
}

/// Runs one redb call, turning a panic inside it into [`Error::Corrupted`].
///
/// redb checks its pages' checksums only when it recovers a file or checks its integrity, and
/// a page damaged on disk (by the disk, or by a program writing into the file) can make its
/// B-tree code panic when it reads it. Caught here, the panic fails this operation only. A
/// write transaction it happened in must then never commit (a mutation cut short may already
/// have marked pages of the committed tree as freed: `RedbWrite` refuses everything after
/// one) and is aborted when dropped — normally, under this guard too, not while unwinding,
/// which would leave redb's allocator for a repair at the next open, and that repair refuses
/// a file with a damaged page reachable: the whole store would be lost.
/// Only redb's own code runs inside: a panic in Keystone's is never reported as damage.
pub(super) fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    caught(what, f).unwrap_or_else(Err)
}

/// [`guarded`], telling a caught panic (the outer `Err`) from an error `f` returned.
pub(super) fn caught<T>(what: &str, f: impl FnOnce() -> Result<T>) -> std::result::Result<Result<T>, Error> {
    let was = GUARDING.with(|g| g.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    GUARDING.with(|g| g.set(was));
    result.map_err(|panic| {
        let detail = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Error::Corrupted {
            bucket: None,
            key: None,
            reason: format!(
                "a page of the store's index is damaged (redb failed while {what}: {detail}); \
                 `keystone verify --engine` checks a copy of the file"
            ),
        }
    })
}

/// What a write transaction answers once a redb call in it panicked.
pub(super) fn broken_txn() -> Error {
    Error::Corrupted {
        bucket: None,
        key: None,
        reason: "a write in this transaction met a damaged page of the store's index; the transaction \
                 was rolled back"
            .into(),
    }
}

/// A database (or a write transaction) dropped under the same guard as every other redb call:
/// closing commits redb's allocator state, which reads its own tree, and a damaged page there
/// makes redb panic in its `Drop`; aborting a transaction takes locks a caught panic may have
/// poisoned. The close is then left undone (the file is recovered at the next open, as after a
/// crash) instead of ending the process; there is no caller left to give an error to.
pub(super) struct Closing<T>(Option<T>);

impl<T> Closing<T> {
    pub(super) fn new(db: T) -> Self {
        Closing(Some(db))
    }

    /// The value, no longer dropped under the guard.
    pub(super) fn into_inner(mut self) -> Option<T> {
        self.0.take()
    }
}

impl<T> std::ops::Deref for Closing<T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.0 {
            Some(db) => db,
            None => unreachable!("a database is taken only by its drop"),
        }
    }
}

impl<T> std::ops::DerefMut for Closing<T> {
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.0 {
            Some(db) => db,
            None => unreachable!("a database is taken only by its drop"),
        }
    }
}

impl<T> Drop for Closing<T> {
    fn drop(&mut self) {
        if let Some(db) = self.0.take() {
            let _ = guarded("closing", move || {
                drop(db);
                Ok(())
            });
        }
    }
}
