//! `keystone put -`: an upload from standard input, interrupted by Ctrl-C or fed the store
//! itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;

use common::{Env, bytes};

/// Ctrl-C on `producer | keystone put - BUCKET/KEY` stores nothing and exits 130 (docs/cli.md),
/// also when the read keystone was blocked in returns the end of input: the terminal's SIGINT
/// ends the producer too, and signal-hook installs its handler with SA_RESTART, so the read is
/// restarted and sees EOF. A small object was stored truncated, exit 0, when `Stoppable`
/// checked the flag only before a read.
#[cfg(unix)]
#[test]
fn ctrl_c_on_a_streaming_put_stores_nothing() {
    use std::io::Write as _;
    let env = Env::with_bucket();
    let mut c = std::process::Command::new(common::BIN);
    c.args(["put", "-", "bkt/dump.sql"]).current_dir(env.dir.path()).env("KEYSTONE_STORE", &env.store);
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"first part of a dump\n").unwrap();
    assert!(common::wait_until_holds(&mut child, &env.store));
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Ctrl-C: keystone gets SIGINT, and the producer (killed by the same SIGINT) closes the pipe.
    let st = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(st.success());
    std::thread::sleep(std::time::Duration::from_millis(200));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stat = env.cmd(&["stat", "bkt/dump.sql"]).output().unwrap();
    eprintln!(
        "put exit {:?}, stdout {:?}, stderr {:?}; stat exit {:?}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        stat.status.code()
    );
    assert_eq!(out.status.code(), Some(130), "an interrupted put did not exit 130");
    assert!(!stat.status.success(), "the interrupted (truncated) upload was stored");
}

/// `keystone put - BUCKET/KEY < STORE` is refused as `put STORE` is ("is the store itself"):
/// uploading the store into itself, it grew while it was read and the command did not end
/// (34 MB store -> 8 GiB in 60 s, until the disk is full).
#[cfg(unix)]
#[test]
fn put_from_stdin_refuses_the_store_itself() {
    let env = Env::with_bucket();
    env.write("r", &bytes(3_000_000, 7));
    env.ok(&["put", "r", "bkt/r"]);
    let mut c = std::process::Command::new(common::BIN);
    c.args(["put", "-", "bkt/self"]).current_dir(env.dir.path()).env("KEYSTONE_STORE", &env.store);
    // Standard input is the store file itself, as with `< store.redb`.
    let stdin = std::fs::File::open(&env.store).unwrap();
    let mut child = c.stdin(stdin).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut code = None;
    for _ in 0..30 {
        if let Some(st) = child.try_wait().unwrap() {
            code = st.code();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if code.is_none() {
        child.kill().unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let grown = std::fs::metadata(&env.store).unwrap().len();
    eprintln!("exit {code:?} (None: still running after 3 s, killed), stderr {stderr:?}, store now {grown} bytes");
    assert!(stderr.contains("is the store itself"), "the store was streamed into itself");
}
