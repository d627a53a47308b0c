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
