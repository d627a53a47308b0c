//! `du`, `verify`, `gc` and `compact`: looking after the store as a whole.

use std::io;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use indicatif::ProgressBar;
use jiff::{Span, SpanRelativeTo};
use keystone::{Bucket, CorruptObject, Datastore, Error, ListEntry, ListOptions, VerifyReport};

use crate::context::{Address, Ctx};
use crate::output::{self, plural, size};

/// `keystone du [BUCKET[/PREFIX]]`.
#[derive(Debug, clap::Args)]
pub struct DuArgs {
    /// What to count: nothing for every bucket, BUCKET, or BUCKET/PREFIX (keys starting with PREFIX).
    target: Option<String>,
    /// Show exact byte counts instead of human-readable sizes.
    #[arg(long, short)]
    bytes: bool,
}

/// `keystone verify [BUCKET]`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Check only this bucket.
    bucket: Option<String>,
}

/// `keystone gc`.
#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Also abort multipart uploads started longer ago than this (`7d`, `12h`, `30m`, `0s`)
    /// and free their parts.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    abort_uploads_older_than: Option<Duration>,
}

fn parse_age(s: &str) -> Result<Duration, String> {
    let span: Span = s.parse().map_err(|e| format!("{s:?} is not a duration like 7d, 12h or 30m: {e}"))?;
    let d = span.to_duration(SpanRelativeTo::days_are_24_hours()).map_err(|e| format!("{s:?}: {e}"))?;
    Duration::try_from(d).map_err(|_| format!("{s:?} is negative"))
}

/// Objects and bytes under `prefix` of `bucket`.
fn usage_of(bucket: &Bucket, prefix: &str) -> anyhow::Result<(u64, u64)> {
    let (mut objects, mut bytes) = (0u64, 0u64);
    for entry in bucket.list_iter(ListOptions::prefix(prefix))? {
        if let ListEntry::Object(o) = entry? {
            objects += 1;
            bytes += o.size;
        }
    }
    Ok((objects, bytes))
}

pub fn du(ctx: &Ctx, a: &DuArgs) -> anyhow::Result<()> {
    let db = ctx.open()?;
    let show = |objects: u64, bytes: u64, name: &str| {
        let amount = if a.bytes { bytes.to_string() } else { size(bytes) };
        output::line(format_args!("{:>14}  {amount:>12}  {name}", plural(objects, "object")))
    };
    if let Some(t) = &a.target {
        let addr = Address::parse(t)?;
        let (objects, bytes) = usage_of(&addr.bucket(&db)?, &addr.key)?;
        return show(objects, bytes, &addr.to_string());
    }
    let (mut all_objects, mut all_bytes) = (0, 0);
    for b in db.list_buckets()? {
        let (objects, bytes) = usage_of(&db.bucket(&b.name)?, "")?;
        show(objects, bytes, &b.name)?;
        all_objects += objects;
        all_bytes += bytes;
    }
    show(all_objects, all_bytes, "total")
}

/// What the CLI's own read pass found.
#[derive(Debug, Default)]
struct Scan {
    objects: u64,
    bytes: u64,
    corrupt: Vec<CorruptObject>,
}

/// Reads every object of `only` (or of every bucket) through its checksums.
///
/// Workaround (see /work/notes/requests.md, CLI item 1): the library's `verify` ends with the
/// storage engine's repairing integrity check, which on a store with a damaged chunk fails
/// with an error (losing the list of corrupt objects) and leaves the file unopenable. So the
/// CLI reads the objects first, and calls the library's `verify` only when they are all sound.
fn scan(db: &Datastore, only: Option<&str>, spinner: &ProgressBar) -> anyhow::Result<Scan> {
    let names = match only {
        Some(b) => vec![b.to_owned()],
        None => db.list_buckets()?.into_iter().map(|b| b.name).collect(),
    };
    let mut scan = Scan::default();
    for name in names {
        let bucket = db.bucket(&name)?;
        for entry in bucket.list_iter(ListOptions::prefix(""))? {
            let ListEntry::Object(o) = entry? else { continue };
            spinner.set_message(format!("verifying {name}/{}", o.key));
            scan.objects += 1;
            let read = bucket.open(&o.key).and_then(|mut r| io::copy(&mut r, &mut io::sink()).map_err(Error::from_io));
            match read {
                Ok(n) => scan.bytes += n,
                Err(e) if e.is_corruption() => {
                    scan.corrupt.push(CorruptObject { bucket: name.clone(), key: o.key, reason: e.to_string() });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(scan)
}

pub fn verify(ctx: &Ctx, a: &VerifyArgs) -> anyhow::Result<()> {
    let db = ctx.open()?;
    let spinner = ctx.progress.spinner("verifying");
    let scan = scan(&db, a.bucket.as_deref(), &spinner)?;
    let report = if scan.corrupt.is_empty() {
        spinner.set_message("checking the storage engine");
        match &a.bucket {
            Some(b) => db.verify_bucket(b)?,
            None => db.verify()?,
        }
    } else {
        VerifyReport { objects: scan.objects, bytes: scan.bytes, corrupt: scan.corrupt, ..VerifyReport::default() }
    };
    spinner.finish_and_clear();
    for c in &report.corrupt {
        output::line(format_args!("CORRUPT  {}/{}: {}", c.bucket, c.key, c.reason))?;
    }
    let engine = match report.engine_ok {
        Some(true) => "ok",
        Some(false) => "FAILED",
        None if report.corrupt.is_empty() => "not run (the store was busy)",
        None => "not run (objects are corrupt; the engine's check would try to repair the file in place)",
    };
    let orphans = if report.corrupt.is_empty() { report.orphan_segments.to_string() } else { "not counted".to_owned() };
    ctx.say(format_args!(
        "checked {} ({}): {} corrupt, {orphans} orphaned chunk segments, storage engine check {engine}",
        plural(report.objects, "object"),
        size(report.bytes),
        report.corrupt.len(),
    ))?;
    if report.is_clean() {
        return Ok(());
    }
    let mut problems = Vec::new();
    if !report.corrupt.is_empty() {
        problems.push(format!("{} corrupt", plural(report.corrupt.len() as u64, "object")));
    }
    if report.orphan_segments > 0 {
        problems.push(format!("{} orphaned chunk segments", report.orphan_segments));
    }
    if report.engine_ok == Some(false) {
        problems.push("the storage engine's integrity check failed".to_owned());
    }
    Err(anyhow!("verification failed: {}", problems.join(", ")))
}

fn file_size(ctx: &Ctx) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(&ctx.store).with_context(|| format!("cannot read {}", ctx.store.display()))?.len())
}

pub fn gc(ctx: &Ctx, a: &GcArgs) -> anyhow::Result<()> {
    // Measured before opening: opening a store already reclaims streaming uploads that a
    // crashed process left behind.
    let before = if ctx.store.exists() { file_size(ctx)? } else { 0 };
    let db = ctx.open()?;
    let spinner = ctx.progress.spinner("collecting garbage");
    let aborted = match a.abort_uploads_older_than {
        Some(age) => Some(db.abort_uploads_older_than(age)?),
        None => None,
    };
    let report = db.gc()?;
    spinner.finish_and_clear();
    drop(db);
    let after = file_size(ctx)?;
    if let Some(n) = aborted {
        ctx.say(format_args!("aborted {}", plural(n, "multipart upload")))?;
    }
    ctx.say(format_args!(
        "reclaimed {} ({} freed)",
        plural(report.uploads_reclaimed, "abandoned upload"),
        plural(report.chunks_freed, "chunk")
    ))?;
    ctx.say(format_args!(
        "store file {}: {} before, {} after (freed space is reused by new writes; `keystone compact` shrinks the file)",
        ctx.store.display(),
        size(before),
        size(after)
    ))
}

pub fn compact(ctx: &Ctx) -> anyhow::Result<()> {
    let db = ctx.open()?;
    let spinner = ctx.progress.spinner("compacting");
    let r = db.compact()?;
    spinner.finish_and_clear();
    ctx.say(format_args!(
        "compacted {}: {} before, {} after ({} smaller)",
        ctx.store.display(),
        size(r.size_before),
        size(r.size_after),
        size(r.size_before.saturating_sub(r.size_after))
    ))
}
