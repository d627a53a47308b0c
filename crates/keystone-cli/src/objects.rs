//! `put`, `get`, `cat`, `rm` and `stat`: one object at a time (and `rm -r`).

use std::io::{self, BufWriter, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use indicatif::ProgressBar;
use keystone::{Bucket, ListEntry, ListOptions};

use crate::context::{Address, Ctx, usage};
use crate::output::{self, local_time_long, object_json, plural, shown, shown_object, size};
use crate::progress;
use crate::transfer::{self, MetaArgs};

/// `keystone put FILE|- BUCKET/KEY`.
#[derive(Debug, clap::Args)]
pub struct PutArgs {
    /// The file to upload, or `-` for standard input.
    file: PathBuf,
    /// Where to: BUCKET/KEY, or BUCKET/PREFIX/ to append the file's name.
    dest: String,
    #[command(flatten)]
    meta: MetaArgs,
}

/// `keystone get BUCKET/KEY [FILE|-]`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// The object.
    source: String,
    /// Where to write it: a file, a directory, or `-` for standard output (default: the
    /// key's last path segment, in the current directory).
    dest: Option<PathBuf>,
}

/// `keystone cat BUCKET/KEY`.
#[derive(Debug, clap::Args)]
pub struct CatArgs {
    /// The object.
    source: String,
}

/// `keystone rm BUCKET/KEY`, `keystone rm -r BUCKET/PREFIX`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// The object, or with -r the prefix (`photos/2024` means everything under `photos/2024/`;
    /// a bare BUCKET means every object in it).
    target: String,
    /// Delete every object under the prefix.
    #[arg(long, short)]
    recursive: bool,
}

/// `keystone stat BUCKET/KEY`.
#[derive(Debug, clap::Args)]
pub struct StatArgs {
    /// The object.
    target: String,
    /// Print one JSON object instead.
    #[arg(long)]
    json: bool,
}

/// Objects deleted per transaction by `rm -r`.
const DELETE_BATCH: usize = 1000;

/// The key of an upload to `dest`: a key ending in `/` (or none) gets the file's name appended.
pub fn key_for_upload(dest: &Address, file: &Path) -> anyhow::Result<String> {
    if !dest.key.is_empty() && !dest.key.ends_with('/') {
        return Ok(dest.key.clone());
    }
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| usage(format!("cannot name the object after {}: give a full BUCKET/KEY", file.display())))?;
    Ok(format!("{}{name}", dest.key))
}

/// The last `/`-separated segment of a key, as a local file name.
pub fn key_basename(key: &str) -> anyhow::Result<&str> {
    match key.rsplit('/').next() {
        Some(name) if !name.is_empty() && name != "." && name != ".." => Ok(name),
        _ => Err(usage(format!("cannot name a local file after the key {key:?}: give a destination path"))),
    }
}

/// Explains a missing key: when keys exist under `key/`, the user likely meant the prefix.
pub fn missing_key_hint(bucket: &Bucket, key: &str, e: keystone::Error, recursive_cmd: &str) -> anyhow::Error {
    if let keystone::Error::NoSuchKey { .. } = e {
        let dir = format!("{}/", key.trim_end_matches('/'));
        if bucket.list(&ListOptions::prefix(dir.clone()).max_keys(1)).is_ok_and(|p| !p.objects.is_empty()) {
            return anyhow!("{e} (there are objects under {}/{dir}: use `{recursive_cmd}`)", bucket.name());
        }
    }
    e.into()
}

pub fn put(ctx: &Ctx, a: &PutArgs) -> anyhow::Result<()> {
    let dest = Address::parse(&a.dest)?;
    let stdin = a.file.as_os_str() == "-";
    let key = if stdin {
        if dest.key.is_empty() || dest.key.ends_with('/') {
            return Err(usage(format!("{:?}: standard input needs a full BUCKET/KEY", a.dest)));
        }
        dest.key.clone()
    } else {
        key_for_upload(&dest, &a.file)?
    };
    let len = if stdin { None } else { Some(crate::context::local_meta(&a.file)?.len()) };
    if !stdin {
        ctx.check_not_store(&a.file)?;
    } else if ctx.is_store(Path::new("/dev/stdin")) {
        // `put - KEY < STORE`: the store would be streamed into itself (it grows as it is read).
        // `/dev/stdin` names standard input's file, whatever it is, so `is_store` compares its
        // device and inode with the store's.
        return Err(anyhow!("standard input is the store itself and cannot be uploaded into it"));
    }
    let db = ctx.open()?;
    let bucket = dest.bucket(&db)?;
    let bar = ctx.progress.transfer(&key, len);
    let info = if stdin {
        transfer::upload_stdin(&bucket, &key, &a.meta, &bar)?
    } else {
        transfer::upload_file(&bucket, &key, &a.file, &a.meta, &bar)?
    };
    progress::done(&bar);
    let from = if stdin { "standard input".to_owned() } else { a.file.display().to_string() };
    ctx.say(format_args!("{} -> {} ({})", shown(from), shown_object(&dest.bucket, &info.key), size(info.size)))
}

pub fn get(ctx: &Ctx, a: &GetArgs) -> anyhow::Result<()> {
    let src = Address::parse_object(&a.source)?;
    if a.dest.as_ref().is_some_and(|d| d.as_os_str() == "-") {
        check_stdout(ctx)?;
    }
    let db = ctx.open_read()?;
    let bucket = src.bucket(&db)?;
    let dest = match &a.dest {
        Some(d) if d.as_os_str() == "-" => {
            // A bar on stderr only while the bytes go somewhere other than the terminal.
            let bar = if io::stdout().is_terminal() {
                ProgressBar::hidden()
            } else {
                let info =
                    bucket.head(&src.key).map_err(|e| missing_key_hint(&bucket, &src.key, e, "keystone cp -r"))?;
                ctx.progress.transfer(&src.key, Some(info.size))
            };
            to_stdout(&bucket, &src.key, &bar)?;
            progress::done(&bar);
            return Ok(());
        }
        Some(d) if d.is_dir() || d.to_string_lossy().ends_with('/') => d.join(key_basename(&src.key)?),
        Some(d) => d.clone(),
        None => PathBuf::from(key_basename(&src.key)?),
    };
    ctx.check_download_dest(&dest)?;
    let info = bucket.head(&src.key).map_err(|e| missing_key_hint(&bucket, &src.key, e, "keystone cp -r"))?;
    let bar = ctx.progress.transfer(&src.key, Some(info.size));
    let n = transfer::download_to_file(ctx, &bucket, &src.key, &dest, transfer::Dest::Named, &bar)?;
    progress::done(&bar);
    ctx.say(format_args!("{} -> {} ({})", shown(&src), shown(dest.display()), size(n)))
}

pub fn cat(ctx: &Ctx, a: &CatArgs) -> anyhow::Result<()> {
    let src = Address::parse_object(&a.source)?;
    check_stdout(ctx)?;
    let db = ctx.open_read()?;
    to_stdout(&src.bucket(&db)?, &src.key, &ProgressBar::hidden())
}

/// Refuses a standard output that is the store or a file kept beside it (`keystone cat b/k >>
/// STORE` wrote the object into the store and ruined it), as downloads to files are refused.
/// `/dev/stdout` names standard output's file, whatever it is.
fn check_stdout(ctx: &Ctx) -> anyhow::Result<()> {
    match ctx.protected(Path::new("/dev/stdout")) {
        Some(what) => {
            Err(anyhow!("standard output is {what} and cannot be written by a download; redirect it elsewhere"))
        }
        None => Ok(()),
    }
}

/// Streams an object to stdout.
fn to_stdout(bucket: &Bucket, key: &str, bar: &ProgressBar) -> anyhow::Result<()> {
    let mut out = BufWriter::with_capacity(256 * 1024, io::stdout().lock());
    transfer::download(bucket, key, &mut out, "standard output", bar).map_err(|e| {
        match e.downcast::<keystone::Error>() {
            Ok(ks) => missing_key_hint(bucket, key, ks, "keystone cp -r"),
            Err(other) => other,
        }
    })?;
    Ok(())
}

pub fn rm(ctx: &Ctx, a: &RmArgs) -> anyhow::Result<()> {
    let target = if a.recursive { Address::parse(&a.target)? } else { Address::parse_object(&a.target)? };
    let db = ctx.open()?;
    let bucket = target.bucket(&db)?;
    if !a.recursive {
        match bucket.head(&target.key) {
            // A damaged object can still be deleted: that is how the damage is cleared.
            Ok(_) => {}
            Err(e) if e.is_corruption() => {}
            Err(e) => return Err(missing_key_hint(&bucket, &target.key, e, "keystone rm -r")),
        }
        bucket.delete(&target.key)?;
        return ctx.say(format_args!("deleted {}", shown(&target)));
    }
    let prefix = target.dir_prefix();
    // Two passes over the keys (count, then delete batch by batch) keep memory independent of
    // how many objects there are.
    let keys = || -> anyhow::Result<_> {
        Ok(bucket.list_iter(ListOptions::prefix(prefix.clone()))?.filter_map(|e| match e {
            Ok(ListEntry::Object(o)) => Some(Ok(o.key)),
            Ok(ListEntry::Prefix(_)) => None,
            Err(e) => Some(Err(e)),
        }))
    };
    let total = keys()?.try_fold(0u64, |n, k| k.map(|_| n + 1))?;
    if total == 0 {
        return Err(anyhow!("no objects under {}/{prefix}", target.bucket));
    }
    let bar = ctx.progress.count("deleting", total);
    let mut deleted = 0u64;
    let mut batch = Vec::with_capacity(DELETE_BATCH);
    let mut keys = keys()?.peekable();
    while keys.peek().is_some() {
        batch.clear();
        for k in keys.by_ref().take(DELETE_BATCH) {
            batch.push(k?);
        }
        db.transaction(|tx| {
            let b = tx.bucket(&target.bucket)?;
            batch.iter().try_for_each(|k| b.delete(k))
        })?;
        deleted += batch.len() as u64;
        bar.inc(batch.len() as u64);
    }
    progress::done(&bar);
    ctx.say(format_args!("deleted {} under {}", plural(deleted, "object"), shown_object(&target.bucket, &prefix)))
}

pub fn stat(ctx: &Ctx, a: &StatArgs) -> anyhow::Result<()> {
    let target = Address::parse_object(&a.target)?;
    let db = ctx.open_read()?;
    let bucket = target.bucket(&db)?;
    let o = bucket.head(&target.key).map_err(|e| missing_key_hint(&bucket, &target.key, e, "keystone ls"))?;
    if a.json {
        return output::line(object_json(&o));
    }
    let m = &o.meta;
    let mut rows: Vec<(&str, String)> = vec![
        ("Bucket", o.bucket.clone()),
        ("Key", shown(&o.key)),
        ("Size", format!("{} ({} bytes)", size(o.size), o.size)),
        ("ETag", o.etag.clone()),
        ("CRC32C", format!("{:08x}", o.checksum)),
        ("Content-Type", m.content_type.clone().unwrap_or_else(|| "binary/octet-stream (unset)".into())),
    ];
    let optional = [
        ("Cache-Control", &m.cache_control),
        ("Content-Disposition", &m.content_disposition),
        ("Content-Encoding", &m.content_encoding),
        ("Content-Language", &m.content_language),
        ("Expires", &m.expires),
    ];
    rows.extend(optional.into_iter().filter_map(|(k, v)| v.clone().map(|v| (k, v))));
    if o.parts > 0 {
        rows.push(("Parts", o.parts.to_string()));
    }
    rows.push(("Created", local_time_long(o.created)));
    rows.push(("Modified", local_time_long(o.modified)));
    for (k, v) in &rows {
        output::line(format_args!("{:<20}{v}", format!("{k}:")))?;
    }
    for (k, v) in &m.user {
        output::line(format_args!("{:<20}{k}={v}", "Metadata:"))?;
    }
    Ok(())
}
