//! Multi-process: while one process (the `keystone-torture hold` helper) has a store open, a
//! second process opening the same file gets `Error::AlreadyOpen` naming the file, and the
//! first keeps working; once it exits, the file opens and holds what the first wrote.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use keystone::{Datastore, Error};

#[test]
fn second_process_gets_already_open_and_the_first_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.keystone");
    let mut child = Command::new(env!("CARGO_BIN_EXE_keystone-torture"))
        .args(["hold", "--path"])
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "READY");
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
