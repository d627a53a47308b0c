//! Helpers shared by the CLI tests: a temporary directory with a store, and commands run in it.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tempfile::TempDir;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_keystone");

/// A scratch directory holding `store.redb`; commands run with it as the current directory
/// and `KEYSTONE_STORE` pointing at the store.
pub struct Env {
    pub dir: TempDir,
    pub store: PathBuf,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store.redb");
        Env { dir, store }
    }

    /// A store with the bucket `bkt`.
    pub fn with_bucket() -> Self {
        let env = Env::new();
        env.ok(&["mb", "bkt"]);
        env
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `keystone ARGS` in the scratch directory.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args).current_dir(self.dir.path()).env("KEYSTONE_STORE", &self.store).env("TZ", "UTC");
        c
    }

    /// Runs `keystone ARGS`, asserts success and an empty stderr, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "keystone {args:?} failed: {stderr}");
        assert!(stderr.is_empty(), "keystone {args:?} wrote to stderr: {stderr}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `keystone ARGS`, asserts exit code `code` and nothing on stdout, returns stderr
    /// (checked to be a single line).
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.cmd(args).output().unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(code), "keystone {args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "keystone {args:?} wrote to stdout: {}", String::from_utf8_lossy(&out.stdout));
        assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "{stderr}");
        if code == 1 {
            assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
            assert!(stderr.starts_with("keystone: "), "{stderr}");
        }
        stderr
    }

    pub fn write(&self, rel: &str, data: &[u8]) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        p
    }
}

/// Waits (at most ~10 s) until process `child` has the file `store` open, looking at its file
/// descriptors rather than opening the store (which would race with it). False if it never did
/// or exited first.
pub fn wait_until_holds(child: &mut std::process::Child, store: &Path) -> bool {
    let store = store.canonicalize().unwrap();
    let fds = format!("/proc/{}/fd", child.id());
    for _ in 0..400 {
        let holds = std::fs::read_dir(&fds)
            .is_ok_and(|mut d| d.any(|fd| fd.is_ok_and(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == store))));
        if holds {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    false
}

/// Deterministic pseudo-random bytes (xorshift), different for each seed.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Every file under `root` (relative path, bytes), sorted.
pub fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Runs `keystone ARGS` with its standard output a pipe whose reading end is already closed
/// (as in `keystone ... | head -n0`, or a reader that has gone away), returns (exit code, stderr).
pub fn run_with_stdout_closed(env: &Env, args: &[&str]) -> (Option<i32>, String) {
    let mut child = std::process::Command::new(BIN);
    child.args(args).current_dir(env.dir.path()).env("KEYSTONE_STORE", &env.store);
    let mut child = child.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take()); // the reader is gone before keystone writes its first line
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}
