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
fn a_file_that_is_not_a_store_is_called_so_and_a_damaged_store_corrupted() {
    let env = Env::new();
    let text = env.write("notes.txt", b"just some text, long enough to fill a header of redb's\n");
    let random = env.write("random.bin", &common::bytes(100_000, 3));
    env.write("f.txt", b"x");
    for file in [&text, &random] {
        let before = std::fs::read(file).unwrap();
        for args in [&["ls"][..], &["ls", "bkt"], &["mb", "bkt"], &["put", "f.txt", "bkt/k"]] {
            let mut all = vec!["--store", file.to_str().unwrap()];
            all.extend_from_slice(args);
            let e = env.fails(&all, 1);
            let want =
                format!("cannot open store {}: it is not a Keystone store (not a redb database)", file.display());
            assert!(e.contains(&want) && !e.contains("corrupted"), "{args:?}: {e}");
        }
        assert!(std::fs::read(file).unwrap() == before, "{} was changed", file.display());
    }
    // A real store whose first bytes (redb's magic number) are damaged is still a damaged
    // store: redb calls it "not a redb database", and "not a store" could get it deleted.
    let env = filled();
    let mut file = std::fs::read(&env.store).unwrap();
    file[..9].copy_from_slice(b"overwrite");
    std::fs::write(&env.store, file).unwrap();
    for args in [&["ls", "bkt"][..], &["put", "a.txt", "bkt/k"]] {
        let e = env.fails(args, 1);
        assert!(e.contains("corrupted data") && e.contains("first bytes are damaged"), "{args:?}: {e}");
        assert!(!e.contains("is not a Keystone store"), "{args:?}: {e}");
    }
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

/// The puts a crash kept only in the journal are replayed by the first command, which says so
/// once (on standard error: standard output stays the listing).
#[test]
fn a_store_recovered_from_its_journal_says_so_once() {
    let env = filled();
    let journal = keystone::Datastore::journal_path(&env.store);
    let (early, records) = {
        let db = keystone::Datastore::open(&env.store).unwrap();
        // The file as a crash could leave it: every durable put after this only in the journal.
        let early = std::fs::read(&env.store).unwrap();
        let b = db.bucket("bkt").unwrap();
        for k in ["late/1", "late/2", "late/3"] {
            b.put_bytes(k, k.as_bytes()).unwrap();
        }
        (early, std::fs::read(&journal).unwrap())
    };
    // Written in place (the same file, so the journal still names it).
    std::fs::write(&env.store, &early).unwrap();
    std::fs::write(&journal, &records).unwrap();
    let out = env.cmd(&["ls", "bkt/late/"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "keystone: store {} was not closed cleanly; replayed 3 records of its journal (its last durable commits)",
            env.store.display()
        )
    );
    let listed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(listed.lines().count(), 3, "{listed}");
    assert!(!journal.exists(), "the recovering open closed cleanly");
    // Recovered: said once.
    assert_eq!(env.ok(&["ls", "bkt/late/"]), listed);
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

#[test]
fn writing_commands_do_not_make_an_empty_file_a_store() {
    let env = Env::new();
    std::fs::write(&env.store, b"").unwrap();
    env.write("f.txt", b"x");
    for args in [&["put", "f.txt", "bkt/k"][..], &["rm", "bkt/k"], &["gc"], &["compact"], &["rb", "bkt"]] {
        let e = env.fails(args, 1);
        assert!(e.contains("an empty file is not a Keystone store"), "{args:?}: {e}");
    }
    assert_eq!(std::fs::metadata(&env.store).unwrap().len(), 0, "an empty file was made a store");
    env.ok(&["mb", "bkt"]);
    env.ok(&["put", "f.txt", "bkt/k"]);
}

#[test]
fn a_damaged_index_page_is_an_error_not_a_crash_and_the_store_still_opens() {
    let env = Env::with_bucket();
    let big = common::bytes(3_000_000, 7);
    env.write("big.bin", &big);
    env.write("small.txt", b"small");
    env.ok(&["put", "big.bin", "bkt/big.bin"]);
    env.ok(&["put", "small.txt", "bkt/small.txt"]);
    // The type byte of the B-tree leaf page holding the big object's first chunk.
    let mut file = std::fs::read(&env.store).unwrap();
    let at = file.windows(64).position(|w| w == &big[..64]).expect("the chunk is in the file");
    let mut page = at / 4096 * 4096;
    // A leaf page begins with its type, 1, then a reserved byte (0xff in a debug build of redb).
    while !(file[page] == 1 && (file[page + 1] == 0 || file[page + 1] == 0xff)) {
        page -= 4096;
    }
    file[page] = 0xff;
    std::fs::write(&env.store, file).unwrap();

    let e = env.fails(&["cat", "bkt/big.bin"], 1);
    assert!(e.contains("index is damaged") && !e.contains("keystone: internal error"), "{e}");

    // verify names the object on the damaged page (on stdout) and fails.
    let out = env.cmd(&["verify"]).output().unwrap();
    let (stdout, e) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{e}");
    assert!(stdout.starts_with("CORRUPT  bkt/big.bin: ") && stdout.contains("index is damaged"), "{stdout}");
    assert!(e.contains("1 object corrupt") && !e.contains("keystone: internal error"), "{e}");
    for args in [&["verify", "--remove-corrupt"][..], &["rm", "bkt/big.bin"], &["compact"]] {
        let out = env.cmd(args).output().unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {e}");
        assert!(!e.contains("keystone: internal error") && !e.contains("panicked"), "{args:?}: {e}");
    }
    // None of them left the store to a recovery that would refuse it whole.
    assert_eq!(env.ok(&["cat", "bkt/small.txt"]), "small");
    if cfg!(debug_assertions) {
        // A debug build of redb validates every page when it opens a file for writing: the
        // writing commands fail there, cleanly, before they start.
        let e = env.fails(&["put", "small.txt", "bkt/after.txt"], 1);
        assert!(e.contains("index is damaged") && !e.contains("keystone: internal error"), "{e}");
    } else {
        env.ok(&["put", "small.txt", "bkt/after.txt"]);
    }
}
