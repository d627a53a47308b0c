//! Library errors and body-stream errors as S3 errors.

use hyper::StatusCode;
use s3s::{S3Error, S3ErrorCode, StdError};

/// The S3 error for a library error. Anything the client cannot act on becomes
/// `InternalError`: logged here with its source chain, returned without internals.
pub(crate) fn to_s3(e: keystone::Error) -> S3Error {
    use keystone::Error as E;
    let (code, msg) = match &e {
        E::NoSuchBucket { .. } => (S3ErrorCode::NoSuchBucket, "The specified bucket does not exist."),
        E::BucketAlreadyExists { .. } => (
            S3ErrorCode::BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it.",
        ),
        E::BucketNotEmpty { .. } => (S3ErrorCode::BucketNotEmpty, "The bucket you tried to delete is not empty."),
        E::NoSuchKey { .. } => (S3ErrorCode::NoSuchKey, "The specified key does not exist."),
        E::NoSuchUpload { .. } => (S3ErrorCode::NoSuchUpload, "The specified multipart upload does not exist."),
        E::InvalidBucketName { reason, .. } => {
            return S3Error::with_message(
                S3ErrorCode::InvalidBucketName,
                format!("The specified bucket is not valid: it {reason}."),
            );
        }
        E::InvalidKey { reason, .. } if reason.contains("1024") => {
            (S3ErrorCode::KeyTooLongError, "Your key is too long.")
        }
        E::InvalidKey { reason, .. } => {
            return S3Error::with_message(S3ErrorCode::InvalidArgument, format!("Invalid object key: it {reason}."));
        }
        E::InvalidContinuationToken { .. } => {
            (S3ErrorCode::InvalidArgument, "The continuation token provided is incorrect.")
        }
        E::InvalidMetadata { field, reason } if field == "user" => {
            return S3Error::with_message(
                S3ErrorCode::MetadataTooLarge,
                format!("Your metadata is too large: {reason}."),
            );
        }
        E::InvalidMetadata { field, reason } => {
            return S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                format!("Invalid metadata {field:?}: {reason}."),
            );
        }
        E::PreconditionFailed { .. } => {
            (S3ErrorCode::PreconditionFailed, "At least one of the pre-conditions you specified did not hold.")
        }
        E::InvalidRange { .. } => (S3ErrorCode::InvalidRange, "The requested range is not satisfiable."),
        E::InvalidPart { part_number, reason, .. } => {
            return S3Error::with_message(
                S3ErrorCode::InvalidPart,
                format!("Part {part_number} is invalid: {reason}."),
            );
        }
        E::InvalidPartOrder { .. } => (S3ErrorCode::InvalidPartOrder, "The list of parts was not in ascending order."),
        E::EntityTooSmall { part_number, size, min, .. } => {
            return S3Error::with_message(
                S3ErrorCode::EntityTooSmall,
                format!(
                    "Your proposed upload is smaller than the minimum allowed object size: part {part_number} is {size} bytes, the minimum is {min}."
                ),
            );
        }
        E::BadDigest { .. } => {
            (S3ErrorCode::BadDigest, "The Content-MD5 you specified did not match what we received.")
        }
        E::TooLarge(_) => (S3ErrorCode::EntityTooLarge, "Your proposed upload exceeds the maximum allowed size."),
        // A store served read-only (`keystone serve --read-only`): writes are not allowed, as a
        // bucket policy denying them answers on S3.
        E::ReadOnly { .. } => (S3ErrorCode::AccessDenied, "Access Denied: this endpoint serves its store read-only."),
        // Named so a new variant is a conscious choice; all are the server's problem.
        E::Corrupted { .. }
        | E::NotAStore { .. }
        | E::NewerFormat { .. }
        | E::Serialization { .. }
        | E::AlreadyOpen { .. }
        | E::Poisoned
        | E::InUse { .. }
        | E::InTransaction { .. }
        | E::NeedsRecovery { .. }
        | E::Storage { .. }
        | E::Io(_)
        | _ => return internal(e),
    };
    S3Error::with_message(code, msg)
}

/// An `InternalError` for an unexpected failure, logged with its source chain.
pub(crate) fn internal<E: std::error::Error + Send + Sync + 'static>(e: E) -> S3Error {
    let mut chain = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        src = s.source();
    }
    tracing::error!(error = %chain, "internal error");
    S3Error::with_message(S3ErrorCode::InternalError, "We encountered an internal error. Please try again.")
}

/// An error with a code s3s does not predefine.
pub(crate) fn custom(code: &str, status: StatusCode, msg: impl Into<String>) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom(code.to_owned().into()), msg.into());
    e.set_status_code(status);
    e
}

/// The S3 error for a failed request-body stream. s3s's body error types are private, so
/// they are told apart by their `Display`.
pub(crate) fn body_error(e: &StdError) -> S3Error {
    let s = e.to_string();
    if s.contains("Sha256Mismatch") {
        return custom(
            "XAmzContentSHA256Mismatch",
            StatusCode::BAD_REQUEST,
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        );
    }
    // The chunk cap's own errors, by their text (s3s keeps only the text of an error it wraps).
    use crate::chunked::ChunkError;
    if let Some(at) = s.find(ChunkError::TOO_LARGE) {
        return S3Error::with_message(S3ErrorCode::EntityTooLarge, s[at..].to_owned());
    }
    if let Some(at) = s.find(ChunkError::LONG_SIZE) {
        return S3Error::with_message(S3ErrorCode::InvalidRequest, s[at..].to_owned());
    }
    let (code, msg) = if s.contains("SignatureMismatch") {
        (S3ErrorCode::SignatureDoesNotMatch, "The chunk signature does not match.")
    } else if s.contains("Underlying") || s.contains("LengthMismatch") || s.contains("Incomplete") {
        (
            S3ErrorCode::IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header.",
        )
    } else if s.contains("AwsChunkedStreamError") {
        (S3ErrorCode::InvalidRequest, "The aws-chunked request body is malformed.")
    } else {
        (S3ErrorCode::IncompleteBody, "The request body ended early or could not be read.")
    };
    tracing::debug!(error = %s, "request body failed");
    S3Error::with_message(code, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_library_errors() {
        let e = to_s3(keystone::Error::NoSuchKey { bucket: "b".into(), key: "k".into() });
        assert_eq!(e.code(), &S3ErrorCode::NoSuchKey);
        let e = to_s3(keystone::Error::InvalidContinuationToken { token: "tz".into() });
        assert_eq!(e.code(), &S3ErrorCode::InvalidArgument);
        let e = to_s3(keystone::Error::Poisoned);
        assert_eq!(e.code(), &S3ErrorCode::InternalError);
        assert!(!e.message().unwrap_or_default().contains("disk"));
        let e = to_s3(keystone::Error::InvalidKey { key: "k".into(), reason: "must be at most 1024 bytes" });
        assert_eq!(e.code(), &S3ErrorCode::KeyTooLongError);
        let bad = keystone::Error::BadDigest {
            bucket: "b".into(),
            key: "k".into(),
            expected: "0".into(),
            computed: "1".into(),
        };
        assert_eq!(to_s3(bad).code(), &S3ErrorCode::BadDigest);
        let e = to_s3(keystone::Error::ReadOnly { path: "s.redb".into(), operation: "writing" });
        assert_eq!(e.code(), &S3ErrorCode::AccessDenied);
        assert!(!e.message().unwrap_or_default().contains("s.redb"), "no file paths to clients");
        let e = custom("XAmzContentSHA256Mismatch", StatusCode::BAD_REQUEST, "x");
        assert_eq!(e.status_code(), Some(StatusCode::BAD_REQUEST));
    }
}
