//! An S3-compatible HTTP endpoint over a Keystone store (work in progress: see issue 3).

#![deny(missing_docs)]

use std::net::SocketAddr;
use std::path::PathBuf;

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on (default 127.0.0.1:9000).
    pub addr: SocketAddr,
    /// Store file (default ./keystone.redb).
    pub store: PathBuf,
    /// Region reported to clients (default us-east-1).
    pub region: String,
    /// File of access-key/secret pairs, if any.
    pub credentials_file: Option<PathBuf>,
    /// One access key given directly (with `secret_key`).
    pub access_key: Option<String>,
    /// The secret of `access_key`.
    pub secret_key: Option<String>,
    /// Log filter, e.g. "info".
    pub log_level: String,
}

/// Errors of the server itself.
#[derive(Debug)]
pub struct ServeError(pub String);

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServeError {}

/// Runs the server until SIGINT/SIGTERM.
///
/// # Errors
/// Always, for now: the S3 layer is not built yet.
pub fn serve_blocking(opts: &ServeOptions) -> Result<(), ServeError> {
    Err(ServeError(format!("the S3 server is not built yet (store {})", opts.store.display())))
}
