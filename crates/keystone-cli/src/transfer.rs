//! Moving bytes between local files and objects, in bounded memory, counting progress; shared
//! by `put`, `get`, `cat` and `cp`.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use indicatif::ProgressBar;
use keystone::{Bucket, ObjectInfo, ObjectMeta, PutOptions};

use crate::context::Ctx;
use crate::interrupt::{self, Stoppable};

/// Bytes moved per read when downloading.
const COPY_BUF: usize = 256 * 1024;

/// Metadata options of `put` and `cp` uploads.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MetaArgs {
    /// Content type of the object(s) (default: guessed from the file extension, else the key's).
    #[arg(long, value_name = "TYPE")]
    pub content_type: Option<String>,
    /// User metadata stored with the object(s); repeat for several.
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub meta: Vec<(String, String)>,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

impl MetaArgs {
    /// The write options of `key` from the file at `path` (`None` for stdin). Without
    /// `--content-type`, the type is guessed from the file's extension, else the key's.
    pub fn options(&self, path: Option<&Path>, key: &str) -> PutOptions {
        let guessed = path
            .and_then(|p| mime_guess::from_path(p).first_raw())
            .or_else(|| mime_guess::from_path(key).first_raw())
            .map(str::to_owned);
        PutOptions {
            meta: ObjectMeta {
                content_type: self.content_type.clone().or(guessed),
                user: self.meta.iter().cloned().collect(),
                ..ObjectMeta::default()
            },
            ..PutOptions::default()
        }
    }
}

/// Uploads the local file `src` as `bucket/key`, counting bytes on `bar`.
pub fn upload_file(
    bucket: &Bucket,
    key: &str,
    src: &Path,
    meta: &MetaArgs,
    bar: &ProgressBar,
) -> anyhow::Result<ObjectInfo> {
    let file = File::open(src).with_context(|| format!("cannot read {}", src.display()))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        anyhow::bail!("{} is a directory (use `keystone cp -r` for a tree)", src.display());
    }
    bucket
        .put_reader(key, bar.wrap_read(Stoppable(file)), meta.options(Some(src), key))
        .with_context(|| format!("cannot upload {} to {}/{key}", src.display(), bucket.name()))
}

/// Uploads standard input as `bucket/key`.
pub fn upload_stdin(bucket: &Bucket, key: &str, meta: &MetaArgs, bar: &ProgressBar) -> anyhow::Result<ObjectInfo> {
    let stdin = io::stdin().lock();
    bucket
        .put_reader(key, bar.wrap_read(Stoppable(stdin)), meta.options(None, key))
        .with_context(|| format!("cannot upload standard input to {}/{key}", bucket.name()))
}

/// Streams `bucket/key` into `out`, counting bytes on `bar`; `to` names `out` in errors.
pub fn download(bucket: &Bucket, key: &str, out: &mut impl Write, to: &str, bar: &ProgressBar) -> anyhow::Result<u64> {
    let mut reader = bucket.open(key)?;
    let mut buf = vec![0u8; COPY_BUF];
    let mut total = 0u64;
    loop {
        interrupt::check()?;
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(anyhow::Error::new(keystone::Error::from_io(e))
                    .context(format!("cannot read {}/{key}", bucket.name())));
            }
        };
        out.write_all(&buf[..n]).with_context(|| format!("cannot write {to}"))?;
        bar.inc(n as u64);
        total += n as u64;
    }
    out.flush().with_context(|| format!("cannot write {to}"))?;
    Ok(total)
}

/// Bytes of the destination's name kept in its temporary file's name.
const TEMP_NAME_MAX: usize = 200;

/// Where a download's destination comes from, which decides how far it is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// Named by the user (`get`, a single `cp`): a symbolic link to a file is written through,
    /// and a device, FIFO or `/dev/stdout` is written into, as `cp` does.
    Named,
    /// Made from an object's key under a directory (`cp -r`): a symbolic link there is replaced,
    /// not followed, and anything but a regular file is refused — whoever could plant a link or
    /// a FIFO in the tree must not send the bytes elsewhere or stall the copy.
    FromKey,
}

/// Downloads `bucket/key` to the file `dest`. The bytes go to a hidden temporary file in the
/// same directory, renamed over `dest` only once complete and verified, so a failed download
/// leaves no partial file; a file replaced keeps its permissions (and its owner, where the
/// process may set it). A destination that is the store (or a file kept beside it) is refused
/// before anything is written. How a link or a special file at `dest` is handled depends on
/// `kind` ([`Dest`]). Missing directories of `dest` are created.
pub fn download_to_file(
    ctx: &Ctx,
    bucket: &Bucket,
    key: &str,
    dest: &Path,
    kind: Dest,
    bar: &ProgressBar,
) -> anyhow::Result<u64> {
    ctx.check_download_dest(dest)?;
    let shown = dest.display().to_string();
    let is_link = std::fs::symlink_metadata(dest).is_ok_and(|m| m.file_type().is_symlink());
    // What `dest` names, links followed.
    let target = std::fs::metadata(dest).ok();
    let special = target.as_ref().is_some_and(|m| !m.is_file() && !m.is_dir());
    let linked;
    let (dest, existing) = match kind {
        Dest::Named if special => {
            // Written into through the name given (`/dev/stdout` names a pipe no path reaches).
            let file =
                std::fs::OpenOptions::new().write(true).open(dest).with_context(|| format!("cannot write {shown}"))?;
            let mut out = BufWriter::with_capacity(COPY_BUF, file);
            return download(bucket, key, &mut out, &shown, bar);
        }
        Dest::Named if is_link && target.as_ref().is_some_and(std::fs::Metadata::is_file) => {
            // The file the link names is replaced; the link stays.
            linked = dest.canonicalize().with_context(|| format!("cannot write {shown}"))?;
            (linked.as_path(), target)
        }
        // The link itself is replaced by the file.
        Dest::FromKey if is_link => (dest, None),
        Dest::FromKey if special => {
            anyhow::bail!(
                "cannot write {shown}: it exists and is not a regular file (a tree download writes only files)"
            )
        }
        Dest::Named | Dest::FromKey => (dest, target.filter(std::fs::Metadata::is_file)),
    };
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // The temporary name adds 13 bytes (`.`, `.XXXXXX.part`); a name near the file system's
    // 255-byte limit is shortened in it (only the final name must fit).
    if name.len() > TEMP_NAME_MAX {
        let mut end = TEMP_NAME_MAX;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".part");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(&dir).with_context(|| format!("cannot write {shown}"))?;
    if let Some(meta) = existing {
        keep_owner_and_mode(tmp.as_file(), &meta).with_context(|| format!("cannot write {shown}"))?;
    }
    let n = {
        let mut out = BufWriter::with_capacity(COPY_BUF, tmp.as_file_mut());
        download(bucket, key, &mut out, &shown, bar)?
    };
    tmp.persist(dest).map_err(|e| e.error).with_context(|| format!("cannot write {shown}"))?;
    Ok(n)
}

/// Gives the file replacing an existing one that file's permissions, and its owner and group
/// where the process may (root; a group the user is in): a download over a private file must
/// not leave it readable by all.
fn keep_owner_and_mode(file: &File, old: &std::fs::Metadata) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let _ = std::os::unix::fs::fchown(file, Some(old.uid()), None);
        let _ = std::os::unix::fs::fchown(file, None, Some(old.gid()));
        // Not set-user-id or set-group-id: those were given to the old content.
        file.set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o1777))
    }
    #[cfg(not(unix))]
    file.set_permissions(old.permissions())
}
