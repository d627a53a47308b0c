//! Streaming in bounded memory: an object much larger than the memory the process may use
//! goes up from stdin and comes back to stdout, with the process's peak resident size read
//! from /proc while it is still running.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use common::{BIN, Env, wait_until_holds};

const OBJECT: usize = 160 * 1024 * 1024;
/// Far below the object size: the store's page cache (32 MiB) plus a few chunk buffers.
const PEAK_LIMIT_KIB: u64 = 100 * 1024;

/// Peak resident set size of a running process, in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn block(i: usize) -> Vec<u8> {
    (0..1024 * 1024).map(|j| ((i * 31 + j * 7) % 251) as u8).collect()
}

#[test]
fn put_and_get_of_a_large_object_stay_in_bounded_memory() {
    let env = Env::with_bucket();
    let mut put = Command::new(BIN)
        .args(["put", "-", "bkt/large"])
        .env("KEYSTONE_STORE", &env.store)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = put.stdin.take().unwrap();
    for i in 0..OBJECT / (1024 * 1024) {
        stdin.write_all(&block(i)).unwrap();
    }
    // Everything but what the pipe holds has been consumed; the process is still running.
    let peak = peak_rss_kib(put.id());
    drop(stdin);
    assert!(put.wait().unwrap().success());
    eprintln!("put of {OBJECT} bytes: peak resident {peak} KiB");
    assert!(peak < PEAK_LIMIT_KIB, "put of {OBJECT} bytes peaked at {peak} KiB");

    let mut get = Command::new(BIN)
        .args(["get", "bkt/large", "-"])
        .env("KEYSTONE_STORE", &env.store)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until_holds(&mut get, &env.store));
    let mut stdout = get.stdout.take().unwrap();
    let mut buf = vec![0u8; 1024 * 1024];
    for i in 0..OBJECT / (1024 * 1024) - 1 {
        stdout.read_exact(&mut buf).unwrap();
        assert!(buf == block(i), "block {i} differs");
    }
    let peak = peak_rss_kib(get.id());
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, block(OBJECT / (1024 * 1024) - 1));
    assert!(get.wait().unwrap().success());
    eprintln!("get of {OBJECT} bytes: peak resident {peak} KiB");
    assert!(peak < PEAK_LIMIT_KIB, "get of {OBJECT} bytes peaked at {peak} KiB");
}
