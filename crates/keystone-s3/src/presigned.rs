//! Request headers carried in a presigned URL's query string.
//!
//! A presigner may move a request's `x-amz-*` headers into the query string, where the
//! signature covers them (the AWS SDK for JavaScript v3 moves every one it is not told to keep;
//! the Ruby SDK moves `x-amz-meta-*`), and S3 reads them there as the headers they stand for.
//! s3s reads headers only: such a URL's metadata was dropped, its `x-amz-copy-source` ignored —
//! a presigned CopyObject with an empty body replaced its destination with an empty object —
//! and its encryption, Object Lock or storage class accepted without being given. So a
//! presigned request's `x-amz-*` query parameters become its headers before anything reads
//! them: the pre-filters (which refuse what the store does not give) and s3s (which routes on
//! them and parses them). The query itself is left as it is, for s3s to check the signature
//! over it.

use hyper::header::{HeaderName, HeaderValue};
use s3s::{S3Error, s3_error};

/// The query parameters of SigV4 query authentication itself, which are not headers.
const AUTH_PARAMS: [&str; 7] = [
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-signedheaders",
    "x-amz-signature",
    "x-amz-security-token",
];

/// The headers a request got from its query string; the signature covers them there, so the
/// check for unsigned `x-amz-*` headers lets them through.
#[derive(Clone, Debug, Default)]
pub(crate) struct FromQuery(pub Vec<HeaderName>);

/// Makes the `x-amz-*` query parameters of a presigned (SigV4 query-authenticated) request its
/// headers, and records which in the request's extensions ([`FromQuery`]). A parameter given
/// twice, or also sent as a header with another value, or that is no valid header, is refused.
/// `x-amz-content-sha256` stays in the query: a presigned request's payload is unsigned.
pub(crate) fn hoist<B>(req: &mut hyper::Request<B>) -> Result<(), S3Error> {
    let Some(query) = req.uri().query() else { return Ok(()) };
    let pairs = crate::auth::query_pairs(query);
    if !pairs.iter().any(|(k, _)| k == "X-Amz-Signature") {
        return Ok(());
    }
    let mut hoisted: Vec<HeaderName> = Vec::new();
    for (k, v) in pairs {
        let lower = k.to_ascii_lowercase();
        if !lower.starts_with("x-amz-") || AUTH_PARAMS.contains(&lower.as_str()) || lower == "x-amz-content-sha256" {
            continue;
        }
        let name = HeaderName::from_bytes(lower.as_bytes())
            .map_err(|_| s3_error!(InvalidArgument, "The query parameter {k:?} is not a valid header name."))?;
        let value = HeaderValue::from_str(&v)
            .map_err(|_| s3_error!(InvalidArgument, "The query parameter {k:?} has a value no header can carry."))?;
        if hoisted.contains(&name) {
            return Err(s3_error!(InvalidArgument, "The query parameter {k:?} is given more than once."));
        }
        // A header sent beside it must be that one value (every copy of it: the unsigned-header
        // check lets the name through).
        let sent: Vec<&HeaderValue> = req.headers().get_all(&name).iter().collect();
        match sent.as_slice() {
            [] => {
                req.headers_mut().insert(name.clone(), value);
            }
            [one] if **one == value => {}
            _ => {
                return Err(s3_error!(
                    InvalidArgument,
                    "{k} is given both as a header and in the query string, with different values."
                ));
            }
        }
        hoisted.push(name);
    }
    if !hoisted.is_empty() {
        req.extensions_mut().insert(FromQuery(hoisted));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request(uri: &str, headers: &[(&str, &str)]) -> hyper::Request<()> {
        let mut b = hyper::Request::builder().method("PUT").uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    const SIGNED: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a%2Fb&X-Amz-Date=20261127T000000Z\
                          &X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature=00";

    #[test]
    fn a_presigned_requests_amz_parameters_become_its_headers() {
        let uri = format!("/b/k?x-amz-meta-color=blue%20sky&X-Amz-Copy-Source=src%2Fk%3Fx&x-id=PutObject&{SIGNED}");
        let mut req = request(&uri, &[]);
        hoist(&mut req).unwrap();
        let h = req.headers();
        assert_eq!(h.get("x-amz-meta-color").unwrap(), "blue sky");
        assert_eq!(h.get("x-amz-copy-source").unwrap(), "src/k?x");
        assert!(!h.contains_key("x-id") && !h.contains_key("x-amz-signature") && !h.contains_key("x-amz-date"));
        let names: Vec<&str> = req.extensions().get::<FromQuery>().unwrap().0.iter().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-amz-meta-color", "x-amz-copy-source"]);
        assert_eq!(req.uri().query().unwrap(), uri.split_once('?').unwrap().1, "the signed query is left as it is");
    }

    #[test]
    fn only_a_presigned_request_is_changed() {
        let mut req = request("/b/k?x-amz-meta-color=blue", &[]);
        hoist(&mut req).unwrap();
        assert!(req.headers().is_empty() && req.extensions().get::<FromQuery>().is_none());
        let mut req = request(&format!("/b/k?x-amz-content-sha256=abc&{SIGNED}"), &[]);
        hoist(&mut req).unwrap();
        assert!(req.headers().is_empty(), "a presigned payload stays unsigned");
    }

    #[test]
    fn conflicts_and_bad_values_are_refused() {
        let mut same = request(&format!("/b/k?x-amz-meta-a=1&{SIGNED}"), &[("x-amz-meta-a", "1")]);
        hoist(&mut same).unwrap();
        assert_eq!(same.headers().get_all("x-amz-meta-a").iter().count(), 1);
        for (uri, headers) in [
            (format!("/b/k?x-amz-meta-a=1&{SIGNED}"), vec![("x-amz-meta-a", "2")]),
            (format!("/b/k?x-amz-meta-a=1&{SIGNED}"), vec![("x-amz-meta-a", "1"), ("x-amz-meta-a", "2")]),
            (format!("/b/k?x-amz-meta-a=1&x-amz-meta-a=2&{SIGNED}"), vec![]),
            (format!("/b/k?x-amz-meta-a=line%0Abreak&{SIGNED}"), vec![]),
            (format!("/b/k?x-amz-meta%20a=1&{SIGNED}"), vec![]),
        ] {
            let mut req = request(&uri, &headers);
            let e = hoist(&mut req).unwrap_err();
            assert_eq!(e.code(), &s3s::S3ErrorCode::InvalidArgument, "{uri}");
            assert!(e.message().unwrap().contains("x-amz-meta"), "{uri}: {:?}", e.message());
        }
    }
}
