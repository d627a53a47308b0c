//! Listing objects in byte order of keys, by pages, with prefixes, delimiters and
//! continuation tokens; and a lazy iterator over pages.

use std::sync::Arc;

use crate::data::chunking::{hex, unhex};
use crate::data::records::Manifest;
use crate::data::{keys, pack};
use crate::engine::{next_key, range_from};
use crate::error::{Error, Result};
use crate::objects;
use crate::storage::{KvRead, ReadTxn, prefix_end};
use crate::types::{ListEntry, ListOptions, ListPage};

/// Entries fetched per scan of the store.
const SCAN: usize = 256;

fn bad_token() -> Error {
    Error::InvalidKey { key: String::new(), reason: "invalid continuation token" }
}

/// One page of `bucket`.
pub(crate) fn list_page(r: &dyn KvRead, bucket: &str, opts: &ListOptions) -> Result<ListPage> {
    objects::require_bucket(r, bucket)?;
    let base = keys::objects_prefix(bucket);
    let mut scope = base.clone();
    scope.extend_from_slice(opts.prefix.as_bytes());
    let scope_end = prefix_end(&scope);
    let bucket_end = keys::objects_end(bucket);

    // Where to start: the prefix, after `start_after`, or where the token says.
    let mut from = scope.clone();
    if let Some(after) = &opts.start_after {
        let mut k = base.clone();
        k.extend_from_slice(after.as_bytes());
        from = from.max(next_key(&k));
    }
    if let Some(token) = &opts.continuation {
        let rel = token.strip_prefix('t').and_then(unhex).ok_or_else(bad_token)?;
        let mut k = base.clone();
        k.extend_from_slice(&rel);
        from = from.max(k);
    }

    let mut page = ListPage::default();
    if scope_end.as_deref().is_some_and(|end| from.as_slice() >= end) {
        // Starts after every key of the prefix (a range that ends before it starts is not
        // handed to the backend).
        return Ok(page);
    }
    let max = opts.max_keys.max(1);
    let delim = opts.delimiter.as_deref().filter(|d| !d.is_empty());
    let mut count = 0;
    let mut resume: Option<Vec<u8>> = None;
    'scan: loop {
        let mut batch = r.scan(range_from(&from, scope_end.as_deref()), SCAN)?;
        let exhausted = batch.len() < SCAN;
        if exhausted && let Some(end) = scope_end.as_deref().filter(|&e| e < bucket_end.as_slice()) {
            // A pack lives under its last key: one that begins inside the scope may be stored
            // past its end, as the first record after it (its objects outside are cut below).
            batch.extend(r.scan(range_from(end.max(&from), Some(&bucket_end)), 1)?);
        }
        let mut next_from = None;
        'batch: for (k, v) in &batch {
            let objects = match objects::record_objects(bucket, k, v) {
                Ok(objects) => objects,
                // A damaged pack that begins past the prefix (the record looked at after it)
                // holds nothing of this listing.
                Err(_)
                    if pack::first_key(v).is_some_and(|first| {
                        first.as_bytes() >= &from[base.len()..] && !first.starts_with(&opts.prefix)
                    }) =>
                {
                    break 'scan;
                }
                Err(e) => return Err(e),
            };
            for (name, manifest) in objects {
                // A pack found by the scan may begin before where this page starts.
                if name.as_bytes() < &from[base.len()..] {
                    continue;
                }
                if !name.starts_with(&opts.prefix) {
                    break 'scan;
                }
                if count == max {
                    // More remain: the next page starts here.
                    resume = Some(name.as_bytes().to_vec());
                    break 'scan;
                }
                if let Some(d) = delim {
                    let rest = &name[opts.prefix.len()..];
                    if let Some(i) = rest.find(d) {
                        let cp = &name[..opts.prefix.len() + i + d.len()];
                        page.common_prefixes.push(cp.to_owned());
                        count += 1;
                        // Skip every other key under this common prefix.
                        let mut cpk = base.clone();
                        cpk.extend_from_slice(cp.as_bytes());
                        match prefix_end(&cpk) {
                            Some(e) => next_from = Some(e),
                            None => break 'scan,
                        }
                        break 'batch;
                    }
                }
                let m = Manifest::decode_head(manifest).map_err(|e| e.at(bucket, name))?;
                page.objects.push(objects::info(bucket, name, &m));
                count += 1;
            }
        }
        match next_from {
            Some(nf) => from = nf,
            None if exhausted => break,
            None => match batch.last() {
                Some((k, _)) => from = next_key(k),
                None => break,
            },
        }
    }
    page.next_token = resume.map(|rel| format!("t{}", hex(&rel)));
    Ok(page)
}

/// A lazy listing: pages are fetched as the iterator advances, all from one snapshot.
pub struct ListIter {
    snap: Arc<dyn ReadTxn>,
    bucket: String,
    opts: ListOptions,
    page: std::vec::IntoIter<ListEntry>,
    done: bool,
}

impl std::fmt::Debug for ListIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListIter").field("bucket", &self.bucket).field("opts", &self.opts).finish_non_exhaustive()
    }
}

impl ListIter {
    pub(crate) fn new(snap: Arc<dyn ReadTxn>, bucket: &str, opts: ListOptions) -> Result<Self> {
        objects::require_bucket(snap.as_ref(), bucket)?;
        Ok(ListIter { snap, bucket: bucket.to_owned(), opts, page: Vec::new().into_iter(), done: false })
    }
}

impl Iterator for ListIter {
    type Item = Result<ListEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.page.next() {
                return Some(Ok(e));
            }
            if self.done {
                return None;
            }
            let page = match list_page(self.snap.as_ref(), &self.bucket, &self.opts) {
                Ok(p) => p,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            self.done = page.next_token.is_none();
            self.opts.continuation = page.next_token;
            // Merge objects and prefixes back into key order.
            let mut entries: Vec<ListEntry> = page.objects.into_iter().map(ListEntry::Object).collect();
            entries.extend(page.common_prefixes.into_iter().map(ListEntry::Prefix));
            entries.sort_by(|a, b| entry_key(a).as_bytes().cmp(entry_key(b).as_bytes()));
            self.page = entries.into_iter();
        }
    }
}

fn entry_key(e: &ListEntry) -> &str {
    match e {
        ListEntry::Object(o) => &o.key,
        ListEntry::Prefix(p) => p,
    }
}
