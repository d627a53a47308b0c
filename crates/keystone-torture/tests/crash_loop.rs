//! Real process death: the `keystone-torture loop` parent starts the worker process (a seeded
//! workload of puts of 0 B to 64 MiB, overwrites, deletes, copies, multi-bucket transactions,
//! streaming and multipart uploads, with GC running alongside), kills it with SIGKILL at a
//! random moment, reopens the store and checks it against every acknowledged operation.
//! `CRASH_LOOP_KILLS=N` (default 50) sets the number of kills; `scripts/crash-loop N` runs
//! a release build for long runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn acknowledged_operations_survive_sigkill() {
    let kills: u64 = std::env::var("CRASH_LOOP_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let seed: u64 = std::env::var("CRASH_LOOP_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(42);
    let out = Command::new(env!("CARGO_BIN_EXE_keystone-torture"))
        .args(["loop", "--count", &kills.to_string(), "--seed", &seed.to_string(), "--max-delay-ms", "1000"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "crash loop failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("kills: {kills},")), "{stdout}");
}
