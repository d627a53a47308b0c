#![allow(clippy::unwrap_used)]

use redb::StorageBackend;

use super::format::{HEADER_LEN as HEADER_BYTES, RECORD_HEAD, START};
use super::*;
use crate::storage::test_disk::Logged;

const A: Identity = [1; 16];
const B: Identity = [2; 16];

/// A store of `len` bytes of 7 and an empty journal, opened and armed.
fn opened(len: usize) -> (Journaled<Logged, Logged>, Logged, Logged) {
    let (store, journal) = (Logged::with(vec![7; len]), Logged::default());
    let (j, found, arm) = Journaled::open(store.clone(), journal.clone(), A, None).unwrap();
    assert_eq!(found.records, 0);
    arm.arm();
    (j, store, journal)
}

/// Three commits of one write each, journaled: returns the journal.
fn three_records() -> Logged {
    let (j, _, journal) = opened(10_000);
    for (i, at) in [100u64, 5_000, 9_000].into_iter().enumerate() {
        j.write(at, &[i as u8 + 1; 50]).unwrap();
        j.sync_data().unwrap();
    }
    journal
}

#[test]
fn records_replay_into_a_store_that_lost_the_writes() {
    let journal = three_records();
    let store = Logged::with(vec![7; 10_000]);
    let found = replay(&store, &journal, &A).unwrap();
    assert_eq!(found.records, 3);
    let c = store.content();
    assert_eq!((c[100], c[5_049], c[9_000], c[99], c[150]), (1, 2, 3, 7, 7));
}

#[test]
fn replay_stops_at_the_first_damaged_record() {
    let journal = three_records();
    // The second record's first body byte (each record: head, 13-byte write op, 50 bytes,
    // 9-byte END, CRC).
    let rec = (RECORD_HEAD + 13 + 50 + 9 + 4) as u64;
    journal.flip((START + rec) as usize + RECORD_HEAD + 20);
    let store = Logged::with(vec![7; 10_000]);
    assert_eq!(replay(&store, &journal, &A).unwrap().records, 1);
    let c = store.content();
    assert_eq!((c[100], c[5_000], c[9_000]), (1, 7, 7), "nothing past the damaged record");
}

#[test]
fn a_journal_holding_records_of_another_file_is_refused_not_emptied() {
    let journal = three_records();
    let before = journal.content();
    let store = Logged::with(vec![7; 10_000]);
    let e = replay(&store, &journal, &B).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("another store file"), "{e}");
    assert!(Journaled::open(Logged::with(vec![7; 10_000]), journal.clone(), B, None).is_err());
    assert!(store.content().iter().all(|b| *b == 7), "nothing replayed");
    assert_eq!(journal.content(), before, "the journal is left as it was");
    // Its own store still replays it.
    assert_eq!(replay(&Logged::with(vec![7; 10_000]), &journal, &A).unwrap().records, 3);
}

#[test]
fn an_empty_journal_of_another_file_is_taken_over() {
    let (j, _, journal) = opened(10_000);
    j.write(100, &[1; 50]).unwrap();
    j.sync_data().unwrap();
    j.close().unwrap(); // emptied: a header, then records older than it
    let (_j, found, _) = Journaled::open(Logged::with(vec![7; 10_000]), journal.clone(), B, None).unwrap();
    assert_eq!((found.records, found.foreign), (0, true));
    assert_eq!(journal.len().unwrap(), HEADER_BYTES as u64, "cut to its new header");
}

#[test]
fn a_file_that_is_not_a_journal_is_refused_unless_shorter_than_a_header_page() {
    let not_ours = Logged::with(vec![b'x'; 10_000]);
    let e = Journaled::open(Logged::with(vec![7; 10_000]), not_ours.clone(), A, None).unwrap_err();
    assert!(e.to_string().contains("not a Keystone journal"), "{e}");
    assert_eq!(not_ours.content(), vec![b'x'; 10_000]);
    // A header cut short by a crash while a journal was being made: taken over.
    let cut = Logged::with(vec![b'K'; 20]);
    assert!(Journaled::open(Logged::with(vec![7; 10_000]), cut, A, None).is_ok());
}

#[test]
fn once_disarmed_every_sync_checkpoints() {
    let (store, journal) = (Logged::with(vec![7; 10_000]), Logged::default());
    let (j, _, arm) = Journaled::open(store, journal.clone(), A, None).unwrap();
    arm.arm();
    j.write(100, &[1; 50]).unwrap();
    j.sync_data().unwrap();
    let journaled = journal.len().unwrap();
    assert!(journaled > START);
    // Copies taken while armed, synced after disarming: a checkpoint, no record.
    j.write(200, &[2; 50]).unwrap();
    arm.disarm();
    j.sync_data().unwrap();
    assert_eq!(replay(&Logged::with(vec![7; 10_000]), &journal, &A).unwrap().records, 0, "emptied");
}

#[test]
fn after_a_checkpoint_old_records_are_never_replayed() {
    let (j, store, journal) = opened(10_000);
    j.write(100, &[1; 50]).unwrap();
    j.sync_data().unwrap();
    // A commit too large for a record: the store is synced and the journal emptied.
    j.write(0, &vec![2; RECORD_MAX]).unwrap();
    j.sync_data().unwrap();
    assert_eq!(replay(&Logged::with(vec![7; 10_000]), &journal, &A).unwrap().records, 0);
    // The next record overwrites the first: only it replays.
    j.write(200, &[3; 10]).unwrap();
    j.sync_data().unwrap();
    let fresh = Logged::with(store.content());
    fresh.write(200, &[9; 10]).unwrap();
    assert_eq!(replay(&fresh, &journal, &A).unwrap().records, 1);
    assert_eq!(fresh.content()[200..210], [3; 10]);
}

#[test]
fn until_armed_every_sync_checkpoints() {
    let (store, journal) = (Logged::with(vec![7; 10_000]), Logged::default());
    let (j, _, arm) = Journaled::open(store, journal.clone(), A, None).unwrap();
    j.write(100, &[1; 50]).unwrap();
    j.sync_data().unwrap();
    assert_eq!(journal.len().unwrap(), HEADER_BYTES as u64, "no record before arming");
    j.write(200, &[2; 50]).unwrap();
    arm.arm();
    // Writes made before arming are not in the copies: this sync checkpoints too.
    j.sync_data().unwrap();
    assert_eq!(journal.len().unwrap(), HEADER_BYTES as u64);
    j.write(300, &[3; 50]).unwrap();
    j.sync_data().unwrap();
    assert!(journal.len().unwrap() > START, "armed, a small commit is a record");
}

#[test]
fn resizes_replay_in_order_with_the_writes() {
    let (j, store, journal) = opened(10_000);
    j.set_len(20_000).unwrap();
    j.write(15_000, &[4; 100]).unwrap();
    j.set_len(12_000).unwrap();
    j.set_len(16_000).unwrap();
    j.sync_data().unwrap();
    let fresh = Logged::with(vec![7; 10_000]);
    replay(&fresh, &journal, &A).unwrap();
    assert_eq!(fresh.content(), store.content());
    assert_eq!(fresh.content().len(), 16_000);
    assert!(fresh.content()[12_000..].iter().all(|b| *b == 0), "cut, then grown: zeros");
}

#[test]
fn after_a_failed_write_nothing_is_journaled_and_the_journal_is_kept() {
    let (j, _, journal) = opened(10_000);
    j.write(100, &[1; 50]).unwrap();
    j.sync_data().unwrap();
    let before = journal.content();
    journal.fail_next_write_after(3);
    j.write(200, &[2; 50]).unwrap();
    assert!(j.sync_data().is_err());
    j.write(300, &[3; 50]).unwrap();
    assert!(j.sync_data().is_err(), "latched");
    j.close().unwrap();
    let after = journal.content();
    assert_eq!(after[..HEADER_BYTES], before[..HEADER_BYTES], "never emptied");
    assert_eq!(replay(&Logged::with(vec![7; 10_000]), &journal, &A).unwrap().records, 1);
}

#[test]
fn a_clean_close_empties_the_journal() {
    let (j, _, journal) = opened(10_000);
    j.write(100, &[1; 50]).unwrap();
    j.sync_data().unwrap();
    j.close().unwrap();
    assert_eq!(replay(&Logged::with(vec![7; 10_000]), &journal, &A).unwrap().records, 0);
}

#[test]
fn a_store_file_has_a_journal_only_while_open_and_only_if_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.keystone");
    let journal = journal_path(&path);
    assert_eq!(journal, dir.path().canonicalize().unwrap().join("s.keystone-journal"));
    let db = crate::Datastore::open(&path).unwrap();
    db.create_bucket("bkt").unwrap();
    assert!(journal.exists());
    drop(db);
    assert!(!journal.exists());
    let db = crate::Datastore::builder().journal(false).open(&path).unwrap();
    db.bucket("bkt").unwrap().put_bytes("k", b"v").unwrap();
    assert!(!journal.exists());
    drop(db);
    // A name too long to take the suffix gets a shortened one.
    let long = dir.path().join("n".repeat(250));
    let name = journal_path(&long).file_name().unwrap().len();
    assert!(name <= 255 && journal_path(&long) != journal_path(&dir.path().join("n".repeat(249))), "{name}");
}

#[test]
fn an_empty_store_file_with_its_journal_holding_records_is_refused() {
    let journal = three_records();
    let e = Journaled::open(Logged::default(), journal.clone(), A, None).unwrap_err();
    assert!(e.to_string().contains("which is empty"), "{e}");
    // A journal of nothing, or of another file without records, is taken over by a new store.
    let (j, _, _) = opened(10_000);
    j.close().unwrap();
    assert!(Journaled::open(Logged::default(), Logged::default(), A, None).is_ok());
}

#[test]
fn a_copy_of_an_open_store_and_its_journal_is_refused_until_the_journal_is_moved() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.keystone");
    let db = crate::Datastore::open(&path).unwrap();
    let b = db.create_bucket("bkt").unwrap();
    for i in 0..20 {
        b.put_bytes(&format!("k{i}"), b"v").unwrap();
    }
    // Taken while it is open: the journal holds the puts, and names the original file.
    let copy = dir.path().join("copy.keystone");
    std::fs::copy(&path, &copy).unwrap();
    std::fs::copy(journal_path(&path), journal_path(&copy)).unwrap();
    drop((b, db));
    let e = crate::Datastore::open(&copy).unwrap_err();
    assert!(e.to_string().contains("another store file"), "{e}");
    let e = crate::Datastore::builder().read_only(true).open(&copy).unwrap_err();
    assert!(matches!(e, crate::Error::NeedsRecovery { .. }), "{e:?}");
    // Moved away, the copy opens as the file was when copied (every put was written to it).
    std::fs::rename(journal_path(&copy), dir.path().join("moved")).unwrap();
    let db = crate::Datastore::open(&copy).unwrap();
    assert_eq!(db.bucket("bkt").unwrap().get_bytes("k19").unwrap(), b"v");
}
