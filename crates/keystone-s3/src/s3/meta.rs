//! Conversions between S3 headers and the library's metadata, times and ETags, and the
//! conditional-request rules s3s leaves to the implementation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::HeaderMap;
use hyper::header::{ETAG, HeaderValue, LAST_MODIFIED};
use keystone::{ObjectInfo, ObjectMeta, PutCondition};
use s3s::dto::{ETag, ETagCondition, Metadata, Timestamp, TimestampFormat};
use s3s::{S3Error, S3Result, s3_error};

/// S3's limit on user metadata (keys plus values), bytes.
const MAX_USER_META: usize = keystone::MAX_USER_META;

/// Header fields of a write, as s3s parsed them.
#[derive(Default)]
pub(crate) struct MetaIn {
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub expires: Option<Timestamp>,
    pub metadata: Option<Metadata>,
}

impl MetaIn {
    /// The library's metadata; `aws-chunked` (a transfer detail) is dropped from the encoding.
    pub(crate) fn into_meta(self) -> S3Result<ObjectMeta> {
        let user: std::collections::BTreeMap<String, String> =
            self.metadata.unwrap_or_default().into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
        if user.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() > MAX_USER_META {
            return Err(s3_error!(MetadataTooLarge, "Your metadata headers exceed the maximum allowed metadata size."));
        }
        let content_encoding = self.content_encoding.and_then(|e| {
            let kept: Vec<&str> = e
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty() && !p.eq_ignore_ascii_case("aws-chunked"))
                .collect();
            (!kept.is_empty()).then(|| kept.join(", "))
        });
        let expires = self.expires.and_then(|t| {
            let mut buf = Vec::new();
            t.format(TimestampFormat::HttpDate, &mut buf).ok()?;
            String::from_utf8(buf).ok()
        });
        Ok(ObjectMeta {
            content_type: self.content_type,
            cache_control: self.cache_control,
            content_disposition: self.content_disposition,
            content_encoding,
            content_language: self.content_language,
            expires,
            user,
        })
    }
}

/// Stored `Expires` back as a timestamp (values that are not HTTP dates are left out).
pub(crate) fn expires(meta: &ObjectMeta) -> Option<Timestamp> {
    meta.expires.as_deref().and_then(|s| Timestamp::parse(TimestampFormat::HttpDate, s).ok())
}

/// User metadata as headers. The library refuses metadata that cannot be a header; an entry
/// stored before it did is left out (with a warning) rather than failing the whole response.
pub(crate) fn user_metadata(meta: &ObjectMeta) -> Option<Metadata> {
    let fits = |k: &str, v: &str| {
        let ok = hyper::header::HeaderName::from_bytes(k.as_bytes()).is_ok() && HeaderValue::from_str(v).is_ok();
        if !ok {
            tracing::warn!(name = k, "user metadata that cannot be an HTTP header left out of the response");
        }
        ok
    };
    let m: Metadata = meta.user.iter().filter(|(k, v)| fits(k, v)).map(|(k, v)| (k.clone(), v.clone())).collect();
    (!m.is_empty()).then_some(m)
}

/// A stored header field, if it can be sent back as one (see [`user_metadata`]).
pub(crate) fn header_safe(field: &'static str, value: Option<String>) -> Option<String> {
    value.filter(|v| {
        let ok = HeaderValue::from_str(v).is_ok();
        if !ok {
            tracing::warn!(field, "stored header value that cannot be an HTTP header left out of the response");
        }
        ok
    })
}

/// A time at HTTP-date resolution (whole seconds), so comparisons with client dates agree. Every
/// time a response carries goes through it: HEAD and GET send Last-Modified as an HTTP date, so
/// listings, copy results and parts (XML, which could carry milliseconds) send the same time,
/// as S3 does (`….000Z`), and a client comparing them sees equal times.
pub(crate) fn whole_seconds(t: SystemTime) -> Timestamp {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Timestamp::from(UNIX_EPOCH + Duration::from_secs(secs))
}

pub(crate) fn etag(e: &str) -> ETag {
    ETag::Strong(e.to_owned())
}

/// `If-None-Match`: the weak comparison (a weak tag matches its strong twin).
fn etag_matches(cond: &ETagCondition, current: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value().trim_matches('"') == current,
    }
}

/// `If-Match`: the strong comparison (RFC 9110 13.1.1): a weak tag never matches.
fn etag_matches_strong(cond: &ETagCondition, current: &str) -> bool {
    match cond {
        ETagCondition::ETag(ETag::Weak(_)) => false,
        c => etag_matches(c, current),
    }
}

/// Whether an `If-Range` validator still names the object (RFC 9110 13.1.5): an ETag equal to
/// the object's (quoted, or bare as S3 clients send ETags). A weak tag never does, and neither
/// does a date: Last-Modified has whole seconds, so an object overwritten within the second a
/// client read it would still match, and the client would splice the new object's bytes onto
/// the old ones. Where the validator does not hold, the Range is ignored and the whole object
/// sent, which RFC 9110 allows a server to do with any Range.
pub(crate) fn if_range_holds(validator: &str, info: &ObjectInfo) -> bool {
    let v = validator.trim();
    match v.strip_prefix('"') {
        Some(tag) => tag.strip_suffix('"').is_some_and(|t| t == info.etag),
        None => v == info.etag,
    }
}

/// Read conditions (GET/HEAD and copy sources), in RFC 7232 order.
#[allow(clippy::struct_field_names, reason = "named after the HTTP headers")]
pub(crate) struct ReadConditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
}

impl ReadConditions<'_> {
    /// `Err(412)` or, for GET/HEAD (`not_modified` true), `Err(304)` with ETag and
    /// Last-Modified; copy sources answer 412 where GET answers 304.
    pub(crate) fn check(&self, info: &ObjectInfo, not_modified: bool) -> S3Result<()> {
        let lm = whole_seconds(info.modified);
        if let Some(c) = self.if_match {
            if !etag_matches_strong(c, &info.etag) {
                return Err(s3_error!(
                    PreconditionFailed,
                    "At least one of the pre-conditions you specified did not hold."
                ));
            }
        } else if let Some(t) = self.if_unmodified_since
            && lm > *t
        {
            return Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold."
            ));
        }
        let unchanged = match (self.if_none_match, self.if_modified_since) {
            (Some(c), _) => etag_matches(c, &info.etag),
            // A date later than the server's clock is ignored, as S3 does (and RFC 2616 said:
            // such a date is invalid): a client whose clock runs ahead would otherwise be told
            // for that long that its copy is current, whatever was written since.
            (None, Some(t)) => lm <= *t && *t <= Timestamp::from(SystemTime::now()),
            (None, None) => false,
        };
        if unchanged {
            if !not_modified {
                return Err(s3_error!(
                    PreconditionFailed,
                    "At least one of the pre-conditions you specified did not hold."
                ));
            }
            return Err(not_modified_error(info));
        }
        Ok(())
    }
}

/// The conditions of a conditional delete (`If-Match`, `x-amz-if-match-last-modified-time`,
/// `x-amz-if-match-size`, or their fields in a DeleteObjects entry).
pub(crate) struct DeleteCondition {
    pub etag: Option<ETagCondition>,
    pub modified: Option<Timestamp>,
    pub size: Option<i64>,
}

impl DeleteCondition {
    pub(crate) fn is_none(&self) -> bool {
        self.etag.is_none() && self.modified.is_none() && self.size.is_none()
    }

    /// Whether the delete may go ahead, given the object as the delete's transaction sees it:
    /// `PreconditionFailed` (412) unless it matches every condition. With `If-Match` (an ETag
    /// or `*`), a key with no object is `NoSuchKey` (404), as S3 answers a conditional delete
    /// of general purpose buckets: a compare-and-swap delete on a stale ETag must not be told
    /// it succeeded. With only a size or time condition (directory buckets' headers), a missing
    /// object is nothing to delete, which S3 documents as done (204).
    pub(crate) fn check(&self, bucket: &str, key: &str, current: keystone::Result<ObjectInfo>) -> keystone::Result<()> {
        let info = match current {
            Ok(info) => info,
            Err(keystone::Error::NoSuchKey { .. }) if self.etag.is_none() => return Ok(()),
            Err(e) => return Err(e),
        };
        let etag_ok = self.etag.as_ref().is_none_or(|c| etag_matches_strong(c, &info.etag));
        // Last-Modified as S3 sends it has whole seconds: compared as HTTP dates.
        let date = |t: &Timestamp| {
            let mut out = Vec::new();
            t.format(TimestampFormat::HttpDate, &mut out).ok().map(|()| out)
        };
        let modified_ok = self
            .modified
            .as_ref()
            .is_none_or(|t| date(t).is_some_and(|d| Some(d) == date(&whole_seconds(info.modified))));
        let size_ok = self.size.is_none_or(|n| u64::try_from(n).is_ok_and(|n| n == info.size));
        if etag_ok && modified_ok && size_ok {
            return Ok(());
        }
        Err(keystone::Error::PreconditionFailed {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            reason: "the object does not match the ETag, last-modified time or size the delete was made on".into(),
        })
    }
}

fn not_modified_error(info: &ObjectInfo) -> S3Error {
    let mut e = s3_error!(NotModified);
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", info.etag)) {
        h.insert(ETAG, v);
    }
    let mut buf = Vec::new();
    if whole_seconds(info.modified).format(TimestampFormat::HttpDate, &mut buf).is_ok()
        && let Ok(v) = HeaderValue::from_bytes(&buf)
    {
        h.insert(LAST_MODIFIED, v);
    }
    e.set_headers(h);
    e
}

/// The write condition of a PUT / CompleteMultipartUpload.
pub(crate) fn put_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<PutCondition> {
    match (if_match, if_none_match) {
        (None, None) => Ok(PutCondition::None),
        (None, Some(ETagCondition::Any)) => Ok(PutCondition::IfAbsent),
        // If-Match compares strongly: a weak tag matches no object.
        (Some(ETagCondition::ETag(ETag::Weak(_))), None) => {
            Err(s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold."))
        }
        (Some(ETagCondition::ETag(e)), None) => Ok(PutCondition::IfMatch(e.value().trim_matches('"').to_owned())),
        (Some(ETagCondition::Any), None) => Err(s3_error!(NotImplemented, "If-Match: * is not supported on writes.")),
        (None, Some(_)) => Err(s3_error!(NotImplemented, "If-None-Match on writes supports only '*'.")),
        (Some(_), Some(_)) => {
            Err(s3_error!(InvalidRequest, "If-Match and If-None-Match cannot be combined on a write."))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn strips_aws_chunked_and_limits_metadata() {
        let m = MetaIn { content_encoding: Some("aws-chunked".into()), ..MetaIn::default() }.into_meta().unwrap();
        assert_eq!(m.content_encoding, None);
        let m = MetaIn { content_encoding: Some("gzip,aws-chunked".into()), ..MetaIn::default() }.into_meta().unwrap();
        assert_eq!(m.content_encoding.as_deref(), Some("gzip"));
        let big: Metadata = [("k".to_owned(), "v".repeat(3000))].into_iter().collect();
        assert!(MetaIn { metadata: Some(big), ..MetaIn::default() }.into_meta().is_err());
    }
}
