//! S3 mode: drives any S3 endpoint with the AWS SDK at a given concurrency and object size —
//! PUT, GET or a 50/50 mix — and prints ops/s, MB/s and p50/p99 latency, so `keystone serve`
//! can be measured against other S3 servers with the same client. Built with `--features s3`.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use clap::Parser;

use crate::report::{num, percentile};
use crate::workloads::{Rng, value_of};

/// Argument that selects the S3 mode.
pub const FLAG: &str = "s3";

#[derive(Parser, Debug)]
// A later occurrence of an option wins, so that scripts can append overrides to their defaults
// (`scripts/bench-s3.sh --ops 5000`).
#[command(name = "keystone-bench s3", about = "Drive an S3 endpoint: PUT, GET or mixed", args_override_self = true)]
struct S3Args {
    /// Endpoint URL, e.g. http://127.0.0.1:9000 (path-style requests).
    #[arg(long)]
    endpoint: String,
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY")]
    secret_key: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Bucket to use (created if missing).
    #[arg(long, default_value = "keystone-bench")]
    bucket: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Object size, bytes.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Requests per phase.
    #[arg(long, default_value_t = 2000)]
    ops: usize,
    /// Distinct objects (GET and mixed read among them).
    #[arg(long, default_value_t = 256)]
    objects: usize,
    /// Phases to run, comma-separated: put, get, mixed.
    #[arg(long, value_delimiter = ',', default_values_t = ["put".to_string(), "get".to_string(), "mixed".to_string()])]
    phases: Vec<String>,
    /// Send Content-MD5 with every PUT (the server checks the body against it).
    #[arg(long)]
    content_md5: bool,
}

/// What PUTs send: object `i`'s body is `body` with `i` in its first 8 bytes (no two objects
/// alike, so a GET answered with another object's bytes is found), with its Content-MD5 when
/// asked for (computed once per object, before any phase).
struct Payload {
    body: Vec<u8>,
    md5: Vec<String>,
}

impl Payload {
    fn body_of(&self, i: usize) -> Vec<u8> {
        value_of(&self.body, i)
    }
}

fn client(a: &S3Args) -> Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&a.endpoint)
        .region(Region::new(a.region.clone()))
        .credentials_provider(Credentials::new(&a.access_key, &a.secret_key, None, None, "keystone-bench"))
        .force_path_style(true)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    Client::from_conf(conf)
}

fn key(i: usize) -> String {
    format!("obj-{i:08}")
}

/// One request; `write` chooses PUT over GET.
async fn request(c: &Client, bucket: &str, i: usize, write: bool, payload: &Payload) -> Result<()> {
    let body = payload.body_of(i);
    if write {
        let put = c.put_object().bucket(bucket).key(key(i)).set_content_md5(payload.md5.get(i).cloned());
        put.body(ByteStream::from(body)).send().await?;
    } else {
        let out = c.get_object().bucket(bucket).key(key(i)).send().await?;
        let data = out.body.collect().await.context("reading a GET body")?.into_bytes();
        // The bytes, not only their count (a comparison is nothing beside a request's time).
        if data.len() != body.len() {
            bail!("GET {} returned {} bytes, expected {}", key(i), data.len(), body.len());
        }
        if data[..] != body[..] {
            bail!("GET {} returned other bytes than were stored", key(i));
        }
    }
    Ok(())
}

/// Runs one phase; returns per-request latencies (µs) and the wall time (s).
async fn phase(c: &Client, a: &S3Args, name: &str, body: Arc<Payload>) -> Result<(Vec<f64>, f64)> {
    let per = a.ops.div_ceil(a.concurrency.max(1));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..a.concurrency.max(1) {
        let (c, body, bucket, objects, name) =
            (c.clone(), body.clone(), a.bucket.clone(), a.objects.max(1), name.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(t as u64 + 1);
            let mut lat = Vec::with_capacity(per);
            for _ in 0..per {
                let i = rng.below(objects as u64) as usize;
                let write = match name.as_str() {
                    "put" => true,
                    "get" => false,
                    _ => rng.below(2) == 0,
                };
                let t0 = Instant::now();
                request(&c, &bucket, i, write, &body).await?;
                lat.push(t0.elapsed().as_secs_f64() * 1e6);
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.context("a client task panicked")??);
    }
    Ok((all, start.elapsed().as_secs_f64()))
}

async fn run_async(a: S3Args) -> Result<()> {
    let c = client(&a);
    if c.head_bucket().bucket(&a.bucket).send().await.is_err() {
        c.create_bucket().bucket(&a.bucket).send().await.context("creating the bucket")?;
    }
    let mut payload = Payload { body: Rng::new(9).bytes(a.size), md5: Vec::new() };
    if a.content_md5 {
        use md5::Digest;
        payload.md5 = (0..a.objects.max(1))
            .map(|i| base64_simd::STANDARD.encode_to_string(md5::Md5::digest(payload.body_of(i))))
            .collect();
    }
    let body = Arc::new(payload);
    // Every object exists before GET and mixed phases.
    for i in 0..a.objects.max(1) {
        request(&c, &a.bucket, i, true, &body).await?;
    }
    println!(
        "| Phase | Concurrency | Size | Ops | ops/s | MB/s | p50 ms | p99 ms |\n|---|---|---|---|---|---|---|---|"
    );
    for name in &a.phases {
        if !["put", "get", "mixed"].contains(&name.as_str()) {
            bail!("unknown phase {name:?} (expected put, get or mixed)");
        }
        let (mut lat, secs) = phase(&c, &a, name, body.clone()).await?;
        let n = lat.len();
        println!(
            "| {name} | {} | {} | {n} | {} | {} | {:.2} | {:.2} |",
            a.concurrency,
            a.size,
            num(n as f64 / secs),
            num(n as f64 * a.size as f64 / secs / 1e6),
            percentile(&mut lat, 50.0) / 1000.0,
            percentile(&mut lat, 99.0) / 1000.0,
        );
    }
    Ok(())
}

/// `keystone-bench s3 --endpoint URL ...`
pub fn run(args: &[String]) -> Result<()> {
    let a = S3Args::parse_from(args);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run_async(a))
}
