//! An in-memory `BTreeMap` adapter: the reference backend for unit tests of the layers above,
//! with configurable limits so tests can exercise how the data layer splits its work.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::{Commit, KeyRange, KeyValueStore, KvRead, Limits, ReadTxn, SpaceInfo, Value, WriteTxn};
use crate::error::{Error, Result};

type Map = BTreeMap<Vec<u8>, Arc<[u8]>>;

/// A copy-on-write ordered map: snapshots share the committed map; a commit copies it only
/// while a snapshot still holds the old one.
pub(crate) struct MemoryStore {
    inner: Arc<Inner>,
    limits: Limits,
}

struct Inner {
    state: Mutex<State>,
    writer_done: Condvar,
}

struct State {
    map: Arc<Map>,
    writer: bool,
}

fn lock(inner: &Inner) -> Result<MutexGuard<'_, State>> {
    inner.state.lock().map_err(|_| Error::Storage {
        context: "memory store".into(),
        source: "a writer panicked while committing".into(),
    })
}

impl MemoryStore {
    pub(crate) fn new(limits: Limits) -> Self {
        MemoryStore {
            inner: Arc::new(Inner {
                state: Mutex::new(State { map: Arc::new(Map::new()), writer: false }),
                writer_done: Condvar::new(),
            }),
            limits,
        }
    }
}

impl KeyValueStore for MemoryStore {
    fn limits(&self) -> Limits {
        self.limits
    }

    fn read(&self) -> Result<Arc<dyn ReadTxn>> {
        let map = lock(&self.inner)?.map.clone();
        Ok(Arc::new(MemRead { map }))
    }

    fn write(&self) -> Result<Box<dyn WriteTxn>> {
        let mut state = lock(&self.inner)?;
        while state.writer {
            state = self
                .inner
                .writer_done
                .wait(state)
                .map_err(|_| Error::Storage { context: "memory store".into(), source: "a writer panicked".into() })?;
        }
        state.writer = true;
        Ok(Box::new(MemWrite {
            inner: self.inner.clone(),
            base: state.map.clone(),
            overlay: BTreeMap::new(),
            limits: self.limits,
            ops: 0,
            bytes: 0,
        }))
    }

    fn compact(&self) -> Result<()> {
        Ok(())
    }

    fn check_integrity(&self) -> Result<bool> {
        Ok(true)
    }

    fn space(&self) -> Result<SpaceInfo> {
        let state = lock(&self.inner)?;
        let file_size = state.map.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
        Ok(SpaceInfo { file_size })
    }
}

struct MemRead {
    map: Arc<Map>,
}

fn bounds(range: KeyRange<'_>) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (range.start, range.end)
}

impl KvRead for MemRead {
    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        Ok(self.map.get(key).map(|v| Value::shared(Box::new(v.clone()))))
    }

    fn scan(&self, range: KeyRange<'_>, limit: usize) -> Result<Vec<(Vec<u8>, Value)>> {
        Ok(self
            .map
            .range::<[u8], _>(bounds(range))
            .take(limit)
            .map(|(k, v)| (k.clone(), Value::shared(Box::new(v.clone()))))
            .collect())
    }
}

impl ReadTxn for MemRead {}

struct MemWrite {
    inner: Arc<Inner>,
    base: Arc<Map>,
    /// Writes of this transaction: `None` is a delete.
    overlay: BTreeMap<Vec<u8>, Option<Arc<[u8]>>>,
    limits: Limits,
    ops: usize,
    bytes: usize,
}

impl MemWrite {
    fn count(&mut self, bytes: usize) -> Result<()> {
        self.ops += 1;
        self.bytes += bytes;
        self.within_limits()
    }

    /// Like a networked engine, the map refuses a transaction past its limits as a whole: the
    /// write that crossed them fails, and so does the commit (a caller that ignored the error
    /// cannot commit the writes before it).
    fn within_limits(&self) -> Result<()> {
        if self.ops > self.limits.max_txn_ops || self.bytes > self.limits.max_txn_bytes {
            return Err(Error::TooLarge(format!(
                "transaction of {} operations and {} bytes exceeds the backend's limits",
                self.ops, self.bytes
            )));
        }
        Ok(())
    }
}

impl KvRead for MemWrite {
    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        let found = match self.overlay.get(key) {
            Some(v) => v.clone(),
            None => self.base.get(key).cloned(),
        };
        Ok(found.map(|v| Value::shared(Box::new(v))))
    }

    fn scan(&self, range: KeyRange<'_>, limit: usize) -> Result<Vec<(Vec<u8>, Value)>> {
        let mut base = self.base.range::<[u8], _>(bounds(range)).peekable();
        let mut over = self.overlay.range::<[u8], _>(bounds(range)).peekable();
        let mut out = Vec::new();
        while out.len() < limit {
            let take_over = match (base.peek(), over.peek()) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((bk, _)), Some((ok, _))) => ok <= bk,
            };
            if take_over {
                let Some((k, v)) = over.next() else { break };
                if base.peek().is_some_and(|(bk, _)| *bk == k) {
                    base.next();
                }
                if let Some(v) = v {
                    out.push((k.clone(), Value::shared(Box::new(v.clone()))));
                }
            } else if let Some((k, v)) = base.next() {
                out.push((k.clone(), Value::shared(Box::new(v.clone()))));
            }
        }
        Ok(out)
    }
}

impl WriteTxn for MemWrite {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if value.len() > self.limits.max_value_size {
            return Err(Error::TooLarge(format!(
                "value of {} bytes exceeds the backend's limit of {}",
                value.len(),
                self.limits.max_value_size
            )));
        }
        self.count(key.len() + value.len())?;
        self.overlay.insert(key.to_vec(), Some(Arc::from(value)));
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<bool> {
        let existed = self.get(key)?.is_some();
        self.count(key.len())?;
        self.overlay.insert(key.to_vec(), None);
        Ok(existed)
    }

    fn delete_range(&mut self, range: KeyRange<'_>) -> Result<u64> {
        let keys: Vec<Vec<u8>> = self.scan(range, usize::MAX)?.into_iter().map(|(k, _)| k).collect();
        for k in &keys {
            self.delete(k)?;
        }
        Ok(keys.len() as u64)
    }

    fn commit(mut self: Box<Self>, _mode: Commit) -> Result<()> {
        self.within_limits()?;
        let overlay = std::mem::take(&mut self.overlay);
        let mut state = lock(&self.inner)?;
        let map = Arc::make_mut(&mut state.map);
        for (k, v) in overlay {
            match v {
                Some(v) => map.insert(k, v),
                None => map.remove(&k),
            };
        }
        Ok(())
    }
}

impl Drop for MemWrite {
    fn drop(&mut self) {
        if let Ok(mut state) = self.inner.state.lock() {
            state.writer = false;
        }
        self.inner.writer_done.notify_one();
    }
}
