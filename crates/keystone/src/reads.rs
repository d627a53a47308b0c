//! Read operations shared by bucket handles, transactions and snapshots.

use std::ops::{Bound, RangeBounds};

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::objects;
use crate::reader::read_range;
use crate::storage::KvRead;
use crate::types::ObjectInfo;

pub(crate) fn head(r: &dyn KvRead, bucket: &str, key: &str) -> Result<ObjectInfo> {
    let m = objects::existing(r, bucket, key, false).map_err(|e| e.at(bucket, key))?;
    Ok(objects::into_info(bucket, key, m))
}

pub(crate) fn exists(r: &dyn KvRead, bucket: &str, key: &str) -> Result<bool> {
    crate::data::names::check_key(key)?;
    if objects::manifest(r, bucket, key, false).map_err(|e| e.at(bucket, key))?.is_some() {
        return Ok(true);
    }
    objects::require_bucket(r, bucket)?;
    Ok(false)
}

pub(crate) fn get_bytes(r: &dyn KvRead, bucket: &str, key: &str) -> Result<Vec<u8>> {
    read_range(r, bucket, key, (Bound::Unbounded, Bound::Unbounded)).map_err(|e| e.at(bucket, key))
}

pub(crate) fn get_range(r: &dyn KvRead, bucket: &str, key: &str, range: impl RangeBounds<u64>) -> Result<Vec<u8>> {
    read_range(r, bucket, key, (range.start_bound(), range.end_bound())).map_err(|e| e.at(bucket, key))
}

pub(crate) fn get_typed<T: DeserializeOwned>(r: &dyn KvRead, bucket: &str, key: &str) -> Result<T> {
    let bytes = get_bytes(r, bucket, key)?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Serialization {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        source,
    })
}

pub(crate) fn to_json<T: serde::Serialize + ?Sized>(bucket: &str, key: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|source| Error::Serialization {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        source,
    })
}
