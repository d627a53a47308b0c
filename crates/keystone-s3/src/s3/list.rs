//! ListObjects (v1) and ListObjectsV2, with `encoding-type=url` (which s3s leaves to us).

use keystone::{ListOptions, ListPage, ObjectInfo};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::dto::{
    CommonPrefix, EncodingType, ListObjectsInput, ListObjectsOutput, ListObjectsV2Input, ListObjectsV2Output, Object,
    ObjectStorageClass, Owner,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Keystone;
use super::meta::etag;

/// What `encoding-type=url` leaves as is: unreserved characters and '/'.
const URL_KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');
const MAX_KEYS: i32 = 1000;

/// `v` percent-encoded as `encoding-type=url` asks (all but unreserved characters and '/').
pub(super) fn url_encode(v: &str) -> String {
    utf8_percent_encode(v, URL_KEEP).to_string()
}

/// Encodes names for the response when the client asked for `encoding-type=url`.
#[derive(Clone, Copy)]
pub(super) struct Enc(bool);

impl Enc {
    pub(super) fn parse(t: Option<&EncodingType>) -> S3Result<Self> {
        match t.map(EncodingType::as_str) {
            None => Ok(Enc(false)),
            Some(s) if s.eq_ignore_ascii_case(EncodingType::URL) => Ok(Enc(true)),
            Some(s) => Err(s3_error!(InvalidArgument, "Invalid Encoding Method specified in Request: {s:?}.")),
        }
    }

    pub(super) fn s(self, v: &str) -> String {
        if self.0 { url_encode(v) } else { v.to_owned() }
    }

    pub(super) fn opt(self, v: Option<&String>) -> Option<String> {
        v.map(|v| self.s(v))
    }

    pub(super) fn echo(self) -> Option<EncodingType> {
        self.0.then(|| EncodingType::from_static(EncodingType::URL))
    }
}

pub(super) fn max_keys(v: Option<i32>, what: &str) -> S3Result<usize> {
    match v {
        None => Ok(MAX_KEYS as usize),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "{what} must be a non-negative number.")),
        Some(n) => Ok(n.min(MAX_KEYS).unsigned_abs() as usize),
    }
}

/// A count for the response (at most 1000 here).
pub(super) fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn owner() -> Owner {
    Owner { id: Some("keystone".into()), display_name: Some("keystone".into()) }
}

fn object(o: &ObjectInfo, enc: Enc, with_owner: bool) -> Object {
    Object {
        key: Some(enc.s(&o.key)),
        size: i64::try_from(o.size).ok(),
        e_tag: Some(etag(&o.etag)),
        last_modified: Some(super::meta::whole_seconds(o.modified)),
        storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
        owner: with_owner.then(owner),
        ..Default::default()
    }
}

fn prefixes(page: &ListPage, enc: Enc) -> Option<Vec<CommonPrefix>> {
    (!page.common_prefixes.is_empty())
        .then(|| page.common_prefixes.iter().map(|p| CommonPrefix { prefix: Some(enc.s(p)) }).collect())
}

/// A v1 marker or v2 start-after that is a common prefix (below the request prefix, ending with the delimiter)
/// must skip every key under it, or the same prefix would be rolled up again: listing starts
/// after the marker followed by more U+10FFFF (the largest character) than a key can hold.
fn after_marker(marker: &str, prefix: &str, delimiter: Option<&str>) -> String {
    // A common prefix has exactly one delimiter after the request prefix, at its end (`a/b/`
    // under delimiter `/` is not one: `a/b/c` after it still rolls up into `a/`).
    let rolled = |d: &str| {
        marker.strip_prefix(prefix).is_some_and(|rest| !rest.is_empty() && rest.find(d) == Some(rest.len() - d.len()))
    };
    match delimiter {
        Some(d) if !d.is_empty() && rolled(d) => {
            let mut s = marker.to_owned();
            while s.len() <= keystone::MAX_KEY_LEN {
                s.push('\u{10FFFF}');
            }
            s
        }
        _ => marker.to_owned(),
    }
}

fn token_out(t: &str) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(t.as_bytes())
}

fn token_in(t: &str) -> S3Result<String> {
    base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(t.as_bytes())
        .ok()
        .and_then(|v| String::from_utf8(v).ok())
        // The library's tokens are `t` and hex.
        .filter(|t| t.strip_prefix('t').is_some_and(|h| h.len() % 2 == 0 && h.bytes().all(|b| b.is_ascii_hexdigit())))
        .ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect."))
}

impl Keystone {
    async fn page(&self, bucket: String, opts: ListOptions) -> S3Result<ListPage> {
        self.blocking(move |db| {
            let b = db.bucket(&bucket)?;
            if opts.max_keys == 0 {
                return Ok(ListPage::default());
            }
            b.list(&opts)
        })
        .await
    }

    pub(super) async fn do_list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let enc = Enc::parse(input.encoding_type.as_ref())?;
        let max = max_keys(input.max_keys, "max-keys")?;
        let continuation = input.continuation_token.as_deref().map(token_in).transpose()?;
        // With a continuation token S3 ignores start-after (the token says where the listing
        // resumes); it is still echoed. The library would start after the greater of the two.
        // A start-after that is a rolled-up prefix skips its keys, as a v1 marker does.
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        let start_after = match (&continuation, input.start_after.as_deref()) {
            (None, Some(s)) if !s.is_empty() => Some(after_marker(s, &prefix, delimiter.as_deref())),
            _ => None,
        };
        let opts = ListOptions { prefix, start_after, continuation, delimiter, max_keys: max };
        let page = self.page(input.bucket.clone(), opts).await?;
        let with_owner = input.fetch_owner.unwrap_or(false);
        let contents: Vec<Object> = page.objects.iter().map(|o| object(o, enc, with_owner)).collect();
        let common = prefixes(&page, enc);
        let key_count = contents.len() + common.as_ref().map_or(0, Vec::len);
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(enc.s(input.prefix.as_deref().unwrap_or(""))),
            delimiter: enc.opt(input.delimiter.as_ref()),
            start_after: enc.opt(input.start_after.as_ref()),
            max_keys: Some(count(max)),
            key_count: Some(count(key_count)),
            continuation_token: input.continuation_token,
            next_continuation_token: page.next_token.as_deref().map(token_out),
            is_truncated: Some(page.next_token.is_some()),
            contents: Some(contents),
            common_prefixes: common,
            encoding_type: enc.echo(),
            ..Default::default()
        }))
    }

    pub(super) async fn do_list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let enc = Enc::parse(input.encoding_type.as_ref())?;
        let max = max_keys(input.max_keys, "max-keys")?;
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        let with_delimiter = delimiter.is_some();
        let opts = ListOptions {
            prefix: input.prefix.clone().unwrap_or_default(),
            start_after: input
                .marker
                .as_deref()
                .filter(|m| !m.is_empty())
                .map(|m| after_marker(m, input.prefix.as_deref().unwrap_or(""), delimiter.as_deref())),
            continuation: None,
            delimiter,
            max_keys: max,
        };
        let page = self.page(input.bucket.clone(), opts).await?;
        let truncated = page.next_token.is_some();
        // The greatest name on the page, where the next page starts. S3 sends it only with a
        // delimiter; without one the client takes the last Key as the next marker.
        let last_key = page.objects.last().map(|o| o.key.as_str());
        let last_prefix = page.common_prefixes.last().map(String::as_str);
        let next_marker = if truncated && with_delimiter { last_key.max(last_prefix).map(|m| enc.s(m)) } else { None };
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(enc.s(input.prefix.as_deref().unwrap_or(""))),
            delimiter: enc.opt(input.delimiter.as_ref()),
            marker: Some(enc.s(input.marker.as_deref().unwrap_or(""))),
            next_marker,
            max_keys: Some(count(max)),
            is_truncated: Some(truncated),
            contents: Some(page.objects.iter().map(|o| object(o, enc, true)).collect()),
            common_prefixes: prefixes(&page, enc),
            encoding_type: enc.echo(),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn url_encoding_and_tokens() {
        assert_eq!(Enc(true).s("a b/ü+%"), "a%20b/%C3%BC%2B%25");
        assert_eq!(Enc(false).s("a b"), "a b");
        assert_eq!(token_in(&token_out("t6b01")).unwrap(), "t6b01");
        assert!(token_in(&token_out("k\u{1}x")).is_err());
        assert!(token_in("***").is_err());
        let m = after_marker("a/", "", Some("/"));
        assert!(m.as_str() > "a/\u{10FFFF}zzz" && m.len() > keystone::MAX_KEY_LEN);
        assert_eq!(after_marker("a/b", "", Some("/")), "a/b");
        // The request prefix itself is not a rolled-up prefix, nor is a name with two delimiters.
        assert_eq!(after_marker("a/", "a/", Some("/")), "a/");
        assert_eq!(after_marker("a/b/", "", Some("/")), "a/b/");
        assert!(after_marker("a/b/", "a/", Some("/")).len() > keystone::MAX_KEY_LEN);
    }
}
