//! W4 large objects: streamed put and get of objects of hundreds of MiB, each run in a child
//! process so its peak resident memory (VmHWM) is its own.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::{Ctx, Rng, progress};
use crate::engines;
use crate::report::{Row, Target};
use crate::stream::Pattern;

/// Argument that makes the binary run one W4 operation as a child.
pub const CHILD_FLAG: &str = "__w4-child";

/// Peak resident set of this process, bytes.
fn peak_rss() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM in /proc/self/status")?;
    let kb: u64 = line.split_whitespace().nth(1).context("malformed VmHWM")?.parse()?;
    Ok(kb * 1024)
}

/// The child's side: `<engine> <dir> <bytes> <put|get> <cache>`; prints `<seconds> <peak rss>`.
pub fn child(args: &[String]) -> Result<()> {
    let [engine, dir, bytes, op, cache] = args else { bail!("usage: {CHILD_FLAG} ENGINE DIR BYTES put|get CACHE") };
    let bytes: u64 = bytes.parse()?;
    let e = engines::open(engine, Path::new(dir), cache.parse()?)?;
    let t = Instant::now();
    let n = match op.as_str() {
        "put" => {
            let mut src = Pattern::new(Rng::new(4).bytes(1 << 20), bytes);
            e.put_stream("large", &mut src)?
        }
        "get" => e.get_stream("large", &mut |piece| {
            std::hint::black_box(piece);
        })?,
        // A get whose pieces are compared with the pattern put (untimed by the caller).
        "check" => {
            let pattern = Rng::new(4).bytes(1 << 20);
            let (mut at, mut same) = (0usize, true);
            let n = e.get_stream("large", &mut |mut piece| {
                while !piece.is_empty() {
                    let k = piece.len().min(pattern.len() - at);
                    same &= piece[..k] == pattern[at..at + k];
                    at = (at + k) % pattern.len();
                    piece = &piece[k..];
                }
            })?;
            if !same {
                bail!("{engine}: a streamed get returned other bytes than were put");
            }
            n
        }
        other => bail!("unknown operation {other}"),
    };
    let secs = t.elapsed().as_secs_f64();
    if n != bytes {
        bail!("{engine} {op}: {n} bytes, expected {bytes}");
    }
    println!("{secs} {}", peak_rss()?);
    Ok(())
}

fn run_child(engine: &str, dir: &Path, bytes: u64, op: &str, cache: usize) -> Result<(f64, u64)> {
    let out = Command::new(std::env::current_exe()?)
        .arg(CHILD_FLAG)
        .args([engine, &dir.display().to_string(), &bytes.to_string(), op, &cache.to_string()])
        .output()?;
    if !out.status.success() {
        bail!("{engine} {op} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    let secs: f64 = parts.next().context("child printed nothing")?.parse()?;
    let rss: u64 = parts.next().context("child printed no RSS")?.parse()?;
    Ok((secs, rss))
}

/// W4: for each size, streamed put then get on every engine (alternating), MB/s and peak RSS.
pub fn w4(ctx: &Ctx, engines: &[String], sizes_mib: &[u64]) -> Result<Vec<Row>> {
    progress("W4 large objects");
    let mut rows = Vec::new();
    let mib = 1024.0 * 1024.0;
    for &size in sizes_mib {
        let bytes = size * 1024 * 1024;
        let mut put: Vec<(String, Vec<f64>)> = engines.iter().map(|e| (e.clone(), Vec::new())).collect();
        let mut get = put.clone();
        let mut rss = put.clone();
        for rep in 0..ctx.reps {
            for i in 0..engines.len() {
                let idx = (i + rep) % engines.len();
                let name = &engines[idx];
                let dir = ctx.dir.join("w4").join(format!("{name}-{rep}"));
                if dir.exists() {
                    std::fs::remove_dir_all(&dir)?;
                }
                let (put_s, put_rss) = run_child(name, &dir, bytes, "put", ctx.cache)?;
                let (get_s, get_rss) = run_child(name, &dir, bytes, "get", ctx.cache)?;
                if rep == 0 {
                    // Once per engine and size, after the timed get: the bytes themselves.
                    run_child(name, &dir, bytes, "check", ctx.cache)?;
                }
                std::fs::remove_dir_all(&dir)?;
                let (p, g) = (bytes as f64 / mib / put_s, bytes as f64 / mib / get_s);
                progress(&format!(
                    "  {size} MiB rep {} {name:<8} put {p:.0} MiB/s ({:.0} MiB rss), get {g:.0} MiB/s ({:.0} MiB rss)",
                    rep + 1,
                    put_rss as f64 / mib,
                    get_rss as f64 / mib
                ));
                put[idx].1.push(p);
                get[idx].1.push(g);
                rss[idx].1.push(put_rss.max(get_rss) as f64 / mib);
            }
        }
        let label =
            if size >= 1024 && size % 1024 == 0 { format!("{} GiB", size / 1024) } else { format!("{size} MiB") };
        rows.push(
            Row::new(format!("W4 {label}"), "streamed put, MiB/s (durable)", put)
                .target(Target::Ratio { baseline: "files", min: 0.8 }),
        );
        rows.push(
            Row::new(format!("W4 {label}"), "streamed get, MiB/s (warm)", get)
                .target(Target::Ratio { baseline: "files", min: 0.8 }),
        );
        rows.push(
            Row::new(format!("W4 {label}"), "peak RSS of put/get process, MiB", rss).target(Target::AtMost(64.0)),
        );
    }
    ctx.clean("w4")?;
    Ok(rows)
}
