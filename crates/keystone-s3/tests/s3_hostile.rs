//! Requests no SDK sends, written by hand (raw HTTP with a small SigV4/SigV2 signer of its
//! own) against the in-process server: unsigned `x-amz-*` headers, percent-encoded parameter
//! names, bodies without a length or with a length that lies. Each test asserts what S3 does;
//! each failed on the server before its fix (found by an audit, 2026-11-27).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use std::fmt::Write as _;
use std::net::SocketAddr;

use common::{AK, Harness, SK};
use s3s::crypto::{Checksum, Sha1, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------- signing helpers

fn hmac<H: Checksum>(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        let d = H::checksum(key);
        k[..d.as_ref().len()].copy_from_slice(d.as_ref());
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = H::new();
    inner.update(&k.map(|b| b ^ 0x36));
    inner.update(data);
    let ih = inner.finalize();
    let mut outer = H::new();
    outer.update(&k.map(|b| b ^ 0x5c));
    outer.update(ih.as_ref());
    outer.finalize().as_ref().to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn sha256_hex(b: &[u8]) -> String {
    hex(Sha256::checksum(b).as_ref())
}

/// SigV4 URI encoding (unreserved kept; '/' kept when `slash`).
fn enc(s: &str, slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (slash && b == b'/') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `YYYYMMDDTHHMMSSZ`, now.
fn amz_now() -> String {
    let t = s3s::dto::Timestamp::from(std::time::SystemTime::now());
    let mut buf = Vec::new();
    t.format(s3s::dto::TimestampFormat::DateTime, &mut buf).unwrap();
    let s: String = String::from_utf8(buf).unwrap().chars().filter(char::is_ascii_alphanumeric).collect();
    // 20261127T073000000Z -> 20261127T073000Z
    format!("{}Z", &s[..15])
}

struct Sig {
    amz_date: String,
    scope: String,
    key: Vec<u8>,
}

impl Sig {
    fn now() -> Sig {
        let amz_date = amz_now();
        let date = &amz_date[..8];
        let scope = format!("{date}/us-east-1/s3/aws4_request");
        let mut key = hmac::<Sha256>(format!("AWS4{SK}").as_bytes(), date.as_bytes());
        for part in ["us-east-1", "s3", "aws4_request"] {
            key = hmac::<Sha256>(&key, part.as_bytes());
        }
        Sig { amz_date, scope, key }
    }

    fn sign(&self, canonical_request: &str) -> String {
        let sts = format!(
            "AWS4-HMAC-SHA256\n{}\n{}\n{}",
            self.amz_date,
            self.scope,
            sha256_hex(canonical_request.as_bytes())
        );
        hex(&hmac::<Sha256>(&self.key, sts.as_bytes()))
    }

    fn chunk(&self, prev: &str, data: &[u8]) -> String {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{prev}\n{}\n{}",
            self.amz_date,
            self.scope,
            sha256_hex(b""),
            sha256_hex(data)
        );
        hex(&hmac::<Sha256>(&self.key, sts.as_bytes()))
    }

    /// A presigned URL's query (SignedHeaders=host) for `method path`.
    fn presign(&self, host: &str, method: &str, path: &str, expires: u64) -> String {
        self.presign_with(host, method, path, expires, &[])
    }

    /// [`presign`](Self::presign) with more query parameters, signed with the rest (as a
    /// presigner that moves `x-amz-*` headers into the query makes them).
    fn presign_with(&self, host: &str, method: &str, path: &str, expires: u64, extra: &[(&str, &str)]) -> String {
        let mut q = vec![
            ("X-Amz-Algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()),
            ("X-Amz-Credential".to_owned(), format!("{AK}/{}", self.scope)),
            ("X-Amz-Date".to_owned(), self.amz_date.clone()),
            ("X-Amz-Expires".to_owned(), expires.to_string()),
            ("X-Amz-SignedHeaders".to_owned(), "host".to_owned()),
        ];
        q.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        q.sort();
        let cq: Vec<String> = q.iter().map(|(k, v)| format!("{}={}", enc(k, false), enc(v, false))).collect();
        let cq = cq.join("&");
        let creq = format!("{method}\n{path}\n{cq}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD");
        format!("{cq}&X-Amz-Signature={}", self.sign(&creq))
    }

    /// Header auth: adds host, x-amz-date, x-amz-content-sha256 and Authorization to
    /// `headers` (every header signed); returns the signature (the seed of a chunked body).
    fn sign_headers(
        &self,
        host: &str,
        method: &str,
        path: &str,
        headers: &mut Vec<(String, String)>,
        payload: &str,
    ) -> String {
        headers.push(("host".into(), host.into()));
        headers.push(("x-amz-date".into(), self.amz_date.clone()));
        headers.push(("x-amz-content-sha256".into(), payload.into()));
        let mut h: Vec<(String, String)> =
            headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned())).collect();
        h.sort();
        let canon = h.iter().fold(String::new(), |mut s, (k, v)| {
            let _ = writeln!(s, "{k}:{v}");
            s
        });
        let signed: Vec<&str> = h.iter().map(|(k, _)| k.as_str()).collect();
        let signed = signed.join(";");
        let creq = format!("{method}\n{path}\n\n{canon}\n{signed}\n{payload}");
        let sig = self.sign(&creq);
        headers.push((
            "Authorization".into(),
            format!("AWS4-HMAC-SHA256 Credential={AK}/{}, SignedHeaders={signed}, Signature={sig}", self.scope),
        ));
        sig
    }
}

// ---------------------------------------------------------------- raw HTTP

struct Resp {
    status: u16,
    text: String,
}

/// Sends one request (Connection: close) and reads the whole answer. With `chunked`, the
/// body goes out with `Transfer-Encoding: chunked` and no Content-Length.
async fn raw(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
    chunked: bool,
) -> Resp {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        let _ = write!(req, "Host: {addr}\r\n");
    }
    for (k, v) in headers {
        let _ = write!(req, "{k}: {v}\r\n");
    }
    let has_len = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    if chunked {
        req.push_str("Transfer-Encoding: chunked\r\n");
    } else if !has_len {
        let _ = write!(req, "Content-Length: {}\r\n", body.len());
    }
    req.push_str("Connection: close\r\n\r\n");
    let mut out = req.into_bytes();
    if chunked {
        for piece in body.chunks(1000) {
            out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        out.extend_from_slice(body);
    }
    s.write_all(&out).await.unwrap();
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut resp)).await;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Resp { status, text }
}

fn addr(h: &Harness) -> SocketAddr {
    h.server.local_addr()
}

/// A presigned PutObject URL signs only `host`. S3 refuses a request through it that carries
/// an unsigned `x-amz-*` header (403 AccessDenied, "There were headers present in the request
/// which were not signed"); let through, an unsigned `x-amz-copy-source` would turn the
/// presigned upload into a CopyObject of any object in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presigned_put_refuses_an_unsigned_copy_source() {
    unsigned_copy_source_is_refused(true).await;
}

/// The same with header auth: SDKs sign every `x-amz-*` header, and S3 refuses one that is
/// not signed (otherwise anyone on a plain-http path could turn a signed PutObject into a
/// CopyObject of any object).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_signed_put_refuses_an_unsigned_copy_source() {
    unsigned_copy_source_is_refused(false).await;
}

/// A PutObject signed (presigned or by header) without `x-amz-copy-source`, which is then
/// added: refused, and nothing stored.
async fn unsigned_copy_source_is_refused(presigned: bool) {
    let h = Harness::start().await;
    h.db.create_bucket("secret").unwrap().put_bytes("private.key", b"TOP SECRET").unwrap();
    h.db.create_bucket("uploads").unwrap();
    let host = addr(&h).to_string();
    let (path, mut headers) = ("/uploads/up.txt", Vec::new());
    let target = if presigned {
        format!("{path}?{}", Sig::now().presign(&host, "PUT", path, 300))
    } else {
        Sig::now().sign_headers(&host, "PUT", path, &mut headers, &sha256_hex(b""));
        path.to_owned()
    };
    headers.push(("x-amz-copy-source".to_owned(), "/secret/private.key".to_owned()));
    let r = raw(addr(&h), "PUT", &target, &headers, b"", false).await;
    let stored = h.db.bucket("uploads").unwrap().get_bytes("up.txt").ok();
    assert_eq!(stored.as_deref(), None, "the upload became a copy of another bucket's object: {}", r.text);
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("AccessDenied"), "{}", r.text);
    if presigned {
        // An Authorization header beside the URL's signature, whose SignedHeaders claim the
        // added header (s3s checks the URL's signature and ignores the header): refused.
        let scope = Sig::now().scope;
        headers.push((
            "Authorization".to_owned(),
            format!("AWS4-HMAC-SHA256 Credential={AK}/{scope}, SignedHeaders=host;x-amz-copy-source, Signature=00"),
        ));
        let r = raw(addr(&h), "PUT", &target, &headers, b"", false).await;
        let stored = h.db.bucket("uploads").unwrap().get_bytes("up.txt").ok();
        assert_eq!(stored.as_deref(), None, "a second auth header made the upload a copy: {}", r.text);
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.text.contains("Only one auth mechanism"), "{}", r.text);
    }
    h.server.shutdown().await;
}

/// A presigned URL whose `x-amz-*` headers were moved into its query string (the JavaScript v3
/// presigner's way): they count as the headers they stand for. Metadata is stored, a copy
/// source makes the request a copy (it stored an empty object over the destination), and
/// encryption or another storage class is refused rather than ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presigned_urls_amz_query_parameters_are_its_headers() {
    let h = Harness::start().await;
    let b = h.db.create_bucket("pre").unwrap();
    b.put_bytes("src", b"source bytes").unwrap();
    b.put_bytes("dst", b"previous bytes").unwrap();
    let host = addr(&h).to_string();
    let a = addr(&h);
    let put = |path: &'static str, extra: &'static [(&'static str, &'static str)], body: &'static [u8]| {
        let target = format!("{path}?{}", Sig::now().presign_with(&host, "PUT", path, 300, extra));
        async move { raw(a, "PUT", &target, &[], body, false).await }
    };
    let meta = put("/pre/meta", &[("x-amz-meta-color", "blue sky")], b"hi").await;
    let copy = put("/pre/dst", &[("x-amz-copy-source", "pre/src"), ("x-amz-metadata-directive", "COPY")], b"").await;
    let sse = put("/pre/sse", &[("x-amz-server-side-encryption", "AES256")], b"hi").await;
    let class = put("/pre/class", &[("x-amz-storage-class", "GLACIER")], b"hi").await;
    // A header that contradicts the signed query parameter.
    let q = Sig::now().presign_with(&host, "PUT", "/pre/both", 300, &[("x-amz-meta-color", "blue")]);
    let both =
        raw(addr(&h), "PUT", &format!("/pre/both?{q}"), &[("x-amz-meta-color".into(), "red".into())], b"hi", false)
            .await;
    // Stored without a Content-Type: read back as S3 reports one, `binary/octet-stream`.
    let q = Sig::now().presign(&host, "GET", "/pre/meta", 300);
    let get = raw(addr(&h), "GET", &format!("/pre/meta?{q}"), &[], b"", false).await;
    let b = h.db.bucket("pre").unwrap();
    let stored_meta = b.head("meta").map(|o| o.meta.user);
    let dst = b.get_bytes("dst").unwrap();
    let (sse_stored, class_stored, both_stored) =
        (b.exists("sse").unwrap(), b.exists("class").unwrap(), b.exists("both").unwrap());
    h.server.shutdown().await;
    assert_eq!(meta.status, 200, "{}", meta.text);
    assert!(get.text.to_ascii_lowercase().contains("\r\ncontent-type: binary/octet-stream\r\n"), "{}", get.text);
    assert!(get.text.contains("x-amz-meta-color: blue sky"), "{}", get.text);
    assert_eq!(stored_meta.unwrap(), [("color".to_owned(), "blue sky".to_owned())].into());
    assert_eq!(copy.status, 200, "{}", copy.text);
    assert!(copy.text.contains("CopyObjectResult"), "a copy answers as one: {}", copy.text);
    assert_eq!(dst, b"source bytes", "the copy destination holds the source");
    assert_eq!((sse.status, class.status, both.status), (501, 400, 400), "{} {} {}", sse.text, class.text, both.text);
    assert!(class.text.contains("InvalidStorageClass") && both.text.contains("InvalidArgument"), "{}", both.text);
    assert!(!sse_stored && !class_stored && !both_stored, "refused requests store nothing");
}

/// SigV2 is refused (`prefilter`) however its query parameters are spelled: s3s decodes
/// parameter names, so `AWS%41ccessKeyId` is `AWSAccessKeyId` (a SigV2 URL valid for ten
/// years was served that way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv2_is_refused_however_its_parameter_names_are_encoded() {
    let h = Harness::start().await;
    h.db.create_bucket("sigv2").unwrap().put_bytes("k", b"hello").unwrap();
    let expires =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 10 * 365 * 86_400;
    let sts = format!("GET\n\n\n{expires}\n/sigv2/k");
    let sig = base64_simd::STANDARD.encode_to_string(hmac::<Sha1>(SK.as_bytes(), sts.as_bytes()));
    let sig = enc(&sig, false);
    let plain = format!("/sigv2/k?AWSAccessKeyId={AK}&Expires={expires}&Signature={sig}");
    let r = raw(addr(&h), "GET", &plain, &[], b"", false).await;
    assert_eq!(r.status, 403, "the plain SigV2 URL is refused: {}", r.text);
    let encoded = format!("/sigv2/k?AWS%41ccessKeyId={AK}&Expires={expires}&Sig%6Eature={sig}");
    let r = raw(addr(&h), "GET", &encoded, &[], b"", false).await;
    h.server.shutdown().await;
    assert_eq!(r.status, 403, "SigV2 accepted through encoded parameter names: {}", r.text);
}

/// The 7-day cap on X-Amz-Expires (`prefilter`) holds for `X-Amz-%45xpires`, the same
/// parameter to s3s (which verifies the signature over the decoded name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_presigned_expiry_cap_holds_for_an_encoded_parameter_name() {
    let h = Harness::start().await;
    h.db.create_bucket("exp").unwrap().put_bytes("k", b"hello").unwrap();
    let host = addr(&h).to_string();
    let q = Sig::now().presign(&host, "GET", "/exp/k", 10 * 365 * 86_400);
    let r = raw(addr(&h), "GET", &format!("/exp/k?{q}"), &[], b"", false).await;
    assert_eq!(r.status, 400, "a 10-year URL is refused: {}", r.text);
    let q = q.replace("X-Amz-Expires=", "X-Amz-%45xpires=");
    let r = raw(addr(&h), "GET", &format!("/exp/k?{q}"), &[], b"", false).await;
    h.server.shutdown().await;
    assert_eq!(r.status, 400, "a 10-year URL is served when the parameter name is encoded: {}", r.text);
}

/// The headers of a signed aws-chunked PUT (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) declaring
/// `declared` decoded bytes, and the seed signature its first chunk's signature chains from.
fn signed_aws_chunked(sig: &Sig, host: &str, path: &str, declared: u64) -> (Vec<(String, String)>, String) {
    let mut headers = vec![
        ("x-amz-decoded-content-length".to_owned(), declared.to_string()),
        ("content-encoding".to_owned(), "aws-chunked".to_owned()),
    ];
    let seed = sig.sign_headers(host, "PUT", path, &mut headers, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
    (headers, seed)
}

/// A signed aws-chunked PutObject (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) sent with
/// `Transfer-Encoding: chunked` instead of Content-Length: its body is still held to
/// `x-amz-decoded-content-length` (s3s rewrites Content-Length to it only when there is one),
/// so 10 bytes declared as 5, or as 100 (a truncated upload), are refused, not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_chunked_body_without_content_length_is_held_to_its_decoded_length() {
    let h = Harness::start().await;
    h.db.create_bucket("chunk").unwrap();
    let host = addr(&h).to_string();
    let mut results = Vec::new();
    for (key, declared) in [("short", 5u64), ("long", 100u64)] {
        let data = [b'a'; 10];
        let (sig, path) = (Sig::now(), format!("/chunk/{key}"));
        let (headers, seed) = signed_aws_chunked(&sig, &host, &path, declared);
        let s1 = sig.chunk(&seed, &data);
        let s2 = sig.chunk(&s1, b"");
        let mut body = format!("{:x};chunk-signature={s1}\r\n", data.len()).into_bytes();
        body.extend_from_slice(&data);
        body.extend_from_slice(format!("\r\n0;chunk-signature={s2}\r\n\r\n").as_bytes());
        let r = raw(addr(&h), "PUT", &path, &headers, &body, true).await;
        let stored = h.db.bucket("chunk").unwrap().get_bytes(key).ok().map(|b| b.len());
        results.push((key, declared, r.status, stored));
    }
    h.server.shutdown().await;
    for (key, declared, status, stored) in results {
        assert_eq!(
            (status, stored),
            (400, None),
            "{key}: 10 bytes declared as {declared} answered {status} and stored {stored:?} bytes"
        );
    }
}

/// s3s holds an aws-chunked chunk whole before it checks the chunk's signature, and the size
/// comes from the body: a client could make the server hold up to 4 GiB per request. A chunk
/// over 16 MiB is refused at its size line, before any of its bytes are held (MinIO has the
/// same limit; clients send 64 KiB to 1 MiB). So is a size of more than eight hex digits, which
/// s3s cuts to eight (`000000010` is 1 to it): a review showed that a cap reading it as 16 lost
/// step with s3s and let a later 20 MiB chunk through. Without the cap each request waits for
/// the rest of its large chunk until the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_chunked_chunk_over_16_mib_is_refused_before_it_is_held() {
    let h = Harness::start().await;
    h.db.create_bucket("chunk").unwrap();
    let host = addr(&h).to_string();
    let big = 64u64 << 20;
    let mut results = Vec::new();
    for (key, declared, want) in
        [("big", big, ["EntityTooLarge", "16 MiB"]), ("long", 1 + (20 << 20), ["InvalidRequest", "8 hex digits"])]
    {
        let (sig, path) = (Sig::now(), format!("/chunk/{key}"));
        let (mut headers, seed) = signed_aws_chunked(&sig, &host, &path, declared);
        // The large chunk's signature is never checked: s3s would hold the chunk first.
        let unchecked = format!(";chunk-signature={}\r\n", "0".repeat(64));
        let lines = if key == "big" {
            format!("{big:x}{unchecked}")
        } else {
            // A valid one-byte chunk under a nine-digit size (1 to s3s, 16 read whole), then a
            // 20 MiB chunk.
            format!("000000010;chunk-signature={}\r\na\r\n{:x}{unchecked}", sig.chunk(&seed, b"a"), 20 << 20)
        };
        let mut body = lines.into_bytes();
        headers.push(("content-length".to_owned(), (declared + body.len() as u64 + 200).to_string()));
        body.extend(std::iter::repeat_n(b'a', 1 << 20)); // a first MiB of the large chunk, then nothing
        let r = raw(addr(&h), "PUT", &path, &headers, &body, false).await;
        let stored = h.db.bucket("chunk").unwrap().exists(key).unwrap();
        results.push((key, r, stored, want));
    }
    h.server.shutdown().await;
    for (key, r, stored, want) in results {
        assert_eq!(r.status, 400, "{key}: {}", r.text);
        assert!(want.iter().all(|w| r.text.contains(w)), "{key}: {}", r.text);
        assert!(!stored, "{key}");
    }
}

/// A server whose single PUT limit is 1000 bytes (`Limits::max_object_bytes`).
async fn limited() -> (keystone::Datastore, keystone_s3::Server, tempfile::TempDir) {
    use keystone_s3::{AccessKey, Limits, Server, ServerConfig};
    let dir = tempfile::tempdir().unwrap();
    let db = keystone::Datastore::builder().etag(keystone::EtagAlgorithm::Md5).open(dir.path().join("s.redb")).unwrap();
    db.create_bucket("lim").unwrap();
    let mut config = ServerConfig::new(vec![AccessKey::new(AK, SK)]);
    config.limits = Limits { max_object_bytes: 1000, ..Limits::default() };
    let server = Server::start(db.clone(), ([127, 0, 0, 1], 0).into(), config).await.unwrap();
    (db, server, dir)
}

/// `Limits::max_requests`: with one place, a download whose client does not read it holds the
/// place, and another request waits `request_queue_wait`, then gets 503 SlowDown (which S3
/// clients retry). The client that stops reading is cut off after the idle timeout (hyper has
/// no write timeout: the place was held for as long as the client kept its socket), and the
/// place is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_limit_in_flight_wait_then_slow_down() {
    use keystone_s3::{AccessKey, Limits, Server, ServerConfig};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let db = keystone::Datastore::builder().etag(keystone::EtagAlgorithm::Md5).open(dir.path().join("s.redb")).unwrap();
    let b = db.create_bucket("few").unwrap();
    b.put_bytes("big", vec![7u8; 32 << 20]).unwrap();
    b.put_bytes("small", b"small").unwrap();
    let mut config = ServerConfig::new(vec![AccessKey::new(AK, SK)]);
    config.limits = Limits {
        max_requests: 1,
        request_queue_wait: std::time::Duration::from_millis(300),
        idle_timeout: std::time::Duration::from_secs(1),
        ..Limits::default()
    };
    let server = Server::start(db.clone(), ([127, 0, 0, 1], 0).into(), config).await.unwrap();
    let a = server.local_addr();
    let host = a.to_string();
    let get = |path: &str| format!("{path}?{}", Sig::now().presign(&host, "GET", path, 300));

    // The download's client reads its status line and then nothing: 32 MiB cannot all be sent.
    let mut holder = tokio::net::TcpStream::connect(a).await.unwrap();
    holder.write_all(format!("GET {} HTTP/1.1\r\nHost: {a}\r\n\r\n", get("/few/big")).as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    holder.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    let started = std::time::Instant::now();
    let r = raw(a, "GET", &get("/few/small"), &[], b"", false).await;
    let waited = started.elapsed();
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.text.contains("SlowDown"), "{}", r.text);
    assert!(waited >= std::time::Duration::from_millis(300), "answered before the queue wait: {waited:?}");

    // The holder keeps its socket open and reads nothing.
    let mut last = None;
    for _ in 0..100 {
        let r = raw(a, "GET", &get("/few/small"), &[], b"", false).await;
        if r.status == 200 {
            last = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server.shutdown().await;
    let r = last.expect("the place was not given back: the client that stopped reading was not cut off");
    assert!(r.text.ends_with("small"), "{}", r.text);
    drop(holder);
}

/// Only S3 is served: a signature scoped to another service (`sts`, whose body s3s reads before
/// it checks the signature, one byte a minute if the client likes) is refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_for_another_service_is_refused_before_the_body_is_read() {
    let h = Harness::start().await;
    let a = addr(&h);
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={AK}/20261127/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=00"
    );
    // The body is announced but never sent: an answer at all shows it was not waited for.
    let headers = vec![("Authorization".to_owned(), auth), ("Content-Length".to_owned(), "100".to_owned())];
    let r = tokio::time::timeout(std::time::Duration::from_secs(30), raw(a, "POST", "/", &headers, b"", false)).await;
    h.server.shutdown().await;
    let r = r.expect("the server waited for the body of an STS-scoped request");
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("AuthorizationHeaderMalformed") && r.text.contains("sts"), "{}", r.text);
}

/// `Limits::max_object_bytes` is checked against the declared length; a presigned PUT sent with
/// `Transfer-Encoding: chunked` declares none (s3s requires a length only for header-signed
/// requests) and stored any size. S3 answers such a PutObject 411 MissingContentLength.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_without_a_length_is_refused_so_the_size_limit_holds() {
    let (db, server, _dir) = limited().await;
    let a = server.local_addr();
    let host = a.to_string();
    let body = vec![b'x'; 5000];
    // With a Content-Length the limit holds.
    let q = Sig::now().presign(&host, "PUT", "/lim/a", 300);
    let r = raw(a, "PUT", &format!("/lim/a?{q}"), &[], &body, false).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let q = Sig::now().presign(&host, "PUT", "/lim/b", 300);
    let r = raw(a, "PUT", &format!("/lim/b?{q}"), &[], &body, true).await;
    let stored = db.bucket("lim").unwrap().get_bytes("b").ok().map(|b| b.len());
    server.shutdown().await;
    assert_eq!(stored, None, "5000 bytes stored past a 1000-byte limit (status {}): {}", r.status, r.text);
    assert_eq!(r.status, 411, "{}", r.text);
    assert!(r.text.contains("MissingContentLength"), "{}", r.text);
}

/// `x-amz-decoded-content-length` counts only for an aws-chunked body: a plain
/// (UNSIGNED-PAYLOAD) PUT of Content-Length 5000 that also sends
/// `x-amz-decoded-content-length: 1` is held to the 1000-byte limit (s3s ignores that header
/// for a body that is not aws-chunked, and all 5000 bytes were stored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decoded_length_header_on_a_plain_body_does_not_lift_the_size_limit() {
    let (db, server, _dir) = limited().await;
    let a = server.local_addr();
    let host = a.to_string();
    let body = vec![b'x'; 5000];
    let mut headers = vec![("x-amz-decoded-content-length".to_owned(), "1".to_owned())];
    Sig::now().sign_headers(&host, "PUT", "/lim/c", &mut headers, "UNSIGNED-PAYLOAD");
    let r = raw(a, "PUT", "/lim/c", &headers, &body, false).await;
    let stored = db.bucket("lim").unwrap().get_bytes("c").ok().map(|b| b.len());
    server.shutdown().await;
    assert_eq!(stored, None, "5000 bytes stored past a 1000-byte limit (status {}): {}", r.status, r.text);
}

/// A continuation token that is valid base64url but not one of ours is named as such (S3: "The
/// continuation token provided is incorrect"), not as an invalid object key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_continuation_token_is_refused_as_a_token() {
    let h = Harness::start().await;
    h.db.create_bucket("tok").unwrap().put_bytes("k", b"1").unwrap();
    let e = h.client().list_objects_v2().bucket("tok").continuation_token("Zm9v").send().await.unwrap_err();
    let msg = aws_sdk_s3::error::ProvideErrorMetadata::message(&e).unwrap_or_default().to_owned();
    h.server.shutdown().await;
    assert_eq!(common::code(&e), "InvalidArgument");
    assert!(!msg.contains("object key"), "message: {msg:?}");
}

/// POST Object (a browser form upload) is refused before s3s sees it, because s3s buffers the
/// form's fields (up to 20 MB) before any signature check. Media types are case-insensitive
/// and s3s parses them so: `Multipart/Form-Data` reached s3s's form parser unauthenticated
/// (ten anonymous connections grew the server's memory by 377 MiB, measured by the audit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_upload_is_refused_whatever_the_case_of_its_content_type() {
    let h = Harness::start().await;
    h.db.create_bucket("form").unwrap();
    let a = addr(&h);
    let small = b"--XX\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nabc\r\n--XX--\r\n";
    let mut statuses = Vec::new();
    for ct in ["multipart/form-data; boundary=XX", "Multipart/Form-Data; boundary=XX"] {
        let r = raw(a, "POST", "/form", &[("Content-Type".to_owned(), ct.to_owned())], small, false).await;
        statuses.push((ct, r.status, r.text.lines().last().unwrap_or_default().to_owned()));
    }
    h.server.shutdown().await;
    assert_eq!(statuses[0].1, 501, "{:?}", statuses[0]);
    assert_eq!(statuses[1].1, 501, "mixed-case form Content-Type reached s3s's form parser: {:?}", statuses[1]);
}
