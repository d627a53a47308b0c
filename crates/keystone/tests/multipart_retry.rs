//! A multipart completion retried after it succeeded (an S3 client whose answer was lost)
//! returns the object again; an upload that was aborted, an id that was never an upload's, other
//! parts, another key or an object written since do not. On every backend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use keystone::{Bucket, CompleteOptions, CompletedPart, Datastore, Error, ObjectMeta, PutCondition};

mod common;
use common::{backends, data};

fn meta(tag: &str) -> ObjectMeta {
    ObjectMeta { content_type: Some(tag.to_owned()), ..Default::default() }
}

/// Uploads `parts` (one per body) to a new upload of `key` with `meta`; returns its id and the
/// parts to name in a completion.
fn upload(b: &Bucket, key: &str, meta: ObjectMeta, bodies: &[&[u8]]) -> (String, Vec<CompletedPart>) {
    let id = b.create_upload(key, meta).unwrap();
    let parts = bodies
        .iter()
        .zip(1..)
        .map(|(body, n)| CompletedPart { part_number: n, etag: b.upload_part(&id, n, *body).unwrap().etag })
        .collect();
    (id, parts)
}

fn no_such_upload<T>(got: &keystone::Result<T>) -> bool {
    matches!(got, Err(Error::NoSuchUpload { .. }))
}

#[test]
fn a_retried_completion_returns_the_object_again() {
    let dir = tempfile::tempdir().unwrap();
    for (name, db) in backends(&dir) {
        eprintln!("backend: {name}");
        retries(&db);
    }
}

fn retries(db: &Datastore) {
    let b = db.create_bucket("retry").unwrap();
    let (p1, p2) = (data(2500, 1), data(700, 2));
    let (id, parts) = upload(&b, "dir/obj", meta("first"), &[&p1, &p2]);
    let opts = CompleteOptions { key: Some("dir/obj".into()), ..Default::default() };
    let first = b.complete_upload(&id, &parts, &opts).unwrap();

    // The same parts, quoted or not, with the key or without: the object as it is.
    let again = b.complete_upload(&id, &parts, &opts).unwrap();
    assert_eq!((&again.key, &again.etag, again.size, &again.meta), (&first.key, &first.etag, first.size, &first.meta));
    let quoted: Vec<CompletedPart> =
        parts.iter().map(|p| CompletedPart { etag: format!("\"{}\"", p.etag), ..p.clone() }).collect();
    assert_eq!(b.complete_upload(&id, &quoted, &CompleteOptions::default()).unwrap().etag, first.etag);
    // A condition the object now fails is not checked again: the first completion checked it.
    let if_absent = CompleteOptions { condition: PutCondition::IfAbsent, ..opts.clone() };
    assert_eq!(b.complete_upload(&id, &parts, &if_absent).unwrap().etag, first.etag);

    // Other parts, another key, a part ETag that is not an MD5: NoSuchUpload.
    assert!(no_such_upload(&b.complete_upload(&id, &parts[..1], &opts)));
    let swapped = [parts[0].clone(), CompletedPart { part_number: 2, etag: parts[0].etag.clone() }];
    assert!(no_such_upload(&b.complete_upload(&id, &swapped, &opts)));
    let upper: Vec<CompletedPart> =
        parts.iter().map(|p| CompletedPart { etag: p.etag.to_uppercase(), ..p.clone() }).collect();
    assert!(no_such_upload(&b.complete_upload(&id, &upper, &opts)));
    let not_md5 = [parts[0].clone(), CompletedPart { part_number: 2, etag: "zz".into() }];
    assert!(no_such_upload(&b.complete_upload(&id, &not_md5, &opts)));
    assert!(no_such_upload(&b.complete_upload(&id, &[], &opts)));
    let elsewhere = CompleteOptions { key: Some("dir/other".into()), ..Default::default() };
    assert!(no_such_upload(&b.complete_upload(&id, &parts, &elsewhere)));

    // Once the key holds another object, the retry is NoSuchUpload.
    b.put_bytes("dir/obj", b"new").unwrap();
    assert!(no_such_upload(&b.complete_upload(&id, &parts, &opts)));
    assert_eq!(b.get_bytes("dir/obj").unwrap(), b"new");
    let report = db.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    db.delete_bucket("retry").unwrap();
}

/// An aborted upload whose parts are those of a completed one, and an id that was never an
/// upload's, are NoSuchUpload although the object under the key has the ETag their parts make.
#[test]
fn an_aborted_or_made_up_upload_is_not_a_retry() {
    let db = Datastore::in_memory().unwrap();
    let b = db.create_bucket("retry").unwrap();
    let body = data(3000, 9);
    let (done, parts) = upload(&b, "k", meta("done"), &[&body]);
    let opts = CompleteOptions { key: Some("k".into()), ..Default::default() };
    let first = b.complete_upload(&done, &parts, &opts).unwrap();
    let (aborted, same_parts) = upload(&b, "k", meta("aborted"), &[&body]);
    assert_eq!(same_parts, parts);
    b.abort_upload(&aborted).unwrap();
    assert!(no_such_upload(&b.complete_upload(&aborted, &parts, &opts)));
    assert!(no_such_upload(&b.complete_upload("00000000000000ff", &parts, &opts)));
    assert!(no_such_upload(&b.complete_upload("00000000000000ff", &parts, &CompleteOptions::default())));
    let now = b.head("k").unwrap();
    assert_eq!((now.meta, now.modified), (meta("done"), first.modified));
}

/// The key an upload is named by is checked by the completion itself: an upload of another key
/// is NoSuchUpload and stays in progress.
#[test]
fn an_upload_named_by_another_key_is_no_such_upload() {
    let db = Datastore::in_memory().unwrap();
    let b = db.create_bucket("retry").unwrap();
    let (id, parts) = upload(&b, "mine", ObjectMeta::default(), &[b"bytes"]);
    let other = CompleteOptions { key: Some("theirs".into()), ..Default::default() };
    assert!(no_such_upload(&b.complete_upload(&id, &parts, &other)));
    assert!(!b.exists("theirs").unwrap());
    assert_eq!(b.list_parts(&id).unwrap().len(), 1);
    let mine = CompleteOptions { key: Some("mine".into()), ..Default::default() };
    assert_eq!(b.complete_upload(&id, &parts, &mine).unwrap().key, "mine");
}

/// Deleting a bucket deletes the records of its completions: in a bucket created again under
/// the name, an old completion is not answered, even with an object of the same ETag there.
#[test]
fn a_deleted_bucket_forgets_its_completions() {
    let db = Datastore::in_memory().unwrap();
    let body = data(1500, 4);
    let b = db.create_bucket("again").unwrap();
    let (old, parts) = upload(&b, "k", ObjectMeta::default(), &[&body]);
    let first = b.complete_upload(&old, &parts, &CompleteOptions::default()).unwrap();
    // Completion records are not content: the bucket is empty once its object is deleted.
    b.delete("k").unwrap();
    db.delete_empty_bucket("again").unwrap();
    let b = db.create_bucket("again").unwrap();
    let (new, parts) = upload(&b, "k", ObjectMeta::default(), &[&body]);
    assert_eq!(b.complete_upload(&new, &parts, &CompleteOptions::default()).unwrap().etag, first.etag);
    assert!(no_such_upload(&b.complete_upload(&old, &parts, &CompleteOptions::default())));
    // The same with a bucket deleted with its objects.
    db.delete_bucket("again").unwrap();
    let b = db.create_bucket("again").unwrap();
    let (newer, parts) = upload(&b, "k", ObjectMeta::default(), &[&body]);
    assert_eq!(b.complete_upload(&newer, &parts, &CompleteOptions::default()).unwrap().etag, first.etag);
    assert!(no_such_upload(&b.complete_upload(&new, &parts, &CompleteOptions::default())));
    assert_eq!(b.complete_upload(&newer, &parts, &CompleteOptions::default()).unwrap().etag, first.etag);
}

/// Reads `data`, running `hook` once when `at` bytes have been read.
struct Hooked<F: FnMut()> {
    data: Vec<u8>,
    pos: usize,
    at: usize,
    hook: Option<F>,
}

impl<F: FnMut()> std::io::Read for Hooked<F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.at
            && let Some(mut f) = self.hook.take()
        {
            f();
        }
        let n = buf.len().min(self.data.len() - self.pos).min(500);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A part whose bucket is deleted (and created again) while it streams, past its first
/// committed batch, fails `NoSuchUpload` — the upload went with the bucket — not `NoSuchBucket`
/// for a bucket that exists; and it leaves nothing behind.
#[test]
fn a_part_whose_bucket_is_deleted_while_it_streams_is_no_such_upload() {
    for recreate in [false, true] {
        let db =
            Datastore::builder().chunk_size(1000).inline_threshold(100).upload_batch_size(3000).in_memory().unwrap();
        let b = db.create_bucket("gone").unwrap();
        let id = b.create_upload("k", ObjectMeta::default()).unwrap();
        let other = db.clone();
        let hook = move || {
            other.delete_bucket("gone").unwrap();
            if recreate {
                other.create_bucket("gone").unwrap();
            }
        };
        let part = Hooked { data: data(9000, 1), pos: 0, at: 5000, hook: Some(hook) };
        let e = b.upload_part(&id, 1, part).unwrap_err();
        assert!(matches!(e, Error::NoSuchUpload { .. }), "recreate {recreate}: {e:?}");
        let report = db.verify().unwrap();
        assert!(report.is_clean() && report.orphan_segments == 0, "{report:?}");
    }
}
