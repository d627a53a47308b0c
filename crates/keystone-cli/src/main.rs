//! The `keystone` command-line tool (work in progress: see issue 4).

mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Manage a Keystone object store.
#[derive(Debug, Parser)]
#[command(name = "keystone", version)]
struct Cli {
    /// The store file.
    #[arg(long, global = true, env = "KEYSTONE_STORE", default_value = "keystone.redb")]
    store: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an S3-compatible HTTP endpoint over the store.
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(cli.store, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keystone: {e:#}");
            ExitCode::FAILURE
        }
    }
}
