//! Listing (v1, v2, delimiters, paging, url encoding) and multipart uploads, through aws-sdk-s3.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines, clippy::similar_names)]

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, EncodingType};
use common::{Harness, code};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing() {
    let h = Harness::start().await;
    let c = h.client();
    let b = h.db.create_bucket("lst").unwrap();
    let keys = ["a/1", "a/2", "b", "c/x/y", "c/z", "d e", "e"];
    for k in keys {
        b.put_bytes(k, b"v").unwrap();
    }
    let out = c.list_objects_v2().bucket("lst").delimiter("/").send().await.unwrap();
    let prefixes: Vec<&str> = out.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, ["a/", "c/"]);
    let objs: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(objs, ["b", "d e", "e"]);
    assert_eq!(out.key_count(), Some(5));

    // Paging with continuation tokens visits every key once.
    let mut seen = Vec::new();
    let mut token = None;
    for _ in 0..10 {
        let out =
            c.list_objects_v2().bucket("lst").max_keys(2).set_continuation_token(token.clone()).send().await.unwrap();
        seen.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        token = out.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            assert_eq!(out.is_truncated(), Some(false));
            break;
        }
    }
    assert_eq!(seen, keys);
    let out = c.list_objects_v2().bucket("lst").start_after("c/z").send().await.unwrap();
    let objs: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(objs, ["d e", "e"]);
    // A start-after that is a rolled-up prefix skips the keys under it, as a v1 marker does
    // (it listed "a/" again).
    let out = c.list_objects_v2().bucket("lst").delimiter("/").start_after("a/").send().await.unwrap();
    let prefixes: Vec<&str> = out.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, ["c/"]);
    let objs: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(objs, ["b", "d e", "e"]);
    assert_eq!(out.start_after(), Some("a/"));
    let out = c.list_objects_v2().bucket("lst").prefix("c/").fetch_owner(true).send().await.unwrap();
    assert_eq!(out.contents().len(), 2);
    assert!(out.contents()[0].owner().is_some());

    // v1 paging with a delimiter: markers that are common prefixes skip their keys.
    let mut names = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..10 {
        let out =
            c.list_objects().bucket("lst").delimiter("/").max_keys(1).set_marker(marker.clone()).send().await.unwrap();
        names.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        names.extend(out.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_owned)));
        if out.is_truncated() != Some(true) {
            break;
        }
        marker = out.next_marker().map(str::to_owned);
    }
    assert_eq!(names, ["a/", "b", "c/", "d e", "e"]);

    // encoding-type=url: the SDK decodes what the server encoded.
    let out = c.list_objects_v2().bucket("lst").prefix("d").encoding_type(EncodingType::Url).send().await.unwrap();
    let objs: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(objs, ["d%20e"]); // the SDK does not decode; the wire form is checked
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart() {
    use md5::Digest;
    let h = Harness::start().await;
    let c = h.client();
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let part1: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let part2 = b"tail".to_vec();
    let up = c.create_multipart_upload().bucket("mpu").key("big").content_type("video/x").send().await.unwrap();
    let id = up.upload_id().unwrap().to_owned();
    let e1 = c
        .upload_part()
        .bucket("mpu")
        .key("big")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from(part1.clone()))
        .send()
        .await
        .unwrap();
    let e2 = c
        .upload_part()
        .bucket("mpu")
        .key("big")
        .upload_id(&id)
        .part_number(2)
        .body(ByteStream::from(part2.clone()))
        .send()
        .await
        .unwrap();
    // A part whose body does not have its Content-MD5: BadDigest, and part 2 stays as it was.
    let e = c
        .upload_part()
        .bucket("mpu")
        .key("big")
        .upload_id(&id)
        .part_number(2)
        .content_md5(base64_simd::STANDARD.encode_to_string(md5::Md5::digest(&part2)))
        .body(ByteStream::from_static(b"TAIL"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "BadDigest");
    // An upload id is valid only with its own key.
    let e = c
        .upload_part()
        .bucket("mpu")
        .key("other")
        .upload_id(&id)
        .part_number(3)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    let parts = c.list_parts().bucket("mpu").key("big").upload_id(&id).send().await.unwrap();
    assert_eq!(parts.parts().len(), 2);
    let ups = c.list_multipart_uploads().bucket("mpu").send().await.unwrap();
    assert_eq!(ups.uploads().len(), 1);
    // Wrong ETag: InvalidPart; parts out of order: InvalidPartOrder.
    let bad = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag("\"00\"").build())
        .build();
    let e = c
        .complete_multipart_upload()
        .bucket("mpu")
        .key("big")
        .upload_id(&id)
        .multipart_upload(bad)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidPart");
    let p = |n: i32, e: &str| CompletedPart::builder().part_number(n).e_tag(e).build();
    let rev =
        CompletedMultipartUpload::builder().parts(p(2, e2.e_tag().unwrap())).parts(p(1, e1.e_tag().unwrap())).build();
    let e = c
        .complete_multipart_upload()
        .bucket("mpu")
        .key("big")
        .upload_id(&id)
        .multipart_upload(rev)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidPartOrder");
    let ok =
        CompletedMultipartUpload::builder().parts(p(1, e1.e_tag().unwrap())).parts(p(2, e2.e_tag().unwrap())).build();
    let done = c
        .complete_multipart_upload()
        .bucket("mpu")
        .key("big")
        .upload_id(&id)
        .multipart_upload(ok)
        .send()
        .await
        .unwrap();
    assert!(done.e_tag().unwrap().trim_matches('"').ends_with("-2"));
    let got = c.get_object().bucket("mpu").key("big").send().await.unwrap();
    assert_eq!(got.content_type(), Some("video/x"));
    let bytes = common::body(got).await;
    assert_eq!(bytes.len(), part1.len() + part2.len());
    assert!(bytes[..part1.len()] == part1[..] && bytes[part1.len()..] == part2[..]);

    // A small part before the last: EntityTooSmall.
    let id =
        c.create_multipart_upload().bucket("mpu").key("small").send().await.unwrap().upload_id().unwrap().to_owned();
    let mut done_parts = Vec::new();
    for n in 1..=2 {
        let out = c
            .upload_part()
            .bucket("mpu")
            .key("small")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from_static(b"tiny"))
            .send()
            .await
            .unwrap();
        done_parts.push(p(n, out.e_tag().unwrap()));
    }
    let all = CompletedMultipartUpload::builder().set_parts(Some(done_parts)).build();
    let e = c
        .complete_multipart_upload()
        .bucket("mpu")
        .key("small")
        .upload_id(&id)
        .multipart_upload(all)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "EntityTooSmall");
    assert!(!h.db.bucket("mpu").unwrap().exists("small").unwrap());

    // UploadPartCopy from a range of "big", then abort.
    let pc = c
        .upload_part_copy()
        .bucket("mpu")
        .key("small")
        .upload_id(&id)
        .part_number(3)
        .copy_source("mpu/big")
        .copy_source_range("bytes=0-9")
        .send()
        .await
        .unwrap();
    let want = md5_hex(&part1[..10]);
    assert_eq!(pc.copy_part_result().unwrap().e_tag().unwrap().trim_matches('"'), want);
    c.abort_multipart_upload().bucket("mpu").key("small").upload_id(&id).send().await.unwrap();
    let e = c.list_parts().bucket("mpu").key("small").upload_id(&id).send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    h.server.shutdown().await;
}

fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    format!("{:x}", md5::Md5::digest(data))
}

/// A CompleteMultipartUpload retried after it succeeded (its answer lost) gets the first
/// answer again, as from S3; any other completion of a gone upload is still NoSuchUpload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_retried_after_success() {
    let h = Harness::start().await;
    let c = h.client();
    c.create_bucket().bucket("again").send().await.unwrap();
    let body: Vec<u8> = (0..5 * 1024 * 1024 + 7u32).map(|i| (i % 251) as u8).collect();
    let (head, tail) = body.split_at(5 * 1024 * 1024);
    let key = "dir/a b+c/é";
    let id = c.create_multipart_upload().bucket("again").key(key).send().await.unwrap().upload_id().unwrap().to_owned();
    let mut parts = Vec::new();
    for (n, piece) in [(1, head), (2, tail)] {
        let out = c
            .upload_part()
            .bucket("again")
            .key(key)
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(piece.to_vec()))
            .send()
            .await
            .unwrap();
        parts.push(CompletedPart::builder().part_number(n).e_tag(out.e_tag().unwrap()).build());
    }
    let complete = |parts: Vec<CompletedPart>, id: &str| {
        c.complete_multipart_upload()
            .bucket("again")
            .key(key)
            .upload_id(id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
    };
    let first = complete(parts.clone(), &id).await.unwrap();
    // Location is an absolute URL, as from S3, with the key percent-encoded but for '/'.
    assert_eq!(first.location(), Some(format!("{}/again/dir/a%20b%2Bc/%C3%A9", h.endpoint).as_str()));
    let second = complete(parts.clone(), &id).await.unwrap();
    assert_eq!(second.e_tag(), first.e_tag());
    assert_eq!((second.bucket(), second.key()), (Some("again"), Some(key)));
    assert_eq!(second.location(), first.location());
    let got = c.get_object().bucket("again").key(key).send().await.unwrap();
    assert_eq!(got.e_tag(), first.e_tag());
    assert_eq!(common::body(got).await, body);

    // Other parts than the ones that made the object: still NoSuchUpload.
    let e = complete(parts[..1].to_vec(), &id).await.unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    let other = CompletedPart::builder().part_number(2).e_tag(format!("\"{}\"", md5_hex(b"other"))).build();
    let e = complete(vec![parts[0].clone(), other], &id).await.unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    let not_md5 = CompletedPart::builder().part_number(2).e_tag("\"zz\"").build();
    let e = complete(vec![parts[0].clone(), not_md5], &id).await.unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");

    // Once the key holds something else, the retry is NoSuchUpload too.
    c.put_object().bucket("again").key(key).body(ByteStream::from_static(b"new")).send().await.unwrap();
    let e = complete(parts.clone(), &id).await.unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");

    // An aborted upload is gone for good.
    let (id, gone) = common::upload_with_one_part(&c, "again", "ab", None, b"gone").await;
    c.abort_multipart_upload().bucket("again").key("ab").upload_id(&id).send().await.unwrap();
    let e = c
        .complete_multipart_upload()
        .bucket("again")
        .key("ab")
        .upload_id(&id)
        .multipart_upload(gone)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    h.server.shutdown().await;
}

/// Only a retry of the completion that ended an upload gets the object: an aborted upload
/// whose parts are a completed one's, an upload id that never was, and a retry after the key
/// was overwritten are NoSuchUpload, and the object stays as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_of_an_upload_that_did_not_complete() {
    let h = Harness::start().await;
    let c = h.client();
    c.create_bucket().bucket("gone").send().await.unwrap();
    let upload = |content_type: &'static str| {
        let c = c.clone();
        async move { common::upload_with_one_part(&c, "gone", "k", Some(content_type), b"the same bytes").await }
    };
    let complete = |id: String, parts: CompletedMultipartUpload| {
        c.complete_multipart_upload().bucket("gone").key("k").upload_id(id).multipart_upload(parts).send()
    };
    let (done_id, parts) = upload("text/first").await;
    // An upload id is valid only with its own key, for a completion too.
    let e = c
        .complete_multipart_upload()
        .bucket("gone")
        .key("other")
        .upload_id(&done_id)
        .multipart_upload(parts.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    let first = complete(done_id.clone(), parts.clone()).await.unwrap();

    // Aborted, with the same part bytes (so the same ETag) and other metadata.
    let (aborted, aborted_parts) = upload("text/aborted").await;
    assert_eq!(aborted_parts, parts);
    c.abort_multipart_upload().bucket("gone").key("k").upload_id(&aborted).send().await.unwrap();
    let e = complete(aborted, parts.clone()).await.unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    let head = c.head_object().bucket("gone").key("k").send().await.unwrap();
    assert_eq!((head.content_type(), head.e_tag()), (Some("text/first"), first.e_tag()));

    // An id no upload ever had.
    let e = complete("00000000000000ff".into(), parts.clone()).await.unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");

    // The real retry still works, until the key is overwritten.
    assert_eq!(complete(done_id.clone(), parts.clone()).await.unwrap().e_tag(), first.e_tag());
    c.put_object().bucket("gone").key("k").body(ByteStream::from_static(b"other")).send().await.unwrap();
    let e = complete(done_id, parts).await.unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    let got = c.get_object().bucket("gone").key("k").send().await.unwrap();
    assert_eq!(common::body(got).await, b"other");
    h.server.shutdown().await;
}
