//! A page of redb's B-tree damaged on disk (by the disk, or by a program writing into the
//! file): redb does not check page checksums on ordinary reads, and its B-tree code panics on
//! some damaged pages. Keystone turns that into `Error::Corrupted` for the operation that met
//! the page; everything else keeps working, and — the point — the store still opens afterwards.
//! (A panic that unwound through a write transaction would leave the file to redb's repair at
//! the next open, and that repair refuses a file with a damaged page reachable: the whole store
//! would be lost, not the one object.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keystone::{Datastore, Error};

/// redb's page size.
const PAGE: usize = 4096;

/// A B-tree leaf page begins with its type, 1, then a reserved byte (0, or 0xff as a debug
/// build of redb fills it).
fn is_leaf(page: &[u8]) -> bool {
    page[0] == 1 && (page[1] == 0 || page[1] == 0xff)
}

fn pseudo_random(n: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A closed store holding `big` (3 MB, so its chunks live in their own leaf pages) and small
/// objects, with the type byte of the leaf page holding `big`'s first chunk overwritten.
fn damaged_store(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("store.keystone");
    let big = pseudo_random(3_000_000);
    {
        let db = Datastore::open(&path).unwrap();
        let b = db.create_bucket("bkt").unwrap();
        b.put_bytes("big", &big).unwrap();
        for i in 0..50 {
            b.put_bytes(&format!("small/{i:02}"), format!("object {i}").as_bytes()).unwrap();
        }
    }
    let mut file = std::fs::read(&path).unwrap();
    let at = file.windows(64).position(|w| w == &big[..64]).expect("the chunk is in the file");
    let mut page = at / PAGE * PAGE;
    while !is_leaf(&file[page..page + 2]) {
        page = page.checked_sub(PAGE).expect("a leaf page before the chunk");
    }
    file[page] = 0xff;
    std::fs::write(&path, file).unwrap();
    path
}

fn is_corruption<T: std::fmt::Debug>(r: keystone::Result<T>) -> String {
    match r {
        Err(e @ Error::Corrupted { .. }) => e.to_string(),
        other => panic!("expected Error::Corrupted, got {other:?}"),
    }
}

#[test]
fn a_damaged_index_page_fails_the_operations_that_meet_it_and_the_store_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = damaged_store(dir.path());
    if cfg!(debug_assertions) {
        // A debug build of redb validates every page as it opens a file, and panics
        // (`debug_assert`) where a release build returns an error: an open for writing fails,
        // cleanly. The writes below run in release builds (`cargo test --release`, and
        // scripts/damage-loop in CI).
        let msg = is_corruption(Datastore::open(&path));
        assert!(msg.contains("index is damaged"), "{msg}");
        assert!(!keystone::panic_is_caught(), "the guard is left set");
        // Read-only, it opens: reads meet the page as in a release build.
        let db = Datastore::builder().read_only(true).open(&path).unwrap();
        let b = db.bucket("bkt").unwrap();
        let msg = is_corruption(b.get_bytes("big"));
        assert!(msg.contains("index is damaged") && msg.contains("\"big\""), "{msg}");
        assert_eq!(b.get_bytes("small/07").unwrap(), b"object 7");
        let report = db.verify().unwrap();
        assert_eq!(report.corrupt.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["big"]);
        return;
    }
    {
        let db = Datastore::open(&path).unwrap();
        let b = db.bucket("bkt").unwrap();
        let msg = is_corruption(b.get_bytes("big"));
        assert!(msg.contains("index is damaged") && msg.contains("\"big\""), "{msg}");
        assert!(!keystone::panic_is_caught(), "the guard is left set");
        assert_eq!(b.get_bytes("small/07").unwrap(), b"object 7");

        // verify names the object and goes on with the others.
        let report = db.verify().unwrap();
        assert_eq!(report.objects, 51);
        assert_eq!(report.corrupt.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["big"]);

        // Writes that meet the page fail (and roll back); other writes go on.
        is_corruption(b.delete("big"));
        let removed = db.remove_corrupt(None).unwrap();
        assert!(removed.removed.is_empty());
        assert_eq!(removed.failed.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["big"]);
        b.put_bytes("after", b"written after the damage was met").unwrap();
        is_corruption(db.compact());
        assert_eq!(b.get_bytes("small/49").unwrap(), b"object 49");
    }
    // None of the failures above left the file to redb's repair, which would refuse it whole.
    let db = Datastore::open(&path).unwrap();
    let b = db.bucket("bkt").unwrap();
    assert_eq!(b.get_bytes("small/00").unwrap(), b"object 0");
    assert_eq!(b.get_bytes("after").unwrap(), b"written after the damage was met");
    is_corruption(b.get_bytes("big"));
}

fn value(i: u32) -> Vec<u8> {
    format!("value-{i:08}").into_bytes()
}

/// Writes `n` small objects `k00000000`… into bucket `bkt` of a new store, in one transaction
/// (each leaf page of the tree then exists once in the file), and closes it.
fn small_objects(path: &std::path::Path, n: u32) {
    let db = Datastore::open(path).unwrap();
    db.create_bucket("bkt").unwrap();
    db.transaction(|tx| {
        let b = tx.bucket("bkt")?;
        for i in 0..n {
            b.put_bytes(&format!("k{i:08}"), value(i))?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// A closed store of 20,000 small objects whose keys are `k00000000`…, with one B-tree branch
/// page over keys from `k00005000` on damaged (its last key's end offset set past the page):
/// redb panics in the middle of a change that goes through it. Returns the first key that
/// branch's first child holds no key beyond (the objects just below it share that child).
fn damaged_branch(path: &std::path::Path) -> u32 {
    small_objects(path, 20_000);
    let mut file = std::fs::read(path).unwrap();
    for p in (0..file.len()).step_by(PAGE) {
        let page = &file[p..p + PAGE];
        // redb 4's branch page: type 2, a reserved byte, the key count (u16), then per child
        // a checksum and a page number (24 bytes), then each key's end offset (u32), then keys.
        if page[0] != 2 || page[1] != 0 {
            continue;
        }
        let keys = usize::from(u16::from_le_bytes([page[2], page[3]]));
        if keys < 8 {
            continue;
        }
        let ends = 8 + 24 * (keys + 1);
        let first_start = ends + 4 * keys;
        let first_end = u32::from_le_bytes(page[ends..ends + 4].try_into().unwrap()) as usize;
        let Some(name) = page.get(first_start..first_end).and_then(|k| k.strip_prefix(b"bkt\0k")) else {
            continue;
        };
        let digits: String = name.iter().map(|&b| b as char).take_while(char::is_ascii_digit).collect();
        let Ok(index) = digits.parse::<u32>() else { continue };
        if index < 5000 {
            continue;
        }
        let last = p + ends + 4 * (keys - 1);
        file[last..last + 4].copy_from_slice(&0xFFFFu32.to_le_bytes());
        std::fs::write(path, &file).unwrap();
        return index;
    }
    panic!("no branch page over the objects found");
}

/// The objects just below `index` (under the damaged branch's first child) that no longer read
/// back as written, after the store was closed and opened again.
fn lost_below(path: &std::path::Path, index: u32, skip: &str) -> usize {
    let db = Datastore::open(path).unwrap();
    let b = db.bucket("bkt").unwrap();
    (index.saturating_sub(60)..index)
        .filter(|i| format!("k{i:08}") != skip)
        .filter(|&i| b.get_bytes(&format!("k{i:08}")).ok() != Some(value(i)))
        .count()
}

/// A transaction whose closure meets a damaged page, ignores the error and goes on is not
/// committed: a change redb cut short may already have freed pages of the committed tree, and
/// a commit after it lost a whole leaf of objects the failed delete never touched (31 of 59
/// here, before the transaction refused to commit).
#[test]
fn a_transaction_that_met_a_damaged_page_is_never_committed() {
    if cfg!(debug_assertions) {
        return; // a debug build of redb refuses the damaged file at open (see above)
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.keystone");
    let index = damaged_branch(&path);
    let victim = format!("k{:08}", index - 3);
    {
        let db = Datastore::open(&path).unwrap();
        // The caller logs the failed delete and returns Ok: the commit refuses.
        let result = db.transaction(|tx| {
            let failed = tx.bucket("bkt")?.delete(&victim);
            assert!(matches!(failed, Err(Error::Corrupted { .. })), "{failed:?}");
            Ok::<_, Error>(())
        });
        assert!(matches!(result, Err(Error::Corrupted { .. })), "the transaction committed: {result:?}");
        // The caller goes on writing: the writes are refused, and the commit.
        let result = db.transaction(|tx| {
            let b = tx.bucket("bkt")?;
            assert!(b.delete(&victim).is_err());
            let next = b.put_bytes("zzz-unrelated", b"x");
            assert!(next.is_err(), "a broken transaction took a write: {next:?}");
            Ok::<_, Error>(())
        });
        assert!(result.is_err(), "the transaction committed: {result:?}");
        let b = db.bucket("bkt").unwrap();
        assert!(!b.exists("zzz-unrelated").unwrap());
        for i in 0..3000u32 {
            b.put_bytes(&format!("later/{i:05}"), [7u8; 60]).unwrap();
        }
    }
    assert_eq!(lost_below(&path, index, &victim), 0, "objects the failed delete never touched were lost");
}

/// The same with concurrent writers: the failing delete shares group commits with healthy
/// writes; nothing is lost.
#[test]
fn a_damaged_page_met_in_a_group_commit_loses_nothing() {
    if cfg!(debug_assertions) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.keystone");
    let index = damaged_branch(&path);
    let victim = format!("k{:08}", index - 3);
    {
        let db = Datastore::open(&path).unwrap();
        let b = db.bucket("bkt").unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let (b, victim) = (b.clone(), victim.clone());
                s.spawn(move || {
                    for i in 0..200u32 {
                        if t == 0 && i % 50 == 0 {
                            assert!(b.delete(&victim).is_err());
                        }
                        let _ = b.put_bytes(&format!("later/{t}/{i:05}"), [7u8; 60]);
                    }
                });
            }
        });
        let _ = db.remove_corrupt(None);
        for i in 0..3000u32 {
            b.put_bytes(&format!("more/{i:05}"), [7u8; 60]).unwrap();
        }
    }
    assert_eq!(lost_below(&path, index, &victim), 0);
}

/// A leaf whose entry offsets point past its page (redb slices the page at them without a
/// check): listing, head and get of the keys there report the damage instead of panicking in
/// the caller's thread (the slicing happens when a lent value is read, not only inside redb).
#[test]
fn an_entry_offset_past_its_page_is_an_error_for_lists_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.keystone");
    small_objects(&path, 3000);
    let mut file = std::fs::read(&path).unwrap();
    let needle = value(1500);
    let at = file.windows(needle.len()).position(|w| w == needle.as_slice()).unwrap();
    let mut page = at / PAGE * PAGE;
    while !is_leaf(&file[page..page + 2]) {
        page -= PAGE;
    }
    // redb 4's leaf: type, a reserved byte, the entry count (u16), each key's end offset
    // (u32), each value's end offset (u32), then keys and values.
    let entries = usize::from(u16::from_le_bytes([file[page + 2], file[page + 3]]));
    assert!(entries > 4);
    let value_end = page + 4 + 4 * entries + 4 * 3;
    file[value_end..value_end + 4].copy_from_slice(&0x00ff_0000u32.to_le_bytes());
    std::fs::write(&path, &file).unwrap();

    let db = Datastore::builder().read_only(true).open(&path).unwrap();
    let b = db.bucket("bkt").unwrap();
    let listed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        b.list_iter(keystone::ListOptions::default()).unwrap().collect::<keystone::Result<Vec<_>>>()
    }));
    let msg = is_corruption(listed.expect("listing a damaged leaf does not panic"));
    assert!(msg.contains("index is damaged"), "{msg}");
    // Every key of the leaf: a value, or the damage reported — never a panic.
    let reads = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut failed = 0;
        for i in 1400..1600u32 {
            let key = format!("k{i:08}");
            match (b.head(&key), b.get_bytes(&key)) {
                (Ok(_), Ok(v)) => assert_eq!(v, value(i)),
                (Err(Error::Corrupted { .. }), Err(Error::Corrupted { .. })) => failed += 1,
                other => panic!("{key}: {other:?}"),
            }
        }
        failed
    }));
    let failed = reads.expect("reads of a damaged leaf do not panic");
    assert!(failed >= 1, "the damaged entry is reported");
    assert!(!keystone::panic_is_caught(), "the guard is left set");
}
