//! Answers that follow AWS S3 where it differs from a plain reading of HTTP or of the API
//! shapes: partNumber reads, partNumber with Range, start-after with a continuation token, ListObjects (v1)
//! NextMarker, If-Match writes and deletes on a missing key, If-Range, whole-second times, refused
//! tags. Through aws-sdk-s3.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use aws_sdk_s3::primitives::ByteStream;
use common::{Harness, body, code, status};

/// S3: "Cannot specify both Range header and partNumber query parameter" (400 InvalidRequest),
/// on GET and HEAD, whatever the part number. Before, partNumber=1 with a range served the range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_number_and_range_together_are_invalid() {
    let h = Harness::start().await;
    let c = h.client();
    h.db.create_bucket("parts").unwrap().put_bytes("k", b"0123456789").unwrap();
    for part in [1, 2] {
        let e = c.get_object().bucket("parts").key("k").part_number(part).range("bytes=0-3").send().await.unwrap_err();
        assert_eq!((code(&e).as_str(), status(&e)), ("InvalidRequest", 400), "GET partNumber={part}");
        let e = c.head_object().bucket("parts").key("k").part_number(part).range("bytes=0-3").send().await.unwrap_err();
        assert_eq!(status(&e), 400, "HEAD partNumber={part}");
    }
    // Either alone is still answered.
    let r = c.get_object().bucket("parts").key("k").range("bytes=0-3").send().await.unwrap();
    assert_eq!(body(r).await, b"0123");
    let r = c.get_object().bucket("parts").key("k").part_number(1).send().await.unwrap();
    assert_eq!(body(r).await, b"0123456789");
    h.server.shutdown().await;
}

/// GetObject and HeadObject by `partNumber`, as S3 answers them: a part of a multipart object
/// is a 206 of its bytes with `x-amz-mp-parts-count` (1 for a one-part upload); any other
/// object is its own part 1 (a 206 of the whole, with Content-Range, except an empty one); a
/// part the object does not have is 416 InvalidPartNumber; a part number outside 1–10000 is
/// 400 InvalidArgument before the key is looked up. Before: 200 for part 1 of a plain object,
/// 501 for everything else. A copy of a multipart object, which keeps its `-N` ETag but not
/// where its parts lie, is one part without a count: a downloader reads it whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_number_reads() {
    let h = Harness::start().await;
    let c = h.client();
    let b = h.db.create_bucket("pnr").unwrap();
    b.put_bytes("plain", b"0123456789").unwrap();
    b.put_bytes("empty", b"").unwrap();
    let bodies: Vec<Vec<u8>> =
        [20_000u32, 30_000, 1].iter().map(|&n| (0..n).map(|i| (i % 251) as u8).collect()).collect();
    let opts = keystone::CompleteOptions { min_part_size: 0, ..Default::default() };
    let upload = |key: &str, parts: &[Vec<u8>]| {
        let id = b.create_upload(key, keystone::ObjectMeta::default()).unwrap();
        let mut done = Vec::new();
        for (n, body) in (1..).zip(parts) {
            let p = b.upload_part(&id, n, &body[..]).unwrap();
            done.push(keystone::CompletedPart { part_number: n, etag: p.etag });
        }
        b.complete_upload(&id, &done, &opts).unwrap()
    };
    let whole = upload("mpu", &bodies);
    upload("one", &bodies[..1]);
    // Large enough to be stored in chunks: one segment where the source had three.
    b.copy("mpu", "mpu-copy").unwrap();

    let r = c.get_object().bucket("pnr").key("plain").part_number(1).send().await.unwrap();
    assert_eq!((r.content_range(), r.content_length(), r.parts_count()), (Some("bytes 0-9/10"), Some(10), None));
    assert_eq!(body(r).await, b"0123456789");
    let r = c.head_object().bucket("pnr").key("plain").part_number(1).send().await.unwrap();
    assert_eq!((r.content_range(), r.content_length()), (Some("bytes 0-9/10"), Some(10)));
    let r = c.get_object().bucket("pnr").key("empty").part_number(1).send().await.unwrap();
    assert_eq!((r.content_range(), r.content_length()), (None, Some(0)));

    let mut at = 0;
    for (n, part) in (1..).zip(&bodies) {
        let r = c.get_object().bucket("pnr").key("mpu").part_number(n).send().await.unwrap();
        let range = format!("bytes {at}-{}/{}", at + part.len() - 1, whole.size);
        assert_eq!(r.content_range(), Some(range.as_str()), "part {n}");
        assert_eq!((r.parts_count(), r.e_tag()), (Some(3), Some(format!("\"{}\"", whole.etag).as_str())));
        assert_eq!(body(r).await, *part, "part {n}");
        let r = c.head_object().bucket("pnr").key("mpu").part_number(n).send().await.unwrap();
        assert_eq!((r.content_length(), r.parts_count()), (i64::try_from(part.len()).ok(), Some(3)), "HEAD part {n}");
        at += part.len();
    }
    let r = c.head_object().bucket("pnr").key("one").part_number(1).send().await.unwrap();
    assert_eq!((r.content_length(), r.parts_count()), (Some(20_000), Some(1)));

    let r = c.get_object().bucket("pnr").key("mpu-copy").part_number(1).send().await.unwrap();
    let range = format!("bytes 0-{}/{}", whole.size - 1, whole.size);
    assert_eq!((r.content_range(), r.parts_count()), (Some(range.as_str()), None));
    assert_eq!(body(r).await, &bodies.concat()[..]);
    let r = c.head_object().bucket("pnr").key("mpu-copy").part_number(1).send().await.unwrap();
    assert_eq!((r.content_length(), r.parts_count()), (i64::try_from(whole.size).ok(), None));

    for (key, part) in [("plain", 2), ("empty", 2), ("mpu", 4), ("one", 2), ("mpu-copy", 2)] {
        let e = c.get_object().bucket("pnr").key(key).part_number(part).send().await.unwrap_err();
        assert_eq!((code(&e).as_str(), status(&e)), ("InvalidPartNumber", 416), "{key} part {part}");
        let e = c.head_object().bucket("pnr").key(key).part_number(part).send().await.unwrap_err();
        assert_eq!(status(&e), 416, "HEAD {key} part {part}");
    }
    for part in [0, 10_001] {
        let e = c.get_object().bucket("pnr").key("no-such-key").part_number(part).send().await.unwrap_err();
        assert_eq!((code(&e).as_str(), status(&e)), ("InvalidArgument", 400), "part {part}");
    }
    h.server.shutdown().await;
}

/// S3 ignores start-after on a request with a continuation token: the token says where the
/// listing resumes (and start-after is still echoed). Before, the listing started after the
/// greater of the two and skipped the keys between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_v2_continuation_token_wins_over_start_after() {
    let h = Harness::start().await;
    let c = h.client();
    let b = h.db.create_bucket("tok").unwrap();
    for k in ["a", "b", "c", "d", "e"] {
        b.put_bytes(k, b"v").unwrap();
    }
    let first = c.list_objects_v2().bucket("tok").max_keys(2).send().await.unwrap();
    let token = first.next_continuation_token().unwrap().to_owned();
    let keys = |out: &aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output| -> Vec<String> {
        out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
    };
    assert_eq!(keys(&first), ["a", "b"]);
    // A start-after past the token's position, and one before it: both ignored.
    for after in ["d", "a"] {
        let out = c
            .list_objects_v2()
            .bucket("tok")
            .max_keys(2)
            .continuation_token(&token)
            .start_after(after)
            .send()
            .await
            .unwrap();
        assert_eq!(keys(&out), ["c", "d"], "start-after {after:?} with a token");
        assert_eq!(out.start_after(), Some(after));
        assert_eq!(out.continuation_token(), Some(token.as_str()));
    }
    // Without a token start-after still applies.
    let out = c.list_objects_v2().bucket("tok").start_after("c").send().await.unwrap();
    assert_eq!(keys(&out), ["d", "e"]);
    h.server.shutdown().await;
}

/// ListObjects (v1): S3 sends NextMarker only when the request has a delimiter; without one the
/// client resumes after the last Key (botocore: `NextMarker || Contents[-1].Key`). Both kinds of
/// truncated listing page through every key once that way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_v1_next_marker_only_with_a_delimiter() {
    let h = Harness::start().await;
    let c = h.client();
    let b = h.db.create_bucket("listv1").unwrap();
    let keys = ["a/1", "a/2", "b", "c/x", "d", "e/f/g"];
    for k in keys {
        b.put_bytes(k, b"v").unwrap();
    }
    for delimiter in [None, Some("/")] {
        let mut names = Vec::new();
        let mut marker: Option<String> = None;
        let mut pages = 0;
        loop {
            pages += 1;
            assert!(pages <= 10, "paging does not end (delimiter {delimiter:?})");
            let out = c
                .list_objects()
                .bucket("listv1")
                .max_keys(2)
                .set_delimiter(delimiter.map(str::to_owned))
                .set_marker(marker.clone())
                .send()
                .await
                .unwrap();
            let page_keys: Vec<String> = out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect();
            names.extend(page_keys.iter().cloned());
            names.extend(out.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_owned)));
            if out.is_truncated() != Some(true) {
                assert_eq!(out.next_marker(), None);
                break;
            }
            match delimiter {
                None => assert_eq!(out.next_marker(), None, "NextMarker without a delimiter"),
                Some(_) => assert!(out.next_marker().is_some(), "no NextMarker with a delimiter"),
            }
            // What boto3's paginator does.
            marker = out.next_marker().map(str::to_owned).or_else(|| page_keys.last().cloned());
        }
        names.sort();
        let want: Vec<&str> = match delimiter {
            None => keys.to_vec(),
            Some(_) => vec!["a/", "b", "c/", "d", "e/"],
        };
        assert_eq!(names, want, "delimiter {delimiter:?}");
    }
    h.server.shutdown().await;
}

/// S3 answers a write on If-Match to a key with no object 404 NoSuchKey (S3 User Guide,
/// conditional writes); another ETag stays 412. Before, both were 412. Nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_write_to_a_missing_key_is_no_such_key() {
    let h = Harness::start().await;
    let c = h.client();
    c.create_bucket().bucket("cond").send().await.unwrap();
    let put = |key: &'static str, if_match: &'static str| {
        c.put_object().bucket("cond").key(key).if_match(if_match).body(ByteStream::from_static(b"x")).send()
    };
    let e = put("missing", "\"0123456789abcdef0123456789abcdef\"").await.unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("NoSuchKey", 404));
    assert!(!h.db.bucket("cond").unwrap().exists("missing").unwrap());
    let etag = c.put_object().bucket("cond").key("there").body(ByteStream::from_static(b"1")).send().await.unwrap();
    let e = put("there", "\"0123456789abcdef0123456789abcdef\"").await.unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("PreconditionFailed", 412));
    put("there", "\"c4ca4238a0b923820dcc509a6f75849b\"").await.unwrap();
    assert_eq!(etag.e_tag(), Some("\"c4ca4238a0b923820dcc509a6f75849b\""));

    // CompleteMultipartUpload on If-Match.
    let (id, parts) = common::upload_with_one_part(&c, "cond", "mpu", None, b"part").await;
    let complete = |if_match: &'static str| {
        c.complete_multipart_upload()
            .bucket("cond")
            .key("mpu")
            .upload_id(&id)
            .if_match(if_match)
            .multipart_upload(parts.clone())
            .send()
    };
    let e = complete("\"0123456789abcdef0123456789abcdef\"").await.unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("NoSuchKey", 404));
    assert!(!h.db.bucket("cond").unwrap().exists("mpu").unwrap());
    // Once the key holds an object: another ETag is 412 and leaves the upload as it was, the
    // object's own ETag completes it.
    c.put_object().bucket("cond").key("mpu").body(ByteStream::from_static(b"1")).send().await.unwrap();
    let e = complete("\"0123456789abcdef0123456789abcdef\"").await.unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("PreconditionFailed", 412));
    assert_eq!(h.db.bucket("cond").unwrap().get_bytes("mpu").unwrap(), b"1");
    complete("\"c4ca4238a0b923820dcc509a6f75849b\"").await.unwrap();
    assert_eq!(h.db.bucket("cond").unwrap().get_bytes("mpu").unwrap(), b"part");
    h.server.shutdown().await;
}

/// A delete on If-Match (an ETag or `*`) of a key with no object is 404 NoSuchKey, as S3
/// answers it (measured against AWS by other S3 implementations; the S3 User Guide, conditional
/// deletes): a compare-and-swap delete on a stale ETag must not be told it succeeded. Before,
/// it was 204. In DeleteObjects the entry gets its own NoSuchKey error. A delete without
/// If-Match, or with only the directory-bucket size condition, of a missing key stays 204.
/// CopyObject onto a missing key on If-Match is NoSuchKey too (it was 412), and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_delete_and_copy_to_a_missing_key_is_no_such_key() {
    let h = Harness::start().await;
    let c = h.client();
    c.create_bucket().bucket("cdel").send().await.unwrap();
    for if_match in ["\"0123456789abcdef0123456789abcdef\"", "*"] {
        let e = c.delete_object().bucket("cdel").key("missing").if_match(if_match).send().await.unwrap_err();
        assert_eq!((code(&e).as_str(), status(&e)), ("NoSuchKey", 404), "If-Match: {if_match}");
    }
    c.delete_object().bucket("cdel").key("missing").send().await.unwrap();
    c.delete_object().bucket("cdel").key("missing").if_match_size(5).send().await.unwrap();

    let stale = aws_sdk_s3::types::ObjectIdentifier::builder()
        .key("missing")
        .e_tag("\"0123456789abcdef0123456789abcdef\"")
        .build()
        .unwrap();
    let plain = aws_sdk_s3::types::ObjectIdentifier::builder().key("also-missing").build().unwrap();
    let del = aws_sdk_s3::types::Delete::builder().objects(stale).objects(plain).build().unwrap();
    let out = c.delete_objects().bucket("cdel").delete(del).send().await.unwrap();
    let errors: Vec<_> = out.errors().iter().map(|e| (e.key().unwrap_or(""), e.code().unwrap_or(""))).collect();
    assert_eq!(errors, [("missing", "NoSuchKey")]);
    let deleted: Vec<_> = out.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(deleted, ["also-missing"]);

    // The object exists: another ETag is 412 and keeps it; `*` deletes it.
    h.db.bucket("cdel").unwrap().put_bytes("there", b"1").unwrap();
    let e = c.delete_object().bucket("cdel").key("there").if_match("\"nope\"").send().await.unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("PreconditionFailed", 412));
    c.delete_object().bucket("cdel").key("there").if_match("*").send().await.unwrap();
    assert!(!h.db.bucket("cdel").unwrap().exists("there").unwrap());

    h.db.bucket("cdel").unwrap().put_bytes("src", b"source").unwrap();
    let e = c
        .copy_object()
        .bucket("cdel")
        .key("copy-missing")
        .copy_source("cdel/src")
        .if_match("\"0123456789abcdef0123456789abcdef\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("NoSuchKey", 404));
    assert!(!h.db.bucket("cdel").unwrap().exists("copy-missing").unwrap());
    h.server.shutdown().await;
}

/// Decodes `%XX` escapes (what botocore does to the names of a listing asked with
/// `encoding-type=url`).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// ListObjects (v1) with `encoding-type=url` and a delimiter: names and NextMarker come
/// encoded, and a client that decodes them (as botocore does) and resumes after the decoded
/// marker pages through every name once — names with spaces, `+`, `%` and non-ASCII included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_v1_encoded_next_marker_pages_through_every_name() {
    let h = Harness::start().await;
    let c = h.client();
    let b = h.db.create_bucket("enc").unwrap();
    for k in ["a b/1", "a b/2", "c+d", "e%f", "\u{e9}/x", "z"] {
        b.put_bytes(k, b"v").unwrap();
    }
    let (mut names, mut marker, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        pages += 1;
        assert!(pages <= 10, "paging does not end");
        let out = c
            .list_objects()
            .bucket("enc")
            .max_keys(1)
            .delimiter("/")
            .encoding_type(aws_sdk_s3::types::EncodingType::Url)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        names.extend(out.contents().iter().filter_map(|o| o.key().map(percent_decode)));
        names.extend(out.common_prefixes().iter().filter_map(|p| p.prefix().map(percent_decode)));
        if out.is_truncated() != Some(true) {
            break;
        }
        let next = out.next_marker().expect("a truncated page with a delimiter has a NextMarker");
        assert!(!next.contains(' '), "NextMarker not encoded: {next:?}");
        marker = Some(percent_decode(next));
    }
    assert_eq!(names, ["a b/", "c+d", "e%f", "z", "\u{e9}/"]);
    h.server.shutdown().await;
}

/// A GET of `key` with `range` under `If-Range: validator` (the SDK has no field for it): the
/// body and whether it came as a 206 (with a Content-Range).
async fn get_if_range(c: &aws_sdk_s3::Client, key: &str, range: &str, validator: String) -> (Vec<u8>, bool) {
    let out = c
        .get_object()
        .bucket("ifr")
        .key(key)
        .range(range)
        .customize()
        .mutate_request(move |req| {
            req.headers_mut().insert("if-range", validator.clone());
        })
        .send()
        .await
        .unwrap();
    let partial = out.content_range().is_some();
    (body(out).await, partial)
}

/// RFC 9110 13.1.5: a Range under an If-Range that no longer names the object is ignored and
/// the whole current object sent (200). Before, the range of the new object was sent as a 206,
/// so a download resumed after an overwrite spliced new bytes onto the old ones. A date never
/// names it (an overwrite within the same second keeps the date), so it gets the whole object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_range_sends_the_whole_object_when_it_changed() {
    use aws_sdk_s3::primitives::DateTimeFormat;
    let h = Harness::start().await;
    let c = h.client();
    let b = h.db.create_bucket("ifr").unwrap();
    b.put_bytes("k", b"old-old-old-old-").unwrap();
    let old = c.head_object().bucket("ifr").key("k").send().await.unwrap();
    let old_etag = old.e_tag().unwrap().to_owned();
    let old_date = old.last_modified().unwrap().fmt(DateTimeFormat::HttpDate).unwrap();
    assert_eq!(get_if_range(&c, "k", "bytes=8-", old_etag.clone()).await, (b"old-old-".to_vec(), true));
    // Overwritten within the same second: the date is the same, the ETag is not.
    b.put_bytes("k", b"new-new-new-new-").unwrap();
    let whole = (b"new-new-new-new-".to_vec(), false);
    assert_eq!(get_if_range(&c, "k", "bytes=8-", old_etag).await, whole, "stale ETag");
    assert_eq!(get_if_range(&c, "k", "bytes=8-", old_date).await, whole, "a date");
    let new = c.head_object().bucket("ifr").key("k").send().await.unwrap();
    let new_etag = new.e_tag().unwrap().to_owned();
    let new_date = new.last_modified().unwrap().fmt(DateTimeFormat::HttpDate).unwrap();
    assert_eq!(get_if_range(&c, "k", "bytes=8-", new_etag.clone()).await, (b"new-new-".to_vec(), true));
    // Unquoted, as S3 clients also send ETags.
    let bare = new_etag.trim_matches('"').to_owned();
    assert_eq!(get_if_range(&c, "k", "bytes=8-", bare).await, (b"new-new-".to_vec(), true));
    // A weak tag never satisfies If-Range, nor does a date, nor anything else.
    assert_eq!(get_if_range(&c, "k", "bytes=8-", new_date).await, whole, "the current date");
    assert_eq!(get_if_range(&c, "k", "bytes=8-", format!("W/{new_etag}")).await, whole, "weak tag");
    assert_eq!(get_if_range(&c, "k", "bytes=8-", "yesterday".into()).await, whole, "not a validator");
    // If-Match compares strongly: the current ETag as a weak tag does not match (it did).
    let e = c.get_object().bucket("ifr").key("k").if_match(format!("W/{new_etag}")).send().await.unwrap_err();
    assert_eq!(status(&e), 412);
    let r = c.get_object().bucket("ifr").key("k").if_match(&new_etag).send().await.unwrap();
    assert_eq!(body(r).await, b"new-new-new-new-");
    // Also on a write: a conditional PUT on the weak tag is refused and stores nothing.
    let e = c
        .put_object()
        .bucket("ifr")
        .key("k")
        .if_match(format!("W/{new_etag}"))
        .body(ByteStream::from_static(b"weak-put"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    assert_eq!(b.get_bytes("k").unwrap(), b"new-new-new-new-");
    h.server.shutdown().await;
}

/// Listings, ListParts and copy results send Last-Modified in whole seconds, as HEAD does (they
/// sent milliseconds, so the same object's two times compared unequal); a page of zero uploads
/// or parts is not truncated (it was, with no marker to resume after); tags and website
/// redirects, which would be dropped, are refused (501) as encryption is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_in_seconds_empty_pages_and_refused_tags() {
    let h = Harness::start().await;
    let c = h.client();
    c.create_bucket().bucket("misc").send().await.unwrap();
    c.put_object().bucket("misc").key("k").body(ByteStream::from_static(b"v")).send().await.unwrap();
    let head = c.head_object().bucket("misc").key("k").send().await.unwrap();
    let listed = c.list_objects_v2().bucket("misc").send().await.unwrap();
    assert_eq!(listed.contents()[0].last_modified(), head.last_modified());
    assert_eq!(head.last_modified().unwrap().subsec_nanos(), 0);
    let copied = c.copy_object().bucket("misc").key("k2").copy_source("misc/k").send().await.unwrap();
    assert_eq!(copied.copy_object_result().unwrap().last_modified().unwrap().subsec_nanos(), 0);

    let up = c.create_multipart_upload().bucket("misc").key("big").send().await.unwrap();
    let id = up.upload_id().unwrap();
    let part = c
        .upload_part()
        .bucket("misc")
        .key("big")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"p"))
        .send()
        .await
        .unwrap();
    assert!(part.e_tag().is_some());
    let parts = c.list_parts().bucket("misc").key("big").upload_id(id).send().await.unwrap();
    assert_eq!(parts.parts()[0].last_modified().unwrap().subsec_nanos(), 0);
    let parts = c.list_parts().bucket("misc").key("big").upload_id(id).max_parts(0).send().await.unwrap();
    assert_eq!((parts.parts().len(), parts.is_truncated()), (0, Some(false)));
    let ups = c.list_multipart_uploads().bucket("misc").max_uploads(0).send().await.unwrap();
    assert_eq!((ups.uploads().len(), ups.is_truncated()), (0, Some(false)));
    let ups = c.list_multipart_uploads().bucket("misc").send().await.unwrap();
    assert_eq!(ups.uploads()[0].initiated().unwrap().subsec_nanos(), 0);

    let put = |key: &'static str| c.put_object().bucket("misc").key(key).body(ByteStream::from_static(b"v"));
    let e = put("tagged").tagging("retain=7y").send().await.unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("NotImplemented", 501));
    let e = put("site").website_redirect_location("/other").send().await.unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("NotImplemented", 501));
    // Empty values ask for nothing and are accepted.
    put("plain").tagging("").website_redirect_location("").send().await.unwrap();
    let e = c.create_multipart_upload().bucket("misc").key("t").tagging("a=b").send().await.unwrap_err();
    assert_eq!(status(&e), 501);
    for key in ["tagged", "site"] {
        assert!(c.head_object().bucket("misc").key(key).send().await.is_err(), "{key} stored");
    }
    h.server.shutdown().await;
}
