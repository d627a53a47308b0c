//! One conformance suite for every `KeyValueStore` adapter: the same checks, called once per
//! backend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ops::Bound;

use super::{Commit, KeyRange, KeyValueStore, KvRead};

fn all() -> KeyRange<'static> {
    KeyRange::new(Bound::Unbounded, Bound::Unbounded)
}

fn keys_of(r: &dyn KvRead, range: KeyRange<'_>, limit: usize) -> Vec<Vec<u8>> {
    r.scan(range, limit).unwrap().into_iter().map(|(k, _)| k).collect()
}

/// Runs every check against a fresh, empty store from `make`.
pub(crate) fn suite(make: &dyn Fn() -> Box<dyn KeyValueStore>) {
    put_get_delete(make().as_ref());
    scans_are_ordered_bounded_and_limited(make().as_ref());
    scan_with_lends_in_order_until_told_to_stop(make().as_ref());
    writes_see_their_own_writes(make().as_ref());
    dropped_transaction_aborts(make().as_ref());
    snapshots_are_isolated(make().as_ref());
    delete_range_removes_exactly_the_range(make().as_ref());
    large_values_round_trip(make().as_ref());
    compact_keeps_every_entry(make().as_ref());
}

fn put_get_delete(kv: &dyn KeyValueStore) {
    let mut w = kv.write().unwrap();
    w.put(b"a", b"1").unwrap();
    w.put(b"b", b"").unwrap();
    w.commit(Commit::Durable).unwrap();
    let r = kv.read().unwrap();
    assert_eq!(&*r.get(b"a").unwrap().unwrap(), b"1");
    assert_eq!(&*r.get(b"b").unwrap().unwrap(), b"");
    assert!(r.get(b"c").unwrap().is_none());
    let mut w = kv.write().unwrap();
    assert!(w.delete(b"a").unwrap());
    assert!(!w.delete(b"zz").unwrap());
    w.put(b"b", b"2").unwrap();
    w.commit(Commit::Deferred).unwrap();
    let r = kv.read().unwrap();
    assert!(r.get(b"a").unwrap().is_none());
    assert_eq!(&*r.get(b"b").unwrap().unwrap(), b"2");
}

fn scans_are_ordered_bounded_and_limited(kv: &dyn KeyValueStore) {
    let mut w = kv.write().unwrap();
    for k in [&b"b\x00\x0a"[..], b"b\x00\x09", b"a", b"b", b"b\x00", b"c", b"\xff\xff"] {
        w.put(k, k).unwrap();
    }
    w.commit(Commit::Durable).unwrap();
    let r = kv.read().unwrap();
    let every = keys_of(r.as_ref(), all(), usize::MAX);
    let mut sorted = every.clone();
    sorted.sort();
    assert_eq!(every, sorted);
    assert_eq!(every.len(), 7);
    assert_eq!(keys_of(r.as_ref(), all(), 2), vec![b"a".to_vec(), b"b".to_vec()]);
    assert!(keys_of(r.as_ref(), all(), 0).is_empty());
    let end = super::prefix_end(b"b\x00").unwrap();
    let pre = KeyRange::new(Bound::Included(b"b\x00"), Bound::Excluded(&end));
    assert_eq!(keys_of(r.as_ref(), pre, 10), vec![b"b\x00".to_vec(), b"b\x00\x09".to_vec(), b"b\x00\x0a".to_vec()]);
    let after = KeyRange::new(Bound::Excluded(b"b\x00\x09"), Bound::Unbounded);
    assert_eq!(keys_of(r.as_ref(), after, 2), vec![b"b\x00\x0a".to_vec(), b"c".to_vec()]);
    assert_eq!(super::prefix_end(b"\xff\xff"), None);
    assert_eq!(super::prefix_end(b"a\xff"), Some(b"b".to_vec()));
    // `first_with`: the first entry of a range, or none; the same in a write transaction,
    // which sees its own writes.
    let first = |r: &dyn KvRead, range: KeyRange<'_>| {
        let mut seen = None;
        let found = r.first_with(range, &mut |k, v| {
            seen = Some((k.to_vec(), v.to_vec()));
            Ok(())
        });
        assert_eq!(found.unwrap(), seen.is_some());
        seen.map(|(k, v)| {
            assert_eq!(k, v);
            k
        })
    };
    let from = |k: &'static [u8]| KeyRange::new(Bound::Included(k), Bound::Unbounded);
    assert_eq!(first(r.as_ref(), from(b"b\x00\x01")), Some(b"b\x00\x09".to_vec()));
    assert_eq!(first(r.as_ref(), from(b"b")), Some(b"b".to_vec()));
    assert_eq!(first(r.as_ref(), KeyRange::new(Bound::Included(b"b\x01"), Bound::Excluded(b"c"))), None);
    assert_eq!(first(r.as_ref(), from(b"\xff\xff\x00")), None);
    let mut w = kv.write().unwrap();
    w.put(b"b\x00\x05", b"b\x00\x05").unwrap();
    w.delete(b"c").unwrap();
    assert_eq!(first(w.as_ref(), from(b"b\x00\x01")), Some(b"b\x00\x05".to_vec()));
    assert_eq!(first(w.as_ref(), from(b"b\x01")), Some(b"\xff\xff".to_vec()));
}

/// `scan_with`: every entry of a range in order (over more than one page of the default's),
/// within `limit`, stopped by the callback, the same in a write transaction.
fn scan_with_lends_in_order_until_told_to_stop(kv: &dyn KeyValueStore) {
    let key = |i: u32| format!("k{i:04}").into_bytes();
    let mut w = kv.write().unwrap();
    for i in 0..1000 {
        w.put(&key(i), &i.to_be_bytes()).unwrap();
    }
    w.commit(Commit::Durable).unwrap();
    let collect = |r: &dyn KvRead, range: KeyRange<'_>, limit: usize, stop_after: usize| {
        let mut seen = Vec::new();
        let lent = r
            .scan_with(range, limit, &mut |k, v| {
                assert_eq!(v, &std::str::from_utf8(&k[1..]).unwrap().parse::<u32>().unwrap().to_be_bytes());
                seen.push(k.to_vec());
                Ok(seen.len() < stop_after)
            })
            .unwrap();
        assert_eq!(lent, seen.len());
        seen
    };
    let r = kv.read().unwrap();
    assert_eq!(collect(r.as_ref(), all(), usize::MAX, usize::MAX), (0..1000).map(key).collect::<Vec<_>>());
    assert_eq!(collect(r.as_ref(), all(), 300, usize::MAX), (0..300).map(key).collect::<Vec<_>>());
    assert_eq!(collect(r.as_ref(), all(), usize::MAX, 257), (0..257).map(key).collect::<Vec<_>>());
    assert!(collect(r.as_ref(), all(), 0, usize::MAX).is_empty());
    let (from, to) = (key(250), key(520));
    let range = KeyRange::new(Bound::Excluded(&from), Bound::Excluded(&to));
    assert_eq!(collect(r.as_ref(), range, usize::MAX, usize::MAX), (251..520).map(key).collect::<Vec<_>>());
    let mut w = kv.write().unwrap();
    w.delete(&key(1)).unwrap();
    w.put(b"k", &[]).unwrap();
    let mut seen = Vec::new();
    w.scan_with(all(), 3, &mut |k, _| {
        seen.push(k.to_vec());
        Ok(true)
    })
    .unwrap();
    assert_eq!(seen, [b"k".to_vec(), key(0), key(2)]);
}

fn writes_see_their_own_writes(kv: &dyn KeyValueStore) {
    let mut w = kv.write().unwrap();
    w.put(b"k1", b"old").unwrap();
    w.put(b"k3", b"x").unwrap();
    w.commit(Commit::Durable).unwrap();
    let mut w = kv.write().unwrap();
    w.put(b"k1", b"new").unwrap();
    w.put(b"k2", b"added").unwrap();
    w.delete(b"k3").unwrap();
    assert_eq!(&*w.get(b"k1").unwrap().unwrap(), b"new");
    assert_eq!(keys_of(w.as_ref(), all(), 10), vec![b"k1".to_vec(), b"k2".to_vec()]);
    // A snapshot taken meanwhile sees none of it.
    let r = kv.read().unwrap();
    assert_eq!(&*r.get(b"k1").unwrap().unwrap(), b"old");
    assert!(r.get(b"k2").unwrap().is_none());
    w.commit(Commit::Durable).unwrap();
    assert_eq!(&*r.get(b"k1").unwrap().unwrap(), b"old");
    assert_eq!(&*kv.read().unwrap().get(b"k1").unwrap().unwrap(), b"new");
}

fn dropped_transaction_aborts(kv: &dyn KeyValueStore) {
    let mut w = kv.write().unwrap();
    w.put(b"x", b"1").unwrap();
    drop(w);
    assert!(kv.read().unwrap().get(b"x").unwrap().is_none());
    // The write lock is released again.
    let mut w = kv.write().unwrap();
    w.put(b"y", b"1").unwrap();
    w.commit(Commit::Durable).unwrap();
    assert!(kv.read().unwrap().get(b"y").unwrap().is_some());
}

fn snapshots_are_isolated(kv: &dyn KeyValueStore) {
    let mut w = kv.write().unwrap();
    w.put(b"s", b"1").unwrap();
    w.commit(Commit::Durable).unwrap();
    let before = kv.read().unwrap();
    let mut w = kv.write().unwrap();
    w.delete(b"s").unwrap();
    w.commit(Commit::Durable).unwrap();
    assert_eq!(&*before.get(b"s").unwrap().unwrap(), b"1");
    assert!(kv.read().unwrap().get(b"s").unwrap().is_none());
    // Snapshots move between threads.
    let t = std::thread::spawn(move || before.get(b"s").unwrap().map(|v| v.to_vec()));
    assert_eq!(t.join().unwrap(), Some(b"1".to_vec()));
}

fn delete_range_removes_exactly_the_range(kv: &dyn KeyValueStore) {
    let mut w = kv.write().unwrap();
    for k in [&b"p"[..], b"p\x00", b"p\x00a", b"p\x00b", b"p\x01", b"q"] {
        w.put(k, b"v").unwrap();
    }
    let end = super::prefix_end(b"p\x00").unwrap();
    assert_eq!(w.delete_range(KeyRange::new(Bound::Included(b"p\x00"), Bound::Excluded(&end))).unwrap(), 3);
    assert_eq!(keys_of(w.as_ref(), all(), 10), vec![b"p".to_vec(), b"p\x01".to_vec(), b"q".to_vec()]);
    w.commit(Commit::Durable).unwrap();
    assert_eq!(keys_of(kv.read().unwrap().as_ref(), all(), 10).len(), 3);
}

fn large_values_round_trip(kv: &dyn KeyValueStore) {
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 7u32).map(|i| (i % 253) as u8).collect();
    let mut w = kv.write().unwrap();
    w.put(b"big", &big).unwrap();
    w.commit(Commit::Durable).unwrap();
    assert_eq!(&*kv.read().unwrap().get(b"big").unwrap().unwrap(), &big[..]);
}

/// A small deterministic shuffle (no rand in the library's dev-dependencies for this).
/// A permutation of `0..n` for any `n` that 7919 (a prime) does not divide.
fn scrambled(n: u32) -> impl Iterator<Item = u32> {
    (0..u64::from(n)).map(move |i| ((i * 7919) % u64::from(n)) as u32)
}

fn compact_keeps_every_entry(kv: &dyn KeyValueStore) {
    let n = 3000u32;
    let mut w = kv.write().unwrap();
    for i in scrambled(n) {
        w.put(format!("k{i:06}").as_bytes(), &vec![(i % 251) as u8; 1000 + (i % 50) as usize]).unwrap();
    }
    w.put(b"big", &vec![7u8; 2 * 1024 * 1024]).unwrap();
    w.commit(Commit::Durable).unwrap();
    let mut w = kv.write().unwrap();
    for i in (0..n).step_by(10) {
        assert!(w.delete(format!("k{i:06}").as_bytes()).unwrap());
    }
    w.commit(Commit::Durable).unwrap();
    kv.compact().unwrap();
    let r = kv.read().unwrap();
    let every = r.scan(all(), usize::MAX).unwrap();
    assert_eq!(every.len() as u32, n - n / 10 + 1);
    assert_eq!(every.last().unwrap().0, b"k002999");
    for (k, v) in &every[1..] {
        let i: u32 = std::str::from_utf8(&k[1..]).unwrap().parse().unwrap();
        assert_ne!(i % 10, 0);
        assert_eq!(&**v, &vec![(i % 251) as u8; 1000 + (i % 50) as usize][..]);
    }
    assert_eq!(&*every[0].1, &vec![7u8; 2 * 1024 * 1024][..]);
    drop(r);
    // The store stays writable after compacting.
    let mut w = kv.write().unwrap();
    w.put(b"after", b"1").unwrap();
    w.commit(Commit::Durable).unwrap();
    assert_eq!(&*kv.read().unwrap().get(b"after").unwrap().unwrap(), b"1");
}

/// redb's `compact` only moves pages; Keystone's also rewrites the table in key order, which
/// packs the half-empty leaves that random inserts leave behind (W5 in BENCHMARKS.md).
#[test]
fn redb_compact_packs_leaves_and_waits_for_readers() {
    use super::redb::{RedbConfig, RedbStore};
    let dir = tempfile::tempdir().unwrap();
    let kv = RedbStore::open(&dir.path().join("c.redb"), &RedbConfig { cache_size: None, journal: true }).unwrap();
    let n = 20_000u32;
    let mut w = kv.write().unwrap();
    let mut stored = 0u64;
    for i in scrambled(n) {
        let k = format!("key/{i:08}");
        stored += k.len() as u64 + 1000;
        w.put(k.as_bytes(), &[(i % 256) as u8; 1000]).unwrap();
    }
    w.commit(Commit::Durable).unwrap();
    let loaded = kv.space().unwrap().file_size as f64 / stored as f64;
    // A live snapshot blocks compaction with a clear error, and nothing changes.
    let r = kv.read().unwrap();
    let err = kv.compact().unwrap_err();
    assert!(matches!(err, crate::Error::InUse { operation: "compact" }), "{err}");
    assert!(err.to_string().contains("close them and retry"), "{err}");
    drop(r);
    kv.compact().unwrap();
    let packed = kv.space().unwrap().file_size as f64 / stored as f64;
    // Four 1,012-byte entries do not fit a 4 KiB leaf, three do: 4096 / 3036 = 1.35 is the floor.
    assert!(loaded > 1.6, "after random inserts: {loaded:.2}");
    assert!(packed < 1.45, "after compact: {packed:.2} (before: {loaded:.2})");
    assert_eq!(kv.read().unwrap().scan(all(), usize::MAX).unwrap().len() as u32, n);
}

#[test]
fn redb_adapter_conforms() {
    use super::redb::{RedbConfig, RedbStore};
    suite(&|| Box::new(RedbStore::in_memory(&RedbConfig { cache_size: None, journal: true }).unwrap()));
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    suite(&|| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = dir.path().join(format!("t{i}.redb"));
        Box::new(RedbStore::open(&path, &RedbConfig { cache_size: None, journal: true }).unwrap())
    });
}

#[test]
fn memory_adapter_conforms() {
    suite(&|| Box::new(super::memory::MemoryStore::new(super::Limits::UNLIMITED)));
}

#[test]
fn memory_adapter_enforces_limits() {
    let kv = super::memory::MemoryStore::new(super::Limits { max_value_size: 10, max_txn_ops: 2, max_txn_bytes: 100 });
    let mut w = kv.write().unwrap();
    assert!(matches!(w.put(b"k", &[0; 11]), Err(crate::Error::TooLarge(_))));
    w.put(b"a", b"1").unwrap();
    w.put(b"b", b"1").unwrap();
    assert!(matches!(w.put(b"c", b"1"), Err(crate::Error::TooLarge(_))));
    // A transaction past the limits is refused as a whole: the writes before the one that
    // crossed them do not commit either.
    assert!(matches!(w.commit(Commit::Durable), Err(crate::Error::TooLarge(_))));
    assert!(kv.read().unwrap().get(b"a").unwrap().is_none());
}
