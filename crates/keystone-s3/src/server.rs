//! The HTTP server: accept loop, the outer service (request ids, logs, the pre-filters s3s
//! lacks), limits and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Method, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Error, s3_error};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::ServeError;
use crate::auth::{Access, KeyTable, OpSlot, RequestId};
use crate::chunked::ChunkCap;
use crate::credentials::AccessKey;
use crate::errors::custom;
use crate::idle::{IdleBody, Stalled, WriteIdle};
use crate::log::{Entry, LoggedBody};
use crate::s3::Keystone;

/// Limits that protect the server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request head (request line and headers), bytes; larger gets 431.
    pub max_header_bytes: usize,
    /// Largest XML request body (DeleteObjects, CompleteMultipartUpload, CreateBucket).
    pub max_xml_bytes: usize,
    /// Largest single PUT (S3: 5 GiB); larger uploads must use multipart.
    pub max_object_bytes: u64,
    /// A connection that sends no request head, or a body that makes no progress, or a client
    /// that does not read a download, for this long is dropped (1 s to [`MAX_WAIT`]).
    pub idle_timeout: Duration,
    /// How long shutdown waits for requests in flight (at most [`MAX_WAIT`]).
    pub shutdown_grace: Duration,
    /// Most requests served at once, 1 to [`MAX_REQUESTS`]. A request holds its place until its
    /// response body has been sent, and an upload in flight holds up to ~25 MiB (its part of
    /// the library's upload batch, a chunk, the body's pieces), so this bounds the server's
    /// memory. A request beyond it waits up to `request_queue_wait` for a place, then gets 503
    /// `SlowDown`, which S3 clients retry.
    pub max_requests: usize,
    /// How long a request waits for a place among `max_requests` (at most [`MAX_WAIT`]).
    pub request_queue_wait: Duration,
}

/// The most `max_requests` a server takes.
pub const MAX_REQUESTS: usize = 1 << 20;

impl Limits {
    /// Refuses waits a server cannot keep (a deadline past the clock's range panics in hyper).
    pub(crate) fn check(&self) -> Result<(), ServeError> {
        if self.idle_timeout < Duration::from_secs(1) || self.idle_timeout > MAX_WAIT {
            return Err(ServeError::Config("the idle timeout must be between 1 s and 1 day".into()));
        }
        if self.shutdown_grace > MAX_WAIT {
            return Err(ServeError::Config("the shutdown grace period must be at most 1 day".into()));
        }
        if !(1..=MAX_REQUESTS).contains(&self.max_requests) {
            return Err(ServeError::Config(format!("the most requests at once must be between 1 and {MAX_REQUESTS}")));
        }
        if self.request_queue_wait > MAX_WAIT {
            return Err(ServeError::Config("the wait for a place among the requests must be at most 1 day".into()));
        }
        Ok(())
    }
}

/// The longest idle timeout or shutdown grace a server takes: one day.
pub const MAX_WAIT: Duration = Duration::from_hours(24);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 64 * 1024,
            max_xml_bytes: 4 * 1024 * 1024,
            max_object_bytes: 5 * 1024 * 1024 * 1024,
            idle_timeout: Duration::from_mins(1),
            shutdown_grace: Duration::from_secs(30),
            max_requests: 128,
            request_queue_wait: Duration::from_secs(10),
        }
    }
}

/// How the S3 layer behaves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Access keys that may sign requests.
    pub keys: Vec<AccessKey>,
    /// Region reported to clients (and accepted in CreateBucket's location constraint).
    pub region: String,
    /// Limits.
    pub limits: Limits,
}

impl ServerConfig {
    /// A configuration with these keys, region us-east-1 and default limits.
    pub fn new(keys: Vec<AccessKey>) -> Self {
        ServerConfig { keys, region: "us-east-1".to_owned(), limits: Limits::default() }
    }
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `addr` and serves `db` on the current tokio runtime until [`shutdown`](Self::shutdown).
    ///
    /// # Errors
    /// The address cannot be bound, or no access key is configured.
    pub async fn start(db: keystone::Datastore, addr: SocketAddr, config: ServerConfig) -> Result<Server, ServeError> {
        Self::check(&db, &config)?;
        let listener =
            TcpListener::bind(addr).await.map_err(|e| ServeError::io(format!("cannot listen on {addr}"), e))?;
        Self::run(db, listener, &config)
    }

    /// Serves `db` on a socket already bound (so that a caller can bind before it opens or
    /// creates anything), on the current tokio runtime.
    ///
    /// # Errors
    /// The socket cannot be used, or no access key is configured.
    // Async like `start`, though it awaits nothing: it must run inside the runtime that will
    // serve (the socket is registered with it and the accept loop spawned on it).
    #[allow(clippy::unused_async)]
    pub async fn start_on(
        db: keystone::Datastore,
        listener: std::net::TcpListener,
        config: ServerConfig,
    ) -> Result<Server, ServeError> {
        Self::check(&db, &config)?;
        listener.set_nonblocking(true).map_err(|e| ServeError::io("listening socket", e))?;
        let listener = TcpListener::from_std(listener).map_err(|e| ServeError::io("listening socket", e))?;
        Self::run(db, listener, &config)
    }

    fn check(db: &keystone::Datastore, config: &ServerConfig) -> Result<(), ServeError> {
        config.limits.check()?;
        if config.keys.is_empty() {
            return Err(ServeError::Config("no access keys configured".into()));
        }
        if db.etag_algorithm() != keystone::EtagAlgorithm::Md5 {
            // S3 clients (the AWS SDK for Java v1, rclone) compare a PutObject's ETag with the
            // MD5 of what they sent.
            return Err(ServeError::Config(
                "the store must be opened with Builder::etag(EtagAlgorithm::Md5) to be served over S3".into(),
            ));
        }
        Ok(())
    }

    fn run(db: keystone::Datastore, listener: TcpListener, config: &ServerConfig) -> Result<Server, ServeError> {
        let addr = listener.local_addr().map_err(|e| ServeError::io("local address", e))?;
        let limits = config.limits.clone();
        let mut b = S3ServiceBuilder::new(Keystone::new(db.clone(), config.region.clone(), limits.clone()));
        b.set_auth(KeyTable::new(&config.keys));
        b.set_access(Access { region: config.region.clone() });
        let mut cfg = s3s::config::S3Config::default();
        cfg.xml_max_body_size = limits.max_xml_bytes;
        cfg.post_object_max_file_size = 0;
        b.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(cfg))));
        let outer = Outer {
            s3: b.build(),
            db,
            seq: Arc::new(AtomicU64::new(0)),
            places: Arc::new(Semaphore::new(limits.max_requests)),
            limits: Arc::new(limits.clone()),
        };
        let (stop, stop_rx) = watch::channel(false);
        let done = tokio::spawn(accept_loop(listener, outer, limits, stop_rx));
        Ok(Server { addr, stop, done })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, waits (up to the grace period) for requests in flight, and returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.done.await;
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Headers a request may have: S3's 2 KB of user metadata as one-byte names and values, and
/// the standard ones.
const MAX_HEADERS: usize = 1200;

async fn accept_loop(listener: TcpListener, outer: Outer, limits: Limits, mut stop: watch::Receiver<bool>) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        .max_header_size(limits.max_header_bytes)
        // hyper's default of 100 headers refused (431) a PutObject with 90 metadata entries,
        // well inside S3's 2 KB of metadata (which allows about a thousand one-byte pairs).
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let sock = tokio::select! {
            r = listener.accept() => match r {
                Ok((sock, _)) => sock,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        if let Err(e) = sock.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY");
        }
        let conn = http.serve_connection(TokioIo::new(WriteIdle::new(sock, limits.idle_timeout)), outer.clone());
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: waiting for requests in flight");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(limits.shutdown_grace) => tracing::warn!("shutdown grace period over; dropping connections"),
    }
}

#[derive(Clone)]
struct Outer {
    s3: S3Service,
    /// The store, for the checks made before s3s sees a request.
    db: keystone::Datastore,
    seq: Arc<AtomicU64>,
    /// Places for requests in flight (`Limits::max_requests`).
    places: Arc<Semaphore>,
    limits: Arc<Limits>,
}

/// Requests refused before s3s sees them, for what s3s would get wrong (docs/s3.md).
fn prefilter(req: &hyper::Request<Incoming>, limits: &Limits) -> Option<S3Error> {
    let headers = req.headers();
    let query = req.uri().query().unwrap_or("");
    // Names and values decoded as s3s decodes them (`X-Amz-%45xpires` is `X-Amz-Expires`).
    let pairs = crate::auth::query_pairs(query);
    let param = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let has_param = |name: &str| param(name).is_some();
    if headers.get(hyper::header::AUTHORIZATION).is_some_and(|v| v.as_bytes().starts_with(b"AWS "))
        || has_param("AWSAccessKeyId")
        || has_param("Signature")
    {
        return Some(s3_error!(AccessDenied, "Signature Version 2 is not supported; use Signature Version 4."));
    }
    // One signature per request, as S3 requires: s3s checks a presigned URL's and ignores an
    // Authorization header beside it, whose SignedHeaders would then vouch for headers the
    // checked signature does not cover (an added x-amz-copy-source).
    if headers.contains_key(hyper::header::AUTHORIZATION)
        && ["X-Amz-Signature", "X-Amz-Algorithm", "X-Amz-Credential"].iter().any(|p| has_param(p))
    {
        return Some(s3_error!(
            InvalidArgument,
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query \
             string parameter or the Authorization header should be specified."
        ));
    }
    // Only S3 is served. A signature scoped to another service (`sts`) makes s3s read the body
    // before it checks the signature, a body any client that knows an access key id could send
    // one byte a minute, holding a place among the requests in flight for as long.
    if let Some(service) = crate::auth::signed_service(headers, req.uri())
        && service != "s3"
    {
        return Some(custom(
            "AuthorizationHeaderMalformed",
            StatusCode::BAD_REQUEST,
            format!(
                "The authorization header is malformed; incorrect service {service:?}. This endpoint belongs to \"s3\"."
            ),
        ));
    }
    // Protections the store does not give are refused, not accepted and then not given: an
    // object "encrypted" with a customer key would be stored in plain text and read back
    // without it; one under Object Lock could be deleted at once.
    if let Some(name) = UNSUPPORTED_PROTECTION.iter().find(|h| headers.contains_key(**h)) {
        return Some(s3_error!(
            NotImplemented,
            "{name} is not supported: Keystone does not encrypt objects or lock them."
        ));
    }
    // Tags (which lifecycle and retention rules of backup tools act on) and website redirects
    // would be stored nowhere: refused as the protections above are (GetObjectTagging answers
    // 501 too). An empty value asks for nothing.
    for (name, why) in [
        ("x-amz-tagging", "object tags would be dropped"),
        ("x-amz-website-redirect-location", "Keystone does not serve websites"),
    ] {
        if headers.get(name).is_some_and(|v| !v.as_bytes().trim_ascii().is_empty()) {
            return Some(s3_error!(NotImplemented, "{name} is not supported: {why}."));
        }
    }
    // One storage class: an object asked for in another (GLACIER, STANDARD_IA…) would be
    // stored and listed as STANDARD, with none of that class's behaviour, as if granted.
    if let Some(class) = headers.get("x-amz-storage-class").filter(|v| v.as_bytes() != b"STANDARD") {
        let class = String::from_utf8_lossy(class.as_bytes()).into_owned();
        return Some(s3_error!(
            InvalidStorageClass,
            "Keystone keeps every object in one storage class, STANDARD; {class:?} is not available."
        ));
    }
    if headers.get("x-amz-bucket-object-lock-enabled").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true")) {
        return Some(s3_error!(NotImplemented, "Object Lock is not supported."));
    }
    if req.method() == Method::POST
        && headers
            .get(hyper::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().trim_ascii_start().to_ascii_lowercase().starts_with(b"multipart/form-data"))
    {
        return Some(s3_error!(NotImplemented, "POST Object (browser form upload) is not supported."));
    }
    if let Some(exp) = param("X-Amz-Expires")
        && exp.parse::<u64>().map_or(true, |s| s > 604_800)
    {
        return Some(custom(
            "AuthorizationQueryParametersError",
            StatusCode::BAD_REQUEST,
            "X-Amz-Expires must be a number of seconds no greater than 604800 (7 days).",
        ));
    }
    let length = crate::body::decoded_length(headers).or_else(|| {
        headers.get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
    });
    if let Some(n) = length {
        if is_xml_op(req) && n > limits.max_xml_bytes as u64 {
            return Some(s3_error!(MaxMessageLengthExceeded, "Your request was too big."));
        }
        if n > limits.max_object_bytes {
            return Some(s3_error!(EntityTooLarge, "Your proposed upload exceeds the maximum allowed object size."));
        }
    }
    None
}

/// Whether s3s reads the request's body whole and parses it as XML: every POST, and a PUT
/// on a bucket (CreateBucket's configuration).
fn is_xml_op<B>(req: &hyper::Request<B>) -> bool {
    let path = req.uri().path().trim_start_matches('/');
    let bucket_level = !path.contains('/') || path.ends_with('/') && path.matches('/').count() == 1;
    req.method() == Method::POST || (req.method() == Method::PUT && bucket_level)
}

/// Headers asking for server-side encryption or Object Lock.
const UNSUPPORTED_PROTECTION: &[&str] = &[
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-server-side-encryption-customer-key",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-copy-source-server-side-encryption-customer-algorithm",
    "x-amz-object-lock-mode",
    "x-amz-object-lock-retain-until-date",
    "x-amz-object-lock-legal-hold",
];

/// A virtual-hosted-style request: its host `BUCKET.localhost` names an existing bucket, as SDKs
/// that put the bucket in the host name address an endpoint on `localhost`. Read as
/// path-style, `PUT /key` there would create a bucket named after the key and `DELETE /key`
/// remove one. A host whose first label is not a bucket (`s3.localhost` in front of a proxy)
/// is an ordinary path-style endpoint; other names cannot be told from a plain host name, and an
/// endpoint on an IP address is always addressed path-style.
async fn virtual_host(req: &hyper::Request<Incoming>, db: &keystone::Datastore) -> Option<String> {
    let (host, label) = host_label(req)?;
    let db = db.clone();
    let exists = tokio::task::spawn_blocking(move || db.bucket(&label).is_ok()).await.unwrap_or(false);
    exists.then_some(host)
}

/// The host of a request to `LABEL.localhost`, and LABEL.
fn host_label(req: &hyper::Request<Incoming>) -> Option<(String, String)> {
    let host = req
        .uri()
        .host()
        .map(str::to_owned)
        .or_else(|| req.headers().get(hyper::header::HOST)?.to_str().ok().map(str::to_owned))?;
    let name = host
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host.as_str(), |(n, _)| n);
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let sub = name.strip_suffix(".localhost").filter(|sub| !sub.is_empty())?;
    Some((host.clone(), sub.to_owned()))
}

/// A request that asks for `100 Continue` but has no body to continue with.
fn expects_continue_without_body(req: &hyper::Request<Incoming>) -> bool {
    let h = req.headers();
    h.get(hyper::header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
        && !h.contains_key(hyper::header::TRANSFER_ENCODING)
        && h.get(hyper::header::CONTENT_LENGTH).is_none_or(|v| v.as_bytes() == b"0")
}

/// Marks a response as the last on its connection.
fn close_connection<B>(resp: &mut hyper::Response<B>) {
    resp.headers_mut().insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
}

/// Names the request a response answers (`x-amz-request-id`), as every answer of the server does.
fn set_request_id<B>(resp: &mut hyper::Response<B>, rid: &str) {
    if let Ok(v) = hyper::header::HeaderValue::from_str(rid) {
        resp.headers_mut().insert("x-amz-request-id", v);
    }
}

/// The response for an error the server answers itself, with the request's id.
fn error_response(mut e: S3Error, rid: &str) -> Result<hyper::Response<s3s::Body>, s3s::HttpError> {
    e.set_request_id(rid.to_owned());
    e.to_http_response().map_err(|e| s3s::HttpError::new(Box::new(e)))
}

impl hyper::service::Service<hyper::Request<Incoming>> for Outer {
    type Response = hyper::Response<LoggedBody>;
    type Error = s3s::HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, mut req: hyper::Request<Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let n = this.seq.fetch_add(1, Ordering::Relaxed);
            let rid = format!("{:08X}{n:08X}", std::process::id());
            let method = req.method().clone();
            let path = req.uri().path().to_owned();
            let started = Instant::now();
            let slot = OpSlot::default();
            let empty_expect = expects_continue_without_body(&req);
            // A place among the requests in flight, held until the response body is sent.
            let place = tokio::time::timeout(this.limits.request_queue_wait, this.places.clone().acquire_owned()).await;
            let Ok(Ok(place)) = place else {
                let e = s3_error!(SlowDown, "Please reduce your request rate.");
                let mut resp = error_response(e, &rid)?;
                // The body of the request is not read: the connection is not reused.
                close_connection(&mut resp);
                set_request_id(&mut resp, &rid);
                let entry = Entry { request_id: rid, method, path, op: slot, status: 503, started };
                return Ok(resp.map(|body| LoggedBody::new(body, entry, None)));
            };
            let hoisted = crate::presigned::hoist(&mut req);
            let refused = match hoisted.err().or_else(|| prefilter(&req, &this.limits)) {
                Some(e) => Some(e),
                None => virtual_host(&req, &this.db).await.map(|host| {
                    s3_error!(
                        InvalidRequest,
                        "Virtual-hosted-style requests (host {host}) are not supported: use path-style \
                         addressing (force_path_style / addressing_style = path in the client)."
                    )
                }),
            };
            let mut resp = if let Some(e) = refused {
                error_response(e, &rid)?
            } else {
                let xml = is_xml_op(&req);
                let stalled = Stalled::default();
                let chunked = crate::body::is_aws_chunked(req.headers());
                let req =
                    req.map(|b| ChunkCap::new(IdleBody::new(b, this.limits.idle_timeout, stalled.clone()), chunked));
                let mut req = crate::xml_digest::watch(req, xml);
                req.extensions_mut().insert(slot.clone());
                req.extensions_mut().insert(RequestId(rid.clone()));
                let resp = this.s3.call(req).await?;
                if stalled.get() && !resp.status().is_success() {
                    // Whatever the reader of the body made of its end (s3s answers 500 for an
                    // XML body that failed), the client fell silent; the connection is not
                    // reused, since the rest of that body may still arrive.
                    let e = s3_error!(
                        RequestTimeout,
                        "Your socket connection to the server was not read from or written to within the timeout period."
                    );
                    let mut resp = error_response(e, &rid)?;
                    close_connection(&mut resp);
                    resp
                } else {
                    resp
                }
            };
            if method == Method::HEAD
                && resp.status() == StatusCode::OK
                && resp.headers().contains_key(hyper::header::CONTENT_RANGE)
            {
                // A ranged HEAD answers as the ranged GET does (S3, RFC 9110).
                *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            }
            set_request_id(&mut resp, &rid);
            if empty_expect {
                // hyper answers `Expect: 100-continue` on an empty body with the final response
                // alone; botocore then misreads the next response on that connection (seen
                // with `aws s3 sync`: an empty file, then an UploadPart). Not reusing the
                // connection avoids it.
                close_connection(&mut resp);
            }
            let status = resp.status().as_u16();
            let entry = Entry { request_id: rid, method, path, op: slot, status, started };
            let resp = resp.map(|body| LoggedBody::new(body, entry, Some(place)));
            Ok(resp)
        })
    }
}
