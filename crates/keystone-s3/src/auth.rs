//! Who may call: the access-key table and the access hook (which also records the operation
//! name for the request log).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hyper::{HeaderMap, StatusCode, Uri};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};

use crate::credentials::AccessKey;
use crate::errors::custom;
use crate::presigned::FromQuery;

/// The configured access keys. An unknown key is `InvalidAccessKeyId`, as in AWS (s3s's
/// `SimpleAuth` answers `NotSignedUp`).
pub(crate) struct KeyTable(HashMap<String, SecretKey>);

impl KeyTable {
    pub(crate) fn new(keys: &[AccessKey]) -> Self {
        KeyTable(keys.iter().map(|k| (k.access_key.clone(), SecretKey::from(k.secret_key.as_str()))).collect())
    }
}

#[async_trait::async_trait]
impl S3Auth for KeyTable {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        self.0.get(access_key).cloned().ok_or_else(|| {
            s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records.")
        })
    }
}

/// Filled with the S3 operation name once s3s has routed the request.
#[derive(Clone, Default, Debug)]
pub(crate) struct OpSlot(pub Arc<Mutex<Option<String>>>);

impl OpSlot {
    pub(crate) fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|g| g.clone())
    }
}

/// The request id, visible to handlers through the request extensions.
#[derive(Clone, Debug)]
pub(crate) struct RequestId(pub String);

/// Records the operation, denies anonymous requests (replacing s3s's default check, which
/// does only that), and — for signed requests — refuses a signature scoped to another region
/// (as S3 does; s3s accepts any), and requires a digest on DeleteObjects.
pub(crate) struct Access {
    /// The region this server serves.
    pub region: String,
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let op = cx.s3_op().name().to_owned();
        if let Some(slot) = cx.extensions_mut().get::<OpSlot>()
            && let Ok(mut g) = slot.0.lock()
        {
            *g = Some(op.clone());
        }
        if cx.credentials().is_none() {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        }
        // GetBucketLocation is how clients that do not know the region find it out (minio-go
        // signs it for us-east-1), and S3 answers it whatever the signature's region.
        if let Some((region, presigned)) = signed_region(cx.headers(), cx.uri())
            && region != self.region
            && op != "GetBucketLocation"
        {
            let (code, what) = if presigned {
                ("AuthorizationQueryParametersError", "Error parsing the X-Amz-Credential parameter")
            } else {
                ("AuthorizationHeaderMalformed", "The authorization header is malformed")
            };
            let msg = format!("{what}; the region '{region}' is wrong; expecting '{}'", self.region);
            let mut e = custom(code, StatusCode::BAD_REQUEST, msg);
            // Where S3 names the right region for clients that follow it (boto3, minio-go).
            if let Ok(v) = hyper::header::HeaderValue::from_str(&self.region) {
                let mut headers = HeaderMap::new();
                headers.insert("x-amz-bucket-region", v);
                e.set_headers(headers);
            }
            return Err(e);
        }
        let from_query = cx.extensions_mut().get::<FromQuery>().cloned().unwrap_or_default();
        if let Some(name) = unsigned_amz_header(cx.headers(), cx.uri(), &from_query) {
            return Err(custom(
                "AccessDenied",
                StatusCode::FORBIDDEN,
                format!("There were headers present in the request which were not signed: {name}"),
            ));
        }
        if op == "DeleteObjects" {
            // As S3: the batch must carry a digest of its body (checked by `xml_digest`), or
            // name the trailer that will (an aws-chunked body, which s3s decodes).
            let h = cx.headers();
            let checked = h.contains_key("content-md5")
                || h.contains_key("x-amz-trailer")
                || crate::body::ALGOS.iter().any(|(_, header)| h.contains_key(*header));
            if !checked {
                return Err(s3_error!(
                    InvalidRequest,
                    "Missing required header for this request: Content-MD5 (or an x-amz-checksum-* header)."
                ));
            }
        }
        Ok(())
    }
}

/// The region of a SigV4 signature's credential scope (`<key>/<date>/<region>/s3/aws4_request`),
/// from the Authorization header or a presigned URL's `X-Amz-Credential` (then `true`).
fn signed_region(headers: &HeaderMap, uri: &Uri) -> Option<(String, bool)> {
    let (scope, presigned) = signed_scope(headers, uri)?;
    scope.rsplit('/').nth(2).map(|r| (r.to_owned(), presigned))
}

/// The service of a SigV4 signature's credential scope (`s3`, or `sts` for a request s3s
/// treats as STS).
pub(crate) fn signed_service(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let (scope, _) = signed_scope(headers, uri)?;
    scope.rsplit('/').nth(1).map(str::to_owned)
}

/// A SigV4 signature's credential (`<key>/<date>/<region>/<service>/aws4_request`), from a
/// presigned URL's `X-Amz-Credential` (then `true`) or the Authorization header, read as s3s
/// reads them.
fn signed_scope(headers: &HeaderMap, uri: &Uri) -> Option<(String, bool)> {
    if let Some(query) = presigned_query(uri) {
        return query.into_iter().find(|(k, _)| k == "X-Amz-Credential").map(|(_, v)| (v, true));
    }
    let auth = headers.get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok())?;
    let scope = auth.split("Credential=").nth(1)?.split([',', ' ']).next()?;
    Some((scope.to_owned(), false))
}

/// The query of a presigned (SigV4 query-authenticated) request: the one s3s checks whenever
/// the query has `X-Amz-Signature`, whatever else the request carries — so the checks here
/// read the signature s3s checked.
fn presigned_query(uri: &Uri) -> Option<Vec<(String, String)>> {
    let pairs = query_pairs(uri.query()?);
    pairs.iter().any(|(k, _)| k == "X-Amz-Signature").then_some(pairs)
}

/// A query string's pairs, decoded as s3s decodes them (form-urlencoded: `+` is a space).
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    let dec = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}

/// An `x-amz-*` header the signature does not cover (S3: 403 AccessDenied, "There were
/// headers present in the request which were not signed"). `x-amz-content-sha256` may be
/// unsigned on a presigned URL, and headers a presigned URL carried in its query string
/// (`from_query`) are signed there.
fn unsigned_amz_header(headers: &HeaderMap, uri: &Uri, from_query: &FromQuery) -> Option<String> {
    let signed: String = if let Some(query) = presigned_query(uri) {
        query.into_iter().find(|(k, _)| k == "X-Amz-SignedHeaders")?.1
    } else {
        let auth = headers.get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok())?;
        auth.split("SignedHeaders=").nth(1)?.split([',', ' ']).next()?.to_owned()
    };
    let signed = signed.to_ascii_lowercase();
    let signed: Vec<&str> = signed.split(';').collect();
    headers
        .keys()
        .map(hyper::header::HeaderName::as_str)
        .find(|n| {
            n.starts_with("x-amz-")
                && *n != "x-amz-content-sha256"
                && !signed.contains(n)
                && !from_query.0.iter().any(|q| q.as_str() == *n)
        })
        .map(str::to_owned)
}
