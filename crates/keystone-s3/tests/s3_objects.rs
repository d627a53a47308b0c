//! Buckets, objects, conditional requests, copies and the Rust-API interop, through aws-sdk-s3.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines, clippy::similar_names)]

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, MetadataDirective, ObjectIdentifier};
use common::{Harness, body, code, status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets() {
    let h = Harness::start().await;
    let c = h.client();
    c.create_bucket().bucket("alpha").send().await.unwrap();
    c.create_bucket().bucket("beta").send().await.unwrap();
    let e = c.create_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(code(&e), "BucketAlreadyOwnedByYou");
    let e = c.create_bucket().bucket("Bad_Name").send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidBucketName");
    let names: Vec<String> =
        c.list_buckets().send().await.unwrap().buckets().iter().filter_map(|b| b.name().map(str::to_owned)).collect();
    assert_eq!(names, ["alpha", "beta"]);
    c.head_bucket().bucket("alpha").send().await.unwrap();
    let e = c.head_bucket().bucket("gamma").send().await.unwrap_err();
    assert_eq!(status(&e), 404);
    let loc = c.get_bucket_location().bucket("alpha").send().await.unwrap();
    assert!(loc.location_constraint().is_none_or(|c| c.as_str().is_empty()));
    c.put_object().bucket("alpha").key("k").body(ByteStream::from_static(b"x")).send().await.unwrap();
    let e = c.delete_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(code(&e), "BucketNotEmpty");
    c.delete_object().bucket("alpha").key("k").send().await.unwrap();
    c.delete_bucket().bucket("alpha").send().await.unwrap();
    let e = c.delete_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_head_range_metadata() {
    let h = Harness::start().await;
    let c = h.client();
    c.create_bucket().bucket("bkt1").send().await.unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let put = c
        .put_object()
        .bucket("bkt1")
        .key("dir/obj.bin")
        .body(ByteStream::from(data.clone()))
        .content_type("application/x-test")
        .cache_control("max-age=60")
        .content_disposition("attachment")
        .content_language("en")
        .metadata("color", "blue")
        .send()
        .await
        .unwrap();
    let etag = put.e_tag().unwrap().to_owned();
    // A single PUT's ETag is the quoted hex MD5 of the body, as S3 computes it (clients check it).
    let md5 = <md5::Md5 as md5::Digest>::digest(&data).iter().fold(String::new(), |mut s, b| {
        use std::fmt::Write;
        let _ = write!(s, "{b:02x}");
        s
    });
    assert_eq!(etag, format!("\"{md5}\""));
    let got = c.get_object().bucket("bkt1").key("dir/obj.bin").send().await.unwrap();
    assert_eq!(got.content_type(), Some("application/x-test"));
    assert_eq!(got.cache_control(), Some("max-age=60"));
    assert_eq!(got.content_disposition(), Some("attachment"));
    assert_eq!(got.content_language(), Some("en"));
    assert_eq!(got.metadata().unwrap().get("color").map(String::as_str), Some("blue"));
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    assert_eq!(body(got).await, data);

    let r = c.get_object().bucket("bkt1").key("dir/obj.bin").range("bytes=10-19").send().await.unwrap();
    assert_eq!(r.content_range(), Some("bytes 10-19/100000"));
    assert_eq!(body(r).await, &data[10..20]);
    let r = c.get_object().bucket("bkt1").key("dir/obj.bin").range("bytes=-5").send().await.unwrap();
    assert_eq!(body(r).await, &data[99_995..]);
    let r = c.get_object().bucket("bkt1").key("dir/obj.bin").range("bytes=99990-").send().await.unwrap();
    assert_eq!(body(r).await, &data[99_990..]);
    let e = c.get_object().bucket("bkt1").key("dir/obj.bin").range("bytes=200000-").send().await.unwrap_err();
    assert_eq!(status(&e), 416);
    // Several chunks (about 1 MiB each): whole, and ranges that start, end and cross inside them.
    let big: Vec<u8> = (0..3_200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    c.put_object().bucket("bkt1").key("multi.bin").body(ByteStream::from(big.clone())).send().await.unwrap();
    assert_eq!(body(c.get_object().bucket("bkt1").key("multi.bin").send().await.unwrap()).await, big);
    for (range, want) in [
        ("bytes=1040000-2100000", &big[1_040_000..=2_100_000]),
        ("bytes=-700000", &big[2_500_000..]),
        ("bytes=1048000-1048100", &big[1_048_000..=1_048_100]),
        ("bytes=0-0", &big[..1]),
    ] {
        let r = c.get_object().bucket("bkt1").key("multi.bin").range(range).send().await.unwrap();
        assert_eq!(body(r).await, want, "{range}");
    }
    c.delete_object().bucket("bkt1").key("multi.bin").send().await.unwrap();

    let head = c.head_object().bucket("bkt1").key("dir/obj.bin").send().await.unwrap();
    assert_eq!(head.content_length(), Some(100_000));
    // `response-*` parameters replace the stored headers, on HEAD as on GET.
    let head = c
        .head_object()
        .bucket("bkt1")
        .key("dir/obj.bin")
        .response_content_disposition("attachment; filename=\"x.bin\"")
        .response_content_type("application/x-override")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_disposition(), Some("attachment; filename=\"x.bin\""));
    assert_eq!(head.content_type(), Some("application/x-override"));
    let got = c.get_object().bucket("bkt1").key("dir/obj.bin").response_cache_control("no-store").send().await.unwrap();
    assert_eq!(got.cache_control(), Some("no-store"));
    let e = c.get_object().bucket("bkt1").key("missing").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");

    // Conditional reads.
    let e = c.get_object().bucket("bkt1").key("dir/obj.bin").if_none_match(&etag).send().await.unwrap_err();
    assert_eq!(status(&e), 304);
    let e = c.get_object().bucket("bkt1").key("dir/obj.bin").if_match("\"0000\"").send().await.unwrap_err();
    assert_eq!(status(&e), 412);
    c.get_object().bucket("bkt1").key("dir/obj.bin").if_match(&etag).send().await.unwrap();
    let past = aws_sdk_s3::primitives::DateTime::from_secs(1_000_000);
    let e = c.get_object().bucket("bkt1").key("dir/obj.bin").if_unmodified_since(past).send().await.unwrap_err();
    assert_eq!(status(&e), 412);
    let now = aws_sdk_s3::primitives::DateTime::from(std::time::SystemTime::now());
    let e = c.head_object().bucket("bkt1").key("dir/obj.bin").if_modified_since(now).send().await.unwrap_err();
    assert_eq!(status(&e), 304);
    // A date past the server's clock is ignored, as S3 ignores it: the object is sent.
    let future = aws_sdk_s3::primitives::DateTime::from_secs(4_000_000_000);
    c.head_object().bucket("bkt1").key("dir/obj.bin").if_modified_since(future).send().await.unwrap();
    c.get_object().bucket("bkt1").key("dir/obj.bin").if_modified_since(future).send().await.unwrap();

    // Conditional writes.
    let e = c
        .put_object()
        .bucket("bkt1")
        .key("dir/obj.bin")
        .if_none_match("*")
        .body(ByteStream::from_static(b"no"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    let e = c
        .put_object()
        .bucket("bkt1")
        .key("dir/obj.bin")
        .if_match("\"deadbeef\"")
        .body(ByteStream::from_static(b"no"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    c.put_object()
        .bucket("bkt1")
        .key("dir/obj.bin")
        .if_match(&etag)
        .body(ByteStream::from_static(b"yes"))
        .send()
        .await
        .unwrap();
    assert_eq!(h.db.bucket("bkt1").unwrap().get_bytes("dir/obj.bin").unwrap(), b"yes");

    // Content-MD5 mismatch: BadDigest, nothing stored.
    let e = c
        .put_object()
        .bucket("bkt1")
        .key("md5")
        .content_md5("1B2M2Y8AsgTpgAmY7PhCfg==")
        .body(ByteStream::from_static(b"not empty"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "BadDigest");
    assert!(!h.db.bucket("bkt1").unwrap().exists("md5").unwrap());
    // The store checks it (against the MD5 it computes for the ETag): small and chunked bodies,
    // right and wrong, and a wrong one leaves the stored version alone.
    for len in [100, 3 << 20] {
        let body = vec![7u8; len];
        let digest = <md5::Md5 as md5::Digest>::digest(&body);
        let b64 = base64_simd::STANDARD.encode_to_string(digest);
        let put = |md5: &str, data: Vec<u8>| {
            c.put_object().bucket("bkt1").key("md5").content_md5(md5).body(ByteStream::from(data)).send()
        };
        let out = put(&b64, body.clone()).await.unwrap();
        assert_eq!(out.e_tag().map(|e| e.trim_matches('"').to_owned()), Some(format!("{digest:x}")));
        let mut other = body.clone();
        other[len / 2] ^= 1;
        assert_eq!(code(&put(&b64, other).await.unwrap_err()), "BadDigest");
        assert_eq!(h.db.bucket("bkt1").unwrap().get_bytes("md5").unwrap(), body);
    }
    h.db.bucket("bkt1").unwrap().delete("md5").unwrap();

    // Empty object.
    c.put_object().bucket("bkt1").key("empty").body(ByteStream::from_static(b"")).send().await.unwrap();
    let got = c.get_object().bucket("bkt1").key("empty").send().await.unwrap();
    assert_eq!(got.content_length(), Some(0));
    h.server.shutdown().await;
}

#[derive(serde::Serialize)]
struct User {
    name: String,
    age: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_api_and_s3_see_the_same_objects() {
    let h = Harness::start().await;
    let c = h.client();
    let b = h.db.create_bucket("shared").unwrap();
    b.put("users/alice", &User { name: "Alice".into(), age: 30 }).unwrap();
    let got = c.get_object().bucket("shared").key("users/alice").send().await.unwrap();
    assert_eq!(got.content_type(), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&body(got).await).unwrap();
    assert_eq!(v["name"], "Alice");
    assert_eq!(v["age"], 30);
    c.put_object().bucket("shared").key("n").body(ByteStream::from_static(b"42")).send().await.unwrap();
    assert_eq!(b.get::<u32>("n").unwrap(), 42);
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_and_batch_delete() {
    let h = Harness::start().await;
    let c = h.client();
    c.create_bucket().bucket("src").send().await.unwrap();
    c.create_bucket().bucket("dst").send().await.unwrap();
    let put = c
        .put_object()
        .bucket("src")
        .key("a b+c")
        .content_type("text/plain")
        .metadata("m", "1")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap();
    let out = c.copy_object().bucket("dst").key("copy").copy_source("src/a%20b%2Bc").send().await.unwrap();
    assert_eq!(out.copy_object_result().unwrap().e_tag(), put.e_tag());
    let got = c.get_object().bucket("dst").key("copy").send().await.unwrap();
    assert_eq!(got.content_type(), Some("text/plain"));
    assert_eq!(got.metadata().unwrap().get("m").map(String::as_str), Some("1"));
    c.copy_object()
        .bucket("dst")
        .key("copy")
        .copy_source("dst/copy")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/html")
        .send()
        .await
        .unwrap();
    let head = c.head_object().bucket("dst").key("copy").send().await.unwrap();
    assert_eq!(head.content_type(), Some("text/html"));
    assert!(head.metadata().is_none_or(std::collections::HashMap::is_empty));
    let e = c.copy_object().bucket("dst").key("copy").copy_source("dst/copy").send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidRequest");
    let e = c
        .copy_object()
        .bucket("dst")
        .key("c2")
        .copy_source("src/a%20b%2Bc")
        .copy_source_if_match("\"bad\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);

    for k in ["x1", "x2", "x3"] {
        c.put_object().bucket("dst").key(k).body(ByteStream::from_static(b"x")).send().await.unwrap();
    }
    let ids: Vec<ObjectIdentifier> =
        ["x1", "x2", "nope"].iter().map(|k| ObjectIdentifier::builder().key(*k).build().unwrap()).collect();
    let out = c
        .delete_objects()
        .bucket("dst")
        .delete(Delete::builder().set_objects(Some(ids.clone())).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(out.deleted().len(), 3);
    let out = c
        .delete_objects()
        .bucket("dst")
        .delete(Delete::builder().set_objects(Some(ids)).quiet(true).build().unwrap())
        .send()
        .await
        .unwrap();
    assert!(out.deleted().is_empty());
    assert!(h.db.bucket("dst").unwrap().exists("x3").unwrap());
    assert!(!h.db.bucket("dst").unwrap().exists("x1").unwrap());
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication() {
    let h = Harness::start().await;
    let e = h.client_with(common::AK, "wrong-secret").list_buckets().send().await.unwrap_err();
    assert_eq!(code(&e), "SignatureDoesNotMatch");
    assert_eq!(status(&e), 403);
    let e = h.client_with("KSUNKNOWN", "whatever").list_buckets().send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidAccessKeyId");
    h.client_with("KSOTHERKEY", "other-secret").list_buckets().send().await.unwrap();
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_upload_with_checksum_trailer() {
    // A file body goes out as aws-chunked signed chunks with a signed CRC32 trailer.
    let h = Harness::start().await;
    let c = h.client();
    c.create_bucket().bucket("stream").send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 17u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let out = c
        .put_object()
        .bucket("stream")
        .key("f")
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32)
        .body(ByteStream::from_path(&path).await.unwrap())
        .send()
        .await
        .unwrap();
    assert!(out.checksum_crc32().is_some());
    assert_eq!(h.db.bucket("stream").unwrap().get_bytes("f").unwrap(), data);
    let head = c.head_object().bucket("stream").key("f").send().await.unwrap();
    assert_eq!(head.content_encoding(), None, "aws-chunked must not be stored as the content encoding");
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_requests_in_flight_finish() {
    let h = Harness::start().await;
    let c = h.client();
    let data: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 249) as u8).collect();
    h.db.create_bucket("drain").unwrap().put_bytes("big", &data).unwrap();
    // The response head has arrived; the body is still streaming when shutdown starts.
    let got = c.get_object().bucket("drain").key("big").send().await.unwrap();
    let Harness { db, server, dir, .. } = h;
    let addr = server.local_addr();
    let stop = tokio::spawn(server.shutdown());
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert!(bytes == data[..], "the download in flight completes");
    stop.await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no new connections after shutdown");
    drop(db);
    // Every handle is gone: the store opens again (only one opener at a time). A connection
    // task may drop its last handle just after shutdown returns, so allow it a moment.
    let mut reopened = None;
    for _ in 0..100 {
        match keystone::Datastore::open(dir.path().join("s3.redb")) {
            Ok(db) => {
                reopened = Some(db);
                break;
            }
            Err(keystone::Error::AlreadyOpen { .. }) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(reopened.is_some(), "the server released the store");
}

/// A store computing XXH3 ETags would answer PutObject with an ETag that is not the MD5 of
/// the body, which some S3 clients reject: the server refuses to start on one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_store_without_md5_etags() {
    let dir = tempfile::tempdir().unwrap();
    let db = keystone::Datastore::open(dir.path().join("x.redb")).unwrap();
    let config = keystone_s3::ServerConfig::new(vec![keystone_s3::AccessKey::new("AKID", "SECRET")]);
    let err = keystone_s3::Server::start(db, ([127, 0, 0, 1], 0).into(), config).await.unwrap_err();
    assert!(err.to_string().contains("EtagAlgorithm::Md5"), "{err}");
}

/// `keystone serve --read-only`: reads as usual, every write `AccessDenied` (403), the file
/// untouched, and another read-only handle shares it meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_store_serves_reads_and_denies_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.redb");
    let md5 = || keystone::Datastore::builder().etag(keystone::EtagAlgorithm::Md5);
    {
        let db = md5().open(&path).unwrap();
        db.create_bucket("bkt").unwrap().put_bytes("k", b"hello").unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let h = Harness::serve(md5().read_only(true).open(&path).unwrap(), dir).await;
    let c = h.client();
    assert_eq!(body(c.get_object().bucket("bkt").key("k").send().await.unwrap()).await, b"hello");
    let listed = c.list_objects_v2().bucket("bkt").send().await.unwrap();
    assert_eq!(listed.contents().len(), 1);
    c.head_bucket().bucket("bkt").send().await.unwrap();
    let other = keystone::Datastore::builder().read_only(true).open(&path).unwrap();
    assert_eq!(other.bucket("bkt").unwrap().get_bytes("k").unwrap(), b"hello");

    let denied = |what: &str, code: String, status: u16| {
        assert_eq!((code.as_str(), status), ("AccessDenied", 403), "{what}");
    };
    let e = c.put_object().bucket("bkt").key("new").body(b"x".to_vec().into()).send().await.unwrap_err();
    denied("put_object", code(&e), status(&e));
    let e = c.delete_object().bucket("bkt").key("k").send().await.unwrap_err();
    denied("delete_object", code(&e), status(&e));
    let e = c.create_bucket().bucket("more").send().await.unwrap_err();
    denied("create_bucket", code(&e), status(&e));
    let e = c.delete_bucket().bucket("bkt").send().await.unwrap_err();
    denied("delete_bucket", code(&e), status(&e));
    let e = c.copy_object().bucket("bkt").key("copy").copy_source("bkt/k").send().await.unwrap_err();
    denied("copy_object", code(&e), status(&e));
    let e = c.create_multipart_upload().bucket("bkt").key("mp").send().await.unwrap_err();
    denied("create_multipart_upload", code(&e), status(&e));
    let del = Delete::builder().objects(ObjectIdentifier::builder().key("k").build().unwrap()).build().unwrap();
    let e = c.delete_objects().bucket("bkt").delete(del).send().await.unwrap_err();
    denied("delete_objects", code(&e), status(&e));

    h.server.shutdown().await;
    drop((h.db, other));
    assert!(std::fs::read(&path).unwrap() == before, "serving read-only changed the store");
}

/// Waits past the clock's range made hyper panic on the first connection: refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_waits_it_cannot_keep() {
    let dir = tempfile::tempdir().unwrap();
    let db = keystone::Datastore::builder().etag(keystone::EtagAlgorithm::Md5).open(dir.path().join("x.redb")).unwrap();
    for (idle, grace) in
        [(std::time::Duration::MAX, 30), (std::time::Duration::ZERO, 30), (std::time::Duration::from_mins(1), u64::MAX)]
    {
        let mut config = keystone_s3::ServerConfig::new(vec![keystone_s3::AccessKey::new("AKID", "SECRET")]);
        config.limits.idle_timeout = idle;
        config.limits.shutdown_grace = std::time::Duration::from_secs(grace);
        let err = keystone_s3::Server::start(db.clone(), ([127, 0, 0, 1], 0).into(), config).await.unwrap_err();
        assert!(err.to_string().contains("must be"), "{err}");
    }
}

/// A version id that is not "null" names no object in a bucket that was never versioned:
/// S3 answers an error (400 InvalidArgument "Invalid version id specified" / 404
/// NoSuchVersion; in DeleteObjects a per-key NoSuchVersion error) and never touches the
/// current object. (The server ignored the version id: GET and HEAD served the current object,
/// DELETE and DeleteObjects deleted it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_id_that_names_no_version_does_not_reach_the_current_object() {
    let h = Harness::start().await;
    let c = h.client();
    c.create_bucket().bucket("bkt").send().await.unwrap();
    let vid = "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY";
    c.put_object().bucket("bkt").key("k").body(ByteStream::from_static(b"current")).send().await.unwrap();

    let mut wrong = Vec::new();
    match c.get_object().bucket("bkt").key("k").version_id(vid).send().await {
        Ok(_) => wrong.push("GET served the current object"),
        Err(e) => assert_eq!(code(&e), "InvalidArgument"),
    }
    // "null" is the version every object of an unversioned bucket has.
    c.get_object().bucket("bkt").key("k").version_id("null").send().await.unwrap();
    if c.head_object().bucket("bkt").key("k").version_id(vid).send().await.is_ok() {
        wrong.push("HEAD answered for the current object");
    }
    let _ = c.delete_object().bucket("bkt").key("k").version_id(vid).send().await;
    if c.head_object().bucket("bkt").key("k").send().await.is_err() {
        wrong.push("DELETE deleted the current object");
        c.put_object().bucket("bkt").key("k").body(ByteStream::from_static(b"current")).send().await.unwrap();
    }
    let one = ObjectIdentifier::builder().key("k").version_id(vid).build().unwrap();
    let del = Delete::builder().objects(one).build().unwrap();
    let out = c.delete_objects().bucket("bkt").delete(del).send().await.unwrap();
    assert_eq!(out.errors().first().and_then(|e| e.code()), Some("NoSuchVersion"), "{out:?}");
    assert!(out.deleted().is_empty(), "{out:?}");
    if c.head_object().bucket("bkt").key("k").send().await.is_err() {
        wrong.push("DeleteObjects deleted the current object");
    }
    // A copy source naming such a version: the same client error as GET (it answered 501
    // NotImplemented, "not supported", for an id that names nothing), and nothing copied.
    match c.copy_object().bucket("bkt").key("dst").copy_source(format!("bkt/k?versionId={vid}")).send().await {
        Ok(_) => wrong.push("CopyObject copied the current object"),
        Err(e) => assert_eq!(code(&e), "InvalidArgument"),
    }
    c.copy_object().bucket("bkt").key("dst").copy_source("bkt/k?versionId=null").send().await.unwrap();
    assert!(wrong.is_empty(), "versionId={vid}: {wrong:?}");
    h.server.shutdown().await;
}

/// A `response-*` override that cannot be a header value is the client's error: GET answers
/// 400 (s3s checks it) and so does HEAD (it answered 500 InternalError: the output failed to
/// serialize, and SDKs retry a 500 as a server fault).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_response_override_on_head_is_a_client_error_not_a_500() {
    let h = Harness::start().await;
    let c = h.client();
    c.create_bucket().bucket("bkt").send().await.unwrap();
    c.put_object().bucket("bkt").key("k").body(ByteStream::from_static(b"x")).send().await.unwrap();
    let e = c.get_object().bucket("bkt").key("k").response_content_disposition("a\nb").send().await.unwrap_err();
    assert_eq!(status(&e), 400, "GET: {}", code(&e));
    let e = c.head_object().bucket("bkt").key("k").response_content_disposition("a\nb").send().await.unwrap_err();
    assert_eq!(status(&e), 400, "HEAD answered {} (GET answers 400)", status(&e));
    h.server.shutdown().await;
}
