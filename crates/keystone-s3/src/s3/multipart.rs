//! Multipart uploads over the library's staging mechanism.

use std::io::{Read, Seek, SeekFrom};

use hyper::HeaderMap;
use hyper::header::HOST;
use hyper::http::uri::Authority;
use keystone::{CompleteOptions, CompletedPart as KsPart, UploadInfo};
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CommonPrefix, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CopyPartResult, CreateMultipartUploadInput, CreateMultipartUploadOutput, Initiator,
    ListMultipartUploadsInput, ListMultipartUploadsOutput, ListPartsInput, ListPartsOutput, MultipartUpload, Owner,
    Part, Range, StorageClass, UploadPartCopyInput, UploadPartCopyOutput, UploadPartInput, UploadPartOutput,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::Keystone;
use super::list::{Enc, count, max_keys, url_encode};
use super::meta::{ReadConditions, etag, put_condition};
use super::objects::copy_source;
use crate::body::consume;
use crate::errors::to_s3;

/// S3's smallest part (all but the last).
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Largest part (S3: 5 GiB).
const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive."))
}

/// An upload id is valid only with the key it was created for (S3 answers NoSuchUpload). A
/// completion leaves this to the library (`CompleteOptions::key`), which checks it in its own
/// transaction, against the upload or, for a retry, against the completed upload's record.
fn check_upload(b: &keystone::Bucket, key: &str, id: &str) -> keystone::Result<()> {
    if b.upload_info(id)?.key == key {
        Ok(())
    } else {
        Err(keystone::Error::NoSuchUpload { bucket: b.name().to_owned(), upload_id: id.to_owned() })
    }
}

/// CompleteMultipartUpload's `Location`: an absolute URL as S3 gives, `http://HOST/BUCKET/KEY`
/// with the key percent-encoded but for '/', from the request's Host header; the path alone
/// when the request has no usable Host (none, or not a plain host and port).
fn location(headers: &HeaderMap, bucket: &str, key: &str) -> String {
    let path = format!("/{bucket}/{}", url_encode(key));
    let host =
        headers.get(HOST).and_then(|h| h.to_str().ok()).filter(|h| !h.contains('@') && h.parse::<Authority>().is_ok());
    match host {
        Some(host) => format!("http://{host}{path}"),
        None => path,
    }
}

fn owner() -> Owner {
    Owner { id: Some("keystone".into()), display_name: Some("keystone".into()) }
}

impl Keystone {
    pub(super) async fn do_create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        let meta = meta_of!(input)?;
        let (bucket, key) = (input.bucket.clone(), input.key.clone());
        let id = self.blocking(move |db| db.bucket(&bucket)?.create_upload(&key, meta)).await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            checksum_algorithm: input.checksum_algorithm,
            ..Default::default()
        }))
    }

    pub(super) async fn do_upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let mut input = req.input;
        let n = part_number(input.part_number)?;
        if input.content_length.is_some_and(|l| l.unsigned_abs() > MAX_PART_SIZE) {
            return Err(s3_error!(EntityTooLarge, "A part may be at most 5 GiB."));
        }
        let expect = expect_body!(req, input)?;
        let (bucket, key, id) = (input.bucket, input.key, input.upload_id);
        let db = self.db.clone();
        let content_md5 = expect.md5;
        let (part, got) = consume(input.body, expect, move |r| {
            let b = db.bucket(&bucket)?;
            check_upload(&b, &key, &id)?;
            match content_md5 {
                Some(md5) => b.upload_part_checked(&id, n, r, md5),
                None => b.upload_part(&id, n, r),
            }
        })
        .await?;
        Ok(S3Response::new(with_checksums!(UploadPartOutput { e_tag: Some(etag(&part.etag)) }, got)))
    }

    pub(super) async fn do_upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        let n = part_number(input.part_number)?;
        let (src_bucket, src_key) = copy_source(&input.copy_source)?;
        let range = match input.copy_source_range.as_deref() {
            None => None,
            Some(s) => match Range::parse(s) {
                Ok(r @ Range::Int { last: Some(_), .. }) => Some(r),
                _ => {
                    return Err(s3_error!(
                        InvalidArgument,
                        "The x-amz-copy-source-range value must be of the form bytes=first-last."
                    ));
                }
            },
        };
        let conds = (
            input.copy_source_if_match,
            input.copy_source_if_none_match,
            input.copy_source_if_modified_since,
            input.copy_source_if_unmodified_since,
        );
        let (bucket, key, id) = (input.bucket, input.key, input.upload_id);
        let part = self
            .blocking_s3(move |db| {
                let dst = db.bucket(&bucket).map_err(to_s3)?;
                check_upload(&dst, &key, &id).map_err(to_s3)?;
                let mut src = db.bucket(&src_bucket).and_then(|b| b.open(&src_key)).map_err(to_s3)?;
                let info = src.info().clone();
                ReadConditions {
                    if_match: conds.0.as_ref(),
                    if_none_match: conds.1.as_ref(),
                    if_modified_since: conds.2.as_ref(),
                    if_unmodified_since: conds.3.as_ref(),
                }
                .check(&info, false)?;
                // S3 copies a range only when it lies wholly within the source (a GET would
                // shorten it; a part that silently came out shorter would be wrong).
                let (start, end) = match range {
                    None => (0, info.size),
                    Some(Range::Int { first, last: Some(last) }) if first <= last && last < info.size => {
                        (first, last + 1)
                    }
                    Some(_) => {
                        return Err(S3Error::with_message(
                            S3ErrorCode::InvalidArgument,
                            format!("Range specified is not valid for source object of size: {}", info.size),
                        ));
                    }
                };
                if end - start > MAX_PART_SIZE {
                    return Err(s3_error!(EntityTooLarge, "A part may be at most 5 GiB."));
                }
                src.seek(SeekFrom::Start(start)).map_err(|e| to_s3(keystone::Error::from_io(e)))?;
                dst.upload_part(&id, n, src.take(end - start)).map_err(to_s3)
            })
            .await?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(etag(&part.etag)),
                last_modified: Some(super::meta::whole_seconds(part.modified)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    pub(super) async fn do_complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let location = location(&req.headers, &req.input.bucket, &req.input.key);
        let input = req.input;
        let named = input.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
        if named.is_empty() {
            return Err(s3_error!(MalformedXML, "The CompleteMultipartUpload request names no parts."));
        }
        let mut parts = Vec::with_capacity(named.len());
        for p in named {
            let (Some(n), Some(e)) = (p.part_number, p.e_tag) else {
                return Err(s3_error!(MalformedXML, "Every part needs a PartNumber and an ETag."));
            };
            parts.push(KsPart { part_number: part_number(n)?, etag: e.value().trim_matches('"').to_owned() });
        }
        let condition = put_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
        let (bucket, key, id) = (input.bucket.clone(), input.key.clone(), input.upload_id);
        // The library checks the upload's key, and answers a retry of a completion that
        // succeeded (its answer lost) as the first: see `Bucket::complete_upload`.
        let info = self
            .blocking(move |db| {
                let opts = CompleteOptions { min_part_size: MIN_PART_SIZE, condition, key: Some(key) };
                db.bucket(&bucket)?.complete_upload(&id, &parts, &opts)
            })
            .await?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(etag(&info.etag)),
            location: Some(location),
            ..Default::default()
        }))
    }

    pub(super) async fn do_abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let (bucket, id) = (req.input.bucket, req.input.upload_id);
        let key = req.input.key;
        self.blocking(move |db| {
            let b = db.bucket(&bucket)?;
            check_upload(&b, &key, &id)?;
            b.abort_upload(&id)
        })
        .await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    pub(super) async fn do_list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let max = max_keys(input.max_parts, "max-parts")?;
        let marker = input.part_number_marker.unwrap_or(0);
        let (bucket, id) = (input.bucket.clone(), input.upload_id.clone());
        let key = input.key.clone();
        let all = self
            .blocking(move |db| {
                let b = db.bucket(&bucket)?;
                check_upload(&b, &key, &id)?;
                b.list_parts(&id)
            })
            .await?;
        let rest: Vec<_> = all.into_iter().filter(|p| i64::from(p.part_number) > i64::from(marker)).collect();
        // A page of none (max-parts=0) is not truncated: it has no last part to resume after,
        // and ListObjects answers max-keys=0 the same way.
        let truncated = max > 0 && rest.len() > max;
        let page: Vec<Part> = rest
            .iter()
            .take(max)
            .map(|p| Part {
                part_number: i32::try_from(p.part_number).ok(),
                e_tag: Some(etag(&p.etag)),
                size: i64::try_from(p.size).ok(),
                last_modified: Some(super::meta::whole_seconds(p.modified)),
                ..Default::default()
            })
            .collect();
        let next = if truncated { page.last().and_then(|p| p.part_number) } else { None };
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next,
            max_parts: Some(count(max)),
            is_truncated: Some(truncated),
            parts: Some(page),
            initiator: Some(Initiator { id: Some("keystone".into()), display_name: Some("keystone".into()) }),
            owner: Some(owner()),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        }))
    }

    pub(super) async fn do_list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let enc = Enc::parse(input.encoding_type.as_ref())?;
        let max = max_keys(input.max_uploads, "max-uploads")?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let (bucket, p) = (input.bucket.clone(), prefix.clone());
        let mut all = self.blocking(move |db| db.bucket(&bucket)?.list_uploads(&p)).await?;
        // Pages resume after `upload-id-marker` by comparing ids, so a key's uploads are listed
        // in id order (the order they were created in), not by their wall-clock initiation time,
        // which concurrent creates can leave out of id order (an upload would be skipped).
        all.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.upload_id.cmp(&b.upload_id)));
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let id_marker = input.upload_id_marker.clone().unwrap_or_default();
        let after = |u: &UploadInfo| {
            key_marker.is_empty()
                || u.key > key_marker
                || (u.key == key_marker && !id_marker.is_empty() && u.upload_id > id_marker)
        };
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        let (mut uploads, mut common): (Vec<MultipartUpload>, Vec<String>) = (Vec::new(), Vec::new());
        let (mut truncated, mut next) = (false, None);
        for u in all.iter().filter(|u| after(u)) {
            let rolled = delimiter
                .as_deref()
                .and_then(|d| u.key[prefix.len()..].find(d).map(|i| u.key[..prefix.len() + i + d.len()].to_owned()));
            // A common prefix is listed once: not again on this page, and not on the page
            // after one that ended with it (its key marker is then the prefix itself).
            if let Some(cp) = &rolled
                && (common.last() == Some(cp) || *cp == key_marker)
            {
                continue;
            }
            if uploads.len() + common.len() == max {
                // max-uploads=0: no page to resume after, so not truncated (as max-parts=0).
                truncated = max > 0;
                break;
            }
            match rolled {
                Some(cp) => {
                    next = Some((cp.clone(), None));
                    common.push(cp);
                }
                None => {
                    next = Some((u.key.clone(), Some(u.upload_id.clone())));
                    uploads.push(MultipartUpload {
                        key: Some(enc.s(&u.key)),
                        upload_id: Some(u.upload_id.clone()),
                        initiated: Some(super::meta::whole_seconds(u.initiated)),
                        initiator: Some(Initiator {
                            id: Some("keystone".into()),
                            display_name: Some("keystone".into()),
                        }),
                        owner: Some(owner()),
                        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                        ..Default::default()
                    });
                }
            }
        }
        let (next_key, next_id) = match next.filter(|_| truncated) {
            Some((k, i)) => (Some(enc.s(&k)), i),
            None => (None, None),
        };
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: Some(enc.s(&prefix)),
            delimiter: enc.opt(input.delimiter.as_ref()),
            key_marker: Some(enc.s(&key_marker)),
            upload_id_marker: input.upload_id_marker,
            next_key_marker: next_key,
            next_upload_id_marker: next_id,
            max_uploads: Some(count(max)),
            is_truncated: Some(truncated),
            uploads: Some(uploads),
            common_prefixes: (!common.is_empty())
                .then(|| common.iter().map(|c| CommonPrefix { prefix: Some(enc.s(c)) }).collect()),
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
    fn location_is_absolute_from_the_host_header() {
        let mut h = HeaderMap::new();
        assert_eq!(location(&h, "b", "a b/c+d"), "/b/a%20b/c%2Bd");
        h.insert(HOST, "s3.example:9000".parse().unwrap());
        assert_eq!(location(&h, "b", "a b/c+d"), "http://s3.example:9000/b/a%20b/c%2Bd");
        for odd in ["", "user@host", "a/b", "a b"] {
            h.insert(HOST, odd.parse().unwrap());
            assert_eq!(location(&h, "b", "k"), "/b/k", "Host {odd:?}");
        }
    }
}
