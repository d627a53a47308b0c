//! Bucket operations.

use s3s::dto::{
    Bucket, BucketLocationConstraint, CreateBucketInput, CreateBucketOutput, DeleteBucketInput, DeleteBucketOutput,
    GetBucketLocationInput, GetBucketLocationOutput, GetBucketVersioningInput, GetBucketVersioningOutput,
    HeadBucketInput, HeadBucketOutput, ListBucketsInput, ListBucketsOutput, Owner,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Keystone;

impl Keystone {
    pub(super) async fn do_list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let input = req.input;
        let max = match input.max_buckets.map(usize::try_from) {
            None => usize::MAX,
            Some(Ok(n @ 1..=10_000)) => n,
            Some(_) => return Err(s3_error!(InvalidArgument, "max-buckets must be between 1 and 10000.")),
        };
        let list = self.blocking(keystone::Datastore::list_buckets).await?;
        let prefix = input.prefix.unwrap_or_default();
        // The token is the last name of the previous page (buckets are listed in name order).
        let after = input.continuation_token.unwrap_or_default();
        let other_region = input.bucket_region.as_ref().is_some_and(|r| *r != self.region);
        let mut matching = list
            .into_iter()
            .filter(|b| !other_region && b.name.starts_with(prefix.as_str()) && b.name.as_str() > after.as_str())
            .peekable();
        let mut buckets = Vec::new();
        while buckets.len() < max {
            let Some(b) = matching.next() else { break };
            buckets.push(Bucket {
                name: Some(b.name),
                creation_date: Some(super::meta::whole_seconds(b.created)),
                bucket_region: Some(self.region.clone()),
            });
        }
        let continuation_token =
            matching.peek().is_some().then(|| buckets.last().and_then(|b| b.name.clone())).flatten();
        let owner = Owner { id: Some("keystone".into()), display_name: Some("keystone".into()) };
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner),
            continuation_token,
            prefix: (!prefix.is_empty()).then_some(prefix),
        }))
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

    /// `NoSuchBucket` unless the bucket exists.
    async fn require_bucket(&self, name: String) -> S3Result<()> {
        self.blocking(move |db| db.bucket(&name).map(|_| ())).await
    }

    pub(super) async fn do_head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.require_bucket(req.input.bucket).await?;
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
        self.require_bucket(req.input.bucket).await?;
        // us-east-1 is reported as an empty constraint, as AWS does.
        let location_constraint =
            (self.region != "us-east-1").then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput { location_constraint }))
    }

    /// Buckets are never versioned: the answer of S3 for a bucket whose versioning was never
    /// enabled (no `Status`). Tools ask before deleting (rclone's purge and cleanup).
    pub(super) async fn do_get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        self.require_bucket(req.input.bucket).await?;
        Ok(S3Response::new(GetBucketVersioningOutput::default()))
    }
}
