//! The completed-upload record (`Book::Done`): what a multipart completion published, kept so
//! that a retry of the completion gets the same answer.

use super::{Dec, Enc};
use crate::error::Result;

/// A multipart upload that was completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DoneRecord {
    /// The object key it was completed as.
    pub key: String,
    /// The ETag of the object it published.
    pub etag: String,
    /// When it was completed, ns since the Unix epoch.
    pub completed: u64,
}

impl DoneRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        e.str(&self.key).str(&self.etag).u64(self.completed);
        e.0
    }
    pub(crate) fn decode(buf: &[u8]) -> Result<Self> {
        let mut d = Dec::new(buf, "completed upload record")?;
        let r = DoneRecord { key: d.string()?, etag: d.string()?, completed: d.u64()? };
        d.finish()?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let r = DoneRecord { key: "dir/é".into(), etag: "0123-2".into(), completed: 42 };
        let bytes = r.encode();
        assert_eq!(DoneRecord::decode(&bytes).expect("decodes"), r);
        for cut in 0..bytes.len() {
            assert!(DoneRecord::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(DoneRecord::decode(&trailing).is_err());
        let mut version = bytes;
        version[0] = 2;
        assert!(DoneRecord::decode(&version).unwrap_err().to_string().contains("format version 2"));
    }
}
