//! Starts the server in-process on 127.0.0.1:0 over a temporary store, and builds SDK clients.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use keystone_s3::{AccessKey, Server, ServerConfig};

pub const AK: &str = "KSTESTACCESSKEY00001";
pub const SK: &str = "test-secret-key/0123456789abcdefghijklmn";

#[allow(missing_debug_implementations)]
pub struct Harness {
    pub db: keystone::Datastore,
    pub server: Server,
    pub endpoint: String,
    pub dir: tempfile::TempDir,
}

impl Harness {
    pub async fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let db =
            keystone::Datastore::builder().etag(keystone::EtagAlgorithm::Md5).open(dir.path().join("s3.redb")).unwrap();
        Self::serve(db, dir).await
    }

    /// Serves `db` (kept in `dir`).
    pub async fn serve(db: keystone::Datastore, dir: tempfile::TempDir) -> Harness {
        let config = ServerConfig::new(vec![AccessKey::new(AK, SK), AccessKey::new("KSOTHERKEY", "other-secret")]);
        let server = Server::start(db.clone(), ([127, 0, 0, 1], 0).into(), config).await.unwrap();
        let endpoint = format!("http://{}", server.local_addr());
        Harness { db, server, endpoint, dir }
    }

    pub fn client(&self) -> aws_sdk_s3::Client {
        self.client_with(AK, SK)
    }

    pub fn client_with(&self, ak: &str, sk: &str) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(ak, sk, None, None, "test"))
            .force_path_style(true)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }
}

/// The S3 error code of a failed call.
pub fn code<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match e {
        aws_sdk_s3::error::SdkError::ServiceError(s) => s.err().code().unwrap_or("<none>").to_owned(),
        other => format!("<{other:?}>"),
    }
}

/// The whole body of a GetObject answer.
pub async fn body(out: aws_sdk_s3::operation::get_object::GetObjectOutput) -> Vec<u8> {
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

/// The HTTP status of a failed call.
pub fn status<E>(e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> u16 {
    e.raw_response().map_or(0, |r| r.status().as_u16())
}

/// Starts a multipart upload of `bucket`/`key` (with `content_type`, if given) with one part,
/// `body`: its upload id and the part list that completes it.
pub async fn upload_with_one_part(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    content_type: Option<&str>,
    body: &'static [u8],
) -> (String, aws_sdk_s3::types::CompletedMultipartUpload) {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let created = c.create_multipart_upload().bucket(bucket).key(key).set_content_type(content_type.map(str::to_owned));
    let id = created.send().await.unwrap().upload_id().unwrap().to_owned();
    let part = c
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(&id)
        .part_number(1)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(body))
        .send()
        .await
        .unwrap();
    let parts = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap()).build())
        .build();
    (id, parts)
}
