//! Listing objects in byte order of keys, by pages, with prefixes, delimiters and
//! continuation tokens; and a lazy iterator over pages.

use std::sync::Arc;

use crate::data::chunking::{hex, unhex};
use crate::data::records::{Manifest, Owner};
use crate::data::{keys, pack};
use crate::engine::{next_key, range_from};
use crate::error::{Error, Result};
use crate::objects;
use crate::storage::{KvRead, ReadTxn, prefix_end};
use crate::types::{ListEntry, ListOptions, ListPage};

/// What a listing does after a record.
enum Flow {
    /// The next record (at the end of the scan: the scope is done).
    More,
    /// Past a common prefix: the scan starts again at this key.
    Jump(Vec<u8>),
    /// The page is full, or the prefix ends.
    Stop,
}

fn bad_token(token: &str) -> Error {
    Error::InvalidContinuationToken { token: token.chars().take(64).collect() }
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
        let rel = token.strip_prefix('t').and_then(unhex).ok_or_else(|| bad_token(token))?;
        let mut k = base.clone();
        k.extend_from_slice(&rel);
        from = from.max(k);
    }

    let page = ListPage::default();
    if scope_end.as_deref().is_some_and(|end| from.as_slice() >= end) {
        // Starts after every key of the prefix (a range that ends before it starts is not
        // handed to the backend).
        return Ok(page);
    }
    let mut walk = Walk {
        bucket,
        opts,
        base: &base,
        max: opts.max_keys.max(1),
        delim: opts.delimiter.as_deref().filter(|d| !d.is_empty()),
        from,
        page,
        count: 0,
        resume: None,
        flow: Flow::More,
    };
    loop {
        walk.flow = Flow::More;
        let from = walk.from.clone();
        // One scan to the end of the scope, unless the walk stops it (a full page, a common
        // prefix to jump over): the records are lent, not copied, so only the page is held.
        r.scan_with(range_from(&from, scope_end.as_deref()), usize::MAX, &mut |k, v| walk.visit(k, v))?;
        if matches!(walk.flow, Flow::More)
            && let Some(end) = scope_end.as_deref().filter(|&e| e < bucket_end.as_slice())
        {
            // A pack lives under its last key: one that begins inside the scope may be stored
            // past its end, as the first record after it (its objects outside are cut).
            r.scan_with(range_from(end.max(&from), Some(&bucket_end)), 1, &mut |k, v| walk.visit(k, v))?;
        }
        match std::mem::replace(&mut walk.flow, Flow::More) {
            Flow::Stop | Flow::More => break,
            Flow::Jump(next) => walk.from = next,
        }
    }
    let Walk { mut page, resume, .. } = walk;
    page.next_token = resume.map(|rel| format!("t{}", hex(&rel)));
    Ok(page)
}

/// One page being filled, record by record, and what the last record decided.
struct Walk<'a> {
    bucket: &'a str,
    opts: &'a ListOptions,
    /// The bucket's key prefix (`<bucket>\0`).
    base: &'a [u8],
    max: usize,
    delim: Option<&'a str>,
    /// Where the current scan started.
    from: Vec<u8>,
    page: ListPage,
    count: usize,
    resume: Option<Vec<u8>>,
    flow: Flow,
}

impl Walk<'_> {
    /// Takes in one record (an object, or a pack of them); returns whether to go on.
    fn visit(&mut self, k: &[u8], v: &[u8]) -> Result<bool> {
        let (bucket, opts) = (self.bucket, self.opts);
        let start = &self.from[self.base.len()..];
        let objects = match objects::record_objects(bucket, k, v) {
            Ok(objects) => objects,
            // A damaged pack that begins past the prefix (the record looked at after it)
            // holds nothing of this listing.
            Err(_)
                if pack::first_key(v)
                    .is_some_and(|first| first.as_bytes() >= start && !first.starts_with(&opts.prefix)) =>
            {
                self.flow = Flow::Stop;
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        for (name, manifest) in objects {
            // A pack found by the scan may begin before where this page starts.
            if name.as_bytes() < start {
                continue;
            }
            if !name.starts_with(&opts.prefix) {
                self.flow = Flow::Stop;
                return Ok(false);
            }
            if self.count == self.max {
                // More remain: the next page starts here.
                self.resume = Some(name.as_bytes().to_vec());
                self.flow = Flow::Stop;
                return Ok(false);
            }
            if let Some(d) = self.delim {
                let rest = &name[opts.prefix.len()..];
                if let Some(i) = rest.find(d) {
                    let cp = &name[..opts.prefix.len() + i + d.len()];
                    self.page.common_prefixes.push(cp.to_owned());
                    self.count += 1;
                    // Skip every other key under this common prefix.
                    let mut cpk = self.base.to_vec();
                    cpk.extend_from_slice(cp.as_bytes());
                    self.flow = prefix_end(&cpk).map_or(Flow::Stop, Flow::Jump);
                    return Ok(false);
                }
            }
            let m = Manifest::decode_head(manifest, Owner { bucket, key: name }).map_err(|e| e.at(bucket, name))?;
            self.page.objects.push(objects::into_info(bucket, name, m));
            self.count += 1;
        }
        Ok(true)
    }
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
