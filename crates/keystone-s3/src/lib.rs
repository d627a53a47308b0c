//! An S3-compatible HTTP endpoint over a Keystone store.
//!
//! The S3 protocol (routing, XML, SigV4 header/query/streaming auth) comes from
//! [s3s](https://docs.rs/s3s); this crate implements its `S3` trait over
//! [`keystone::Datastore`], fills the gaps s3s leaves (checksums, conditional requests,
//! URL encoding of listings, SigV2 rejection, ...; see `docs/s3.md`), and runs it on hyper.
//!
//! Every call into the store runs on tokio's blocking pool; request and response bodies
//! stream between the connection and the store through bounded channels, so memory does not
//! grow with object size.
//!
//! ```no_run
//! # async fn run() -> Result<(), keystone_s3::ServeError> {
//! // S3 clients check ETags against the MD5 of what they sent: the store must compute MD5 ETags.
//! let db = keystone::Datastore::builder()
//!     .etag(keystone::EtagAlgorithm::Md5)
//!     .open("keystone.redb")
//!     .map_err(keystone_s3::ServeError::from)?;
//! let config = keystone_s3::ServerConfig::new(vec![keystone_s3::AccessKey::new("AK", "SECRET")]);
//! let server = keystone_s3::Server::start(db, ([127, 0, 0, 1], 0).into(), config).await?;
//! println!("listening on http://{}", server.local_addr());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod auth;
mod body;
mod chunked;
mod credentials;
mod errors;
mod idle;
mod log;
mod presigned;
mod s3;
mod serve;
mod server;
mod xml_digest;

pub use credentials::{AccessKey, load_credentials};
pub use serve::{ServeOptions, serve_blocking};
pub use server::{Limits, MAX_REQUESTS, MAX_WAIT, Server, ServerConfig};

/// Errors of the server itself (startup, configuration), not of S3 requests.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] keystone::Error),
    /// Binding the address or another I/O step failed.
    #[error("{context}: {source}")]
    Io {
        /// What the server was doing.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Bad configuration (credentials file, options).
    #[error("{0}")]
    Config(String),
}

impl ServeError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ServeError::Io { context: context.into(), source }
    }
}
