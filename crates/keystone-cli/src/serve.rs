//! `keystone serve`: the S3-compatible endpoint (owned by the S3 layer).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Run an S3-compatible HTTP endpoint over the store.
///
/// With no credentials configured, a key pair is generated on first start and saved to
/// `<store>.credentials` (mode 0600).
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KEYSTONE_ADDR", default_value = "127.0.0.1:9000")]
    pub addr: SocketAddr,
    /// Region reported to clients.
    #[arg(long, env = "KEYSTONE_REGION", default_value = "us-east-1")]
    pub region: String,
    /// File with access-key/secret pairs, one `ACCESS_KEY:SECRET` per line.
    #[arg(long, env = "KEYSTONE_CREDENTIALS_FILE")]
    pub credentials_file: Option<PathBuf>,
    /// Access key (with --secret-key).
    #[arg(long, env = "KEYSTONE_ACCESS_KEY")]
    pub access_key: Option<String>,
    /// Secret key of --access-key.
    #[arg(long, env = "KEYSTONE_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Log filter (error, warn, info, debug, trace, or tracing directives).
    #[arg(long, env = "KEYSTONE_LOG", default_value = "info")]
    pub log_level: String,
    /// Seconds a connection may stay idle (no request head, a stalled body, an unread download),
    /// 1 to 86400.
    #[arg(long, env = "KEYSTONE_IDLE_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout: u64,
    /// Serve the store read-only: it must exist and is opened without write access (other
    /// processes, such as `keystone ls`, may read it meanwhile); every write answers AccessDenied.
    #[arg(long, env = "KEYSTONE_READ_ONLY")]
    pub read_only: bool,
    /// Seconds shutdown waits for requests in flight, 0 to 86400.
    #[arg(long, env = "KEYSTONE_SHUTDOWN_GRACE", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub shutdown_grace: u64,
    /// Most requests served at once, 1 to 1048576 (an upload in flight holds up to ~25 MiB of
    /// memory); more wait up to 10 s for a place, then get 503 SlowDown, which clients retry.
    #[arg(long, env = "KEYSTONE_MAX_REQUESTS", default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub max_requests: u64,
}

/// Runs the server on `store` until SIGINT/SIGTERM.
pub fn run(store: PathBuf, args: ServeArgs) -> anyhow::Result<()> {
    let limits = keystone_s3::Limits {
        idle_timeout: Duration::from_secs(args.idle_timeout),
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        max_requests: usize::try_from(args.max_requests).unwrap_or(keystone_s3::MAX_REQUESTS),
        ..keystone_s3::Limits::default()
    };
    let opts = keystone_s3::ServeOptions {
        addr: args.addr,
        store,
        read_only: args.read_only,
        region: args.region,
        credentials_file: args.credentials_file,
        access_key: args.access_key,
        secret_key: args.secret_key,
        log_level: args.log_level,
        limits,
    };
    keystone_s3::serve_blocking(&opts)?;
    Ok(())
}
