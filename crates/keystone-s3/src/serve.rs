//! `keystone serve`: bind the port, open the store, resolve credentials, run until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::ServeError;
use crate::credentials::{generate_default, read_default, resolve_given};
use crate::server::{Limits, Server, ServerConfig};

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on (default 127.0.0.1:9000).
    pub addr: SocketAddr,
    /// Store file (default ./keystone.redb), created if missing (unless `read_only`).
    pub store: PathBuf,
    /// Serve the store read-only: it must exist, is opened without write access (other
    /// processes may read it too), and every write answers `AccessDenied`.
    pub read_only: bool,
    /// Region reported to clients (default us-east-1).
    pub region: String,
    /// File of access-key/secret pairs, if any.
    pub credentials_file: Option<PathBuf>,
    /// One access key given directly (with `secret_key`).
    pub access_key: Option<String>,
    /// The secret of `access_key`.
    pub secret_key: Option<String>,
    /// Log filter, e.g. "info" or "info,keystone_s3=debug".
    pub log_level: String,
    /// Limits.
    pub limits: Limits,
}

fn init_logging(filter: &str) -> Result<(), ServeError> {
    // s3s logs every refused signature at ERROR and, at DEBUG, whole requests with their
    // Authorization header: keep it quiet unless asked for by name.
    let directives = if filter.contains("s3s") { filter.to_owned() } else { format!("{filter},s3s=off") };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .map_err(|e| ServeError::Config(format!("bad --log-level {filter:?}: {e}")))?;
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    Ok(())
}

/// Runs the server until SIGINT/SIGTERM, then stops accepting, lets requests in flight finish
/// (up to the grace period) and closes the store.
///
/// # Errors
/// Logging, credential or store setup failed, or the address cannot be bound.
pub fn serve_blocking(opts: &ServeOptions) -> Result<(), ServeError> {
    init_logging(&opts.log_level)?;
    opts.limits.check()?;
    // Everything that can fail without writing goes first — the credentials given or saved
    // beside the store, the port — so that a mistake leaves no new store or credentials file
    // behind. Only a failure to write a generated credentials file comes after the store's
    // creation.
    let given =
        resolve_given(opts.credentials_file.as_deref(), opts.access_key.as_deref(), opts.secret_key.as_deref())?;
    let given = match given {
        Some(given) => Some(given),
        None => read_default(&opts.store)?,
    };
    let listener = std::net::TcpListener::bind(opts.addr)
        .map_err(|e| ServeError::io(format!("cannot listen on {}", opts.addr), e))?;
    let db = keystone::Datastore::builder()
        .etag(keystone::EtagAlgorithm::Md5)
        .read_only(opts.read_only)
        .open(&opts.store)?;
    let replayed = db.journal_records_replayed();
    if replayed > 0 {
        tracing::warn!(
            "store {} was not closed cleanly; replayed {replayed} record(s) of its journal (its last durable commits)",
            opts.store.display()
        );
    }
    let creds = match given {
        Some(given) => given,
        None => generate_default(&opts.store)?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("keystone-serve")
        .build()
        .map_err(|e| ServeError::io("cannot start the runtime", e))?;
    let config = ServerConfig { keys: creds.keys.clone(), region: opts.region.clone(), limits: opts.limits.clone() };
    rt.block_on(async {
        let server = Server::start_on(db, listener, config).await?;
        let endpoint = format!("http://{}", server.local_addr());
        let first = &creds.keys[0];
        let mode = if opts.read_only { ", read-only" } else { "" };
        // Written, not `println!`ed: a closed standard output (`keystone serve | head -1`)
        // must not panic the server once it is up.
        let store = opts.store.display();
        let credentials = match &creds.generated {
            Some(path) => format!(
                "Generated credentials (saved to {}, mode 0600):\n  access key: {}\n  secret key: {}",
                path.display(),
                first.access_key,
                first.secret_key
            ),
            None => format!("Credentials from {} (access key {}).", creds.source, first.access_key),
        };
        let (access, region) = (&first.access_key, &opts.region);
        let banner = format!(
            "keystone serve: S3 endpoint {endpoint} (store {store}{mode}, region {region})\n{credentials}\n\
             Configure the aws CLI:\n  \
             export AWS_ACCESS_KEY_ID={access} AWS_SECRET_ACCESS_KEY=<secret> AWS_DEFAULT_REGION={region}\n  \
             aws --endpoint-url {endpoint} s3 ls\n"
        );
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(banner.as_bytes()).and_then(|()| out.flush()) {
                tracing::warn!("cannot write the startup banner to standard output: {e}");
            }
        }
        wait_for_signal().await?;
        tracing::info!("signal received");
        server.shutdown().await;
        Ok::<_, ServeError>(())
    })?;
    rt.shutdown_timeout(opts.limits.shutdown_grace);
    tracing::info!("store closed");
    Ok(())
}

async fn wait_for_signal() -> Result<(), ServeError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(|e| ServeError::io("SIGTERM handler", e))?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| ServeError::io("SIGINT handler", e))?;
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(|e| ServeError::io("Ctrl-C handler", e))
    }
}
