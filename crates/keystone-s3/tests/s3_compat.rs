//! Answers that follow AWS S3 where it differs from a plain reading of HTTP or of the API
//! shapes: partNumber with Range, start-after with a continuation token, ListObjects (v1)
//! NextMarker, If-Match writes to a missing key. Through aws-sdk-s3.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use common::{Harness, code, status};

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
    assert_eq!(r.body.collect().await.unwrap().into_bytes().as_ref(), b"0123");
    let r = c.get_object().bucket("parts").key("k").part_number(1).send().await.unwrap();
    assert_eq!(r.body.collect().await.unwrap().into_bytes().as_ref(), b"0123456789");
    h.server.shutdown().await;
}
