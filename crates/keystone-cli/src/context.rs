//! What every command shares: the store path, opening the store, `BUCKET/KEY` addresses, and
//! turning errors into one line and an exit code.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use keystone::{Bucket, Datastore};

use crate::progress::Progress;

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

    /// Opens an existing store; a missing file is an error rather than a new empty store.
    pub fn open(&self) -> anyhow::Result<Datastore> {
        if !self.store.exists() {
            return Err(anyhow!(
                "no store at {} (create one with `keystone mb BUCKET`, or choose one with --store or KEYSTONE_STORE)",
                self.store.display()
            ));
        }
        self.open_or_create()
    }

    /// Opens the store, creating the file when it does not exist.
    pub fn open_or_create(&self) -> anyhow::Result<Datastore> {
        // MD5 ETags, as `keystone serve` writes them: what the CLI uploads looks the same to an
        // S3 client later.
        Datastore::builder().etag(keystone::EtagAlgorithm::Md5).open(&self.store).map_err(|e| match e {
            keystone::Error::AlreadyOpen { .. } => anyhow!(
                "store {} is in use by another process (a running `keystone serve`, say); stop it or go through its \
                 S3 endpoint",
                self.store.display()
            ),
            other => anyhow::Error::new(other).context(format!("cannot open store {}", self.store.display())),
        })
    }

    /// Whether `path` is the store file itself (which must not be uploaded into itself: it
    /// grows while it is read).
    pub fn is_store(&self, path: &Path) -> bool {
        match (path.canonicalize(), self.store.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }

    /// Refuses to upload the store file into itself.
    pub fn check_not_store(&self, path: &Path) -> anyhow::Result<()> {
        if self.is_store(path) {
            return Err(anyhow!("{} is the store itself and cannot be uploaded into it", path.display()));
        }
        Ok(())
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
        let rest = s.strip_prefix(SCHEME).unwrap_or(s);
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(usage(format!("{s:?} is not an address: expected BUCKET or BUCKET/KEY")));
        }
        Ok(Address { bucket: bucket.to_owned(), key: key.to_owned() })
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

/// Reads a local file's metadata with a clear message when it cannot.
pub fn local_meta(path: &Path) -> anyhow::Result<std::fs::Metadata> {
    std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Prints `e` as one line on stderr and picks the exit code: 2 for usage errors, 1 otherwise.
/// A closed standard output (`keystone cat x | head`) ends the command quietly.
pub fn report(e: &anyhow::Error) -> ExitCode {
    let broken_pipe =
        e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe));
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    if crate::interrupt::happened() {
        eprintln!("keystone: interrupted");
        return ExitCode::from(130);
    }
    let line = format!("{e:#}").replace('\n', " ");
    eprintln!("keystone: {line}");
    if e.downcast_ref::<Usage>().is_some() { ExitCode::from(2) } else { ExitCode::FAILURE }
}
