//! Multi-process: while one process (the `keystone-torture hold` helper) has a store open, a
//! second process opening the same file gets `Error::AlreadyOpen` naming the file, and the
//! first keeps working; once it exits, the file opens and holds what the first wrote.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Lines, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use keystone::{Datastore, Error};

/// The `keystone-torture hold` helper with the store at `path` open, once it says READY: the
/// process, its input and its output's lines.
fn hold(path: &std::path::Path) -> (Child, ChildStdin, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keystone-torture"))
        .args(["hold", "--path"])
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "READY");
    (child, stdin, lines)
}

#[test]
fn second_process_gets_already_open_and_the_first_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.keystone");
    let (mut child, mut stdin, mut lines) = hold(&path);
    let mut ask = |cmd: &str| {
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
        lines.next().unwrap().unwrap()
    };
    assert_eq!(ask("put before"), "OK");

    // This test process is the second one.
    match Datastore::open(&path) {
        Err(e @ Error::AlreadyOpen { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("shared.keystone") && msg.contains("already open"), "unclear error: {msg}");
        }
        other => panic!("second process: expected AlreadyOpen, got {other:?}"),
    }
    // Twice: a failed open leaves nothing behind that would change the answer.
    assert!(matches!(Datastore::open(&path), Err(Error::AlreadyOpen { .. })));

    // The first process keeps reading and writing.
    assert_eq!(ask("put after"), "OK");
    assert_eq!(ask("get before"), "OK");
    assert_eq!(ask("get after"), "OK");
    drop(stdin); // the helper exits at end of input
    assert!(child.wait().unwrap().success());

    let db = Datastore::open(&path).unwrap();
    let b = db.bucket("held").unwrap();
    assert_eq!(b.get_bytes("before").unwrap(), b"before");
    assert_eq!(b.get_bytes("after").unwrap(), b"after");
}

/// A writer killed with acknowledged puts in its redo journal: a read-only open refuses the
/// store (its file alone is not the store), and the next writable open replays the journal —
/// even over a store file that lost every write since the journal took over (put back as it
/// was then, in place, as a power loss could leave it) — and removes the journal when closed.
/// A writable open refused while the writer lived (`AlreadyOpen`) leaves its journal alone, and
/// an open with `Builder::journal(false)` replays it too.
#[cfg(unix)]
#[test]
fn a_killed_writers_journal_is_replayed_by_the_next_writable_open() {
    for journal_on_reopen in [true, false] {
        killed_writer(journal_on_reopen);
    }
}

#[cfg(unix)]
fn killed_writer(journal_on_reopen: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.keystone");
    let journal = dir.path().join("killed.keystone-journal");
    let (mut child, mut stdin, mut lines) = hold(&path);
    assert!(journal.exists(), "an open store has its journal beside it");
    // The store file as the helper left it at READY: its last checkpoint, and the bucket's
    // creation after it (a crash may keep any part of what was written since a checkpoint).
    let early = std::fs::read(&path).unwrap();
    let mut put = |i: usize| {
        writeln!(stdin, "put k{i:02}").unwrap();
        stdin.flush().unwrap();
        assert_eq!(lines.next().unwrap().unwrap(), "OK");
    };
    (0..25).for_each(&mut put);
    // A second writer is refused before it touches the journal (with or without one of its own).
    for on in [true, false] {
        assert!(matches!(Datastore::builder().journal(on).open(&path), Err(Error::AlreadyOpen { .. })));
    }
    assert!(journal.exists(), "a refused open left the live writer's journal");
    (25..50).for_each(&mut put);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(std::fs::metadata(&journal).unwrap().len() > 4096, "the puts are in the journal");

    match Datastore::builder().read_only(true).open(&path) {
        Err(Error::NeedsRecovery { path: p }) => assert!(p.contains("killed.keystone"), "{p}"),
        other => panic!("read-only open of a store with a journal to replay: {other:?}"),
    }
    // Written in place: the same file, so the journal still names it.
    std::fs::write(&path, &early).unwrap();
    let db = Datastore::builder().journal(journal_on_reopen).open(&path).unwrap();
    // One record per durable commit since READY (none grew the file): the bucket's creation
    // and the 50 puts.
    assert_eq!(db.journal_records_replayed(), 51, "journal on reopen: {journal_on_reopen}");
    let b = db.bucket("held").unwrap();
    for i in 0..50 {
        let key = format!("k{i:02}");
        assert_eq!(b.get_bytes(&key).unwrap(), key.as_bytes(), "{key} lost (journal on reopen: {journal_on_reopen})");
    }
    drop(b);
    drop(db);
    assert!(!journal.exists(), "a clean close removes the journal");
    assert_eq!(Datastore::open(&path).unwrap().journal_records_replayed(), 0, "closed cleanly: nothing to replay");
    let db = Datastore::builder().read_only(true).open(&path).unwrap();
    assert_eq!(db.bucket("held").unwrap().list(&keystone::ListOptions::default()).unwrap().objects.len(), 50);
}
