//! `mb`, `rb` and `ls`.

use anyhow::anyhow;
use keystone::{ListEntry, ListOptions};

use crate::context::{Address, Ctx};
use crate::output::{self, bucket_json, local_time, object_json, prefix_json, shown_key, size};

/// `keystone mb BUCKET`.
#[derive(Debug, clap::Args)]
pub struct MbArgs {
    /// Name of the new bucket (S3 rules: 3-63 characters of a-z, 0-9, `.` and `-`).
    bucket: String,
}

/// `keystone rb BUCKET [--force]`.
#[derive(Debug, clap::Args)]
pub struct RbArgs {
    /// The bucket to remove.
    bucket: String,
    /// Also delete every object and upload in it.
    #[arg(long, short)]
    force: bool,
}

/// `keystone ls [BUCKET[/PREFIX]] [--recursive] [--json]`.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// What to list: nothing for the buckets, BUCKET or BUCKET/PREFIX for objects whose key
    /// starts with PREFIX (keys further down a `/` are shown as one PRE line unless --recursive).
    target: Option<String>,
    /// List every key under the prefix instead of rolling `/`-separated levels up.
    #[arg(long, short)]
    recursive: bool,
    /// One JSON object per line (JSON Lines) instead of a table. Each has a "type": "bucket",
    /// "object" or "prefix".
    #[arg(long)]
    json: bool,
}

pub fn mb(ctx: &Ctx, a: &MbArgs) -> anyhow::Result<()> {
    let bucket = Address::parse_bucket(&a.bucket)?;
    // Checked before the store is opened, so that a refused name creates no store file.
    keystone::check_bucket_name(&bucket)?;
    let db = ctx.open_or_create()?;
    db.create_bucket(&bucket)?;
    ctx.say(format_args!("created bucket {bucket}"))
}

pub fn rb(ctx: &Ctx, a: &RbArgs) -> anyhow::Result<()> {
    let bucket = Address::parse_bucket(&a.bucket)?;
    let db = ctx.open()?;
    if a.force {
        db.delete_bucket(&bucket)?;
    } else {
        db.delete_empty_bucket(&bucket).map_err(|e| match e {
            keystone::Error::BucketNotEmpty { .. } => anyhow!(
                "bucket {bucket:?} is not empty (`keystone rb --force {bucket}` deletes it with everything in it)"
            ),
            other => other.into(),
        })?;
    }
    ctx.say(format_args!("removed bucket {bucket}"))
}

pub fn ls(ctx: &Ctx, a: &LsArgs) -> anyhow::Result<()> {
    let db = ctx.open_read()?;
    let Some(target) = &a.target else {
        for b in db.list_buckets()? {
            if a.json {
                output::line(bucket_json(&b))?;
            } else {
                output::line(format_args!("{}  {}", local_time(b.created), b.name))?;
            }
        }
        return Ok(());
    };
    let addr = Address::parse(target)?;
    let bucket = addr.bucket(&db)?;
    let mut opts = ListOptions::prefix(addr.key.clone());
    if !a.recursive {
        opts = opts.delimiter("/");
    }
    let mut listed = 0u64;
    for entry in bucket.list_iter(opts)? {
        listed += 1;
        match entry? {
            ListEntry::Object(o) if a.json => output::line(object_json(&o))?,
            ListEntry::Prefix(p) if a.json => output::line(prefix_json(&addr.bucket, &p))?,
            ListEntry::Object(o) => {
                output::line(format_args!("{}  {:>10}  {}", local_time(o.modified), size(o.size), shown_key(&o.key)))?;
            }
            ListEntry::Prefix(p) => output::line(format_args!("{:>19}  {:>10}  {}", "", "PRE", shown_key(&p)))?,
        }
    }
    // As `aws s3 ls s3://bucket/prefix`: a prefix that matches nothing fails (a script can
    // test for it); a bucket listed whole succeeds even when it is empty.
    if listed == 0 && !addr.key.is_empty() {
        return Err(anyhow!("no key in bucket {:?} starts with {:?}", addr.bucket, addr.key));
    }
    Ok(())
}
