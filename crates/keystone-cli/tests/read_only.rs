//! Commands that only read open the store read-only: they leave the file as it was, never
//! turn a file into a store, run beside each other (and beside any read-only handle), and
//! recover a store that was not closed cleanly before reading it. `mb` checks a bucket name
//! before it creates a store file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Env;

/// A store with objects in it, closed.
fn filled() -> Env {
    let env = Env::with_bucket();
    env.write("a.txt", b"alpha");
    env.write("dir/b.txt", b"bravo");
    env.ok(&["put", "a.txt", "bkt/a.txt"]);
    env.ok(&["cp", "-r", "dir", "bkt/dir"]);
    env
}

#[test]
fn reading_commands_leave_the_store_file_as_it_was() {
    let env = filled();
    let before = std::fs::read(&env.store).unwrap();
    assert_eq!(env.ok(&["ls", "bkt"]), env.ok(&["ls", "bkt"]));
    assert_eq!(env.ok(&["cat", "bkt/a.txt"]), "alpha");
    env.ok(&["stat", "bkt/a.txt"]);
    env.ok(&["du"]);
    env.ok(&["verify"]);
    env.ok(&["get", "bkt/a.txt", "out.txt"]);
    env.ok(&["cp", "-r", "bkt/dir", "copied"]);
    assert_eq!(std::fs::read(env.path("copied/b.txt")).unwrap(), b"bravo");
    assert!(std::fs::read(&env.store).unwrap() == before, "a command that only reads changed the store");
}

#[test]
fn reading_commands_share_the_store_with_a_read_only_handle_and_writers_wait_for_it() {
    let env = filled();
    // This test process reads the store, as another `keystone ls` would.
    let reader = keystone::Datastore::builder().read_only(true).open(&env.store).unwrap();
    assert!(env.ok(&["ls", "bkt"]).contains("a.txt"));
    assert_eq!(env.ok(&["cat", "bkt/a.txt"]), "alpha");
    let e = env.fails(&["rm", "bkt/a.txt"], 1);
    assert!(e.contains("is in use by another process"), "{e}");
    drop(reader);
    env.ok(&["rm", "bkt/a.txt"]);
}

#[test]
fn a_file_that_is_not_a_store_stays_as_it_is() {
    let env = Env::new();
    std::fs::write(&env.store, b"").unwrap();
    for args in [&["ls"][..], &["ls", "bkt"], &["cat", "bkt/k"], &["du"], &["verify"], &["stat", "bkt/k"]] {
        let e = env.fails(args, 1);
        assert!(e.contains("cannot open store") && e.contains("not a Keystone store"), "{args:?}: {e}");
    }
    assert_eq!(std::fs::metadata(&env.store).unwrap().len(), 0, "an empty file was made a store");
}

#[test]
fn a_store_not_closed_cleanly_is_recovered_then_read() {
    let env = filled();
    // A copy taken while the store is open for writing is what a crash leaves behind.
    let crashed = env.path("crashed.redb");
    {
        let db = keystone::Datastore::open(&env.store).unwrap();
        db.bucket("bkt").unwrap().put_bytes("late.txt", b"written before the crash").unwrap();
        std::fs::copy(&env.store, &crashed).unwrap();
    }
    let e = keystone::Datastore::builder().read_only(true).open(&crashed).unwrap_err();
    assert!(matches!(e, keystone::Error::NeedsRecovery { .. }), "{e:?}");
    // Several readers meet at it: one recovers it, the others wait for it and read.
    let readers: Vec<_> =
        (0..6).map(|_| env.cmd(&["--store", crashed.to_str().unwrap(), "ls", "bkt"]).spawn_output()).collect();
    for reader in readers {
        let out = reader.join().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "a reader of the crashed store failed: {stderr}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("late.txt"));
    }
    assert_eq!(env.ok(&["--store", crashed.to_str().unwrap(), "cat", "bkt/late.txt"]), "written before the crash");
}

trait SpawnOutput {
    /// Runs the command on a thread of its own; joining gives its output.
    fn spawn_output(self) -> std::thread::JoinHandle<std::process::Output>;
}

impl SpawnOutput for assert_cmd::Command {
    fn spawn_output(mut self) -> std::thread::JoinHandle<std::process::Output> {
        std::thread::spawn(move || self.output().unwrap())
    }
}

#[test]
fn mb_with_an_invalid_name_creates_no_store() {
    let env = Env::new();
    let e = env.fails(&["mb", "Bad_Name"], 1);
    assert!(e.contains("invalid bucket name \"Bad_Name\""), "{e}");
    assert!(!env.store.exists(), "a refused bucket name created the store file");
    env.ok(&["mb", "good-name"]);
    assert!(env.store.exists());
}
