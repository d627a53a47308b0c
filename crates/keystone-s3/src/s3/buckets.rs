//! Bucket operations.

use s3s::dto::{
    Bucket, BucketLocationConstraint, CreateBucketInput, CreateBucketOutput, DeleteBucketInput, DeleteBucketOutput,
    GetBucketLocationInput, GetBucketLocationOutput, HeadBucketInput, HeadBucketOutput, ListBucketsInput,
    ListBucketsOutput, Owner, Timestamp,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Keystone;

impl Keystone {
    pub(super) async fn do_list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let list = self.blocking(keystone::Datastore::list_buckets).await?;
        let buckets = list
            .into_iter()
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(Timestamp::from(b.created)),
                bucket_region: Some(self.region.clone()),
            })
            .collect();
        let owner = Owner { id: Some("keystone".into()), display_name: Some("keystone".into()) };
        Ok(S3Response::new(ListBucketsOutput { buckets: Some(buckets), owner: Some(owner), ..Default::default() }))
    }

    pub(super) async fn do_create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let input = req.input;
        let constraint = input.create_bucket_configuration.as_ref().and_then(|c| c.location_constraint.as_ref());
        if let Some(c) = constraint {
            let c = c.as_str();
            if !c.is_empty() && c != self.region && !(self.region == "us-east-1" && c == "us-east-1") {
                return Err(s3_error!(
                    InvalidLocationConstraint,
                    "The specified location constraint is not valid: this server's region is {}.",
                    self.region
                ));
            }
        }
        let name = input.bucket.clone();
        self.blocking(move |db| db.create_bucket(&name).map(|_| ())).await?;
        Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{}", input.bucket)) }))
    }

    pub(super) async fn do_head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let name = req.input.bucket;
        self.blocking(move |db| db.bucket(&name).map(|_| ())).await?;
        Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(self.region.clone()), ..Default::default() }))
    }

    pub(super) async fn do_delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let name = req.input.bucket;
        self.blocking(move |db| db.delete_empty_bucket(&name)).await?;
        Ok(S3Response::new(DeleteBucketOutput::default()))
    }

    pub(super) async fn do_get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let name = req.input.bucket;
        self.blocking(move |db| db.bucket(&name).map(|_| ())).await?;
        // us-east-1 is reported as an empty constraint, as AWS does.
        let location_constraint =
            (self.region != "us-east-1").then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput { location_constraint }))
    }
}
