//! Object operations: PUT, GET, HEAD, DELETE, batch delete, copy.

use std::io::{Seek, SeekFrom};

use keystone::{CopyOptions, ObjectInfo, ObjectReader, PutOptions};
use s3s::dto::{
    CopyObjectInput, CopyObjectOutput, CopyObjectResult, CopySource, DeleteObjectInput, DeleteObjectOutput,
    DeleteObjectsInput, DeleteObjectsOutput, DeletedObject, ETagCondition, Error, GetObjectInput, GetObjectOutput,
    HeadObjectInput, HeadObjectOutput, MetadataDirective, PutObjectInput, PutObjectOutput, Range,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Keystone;
use super::meta::{
    DeleteCondition, ReadConditions, etag, expires, header_safe, if_range_holds, put_condition, user_metadata,
};
use crate::body::{consume, stream_reader};
use crate::errors::{custom, to_s3};

/// A GetObject or HeadObject output: the object's stored headers, each replaced by the
/// request's `response-*` parameter when it has one (S3 honours them on both; s3s also applies
/// them to a GET's response headers itself, not to a HEAD's), plus `$field: $value` pairs.
macro_rules! object_output {
    ($out:ident { $($field:ident $(: $value:expr)?),* $(,)? }, $info:expr, $input:expr) => {{
        let info: &ObjectInfo = $info;
        s3s::dto::$out {
            accept_ranges: Some("bytes".into()),
            e_tag: Some(etag(&info.etag)),
            last_modified: Some(super::meta::whole_seconds(info.modified)),
            content_type: Some($input.response_content_type.take().unwrap_or_else(|| content_type(info))),
            cache_control: $input
                .response_cache_control
                .take()
                .or_else(|| header_safe("cache_control", info.meta.cache_control.clone())),
            content_disposition: $input
                .response_content_disposition
                .take()
                .or_else(|| header_safe("content_disposition", info.meta.content_disposition.clone())),
            content_encoding: $input
                .response_content_encoding
                .take()
                .or_else(|| header_safe("content_encoding", info.meta.content_encoding.clone())),
            content_language: $input
                .response_content_language
                .take()
                .or_else(|| header_safe("content_language", info.meta.content_language.clone())),
            expires: $input.response_expires.take().or_else(|| expires(&info.meta)),
            metadata: user_metadata(&info.meta),
            $($field $(: $value)?,)*
            ..Default::default()
        }
    }};
}

/// Largest DeleteObjects batch (S3's limit).
const MAX_DELETE_BATCH: usize = 1000;

/// A byte range of an object of `size` bytes: `(start, end)` and the Content-Range, if any.
/// No range of an empty object is satisfiable (s3s's check lets a suffix range of one
/// through as `0..0`); a 416 carries `Content-Range: bytes */size`, as RFC 9110 asks.
pub(super) fn resolve_range(range: Option<&Range>, size: u64) -> S3Result<(u64, u64, Option<String>)> {
    match range {
        None => Ok((0, size, None)),
        Some(r) => match r.check(size) {
            Ok(rg) if size > 0 => {
                Ok((rg.start, rg.end, Some(format!("bytes {}-{}/{}", rg.start, rg.end.saturating_sub(1), size))))
            }
            _ => {
                let mut e = s3_error!(InvalidRange, "The requested range is not satisfiable.");
                let mut headers = hyper::HeaderMap::new();
                if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("bytes */{size}")) {
                    headers.insert(hyper::header::CONTENT_RANGE, v);
                }
                e.set_headers(headers);
                Err(e)
            }
        },
    }
}

/// A GetObject or HeadObject names its bytes by `partNumber` or by `Range`, not both: S3
/// answers 400 `InvalidRequest` to both (whatever the part number), and 400 `InvalidArgument`
/// to a part number outside 1–10000, before the object is read. Returns the part number.
fn part_or_range(part_number: Option<i32>, range: Option<&Range>) -> S3Result<Option<u32>> {
    if part_number.is_some() && range.is_some() {
        return Err(s3_error!(InvalidRequest, "Cannot specify both Range header and partNumber query parameter."));
    }
    part_number
        .map(|n| {
            u32::try_from(n).ok().filter(|n| (1..=10_000).contains(n)).ok_or_else(|| {
                s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive.")
            })
        })
        .transpose()
}

/// The bytes `partNumber` names, as [`resolve_range`] answers a range: `(start, end)` and the
/// Content-Range (none for an empty part, which no range can name), and the part count
/// S3 sends back (`x-amz-mp-parts-count`) for an object completed from a multipart upload. A
/// copy of a multipart object, which keeps no part boundaries, is one part without a count (a
/// downloader then reads it as one piece). A part the object does not have is 416
/// `InvalidPartNumber`, as from S3.
fn part_span(r: &ObjectReader, part_number: u32) -> S3Result<(u64, u64, Option<String>, Option<i32>)> {
    let info = r.info();
    let count = (info.parts >= 1 && r.part_count() == info.parts).then(|| i32::try_from(info.parts).ok()).flatten();
    match r.part_range(part_number) {
        // No Content-Range can name zero bytes (an empty object, or an empty last part): the
        // answer is a 200 of nothing.
        Some(range) if range.is_empty() => Ok((range.start, range.end, None, count)),
        Some(range) => {
            let cr = format!("bytes {}-{}/{}", range.start, range.end - 1, info.size);
            Ok((range.start, range.end, Some(cr), count))
        }
        None => Err(custom(
            "InvalidPartNumber",
            hyper::StatusCode::RANGE_NOT_SATISFIABLE,
            "The requested partnumber is not satisfiable",
        )),
    }
}

/// A bucket here is never versioned: its objects have the version id "null" and no other
/// (S3 answers 400 InvalidArgument for any other id on such a bucket). An id that is not
/// "null" must not reach the current object.
fn check_version(version_id: Option<&str>) -> S3Result<()> {
    match version_id {
        None | Some("null") => Ok(()),
        Some(_) => Err(s3_error!(InvalidArgument, "Invalid version id specified")),
    }
}

/// A `response-*` override must be a valid header value (s3s checks this on GET, not on HEAD,
/// where an invalid one failed the response with a 500).
fn check_overrides(values: &[Option<&String>]) -> S3Result<()> {
    for v in values.iter().flatten() {
        if hyper::header::HeaderValue::from_str(v).is_err() {
            return Err(s3_error!(InvalidRequest, "A response-* override is not a valid header value."));
        }
    }
    Ok(())
}

/// The object's Content-Type; one stored without reads as `binary/octet-stream`, as in S3.
fn content_type(info: &ObjectInfo) -> String {
    header_safe("content_type", info.meta.content_type.clone()).unwrap_or_else(|| "binary/octet-stream".to_owned())
}

impl Keystone {
    pub(super) async fn do_put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let mut input = req.input;
        let expect = expect_body!(req, input)?;
        let condition = put_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
        let meta = meta_of!(input)?;
        let (bucket, key) = (input.bucket, input.key);
        let db = self.db.clone();
        let content_md5 = expect.md5;
        let (info, got) = consume(input.body, expect, move |r| {
            db.bucket(&bucket)?.put_reader(&key, r, PutOptions { meta, condition, content_md5 })
        })
        .await?;
        Ok(S3Response::new(with_checksums!(
            PutObjectOutput { e_tag: Some(etag(&info.etag)), size: i64::try_from(info.size).ok() },
            got
        )))
    }

    pub(super) async fn do_get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        // s3s does not read If-Range; a value that is not text cannot name the object.
        let if_range: Option<String> =
            req.headers.get(hyper::header::IF_RANGE).map(|v| v.to_str().map_or_else(|_| String::new(), str::to_owned));
        let mut input = req.input;
        check_version(input.version_id.as_deref())?;
        let part_number = part_or_range(input.part_number, input.range.as_ref())?;
        let (bucket, key) = (input.bucket, input.key);
        let (if_match, if_none_match) = (input.if_match, input.if_none_match);
        let (if_modified_since, if_unmodified_since) = (input.if_modified_since, input.if_unmodified_since);
        let range = input.range;
        let (reader, info, (start, end, content_range, parts_count)) = self
            .blocking_s3(move |db| {
                let mut r = db.bucket(&bucket).and_then(|b| b.open(&key)).map_err(to_s3)?;
                let info = r.info().clone();
                ReadConditions {
                    if_match: if_match.as_ref(),
                    if_none_match: if_none_match.as_ref(),
                    if_modified_since: if_modified_since.as_ref(),
                    if_unmodified_since: if_unmodified_since.as_ref(),
                }
                .check(&info, true)?;
                // A Range under an If-Range that no longer names the object is ignored (GET only,
                // as RFC 9110 says): the whole object, 200.
                let range = range.filter(|_| if_range.as_deref().is_none_or(|v| if_range_holds(v, &info)));
                let span = match part_number {
                    Some(n) => part_span(&r, n)?,
                    None => {
                        let (start, end, cr) = resolve_range(range.as_ref(), info.size)?;
                        (start, end, cr, None)
                    }
                };
                if span.0 > 0 {
                    r.seek(SeekFrom::Start(span.0)).map_err(|e| to_s3(keystone::Error::from_io(e)))?;
                }
                Ok((r, info, span))
            })
            .await?;
        let len = end - start;
        let body = stream_reader(reader, len, self.limits.idle_timeout);
        Ok(S3Response::new(object_output!(
            GetObjectOutput { body: Some(body), content_length: i64::try_from(len).ok(), content_range, parts_count },
            &info,
            input
        )))
    }

    pub(super) async fn do_head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let mut input = req.input;
        check_version(input.version_id.as_deref())?;
        check_overrides(&[
            input.response_content_type.as_ref(),
            input.response_cache_control.as_ref(),
            input.response_content_disposition.as_ref(),
            input.response_content_encoding.as_ref(),
            input.response_content_language.as_ref(),
        ])?;
        let part_number = part_or_range(input.part_number, input.range.as_ref())?;
        let (bucket, key) = (input.bucket, input.key);
        // Part boundaries are in the object's record, which a reader holds (`head` gives only
        // the info); the reader reads nothing more.
        let (info, reader) = match part_number {
            None => (self.blocking(move |db| db.bucket(&bucket)?.head(&key)).await?, None),
            Some(_) => {
                let r = self.blocking(move |db| db.bucket(&bucket)?.open(&key)).await?;
                (r.info().clone(), Some(r))
            }
        };
        ReadConditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        }
        .check(&info, true)?;
        let (start, end, content_range, parts_count) = match (&reader, part_number) {
            (Some(r), Some(n)) => part_span(r, n)?,
            _ => {
                let (start, end, cr) = resolve_range(input.range.as_ref(), info.size)?;
                (start, end, cr, None)
            }
        };
        // With a range, the outer service turns the 200 into a 206 (s3s ignores a status set
        // here for HEAD).
        Ok(S3Response::new(object_output!(
            HeadObjectOutput { content_length: i64::try_from(end - start).ok(), content_range, parts_count },
            &info,
            input
        )))
    }

    pub(super) async fn do_delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        check_version(input.version_id.as_deref())?;
        let cond = DeleteCondition {
            etag: input.if_match,
            modified: input.if_match_last_modified_time,
            size: input.if_match_size,
        };
        let (bucket, key) = (input.bucket, input.key);
        if cond.is_none() {
            self.blocking(move |db| db.bucket(&bucket)?.delete(&key)).await?;
        } else {
            // The check and the delete in one transaction: nothing changes the object between.
            self.blocking(move |db| {
                db.transaction(|tx| {
                    let b = tx.bucket(&bucket)?;
                    cond.check(&bucket, &key, b.head(&key))?;
                    b.delete(&key)
                })
            })
            .await?;
        }
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    pub(super) async fn do_delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        let quiet = input.delete.quiet.unwrap_or(false);
        let objects = input.delete.objects;
        if objects.len() > MAX_DELETE_BATCH {
            return Err(s3_error!(MalformedXML, "A DeleteObjects request may name at most 1000 keys."));
        }
        let bucket = input.bucket;
        let (deleted, errors) = self
            .blocking_s3(move |db| {
                // One transaction, one durable commit, for the whole batch (not one per key).
                // A key the store rejects (an invalid name) writes nothing and is reported on
                // its own; a storage failure fails the request and deletes nothing.
                db.transaction(|tx| {
                    let b = tx.bucket(&bucket)?;
                    let (mut deleted, mut errors) = (Vec::new(), Vec::new());
                    for o in objects {
                        // A version that is not "null" does not exist here: that key's error,
                        // as S3 reports it (NoSuchVersion), and the current object stays.
                        if check_version(o.version_id.as_deref()).is_err() {
                            errors.push(Error {
                                key: Some(o.key),
                                version_id: o.version_id,
                                code: Some("NoSuchVersion".to_owned()),
                                message: Some("The specified version does not exist.".to_owned()),
                            });
                            continue;
                        }
                        let cond = DeleteCondition {
                            // s3s reads `<ETag>*</ETag>` as the ETag "*".
                            etag: o
                                .e_tag
                                .map(|e| if e.value() == "*" { ETagCondition::Any } else { ETagCondition::ETag(e) }),
                            modified: o.last_modified_time,
                            size: o.size,
                        };
                        // A failed condition is that key's error, as S3 reports it; the others go on.
                        let deleted_or = if cond.is_none() {
                            b.delete(&o.key)
                        } else {
                            cond.check(&bucket, &o.key, b.head(&o.key)).and_then(|()| b.delete(&o.key))
                        };
                        match deleted_or {
                            Ok(()) if quiet => {}
                            Ok(()) => deleted.push(DeletedObject { key: Some(o.key), ..Default::default() }),
                            Err(
                                e @ (keystone::Error::InvalidKey { .. }
                                | keystone::Error::NoSuchKey { .. }
                                | keystone::Error::PreconditionFailed { .. }),
                            ) => {
                                let e = to_s3(e);
                                errors.push(Error {
                                    key: Some(o.key),
                                    code: Some(e.code().as_str().to_owned()),
                                    message: e.message().map(str::to_owned),
                                    ..Default::default()
                                });
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    Ok((deleted, errors))
                })
                .map_err(to_s3)
            })
            .await?;
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    pub(super) async fn do_copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
        let (src_bucket, src_key) = copy_source(&input.copy_source)?;
        let replace = match input.metadata_directive.as_ref().map(MetadataDirective::as_str) {
            None | Some(MetadataDirective::COPY) => false,
            Some(MetadataDirective::REPLACE) => true,
            Some(other) => return Err(s3_error!(InvalidArgument, "Unknown metadata directive {other:?}.")),
        };
        if !replace && src_bucket == input.bucket && src_key == input.key {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata."
            ));
        }
        let meta = if replace { Some(meta_of!(input)?) } else { None };
        // If-Match / If-None-Match on the destination, as on PutObject (s3s 0.14 does not parse
        // them for CopyObject: read from the headers).
        let header = |name: &str| -> S3Result<Option<ETagCondition>> {
            req.headers
                .get(name)
                .map(|v| {
                    ETagCondition::parse_http_header(v.as_bytes())
                        .map_err(|_| s3_error!(InvalidArgument, "Invalid {name} header."))
                })
                .transpose()
        };
        let condition = put_condition(header("if-match")?.as_ref(), header("if-none-match")?.as_ref())?;
        let (dst_bucket, dst_key) = (input.bucket, input.key);
        let conds = (
            input.copy_source_if_match,
            input.copy_source_if_none_match,
            input.copy_source_if_modified_since,
            input.copy_source_if_unmodified_since,
        );
        let info = self
            .blocking_s3(move |db| {
                db.bucket(&dst_bucket).map_err(to_s3)?;
                let src = db.bucket(&src_bucket).and_then(|b| b.head(&src_key)).map_err(to_s3)?;
                ReadConditions {
                    if_match: conds.0.as_ref(),
                    if_none_match: conds.1.as_ref(),
                    if_modified_since: conds.2.as_ref(),
                    if_unmodified_since: conds.3.as_ref(),
                }
                .check(&src, false)?;
                // The source ETag makes the copy fail if the source changed since the checks.
                let opts = CopyOptions { meta, condition, source_etag: Some(src.etag) };
                db.copy_object(&src_bucket, &src_key, &dst_bucket, &dst_key, &opts).map_err(to_s3)
            })
            .await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag(&info.etag)),
                last_modified: Some(super::meta::whole_seconds(info.modified)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}

/// The bucket and key of an `x-amz-copy-source`.
pub(super) fn copy_source(src: &CopySource) -> S3Result<(String, String)> {
    match src {
        CopySource::Bucket { bucket, key, version_id } => {
            check_version(version_id.as_deref())?;
            Ok((bucket.to_string(), key.to_string()))
        }
        _ => Err(s3_error!(NotImplemented, "Access point copy sources are not supported.")),
    }
}
