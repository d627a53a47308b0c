//! `du`, `verify`, `gc`, `compact` and `salvage`: looking after the store as a whole.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use jiff::{Span, SpanRelativeTo};
use keystone::{Bucket, Datastore, ListEntry, ListOptions};

use crate::context::{Address, Ctx};
use crate::output::{self, plural, shown_object, size};

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
    /// Also run the storage engine's own integrity check (page checksums, tree structure).
    /// It runs on a temporary copy of the store next to it, since it repairs in place.
    #[arg(long)]
    engine: bool,
    /// Delete every corrupt object found (a damaged pack record of small objects, which
    /// cannot be told apart, is deleted whole), then verify again; the exit status is that of
    /// the second verification.
    #[arg(long)]
    remove_corrupt: bool,
}

/// `keystone salvage DEST`.
#[derive(Debug, clap::Args)]
pub struct SalvageArgs {
    /// The new store file to write (it must not exist). The store given by --store is only
    /// read.
    dest: PathBuf,
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
            // Sizes come from stored records: a damaged one must not wrap the total.
            bytes = bytes.saturating_add(o.size);
        }
    }
    Ok((objects, bytes))
}

pub fn du(ctx: &Ctx, a: &DuArgs) -> anyhow::Result<()> {
    let db = ctx.open_read()?;
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
        // Sizes come from records, which damage can make huge: the total saturates, as each
        // bucket's does.
        all_bytes = u64::saturating_add(all_bytes, bytes);
    }
    show(all_objects, all_bytes, "total")
}

pub fn verify(ctx: &Ctx, a: &VerifyArgs) -> anyhow::Result<()> {
    let only = a.bucket.as_deref().map(Address::parse_bucket).transpose()?;
    let db = if a.remove_corrupt { ctx.open()? } else { ctx.open_read()? };
    if a.remove_corrupt {
        let spinner = ctx.progress.spinner("verifying and removing corrupt objects");
        let r = db.remove_corrupt(only.as_deref())?;
        spinner.finish_and_clear();
        print_report(ctx, &r.found, None)?;
        for c in &r.removed {
            output::line(format_args!("REMOVED  {}", shown_object(&c.bucket, &c.key)))?;
        }
        for c in &r.changed {
            output::line(format_args!("LEFT     {}: changed since it was found", shown_object(&c.bucket, &c.key)))?;
        }
        for c in &r.failed {
            output::line(format_args!("FAILED   {}: {}", shown_object(&c.bucket, &c.key), c.reason))?;
        }
        ctx.say(format_args!("removed {}; verifying again", plural(r.removed.len() as u64, "corrupt object")))?;
    }
    // With --remove-corrupt, the exit status is the state after the removal.
    let spinner = ctx.progress.spinner("verifying objects");
    let mut report = match &only {
        Some(b) => db.verify_bucket(b)?,
        None => db.verify()?,
    };
    spinner.finish_and_clear();
    drop(db);
    if a.engine {
        let spinner = ctx.progress.spinner("checking the storage engine on a copy");
        report.engine_ok = Some(engine_check_on_copy(ctx)?);
        spinner.finish_and_clear();
    }
    let engine = match report.engine_ok {
        Some(true) => "ok",
        Some(false) => "FAILED",
        None => "not run (--engine runs it)",
    };
    let printed = print_report(ctx, &report, Some(engine));
    if report.is_clean() {
        return printed;
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

/// The `CORRUPT` lines and the summary of one verification (with the engine check's result,
/// when there is one to tell).
fn print_report(ctx: &Ctx, report: &keystone::VerifyReport, engine: Option<&str>) -> anyhow::Result<()> {
    for c in &report.corrupt {
        output::line(format_args!("CORRUPT  {}: {}", shown_object(&c.bucket, &c.key), c.reason))?;
    }
    let engine = engine.map(|e| format!(", storage engine check {e}")).unwrap_or_default();
    ctx.say(format_args!(
        "checked {} ({}): {} corrupt, {} orphaned chunk segments{engine}",
        plural(report.objects, "object"),
        size(report.bytes),
        report.corrupt.len(),
        report.orphan_segments
    ))
}

/// Runs the storage engine's integrity check on a temporary copy of the store, because the
/// check repairs in place and can leave a damaged file unopenable. A copy that cannot even
/// be opened counts as a failed check.
fn engine_check_on_copy(ctx: &Ctx) -> anyhow::Result<bool> {
    let dir = match ctx.store.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Beside the store (the same file system, so the same free space), else in the temporary
    // directory: a store the user may read but not write can be checked too.
    // A copy that cannot be made (no room, no permission) is tried in the other place.
    let copy_in = |dir: &Path| -> std::io::Result<tempfile::NamedTempFile> {
        let copy = tempfile::Builder::new().prefix(".keystone-verify-").suffix(".redb").tempfile_in(dir)?;
        std::fs::copy(&ctx.store, copy.path())?;
        Ok(copy)
    };
    let tmp = std::env::temp_dir();
    let copy = match copy_in(&dir) {
        Ok(copy) => copy,
        Err(beside) => copy_in(&tmp).with_context(|| {
            format!("cannot copy {} beside it ({beside}) or into {}", ctx.store.display(), tmp.display())
        })?,
    };
    // The copy is opened by path; the temporary file handle only removes it afterwards.
    match Datastore::open(copy.path()) {
        Ok(db) => match db.check_engine_integrity() {
            Ok(ok) => Ok(ok),
            Err(e) if e.is_corruption() => Ok(false),
            Err(e) => Err(anyhow::Error::new(e).context("the storage engine check failed to run")),
        },
        Err(e) if e.is_corruption() => Ok(false),
        Err(e) => Err(anyhow::Error::new(e).context("cannot open the copy of the store")),
    }
}

fn file_size(ctx: &Ctx) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(&ctx.store).with_context(|| format!("cannot read {}", ctx.store.display()))?.len())
}

pub fn gc(ctx: &Ctx, a: &GcArgs) -> anyhow::Result<()> {
    // Measured before opening: opening a store already reclaims streaming uploads that a
    // crashed process left behind (counted through `recovery_report`).
    let before = if ctx.store.exists() { file_size(ctx)? } else { 0 };
    let db = ctx.open()?;
    let spinner = ctx.progress.spinner("collecting garbage");
    let aborted = match a.abort_uploads_older_than {
        Some(age) => Some(db.abort_uploads_older_than(age)?),
        None => None,
    };
    let on_open = db.recovery_report();
    let report = db.gc()?;
    spinner.finish_and_clear();
    drop(db);
    let after = file_size(ctx)?;
    // Two different things are counted: multipart uploads aborted for their age (their
    // parts freed with them), and single streaming uploads a stopped process left unfinished.
    if let Some(n) = aborted {
        let freed = match n {
            0 => "",
            1 => " and freed its parts",
            _ => " and freed their parts",
        };
        ctx.say(format_args!("aborted {}{freed}", plural(n, "stale multipart upload")))?;
    }
    ctx.say(format_args!(
        "reclaimed {} left unfinished by a stopped process ({} freed)",
        plural(report.uploads_reclaimed + on_open.uploads_reclaimed, "streaming upload"),
        plural(report.chunks_freed + on_open.chunks_freed, "chunk")
    ))?;
    ctx.say(format_args!(
        "store file {}: {} before, {} after (freed space is reused by new writes; `keystone compact` shrinks the file)",
        ctx.store.display(),
        size(before),
        size(after)
    ))
}

pub fn compact(ctx: &Ctx) -> anyhow::Result<()> {
    // The file as the user sees it: measured before the store is opened and after it is
    // closed (opening and closing change its size too: recovery, the preallocated tail).
    let before = if ctx.store.exists() { file_size(ctx)? } else { 0 };
    let db = ctx.open()?;
    let spinner = ctx.progress.spinner("compacting");
    let r = db.compact()?;
    drop(db);
    spinner.finish_and_clear();
    let after = file_size(ctx)?;
    let upgraded = match r.resealed_manifests {
        0 => String::new(),
        n => format!("; {n} objects of earlier releases upgraded to this release's format"),
    };
    ctx.say(format_args!(
        "compacted {}: {} before, {} after ({} smaller); {} small objects in {} pack records{upgraded}",
        ctx.store.display(),
        size(before),
        size(after),
        size(before.saturating_sub(after)),
        r.packed_objects,
        r.pack_records
    ))
}

pub fn salvage(ctx: &Ctx, a: &SalvageArgs) -> anyhow::Result<()> {
    let spinner = ctx.progress.spinner("salvaging");
    let r = match Datastore::builder().etag(keystone::EtagAlgorithm::Md5).salvage(&ctx.store, &a.dest) {
        Ok(r) => r,
        // Salvage only reads; the recovery the store needs writes, and may fail on a damaged
        // store: done on a copy, the original stays as it is.
        Err(keystone::Error::NeedsRecovery { .. }) => {
            return Err(anyhow!(
                "cannot salvage {store}: it was not closed cleanly and must be recovered first, which writes \
                 to it; copy it (cp {store} COPY), recover the copy (keystone --store COPY gc) and salvage the \
                 copy — recovery can fail on a damaged store, so keep the original as it is",
                store = ctx.store.display()
            ));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "cannot salvage {} into {}",
                ctx.store.display(),
                a.dest.display()
            )));
        }
    };
    spinner.finish_and_clear();
    if let Some((len, layout)) = r.cut_short {
        output::line(format_args!(
            "CUT SHORT   {} is {len} bytes of the {layout} its header records: what lay past the cut is lost",
            ctx.store.display()
        ))?;
    }
    for u in &r.unreadable {
        let after = u.after.as_deref().unwrap_or("the start of the store");
        let before = u.before.as_deref().unwrap_or("the end of the store");
        output::line(format_args!(
            "UNREADABLE  from {} to {}",
            output::terminal_safe(after),
            output::terminal_safe(before)
        ))?;
    }
    for c in &r.removed {
        output::line(format_args!(
            "REMOVED     {}: {}",
            shown_object(&c.bucket, &c.key),
            output::terminal_safe(&c.reason)
        ))?;
    }
    for c in &r.verified.corrupt {
        output::line(format_args!(
            "CORRUPT     {}: {}",
            shown_object(&c.bucket, &c.key),
            output::terminal_safe(&c.reason)
        ))?;
    }
    for b in &r.buckets_recreated {
        output::line(format_args!("RECREATED   bucket {}: its own record was lost", output::terminal_safe(b)))?;
    }
    let stretches = match r.unreadable.len() {
        1 => "1 unreadable stretch".to_owned(),
        n => format!("{n} unreadable stretches"),
    };
    ctx.say(format_args!(
        "salvaged {} ({}) into {} from {}; {}, {} removed, {} out of order; {} in progress not copied",
        plural(r.verified.objects, "object"),
        size(r.verified.bytes),
        a.dest.display(),
        plural(r.records_copied, "record"),
        stretches,
        plural(r.removed.len() as u64, "damaged object"),
        plural(r.out_of_order, "record"),
        plural(r.uploads_dropped, "upload")
    ))?;
    if r.is_complete() && r.verified.is_clean() {
        return Ok(());
    }
    Err(anyhow!(
        "salvage lost data: {} is a consistent store of what could be read, the lines above say what could not",
        a.dest.display()
    ))
}
