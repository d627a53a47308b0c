//! `cp`: files and whole trees from the local disk to the store, back, and within the store.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, anyhow};
use indicatif::ProgressBar;
use keystone::{Bucket, CopyOptions, Datastore, ListEntry, ListOptions, ObjectInfo};

use crate::context::{Address, Ctx, SCHEME, Skipped, local_meta, one_line, usage};
use crate::interrupt;
use crate::objects::{key_basename, key_for_upload, missing_key_hint};
use crate::output::{plural, shown, shown_object, size};
use crate::progress;
use crate::transfer::{self, MetaArgs};

pub const HELP: &str = "\
How the store side is told apart: an argument starting with ks:// is a store address; one starting with \
`/`, `.` or `~` is a local path; otherwise the source is local if it exists on disk, and the \
destination is the other side.

With -r, a directory's files are uploaded under the prefix (DIR/a/b.txt becomes PREFIX/a/b.txt), \
and every object under BUCKET/PREFIX/ is downloaded into DIR with the same relative paths. Empty \
directories are not stored. Symbolic links are followed; one to nothing is skipped with a warning, \
and the command then exits 3. A single file or object copies the same way with or without -r.

Examples:
  keystone cp ./report.pdf docs/2024/report.pdf
  keystone cp ./report.pdf docs/2024/
  keystone cp -r ./site web/v2/
  keystone cp -r web/v2 ./site-copy
  keystone cp docs/2024/report.pdf .
  keystone cp -r ks://web/v2 ks://web/v3";

/// `keystone cp [-r] SRC DST`.
#[derive(Debug, clap::Args)]
pub struct CpArgs {
    /// Copy whole trees (directories, or every object under a prefix).
    #[arg(long, short)]
    recursive: bool,
    /// A local file or directory, or BUCKET/KEY, BUCKET/PREFIX.
    src: String,
    /// A local file or directory, or BUCKET/KEY, BUCKET/PREFIX/.
    dst: String,
    #[command(flatten)]
    meta: MetaArgs,
}

/// One side of a copy.
#[derive(Debug)]
enum Side {
    Local(PathBuf),
    Store(Address),
}

/// An argument that says which side it is, or `None` when only context can tell.
fn explicit(arg: &str) -> anyhow::Result<Option<Side>> {
    if arg.starts_with(SCHEME) {
        return Ok(Some(Side::Store(Address::parse(arg)?)));
    }
    if arg == "-" {
        return Err(usage("cp does not read standard input or write standard output: use `put -` or `get KEY -`"));
    }
    if arg.starts_with(['/', '.', '~']) {
        return Ok(Some(Side::Local(PathBuf::from(arg))));
    }
    Ok(None)
}

/// The two sides of a copy, and whether the source was read as BUCKET/KEY only because no
/// local path has its name.
fn sides(a: &CpArgs) -> anyhow::Result<(Side, Side, bool)> {
    let (src, guessed) = match explicit(&a.src)? {
        Some(s) => (s, false),
        None if Path::new(&a.src).exists() => (Side::Local(PathBuf::from(&a.src)), false),
        None => (Side::Store(Address::parse(&a.src)?), true),
    };
    let dst = match (explicit(&a.dst)?, &src) {
        (Some(d), _) => d,
        (None, Side::Local(_)) => Side::Store(Address::parse(&a.dst)?),
        (None, Side::Store(_)) => Side::Local(PathBuf::from(&a.dst)),
    };
    Ok((src, dst, guessed))
}

pub fn cp(ctx: &Ctx, a: &CpArgs) -> anyhow::Result<()> {
    // A source that is no local path was read as BUCKET/KEY (`guessed`): when there is no such
    // bucket either, it is most likely a local name mistyped, and the error says both.
    let (src, dst, guessed) = sides(a)?;
    let r = match (src, dst) {
        (Side::Local(s), Side::Store(d)) => upload(ctx, a, &s, &d),
        (Side::Store(s), Side::Local(d)) => download(ctx, a.recursive, &s, &d),
        (Side::Store(s), Side::Store(d)) => within(ctx, a.recursive, &s, &d),
        (Side::Local(_), Side::Local(_)) => {
            Err(usage("both arguments are local paths: write the store side as BUCKET/KEY or ks://BUCKET/KEY"))
        }
    };
    r.map_err(|e| match e.downcast_ref::<keystone::Error>() {
        Some(keystone::Error::NoSuchBucket { bucket })
            if guessed && a.src.split('/').next() == Some(bucket.as_str()) =>
        {
            anyhow!("{:?} is neither a local file or directory nor a bucket of the store", a.src)
        }
        _ => e,
    })
}

/// Counts one tree copy: the bar's position is bytes; its prefix shows files done/total.
struct Tree {
    bar: ProgressBar,
    total: u64,
    done: u64,
    bytes: u64,
    failed: u64,
    /// Entries left out on purpose (named as they were), not counted in `total`.
    skipped: u64,
}

impl Tree {
    fn new(ctx: &Ctx, files: u64, bytes: u64) -> Self {
        Tree { bar: ctx.progress.tree(files, bytes), total: files, done: 0, bytes: 0, failed: 0, skipped: 0 }
    }

    /// Shows `name` as the file in progress; an error once Ctrl-C was pressed.
    fn start(&self, name: &str) -> anyhow::Result<()> {
        interrupt::check()?;
        self.bar.set_message(shown(name));
        Ok(())
    }

    /// Records one file's outcome; failures are printed as they happen and counted.
    fn record(&mut self, name: &str, r: anyhow::Result<u64>) {
        match r {
            Ok(n) => {
                self.done += 1;
                self.bytes += n;
            }
            Err(e) => {
                let line = format!("keystone: {}: {}", shown(name), one_line(&e));
                self.bar.suspend(|| eprintln!("{line}"));
                self.failed += 1;
            }
        }
        self.bar.set_prefix(format!("{}/{}", self.done + self.failed, self.total));
    }

    /// Ends the bar; an error when any file failed, else [`Skipped`] when any was skipped.
    fn finish(self, ctx: &Ctx, verb: &str, to: &str) -> anyhow::Result<()> {
        self.bar.set_message("");
        progress::done(&self.bar);
        let said = ctx.say(format_args!("{verb} {} ({}) to {to}", plural(self.done, "file"), size(self.bytes)));
        let skipped = if self.skipped == 0 { String::new() } else { format!(" ({} more skipped)", self.skipped) };
        if self.failed > 0 {
            return Err(anyhow!("{} of {} failed{skipped}", self.failed, plural(self.total, "file")));
        }
        if self.skipped > 0 {
            return Err(anyhow::Error::new(Skipped(format!(
                "{} skipped (symbolic links to nothing or special files, named above); the rest was copied",
                plural(self.skipped, "file")
            ))));
        }
        said
    }
}

fn upload(ctx: &Ctx, a: &CpArgs, src: &Path, dst: &Address) -> anyhow::Result<()> {
    let meta = local_meta(src)?;
    let db = ctx.open()?;
    let bucket = dst.bucket(&db)?;
    if !meta.is_dir() {
        ctx.check_not_store(src)?;
        let key = key_for_upload(dst, src)?;
        let bar = ctx.progress.transfer(&key, Some(meta.len()));
        let info = transfer::upload_file(&bucket, &key, src, &a.meta, &bar)?;
        progress::done(&bar);
        return ctx.say(format_args!(
            "{} -> {} ({})",
            shown(src.display()),
            shown_object(&dst.bucket, &key),
            size(info.size)
        ));
    }
    if !a.recursive {
        return Err(anyhow!("{} is a directory (use `keystone cp -r` to copy a tree)", src.display()));
    }
    let prefix = dst.dir_prefix();
    let mut files = Vec::new();
    let mut walk_errors = Vec::new();
    let mut skipped = 0;
    for entry in walkdir::WalkDir::new(src).follow_links(true).sort_by_file_name() {
        match entry {
            // The store and its journal (they would grow while read) and its credentials file
            // (the S3 secret key) are never part of a tree upload.
            Ok(e)
                if e.file_type().is_file()
                    && let Some(what) = ctx.protected(e.path()) =>
            {
                if !ctx.quiet {
                    eprintln!("keystone: skipping {}: it is {what}", shown(e.path().display()));
                }
            }
            Ok(e) if e.file_type().is_file() => {
                let len = e.metadata().map_or(0, |m| m.len());
                files.push((e.into_path(), len));
            }
            Ok(e) if !e.file_type().is_dir() => {
                // As `aws s3 cp --recursive`: "File is character special device, block special
                // device, FIFO, or socket."
                eprintln!(
                    "keystone: skipping {}: it is not a regular file (a FIFO, socket or device)",
                    shown(e.path().display())
                );
                skipped += 1;
            }
            Ok(_) => {}
            // As `aws s3 cp --recursive`: a link to nothing is no file to copy, and does not
            // stop the others; the command ends with EXIT_SKIPPED.
            Err(e) => match dangling_link(&e) {
                Some((link, target, missing)) => {
                    let chain = if target == missing {
                        String::new()
                    } else {
                        format!(", which leads to {}", shown(missing.display()))
                    };
                    eprintln!(
                        "keystone: skipping {}: it is a symbolic link to {}{chain}, which does not exist",
                        shown(link.display()),
                        shown(target.display())
                    );
                    skipped += 1;
                }
                None => walk_errors.push(e),
            },
        }
    }
    let bytes = files.iter().map(|(_, n)| n).sum();
    let mut tree = Tree::new(ctx, files.len() as u64 + walk_errors.len() as u64, bytes);
    tree.skipped = skipped;
    for e in walk_errors {
        let name = e.path().map_or_else(|| src.display().to_string(), |p| p.display().to_string());
        let why = e.io_error().map_or_else(|| e.to_string(), ToString::to_string);
        tree.record(&name, Err(anyhow!("cannot read: {why}")));
    }
    for (path, _) in files {
        let name = path.display().to_string();
        tree.start(&name)?;
        let r = key_under(&prefix, src, &path)
            .and_then(|key| transfer::upload_file(&bucket, &key, &path, &a.meta, &tree.bar).map(|i| i.size));
        tree.record(&name, r);
    }
    tree.finish(ctx, "uploaded", &format!("{}/{prefix}", dst.bucket))
}

/// The link, its target and the missing target at the end of the chain of links (the same
/// for one link), when a walk that follows links failed on a symbolic link to nothing.
fn dangling_link(e: &walkdir::Error) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let link = e.path()?;
    if e.io_error()?.kind() != std::io::ErrorKind::NotFound {
        return None;
    }
    if !std::fs::symlink_metadata(link).ok()?.file_type().is_symlink() {
        return None;
    }
    // Along the chain of links to the target that is missing (relative targets are relative
    // to the directory of the link that names them); as many hops as the kernel follows.
    let first = std::fs::read_link(link).ok()?;
    let (mut at, mut target) = (link.to_path_buf(), first.clone());
    for _ in 0..40 {
        let next = match at.parent() {
            Some(dir) if target.is_relative() => dir.join(&target),
            _ => target.clone(),
        };
        match std::fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() => {
                target = std::fs::read_link(&next).ok()?;
                at = next;
            }
            Ok(_) => return None,
            Err(_) => return Some((link.to_path_buf(), first, target)),
        }
    }
    None
}

/// The key of `path` (a file under `root`): `prefix` + its relative path with `/` separators.
fn key_under(prefix: &str, root: &Path, path: &Path) -> anyhow::Result<String> {
    let rel = path.strip_prefix(root).with_context(|| format!("{} is not under {}", path.display(), root.display()))?;
    let mut key = prefix.to_owned();
    for (i, c) in rel.components().enumerate() {
        let part = c.as_os_str().to_str().ok_or_else(|| anyhow!("file name is not valid UTF-8"))?;
        if i > 0 {
            key.push('/');
        }
        key.push_str(part);
    }
    Ok(key)
}

/// The local path of a key below the copied prefix. Refuses relative parts that would leave
/// the destination directory (`..`, absolute paths) or that no file can be named (empty, `.`).
fn local_path_of(dir: &Path, rel: &str) -> anyhow::Result<PathBuf> {
    let mut path = dir.to_path_buf();
    for part in rel.split('/') {
        let mut comps = Path::new(part).components();
        match (comps.next(), comps.next()) {
            (Some(Component::Normal(c)), None) => path.push(c),
            _ => return Err(anyhow!("the key has a path segment {part:?} that cannot be a local file name")),
        }
    }
    Ok(path)
}

/// Every object under `prefix`, in key order.
fn objects_under(bucket: &Bucket, prefix: &str) -> anyhow::Result<Vec<ObjectInfo>> {
    let mut out = Vec::new();
    for entry in bucket.list_iter(ListOptions::prefix(prefix))? {
        if let ListEntry::Object(o) = entry? {
            out.push(o);
        }
    }
    Ok(out)
}

/// The objects a copy from `src` takes with -r: those under `src/`, or `src` itself when it
/// is a single object. `Ok(None)` means the single object `src.key`.
fn tree_or_single(bucket: &Bucket, src: &Address, recursive: bool) -> anyhow::Result<Option<Vec<ObjectInfo>>> {
    if recursive {
        let objects = objects_under(bucket, &src.dir_prefix())?;
        if !objects.is_empty() {
            return Ok(Some(objects));
        }
        if src.key.is_empty() || src.key.ends_with('/') || !bucket.exists(&src.key)? {
            return Err(anyhow!("no objects under {}/{}", src.bucket, src.dir_prefix()));
        }
        return Ok(None);
    }
    if src.key.is_empty() || src.key.ends_with('/') {
        return Err(anyhow!("{src} is a prefix (use `keystone cp -r` to copy a tree)"));
    }
    bucket.head(&src.key).map_err(|e| missing_key_hint(bucket, &src.key, e, "keystone cp -r"))?;
    Ok(None)
}

fn download(ctx: &Ctx, recursive: bool, src: &Address, dir: &Path) -> anyhow::Result<()> {
    let db = ctx.open_read()?;
    let bucket = src.bucket(&db)?;
    let Some(objects) = tree_or_single(&bucket, src, recursive)? else {
        let file = if dir.is_dir() || dir.to_string_lossy().ends_with('/') {
            dir.join(key_basename(&src.key)?)
        } else {
            dir.to_path_buf()
        };
        ctx.check_download_dest(&file)?;
        let info = bucket.head(&src.key)?;
        let bar = ctx.progress.transfer(&src.key, Some(info.size));
        let n = transfer::download_to_file(ctx, &bucket, &src.key, &file, transfer::Dest::Named, &bar)?;
        progress::done(&bar);
        return ctx.say(format_args!("{} -> {} ({})", shown(src), shown(file.display()), size(n)));
    };
    let dst = dir;
    if dst.exists() && !dst.is_dir() {
        return Err(anyhow!("{} exists and is not a directory", dst.display()));
    }
    let prefix = src.dir_prefix();
    // Where each object goes, decided (and checked against the store's own files) before
    // anything is written.
    let mut plan = Vec::with_capacity(objects.len());
    for o in &objects {
        let rel = &o.key[prefix.len()..];
        // A zero-byte key ending in `/` is a "folder" marker, as S3 consoles create; the
        // marker of the copied prefix itself (an empty `rel`) is the destination directory.
        let marker = o.size == 0 && (rel.is_empty() || rel.ends_with('/'));
        let path = if rel.is_empty() && marker {
            Ok(dst.to_path_buf())
        } else if !marker && rel.ends_with('/') {
            Err(anyhow!(
                "the key ends in `/` but holds data: it cannot be a local file (it would take the name of {}/{})",
                src.bucket,
                o.key.trim_end_matches('/')
            ))
        } else {
            local_path_of(dst, rel.trim_end_matches('/'))
        };
        if let Ok(p) = &path
            && !marker
        {
            ctx.check_download_dest(p).with_context(|| format!("cannot download {}/{}", src.bucket, o.key))?;
        }
        plan.push((o, marker, path));
    }
    let bytes = total_size(&objects);
    let mut tree = Tree::new(ctx, objects.len() as u64, bytes);
    for (o, marker, path) in plan {
        tree.start(&o.key)?;
        let r = path.and_then(|path| {
            if marker {
                std::fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
                return Ok(0);
            }
            transfer::download_to_file(ctx, &bucket, &o.key, &path, transfer::Dest::FromKey, &tree.bar)
        });
        tree.record(&format!("{}/{}", src.bucket, o.key), r);
    }
    tree.finish(ctx, "downloaded", &dst.display().to_string())
}

/// Copies within the store (each object's bytes are copied; ETag and metadata are kept).
fn within(ctx: &Ctx, recursive: bool, src: &Address, dst: &Address) -> anyhow::Result<()> {
    let db = ctx.open()?;
    let bucket = src.bucket(&db)?;
    dst.bucket(&db)?;
    let Some(objects) = tree_or_single(&bucket, src, recursive)? else {
        let key = if dst.key.is_empty() || dst.key.ends_with('/') {
            format!("{}{}", dst.key, key_basename(&src.key)?)
        } else {
            dst.key.clone()
        };
        let spinner = ctx.progress.spinner(&format!("copying {src}"));
        let info = copy_one(&db, src, &src.key, dst, &key)?;
        spinner.finish_and_clear();
        return ctx.say(format_args!("{} -> {} ({})", shown(src), shown_object(&dst.bucket, &key), size(info.size)));
    };
    let (from, to) = (src.dir_prefix(), dst.dir_prefix());
    let mut tree = Tree::new(ctx, objects.len() as u64, total_size(&objects));
    for o in &objects {
        tree.start(&o.key)?;
        let key = format!("{to}{}", &o.key[from.len()..]);
        let r = copy_one(&db, src, &o.key, dst, &key).map(|i| i.size);
        if let Ok(n) = &r {
            tree.bar.inc(*n);
        }
        tree.record(&format!("{}/{}", src.bucket, o.key), r);
    }
    tree.finish(ctx, "copied", &format!("{}/{to}", dst.bucket))
}

fn copy_one(db: &Datastore, src: &Address, src_key: &str, dst: &Address, dst_key: &str) -> anyhow::Result<ObjectInfo> {
    db.copy_object(&src.bucket, src_key, &dst.bucket, dst_key, &CopyOptions::default())
        .with_context(|| format!("cannot copy {}/{src_key} to {}/{dst_key}", src.bucket, dst.bucket))
}

/// The bytes of `objects` for a progress bar, saturating: sizes come from stored records, and a
/// damaged one must not wrap the total (or, in a debug build, panic).
fn total_size(objects: &[keystone::ObjectInfo]) -> u64 {
    objects.iter().fold(0u64, |acc, o| acc.saturating_add(o.size))
}
