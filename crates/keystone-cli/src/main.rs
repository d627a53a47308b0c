//! The `keystone` command-line tool: manage a Keystone store like `aws s3` or `mc`.
//!
//! Each command group lives in its own module: [`buckets`] (mb, rb, ls), [`objects`] (put, get,
//! cat, rm, stat), [`copy`] (cp), [`maint`] (du, verify, gc, compact) and `serve`. Shared
//! pieces: [`context`] (store opening, addresses, errors), [`progress`] (bars) and [`output`]
//! (sizes, times, JSON, stdout).

mod buckets;
mod context;
mod copy;
mod interrupt;
mod maint;
mod objects;
mod output;
mod progress;
mod serve;
mod transfer;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::context::Ctx;

/// Manage a Keystone object store: buckets of objects in one file.
#[derive(Debug, Parser)]
#[command(
    name = "keystone",
    version,
    after_help = "Addresses are written BUCKET/KEY, and BUCKET/PREFIX/ for trees.\n\n\
Examples:\n  keystone mb photos\n  keystone cp -r ./pictures photos/2024/\n  keystone ls photos/2024/\n  \
keystone get photos/2024/cat.jpg ./cat.jpg\n  KEYSTONE_STORE=/data/store.redb keystone du"
)]
struct Cli {
    /// The store file (created by `mb` or `serve` when it does not exist) [default:
    /// $KEYSTONE_STORE, else keystone.redb].
    // KEYSTONE_STORE is read by `store_path`, not by clap: clap took an empty variable for a
    // missing value of --store, even with --store given.
    #[arg(long, global = true, value_name = "PATH")]
    store: Option<PathBuf>,
    /// Draw no progress bars and print no summaries.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a bucket.
    #[command(after_help = "Example:\n  keystone mb photos")]
    Mb(buckets::MbArgs),
    /// Remove a bucket (only an empty one unless --force).
    #[command(after_help = "Examples:\n  keystone rb photos\n  keystone rb --force photos")]
    Rb(buckets::RbArgs),
    /// List buckets, or the objects of a bucket.
    #[command(
        after_help = "Examples:\n  keystone ls\n  keystone ls photos/2024/\n  keystone ls --recursive --json photos"
    )]
    Ls(buckets::LsArgs),
    /// Upload a file (or standard input) as one object.
    #[command(
        after_help = "Examples:\n  keystone put ./cat.jpg photos/2024/cat.jpg\n  keystone put ./cat.jpg photos/2024/\n  \
tar c . | keystone put - backups/site.tar --content-type application/x-tar --meta host=web1"
    )]
    Put(objects::PutArgs),
    /// Download an object to a file (or standard output).
    #[command(
        after_help = "Examples:\n  keystone get photos/2024/cat.jpg\n  keystone get photos/2024/cat.jpg ./cat.jpg\n  \
keystone get backups/site.tar - | tar x"
    )]
    Get(objects::GetArgs),
    /// Write an object to standard output.
    #[command(after_help = "Example:\n  keystone cat configs/app.toml")]
    Cat(objects::CatArgs),
    /// Copy files and trees between the local disk and the store.
    #[command(after_help = copy::HELP)]
    Cp(copy::CpArgs),
    /// Delete an object, or every object under a prefix with -r.
    #[command(after_help = "Examples:\n  keystone rm photos/2024/cat.jpg\n  keystone rm -r photos/2024/")]
    Rm(objects::RmArgs),
    /// Show an object's size, ETag, checksum, content type, metadata and times.
    #[command(
        after_help = "Examples:\n  keystone stat photos/2024/cat.jpg\n  keystone stat --json photos/2024/cat.jpg"
    )]
    Stat(objects::StatArgs),
    /// Count objects and bytes, per bucket or under a prefix.
    #[command(after_help = "Examples:\n  keystone du\n  keystone du photos/2024/")]
    Du(maint::DuArgs),
    /// Re-read every object and check its checksum; exits 1 if any is corrupt.
    #[command(after_help = "Examples:\n  keystone verify\n  keystone verify photos")]
    Verify(maint::VerifyArgs),
    /// Reclaim space from abandoned uploads.
    #[command(after_help = "Examples:\n  keystone gc\n  keystone gc --abort-uploads-older-than 7d")]
    Gc(maint::GcArgs),
    /// Shrink the store file to the space in use.
    #[command(after_help = "Example:\n  keystone compact")]
    Compact,
    /// Copy everything that can still be read of a damaged store into a new store file.
    #[command(after_help = "Example:\n  keystone --store damaged.keystone salvage rescued.keystone")]
    Salvage(maint::SalvageArgs),
    /// Run an S3-compatible HTTP endpoint over the store.
    #[command(
        after_help = "Example:\n  keystone serve --addr 127.0.0.1:9000 --access-key admin --secret-key secret123"
    )]
    Serve(serve::ServeArgs),
}

/// The store file: `--store`, else `$KEYSTONE_STORE`, else `./keystone.redb`. An empty
/// KEYSTONE_STORE is a mistake, not the default.
fn store_path(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = flag {
        return Ok(path);
    }
    match std::env::var_os("KEYSTONE_STORE") {
        Some(v) if v.is_empty() => Err(context::usage(
            "the environment variable KEYSTONE_STORE is set but empty: set it to the store file's path, \
             unset it (`unset KEYSTONE_STORE`) to use ./keystone.redb, or pass --store PATH",
        )),
        Some(v) => Ok(PathBuf::from(v)),
        None => Ok(PathBuf::from("keystone.redb")),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let store = store_path(cli.store)?;
    let ctx = Ctx::new(store.clone(), cli.quiet);
    if matches!(cli.command, Command::Put(_) | Command::Get(_) | Command::Cp(_)) {
        interrupt::install();
    }
    match cli.command {
        Command::Mb(a) => buckets::mb(&ctx, &a),
        Command::Rb(a) => buckets::rb(&ctx, &a),
        Command::Ls(a) => buckets::ls(&ctx, &a),
        Command::Put(a) => objects::put(&ctx, &a),
        Command::Get(a) => objects::get(&ctx, &a),
        Command::Cat(a) => objects::cat(&ctx, &a),
        Command::Cp(a) => copy::cp(&ctx, &a),
        Command::Rm(a) => objects::rm(&ctx, &a),
        Command::Stat(a) => objects::stat(&ctx, &a),
        Command::Du(a) => maint::du(&ctx, &a),
        Command::Verify(a) => maint::verify(&ctx, &a),
        Command::Gc(a) => maint::gc(&ctx, &a),
        Command::Compact => maint::compact(&ctx),
        Command::Salvage(a) => maint::salvage(&ctx, &a),
        Command::Serve(args) => serve::run(store, args),
    }
}

fn main() -> ExitCode {
    // A bug must still end in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        // A damaged page of the store: the library catches it and reports it as the error.
        if keystone::panic_is_caught() {
            return;
        }
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("keystone: internal error{at}: {what} (please report this)");
        // With RUST_BACKTRACE set, as the standard hook does, for the report.
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
            eprintln!("{}", std::backtrace::Backtrace::force_capture());
        }
    }));
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => context::report(&e),
    }
}
