//! Completed-upload records (`Book::Done`): a multipart completion leaves one behind, in the
//! transaction that publishes its object, so that a retry of that completion (an S3 client
//! retrying one whose answer was lost) gets the same answer instead of `NoSuchUpload`. An
//! upload that was aborted, or an id that was never an upload's, has no record.
//!
//! A record is kept for at least [`KEEP_NANOS`]: each completion deletes up to [`PRUNE`] of
//! its bucket's records older than that, looking at the start of the bucket's range (upload ids
//! grow over time, so the oldest uploads come first); deleting the bucket deletes them all.

use crate::data::chunking::{hex, unhex};
use crate::data::keys::Book;
use crate::data::records::DoneRecord;
use crate::engine::range_from;
use crate::error::Result;
use crate::multipart::multipart_etag;
use crate::objects;
use crate::storage::{KvRead, WriteTxn, prefix_end};
use crate::types::{CompletedPart, ObjectInfo, etag_eq};

/// How long a record is kept at least: 24 hours, in ns.
pub(crate) const KEEP_NANOS: u64 = 24 * 60 * 60 * 1_000_000_000;
/// Records of its bucket a completion looks at for pruning (and so deletes at most).
pub(crate) const PRUNE: usize = 16;

/// Records that upload `id` of `bucket` was completed as `key` with `etag` at `now` (ns), and
/// prunes the bucket's old records. Part of the completion's transaction.
pub(crate) fn record(w: &mut dyn WriteTxn, bucket: &str, id: u64, key: &str, etag: &str, now: u64) -> Result<()> {
    prune(w, bucket, now)?;
    let rec = DoneRecord { key: key.to_owned(), etag: etag.to_owned(), completed: now };
    w.put(&Book::Done.key(bucket, id), &rec.encode())
}

/// Deletes those of the first [`PRUNE`] records of `bucket` that were completed more than
/// [`KEEP_NANOS`] before `now`, and those that do not decode (they can answer no retry, and
/// would otherwise hold a place among the first forever).
fn prune(w: &mut dyn WriteTxn, bucket: &str, now: u64) -> Result<()> {
    let prefix = Book::Done.in_bucket(bucket);
    let end = prefix_end(&prefix);
    let cutoff = now.saturating_sub(KEEP_NANOS);
    for (k, v) in w.scan(range_from(&prefix, end.as_deref()), PRUNE)? {
        if DoneRecord::decode(&v).ok().is_none_or(|r| r.completed < cutoff) {
            w.delete(&k)?;
        }
    }
    Ok(())
}

/// The answer to a completion of upload `id` of `bucket`, which is no longer in progress, when
/// it is a retry of the completion that ended it: that completion's record names `key` (when
/// the caller names a key), `parts` make the ETag it recorded, and the object under its key
/// still has that ETag. Then the object as it is now; `None` otherwise (`NoSuchUpload`).
pub(crate) fn retried(
    r: &dyn KvRead,
    bucket: &str,
    id: u64,
    key: Option<&str>,
    parts: &[CompletedPart],
) -> Result<Option<ObjectInfo>> {
    let Some(v) = r.get(&Book::Done.key(bucket, id))? else { return Ok(None) };
    let done = DoneRecord::decode(&v).map_err(|e| e.at(bucket, key.unwrap_or_default()))?;
    if key.is_some_and(|k| k != done.key) {
        return Ok(None);
    }
    let Some(md5s) = parts.iter().map(|p| part_md5(&p.etag)).collect::<Option<Vec<_>>>() else {
        return Ok(None);
    };
    if multipart_etag(&md5s) != done.etag {
        return Ok(None);
    }
    match objects::manifest(r, bucket, &done.key, false)? {
        Some(m) if m.etag == done.etag => Ok(Some(objects::into_info(bucket, &done.key, m))),
        Some(_) | None => Ok(None),
    }
}

/// The MD5 a part's ETag names, if a completion would accept it for a part whose MD5 it is:
/// the completion's own comparison (`etag_eq` with the MD5 in hex) decides.
fn part_md5(etag: &str) -> Option<[u8; 16]> {
    let md5: [u8; 16] = unhex(etag.trim_matches('"'))?.try_into().ok()?;
    etag_eq(etag, &hex(&md5)).then_some(md5)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::engine::for_each_prefixed;
    use crate::types::now_nanos;
    use crate::{Bucket, CompleteOptions, Datastore, ObjectMeta};

    /// The ids of `bucket`'s completed-upload records, in key order.
    fn done_ids(db: &Datastore, bucket: &str) -> Vec<u64> {
        let mut ids = Vec::new();
        db.engine
            .read(|r| {
                for_each_prefixed(r, &Book::Done.in_bucket(bucket), 100, |k, _| {
                    ids.extend(Book::Done.parse(k).map(|(_, id, _)| id));
                    Ok(true)
                })
            })
            .unwrap();
        ids
    }

    /// Writes a record for upload `id` completed `age` ns ago (ids this small sort before every
    /// real upload's: the high 32 bits of those count the opens).
    fn old_record(db: &Datastore, bucket: &str, id: u64, age: u64) {
        let rec = DoneRecord { key: "k".into(), etag: "e-1".into(), completed: now_nanos() - age };
        db.engine.test_write(|w| w.put(&Book::Done.key(bucket, id), &rec.encode())).unwrap();
    }

    fn complete_one(b: &Bucket, key: &str) -> u64 {
        let id = b.create_upload(key, ObjectMeta::default()).unwrap();
        let part = b.upload_part(&id, 1, &b"part"[..]).unwrap();
        let parts = [crate::CompletedPart { part_number: 1, etag: part.etag }];
        b.complete_upload(&id, &parts, &CompleteOptions::default()).unwrap();
        u64::from_str_radix(&id, 16).unwrap()
    }

    /// Each completion deletes, of the first 16 records of its bucket, those older than 24
    /// hours and those that do not decode; younger ones and other buckets' stay.
    #[test]
    fn completions_prune_records_older_than_a_day() {
        let db = Datastore::in_memory().unwrap();
        let b = db.create_bucket("bkt").unwrap();
        db.create_bucket("other").unwrap();
        let hour = 3_600_000_000_000;
        for id in 1..=20 {
            old_record(&db, "bkt", id, 25 * hour);
        }
        old_record(&db, "bkt", 3, 23 * hour);
        db.engine.test_write(|w| w.put(&Book::Done.key("bkt", 5), b"\x07damaged")).unwrap();
        old_record(&db, "other", 1, 25 * hour);

        let first = complete_one(&b, "a");
        assert_eq!(done_ids(&db, "bkt"), [3, 17, 18, 19, 20, first], "15 of the first 16 pruned");
        let second = complete_one(&b, "b");
        assert_eq!(done_ids(&db, "bkt"), [3, first, second]);
        assert_eq!(done_ids(&db, "other"), [1], "another bucket's records are its own");
        assert!(db.verify().unwrap().is_clean());
    }

    #[test]
    fn deleting_a_bucket_deletes_its_records() {
        let db = Datastore::in_memory().unwrap();
        let b = db.create_bucket("bkt").unwrap();
        let kept = db.create_bucket("kept").unwrap();
        complete_one(&b, "a");
        let other = complete_one(&kept, "a");
        assert_eq!(done_ids(&db, "bkt").len(), 1);
        db.delete_bucket("bkt").unwrap();
        assert!(done_ids(&db, "bkt").is_empty());
        assert_eq!(done_ids(&db, "kept"), [other]);
    }

    #[test]
    fn part_etags_are_read_as_a_completion_accepts_them() {
        let md5 = "0123456789abcdef0123456789abcdef";
        let want: [u8; 16] = unhex(md5).unwrap().try_into().unwrap();
        assert_eq!(part_md5(md5), Some(want));
        assert_eq!(part_md5(&format!("\"{md5}\"")), Some(want));
        for bad in ["", "zz", &md5.to_uppercase(), &md5[1..], &format!("{md5}0"), "+123456789abcdef0123456789abcdef"] {
            assert_eq!(part_md5(bad), None, "{bad:?}");
        }
    }
}
