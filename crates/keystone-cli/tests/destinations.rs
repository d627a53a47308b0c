//! Where downloads write: into devices and FIFOs rather than over them, over existing files
//! without loosening them, through symbolic links, into missing directories; never into the
//! store, whether named or as standard output. And sources: a mistyped local name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::Stdio;

use common::{BIN, Env};

/// A FIFO is written into, as `cp` writes into it (the download replaced it with a regular
/// file and its reader got nothing). `/dev/null` and other devices take the same path.
#[test]
fn a_download_to_a_fifo_writes_into_it() {
    let env = Env::with_bucket();
    env.write("src", b"through the pipe");
    env.ok(&["put", "src", "bkt/k"]);
    let fifo = env.path("pipe");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    // The reader waits in `open` until a writer comes; with the FIFO replaced none would, so
    // its answer is awaited with a timeout (the thread is left behind then).
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            let read = std::fs::File::open(&fifo).and_then(|mut f| f.read_to_end(&mut got));
            let _ = tx.send(read.map(|_| got));
        });
    }
    let out = env.cmd(&["get", "bkt/k", "pipe"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO was replaced");
    let got = rx.recv_timeout(std::time::Duration::from_mins(1)).expect("the FIFO's reader got nothing").unwrap();
    assert_eq!(got, b"through the pipe");
}

/// A file downloaded over keeps its permissions: a private file stays private (it became
/// 0644), a set-user-id bit is not carried over to the new content.
#[test]
fn a_file_downloaded_over_keeps_its_permissions() {
    let env = Env::with_bucket();
    env.write("src", b"new secret");
    env.ok(&["put", "src", "bkt/k"]);
    let dest = env.write("private", b"old secret");
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.ok(&["get", "bkt/k", "private"]);
    assert_eq!(std::fs::read(&dest).unwrap(), b"new secret");
    assert_eq!(std::fs::metadata(&dest).unwrap().permissions().mode() & 0o7777, 0o600);
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o4750)).unwrap();
    env.ok(&["cp", "bkt/k", "./private"]);
    assert_eq!(std::fs::metadata(&dest).unwrap().permissions().mode() & 0o7777, 0o750);
}

/// A symbolic link to a file is written through: the file it names gets the object, the link
/// stays a link.
#[test]
fn a_download_through_a_symbolic_link_keeps_the_link() {
    let env = Env::with_bucket();
    env.write("src", b"linked");
    env.ok(&["put", "src", "bkt/k"]);
    let target = env.write("real/file", b"old");
    std::os::unix::fs::symlink(&target, env.path("link")).unwrap();
    env.ok(&["get", "bkt/k", "link"]);
    assert!(std::fs::symlink_metadata(env.path("link")).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), b"linked");
}

/// `get` into a directory that does not exist creates it, as `cp` does (it failed naming its
/// own temporary file).
#[test]
fn get_creates_the_missing_directories_of_its_destination() {
    let env = Env::with_bucket();
    env.write("src", b"deep");
    env.ok(&["put", "src", "bkt/k"]);
    env.ok(&["get", "bkt/k", "a/b/c"]);
    assert_eq!(std::fs::read(env.path("a/b/c")).unwrap(), b"deep");
}

/// Standard output that is the store: `cat` and `get KEY -` refuse before writing (`cat b/k
/// >> STORE` wrote the object into the store, ruined it, and exited 0).
#[test]
fn standard_output_that_is_the_store_is_refused() {
    let env = Env::with_bucket();
    env.write("src", b"not into the store");
    env.ok(&["put", "src", "bkt/k"]);
    let before = std::fs::read(&env.store).unwrap();
    for args in [&["cat", "bkt/k"][..], &["get", "bkt/k", "-"]] {
        let store = std::fs::OpenOptions::new().append(true).open(&env.store).unwrap();
        let out = std::process::Command::new(BIN)
            .args(args)
            .current_dir(env.dir.path())
            .env("KEYSTONE_STORE", &env.store)
            .stdout(Stdio::from(store))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("standard output is the store itself"), "{stderr}");
        assert_eq!(std::fs::read(&env.store).unwrap(), before, "{args:?} wrote into the store");
    }
    assert_eq!(env.ok(&["cat", "bkt/k"]), "not into the store");
}

/// A source that is no local path and no bucket is named as both (a mistyped local file was
/// reported as a missing bucket).
#[test]
fn a_mistyped_local_source_is_named_as_such() {
    let env = Env::with_bucket();
    let e = env.fails(&["cp", "reprot.pdf", "bkt/"], 1);
    assert!(e.contains("\"reprot.pdf\" is neither a local file or directory nor a bucket"), "{e}");
    let e = env.fails(&["cp", "-r", "photos", "bkt/2024/"], 1);
    assert!(e.contains("\"photos\" is neither"), "{e}");
    // A store address whose bucket is missing is still a missing bucket.
    let e = env.fails(&["cp", "ks://nobucket/k", "here"], 1);
    assert!(e.contains("no such bucket"), "{e}");
}

/// A store path that is a FIFO, a directory or a device is refused at once (opening the FIFO
/// waited for a writer for ever).
#[test]
fn a_store_that_is_no_regular_file_is_refused() {
    let env = Env::new();
    assert!(std::process::Command::new("mkfifo").arg(env.path("fifo")).status().unwrap().success());
    std::fs::create_dir(env.path("dir")).unwrap();
    for (store, what) in [("fifo", "a FIFO"), ("dir", "a directory"), ("/dev/null", "a device")] {
        let mut cmd = env.cmd(&["--store", store, "ls"]);
        let out = cmd.timeout(std::time::Duration::from_mins(1)).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{store}: {stderr}");
        assert!(stderr.contains(&format!("{what}, not a file")), "{stderr}");
    }
}

/// `get KEY /dev/stdout` into a pipe: the name is written into (the pipe has no path to
/// resolve; following the link failed).
#[test]
fn get_to_dev_stdout_writes_into_the_pipe() {
    let env = Env::with_bucket();
    env.write("src", b"to the pipe");
    env.ok(&["put", "src", "bkt/k"]);
    let out = env.cmd(&["get", "-q", "bkt/k", "/dev/stdout"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"to the pipe");
}

/// In a tree download, a symbolic link or a FIFO where a key's file goes is not followed: the
/// link is replaced by the file (the file it named is left alone), and the FIFO is refused
/// (waiting on it stalled the copy), the rest copied.
#[test]
fn a_tree_download_does_not_follow_links_or_fifos_it_finds() {
    let env = Env::with_bucket();
    env.write("src/a", b"object a");
    env.write("src/b", b"object b");
    env.write("src/c", b"object c");
    env.ok(&["cp", "-r", "src", "bkt/t/"]);
    let outside = env.write("outside", b"not to be overwritten");
    std::fs::create_dir(env.path("dl")).unwrap();
    std::os::unix::fs::symlink(&outside, env.path("dl/a")).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(env.path("dl/b")).status().unwrap().success());
    let out = env.cmd(&["cp", "-r", "bkt/t/", "dl/"]).timeout(std::time::Duration::from_mins(1)).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("dl/b: it exists and is not a regular file"), "{stderr}");
    assert_eq!(std::fs::read(&outside).unwrap(), b"not to be overwritten");
    assert!(!std::fs::symlink_metadata(env.path("dl/a")).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read(env.path("dl/a")).unwrap(), b"object a");
    assert!(std::fs::metadata(env.path("dl/b")).unwrap().file_type().is_fifo());
    assert_eq!(std::fs::read(env.path("dl/c")).unwrap(), b"object c");
}
