//! `keystone serve`: the S3-compatible endpoint (owned by the S3 layer).

use std::net::SocketAddr;
use std::path::PathBuf;

/// Run an S3-compatible HTTP endpoint over the store.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KEYSTONE_ADDR", default_value = "127.0.0.1:9000")]
    pub addr: SocketAddr,
    /// Region reported to clients.
    #[arg(long, env = "KEYSTONE_REGION", default_value = "us-east-1")]
    pub region: String,
    /// File with access-key/secret pairs.
    #[arg(long, env = "KEYSTONE_CREDENTIALS_FILE")]
    pub credentials_file: Option<PathBuf>,
    /// Access key (with --secret-key).
    #[arg(long, env = "KEYSTONE_ACCESS_KEY")]
    pub access_key: Option<String>,
    /// Secret key of --access-key.
    #[arg(long, env = "KEYSTONE_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Log filter (error, warn, info, debug, trace).
    #[arg(long, env = "KEYSTONE_LOG", default_value = "info")]
    pub log_level: String,
}

/// Runs the server on `store` until SIGINT/SIGTERM.
pub fn run(store: PathBuf, args: ServeArgs) -> anyhow::Result<()> {
    let opts = keystone_s3::ServeOptions {
        addr: args.addr,
        store,
        region: args.region,
        credentials_file: args.credentials_file,
        access_key: args.access_key,
        secret_key: args.secret_key,
        log_level: args.log_level,
    };
    keystone_s3::serve_blocking(&opts)?;
    Ok(())
}
