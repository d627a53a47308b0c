//! What every command shares: the store path, opening the store, `BUCKET/KEY` addresses, and
//! turning errors into one line and an exit code.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use keystone::{Bucket, Datastore};

use crate::progress::Progress;

/// How long a command that only reads waits for another process to let go of the store
/// (one recovering it after a crash, say) before it reports the store in use.
const OPEN_WAIT: Duration = Duration::from_secs(2);

/// The options every command gets.
#[derive(Debug)]
pub struct Ctx {
    /// The store file.
    pub store: PathBuf,
    /// `--quiet`: no bars, no summaries.
    pub quiet: bool,
    /// Progress bars on stderr (hidden unless stderr is a terminal and not quiet).
    pub progress: Progress,
}

impl Ctx {
    pub fn new(store: PathBuf, quiet: bool) -> Self {
        Ctx { store, quiet, progress: Progress::new(quiet) }
    }

    /// Opens an existing store for writing; a missing file is an error rather than a new empty
    /// store.
    pub fn open(&self) -> anyhow::Result<Datastore> {
        self.require_store()?;
        self.open_or_create()
    }

    /// Opens an existing store read-only, for a command that only reads: nothing is written
    /// (an empty file is not made a store), a store the user may not write can be read, and
    /// several such commands may read at once. A store that was not closed cleanly is first
    /// recovered by an open for writing, as SQLite's first reader rolls back a hot journal;
    /// readers that meet at such a store wait (up to `OPEN_WAIT`) for the one recovering it.
    pub fn open_read(&self) -> anyhow::Result<Datastore> {
        self.require_store()?;
        let deadline = Instant::now() + OPEN_WAIT;
        let mut pause = Duration::from_millis(5);
        let mut recovered = false;
        loop {
            let waiting = Instant::now() < deadline;
            match Datastore::builder().read_only(true).open(&self.store) {
                // Recovered once at most: a store still not clean after that is reported.
                Err(keystone::Error::NeedsRecovery { .. }) if !recovered => match self.open_for_writing() {
                    Ok(db) => {
                        drop(db);
                        recovered = true;
                        continue;
                    }
                    // Another process has it (recovering it too, say): wait for it.
                    Err(keystone::Error::AlreadyOpen { .. }) if waiting => {}
                    // A store of a newer format was recovered by redb, then refused: said as
                    // for a clean one.
                    Err(e @ (keystone::Error::AlreadyOpen { .. } | keystone::Error::NewerFormat { .. })) => {
                        return Err(self.open_error(e));
                    }
                    Err(e) => {
                        return Err(anyhow::Error::new(e).context(format!(
                            "store {} was not closed cleanly and could not be opened for writing to recover it",
                            self.store.display()
                        )));
                    }
                },
                Err(keystone::Error::AlreadyOpen { .. }) if waiting => {}
                other => return other.map_err(|e| self.open_error(e)),
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    fn require_store(&self) -> anyhow::Result<()> {
        let Ok(meta) = std::fs::metadata(&self.store) else {
            return Err(anyhow!(
                "no store at {} (create one with `keystone mb BUCKET`, or choose one with --store or KEYSTONE_STORE)",
                self.store.display()
            ));
        };
        // Only `mb` and `serve` make a store of an empty file; any other command leaves it be.
        if meta.is_file() && meta.len() == 0 {
            return Err(anyhow!(
                "cannot open store {}: an empty file is not a Keystone store (`keystone mb BUCKET` makes it one)",
                self.store.display()
            ));
        }
        Ok(())
    }

    /// Opens the store for writing, creating the file when it does not exist.
    pub fn open_or_create(&self) -> anyhow::Result<Datastore> {
        self.open_for_writing().map_err(|e| self.open_error(e))
    }

    fn open_for_writing(&self) -> keystone::Result<Datastore> {
        // MD5 ETags, as `keystone serve` writes them: what the CLI uploads looks the same to an
        // S3 client later.
        let db = Datastore::builder().etag(keystone::EtagAlgorithm::Md5).open(&self.store)?;
        // Said on standard error (standard output may be an object's bytes): the store was
        // recovered, and nothing more needs doing.
        let replayed = db.journal_records_replayed();
        if replayed > 0 && !self.quiet {
            eprintln!(
                "keystone: store {} was not closed cleanly; replayed {} of its journal (its last durable commits)",
                self.store.display(),
                crate::output::plural(replayed, "record")
            );
        }
        Ok(db)
    }

    fn open_error(&self, e: keystone::Error) -> anyhow::Error {
        match e {
            keystone::Error::AlreadyOpen { .. } => anyhow!(
                "store {} is in use by another process (a running `keystone serve`, or another keystone command \
                 reading or writing it); wait for it, stop it, or go through its S3 endpoint",
                self.store.display()
            ),
            // The library's message names the path again: said once here.
            keystone::Error::NotAStore { reason, .. } => {
                anyhow!("cannot open store {}: it is not a Keystone store ({reason})", self.store.display())
            }
            keystone::Error::NewerFormat { format, writer, supported, .. } => anyhow!(
                "cannot open store {}: it is in format {format} (raised by {writer}), and this keystone reads formats \
                 up to {supported}; use {writer} or later",
                self.store.display()
            ),
            other => anyhow::Error::new(other).context(format!("cannot open store {}", self.store.display())),
        }
    }

    /// Whether `path` is the store file itself (which must not be uploaded into itself: it
    /// grows while it is read).
    pub fn is_store(&self, path: &Path) -> bool {
        same_file(path, &self.store)
    }

    /// Refuses to upload the store file, or its redo journal, into the store.
    pub fn check_not_store(&self, path: &Path) -> anyhow::Result<()> {
        if self.is_store(path) {
            return Err(anyhow!("{} is the store itself and cannot be uploaded into it", path.display()));
        }
        if same_file(path, &keystone::Datastore::journal_path(&self.store)) {
            return Err(anyhow!("{} is the store's redo journal and cannot be uploaded into it", path.display()));
        }
        Ok(())
    }

    /// The local files no download may write: the store, and the files kept beside it
    /// (its redo journal; `<store>.credentials`, the key pair `keystone serve` generates), each
    /// with what it is.
    fn protected_files(&self) -> [(PathBuf, &'static str); 3] {
        let mut credentials = self.store.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
        credentials.push(".credentials");
        [
            (self.store.clone(), "the store itself"),
            (keystone::Datastore::journal_path(&self.store), "the store's redo journal"),
            (self.store.with_file_name(credentials), "the store's credentials file (written by `keystone serve`)"),
        ]
    }

    /// What `path` is when it is the store file or one of its companion files.
    pub fn protected(&self, path: &Path) -> Option<&'static str> {
        self.protected_files().into_iter().find(|(file, _)| same_file(path, file)).map(|(_, what)| what)
    }

    /// Refuses a local destination of a download that is the store file or one of its
    /// companion files: writing it would destroy the store (or its credentials). Every command
    /// that writes local files checks each destination here before writing anything.
    pub fn check_download_dest(&self, dest: &Path) -> anyhow::Result<()> {
        match self.protected(dest) {
            Some(what) => Err(anyhow!(
                "{} is {what} and cannot be overwritten by a download; choose another destination",
                dest.display()
            )),
            None => Ok(()),
        }
    }

    /// Prints a summary line on stdout unless `--quiet`.
    pub fn say(&self, line: impl fmt::Display) -> anyhow::Result<()> {
        if self.quiet {
            return Ok(());
        }
        crate::output::line(line)
    }
}

/// A bucket, or an object or prefix in one: `BUCKET`, `BUCKET/KEY`, `BUCKET/PREFIX/`.
/// `ks://` in front is accepted (and forces an argument of `cp` to mean the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub bucket: String,
    pub key: String,
}

/// The scheme that marks an argument as a store address.
pub const SCHEME: &str = "ks://";

impl Address {
    /// Parses `BUCKET[/KEY]`.
    pub fn parse(s: &str) -> anyhow::Result<Address> {
        if !s.starts_with(SCHEME)
            && let Some((scheme, rest)) = s.split_once("://")
            && !scheme.is_empty()
            && !scheme.contains('/')
        {
            return Err(usage(format!(
                "{s:?}: {scheme}:// addresses are not understood; a store address is written {SCHEME}{rest} (or just {rest})"
            )));
        }
        let rest = s.strip_prefix(SCHEME).unwrap_or(s);
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(usage(format!("{s:?} is not an address: expected BUCKET or BUCKET/KEY")));
        }
        Ok(Address { bucket: bucket.to_owned(), key: key.to_owned() })
    }

    /// Parses a bucket alone: `BUCKET`, `BUCKET/` or `ks://BUCKET` (as `mb`, `rb` and
    /// `verify` take it).
    pub fn parse_bucket(s: &str) -> anyhow::Result<String> {
        let a = Address::parse(s)?;
        if !a.key.is_empty() {
            return Err(usage(format!("{s:?}: expected a bucket name, not an object address")));
        }
        Ok(a.bucket)
    }

    /// Parses `BUCKET/KEY` where a key is required.
    pub fn parse_object(s: &str) -> anyhow::Result<Address> {
        let a = Address::parse(s)?;
        if a.key.is_empty() {
            return Err(usage(format!("{s:?} names no object: expected BUCKET/KEY")));
        }
        Ok(a)
    }

    /// The key as a directory prefix: `""` stays empty (the whole bucket), `a` becomes `a/`.
    pub fn dir_prefix(&self) -> String {
        if self.key.is_empty() || self.key.ends_with('/') { self.key.clone() } else { format!("{}/", self.key) }
    }

    /// The handle to the bucket.
    pub fn bucket(&self, db: &Datastore) -> anyhow::Result<Bucket> {
        Ok(db.bucket(&self.bucket)?)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.bucket, self.key)
    }
}

/// A mistake in how the command was called (exit code 2, like clap's own usage errors).
#[derive(Debug)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(msg.into()))
}

/// A command that did all it could but left entries out on purpose, each named as it was
/// skipped (exit code 3; `aws s3 cp` exits 2 there, which is our usage error).
#[derive(Debug)]
pub struct Skipped(pub String);

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Skipped {}

/// The exit code of a command that finished with entries skipped ([`Skipped`]).
pub const EXIT_SKIPPED: u8 = 3;

/// Whether `a` and `b` name the same file: the same device and inode when both exist, else
/// the same path once made absolute with symbolic links resolved (for a path that does not
/// exist yet, its directory resolved and its name appended).
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b))
            && ma.dev() == mb.dev()
            && ma.ino() == mb.ino()
        {
            return true;
        }
    }
    match (resolved(a), resolved(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// `path` made absolute with symbolic links resolved; for a path that does not exist, its
/// directory resolved and its file name appended. `None` when the directory does not exist
/// either (then the path is no existing file's).
fn resolved(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = path.canonicalize() {
        return Some(p);
    }
    let name = path.file_name()?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Some(dir.canonicalize().ok()?.join(name))
}

/// Reads a local file's metadata with a clear message when it cannot.
pub fn local_meta(path: &Path) -> anyhow::Result<std::fs::Metadata> {
    std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))
}

/// `e` with its chain of causes, as one line: `context: cause: cause`. A cause whose text the
/// message so far already ends with is left out (many errors print their source in their own
/// message too, which would otherwise show it twice).
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = crate::output::terminal_safe(&cause.to_string());
        let repeated =
            line.strip_suffix(text.as_str()).is_some_and(|before| !before.ends_with(|c: char| c.is_alphanumeric()));
        if text.is_empty() || repeated {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Prints `e` as one line on stderr and picks the exit code: 2 for usage errors, 3 when
/// entries were skipped, 1 otherwise.
/// A closed standard output (`keystone cat x | head`) ends the command quietly.
pub fn report(e: &anyhow::Error) -> ExitCode {
    let broken_pipe =
        e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe));
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    if crate::interrupt::happened() {
        let (code, what) = crate::interrupt::outcome();
        eprintln!("keystone: {what}");
        return ExitCode::from(code);
    }
    eprintln!("keystone: {}", one_line(e));
    if e.downcast_ref::<Usage>().is_some() {
        ExitCode::from(2)
    } else if e.downcast_ref::<Skipped>().is_some() {
        ExitCode::from(EXIT_SKIPPED)
    } else {
        ExitCode::FAILURE
    }
}
