//! Real process death: the `keystone-torture loop` parent starts the worker process (a seeded
//! workload of puts of 0 B to 64 MiB, overwrites, deletes, copies, multi-bucket transactions,
//! streaming and multipart uploads, with GC running alongside), kills it with SIGKILL at a
//! random moment, reopens the store and checks it against every acknowledged operation.
//! `CRASH_LOOP_KILLS=N` (default 50) sets the number of kills, shared by two loops that run
//! side by side on stores of their own (seeds `CRASH_LOOP_SEED` and the one after, default
//! 42): each loop waits on its worker most of the time, so two keep both cores busy.
//! `scripts/crash-loop N` runs a release build for long runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn acknowledged_operations_survive_sigkill() {
    let kills: u64 = std::env::var("CRASH_LOOP_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let seed: u64 = std::env::var("CRASH_LOOP_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(42);
    let loops: Vec<_> = [(seed, kills.div_ceil(2)), (seed + 1, kills / 2)]
        .into_iter()
        .filter(|&(_, n)| n > 0)
        .map(|(seed, n)| {
            let child = Command::new(env!("CARGO_BIN_EXE_keystone-torture"))
                .args(["loop", "--count", &n.to_string(), "--seed", &seed.to_string(), "--max-delay-ms", "1000"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (seed, n, child)
        })
        .collect();
    for (seed, n, child) in loops {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        println!("seed {seed}:\n{stdout}");
        assert!(
            out.status.success(),
            "crash loop (seed {seed}) failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(&format!("kills: {n},")), "{stdout}");
    }
}
