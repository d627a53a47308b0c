//! The `S3` trait over a Keystone store: one file per area, shared helpers here.

/// What the body of a PutObject or UploadPart request must match: its declared length,
/// Content-MD5 and `x-amz-checksum-*` values (the two inputs have the same fields).
macro_rules! expect_body {
    ($req:expr, $input:expr) => {
        crate::body::Expect::new(
            &$req.headers,
            $req.trailing_headers.clone(),
            $input.content_length,
            $input.content_md5.as_deref(),
            s3s::dto::Checksum {
                checksum_crc32: $input.checksum_crc32.take(),
                checksum_crc32c: $input.checksum_crc32c.take(),
                checksum_crc64nvme: $input.checksum_crc64nvme.take(),
                checksum_sha1: $input.checksum_sha1.take(),
                checksum_sha256: $input.checksum_sha256.take(),
                ..Default::default()
            },
            $input.checksum_algorithm.as_ref(),
        )
    };
}

/// A PutObject or UploadPart output with the checksums the body was checked against.
macro_rules! with_checksums {
    ($out:ident { $($field:ident: $value:expr),* $(,)? }, $got:expr) => {{
        let got: s3s::dto::Checksum = $got;
        s3s::dto::$out {
            checksum_crc32: got.checksum_crc32,
            checksum_crc32c: got.checksum_crc32c,
            checksum_crc64nvme: got.checksum_crc64nvme,
            checksum_sha1: got.checksum_sha1,
            checksum_sha256: got.checksum_sha256,
            $($field: $value,)*
            ..Default::default()
        }
    }};
}

/// The stored headers and user metadata a PutObject, CopyObject or CreateMultipartUpload
/// request sets (the three inputs have the same fields), checked.
macro_rules! meta_of {
    ($input:expr) => {
        crate::s3::meta::MetaIn {
            content_type: $input.content_type,
            cache_control: $input.cache_control,
            content_disposition: $input.content_disposition,
            content_encoding: $input.content_encoding,
            content_language: $input.content_language,
            expires: $input.expires,
            metadata: $input.metadata,
        }
        .into_meta()
    };
}

mod buckets;
mod list;
mod meta;
mod multipart;
mod objects;

use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput, CompleteMultipartUploadOutput,
    CopyObjectInput, CopyObjectOutput, CreateBucketInput, CreateBucketOutput, CreateMultipartUploadInput,
    CreateMultipartUploadOutput, DeleteBucketInput, DeleteBucketOutput, DeleteObjectInput, DeleteObjectOutput,
    DeleteObjectsInput, DeleteObjectsOutput, GetBucketLocationInput, GetBucketLocationOutput, GetBucketVersioningInput,
    GetBucketVersioningOutput, GetObjectInput, GetObjectOutput, HeadBucketInput, HeadBucketOutput, HeadObjectInput,
    HeadObjectOutput, ListBucketsInput, ListBucketsOutput, ListMultipartUploadsInput, ListMultipartUploadsOutput,
    ListObjectsInput, ListObjectsOutput, ListObjectsV2Input, ListObjectsV2Output, ListPartsInput, ListPartsOutput,
    PutObjectInput, PutObjectOutput, UploadPartCopyInput, UploadPartCopyOutput, UploadPartInput, UploadPartOutput,
};
use s3s::{S3, S3Request, S3Response, S3Result};

use crate::auth::RequestId;
use crate::errors::{internal, to_s3};
use crate::server::Limits;

/// The S3 service over one store.
pub(crate) struct Keystone {
    db: keystone::Datastore,
    region: String,
    limits: Limits,
}

impl Keystone {
    pub(crate) fn new(db: keystone::Datastore, region: String, limits: Limits) -> Self {
        Keystone { db, region, limits }
    }

    /// Runs a store call on the blocking pool.
    async fn blocking<T, F>(&self, f: F) -> S3Result<T>
    where
        F: FnOnce(&keystone::Datastore) -> keystone::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db)).await.map_err(internal)?.map_err(to_s3)
    }

    /// Like [`blocking`](Self::blocking) for calls that return S3 errors themselves.
    async fn blocking_s3<T, F>(&self, f: F) -> S3Result<T>
    where
        F: FnOnce(&keystone::Datastore) -> S3Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db)).await.map_err(internal)?
    }
}

type Req<T> = S3Request<T>;

/// Runs a handler — once the request's XML body, if any, passed its integrity headers
/// (`xml_digest`) — and puts the request id into the XML body of its errors.
macro_rules! op {
    ($self:ident, $req:ident, $f:ident) => {{
        let rid = $req.extensions.get::<RequestId>().map(|r| r.0.clone());
        let checked = crate::xml_digest::check(&$req.extensions);
        async {
            checked?;
            $self.$f($req).await
        }
        .await
        .map_err(|mut e| {
            if let Some(r) = rid {
                e.set_request_id(r);
            }
            e
        })
    }};
}
type Res<T> = S3Result<S3Response<T>>;

#[async_trait::async_trait]
impl S3 for Keystone {
    async fn list_buckets(&self, req: Req<ListBucketsInput>) -> Res<ListBucketsOutput> {
        op!(self, req, do_list_buckets)
    }
    async fn create_bucket(&self, req: Req<CreateBucketInput>) -> Res<CreateBucketOutput> {
        op!(self, req, do_create_bucket)
    }
    async fn head_bucket(&self, req: Req<HeadBucketInput>) -> Res<HeadBucketOutput> {
        op!(self, req, do_head_bucket)
    }
    async fn delete_bucket(&self, req: Req<DeleteBucketInput>) -> Res<DeleteBucketOutput> {
        op!(self, req, do_delete_bucket)
    }
    async fn get_bucket_location(&self, req: Req<GetBucketLocationInput>) -> Res<GetBucketLocationOutput> {
        op!(self, req, do_get_bucket_location)
    }
    async fn get_bucket_versioning(&self, req: Req<GetBucketVersioningInput>) -> Res<GetBucketVersioningOutput> {
        op!(self, req, do_get_bucket_versioning)
    }
    async fn put_object(&self, req: Req<PutObjectInput>) -> Res<PutObjectOutput> {
        op!(self, req, do_put_object)
    }
    async fn get_object(&self, req: Req<GetObjectInput>) -> Res<GetObjectOutput> {
        op!(self, req, do_get_object)
    }
    async fn head_object(&self, req: Req<HeadObjectInput>) -> Res<HeadObjectOutput> {
        op!(self, req, do_head_object)
    }
    async fn delete_object(&self, req: Req<DeleteObjectInput>) -> Res<DeleteObjectOutput> {
        op!(self, req, do_delete_object)
    }
    async fn delete_objects(&self, req: Req<DeleteObjectsInput>) -> Res<DeleteObjectsOutput> {
        op!(self, req, do_delete_objects)
    }
    async fn copy_object(&self, req: Req<CopyObjectInput>) -> Res<CopyObjectOutput> {
        op!(self, req, do_copy_object)
    }
    async fn list_objects(&self, req: Req<ListObjectsInput>) -> Res<ListObjectsOutput> {
        op!(self, req, do_list_objects)
    }
    async fn list_objects_v2(&self, req: Req<ListObjectsV2Input>) -> Res<ListObjectsV2Output> {
        op!(self, req, do_list_objects_v2)
    }
    async fn create_multipart_upload(&self, req: Req<CreateMultipartUploadInput>) -> Res<CreateMultipartUploadOutput> {
        op!(self, req, do_create_multipart_upload)
    }
    async fn upload_part(&self, req: Req<UploadPartInput>) -> Res<UploadPartOutput> {
        op!(self, req, do_upload_part)
    }
    async fn upload_part_copy(&self, req: Req<UploadPartCopyInput>) -> Res<UploadPartCopyOutput> {
        op!(self, req, do_upload_part_copy)
    }
    async fn complete_multipart_upload(
        &self,
        req: Req<CompleteMultipartUploadInput>,
    ) -> Res<CompleteMultipartUploadOutput> {
        op!(self, req, do_complete_multipart_upload)
    }
    async fn abort_multipart_upload(&self, req: Req<AbortMultipartUploadInput>) -> Res<AbortMultipartUploadOutput> {
        op!(self, req, do_abort_multipart_upload)
    }
    async fn list_parts(&self, req: Req<ListPartsInput>) -> Res<ListPartsOutput> {
        op!(self, req, do_list_parts)
    }
    async fn list_multipart_uploads(&self, req: Req<ListMultipartUploadsInput>) -> Res<ListMultipartUploadsOutput> {
        op!(self, req, do_list_multipart_uploads)
    }
}
