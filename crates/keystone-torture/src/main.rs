//! keystone-torture: the crash loop (a worker process killed with SIGKILL at random moments,
//! the store reopened and checked against every acknowledged operation) and a small helper
//! for multi-process tests.
//!
//! ```text
//! keystone-torture loop  --count N [--seed S] [--dir D] [--threads T] [--max-size BYTES]
//!                        [--max-delay-ms MS] [--fresh-every K]
//! keystone-torture worker --path P --seed S --run R [--threads T] [--max-size BYTES]
//! keystone-torture hold  --path P      (opens the store, then runs `put KEY` lines from stdin)
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keystone::Datastore;
use keystone_torture::workload::{self, BUCKETS, Generator, Loc, Val, WOp};

type Res<T> = Result<T, String>;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: Option<T>) -> Res<T> {
    match args.iter().position(|a| a == name) {
        Some(i) => {
            let v = args.get(i + 1).ok_or_else(|| format!("{name} needs a value"))?;
            v.parse().map_err(|_| format!("{name}: cannot parse {v:?}"))
        }
        None => default.ok_or_else(|| format!("missing {name}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("worker") => worker(&args),
        Some("loop") => crash_loop(&args),
        Some("hold") => hold(&args),
        _ => Err("usage: keystone-torture loop|worker|hold ... (see the source header)".into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keystone-torture: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the workload until killed (or until `--ops` per thread), printing `ACK <thread> <n>`
/// after the n-th operation of a thread is acknowledged.
fn worker(args: &[String]) -> Res<()> {
    let path: PathBuf = arg(args, "--path", None)?;
    let seed: u64 = arg(args, "--seed", None)?;
    let run: u32 = arg(args, "--run", None)?;
    let threads: u32 = arg(args, "--threads", Some(2))?;
    let max_size: u64 = arg(args, "--max-size", Some(64 * 1024 * 1024))?;
    let max_ops: u64 = arg(args, "--ops", Some(100_000))?;
    let db = Datastore::open(&path).map_err(|e| format!("open: {e}"))?;
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let stop = Arc::new(AtomicBool::new(false));
    let gc = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || -> Res<()> {
            while !stop.load(Ordering::Relaxed) {
                db.gc().map_err(|e| format!("gc: {e}"))?;
                std::thread::sleep(Duration::from_millis(15));
            }
            Ok(())
        })
    };
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (db, out) = (db.clone(), out.clone());
            std::thread::spawn(move || -> Res<()> {
                let mut g = Generator::new(seed, run, t, max_size);
                for n in 1..=max_ops {
                    let op = g.next_op();
                    workload::run(&db, &op).map_err(|e| format!("thread {t} op {n} {op:?}: {e}"))?;
                    let mut o = out.lock().map_err(|_| "stdout lock".to_owned())?;
                    writeln!(o, "ACK {t} {n}").and_then(|()| o.flush()).map_err(|e| format!("pipe: {e}"))?;
                }
                Ok(())
            })
        })
        .collect();
    let mut result = Ok(());
    for h in handles {
        let r = h.join().map_err(|_| "worker thread panicked".to_owned()).and_then(|r| r);
        if result.is_ok() {
            result = r;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let g = gc.join().map_err(|_| "gc thread panicked".to_owned()).and_then(|r| r);
    result.and(g)
}

#[derive(Debug, Default)]
struct Stats {
    kills: u64,
    acked_ops: u64,
    in_flight_applied: u64,
    in_flight_not_applied: u64,
    objects_checked: u64,
    worker_errors: u64,
}

/// The crash loop: start a worker, SIGKILL it at a random moment, reopen and check.
fn crash_loop(args: &[String]) -> Res<()> {
    let count: u64 = arg(args, "--count", None)?;
    let seed: u64 = arg(args, "--seed", Some(1))?;
    let threads: u32 = arg(args, "--threads", Some(2))?;
    let max_size: u64 = arg(args, "--max-size", Some(64 * 1024 * 1024))?;
    let max_delay: u64 = arg(args, "--max-delay-ms", Some(1500))?;
    let fresh_every: u64 = arg(args, "--fresh-every", Some(10))?;
    let tmp = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let dir: PathBuf = arg(args, "--dir", Some(tmp.path().to_path_buf()))?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("crash.keystone");
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut model: BTreeMap<Loc, Val> = BTreeMap::new();
    let mut stats = Stats::default();
    let mut run = 0u32;
    let started = Instant::now();
    for i in 0..count {
        if i % fresh_every.max(1) == 0 {
            let _ = std::fs::remove_file(&path);
            let db = Datastore::open(&path).map_err(|e| format!("create: {e}"))?;
            for b in BUCKETS {
                db.create_bucket(b).map_err(|e| format!("create bucket: {e}"))?;
            }
            model.clear();
        }
        run += 1;
        let wseed = seed.wrapping_mul(1_000_003).wrapping_add(i);
        let acks = run_and_kill(&exe, &path, wseed, run, threads, max_size, rng.u64(0..=max_delay), &mut stats)?;
        stats.kills += 1;
        check_after_crash(&path, wseed, run, threads, max_size, &acks, &mut model, &mut stats)
            .map_err(|e| format!("kill {i} (worker seed {wseed}, run {run}, store {}): {e}", path.display()))?;
        if (i + 1) % 10 == 0 || i + 1 == count {
            println!(
                "kills {} | acked ops {} | in-flight applied {} / not {} | objects checked {} | lost 0 | partial 0 | {:.0}s",
                stats.kills,
                stats.acked_ops,
                stats.in_flight_applied,
                stats.in_flight_not_applied,
                stats.objects_checked,
                started.elapsed().as_secs_f64()
            );
        }
    }
    println!("crash loop passed: {stats:?}");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_and_kill(
    exe: &Path,
    path: &Path,
    seed: u64,
    run: u32,
    threads: u32,
    max_size: u64,
    delay_ms: u64,
    stats: &mut Stats,
) -> Res<Vec<u64>> {
    let mut child = Command::new(exe)
        .args(["worker", "--path"])
        .arg(path)
        .args(["--seed", &seed.to_string(), "--run", &run.to_string(), "--threads", &threads.to_string()])
        .args(["--max-size", &max_size.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn worker: {e}"))?;
    let stdout = child.stdout.take().ok_or("no worker stdout")?;
    let reader = std::thread::spawn(move || {
        let mut acks = BTreeMap::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let mut w = line.split_whitespace();
            if let (Some("ACK"), Some(t), Some(n)) = (w.next(), w.next(), w.next())
                && let (Ok(t), Ok(n)) = (t.parse::<u32>(), n.parse::<u64>())
            {
                acks.insert(t, n);
            }
        }
        acks
    });
    let deadline = Instant::now() + Duration::from_millis(delay_ms);
    let mut exited = None;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().map_err(|e| format!("wait: {e}"))? {
            exited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if exited.is_none() {
        child.kill().map_err(|e| format!("kill: {e}"))?; // SIGKILL
    }
    let out = child.wait_with_output().map_err(|e| format!("wait: {e}"))?;
    let acks = reader.join().map_err(|_| "pipe reader panicked")?;
    if exited.is_some() && !out.status.success() {
        stats.worker_errors += 1;
        return Err(format!("worker failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok((0..threads).map(|t| acks.get(&t).copied().unwrap_or(0)).collect())
}

/// Reopens the store and checks it against the acknowledged operations.
#[allow(clippy::too_many_arguments)]
fn check_after_crash(
    path: &Path,
    seed: u64,
    run: u32,
    threads: u32,
    max_size: u64,
    acks: &[u64],
    model: &mut BTreeMap<Loc, Val>,
    stats: &mut Stats,
) -> Res<()> {
    let db = Datastore::open(path).map_err(|e| format!("reopen after kill: {e}"))?;
    let mut in_flight: Vec<WOp> = Vec::new();
    for t in 0..threads {
        let mut g = Generator::new(seed, run, t, max_size);
        for _ in 0..acks[t as usize] {
            g.next_op().apply(model);
        }
        stats.acked_ops += acks[t as usize];
        in_flight.push(g.next_op());
    }
    let c = workload::check_recovered(&db, model, &in_flight, &BUCKETS)?;
    stats.in_flight_applied += c.in_flight_applied;
    stats.in_flight_not_applied += c.in_flight_not_applied;
    stats.objects_checked += c.objects_checked;
    keystone_torture::check_clean(&db)
}

/// Holds the store open and runs `put KEY` commands from stdin, answering `OK` or `ERR ...`.
fn hold(args: &[String]) -> Res<()> {
    let path: PathBuf = arg(args, "--path", None)?;
    let db = Datastore::open(&path).map_err(|e| format!("open: {e}"))?;
    let bucket = match db.bucket("held") {
        Ok(b) => b,
        Err(_) => db.create_bucket("held").map_err(|e| format!("create bucket: {e}"))?,
    };
    let mut out = std::io::stdout();
    writeln!(out, "READY").map_err(|e| e.to_string())?;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let answer = match line.strip_prefix("put ") {
            Some(key) => match bucket.put_bytes(key, key.as_bytes()) {
                Ok(_) => "OK".to_owned(),
                Err(e) => format!("ERR {e}"),
            },
            None => match line.strip_prefix("get ") {
                Some(key) => match bucket.get_bytes(key) {
                    Ok(v) if v == key.as_bytes() => "OK".to_owned(),
                    Ok(_) => "ERR wrong bytes".to_owned(),
                    Err(e) => format!("ERR {e}"),
                },
                None => format!("ERR unknown command {line:?}"),
            },
        };
        writeln!(out, "{answer}").map_err(|e| e.to_string())?;
    }
    Ok(())
}
