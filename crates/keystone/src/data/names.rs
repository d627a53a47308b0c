//! Bucket-name and object-key rules.

use crate::error::{Error, Result};
use crate::types::ObjectMeta;

/// Longest object key, in bytes (S3's limit).
pub const MAX_KEY_LEN: usize = 1024;

/// Most bytes of user metadata an object may carry, names and values together (S3's limit).
pub const MAX_USER_META: usize = 2048;

/// Checks that metadata can travel as HTTP headers, as S3 sends it back: user metadata names
/// are HTTP tokens, unique regardless of case (S3 lowercases them), and at most
/// [`MAX_USER_META`] bytes with their values; no value holds a control character (a CR or LF
/// would end the header). Without this an object could be stored that no S3 client can read.
pub(crate) fn check_meta(meta: &ObjectMeta) -> Result<()> {
    let fail = |field: &str, reason: String| Err(Error::InvalidMetadata { field: field.to_owned(), reason });
    let fixed = [
        ("content_type", &meta.content_type),
        ("cache_control", &meta.cache_control),
        ("content_disposition", &meta.content_disposition),
        ("content_encoding", &meta.content_encoding),
        ("content_language", &meta.content_language),
        ("expires", &meta.expires),
    ];
    for (field, value) in fixed {
        if let Some(c) = value.as_deref().and_then(control_char) {
            return fail(field, format!("contains the control character {c:?}"));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0;
    for (name, value) in &meta.user {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return fail(name, "a user metadata name may hold only letters, digits and !#$%&'*+-.^_`|~".into());
        }
        if !seen.insert(name.to_ascii_lowercase()) {
            return fail(name, "differs from another user metadata name only in case".into());
        }
        if let Some(c) = control_char(value) {
            return fail(name, format!("contains the control character {c:?}"));
        }
        total += name.len() + value.len();
    }
    if total > MAX_USER_META {
        return fail("user", format!("user metadata is {total} bytes; at most {MAX_USER_META} (S3's limit)"));
    }
    Ok(())
}

fn control_char(v: &str) -> Option<char> {
    v.chars().find(|&c| (c < ' ' && c != '\t') || c == '\x7f')
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks a bucket name against S3's rules.
pub(crate) fn check_bucket(name: &str) -> Result<()> {
    let fail = |reason| Err(Error::InvalidBucketName { name: name.to_owned(), reason });
    let len = name.len();
    if !(3..=63).contains(&len) {
        return fail("must be 3 to 63 characters long");
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-') {
        return fail("may contain only lowercase letters, digits, '.' and '-'");
    }
    let first = name.as_bytes()[0];
    let last = name.as_bytes()[len - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return fail("must start and end with a letter or digit");
    }
    if name.contains("..") {
        return fail("must not contain two adjacent periods");
    }
    if name.starts_with("xn--") {
        return fail("must not start with the prefix 'xn--'");
    }
    if name.ends_with("-s3alias") || name.ends_with("--ol-s3") {
        return fail("must not end with a suffix reserved by S3");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() || looks_like_ipv4(name) {
        return fail("must not be formatted as an IP address");
    }
    Ok(())
}

/// Checks the name of a bucket being created, as
/// [`Datastore::create_bucket`](crate::Datastore::create_bucket) does (exported as
/// `keystone::check_bucket_name`, for a caller that validates before it opens or creates a
/// store): S3's rules, and the prefixes and suffixes S3 reserved later (`sthree-`,
/// `amzn-s3-demo-`; `.mrap`, `--x-s3`, `--table-s3`). These are refused at creation only, so
/// a bucket made under one before stays reachable.
///
/// # Errors
/// [`Error::InvalidBucketName`] naming the rule the name breaks.
pub fn check_new_bucket(name: &str) -> Result<()> {
    check_bucket(name)?;
    let fail = |reason| Err(Error::InvalidBucketName { name: name.to_owned(), reason });
    if ["sthree-", "amzn-s3-demo-"].iter().any(|p| name.starts_with(p)) {
        return fail("must not start with a prefix reserved by S3");
    }
    if [".mrap", "--x-s3", "--table-s3"].iter().any(|s| name.ends_with(s)) {
        return fail("must not end with a suffix reserved by S3");
    }
    Ok(())
}

fn looks_like_ipv4(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() == 4 && parts.iter().all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Checks an object key: non-empty UTF-8 (guaranteed by `&str`), at most 1024 bytes, no NUL.
pub(crate) fn check_key(key: &str) -> Result<()> {
    let fail = |reason| Err(Error::InvalidKey { key: key.chars().take(200).collect(), reason });
    if key.is_empty() {
        return fail("must not be empty");
    }
    if key.len() > MAX_KEY_LEN {
        return fail("must be at most 1024 bytes");
    }
    if key.as_bytes().contains(&0) {
        return fail("must not contain a NUL byte");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_bucket_names() {
        for n in ["abc", "my-bucket", "my.bucket.1", "0ab", &"a".repeat(63), "192.168.5.4x"] {
            assert!(check_bucket(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn invalid_bucket_names_say_why() {
        let cases = [
            ("ab", "3 to 63"),
            (&"a".repeat(64) as &str, "3 to 63"),
            ("Abc", "lowercase"),
            ("a_b", "lowercase"),
            ("__meta__", "lowercase"),
            ("-ab", "start and end"),
            ("ab.", "start and end"),
            ("a..b", "adjacent periods"),
            ("xn--abc", "xn--"),
            ("192.168.5.4", "IP address"),
            ("a b", "lowercase"),
            ("a\0b", "lowercase"),
        ];
        for (name, why) in cases {
            match check_bucket(name) {
                Err(Error::InvalidBucketName { reason, .. }) => assert!(reason.contains(why), "{name}: {reason}"),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn names_reserved_later_are_refused_at_creation_only() {
        for (name, why) in [
            ("sthree-x", "prefix"),
            ("sthree-configurator", "prefix"),
            ("amzn-s3-demo-x", "prefix"),
            ("abc.mrap", "suffix"),
            ("abc--x-s3", "suffix"),
            ("abc--table-s3", "suffix"),
            ("abc--ol-s3", "suffix"),
            ("xn--abc", "xn--"),
        ] {
            match check_new_bucket(name) {
                Err(Error::InvalidBucketName { reason, .. }) => assert!(reason.contains(why), "{name}: {reason}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(check_bucket("sthree-x").is_ok());
        assert!(check_new_bucket("three-x").is_ok());
    }

    #[test]
    fn metadata_must_fit_in_headers() {
        let with_user = |pairs: &[(&str, &str)]| ObjectMeta {
            user: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            ..ObjectMeta::default()
        };
        assert!(check_meta(&with_user(&[("color", "blue green"), ("x-1", "ü\tok")])).is_ok());
        let big = "v".repeat(MAX_USER_META - 1);
        assert!(check_meta(&with_user(&[("k", &big)])).is_ok());
        for (meta, why) in [
            (with_user(&[("bad key", "v")]), "letters, digits"),
            (with_user(&[("é", "v")]), "letters, digits"),
            (with_user(&[("", "v")]), "letters, digits"),
            (with_user(&[("K", "upper"), ("k", "lower")]), "only in case"),
            (with_user(&[("k", "a\r\nx-injected: 1")]), "control character"),
            (with_user(&[("kk", &big)]), "at most 2048"),
            (ObjectMeta { content_type: Some("text/plain\nX: y".into()), ..ObjectMeta::default() }, "control"),
        ] {
            match check_meta(&meta) {
                Err(Error::InvalidMetadata { reason, .. }) => assert!(reason.contains(why), "{reason}"),
                other => panic!("{meta:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn keys() {
        for k in ["a", "a//b/../c", "..", "\\", "%00", "ключ", &"k".repeat(1024)] {
            assert!(check_key(k).is_ok(), "{k}");
        }
        for (k, why) in [("", "empty"), (&"k".repeat(1025) as &str, "1024"), ("a\0b", "NUL")] {
            match check_key(k) {
                Err(Error::InvalidKey { reason, .. }) => assert!(reason.contains(why)),
                other => panic!("{other:?}"),
            }
        }
    }
}
